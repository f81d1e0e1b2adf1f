"""Failed results as ansible 2.19 normalizes them (``exception``, failed_when suppression)."""

from __future__ import annotations

from pathlib import Path

from tests.playbook._harness import VOLATILE, run_ansible, run_fleetkit

PLAYBOOK = """
- hosts: h1
  gather_facts: false
  tasks:
    - shell: exit 1
      register: r1
      ignore_errors: true
    - debug: var=r1
    - shell: exit 1
      failed_when: false
      register: r2
    - debug: var=r2
    - fail: msg=boom
      failed_when: false
      register: r3
    - debug: var=r3
    - fail: msg=boom
      register: r4
      ignore_errors: true
    - debug: var=r4
    - debug: msg=x
      failed_when: true
      register: r5
      ignore_errors: true
    - debug: var=r5
"""


def test_failed_results_carry_exception_as_ansible(tmp_path: Path) -> None:
    (tmp_path / "inventory.ini").write_text("h1 ansible_connection=local\n")
    (tmp_path / "playbook.yml").write_text(PLAYBOOK)
    args = ["-i", "inventory.ini", "playbook.yml", "-f", "1"]
    ans = run_ansible(args, tmp_path)
    fk = run_fleetkit(["play", *args], tmp_path, timeout=60)
    assert fk.returncode == ans.returncode == 0, fk.stderr
    assert '"failed_when_suppressed_exception": "(traceback unavailable)"' in fk.stdout
    assert VOLATILE.sub("", fk.stdout) == VOLATILE.sub("", ans.stdout)
