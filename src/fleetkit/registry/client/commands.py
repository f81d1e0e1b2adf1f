"""The small verbs: ``login``, ``logout``, ``list_tags``, ``get_manifest`` (async + sync)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetkit.registry.client import credentials
from fleetkit.registry.client.credentials import Credential
from fleetkit.registry.client.errors import AuthError, VerificationError
from fleetkit.registry.client.events import TraceSink
from fleetkit.registry.client.image import Manifest, Platform, select_platform
from fleetkit.registry.client.pull import MAX_INDEX_DEPTH
from fleetkit.registry.client.remote import Remote, list_catalog
from fleetkit.registry.client.transport import (
    MAX_ERROR_BODY_BYTES,
    RetryPolicy,
    connect,
    read_body,
)
from fleetkit.registry.reference import Reference, check_registry_host, parse_reference

__all__ = [
    "LoginResult",
    "login",
    "login_async",
    "logout",
    "list_tags",
    "list_tags_async",
    "get_manifest",
    "get_manifest_async",
    "normalize_registry",
    "delete",
    "delete_async",
    "catalog",
    "catalog_async",
]


def normalize_registry(text: str) -> str:
    """``https://host:5000/v2/`` or ``host:5000`` -> ``host:5000``; Hub aliases -> docker.io."""
    host = text.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0]
    if host in ("index.docker.io", "registry-1.docker.io", "docker.io", ""):
        return "docker.io"
    return host


@dataclass(frozen=True, slots=True)
class LoginResult:
    registry: str
    config: Path
    auth: str  # "bearer" | "basic" | "none"


async def login_async(
    registry: str,
    credential: Credential,
    *,
    tls_verify: bool = True,
    config_path: str | Path | None = None,
    trace: TraceSink | None = None,
    retry: RetryPolicy | None = None,
    notify: Callable[[str], None] | None = None,
) -> LoginResult:
    """Check ``credential`` against the registry (as docker login does), then store it."""
    host = normalize_registry(registry)
    check_registry_host(host, hint="expected REGISTRY[:PORT], e.g. 127.0.0.1:5000")
    async with connect(
        host, credential=credential, tls_verify=tls_verify, trace=trace, retry=retry, notify=notify
    ) as t:
        await t.ping()
        scheme = t.auth_scheme
        if scheme != "none":
            resp = await t.request("GET", "/v2/")
            async with resp:
                body = await read_body(resp, MAX_ERROR_BODY_BYTES)
                if resp.status != 200:
                    err = t.error(resp.status, body, f"login to {host}")
                    raise AuthError(err.message, hint="check the username and password")
    path = credentials.store(host, credential, config_path)
    return LoginResult(host, path, scheme)


def login(registry: str, credential: Credential, **kwargs: Any) -> LoginResult:
    return asyncio.run(login_async(registry, credential, **kwargs))


def logout(registry: str, *, config_path: str | Path | None = None) -> bool:
    """Remove stored credentials; False when none were stored."""
    return credentials.erase(normalize_registry(registry), config_path)


def _repository(text: str) -> Reference:
    ref = parse_reference(text, default_tag=None)
    return ref


async def list_tags_async(
    repository: str | Reference,
    *,
    tls_verify: bool = True,
    credential: Credential | None = None,
    config_path: str | Path | None = None,
    trace: TraceSink | None = None,
    retry: RetryPolicy | None = None,
    page_size: int | None = None,
    notify: Callable[[str], None] | None = None,
) -> list[str]:
    ref = _repository(repository) if isinstance(repository, str) else repository
    async with connect(
        ref.registry,
        credential=credential,
        config_path=config_path,
        tls_verify=tls_verify,
        trace=trace,
        retry=retry,
        notify=notify,
    ) as t:
        return await Remote(t, ref.repository).list_tags(page_size)


def list_tags(repository: str | Reference, **kwargs: Any) -> list[str]:
    return asyncio.run(list_tags_async(repository, **kwargs))


async def get_manifest_async(
    image: str | Reference,
    *,
    platform: str | Platform | None = None,
    tls_verify: bool = True,
    credential: Credential | None = None,
    config_path: str | Path | None = None,
    trace: TraceSink | None = None,
    retry: RetryPolicy | None = None,
    notify: Callable[[str], None] | None = None,
) -> Manifest:
    """The manifest (or index) as stored; with ``platform``, the matching child of an index."""
    ref = parse_reference(image) if isinstance(image, str) else image
    async with connect(
        ref.registry,
        credential=credential,
        config_path=config_path,
        tls_verify=tls_verify,
        trace=trace,
        retry=retry,
        notify=notify,
    ) as t:
        remote = Remote(t, ref.repository)
        manifest = await remote.get_manifest(ref.identifier, expect_digest=ref.digest)
        if platform is not None and manifest.is_index:
            wanted = Platform.parse(platform) if isinstance(platform, str) else platform
            top = manifest
            for _depth in range(MAX_INDEX_DEPTH + 1):  # nested indexes: choose at each level
                if not manifest.is_index:
                    break
                child = select_platform(manifest, wanted)
                manifest = await remote.get_manifest(child.digest, expect_digest=child.digest)
            else:
                raise VerificationError(
                    f"index {top.digest} is nested deeper than {MAX_INDEX_DEPTH} levels"
                )
        return manifest


def get_manifest(image: str | Reference, **kwargs: Any) -> Manifest:
    return asyncio.run(get_manifest_async(image, **kwargs))


async def delete_async(
    image: str | Reference,
    *,
    tls_verify: bool = True,
    credential: Credential | None = None,
    config_path: str | Path | None = None,
    trace: TraceSink | None = None,
    retry: RetryPolicy | None = None,
    notify: Callable[[str], None] | None = None,
) -> str:
    """Delete the manifest ``image`` names (a tag is resolved to its digest first, as skopeo
    does: every tag pointing at that manifest goes with it). Returns the deleted digest."""
    ref = parse_reference(image) if isinstance(image, str) else image
    async with connect(
        ref.registry,
        credential=credential,
        config_path=config_path,
        tls_verify=tls_verify,
        trace=trace,
        retry=retry,
        notify=notify,
    ) as t:
        remote = Remote(t, ref.repository)
        digest = ref.digest
        if digest is None:
            found = await remote.head_manifest(ref.identifier)
            if found is None or not found.digest:
                manifest = await remote.get_manifest(ref.identifier)
                digest = manifest.digest
            else:
                digest = found.digest
        await remote.delete_manifest(digest)
        return digest


def delete(image: str | Reference, **kwargs: Any) -> str:
    return asyncio.run(delete_async(image, **kwargs))


async def catalog_async(
    registry: str,
    *,
    tls_verify: bool = True,
    credential: Credential | None = None,
    config_path: str | Path | None = None,
    trace: TraceSink | None = None,
    retry: RetryPolicy | None = None,
    page_size: int | None = None,
    notify: Callable[[str], None] | None = None,
) -> list[str]:
    """Every repository the registry lists in ``/v2/_catalog`` (all pages)."""
    host = normalize_registry(registry)
    check_registry_host(host, hint="expected REGISTRY[:PORT], e.g. 127.0.0.1:5000")
    async with connect(
        host,
        credential=credential,
        config_path=config_path,
        tls_verify=tls_verify,
        trace=trace,
        retry=retry,
        notify=notify,
    ) as t:
        return await list_catalog(t, page_size)


def catalog(registry: str, **kwargs: Any) -> list[str]:
    return asyncio.run(catalog_async(registry, **kwargs))
