"""``service``, ``uri``, ``unarchive`` and ``async_status``: ansible's action plugins for them,
which choose the module (service manager) or move controller files first, then run ansible's
real module under its ``ansible.legacy`` name (the name its messages carry)."""

from __future__ import annotations

import os
from typing import Any

from fleetkit.playbook.actions.files import ActionFail, Remote, find_needle, remote_stat
from fleetkit.playbook.modules import Module, ModuleContext
from fleetkit.playbook.modules._finder import resolve
from fleetkit.playbook.modules.upstream import run_module

__all__ = ["MODULES"]

_UNUSED_PARAMS = {"systemd": ("pattern", "runlevel", "sleep", "arguments", "args")}
_BUILTIN_SVC_MGRS = frozenset({"openwrt_init", "service", "systemd", "sysvinit"})


def _fail(msg: str) -> dict[str, Any]:
    return {"failed": True, "changed": False, "msg": msg, "_fk_action_failed": True}


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("yes", "on", "1", "true", "y", "t")


def run_service(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """ansible's service action: the host's ``service_mgr`` picks systemd/sysvinit/..."""
    module = str(args.get("use", "auto")).lower()
    if module == "auto":
        facts = ctx.variables.get("ansible_facts")
        if isinstance(facts, dict) and facts.get("service_mgr"):
            module = str(facts["service_mgr"])
    if module == "auto":
        res = run_module(
            ctx,
            "ansible.legacy.setup",
            {"gather_subset": "!all", "filter": "ansible_service_mgr"},
            module_name="ansible.legacy.setup",
        )
        module = str((res.get("ansible_facts") or {}).get("ansible_service_mgr", "auto"))
    if not module or module == "auto" or resolve(module) is None:
        module = "ansible.legacy.service"
    new_args = {k: v for k, v in args.items() if k != "use"}
    warnings = []
    for unused in _UNUSED_PARAMS.get(module, ()):
        if unused in new_args:
            del new_args[unused]
            warnings.append(f'Ignoring "{unused}" as it is not used in "{module}"')
    if module in _BUILTIN_SVC_MGRS:
        module = "ansible.legacy." + module
    result = run_module(ctx, module, new_args, module_name=module)
    if warnings:
        result["warnings"] = warnings + list(result.get("warnings") or [])
    return result


def run_uri(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """ansible's uri action: a controller ``src`` (or multipart file) is shipped first."""
    if _bool(args.get("remote_src", False)):
        return run_module(ctx, "ansible.legacy.uri", args, module_name="ansible.legacy.uri")
    remote = Remote(ctx)
    try:
        extra: dict[str, Any] = {}
        src = args.get("src")
        body = args.get("body")
        if src:
            path = find_needle(ctx, "files", str(src))
            extra["src"] = remote.put(path, os.path.basename(path))
        elif args.get("body_format") == "form-multipart":
            if not isinstance(body, dict):
                return _fail(f"body must be mapping, cannot be type {type(body).__name__}")
            body = {k: (dict(v) if isinstance(v, dict) else v) for k, v in body.items()}
            for value in body.values():
                if not isinstance(value, dict) or not value.get("filename"):
                    continue
                if value.get("content"):
                    continue
                path = find_needle(ctx, "files", str(value["filename"]))
                value["filename"] = remote.put(path, os.path.basename(path))
            extra["body"] = body
        return run_module(
            ctx, "ansible.legacy.uri", {**args, **extra}, module_name="ansible.legacy.uri"
        )
    except ActionFail as exc:
        return _fail(str(exc))
    finally:
        remote.cleanup()


def run_unarchive(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """ansible's unarchive action: a controller archive is shipped, then the real module."""
    args = dict(args)
    source = args.get("src")
    dest = args.get("dest")
    remote_src = _bool(args.get("remote_src", False))
    if "copy" in args:
        if "remote_src" in args:
            return _fail("parameters are mutually exclusive: ('copy', 'remote_src')")
        remote_src = not _bool(args.pop("copy"))
        args["remote_src"] = remote_src
    if source is None or dest is None:
        return _fail("src (or content) and dest are required")
    remote = Remote(ctx)
    try:
        creates = args.get("creates")
        if creates and remote_stat(ctx, str(creates), True, False).get("exists"):
            return {"changed": False, "skipped": True, "msg": f"skipped, since {creates} exists"}
        if not remote_src:
            if "://" in str(source):
                return _fail(
                    f"Unsupported option, an URI src ({source}) is only supported when "
                    "remote_src is True"
                )
            source = find_needle(ctx, "files", os.path.expanduser(str(source)))
        st = remote_stat(ctx, str(dest), True, True)
        if not st.get("exists") or not st.get("isdir"):
            return _fail(f"dest '{dest}' must be an existing dir")
        new_args = {k: v for k, v in args.items() if k != "decrypt"}
        if not remote_src:
            new_args["src"] = remote.put(str(source), "source")
        return run_module(
            ctx, "ansible.legacy.unarchive", new_args, module_name="ansible.legacy.unarchive"
        )
    except ActionFail as exc:
        return _fail(str(exc))
    finally:
        remote.cleanup()


MODULES = (
    Module("service", run_service, None),
    Module("uri", run_uri, None),
    Module("unarchive", run_unarchive, None),
)
