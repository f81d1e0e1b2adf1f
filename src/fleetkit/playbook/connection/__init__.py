"""How a module reaches a host: the :class:`Connection` protocol, ``local`` and ``ssh``."""

from __future__ import annotations

import os
import select
import subprocess
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Connection",
    "Become",
    "BecomeFailed",
    "Unreachable",
    "ChdirFailed",
    "CommandNotFound",
    "CommandResult",
    "wait_exit",
]


def wait_exit(proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    """``proc.wait(timeout_s)`` woken by the exit itself (a pidfd) instead of subprocess's
    polling sleeps, which add up to 50 ms after the exit; raises subprocess.TimeoutExpired."""
    if proc.returncode is None and hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(proc.pid)
        except OSError:
            return proc.wait(timeout=timeout_s)
        try:
            select.select([fd], [], [], timeout_s)
        finally:
            os.close(fd)
        return proc.wait(timeout=0)
    return proc.wait(timeout=timeout_s)


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
    """Privilege escalation for a task: ansible's become plugin and its resolved options.

    ``method`` is the plugin's name as ansible's messages show it (``sudo``, ``su``,
    ``community.general.doas``); ``plugin`` the name ansible's loader resolved; ``options`` the
    plugin's other options (``prompt_l10n``, ``sudo_chdir`` ...) as (name, value) pairs.
    """

    user: str = "root"
    method: str = "sudo"
    flags: str = "-H -S -n"
    password: str | None = field(default=None, repr=False)
    exe: str | None = None
    plugin: str = "ansible.builtin.sudo"
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> tuple[str, ...]:
        """What makes two escalations the same process (the password does not)."""
        return (self.plugin, self.user, self.exe or "", self.flags, repr(self.options))


class BecomeFailed(Exception):
    """The become method refused: ``Incorrect su password``, ``Missing sudo password``..."""


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
