"""Warnings and deprecations as ansible 2.19 shows and registers them: a module's warn() and
deprecate(), the engine's own (a conditional wrapped in ``{{ }}``, embedded templates in
constants, template task args), empty and untrusted conditionals - each compared with the real
ansible-playbook on the same playbook (stdout and stderr, merged in order)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.playbook._harness import VENV_BIN, ansible_env, run_ansible

pytestmark = pytest.mark.interop

WARNER = """\
#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule


def main():
    m = AnsibleModule(argument_spec=dict(x=dict(type='str')))
    m.warn("careful now")
    m.deprecate("old thing", version="2.99")
    m.exit_json(changed=False, y=1)


main()
"""


def _merged(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run ``cmd`` with stdout and stderr in one pipe (the order a terminal shows)."""
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    lines = [
        line
        for line in proc.stdout.splitlines()
        # the cryptography package's own warning when ansible imports it
        if "CryptographyDeprecationWarning" not in line and "asymmetric.dsa import" not in line
    ]
    return proc.returncode, "\n".join(lines)


def _both(tmp_path: Path, body: str, **env: str) -> tuple[int, str, int, str]:
    pb = tmp_path / "pb.yml"
    pb.write_text(body)
    exe = str(VENV_BIN / "ansible-playbook")
    if not os.path.exists(exe):
        run_ansible(["--version"], tmp_path)  # fails/skips with the install command
    ra, out_a = _merged([exe, "pb.yml"], tmp_path, dict(ansible_env(), **env))
    rf, out_f = _merged(
        [sys.executable, "-m", "fleetkit", "play", "pb.yml"],
        tmp_path,
        dict(ansible_env(), NO_COLOR="1", **env),
    )
    return ra, out_a, rf, out_f


def test_module_warnings_and_deprecations_show_and_register_as_ansible(tmp_path: Path) -> None:
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "warner.py").write_text(WARNER)
    ra, out_a, rf, out_f = _both(
        tmp_path,
        """\
- hosts: localhost
  gather_facts: false
  tasks:
  - warner: {x: a}
    register: r
  - debug: var=r
  - warner: {x: b}
  - debug: msg={{ item }}
    loop: [1, 2]
    when: "{{ item == 1 }}"
  - warner: {x: "{{ item }}"}
    loop: [1, 2]
    when: item == 1
    register: looped
  - debug: var=looped
""",
    )
    assert "[WARNING]: careful now" in out_a
    assert "[DEPRECATION WARNING]: old thing. This feature will be removed from module" in out_a
    assert (rf, out_f) == (ra, out_a)


def test_deprecation_display_off_keeps_them_registered(tmp_path: Path) -> None:
    ra, out_a, rf, out_f = _both(
        tmp_path,
        """\
- hosts: localhost
  gather_facts: false
  vars:
    thats:
      - '{{ 1 == 1 }}'
  tasks:
  - debug: msg=hi
    when:
      - "{{ true }}"
      - 1 == 1
  - assert:
      that: '{{ thats }}'
    register: result
  - assert:
      that:
      - result.deprecations | length == 1
      - result.deprecations[0].collection_name == 'ansible.builtin'
""",
        ANSIBLE_DEPRECATION_WARNINGS="0",
    )
    assert ra == 0
    assert "DEPRECATION" not in out_a
    assert (rf, out_f) == (ra, out_a)


def test_conditional_deprecations_carry_their_origin(tmp_path: Path) -> None:
    ra, out_a, rf, out_f = _both(
        tmp_path,
        """\
- hosts: localhost
  gather_facts: false
  vars:
    thats:
      - '{{ 1 == 1 }}'
  tasks:
  - debug: msg=hi
    when:
      - "{{ true }}"
  - assert:
      that: '{{ thats }}'
  - assert:
      that: |
        "dude" == "du{{'de'}}"
  - assert:
      that:
        - lookup('pipe', 'echo {{ "dude" }}') == "dude"
  - debug:
      msg: "{{ lookup('pipe', 'echo {{ \\"x\\" }}') }}"
""",
    )
    assert "Origin: " in out_a and "embedded templates" in out_a
    assert (rf, out_f) == (ra, out_a)


def test_empty_and_untrusted_conditionals_fail_as_ansible(tmp_path: Path) -> None:
    ra, out_a, rf, out_f = _both(
        tmp_path,
        """\
- hosts: localhost
  gather_facts: false
  tasks:
  - debug: msg=a
    when:
  - debug: msg=b
    when: ""
    ignore_errors: true
  - assert:
      that: ""
    ignore_errors: true
  - assert:
      that:
    ignore_errors: true
  - command: echo '1 == 1'
    register: out
    changed_when: false
  - assert:
      that: "{{ out.stdout }}"
    ignore_errors: true
  - assert:
      that: |
        {{ 'hello' }} == {{ 'world' }}
    ignore_errors: true
""",
    )
    assert "Empty conditional expressions are not allowed." in out_a
    assert "untrusted" in out_a
    assert (rf, out_f) == (ra, out_a)


def test_template_task_args_warn_inside_the_task(tmp_path: Path) -> None:
    ra, out_a, rf, out_f = _both(
        tmp_path,
        """\
- hosts: localhost
  gather_facts: false
  tasks:
  - debug: msg=first
  - assert: '{{ item }}'
    loop:
      - that: 1 == 1
      - that: [2 == 2]
  - assert: '{{ item.args }}'
    loop:
      - args: {}
    ignore_errors: true
""",
    )
    assert "argsplat-unsafe" in out_a
    assert (rf, out_f) == (ra, out_a)
