"""``pull``: resolve a reference, choose a platform, download blobs in parallel, write the image.

What dockerd does, without a daemon: ping, token, manifest (every ``Accept`` type, digest
checked), then config and layers with at most ``max_concurrent_downloads`` at once, each
streamed to disk, verified and resumable (see :mod:`.layout` and :meth:`.Remote.fetch_blob`).
Blobs already in the destination layout are not fetched again. Manifests and ``index.json`` are
written only after every blob is in place, so an interrupted pull never looks complete.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fleetkit.errors import FleetkitError, UsageError
from fleetkit.registry.client import credentials
from fleetkit.registry.client.credentials import Credential
from fleetkit.registry.client.errors import DestinationError
from fleetkit.registry.client.events import Event, EventSink, TraceSink
from fleetkit.registry.client.image import Descriptor, Manifest, Platform, select_platform
from fleetkit.registry.client.layout import (
    Location,
    OCILayout,
    parse_location,
    write_docker_archive,
)
from fleetkit.registry.client.remote import Remote
from fleetkit.registry.client.transport import RetryPolicy, Transport
from fleetkit.registry.reference import Reference, familiar_name, parse_reference

__all__ = ["BlobResult", "PullResult", "pull", "pull_async"]


@dataclass(frozen=True, slots=True)
class BlobResult:
    digest: str
    size: int
    media_type: str
    status: str  # "downloaded" | "resumed" | "exists"
    resumed_from: int = 0


@dataclass(frozen=True, slots=True)
class PullResult:
    reference: str
    digest: str  # the manifest (or, with all_platforms, index) written to the destination
    media_type: str
    destination: str
    index_digest: str | None
    platforms: tuple[str, ...]
    blobs: tuple[BlobResult, ...]

    @property
    def bytes_downloaded(self) -> int:
        return sum(b.size - b.resumed_from for b in self.blobs if b.status != "exists")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["blobs"] = [asdict(b) for b in self.blobs]
        out["platforms"] = list(self.platforms)
        out["bytes_downloaded"] = self.bytes_downloaded
        return out


def _staging_dir(archive: Path) -> Path:
    return archive.parent / f".{archive.name}.fleetkit-partial"


def _prepare(loc: Location, ref: Reference) -> tuple[OCILayout, list[str], str | None]:
    if loc.transport == "oci":
        return OCILayout.create(loc.path), [], loc.name or ref.tag
    parent = loc.path.parent
    if loc.path.is_dir():
        raise DestinationError(
            f"{loc.path} is a directory", hint="docker-archive: needs a file name"
        )
    if not parent.is_dir():
        raise DestinationError(f"cannot write {loc.path}: {parent} does not exist")
    tags = [loc.name] if loc.name else ([familiar_name(ref.with_tag(ref.tag))] if ref.tag else [])
    if loc.name and ":" not in loc.name.rpartition("/")[2]:
        tags = [f"{loc.name}:latest"]
    return OCILayout.create(_staging_dir(loc.path)), tags, None


async def pull_async(
    image: str | Reference,
    dest: str | Location,
    *,
    platform: str | Platform | None = None,
    all_platforms: bool = False,
    max_concurrent_downloads: int = 3,
    tls_verify: bool = True,
    credential: Credential | None = None,
    config_path: str | Path | None = None,
    retry: RetryPolicy | None = None,
    events: EventSink | None = None,
    trace: TraceSink | None = None,
    timeout_s: float = 60.0,
) -> PullResult:
    """Pull ``image`` into ``dest`` (``oci:DIR[:TAG]`` or ``docker-archive:FILE[:REF]``)."""
    ref = parse_reference(image) if isinstance(image, str) else image
    loc = parse_location(dest) if isinstance(dest, str) else dest
    if max_concurrent_downloads < 1:
        raise UsageError("--max-concurrent-downloads must be at least 1", hint="the default is 3")
    if all_platforms and loc.transport == "docker-archive":
        raise UsageError(
            "a docker-archive holds one image; --all-platforms needs an oci: destination",
            hint="pull into oci:DIR, or pick one image with --platform",
        )
    wanted = (
        Platform.parse(platform) if isinstance(platform, str) else (platform or Platform.host())
    )
    emit = events or (lambda _e: None)
    layout, repo_tags, name = _prepare(loc, ref)
    cred = credential if credential is not None else credentials.resolve(ref.registry, config_path)

    async with Transport(
        ref.registry,
        credential=cred,
        tls_verify=tls_verify,
        retry=retry,
        trace=trace,
        timeout_s=timeout_s,
        max_connections=max(4, max_concurrent_downloads + 2),
    ) as transport:
        remote = Remote(transport, ref.repository)
        top = await remote.get_manifest(ref.identifier, expect_digest=ref.digest)
        emit(Event("resolved", top.digest, len(top.raw), message=top.media_type))
        images: list[Manifest] = []
        stored = top
        index_digest: str | None = None
        platforms: list[str] = []
        if top.is_index:
            if all_platforms:
                images = await _all_children(remote, top, platforms)
            else:
                child = select_platform(top, wanted)
                stored = await remote.get_manifest(child.digest, expect_digest=child.digest)
                images = [stored]
                index_digest = top.digest
                platforms.append(str(child.platform))
        else:
            images = [top]
        blobs: list[Descriptor] = []
        seen: set[str] = set()
        for m in images:
            if m.is_index:
                continue
            for desc in [m.config(), *m.layers()]:
                if desc.digest not in seen:
                    seen.add(desc.digest)
                    blobs.append(desc)
        for desc in blobs:
            emit(Event("waiting", desc.digest, desc.size))
        semaphore = asyncio.Semaphore(max_concurrent_downloads)

        async def fetch(desc: Descriptor) -> BlobResult:
            async with semaphore:
                if layout.has_blob(desc):
                    emit(Event("exists", desc.digest, desc.size, desc.size))
                    return BlobResult(desc.digest, desc.size, desc.media_type, "exists")
                sink = layout.partial(desc)
                if not await asyncio.to_thread(sink.acquire):
                    emit(Event("exists", desc.digest, desc.size, desc.size))
                    return BlobResult(desc.digest, desc.size, desc.media_type, "exists")
                try:
                    await remote.fetch_blob(desc, sink, events)
                except BaseException as exc:
                    if isinstance(exc, FleetkitError):
                        emit(Event("failed", desc.digest, desc.size, sink.offset, exc.message))
                    raise
                finally:
                    sink.release()
                status = "resumed" if sink.resumed_from else "downloaded"
                return BlobResult(
                    desc.digest, desc.size, desc.media_type, status, sink.resumed_from
                )

        outcomes = await asyncio.gather(*(fetch(d) for d in blobs), return_exceptions=True)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    if failures:
        first = next((f for f in failures if isinstance(f, FleetkitError)), failures[0])
        if not isinstance(first, FleetkitError):
            raise first
        if len(failures) > 1:
            first.message = f"{first.message} (and {len(failures) - 1} more blob(s) failed)"
        raise first
    results = tuple(o for o in outcomes if isinstance(o, BlobResult))

    for m in images:
        layout.write_blob(m.digest, m.raw)
    if stored is top:
        layout.write_blob(top.digest, top.raw)
    if not platforms and not top.is_index:
        platforms.extend(_config_platform(layout.read_blob(images[0].config().digest)))
    if loc.transport == "oci":
        layout.add_manifest(stored.descriptor, name, str(ref))
    else:
        write_docker_archive(loc.path, layout, stored, repo_tags)
        shutil.rmtree(layout.root, ignore_errors=True)
    return PullResult(
        reference=str(ref),
        digest=stored.digest,
        media_type=stored.media_type,
        destination=str(loc),
        index_digest=index_digest,
        platforms=tuple(platforms),
        blobs=results,
    )


def _config_platform(raw: bytes) -> list[str]:
    try:
        doc = json.loads(raw)
        p = Platform.from_json(doc)
    except (ValueError, AttributeError):
        return []
    return [str(p)] if p is not None and p.os else []


async def _all_children(remote: Remote, index: Manifest, platforms: list[str]) -> list[Manifest]:
    out: list[Manifest] = []
    for child in index.children():
        m = await remote.get_manifest(child.digest, expect_digest=child.digest)
        if child.platform is not None:
            platforms.append(str(child.platform))
        if m.is_index:
            out.append(m)
            out.extend(await _all_children(remote, m, platforms))
        else:
            out.append(m)
    return out


def pull(image: str | Reference, dest: str | Location, **kwargs: Any) -> PullResult:
    """Synchronous :func:`pull_async` (runs its own event loop)."""
    return asyncio.run(pull_async(image, dest, **kwargs))
