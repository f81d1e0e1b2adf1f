"""Content digests (``algorithm:hex``) as the OCI image spec defines them: sha256 and sha512."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from fleetkit.registry.errors import DigestInvalid

__all__ = ["ALGORITHMS", "Digest", "Hasher", "parse_digest", "digest_bytes", "is_digest"]

# algorithm -> length of the lower-case hex encoding
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}

# The image spec's grammar: algorithm-component(+sep algorithm-component)* ':' encoded
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def hasher(self) -> Hasher:
        return Hasher(self.algorithm)


def parse_digest(value: str) -> Digest:
    """Parse and validate ``value``; raise :class:`DigestInvalid` (the wire's DIGEST_INVALID)."""
    if not isinstance(value, str) or not _DIGEST_RE.fullmatch(value):
        raise DigestInvalid(f"invalid digest {value!r}")
    algorithm, _, encoded = value.partition(":")
    length = ALGORITHMS.get(algorithm)
    if length is None:
        raise DigestInvalid(f"unsupported digest algorithm {algorithm!r}")
    if len(encoded) != length or any(c not in "0123456789abcdef" for c in encoded):
        raise DigestInvalid(f"invalid {algorithm} digest {value!r}")
    return Digest(algorithm, encoded)


def is_digest(value: str) -> bool:
    try:
        parse_digest(value)
    except DigestInvalid:
        return False
    return True


class Hasher:
    """Incremental hash that yields a digest string; one pass over the bytes."""

    __slots__ = ("algorithm", "_h", "size")

    def __init__(self, algorithm: str = "sha256") -> None:
        if algorithm not in ALGORITHMS:
            raise DigestInvalid(f"unsupported digest algorithm {algorithm!r}")
        self.algorithm = algorithm
        self._h = hashlib.new(algorithm)
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)
        self.size += len(data)

    def digest(self) -> str:
        return f"{self.algorithm}:{self._h.hexdigest()}"

    def copy(self) -> Hasher:
        other = Hasher.__new__(Hasher)
        other.algorithm = self.algorithm
        other._h = self._h.copy()
        other.size = self.size
        return other


def digest_bytes(data: bytes, algorithm: str = "sha256") -> str:
    h = Hasher(algorithm)
    h.update(data)
    return h.digest()
