"""module_defaults (play, block, role, task; action names and collection action groups) gives
the module arguments ansible-playbook gives, checked against the real tool."""

from __future__ import annotations

from pathlib import Path

from tests.playbook._harness import VOLATILE, run_ansible, run_fleetkit

HELLO = """#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule


def main():
    m = AnsibleModule(argument_spec={"who": {"required": True}, "punct": {"default": "."}})
    m.exit_json(changed=False, greeting="hello " + m.params["who"] + m.params["punct"])


if __name__ == "__main__":
    main()
"""

RUNTIME = """
requires_ansible: ">=2.15"
action_groups:
  base:
    - hello
  everything:
    - metadata:
        extend_group: [base]
"""

PLAYBOOK = """
- hosts: localhost
  gather_facts: true
  module_defaults:
    setup: {gather_subset: ["!all", "min"]}
    debug: {msg: play-level}
    group/fk.demo.everything: {who: group, punct: "!"}
  roles:
    - role: r
      module_defaults:
        debug: {msg: role-level}
  tasks:
    - debug:
    - debug:
      module_defaults:
        ansible.builtin.debug: {msg: "task-level {{ 1 + 1 }}"}
    - fk.demo.hello:
      register: h
    - debug: {msg: "{{ h.greeting }}"}
    - block:
        - fk.demo.hello: {punct: "?"}
          register: h2
        - debug: {msg: "{{ h2.greeting }}"}
        - command:
          register: c
        - debug: {msg: "{{ c.stdout }}"}
      module_defaults:
        fk.demo.hello: {who: block}
        command: {cmd: echo from-defaults}
    - ping:
      module_defaults:
        ping: {data: "{{ 'pong' ~ '-default' }}"}
      register: p
    - debug: {msg: "{{ p.ping }}"}
    - debug: {msg: "{{ ansible_facts.keys()|length < 80 }}"}
"""


def test_module_defaults_as_ansible(tmp_path: Path) -> None:
    coll = tmp_path / "collections" / "ansible_collections" / "fk" / "demo"
    (coll / "meta").mkdir(parents=True)
    (coll / "meta" / "runtime.yml").write_text(RUNTIME)
    (coll / "plugins" / "modules").mkdir(parents=True)
    (coll / "plugins" / "modules" / "hello.py").write_text(HELLO)
    role = tmp_path / "roles" / "r" / "tasks"
    role.mkdir(parents=True)
    (role / "main.yml").write_text("- debug:\n")
    (tmp_path / "pb.yml").write_text(PLAYBOOK)
    env = {"ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "collections")}
    args = ["-i", "localhost,", "-c", "local", "pb.yml"]
    a = run_ansible(args, tmp_path, env=env)
    f = run_fleetkit(["play", *args], tmp_path, env=env)
    assert VOLATILE.sub("", f.stdout) == VOLATILE.sub("", a.stdout), f.stderr
    assert f.returncode == a.returncode == 0
    for text in ("role-level", "task-level 2", "hello group!", "hello block?", "from-defaults"):
        assert text in f.stdout
    assert '"msg": "pong-default"' in f.stdout
    assert '"msg": true' in f.stdout  # setup ran with the play's gather_subset


def test_module_defaults_refuses_what_ansible_refuses(tmp_path: Path) -> None:
    (tmp_path / "pb.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - debug:\n"
        "      module_defaults:\n        bogus_mod: {x: 1}\n"
    )
    args = ["-i", "localhost,", "-c", "local", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    msg = "Could not resolve action ansible.legacy.bogus_mod in module_defaults"
    assert msg in a.stderr and msg in f.stderr
    assert a.returncode != 0 and f.returncode != 0
