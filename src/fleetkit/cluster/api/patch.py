"""PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch
(lists merged by their patchMergeKey, ``$patch``/``$retainKeys``/``$setElementOrder``
directives) and server-side apply (the applied configuration merged over the live object,
fields a manager stops applying removed)."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["PatchError", "json_patch", "merge_patch", "strategic_merge", "MERGE_KEYS", "apply"]

# patchMergeKey per list field name (patchStrategy merge in the API's Go types)
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
PRIMITIVE_MERGE = {"finalizers"}


class PatchError(Exception):
    """A patch that cannot be applied (HTTP 422 or 400)."""


def _ptr(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, list):
            cur = cur[int(p)]
        elif isinstance(cur, dict) and p in cur:
            cur = cur[p]
        else:
            raise PatchError(f"doc is missing path: {'/' + '/'.join(parts)}")
    return cur, parts[-1]


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 on a copy of ``doc``."""
    if not isinstance(ops, list):
        raise PatchError("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict):
            raise PatchError("invalid json patch operation")
        kind, path = op.get("op"), str(op.get("path", ""))
        parts = _ptr(path)
        if kind in ("move", "copy"):
            fparent, fkey = _parent(doc, _ptr(str(op.get("from", ""))))
            val = fparent[int(fkey)] if isinstance(fparent, list) else fparent[fkey]
            if kind == "move":
                if isinstance(fparent, list):
                    del fparent[int(fkey)]
                else:
                    del fparent[fkey]
            op = {"op": "add", "path": path, "value": copy.deepcopy(val)}
            kind = "add"
        if not parts:
            if kind in ("add", "replace"):
                doc = op.get("value")
                continue
            raise PatchError(f"unsupported operation on the root: {kind}")
        parent, key = _parent(doc, parts)
        try:
            if kind == "add":
                if isinstance(parent, list):
                    parent.insert(len(parent) if key == "-" else int(key), op.get("value"))
                else:
                    parent[key] = op.get("value")
            elif kind == "remove":
                if isinstance(parent, list):
                    del parent[int(key)]
                else:
                    del parent[key]
            elif kind == "replace":
                if isinstance(parent, list):
                    parent[int(key)] = op.get("value")
                else:
                    if key not in parent:
                        raise PatchError(
                            f"replace operation does not apply: doc is missing key: {path}"
                        )
                    parent[key] = op.get("value")
            elif kind == "test":
                cur = parent[int(key)] if isinstance(parent, list) else parent.get(key)
                if cur != op.get("value"):
                    raise PatchError(f"testing value {path} failed")
            else:
                raise PatchError(f"Unexpected kind: {kind}")
        except (KeyError, IndexError, ValueError) as exc:
            raise PatchError(
                f"{kind} operation does not apply: doc is missing path: {path}"
            ) from exc
    return doc


def merge_patch(doc: Any, patch: Any) -> Any:
    """RFC 7386: null deletes, objects merge, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(doc) if isinstance(doc, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        sample = next((i for i in items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return MERGE_KEYS.get(field)


def strategic_merge(doc: Any, patch: Any) -> Any:
    """A strategic merge patch applied to a copy of ``doc``."""
    return _smp(doc, patch, "")


def _smp(doc: Any, patch: Any, field: str) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = dict(doc) if isinstance(doc, dict) else {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$retainKeys", "$patch"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            out[name] = [x for x in out.get(name) or [] if x not in (v or [])]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list):
            out[k] = _smp_list(out.get(k), v, k, patch.get(f"$setElementOrder/{k}"))
        elif isinstance(v, dict):
            merged = _smp(out.get(k), v, k)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        else:
            out[k] = v
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _smp_list(cur: Any, patch: list[Any], field: str, order: Any) -> list[Any]:
    cur = list(cur) if isinstance(cur, list) else []
    if field in PRIMITIVE_MERGE:
        assert isinstance(cur, list)
        return cur + [x for x in patch if x not in cur]
    key = _merge_key(field, patch + cur)
    if key is None or not all(isinstance(x, dict) for x in patch):
        kept: list[Any] = copy.deepcopy(
            [x for x in patch if not (isinstance(x, dict) and "$patch" in x)]
        )
        return kept
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return [copy.deepcopy(x) for x in patch if x.get("$patch") != "replace"]
    result = [dict(x) if isinstance(x, dict) else x for x in cur]
    for item in patch:
        kv = item.get(key)
        idx = next(
            (i for i, x in enumerate(result) if isinstance(x, dict) and x.get(key) == kv), None
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                del result[idx]
            continue
        if idx is None:
            result.append(_smp({}, item, field))
        else:
            result[idx] = _smp(result[idx], item, field)
    if isinstance(order, list):
        pos = {(o.get(key) if isinstance(o, dict) else o): i for i, o in enumerate(order)}
        result.sort(key=lambda x: pos.get(x.get(key) if isinstance(x, dict) else x, len(pos)))
    return result


def _strip_removed(live: Any, before: Any, after: Any, field: str = "") -> Any:
    """Remove from ``live`` what ``before`` (the manager's last applied config) set and
    ``after`` (its new one) no longer sets."""
    if not isinstance(live, dict) or not isinstance(before, dict):
        return live
    after = after if isinstance(after, dict) else {}
    out = dict(live)
    for k, v in before.items():
        if k not in after:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _strip_removed(out[k], v, after.get(k), k)
        elif isinstance(v, list) and isinstance(out.get(k), list):
            key = _merge_key(k, v)
            if key:
                keep = {x.get(key) for x in after.get(k) or [] if isinstance(x, dict)}
                gone = {x.get(key) for x in v if isinstance(x, dict)} - keep
                out[k] = [x for x in out[k] if not (isinstance(x, dict) and x.get(key) in gone)]
    return out


def apply(live: Any, applied: dict[str, Any], before: dict[str, Any] | None) -> Any:
    """Server-side apply (simplified): merge ``applied`` over ``live`` as a strategic merge,
    then drop the fields this manager applied last time (``before``) and no longer does."""
    merged = _smp(live, applied, "")
    if before:
        merged = _strip_removed(merged, before, applied)
    return merged
