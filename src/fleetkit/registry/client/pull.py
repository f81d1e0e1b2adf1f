"""``pull``: resolve a reference, choose a platform, download blobs in parallel, write the image.

What dockerd does, without a daemon: ping, token, manifest (every ``Accept`` type, digest
checked), then config and layers with at most ``max_concurrent_downloads`` at once, each
streamed to disk, verified and resumable (see :mod:`.layout` and :meth:`.Remote.fetch_blob`).
Blobs already in the destination layout are not fetched again. Manifests and ``index.json`` are
written only after every blob is in place, so an interrupted pull never looks complete.

Indexes may nest (an index entry that is itself an index): without ``all_platforms`` the
platform is chosen at every level down to an image manifest; with it, every manifest of the
tree is fetched once however often it is listed. Nesting deeper than ``MAX_INDEX_DEPTH`` is
refused. ``--platform`` on a single-image reference is checked against the image's config
before any layer is fetched (docker refuses a mismatch too). A pull that fails into a
directory it created removes that directory again unless a partial download is worth keeping.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fleetkit.errors import FleetkitError, UsageError
from fleetkit.registry.client.credentials import Credential
from fleetkit.registry.client.errors import DestinationError, PlatformNotFound, VerificationError
from fleetkit.registry.client.events import Event, EventSink, TraceSink, printable
from fleetkit.registry.client.image import Descriptor, Manifest, Platform, select_platform
from fleetkit.registry.client.layout import (
    Location,
    OCILayout,
    parse_location,
    write_docker_archive,
)
from fleetkit.registry.client.remote import Remote
from fleetkit.registry.client.transport import RetryPolicy, connect
from fleetkit.registry.reference import Reference, familiar_name, parse_reference

__all__ = ["BlobResult", "PullResult", "pull", "pull_async", "MAX_INDEX_DEPTH"]

MAX_INDEX_DEPTH = 8  # an index inside an index inside ...; real images use one or two levels


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
    notify: Callable[[str], None] | None = None,
) -> PullResult:
    """Pull ``image`` into ``dest`` (``oci:DIR[:TAG]`` or ``docker-archive:FILE[:REF]``).

    ``notify`` hears retries of requests that are not about one blob (ping, manifests).
    """
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
    created = not loc.path.exists() if loc.transport == "oci" else False
    layout, repo_tags, name = _prepare(loc, ref)
    try:
        return await _pull(
            ref,
            loc,
            layout,
            repo_tags,
            name,
            explicit_platform=platform is not None,
            wanted=wanted,
            all_platforms=all_platforms,
            max_concurrent_downloads=max_concurrent_downloads,
            tls_verify=tls_verify,
            credential=credential,
            config_path=config_path,
            retry=retry,
            events=events,
            emit=emit,
            trace=trace,
            timeout_s=timeout_s,
            notify=notify,
        )
    except BaseException as exc:
        if created:
            # a platform mismatch is found before any layer: only the config was fetched
            _remove_if_empty(layout.root, ignore_blobs=isinstance(exc, PlatformNotFound))
        raise


def _remove_if_empty(root: Path, ignore_blobs: bool = False) -> None:
    """Remove a layout this pull created when it holds nothing worth keeping (no blob at all)."""
    skeleton = {"oci-layout", "index.json", ".index.json.lock"}
    try:
        for path in root.rglob("*"):
            parts = path.relative_to(root).parts
            if parts[0] == "blobs" and (path.is_dir() or ignore_blobs):
                continue
            if path.relative_to(root).as_posix() not in skeleton:
                return  # a blob or partial download (resumable), or someone else's file
    except OSError:
        return
    shutil.rmtree(root, ignore_errors=True)


async def _pull(
    ref: Reference,
    loc: Location,
    layout: OCILayout,
    repo_tags: list[str],
    name: str | None,
    *,
    explicit_platform: bool,
    wanted: Platform,
    all_platforms: bool,
    max_concurrent_downloads: int,
    tls_verify: bool,
    credential: Credential | None,
    config_path: str | Path | None,
    retry: RetryPolicy | None,
    events: EventSink | None,
    emit: EventSink,
    trace: TraceSink | None,
    timeout_s: float,
    notify: Callable[[str], None] | None,
) -> PullResult:
    async with connect(
        ref.registry,
        credential=credential,
        config_path=config_path,
        tls_verify=tls_verify,
        retry=retry,
        trace=trace,
        timeout_s=timeout_s,
        max_connections=max(4, max_concurrent_downloads + 2),
        notify=notify,
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
                stored, child = top, None
                for _depth in range(MAX_INDEX_DEPTH + 1):
                    if not stored.is_index:
                        break
                    child = select_platform(stored, wanted)
                    stored = await remote.get_manifest(child.digest, expect_digest=child.digest)
                else:
                    raise _too_deep(top)
                assert child is not None
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
        single_image_check = explicit_platform and not top.is_index

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

        config_result: list[BlobResult | BaseException] = []
        if single_image_check and blobs:
            # the config says which platform a lone image is for: check it before the layers
            config = images[0].config()
            config_result = [await fetch(config)]
            found = _platform_of(layout.read_blob(config.digest))
            if found is not None and not _compatible(wanted, found):
                raise PlatformNotFound(
                    f"image {ref} was found but does not match the specified platform: "
                    f"wanted {wanted}, actual: {printable(str(found))}",
                    hint="omit --platform, or pull an image built for that platform",
                )
            blobs = [b for b in blobs if b.digest != config.digest]
        outcomes = config_result + list(
            await asyncio.gather(*(fetch(d) for d in blobs), return_exceptions=True)
        )
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


def _platform_of(raw: bytes) -> Platform | None:
    """The platform an image config names (None when it names none)."""
    try:
        p = Platform.from_json(json.loads(raw))
    except (ValueError, AttributeError):
        return None
    return p if p is not None and p.os and p.architecture else None


def _config_platform(raw: bytes) -> list[str]:
    p = _platform_of(raw)
    return [str(p)] if p is not None else []


def _compatible(wanted: Platform, found: Platform) -> bool:
    """As docker compares a lone image: os and architecture; variant only when both name one."""
    if (wanted.os, wanted.architecture) != (found.os, found.architecture):
        return False
    return not (wanted.variant and found.variant) or wanted.variant == found.variant


def _too_deep(top: Manifest) -> VerificationError:
    return VerificationError(
        f"index {top.digest} is nested deeper than {MAX_INDEX_DEPTH} levels",
        hint="this is not an image a container runtime could use; check the reference",
    )


async def _all_children(remote: Remote, index: Manifest, platforms: list[str]) -> list[Manifest]:
    """Every manifest below ``index``, each fetched once, breadth first, depth bounded."""
    out: list[Manifest] = []
    seen: set[str] = {index.digest}
    level = [index]
    for _depth in range(MAX_INDEX_DEPTH + 1):
        if not level:
            return out
        below: list[Manifest] = []
        for parent in level:
            for child in parent.children():
                if child.platform is not None and str(child.platform) not in platforms:
                    platforms.append(str(child.platform))
                if child.digest in seen:
                    continue
                seen.add(child.digest)
                m = await remote.get_manifest(child.digest, expect_digest=child.digest)
                out.append(m)
                if m.is_index:
                    below.append(m)
        level = below
    raise _too_deep(index)


def pull(image: str | Reference, dest: str | Location, **kwargs: Any) -> PullResult:
    """Synchronous :func:`pull_async` (runs its own event loop)."""
    return asyncio.run(pull_async(image, dest, **kwargs))
