"""The storage boundary: a handful of methods on slash-separated paths and bytes.

Every driver (filesystem, memory, later S3) implements :class:`StorageDriver` and passes the one
shared test suite (tests/registry/test_storage.py). The contract:

- ``put`` is atomic: a reader sees the old bytes or the new bytes, never a mix, and after a crash
  either the whole file exists or nothing does (temp file + fsync + rename on the filesystem).
- ``move`` is atomic and replaces ``dst``; that is how an upload becomes a blob.
- ``appender`` opens a file for appending (uploads); its bytes are not "committed" anywhere until
  a ``move`` puts them under a content address.
- ``list`` returns child names (files and directories), ``walk`` every file below a prefix.
- Missing paths: ``get``/``reader`` raise :class:`PathNotFound`; ``stat`` returns ``None``;
  ``delete`` and ``list`` of a missing path are no-ops.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, Protocol

from fleetkit.errors import RegistryError

__all__ = ["PathNotFound", "StorageDriver", "Appender", "StorageFailure", "check_path"]


class PathNotFound(RegistryError):
    """A path the driver does not hold."""


class StorageFailure(RegistryError):
    """The driver could not complete an operation (disk full, permissions, ...)."""


def check_path(path: str) -> str:
    """Reject paths that could escape the driver's root; return the path unchanged."""
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise ValueError(f"bad storage path {path!r}")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise ValueError(f"bad storage path {path!r}")
    return path


class Appender(Protocol):
    """An open append handle; ``size`` is the file's total length so far."""

    @property
    def size(self) -> int: ...

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


class StorageDriver(Protocol):
    name: str

    def get(self, path: str) -> bytes: ...

    def put(self, path: str, data: bytes) -> None: ...

    def stat(self, path: str) -> int | None: ...

    def exists(self, path: str) -> bool: ...

    def list(self, path: str) -> list[str]: ...

    def walk(self, path: str) -> Iterator[str]: ...

    def delete(self, path: str) -> None: ...

    def move(self, src: str, dst: str) -> None: ...

    def appender(self, path: str) -> Appender: ...

    def reader(self, path: str, offset: int = 0) -> BinaryIO: ...

    def local_path(self, path: str) -> str | None:
        """A filesystem path the server may sendfile() from, or None."""
        ...
