"""``async_status``: the status, result or cleanup of a ``poll: 0`` job (controller side)."""

from __future__ import annotations

from typing import Any

from fleetkit.playbook.jobs import cleanup_job, job_status
from fleetkit.playbook.modules import Module, ModuleContext, Param

__all__ = ["MODULES"]


def run_async_status(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """Report on job ``jid`` of this host, or erase it with ``mode: cleanup``."""
    jid = str(args["jid"])
    if args.get("mode") == "cleanup":
        return cleanup_job(ctx.host, jid)
    return job_status(ctx.host, jid)


MODULES = (
    Module(
        "async_status",
        run_async_status,
        {
            "jid": Param(required=True),
            "mode": Param(default="status", choices=("status", "cleanup")),
        },
        controller=True,
    ),
)
