"""``command``, ``shell`` and ``raw``: run a program on the target (argv, /bin/sh, raw)."""

from __future__ import annotations

import datetime as dt
import shlex
import sys
from typing import Any

from fleetkit.playbook.connection import CommandNotFound
from fleetkit.playbook.modules import Module, ModuleContext, Param

__all__ = ["MODULES"]

_COMMON = {
    "_raw_params": Param("str"),
    "_uses_shell": Param("bool", False),
    "argv": Param("list"),
    "chdir": Param("str"),
    "cmd": Param("str"),
    "creates": Param("str"),
    "removes": Param("str"),
    "executable": Param("str"),
    "stdin": Param("str"),
    "stdin_add_newline": Param("bool", True),
    "strip_empty_ends": Param("bool", True),
    "expand_argument_vars": Param("bool", True),
}


# ansible's command module expands $VARS and ~ in each argument with Python's os.path on the
# target (after the task's environment is applied): this runs that step there, then execs.
_NOEXEC = "fleetkit-command-not-found: "
_EXPAND = (
    "import os, sys\n"
    "a = [os.path.expanduser(os.path.expandvars(x)) for x in sys.argv[1:]]\n"
    "try:\n"
    "    os.execvp(a[0], a)\n"
    "except FileNotFoundError:\n"
    f"    sys.stderr.write({_NOEXEC!r} + a[0])\n"
    "    sys.exit(127)\n"
)


def _expanding(ctx: ModuleContext, cmd: list[str]) -> list[str]:
    """``cmd`` run through the expansion step when an argument needs it."""
    if not any("$" in a or a.startswith("~") for a in cmd):
        return cmd
    python = sys.executable if ctx.conn.local else ctx.remote_python
    return [python, "-c", _EXPAND, *cmd]


def _now() -> dt.datetime:
    return dt.datetime.now()


def _fmt(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")


def _exists(ctx: ModuleContext, path: str) -> bool:
    if ctx.conn.local:
        import glob

        return bool(glob.glob(path))
    res = ctx.conn.run(f'for f in {path}; do [ -e "$f" ] && exit 0; done; exit 1')
    return res.rc == 0


def _text(b: bytes, strip: bool) -> str:
    s = b.decode("utf-8", errors="replace")
    if strip:
        s = s.rstrip("\r\n")
    return s


def _run(ctx: ModuleContext, args: dict[str, Any], shell: bool) -> dict[str, Any]:
    if getattr(ctx.conn, "run_agent_batch", None) is not None:
        # over an ansible connection plugin the real module travels as ansible sends it
        from fleetkit.playbook.modules.upstream import run_module

        real = {k: v for k, v in args.items() if v is not None}
        if shell:
            real["_uses_shell"] = True
        return run_module(ctx, "ansible.legacy.command", real)
    raw = args.get("cmd") or args.get("_raw_params")
    argv = args.get("argv")
    cmd: list[str] | str
    if shell:
        if not raw:
            return {"failed": True, "rc": 256, "msg": "no command given", "changed": False}
        cmd = str(raw)
        display_cmd: Any = cmd
        if args.get("executable"):
            cmd = [str(args["executable"]), "-c", str(raw)]
    else:
        if argv:
            cmd = [str(a) for a in argv]
        elif raw:
            try:
                cmd = shlex.split(str(raw))
            except ValueError as exc:
                return {"failed": True, "rc": 256, "msg": str(exc), "changed": False}
        else:
            return {"failed": True, "rc": 256, "changed": False, "msg": "no command given"}
        display_cmd = cmd
    creates, removes = args.get("creates"), args.get("removes")
    if creates and _exists(ctx, creates):
        return {
            "changed": False,
            "cmd": display_cmd,
            "rc": 0,
            "stdout": f"skipped, since {creates} exists",
            "stdout_lines": [f"skipped, since {creates} exists"],
            "stderr": "",
            "stderr_lines": [],
            "msg": f"Did not run command since '{creates}' exists",
        }
    if removes and not _exists(ctx, removes):
        return {
            "changed": False,
            "cmd": display_cmd,
            "rc": 0,
            "stdout": f"skipped, since {removes} does not exist",
            "stdout_lines": [f"skipped, since {removes} does not exist"],
            "stderr": "",
            "stderr_lines": [],
            "msg": f"Did not run command since '{removes}' does not exist",
        }
    if ctx.check:
        return {
            "changed": False,
            "skipped": True,
            "msg": "Command would have run if not in check mode",
            "cmd": display_cmd,
            "rc": 0,
        }
    stdin = args.get("stdin")
    data = None
    if stdin is not None:
        data = (stdin + ("\n" if args.get("stdin_add_newline", True) else "")).encode()
    start = _now()
    run = cmd
    if isinstance(cmd, list) and not shell and args.get("expand_argument_vars", True):
        run = _expanding(ctx, cmd)
    try:
        res = ctx.conn.run(run, stdin=data, become=ctx.become, cwd=args.get("chdir"), env=ctx.env)
        if run is not cmd and res.rc == 127 and res.stderr.startswith(_NOEXEC.encode()):
            raise CommandNotFound(res.stderr[len(_NOEXEC) :].decode(errors="replace"))
    except CommandNotFound as exc:
        return {
            "changed": False,
            "cmd": raw if raw else display_cmd,
            "msg": "Error executing command.",
            "rc": 2,
            "stdout": "",
            "stdout_lines": [],
            "stderr": "",
            "stderr_lines": [],
            "failed": True,
            "_fk_error": f"Task failed: Module failed: Error executing command: {exc}",
        }
    end = _now()
    strip = bool(args.get("strip_empty_ends", True))
    out, err = _text(res.stdout, strip), _text(res.stderr, strip)
    result: dict[str, Any] = {
        "changed": True,
        "cmd": display_cmd,
        "stdout": out,
        "stderr": err,
        "rc": res.rc,
        "start": _fmt(start),
        "end": _fmt(end),
        "delta": str(end - start),
        "msg": "",
        "stdout_lines": out.splitlines(),
        "stderr_lines": err.splitlines(),
    }
    if res.rc != 0:
        result["failed"] = True
        result["msg"] = "non-zero return code"
    return result


def _with_invocation(result: dict[str, Any], args: dict[str, Any], shell: bool) -> dict[str, Any]:
    """The module's arguments as ansible's command module reports them (every parameter,
    defaults included): registered results and -vvv show them."""
    if "invocation" not in result:
        module_args = {k: args.get(k, p.default) for k, p in _COMMON.items()}
        module_args["_uses_shell"] = shell
        result["invocation"] = {"module_args": module_args}
    return result


def run_command(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    executable = args.get("executable")
    if executable:
        # ansible's command module ignores it, with this warning
        args = {**args, "executable": None}
    result = _with_invocation(_run(ctx, args, shell=False), args, False)
    if executable:
        result.setdefault("warnings", []).append(
            "As of Ansible 2.4, the parameter 'executable' is no longer supported with the "
            f"'command' module. Not using '{executable}'."
        )
    return result


def run_shell(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    return _with_invocation(_run(ctx, args, shell=True), args, True)


def run_raw(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    raw = str(args.get("_raw_params") or "")
    if ctx.check:
        return {"changed": False, "skipped": True, "msg": "check mode not supported for raw"}
    cmd: list[str] | str = raw
    if args.get("executable"):
        cmd = [str(args["executable"]), "-c", raw]
    res = ctx.conn.run(cmd, become=ctx.become, env=ctx.env)
    out = res.stdout.decode("utf-8", errors="replace")
    err = res.stderr.decode("utf-8", errors="replace")
    result: dict[str, Any] = {
        "changed": True,
        "rc": res.rc,
        "stdout": out,
        "stdout_lines": out.splitlines(),
        "stderr": err,
        "stderr_lines": err.splitlines(),
    }
    if res.rc != 0:
        result["failed"] = True
        result["msg"] = "non-zero return code"
    return result


MODULES = (
    Module("command", run_command, _COMMON),
    Module("shell", run_shell, _COMMON),
    Module(
        "raw", run_raw, {"_raw_params": Param("str"), "executable": Param("str")}, check_mode=False
    ),
)
