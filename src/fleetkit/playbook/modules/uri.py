"""``uri``: HTTP requests from the target (in-process for local hosts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fleetkit.playbook.modules import Module, ModuleContext, Param, _uri_impl

__all__ = ["MODULES", "run_remote_script"]

_SPEC = {
    "url": Param("str", required=True),
    "method": Param("str", "GET"),
    "body": Param("raw"),
    "body_format": Param(
        "str", "raw", choices=("form-urlencoded", "json", "raw", "form-multipart")
    ),
    "headers": Param("dict", {}),
    "status_code": Param("list", [200], elements="int"),
    "return_content": Param("bool", False),
    "timeout": Param("int", 30),
    "validate_certs": Param("bool", True),
    "follow_redirects": Param("str", "safe"),
    "url_username": Param("str", aliases=("user",)),
    "url_password": Param("str", aliases=("password",)),
    "force_basic_auth": Param("bool", False),
    "dest": Param("str"),
    "creates": Param("str"),
    "removes": Param("str"),
    "use_proxy": Param("bool", True),
    "http_agent": Param("str", "ansible-httpget"),
    "unix_socket": Param("str"),
    "decompress": Param("bool", True),
}


def run_remote_script(
    ctx: ModuleContext, source_file: str, params: dict[str, Any]
) -> dict[str, Any]:
    """Run a self-contained module script with the target's python; JSON in, JSON out."""
    src = Path(source_file).read_text()
    script = src + "\n"
    res = ctx.conn.run(
        [ctx.remote_python, "-c", script], stdin=json.dumps(params).encode(), become=ctx.become
    )
    if res.rc != 0:
        return {
            "failed": True,
            "changed": False,
            "rc": res.rc,
            "msg": "MODULE FAILURE: " + res.stderr.decode(errors="replace").strip()[-500:],
            "module_stderr": res.stderr.decode(errors="replace"),
        }
    try:
        out: dict[str, Any] = json.loads(res.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {
            "failed": True,
            "changed": False,
            "msg": "MODULE FAILURE: no JSON output",
            "module_stdout": res.stdout.decode(errors="replace"),
        }
    return out


def run_uri(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    if ctx.conn.local:
        return _uri_impl.main(args)
    return run_remote_script(ctx, _uri_impl.__file__, args)


MODULES = (Module("uri", run_uri, _SPEC),)
