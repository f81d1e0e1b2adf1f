"""Registry storage: a small driver Protocol (paths + bytes, atomic commit) and the data model."""

from __future__ import annotations

from fleetkit.errors import UsageError
from fleetkit.registry.storage.base import (
    Appender,
    PathNotFound,
    StorageDriver,
    StorageFailure,
)
from fleetkit.registry.storage.filesystem import FilesystemDriver
from fleetkit.registry.storage.memory import MemoryDriver
from fleetkit.registry.storage.s3 import S3Config, S3Driver, parse_s3_url
from fleetkit.registry.storage.store import GCReport, RegistryStore, RevisionInfo, Upload

__all__ = [
    "Appender",
    "FilesystemDriver",
    "GCReport",
    "MemoryDriver",
    "PathNotFound",
    "RegistryStore",
    "RevisionInfo",
    "S3Config",
    "S3Driver",
    "StorageDriver",
    "StorageFailure",
    "Upload",
    "open_driver",
]


def open_driver(root: str | None, s3: S3Config | None = None) -> StorageDriver:
    """``None`` or ``"memory:"`` -> in-memory; ``s3://BUCKET[/PREFIX]?endpoint=...`` (or an
    explicit ``s3`` config) -> S3; anything else is a filesystem root."""
    if s3 is not None:
        return S3Driver(s3)
    if root is None or root == "memory:":
        return MemoryDriver()
    if root.startswith("s3://"):
        return S3Driver(s3_config_from_url(root))
    return FilesystemDriver(root)


def s3_config_from_url(url: str) -> S3Config:
    """Parse an ``s3://`` storage URL; credentials come from AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY (never from the URL, so they stay out of process listings)."""
    import os

    try:
        cfg = parse_s3_url(url)
    except ValueError as exc:
        raise UsageError(
            str(exc), hint="use s3://BUCKET[/PREFIX]?endpoint=URL&region=R&secure=false"
        ) from None
    cfg.accesskey = os.environ.get("AWS_ACCESS_KEY_ID") or None
    cfg.secretkey = os.environ.get("AWS_SECRET_ACCESS_KEY") or None
    return cfg
