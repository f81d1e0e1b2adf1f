"""How a module reaches a host: the :class:`Connection` protocol, ``local`` and ``ssh``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Connection",
    "Become",
    "BecomeFailed",
    "Unreachable",
    "ChdirFailed",
    "CommandNotFound",
    "CommandResult",
]


class Unreachable(Exception):
    """The host could not be reached; reported as ``UNREACHABLE!`` (not a FleetkitError)."""


class CommandNotFound(Exception):
    """The program to run does not exist on the target (``[Errno 2] ...: b'/path'``)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"[Errno 2] No such file or directory: {path.encode()!r}")
        self.path = path


class ChdirFailed(Exception):
    """The working directory of a command cannot be entered (``[Errno 2] ...: b'/path'``)."""

    def __init__(self, path: str, errno: int, strerror: str) -> None:
        super().__init__(f"[Errno {errno}] {strerror}: {path.encode()!r}")
        self.path = path


@dataclass(frozen=True, slots=True)
class Become:
    """Privilege escalation for a task: method, user, flags and the password (if any)."""

    user: str = "root"
    method: str = "sudo"
    flags: str = "-H -S -n"
    password: str | None = field(default=None, repr=False)


class BecomeFailed(Exception):
    """sudo refused: the password is missing or wrong (``Missing sudo password``...)."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    rc: int
    stdout: bytes
    stderr: bytes


class Connection(Protocol):
    """One persistent way to run commands on a host."""

    local: bool
    name: str

    def run(
        self,
        cmd: list[str] | str,
        *,
        stdin: bytes | None = None,
        timeout_s: float | None = None,
        become: Become | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        """Run argv (no shell) or a shell string; raise :class:`Unreachable` on transport loss."""
        ...

    def put(self, data: bytes, path: str, mode: int | None = None) -> None: ...

    def close(self) -> None: ...
