"""Trust: data from hosts and ``!unsafe`` values are never templated (ansible 2.19's model)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fleetkit.playbook.errors import TemplateError
from fleetkit.playbook.templar import Templar, VarsView
from fleetkit.playbook.trust import UnsafeText, mark_unsafe
from tests.playbook._harness import parse, run_ansible, run_fleetkit

INVENTORY = "[g]\nh1\nh2\n[all:vars]\nansible_connection=local\n"
PLAYBOOK = """
- hosts: h1
  gather_facts: false
  vars:
    secret: s3cr3t
  tasks:
    - command: cat payload.txt
      register: r
    - debug: {msg: "{{ r.stdout }}"}
    - debug: {var: r.stdout}
    - set_fact:
        copied: "{{ r.stdout }}"
        prefixed: "p {{ r.stdout | trim }}"
        lines: "{{ r.stdout_lines }}"
    - debug: {msg: "{{ copied }} / {{ prefixed }} / {{ lines }}"}
    - debug: {msg: "{{ item }}"}
      loop: "{{ r.stdout_lines }}"
    - debug: {msg: "{{ lookup('file', 'payload.txt') }}"}
    - command: cat bomb.txt
      register: b
    - debug: {msg: "{{ b.stdout }}"}
    - set_fact: {bomb: "{{ b.stdout }}"}
    - debug: {msg: "{{ bomb }}"}
"""


def _setup(d: Path) -> None:
    d.mkdir()
    (d / "inventory.ini").write_text(INVENTORY)
    (d / "playbook.yml").write_text(PLAYBOOK)
    (d / "payload.txt").write_text("{{ hostvars['h2'].secret }}")
    (d / "bomb.txt").write_text("{{ 'x'*(10**10) }}")


def test_host_output_is_printed_literally_never_templated(tmp_path: Path) -> None:
    _setup(tmp_path / "f")
    args = ["-i", "inventory.ini", "playbook.yml", "-f", "1"]
    got = run_fleetkit(["play", *args], tmp_path / "f", timeout=60)
    assert got.returncode == 0, got.stderr
    assert "s3cr3t" not in got.stdout
    assert '"msg": "{{ hostvars[\'h2\'].secret }}"' in got.stdout
    assert '"msg": "{{ \'x\'*(10**10) }}"' in got.stdout
    _setup(tmp_path / "a")
    want = run_ansible(args, tmp_path / "a")
    assert got.stdout == want.stdout


def _t(**variables: object) -> Templar:
    return Templar(VarsView([variables]))


def test_unsafe_values_are_never_rendered_even_lazily() -> None:
    payload = UnsafeText("{{ secret }}")
    t = _t(
        secret="s",
        raw=payload,
        nested={"a": [payload], "b": "{{ secret }}"},
        via="{{ raw }}",
    )
    assert t.template(payload) == "{{ secret }}"
    assert t.template("{{ raw }}") == "{{ secret }}"
    assert t.template("{{ via }}") == "{{ secret }}"
    assert t.template("{{ nested }}") == {"a": ["{{ secret }}"], "b": "s"}
    assert t.template({"k": payload, "j": "{{ secret }}"}) == {"k": "{{ secret }}", "j": "s"}
    with pytest.raises(TemplateError, match="Encountered untrusted template or expression"):
        t.condition(payload)


def test_mark_unsafe_marks_every_string_and_dumps_as_plain_yaml() -> None:
    marked = mark_unsafe({"stdout": "x", "lines": ["a"], "rc": 0, "t": ("b",)})
    assert isinstance(marked["stdout"], UnsafeText)
    assert isinstance(marked["lines"][0], UnsafeText)
    assert isinstance(next(iter(marked)), UnsafeText)
    assert isinstance(marked["t"][0], UnsafeText)
    assert marked["rc"] == 0
    assert yaml.safe_dump({"s": marked["stdout"], "l": marked["lines"]}) == "l:\n- a\ns: x\n"


@pytest.mark.parametrize(
    "expr",
    ["{{ 'x' * (10**10) }}", "{{ [0] * (10**10) }}", "{{ (10**10) * 'x' }}", "{{ 7 ** (10**9) }}"],
)
def test_sandbox_refuses_huge_repetition_and_powers(expr: str) -> None:
    with pytest.raises(TemplateError, match="more than the sandbox allows"):
        _t().template(expr)


def test_sandbox_keeps_ordinary_arithmetic() -> None:
    t = _t()
    assert t.template("{{ 'ab' * 3 }}") == "ababab"
    assert t.template("{{ [1] * 2 }}") == [1, 1]
    assert t.template("{{ 2 ** 10 }}") == 1024
    with pytest.raises(TemplateError, match="Range too big"):
        t.template("{{ range(10**9) | list }}")


COND_PLAYBOOK = """
- hosts: h1
  gather_facts: false
  tasks:
    - shell: echo "lookup('pipe', 'touch sentinel') == 'x'"
      register: u
    - debug: {msg: a}
      when: '"foo" in {{ u.stdout }}'
      ignore_errors: true
    - assert:
        that: "{{ '1 == 1' }}"
      ignore_errors: true
    - debug: {msg: d}
      when: "{{ u.stdout }}"
      ignore_errors: true
    - command: ls
      register: s
    - debug: {msg: "{{ 'sentinel' in s.stdout_lines }}"}
"""


def test_conditionals_never_evaluate_host_data_as_expressions(tmp_path: Path) -> None:
    runs = []
    for who in ("ansible", "fleetkit"):
        d = tmp_path / who
        d.mkdir()
        (d / "inventory.ini").write_text(INVENTORY)
        (d / "playbook.yml").write_text(COND_PLAYBOOK)
        args = ["-i", "inventory.ini", "playbook.yml", "-f", "1"]
        p = run_ansible(args, d) if who == "ansible" else run_fleetkit(["play", *args], d)
        events, recap = parse(p.stdout)
        runs.append(([e[:3] for e in events], recap, p.stdout))
        assert not (d / "sentinel").exists(), p.stdout
    (want_ev, want_recap, want), (got_ev, got_recap, got) = runs
    assert got_ev == want_ev
    assert got_recap == want_recap
    assert got.count("Encountered untrusted template or expression.") >= 2
    assert "Template delimiters are not supported in expressions" in got
