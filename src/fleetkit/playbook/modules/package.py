"""``package``, ``apt``, ``dnf``, ``yum``: install, upgrade or remove packages on the target;
changed only when something changed."""

from __future__ import annotations

import shlex
from typing import Any

from fleetkit.playbook.modules import Module, ModuleContext, Param

__all__ = ["MODULES"]

_SPEC = {
    "name": Param("list", aliases=("pkg", "package"), elements="str"),
    "state": Param(
        "str",
        "present",
        choices=("absent", "present", "latest", "installed", "removed", "build-dep", "fixed"),
    ),
    "update_cache": Param("bool", False, aliases=("update-cache",)),
    "cache_valid_time": Param("int", 0),
    "upgrade": Param("str"),
    "autoremove": Param("bool", False),
    "purge": Param("bool", False),
    "install_recommends": Param("bool"),
    "force": Param("bool", False),
    "allow_downgrade": Param("bool", False),
    "disable_gpg_check": Param("bool", False),
    "enablerepo": Param("list"),
    "disablerepo": Param("list"),
    "security": Param("bool", False),
    "use": Param("str", "auto"),
    "exclude": Param("list"),
}


def _sh(ctx: ModuleContext, script: str) -> tuple[int, str, str]:
    res = ctx.conn.run(script, become=ctx.become, env=ctx.env)
    return res.rc, res.stdout.decode(errors="replace"), res.stderr.decode(errors="replace")


def _manager(ctx: ModuleContext, requested: str) -> str:
    if requested in ("apt", "dnf", "yum"):
        return requested
    rc, out, _ = _sh(ctx, "command -v apt-get || command -v dnf || command -v yum")
    path = out.strip().splitlines()[0] if out.strip() else ""
    if path.endswith("apt-get"):
        return "apt"
    if path.endswith("dnf"):
        return "dnf"
    if path.endswith("yum"):
        return "yum"
    return ""


def _installed(ctx: ModuleContext, mgr: str, names: list[str]) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for n in names:
        base = n.split("=")[0] if mgr == "apt" else n
        if mgr == "apt":
            rc, o, _ = _sh(
                ctx, "dpkg-query -W -f='${Status}' " + shlex.quote(base) + " 2>/dev/null"
            )
            out[n] = rc == 0 and "ok installed" in o
        else:
            rc, _, _ = _sh(ctx, "rpm -q --whatprovides " + shlex.quote(base) + " >/dev/null 2>&1")
            out[n] = rc == 0
    return out


def _upgradable(ctx: ModuleContext, mgr: str, names: list[str]) -> list[str]:
    if mgr == "apt":
        rc, o, _ = _sh(ctx, "LANG=C apt-get -s -q upgrade 2>/dev/null | awk '/^Inst /{print $2}'")
        pending = [x for x in o.split() if x]
    else:
        rc, o, _ = _sh(ctx, f"{mgr} -q check-update 2>/dev/null; true")
        pending = [
            line.split()[0].rsplit(".", 1)[0]
            for line in o.splitlines()
            if line and not line.startswith(" ") and len(line.split()) >= 3
        ]
    if names == ["*"]:
        return pending
    return [n for n in names if n.split("=")[0] in pending]


def _run(ctx: ModuleContext, args: dict[str, Any], requested: str) -> dict[str, Any]:
    names = [str(n) for n in (args.get("name") or [])]
    state = str(args.get("state") or "present")
    state = {"installed": "present", "removed": "absent"}.get(state, state)
    mgr = _manager(ctx, requested)
    if not mgr:
        return {
            "failed": True,
            "changed": False,
            "msg": "Could not find a supported package manager (apt, dnf, yum)",
        }
    result: dict[str, Any] = {"changed": False}
    if mgr == "apt" and args.get("update_cache") and not ctx.check:
        rc, o, e = _sh(ctx, "DEBIAN_FRONTEND=noninteractive apt-get update -q")
        if rc != 0:
            return {"failed": True, "changed": False, "msg": f"Failed to update apt cache: {e}"}
        result["cache_updated"] = True
    if not names:
        if mgr == "apt" and args.get("upgrade") not in (None, "no"):
            names = ["*"]
            state = "latest"
        else:
            result["msg"] = "Nothing to do"
            return result
    todo: list[str]
    if names == ["*"]:
        if state != "latest":
            return {
                "failed": True,
                "changed": False,
                "msg": "name='*' is only supported with state=latest",
            }
        todo = _upgradable(ctx, mgr, ["*"])
    else:
        inst = _installed(ctx, mgr, names)
        if state == "present":
            todo = [n for n in names if not inst[n]]
        elif state == "absent":
            todo = [n for n in names if inst[n]]
        else:
            todo = [n for n in names if not inst[n]] + _upgradable(
                ctx, mgr, [n for n in names if inst[n]]
            )
    if not todo:
        result["msg"] = "Nothing to do" if mgr != "apt" else ""
        result["results"] = []
        return result
    result["changed"] = True
    if ctx.check:
        result["msg"] = (
            f"would {'remove' if state == 'absent' else 'install/upgrade'}: " + ", ".join(todo)
        )
        return result
    q = " ".join(shlex.quote(n) for n in todo)
    if mgr == "apt":
        env = "DEBIAN_FRONTEND=noninteractive"
        if names == ["*"]:
            cmd = f"{env} apt-get -y -q upgrade"
        elif state == "absent":
            cmd = f"{env} apt-get -y -q {'purge' if args.get('purge') else 'remove'} {q}"
        else:
            cmd = f"{env} apt-get -y -q install {q}"
    else:
        if names == ["*"]:
            cmd = f"{mgr} -y -q upgrade"
        elif state == "absent":
            cmd = f"{mgr} -y -q remove {q}"
        elif state == "latest":
            cmd = f"{mgr} -y -q install {q} && {mgr} -y -q upgrade {q}"
        else:
            cmd = f"{mgr} -y -q install {q}"
    rc, o, e = _sh(ctx, cmd)
    result["stdout"] = o
    result["stderr"] = e
    result["stdout_lines"] = o.splitlines()
    result["stderr_lines"] = e.splitlines()
    result["rc"] = rc
    if rc != 0:
        result["failed"] = True
        result["changed"] = False
        result["msg"] = f"'{cmd}' failed: {e.strip()}"
    return result


def run_package(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    return _run(ctx, args, str(args.get("use") or "auto"))


def run_apt(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    return _run(ctx, args, "apt")


def run_dnf(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    return _run(ctx, args, "dnf")


def run_yum(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    return _run(ctx, args, "yum")


MODULES = (
    Module("package", run_package, _SPEC),
    Module("apt", run_apt, _SPEC),
    Module("dnf", run_dnf, _SPEC),
    Module("yum", run_yum, _SPEC),
)
