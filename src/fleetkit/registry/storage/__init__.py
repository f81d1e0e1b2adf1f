"""Registry storage: a small driver Protocol (paths + bytes, atomic commit) and the data model."""

from __future__ import annotations

from fleetkit.registry.storage.base import (
    Appender,
    PathNotFound,
    StorageDriver,
    StorageFailure,
)
from fleetkit.registry.storage.filesystem import FilesystemDriver
from fleetkit.registry.storage.memory import MemoryDriver
from fleetkit.registry.storage.store import GCReport, RegistryStore, RevisionInfo, Upload

__all__ = [
    "Appender",
    "FilesystemDriver",
    "GCReport",
    "MemoryDriver",
    "PathNotFound",
    "RegistryStore",
    "RevisionInfo",
    "StorageDriver",
    "StorageFailure",
    "Upload",
    "open_driver",
]


def open_driver(root: str | None) -> StorageDriver:
    """``None`` or ``"memory:"`` -> in-memory; anything else is a filesystem root."""
    if root is None or root == "memory:":
        return MemoryDriver()
    return FilesystemDriver(root)
