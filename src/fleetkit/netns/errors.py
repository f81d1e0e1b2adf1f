"""Errors of the namespace subsystem.

::

    NetnsError                         (fleetkit.errors)
    ├── TargetError                    a PID, container or pod could not be resolved
    │   ├── NoSuchProcess              the PID does not exist or exited mid-way
    │   ├── AmbiguousTarget            a name matches more than one container
    │   └── UnknownTarget              no container or pod by that name
    ├── PermissionDenied               not root / missing CAP_SYS_ADMIN or CAP_NET_RAW
    ├── EnterError                     setns/chroot/chdir/setuid failed
    ├── HelperError                    a helper (dig, capture, ...) failed
    └── NsenterUsage                   bad nsenter flags: exit 1, as util-linux does
"""

from __future__ import annotations

import errno as _errno

from fleetkit.errors import NetnsError, UsageError

__all__ = [
    "AmbiguousTarget",
    "EnterError",
    "HelperError",
    "NetnsError",
    "NoSuchProcess",
    "NsenterUsage",
    "PermissionDenied",
    "TargetError",
    "UnknownTarget",
    "from_oserror",
]

ROOT_HINT = "run as root (sudo fleetkit ...) or grant CAP_SYS_ADMIN, CAP_SYS_PTRACE and CAP_NET_RAW"


class TargetError(NetnsError):
    """A target could not be resolved."""


class NoSuchProcess(TargetError):
    """The PID does not exist, or the process exited mid-way."""


class AmbiguousTarget(TargetError):
    """A container name or ID prefix matches more than one container."""


class UnknownTarget(TargetError):
    """No container or pod by that name on this node."""


class PermissionDenied(NetnsError):
    """Not root, or missing the capability the operation needs."""


class EnterError(NetnsError):
    """Entering a namespace, chroot, chdir or credential change failed."""


class HelperError(NetnsError):
    """A network helper failed (DNS, capture, connect, http)."""


class NsenterUsage(UsageError, NetnsError):
    """Bad ``fleetkit nsenter`` flags: exit 1, as util-linux nsenter exits."""

    exit_code = 1


def from_oserror(exc: OSError, what: str, pid: int | None = None) -> NetnsError:
    """Translate an OSError raised while touching ``what`` (a path or an action)."""
    reason = exc.strerror or str(exc)
    if exc.errno in (_errno.EPERM, _errno.EACCES):
        return PermissionDenied(f"{what}: {reason}", hint=ROOT_HINT)
    if exc.errno in (_errno.ENOENT, _errno.ESRCH) and pid is not None:
        if os_exists(f"/proc/{pid}"):
            return NoSuchProcess(
                f"{what}: {reason}", hint=f"process {pid} exited mid-way; pick a live process"
            )
        return NoSuchProcess(
            f"no such process: {pid}",
            hint="check the PID with 'ps -p PID' or list targets with 'fleetkit ns ps'",
        )
    return EnterError(f"{what}: {reason}")


def os_exists(path: str) -> bool:
    import os

    return os.path.exists(path)
