"""The filters fleetkit implements itself (undefined handling) and ansible's ``to_bool``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import Undefined
from jinja2.exceptions import FilterArgumentError

__all__ = ["FILTERS", "TESTS", "to_bool"]


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)):
        return value == 1
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "on", "1", "true", "t", "y")
    return False


def _default(value: Any, default: Any = "", boolean: bool = False) -> Any:
    if isinstance(value, Undefined) or (boolean and not value):
        return default
    return value


def _mandatory(value: Any, msg: str | None = None) -> Any:
    if isinstance(value, Undefined):
        raise FilterArgumentError(msg or "Mandatory variable not defined.")
    return value


# fleetkit's own versions of ansible.builtin filters, for the undefined-value semantics that
# ansible implements with its markers; every other ansible filter and test is ansible's own.
FILTERS: dict[str, Callable[..., Any]] = {
    "default": _default,
    "d": _default,
    "mandatory": _mandatory,
}

TESTS: dict[str, Callable[..., Any]] = {}
