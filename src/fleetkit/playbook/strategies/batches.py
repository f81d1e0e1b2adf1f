"""Which hosts run, in which order and batches: ``order`` then ``serial`` (ansible's
``_get_serialized_batches``), and the ``max_fail_percentage`` threshold."""

from __future__ import annotations

from typing import Any

from fleetkit.playbook.errors import PlaybookError

__all__ = ["serial_batches", "pct_to_int", "exceeds_max_fail"]


def pct_to_int(value: Any, total: int, min_value: int = 1) -> int:
    """``"30%"`` of ``total`` hosts (at least ``min_value``); plain ints pass through."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            pct = float(value.strip()[:-1])
        except ValueError:
            raise PlaybookError(f"invalid serial value {value!r}") from None
        return int((pct / 100.0) * total) or min_value
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PlaybookError(
            f"invalid serial value {value!r}",
            hint="serial takes an integer, 'N%' or a list of them",
        ) from None


def serial_batches(hosts: list[str], serial: list[Any]) -> list[list[str]]:
    remaining = list(hosts)
    total = len(remaining)
    items = serial or [-1]
    batches: list[list[str]] = []
    cur = 0
    while remaining:
        size = pct_to_int(items[cur], total)
        if size <= 0:
            batches.append(remaining)
            break
        batches.append(remaining[:size])
        remaining = remaining[size:]
        cur = min(cur + 1, len(items) - 1)
    return batches


def exceeds_max_fail(failed: int, batch_size: int, max_fail_percentage: float) -> bool:
    """Strictly greater than, as ansible's linear strategy compares."""
    if batch_size <= 0:
        return False
    return (failed / batch_size) > (max_fail_percentage / 100.0)
