"""Field schemas of the served kinds, read from the Kubernetes Python client's generated models
(the API's own OpenAPI, as that package ships it): names, types, descriptions, required fields.

Used by strict field validation (the API server's ``strict decoding error: unknown field``) and
to publish OpenAPI v3 (``kubectl explain``, kubectl's field-validation support check).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import kubernetes.client as kmodels

__all__ = ["Field", "Model", "model", "model_for_kind", "decode_errors", "DecodeError"]

# kinds whose Python model is not V1<Kind>
_KIND_MODEL = {"Event": "CoreV1Event"}
# fields whose values are resource.Quantity (numbers allowed) although the client types them str
_QUANTITY_FIELDS = {
    "limits",
    "requests",
    "capacity",
    "allocatable",
    "hard",
    "used",
    "overhead",
    "sizeLimit",
    "allocatedResources",
}
_INT64 = {
    "terminationGracePeriodSeconds",
    "activeDeadlineSeconds",
    "tolerationSeconds",
    "runAsUser",
    "runAsGroup",
    "fsGroup",
    "generation",
    "observedGeneration",
    "deletionGracePeriodSeconds",
    "expirationSeconds",
    "startingDeadlineSeconds",
}
META_MODELS = {
    "ObjectMeta",
    "ListMeta",
    "OwnerReference",
    "ManagedFieldsEntry",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Condition",
    "Status",
    "StatusDetails",
    "StatusCause",
    "DeleteOptions",
    "Preconditions",
    "Time",
    "MicroTime",
}


@dataclass(frozen=True, slots=True)
class Field:
    """A field of a model: JSON name, the client's type string, description, required."""

    name: str
    type: str
    description: str
    required: bool


@dataclass(frozen=True, slots=True)
class Model:
    """A generated model: its Go type name and fields by JSON name."""

    py_name: str
    go_name: str
    description: str
    fields: dict[str, Field]


def _go_name(py_name: str) -> str:
    return re.sub(r"^(?:CoreV1|EventsV1|V1beta\d|V1alpha\d|V1|V2)", "", py_name)


def _doc_text(doc: str | None) -> str:
    if not doc:
        return ""
    lines = [ln.strip() for ln in doc.splitlines()]
    out: list[str] = []
    for ln in lines:
        if ln.startswith((":return:", ":rtype:", ":param", ":type:")):
            break
        if (
            ln.startswith(("Gets the ", "NOTE:", "Ref:", "Do not edit the class"))
            or "auto generated" in ln
        ):
            continue
        out.append(ln.replace("# noqa: E501", "").strip())
    return " ".join(x for x in out if x).strip()


@functools.cache
def model(py_name: str) -> Model | None:
    """The model named ``py_name`` (``V1PodSpec``) or None."""
    cls = getattr(kmodels, py_name, None)
    if cls is None or not hasattr(cls, "openapi_types"):
        return None
    fields: dict[str, Field] = {}
    for attr, typ in cls.openapi_types.items():
        json_name = cls.attribute_map[attr]
        prop = getattr(cls, attr, None)
        desc = _doc_text(prop.__doc__) if prop is not None else ""
        required = False
        if prop is not None and prop.fset is not None:
            consts = getattr(getattr(prop.fset, "__code__", None), "co_consts", ())
            required = any(isinstance(c, str) and "must not be `None`" in c for c in consts)
        fields[json_name] = Field(json_name, typ, desc, required)
    return Model(py_name, _go_name(py_name), _doc_text(cls.__doc__), fields)


def model_for_kind(kind: str) -> Model | None:
    """The top-level model of a kind (``Deployment`` -> V1Deployment)."""
    return model(_KIND_MODEL.get(kind, f"V1{kind}"))


@dataclass(frozen=True, slots=True)
class DecodeError:
    """A type error (fatal, as Go's json decoder) or an unknown field (strict/warn)."""

    message: str
    unknown: bool


def _go_type(field_name: str, typ: str) -> str:
    if typ == "int":
        return "int64" if field_name in _INT64 else "int32"
    if typ == "str":
        return "string"
    if typ == "bool":
        return "bool"
    if typ.startswith("list["):
        return "[]" + _go_type(field_name, typ[5:-1])
    if typ.startswith("dict("):
        return "map[string]" + _go_type(field_name, typ.split(", ", 1)[1][:-1])
    return _go_name(typ)


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def decode_errors(obj: dict[str, Any], kind: str) -> list[DecodeError]:
    """Unknown fields (paths with [i] indices) and the first type mismatch, as Go reports them."""
    top = model_for_kind(kind)
    out: list[DecodeError] = []
    if top is None:
        return out
    _walk(obj, top, "", "", out, top_level=True)
    return out


def _walk(
    v: Any, m: Model, path: str, gopath: str, out: list[DecodeError], top_level: bool = False
) -> None:
    if not isinstance(v, dict):
        return
    for key, val in v.items():
        p = f"{path}.{key}" if path else key
        gp = f"{gopath}.{key}" if gopath else key
        f = m.fields.get(key)
        if f is None:
            if top_level and key in ("apiVersion", "kind"):
                continue
            out.append(DecodeError(f'unknown field "{p}"', True))
            continue
        _value(val, f.type, key, m, p, gp, out)


def _value(
    val: Any, typ: str, fname: str, parent: Model, path: str, gopath: str, out: list[DecodeError]
) -> None:
    if val is None:
        return
    got = _json_kind(val)

    def mismatch() -> None:
        if any(not e.unknown for e in out):
            return
        out.append(
            DecodeError(
                f"json: cannot unmarshal {got} into Go struct field {parent.go_name}.{gopath} "
                f"of type {_go_type(fname, typ)}",
                False,
            )
        )

    if typ == "object" or fname in _QUANTITY_FIELDS and typ == "str":
        return
    if typ == "str":
        if got != "string":
            mismatch()
    elif typ == "datetime":
        if got != "string":
            mismatch()
    elif typ == "int":
        if got != "number" or (isinstance(val, float) and not val.is_integer()):
            mismatch()
        else:
            bits = 63 if _go_type(fname, typ) == "int64" else 31
            if not -(2**bits) <= int(val) < 2**bits:
                got = f"number {int(val)}"  # Go: "cannot unmarshal number N into ... of type int32"
                mismatch()
    elif typ == "float":
        if got != "number":
            mismatch()
    elif typ == "bool":
        if got != "bool":
            mismatch()
    elif typ.startswith("list["):
        if got != "array":
            mismatch()
            return
        inner = typ[5:-1]
        for i, item in enumerate(val):
            _value(item, inner, fname, parent, f"{path}[{i}]", gopath, out)
    elif typ.startswith("dict("):
        if got != "object":
            mismatch()
            return
        inner = typ.split(", ", 1)[1][:-1]
        if fname in _QUANTITY_FIELDS:
            return
        for k, item in val.items():
            _value(item, inner, fname, parent, f"{path}.{k}", gopath, out)
    else:
        sub = model(typ)
        if sub is None:
            return
        if got != "object":
            mismatch()
            return
        _walk(val, sub, path, gopath, out)
