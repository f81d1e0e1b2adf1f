"""Namespace kinds in util-linux's order, and running code inside a target's network namespace.

The order matters: util-linux nsenter enters user first or last (two passes), then cgroup, ipc,
uts, net, pid, mnt, time. :func:`run_in_netns` is how every helper touches a foreign network:
a short-lived thread calls setns(CLONE_NEWNET) (which affects only that thread), creates its
sockets there, and exits; the process itself never changes namespace.

This module is on ``fleetkit nsenter``'s start-up path: it imports nothing heavy at load time.
"""

from __future__ import annotations

import os

from fleetkit.netns import _syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    T = TypeVar("T")

__all__ = ["KINDS", "check_pid", "kind_by_flag", "open_ns", "run_in_netns", "same_namespace"]

# (file under /proc/PID/ns, CLONE_NEW*, nsenter short flag, nsenter long flag), in util-linux's
# namespace_files[] order: user first (see the two passes in exec.py).
KINDS: tuple[tuple[str, int, str, str], ...] = (
    ("user", sc.CLONE_NEWUSER, "U", "user"),
    ("cgroup", sc.CLONE_NEWCGROUP, "C", "cgroup"),
    ("ipc", sc.CLONE_NEWIPC, "i", "ipc"),
    ("uts", sc.CLONE_NEWUTS, "u", "uts"),
    ("net", sc.CLONE_NEWNET, "n", "net"),
    ("pid", sc.CLONE_NEWPID, "p", "pid"),
    ("mnt", sc.CLONE_NEWNS, "m", "mount"),
    ("time", sc.CLONE_NEWTIME, "T", "time"),
)


def kind_by_flag(flag: str) -> tuple[str, int, str, str]:
    for kind in KINDS:
        if flag in (kind[2], kind[3]):
            return kind
    raise KeyError(flag)


def check_pid(pid: int, proc: str = "/proc") -> int:
    """Return ``pid`` if the process exists, else raise NoSuchProcess."""
    if pid <= 0 or not os.path.isdir(f"{proc}/{pid}"):
        from fleetkit.netns.errors import NoSuchProcess

        raise NoSuchProcess(
            f"no such process: {pid}",
            hint="check the PID with 'ps -p PID' or list targets with 'fleetkit ns ps'",
        )
    return pid


def same_namespace(pid_a: int | str, pid_b: int | str, name: str, proc: str = "/proc") -> bool:
    """True when both processes are in the same namespace of kind ``name``."""
    a = os.stat(f"{proc}/{pid_a}/ns/{name}")
    b = os.stat(f"{proc}/{pid_b}/ns/{name}")
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def open_ns(pid: int, name: str = "net", proc: str = "/proc") -> int:
    """Open ``/proc/PID/ns/NAME`` (O_RDONLY|O_CLOEXEC); errors become NetnsError subclasses.

    Holding the fd keeps the namespace alive even if the process exits afterwards.
    """
    from fleetkit.netns.errors import from_oserror

    path = f"{proc}/{pid}/ns/{name}"
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise from_oserror(exc, f"cannot open {path}", pid) from None


def run_in_netns(pid: int | None, fn: Callable[[], T], netns_fd: int | None = None) -> T:
    """Run ``fn`` in a new thread that first joins the network namespace of ``pid``.

    ``pid=None`` (and no fd) runs ``fn`` in a thread of the current namespace. Exceptions raised
    by ``fn`` propagate to the caller; the thread ends when ``fn`` returns, so the namespace is
    never left attached to a long-lived thread.
    """
    import threading

    from fleetkit.netns.errors import from_oserror

    own_fd = False
    if netns_fd is None and pid is not None:
        netns_fd = open_ns(pid, "net")
        own_fd = True
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            if netns_fd is not None:
                try:
                    sc.setns(netns_fd, sc.CLONE_NEWNET)
                except OSError as exc:
                    raise from_oserror(exc, "reassociate to namespace 'ns/net' failed") from None
            result.append(fn())
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=body, name="fleetkit-netns", daemon=True)
    try:
        thread.start()
        while thread.is_alive():
            thread.join(0.2)  # short joins keep Ctrl-C responsive in the main thread
    finally:
        if own_fd and netns_fd is not None:
            os.close(netns_fd)
    if error:
        raise error[0]
    return result[0]
