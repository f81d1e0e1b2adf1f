"""``push``: upload an image from ``oci:DIR[:TAG]`` or ``docker-archive:FILE[:REF]``.

Blobs first (skipped when the registry has them, mounted from ``mount_from`` repositories when
it can, else uploaded monolithically or in ``chunk_size`` chunks), then child manifests by
digest, then the top manifest or index by tag -- so a tag never points at missing content.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from fleetkit.errors import FleetkitError, UsageError
from fleetkit.registry.client.credentials import Credential
from fleetkit.registry.client.errors import TransportError, VerificationError
from fleetkit.registry.client.events import Event, EventSink, TraceSink
from fleetkit.registry.client.image import Descriptor, Manifest
from fleetkit.registry.client.layout import ImageSource, Location, open_source, parse_location
from fleetkit.registry.client.remote import Remote
from fleetkit.registry.client.transport import RETRY_STATUSES, RetryPolicy, connect
from fleetkit.registry.errors import RegistryAPIError
from fleetkit.registry.reference import Reference, parse_reference

__all__ = ["PushResult", "push", "push_async"]


@dataclass(frozen=True, slots=True)
class PushResult:
    reference: str
    digest: str
    media_type: str
    size: int
    source: str
    blobs: tuple[tuple[str, int, str], ...]  # (digest, size, "uploaded" | "exists" | "mounted")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["blobs"] = [{"digest": d, "size": s, "status": st} for d, s, st in self.blobs]
        return out


def _children(src: ImageSource, top: Manifest) -> list[Manifest]:
    out: list[Manifest] = []
    for child in top.children():
        m = src.manifest(child)
        if m.is_index:
            out.extend(_children(src, m))
        out.append(m)
    return out


async def push_async(
    source: str | Location,
    image: str | Reference,
    *,
    mount_from: tuple[str, ...] = (),
    chunk_size: int | None = None,
    max_concurrent_uploads: int = 3,
    tls_verify: bool = True,
    credential: Credential | None = None,
    config_path: str | Path | None = None,
    retry: RetryPolicy | None = None,
    events: EventSink | None = None,
    trace: TraceSink | None = None,
    timeout_s: float = 60.0,
    notify: Callable[[str], None] | None = None,
) -> PushResult:
    """Push ``source`` to ``image``; ``notify`` hears retries not about one blob."""
    loc = parse_location(source) if isinstance(source, str) else source
    ref = parse_reference(image) if isinstance(image, str) else image
    if max_concurrent_uploads < 1:
        raise UsageError("--max-concurrent-uploads must be at least 1", hint="the default is 3")
    if chunk_size is not None and chunk_size < 1:
        raise UsageError("--chunk-size must be positive", hint="omit it for monolithic uploads")
    emit = events or (lambda _e: None)
    src = open_source(loc)
    try:
        top = src.top()
        images = _children(src, top) if top.is_index else [top]
        blobs: list[Descriptor] = []
        seen: set[str] = set()
        for m in images:
            if m.is_index:
                continue
            for desc in [m.config(), *m.layers()]:
                if desc.digest not in seen:
                    seen.add(desc.digest)
                    blobs.append(desc)
        if ref.digest and ref.digest != top.digest:
            raise VerificationError(f"{loc} is {top.digest}, not {ref.digest}")
        mount_from = (*mount_from, *_origin_repository(src.origin, ref))
        async with connect(
            ref.registry,
            credential=credential,
            config_path=config_path,
            tls_verify=tls_verify,
            retry=retry,
            trace=trace,
            timeout_s=timeout_s,
            max_connections=max(4, max_concurrent_uploads + 2),
            notify=notify,
        ) as transport:
            remote = Remote(transport, ref.repository)
            semaphore = asyncio.Semaphore(max_concurrent_uploads)
            for desc in blobs:
                emit(Event("waiting", desc.digest, desc.size))

            async def upload(desc: Descriptor) -> tuple[str, int, str]:
                def opener() -> IO[bytes]:
                    return src.open_blob(desc.digest)

                async with semaphore:
                    failure = 0
                    while True:
                        try:
                            status = await remote.upload_blob(
                                desc,
                                opener,
                                mount_from=mount_from,
                                chunk_size=chunk_size,
                                events=events,
                            )
                            break
                        except (TransportError, RegistryAPIError) as exc:
                            # an upload body cannot be replayed mid-stream: start the blob over
                            retryable = (
                                exc.retryable
                                if isinstance(exc, TransportError)
                                else exc.status in RETRY_STATUSES
                            )
                            if not retryable:
                                emit(Event("failed", desc.digest, desc.size, 0, exc.message))
                                raise
                            failure += 1
                            if failure >= transport.retry.attempts:
                                emit(Event("failed", desc.digest, desc.size, 0, exc.message))
                                raise
                            delay = transport.retry.delay(failure)
                            note = (
                                f"{exc.message}; uploading again "
                                f"({failure + 1}/{transport.retry.attempts}) in {delay:.1f}s"
                            )
                            emit(Event("retry", desc.digest, desc.size, 0, note))
                            await asyncio.sleep(delay)
                        except FleetkitError as exc:
                            emit(Event("failed", desc.digest, desc.size, 0, exc.message))
                            raise
                return desc.digest, desc.size, status

            outcomes = await asyncio.gather(*(upload(d) for d in blobs), return_exceptions=True)
            failures = [o for o in outcomes if isinstance(o, BaseException)]
            if failures:
                raise next((f for f in failures if isinstance(f, FleetkitError)), failures[0])
            for m in images:
                if m is not top:
                    await remote.put_manifest(m.digest, m)
            identifier = ref.digest or ref.tag or "latest"
            digest = await remote.put_manifest(identifier, top)
            emit(Event("resolved", digest, len(top.raw), message=top.media_type))
    finally:
        src.close()
    return PushResult(
        reference=str(ref),
        digest=digest,
        media_type=top.media_type,
        size=len(top.raw),
        source=str(loc),
        blobs=tuple(o for o in outcomes if isinstance(o, tuple)),
    )


def _origin_repository(origin: str | None, target: Reference) -> tuple[str, ...]:
    """Where a layout's image was pulled from, when that is another repo on the same registry.

    ``fleetkit pull`` records the source name in each index entry; like dockerd's distribution
    metadata, it makes the blobs mountable instead of uploaded again.
    """
    if not origin:
        return ()
    try:
        source = parse_reference(origin)
    except UsageError:
        return ()
    if source.registry != target.registry or source.repository == target.repository:
        return ()
    return (source.repository,)


def push(source: str | Location, image: str | Reference, **kwargs: Any) -> PushResult:
    """Synchronous :func:`push_async`."""
    return asyncio.run(push_async(source, image, **kwargs))
