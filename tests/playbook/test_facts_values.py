"""ansible's setup module on fleetkit's agent gives ansible's fact values, not only its keys:
differential against ansible-playbook on localhost (mounts and their options, devices, LVM,
interfaces, distribution, ...), and the agent's spawn shortcut (no ``preexec_fn`` where
ansible's run_command passes one that does nothing) keeps every other spawn as it was."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.playbook._harness import run_ansible, run_fleetkit

PLAYBOOK = """- hosts: localhost
  gather_facts: true
  tasks:
    - copy:
        content: "{{ ansible_facts | to_json }}"
        dest: "{{ out }}/facts.json"
"""

# what changes between two runs a second apart (clock, free memory, usage of mounted file
# systems) or between the two tools' own processes (the environment they run with)
VOLATILE = {"date_time", "uptime_seconds", "memfree_mb", "memory_mb", "loadavg", "env"}
MOUNT_USAGE = {
    "size_available", "size_used", "block_available", "block_used", "inode_available",
    "inode_used",
}  # fmt: skip


def _stable(facts: dict[str, Any]) -> dict[str, Any]:
    # other processes add and remove interfaces (veths of network namespaces) between the two
    # runs: the loopback and the default route's interface are compared, not the others
    default = (facts.get("default_ipv4") or {}).get("interface")
    churn = {i for i in facts.get("interfaces", []) if i not in ("lo", default)}
    churn |= {"interfaces", "all_ipv4_addresses", "all_ipv6_addresses"}
    out = {k: v for k, v in facts.items() if k not in VOLATILE | churn}
    # setup lists a mount when its statvfs thread is seen done: a thread still running at the
    # first look comes after the others (ansible's order varies with timing too)
    mounts = [{k: v for k, v in m.items() if k not in MOUNT_USAGE} for m in facts["mounts"]]
    out["mounts"] = sorted(mounts, key=lambda m: (m["mount"], m["device"]))
    for key in ("virtualization_tech_guest", "virtualization_tech_host"):
        # python sets made lists: their order follows the process's string hash seed
        out[key] = sorted(facts.get(key) or [])
    return out


@pytest.mark.interop
def test_setup_fact_values_same_as_ansible(tmp_path: Path) -> None:
    (tmp_path / "pb.yml").write_text(PLAYBOOK)
    (tmp_path / "hosts").write_text("localhost ansible_connection=local\n")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    want = run_ansible(["-i", "hosts", "pb.yml", "-e", f"out={a}"], tmp_path)
    got = run_fleetkit(["play", "-i", "hosts", "pb.yml", "-e", f"out={b}"], tmp_path)
    assert want.returncode == 0, want.stdout + want.stderr
    assert got.returncode == 0, got.stdout + got.stderr
    wfacts = json.loads((a / "facts.json").read_text())
    gfacts = json.loads((b / "facts.json").read_text())
    assert len(wfacts) > 100 and wfacts.get("mounts")
    ws, gs = _stable(wfacts), _stable(gfacts)
    assert "lo" in ws and ws.get("distribution") and ws.get("processor")
    assert [k for k in sorted(set(ws) | set(gs)) if ws.get(k) != gs.get(k)] == []


_SPAWNS = r"""
import json, os, subprocess, sys
from ansible.module_utils import basic
from fleetkit.playbook.connection import _module_agent

basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": {}}).encode()
basic._ANSIBLE_PROFILE = "legacy"
module = basic.AnsibleModule(argument_spec={})
seen = []
init = subprocess.Popen.__init__

def record(self, *args, **kwargs):
    seen.append(kwargs.get("preexec_fn") is not None)
    init(self, *args, **kwargs)

subprocess.Popen.__init__ = record
_module_agent._cheap_spawn()
os.umask(0o022)
plain = module.run_command(["/bin/sh", "-c", "umask"])
masked = module.run_command(["/bin/sh", "-c", "umask"], umask=0o077)
own = subprocess.run(["/bin/sh", "-c", "umask"], preexec_fn=lambda: os.umask(0o027),
                     capture_output=True, text=True)
print(json.dumps({"seen": seen, "out": [plain[1], masked[1], own.stdout]}))
"""


def test_agent_drops_only_a_preexec_fn_that_does_nothing(tmp_path: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-c", _SPAWNS], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.strip().splitlines()[-1])
    # run_command without umask: no preexec_fn (vfork); with umask, and any other caller's
    # preexec_fn: kept, and it still takes effect
    assert got["seen"] == [False, True, True]
    assert got["out"] == ["0022\n", "0077\n", "0027\n"]
