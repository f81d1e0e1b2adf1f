"""``-o json``: one JSON object per line per event, for machines.

Events: ``playbook_start``, ``play_start``, ``task_start``, ``ok``/``changed``/``failed``/
``skipped``/``unreachable`` (with ``host``, ``task``, ``result``), ``retry``, ``include``,
``no_hosts_matched``, ``no_hosts_remaining``, ``warning``, ``stats`` (the recap)."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, TextIO

from fleetkit.playbook.events import Stats, TaskResult, censor_result, json_default
from fleetkit.playbook.playbook import Play, Task

__all__ = ["JsonCallback"]


def _strip(result: dict[str, Any]) -> dict[str, Any]:
    """A result without the internal ``_ansible_*`` / ``_fk_*`` keys (loop items too)."""
    out = {k: v for k, v in result.items() if not k.startswith(("_ansible_", "_fk_"))}
    items = out.get("results")
    if isinstance(items, list):
        out["results"] = [_strip(r) if isinstance(r, dict) else r for r in items]
    return out


class JsonCallback:
    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self._lock = threading.Lock()
        self._play = ""
        self._names: dict[int, str] = {}

    def _emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, sort_keys=True, default=json_default, ensure_ascii=False)
        with self._lock:
            self.out.write(line + "\n")
            self.out.flush()

    def playbook_start(self, path: str, plays: int = 0) -> None:
        self._emit({"ev": "playbook_start", "playbook": path, "plays": plays})

    def play_start(self, play: Play) -> None:
        self._play = play.name
        self._emit({"ev": "play_start", "name": play.name, "strategy": play.strategy})

    def runner_start(self, host: str, task: Task) -> None:
        return None  # -o json has one event per result, none per start

    def notify(self, handler: Task, host: str) -> None:
        return None

    def task_start(self, task: Task, name: str, handler: bool = False) -> None:
        self._names[task.uid] = name
        self._emit(
            {
                "ev": "task_start",
                "task": name,
                "play": self._play,
                "handler": handler,
                "path": f"{task.path}:{task.line}" if task.path else None,
            }
        )

    def result(self, res: TaskResult) -> None:
        if res.include and not any(status == "skipped" for status, _ in res.items):
            return  # an include's own result: its "include" event says it
        r = _strip(censor_result(res.result))
        event: dict[str, Any] = {
            "ev": res.status,
            "host": res.host,
            "task": self._names.get(res.task.uid, res.task.display_name()),
            "play": self._play,
            "ignored": res.ignored,
            "result": r,
        }
        if res.delegated_to:
            event["delegated_to"] = res.delegated_to
        self._emit(event)

    def retry(
        self, host: str, task: Task, name: str, attempts: int, retries: int, result: dict[str, Any]
    ) -> None:
        self._emit(
            {
                "ev": "retry",
                "host": host,
                "task": name,
                "attempts": attempts,
                "retries": retries - 1,
                "retries_left": retries - attempts,
            }
        )

    def include(self, path: str, hosts: list[str], item: dict[str, Any] | None = None) -> None:
        ev: dict[str, Any] = {"ev": "include", "path": path, "hosts": hosts}
        if item is not None:
            ev["item"] = item.get("_ansible_item_label", item.get("item"))
        self._emit(ev)

    def no_hosts_matched(self) -> None:
        self._emit({"ev": "no_hosts_matched", "play": self._play})

    def no_hosts_remaining(self) -> None:
        self._emit({"ev": "no_hosts_remaining", "play": self._play})

    def warning(self, msg: str) -> None:
        self._emit({"ev": "warning", "msg": msg})

    def async_event(self, kind: str, host: str, jid: str, result: dict[str, Any]) -> None:
        """An async task's poll/ok/failed event."""
        self._emit({"ev": f"async_{kind}", "host": host, "jid": jid})

    def verbose(self, msg: str, level: int) -> None:
        """Display-only lines are not events."""

    def error(self, msg: str, origin: tuple[str, int, int] | None = None) -> None:
        """A non-fatal error event."""
        self._emit({"ev": "error", "msg": msg})

    def stats(self, stats: Stats) -> None:
        self._emit({"ev": "stats", "hosts": {h: stats.summarize(h) for h in stats.hosts()}})
