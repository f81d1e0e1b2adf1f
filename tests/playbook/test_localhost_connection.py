"""Implicit vs explicit localhost (ansible-core 2.19): the implicit one is local, a localhost
named in the inventory connects like any host (ssh) unless its ansible_connection says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.playbook._harness import parse, run_ansible, run_fleetkit

PLAYBOOK = "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - command: echo hi\n"


@pytest.mark.parametrize(
    "inventory,status",
    [
        ("[g]\nother ansible_connection=local\n", "changed"),
        ("localhost ansible_port=1 ansible_host_key_checking=false\n", "unreachable"),
        ("localhost ansible_connection=local\n", "changed"),
    ],
    ids=["implicit", "explicit-ssh", "explicit-local"],
)
def test_localhost_connection_as_ansible(tmp_path: Path, inventory: str, status: str) -> None:
    (tmp_path / "inv.ini").write_text(inventory)
    (tmp_path / "pb.yml").write_text(PLAYBOOK)
    args = ["-i", "inv.ini", "pb.yml"]
    theirs = parse(run_ansible(args, tmp_path).stdout)
    ours = parse(run_fleetkit(["play", *args], tmp_path, timeout=60).stdout)
    assert [e[:3] for e in ours[0]] == [e[:3] for e in theirs[0]]
    assert ours[0][1][0] == status
    assert ours[1] == theirs[1]
