"""In-memory driver: a dict of path -> bytes (tests, ephemeral registries)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from typing import BinaryIO

from fleetkit.registry.storage.base import PathNotFound, check_path

__all__ = ["MemoryDriver"]


class _MemAppender:
    """Appends in place to the stored bytearray (no copy per write)."""

    __slots__ = ("_buf",)

    def __init__(self, driver: MemoryDriver, path: str) -> None:
        current = driver.files.get(path)
        if not isinstance(current, bytearray):
            current = bytearray(current or b"")
            driver.files[path] = current
        self._buf = current

    @property
    def size(self) -> int:
        return len(self._buf)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


class MemoryDriver:
    name = "memory"

    def __init__(self) -> None:
        self.files: dict[str, bytes | bytearray] = {}
        self._lock = threading.Lock()

    def get(self, path: str) -> bytes:
        try:
            return bytes(self.files[check_path(path)])
        except KeyError:
            raise PathNotFound(path) from None

    def put(self, path: str, data: bytes) -> None:
        self.files[check_path(path)] = bytes(data)

    def stat(self, path: str) -> int | None:
        data = self.files.get(check_path(path))
        return None if data is None else len(data)

    def exists(self, path: str) -> bool:
        path = check_path(path)
        if path in self.files:
            return True
        prefix = path + "/"
        return any(k.startswith(prefix) for k in self.files)

    def list(self, path: str) -> list[str]:
        prefix = check_path(path) + "/"
        out = {k[len(prefix) :].split("/", 1)[0] for k in self.files if k.startswith(prefix)}
        return sorted(out)

    def walk(self, path: str) -> Iterator[str]:
        prefix = check_path(path) + "/"
        yield from sorted(k for k in list(self.files) if k.startswith(prefix))

    def delete(self, path: str) -> None:
        path = check_path(path)
        prefix = path + "/"
        with self._lock:
            for k in [k for k in self.files if k == path or k.startswith(prefix)]:
                del self.files[k]

    def move(self, src: str, dst: str) -> None:
        src, dst = check_path(src), check_path(dst)
        with self._lock:
            try:
                data = self.files.pop(src)
            except KeyError:
                raise PathNotFound(src) from None
            self.files[dst] = data

    def appender(self, path: str) -> _MemAppender:
        return _MemAppender(self, check_path(path))

    def reader(self, path: str, offset: int = 0) -> BinaryIO:
        data = self.files.get(check_path(path))
        if data is None:
            raise PathNotFound(path)
        bio = io.BytesIO(data)
        bio.seek(offset)
        return bio

    def local_path(self, path: str) -> str | None:
        return None
