"""OpenAPI v3 per group-version (``/openapi/v3``): the served kinds' schemas with their field
docs, and per-path operations naming their GVK and the query parameters the server supports
(kubectl checks ``fieldValidation`` there before it relies on server-side validation)."""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from fleetkit.cluster.api.patch import MERGE_KEYS
from fleetkit.cluster.api.resources import GROUP_VERSIONS, RESOURCES, Resource
from fleetkit.cluster.api.schema import META_MODELS, _go_name, model, model_for_kind

__all__ = ["root_index", "group_version_doc", "gv_path"]

K8S_VERSION = "v1.32.2"
_API_GROUP_PKG = {
    "": "core",
    "apps": "apps",
    "batch": "batch",
    "policy": "policy",
    "scheduling.k8s.io": "scheduling",
    "coordination.k8s.io": "coordination",
}


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


@functools.cache
def _names() -> dict[str, str]:
    """Python model name -> OpenAPI schema name, grouped as the API's Go packages are."""
    names: dict[str, str] = {}
    for group, version in GROUP_VERSIONS:
        pkg = _API_GROUP_PKG.get(group, group.split(".")[0])
        todo = [
            m.py_name
            for r in RESOURCES
            if r.group == group and (m := model_for_kind(r.kind)) is not None
        ]
        while todo:
            py = todo.pop()
            if py in names:
                continue
            m = model(py)
            if m is None:
                continue
            go = _go_name(py)
            if go in META_MODELS:
                names[py] = f"io.k8s.apimachinery.pkg.apis.meta.v1.{go}"
            else:
                names[py] = f"io.k8s.api.{pkg}.{version}.{go}"
            for f in m.fields.values():
                todo += [t for t in _refs(f.type) if t not in names]
    return names


def _refs(typ: str) -> list[str]:
    if typ.startswith("list["):
        return _refs(typ[5:-1])
    if typ.startswith("dict("):
        return _refs(typ.split(", ", 1)[1][:-1])
    if typ in ("str", "int", "bool", "float", "datetime", "object", "date"):
        return []
    return [typ]


def _type_schema(typ: str, field: str) -> dict[str, Any]:
    if typ == "str":
        return {"type": "string"}
    if typ == "int":
        return {"type": "integer", "format": "int32"}
    if typ == "float":
        return {"type": "number", "format": "double"}
    if typ == "bool":
        return {"type": "boolean"}
    if typ in ("datetime", "date"):
        return {"type": "string", "format": "date-time"}
    if typ == "object":
        return (
            {"x-kubernetes-int-or-string": True}
            if field.endswith(("Port", "Surge", "Unavailable", "port"))
            else {"type": "object"}
        )
    if typ.startswith("list["):
        out: dict[str, Any] = {"type": "array", "items": _type_schema(typ[5:-1], field)}
        if field in MERGE_KEYS:
            out["x-kubernetes-patch-merge-key"] = MERGE_KEYS[field]
            out["x-kubernetes-patch-strategy"] = "merge"
        return out
    if typ.startswith("dict("):
        return {
            "type": "object",
            "additionalProperties": _type_schema(typ.split(", ", 1)[1][:-1], field),
        }
    name = _names().get(typ)
    if name is None:
        return {"type": "object"}
    return {"allOf": [{"$ref": f"#/components/schemas/{name}"}]}


def _schema(py: str, gvk: dict[str, str] | None) -> dict[str, Any]:
    m = model(py)
    assert m is not None
    props: dict[str, Any] = {}
    for f in m.fields.values():
        s = _type_schema(f.type, f.name)
        if f.description:
            s["description"] = f.description
        if "allOf" in s:
            s["default"] = {}
        props[f.name] = s
    out: dict[str, Any] = {"type": "object", "description": m.description, "properties": props}
    req = sorted(f.name for f in m.fields.values() if f.required)
    if req:
        out["required"] = req
    if gvk is not None:
        out["x-kubernetes-group-version-kind"] = [gvk]
    return out


_PARAMS = ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]


def _op(r: Resource, action: str, kind: str | None = None) -> dict[str, Any]:
    params = [
        {"name": p, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
        for p in (_PARAMS if action in ("patch", "put", "post") else ["pretty"])
    ]
    return {
        "operationId": f"{action}{r.kind}",
        "parameters": params,
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": r.group,
            "version": r.version,
            "kind": kind or r.kind,
        },
    }


@functools.cache
def _doc(group: str, version: str) -> bytes:
    names = _names()
    schemas: dict[str, Any] = {}
    gvks: dict[str, dict[str, str]] = {}
    for r in RESOURCES:
        m = model_for_kind(r.kind)
        if m is not None and r.group == group:
            gvks[m.py_name] = {"group": r.group, "kind": r.kind, "version": r.version}
    todo = list(gvks)
    seen: set[str] = set()
    while todo:
        py = todo.pop()
        if py in seen or py not in names:
            continue
        seen.add(py)
        schemas[names[py]] = _schema(py, gvks.get(py))
        m = model(py)
        assert m is not None
        for f in m.fields.values():
            todo += _refs(f.type)
    paths: dict[str, Any] = {}
    prefix = "/" + gv_path(group, version)
    for r in RESOURCES:
        if r.group != group or r.version != version:
            continue
        base = (
            f"{prefix}/namespaces/{{namespace}}/{r.plural}"
            if r.namespaced
            else f"{prefix}/{r.plural}"
        )
        paths[base] = {"get": _op(r, "list"), "post": _op(r, "post")}
        item = {
            "get": _op(r, "get"),
            "put": _op(r, "put"),
            "patch": _op(r, "patch"),
            "delete": _op(r, "delete"),
        }
        paths[base + "/{name}"] = item
        for sub in r.subresources:
            if sub in ("status", "scale"):
                paths[f"{base}/{{name}}/{sub}"] = {
                    "get": _op(r, "get", "Scale" if sub == "scale" else None),
                    "put": _op(r, "put", "Scale" if sub == "scale" else None),
                    "patch": _op(r, "patch", "Scale" if sub == "scale" else None),
                }
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": K8S_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    return json.dumps(doc).encode()


def group_version_doc(group: str, version: str) -> bytes:
    """The OpenAPI v3 document of one group-version (JSON bytes, cached)."""
    return _doc(group, version)


@functools.cache
def root_index() -> dict[str, Any]:
    """``GET /openapi/v3``: each group-version's document and its hash."""
    paths = {}
    for group, version in GROUP_VERSIONS:
        p = gv_path(group, version)
        h = hashlib.sha512(p.encode() + K8S_VERSION.encode()).hexdigest()[:64].upper()
        paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={h}"}
    return {"paths": paths}
