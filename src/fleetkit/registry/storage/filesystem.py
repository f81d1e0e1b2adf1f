"""Filesystem driver: one file per path under a root directory; atomic commit by rename."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from typing import BinaryIO

from fleetkit.registry.storage.base import PathNotFound, StorageFailure, check_path

__all__ = ["FilesystemDriver", "RootInUse", "LOCK_NAME"]

_TMP_PREFIX = ".tmp-"
LOCK_NAME = ".fleetkit-registry.lock"


class RootInUse(StorageFailure):
    """The storage root is locked the other way (a server runs, or gc does)."""


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _FileAppender:
    __slots__ = ("_f", "_size")

    def __init__(self, full: str) -> None:
        self._f = open(full, "ab")  # noqa: SIM115 - closed by close()
        self._size = self._f.tell()

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self._f.write(data)
        except OSError as exc:
            raise StorageFailure(f"write failed: {exc.strerror}") from None
        self._size += len(data)

    def sync(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


class FilesystemDriver:
    """Paths map to files below ``root``; temp files are ``.tmp-*`` siblings, never listed."""

    name = "filesystem"

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as exc:
            raise StorageFailure(
                f"cannot create storage root {self.root}: {exc.strerror}",
                hint="pass --root DIR with a writable directory",
            ) from None

    @contextlib.contextmanager
    def lock(self, exclusive: bool) -> Iterator[None]:
        """Hold the root's lock: shared by running servers, exclusive for gc (never both).

        ``flock`` on ``<root>/.fleetkit-registry.lock``: released by the kernel when the holder
        exits, even on kill -9, so a crash never leaves the root locked.
        """
        path = os.path.join(self.root, LOCK_NAME)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StorageFailure(f"cannot open {path}: {exc.strerror}") from None
        try:
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            except BlockingIOError:
                if exclusive:
                    raise RootInUse(
                        f"the registry at {self.root} is in use by a running server",
                        hint="stop the registry first: gc would delete blobs of pushes in "
                        "progress (--dry-run is safe while it runs)",
                    ) from None
                raise RootInUse(
                    f"registry gc is running on {self.root}",
                    hint="start the registry once gc has finished",
                ) from None
            yield
        finally:
            os.close(fd)

    def _full(self, path: str) -> str:
        return os.path.join(self.root, *check_path(path).split("/"))

    def get(self, path: str) -> bytes:
        try:
            with open(self._full(path), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFound(path) from None

    def put(self, path: str, data: bytes) -> None:
        full = self._full(path)
        parent = os.path.dirname(full)
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f"{_TMP_PREFIX}{uuid.uuid4().hex}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, full)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StorageFailure(f"cannot write {path}: {exc.strerror}") from None
        _fsync_dir(parent)

    def stat(self, path: str) -> int | None:
        try:
            st = os.stat(self._full(path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not os.path.isfile(self._full(path)):
            return None
        return st.st_size

    def exists(self, path: str) -> bool:
        return os.path.exists(self._full(path))

    def list(self, path: str) -> list[str]:
        try:
            names = os.listdir(self._full(path))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(n for n in names if not n.startswith(_TMP_PREFIX))

    def walk(self, path: str) -> Iterator[str]:
        base = self._full(path)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            for name in sorted(filenames):
                if not name.startswith(_TMP_PREFIX):
                    yield f"{rel}/{name}"

    def delete(self, path: str) -> None:
        full = self._full(path)
        try:
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.unlink(full)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise StorageFailure(f"cannot delete {path}: {exc.strerror}") from None

    def move(self, src: str, dst: str) -> None:
        s, d = self._full(src), self._full(dst)
        if not os.path.exists(s):
            raise PathNotFound(src)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        # make the source's bytes durable before they become visible under dst
        try:
            fd = os.open(s, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(s, d)
        except OSError as exc:
            raise StorageFailure(f"cannot move {src} to {dst}: {exc.strerror}") from None
        _fsync_dir(os.path.dirname(d))

    def appender(self, path: str) -> _FileAppender:
        full = self._full(path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        return _FileAppender(full)

    def reader(self, path: str, offset: int = 0) -> BinaryIO:
        try:
            f = open(self._full(path), "rb")  # noqa: SIM115 - caller closes
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFound(path) from None
        if offset:
            f.seek(offset)
        return f

    def local_path(self, path: str) -> str | None:
        return self._full(path)
