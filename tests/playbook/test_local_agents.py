"""Local hosts share a module agent per interpreter (and become user): each host's facts still
come from its own interpreter, before and after ``meta: reset_connection``, as ansible's
(differential against ansible-playbook)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.playbook._harness import run_ansible, run_fleetkit

SYSTEM_PYTHON = "/usr/bin/python3"


def _blocks(out: str) -> list[list[str]]:
    """The output per task banner, its lines sorted."""
    blocks: list[list[str]] = [[]]
    for line in out.splitlines():
        if line.startswith(("TASK [", "PLAY [", "PLAY RECAP")):
            blocks.append([])
        blocks[-1].append(line)
    return [sorted(b) for b in blocks]


def test_local_hosts_keep_their_interpreter_across_reset_connection(tmp_path: Path) -> None:
    system = SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) else sys.executable
    (tmp_path / "hosts").write_text(
        "[fleet]\n"
        f"a ansible_python_interpreter={system}\n"
        f"b ansible_python_interpreter={sys.executable}\n"
        f"c ansible_python_interpreter={system}\n"
        f"d ansible_python_interpreter={sys.executable}\n"
        "[all:vars]\nansible_connection=local\n"
    )
    (tmp_path / "p.yml").write_text(
        "- hosts: fleet\n"
        "  gather_subset: [min]\n"
        "  tasks:\n"
        "    - debug: msg='{{ ansible_python.executable }} {{ ansible_python_version }}'\n"
        "    - meta: reset_connection\n"
        "    - setup: gather_subset=min\n"
        "    - debug: msg='{{ ansible_python.executable }} {{ ansible_facts.nodename }}'\n"
    )
    want = run_ansible(["-i", "hosts", "p.yml"], tmp_path)
    got = run_fleetkit(["play", "-i", "hosts", "p.yml"], tmp_path)
    assert want.returncode == 0, want.stdout + want.stderr
    # the hosts' lines within a task come in the order their results arrive (both tools)
    assert _blocks(got.stdout) == _blocks(want.stdout), got.stdout + got.stderr
    assert f'"msg": "{sys.executable} ' in got.stdout
    if system != sys.executable:
        assert f'"msg": "{system} ' in got.stdout


def test_a_local_agent_that_exited_is_replaced_for_the_next_module(tmp_path: Path) -> None:
    """ansible starts every local module afresh: fleetkit's shared agent dying between two
    tasks (killed here by a task of another host) must not make the next task UNREACHABLE."""
    tag = f"fk-gone-{os.getpid()}"
    (tmp_path / "hosts").write_text(
        "[fleet]\n"
        "a\n"
        # its own remote tmp: its own agent, whose command line names it
        f"b ansible_remote_tmp={tmp_path}/{tag}\n"
        "[all:vars]\nansible_connection=local\n"
    )
    (tmp_path / "p.yml").write_text(
        "- hosts: fleet\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - ping:\n"
        "    - name: stop b's module agent and wait until it exited\n"
        # until it is a zombie (fleetkit reaps it; nothing is gone for tail --pid before)
        "      shell: pid=$(pgrep -f '[f]k-gone-[0-9]*$') && kill -9 $pid &&"
        " until [ ! -e /proc/$pid ] || grep -q '^State:.Z' /proc/$pid/status; do :; done\n"
        "      when: inventory_hostname == 'a'\n"
        "    - ping:\n"
    )
    got = run_fleetkit(["play", "-i", "hosts", "p.yml"], tmp_path)
    assert got.returncode == 0, got.stdout + got.stderr
    assert "UNREACHABLE" not in got.stdout
    assert "a                          : ok=3    changed=1" in got.stdout, got.stdout
    assert "b                          : ok=2    changed=0" in got.stdout, got.stdout
