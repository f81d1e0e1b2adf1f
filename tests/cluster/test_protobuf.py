"""The protobuf subset: wire format, envelope, zero values, unknown fields."""

from __future__ import annotations

import pytest

from fleetkit.cluster.api.protobuf import MAGIC, decode_object, fields


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _ld(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _vi(num: int, v: int) -> bytes:
    return _varint(num << 3) + _varint(v)


def _obj(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _ld(1, api_version.encode()) + _ld(2, kind.encode())
    return MAGIC + _ld(1, type_meta) + _ld(2, raw) + _ld(3, b"") + _ld(4, b"")


def test_configmap_with_zero_valued_fields() -> None:
    meta = (
        _ld(1, b"cfg")
        + _ld(4, b"")
        + _ld(5, b"")
        + _vi(7, 0)
        + _ld(11, _ld(1, b"app") + _ld(2, b"web"))
    )
    raw = _ld(1, meta) + _ld(2, _ld(1, b"k") + _ld(2, b"v"))
    obj = decode_object(_obj("v1", "ConfigMap", raw))
    assert obj == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "labels": {"app": "web"}},
        "data": {"k": "v"},
    }


def test_unknown_field_with_a_value_is_refused() -> None:
    raw = _ld(1, _ld(1, b"cfg")) + _ld(99, b"surprise")
    with pytest.raises(ValueError, match="ConfigMap field 99"):
        decode_object(_obj("v1", "ConfigMap", raw))


def test_truncated_input_is_an_error() -> None:
    with pytest.raises(ValueError):
        fields(b"\x0a\x05ab")
    with pytest.raises(ValueError):
        decode_object(b"not protobuf")


def test_deeply_nested_unknown_field_is_bounded() -> None:
    inner = b""
    for _ in range(2000):
        inner = _ld(7, inner)
    raw = _ld(1, _ld(1, b"cfg")) + _ld(99, inner)
    with pytest.raises(ValueError, match="ConfigMap field 99"):
        decode_object(_obj("v1", "ConfigMap", raw))
