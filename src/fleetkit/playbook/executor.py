"""TaskExecutor: one task on one host (ansible's TaskExecutor).

Conditions, loops, until/retries, changed_when/failed_when, module arguments, environment,
become, delegation and the connection it runs over. Runs in the fork pool's worker threads.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from fleetkit.playbook import messages
from fleetkit.playbook.connection import (
    Become,
    BecomeFailed,
    CommandNotFound,
    Connection,
    Unreachable,
)
from fleetkit.playbook.connection.agent import AgentStartError, login_user
from fleetkit.playbook.connection.become import (
    plugin_pipelining,
    resolve_become,
    sh_plugin,
    share_tmp_files,
    tty_refusal,
)
from fleetkit.playbook.connection.local import LocalConnection
from fleetkit.playbook.connection.plugin import PluginConnection, find_connection_plugin
from fleetkit.playbook.connection.ssh import SSHConnection, cleanup_control_dir
from fleetkit.playbook.errors import (
    BrokenConditional,
    ModuleError,
    PlaybookError,
    TemplateError,
    TemplateUndefined,
    UntrustedTemplate,
)
from fleetkit.playbook.events import Callback, TaskResult
from fleetkit.playbook.factcache import clean_facts, namespace_facts
from fleetkit.playbook.filters import to_bool
from fleetkit.playbook.jobs import new_job_id, run_in_thread
from fleetkit.playbook.loops import item_vars, loop_control, loop_items
from fleetkit.playbook.module_defaults import args_with_defaults
from fleetkit.playbook.modules import Module, ModuleContext, resolve, validate
from fleetkit.playbook.modules.debug import RAW_ARGS, ActionArgError, VarExpressionError
from fleetkit.playbook.modules.upstream import agent_start_failure
from fleetkit.playbook.options import RunOptions
from fleetkit.playbook.playbook import IncludeRole, IncludeTasks, Task, is_whole_template
from fleetkit.playbook.templar import OMIT, Templar, VarsView, is_template
from fleetkit.playbook.trust import UnsafeText, mark_unsafe
from fleetkit.playbook.variables import VariableManager
from fleetkit.playbook.yamlsrc import Located

__all__ = ["TaskExecutor", "ConnectionCache", "RetryPrinter", "first_failed_cond", "registered"]

_RESULT_INTERNAL = (
    "_fk_error",
    "_fk_chain",
    "_fk_help",
    "_fk_action_failed",
    "_fk_messages",
    "_fk_module_error",
)


def _run_with_timeout(
    module: Module, ctx: ModuleContext, params: dict[str, Any], timeout_s: int
) -> dict[str, Any]:
    """``timeout:``: the task fails after ``timeout_s`` seconds (the module is abandoned)."""
    worker, box = run_in_thread(lambda: module.run(ctx, params), "fk-timeout")
    worker.join(timeout_s)
    if worker.is_alive():
        msg = f"Task failed: Timed out after {timeout_s} second(s)."
        return {
            "changed": False,
            "failed": True,
            "msg": msg,
            "_fk_error": msg,
            "timedout": {
                "frame": "Configure `DISPLAY_TRACEBACK` to see a traceback on timeout errors.",
                "period": timeout_s,
            },
        }
    if "error" in box:
        raise box["error"]
    result: dict[str, Any] = box["result"]
    return result


class KeywordValueError(PlaybookError):
    """A connection keyword (``ansible_port`` ...) whose value has the wrong type."""

    def __init__(self, key: str, value: Any, kind: str) -> None:
        self.key = key
        self.detail = f"The value {str(value)!r} could not be converted to {kind!r}."
        super().__init__(f"Task failed: Error processing keyword '{key}': {self.detail}")


def _int_keyword(key: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise KeywordValueError(key, value, "int") from None


def configured_python(variables: Mapping[str, Any], cfg: Mapping[str, Any]) -> str | None:
    """The interpreter a host's ``ansible_python_interpreter`` or ansible.cfg's
    ``interpreter_python`` (ANSIBLE_PYTHON_INTERPRETER) names; None for ``auto*`` (discovery:
    ``python3`` on the host's PATH, the running interpreter for local hosts)."""
    value = variables.get("ansible_python_interpreter")
    if value in (None, ""):
        value = cfg.get("interpreter_python")
    text = str(value or "auto").strip()
    return (
        None if text in ("", "auto", "auto_silent", "auto_legacy", "auto_legacy_silent") else text
    )


def normalize_become(method: str) -> str:
    """``ansible.builtin.sudo`` -> ``sudo``."""
    return method.rsplit(".", 1)[-1]


# actions that run no module file on the host (ansible's raw: a command; reboot: commands)
_NO_MODULE_FILES = frozenset({"raw", "reboot"})
# actions that upload files even with pipelining (ansible's TRANSFERS_FILES)
_TRANSFERS_FILES = frozenset({"copy", "template", "script", "unarchive", "assemble", "patch"})
_SHELL_VARS = (
    "ansible_admin_users",
    "ansible_common_remote_group",
    "ansible_shell_allow_world_readable_temp",
)


_shell_lock = threading.Lock()
_shell_cache: dict[str, dict[str, Any]] = {}


def _shell_options(tv: VarsView, templar: Templar) -> dict[str, Any]:
    """ansible's sh shell plugin options that decide how temporary files are shared
    (admin_users, common_remote_group, world_readable_temp), from its own config."""
    var_options = {v: templar.template(tv.raw(v)) for v in _SHELL_VARS if v in tv}
    key = repr(sorted(var_options.items()))
    with _shell_lock:
        done = _shell_cache.get(key)
    if done is None:
        shell = sh_plugin()
        shell.set_options(var_options=var_options)
        done = {
            k: shell.get_option(k)
            for k in ("admin_users", "common_remote_group", "world_readable_temp")
        }
        with _shell_lock:
            _shell_cache[key] = done
    return done


def _opt_str(templar: Templar, value: Any) -> str | None:
    if value is None:
        return None
    out = templar.template(value)
    return str(out) if out not in (None, "") else None


_JINJA_KEYWORDS = frozenset(
    {"True", "False", "None", "true", "false", "none", "and", "or", "not", "in", "is", "if", "else"}
)


def valid_var_name(name: object) -> bool:
    """ansible's validate_variable_name: an ASCII identifier that is not a Jinja keyword."""
    return (
        isinstance(name, str)
        and name.isidentifier()
        and name.isascii()
        and name not in _JINJA_KEYWORDS
    )


class _BadKey(Exception):
    """A ``set_fact`` key that templates to an invalid variable name."""

    def __init__(self, key: str, name: object) -> None:
        self.key = key
        desc = (
            f"name {str(name)!r}"
            if isinstance(name, (str, int, float, bool, type(None)))
            else "name"
        )
        if not isinstance(name, str):
            desc += f" of type {type(name).__name__!r}"
        self.msg = f"Invalid variable {desc}."
        super().__init__(self.msg)


# actions whose free-form text is their own (ansible's RAW_PARAM_MODULES)
RAW_PARAM_ACTIONS = frozenset(
    {
        "command",
        "shell",
        "raw",
        "script",
        "include_vars",
        "include_tasks",
        "include_role",
        "import_tasks",
        "import_role",
        "add_host",
        "group_by",
        "set_fact",
        "meta",
    }
)


class _RawParams(Exception):
    """Free-form text given to an action that takes none."""


class _SplatError(Exception):
    """Task args from a template that do not resolve to a mapping."""

    def __init__(self, action: str, where: str, detail: str) -> None:
        self.stage = f"Finalization of task args for 'ansible.builtin.{action}' failed"
        self.where = where
        self.detail = detail
        super().__init__(f"{self.stage}: {detail}")


class _ArgError(TemplateError):
    def __init__(self, stage: str, key: str, detail: str) -> None:
        self.stage = stage
        self.key = key
        self.detail = detail
        self.full = f"{stage} failed: {detail}"
        super().__init__(self.full)


_TRUE = frozenset({"y", "yes", "on", "1", "true", "t", "1.0"})
_FALSE = frozenset({"n", "no", "off", "0", "false", "f", "0.0"})


def strict_bool(value: Any) -> bool | None:
    """ansible's boolean(strict=True): the boolean, or None when ``value`` is not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    return None


def first_failed_cond(templar: Templar, conds: list[Any]) -> Any:
    """The first ``when`` condition that is false (None when all hold)."""
    for c in conds:
        if not templar.condition(c):
            return c
    return None


def _break_loop(
    templar: Templar, conds: Any, task: Task, view: VarsView, result: dict[str, Any]
) -> bool:
    """loop_control.break_when: whether the loop stops after this item (the item's result is
    visible under the task's ``register``)."""
    reg = task.kw.get("register")
    if reg:
        templar = Templar(view.with_layer({str(reg): result}))
    return first_failed_cond(templar, conds if isinstance(conds, list) else [conds]) is None


def registered(result: dict[str, Any]) -> dict[str, Any]:
    """What ``register:`` stores: the result without the internal keys, marked as data."""
    # a registered result is data (loop items included), never templated again
    out = {
        k: v
        for k, v in result.items()
        if not k.startswith("_ansible_") and k not in _RESULT_INTERNAL
    }
    # ansible's strategy drops the module's invocation from what register stores
    out.pop("invocation", None)
    items = out.get("results")
    if isinstance(items, list):
        # ansible's strip_internal_keys: no _ansible_* key at any depth of a loop's results
        out["results"] = [
            {
                k: v
                for k, v in i.items()
                if not (isinstance(k, str) and k.startswith(("_ansible_", "_fk_")))
            }
            if isinstance(i, dict)
            else i
            for i in items
        ]
    out.setdefault("changed", False)  # ansible's executor adds it to every result
    marked = mark_unsafe(out)
    items = out.get("results")
    if isinstance(items, list):
        # each item's loop variable is the item itself, as trusted as where it came from
        for i, (raw, safe) in enumerate(zip(items, marked["results"], strict=True)):
            if isinstance(raw, dict) and isinstance(safe, dict):
                lv = raw.get("ansible_loop_var")
                if isinstance(lv, str) and lv in raw:
                    marked["results"][i][UnsafeText(lv)] = raw[lv]
        originals = result.get("results")
        if isinstance(originals, list) and len(originals) == len(items):
            for original, safe in zip(originals, marked["results"], strict=True):
                _keep_set_facts(original, safe)
    _keep_set_facts(result, marked)
    return marked


def _keep_literal_facts(raw: Any, params: Mapping[str, Any], result: dict[str, Any]) -> None:
    """set_fact runs on the controller: a fact written as a plain value in the playbook keeps
    its trust, as ansible's action returns it tagged ``TrustedAsTemplate`` (a rendered template
    is data in both)."""
    facts = result.get("ansible_facts")
    if not isinstance(raw, Mapping) or not isinstance(facts, dict):
        return
    for key, value in raw.items():
        if key in facts and key in params and not _has_template(value):
            facts[key] = params[key]


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return isinstance(value, UnsafeText) or is_template(value)
    if isinstance(value, Mapping):
        return any(_has_template(k) or _has_template(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_template(v) for v in value)
    return False


def _keep_set_facts(raw: Any, marked: Any) -> None:
    """A set_fact result's ``ansible_facts`` are the facts it set, as trusted as they are in
    the variables (ansible returns the same values, data tags included)."""
    if isinstance(raw, dict) and isinstance(marked, dict) and "_ansible_facts_cacheable" in raw:
        facts = raw.get("ansible_facts")
        if isinstance(facts, dict):
            marked["ansible_facts"] = dict(facts)


def _broken_conditional(
    task: Task, exc: BrokenConditional, mapping: str | None, key: str
) -> dict[str, Any]:
    """An empty conditional (``when: ""``, ``assert: that:``): ansible's chained error, with
    the help on the cause's own line when the expression's place is unknown."""
    msg = f"Task failed: {exc}"
    src: Any = task.src
    if mapping is not None and src is not None:
        src = src.get(mapping)
    where = src.pos.get(key) if isinstance(src, Located) else None
    if isinstance(src, Located) and isinstance(src.get(key), str) and where is not None:
        cause = (str(exc), task.path, where[2], where[3])
        help_line: str | None = exc.help
    else:
        cause, help_line = (f"{exc} {exc.help}", "", 0, 0), None
    r: dict[str, Any] = {
        "failed": True,
        "changed": False,
        "msg": msg,
        "exception": "(traceback unavailable)",
        "_fk_error": msg,
        "_fk_chain": [("Task failed.", task.path, task.line, task.col), cause],
    }
    if help_line:
        r["_fk_help"] = help_line
    return r


def _untrusted(task: Task, exc: UntrustedTemplate) -> dict[str, Any]:
    """An expression from data was to be evaluated: ansible's chained error."""
    msg = f"Task failed: {exc}"
    if exc.origin is not None:
        cause = (str(exc), *exc.origin)
    else:
        cause = (f"{exc} {exc.help}", "", 0, 0)
    r: dict[str, Any] = {
        "failed": True,
        "changed": False,
        "msg": msg,
        "exception": "(traceback unavailable)",
        "_fk_error": msg,
        "_fk_chain": [("Task failed.", task.path, task.line, task.col), cause],
    }
    if exc.origin is not None:
        r["_fk_help"] = exc.help
    return r


def _normalize_failure(result: dict[str, Any]) -> None:
    """A failed result carries ``exception`` (as ansible 2.19's captured-error normalization;
    without a traceback it reads "(traceback unavailable)")."""
    if not result.get("exception") and not result.get("_fk_error"):
        result["exception"] = "(traceback unavailable)"


class ConnectionCache:
    """One connection per (host, kind), opened on first use and closed at the end of the run."""

    def __init__(self, vm: VariableManager, opts: RunOptions) -> None:
        self.vm = vm
        self.opts = opts
        self._conns: dict[tuple[str, str, str, str], Connection] = {}
        self._lock = threading.Lock()

    def get(
        self,
        host: str,
        variables: Mapping[str, Any] | None = None,
        forced: str | None = None,
        remote_user: str | None = None,
        port: str | None = None,
    ) -> Connection:
        """The connection to ``host`` (``forced``: the task's ``connection:`` keyword;
        ``remote_user``/``port``: the task's keywords). Inventory variables win over keywords,
        keywords over the command line (-c, -u, --private-key, -T, --ssh-*-args) and
        ansible.cfg."""
        opts, cfg = self.opts, self.opts.config
        hv: Mapping[str, Any] = (
            variables
            if variables is not None
            else (self.vm.host_view(host) if host in self.vm.inv.hosts else {})
        )
        kind = str(
            hv.get("ansible_connection")
            or forced
            or opts.connection
            or cfg.get("transport")
            or "ssh"
        )
        inv_host = self.vm.inv.hosts.get(host)
        explicit = inv_host is not None and not inv_host.implicit
        if (
            host in ("localhost", "127.0.0.1", "::1")
            and not explicit
            and "ansible_connection" not in hv
            and not forced
        ):
            # ansible's implicit localhost is local; a localhost named in the inventory
            # (`-i localhost,`) is a host like any other: ssh unless its connection says so
            kind = "local"
        kind = {
            "smart": "ssh",
            "paramiko": "ssh",
            "paramiko_ssh": "ssh",
            "ansible.builtin.local": "local",
            "ansible.builtin.ssh": "ssh",
        }.get(kind, kind)
        user = hv.get("ansible_user", hv.get("ansible_ssh_user")) or remote_user
        user = user or opts.remote_user or cfg.get("remote_user")
        port_value = hv.get("ansible_port", hv.get("ansible_ssh_port"))
        if port_value in (None, ""):
            port_value = port if port not in (None, "") else cfg.get("remote_port")
        key = (host, kind, str(user), str(port_value))
        with self._lock:
            conn = self._conns.get(key)
            if conn is not None:
                return conn
            if kind == "local":
                conn = LocalConnection(host)
            elif kind == "ssh":
                hkc: Any = hv.get(
                    "ansible_ssh_host_key_checking", hv.get("ansible_host_key_checking")
                )
                if hkc is None:
                    hkc = cfg.get("host_key_checking")
                if hkc is None:
                    env_hkc = os.environ.get("ANSIBLE_HOST_KEY_CHECKING")
                    hkc = env_hkc if env_hkc is not None else True
                timeout = hv.get("ansible_ssh_timeout", hv.get("ansible_timeout"))
                if timeout is None:
                    timeout = opts.timeout_s or cfg.get("timeout") or 10
                common = hv.get("ansible_ssh_common_args", opts.ssh_common_args)
                extra = hv.get("ansible_ssh_extra_args", opts.ssh_extra_args)
                conn = SSHConnection(
                    host,
                    str(hv.get("ansible_host", hv.get("ansible_ssh_host", host))),
                    port=_int_keyword("port", port_value) if port_value not in (None, "") else None,
                    user=str(user) if user else None,
                    key_file=hv.get(
                        "ansible_ssh_private_key_file", hv.get("ansible_private_key_file")
                    )
                    or opts.private_key_file
                    or cfg.get("private_key_file"),
                    host_key_checking=to_bool(hkc),
                    connect_timeout_s=_int_keyword("timeout", timeout),
                    extra_args=" ".join(str(a) for a in (common, extra) if a).strip(),
                    python=configured_python(hv, cfg) or "python3",
                )
            else:
                plugin = find_connection_plugin(kind)
                if plugin is not None:
                    conn = PluginConnection(host, kind, plugin, hv, str(user) if user else None)
                    self._conns[key] = conn
                    return conn
                raise PlaybookError(
                    f"the connection plugin '{kind}' was not found",
                    hint="fleetkit supports the local and ssh connections",
                )
            self._conns[key] = conn
            return conn

    def reset(self, host: str) -> None:
        """``meta: reset_connection``: close ``host``'s connections (reopened on next use)."""
        with self._lock:
            for key in [k for k in self._conns if k[0] == host]:
                try:
                    self._conns.pop(key).close()
                except OSError:
                    pass

    def close(self) -> None:
        """Close every connection opened during the run (all at once: each waits for its
        host's agents to exit)."""
        conns = list(self._conns.values())
        self._conns.clear()

        def close_one(conn: Connection) -> None:
            try:
                conn.close()
            except OSError:
                pass

        if len(conns) > 1:
            with ThreadPoolExecutor(min(len(conns), 32), thread_name_prefix="fk-close") as pool:
                list(pool.map(close_one, conns))
        else:
            for conn in conns:
                close_one(conn)
        cleanup_control_dir()


class RetryPrinter:
    """Orders ``FAILED - RETRYING`` lines: ansible (-f 1) prints a host's retries just before
    its result, so they are printed live only while the main thread waits on that host and
    buffered until then otherwise (or printed as they come: free strategy)."""

    def __init__(self, cb: Callback, name_of: Callable[[Task, str], str]) -> None:
        self.cb = cb
        self._name_of = name_of
        self._lock = threading.Lock()
        self._live: str | None = None
        self.ordered = True
        self._buf: dict[str, list[tuple[Task, str, int, int, dict[str, Any]]]] = {}

    def emit(self, host: str, task: Task, attempt: int, total: int, result: dict[str, Any]) -> None:
        """A retry of ``task`` on ``host`` (called from worker threads)."""
        name = self._name_of(task, host)
        with self._lock:
            if self._live == host or not self.ordered:
                self.cb.retry(host, task, name, attempt, total, dict(result))
            else:
                self._buf.setdefault(host, []).append((task, name, attempt, total, dict(result)))

    def await_host(self, host: str, fut: Future[TaskResult]) -> TaskResult:
        """Wait for ``host``'s result, printing its retries in order."""
        with self._lock:
            for task, name, attempt, total, result in self._buf.pop(host, []):
                self.cb.retry(host, task, name, attempt, total, result)
            self._live = host
        try:
            return fut.result()
        finally:
            with self._lock:
                self._live = None
                for task, name, attempt, total, result in self._buf.pop(host, []):
                    self.cb.retry(host, task, name, attempt, total, result)


class TaskExecutor:
    """Runs one task on one host and classifies its result (ok, changed, failed ...)."""

    def __init__(self, vm: VariableManager, opts: RunOptions, cb: Callback) -> None:
        self.vm = vm
        self.opts = opts
        self.cb = cb
        self.connections = ConnectionCache(vm, opts)
        self.retries = RetryPrinter(cb, self.retry_name)
        self._sems: dict[int, threading.Semaphore] = {}
        self._warned: set[str] = set()
        self._sem_lock = threading.Lock()

    def kw_bool(
        self,
        task: Task | IncludeTasks | IncludeRole,
        key: str,
        host: str,
        invalid: bool | None = None,
    ) -> bool:
        """A boolean task keyword, templated for ``host`` (``invalid``: the answer for a
        value that is not a boolean, as ansible's no_log masks and ignore_errors ignores)."""
        v = task.kw.get(key)
        if v is None:
            return False
        if isinstance(v, bool):
            return v
        try:
            value = Templar(self.vm.task_vars(host, task)).template(v)
        except TemplateError:
            return bool(invalid)
        if invalid is not None:
            strict = strict_bool(value)
            return invalid if strict is None else strict
        return to_bool(value)

    def _item_bool(self, task: Task, key: str, templar: Templar) -> bool:
        """A boolean task keyword templated with one loop item's variables."""
        v = task.kw.get(key)
        if v is None or isinstance(v, bool):
            return bool(v)
        try:
            return to_bool(templar.template(v))
        except TemplateError:
            return False

    def task_name(self, task: Task, host: str) -> str:
        """The task's name as the banner shows it (templated for ``host``)."""
        name = task.display_name()
        # (an unnamed task shows its action as written, even a templated one)
        if task.name and "{{" in name:
            try:
                name = str(Templar(self.vm.task_vars(host, task)).template(name))
            except TemplateError:
                pass
        if task.role is not None:
            # ansible's Task.get_name(): "<role> : <task>"
            return f"{task.role.name} : {name.strip()}"
        return name.strip()

    def retry_name(self, task: Task, host: str) -> str:
        """The name a ``FAILED - RETRYING`` line shows: the task's own (templated) name, without
        the role prefix (ansible's TaskResult.task_name); an unnamed task's banner name."""
        if not task.name:
            return self.task_name(task, host)
        name = task.name
        if "{{" in name:
            try:
                name = str(Templar(self.vm.task_vars(host, task)).template(name))
            except TemplateError:
                pass
        return name.strip()

    def execute(
        self, host: str, task: Task, module: Module, extra: Mapping[str, Any] | None
    ) -> TaskResult:
        """Run ``task`` on ``host`` (in a fork): loop, conditions, retries, the module."""
        if "no_log" not in task.kw and self.opts.config.get("no_log"):
            # ansible.cfg's no_log / ANSIBLE_NO_LOG: the default of the keyword
            task = dataclasses.replace(task, kw={**task.kw, "no_log": True})
        with messages.collecting() as raised:
            res = self._execute_throttled(host, task, module, extra)
        messages.apply(res.result, raised)
        # an item's warnings show on its line; the loop's result carries them all (as ansible
        # accumulates them), after the ones the engine raised
        for key in ("warnings", "deprecations"):
            moved: list[Any] = []
            for _status, item in res.items:
                if key == "warnings":
                    messages.apply(item)
                moved.extend(item.pop(key, None) or ())
            if moved:
                res.result[key] = list(res.result.get(key) or ()) + moved
        return res

    def _loop_facts(
        self, task: Task, view: Mapping[str, Any], layer: dict[str, Any], facts: dict[str, Any]
    ) -> None:
        """An item's facts for the next items, as ansible's executor updates its variables:
        set_fact/include_vars as they are; a module's into ``ansible_facts`` (without their
        prefix) and, cleaned of restricted keys, as variables of their own."""
        if task.action in ("set_fact", "include_vars"):
            layer.update(facts)
            return
        current = layer.get("ansible_facts", view.get("ansible_facts"))
        merged = dict(current) if isinstance(current, Mapping) else {}
        merged.update(namespace_facts(facts))
        layer["ansible_facts"] = merged
        if self.opts.config.get("inject_facts_as_vars", True):
            layer.update(clean_facts(facts)[0])

    def _execute_throttled(
        self, host: str, task: Task, module: Module, extra: Mapping[str, Any] | None
    ) -> TaskResult:
        limit = task.kw.get("throttle")
        if limit in (None, 0, "0"):
            return self._execute(host, task, module, extra)
        sem = self._throttle(task, host)
        if sem is None:
            return self._execute(host, task, module, extra)
        with sem:
            return self._execute(host, task, module, extra)

    def _throttle(self, task: Task, host: str) -> threading.Semaphore | None:
        """``throttle:``: at most N forks run this task at once."""
        with self._sem_lock:
            sem = self._sems.get(task.uid)
            if sem is None:
                try:
                    n = int(Templar(self.vm.task_vars(host, task)).template(task.kw["throttle"]))
                except (TemplateError, TypeError, ValueError) as exc:
                    # ansible's strategy aborts the run on a throttle it cannot convert
                    where = f"{task.path}:{task.line}: " if task.path else ""
                    raise PlaybookError(
                        f"{where}Failed to convert the throttle value to an integer: {exc}",
                        hint="throttle must be an integer (or a template giving one)",
                    ) from None
                if n <= 0:
                    return None
                sem = self._sems[task.uid] = threading.Semaphore(n)
            return sem

    def _execute(
        self, host: str, task: Task, module: Module, extra: Mapping[str, Any] | None
    ) -> TaskResult:
        tv = self.vm.task_vars(host, task, extra)
        templar = Templar(tv)
        delegate = None
        try:
            if task.kw.get("delegate_to"):
                delegate = str(templar.template(task.kw["delegate_to"]))
            elif task.src is not None and "local_action" in task.src:
                delegate = "localhost"
        except TemplateError as exc:
            return self._template_failure(
                host, task, "Error while evaluating conditional", exc, module
            )
        if delegate is not None:
            # ansible's ansible_delegated_vars: the delegated host's variables for the task
            tv = tv.with_layer({"ansible_delegated_vars": {delegate: self._delegated_vars(
                host, delegate, task
            )}})  # fmt: skip
            templar = Templar(tv)
        loop_error: TemplateUndefined | None = None
        if task.kw.get("loop") is not None:
            try:
                items = loop_items(task.kw, templar, tv, task.action)
            except TemplateUndefined as exc:
                # ansible keeps the error until the condition is known: a skipped task is fine
                loop_error = exc
            except TemplateError as exc:
                return self._template_failure(
                    host, task, "Error while evaluating conditional", exc, module
                )
            else:
                try:
                    return self._execute_loop(host, task, module, tv, templar, delegate, items)
                except TemplateError as exc:
                    return self._template_failure(
                        host, task, "Error while evaluating conditional", exc, module
                    )
        try:
            cond = first_failed_cond(templar, task.when)
        except TemplateError as exc:
            return self._template_failure(
                host, task, "Error while evaluating conditional", exc, module, conditional=True
            )
        if cond is None and loop_error is not None:
            return self._loop_failure(host, task, loop_error, module)
        if cond is not None:
            r = {
                "changed": False,
                "skipped": True,
                "skip_reason": "Conditional result was False",
                "false_condition": cond,
            }
            return TaskResult(
                host, task, r, "skipped", delegated_to=delegate, controller=module.controller
            )
        result = self._run_with_retries(host, task, module, tv, templar, delegate)
        return self._classify(host, task, module, result, delegate, tv)

    def _delegated_vars(self, host: str, delegate: str, task: Task) -> VarsView:
        """The variables of ``delegate`` for ``task`` (its ``inventory_hostname`` stays the
        task host's); a host the inventory does not know has none (ansible's bare Host)."""
        layers: list[Mapping[str, Any]] = [{"inventory_hostname": host}]
        if delegate in self.vm.inv.hosts:
            layers.append(self.vm.task_vars(delegate, task))
        return VarsView(layers)

    def _template_failure(
        self,
        host: str,
        task: Task,
        what: str,
        exc: Exception,
        module: Module,
        conditional: bool = False,
    ) -> TaskResult:
        if isinstance(exc, BrokenConditional):
            r = _broken_conditional(task, exc, None, "when")
            r.pop("changed")
            return TaskResult(
                host,
                task,
                r,
                "failed",
                ignored=self._ignore(task, host),
                controller=module.controller,
            )
        # ansible names the conditional only for an undefined variable (broken conditionals,
        # syntax and trust errors speak for themselves)
        text = str(exc) if conditional and not isinstance(exc, TemplateUndefined) else None
        detail = text or f"{what}: {exc}"
        msg = f"Task failed: {detail}"
        chain = [("Task failed.", task.path, task.line, task.col)]
        if task.src is not None and "when" in task.src.pos:
            _kl, _kc, vl, vc = task.src.pos["when"]
            chain.append((detail, task.path, vl, vc))
        r = {"failed": True, "msg": msg, "_fk_error": msg, "_fk_chain": chain}
        if isinstance(exc, TemplateError) and exc.hint:
            r["_fk_help"] = exc.hint
        return TaskResult(
            host, task, r, "failed", ignored=self._ignore(task, host), controller=module.controller
        )

    def _loop_failure(
        self, host: str, task: Task, exc: TemplateError, module: Module
    ) -> TaskResult:
        msg = f"Task failed: {exc}"
        chain = [("Task failed.", task.path, task.line, task.col)]
        src = task.src
        key = "loop" if task.kw.get("_with") is None else f"with_{task.kw['_with']}"
        if src is not None and key in src.pos:
            _kl, _kc, vl, vc = src.pos[key]
            chain.append((str(exc), task.path, vl, vc))
        r = {"failed": True, "msg": msg, "_fk_error": msg, "_fk_chain": chain}
        return TaskResult(
            host, task, r, "failed", ignored=self._ignore(task, host), controller=module.controller
        )

    def _ignore(self, task: Task, host: str) -> bool:
        return self.kw_bool(task, "ignore_errors", host, invalid=True)

    def _classify(
        self,
        host: str,
        task: Task,
        module: Module,
        result: dict[str, Any],
        delegate: str | None,
        tv: VarsView,
    ) -> TaskResult:
        if result.get("unreachable"):
            ignored = self.kw_bool(task, "ignore_unreachable", host)
            return TaskResult(
                host,
                task,
                result,
                "unreachable",
                ignored=ignored,
                delegated_to=delegate,
                controller=module.controller,
            )
        if task.kw.get("no_log"):
            if self.kw_bool(task, "no_log", host, invalid=True):
                result["_ansible_no_log"] = True
        # ansible's TaskResult.is_failed: failed_when's verdict wins over 'failed'
        failed = result.get("failed_when_result", result.get("failed"))
        if failed:
            return TaskResult(
                host,
                task,
                result,
                "failed",
                ignored=self._ignore(task, host),
                delegated_to=delegate,
                controller=module.controller,
            )
        if result.get("skipped"):
            return TaskResult(
                host, task, result, "skipped", delegated_to=delegate, controller=module.controller
            )
        status = "changed" if result.get("changed") else "ok"
        return TaskResult(
            host, task, result, status, delegated_to=delegate, controller=module.controller
        )

    def _run_with_retries(
        self,
        host: str,
        task: Task,
        module: Module,
        tv: VarsView,
        templar: Templar,
        delegate: str | None,
        loop_vars: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        until = task.kw.get("until")
        retries_raw = task.kw.get("retries")
        delay_raw = task.kw.get("delay")
        try:
            retries = (
                int(templar.template(retries_raw))
                if retries_raw is not None
                else (3 if until is not None else 0)
            )
            delay = float(templar.template(delay_raw)) if delay_raw is not None else 5.0
        except (TemplateError, TypeError, ValueError) as exc:
            return {"failed": True, "changed": False, "msg": f"invalid retries/delay: {exc}"}
        total = max(retries, 0) + 1
        if until is None and retries_raw is None:
            total = 1
        reg = task.kw.get("register")
        no_log = "no_log" in task.kw and self.kw_bool(task, "no_log", host, invalid=True)
        result: dict[str, Any] = {}
        for attempt in range(1, total + 1):
            result = self._run_once(host, task, module, tv, templar, delegate)
            self._check_result_no_log(result)
            if no_log:
                result["_ansible_no_log"] = True
            if result.get("unreachable"):
                return result
            if "failed" not in result:
                # as ansible's TaskExecutor: a result without them says failed/changed false
                result["failed"] = "rc" in result and result["rc"] not in (0, "0")
            result.setdefault("changed", False)
            if result.get("failed") and not module.controller:
                _normalize_failure(result)  # ansible normalizes a module's failure first
            if total > 1:
                # attempts is visible to changed_when/failed_when (ansible sets it first)
                result["attempts"] = attempt
            result = self._apply_when_rules(task, result, tv, reg)
            if result.get("failed"):
                _normalize_failure(result)
            if total > 1:
                check_view = tv.with_layer({str(reg): result}) if reg else tv
                if until is not None:
                    try:
                        done = (
                            Templar(check_view).condition(until)
                            if not isinstance(until, list)
                            else all(Templar(check_view).condition(u) for u in until)
                        )
                    except TemplateError as exc:
                        result["failed"] = True
                        result["msg"] = f"The conditional check '{until}' failed: {exc}"
                        return result
                else:
                    done = not result.get("failed")
                if done:
                    return result
                if attempt < total:
                    result["retries"] = total
                    self.retries.emit(host, task, attempt, total, result)
                    result.pop("retries", None)
                    if delay > 0:
                        time.sleep(delay)
        if total > 1:
            result["attempts"] = total - 1
            if not result.get("failed"):
                # ansible marks the exhausted result failed itself: an action failure
                result["_fk_action_failed"] = True
            result["failed"] = True
        return result

    def _check_result_no_log(self, result: dict[str, Any]) -> None:
        """A result's own ``_ansible_no_log`` (an action plugin's) censors it when truthy; a
        non-boolean value censors it with ansible's warning (printed once, as ansible's)."""
        value = result.get("_ansible_no_log")
        if value is None or isinstance(value, bool):
            return
        kind = "str" if isinstance(value, str) else type(value).__name__  # (not UnsafeText)
        msg = (
            f"Invalid _ansible_no_log value of type {kind!r} in task result, output will be masked."
        )
        result["_ansible_no_log"] = True
        with self._sem_lock:
            if msg in self._warned:
                return
            self._warned.add(msg)
        self.cb.warning(msg)

    def _apply_when_rules(
        self, task: Task, result: dict[str, Any], tv: VarsView, reg: Any
    ) -> dict[str, Any]:
        cw = task.kw.get("changed_when")
        fw = task.kw.get("failed_when")
        if cw is None and fw is None:
            return result
        if result.get("_fk_error") and not result.get("_fk_module_error"):
            return result  # the task itself failed: no result to judge
        view = tv.with_layer({str(reg): result}) if reg else tv
        t = Templar(view)
        condname = "changed"
        try:
            if cw is not None:
                conds = cw if isinstance(cw, list) else [cw]
                result["changed"] = all(t.condition(c) for c in conds)
                view = tv.with_layer({str(reg): result}) if reg else tv
                t = Templar(view)
            condname = "failed"
            if fw is not None:
                conds = fw if isinstance(fw, list) else [fw]
                failed = all(t.condition(c) for c in conds)
                if failed and not result.get("failed"):
                    # the module succeeded: ansible reports it as the action's failure
                    result["_fk_action_failed"] = True
                result["failed_when_result"] = failed
                result["failed"] = failed
                if not failed and result.get("exception"):
                    result["failed_when_suppressed_exception"] = result.pop("exception")
        except TemplateError as exc:
            # as ansible: the result stays, failed, with the error as <cond>_when_result
            result["failed"] = True
            result[f"{condname}_when_result"] = f"Error while evaluating conditional: {exc}"
            result["_fk_action_failed"] = True
            if "msg" not in result:
                result["msg"] = result["_fk_error"] = "Task failed: Action failed: Unknown error."
        return result

    def _splat(self, task: Task, templar: Templar) -> dict[str, Any]:
        """Task args from a whole template (``x: '{{ d }}'``, ``args: '{{ d }}'``): ansible
        templates them to a mapping under the explicit arguments ("arg splat")."""
        source = dict(task.args)
        if task.action in RAW_PARAM_ACTIONS:
            return source
        splat: dict[str, Any] = {}
        for key in ("_variable_params", "_raw_params"):
            if key not in source:
                continue
            raw = source.pop(key)
            if key == "_raw_params" and not (isinstance(raw, str) and is_whole_template(raw)):
                raise _RawParams(
                    f"Action 'ansible.builtin.{task.action}' does not support raw params."
                )
            where = "args" if key == "_variable_params" else task.mod_key
            self._warn_splat(task, where)
            try:
                value = templar.template(raw)
            except TemplateError as exc:
                raise _SplatError(task.action, where, str(exc)) from None
            if value == OMIT:
                value = {}
            if not isinstance(value, dict):
                kind = {"NoneType": "None"}.get(type(value).__name__, type(value).__name__)
                raise _SplatError(
                    task.action, where, f"Task args must resolve to a 'dict' not '{kind}'."
                )
            splat.update(value)
        return {**splat, **source}

    def _warn_splat(self, task: Task, where: str) -> None:
        msg = (
            "Using a template for task args is unsafe in some situations (see "
            "https://docs.ansible.com/ansible/devel/reference_appendices/faq.html#argsplat-unsafe)."
        )
        origin = None
        if task.src is not None and where in task.src.pos:
            _kl, _kc, vl, vc = task.src.pos[where]
            origin = (task.path, vl, vc)
        messages.warning(msg, origin)

    def _module_args(self, task: Task, templar: Templar) -> dict[str, Any]:
        raw_keys = RAW_ARGS.get(task.action, ())
        args: dict[str, Any] = {}
        for k, v in self._splat(task, templar).items():
            if k in raw_keys:
                if isinstance(v, str) and "omit" in v and is_whole_template(v):
                    try:
                        if templar.template(v) == OMIT:
                            continue  # an omitted raw argument is left out, as any other
                    except TemplateError:
                        pass
                args[k] = v
                continue
            try:
                value = templar.template(v)
            except TemplateError as exc:
                raise _ArgError(
                    f"Finalization of task args for 'ansible.builtin.{task.action}'",
                    k,
                    f"Error while resolving value for '{k}': {exc}",
                ) from None
            if value == OMIT:
                continue
            if task.action == "set_fact" and k != "cacheable":
                # a rare place where ansible templates a key (dynamic variable names)
                try:
                    name = templar.template(k)
                except TemplateError as exc:
                    raise _ArgError(
                        f"Finalization of task args for 'ansible.builtin.{task.action}'",
                        k,
                        f"Error while resolving key '{k}': {exc}",
                    ) from None
                if not valid_var_name(name):
                    raise _BadKey(k, name)
                k = str(name)
            args[k] = value
        return args

    def _environment(self, task: Task, templar: Templar) -> dict[str, str] | None:
        """The task's ``environment`` (play, block and task entries, in that order) as
        ansible's Task post-validates it: an omitted value or entry is left out, a value that
        needs ``ansible_env`` before facts exist is skipped, a non-dict entry is warned about."""
        raw = task.kw.get("environment")
        if not raw:
            return None
        items = raw if isinstance(raw, list) else [raw]
        env: dict[str, str] = {}
        for item in items:
            if item is None or (isinstance(item, (dict, list, str)) and not item):
                continue
            if isinstance(item, dict):
                for key, value in item.items():
                    try:
                        rendered = templar.template(value)
                    except TemplateUndefined as exc:
                        if "ansible_env" in str(exc) or (
                            task.action in ("setup", "gather_facts")
                            and "ansible_facts.env" in str(exc)
                        ):
                            continue  # the env facts are not gathered yet
                        raise
                    if rendered != OMIT:
                        env[str(key)] = str(rendered)
                continue
            value = templar.template(item)
            if value == OMIT:
                continue  # an omitted entry is left out
            if not isinstance(value, dict):
                shown = json.dumps(items, default=str)
                self.cb.warning(f"could not parse environment value, skipping: {shown}")
                continue
            env.update({str(k): str(v) for k, v in value.items() if v != OMIT})
        return env

    def _become(self, task: Task, tv: VarsView) -> Become | None:
        """Privilege escalation: ansible's become plugin for the task's method, its options
        resolved as ansible does (variables over keywords over -b/--become-user, ansible.cfg);
        raises BecomeFailed for a method no plugin provides."""
        opts, cfg = self.opts, self.opts.config
        templar = Templar(tv)

        def pick(var: str, kw: str, cli: Any, default: Any) -> Any:
            if var in tv:
                return templar.template(tv.raw(var))
            if task.kw.get(kw) is not None:
                return templar.template(task.kw[kw])
            if cli is not None:
                return cli
            return cfg.get(kw, default)

        become = pick("ansible_become", "become", True if opts.become else None, False)
        if not to_bool(become):
            return None
        method = pick("ansible_become_method", "become_method", None, None)
        if method is None:
            method = opts.become_method or "sudo"
        # the plugin's options as ansible's task executor sets them: the become keywords that
        # are set (and -K's password), then the plugin's own variables, ansible.cfg, env
        keywords: dict[str, Any] = {}
        user = task.kw.get("become_user")
        keywords["become_user"] = (
            str(templar.template(user)) if user is not None else opts.become_user
        )
        for kw in ("become_flags", "become_exe"):
            if task.kw.get(kw) is not None:
                keywords[kw] = templar.template(task.kw[kw])
        if opts.become_password is not None:
            keywords["become_pass"] = opts.become_password
        keywords = {k: v for k, v in keywords.items() if v is not None}

        def lookup(var: str) -> tuple[bool, Any]:
            if var in tv:
                return True, templar.template(tv.raw(var))
            return False, None

        return resolve_become(str(method), keywords, lookup)

    def _tmp_share_failure(
        self, ctx: ModuleContext, become: Become, task: Task, tv: VarsView
    ) -> dict[str, Any] | None:
        """ansible's result where a module's temporary files could not be shared with an
        unprivileged become user (``_fixup_perms2``); None where ansible goes on."""
        action = (task.mod_key or task.action).rsplit(".", 1)[-1]
        if action in _NO_MODULE_FILES:
            return None
        templar = Templar(tv)
        shell = _shell_options(tv, templar)
        remote_user = login_user(ctx.conn)
        admin_users = [str(u) for u in shell.get("admin_users") or ["root"]]
        if not become.user or become.user in [*admin_users, remote_user]:
            return None
        pipelining: Any = self.opts.config.get("pipelining", False)
        for var in ("ansible_pipelining", "ansible_ssh_pipelining"):
            if var in tv:
                pipelining = templar.template(tv.raw(var))
        if to_bool(pipelining) and plugin_pipelining(become) and action not in _TRANSFERS_FILES:
            return None
        group = shell.get("common_remote_group")
        share = share_tmp_files(
            ctx.conn,
            become.user,
            remote_user,
            admin_users,
            None if group is None else str(group),
            bool(shell.get("world_readable_temp")),
        )
        for warning in share.warnings:
            self.cb.warning(warning)
        if share.error is None:
            return None
        msg = f"Task failed: {share.error}"
        return {"failed": True, "changed": False, "msg": msg, "_fk_error": msg}

    def _bool_keywords(self, task: Task, templar: Templar) -> dict[str, Any] | None:
        """ansible's post_validate of the boolean keywords the executor reads: a value that
        is not a boolean fails the task (None when all are fine)."""
        for key in ("check_mode", "diff", "become", "ignore_errors", "no_log"):
            raw = task.kw.get(key)
            if raw is None or isinstance(raw, bool):
                continue
            try:
                value = templar.template(raw)
            except TemplateError:
                continue  # reported where the keyword is used
            if strict_bool(value) is not None:
                continue
            detail = f"The value {str(value)!r} could not be converted to 'bool'."
            msg = f"Task failed: Error processing keyword '{key}': {detail}"
            chain = [("Task failed.", task.path, task.line, task.col)]
            vl = vc = 0
            if task.src is not None and key in task.src.pos:
                _kl, _kc, vl, vc = task.src.pos[key]
            where = task.path if vl else ""
            if key == "no_log":
                self.cb.warning(
                    "Invalid no_log value for task, output will be masked: "
                    f"Error processing keyword 'no_log': {detail}"
                )
            chain.append((f"Error processing keyword '{key}'.", where, vl, vc))
            chain.append((detail, where, vl, vc))
            return {
                "failed": True,
                "changed": False,
                "msg": msg,
                "_fk_error": msg,
                "_fk_chain": chain,
            }
        return None

    def _run_once(
        self,
        host: str,
        task: Task,
        module: Module,
        tv: VarsView,
        templar: Templar,
        delegate: str | None,
    ) -> dict[str, Any]:
        bad = self._bool_keywords(task, templar)
        if bad is not None:
            return bad
        try:
            args = self._module_args(task, templar)
        except _RawParams as exc:
            msg = f"Task failed: {exc}"
            return {"failed": True, "changed": False, "msg": msg, "_fk_error": msg}
        except _SplatError as exc:
            msg = f"Task failed: {exc}"
            chain = [(f"Task failed: {exc.stage}.", task.path, task.line, task.col)]
            if task.src is not None and exc.where in task.src.pos:
                _kl, _kc, vl, vc = task.src.pos[exc.where]
                chain.append((exc.detail, task.path, vl, vc))
            return {
                "failed": True,
                "changed": False,
                "msg": msg,
                "_fk_error": msg,
                "_fk_chain": chain,
            }
        except _BadKey as exc:
            msg = f"Task failed: {exc.msg}"
            chain = [("Task failed.", task.path, task.line, task.col)]
            src = task.src
            value = src.get(task.mod_key) if src is not None else None
            if isinstance(value, Located) and exc.key in value.pos:
                kl, kc, _vl, _vc = value.pos[exc.key]
                chain.append((exc.msg, task.path, kl, kc))
            else:
                chain.append((exc.msg, "", 0, 0))
            return {
                "failed": True,
                "changed": False,
                "msg": msg,
                "_fk_error": msg,
                "_fk_chain": chain,
                "_fk_help": "Variable names must be strings starting with a letter or underscore "
                "character, and contain only letters, numbers and underscores.",
            }
        except _ArgError as exc:
            msg = f"Task failed: {exc.full}"
            chain = [(f"Task failed: {exc.stage} failed.", task.path, task.line, task.col)]
            src = task.src
            if src is not None and task.mod_key in src.pos:
                kl, kc, vl, vc = src.pos[task.mod_key]
                if (kl, kc) != (task.line, task.col):
                    # ansible merges causes that share an origin; here they differ
                    chain = [
                        ("Task failed.", task.path, task.line, task.col),
                        (f"{exc.stage} failed.", task.path, kl, kc),
                    ]
                value = src.get(task.mod_key)
                if isinstance(value, Located) and exc.key in value.pos:
                    _a, _b, vl, vc = value.pos[exc.key]
                chain.append((exc.detail, task.path, vl, vc))
            else:
                chain.append((exc.detail, "", 0, 0))
            out = {
                "failed": True,
                "msg": msg,
                "exception": "(traceback unavailable)",
                "_fk_error": msg,
                "_fk_chain": chain,
            }
            out["changed"] = False  # (the debug display hides it)
            return out
        defaults = task.kw.get("module_defaults")
        with_defaults: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None
        if defaults:

            def with_defaults(name: str, given: dict[str, Any]) -> dict[str, Any]:
                fqcn = resolve(name) or name
                return args_with_defaults(fqcn, given, defaults, templar.template)

            try:
                args = with_defaults(task.action, args)
            except TemplateError as exc:
                msg = f"Task failed: {exc}"
                return {"failed": True, "changed": False, "msg": msg, "_fk_error": msg}
        try:
            params = validate(module, args)
        except ModuleError as exc:
            out = {"failed": True, "changed": False, "msg": str(exc)}
            if module.controller:
                # an action plugin's argument spec fails the task itself (no "Action failed:")
                out["_fk_error"] = f"Task failed: {exc}"
                out["exception"] = "(traceback unavailable)"
            return out
        check = self.opts.check
        cm = task.kw.get("check_mode")
        if cm is not None:
            check = to_bool(templar.template(cm))
        conn_host = delegate or host
        try:
            forced = _opt_str(templar, task.kw.get("connection"))
            ruser = _opt_str(templar, task.kw.get("remote_user"))
            rport = _opt_str(templar, task.kw.get("port"))
            if delegate is not None and delegate != host:
                dv: Mapping[str, Any] = (
                    self.vm.host_view(delegate) if delegate in self.vm.inv.hosts else {}
                )
                conn = self.connections.get(delegate, dv, forced, ruser, rport)
            else:
                conn = self.connections.get(conn_host, tv, forced, ruser, rport)
        except KeywordValueError as exc:
            chain = [
                ("Task failed.", task.path, task.line, task.col),
                (f"Error processing keyword '{exc.key}'.", "", 0, 0),
                (exc.detail, "", 0, 0),
            ]
            msg = str(exc)
            return {
                "failed": True,
                "changed": False,
                "msg": msg,
                "_fk_error": msg,
                "_fk_chain": chain,
            }
        except (PlaybookError, TemplateError) as exc:
            return {"failed": True, "changed": False, "msg": str(exc)}
        if check and not module.check_mode:
            return {
                "changed": False,
                "skipped": True,
                "msg": "This module does not support check mode",
            }
        try:
            env = self._environment(task, templar)
        except (ModuleError, TemplateError) as exc:
            return {"failed": True, "changed": False, "msg": str(exc)}
        try:
            become = self._become(task, tv)
            refusal = None
            if become is not None:
                refusal = tty_refusal(become, conn, str(self.opts.config.get("ssh_args") or ""))
            if refusal is not None:
                raise BecomeFailed(refusal)
        except BecomeFailed as exc:
            msg = f"Task failed: {exc}"
            return {"failed": True, "changed": False, "msg": msg, "_fk_error": msg}
        except TemplateError as exc:
            return {"failed": True, "changed": False, "msg": str(exc)}
        # the interpreter is the connection's host's: a delegated task uses the delegate's
        # ansible_python_interpreter (the implicit localhost's is the controller's python)
        ivars: Mapping[str, Any] = tv
        if delegate is not None and delegate != host:
            known = self.vm.inv.get_host(delegate) is not None
            ivars = self.vm.host_view(delegate) if known else {}
        interpreter = configured_python(ivars, self.opts.config)
        ctx = ModuleContext(
            host=host,
            conn=conn,
            check=check,
            become=become,
            variables=tv,
            verbosity=self.opts.verbosity,
            evaluate=templar.evaluate,
            condition=templar.condition,
            template=templar.template,
            remote_python=(interpreter or "python3") if not conn.local else "python3",
            interpreter=interpreter,
            task_name=task.display_name(),
            env=env,
            diff=(
                self.kw_bool(task, "diff", host)
                if task.kw.get("diff") is not None
                else self.opts.diff
            ),
            no_log=self.kw_bool(task, "no_log", host) if task.kw.get("no_log") else False,
            action=task.mod_key or task.action,
            module_defaults=with_defaults,
            config=self.opts.config,
        )
        try:
            if become is not None and not module.controller:
                refused = self._tmp_share_failure(ctx, become, task, tv)
                if refused is not None:
                    return refused
            timeout = _opt_str(templar, task.kw.get("timeout"))
            async_s = int(_opt_str(templar, task.kw.get("async")) or 0)
            if async_s > 0:
                poll = _opt_str(templar, task.kw.get("poll"))
                result = self._run_async(host, module, ctx, params, async_s, poll)
            elif timeout is not None and int(timeout) > 0:
                result = _run_with_timeout(module, ctx, params, int(timeout))
            else:
                result = module.run(ctx, params)
            # trust boundary: what a module returns is data, never templated again
            result = mark_unsafe(result)
            if task.action == "set_fact":
                _keep_literal_facts(task.args, params, result)
        except Unreachable as exc:
            return {"unreachable": True, "changed": False, "msg": f"Task failed: {exc}"}
        except BecomeFailed as exc:
            msg = f"Task failed: {exc}"
            return {"failed": True, "changed": False, "msg": msg, "_fk_error": msg}
        except CommandNotFound as exc:
            return {"failed": True, "changed": False, "msg": str(exc)}
        except AgentStartError as exc:
            # an escalated command's agent did not start (the become method's program absent)
            result = agent_start_failure(ctx, exc)
        except VarExpressionError as exc:
            return self._var_failure(task, exc)
        except ActionArgError as exc:
            return {"failed": True, "msg": str(exc), "_fk_error": f"Task failed: {exc}"}
        except ModuleError as exc:
            return {"failed": True, "changed": False, "msg": str(exc)}
        except BrokenConditional as exc:
            return _broken_conditional(task, exc, task.mod_key, "that")
        except UntrustedTemplate as exc:
            return _untrusted(task, exc)
        except TemplateError as exc:
            msg = f"Task failed: {exc}"
            return {"failed": True, "changed": False, "msg": msg, "_fk_error": msg}
        except OSError as exc:
            return {"failed": True, "changed": False, "msg": f"{type(exc).__name__}: {exc}"}
        except Exception as exc:  # noqa: BLE001 - a crashing module fails its host, as ansible
            kind = "Action" if module.controller else "Module"
            msg = f"Task failed: {kind} failed: {exc}"
            return {
                "failed": True,
                "changed": False,
                "msg": msg,
                "exception": "(traceback unavailable)",
                "_fk_error": msg,
            }
        cause = result.pop("_fk_cause", None)
        if cause is not None and "_fk_chain" not in result:
            # ansible's error for a module whose output was no result: the action failed,
            # caused by the deserialization (or a missing interpreter)
            result["_fk_chain"] = [
                ("Task failed: Action failed.", task.path, task.line, task.col),
                (str(cause), "", 0, 0),
            ]
        result.setdefault("changed", False)
        return result

    def _var_failure(self, task: Task, exc: VarExpressionError) -> dict[str, Any]:
        """``debug: var:`` that may not be evaluated: ansible's chained error."""
        what = "Error while resolving `var` expression"
        msg = f"Task failed: {what}: {exc}"
        chain = [("Task failed.", task.path, task.line, task.col)]
        src = task.src
        value = src.get(task.mod_key) if src is not None else None
        vl = vc = 0
        if isinstance(value, Located) and "var" in value.pos:
            _kl, _kc, vl, vc = value.pos["var"]
        out: dict[str, Any] = {
            "failed": True,
            "msg": msg,
            "exception": "(traceback unavailable)",
            "_fk_error": msg,
            "_fk_chain": chain,
        }
        if not exc.untrusted:
            chain.append((f"{what}: {exc}", task.path if vl else "", vl, vc))
            return out
        chain.append((f"{what}.", task.path if vl else "", vl, vc))
        chain.append((str(exc), task.path if vl else "", vl, vc))
        out["_fk_help"] = (
            "Templates and expressions must be defined by trusted sources such as "
            "playbooks or roles, not untrusted sources such as module results."
        )
        return out

    def _run_async(
        self,
        host: str,
        module: Module,
        ctx: ModuleContext,
        params: dict[str, Any],
        async_s: int,
        poll_raw: str | None,
    ) -> dict[str, Any]:
        """``async:`` with ``poll:`` > 0: the module runs as a job polled every ``poll``
        seconds (ASYNC POLL lines) for at most ``async`` seconds."""
        poll = int(poll_raw) if poll_raw is not None else 15
        if poll <= 0:
            # fire and forget: the job runs on; async_status reports on it
            from fleetkit.playbook.jobs import results_file, start_job

            job = start_job(host, lambda: module.run(ctx, params))
            return {
                "ansible_job_id": job,
                "changed": True,
                "failed": False,
                "finished": False,
                "results_file": results_file(job),
                "started": True,
            }
        jid = new_job_id()
        worker, box = run_in_thread(lambda: module.run(ctx, params), "fk-async")
        left = float(async_s)
        while True:
            worker.join(min(poll, left) if left > 0 else 0)
            left -= poll
            if not worker.is_alive():
                break
            if left <= 0:
                # ansible's async wrapper kills the job and reports it finished
                out: dict[str, Any] = {
                    "ansible_job_id": jid,
                    "changed": False,
                    "failed": True,
                    "finished": True,
                    "msg": "Timeout exceeded",
                    "results_file": os.path.expanduser(f"~/.ansible_async/{jid}"),
                    "started": True,
                    "stderr": "",
                    "stderr_lines": [],
                    "stdout": "",
                    "stdout_lines": [],
                }
                self.cb.async_event("failed", host, jid, out)
                return out
            self.cb.async_event("poll", host, jid, {"started": True, "finished": False})
        if "error" in box:
            raise box["error"]
        result: dict[str, Any] = dict(box["result"])
        result.setdefault("changed", False)
        result.update({"ansible_job_id": jid, "finished": True, "started": True})
        result["results_file"] = os.path.expanduser(f"~/.ansible_async/{jid}")
        self.cb.async_event("failed" if result.get("failed") else "ok", host, jid, result)
        return result

    def _execute_loop(
        self,
        host: str,
        task: Task,
        module: Module,
        tv: VarsView,
        templar: Templar,
        delegate: str | None,
        items: list[Any],
    ) -> TaskResult:
        lc = loop_control(task.kw, templar)
        results: list[dict[str, Any]] = []
        statuses: list[tuple[str, dict[str, Any]]] = []
        total = len(items)
        # facts set by an item are visible to the next items (ansible updates the task vars)
        loop_facts: dict[str, Any] = {}
        # ansible keeps each item's result under the register name for the next items and
        # for the item's label
        reg = str(task.kw["register"]) if task.kw.get("register") else None
        registered_layer: dict[str, Any] = {}
        ignore_unreachable: bool | None = None  # over the unreachable items (ansible's rule)
        for i, item in enumerate(items):
            special = item_vars(lc, items, i)
            view = tv.with_layer({**loop_facts, **registered_layer, **special})
            t = Templar(view)
            cond = first_failed_cond(t, task.when)
            r: dict[str, Any]
            if cond is not None:
                r = {
                    "changed": False,
                    "skipped": True,
                    "skip_reason": "Conditional result was False",
                    "false_condition": cond,
                }
                if "no_log" in task.kw and self.kw_bool(task, "no_log", host, invalid=True):
                    r["_ansible_no_log"] = True  # a skipped item is censored too
            else:
                r = self._run_with_retries(host, task, module, view, t, delegate)
                facts_out = r.get("ansible_facts")
                if isinstance(facts_out, dict) and not r.get("failed") and task.action != "debug":
                    self._loop_facts(task, view, loop_facts, facts_out)
            if reg:
                registered_layer[reg] = registered(r)
            r.update(special)
            # ansible's label defaults to the loop variable's value
            label: Any = item
            if lc.label is not None:
                lt = Templar(view.with_layer(registered_layer)) if reg else t
                try:
                    label = lt.template(lc.label)
                except TemplateUndefined as exc:
                    r["failed"] = True  # the item's line then shows the item itself
                    r["_fk_no_error_block"] = True  # ansible reports it without an exception
                    r["msg"] = f"Failed to template loop_control.label: {exc}"
            r["_ansible_item_label"] = label
            if r.get("unreachable"):
                # each item templates ignore_unreachable with its own variables; the task
                # ignores the host only if every unreachable item said so
                item_ignores = self._item_bool(task, "ignore_unreachable", t)
                ignore_unreachable = item_ignores and ignore_unreachable is not False
            results.append(r)
            st = (
                "unreachable"
                if r.get("unreachable")
                else "failed"
                if r.get("failed_when_result", r.get("failed"))
                else "skipped"
                if r.get("skipped")
                else ("changed" if r.get("changed") else "ok")
            )
            statuses.append((st, r))
            if lc.break_when and _break_loop(t, lc.break_when, task, view, r):
                break
            if lc.pause_s and i < total - 1:
                time.sleep(lc.pause_s)
        agg: dict[str, Any] = {
            "results": results,
            "changed": any(r.get("changed") for r in results),
        }
        if any(r.get("_ansible_no_log") for r in results):
            agg["_ansible_no_log"] = True  # one censored item censors the whole result
        failed_item = any(r.get("failed_when_result", r.get("failed")) for r in results)
        agg["skipped"] = (
            bool(results) and all(r.get("skipped") for r in results) and not failed_item
        )
        if agg["skipped"]:
            agg["msg"] = "All items skipped"
            return TaskResult(
                host,
                task,
                agg,
                "skipped",
                items=statuses,
                delegated_to=delegate,
                controller=module.controller,
            )
        if not results:
            agg["skipped"] = True
            agg["skipped_reason"] = "No items in the list"
            return TaskResult(
                host, task, agg, "skipped", delegated_to=delegate, controller=module.controller
            )
        if any(r.get("failed_when_result", r.get("failed")) for r in results):
            agg["failed"] = True
            agg["msg"] = "One or more items failed"
        else:
            agg["msg"] = "All items completed"
        if any(r.get("unreachable") for r in results):
            # ansible tries every item, prints each as failed, then the host as UNREACHABLE
            agg["unreachable"] = True
            agg["results"] = [
                {
                    **{k: v for k, v in r.items() if k != "_ansible_item_label"},
                    "exception": "(traceback unavailable)",
                }
                if r.get("unreachable")
                else r
                for r in results
            ]
            return TaskResult(
                host,
                task,
                agg,
                "unreachable",
                ignored=bool(ignore_unreachable),
                items=statuses,
                delegated_to=delegate,
                controller=module.controller,
            )
        facts: dict[str, Any] = {}
        for r in results:
            f = r.get("ansible_facts")
            if isinstance(f, dict):
                facts.update(f)
        if facts:
            agg["ansible_facts"] = facts
            if any(r.get("_ansible_facts_cacheable") for r in results):
                agg["_ansible_facts_cacheable"] = True
        if agg.get("failed"):
            return TaskResult(
                host,
                task,
                agg,
                "failed",
                ignored=self._ignore(task, host),
                items=statuses,
                delegated_to=delegate,
                controller=module.controller,
            )
        return TaskResult(
            host,
            task,
            agg,
            "changed" if agg["changed"] else "ok",
            items=statuses,
            delegated_to=delegate,
            controller=module.controller,
        )
