"""Asynchronous jobs (``async:`` with ``poll: 0``) and their ``async_status``.

ansible starts such a module under async_wrapper on the host and records its result in
``~/.ansible_async/JID``; fleetkit runs the module from a controller thread over the host's
connection and keeps the result here, keyed by the same kind of job id. A job ends with the
``fleetkit play`` process (docs/play.md lists this difference).
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["start_job", "job_status", "cleanup_job", "results_file", "new_job_id", "run_in_thread"]


@dataclass
class _Job:
    host: str
    thread: threading.Thread
    box: dict[str, Any] = field(default_factory=dict)


_jobs: dict[str, _Job] = {}
_lock = threading.Lock()


def results_file(jid: str) -> str:
    """Where ansible's async_wrapper would keep the job's result (reported, never written)."""
    return os.path.expanduser(f"~/.ansible_async/{jid}")


def new_job_id() -> str:
    """A job id shaped as ansible's (``j<11-12 digits>.<pid>``)."""
    return f"j{random.randrange(10**11, 10**12)}.{os.getpid()}"


def run_in_thread(
    run: Callable[[], dict[str, Any]], name: str
) -> tuple[threading.Thread, dict[str, Any]]:
    """Start ``run`` in a daemon thread; its box gets ``result`` or the ``error`` it raised."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = run()
        except BaseException as exc:  # noqa: BLE001 - handed to whoever reads the box
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name=name)
    thread.start()
    return thread, box


def start_job(host: str, run: Callable[[], dict[str, Any]]) -> str:
    """Run ``run`` in the background for ``host``; return its job id."""
    jid = new_job_id()
    with _lock:
        thread, box = run_in_thread(run, f"fk-job-{jid}")
        _jobs[jid] = _Job(host, thread, box)
    return jid


def job_status(host: str, jid: str) -> dict[str, Any]:
    """``async_status`` for ``jid``: the module's result once finished, else a running record."""
    with _lock:
        job = _jobs.get(jid)
    if job is None or job.host != host:
        return {"failed": True, "finished": True, "msg": "could not find job",
                "ansible_job_id": jid, "started": True}  # fmt: skip
    if job.thread.is_alive():
        return {
            "ansible_job_id": jid,
            "changed": False,
            "finished": False,
            "results_file": results_file(jid),
            "started": True,
        }
    if "error" in job.box:
        exc = job.box["error"]
        out: dict[str, Any] = {"failed": True, "changed": False, "msg": str(exc)}
    else:
        out = dict(job.box.get("result") or {})
    out.setdefault("changed", False)
    out.update(
        {"ansible_job_id": jid, "finished": True, "started": True,
         "results_file": results_file(jid)}
    )  # fmt: skip
    return out


def cleanup_job(host: str, jid: str) -> dict[str, Any]:
    """``async_status mode=cleanup``: forget the job's result."""
    with _lock:
        job = _jobs.pop(jid, None)
    if job is None or job.host != host:
        return {"failed": True, "msg": "could not find job", "ansible_job_id": jid}
    return {
        "ansible_job_id": jid,
        "changed": False,
        "erased": results_file(jid),
        "failed": False,
        "finished": False,
        "started": False,
        "stderr": "",
        "stderr_lines": [],
        "stdout": "",
        "stdout_lines": [],
    }
