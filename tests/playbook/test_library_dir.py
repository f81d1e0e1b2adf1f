"""Modules from a library/ directory beside the playbook or in a role run as ansible runs them."""

from __future__ import annotations

from pathlib import Path

from tests.playbook._harness import run_ansible, run_fleetkit

MODULE = """#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule


def main():
    m = AnsibleModule(argument_spec={"who": {"type": "str", "required": True}})
    m.exit_json(changed=False, greeting="hello " + m.params["who"])


if __name__ == "__main__":
    main()
"""


def test_library_modules_beside_the_playbook_and_in_a_role(tmp_path: Path) -> None:
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "hello.py").write_text(MODULE)
    role = tmp_path / "roles" / "r"
    (role / "library").mkdir(parents=True)
    (role / "tasks").mkdir()
    (role / "library" / "role_hello.py").write_text(MODULE)
    (role / "tasks" / "main.yml").write_text(
        "- role_hello: who=role\n  register: rr\n- debug: var=rr.greeting\n"
    )
    (tmp_path / "pb.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  roles: [r]\n  tasks:\n"
        "    - hello: who=world\n      register: r\n    - debug: var=r.greeting\n"
        "    - hello: {}\n      ignore_errors: true\n"
    )
    args = ["-i", "localhost,", "-c", "local", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert f.stdout == a.stdout, f.stderr
    assert '"r.greeting": "hello world"' in f.stdout
    assert '"rr.greeting": "hello role"' in f.stdout
    assert "missing required arguments: who" in f.stdout
    assert f.returncode == a.returncode == 0
