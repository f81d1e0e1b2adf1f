"""The distribution API calls, one method each, on top of :class:`Transport`.

``fetch_blob`` is the resumable download: it streams into a :class:`PartialBlob` (hashing on the
fly, constant memory), and after a cut connection, a truncated body or a retryable status it asks
for the rest with ``Range: bytes=N-`` -- starting over only when the server ignores ``Range``.
The attempt counter resets whenever an attempt made progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import threading
from collections.abc import AsyncIterator, Callable
from typing import IO, Protocol

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from fleetkit.registry import mediatypes as mt
from fleetkit.registry.client.errors import TransportError, VerificationError
from fleetkit.registry.client.events import Event, EventSink, printable
from fleetkit.registry.client.image import MAX_MANIFEST_BYTES, Descriptor, Manifest
from fleetkit.registry.client.layout import PartialBlob
from fleetkit.registry.client.transport import (
    MAX_ERROR_BODY_BYTES,
    RETRY_STATUSES,
    Transport,
    read_body,
)
from fleetkit.registry.digest import digest_bytes, parse_digest

__all__ = ["Remote", "list_catalog", "BodySink", "receive_direct"]

_CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_WRITE_BATCH = 1 << 20  # bytes handed to the hashing/writing thread at a time
_DIRECT_BUFFER = 1 << 20  # one recv_into of the direct body path (see receive_direct)
_DIRECT_PROGRESS = 8 << 20  # a progress event every this many bytes on the direct path
_DIRECT_MIN = 1 << 20  # smaller bodies stay on aiohttp (the direct path closes the connection)
_UPLOAD_CHUNK = 1 << 20
MAX_TAGS_PAGE_BYTES = 16 << 20  # one page of a tag list


class BodySink(Protocol):
    """Where a blob body goes: ``write`` appends (and hashes) it; ``offset`` counts what landed."""

    offset: int

    def write(self, data: bytes | memoryview) -> None: ...


class Remote:
    """One repository on one registry."""

    def __init__(self, transport: Transport, repository: str) -> None:
        self.t = transport
        self.repository = repository

    @property
    def pull_scope(self) -> tuple[str, ...]:
        return (f"repository:{self.repository}:pull",)

    @property
    def push_scope(self) -> tuple[str, ...]:
        return (f"repository:{self.repository}:pull,push",)

    def _where(self, what: str) -> str:
        return f"{self.t.registry}/{self.repository}{what}"

    # -- manifests -------------------------------------------------------------------------

    async def get_manifest(self, identifier: str, expect_digest: str | None = None) -> Manifest:
        """GET a manifest by tag or digest, verifying ``Docker-Content-Digest`` and the digest."""
        sep = "@" if ":" in identifier else ":"
        where = self._where(f"{sep}{identifier}")
        headers: CIMultiDict[str] = CIMultiDict()
        for media_type in mt.ACCEPT_MANIFESTS:
            headers.add("Accept", media_type)
        resp = await self.t.request(
            "GET",
            f"/v2/{self.repository}/manifests/{identifier}",
            scopes=self.pull_scope,
            headers=headers,
        )
        async with resp:
            if resp.status != 200:
                raise self.t.error(resp.status, await _error_body(resp), where)
            length = resp.content_length
            if length is not None and length > MAX_MANIFEST_BYTES:
                raise VerificationError(f"{where}: manifest of {length} bytes is too large")
            raw = await _read_bounded(resp, MAX_MANIFEST_BYTES, where)
            header_digest = resp.headers.get("Docker-Content-Digest")
            content_type = resp.headers.get("Content-Type", "")
        want = expect_digest or header_digest
        algorithm = "sha256"
        if want:
            try:
                algorithm = parse_digest(want).algorithm
            except Exception:
                raise VerificationError(
                    f"{where}: invalid Docker-Content-Digest {want!r}"
                ) from None
        manifest = Manifest.parse(raw, content_type, where=where, algorithm=algorithm)
        for label, expected in (
            ("Docker-Content-Digest", header_digest),
            ("reference", expect_digest),
        ):
            if expected and expected.startswith(f"{algorithm}:") and manifest.digest != expected:
                raise VerificationError(
                    f"{where}: manifest digest {manifest.digest} does not match the {label} {expected}",
                    hint="the registry (or something between) changed the manifest; nothing was written",
                )
        return manifest

    async def head_manifest(self, identifier: str) -> Descriptor | None:
        headers: CIMultiDict[str] = CIMultiDict()
        for media_type in mt.ACCEPT_MANIFESTS:
            headers.add("Accept", media_type)
        resp = await self.t.request(
            "HEAD",
            f"/v2/{self.repository}/manifests/{identifier}",
            scopes=self.pull_scope,
            headers=headers,
        )
        async with resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise self.t.error(resp.status, b"", self._where(f":{identifier}"))
            digest = resp.headers.get("Docker-Content-Digest", "")
            return Descriptor(
                resp.headers.get("Content-Type", ""),
                digest,
                int(resp.headers.get("Content-Length", "0")),
            )

    async def put_manifest(self, identifier: str, manifest: Manifest) -> str:
        headers = {"Content-Type": manifest.media_type}
        raw = manifest.raw
        resp = await self.t.request(
            "PUT",
            f"/v2/{self.repository}/manifests/{identifier}",
            scopes=self.push_scope,
            headers=headers,
            body=lambda: raw,
        )
        async with resp:
            body = await _error_body(resp)
            if resp.status not in (200, 201, 202):
                raise self.t.error(
                    resp.status, body, self._where(f":{identifier} (manifest upload)")
                )
            returned = resp.headers.get("Docker-Content-Digest")
        if (
            returned
            and returned != manifest.digest
            and returned.split(":")[0] == manifest.digest.split(":")[0]
        ):
            raise VerificationError(
                printable(
                    f"{self._where('')}: registry stored manifest {returned}, "
                    f"expected {manifest.digest}"
                )
            )
        return manifest.digest

    async def delete_manifest(self, digest: str) -> None:
        """DELETE a manifest by digest (the registry removes every tag that points at it)."""
        resp = await self.t.request(
            "DELETE",
            f"/v2/{self.repository}/manifests/{digest}",
            scopes=(f"repository:{self.repository}:delete",),
        )
        async with resp:
            body = await _error_body(resp)
            if resp.status not in (200, 202, 204):
                raise self.t.error(resp.status, body, self._where(f"@{digest} (delete)"))

    # -- tags ------------------------------------------------------------------------------

    async def list_tags(self, page_size: int | None = None) -> list[str]:
        tags: list[str] = []
        target: str | URL = f"/v2/{self.repository}/tags/list" + (
            f"?n={page_size}" if page_size else ""
        )
        visited: set[str] = set()
        for _ in range(10000):
            visited.add(_page_key(target))
            resp = await self.t.request("GET", target, scopes=self.pull_scope)
            async with resp:
                if resp.status != 200:
                    body = await _error_body(resp)
                    raise self.t.error(resp.status, body, self._where(" (tags)"))
                body = await read_body(resp, MAX_TAGS_PAGE_BYTES, self._where(" (tags)"))
                link = resp.headers.get("Link", "")
            try:
                page = json.loads(body).get("tags") or []
            except (ValueError, AttributeError):
                raise VerificationError(f"{self._where('')}: invalid tag list") from None
            tags.extend(str(t) for t in page)
            m = re.search(r"<([^>]+)>\s*;\s*rel=\"?next\"?", link)
            if not m:
                break
            target = self.t.base_url.join(URL(m.group(1), encoded=True))
            if _page_key(target) in visited:
                break  # a Link that points back: the list is complete, not endless
        return tags

    # -- blobs -----------------------------------------------------------------------------

    async def fetch_blob(
        self, desc: Descriptor, sink: PartialBlob, events: EventSink | None
    ) -> None:
        """Download ``desc`` into ``sink`` (already acquired), resuming; commit when verified."""
        emit = events or (lambda _e: None)
        failures = 0
        attempts = self.t.retry.attempts
        emit(Event("start", desc.digest, desc.size, sink.offset))

        def notify(message: str) -> None:
            emit(Event("retry", desc.digest, desc.size, sink.offset, message))

        while True:
            start = sink.offset
            if start >= desc.size and desc.size > 0:
                break
            headers: dict[str, str] = {}
            if start:
                headers["Range"] = f"bytes={start}-"
            problem: str | None = None
            try:
                resp = await self.t.request(
                    "GET",
                    f"/v2/{self.repository}/blobs/{desc.digest}",
                    scopes=self.pull_scope,
                    headers=headers,
                    notify=notify,
                )
            except TransportError:
                sink.release()
                raise
            try:
                if resp.status == 206 and start:
                    m = _CONTENT_RANGE_RE.match(resp.headers.get("Content-Range", ""))
                    if not m or int(m.group(1)) != start:
                        sink.restart()
                        problem = "bad Content-Range; starting over"
                        resp.release()
                        raise _Retry(problem)
                elif resp.status == 200:
                    if start:
                        sink.restart()
                elif resp.status in RETRY_STATUSES:
                    sink.release()
                    raise TransportError(
                        f"blob {desc.digest}: HTTP {resp.status} after {attempts} attempts",
                        hint="run the same command again later: the partial download is kept",
                    )
                else:
                    body = await _error_body(resp)
                    sink.release()
                    raise self.t.error(resp.status, body, f"blob {desc.digest}")
                if not await receive_direct(resp, desc, sink, emit, self.t.read_timeout_s):
                    await self._stream_into(resp, desc, sink, emit)
                if sink.offset < desc.size:
                    problem = f"body ended at {sink.offset} of {desc.size} bytes"
            except _Retry as r:
                problem = str(r)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                problem = f"connection lost at {sink.offset} of {desc.size} bytes ({_short(exc)})"
            finally:
                resp.release()
            if problem is None:
                break
            failures = 1 if sink.offset > start else failures + 1
            if failures >= attempts:
                sink.release()
                raise TransportError(
                    f"blob {desc.digest}: {problem}; gave up after {failures} attempts",
                    hint="run the same command again: the partial download is kept and resumed",
                )
            delay = self.t.retry.delay(failures)
            notify(f"{problem}; resuming in {delay:.1f}s")
            self.t.trace_note(f"blob {desc.digest}: {problem}; resuming from byte {sink.offset}")
            await asyncio.sleep(delay)
        sink.commit()
        emit(Event("done", desc.digest, desc.size, desc.size))

    async def _stream_into(
        self, resp: aiohttp.ClientResponse, desc: Descriptor, sink: PartialBlob, emit: EventSink
    ) -> None:
        """Receive on the loop while the previous batch is hashed and written on a thread.

        Pieces are taken from aiohttp's buffer as they arrived (``readchunk``: no join into a
        bigger ``bytes``, so no copy on the loop) and handed to the thread in batches of
        up to ``_WRITE_BATCH`` bytes: while one batch is being hashed and written the next one
        accumulates, and when the thread is idle what arrived goes to disk at once (a slow
        download is resumable from what it received). At most one batch per blob is in flight
        and one accumulating, so memory stays constant.
        """
        loop = asyncio.get_running_loop()
        content = resp.content
        pending: asyncio.Future[None] | None = None
        received = sink.offset
        batch: list[bytes] = []
        batched = 0
        try:
            while True:
                chunk, end_of_http_chunk = await content.readchunk()
                if chunk:
                    received += len(chunk)
                    if received > desc.size:
                        if pending is not None:
                            await pending
                            pending = None
                        sink.discard()
                        raise VerificationError(
                            f"blob {desc.digest}: the registry sent more than the expected "
                            f"{desc.size} bytes; the partial file was deleted"
                        )
                    batch.append(chunk)
                    batched += len(chunk)
                    if batched < _WRITE_BATCH and pending is not None and not pending.done():
                        continue  # the thread is busy: let the next batch grow
                elif end_of_http_chunk:
                    continue  # a chunked-encoding boundary, not the end of the body
                elif not batch:
                    break
                if pending is not None:
                    await pending
                    emit(Event("progress", desc.digest, desc.size, sink.offset))
                pending = loop.run_in_executor(None, sink.write_many, batch)
                batch, batched = [], 0
                if not chunk:
                    break
        except (TimeoutError, aiohttp.ClientError, OSError):
            # the body broke off: keep what did arrive, so the next attempt resumes after it
            if pending is not None:
                await pending
                pending = None
            if batch:
                await loop.run_in_executor(None, sink.write_many, batch)
            raise
        finally:
            if pending is not None:
                await pending
        emit(Event("progress", desc.digest, desc.size, sink.offset))

    async def get_blob(self, desc: Descriptor, limit: int = MAX_MANIFEST_BYTES) -> bytes:
        """A small blob (an image config) in memory, verified against its digest."""
        where = self._where(f"@{desc.digest}")
        if desc.size > limit:
            raise VerificationError(f"{where}: blob of {desc.size} bytes is too large to inspect")
        resp = await self.t.request(
            "GET", f"/v2/{self.repository}/blobs/{desc.digest}", scopes=self.pull_scope
        )
        async with resp:
            if resp.status != 200:
                raise self.t.error(resp.status, await _error_body(resp), where)
            data = await _read_bounded(resp, limit, where)
        if digest_bytes(data, parse_digest(desc.digest).algorithm) != desc.digest:
            raise VerificationError(f"{where}: content does not match its digest")
        return data

    async def blob_exists(self, digest: str) -> bool:
        resp = await self.t.request(
            "HEAD", f"/v2/{self.repository}/blobs/{digest}", scopes=self.push_scope
        )
        async with resp:
            if resp.status == 200:
                return True
            if resp.status == 404:
                return False
            raise self.t.error(resp.status, b"", f"blob {digest}")

    async def mount_blob(self, digest: str, source: str) -> bool:
        """Cross-repository mount; False (the session cancelled) when the registry declines."""
        resp = await self.t.request(
            "POST",
            f"/v2/{self.repository}/blobs/uploads/?mount={digest}&from={source}",
            scopes=(*self.push_scope, f"repository:{source}:pull"),
            body=lambda: b"",
        )
        async with resp:
            body = await _error_body(resp)
            if resp.status == 201:
                return True
            if resp.status != 202:
                raise self.t.error(resp.status, body, f"blob {digest} (mount from {source})")
            location = self._location(resp)
        cancel = await self.t.request("DELETE", location, scopes=self.push_scope)
        async with cancel:
            await _error_body(cancel)
        return False

    async def upload_blob(
        self,
        desc: Descriptor,
        opener: Callable[[], IO[bytes]],
        *,
        mount_from: tuple[str, ...] = (),
        chunk_size: int | None = None,
        events: EventSink | None = None,
    ) -> str:
        """Upload unless present; returns ``exists``, ``mounted`` or ``uploaded``."""
        emit = events or (lambda _e: None)
        if await self.blob_exists(desc.digest):
            emit(Event("exists", desc.digest, desc.size, desc.size))
            return "exists"
        location: URL | None = None
        for source in mount_from:
            if source == self.repository:
                continue
            resp = await self.t.request(
                "POST",
                f"/v2/{self.repository}/blobs/uploads/?mount={desc.digest}&from={source}",
                scopes=(*self.push_scope, f"repository:{source}:pull"),
                body=lambda: b"",
            )
            async with resp:
                body = await _error_body(resp)
                if resp.status == 201:
                    emit(Event("mounted", desc.digest, desc.size, desc.size, source))
                    return "mounted"
                if resp.status == 202:
                    location = self._location(resp)
                    break
                raise self.t.error(resp.status, body, f"blob {desc.digest} (mount from {source})")
        emit(Event("start", desc.digest, desc.size, 0))
        if location is None:
            location = await self._start_upload(desc.digest)
        if chunk_size and desc.size > chunk_size:
            location = await self._upload_chunks(desc, opener, location, chunk_size, emit)
            final_body: Callable[[], object] = lambda: b""  # noqa: E731
            headers = {"Content-Length": "0"}
        else:

            def final_body() -> object:
                return _stream(opener, 0, desc.size, desc, emit)

            headers = {"Content-Length": str(desc.size), "Content-Type": "application/octet-stream"}
        resp = await self.t.request(
            "PUT",
            location.update_query({"digest": desc.digest}),
            scopes=self.push_scope,
            headers=headers,
            body=final_body,
            replayable=False,
        )
        async with resp:
            body = await _error_body(resp)
            if resp.status not in (201, 204):
                raise self.t.error(resp.status, body, f"blob {desc.digest} (upload)")
        emit(Event("done", desc.digest, desc.size, desc.size))
        return "uploaded"

    async def _start_upload(self, digest: str) -> URL:
        resp = await self.t.request(
            "POST",
            f"/v2/{self.repository}/blobs/uploads/",
            scopes=self.push_scope,
            body=lambda: b"",
        )
        async with resp:
            body = await _error_body(resp)
            if resp.status != 202:
                raise self.t.error(resp.status, body, f"blob {digest} (starting an upload)")
            return self._location(resp)

    def _location(self, resp: aiohttp.ClientResponse) -> URL:
        loc = resp.headers.get("Location")
        if not loc:
            raise TransportError(f"{self._where('')}: upload response without a Location")
        return self.t.base_url.join(URL(loc, encoded=True))

    async def _upload_chunks(
        self,
        desc: Descriptor,
        opener: Callable[[], IO[bytes]],
        location: URL,
        chunk_size: int,
        emit: EventSink,
    ) -> URL:
        offset = 0
        while offset < desc.size:
            end = min(desc.size, offset + chunk_size)
            start = offset

            def body(start: int = start, end: int = end) -> object:
                return _stream(opener, start, end, desc, emit)

            resp = await self.t.request(
                "PATCH",
                location,
                scopes=self.push_scope,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{start}-{end - 1}",
                    "Content-Length": str(end - start),
                },
                body=body,
                replayable=False,
            )
            async with resp:
                rbody = await _error_body(resp)
                if resp.status != 202:
                    raise self.t.error(resp.status, rbody, f"blob {desc.digest} (chunk at {start})")
                location = self._location(resp)
            offset = end
        return location


class _Retry(Exception):
    pass


def _page_key(target: str | URL) -> str:
    return (URL(target, encoded=True) if isinstance(target, str) else target).path_qs


async def receive_direct(
    resp: aiohttp.ClientResponse,
    desc: Descriptor,
    sink: BodySink,
    emit: EventSink,
    timeout_s: float,
) -> bool:
    """Receive a plain-HTTP ``Content-Length`` body straight from the socket on a thread.

    The request, auth, redirects and status went through aiohttp; its body would be copied by
    the HTTP parser and handed over chunk by chunk on the event loop, the one thread every
    blob shares (under CPU contention that loop is the bottleneck: each hand-over waits for
    the scheduler). Here aiohttp stops reading the connection, what it has buffered is written
    first, and a thread per blob then does ``recv_into`` a reused buffer, ``write`` and hash,
    each releasing the GIL: one copy out of the kernel, no allocation per chunk, and blobs
    proceed on every core like skopeo's goroutines. The connection is closed afterwards (never
    reused). False (nothing consumed) when this does not apply: TLS, chunked encoding, a
    length other than the bytes still missing, or under ``_DIRECT_MIN`` (a config, a small
    layer: its connection is worth reusing) -- the caller then streams through aiohttp.
    A cut or stalled connection raises ``OSError``/``TimeoutError`` with what arrived kept in
    ``sink``, so the caller resumes as after any broken body.
    """
    conn = resp.connection
    transport = conn.transport if conn is not None else None
    expected = desc.size - sink.offset
    if (
        transport is None
        or transport.get_extra_info("ssl_object") is not None
        or "Transfer-Encoding" in resp.headers
        or resp.headers.get("Content-Length") != str(expected)
        or expected < _DIRECT_MIN
    ):
        return False
    raw = transport.get_extra_info("socket")
    if raw is None:
        return False
    # take what aiohttp buffered, then stop it reading (in this order: draining its buffer
    # resumes a paused socket); no await in between, so no byte reaches aiohttp after this
    buffered = resp.content.read_nowait(-1)
    transport.pause_reading()
    left = expected - len(buffered)
    if left < 0:  # more than Content-Length buffered: not a body this path can trust
        resp.close()
        raise aiohttp.ClientPayloadError("more body bytes than Content-Length")
    sock = socket.socket(fileno=os.dup(raw.fileno()))
    sock.settimeout(timeout_s)
    stop = threading.Event()
    loop = asyncio.get_running_loop()

    def progress() -> None:
        emit(Event("progress", desc.digest, desc.size, sink.offset))

    def pump() -> None:
        if buffered:
            sink.write(buffered)
        remaining = left
        view = memoryview(bytearray(_DIRECT_BUFFER))
        since = 0
        while remaining > 0 and not stop.is_set():
            n = sock.recv_into(view, min(_DIRECT_BUFFER, remaining))
            if n == 0:
                return  # the server closed early: the caller resumes from sink.offset
            sink.write(view[:n])
            remaining -= n
            since += n
            if since >= _DIRECT_PROGRESS:
                since = 0
                loop.call_soon_threadsafe(progress)

    work = loop.run_in_executor(None, pump)
    try:
        await asyncio.shield(work)
    except asyncio.CancelledError:
        stop.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes a recv_into that is waiting
        with contextlib.suppress(BaseException):
            await work  # the thread writes nothing into sink after this
        raise
    finally:
        sock.close()
        resp.close()
    progress()
    return True


async def _error_body(resp: aiohttp.ClientResponse) -> bytes:
    """A response whose body matters only when it is an error (the start of it, bounded)."""
    return await read_body(resp, MAX_ERROR_BODY_BYTES)


async def _read_bounded(resp: aiohttp.ClientResponse, limit: int, where: str) -> bytes:
    """The whole body, however it is split into reads and chunks; refused past ``limit``."""
    buf = bytearray()
    try:
        while True:
            piece = await resp.content.read(limit + 1 - len(buf))
            if not piece:
                return bytes(buf)
            buf += piece
            if len(buf) > limit:
                raise VerificationError(
                    f"{where}: manifest too large (over {limit} bytes)",
                    hint="registries refuse manifests over 4 MiB; this one is not a manifest",
                )
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise TransportError(
            printable(f"{where}: reading the manifest failed ({_short(exc)})")
        ) from None


async def _stream(
    opener: Callable[[], IO[bytes]], start: int, end: int, desc: Descriptor, emit: EventSink
) -> AsyncIterator[bytes]:
    fh = opener()
    try:
        if start:
            fh.seek(start)
        remaining = end - start
        position = start
        while remaining > 0:
            chunk = fh.read(min(_UPLOAD_CHUNK, remaining))
            if not chunk:
                raise VerificationError(
                    f"blob {desc.digest}: the source is shorter than {desc.size} bytes"
                )
            remaining -= len(chunk)
            position += len(chunk)
            yield chunk
            emit(Event("progress", desc.digest, desc.size, position))
    finally:
        fh.close()


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 120 else text[:117] + "..."


MAX_CATALOG_PAGE_BYTES = 16 << 20


async def list_catalog(t: Transport, page_size: int | None = None) -> list[str]:
    """Every repository of ``GET /v2/_catalog``, following ``Link`` pages."""
    names: list[str] = []
    target: str | URL = "/v2/_catalog" + (f"?n={page_size}" if page_size else "")
    visited: set[str] = set()
    where = f"{t.registry} (catalog)"
    for _ in range(10000):
        visited.add(_page_key(target))
        resp = await t.request("GET", target, scopes=("registry:catalog:*",))
        async with resp:
            if resp.status != 200:
                raise t.error(resp.status, await _error_body(resp), where)
            body = await read_body(resp, MAX_CATALOG_PAGE_BYTES, where)
            link = resp.headers.get("Link", "")
        try:
            page = json.loads(body).get("repositories") or []
        except (ValueError, AttributeError):
            raise VerificationError(f"{where}: invalid repository list") from None
        names.extend(str(n) for n in page)
        m = re.search(r"<([^>]+)>\s*;\s*rel=\"?next\"?", link)
        if not m:
            break
        target = t.base_url.join(URL(m.group(1), encoded=True))
        if _page_key(target) in visited:
            break
    return names
