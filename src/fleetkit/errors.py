"""The fleetkit exception tree; the only module every subsystem may import.

::

    FleetkitError(message, hint=None)          exit 1 unless a subclass says otherwise
    ├── UsageError                              exit 2: bad flags or a bad input file (file:line)
    ├── RegistryError                           image distribution (server and client)
    ├── SchedulerError                          pod placement
    ├── ClusterError                            the simulated cluster (API errors carry a Status)
    ├── PlaybookError                           playbook runner
    └── NetnsError                              namespaces and the helpers run inside them

Expected outcomes are values, not exceptions: an unschedulable pod is a ``Status``, a failed host
is a per-host result. Only ``fleetkit.cli`` prints ``error: ...`` / ``hint: ...`` and exits.
Subsystems may subclass these (e.g. ``class ManifestUnknown(RegistryError)``); a subclass that is
also a usage problem inherits from ``UsageError`` too.
"""

from __future__ import annotations

__all__ = [
    "FleetkitError",
    "UsageError",
    "RegistryError",
    "SchedulerError",
    "ClusterError",
    "PlaybookError",
    "NetnsError",
]


class FleetkitError(Exception):
    """Root of every error fleetkit reports to a user."""

    exit_code: int = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(FleetkitError):
    """Bad flags or a bad input file; ``source`` is ``file:line`` where known."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, source: str | None = None) -> None:
        super().__init__(f"{source}: {message}" if source else message, hint)
        self.source = source


class RegistryError(FleetkitError):
    """Image distribution: registry server, token service, pull/push client."""


class SchedulerError(FleetkitError):
    """Pod placement."""


class ClusterError(FleetkitError):
    """The simulated cluster (``fleetkit cluster``)."""


class PlaybookError(FleetkitError):
    """Playbook runner."""


class NetnsError(FleetkitError):
    """Namespaces: targets, entering, helpers."""
