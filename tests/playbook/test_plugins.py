"""ansible's lookup, filter and test plugins in fleetkit's templar, against ansible-playbook."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fleetkit.playbook import plugins
from fleetkit.playbook.errors import TemplateError
from fleetkit.playbook.templar import Templar, VarsView
from fleetkit.playbook.trust import UnsafeText
from tests.peers import _missing
from tests.playbook._harness import FIXTURES, run_ansible, run_fleetkit

CASES = FIXTURES / "plugins"


def _both(tmp_path: Path, playbook: str) -> tuple[str, str, str, str]:
    """Run ansible-playbook and fleetkit play on copies of the plugins fixture directory."""
    outs: list[str] = []
    for who in ("ansible", "fleetkit"):
        d = tmp_path / who
        shutil.copytree(CASES, d)
        args = ["-i", "inventory.ini", playbook, "-f", "1"]
        p = (
            run_ansible(args, d)
            if who == "ansible"
            else run_fleetkit(["play", *args], d, timeout=60)
        )
        outs += [p.stdout.replace(str(d), "<dir>"), p.stderr]
    return outs[0], outs[1], outs[2], outs[3]


def _fatal_msgs(stdout: str) -> list[str]:
    prefix = "fatal: [h1]: FAILED! => "
    return [
        json.loads(line[len(prefix) :])["msg"]
        for line in stdout.splitlines()
        if line.startswith(prefix)
    ]


def test_lookups_and_with_loops_print_what_ansible_prints(tmp_path: Path) -> None:
    want, _, got, err = _both(tmp_path, "lookups.yml")
    assert "PLAY RECAP" in want
    assert got == want, err


def test_builtin_filters_and_tests_print_what_ansible_prints(tmp_path: Path) -> None:
    want, _, got, err = _both(tmp_path, "filters.yml")
    assert "failed=0" in want
    assert got == want, err


def test_lookup_failures_carry_ansibles_messages(tmp_path: Path) -> None:
    want, _, got, err = _both(tmp_path, "lookup_errors.yml")
    assert len(_fatal_msgs(want)) == 7
    assert _fatal_msgs(got) == _fatal_msgs(want), err
    assert [ln for ln in got.splitlines() if '"msg": ' in ln] == [
        ln for ln in want.splitlines() if '"msg": ' in ln
    ]


def _t(**variables: object) -> Templar:
    return Templar(VarsView([variables]))


def test_lookup_query_and_wantlist_follow_ansibles_rules() -> None:
    t = _t(playbook_dir=str(CASES))
    assert t.template("{{ lookup('items', [1, 2]) }}") == [1, 2]
    assert t.template("{{ lookup('list', 'a', 'b') }}") == "a,b"
    assert t.template("{{ lookup('list', 'a') }}") == "a"
    assert t.template("{{ lookup('list', 'a', wantlist=True) }}") == ["a"]
    assert t.template("{{ query('list', 'a') }}") == ["a"]
    assert t.template("{{ q('sequence', 'count=2') }}") == ["1", "2"]
    assert t.template("{{ lookup('file', 'a.txt') }}") == "alpha"
    assert t.template("{{ lookup('ansible.builtin.file', 'a.txt') }}") == "alpha"


def test_lookup_errors_strict_warn_ignore(caplog: pytest.LogCaptureFixture) -> None:
    t = _t(playbook_dir=str(CASES))
    with pytest.raises(TemplateError, match="The lookup plugin 'file' failed: "):
        t.template("{{ lookup('file', 'missing.txt') }}")
    assert t.template("{{ lookup('file', 'missing.txt', errors='ignore') }}") is None
    assert t.template("{{ query('file', 'missing.txt', errors='ignore') }}") == []
    with caplog.at_level(logging.WARNING, logger="fleetkit.playbook"):
        assert t.template("{{ lookup('file', 'missing.txt', errors='warn') }}") is None
    assert "An error occurred while running the lookup plugin 'file'" in caplog.text
    with pytest.raises(TemplateError, match="The lookup plugin 'nope' was not found."):
        t.template("{{ lookup('nope', 'x') }}")


def test_file_lookups_search_role_then_playbook_dirs(tmp_path: Path) -> None:
    role = tmp_path / "roles" / "r"
    (role / "files").mkdir(parents=True)
    (role / "templates").mkdir()
    (role / "files" / "a.txt").write_text("from role\n")
    (role / "templates" / "t.j2").write_text("role {{ x }}\n")
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "b.txt").write_text("from play\n")
    variables = {"playbook_dir": str(tmp_path), "role_path": str(role), "x": 1}
    assert plugins.run_lookup("file", ["a.txt", "b.txt"], variables) == ["from role", "from play"]
    assert plugins.run_lookup("template", ["t.j2"], variables) == ["role 1\n"]
    found = plugins.run_lookup("first_found", [["nope", "files/a.txt"]], variables)
    assert found == [str(role / "files" / "a.txt")]


def test_with_first_found_searches_the_subdir_of_the_task_action(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "x.j2").write_text("x")
    variables = {"playbook_dir": str(tmp_path)}
    got = plugins.loop_items("first_found", ["nope.j2", "x.j2"], variables, "template")
    assert got == [str(tmp_path / "templates" / "x.j2")]


def test_lookup_results_are_data_never_templates(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("{{ secret }}")
    t = _t(playbook_dir=str(tmp_path), secret="s", content="{{ lookup('file', 'f.txt') }}")
    assert t.template("{{ lookup('file', 'f.txt') }}") == "{{ secret }}"
    assert t.template("{{ content }}") == "{{ secret }}"
    assert isinstance(
        plugins.run_lookup("file", ["f.txt"], {"playbook_dir": str(tmp_path)})[0], UnsafeText
    )


def test_fqcn_filters_and_tests_and_unknown_names() -> None:
    t = _t()
    assert (
        t.template("{{ 'x' | ansible.builtin.to_uuid }}") == "66b2f013-1baa-5313-9c8c-e6f1182e0e90"
    )
    assert t.template("{{ 'a' is ansible.builtin.match('a') }}") is True
    with pytest.raises(TemplateError, match="No filter named 'no_such_filter'"):
        t.template("{{ 1 | no_such_filter }}")
    with pytest.raises(TemplateError, match="The filter plugin 'ansible.builtin.from_json' failed"):
        t.template("{{ '{' | from_json }}")


def test_collection_filter_by_fqcn_when_the_ansible_package_is_installed() -> None:
    try:
        importlib.metadata.version("ansible")  # importing the package would bypass ansible's finder
    except importlib.metadata.PackageNotFoundError:
        _missing("the ansible package (community collections)", "pip install 'ansible>=12,<13'")
    # a fresh interpreter: ansible's collection finder is process-wide, and other tests here
    # install it with their own temporary collection paths
    code = (
        "from fleetkit.playbook.templar import Templar, VarsView\n"
        "t = Templar(VarsView([{}]))\n"
        "print(t.template(\"{{ [{'a': 1}] | community.general.lists_mergeby("
        "[{'a': 1, 'b': 2}], 'a') }}\"))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.strip() == "[{'a': 1, 'b': 2}]"


def test_builtin_name_lists_match_the_installed_ansible() -> None:
    code = (
        "from ansible.plugins.loader import init_plugin_loader, filter_loader, test_loader\n"
        "init_plugin_loader()\n"
        "import json\n"
        "print(json.dumps([sorted({p.ansible_name.split('.')[-1] for p in ld.all()})"
        " for ld in (filter_loader, test_loader)]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    filters, tests = json.loads(out)
    assert sorted(plugins.ANSIBLE_FILTERS) == filters
    assert sorted(plugins.ANSIBLE_TESTS) == tests


def test_ansible_is_imported_only_when_a_template_needs_it() -> None:
    code = (
        "import sys\n"
        "from fleetkit.playbook.templar import Templar, VarsView\n"
        "t = Templar(VarsView([{'x': [2, 1]}]))\n"
        "assert t.template('{{ x | sort | join(\",\") }}') == '1,2'\n"
        "print('ansible' in sys.modules)\n"
        "t.template('{{ x | to_json }}')\n"
        "print('ansible' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "True"]


def test_backslashes_in_yaml_expressions_are_data_but_not_in_conditionals() -> None:
    t = _t()
    assert t.template("{{ 'ab12' | regex_replace('(\\d)', '<\\1>') }}") == "ab<1><2>"
    assert t.template("x {{ 'C:\\x' }}") == "x C:\\x"
    assert t.condition("'a\\tb' == 'a' + '\\t' + 'b'")


ADJACENT_FILTER = """
class FilterModule:
    def filters(self):
        return {"shout": lambda v: str(v).upper() + "!"}
"""
ADJACENT_TEST = """
class TestModule:
    def tests(self):
        return {"even_len": lambda v: len(v) % 2 == 0}
"""
ADJACENT_LOOKUP = """
from ansible.plugins.lookup import LookupBase


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        return [t * 2 for t in terms]
"""
ADJACENT_PLAY = """
- hosts: h1
  gather_facts: false
  tasks:
    - debug:
        msg: "{{ 'hi' | shout }} {{ 'ab' is even_len }} {{ lookup('twice', 'x') }}"
    - debug: {msg: "{{ item }}"}
      with_twice: [a, b]
"""


def test_plugins_next_to_the_playbook_are_loaded_as_ansible_does(tmp_path: Path) -> None:
    outs = []
    for who in ("ansible", "fleetkit"):
        d = tmp_path / who
        for kind, code in (
            ("filter", ADJACENT_FILTER),
            ("test", ADJACENT_TEST),
            ("lookup", ADJACENT_LOOKUP),
        ):
            (d / f"{kind}_plugins").mkdir(parents=True)
            (d / f"{kind}_plugins" / ("twice.py" if kind == "lookup" else "mine.py")).write_text(
                code
            )
        shutil.copy(CASES / "inventory.ini", d)
        (d / "playbook.yml").write_text(ADJACENT_PLAY)
        args = ["-i", "inventory.ini", "playbook.yml"]
        p = run_ansible(args, d) if who == "ansible" else run_fleetkit(["play", *args], d)
        outs.append((p.stdout, p.stderr))
    (want, _), (got, err) = outs
    assert '"msg": "HI! True xx"' in want
    assert got == want, err
