"""Warnings and deprecations a task raises, kept with its result as ansible 2.19 keeps them.

A module's ``warn()``/``deprecate()`` and the engine's own deprecations (a conditional wrapped
in ``{{ }}``) end up in the task result twice: in ansible's legacy shape under ``warnings`` (a
list of strings) and ``deprecations`` (a list of dicts), which is what ``register:`` shows, and
as :class:`Message` objects under ``_fk_messages``, which the screen callback prints before the
result line (``[WARNING]: ...``, ``[DEPRECATION WARNING]: ...``).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CORE",
    "Message",
    "Origin",
    "active",
    "apply",
    "collecting",
    "deprecated",
    "note_origin",
    "origin_of",
    "removal_text",
    "warning",
]

Origin = tuple[str, int, int]  # path, 1-based line, 1-based column of the value

# ansible-core itself as the deprecator (no plugin): "removed from ansible-core version X"
CORE: tuple[str | None, str | None] = ("ansible.builtin", None)


@dataclass(frozen=True)
class Message:
    """One warning or deprecation of a task result."""

    kind: str  # "warning" | "deprecation"
    msg: str
    help_text: str | None = None
    origin: Origin | None = None
    version: str | None = None
    date: str | None = None
    deprecator: tuple[str | None, str | None] | None = None  # (resolved name, plugin type)

    def legacy(self) -> Any:
        """The shape ``register:`` shows (ansible's pre-2.19 ``warnings``/``deprecations``)."""
        if self.kind == "warning":
            return self.msg
        name = self.deprecator[0] if self.deprecator else None
        out: dict[str, Any] = {
            "msg": self.msg,
            "collection_name": ".".join(name.split(".")[:2]) if name else None,
        }
        if self.date:
            out["date"] = self.date
        else:
            out["version"] = self.version
        out["deprecator"] = (
            {"resolved_name": self.deprecator[0], "type": self.deprecator[1]}
            if self.deprecator
            else None
        )
        return out

    def headline(self) -> str:
        """The message as the first line of its display (deprecations with their removal)."""
        if self.kind == "warning":
            return self.msg
        return removal_text(self.msg, self.version, self.date, self.deprecator)


def _sentence(text: str | None) -> str:
    text = (text or "").strip()
    if text and text[-1] not in "!?.":
        text += "."
    return text


def removal_text(
    msg: str,
    version: str | None,
    date: str | None,
    deprecator: tuple[str | None, str | None] | None,
) -> str:
    """``msg`` followed by "This feature will be removed from ..." as ansible words it."""
    name, ptype = deprecator if deprecator else (None, None)
    kind = (ptype if ptype == "module" else f"{ptype} plugin") if ptype else ""
    if not name or not ptype:
        collection, plugin = name, ""
    elif name == "ansible.builtin":
        collection, plugin = name, f"the {kind} API"
    else:
        parts = name.split(".")
        collection = ".".join(parts[:2]) if len(parts) > 2 else None
        plugin = f"{kind} {parts[-1]!r}"
    if collection and plugin:
        plugin += " in"
    where = (
        "ansible-core"
        if collection == "ansible.builtin"
        else (f"collection {collection!r}" if collection else "")
    )
    if not collection:
        when = "in the future"
    elif date:
        when = f"in a release after {date}"
    elif version:
        when = f"version {version}"
    else:
        when = "in a future release"
    frm = "from" if plugin or where else ""
    tail = " ".join(p for p in ("This feature will be removed", frm, plugin, where, when) if p)
    first, second = _sentence(msg), _sentence(tail)
    return f"{first} {second}" if first else second


# -- where template strings are written ----------------------------------------------------

# id(value) -> (value, origin) for template-looking strings read from YAML (kept alive, so the
# id is never reused); only strings with template delimiters, which are few
_ORIGINS: dict[int, tuple[str, Origin]] = {}


def note_origin(value: str, origin: Origin) -> None:
    """Remember where a template-looking YAML string is written (for messages about it)."""
    if "{{" in value or "{%" in value:
        _ORIGINS[id(value)] = (value, origin)


def origin_of(value: object) -> Origin | None:
    """Where ``value`` (the very string object read from YAML) is written, if known."""
    entry = _ORIGINS.get(id(value))
    if entry is not None and entry[0] is value:
        return entry[1]
    return None


# -- collection ------------------------------------------------------------------------------

_current: contextvars.ContextVar[list[Message] | None] = contextvars.ContextVar(
    "fk_task_messages", default=None
)


@contextlib.contextmanager
def collecting() -> Iterator[list[Message]]:
    """Collect the engine's messages raised while a task runs for one host."""
    box: list[Message] = []
    token = _current.set(box)
    try:
        yield box
    finally:
        _current.reset(token)


def active() -> bool:
    """Whether a task is collecting messages now."""
    return _current.get() is not None


def warning(msg: str, origin: Origin | None = None, help_text: str | None = None) -> None:
    """Record a warning raised by the engine for the task running now (if any)."""
    box = _current.get()
    if box is not None:
        m = Message("warning", msg, help_text, origin)
        if m not in box:
            box.append(m)


def deprecated(
    msg: str,
    version: str | None = None,
    date: str | None = None,
    origin: Origin | None = None,
    deprecator: tuple[str | None, str | None] = CORE,
    help_text: str | None = None,
) -> None:
    """Record a deprecation raised by the engine for the task running now (if any)."""
    box = _current.get()
    if box is None:
        return
    # one entry per evaluation (a looped conditional raises it once per item, as in ansible)
    box.append(Message("deprecation", msg, help_text, origin, version, date, deprecator))


# -- results -------------------------------------------------------------------------------


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _tagged_deprecator(value: Any) -> tuple[str | None, str | None] | None:
    if not isinstance(value, dict):
        return None
    ptype = value.get("type")
    if isinstance(ptype, dict):  # a tagged PluginType
        ptype = ptype.get("value")
    return _str(value.get("resolved_name")), _str(ptype)


def _parse(kind: str, item: Any) -> Message | None:
    """One entry of a result's ``warnings``/``deprecations`` in any of its shapes: a string,
    a module's tagged summary (``__ansible_type``) or a legacy dict."""
    if isinstance(item, Message):
        return item
    if isinstance(item, str):
        return Message(kind, item)
    if not isinstance(item, dict):
        return Message(kind, str(item))
    event = item.get("event")
    if isinstance(event, dict):
        msg = str(event.get("msg", ""))
        help_text = _str(event.get("help_text"))
    else:
        msg, help_text = str(item.get("msg", "")), None
    if kind == "warning":
        return Message(kind, msg, help_text)
    deprecator = _tagged_deprecator(item.get("deprecator"))
    if deprecator is None and item.get("collection_name"):
        deprecator = (str(item["collection_name"]), None)
    return Message(
        kind,
        msg,
        help_text,
        None,
        _str(item.get("version")),
        _str(item.get("date")),
        deprecator,
    )


def _known(found: list[Message], m: Message) -> bool:
    """Whether ``m`` (perhaps re-read from its legacy shape) is already in ``found``."""
    return any(f == m or (f.kind == m.kind and f.legacy() == m.legacy()) for f in found)


def apply(result: dict[str, Any], extra: list[Message] | None = None) -> None:
    """Normalize ``result``'s warnings and deprecations (and ``extra`` ones the engine raised)
    into ansible's registered shape plus ``_fk_messages`` for display."""
    found: list[Message] = list(result.get("_fk_messages") or ())
    for key, kind in (("warnings", "warning"), ("deprecations", "deprecation")):
        raw = result.get(key)
        if isinstance(raw, list):
            for item in raw:
                m = _parse(kind, item)
                if m is not None and not _known(found, m):
                    found.append(m)
        elif raw not in (None, "", []):
            m = _parse(kind, raw)
            if m is not None and not _known(found, m):
                found.append(m)
    found.extend(extra or ())
    result.pop("warnings", None)
    result.pop("deprecations", None)
    if not found:
        result.pop("_fk_messages", None)
        return
    warnings = [m.legacy() for m in found if m.kind == "warning"]
    deprecations = [m.legacy() for m in found if m.kind == "deprecation"]
    if warnings:
        result["warnings"] = warnings
    if deprecations:
        result["deprecations"] = deprecations
    result["_fk_messages"] = found
