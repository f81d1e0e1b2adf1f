"""Connection plugins from directories (ANSIBLE_CONNECTION_PLUGINS, connection_plugins/ beside
the playbook) run as ansible's code; their failures are unreachable hosts, as in ansible."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.playbook._harness import VOLATILE, run_ansible, run_fleetkit

GOOD = """
import ansible.plugins.connection.local as ansible_local


class Connection(ansible_local.Connection):
    pass
"""

BAD = """
import ansible.plugins.connection.local as ansible_local
from ansible.errors import AnsibleConnectionFailure


class Connection(ansible_local.Connection):
    def {method}(self, *args, **kwargs):
        raise AnsibleConnectionFailure('BADLOCAL Error: this is supposed to fail')
"""

INVENTORY = """
good ansible_host=localhost ansible_connection=fk_good
bad_put_file ansible_host=localhost ansible_connection=bad_put_file
bad_exec ansible_host=localhost ansible_connection=bad_exec
"""

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - ping:
      ignore_unreachable: true
    - command: echo hi
      ignore_unreachable: true
    - setup: {gather_subset: min}
      ignore_unreachable: true
      register: f
    - debug: msg="{{ f.ansible_facts.ansible_system | default('none') }}"
- hosts: bad_put_file
  ignore_unreachable: true
  tasks:
    - ping:
- hosts: bad_exec,good
  gather_facts: false
  tasks:
    - ping:
      ignore_unreachable: "{{ item }}"
      loop: [true, true]
    - ping:
      ignore_unreachable: "{{ item }}"
      loop: [false, true]
    - meta: clear_host_errors
    - name: the host back from clear_host_errors runs after the others
      ping:
      ignore_unreachable: "{{ item }}"
      loop: [true, false]
    - meta: clear_host_errors
    - debug: msg=end
"""


def _setup(tmp_path: Path) -> None:
    conns = tmp_path / "connection_plugins"
    conns.mkdir()
    (conns / "fk_good.py").write_text(GOOD)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "bad_put_file.py").write_text(BAD.format(method="put_file"))
    (tmp_path / "plugins" / "bad_exec.py").write_text(BAD.format(method="exec_command"))
    (tmp_path / "inventory").write_text(INVENTORY)
    (tmp_path / "pb.yml").write_text(PLAYBOOK)


def test_connection_plugins_run_and_fail_as_unreachable(tmp_path: Path) -> None:
    _setup(tmp_path)
    args = ["-f", "1", "-i", "inventory", "pb.yml"]
    env = {
        "ANSIBLE_CONNECTION_PLUGINS": str(tmp_path / "plugins"),
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    }
    a = run_ansible(args, tmp_path, env=env)
    f = run_fleetkit(["play", *args], tmp_path, env=env)
    assert VOLATILE.sub("", f.stdout) == VOLATILE.sub("", a.stdout), f.stderr
    assert f.returncode == a.returncode == 4
    assert '"msg": "Linux"' in f.stdout  # facts gathered through the good plugin
    assert "BADLOCAL Error: this is supposed to fail" in f.stdout
    assert "bad_exec                   : ok=5    changed=0    unreachable=2" in f.stdout
