"""fleetkit.registry: an OCI registry with a Docker token service, and (issue 3) its client.

Keep this module light: ``import fleetkit.registry`` must not import aiohttp or cryptography.
Public names load lazily through ``__getattr__``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    # server side (issue 2)
    "ServerConfig",
    "serve",
    "create_app",
    "RegistryStore",
    "FilesystemDriver",
    "MemoryDriver",
    # client side (issue 3)
    "pull",
    "push",
    "login",
    "logout",
    "list_tags",
    "get_manifest",
    "pull_async",
    "push_async",
    "Credential",
    "PullResult",
    "PushResult",
    "Platform",
    "RetryPolicy",
]

_LAZY: dict[str, str] = {
    "ServerConfig": "fleetkit.registry.server.app",
    "serve": "fleetkit.registry.server.app",
    "create_app": "fleetkit.registry.server.app",
    "RegistryStore": "fleetkit.registry.storage.store",
    "FilesystemDriver": "fleetkit.registry.storage.filesystem",
    "MemoryDriver": "fleetkit.registry.storage.memory",
    "pull": "fleetkit.registry.client",
    "push": "fleetkit.registry.client",
    "login": "fleetkit.registry.client",
    "logout": "fleetkit.registry.client",
    "list_tags": "fleetkit.registry.client",
    "get_manifest": "fleetkit.registry.client",
    "pull_async": "fleetkit.registry.client",
    "push_async": "fleetkit.registry.client",
    "Credential": "fleetkit.registry.client",
    "PullResult": "fleetkit.registry.client",
    "PushResult": "fleetkit.registry.client",
    "Platform": "fleetkit.registry.client",
    "RetryPolicy": "fleetkit.registry.client",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fleetkit.registry' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
