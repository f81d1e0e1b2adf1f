"""The blob GET send path: the send buffer of a client on this host, slow readers."""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from collections.abc import Iterator

import pytest
import requests

from fleetkit.registry.server import blobs
from tests.registry._server import ThreadServer, thread_server

BLOB = os.urandom(1024 * 1024 + 7)
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    # a sender that waits 5 s in poll without room gives up: a missed wake-up cuts the body
    root = tmp_path_factory.mktemp("blobsend") / "data"
    with thread_server(root=str(root), body_timeout_s=5.0) as server:
        r = requests.post(
            f"{server.url}/v2/r/blobs/uploads/", params={"digest": DIGEST}, data=BLOB, timeout=30
        )
        assert r.status_code == 201, r.text
        yield server


class _FakeSock:
    """What bound_local_send_buffer asks of a socket, with chosen addresses."""

    def __init__(self, family: socket.AddressFamily, local: str, peer: str, rtt_us: int) -> None:
        self.family = family
        self.local = local
        self.peer = peer
        self.rtt_us = rtt_us
        self.set: list[tuple[int, int, int]] = []

    def getsockname(self) -> tuple[str, int]:
        return self.local, 5000

    def getpeername(self) -> tuple[str, int]:
        return self.peer, 40000

    def getsockopt(self, level: int, opt: int, size: int) -> bytes:
        assert (level, opt) == (socket.IPPROTO_TCP, socket.TCP_INFO)
        info = bytearray(size)  # struct tcp_info: tcpi_rtt is the u32 at offset 68
        info[68:72] = self.rtt_us.to_bytes(4, sys.byteorder)
        return bytes(info)

    def setsockopt(self, level: int, opt: int, value: int) -> None:
        self.set.append((level, opt, value))


@pytest.mark.parametrize(
    ("family", "local", "peer", "rtt_us", "bounded"),
    [
        (socket.AF_INET, "127.0.0.1", "127.0.0.1", 500, True),
        (socket.AF_INET, "127.0.0.1", "127.0.0.5", 0, True),
        (socket.AF_INET, "10.1.2.3", "10.1.2.3", 500, True),  # this host's own address
        (socket.AF_INET6, "::1", "::1", 500, True),
        (socket.AF_INET6, "::ffff:127.0.0.1", "::ffff:127.0.0.1", 500, True),
        # another address: by the round trip (a veth to another network namespace: ~20 us)
        (socket.AF_INET, "10.1.2.3", "10.1.2.4", 20, True),
        (socket.AF_INET, "10.1.2.3", "10.1.2.4", 30, True),
        (socket.AF_INET, "10.1.2.3", "10.1.2.4", 31, False),  # a network: autotuned
        (socket.AF_INET, "10.1.2.3", "10.1.2.4", 0, False),  # no round trip measured
        (socket.AF_INET6, "fd00::1", "fd00::2", 400, False),
        (socket.AF_INET6, "::ffff:10.1.2.3", "::ffff:10.1.2.9", 5000, False),
    ],
)
def test_only_a_peer_on_this_host_gets_the_bounded_send_buffer(
    family: socket.AddressFamily, local: str, peer: str, rtt_us: int, bounded: bool
) -> None:
    assert blobs.LOCAL_MAX_RTT_US == 30
    sock = _FakeSock(family, local, peer, rtt_us)
    assert blobs.bound_local_send_buffer(sock) is bounded  # type: ignore[arg-type]
    want = [(socket.SOL_SOCKET, socket.SO_SNDBUF, blobs.LOCAL_SEND_BUFFER)] if bounded else []
    assert sock.set == want


def test_the_bound_is_set_on_a_real_loopback_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        with client, conn:
            autotuned = conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            monkeypatch.setattr(blobs, "LOCAL_SEND_BUFFER", None)
            assert not blobs.bound_local_send_buffer(conn)
            assert conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == autotuned
            monkeypatch.undo()
            assert blobs.bound_local_send_buffer(conn)
            # Linux doubles the value for its bookkeeping
            size = blobs.LOCAL_SEND_BUFFER
            assert size is not None
            assert conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * size
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with sock:
        assert not blobs.bound_local_send_buffer(sock)  # not TCP


def _get_raw(server: ThreadServer) -> socket.socket:
    """A GET of the blob on a socket with a tiny receive window (set before connecting)."""
    host, port = server.host.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect((host, int(port)))
    sock.sendall(f"GET /v2/r/blobs/{DIGEST} HTTP/1.1\r\nHost: {server.host}\r\n\r\n".encode())
    return sock


def _read_head(sock: socket.socket) -> bytes:
    """Read the response's status and headers; return the body bytes that came with them."""
    data = b""
    while b"\r\n\r\n" not in data:
        got = sock.recv(512)
        assert got, data
        data += got
    status, body = data.split(b"\r\n\r\n", 1)
    assert status.startswith(b"HTTP/1.1 200"), status
    return body


def _read(sock: socket.socket, count: int) -> bytes:
    """Read ``count`` body bytes, 512 at a time."""
    body = b""
    while len(body) < count:
        got = sock.recv(min(512, count - len(body)))
        assert got, f"the body was cut after {len(body)} more bytes"
        body += got
    return body


@pytest.mark.parametrize("bound", [True, False])
@pytest.mark.parametrize("copy_max", [None, 0])
def test_a_slow_reader_never_stalls_the_sender(
    srv: ThreadServer, bound: bool, copy_max: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client with a 4 KiB receive window reading 512 bytes at a time, parked mid-body while
    another GET runs whole, then reading on: the sender waits for room in ``poll`` over and
    over (copied by default, ``sendfile`` with ``COPY_MAX_BODIES`` 0; with the bounded send
    buffer and with autotuning) and every wake-up comes, or its 5 s body timeout would cut the
    body short."""
    if copy_max is not None:
        monkeypatch.setattr(blobs, "COPY_MAX_BODIES", copy_max)
    if not bound:
        monkeypatch.setattr(blobs, "LOCAL_SEND_BUFFER", None)
    calls: list[bool] = []
    real = blobs.bound_local_send_buffer

    def spy(sock: socket.socket) -> bool:
        calls.append(real(sock))
        return calls[-1]

    monkeypatch.setattr(blobs, "bound_local_send_buffer", spy)
    disconnects = srv.state.metrics.client_disconnects
    with _get_raw(srv) as slow:
        first = _read_head(slow)
        first += _read(slow, 100_000 - len(first))
        # parked: the sender fills what the window and its buffer hold, then waits in poll
        assert requests.get(f"{srv.url}/v2/r/blobs/{DIGEST}", timeout=30).content == BLOB
        rest = _read(slow, len(BLOB) - len(first))
    assert first + rest == BLOB
    assert srv.state.metrics.client_disconnects == disconnects
    # the bound applies to copied bodies to a peer on this host (here: loopback)
    assert calls == ([bound, bound] if copy_max is None else [])
