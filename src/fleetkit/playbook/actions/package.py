"""``package``: ansible's package action. The manager comes from ``use``,
``ansible_package_use`` or the host's ``pkg_mgr`` fact (gathered with a small setup run when
facts are missing); then the real ``apt``/``dnf``/``yum``/... module runs. A host without a
known manager fails as ansible fails."""

from __future__ import annotations

from typing import Any

from fleetkit.playbook.modules import Module, ModuleContext
from fleetkit.playbook.modules._finder import resolve
from fleetkit.playbook.modules.upstream import run_module

__all__ = ["MODULES"]

# ansible.module_utils.facts.system.pkg_mgr's PKG_MGRS names: builtin managers run as legacy
_BUILTIN_MANAGERS = frozenset(
    {
        "yum", "dnf", "dnf5", "apt", "zypper", "pacman", "apk", "pkgng", "pkgin", "portage",
        "pkg5", "openbsd_pkg", "urpmi", "swdepot", "xbps", "swupd", "installp", "sorcery",
        "pkgutil", "homebrew", "macports", "opkg", "mas", "emerge", "pkg",
    }
)  # fmt: skip


def _fail(msg: str, **extra: Any) -> dict[str, Any]:
    return {"failed": True, "changed": False, "msg": msg, "_fk_action_failed": True, **extra}


def run_package(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """Pick the package manager as ansible's package action does and run its real module."""
    module = str(args.get("use") or "auto")
    if module == "auto":
        module = str(ctx.variables.get("ansible_package_use") or "")
        if not module:
            facts = ctx.variables.get("ansible_facts")
            pkg_mgr = facts.get("pkg_mgr") if isinstance(facts, dict) else None
            if not pkg_mgr:
                res = run_module(
                    ctx,
                    "ansible.legacy.setup",
                    {"filter": "ansible_pkg_mgr", "gather_subset": "!all"},
                    module_name="ansible.legacy.setup",
                )
                if res.get("failed"):
                    return _fail(
                        "Failed to fetch ansible_pkg_mgr to determine the package action "
                        f"backend: {res.get('msg')}"
                    )
                pkg_mgr = (res.get("ansible_facts") or {}).get("ansible_pkg_mgr")
                if pkg_mgr is None:
                    return _fail('Could not detect a package manager. Try using the "use" option.')
            module = str(pkg_mgr)
    if not module or module == "auto":
        return _fail(
            "Could not detect which package manager to use. Try gathering facts or setting "
            'the "use" option.'
        )
    if resolve(module) is None:
        return _fail(f'Could not find a matching action for the "{module}" package manager.')
    new_args = {k: v for k, v in args.items() if k != "use"}
    if module in _BUILTIN_MANAGERS:
        module = "ansible.legacy." + module
    return run_module(ctx, module, new_args, module_name=module)


_DNF_BACKENDS = frozenset({"yum", "yum4", "dnf", "dnf4", "dnf5"})


def run_dnf(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """ansible's dnf action (also ``yum``): pick the dnf4/dnf5 backend, run its real module."""
    if "use" in args and "use_backend" in args:
        return _fail("parameters are mutually exclusive: ('use', 'use_backend')")
    module = str(args.get("use", args.get("use_backend", "auto")))
    result: dict[str, Any] = {}
    if module in ("yum", "auto"):
        facts = ctx.variables.get("ansible_facts")
        if isinstance(facts, dict) and facts.get("pkg_mgr"):
            module = str(facts["pkg_mgr"])
    if module not in _DNF_BACKENDS:
        res = run_module(
            ctx,
            "ansible.legacy.setup",
            {"filter": "ansible_pkg_mgr", "gather_subset": "!all"},
            module_name="ansible.legacy.setup",
        )
        if res.get("failed"):
            return _fail(
                "Failed to fetch ansible_pkg_mgr to determine the dnf action backend: "
                f"{res.get('msg')}"
            )
        module = str((res.get("ansible_facts") or {}).get("ansible_pkg_mgr", "auto"))
        if module != "auto":
            result["ansible_facts"] = {"pkg_mgr": module}
    if module not in _DNF_BACKENDS:
        result.update(
            failed=True,
            _fk_action_failed=True,
            msg=(
                "Could not detect which major revision of dnf is in use, which is required to "
                "determine module backend.",
                "You should manually specify use_backend to tell the module whether to use the "
                "dnf4 or dnf5 backend})",
            ),
        )
        return result
    if module in ("yum4", "dnf4"):
        module = "dnf"
    module = "ansible.legacy." + module
    if resolve(module) is None:
        return _fail(f"Could not find a dnf module backend for {module}.")
    new_args = {k: v for k, v in args.items() if k not in ("use", "use_backend")}
    result.update(run_module(ctx, module, new_args, module_name=module))
    return result


MODULES = (
    Module("package", run_package, None),
    Module("dnf", run_dnf, None),
    Module("yum", run_dnf, None),
)
