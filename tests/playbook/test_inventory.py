"""Inventory parsing, patterns and `fleetkit inventory` against ansible-inventory/ansible."""

from __future__ import annotations

import json
import subprocess

import pytest

from fleetkit.playbook.inventory import expand_hostname_range, load_inventory
from fleetkit.playbook.patterns import apply_order, match_hosts
from fleetkit.playbook.strategies import exceeds_max_fail, serial_batches
from tests.playbook._harness import FIXTURES, ansible_env, ansible_tool, run_fleetkit


@pytest.mark.parametrize(
    ("inventory", "mode"),
    [
        (inv, mode)
        for inv in ("inventory.ini", "inventory.yml", "unreachable.ini")
        for mode in (["--list"], ["--graph"])
    ]
    + [
        ("inventory.ini", ["--host", "web02"]),
        ("inventory.ini", ["--host", "Db1"]),
        ("inventory.yml", ["--host", "b2"]),
        ("inventory.yml", ["--host", "lb1"]),
        ("inventory.ini", ["--graph", "dc1"]),
    ],
)
def test_inventory_matches_ansible_inventory(inventory: str, mode: list[str]) -> None:
    exe = ansible_tool("ansible-inventory")
    want = subprocess.run(
        [exe, "-i", inventory, *mode],
        cwd=FIXTURES,
        capture_output=True,
        text=True,
        timeout=120,
        env=ansible_env(),
        check=False,
    )
    got = run_fleetkit(["inventory", "-i", inventory, *mode], FIXTURES)
    assert got.returncode == want.returncode == 0, got.stderr
    if mode[0] == "--graph":
        assert got.stdout == want.stdout
    else:
        assert json.loads(got.stdout) == json.loads(want.stdout)


PATTERNS = [
    "all",
    "web",
    "web:db",
    "web,db",
    "dc1:&web",
    "dc1:!web02",
    "!web",
    "web0*",
    "~web0[12]",
    "web[0]",
    "web[1:]",
    "web[-1]",
    "dc1:!db:&web",
    "lone",
    "*b*",
    "ungrouped",
    "db-b:web01",
]


def test_patterns_match_ansible_list_hosts() -> None:
    exe = ansible_tool("ansible")
    inv = load_inventory([str(FIXTURES / "inventory.ini")])
    for pattern in PATTERNS:
        proc = subprocess.run(
            [exe, "-i", "inventory.ini", pattern, "--list-hosts"],
            cwd=FIXTURES,
            capture_output=True,
            text=True,
            timeout=120,
            env=ansible_env(),
            check=False,
        )
        want = [line.strip() for line in proc.stdout.splitlines()[1:] if line.strip()]
        assert match_hosts(inv, pattern) == want, pattern


def test_ranges() -> None:
    assert expand_hostname_range("web[01:03]") == ["web01", "web02", "web03"]
    assert expand_hostname_range("n[a:c]x") == ["nax", "nbx", "ncx"]
    assert expand_hostname_range("h[1:9:4]") == ["h1", "h5", "h9"]
    assert expand_hostname_range("plain") == ["plain"]


def test_vars_precedence_and_depth() -> None:
    inv = load_inventory([str(FIXTURES / "inventory.ini")])
    # dc1:vars (depth 1) < group_vars/web.yml (file, depth 2) < host_vars/web02.yml
    assert inv.host_vars("web01")["weight"] == 5
    assert inv.host_vars("web02")["weight"] == 9
    assert inv.host_vars("db-b")["weight"] == 3
    assert inv.host_vars("web10")["tier"] == "gold"
    assert inv.host_vars("Db1")["port_no"] == 5432


def test_order_values() -> None:
    hosts = ["web10", "web9", "Db1", "db-b"]
    assert apply_order(hosts, "sorted") == ["Db1", "db-b", "web10", "web9"]
    assert apply_order(hosts, "reverse_sorted") == ["web9", "web10", "db-b", "Db1"]
    assert apply_order(hosts, "reverse_inventory") == hosts[::-1]
    assert apply_order(hosts, "shuffle", 7) == apply_order(hosts, "shuffle", 7)
    assert sorted(apply_order(hosts, "shuffle", 7)) == sorted(hosts)


def test_serial_batches() -> None:
    hosts = [f"h{i}" for i in range(7)]
    assert [len(b) for b in serial_batches(hosts, [1, 2, "50%"])] == [1, 2, 3, 1]
    assert [len(b) for b in serial_batches(hosts, ["10%"])] == [1] * 7
    assert [len(b) for b in serial_batches(hosts, [0])] == [7]
    assert [len(b) for b in serial_batches(hosts, [-3])] == [7]
    assert [len(b) for b in serial_batches(hosts, [])] == [7]
    assert not exceeds_max_fail(1, 4, 25)
    assert exceeds_max_fail(2, 4, 25)
