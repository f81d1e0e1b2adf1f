"""``wait_for``: a port or a file reaching a state, from the target."""

from __future__ import annotations

from typing import Any

from fleetkit.playbook.modules import Module, ModuleContext, Param, _wait_for_impl
from fleetkit.playbook.modules.uri import run_remote_script

__all__ = ["MODULES"]

_SPEC = {
    "host": Param("str", "127.0.0.1"),
    "port": Param("int"),
    "path": Param("str"),
    "state": Param(
        "str", "started", choices=("absent", "drained", "present", "started", "stopped")
    ),
    "delay": Param("int", 0),
    "timeout": Param("int", 300),
    "sleep": Param("int", 1),
    "connect_timeout": Param("int", 5),
    "search_regex": Param("str"),
    "msg": Param("str"),
    "exclude_hosts": Param("list"),
    "active_connection_states": Param("list"),
}


def run_wait_for(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    if ctx.conn.local:
        return _wait_for_impl.main(args)
    return run_remote_script(ctx, _wait_for_impl.__file__, args)


MODULES = (Module("wait_for", run_wait_for, _SPEC),)
