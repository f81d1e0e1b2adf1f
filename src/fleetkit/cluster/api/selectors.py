"""labelSelector and fieldSelector query parameters as predicates on stored objects."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["SelectorError", "label_predicate", "field_predicate", "labels_match"]

Pred = Callable[[dict[str, Any]], bool]
_SET = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")


class SelectorError(Exception):
    """An unparseable selector (HTTP 400)."""


def _split(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [p for p in (x.strip() for x in out) if p]


def label_predicate(text: str) -> Callable[[dict[str, str]], bool]:
    """A label selector string (``a=b,c!=d,e in (x,y),!f``) as a predicate on labels."""
    reqs: list[Callable[[dict[str, str]], bool]] = []
    for part in _split(text or ""):
        m = re.match(r"^([^\s!=]+)\s*(==|=|!=)\s*(\S*)$", part)
        if m:
            k, op, v = m.groups()
            reqs.append(_label_eq(k, v, op != "!="))
            continue
        m = _SET.match(part)
        if not m:
            raise SelectorError(f"unable to parse requirement: {part!r}")
        neg, k, op, vals = m.groups()
        if op:
            vs = {x.strip() for x in vals.split(",") if x.strip()}
            reqs.append(_label_in(k, vs, op == "in"))
        else:
            reqs.append(_label_exists(k, not neg))
    return lambda labels: all(r(labels) for r in reqs)


def labels_match(selector: Any, labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector object against labels (an empty selector matches everything)."""
    if not isinstance(selector, dict):
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, vals = e.get("key"), e.get("operator"), set(e.get("values") or [])
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and key in labels and labels.get(key) in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _field(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for p in path.split("."):
        cur = cur.get(p) if isinstance(cur, dict) else None
    if cur is None:
        return "false" if path == "spec.unschedulable" else ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def field_predicate(text: str) -> Pred:
    """A field selector (``spec.nodeName=n1,status.phase!=Failed``)."""
    reqs: list[Pred] = []
    for part in _split(text or ""):
        m = re.match(r"^([^\s!=]+)\s*(==|=|!=)\s*(.*)$", part)
        if not m:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        k, op, v = m.groups()
        reqs.append(_field_eq(k, v, op != "!="))
    return lambda obj: all(r(obj) for r in reqs)


LabelPred = Callable[[dict[str, str]], bool]


def _label_eq(k: str, v: str, equal: bool) -> LabelPred:
    return lambda lb: (lb.get(k) == v) == equal


def _label_in(k: str, vs: set[str], inside: bool) -> LabelPred:
    return lambda lb: (lb.get(k) in vs) == inside


def _label_exists(k: str, exists: bool) -> LabelPred:
    return lambda lb: (k in lb) == exists


def _field_eq(k: str, v: str, equal: bool) -> Pred:
    return lambda o: (_field(o, k) == v) == equal
