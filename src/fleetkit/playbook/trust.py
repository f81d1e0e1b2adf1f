"""Trust markers: values that must never be templated (``!unsafe``, data from hosts)."""

from __future__ import annotations

__all__ = ["UnsafeText"]


class UnsafeText(str):
    """A string that is data, never a template (``!unsafe``, module results, facts)."""

    __slots__ = ()
