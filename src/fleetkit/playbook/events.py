"""Run events and per-host statistics, shared by the runner and the callbacks."""

from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetkit.playbook.playbook import Play, Task

__all__ = ["Stats", "Callback", "TaskResult", "clean_result", "censor_result", "json_default"]

_STAT_KEYS = ("ok", "changed", "unreachable", "failures", "skipped", "rescued", "ignored")


@dataclass
class Stats:
    """ansible's AggregateStats: a host is listed in the recap once any counter moved."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    # set_stats data: per host, and the whole run's under ``_run`` (AggregateStats.custom)
    custom: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def increment(self, what: str, host: str) -> None:
        with self._lock:
            c = self.counts.setdefault(host, dict.fromkeys(_STAT_KEYS, 0))
            c[what] += 1

    def update_custom(self, key: str, value: Any, host: str | None, aggregate: bool) -> None:
        """One set_stats entry, as ansible's AggregateStats: ``host`` None is the run's; with
        ``aggregate`` a dict merges into the one there and other values add (``+``), a value
        of another type than the one there is dropped."""
        with self._lock:
            box = self.custom.setdefault(host if host is not None else "_run", {})
            old = box.get(key)
            if not aggregate or key not in box:
                box[key] = value
            elif not isinstance(value, type(old)):
                return
            elif isinstance(value, dict) and isinstance(old, dict):
                box[key] = _merge(old, value)
            else:
                try:
                    box[key] = old + value  # type: ignore[operator]
                except TypeError:
                    return

    def summarize(self, host: str) -> dict[str, int]:
        return dict(self.counts.get(host, dict.fromkeys(_STAT_KEYS, 0)))

    def hosts(self) -> list[str]:
        return sorted(self.counts)


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """ansible's merge_hash: ``b`` into a copy of ``a``, dicts merged recursively."""
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


@dataclass(slots=True)
class TaskResult:
    host: str
    task: Task
    result: dict[str, Any]
    status: str  # ok | changed | failed | skipped | unreachable
    ignored: bool = False
    delegated_to: str | None = None
    controller: bool = False
    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # an include's own per-host result: callback plugins see it (ansible's TaskInclude ok), the
    # default callback shows only its skipped items
    include: bool = False


# what ansible keeps of a no_log result (task_result.py _PRESERVE)
_PRESERVE = ("attempts", "changed", "retries", "_ansible_no_log", "exception", "warnings")
CENSORED = (
    "the output has been hidden due to the fact that 'no_log: true' was specified for this result"
)


def censor_result(result: dict[str, Any]) -> dict[str, Any]:
    """A ``no_log`` result as callbacks may see it (loop items censored one by one)."""
    if not result.get("_ansible_no_log"):
        return result
    out = {k: result[k] for k in _PRESERVE if k in result}
    out["censored"] = CENSORED
    items = result.get("results")
    if isinstance(items, list):
        out["results"] = [
            censor_result(r) if isinstance(r, dict) and r.get("_ansible_no_log") else r
            for r in items
        ]
    return out


def json_default(value: Any) -> Any:
    """What ansible's result serializer makes of values JSON has no type for: dates and times as
    ISO 8601 text, sets as lists, anything else as its text."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return list(value)
    return str(value)


def clean_result(result: dict[str, Any], verbosity: int = 0) -> dict[str, Any]:
    """What the default callback shows: no ``_ansible_*``, invocation, exception, failed."""
    out = {k: v for k, v in result.items() if not k.startswith(("_ansible_", "_fk_"))}
    for k in ("exception", "warnings", "deprecations", "failed"):
        out.pop(k, None)
    if verbosity < 3:
        out.pop("invocation", None)
        out.pop("diff", None)
    return out


class Callback(Protocol):
    def playbook_start(self, path: str, plays: int = 0) -> None: ...

    def play_start(self, play: Play) -> None: ...

    def task_start(self, task: Task, name: str, handler: bool = False) -> None: ...

    def runner_start(self, host: str, task: Task) -> None:
        """``task`` is queued for ``host`` (ansible's ``v2_runner_on_start``)."""
        ...

    def notify(self, handler: Task, host: str) -> None:
        """``handler`` is notified for ``host`` at a flush (``v2_playbook_on_notify``)."""
        ...

    def result(self, res: TaskResult) -> None: ...

    def retry(
        self, host: str, task: Task, name: str, attempts: int, retries: int, result: dict[str, Any]
    ) -> None: ...

    def include(self, path: str, hosts: list[str], item: dict[str, Any] | None = None) -> None: ...

    def no_hosts_matched(self) -> None: ...

    def no_hosts_remaining(self) -> None: ...

    def warning(self, msg: str) -> None: ...

    def error(self, msg: str, origin: tuple[str, int, int] | None = None) -> None:
        """An ``[ERROR]:`` the run goes on after; ``origin``: (path, line, column) to show."""
        ...

    def verbose(self, msg: str, level: int) -> None:
        """A line ansible's Display shows from ``-v`` x level on (``META: ...`` at -vv)."""
        ...

    def async_event(self, kind: str, host: str, jid: str, result: dict[str, Any]) -> None: ...

    def stats(self, stats: Stats) -> None: ...
