"""Progress events: the library reports, the CLI renders (bars on a TTY, lines otherwise)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Event", "EventSink", "TraceSink", "short_id", "printable"]

# C0/C1 controls, format characters (bidi overrides, zero-width), line/paragraph separators
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


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


def printable(text: str, limit: int | None = None, keep: str = "") -> str:
    """``text`` from the network made safe for a terminal: one line, no escape sequences.

    Control and format characters become Python escapes (``\\x1b``, ``\\r``, ``\\n``,
    ``\\u202e``), so a registry cannot move the cursor, retitle the window or forge a
    ``hint:`` line. ``limit`` truncates to that many characters (with ``...``); characters in
    ``keep`` (e.g. ``"\\n\\t"`` for a multi-line document) are left as they are.
    """
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    if text.isprintable():
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in _UNSAFE_CATEGORIES and ch not in keep
        else ch
        for ch in text
    )
