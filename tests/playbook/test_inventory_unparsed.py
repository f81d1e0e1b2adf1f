"""INI value typing, bad YAML host names and unparsed sources: ansible-inventory vs fleetkit."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.playbook._harness import ansible_env, ansible_tool, run_fleetkit

INI_TYPES = """[local]
h1 v_host_complex=1j v_host_tuple=(1,)

[all:vars]
value_complex=1j
value_ellipsis=...
value_tuple=(1, 2)
value_set={1, 2}
value_empty_set=set()
value_dict={"a": (1, ...)}
value_list_with_fallbacks=[..., 1j, set(), {1, 2}]
value_invalid_decimal_literal=host-01.internal
value_none=None
"""


def _both(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    theirs = subprocess.run(
        [ansible_tool("ansible-inventory"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**ansible_env(), **(env or {})},
        timeout=120,
        check=False,
    )
    ours = run_fleetkit(["inventory", *args], cwd, env=env)
    return theirs, ours


def test_ini_values_are_typed_as_ansible_and_quietly(tmp_path: Path) -> None:
    (tmp_path / "inv.ini").write_text(INI_TYPES)
    theirs, ours = _both(["-i", "inv.ini", "--list"], tmp_path)
    assert theirs.returncode == ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert '"value_complex": "1j"' in ours.stdout
    assert "SyntaxWarning" not in ours.stderr


def test_ini_bytes_values_are_text(tmp_path: Path) -> None:
    # (ansible-inventory prints these as {"__ansible_unsafe": ...}; playbooks see the text)
    (tmp_path / "inv.ini").write_text("h1 b1=b'single' b2=[b'x', 1]\n")
    (tmp_path / "pb.yml").write_text(
        "- hosts: h1\n  gather_facts: false\n  tasks:\n"
        "    - assert:\n        that: [\"b1 == 'single'\", \"b2 == ['x', 1]\"]\n"
    )
    p = run_fleetkit(["play", "-i", "inv.ini", "pb.yml", "-c", "local"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr


def test_yaml_int_host_name_is_a_failed_parse_as_ansible(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text(
        "all:\n  children:\n    kids:\n      hosts:\n        1234: {}\n"
    )
    theirs, ours = _both(["-i", "inv.yml", "--list"], tmp_path)
    assert theirs.returncode == ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert "Host pattern 1234 must be a string. Enclose integers/floats in quotation marks." in (
        ours.stderr
    )
    assert "Invalid host pattern 'all:' supplied, ending in ':' is not allowed" in ours.stderr
    assert f"Unable to parse {tmp_path / 'inv.yml'} as an inventory source" in ours.stderr


def test_any_unparsed_is_failed(tmp_path: Path) -> None:
    (tmp_path / "good.ini").write_text("[g]\nh1\n")
    env = {"ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "true"}
    args = ["-i", "good.ini", "-i", "nope.ini", "--list"]
    theirs, ours = _both(args, tmp_path, env)
    assert theirs.returncode != 0 and ours.returncode != 0
    assert f"Completely failed to parse inventory source {tmp_path / 'nope.ini'}" in ours.stderr
    theirs, ours = _both(args, tmp_path)
    assert theirs.returncode == ours.returncode == 0
    assert ours.stdout == theirs.stdout


def test_no_inventory_runs_against_the_implicit_localhost(tmp_path: Path) -> None:
    (tmp_path / "pb.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=all\n"
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        '    - debug: msg="{{ ansible_connection }} {{ groups }}"\n'
    )
    env = {"ANSIBLE_INVENTORY": str(tmp_path / "absent"), "ANSIBLE_LOCALHOST_WARNING": "true"}
    ours = run_fleetkit(["play", "pb.yml"], tmp_path, env=env)
    theirs = subprocess.run(
        [ansible_tool("ansible-playbook"), "pb.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**ansible_env(), **env},
        timeout=120,
        check=False,
    )
    assert theirs.returncode == ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert "provided hosts list is empty, only localhost is available" in ours.stderr
    assert "Could not match supplied host pattern" not in ours.stderr


def test_unparsed_directory_warns_as_ansible(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.yml").write_text("a: [1,\n")
    for d in ("empty", "bad"):
        theirs, ours = _both(["-i", d, "--list"], tmp_path)
        assert theirs.returncode == ours.returncode == 0, ours.stderr
        assert ours.stdout == theirs.stdout
        assert f"[WARNING]: Unable to parse {tmp_path / d} as an inventory source" in ours.stderr
