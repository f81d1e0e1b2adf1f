"""Run ansible's own modules (ansible-core's and the installed collections') on a host.

The module's payload (its source and the module_utils it imports, see ``_finder``) goes to the
host's module agent once; each run sends ansible's module arguments (the task's, plus the
``_ansible_*`` internal ones its action base adds) and turns what the module printed into the
result dict ansible's ``normal`` action returns.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

from fleetkit.playbook.connection.agent import (
    AgentGone,
    AgentSession,
    AgentStartError,
    ModuleOutput,
    agent_source,
    default_python,
    session_for,
)
from fleetkit.playbook.errors import ModuleError
from fleetkit.playbook.modules import Module, ModuleContext
from fleetkit.playbook.modules._finder import ModuleSource, ansible_version, find

__all__ = [
    "upstream_module",
    "run_module",
    "internal_args",
    "parse_output",
    "agent_start_failure",
    "ISOLATED",
]

# modules that must not run in a fork of the agent: they re-exec, daemonize or keep state
ISOLATED = frozenset({"ansible.builtin.async_wrapper"})

_SELINUX_SPECIAL_FS = ["fuse", "nfs", "vboxsf", "ramfs", "9p", "vfat"]
_SETUP_NAMES = frozenset({"setup", "gather_facts", "ansible.builtin.setup", "ansible.legacy.setup"})


def internal_args(ctx: ModuleContext, module_name: str) -> dict[str, Any]:
    """The ``_ansible_*`` arguments ansible-core 2.19's action base adds to every module call."""
    v = ctx.variables
    return {
        "_ansible_check_mode": bool(ctx.check),
        "_ansible_no_log": bool(ctx.no_log),
        "_ansible_debug": False,
        "_ansible_diff": bool(ctx.diff),
        "_ansible_verbosity": int(ctx.verbosity),
        "_ansible_version": ansible_version(),
        "_ansible_module_name": module_name,
        "_ansible_syslog_facility": str(v.get("ansible_syslog_facility") or "LOG_USER"),
        "_ansible_selinux_special_fs": list(_SELINUX_SPECIAL_FS),
        "_ansible_socket": v.get("ansible_socket"),
        "_ansible_shell_executable": str(v.get("ansible_shell_executable") or "/bin/sh"),
        "_ansible_keep_remote_files": False,
        "_ansible_tmpdir": None,
        "_ansible_remote_tmp": _remote_tmp(ctx),
        "_ansible_ignore_unknown_opts": False,
        "_ansible_target_log_info": None,
        "_ansible_tracebacks_for": [],
    }


def _remote_tmp(ctx: ModuleContext) -> str:
    return str(ctx.variables.get("ansible_remote_tmp") or "~/.ansible/tmp")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def _filter_json(text: str) -> tuple[str, list[str]]:
    lines = text.splitlines()
    start = next((i for i, x in enumerate(lines) if x.strip().startswith("{")), None)
    if start is None:
        raise ValueError("No start of json char found")
    lines = lines[start:]
    end = next((i for i, x in enumerate(reversed(lines)) if x.strip().endswith("}")), None)
    if end is None:
        raise ValueError("No end of json char found")
    warnings: list[str] = []
    if end > 0:
        junk = lines[len(lines) - end :]
        if any(x.strip() for x in junk):
            warnings.append(f"Module invocation had junk after the JSON data: {chr(10).join(junk)}")
    return "\n".join(lines[: len(lines) - end]), warnings


def parse_output(rc: int, stdout: bytes, stderr: bytes) -> dict[str, Any]:
    """A module's printed output -> ansible's result dict (deserialization failures included)."""
    out = stdout.decode("utf-8", "replace")
    err = stderr.decode("utf-8", "replace")
    try:
        text, warnings = _filter_json(out)
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"Malformed result. Received {type(data)} instead of {dict}.")
    except ValueError as exc:
        return {
            "failed": True,
            "changed": False,
            "msg": f"Module result deserialization failed: {exc}",
            "_fk_cause": f"Module result deserialization failed: {exc} "
            "See stdout/stderr for the returned output.",
            "module_stdout": out,
            "module_stderr": err,
            "rc": rc,
            "_fk_action_failed": True,
        }
    if warnings:
        data.setdefault("warnings", []).extend(warnings)
    exc_info = data.get("exception")
    if isinstance(exc_info, dict):
        event = exc_info.get("event")
        if isinstance(event, dict) and "msg" not in data:
            data["msg"] = str(event.get("msg") or "Unknown error.")
        data.pop("exception", None)
        if data.get("failed"):
            # an exception the module did not handle: ansible's TaskExecutor reports it as
            # "Task failed: Module failed: ..." (a fail_json message stays as the module gave it)
            msg = f"Task failed: Module failed: {data.get('msg') or 'Unknown error.'}"
            data["msg"] = msg
            data["_fk_error"] = msg
            data["exception"] = "(traceback unavailable)"
    elif data.get("failed") and exc_info in (None, "", False):
        data.pop("exception", None)
    for key in list(data):
        if key.startswith("_ansible_") and key != "_ansible_parsed":
            del data[key]
    for key in ("warnings", "deprecations"):
        if key in data and not data[key]:
            del data[key]
    facts = data.get("ansible_facts")
    if isinstance(facts, dict):
        for key in list(facts):
            if key.startswith(("discovered_interpreter_", "ansible_discovered_interpreter_")):
                del facts[key]
    results = data.get("results")
    if "results" in data and (not isinstance(results, list)):
        data["ansible_module_results"] = data.pop("results")
    if "stdout" in data and "stdout_lines" not in data:
        data["stdout_lines"] = str(data.get("stdout") or "").splitlines()
    if "stderr" in data and "stderr_lines" not in data:
        data["stderr_lines"] = str(data.get("stderr") or "").splitlines()
    data["_ansible_parsed"] = True
    return data


def _python(ctx: ModuleContext) -> str:
    if ctx.interpreter:
        return ctx.interpreter
    if ctx.conn.local:
        return default_python(ctx.conn)
    return ctx.remote_python or "python3"


def _old_style_args(args: Mapping[str, Any]) -> str:
    return "".join(f"{k}={shlex.quote(str(v))} " for k, v in args.items())


def agent_for(ctx: ModuleContext) -> AgentSession:
    """The module agent that serves this context's host and become user."""
    return session_for(ctx.conn, _python(ctx), ctx.become, _remote_tmp(ctx))


def agent_start_failure(ctx: ModuleContext, exc: AgentStartError) -> dict[str, Any]:
    """ansible's result when the module could not run: its interpreter (or the become
    method's program) was not found, or what ran printed no result."""
    python = _python(ctx)
    missing = re.compile(rf"{re.escape(python)}: (No such file or directory|not found)")
    if missing.search(exc.stderr) or missing.search(exc.stdout):
        msg = f"The module interpreter {python!r} was not found."
        cause = f"{msg} Consider overriding the configured interpreter path for this host. "
    else:
        msg = "Module result deserialization failed: No start of json char found"
        cause = f"{msg} "
    return {
        "failed": True,
        "changed": False,
        "msg": msg,
        "_fk_cause": cause + "See stdout/stderr for the returned output.",
        "module_stdout": exc.stdout,
        "module_stderr": exc.stderr + ("\n" if exc.stderr and exc.stderr[-1] != "\n" else ""),
        "rc": exc.rc,
        "_fk_action_failed": True,
    }


def run_module(
    ctx: ModuleContext,
    name: str,
    args: Mapping[str, Any],
    *,
    module_name: str | None = None,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Run the real module ``name`` with ``args`` on ``ctx``'s host and return its result."""
    src = find(name)
    if src is None:
        raise ModuleError(_unresolved(name))
    if ctx.module_defaults is not None:
        # the defaults of the module actually run (idempotent for the task's own module)
        args = ctx.module_defaults(src.fqcn, dict(args))
    full = dict(args)
    full.update(internal_args(ctx, module_name or ctx.action or name))
    return _execute(ctx, src, full, timeout_s)


def _run_batch(
    ctx: ModuleContext, src: ModuleSource, req: dict[str, Any], batch: Any
) -> ModuleOutput:
    """One run of the agent over a connection plugin (no persistent pipes): the payload, its
    layout and the run go in one stdin."""
    blobs = {sha: base64.b64encode(data).decode() for sha, data in src.blobs.items()}
    requests = [
        {"op": "put", "blobs": blobs, "id": 1},
        {"op": "have", "bundle": src.bundle, "files": [list(f) for f in src.files], "id": 2},
        {**req, "op": "run", "id": 3},
    ]
    responses = batch(agent_source(), _python(ctx), _remote_tmp(ctx), requests)
    resp = next((r for r in responses if r.get("id") == 3), None)
    if resp is None or "error" in resp:
        detail = resp.get("error") if resp else "no answer"
        raise ModuleError(f"the module agent over {ctx.conn.name} failed: {detail}")
    return ModuleOutput(
        int(resp["rc"]), base64.b64decode(resp["out"]), base64.b64decode(resp["err"])
    )


def _execute(
    ctx: ModuleContext, src: ModuleSource, full: dict[str, Any], timeout_s: float | None
) -> dict[str, Any]:
    batch = getattr(ctx.conn, "run_agent_batch", None)
    if batch is not None:
        req = _request(ctx, src, full)
        out = _run_batch(ctx, src, req, batch)
        return _finish(src, out)
    req = _request(ctx, src, full)
    for retry in (True, False):
        try:
            sess = agent_for(ctx)
        except AgentStartError as exc:
            return agent_start_failure(ctx, exc)
        try:
            sess.ensure(src.bundle, src.files, src.blobs)
            out = sess.run(req, timeout_s)
        except TimeoutError:
            return {"failed": True, "changed": False, "msg": "The module timed out"}
        except AgentGone as exc:
            # ansible starts each local module afresh: an agent that exited before it got
            # the run is replaced and the run sent again (a run it got may have happened)
            if retry and ctx.conn.local and not exc.delivered:
                continue
            raise
        break
    return _finish(src, out)


def _request(ctx: ModuleContext, src: ModuleSource, full: dict[str, Any]) -> dict[str, Any]:
    params = json.dumps({"ANSIBLE_MODULE_ARGS": full}, default=_jsonable)
    req: dict[str, Any] = {
        "bundle": src.bundle,
        "pyname": src.pyname,
        "style": src.style,
        "filename": src.files[-1][0] if src.style != "new" else "",
        "args": params,
        "profile": "legacy",
        "env": ctx.env or {},
        "inproc": src.fqcn not in ISOLATED,
        "python": _python(ctx),
        # a task tmp dir as ansible's (non-pipelined) action base makes; not for async jobs,
        # which outlive the run
        "task_tmp": src.style == "new" and src.fqcn not in ISOLATED,
    }
    if src.style != "new":
        req["filename"] = next(rel for rel, _sha in src.files)
        req["args_file"] = (
            _old_style_args(full) if src.style == "old" else json.dumps(full, default=_jsonable)
        )
    return req


def _finish(src: ModuleSource, out: ModuleOutput) -> dict[str, Any]:
    result = parse_output(out.rc, out.stdout, out.stderr)
    if src.fqcn in ("ansible.builtin.setup", "ansible.builtin.gather_facts"):
        result["_ansible_verbose_override"] = True
    return result


def _unresolved(name: str) -> str:
    return (
        f"couldn't resolve module/action '{name}'. This often indicates a misspelling, "
        "missing collection, or incorrect module path."
    )


def upstream_module(name: str) -> Module | None:
    """A :class:`Module` that runs ansible's own module ``name``; None if it does not resolve."""
    src = find(name)
    if src is None:
        return None

    def run(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
        return run_module(ctx, name, args, module_name=ctx.action or name)

    return Module(name, run, None, check_mode=True)
