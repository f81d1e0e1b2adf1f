"""The items of a task's ``loop`` / ``with_*`` and the variables each item brings.

The one implementation of ansible's loop-item logic: the task executor's loops use it, and so do
loops on ``include_tasks`` / ``include_role``, whose items become variables of the included tasks
(ansible's ``IncludedFile`` special vars).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetkit.playbook.errors import TemplateError
from fleetkit.playbook.filters import to_bool
from fleetkit.playbook.templar import Templar

__all__ = ["LoopControl", "loop_control", "loop_items", "item_vars"]


@dataclass(frozen=True, slots=True)
class LoopControl:
    """A task's ``loop_control`` (templated, except the label: that is per item)."""

    loop_var: str = "item"
    index_var: str | None = None
    label: Any = None
    extended: bool = False
    extended_allitems: bool = True
    pause_s: float = 0.0
    break_when: Any = None


def loop_control(kw: Mapping[str, Any], templar: Templar) -> LoopControl:
    """Parse and template the ``loop_control`` of a task's keywords."""
    raw = kw.get("loop_control") or {}
    if not isinstance(raw, dict):
        raise TemplateError("loop_control must be a dictionary")
    # templated before the loop, except label (per item) and break_when (after each item)
    late = ("label", "break_when")
    lc = {k: (v if k in late else templar.template(v)) for k, v in raw.items()}
    index_var = lc.get("index_var")
    return LoopControl(
        loop_var=str(lc.get("loop_var") or "item"),
        index_var=str(index_var) if index_var else None,
        label=lc.get("label"),
        extended=to_bool(lc.get("extended", False)),
        extended_allitems=to_bool(lc.get("extended_allitems", True)),
        pause_s=float(lc.get("pause") or 0),
        break_when=lc.get("break_when"),
    )


def loop_items(
    kw: Mapping[str, Any], templar: Templar, variables: Mapping[str, Any], action: str
) -> list[Any]:
    """The list a task's ``loop`` (or ``with_<lookup>``) iterates over."""
    from fleetkit.playbook.plugins import loop_items as lookup_items

    loop = kw.get("loop")
    with_ = kw.get("_with")
    if with_ is not None and with_ != "items":
        items: Any = lookup_items(str(with_), templar.template(loop), variables, action)
    else:
        items = templar.template(loop)
    if isinstance(items, str):
        items = [items]
    if isinstance(items, dict):
        raise TemplateError(
            "Invalid data passed to 'loop', it requires a list, got this "
            f"instead: {items}. Hint: If you passed a list/dict of just one "
            "element, try adding wantlist=True to your lookup invocation "
            "or use q/query instead of lookup."
        )
    if with_ == "items":
        flat: list[Any] = []
        for it in items or []:
            flat.extend(it if isinstance(it, list) else [it])
        items = flat
    return list(items or [])


def item_vars(lc: LoopControl, items: list[Any], i: int) -> dict[str, Any]:
    """The variables item ``i`` of ``items`` sets: the loop var, index var, ``ansible_loop``."""
    out: dict[str, Any] = {lc.loop_var: items[i], "ansible_loop_var": lc.loop_var}
    if lc.index_var:
        out[lc.index_var] = i
        out["ansible_index_var"] = lc.index_var
    if lc.extended:
        total = len(items)
        info: dict[str, Any] = {
            "index": i + 1,
            "index0": i,
            "first": i == 0,
            "last": i + 1 == total,
            "length": total,
            "revindex": total - i,
            "revindex0": total - i - 1,
        }
        if lc.extended_allitems:
            info["allitems"] = items
        if i + 1 < total:
            info["nextitem"] = items[i + 1]
        if i > 0:
            info["previtem"] = items[i - 1]
        out["ansible_loop"] = info
    return out
