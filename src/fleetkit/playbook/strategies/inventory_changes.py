"""Apply ``add_host``/``group_by`` results to the in-memory inventory, as ansible's strategy
does while it processes a result: each (loop) result carrying ``add_host`` or ``add_group``
changes the inventory, and its ``changed`` says whether the inventory really changed."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from fleetkit.playbook.events import TaskResult
from fleetkit.playbook.inventory import Inventory

__all__ = ["apply_inventory_changes", "INVALID_GROUP_WARNING"]

INVALID_GROUP_WARNING = (
    "Invalid characters were found in group names but not replaced, use -vvvv to see details"
)
# ansible's C.INVALID_VARIABLE_NAMES: what to_safe_group_name warns about
_INVALID_NAME = re.compile(r"^[\d\W]|[^\w]")


def _status(item: dict[str, Any]) -> str:
    return "changed" if item.get("changed") else "ok"


def apply_inventory_changes(
    inv: Inventory, res: TaskResult, evaluate: Callable[[dict[str, Any], Any], bool]
) -> tuple[TaskResult, list[str]]:
    """The result after applying its inventory changes, and the warnings they raise.

    As ansible's strategy, ``changed_when``/``failed_when`` are evaluated again once the
    inventory changed (``evaluate(item, conditions)``, the task's register bound to the item).
    """
    r = res.result
    looped = bool(res.items) and isinstance(r.get("results"), list)
    items: list[Any] = list(r["results"]) if looped else [r]
    changed_when = res.task.kw.get("changed_when")
    failed_when = res.task.kw.get("failed_when")
    warnings: list[str] = []
    touched = False
    for item in items:
        if not isinstance(item, dict):
            continue
        before = set(inv.groups)
        if "add_host" in item:
            info = item.get("add_host") or {}
            changed = bool(info) and inv.add_dynamic_host(
                str(info["host_name"]),
                [str(g) for g in info.get("groups", [])],
                dict(info.get("host_vars", {})),
            )
        elif "add_group" in item:
            changed = inv.add_dynamic_group(
                res.host, str(item["add_group"]), [str(p) for p in item.get("parent_groups", [])]
            )
        else:
            continue
        touched = True
        item["changed"] = changed
        if changed_when is not None:
            item["changed"] = evaluate(item, changed_when)
        if failed_when is not None:
            item["failed_when_result"] = item["failed"] = evaluate(item, failed_when)
        if any(_INVALID_NAME.search(g) for g in set(inv.groups) - before):
            warnings.append(INVALID_GROUP_WARNING)
    if not touched:
        return res, warnings
    if not looped:
        return dataclasses.replace(res, status=_status(r)), warnings
    if any(isinstance(i, dict) and i.get("changed") for i in items):
        r["changed"] = True
    statuses = [(s if s not in ("ok", "changed") else _status(i), i) for s, i in res.items]
    return dataclasses.replace(res, status=_status(r), items=statuses), warnings
