"""``gather_facts`` and ``setup``: ansible's real setup module on the host, shaped as ansible's
gather_facts action returns it."""

from __future__ import annotations

from typing import Any

from fleetkit.playbook.modules import Module, ModuleContext
from fleetkit.playbook.modules.upstream import run_module

__all__ = ["MODULES", "run_gather_facts"]


def run_gather_facts(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """Run ``ansible.legacy.setup`` with the task's arguments; keep facts, warnings, failures."""
    mod_args = {k: v for k, v in args.items() if v is not None and k != "parallel"}
    res = run_module(ctx, "ansible.legacy.setup", mod_args, module_name="ansible.legacy.setup")
    if res.get("failed"):
        msg = "The following modules failed to execute: ansible.legacy.setup."
        return {
            "failed": True,
            "changed": False,
            "msg": msg,
            "failed_modules": {"ansible.legacy.setup": res},
            "ansible_facts": {},
            "_ansible_verbose_override": True,
        }
    out: dict[str, Any] = {"ansible_facts": dict(res.get("ansible_facts") or {})}
    # ansible's gather_facts action marks the facts as gathered (the setup module does not)
    out["ansible_facts"]["_ansible_facts_gathered"] = True
    for key in ("warnings", "deprecations"):
        if res.get(key):
            out[key] = res[key]
    if res.get("skipped"):
        out["skipped"] = True
        out["msg"] = "The following modules were skipped: ansible.legacy.setup."
    out["_ansible_verbose_override"] = True
    return out


def run_setup(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """The ``setup`` task: the module's own result (ansible's normal action)."""
    return run_module(ctx, "ansible.legacy.setup", args, module_name=ctx.action or "setup")


MODULES = (
    Module("gather_facts", run_gather_facts, None),
    Module("setup", run_setup, None),
)
