"""``copy``: content or a controller file to a path on the target; changed only on a
different checksum."""

from __future__ import annotations

import hashlib
import os
import shlex
from typing import Any

from fleetkit.playbook.modules import Module, ModuleContext, Param

__all__ = ["MODULES"]

_SPEC = {
    "src": Param("str"),
    "content": Param("raw"),
    "dest": Param("str", required=True),
    "mode": Param("raw"),
    "owner": Param("str"),
    "group": Param("str"),
    "backup": Param("bool", False),
    "force": Param("bool", True),
    "remote_src": Param("bool", False),
    "directory_mode": Param("raw"),
    "validate": Param("str"),
    "decrypt": Param("bool", True),
    "follow": Param("bool", False),
    "unsafe_writes": Param("bool", False),
}


def _mode(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    s = str(value)
    if s.isdigit():
        return int(s, 8)
    raise ValueError(f"bad symbolic permission for mode: {s}")


def _remote_sha1(ctx: ModuleContext, path: str) -> str | None:
    if ctx.conn.local:
        try:
            with open(path, "rb") as fh:
                return hashlib.sha1(fh.read()).hexdigest()
        except OSError:
            return None
    res = ctx.conn.run(f"sha1sum {shlex.quote(path)} 2>/dev/null", become=ctx.become)
    if res.rc != 0 or not res.stdout:
        return None
    return res.stdout.decode().split()[0]


def run_copy(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    dest = str(args["dest"])
    content = args.get("content")
    src = args.get("src")
    if content is None and src is None:
        return {"failed": True, "changed": False, "msg": "src (or content) is required"}
    if content is not None and src is not None:
        return {"failed": True, "changed": False, "msg": "src and content are mutually exclusive"}
    if content is not None:
        data = (content if isinstance(content, str) else __import__("json").dumps(content)).encode()
    else:
        try:
            with open(str(src), "rb") as fh:
                data = fh.read()
        except OSError:
            return {
                "failed": True,
                "changed": False,
                "msg": f"Could not find or access '{src}' on the Ansible Controller.",
            }
        if dest.endswith("/"):
            dest = dest + os.path.basename(str(src))
    try:
        mode = _mode(args.get("mode"))
    except ValueError as exc:
        return {"failed": True, "changed": False, "msg": str(exc)}
    checksum = hashlib.sha1(data).hexdigest()
    current = _remote_sha1(ctx, dest)
    result: dict[str, Any] = {
        "dest": dest,
        "checksum": checksum,
        "size": len(data),
        "state": "file",
        "changed": False,
    }
    if src is not None:
        result["src"] = src
    if current == checksum or (current is not None and not args.get("force", True)):
        if mode is not None and ctx.conn.local and (os.stat(dest).st_mode & 0o7777) != mode:
            if not ctx.check:
                os.chmod(dest, mode)
            result["changed"] = True
        if mode is not None:
            result["mode"] = f"{mode:04o}"
        return result
    result["changed"] = True
    result["md5sum"] = hashlib.md5(data).hexdigest()
    if ctx.check:
        return result
    try:
        ctx.conn.put(data, dest, mode)
    except OSError as exc:
        return {
            "failed": True,
            "changed": False,
            "msg": f"Destination {dest} not writable: {exc}",
            "dest": dest,
        }
    if mode is not None:
        result["mode"] = f"{mode:04o}"
    return result


MODULES = (Module("copy", run_copy, _SPEC),)
