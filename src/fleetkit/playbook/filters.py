"""The commonly used filters and tests of ansible-core, for the Jinja2 sandbox."""

from __future__ import annotations

import base64
import hashlib
import json
import ntpath
import os.path
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml
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


def _int(value: Any, default: int = 0, base: int = 10) -> int:
    try:
        if isinstance(value, str):
            return int(value, base)
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return default


def _float(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _regex_replace(
    value: Any,
    pattern: str,
    replacement: str = "",
    ignorecase: bool = False,
    multiline: bool = False,
    count: int = 0,
) -> str:
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    return re.sub(pattern, replacement, str(value), count=count, flags=flags)


def _regex_search(
    value: Any, pattern: str, *groups: str, ignorecase: bool = False, multiline: bool = False
) -> Any:
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    m = re.search(pattern, str(value), flags)
    if not m:
        return None
    if not groups:
        return m.group(0)
    out: list[Any] = []
    for g in groups:
        if g.startswith("\\g<") and g.endswith(">"):
            out.append(m.group(g[3:-1]))
        elif g.startswith("\\"):
            out.append(m.group(int(g[1:])))
    return out


def _regex_findall(
    value: Any, pattern: str, ignorecase: bool = False, multiline: bool = False
) -> list[Any]:
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    return re.findall(pattern, str(value), flags)


def _to_json(value: Any, **kw: Any) -> str:
    return json.dumps(value, default=str, **kw)


def _to_nice_json(value: Any, indent: int = 4, sort_keys: bool = True, **kw: Any) -> str:
    return json.dumps(
        value, indent=indent, sort_keys=sort_keys, separators=(",", ": "), default=str, **kw
    )


def _to_yaml(value: Any, **kw: Any) -> str:
    return str(yaml.safe_dump(value, allow_unicode=True, default_flow_style=None, **kw))


def _to_nice_yaml(value: Any, indent: int = 4, **kw: Any) -> str:
    return str(
        yaml.safe_dump(value, indent=indent, allow_unicode=True, default_flow_style=False, **kw)
    )


def _combine(*dicts: Any, recursive: bool = False, list_merge: str = "replace") -> dict[str, Any]:
    def merge(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(a)
        for k, v in b.items():
            if recursive and isinstance(out.get(k), dict) and isinstance(v, Mapping):
                out[k] = merge(out[k], v)
            elif list_merge == "append" and isinstance(out.get(k), list) and isinstance(v, list):
                out[k] = out[k] + v
            else:
                out[k] = v
        return out

    result: dict[str, Any] = {}
    for d in dicts:
        items = d if isinstance(d, list) else [d]
        for item in items:
            if not isinstance(item, Mapping):
                raise FilterArgumentError(f"combine expects dictionaries, got {item!r}")
            result = merge(result, item)
    return result


def _dict2items(
    value: Mapping[str, Any], key_name: str = "key", value_name: str = "value"
) -> list[dict[str, Any]]:
    if not isinstance(value, Mapping):
        raise FilterArgumentError("dict2items requires a dictionary")
    return [{key_name: k, value_name: v} for k, v in value.items()]


def _items2dict(
    value: Iterable[Mapping[str, Any]], key_name: str = "key", value_name: str = "value"
) -> dict[Any, Any]:
    return {item[key_name]: item[value_name] for item in value}


def _unique(value: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in value:
        if v not in out:
            out.append(v)
    return out


def _flatten(value: Iterable[Any], levels: int | None = None) -> list[Any]:
    out: list[Any] = []
    for v in value:
        if isinstance(v, (list, tuple)) and (levels is None or levels > 0):
            out.extend(_flatten(v, None if levels is None else levels - 1))
        elif v is not None:
            out.append(v)
    return out


def _mandatory(value: Any, msg: str | None = None) -> Any:
    if isinstance(value, Undefined):
        raise FilterArgumentError(msg or "Mandatory variable not defined.")
    return value


def _ternary(value: Any, true_val: Any, false_val: Any, none_val: Any = None) -> Any:
    if value is None and none_val is not None:
        return none_val
    return true_val if value else false_val


def _hash(value: Any, algo: str = "sha1") -> str:
    h = hashlib.new(algo)
    h.update(str(value).encode())
    return h.hexdigest()


def _type_debug(value: Any) -> str:
    return type(value).__name__


def _split(value: Any, sep: str | None = None, maxsplit: int = -1) -> list[str]:
    return str(value).split(sep, maxsplit)


def _result_status(value: Any, what: str) -> bool:
    if not isinstance(value, Mapping):
        raise FilterArgumentError(f"The '{what}' test expects a dictionary")
    if what == "failed":
        return bool(value.get("failed", False))
    if what == "changed":
        return bool(value.get("changed", False))
    if what == "skipped":
        return bool(value.get("skipped", False))
    if what == "succeeded":
        return not bool(value.get("failed", False))
    if what == "unreachable":
        return bool(value.get("unreachable", False))
    return False


def _version_compare(
    value: Any, version: Any, operator: str = "eq", strict: Any = None, version_type: Any = None
) -> bool:
    def key(v: Any) -> list[Any]:
        parts = re.split(r"[.\-+~]", str(v))
        return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts]

    a, b = key(value), key(version)
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "==": lambda x, y: x == y,
        "eq": lambda x, y: x == y,
        "!=": lambda x, y: x != y,
        "ne": lambda x, y: x != y,
        "<>": lambda x, y: x != y,
        "<": lambda x, y: x < y,
        "lt": lambda x, y: x < y,
        "<=": lambda x, y: x <= y,
        "le": lambda x, y: x <= y,
        ">": lambda x, y: x > y,
        "gt": lambda x, y: x > y,
        ">=": lambda x, y: x >= y,
        "ge": lambda x, y: x >= y,
    }
    if operator not in ops:
        raise FilterArgumentError(f"Invalid operator type ({operator})")
    return ops[operator](a, b)


def _match(value: Any, pattern: str, ignorecase: bool = False, multiline: bool = False) -> bool:
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    return re.match(pattern, str(value), flags) is not None


def _search(value: Any, pattern: str, ignorecase: bool = False, multiline: bool = False) -> bool:
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    return re.search(pattern, str(value), flags) is not None


FILTERS: dict[str, Callable[..., Any]] = {
    "default": _default,
    "d": _default,
    "bool": to_bool,
    "int": _int,
    "float": _float,
    "string": lambda v: str(v),
    "regex_replace": _regex_replace,
    "regex_search": _regex_search,
    "regex_findall": _regex_findall,
    "regex_escape": lambda v: re.escape(str(v)),
    "to_json": _to_json,
    "to_nice_json": _to_nice_json,
    "from_json": lambda v: json.loads(v),
    "to_yaml": _to_yaml,
    "to_nice_yaml": _to_nice_yaml,
    "from_yaml": lambda v: yaml.safe_load(v),
    "combine": _combine,
    "dict2items": _dict2items,
    "items2dict": _items2dict,
    "unique": _unique,
    "union": lambda a, b: _unique(list(a) + list(b)),
    "intersect": lambda a, b: _unique([x for x in a if x in b]),
    "difference": lambda a, b: _unique([x for x in a if x not in b]),
    "symmetric_difference": lambda a, b: _unique(
        [x for x in a if x not in b] + [x for x in b if x not in a]
    ),
    "flatten": _flatten,
    "basename": lambda v: os.path.basename(str(v)),
    "dirname": lambda v: os.path.dirname(str(v)),
    "win_basename": lambda v: ntpath.basename(str(v)),
    "expanduser": lambda v: os.path.expanduser(str(v)),
    "realpath": lambda v: os.path.realpath(str(v)),
    "quote": lambda v: shlex.quote(str(v)),
    "b64encode": lambda v: base64.b64encode(str(v).encode()).decode(),
    "b64decode": lambda v: base64.b64decode(str(v)).decode(errors="replace"),
    "mandatory": _mandatory,
    "ternary": _ternary,
    "hash": _hash,
    "checksum": lambda v: _hash(v, "sha1"),
    "md5": lambda v: _hash(v, "md5"),
    "sha1": lambda v: _hash(v, "sha1"),
    "type_debug": _type_debug,
    "split": _split,
    "zip": lambda *a: [list(t) for t in zip(*a, strict=False)],
    "bool_or_none": lambda v: None if v is None else to_bool(v),
}

TESTS: dict[str, Callable[..., Any]] = {
    "changed": lambda v: _result_status(v, "changed"),
    "change": lambda v: _result_status(v, "changed"),
    "failed": lambda v: _result_status(v, "failed"),
    "failure": lambda v: _result_status(v, "failed"),
    "succeeded": lambda v: _result_status(v, "succeeded"),
    "success": lambda v: _result_status(v, "succeeded"),
    "successful": lambda v: _result_status(v, "succeeded"),
    "skipped": lambda v: _result_status(v, "skipped"),
    "skip": lambda v: _result_status(v, "skipped"),
    "unreachable": lambda v: _result_status(v, "unreachable"),
    "match": _match,
    "search": _search,
    "regex": _search,
    "version": _version_compare,
    "version_compare": _version_compare,
    "subset": lambda a, b: all(x in b for x in a),
    "superset": lambda a, b: all(x in a for x in b),
    "contains": lambda a, b: b in a,
    "truthy": lambda v: bool(v),
    "falsy": lambda v: not bool(v),
    "file": lambda v: os.path.isfile(str(v)),
    "directory": lambda v: os.path.isdir(str(v)),
    "exists": lambda v: os.path.exists(str(v)),
    "link": lambda v: os.path.islink(str(v)),
    "abs": lambda v: os.path.isabs(str(v)),
    "any": lambda v: any(v),
    "all": lambda v: all(v),
}
