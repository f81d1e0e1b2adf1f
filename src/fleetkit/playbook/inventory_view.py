"""``ansible-inventory --list | --graph | --host`` renderings of an :class:`Inventory`."""

from __future__ import annotations

import json
from typing import Any

from fleetkit.playbook.errors import InventoryError
from fleetkit.playbook.inventory import Inventory

__all__ = ["inventory_list", "inventory_graph", "inventory_host", "dumps"]


def _host_vars(inv: Inventory, host: str) -> dict[str, Any]:
    return dict(inv.host_vars(host))


def inventory_list(inv: Inventory) -> dict[str, Any]:
    out: dict[str, Any] = {"_meta": {"hostvars": {}}}
    hostvars: dict[str, Any] = {}
    for h, host in inv.hosts.items():
        if host.implicit:
            continue
        v = _host_vars(inv, h)
        if v:
            hostvars[h] = v
    out["_meta"]["hostvars"] = hostvars
    out["_meta"]["profile"] = "inventory_legacy"
    for name, group in inv.groups.items():
        entry: dict[str, Any] = {}
        if group.children:
            entry["children"] = list(group.children)
        hosts = [h for h in group.hosts if not inv.hosts[h].implicit]
        if hosts and name != "all":
            entry["hosts"] = hosts
        if entry or name == "all":
            out[name] = entry
    return out


def inventory_graph(inv: Inventory, group: str = "all", show_vars: bool = False) -> str:
    if group not in inv.groups:
        raise InventoryError(f"Pattern must be valid group name when using --graph: {group}")
    lines: list[str] = []

    def walk(name: str, depth: int) -> None:
        g = inv.groups[name]
        lines.append("  |" * depth + "--@" + name + ":" if depth else "@" + name + ":")
        for child in g.children:
            walk(child, depth + 1)
        if name == "all":
            return
        for h in g.hosts:
            if not inv.hosts[h].implicit:
                lines.append("  |" * (depth + 1) + "--" + h)

    walk(group, 0)
    return "\n".join(lines)


def inventory_host(inv: Inventory, host: str) -> dict[str, Any]:
    h = inv.hosts.get(host)
    if h is None or h.implicit:
        raise InventoryError(
            f"Could not match supplied host pattern: {host}",
            hint="use a host name exactly as listed by --list",
        )
    return _host_vars(inv, host)


def dumps(data: Any) -> str:
    return json.dumps(data, indent=4, sort_keys=True, default=str, ensure_ascii=False)
