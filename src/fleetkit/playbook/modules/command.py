"""``command``, ``shell`` and ``raw``: run a program on the target (argv, /bin/sh, raw)."""

from __future__ import annotations

import datetime as dt
import shlex
import sys
from typing import Any

from fleetkit.playbook.connection import ChdirFailed, CommandNotFound
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


def _exists(ctx: ModuleContext, path: str, chdir: str | None) -> bool:
    """Whether the glob ``path`` matches on the target (relative to ``chdir``, as ansible's
    module globs after entering it)."""
    if ctx.conn.local:
        import glob
        import os.path

        return bool(glob.glob(os.path.join(chdir, path) if chdir else path))
    res = ctx.conn.run(f'for f in {path}; do [ -e "$f" ] && exit 0; done; exit 1', cwd=chdir)
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
    chdir = args.get("chdir")
    if chdir and (creates or removes or ctx.check):
        # ansible's module enters the directory first: a bad one fails before anything else
        try:
            ctx.conn.run(["true"], cwd=chdir)
        except ChdirFailed as exc:
            return _chdir_failed(display_cmd, exc)
    shoulda = "Would" if ctx.check else "Did"
    # the keys ansible's module always returns (the _lines ones its action plugin adds)
    base: dict[str, Any] = {
        "changed": False,
        "cmd": display_cmd,
        "rc": 0,
        "start": None,
        "end": None,
        "delta": None,
        "stdout": "",
        "stdout_lines": [],
        "stderr": "",
        "stderr_lines": [],
    }
    if creates and _exists(ctx, creates, chdir):
        out = f"skipped, since {creates} exists"
        return {
            **base,
            "stdout": out,
            "stdout_lines": [out],
            "msg": f"{shoulda} not run command since '{creates}' exists",
        }
    if removes and not _exists(ctx, removes, chdir):
        out = f"skipped, since {removes} does not exist"
        return {
            **base,
            "stdout": out,
            "stdout_lines": [out],
            "msg": f"{shoulda} not run command since '{removes}' does not exist",
        }
    if ctx.check:
        # with creates/removes the check says it would change; without, it skips
        guarded = creates is not None or removes is not None
        would = {**base, "changed": guarded, "msg": "Command would have run if not in check mode"}
        if not guarded:
            would["skipped"] = True
        return would
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
    except ChdirFailed as exc:
        return _chdir_failed(display_cmd, exc)
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
            "exception": "(traceback unavailable)",
            "_fk_error": f"Task failed: Module failed: Error executing command: {exc}",
            "_fk_module_error": True,  # the module's own result: changed_when/failed_when apply
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


def _chdir_failed(cmd: Any, exc: ChdirFailed) -> dict[str, Any]:
    """ansible's result for a ``chdir`` that cannot be entered (nothing ran)."""
    return {
        "changed": False,
        "cmd": cmd,
        "rc": None,
        "start": None,
        "end": None,
        "delta": None,
        "stdout": "",
        "stdout_lines": [],
        "stderr": "",
        "stderr_lines": [],
        "failed": True,
        "exception": "(traceback unavailable)",
        "_fk_module_error": True,  # the module's own result: changed_when/failed_when apply
        "msg": "Unable to change directory before execution.",
        # the error display chains the cause into the message
        "_fk_error": f"Task failed: Module failed: Unable to change directory before execution: {exc}",
    }


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
    if args.get("expand_argument_vars") is not None:
        # ansible's shell action refuses the command-only option before running anything
        msg = f"Unsupported parameters for ({ctx.action or 'shell'}) module: expand_argument_vars"
        return {"failed": True, "msg": msg, "_fk_error": f"Task failed: {msg}"}
    args = {**args, "expand_argument_vars": True}
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


# ansible's command module: exactly one way of giving the command
_ONE_OF = (("_raw_params", "cmd", "argv"),)

MODULES = (
    Module("command", run_command, _COMMON, required_one_of=_ONE_OF, mutually_exclusive=_ONE_OF),
    Module(
        "shell",
        run_shell,
        {**_COMMON, "expand_argument_vars": Param("bool")},  # given at all: refused
        required_one_of=_ONE_OF,
        mutually_exclusive=_ONE_OF,
    ),
    Module(
        "raw", run_raw, {"_raw_params": Param("str"), "executable": Param("str")}, check_mode=False
    ),
)
