"""Just enough of the Kubernetes protobuf envelope to read what typed clients POST to
subresources (``pods/eviction`` from ``kubectl drain``): the ``k8s\\x00`` magic, runtime.Unknown,
and the wire format's varint and length-delimited fields. Whole objects are not decoded."""

from __future__ import annotations

__all__ = ["MAGIC", "fields", "unwrap", "eviction_dry_run"]

MAGIC = b"k8s\x00"


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
