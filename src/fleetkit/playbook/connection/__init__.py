"""How a module reaches a host: the :class:`Connection` protocol, ``local`` and ``ssh``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Connection", "Become", "Unreachable", "CommandResult"]


class Unreachable(Exception):
    """The host could not be reached; reported as ``UNREACHABLE!`` (not a FleetkitError)."""


@dataclass(frozen=True, slots=True)
class Become:
    user: str = "root"
    method: str = "sudo"
    flags: str = "-H -S -n"


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
    ) -> CommandResult:
        """Run argv (no shell) or a shell string; raise :class:`Unreachable` on transport loss."""
        ...

    def put(self, data: bytes, path: str, mode: int | None = None) -> None: ...

    def close(self) -> None: ...
