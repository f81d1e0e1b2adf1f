"""ansible's callback plugins run from their own code: fleetkit's events become CallbackBase v2
calls (``v2_playbook_on_start``, ``v2_runner_on_ok``, ``v2_playbook_on_stats``, ...).

The plugins are loaded as ansible-playbook's TaskQueueManager loads them: the stdout callback
by name, then every callback that does not need enabling plus those in ``callbacks_enabled``,
found by ansible's callback loader (ansible-core's, installed collections', the
``ANSIBLE_CALLBACK_PLUGINS`` dirs and ``callback_plugins/`` beside the playbook). The objects
they receive are small views of fleetkit's play, task, host, result and stats that carry what
ansible's own objects give a callback.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from fleetkit.playbook.errors import PlaybookError
from fleetkit.playbook.events import Callback, Stats, TaskResult
from fleetkit.playbook.playbook import Play, Task

__all__ = ["AnsiblePlugins", "Tee", "load_plugins", "is_default_stdout", "native"]

_DEFAULT_NAMES = ("default", "ansible.builtin.default")
_COUNTERS = (
    ("ok", "ok"),
    ("changed", "changed"),
    ("dark", "unreachable"),
    ("failures", "failures"),
    ("skipped", "skipped"),
    ("rescued", "rescued"),
    ("ignored", "ignored"),
)
# the result keys ansible strips before a callback sees a result (task_result.py)
_IGNORE = ("failed", "skipped")
_KEEP_INTERNAL = (
    "_ansible_verbose_always",
    "_ansible_item_label",
    "_ansible_no_log",
    "_ansible_verbose_override",
)
_PRESERVE = ("attempts", "changed", "retries", "_ansible_no_log", "warnings", "deprecations")
_CENSORED = (
    "the output has been hidden due to the fact that 'no_log: true' was specified for this result"
)
_META_IMPLICIT = ("flush_handlers", "noop")
_uuids = itertools.count(1)


def native(value: Any) -> Any:
    """A result as plain Python values (fleetkit's trust-marked strings become ``str``)."""
    if isinstance(value, str):
        return value if type(value) is str else str(value)
    if isinstance(value, dict):
        return {native(k): native(v) for k, v in value.items()}
    if isinstance(value, list):
        return [native(v) for v in value]
    if isinstance(value, tuple):
        return tuple(native(v) for v in value)
    return value


def is_default_stdout(name: str) -> bool:
    """Whether ``stdout_callback`` names ansible's default callback (fleetkit's own)."""
    return name in _DEFAULT_NAMES


def _uuid(kind: str, key: object) -> str:
    return f"fleetkit-{kind}-{key}"


class _PlayView:
    """What a callback reads from ansible's Play."""

    def __init__(self, play: Play) -> None:
        self.name = play.name
        self.hosts = play.hosts
        self.strategy = play.strategy
        self.serial = play.serial
        self.check_mode = play.kw.get("check_mode", play.keywords.get("check_mode"))
        self.diff = play.kw.get("diff")
        self.gather_facts = play.gather_facts
        self.vars = play.vars
        self._uuid = _uuid("play", next(_uuids))
        self._path = play.path
        self._line = play.line

    def get_name(self) -> str:
        return self.name

    def get_path(self) -> str:
        return f"{self._path}:{self._line}" if self._path else ""

    def __repr__(self) -> str:
        return self.name


class _TaskView:
    """What a callback reads from ansible's Task (``get_name``, ``action``, ``args``, ...)."""

    def __init__(self, task: Task, name: str, handler: bool = False) -> None:
        self._task = task
        self.name = name
        self.action = task.action
        self.resolved_action = task.action
        self.args = dict(task.args)
        self.tags = list(task.tags)
        self.when = list(task.when)
        self._uuid = _uuid("task", task.uid)
        self._role = None
        self._parent = None
        self.implicit = task.action == "meta" and task.path == ""
        kw = task.kw
        self.no_log = kw.get("no_log", False)
        self.check_mode = kw.get("check_mode", False)
        self.diff = kw.get("diff", False)
        self.loop = kw.get("loop")
        self.loop_control = kw.get("loop_control")
        self.ignore_errors = kw.get("ignore_errors", False)
        self.ignore_unreachable = kw.get("ignore_unreachable", False)
        self.delegate_to = kw.get("delegate_to")
        self.register = kw.get("register")
        self.run_once = kw.get("run_once", False)
        self.notify = kw.get("notify")
        self.listen = list(task.listen)
        self.async_val = kw.get("async", 0)
        self.poll = kw.get("poll", 15)
        self.retries = kw.get("retries")
        self.until = kw.get("until")
        self.environment = kw.get("environment")
        self.become = kw.get("become")
        self.vars = dict(task.vars)
        self.handler = handler

    def get_name(self, include_role_fqcn: bool = True) -> str:
        return self.name

    def get_path(self) -> str:
        return f"{self._task.path}:{self._task.line}" if self._task.path else ""

    def fields(self) -> dict[str, Any]:
        """ansible's ``task_fields``: the task's keywords as given."""
        out: dict[str, Any] = dict(self._task.kw)
        out.update(name=self._task.name or "", action=self.action, args=self.args)
        return out

    def __repr__(self) -> str:
        return f"{'HANDLER' if self.handler else 'TASK'}: {self.name}"


class _PlaybookView:
    """What a callback reads from ansible's Playbook."""

    def __init__(self, path: str, plays: int) -> None:
        self._file_name = path
        self._basedir = os.path.dirname(os.path.abspath(path))
        self._plays = plays
        self._entries: list[object] = [None] * plays

    def get_plays(self) -> list[object]:
        return list(self._entries)


@dataclass
class _IncludedFile:
    """What a callback reads from ansible's IncludedFile."""

    _filename: str
    _hosts: list[Any]
    _task: Any
    _args: dict[str, Any] = field(default_factory=dict)
    _vars: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"{self._filename} (args={self._args} vars={self._vars}): {self._hosts}"


def _strip(data: dict[str, Any], top: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if k.startswith("_fk_"):
            continue
        if k.startswith("_ansible_") and k not in _KEEP_INTERNAL:
            continue
        if top and k in _IGNORE:
            continue
        if k == "exception" and isinstance(v, str):
            continue  # ansible gives callbacks an ErrorSummary; fleetkit holds only the text
        if k == "results" and isinstance(v, list):
            v = [_strip(x, top=False) if isinstance(x, dict) else x for x in v]
        out[k] = v
    return out


def _censor(data: dict[str, Any]) -> dict[str, Any]:
    out = {k: data[k] for k in _PRESERVE if k in data}
    out["censored"] = _CENSORED
    return out


class AnsiblePlugins:
    """fleetkit's Callback protocol delivered to a list of ansible callback plugin objects."""

    def __init__(
        self, plugins: Sequence[Any], warn: Callback | None = None, diff: bool = False
    ) -> None:
        self.plugins = list(plugins)
        self.diff = diff  # --diff: a result with a diff is sent on whatever the task's diff
        self._warn = warn
        self._lock = threading.RLock()
        self._hosts: dict[str, Any] = {}
        self._tasks: dict[int, _TaskView] = {}
        self._current: _TaskView | None = None
        from ansible._internal._errors._handler import ErrorHandler
        from ansible.errors import AnsibleCallbackError
        from ansible.executor.task_result import CallbackTaskResult
        from ansible.inventory.host import Host
        from ansible.utils.display import Display

        self._display = Display()
        self._host_cls = Host
        self._result_cls = CallbackTaskResult
        self._error_cls = AnsibleCallbackError
        self._on_error = ErrorHandler.from_config("_CALLBACK_DISPATCH_ERROR_BEHAVIOR")

    # -- plumbing --------------------------------------------------------------------------

    def _host(self, name: str) -> Any:
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = self._host_cls(name)
        return host

    def _task(self, task: Task, name: str | None = None, handler: bool = False) -> _TaskView:
        view = self._tasks.get(task.uid)
        if view is None or (name is not None and view.name != name):
            view = _TaskView(task, name if name is not None else task.display_name(), handler)
            self._tasks[task.uid] = view
        return view

    def _error(self, task: Task, data: dict[str, Any], controller: bool) -> Any:
        # the ErrorSummary ansible's TaskExecutor puts in a failed result's ``exception``: a
        # task error (with the task's origin) caused by the action's (or module's) failure
        from ansible._internal._datatag._tags import Origin
        from ansible._internal._errors import _captured, _error_utils
        from ansible.errors import AnsibleTaskError
        from ansible.module_utils._internal import _messages

        work = {k: v for k, v in data.items() if not k.startswith("_fk_")}
        if data.get("_fk_error"):
            work["exception"] = _messages.ErrorSummary(
                event=_messages.Event(msg=str(data["_fk_error"]))
            )
        elif not (controller or data.get("_fk_action_failed")):
            _captured.AnsibleModuleCapturedError.normalize_result_exception(work)
        obj: Any = {}
        if task.path and task.line:
            obj = Origin(path=task.path, line_num=task.line, col_num=task.col or None).tag({})
        try:
            try:
                _captured.AnsibleActionCapturedError.maybe_raise_on_result(work)
            except Exception as ex:
                raise AnsibleTaskError(obj=obj) from ex
        except AnsibleTaskError as atex:
            out = _error_utils.result_dict_from_exception(atex, accept_result_contribution=True)
            return out.get("exception")
        return None

    def _result(
        self, host: str, task: Task, data: dict[str, Any], failed: bool = False, ctl: bool = False
    ) -> Any:
        view = self._task(task)
        data = native(data)
        summary = self._error(task, data, ctl) if failed else None
        no_log = view.no_log is True or data.get("_ansible_no_log")
        if no_log:
            shown = _censor(data)
            results = data.get("results")
            if isinstance(results, list):
                shown["results"] = [
                    _censor(r) if isinstance(r, dict) and r.get("_ansible_no_log") else r
                    for r in results
                ]
        else:
            shown = _strip(data)
        delegated = data.get("_ansible_delegated_vars")
        if isinstance(delegated, dict):
            keep = ("ansible_host", "ansible_port", "ansible_user", "ansible_connection")
            shown["_ansible_delegated_vars"] = {k: v for k, v in delegated.items() if k in keep}
        if summary is not None and not no_log:
            shown["exception"] = summary
        return self._result_cls(self._host(host), view, shown, view.fields())

    def send(self, method: str, *args: Any, **kwargs: Any) -> None:
        """ansible's TaskQueueManager.send_callback: each plugin that implements ``method``."""
        task = next((a for a in args if isinstance(a, _TaskView)), None)
        with self._lock:
            for plugin in self.plugins:
                if plugin.disabled:
                    continue
                if task is not None and task.implicit and not plugin.wants_implicit_tasks:
                    continue
                implemented = plugin._implemented_callback_methods
                methods = [getattr(plugin, m) for m in (method, "v2_on_any") if m in implemented]
                current = next((a for a in args if isinstance(a, self._result_cls)), None)
                for fn in methods:
                    # ansible's "state hack": the result being delivered, for _handle_exception
                    plugin._current_task_result = current
                    with self._on_error.handle(self._error_cls):
                        try:
                            fn(*args, **kwargs)
                        except AssertionError:
                            raise
                        except Exception as ex:
                            raise self._error_cls(
                                f"Callback dispatch {method!r} failed for plugin "
                                f"{plugin._load_name!r}."
                            ) from ex
                plugin._current_task_result = None

    # -- fleetkit's events -----------------------------------------------------------------

    def playbook_start(self, path: str, plays: int = 0) -> None:
        self.send("v2_playbook_on_start", _PlaybookView(path, plays))

    def play_start(self, play: Play) -> None:
        self.send("v2_playbook_on_play_start", _PlayView(play))

    def task_start(self, task: Task, name: str, handler: bool = False) -> None:
        view = self._task(task, name, handler)
        self._current = view
        if handler:
            self.send("v2_playbook_on_handler_task_start", view)
        else:
            self.send("v2_playbook_on_task_start", view, is_conditional=False)

    def runner_start(self, host: str, task: Task) -> None:
        self.send("v2_runner_on_start", self._host(host), self._task(task))

    def notify(self, handler: Task, host: str) -> None:
        self.send("v2_playbook_on_notify", self._task(handler, handler=True), self._host(host))

    def result(self, res: TaskResult) -> None:
        for status, item in res.items:
            kind = {"changed": "ok", "unreachable": "failed"}.get(status, status)
            failed = kind == "failed"
            item_result = self._result(res.host, res.task, item, failed, res.controller)
            if kind == "ok" and item.get("_ansible_show_diff"):
                # ansible's TaskExecutor sends an ok item's diff before the item itself
                self.send("v2_on_file_diff", item_result)
            self.send(f"v2_runner_item_on_{kind}", item_result)
        failed = res.status == "failed" and not res.items
        r = self._result(res.host, res.task, res.result, failed, res.controller)
        if res.status == "unreachable":
            self.send("v2_runner_on_unreachable", r)
        elif res.status == "failed":
            # ansible passes the task's ignore_errors keyword: None when it is not set
            kw = res.task.kw.get("ignore_errors")
            ignore = True if res.ignored else (kw if kw is None or isinstance(kw, bool) else False)
            self.send("v2_runner_on_failed", r, ignore_errors=ignore)
        elif res.status == "skipped":
            self.send("v2_runner_on_skipped", r)
        else:
            if "diff" in res.result and (self.diff or res.result.get("_ansible_show_diff")):
                self.send("v2_on_file_diff", r)
            self.send("v2_runner_on_ok", r)

    def retry(
        self, host: str, task: Task, name: str, attempts: int, retries: int, result: dict[str, Any]
    ) -> None:
        data = dict(result, attempts=attempts, retries=retries)
        self.send("v2_runner_retry", self._result(host, task, data))

    def include(self, path: str, hosts: list[str], item: dict[str, Any] | None = None) -> None:
        # the include task is the one whose start was announced last (its banner)
        hosts_ = [self._host(h) for h in hosts]
        args = dict(self._current.args) if self._current is not None else {}
        self.send("v2_playbook_on_include", _IncludedFile(path, hosts_, self._current, args))

    def no_hosts_matched(self) -> None:
        self.send("v2_playbook_on_no_hosts_matched")

    def no_hosts_remaining(self) -> None:
        self.send("v2_playbook_on_no_hosts_remaining")

    def warning(self, msg: str) -> None:
        if self._warn is not None:
            self._warn.warning(msg)

    def error(self, msg: str, origin: tuple[str, int, int] | None = None) -> None:
        if self._warn is not None:
            self._warn.error(msg, origin)

    def verbose(self, msg: str, level: int) -> None:
        self._display.verbose(msg, caplevel=level - 1)

    def async_event(self, kind: str, host: str, jid: str, result: dict[str, Any]) -> None:
        task = next((t._task for t in reversed(self._tasks.values())), None)
        if task is None:
            return
        data = dict(result, ansible_job_id=jid)
        self.send(f"v2_runner_on_async_{kind}", self._result(host, task, data))

    def stats(self, stats: Stats) -> None:
        from ansible.executor.stats import AggregateStats

        agg = AggregateStats()
        for host in stats.hosts():
            counts = stats.summarize(host)
            agg.processed[host] = 1
            for attr, key in _COUNTERS:
                if counts[key]:
                    getattr(agg, attr)[host] = counts[key]
        agg.custom = native(stats.custom)
        self.send("v2_playbook_on_stats", agg)


class Tee:
    """Deliver every event to several callbacks in order (the stdout callback first)."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = list(callbacks)

    def playbook_start(self, path: str, plays: int = 0) -> None:
        for cb in self.callbacks:
            cb.playbook_start(path, plays)

    def play_start(self, play: Play) -> None:
        for cb in self.callbacks:
            cb.play_start(play)

    def task_start(self, task: Task, name: str, handler: bool = False) -> None:
        for cb in self.callbacks:
            cb.task_start(task, name, handler)

    def runner_start(self, host: str, task: Task) -> None:
        for cb in self.callbacks:
            cb.runner_start(host, task)

    def notify(self, handler: Task, host: str) -> None:
        for cb in self.callbacks:
            cb.notify(handler, host)

    def result(self, res: TaskResult) -> None:
        for cb in self.callbacks:
            cb.result(res)

    def retry(
        self, host: str, task: Task, name: str, attempts: int, retries: int, result: dict[str, Any]
    ) -> None:
        for cb in self.callbacks:
            cb.retry(host, task, name, attempts, retries, result)

    def include(self, path: str, hosts: list[str], item: dict[str, Any] | None = None) -> None:
        for cb in self.callbacks:
            cb.include(path, hosts, item)

    def no_hosts_matched(self) -> None:
        for cb in self.callbacks:
            cb.no_hosts_matched()

    def no_hosts_remaining(self) -> None:
        for cb in self.callbacks:
            cb.no_hosts_remaining()

    def warning(self, msg: str) -> None:
        self.callbacks[0].warning(msg)

    def error(self, msg: str, origin: tuple[str, int, int] | None = None) -> None:
        self.callbacks[0].error(msg, origin)

    def verbose(self, msg: str, level: int) -> None:
        self.callbacks[0].verbose(msg, level)

    def async_event(self, kind: str, host: str, jid: str, result: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.async_event(kind, host, jid, result)

    def stats(self, stats: Stats) -> None:
        for cb in self.callbacks:
            cb.stats(stats)


def load_plugins(
    stdout_name: str | None,
    enabled: Sequence[str],
    playbook_path: str,
    verbosity: int = 0,
    cli: dict[str, Any] | None = None,
) -> list[Any]:
    """The callback plugin objects ansible-playbook would run, stdout callback first.

    ``stdout_name=None`` leaves the stdout callback to fleetkit (its own default callback).
    """
    from fleetkit.playbook.plugins import _init

    _init()
    from ansible import context
    from ansible.plugins.loader import add_all_plugin_dirs, callback_loader
    from ansible.utils.display import Display

    display = Display()
    display.verbosity = verbosity
    if cli is not None:
        context._init_global_context(SimpleNamespace(**cli))
    add_all_plugin_dirs(os.path.dirname(os.path.abspath(playbook_path)))
    plugins: list[Any] = []
    skip: set[str] = set(_DEFAULT_NAMES)
    if stdout_name is not None:
        stdout = callback_loader.get(stdout_name)
        if not stdout:
            raise PlaybookError(
                f"Could not load {stdout_name!r} callback plugin.",
                hint="check stdout_callback (ANSIBLE_STDOUT_CALLBACK) and callback_plugins",
            )
        stdout._init_callback_methods()
        stdout.set_options()
        plugins.append(stdout)
        skip.add(stdout.ansible_name)
    types = {p.ansible_name: p for p in callback_loader.all(class_only=True)}
    for name in enabled:
        cls = callback_loader.get(name, class_only=True)
        if cls:
            types.setdefault(cls.ansible_name, cls)
        else:
            display.warning(f"Skipping callback plugin '{name}', unable to load")
    for ansible_name, cls in types.items():
        if ansible_name in skip:
            continue
        if getattr(cls, "CALLBACK_TYPE", "") == "stdout":
            continue
        needs = getattr(
            cls, "CALLBACK_NEEDS_ENABLED", getattr(cls, "CALLBACK_NEEDS_WHITELIST", False)
        )
        cnames = getattr(cls, "_redirected_names", [])
        cname = cnames[0] if cnames else os.path.splitext(os.path.basename(cls._original_path))[0]
        if needs and cname not in enabled:
            continue
        try:
            obj = cls()
            obj._init_callback_methods()
            obj.set_options()
        except Exception as ex:
            display.error_as_warning(f"Failed to load callback plugin {cname!r}.", exception=ex)
            continue
        plugins.append(obj)
    return plugins
