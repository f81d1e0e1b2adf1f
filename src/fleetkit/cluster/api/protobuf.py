"""Just enough of the Kubernetes protobuf encoding to read what kubectl's typed clients POST: the
``k8s\\x00`` magic, runtime.Unknown, the wire format, and the field numbers (from the API's
generated.proto) of what kubectl's generators send: ``pods/eviction`` (drain), Namespace,
ConfigMap, Secret, ServiceAccount, Deployment and Job with simple pod templates (``kubectl
create ns|cm|secret|sa|deployment|job``). A field outside these tables is an error (415), never
silently dropped."""

from __future__ import annotations

import base64
from typing import Any

__all__ = ["MAGIC", "fields", "unwrap", "eviction_dry_run", "decode_object", "DECODABLE"]

MAGIC = b"k8s\x00"
MAX_DEPTH = 16  # nesting examined inside an unknown field


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) for every field of one message."""
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
            out.append((num, v))
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated field")
            out.append((num, buf[i : i + n]))
            i += n
        elif wire == 1:
            out.append((num, int.from_bytes(buf[i : i + 8], "little")))
            i += 8
        elif wire == 5:
            out.append((num, int.from_bytes(buf[i : i + 4], "little")))
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def unwrap(body: bytes) -> tuple[str, str, bytes]:
    """(apiVersion, kind, raw message) of an enveloped object."""
    if not body.startswith(MAGIC):
        raise ValueError("not a Kubernetes protobuf object")
    api_version = kind = ""
    raw = b""
    for num, v in fields(body[len(MAGIC) :]):
        if num == 1 and isinstance(v, bytes):
            for n2, v2 in fields(v):
                if n2 == 1 and isinstance(v2, bytes):
                    api_version = v2.decode()
                elif n2 == 2 and isinstance(v2, bytes):
                    kind = v2.decode()
        elif num == 2 and isinstance(v, bytes):
            raw = v
    return api_version, kind, raw


def eviction_dry_run(body: bytes) -> bool:
    """Whether an Eviction's deleteOptions.dryRun lists "All"."""
    _av, _kind, raw = unwrap(body)
    for num, v in fields(raw):
        if num == 2 and isinstance(v, bytes):  # deleteOptions
            for n2, v2 in fields(v):
                if n2 == 5 and v2 == b"All":  # dryRun
                    return True
    return False


class Unsupported(ValueError):
    """A protobuf field this decoder has no table for."""


# message tables: field number -> (json name, kind); kind is "str", "int", "bool", "bytes",
# a message table name, "map:str" / "map:bytes" / "map:qty", and a "[]" prefix for repeated
_T: dict[str, dict[int, tuple[str, str]]] = {
    "ObjectMeta": {
        1: ("name", "str"),
        2: ("generateName", "str"),
        3: ("namespace", "str"),
        11: ("labels", "map:str"),
        12: ("annotations", "map:str"),
        14: ("finalizers", "[]str"),
        8: ("creationTimestamp", "skip"),
    },
    "ConfigMap": {
        1: ("metadata", "ObjectMeta"),
        2: ("data", "map:str"),
        3: ("binaryData", "map:bytes"),
        4: ("immutable", "bool"),
    },
    "Secret": {
        1: ("metadata", "ObjectMeta"),
        2: ("data", "map:bytes"),
        3: ("type", "str"),
        4: ("stringData", "map:str"),
        5: ("immutable", "bool"),
    },
    "Namespace": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "NamespaceSpec"),
        3: ("status", "skip"),
    },
    "NamespaceSpec": {1: ("finalizers", "[]str")},
    "ServiceAccount": {
        1: ("metadata", "ObjectMeta"),
        2: ("secrets", "skip"),
        3: ("imagePullSecrets", "[]LocalObjectReference"),
        4: ("automountServiceAccountToken", "bool"),
    },
    "LocalObjectReference": {1: ("name", "str")},
    "Deployment": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "DeploymentSpec"),
        3: ("status", "skip"),
    },
    "DeploymentSpec": {
        1: ("replicas", "int"),
        2: ("selector", "LabelSelector"),
        3: ("template", "PodTemplateSpec"),
        4: ("strategy", "DeploymentStrategy"),
        5: ("minReadySeconds", "int"),
        6: ("revisionHistoryLimit", "int"),
        7: ("paused", "bool"),
        9: ("progressDeadlineSeconds", "int"),
    },
    "DeploymentStrategy": {1: ("type", "str")},
    "Job": {1: ("metadata", "ObjectMeta"), 2: ("spec", "JobSpec"), 3: ("status", "skip")},
    "JobSpec": {
        1: ("parallelism", "int"),
        2: ("completions", "int"),
        3: ("activeDeadlineSeconds", "int"),
        4: ("selector", "LabelSelector"),
        5: ("manualSelector", "bool"),
        6: ("template", "PodTemplateSpec"),
        7: ("backoffLimit", "int"),
        10: ("suspend", "bool"),
    },
    "LabelSelector": {
        1: ("matchLabels", "map:str"),
        2: ("matchExpressions", "[]LabelSelectorRequirement"),
    },
    "LabelSelectorRequirement": {1: ("key", "str"), 2: ("operator", "str"), 3: ("values", "[]str")},
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec")},
    "PodSpec": {
        2: ("containers", "[]Container"),
        3: ("restartPolicy", "str"),
        4: ("terminationGracePeriodSeconds", "int"),
        6: ("dnsPolicy", "str"),
        7: ("nodeSelector", "map:str"),
        8: ("serviceAccountName", "str"),
        10: ("nodeName", "str"),
        19: ("schedulerName", "str"),
        24: ("priorityClassName", "str"),
    },
    "Container": {
        1: ("name", "str"),
        2: ("image", "str"),
        3: ("command", "[]str"),
        4: ("args", "[]str"),
        5: ("workingDir", "str"),
        6: ("ports", "[]ContainerPort"),
        7: ("env", "[]EnvVar"),
        8: ("resources", "ResourceRequirements"),
        13: ("terminationMessagePath", "str"),
        14: ("imagePullPolicy", "str"),
        20: ("terminationMessagePolicy", "str"),
    },
    "ContainerPort": {
        1: ("name", "str"),
        2: ("hostPort", "int"),
        3: ("containerPort", "int"),
        4: ("protocol", "str"),
        5: ("hostIP", "str"),
    },
    "EnvVar": {1: ("name", "str"), 2: ("value", "str")},
    "ResourceRequirements": {1: ("limits", "map:qty"), 2: ("requests", "map:qty")},
}
DECODABLE = {"Namespace", "ConfigMap", "Secret", "ServiceAccount", "Deployment", "Job"}


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _map_entry(raw: bytes, value_kind: str) -> tuple[str, Any]:
    key, val = "", "" if value_kind != "bytes" else b""
    for num, v in fields(raw):
        if num == 1 and isinstance(v, bytes):
            key = v.decode()
        elif num == 2 and isinstance(v, bytes):
            if value_kind == "str":
                val = v.decode()
            elif value_kind == "bytes":
                val = base64.b64encode(v).decode()
            else:  # Quantity{string = 1}
                val = next(
                    (x.decode() for n, x in fields(v) if n == 1 and isinstance(x, bytes)), ""
                )
    return key, val


def _message(raw: bytes, table: str) -> dict[str, Any]:
    spec = _T[table]
    out: dict[str, Any] = {}
    for num, v in fields(raw):
        if num not in spec:
            # Go's generated code writes every non-pointer field, zero values included: an
            # unknown field is an error only when it carries something
            if v in (0, b"") or (isinstance(v, bytes) and _empty(v)):
                continue
            raise Unsupported(f"{table} field {num}")
        name, kind = spec[num]
        if kind == "skip" or v in (0, b""):
            continue
        repeated = kind.startswith("[]")
        base = kind[2:] if repeated else kind
        if base.startswith("map:"):
            assert isinstance(v, bytes)
            k, val = _map_entry(v, base[4:])
            out.setdefault(name, {})[k] = val
            continue
        if base == "str":
            item: Any = v.decode() if isinstance(v, bytes) else str(v)
        elif base == "int":
            item = _signed(v) if isinstance(v, int) else 0
        elif base == "bool":
            item = bool(v)
        else:
            if not isinstance(v, bytes):
                raise Unsupported(f"{table} field {num}: not a message")
            item = _message(v, base)
        if repeated:
            out.setdefault(name, []).append(item)
        else:
            out[name] = item
    return out


def _empty(raw: bytes, depth: int = 0) -> bool:
    """A nested message whose fields are all zero values (an empty struct); bounded depth."""
    if depth > MAX_DEPTH:
        return False
    try:
        return all(
            v in (0, b"") or (isinstance(v, bytes) and _empty(v, depth + 1))
            for _n, v in fields(raw)
        )
    except ValueError:
        return False


def decode_object(body: bytes) -> dict[str, Any]:
    """A whole object from the kinds in DECODABLE (raises ValueError otherwise)."""
    api_version, kind, raw = unwrap(body)
    if kind not in DECODABLE:
        raise Unsupported(f"kind {kind!r}")
    obj = _message(raw, kind)
    obj["apiVersion"], obj["kind"] = api_version, kind
    return obj
