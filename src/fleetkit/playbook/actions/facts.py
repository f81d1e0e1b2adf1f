"""``gather_facts`` and ``setup``: ansible's real setup module on the host, shaped as ansible's
gather_facts action returns it."""

from __future__ import annotations

import threading
from typing import Any

from fleetkit.playbook import messages
from fleetkit.playbook.errors import ModuleError
from fleetkit.playbook.modules import Module, ModuleContext
from fleetkit.playbook.modules.upstream import run_module

__all__ = ["MODULES", "CONNECTION_FACTS_MODULES", "facts_modules", "run_gather_facts"]

# ansible's CONNECTION_FACTS_MODULES: a network OS's facts module
CONNECTION_FACTS_MODULES: dict[str, str] = {
    short: fq
    for os_name, coll in (
        ("asa", "cisco.asa"), ("eos", "arista.eos"), ("frr", "frr.frr"), ("ios", "cisco.ios"),
        ("iosxr", "cisco.iosxr"), ("junos", "junipernetworks.junos"), ("nxos", "cisco.nxos"),
        ("vyos", "vyos.vyos"), ("exos", "extreme.exos"), ("slxos", "extreme.slxos"),
        ("voss", "extreme.voss"), ("ironware", "community.network"),
    )
    for short, fq in (
        (os_name, f"ansible.legacy.{os_name}_facts"),
        (f"{coll}.{os_name}", f"{coll}.{os_name}_facts"),
    )
}  # fmt: skip


_SETUP = frozenset({"setup", "ansible.builtin.setup", "ansible.legacy.setup"})


def facts_modules(ctx: ModuleContext) -> list[str]:
    """The fact modules a ``gather_facts`` runs: the ``ansible_facts_modules`` variable, else
    ansible.cfg's ``facts_modules`` / ``ANSIBLE_FACTS_MODULES`` (ansible's FACTS_MODULES)."""
    raw = ctx.variables.get("ansible_facts_modules")
    if raw is None:
        raw = ctx.config.get("facts_modules", ["smart"])
    if isinstance(raw, str):
        raw = [x.strip() for x in raw.split(",")]
    if not isinstance(raw, list):
        raise ModuleError(f"Invalid type for configuration option FACTS_MODULES: {raw!r}")
    return [str(m) for m in raw]


def _handle_smart(modules: list[str], ctx: ModuleContext, args: dict[str, Any]) -> None:
    """ansible's ``smart``: the network OS's facts module, else the setup module."""
    if "smart" not in modules:
        return
    modules.remove("smart")
    facts = ctx.variables.get("ansible_facts") or {}
    network_os = args.get(
        "network_os",
        ctx.variables.get(
            "ansible_network_os", facts.get("network_os") if isinstance(facts, dict) else None
        ),
    )
    if network_os:
        if network_os in CONNECTION_FACTS_MODULES:
            modules.append(CONNECTION_FACTS_MODULES[str(network_os)])
        elif not modules:
            raise ModuleError(
                "No fact modules available and we could not find a fact module for your "
                f"network OS ({network_os}), try setting one via the `FACTS_MODULES` "
                "configuration."
            )
        if set(modules) & _SETUP:
            messages.warning(
                "Detected 'setup' module and a network OS is set, the output when running it "
                "will reflect 'localhost' and not the target when a networking connection "
                "plugin is used.",
            )
    elif not set(modules) & _SETUP:
        modules.append("ansible.legacy.setup")


def _module_args(module: str, args: dict[str, Any], ctx: ModuleContext) -> dict[str, Any]:
    """The task's arguments as ansible's gather_facts passes them to ``module``: the setup
    module gets them all; another module (fleetkit has no network connection plugins) loses
    gather_subset, gather_timeout and filter, with ansible's warnings."""
    mod_args = dict(args)
    if module not in _SETUP:
        subset = mod_args.pop("gather_subset", None)
        if subset not in ("all", ["all"], None):
            messages.warning(f"Not passing subset({_py(subset)}) to {module}")
        timeout = mod_args.pop("gather_timeout", None)
        if timeout is not None:
            messages.warning(f"Not passing timeout({_py(timeout)}) to {module}")
        fact_filter = mod_args.pop("filter", None)
        if fact_filter is not None:
            messages.warning(f"Not passing filter({_py(fact_filter)}) to {module}")
    return {k: v for k, v in mod_args.items() if v is not None}


def _py(value: Any) -> str:
    """``%s`` of a value as ansible's Python shows it (lists with their quotes)."""
    return str(value) if isinstance(value, str) else repr(value)


_warm_lock = threading.Lock()
_warm_started = False


def _warm(first: str, restricted: bool) -> None:
    """What the controller needs for the first facts that come back (ansible's merge_hash and
    clean_facts' lists: ~0.3 CPU-s of imports), read while the first hosts gather them."""
    from fleetkit.playbook import factcache
    from fleetkit.playbook.modules._finder import find

    try:
        find(first)  # waits for the thread reading the payload instead of competing with it
        from ansible.utils.vars import merge_hash  # noqa: F401

        if restricted:
            factcache._restricted_names()
    except Exception:  # noqa: BLE001, S110
        pass  # only a head start: the result's own path reads them again and reports


def _warm_once(ctx: ModuleContext, first: str) -> None:
    global _warm_started
    with _warm_lock:
        if _warm_started:
            return
        _warm_started = True
    restricted = bool(ctx.config.get("inject_facts_as_vars", True))
    threading.Thread(target=_warm, args=(first, restricted), name="fleetkit-facts-warm").start()


def run_gather_facts(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """ansible's gather_facts action: each fact module in turn (``facts_modules``), their
    facts deep-merged (later modules win, lists appended), failures and skips reported."""
    args = dict(args)
    modules = facts_modules(ctx)
    _handle_smart(modules, ctx, args)
    if modules:
        _warm_once(ctx, modules[0])
    # parallel (ansible's async jobs) changes how long it takes, not the merged result: the
    # modules run one after the other, merged in their order
    args.pop("parallel", None)
    result: dict[str, Any] = {"ansible_facts": {}}
    failed: dict[str, Any] = {}
    skipped: dict[str, Any] = {}
    for module in modules:
        res = run_module(ctx, module, _module_args(module, args, ctx), module_name=module)
        if res.get("failed"):
            failed[module] = res
        elif res.get("skipped"):
            skipped[module] = res
        else:
            from ansible.utils.vars import merge_hash

            part = {
                "ansible_facts": res.get("ansible_facts") or {},
                "warnings": res.get("warnings") or [],
                "deprecations": res.get("deprecations") or [],
            }
            result = merge_hash(result, part, list_merge="append_rp")
    out: dict[str, Any] = {"ansible_facts": dict(result.get("ansible_facts") or {})}
    for key in ("warnings", "deprecations"):
        if result.get(key):
            out[key] = result[key]
    if skipped:
        out["msg"] = f"The following modules were skipped: {', '.join(skipped)}."
        out["skipped_modules"] = skipped
        if len(skipped) == len(modules):
            out["skipped"] = True
    if failed:
        out["failed_modules"] = failed
        out["failed"] = True
        out["msg"] = f"The following modules failed to execute: {', '.join(failed)}."
    # ansible's gather_facts action marks the facts as gathered (the setup module does not;
    # ansible's output never shows the internal key, and failed facts are not kept)
    if not failed:
        out["ansible_facts"]["_ansible_facts_gathered"] = True
    out["_ansible_verbose_override"] = True
    return out


def run_setup(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """The ``setup`` task: the module's own result (ansible's normal action)."""
    return run_module(ctx, "ansible.legacy.setup", args, module_name=ctx.action or "setup")


MODULES = (
    Module("gather_facts", run_gather_facts, None),
    Module("setup", run_setup, None),
)
