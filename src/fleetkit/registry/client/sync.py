"""``sync``: copy the images a YAML file names to a registry or a directory (skopeo sync).

The YAML is skopeo sync's ``--src yaml`` format::

    127.0.0.1:5000:              # a source registry
      images:                    # repository -> tags (an empty list: every tag)
        nginx/ingress: [v1.0.0, v1.1.0]
        busybox: []
      images-by-tag-regex:       # repository -> a regex every copied tag matches (re.search)
        alpine: ^3\\.1[89]$
      tls-verify: false          # optional
      credentials: {username: alice, password: s3cret}   # optional

The destination is ``docker://REGISTRY[/PREFIX]`` or ``dir:DIR``. Each image lands at
``DEST/NAME:TAG`` where NAME is the repository's last path component, or with ``scoped`` the
full ``registry/repository`` (skopeo's ``--scoped``); in a directory every image is a
``dir:`` image in ``DIR/NAME:TAG``. Images are copied one at a time, each with
:func:`~fleetkit.registry.client.copy.copy_async` (so ``all_platforms`` and mounts apply).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetkit.errors import UsageError
from fleetkit.registry.client.commands import normalize_registry
from fleetkit.registry.client.copy import CopyResult, copy_async, parse_image_name
from fleetkit.registry.client.credentials import Credential
from fleetkit.registry.client.events import TraceSink
from fleetkit.registry.client.remote import Remote
from fleetkit.registry.client.transport import RetryPolicy, connect
from fleetkit.registry.reference import check_registry_host, parse_reference

__all__ = ["SyncSource", "SyncResult", "load_sync_config", "sync", "sync_async"]

MAX_REGEX_LENGTH = 1000


@dataclass
class SyncSource:
    registry: str
    images: dict[str, list[str]] = field(default_factory=dict)
    regexes: dict[str, re.Pattern[str]] = field(default_factory=dict)
    tls_verify: bool = True
    credential: Credential | None = None


@dataclass
class SyncResult:
    copied: list[CopyResult] = field(default_factory=list)
    planned: list[tuple[str, str]] = field(default_factory=list)  # (source, destination)

    def to_json(self) -> dict[str, Any]:
        return {
            "images": [{"source": s, "destination": d} for s, d in self.planned],
            "copied": [c.to_json() for c in self.copied],
        }


def _fail(path: str, what: str) -> UsageError:
    return UsageError(f"{path}: {what}", hint="see 'fleetkit sync --help' for the YAML format")


def load_sync_config(path: str | Path) -> list[SyncSource]:
    """Parse skopeo sync's YAML; every shape error names the key."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    import yaml  # here, not at the top: `fleetkit pull` need not pay for it

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _fail(str(path), f"invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict) or not doc:
        raise _fail(str(path), "expected a mapping of registries")
    sources: list[SyncSource] = []
    for registry, body in doc.items():
        where = f"{path}: {registry}"
        if not isinstance(registry, str) or not isinstance(body, dict):
            raise _fail(where, "expected REGISTRY: {images: ..., images-by-tag-regex: ...}")
        host = normalize_registry(registry)
        check_registry_host(host, hint="expected REGISTRY[:PORT] keys")
        src = SyncSource(host)
        unknown = set(body) - {"images", "images-by-tag-regex", "tls-verify", "credentials"}
        if unknown:
            raise _fail(where, f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        images = body.get("images") or {}
        if not isinstance(images, dict):
            raise _fail(where, "images: expected REPOSITORY: [TAG, ...]")
        for repo, tags in images.items():
            if tags is None:
                tags = []
            if not isinstance(repo, str) or not isinstance(tags, list):
                raise _fail(where, f"images.{repo}: expected a list of tags")
            src.images[repo] = [str(t) for t in tags]
        regexes = body.get("images-by-tag-regex") or {}
        if not isinstance(regexes, dict):
            raise _fail(where, "images-by-tag-regex: expected REPOSITORY: REGEX")
        for repo, pattern in regexes.items():
            if not isinstance(repo, str) or not isinstance(pattern, str):
                raise _fail(where, f"images-by-tag-regex.{repo}: expected a regex string")
            if len(pattern) > MAX_REGEX_LENGTH:
                raise _fail(where, f"images-by-tag-regex.{repo}: regex too long")
            try:
                src.regexes[repo] = re.compile(pattern)
            except re.error as exc:
                raise _fail(where, f"images-by-tag-regex.{repo}: invalid regex ({exc})") from None
        tls = body.get("tls-verify", True)
        if not isinstance(tls, bool):
            raise _fail(where, "tls-verify: expected true or false")
        src.tls_verify = tls
        creds = body.get("credentials")
        if creds is not None:
            if not (
                isinstance(creds, dict)
                and isinstance(creds.get("username"), str)
                and isinstance(creds.get("password"), str)
            ):
                raise _fail(where, "credentials: expected {username: U, password: P}")
            src.credential = Credential(username=creds["username"], password=creds["password"])
        sources.append(src)
    return sources


def _destination(dest: str, registry: str, repo: str, tag: str, scoped: bool) -> str:
    name = f"{registry}/{repo}" if scoped else repo.rpartition("/")[2]
    suffix = f"{name}@{tag}" if ":" in tag else f"{name}:{tag}"
    if dest.startswith("docker://"):
        return f"{dest.rstrip('/')}/{suffix}"
    return f"dir:{Path(dest[4:]) / suffix}"


async def sync_async(
    config: str | Path | list[SyncSource],
    destination: str,
    *,
    scoped: bool = False,
    all_platforms: bool = False,
    dry_run: bool = False,
    dest_tls_verify: bool = True,
    dest_credential: Credential | None = None,
    config_path: str | Path | None = None,
    retry: RetryPolicy | None = None,
    trace: TraceSink | None = None,
    notify: Callable[[str], None] | None = None,
    on_copy: Callable[[str, str], None] | None = None,
) -> SyncResult:
    sources = load_sync_config(config) if not isinstance(config, list) else config
    if destination.startswith("docker://"):
        parse_reference(destination[9:].rstrip("/") + "/x")  # the prefix is a valid name
    elif destination.startswith("dir:") and destination[4:]:
        pass
    else:
        raise UsageError(
            f"invalid sync destination {destination!r}",
            hint="expected docker://REGISTRY[/PREFIX] or dir:DIR",
        )
    result = SyncResult()
    for src in sources:
        wanted: list[tuple[str, str]] = []
        async with connect(
            src.registry,
            credential=src.credential,
            config_path=config_path,
            tls_verify=src.tls_verify,
            retry=retry,
            trace=trace,
            notify=notify,
        ) as t:
            for repo, tags in src.images.items():
                chosen = tags or await Remote(t, repo).list_tags()
                wanted.extend((repo, tag) for tag in chosen)
            for repo, pattern in src.regexes.items():
                for tag in await Remote(t, repo).list_tags():
                    if pattern.search(tag):
                        wanted.append((repo, tag))
        for repo, tag in wanted:
            sep = "@" if ":" in tag else ":"
            source = f"docker://{src.registry}/{repo}{sep}{tag}"
            target = _destination(destination, src.registry, repo, tag, scoped)
            result.planned.append((source, target))
            if dry_run:
                continue
            if on_copy is not None:
                on_copy(source, target)
            result.copied.append(
                await copy_async(
                    parse_image_name(source),
                    parse_image_name(target),
                    all_platforms=all_platforms,
                    src_tls_verify=src.tls_verify,
                    dest_tls_verify=dest_tls_verify,
                    src_credential=src.credential,
                    dest_credential=dest_credential,
                    config_path=config_path,
                    retry=retry,
                    trace=trace,
                    notify=notify,
                )
            )
    return result


def sync(config: str | Path | list[SyncSource], destination: str, **kwargs: Any) -> SyncResult:
    """Synchronous :func:`sync_async`."""
    return asyncio.run(sync_async(config, destination, **kwargs))
