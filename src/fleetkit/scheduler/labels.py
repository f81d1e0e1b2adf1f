"""Label selectors (metav1.LabelSelector) and node selectors (v1.NodeSelector), parsed once.

A selector that fails to parse is kept with its error: kube's API server does not validate every
selector field, so plugins decide what a parse error means (usually "matches nothing").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Requirement",
    "Selector",
    "EVERYTHING",
    "NOTHING",
    "selector_from_labels",
    "parse_label_selector",
    "NodeSelectorTerm",
    "parse_node_selector_terms",
    "parse_node_selector_term",
    "aggregate",
    "label_value_errors",
    "qualified_name_errors",
]

_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)

QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def qualified_name_errors(value: str) -> list[str]:
    """apimachinery IsQualifiedName: the messages kube reports for a bad label key."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        elif len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix):
            errs.append(
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
                "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                "character (e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            )
    else:
        return [
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
            "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') "
            "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if not _QUALIFIED_NAME.match(name):
        errs.append("name part " + QUALIFIED_NAME_MSG)
    return errs


def label_value_errors(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _LABEL_VALUE.match(value):
        errs.append(LABEL_VALUE_MSG)
    return errs


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str  # In NotIn Exists DoesNotExist Gt Lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == "In":
            return self.key in labels and labels[self.key] in self.values
        if op == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if op == "Exists":
            return self.key in labels
        if op == "DoesNotExist":
            return self.key not in labels
        if op in ("Gt", "Lt"):
            if self.key not in labels:
                return False
            try:
                have = int(labels[self.key])
                want = int(self.values[0])
            except (ValueError, IndexError):
                return False
            return have > want if op == "Gt" else have < want
        return False


@dataclass(frozen=True, slots=True)
class Selector:
    """A parsed label selector. ``nothing`` matches no set; no requirements matches every set."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False
    error: str | None = None

    @property
    def empty(self) -> bool:
        """labels.Selector.Empty(): true only for the select-everything selector."""
        return not self.nothing and not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.nothing:
            return False
        for r in self.requirements:
            if not r.matches(labels):
                return False
        return True

    def add(self, reqs: tuple[Requirement, ...]) -> Selector:
        if self.nothing:
            return self
        return Selector(tuple(sorted(self.requirements + reqs, key=_req_key)), False, self.error)

    def __str__(self) -> str:
        if self.nothing:
            return "<none>"
        out = []
        for r in self.requirements:
            if r.operator == "In" and len(r.values) == 1:
                out.append(f"{r.key}={r.values[0]}")
            elif r.operator == "Exists":
                out.append(r.key)
            elif r.operator == "DoesNotExist":
                out.append("!" + r.key)
            else:
                out.append(f"{r.key} {r.operator.lower()} ({','.join(r.values)})")
        return ",".join(out)


def _req_key(r: Requirement) -> tuple[str, str, tuple[str, ...]]:
    return (r.key, r.operator, r.values)


EVERYTHING = Selector()
NOTHING = Selector(nothing=True)


def selector_from_labels(labels: Mapping[str, str]) -> Selector:
    reqs = tuple(Requirement(k, "In", (v,)) for k, v in sorted(labels.items()))
    return Selector(reqs)


def parse_label_selector(obj: Any) -> Selector:
    """metav1.LabelSelectorAsSelector: None -> nothing, {} -> everything."""
    if obj is None:
        return NOTHING
    if not isinstance(obj, dict):
        return Selector(nothing=True, error="labelSelector must be an object")
    reqs: list[Requirement] = []
    errors: list[str] = []
    for k, v in (obj.get("matchLabels") or {}).items():
        val = "" if v is None else str(v)
        errors += [f"key: Invalid value: {k!r}: {m}" for m in qualified_name_errors(str(k))]
        errors += [f'values[0][{k}]: Invalid value: "{val}": {m}' for m in label_value_errors(val)]
        reqs.append(Requirement(str(k), "In", (val,)))
    for expr in obj.get("matchExpressions") or []:
        key = str(expr.get("key", ""))
        op = str(expr.get("operator", ""))
        values = tuple("" if x is None else str(x) for x in expr.get("values") or [])
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            errors.append(f'operator: Unsupported value: "{op}"')
            continue
        if op in ("In", "NotIn") and not values:
            errors.append(
                "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
            )
        if op in ("Exists", "DoesNotExist") and values:
            errors.append(
                "values: Invalid value: values set must be empty for exists and does not exist"
            )
        for i, val in enumerate(values):
            errors += [
                f'values[{i}][{key}]: Invalid value: "{val}": {m}' for m in label_value_errors(val)
            ]
        reqs.append(Requirement(key, op, tuple(sorted(set(values)))))
    if errors:
        return Selector(nothing=True, error=aggregate(errors))
    return Selector(tuple(sorted(reqs, key=_req_key)))


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    """One v1.NodeSelectorTerm; a term with no requirements, or that failed to parse, matches no node."""

    expressions: tuple[Requirement, ...] = ()
    fields: tuple[Requirement, ...] = ()
    valid: bool = True
    error: str | None = None
    raw: Any = field(default=None, compare=False, hash=False)

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        if not self.valid or (not self.expressions and not self.fields):
            return False
        for r in self.expressions:
            if not r.matches(labels):
                return False
        if self.fields:
            fld = {"metadata.name": name}
            for r in self.fields:
                if not r.matches(fld):
                    return False
        return True


def _go_strings(values: tuple[str, ...]) -> str:
    return "[]string{" + ", ".join(f'"{v}"' for v in values) + "}" if values else "[]string(nil)"


def _node_requirement(expr: Any, is_field: bool, path: str) -> tuple[Requirement | None, list[str]]:
    """nodeSelectorRequirementsAsSelector / ...AsFieldSelector: kube's field-path messages."""
    if not isinstance(expr, dict):
        return None, [f"{path}: Invalid value: requirement must be an object"]
    key = str(expr.get("key", ""))
    op = str(expr.get("operator", ""))
    values = tuple("" if v is None else str(v) for v in expr.get("values") or [])
    if is_field:
        if key != "metadata.name":
            return None, [f'{path}.key: Invalid value: "{key}": not a valid field selector key']
        if op not in ("In", "NotIn"):
            return None, [f'{path}.operator: Unsupported value: "{op}"']
        if len(values) != 1:
            return None, [
                f"{path}.values: Invalid value: {_go_strings(values)}: must have one element"
            ]
        return Requirement(key, op, values), []
    if op not in ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"):
        return None, [f'{path}.operator: Unsupported value: "{op}"']
    errs = [f'{path}.key: Invalid value: "{key}": {m}' for m in qualified_name_errors(key)]
    vpath = f"{path}.values"
    if op in ("In", "NotIn"):
        if not values:
            errs.append(
                f"{vpath}: Invalid value: {_go_strings(values)}: for 'in', 'notin' operators, "
                "values set can't be empty"
            )
    elif op in ("Exists", "DoesNotExist"):
        if values:
            errs.append(
                f"{vpath}: Invalid value: {_go_strings(values)}: values set must be empty for "
                "exists and does not exist"
            )
    else:
        if len(values) != 1:
            errs.append(
                f"{vpath}: Invalid value: {_go_strings(values)}: for 'Gt', 'Lt' operators, "
                "exactly one value is required"
            )
        else:
            try:
                int(values[0])
            except ValueError:
                errs.append(
                    f"{vpath}[0]: Invalid value: \"{values[0]}\": for 'Gt', 'Lt' operators, "
                    "the value must be an integer"
                )
    for i, v in enumerate(values):
        errs += [f'{vpath}[{i}]: Invalid value: "{v}": {m}' for m in label_value_errors(v)]
    if errs:
        return None, errs
    return Requirement(key, op, values), []


def parse_node_selector_term(obj: Any, path: str = "") -> NodeSelectorTerm:
    if not isinstance(obj, dict):
        return NodeSelectorTerm(valid=False, error=f"{path}: Invalid value: term must be an object")
    exprs: list[Requirement] = []
    fields: list[Requirement] = []
    errors: list[str] = []
    for i, e in enumerate(obj.get("matchExpressions") or []):
        r, errs = _node_requirement(e, False, f"{path}.matchExpressions[{i}]".lstrip("."))
        errors += errs
        if r is not None:
            exprs.append(r)
    for i, e in enumerate(obj.get("matchFields") or []):
        r, errs = _node_requirement(e, True, f"{path}.matchFields[{i}]".lstrip("."))
        errors += errs
        if r is not None:
            fields.append(r)
    if errors:
        return NodeSelectorTerm(valid=False, error=", ".join(errors), raw=obj)
    return NodeSelectorTerm(tuple(exprs), tuple(fields), True, None, obj)


def parse_node_selector_terms(objs: Any) -> tuple[NodeSelectorTerm, ...]:
    return tuple(parse_node_selector_term(t, f"[{i}]") for i, t in enumerate(objs or []))


def aggregate(errors: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one message, or [a, b, ...]."""
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
