"""``add_host`` and ``group_by``: controller actions that describe an inventory change.

As ansible's action plugins, they only return what to change (``add_host`` /
``add_group`` + ``parent_groups``); the strategy applies it to the in-memory inventory
(:func:`fleetkit.playbook.strategies.inventory_changes.apply_inventory_changes`) and sets
``changed`` from whether the inventory really changed. ``add_host`` bypasses the host loop: it
runs once, for the first host of the batch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fleetkit.playbook.modules import Module, ModuleContext

__all__ = ["MODULES", "parse_address"]

_BRACKETED = re.compile(r"^\[(?P<host>[^\]]+)\](?::(?P<port>\d+))?$")
_HOST_PORT = re.compile(r"^(?P<host>[^:\[\]]+):(?P<port>\d+)$")
_SPECIAL = frozenset(("name", "hostname", "groupname", "groups"))


def parse_address(address: str) -> tuple[str, int | None]:
    """``host:port`` / ``[v6addr]:port`` -> (host, port); anything else is a bare name."""
    for pattern in (_BRACKETED, _HOST_PORT):
        m = pattern.match(address)
        if m:
            port = m.group("port")
            return m.group("host"), int(port) if port else None
    return address, None


def _action_fail(msg: str) -> dict[str, Any]:
    """What an action plugin's AnsibleActionFail shows: "Task failed: <msg>"."""
    return {"failed": True, "changed": False, "msg": msg, "_fk_error": f"Task failed: {msg}"}


def run_add_host(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """ansible's add_host action: the host, its groups and its variables, as ``add_host``."""
    args = {k: v for k, v in args.items() if not k.startswith("_ansible_")}
    raw = args.pop("_raw_params", {})
    if not isinstance(raw, Mapping):
        return _action_fail(
            f"Invalid raw parameters passed, requires a dictionary/mapping got a  {type(raw)}"
        )
    args = {**raw, **args}
    new_name = args.get("name", args.get("hostname", args.get("host")))
    if new_name is None:
        return _action_fail("name, host or hostname needs to be provided")
    name, port = parse_address(str(new_name))
    if port:
        args["ansible_ssh_port"] = port
    groups = args.get("groupname", args.get("groups", args.get("group", "")))
    new_groups: list[str] = []
    if groups:
        if isinstance(groups, list):
            group_list = groups
        elif isinstance(groups, str):
            group_list = groups.split(",")
        else:
            return _action_fail("Groups must be specified as a list.")
        for group in group_list:
            if group not in new_groups:
                new_groups.append(str(group).strip())
    host_vars = {k: v for k, v in args.items() if k not in _SPECIAL}
    return {
        "changed": False,
        "add_host": {"host_name": name, "groups": new_groups, "host_vars": host_vars},
    }


def run_group_by(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """ansible's group_by action: the group named by ``key`` (spaces -> '-'), its parents."""
    bad = [k for k in args if k not in ("key", "parents") and not k.startswith("_ansible_")]
    if bad:
        return _action_fail(f"Invalid options for group_by: {','.join(bad)}")
    if "key" not in args or args["key"] is None:
        return {
            "failed": True,
            "changed": False,
            "msg": "the 'key' param is required when using group_by",
        }
    parents = args.get("parents")
    if parents is None:
        parents = ["all"]
    elif isinstance(parents, str):
        parents = [parents]
    return {
        "changed": False,
        "add_group": str(args["key"]).replace(" ", "-"),
        "parent_groups": [str(p).replace(" ", "-") for p in parents],
    }


MODULES = (
    Module("add_host", run_add_host, None, controller=True, run_once=True),
    Module("group_by", run_group_by, None, controller=True),
)
