"""Trust markers: values that must never be templated (``!unsafe``, data from hosts).

ansible 2.19 templates only what came from a trusted source (playbooks, inventory, vars files);
data that comes back from a host (module results, registered variables, facts) and what lookups
read from files is data. fleetkit marks such strings with :class:`UnsafeText` where they enter
(``mark_unsafe``); the templar never renders an ``UnsafeText``.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import yaml
from yaml.representer import SafeRepresenter

__all__ = ["UnsafeText", "mark_unsafe"]

T = TypeVar("T")


class UnsafeText(str):
    """A string that is data, never a template (``!unsafe``, module results, facts)."""

    __slots__ = ()


def mark_unsafe(value: T) -> T:
    """Return ``value`` with every string in it (keys too) wrapped as :class:`UnsafeText`."""
    return cast(T, _mark(value))


def _mark(value: Any) -> Any:
    if isinstance(value, str):
        return value if isinstance(value, UnsafeText) else UnsafeText(value)
    if isinstance(value, dict):
        return {_mark(k): _mark(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_mark(v) for v in value)
    return value


# Dumpers must print unsafe strings as the plain strings they are.
yaml.SafeDumper.add_representer(UnsafeText, SafeRepresenter.represent_str)
yaml.Dumper.add_representer(UnsafeText, SafeRepresenter.represent_str)
