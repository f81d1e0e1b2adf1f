"""What the web view shows, read from the store: repositories, tags with sizes and platforms,
one manifest with its layers, children and referrers. Plain data, no HTML (see render.py).

Every read is synchronous storage I/O: the handlers run these off the event loop on S3.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from fleetkit.registry.errors import RegistryAPIError
from fleetkit.registry.manifest import Descriptor, Manifest, parse_manifest
from fleetkit.registry.storage.base import PathNotFound
from fleetkit.registry.storage.store import RegistryStore

__all__ = [
    "RepoRow",
    "TagRow",
    "Referrer",
    "ManifestView",
    "repository_rows",
    "tag_rows",
    "manifest_view",
    "platform_text",
]

MAX_CONFIG_BYTES = 1 << 20  # an image config is read only to name its platform
MAX_RAW_SHOWN = 64 << 10  # the manifest's JSON is shown up to this size
MAX_NESTING = 2  # index -> index -> image is as deep as sizes are added up


@dataclass(frozen=True, slots=True)
class RepoRow:
    """One repository on the front page."""

    name: str
    tags: int


@dataclass(frozen=True, slots=True)
class TagRow:
    """One tag of a repository: what it points at, how big that is, for which platforms."""

    tag: str
    digest: str
    media_type: str
    size_bytes: int  # manifests + config + layers, each blob counted once
    platforms: tuple[str, ...]
    referrers: int


@dataclass(frozen=True, slots=True)
class Referrer:
    """A manifest whose subject is the one shown (a signature, an SBOM, an attestation)."""

    digest: str
    artifact_type: str
    size_bytes: int
    annotations: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ManifestView:
    """One manifest or index, everything the manifest page shows."""

    name: str
    digest: str
    media_type: str
    size_bytes: int
    total_bytes: int
    manifest: Manifest
    platforms: tuple[str, ...]
    tags: tuple[str, ...]
    referrers: tuple[Referrer, ...]
    children: tuple[tuple[Descriptor, bool], ...]  # (entry, stored in this repository)
    raw: str  # pretty JSON, or the start of it


def platform_text(p: dict[str, object] | None) -> str:
    """``os/arch[/variant]`` of a descriptor's or config's platform fields ('' when absent)."""
    if not p:
        return ""
    parts = [str(p.get("os") or ""), str(p.get("architecture") or "")]
    if p.get("variant"):
        parts.append(str(p["variant"]))
    return "/".join(parts) if all(parts[:2]) else ""


def repository_rows(
    store: RegistryStore, may_pull: Callable[[str], bool] | None, last: str | None, n: int
) -> tuple[list[RepoRow], bool]:
    """Up to ``n`` repositories after ``last`` that ``may_pull`` admits (None: all); and
    whether more remain."""
    names = [r for r in store.repositories() if last is None or r > last]
    if may_pull is not None:
        names = [r for r in names if may_pull(r)]
    return [RepoRow(r, len(store.tags(r))) for r in names[:n]], len(names) > n


def _load(store: RegistryStore, name: str, digest: str) -> tuple[Manifest, int] | None:
    info = store.revision(name, digest)
    if info is None:
        return None
    try:
        return parse_manifest(store.read_blob(digest), info.media_type), info.size
    except (PathNotFound, RegistryAPIError):
        return None


def _config_platform(store: RegistryStore, config: Descriptor | None) -> str:
    if config is None or config.size > MAX_CONFIG_BYTES:
        return ""
    try:
        doc = json.loads(store.read_blob(config.digest))
    except (PathNotFound, ValueError):
        return ""
    return platform_text(doc) if isinstance(doc, dict) else ""


def _summary(
    store: RegistryStore, name: str, m: Manifest, blobs: dict[str, int], depth: int
) -> list[str]:
    """Add the blobs ``m`` uses to ``blobs`` (digest -> size); return its platforms."""
    if not m.is_index:
        for d in m.blob_references():
            blobs[d.digest] = d.size
        found = _config_platform(store, m.config)
        return [found] if found else []
    platforms: list[str] = []
    for child in m.manifests:
        blobs[child.digest] = child.size
        text = platform_text(child.platform)
        loaded = _load(store, name, child.digest) if depth < MAX_NESTING else None
        if loaded is not None:
            below = _summary(store, name, loaded[0], blobs, depth + 1)
            if not text and below:
                text = below[0]
        if text and text not in platforms:
            platforms.append(text)
    return platforms


def tag_rows(store: RegistryStore, name: str) -> list[TagRow]:
    """Every tag of ``name`` with the size and platforms of what it points at."""
    rows: list[TagRow] = []
    for tag in store.tags(name):
        digest = store.resolve_tag(name, tag)
        if digest is None:
            continue
        loaded = _load(store, name, digest)
        if loaded is None:
            continue
        m, size = loaded
        blobs = {digest: size}
        platforms = _summary(store, name, m, blobs, 0)
        rows.append(
            TagRow(
                tag,
                digest,
                m.media_type,
                sum(blobs.values()),
                tuple(platforms),
                len(store.referrers(name, digest)),
            )
        )
    return rows


def referrers_of(store: RegistryStore, name: str, digest: str) -> list[Referrer]:
    """The manifests in ``name`` whose subject is ``digest``."""
    out: list[Referrer] = []
    for ref in store.referrers(name, digest):
        loaded = _load(store, name, ref)
        if loaded is None:
            continue
        m, size = loaded
        notes = tuple(sorted((m.annotations or {}).items()))
        out.append(Referrer(ref, m.effective_artifact_type() or "", size, notes))
    return out


def manifest_view(store: RegistryStore, name: str, digest: str) -> ManifestView | None:
    """The manifest ``digest`` of ``name`` (None when the repository does not hold it)."""
    loaded = _load(store, name, digest)
    if loaded is None:
        return None
    m, size = loaded
    blobs = {digest: size}
    platforms = _summary(store, name, m, blobs, 0)
    raw = store.read_blob(digest)
    try:
        text = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        text = raw.decode("utf-8", "replace")
    if len(text) > MAX_RAW_SHOWN:
        text = text[:MAX_RAW_SHOWN] + "\n..."
    tags = tuple(t for t in store.tags(name) if store.resolve_tag(name, t) == digest)
    children = tuple((c, store.revision(name, c.digest) is not None) for c in m.manifests)
    return ManifestView(
        name=name,
        digest=digest,
        media_type=m.media_type,
        size_bytes=size,
        total_bytes=sum(blobs.values()),
        manifest=m,
        platforms=tuple(platforms),
        tags=tags,
        referrers=tuple(referrers_of(store, name, digest)),
        children=children,
        raw=text,
    )
