"""``/v2/<name>/blobs/<digest>``: GET (with a single byte Range), HEAD, DELETE."""

from __future__ import annotations

import asyncio
import os
import re
import select
import socket
import threading
from typing import BinaryIO

from aiohttp import web

from fleetkit.registry.digest import parse_digest
from fleetkit.registry.errors import RegistryAPIError, api_error
from fleetkit.registry.server._common import (
    SENT_KEY,
    State,
    authorize,
    run_blocking,
    state,
    store_io,
)

__all__ = ["parse_range", "get_blob", "delete_blob", "RangeInvalid"]

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 128 << 10  # fits the L2 cache with room for the socket's copy


class RangeInvalid(RegistryAPIError):
    code = "RANGE_INVALID"


def parse_range(header: str, size: int) -> tuple[int, int]:
    """Parse one ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` range into inclusive ``(start, end)``.

    Raise :class:`RangeInvalid` (416) for syntax we do not serve (several ranges, garbage) and for
    ranges the blob cannot satisfy.
    """
    m = _RANGE_RE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        raise RangeInvalid(f"unsupported Range {header[:80]!r}")
    first, last = m.group(1), m.group(2)
    if len(first) > 20 or len(last) > 20:
        raise RangeInvalid("range out of bounds")
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeInvalid("unsatisfiable range")
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise RangeInvalid("unsatisfiable range")
    return start, min(end, size - 1)


async def get_blob(request: web.Request, name: str, digest: str) -> web.StreamResponse:
    await authorize(request, name, "pull")
    st = state(request)
    parse_digest(digest)
    size = await store_io(st, st.store.repo_blob_size, name, digest)
    if size is None:
        raise api_error("BLOB_UNKNOWN", detail={"digest": digest})
    headers = {
        "Docker-Content-Digest": digest,
        "Etag": f'"{digest}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
        "Content-Type": "application/octet-stream",
    }
    if request.headers.get("If-None-Match", "").strip() in (f'"{digest}"', digest):
        return web.Response(status=304, headers=headers)
    presign = getattr(st.store.driver, "presigned_get", None)
    if st.storage_redirect and request.method == "GET" and presign is not None:
        # the client fetches the bytes from the object store (a URL valid for 5 minutes)
        url = await run_blocking(presign, st.store.blob_path(digest))
        return web.Response(status=307, headers={"Location": url, "Docker-Content-Digest": digest})
    start, end, status = 0, size - 1, 200
    rng = request.headers.get("Range")
    if rng is not None:
        try:
            start, end = parse_range(rng, size)
        except RangeInvalid as exc:
            exc.headers["Content-Range"] = f"bytes */{size}"
            raise
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    length = end - start + 1 if size else 0
    headers["Content-Length"] = str(length)
    resp = web.StreamResponse(status=status, headers=headers)
    if request.method == "HEAD":
        await resp.prepare(request)
        return resp
    await resp.prepare(request)
    if length == 0:
        await resp.write_eof()
        return resp
    path = st.store.blob_path(digest)
    f = await store_io(st, st.store.driver.reader, path, start)
    st.blob_bodies_in_flight += 1
    request[SENT_KEY] = 0
    try:
        transport = request.transport
        local = transport is not None and st.store.driver.local_path(path) is not None
        sent = await _copy_body(request, resp, f, length, st, stop_when_shared=local)
        if sent < length and local:
            assert transport is not None
            # the kernel copies file -> socket: on a thread of its own when it can (plain
            # HTTP, nothing buffered), else on the loop (falls back to read/write under TLS)
            if transport.get_write_buffer_size() == 0 and _plain_socket(transport) is not None:
                progress = _Progress()
                try:
                    await _sendfile_on_thread(
                        transport, f, start + sent, length - sent, st.body_timeout_s, progress
                    )
                finally:
                    request[SENT_KEY] = sent + progress.done
                    st.metrics.bytes_sent += progress.done
            else:
                try:
                    await asyncio.get_running_loop().sendfile(
                        transport, f, start + sent, length - sent
                    )
                finally:
                    # sendfile leaves the file at the end of what it sent, also when it fails
                    done = f.tell() - (start + sent)
                    request[SENT_KEY] = sent + done
                    st.metrics.bytes_sent += done
    finally:
        st.blob_bodies_in_flight -= 1
        f.close()
    await resp.write_eof()
    return resp


class _Progress:
    done = 0


def _plain_socket(transport: asyncio.BaseTransport) -> socket.socket | None:
    """The connection's socket when the bytes go to it as they are (no TLS)."""
    if transport.get_extra_info("ssl_object") is not None:
        return None
    sock: socket.socket | None = transport.get_extra_info("socket")
    return sock


async def _sendfile_on_thread(
    transport: asyncio.BaseTransport,
    f: BinaryIO,
    offset: int,
    count: int,
    timeout_s: float,
    progress: _Progress,
) -> None:
    """``os.sendfile`` from a worker thread (the GIL released), on a duplicate of the socket.

    With several bodies in flight (skopeo fetches three layers at once) each goes from its own
    thread, so the kernel copies on both cores instead of taking turns on the event loop; the
    loop writes nothing to this connection meanwhile (the headers are out: the transport's
    buffer was empty). The socket stays non-blocking: a full send buffer waits in ``poll``, and
    a client that reads nothing for ``timeout_s`` is treated as gone, as is one that closed.
    """
    sock = _plain_socket(transport)
    assert sock is not None
    fd = os.dup(sock.fileno())
    stop = threading.Event()

    def push() -> None:
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        while progress.done < count and not stop.is_set():
            try:
                n = os.sendfile(fd, f.fileno(), offset + progress.done, count - progress.done)
            except BlockingIOError:
                if not poller.poll(int(timeout_s * 1000)):
                    raise ConnectionResetError("the client stopped reading") from None
                continue
            if n == 0:
                raise ConnectionResetError("the file ended early")
            progress.done += n

    work = asyncio.get_running_loop().run_in_executor(None, push)
    try:
        await asyncio.shield(work)
    except asyncio.CancelledError:
        stop.set()  # the thread ends after its current (non-blocking) sendfile
        try:
            await work
        except Exception:  # noqa: BLE001 - the cancellation is what matters now
            pass
        raise
    finally:
        os.close(fd)


async def _copy_body(
    request: web.Request,
    resp: web.StreamResponse,
    f: BinaryIO,
    length: int,
    st: State,
    stop_when_shared: bool,
) -> int:
    """Send up to ``length`` bytes of ``f`` through user space in ``_CHUNK`` pieces.

    While this is the only blob body being sent, a file page is read and written to the
    socket while still in cache, and the receiver copies it out of the socket while it is
    too: on loopback this is 10-20 % faster than ``sendfile``, whose zero-copy pages reach the
    receiver cold (distribution 2.8 copies through a 32 KiB buffer here, too). Once other
    bodies are in flight the CPU is the limit: with ``stop_when_shared`` this returns early
    (the bytes sent so far) and the caller sends the rest with ``sendfile`` (each body from a
    thread of its own), which copies nothing here. Reads are from the page cache and short, so they stay on the loop.
    """
    sent = 0
    while sent < length:
        if stop_when_shared and st.blob_bodies_in_flight > 1:
            break
        # a new bytes each time (no reused buffer): the transport may hold on to it
        chunk = await store_io(st, f.read, min(_CHUNK, length - sent))
        if not chunk:
            break
        await resp.write(chunk)
        sent += len(chunk)
        request[SENT_KEY] = sent
        st.metrics.bytes_sent += len(chunk)
    return sent


async def delete_blob(request: web.Request, name: str, digest: str) -> web.Response:
    await authorize(request, name, "delete")
    st = state(request)
    parse_digest(digest)
    if not st.delete_enabled:
        raise api_error("UNSUPPORTED", "deletes are disabled on this registry")
    if not await run_blocking(st.store.unlink_blob, name, digest):
        raise api_error("BLOB_UNKNOWN", detail={"digest": digest})
    return web.Response(status=202, headers={"Docker-Content-Digest": digest})
