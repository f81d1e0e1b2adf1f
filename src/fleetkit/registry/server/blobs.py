"""``/v2/<name>/blobs/<digest>``: GET (with a single byte Range), HEAD, DELETE."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import select
import socket
import sys
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
    run_on_own_thread,
    state,
    store_io,
)

__all__ = [
    "parse_range",
    "get_blob",
    "delete_blob",
    "RangeInvalid",
    "plain_socket",
    "COPY_MAX_BODIES",
    "LOCAL_SEND_BUFFER",
    "bound_local_send_buffer",
    "LOCAL_MAX_RTT_US",
]

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
        if (
            local
            and transport is not None
            and transport.get_write_buffer_size() == 0
            and plain_socket(transport) is not None
        ):
            # plain HTTP from a file: the whole body from a thread of its own
            progress = _Progress()
            try:
                await _send_on_thread(transport, f, start, length, st.body_timeout_s, progress, st)
            finally:
                request[SENT_KEY] = progress.done
                st.metrics.bytes_sent += progress.done
            await resp.write_eof()
            return resp
        sent = await _copy_body(request, resp, f, length, st, stop_when_shared=local)
        if sent < length and local:
            assert transport is not None
            # the kernel copies file -> socket on the loop (read/write under TLS)
            try:
                await asyncio.get_running_loop().sendfile(transport, f, start + sent, length - sent)
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


_SEND_BUFFER = 128 << 10  # one pread + send of the copy path: fits L2 with the socket's copy
# bodies in flight up to which each is copied through user space (see _send_on_thread); beyond
# that many clients the server's own CPU is the limit and ``sendfile`` copies nothing here
COPY_MAX_BODIES = 4
# SO_SNDBUF for a copied body to a client on this host (the kernel doubles it: 256 KiB, three
# 64 KiB loopback segments; see bound_local_send_buffer); None leaves every socket autotuned
LOCAL_SEND_BUFFER: int | None = 128 << 10
# a peer at another address counts as on this host (a container, another network namespace)
# when the connection's round trip took at most this long: loopback and veth measure 15-25 us
# here; the bounded window still carries 256 KiB / 30 us = 8.7 GB/s, more than a body is sent at
LOCAL_MAX_RTT_US = 30
_TCPI_RTT = 68  # offset of tcpi_rtt (smoothed RTT, microseconds) in Linux's struct tcp_info


def bound_local_send_buffer(sock: socket.socket) -> bool:
    """Give a TCP connection to a peer on this host a send buffer of ``LOCAL_SEND_BUFFER``.

    On loopback (and a veth to another network namespace) the receiver is acknowledged as it
    reads, so the send buffer bounds what is written but not yet copied out by the client.
    Autotuned, it is 4 MiB from the handshake on (64 KiB segments), more than this machine's
    2 MiB L2, and the client's copy then misses the cache for part or all of a body: curl used
    30-45 ms of CPU per 100 MiB against 16-18 ms with 256 KiB (``perf stat``; see
    benchmarks/README.md, session 6). It stays at least two full loopback segments: with room
    for one only, each waits for the receiver's delayed ACK (tens of ms per 64 KiB).
    On this host means a loopback address or this socket's own, or a round trip (the
    handshake's) of at most ``LOCAL_MAX_RTT_US``; any other peer keeps the kernel's
    autotuning, whose window its round trip needs. Return whether the buffer was set.
    """
    size = LOCAL_SEND_BUFFER
    if size is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    try:
        peer = ipaddress.ip_address(sock.getpeername()[0])
        local = ipaddress.ip_address(sock.getsockname()[0])
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCPI_RTT + 4)
    except (OSError, ValueError):  # gone already, or a scoped address
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    if isinstance(local, ipaddress.IPv6Address) and local.ipv4_mapped is not None:
        local = local.ipv4_mapped
    rtt_us = int.from_bytes(info[_TCPI_RTT : _TCPI_RTT + 4], sys.byteorder)
    if not (peer.is_loopback or peer == local or 0 < rtt_us <= LOCAL_MAX_RTT_US):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    except OSError:
        return False
    return True


async def _send_on_thread(
    transport: asyncio.BaseTransport,
    f: BinaryIO,
    offset: int,
    count: int,
    timeout_s: float,
    progress: _Progress,
    st: State,
) -> None:
    """A blob body from a thread of its own, on a duplicate of the socket.

    While at most ``COPY_MAX_BODIES`` bodies are in flight, each piece is read into one
    reused buffer and written to the socket while still in cache, so a receiver on this host
    copies it out of the socket while it is too (``sendfile``'s page-cache pages reach it
    cold: skopeo pulling 300 MiB in three parallel layers used 1.15 CPU-s against 1.27 with
    ``sendfile``, for 0.06 CPU-s more here; distribution 2.8 copies through a 32 KiB buffer).
    To such a receiver the socket's send buffer is bounded (:func:`bound_local_send_buffer`),
    so no more than it holds is queued ahead of the receiver's copy. With more bodies in
    flight the server's CPU is the limit, and the rest goes with ``sendfile`` (nothing copied
    here).
    Either way the event loop is free: no per-piece allocation, hand-over or wake-up there,
    the GIL released in every system call. The socket stays non-blocking: a full send buffer
    waits in ``poll``, and a client that reads nothing for ``timeout_s`` is treated as gone.
    """
    sock = plain_socket(transport)
    assert sock is not None
    if st.blob_bodies_in_flight <= COPY_MAX_BODIES:
        bound_local_send_buffer(sock)
    fd = os.dup(sock.fileno())
    stop = threading.Event()
    src = f.fileno()

    def wait_for_room(poller: select.poll) -> None:
        if not poller.poll(int(timeout_s * 1000)):
            raise ConnectionResetError("the client stopped reading")

    def push() -> None:
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        view = memoryview(bytearray(_SEND_BUFFER))
        while progress.done < count and not stop.is_set():
            left = count - progress.done
            if st.blob_bodies_in_flight > COPY_MAX_BODIES:
                try:
                    n = os.sendfile(fd, src, offset + progress.done, left)
                except BlockingIOError:
                    wait_for_room(poller)
                    continue
                if n == 0:
                    raise ConnectionResetError("the file ended early")
                progress.done += n
                continue
            n = os.preadv(src, [view[: min(_SEND_BUFFER, left)]], offset + progress.done)
            if n == 0:
                raise ConnectionResetError("the file ended early")
            piece = view[:n]
            while piece and not stop.is_set():
                try:
                    written = os.write(fd, piece)
                except BlockingIOError:
                    wait_for_room(poller)
                    continue
                piece = piece[written:]
                progress.done += written  # counted per write: a cut mid-piece logs the truth

    work = run_on_own_thread(push, "fleetkit-blob-send")
    try:
        await asyncio.shield(work)
    except asyncio.CancelledError:
        stop.set()  # the thread ends after its current (non-blocking) write
        try:
            await work
        except Exception:  # noqa: BLE001 - the cancellation is what matters now
            pass
        raise
    finally:
        os.close(fd)


def plain_socket(transport: asyncio.BaseTransport) -> socket.socket | None:
    """The connection's socket when the bytes go to it as they are (no TLS)."""
    if transport.get_extra_info("ssl_object") is not None:
        return None
    sock: socket.socket | None = transport.get_extra_info("socket")
    return sock


async def _copy_body(
    request: web.Request,
    resp: web.StreamResponse,
    f: BinaryIO,
    length: int,
    st: State,
    stop_when_shared: bool,
) -> int:
    """Send up to ``length`` bytes of ``f`` through the response in ``_CHUNK`` pieces.

    The path of bodies that cannot go from a thread (TLS, S3, bytes queued on the transport;
    see :func:`_send_on_thread` for why a copy while few and ``sendfile`` beyond). With
    ``stop_when_shared`` this returns early (the bytes sent so far) once more than
    ``COPY_MAX_BODIES`` are in flight, and the caller sends the rest with ``sendfile``. Local
    reads are from the page cache and short, so they stay on the loop.
    """
    sent = 0
    while sent < length:
        if stop_when_shared and st.blob_bodies_in_flight > COPY_MAX_BODIES:
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
