"""What a playbook can say: keywords, include/import inheritance, vars_prompt, errors.

Each case runs the real ansible-playbook and fleetkit on the same files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fleetkit.playbook.errors import PlaybookSyntaxError
from fleetkit.playbook.playbook import load_playbook
from tests.playbook._harness import FIXTURES, run_ansible, run_both, run_fleetkit

ROLES = FIXTURES / "roles_pb"
INV = "h1\n[all:vars]\nansible_connection=local\n"


def _both(tmp_path: Path, playbook: str, *extra: str) -> tuple[int, str, str, int, str, str]:
    a, f = run_both(tmp_path, playbook, INV, extra)
    return a.returncode, a.stdout, a.stderr, f.returncode, f.stdout, f.stderr


@pytest.mark.parametrize("tags", ["", "inc", "applied", "imp"])
def test_include_and_import_inheritance_as_ansible(tmp_path: Path, tags: str) -> None:
    work = tmp_path / "pb"
    shutil.copytree(ROLES, work)
    args = ["-i", "inventory.ini", "lang.yml", "-f", "1"] + (["--tags", tags] if tags else [])
    a = run_ansible(args, work)
    f = run_fleetkit(["play", *args], work)
    assert f.stdout == a.stdout
    assert f.returncode == a.returncode == 0


def test_vars_prompt_without_a_tty_as_ansible(tmp_path: Path) -> None:
    pb = (
        "- hosts: all\n  gather_facts: false\n  vars_prompt:\n"
        "    - {name: a, prompt: A, default: dflt}\n    - {name: b, prompt: B}\n"
        "    - {name: c, prompt: C}\n"
        "  tasks:\n    - debug: msg='{{ a }} {{ b }} {{ c }}'\n"
    )
    ra, out_a, err_a, rf, out_f, err_f = _both(tmp_path, pb, "-e", "c=given")
    assert out_f == out_a
    assert '"msg": "dflt None given"' in out_f
    assert rf == ra == 0
    warn = "[WARNING]: Not prompting as we are not in interactive mode"
    assert err_f.count(warn) == err_a.count(warn) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  foo: 1\n  tasks: []\n", "'foo' is not a valid attribute for a Play"),
        (
            "  tasks:\n    - block:\n        - debug: msg=x\n      bar: 2\n",
            "'bar' is not a valid attribute for a Block",
        ),
        (
            "  tasks:\n    - debug: msg=x\n      foo: 1\n",
            "conflicting action statements: debug, foo",
        ),
        (
            "  tasks:\n    - debug: msg=x\n      listen: y\n",
            "'listen' is not a valid attribute for a Task",
        ),
        (
            "  tasks:\n    - include_tasks: x.yml\n      become: true\n",
            "'become' is not a valid attribute for a TaskInclude",
        ),
        (
            "  tasks:\n    - import_tasks: x.yml\n      loop: [1]\n",
            "You cannot use loops on 'import_tasks' statements. You should use 'include_tasks'",
        ),
        (
            "  tasks:\n    - include_role:\n        name: x\n        bogus: 1\n",
            "Invalid options for include_role: bogus",
        ),
        (
            "  tasks:\n    - debug: msg=x\n      register: 200\n",
            "Invalid 'register' specified: Invalid variable name '200' of type 'int'.",
        ),
    ],
)
def test_bad_keywords_are_ansibles_errors(tmp_path: Path, body: str, message: str) -> None:
    pb = "- hosts: all\n  gather_facts: false\n" + body
    ra, out_a, err_a, rf, out_f, err_f = _both(tmp_path, pb)
    assert message in err_a
    assert message in err_f
    assert rf == ra == 4


def test_notifying_a_missing_handler_is_ansibles_error(tmp_path: Path) -> None:
    pb = (
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - debug: msg=x\n      changed_when: true\n      notify: nope\n"
    )
    ra, out_a, err_a, rf, out_f, err_f = _both(tmp_path, pb)
    message = (
        "The requested handler 'nope' was not found in either the main handlers list nor in "
        "the listening handlers list"
    )
    assert message in err_a and message in err_f
    assert out_f == out_a
    assert rf == ra == 1


def test_unhonoured_keyword_is_refused_but_passes_syntax_check(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  tasks:\n    - command: sleep 1\n      debugger: always\n")
    with pytest.raises(PlaybookSyntaxError, match="'debugger' is not supported by fleetkit"):
        load_playbook(str(pb))
    assert load_playbook(str(pb), syntax_only=True)[0].tasks


def test_vars_files_first_found_templated_and_missing_as_ansible(tmp_path: Path) -> None:
    (tmp_path / "vars").mkdir()
    (tmp_path / "b.yml").write_text("x: from-b\n")
    (tmp_path / "vars" / "prod.yml").write_text("y: from-vars-dir\n")
    pb = (
        "- hosts: all\n  gather_facts: false\n  vars:\n    envname: prod\n    x: play\n"
        "  vars_files:\n    - [a.yml, b.yml]\n    - '{{ envname }}.yml'\n    - missing.yml\n"
        "  tasks:\n    - debug:\n        msg: '{{ x }} {{ y }}'\n"
    )
    ra, out_a, err_a, rf, out_f, err_f = _both(tmp_path, pb)
    assert out_f == out_a
    assert '"msg": "from-b from-vars-dir"' in out_f
    assert rf == ra == 0


@pytest.mark.parametrize(
    ("handlers", "message"),
    [
        ("    - name: h\n      include_role: {name: r}\n", "Using 'include_role' as a handler"),
        ("    - name: h\n      import_role: {name: r}\n", "Using 'import_role' as a handler"),
        (
            "    - block:\n        - block:\n            - debug:\n",
            "Using a block as a handler is not supported.",
        ),
    ],
)
def test_roles_and_nested_blocks_as_handlers_are_ansibles_errors(
    tmp_path: Path, handlers: str, message: str
) -> None:
    (tmp_path / "roles" / "r" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "r" / "tasks" / "main.yml").write_text("- debug:\n")
    pb = "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug:\n  handlers:\n" + handlers
    ra, _out_a, err_a, rf, _out_f, err_f = _both(tmp_path, pb)
    assert message in err_a
    assert message in err_f
    assert rf == ra == 4


def test_import_playbook_tags_reach_the_handlers_as_ansible(tmp_path: Path) -> None:
    (tmp_path / "inner.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: 'true'\n      notify: h\n"
        "  handlers:\n    - name: h\n      debug: msg=handled\n"
    )
    ra, out_a, err_a, rf, out_f, err_f = _both(
        tmp_path, "- import_playbook: inner.yml\n  tags: [t1]\n", "--tags", "t1"
    )
    assert out_f == out_a
    assert "RUNNING HANDLER [h]" in out_f
    assert rf == ra == 0


def test_include_without_a_file_names_the_action_as_written(tmp_path: Path) -> None:
    pb = "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.include_tasks:\n"
    _ra, _out_a, err_a, _rf, _out_f, err_f = _both(tmp_path, pb)
    message = "No file specified for ansible.builtin.include_tasks"
    assert message in err_a and message in err_f


@pytest.mark.parametrize(
    "include",
    ["include_tasks: broken.yml", "include_role: {name: r, tasks_from: broken}"],
)
def test_a_broken_file_loaded_at_run_time_ends_the_run_as_ansible(
    tmp_path: Path, include: str
) -> None:
    broken = (
        "- name: fine\n  ping:\n\n- name: invalid include_task definition\n"
        "  ansible.builtin.include_tasks:\n"
    )
    (tmp_path / "broken.yml").write_text(broken)
    (tmp_path / "roles" / "r" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "r" / "tasks" / "broken.yml").write_text(broken)
    pb = (
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=before\n"
        f"    - {include}\n    - debug: msg=after\n"
    )
    ra, out_a, err_a, rf, out_f, err_f = _both(tmp_path, pb)
    assert out_f == out_a
    # ansible's parser error: the message and the annotated origin, no PLAY RECAP
    assert err_f == err_a[err_a.index("[ERROR]") :]
    assert "Origin: " in err_f and ":4:3\n" in err_f and "error:" not in err_f
    assert rf == ra == 4


COLLECTIONS_KEYWORD = """
- hosts: all
  gather_facts: false
  collections:
    - community.general
  tasks:
    - name: a collection's module by its short name
      filesize: {path: "{{ out }}/big", size: 1KB}
    - name: builtin modules still resolve
      copy: {content: "x\\n", dest: "{{ out }}/c"}
    - block:
        - name: the block's own list
          filesize: {path: "{{ out }}/big2", size: 2KB}
      collections: [community.general, ansible.builtin]
"""


def test_collections_keyword_resolves_short_module_names_as_ansible(tmp_path: Path) -> None:
    """``collections:`` on a play or block: short module names are searched in its list first
    (filesize is not one of ansible.builtin's redirects, so without it the name fails)."""
    (tmp_path / "inventory.ini").write_text(INV)
    outs = []
    for who, bare in ((w, b) for b in (False, True) for w in ("ansible", "fleetkit")):
        book = COLLECTIONS_KEYWORD
        if bare:
            book = book.replace("  collections:\n    - community.general\n", "")
        (tmp_path / "pb.yml").write_text(book)
        out = tmp_path / f"{who}-{bare}"
        out.mkdir()
        args = ["-i", "inventory.ini", "pb.yml", "-e", f"out={out}"]
        run = run_ansible if who == "ansible" else None
        p = run(args, tmp_path) if run else run_fleetkit(["play", *args], tmp_path)
        outs.append((p.returncode, p.stdout, p.stderr))
    (arc, aout, _), (frc, fout, ferr) = outs[0], outs[1]
    assert (frc, fout) == (arc, aout) and frc == 0, ferr
    assert (tmp_path / "fleetkit-False" / "big2").stat().st_size == 2000
    assert outs[2][0] == outs[3][0] == 4
    assert "couldn't resolve module/action 'filesize'" in outs[3][2]
