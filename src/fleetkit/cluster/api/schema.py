"""Field schemas of the served kinds, read from the Kubernetes Python client's generated models
(the API's own OpenAPI, as that package ships it): names, types, descriptions, required fields.

Used by strict field validation (the API server's ``strict decoding error: unknown field``) and
to publish OpenAPI v3 (``kubectl explain``, kubectl's field-validation support check).

Strict decoding reads field names and types from ``_fields.py``, generated from the same client
models (importing ``kubernetes.client`` imports every API class first: 0.3 CPU-s of each
``fleetkit schedule``); a model the table lacks is read from the client. Regenerate it after a
client upgrade (a test compares it with the installed client):
``python -c 'from fleetkit.cluster.api.schema import write_field_table; write_field_table()'``
then ``ruff format src/fleetkit/cluster/api/_fields.py``.
"""

from __future__ import annotations

import functools
import os
import pprint
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Field",
    "Model",
    "model",
    "model_for_kind",
    "decode_errors",
    "DecodeError",
    "field_table",
    "write_field_table",
]

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
def _client() -> Any:
    import kubernetes.client

    return kubernetes.client


@functools.cache
def model(py_name: str) -> Model | None:
    """The model named ``py_name`` (``V1PodSpec``) or None."""
    cls = getattr(_client(), py_name, None)
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


def field_table() -> dict[str, dict[str, str]]:
    """Field JSON names and the client's types of every model reachable from a served kind
    (what strict decoding reads), from the installed client."""
    from fleetkit.cluster.api.resources import RESOURCES

    table: dict[str, dict[str, str]] = {}
    todo = [_KIND_MODEL.get(r.kind, f"V1{r.kind}") for r in RESOURCES]
    while todo:
        name = todo.pop()
        m = model(name)
        if name in table or m is None:
            continue
        table[name] = {k: f.type for k, f in m.fields.items()}
        for f in m.fields.values():
            typ = f.type
            while typ.startswith(("list[", "dict(")):
                typ = typ[5:-1] if typ.startswith("list[") else typ.split(", ", 1)[1][:-1]
            todo.append(typ)
    return dict(sorted(table.items()))


def write_field_table() -> None:
    """Regenerate ``_fields.py`` from the installed client."""
    path = os.path.join(os.path.dirname(__file__), "_fields.py")
    with open(path, "w") as fh:
        fh.write(
            '"""Field JSON names and the kubernetes client\'s types per model, for strict '
            "decoding.\n\nGenerated by fleetkit.cluster.api.schema.write_field_table(), then "
            '`ruff format`."""\n\n'
            "FIELDS: dict[str, dict[str, str]] = "
            + pprint.pformat(field_table(), width=100, sort_dicts=False)
            + "\n"
        )


@functools.cache
def _decode_model(py_name: str) -> Model | None:
    """What strict decoding needs of a model (names and types), from the generated table."""
    from fleetkit.cluster.api._fields import FIELDS

    known = FIELDS.get(py_name)
    if known is None:
        return model(py_name)
    fields = {k: Field(k, t, "", False) for k, t in known.items()}
    return Model(py_name, _go_name(py_name), "", fields)


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
    top = _decode_model(_KIND_MODEL.get(kind, f"V1{kind}"))
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
        sub = _decode_model(typ)
        if sub is None:
            return
        if got != "object":
            mismatch()
            return
        _walk(val, sub, path, gopath, out)
