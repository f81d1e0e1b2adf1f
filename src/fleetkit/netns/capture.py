"""Packet capture inside a target's network namespace: AF_PACKET + libpcap-compiled BPF.

The filter expression is compiled by libpcap's own compiler (``pcap_compile`` on a
``pcap_open_dead(DLT_EN10MB)`` handle, optimised, as tcpdump does) and attached to the socket
in the kernel with SO_ATTACH_FILTER, so packets that do not match never reach user space.
The socket is created in a short-lived thread that joined the target's network namespace;
the receive loop then runs in the caller's thread (a socket keeps the namespace it was
created in). Like libpcap, the socket first gets a reject-all filter, is bound and drained,
and only then gets the real filter, so no unfiltered packet leaks into the capture. Packets are
read from a TPACKET_V3 ring (mmap, one retired block at a time), as libpcap reads them; where
the kernel refuses the ring, from the socket with recvmsg.

Output: tcpdump-like one-line summaries (as ``tcpdump -n -S``: numeric, absolute sequence
numbers), or a classic pcap file (microsecond timestamps, LINKTYPE_ETHERNET) written to an
unpredictable temporary name (``mkstemp``: O_EXCL|O_NOFOLLOW) and renamed over the final name
when the capture ends (a symlink there is replaced, never followed).
"""

from __future__ import annotations

import errno
import mmap
import os
import select
import socket
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NamedTuple

from fleetkit.netns import _syscalls as sc
from fleetkit.netns.errors import ROOT_HINT, HelperError, PermissionDenied, from_oserror
from fleetkit.netns.namespaces import run_in_netns

__all__ = [
    "CaptureStats",
    "Handle",
    "Packet",
    "PcapWriter",
    "capture",
    "compile_filter",
    "open_capture",
    "packets",
    "read_pcap",
    "summarize",
]

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35
PACKET_OUTGOING = 4
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144
PACKET_VERSION = 10
PACKET_RX_RING = 5
TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
RETIRE_BLOCK_MS = 60
# after a stop request, deliver what the kernel holds for this long at most (a partly filled ring
# block is retired after RETIRE_BLOCK_MS); a sustained flood must not keep the capture running
DRAIN_S = 2 * RETIRE_BLOCK_MS / 1000
RING_BLOCK_BYTES = 1 << 19  # 512 KiB blocks: a few thousand small packets each
DEFAULT_BUFFER_BYTES = 8 << 20  # tcpdump's default is 2 MiB (-B 2048); locked kernel memory
_REJECT_ALL = [(0x06, 0, 0, 0)]  # BPF_RET|BPF_K 0
# tpacket3_hdr (next_offset, sec, nsec, snaplen, len, status, mac; net and hv1 skipped), then
# struct sockaddr_ll at +48: ifindex (+52), hatype (+56), pkttype (+58)
_TP3 = struct.Struct("<IIIIIIH26xiHB")
_BLOCK = struct.Struct("<III")  # tpacket_hdr_v1 at +8: block_status, num_pkts, offset_to_first_pkt
_STATUS = struct.Struct("<I")  # block_status alone: writing TP_STATUS_KERNEL hands a block back
_RECORD = struct.Struct("<IIII")  # pcap record header: ts_sec, ts_usec, incl_len, orig_len


class Packet(NamedTuple):
    ts: float
    ifname: str
    outgoing: bool
    data: bytes
    length: int  # original length on the wire


@dataclass(slots=True)
class CaptureStats:
    captured: int = 0
    received: int = 0  # by filter (kernel tp_packets)
    dropped: int = 0  # by kernel (tp_drops)
    interface: str = ""
    program: list[tuple[int, int, int, int]] = field(default_factory=list)


def compile_filter(expression: str) -> list[tuple[int, int, int, int]]:
    """tcpdump's compiled program for ``expression`` on an Ethernet link (empty: accept all)."""
    try:
        return sc.compile_bpf(expression, LINKTYPE_ETHERNET, SNAPLEN)
    except sc.PcapCompileError as exc:
        from fleetkit.errors import UsageError

        raise UsageError(f"bad filter expression: {exc}", hint="see pcap-filter(7)") from None
    except OSError as exc:
        raise HelperError(
            f"cannot load libpcap: {exc}", hint="apt-get install -y libpcap0.8"
        ) from None


def _default_interface() -> str:
    """tcpdump's choice: the first interface that is up and not loopback."""
    import fcntl

    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _index, name in socket.if_nameindex():
            raw = fcntl.ioctl(probe, 0x8913, struct.pack("16sH14x", name.encode(), 0))
            flags = struct.unpack("16sH14x", raw)[1]
            if flags & 0x1 and not flags & 0x8:  # IFF_UP and not IFF_LOOPBACK
                return name
    finally:
        probe.close()
    raise HelperError(
        "no suitable device found (no interface is up besides loopback)",
        hint="name one with -i IFACE, or -i any",
    )


def _attach(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    blob, keep = sc.sock_fprog(program)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, blob)
    del keep


def _skip_loopback_outgoing(
    program: list[tuple[int, int, int, int]],
) -> list[tuple[int, int, int, int]]:
    """Prefix: drop loopback's outgoing copy in the kernel (libpcap drops it in user space).

    Loopback shows each packet twice to a packet socket; tcpdump keeps the incoming copy.
    Ancillary loads (SKF_AD_OFF + SKF_AD_PKTTYPE / SKF_AD_IFINDEX); the original program's jumps
    are relative, so it runs unchanged after the prefix. lo is ifindex 1 in every namespace.
    """
    ld_w_abs, jeq_k, ret_k = 0x20, 0x15, 0x06
    skf_ad_off = 0xFFFFF000
    return [
        (ld_w_abs, 0, 0, skf_ad_off + 4),  # A = pkttype
        (jeq_k, 0, 3, PACKET_OUTGOING),  # outgoing? else skip to the original program
        (ld_w_abs, 0, 0, skf_ad_off + 8),  # A = ifindex
        (jeq_k, 0, 1, 1),  # lo?
        (ret_k, 0, 0, 0),  # drop
        *program,
    ]


def _drain(sock: socket.socket) -> None:
    sock.setblocking(False)
    try:
        while True:
            sock.recv(65536)
    except (BlockingIOError, InterruptedError):
        pass
    finally:
        sock.setblocking(True)


class Handle:
    """An open capture: the packet socket, its TPACKET_V3 ring (or None), ifindex names."""

    def __init__(self, sock: socket.socket, interface: str, names: dict[int, str]) -> None:
        self.sock = sock
        self.interface = interface
        self.names = names
        self.ring: mmap.mmap | None = None
        self.block_size = 0
        self.block_nr = 0
        self.block = 0  # next block to read

    def setup_ring(self, buffer_bytes: int) -> bool:
        """TPACKET_V3 ring as libpcap uses it; False (socket reads) when the kernel says no."""
        block_size = RING_BLOCK_BYTES
        block_nr = max(4, buffer_bytes // block_size)
        frame_size = 1 << 11
        req = struct.pack(
            "7I",
            block_size,
            block_nr,
            frame_size,
            block_size * block_nr // frame_size,
            RETIRE_BLOCK_MS,
            0,
            0,
        )
        try:
            self.sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            self.sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            self.ring = mmap.mmap(
                self.sock.fileno(),
                block_size * block_nr,
                mmap.MAP_SHARED,
                mmap.PROT_READ | mmap.PROT_WRITE,
            )
        except OSError:
            return False
        self.block_size, self.block_nr = block_size, block_nr
        return True

    def close(self) -> None:
        if self.ring is not None:
            self.ring.close()
            self.ring = None
        self.sock.close()


def open_capture(
    interface: str | None,
    program: list[tuple[int, int, int, int]],
    buffer_bytes: int = DEFAULT_BUFFER_BYTES,
    ring: bool = True,
) -> Handle:
    """Create, bind and filter an AF_PACKET socket in the *current* thread's namespace."""
    if interface is None:
        interface = _default_interface()
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    except PermissionError:
        raise PermissionDenied(
            "cannot open a packet socket: Operation not permitted (needs CAP_NET_RAW)",
            hint=ROOT_HINT,
        ) from None
    handle = Handle(sock, interface, dict(socket.if_nameindex()))
    try:
        _attach(sock, _REJECT_ALL)
        if interface != "any":
            try:
                sock.bind((interface, ETH_P_ALL))
            except OSError as exc:
                if exc.errno == errno.ENODEV:
                    names = ", ".join(handle.names.values())
                    raise HelperError(
                        f"{interface}: No such device exists",
                        hint=f"interfaces in the target's namespace: {names}, or -i any",
                    ) from None
                raise
        _drain(sock)
        if not (ring and handle.setup_ring(buffer_bytes)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_bytes)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            _drain(sock)
        _attach(sock, _skip_loopback_outgoing(program))
    except BaseException:
        handle.close()
        raise
    return handle


def _stats(sock: socket.socket) -> tuple[int, int]:
    """PACKET_STATISTICS: (received by filter, dropped by kernel) since the last call."""
    raw = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
    packets, drops = struct.unpack_from("II", raw)
    return packets, drops


def packets(
    handle: Handle,
    stats: CaptureStats,
    count: int | None = None,
    duration_s: float | None = None,
    stop: Callable[[], bool] | None = None,
    idle: Callable[[], None] | None = None,
) -> Iterator[Packet]:
    """Yield matching packets until ``count`` packets, ``duration_s`` or ``stop()``.

    ``idle()`` is called whenever nothing is waiting (the pcap writer flushes then). After
    ``stop()`` what the kernel already holds is still delivered for up to ``DRAIN_S`` (so a
    sustained flood cannot keep the capture alive), then the iteration ends.
    """
    source = _ring_batches(handle) if handle.ring is not None else _socket_batches(handle)
    deadline = None if duration_s is None else time.monotonic() + duration_s
    drain_until: float | None = None
    try:
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if drain_until is None and stop is not None and stop():
                drain_until = now + DRAIN_S
            elif drain_until is not None and now >= drain_until:
                break
            batch = next(source)
            if not batch:
                if drain_until is not None and (handle.ring is None or now >= drain_until):
                    break  # the socket queue is empty, or the drain window is over
                if idle is not None and drain_until is None:
                    idle()
                timeout = 0.25 if drain_until is None else max(drain_until - now, 0) / 4
                if deadline is not None:
                    timeout = max(min(timeout, deadline - now), 0)
                select.select([handle.sock], [], [], timeout)
                continue
            for packet in batch:
                stats.captured += 1
                yield packet
                if count is not None and stats.captured >= count:
                    return
    finally:
        received, dropped = _stats(handle.sock)
        stats.received += received
        stats.dropped += dropped


def _keep(hatype: int, pkttype: int) -> bool:
    if hatype not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
        return False  # not Ethernet-framed: outside LINKTYPE_ETHERNET
    # loopback shows each packet twice; libpcap keeps the incoming copy (the kernel filter
    # prefix already drops it; this covers kernels without ancillary loads)
    return not (pkttype == PACKET_OUTGOING and hatype == ARPHRD_LOOPBACK)


def _socket_batches(handle: Handle) -> Iterator[list[Packet]]:
    """recvmsg() fallback: one packet per batch, [] when nothing is queued."""
    sock = handle.sock
    ancbuf = socket.CMSG_SPACE(16)
    while True:
        try:
            data, anc, _flags, addr = sock.recvmsg(SNAPLEN, ancbuf, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            yield []
            continue
        ifname, _proto, pkttype, hatype = addr[0], addr[1], addr[2], addr[3]
        if not _keep(hatype, pkttype):
            continue
        ts = time.time()
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                sec, nsec = struct.unpack("qq", value[:16])
                ts = sec + nsec / 1e9
        yield [Packet(ts, ifname, pkttype == PACKET_OUTGOING, data, len(data))]


def _ring_batches(handle: Handle) -> Iterator[list[Packet]]:
    """TPACKET_V3: one retired block per batch, [] when the next block is still the kernel's.

    Block descriptor: version, offset_to_priv, then tpacket_hdr_v1 (block_status at +8,
    num_pkts +12, offset_to_first_pkt +16). Packet header: see ``_TP3``.
    """
    ring = handle.ring
    assert ring is not None
    unpack_tp3 = _TP3.unpack_from
    unpack_block = _BLOCK.unpack_from
    names = handle.names
    while True:
        base = handle.block * handle.block_size
        status, num, first = unpack_block(ring, base + 8)
        if not status & TP_STATUS_USER:
            yield []
            continue
        batch: list[Packet] = []
        offset = base + first
        for _ in range(num):
            next_off, sec, nsec, snaplen, length, _st, mac, ifindex, hatype, pkttype = unpack_tp3(
                ring, offset
            )
            if hatype == ARPHRD_ETHER or (hatype == ARPHRD_LOOPBACK and pkttype != PACKET_OUTGOING):
                start = offset + mac
                batch.append(
                    Packet(
                        sec + (nsec // 1000) * 1e-6,  # libpcap's microseconds: truncated
                        names.get(ifindex) or f"if{ifindex}",
                        pkttype == PACKET_OUTGOING,
                        ring[start : start + snaplen],
                        length,
                    )
                )
            offset += next_off
        _STATUS.pack_into(ring, base + 8, TP_STATUS_KERNEL)  # hand the block back
        handle.block = (handle.block + 1) % handle.block_nr
        yield batch


def _block_to_pcap(view: memoryview, base: int, out: bytearray, limit: int) -> int:
    """Append one retired block's packets to ``out`` as pcap records; how many (<= limit).

    The per-packet work is one header unpack, one record pack and one copy of the frame out of
    the ring (no per-packet objects beyond the header tuple). Timestamps are truncated to
    microseconds, as libpcap does for a microsecond pcap.
    """
    _status, num, first = _BLOCK.unpack_from(view, base + 8)
    unpack_tp3 = _TP3.unpack_from
    pack_record = _RECORD.pack
    offset = base + first
    kept = 0
    for _ in range(num):
        next_off, sec, nsec, snaplen, length, _st, mac, _ifindex, hatype, pkttype = unpack_tp3(
            view, offset
        )
        if hatype == ARPHRD_ETHER or (hatype == ARPHRD_LOOPBACK and pkttype != PACKET_OUTGOING):
            start = offset + mac
            out += pack_record(sec, nsec // 1000, snaplen, length)
            out += view[start : start + snaplen]
            kept += 1
            if kept >= limit:
                break
        offset += next_off
    return kept


def _ring_to_pcap(
    handle: Handle,
    stats: CaptureStats,
    write: Callable[[bytearray], object],
    count: int | None,
    duration_s: float | None,
    stop: Callable[[], bool] | None,
) -> None:
    """The ``-w`` fast path: every retired ring block becomes one write of pcap records."""
    ring = handle.ring
    assert ring is not None
    view = memoryview(ring)
    sock = handle.sock
    block_size, block_nr = handle.block_size, handle.block_nr
    buf = bytearray()
    deadline = None if duration_s is None else time.monotonic() + duration_s
    drain_until: float | None = None
    limit = count if count is not None else 1 << 62
    try:
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if drain_until is None and stop is not None and stop():
                drain_until = now + DRAIN_S
            elif drain_until is not None and now >= drain_until:
                break
            base = handle.block * block_size
            if not view[base + 8] & TP_STATUS_USER:  # block_status, little-endian low byte
                if drain_until is not None and now >= drain_until:
                    break
                timeout = 0.25 if drain_until is None else max(drain_until - now, 0) / 4
                if deadline is not None:
                    timeout = max(min(timeout, deadline - now), 0)
                select.select([sock], [], [], timeout)
                continue
            kept = _block_to_pcap(view, base, buf, limit - stats.captured)
            _STATUS.pack_into(view, base + 8, TP_STATUS_KERNEL)  # hand the block back
            handle.block = (handle.block + 1) % block_nr
            stats.captured += kept
            if buf:
                write(buf)
                del buf[:]
            if stats.captured >= limit:
                break
    finally:
        view.release()
        received, dropped = _stats(sock)
        stats.received += received
        stats.dropped += dropped


def _pcap_header(linktype: int = LINKTYPE_ETHERNET) -> bytes:
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, linktype)


class PcapWriter:
    """Classic pcap (magic a1b2c3d4, v2.4, microseconds), as ``tcpdump -w`` writes it."""

    def __init__(self, stream: BinaryIO, linktype: int = LINKTYPE_ETHERNET) -> None:
        self.stream = stream
        stream.write(_pcap_header(linktype))

    def write(self, packet: Packet) -> None:
        ts = packet.ts
        sec = int(ts)
        usec = int((ts - sec) * 1_000_000 + 0.5)
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        data = packet.data
        self.stream.write(_RECORD.pack(sec, usec, len(data), packet.length) + data)


def capture(
    pid: int | None,
    interface: str | None,
    expression: str,
    count: int | None,
    write_path: str | None,
    out: Callable[[str], None],
    log: Callable[[str], None],
    duration_s: float | None = None,
    stop: Callable[[], bool] | None = None,
    flush: Callable[[], None] | None = None,
    buffer_bytes: int = DEFAULT_BUFFER_BYTES,
) -> CaptureStats:
    """Capture in the network namespace of ``pid`` (None: ours); print or write pcap.

    ``out`` may buffer: ``flush`` is called whenever the kernel has nothing waiting (and at the
    end), so summaries appear as soon as traffic pauses without a write per packet under load.
    """
    program = compile_filter(expression)
    handle = run_in_netns(pid, lambda: open_capture(interface, program, buffer_bytes))
    name = handle.interface
    stats = CaptureStats(interface=name, program=program)
    if write_path is None:
        log("verbose output suppressed, use -v[v]... for full protocol decode")
    log(f"listening on {name}, link-type EN10MB (Ethernet), snapshot length {SNAPLEN} bytes")
    try:
        if write_path is not None:
            _write_pcap(handle, stats, write_path, count, duration_s, stop)
        else:
            show_interface = name == "any"
            try:
                for packet in packets(handle, stats, count, duration_s, stop, flush):
                    out(summarize(packet, show_interface))
            finally:
                if flush is not None:
                    flush()
    except OSError as exc:
        raise from_oserror(exc, "capture failed") from None
    finally:
        handle.close()
    return stats


def _write_pcap(
    handle: Handle,
    stats: CaptureStats,
    path: str,
    count: int | None,
    duration_s: float | None,
    stop: Callable[[], bool] | None,
) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        # mkstemp: an unpredictable name opened O_CREAT|O_EXCL|O_NOFOLLOW, so a symlink
        # planted in the directory is never written through (tcpdump -w often runs as root)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory
        )
    except OSError as exc:
        raise HelperError(
            f"cannot write {path}: {exc.strerror}",
            hint="check that the directory exists and is writable",
        ) from None
    umask = os.umask(0o022)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # what open(path, "wb") would have created
    stream = os.fdopen(fd, "wb")  # closed by the with-block below
    try:
        with stream:
            try:
                if handle.ring is not None:
                    # whole ring blocks, one write each, flushed: what is captured is on disk
                    stream.write(_pcap_header())

                    def write(block: bytearray) -> None:
                        stream.write(block)
                        stream.flush()

                    _ring_to_pcap(handle, stats, write, count, duration_s, stop)
                else:
                    writer = PcapWriter(stream)
                    for packet in packets(handle, stats, count, duration_s, stop, stream.flush):
                        writer.write(packet)
            finally:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(tmp, path)  # rename(2) replaces a symlink at path, never follows it
    except BaseException:
        if os.path.exists(tmp):
            # an interrupted capture is still a complete pcap up to the last packet
            os.replace(tmp, path)
        raise


# --- one-line summaries ------------------------------------------------------------------

_TCP_FLAGS = (
    ("F", 0x01),
    ("S", 0x02),
    ("R", 0x04),
    ("P", 0x08),
    (".", 0x10),
    ("U", 0x20),
    ("E", 0x40),
    ("W", 0x80),
)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _tcp_options(raw: bytes) -> str:
    out: list[str] = []
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind == 0:
            out.append("eol")
            break
        if kind == 1:
            out.append("nop")
            i += 1
            continue
        if i + 1 >= len(raw) or raw[i + 1] < 2:
            out.append("bad opt")
            break
        size = raw[i + 1]
        body = raw[i + 2 : i + size]
        if kind == 2 and len(body) == 2:
            out.append(f"mss {struct.unpack('!H', body)[0]}")
        elif kind == 3 and len(body) == 1:
            out.append(f"wscale {body[0]}")
        elif kind == 4:
            out.append("sackOK")
        elif kind == 8 and len(body) == 8:
            val, ecr = struct.unpack("!II", body)
            out.append(f"TS val {val} ecr {ecr}")
        elif kind == 5:
            edges = [struct.unpack("!II", body[j : j + 8]) for j in range(0, len(body) - 7, 8)]
            out.append("sack " + str(len(edges)) + " " + " ".join(f"{{{a}:{b}}}" for a, b in edges))
        else:
            out.append(f"unknown-{kind}")
        i += size
    return ",".join(out)


_DNS_TYPES = {
    1: "A",
    2: "NS",
    5: "CNAME",
    6: "SOA",
    12: "PTR",
    15: "MX",
    16: "TXT",
    28: "AAAA",
    33: "SRV",
    41: "OPT",
    64: "SVCB",
    65: "HTTPS",
    255: "ANY",
}
_DNS_RCODES = ("", " FormErr", " ServFail", " NXDomain", " NotImp", " Refused")


def _dns_name(msg: bytes, offset: int) -> tuple[str, int]:
    """A (possibly compressed) name at ``offset``: (dotted name with trailing dot, next offset)."""
    labels: list[str] = []
    end = -1
    for _ in range(128):
        size = msg[offset]
        if size & 0xC0 == 0xC0:
            if end < 0:
                end = offset + 2
            offset = ((size & 0x3F) << 8) | msg[offset + 1]
            continue
        if size == 0:
            offset += 1
            break
        labels.append(msg[offset + 1 : offset + 1 + size].decode("ascii", "backslashreplace"))
        offset += 1 + size
    return (".".join(labels) + "." if labels else "."), (end if end >= 0 else offset)


def _dns_rdata(msg: bytes, rtype: int, start: int, size: int) -> str:
    data = msg[start : start + size]
    if rtype == 1 and size == 4:
        return " " + socket.inet_ntoa(data)
    if rtype == 28 and size == 16:
        return " " + socket.inet_ntop(socket.AF_INET6, data)
    if rtype in (2, 5, 12):
        return " " + _dns_name(msg, start)[0]
    if rtype == 15:
        return f" {_dns_name(msg, start + 2)[0]} {struct.unpack('!H', data[:2])[0]}"
    if rtype == 16:
        parts, i = [], 0
        while i < len(data):
            parts.append('"' + data[i + 1 : i + 1 + data[i]].decode("ascii", "replace") + '"')
            i += 1 + data[i]
        return " " + " ".join(parts)
    if rtype == 33:
        prio, weight, port = struct.unpack("!HHH", data[:6])
        return f" {_dns_name(msg, start + 6)[0]}:{port} {prio} {weight}"
    return ""


def _dns(msg: bytes) -> str:
    """tcpdump's one-line DNS summary (without -v)."""
    ident, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", msg[:12])
    opcode = (flags >> 11) & 0xF
    ops = "" if opcode == 0 else f" op{opcode}"
    offset = 12
    questions = []
    for _ in range(qd):
        name, offset = _dns_name(msg, offset)
        qtype = struct.unpack("!H", msg[offset : offset + 2])[0]
        offset += 4
        questions.append(f"{_DNS_TYPES.get(qtype, f'Type{qtype}')}? {name}")
    if not flags & 0x8000:  # query
        text = f"{ident}{ops}{'+' if flags & 0x0100 else ''}"
        if flags & 0x0010:
            text += "$"
        if qd != 1:
            text += f" [{qd}q]"
        if an:
            text += f" [{an}a]"
        if ns:
            text += f" [{ns}n]"
        if ar:
            text += f" [{ar}au]"
        return text + "".join(" " + q for q in questions) + f" ({len(msg)})"
    rcode = flags & 0xF
    text = (
        f"{ident}{ops}{_DNS_RCODES[rcode] if rcode < len(_DNS_RCODES) else f' Resp{rcode}'}"
        f"{'*' if flags & 0x0400 else ''}{'' if flags & 0x0080 else '-'}"
        f"{'|' if flags & 0x0200 else ''}{'$' if flags & 0x0020 else ''}"
    )
    if qd != 1:
        text += f" [{qd}q]"
    text += f" {an}/{ns}/{ar}"
    records = []
    for _ in range(an):
        _name, offset = _dns_name(msg, offset)
        rtype, _rclass, _ttl, size = struct.unpack("!HHIH", msg[offset : offset + 10])
        offset += 10
        records.append(
            f" {_DNS_TYPES.get(rtype, f'Type{rtype}')}{_dns_rdata(msg, rtype, offset, size)}"
        )
        offset += size
    return text + ",".join(records) + f" ({len(msg)})"


_HTTP_METHODS = (
    b"GET",
    b"PUT",
    b"POST",
    b"HEAD",
    b"DELETE",
    b"OPTIONS",
    b"TRACE",
    b"CONNECT",
    b"PATCH",
)


def _http(payload: bytes) -> str:
    token = payload.split(b" ", 1)[0]
    if token in _HTTP_METHODS or token.startswith(b"HTTP/"):
        line = payload.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
        return ": HTTP: " + line.decode("ascii", "replace")
    return ": HTTP"


def _icmp6(payload: bytes) -> str:
    kind = payload[0]
    if kind in (128, 129) and len(payload) >= 8:
        ident, seq = struct.unpack("!HH", payload[4:8])
        return f"echo {'request' if kind == 128 else 'reply'}, id {ident}, seq {seq}"
    if kind in (135, 136) and len(payload) >= 24:
        target = socket.inet_ntop(socket.AF_INET6, payload[8:24])
        return (
            f"neighbor solicitation, who has {target}"
            if kind == 135
            else f"neighbor advertisement, tgt is {target}"
        )
    if kind == 143 and len(payload) >= 8:
        return (
            f"multicast listener report v2, {struct.unpack('!H', payload[6:8])[0]} group record(s)"
        )
    names = {133: "router solicitation", 134: "router advertisement", 1: "destination unreachable"}
    return names.get(kind, f"type-#{kind}")


def _hbh(payload: bytes, src: str, dst: str, sep: str) -> str:
    size = (payload[1] + 1) * 8
    inner = _transport(payload[0], src, dst, payload[size:], sep)
    head = f"{src} > {dst}: "
    return head + "HBH " + inner[len(head) :] if inner.startswith(head) else inner


def _transport(proto: int, src: str, dst: str, payload: bytes, sep: str) -> str:
    if proto == 6 and len(payload) >= 20:
        sport, dport, seq, ack, off, flags, win = struct.unpack("!HHIIBBH", payload[:16])
        hlen = (off >> 4) * 4
        data_len = max(len(payload) - hlen, 0)
        names = "".join(ch for ch, bit in _TCP_FLAGS if flags & bit)
        text = f"{src}{sep}{sport} > {dst}{sep}{dport}: Flags [{names or 'none'}], "
        if data_len:
            text += f"seq {seq}:{seq + data_len}, "
        elif flags & 0x07:
            text += f"seq {seq}, "
        if flags & 0x10:
            text += f"ack {ack}, "
        text += f"win {win}"
        opts = payload[20:hlen]
        if opts:
            text += f", options [{_tcp_options(opts)}]"
        text += f", length {data_len}"
        if data_len and (sport in (80, 8080) or dport in (80, 8080)):
            text += _http(payload[hlen:])
        return text
    if proto == 17 and len(payload) >= 8:
        sport, dport, ulen = struct.unpack("!HHH", payload[:6])
        if (sport == 53 or dport == 53) and ulen >= 20:
            try:
                return f"{src}{sep}{sport} > {dst}{sep}{dport}: {_dns(payload[8:ulen])}"
            except (IndexError, struct.error, UnicodeError):
                pass
        return f"{src}{sep}{sport} > {dst}{sep}{dport}: UDP, length {max(ulen - 8, 0)}"
    if proto == 1 and len(payload) >= 8:
        icmp_type, code = payload[0], payload[1]
        ident, seq = struct.unpack("!HH", payload[4:8])
        kinds = {0: "echo reply", 8: "echo request"}
        if icmp_type in kinds:
            what = f"ICMP {kinds[icmp_type]}, id {ident}, seq {seq}"
        elif icmp_type == 3:
            what = f"ICMP unreachable (code {code})"
        else:
            what = f"ICMP type {icmp_type} code {code}"
        return f"{src} > {dst}: {what}, length {len(payload)}"
    if proto == 0 and len(payload) >= 8:  # IPv6 hop-by-hop options header
        return _hbh(payload, src, dst, sep)
    if proto == 58 and len(payload) >= 4:
        return f"{src} > {dst}: ICMP6, {_icmp6(payload)}, length {len(payload)}"
    return f"{src} > {dst}: ip-proto-{proto} {len(payload)}"


def read_pcap(stream: BinaryIO) -> Iterator[Packet]:
    """Packets of a classic pcap file (LINKTYPE_ETHERNET; either byte order, us or ns)."""
    header = stream.read(24)
    if len(header) < 24:
        raise HelperError("not a pcap file (too short)", hint="expected a file from tcpdump -w")
    magic = struct.unpack("<I", header[:4])[0]
    formats = {
        0xA1B2C3D4: ("<", 1e-6),
        0xD4C3B2A1: (">", 1e-6),
        0xA1B23C4D: ("<", 1e-9),
        0x4D3CB2A1: (">", 1e-9),
    }
    if magic not in formats:
        raise HelperError(
            "not a classic pcap file (pcapng is not supported)",
            hint="convert with: tcpdump -r FILE -w out.pcap",
        )
    order, unit = formats[magic]
    linktype = struct.unpack(order + "I", header[20:24])[0] & 0x0FFFFFFF
    if linktype != LINKTYPE_ETHERNET:
        raise HelperError(f"unsupported link type {linktype}", hint="only Ethernet (1) captures")
    record = struct.Struct(order + "IIII")
    while True:
        head = stream.read(16)
        if len(head) < 16:
            return
        sec, frac, incl, orig = record.unpack(head)
        yield Packet(sec + frac * unit, "", False, stream.read(incl), orig)


_CLOCK: list[Any] = [None, ""]  # the last second formatted: (second, "HH:MM:SS")


def summarize(packet: Packet, show_interface: bool = False) -> str:
    """One line per packet, as ``tcpdump -n -S`` prints it (common protocols)."""
    sec = int(packet.ts)
    usec = int(round((packet.ts - sec) * 1_000_000))
    if usec >= 1_000_000:
        sec, usec = sec + 1, usec - 1_000_000
    if _CLOCK[0] != sec:  # localtime+strftime once per second, not once per packet
        _CLOCK[0], _CLOCK[1] = sec, time.strftime("%H:%M:%S", time.localtime(sec))
    stamp = f"{_CLOCK[1]}.{usec:06d}"
    prefix = (
        f"{stamp} {packet.ifname} {'Out' if packet.outgoing else 'In '} "
        if show_interface
        else f"{stamp} "
    )
    data = packet.data
    if len(data) < 14:
        return prefix + f"[|ether] length {packet.length}"
    ethertype = data[12] << 8 | data[13]
    body = data[14:]
    if ethertype == 0x8100 and len(body) >= 4:
        ethertype = struct.unpack("!H", body[2:4])[0]
        body = body[4:]
    if ethertype == 0x0800 and len(body) >= 20:
        ihl = (body[0] & 0x0F) * 4
        total = struct.unpack("!H", body[2:4])[0]
        proto = body[9]
        src, dst = (
            socket.inet_ntop(socket.AF_INET, body[12:16]),
            socket.inet_ntop(socket.AF_INET, body[16:20]),
        )
        return prefix + "IP " + _transport(proto, src, dst, body[ihl:total], ".")
    if ethertype == 0x86DD and len(body) >= 40:
        plen = struct.unpack("!H", body[4:6])[0]
        proto = body[6]
        src, dst = (
            socket.inet_ntop(socket.AF_INET6, body[8:24]),
            socket.inet_ntop(socket.AF_INET6, body[24:40]),
        )
        return prefix + "IP6 " + _transport(proto, src, dst, body[40 : 40 + plen], ".")
    if ethertype == 0x0806 and len(body) >= 28:
        op = struct.unpack("!H", body[6:8])[0]
        sha, spa = body[8:14], socket.inet_ntoa(body[14:18])
        tpa = socket.inet_ntoa(body[24:28])
        if op == 1:
            return prefix + f"ARP, Request who-has {tpa} tell {spa}, length {len(body)}"
        if op == 2:
            return prefix + f"ARP, Reply {spa} is-at {_mac(sha)}, length {len(body)}"
        return prefix + f"ARP, op {op}, length {len(body)}"
    return (
        prefix
        + f"{_mac(data[6:12])} > {_mac(data[0:6])}, ethertype 0x{ethertype:04x}, length {packet.length}"
    )
