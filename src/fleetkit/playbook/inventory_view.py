"""``ansible-inventory --list | --graph | --host`` renderings of an :class:`Inventory`."""

from __future__ import annotations

import json
from typing import Any

import yaml

from fleetkit.playbook.config import ConfigError
from fleetkit.playbook.inventory import Inventory

__all__ = [
    "inventory_list",
    "inventory_yaml",
    "inventory_graph",
    "inventory_host",
    "dumps",
    "dumps_yaml",
]


def _host_vars(inv: Inventory, host: str) -> dict[str, Any]:
    return dict(inv.host_vars(host))


def _available(inv: Inventory, limit: list[str] | None) -> set[str]:
    from fleetkit.playbook.patterns import match_hosts

    hosts = inv.hosts_of("all")
    if limit:
        allowed = set(match_hosts(inv, limit))
        hosts = [h for h in hosts if h in allowed]
    return set(hosts)


def inventory_list(
    inv: Inventory, limit: list[str] | None = None, export: bool = False
) -> dict[str, Any]:
    """``ansible-inventory --list`` (``--export``: direct vars, group vars in the groups)."""
    available = _available(inv, limit)
    out: dict[str, Any] = {}
    seen: set[str] = set()

    def fmt(name: str) -> None:
        group = inv.groups[name]
        entry: dict[str, Any] = {}
        if name != "all":
            entry["hosts"] = [h for h in group.hosts if h in available]
        entry["children"] = list(group.children)
        out[name] = entry
        for child in group.children:
            if child not in seen:
                fmt(child)
                seen.add(child)
        if export:
            entry["vars"] = inv.group_vars(name)
        for key in ("hosts", "vars", "children"):
            if key in entry and not entry[key]:
                del entry[key]
        if not entry:
            del out[name]

    fmt("all")
    hostvars: dict[str, Any] = {}
    for h in inv.hosts_of("all"):
        if h in available:
            v = inv.direct_host_vars(h) if export else _host_vars(inv, h)
            if v:
                hostvars[h] = v
    out["_meta"] = {"hostvars": hostvars, "profile": "inventory_legacy"}
    return out


def inventory_yaml(
    inv: Inventory, limit: list[str] | None = None, export: bool = False
) -> dict[str, Any]:
    """``ansible-inventory --list --yaml``: nested groups, each host's vars given once."""
    available = _available(inv, limit)
    seen_hosts: set[str] = set()
    seen_groups: set[str] = set()

    def fmt(name: str) -> dict[str, Any]:
        group = inv.groups[name]
        entry: dict[str, Any] = {"children": {}}
        for child in group.children:
            if child == "all":
                continue
            if child in seen_groups:
                entry["children"][child] = {}
            else:
                entry["children"].update(fmt(child))
                seen_groups.add(child)
        entry["hosts"] = {}
        if name != "all":
            for h in group.hosts:
                if h not in available:
                    continue
                hv: dict[str, Any] = {}
                if h not in seen_hosts:
                    seen_hosts.add(h)
                    hv = inv.direct_host_vars(h) if export else _host_vars(inv, h)
                entry["hosts"][h] = hv
        if export:
            gv = inv.group_vars(name)
            if gv:
                entry["vars"] = gv
        for key in ("hosts", "vars", "children"):
            if key in entry and not entry[key]:
                del entry[key]
        return {name: entry} if entry else {}

    return fmt("all")


def _show_vars(values: dict[str, Any], depth: int) -> list[str]:
    return ["  |" * depth + f"--{{{k} = {v}}}" for k, v in sorted(values.items())]


def inventory_graph(inv: Inventory, group: str = "all", show_vars: bool = False) -> str:
    """``ansible-inventory --graph [GROUP] [--vars]``."""
    if group not in inv.groups:
        raise ConfigError(
            "Pattern must be valid group name when using --graph",
            hint=f"{group!r} is not a group; see `fleetkit inventory --graph`",
        )
    lines: list[str] = []

    def walk(name: str, depth: int) -> None:
        g = inv.groups[name]
        lines.append("  |" * depth + "--@" + name + ":" if depth else "@" + name + ":")
        for child in g.children:
            walk(child, depth + 1)
        if name != "all":
            for h in g.hosts:
                if not inv.hosts[h].implicit:
                    lines.append("  |" * (depth + 1) + "--" + h)
                    if show_vars:
                        lines.extend(_show_vars(_host_vars(inv, h), depth + 2))
        if show_vars:
            lines.extend(_show_vars(inv.group_vars(name), depth + 1))

    walk(group, 0)
    return "\n".join(lines)


def inventory_host(inv: Inventory, host: str) -> dict[str, Any]:
    h = inv.hosts.get(host)
    if h is None or h.implicit:
        raise ConfigError(
            "You must pass a single valid host to --host parameter",
            hint=f"Could not match supplied host pattern: {host}; use a name --list shows",
        )
    return _host_vars(inv, host)


def _json_default(value: Any) -> Any:
    from fleetkit.playbook.vault import EncryptedString

    if isinstance(value, EncryptedString):
        # ansible-inventory never prints a vaulted value in clear
        return {"__ansible_vault": value.ciphertext}
    return str(value)


def dumps(data: Any) -> str:
    """JSON as ansible-inventory prints it."""
    return json.dumps(data, indent=4, sort_keys=True, default=_json_default, ensure_ascii=False)


class _Vaulted(str):
    """Ciphertext to print under ``!vault``."""


class _Dumper(yaml.SafeDumper):
    pass


def _represent_vaulted(dumper: yaml.SafeDumper, value: _Vaulted) -> yaml.Node:
    return dumper.represent_scalar("!vault", str(value), style="|")


_Dumper.add_representer(_Vaulted, _represent_vaulted)


def dumps_yaml(data: Any) -> str:
    """YAML as ansible-inventory ``--yaml`` prints it (block style, sorted keys)."""
    text: str = yaml.dump(
        _plain(data), Dumper=_Dumper, default_flow_style=False, allow_unicode=True, sort_keys=True
    )
    return text.rstrip("\n")


def _plain(data: Any) -> Any:
    from fleetkit.playbook.vault import EncryptedString

    if isinstance(data, EncryptedString):
        return _Vaulted(data.ciphertext)
    if isinstance(data, dict):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(v) for v in data]
    if isinstance(data, str):
        return str(data)
    return data
