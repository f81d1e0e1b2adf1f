"""Progress events: the library reports, the CLI renders (bars on a TTY, lines otherwise)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Event", "EventSink", "TraceSink", "short_id"]


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to one blob (or to the image, with ``digest`` empty).

    ``kind`` is one of: ``resolved`` (manifest fetched; ``message`` is the digest),
    ``waiting``, ``start`` (``offset`` > 0 when resuming), ``progress``, ``done``, ``exists``,
    ``mounted``, ``retry`` (``message`` says why), ``failed``.
    """

    kind: str
    digest: str = ""
    size: int = 0
    offset: int = 0
    message: str = ""


EventSink = Callable[[Event], None]
TraceSink = Callable[[str], None]


def short_id(digest: str) -> str:
    """The 12-hex-digit id docker prints for a layer."""
    return digest.partition(":")[2][:12] or digest
