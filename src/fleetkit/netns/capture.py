"""Packet capture inside a target's network namespace: AF_PACKET + libpcap-compiled BPF.

The filter expression is compiled by libpcap's own compiler (``pcap_compile`` on a
``pcap_open_dead`` handle of the capture's link type, optimised, as tcpdump does) and attached
to the socket in the kernel with SO_ATTACH_FILTER, so packets that do not match never reach user
space. The socket is created in a short-lived thread that joined the target's network
namespace; the receive loop then runs in the caller's thread (a socket keeps the namespace it
was created in). Like libpcap, the socket first gets a reject-all filter, is bound and drained,
and only then gets the real filter, so no unfiltered packet leaks into the capture. One
interface is captured with its Ethernet header (EN10MB); ``any`` cooked, as tcpdump 4.99 does:
a SOCK_DGRAM socket, the filter compiled for LINUX_SLL2 and rewritten for the kernel as libpcap
rewrites it, each packet recorded behind an SLL2 header built from the kernel's sockaddr_ll.

Packets are read from a TPACKET_V3 ring (mmap), as libpcap reads them; where the kernel refuses
the ring, from the socket with recvmsg. Either way they become batches of pcap records (one
retired ring block each), which ``-w`` writes as they are and the text path formats a batch at
a time (:meth:`fleetkit.netns.dissect.Printer.format_records`, also what ``-r FILE`` runs).
A pcap file (microsecond time stamps) is written to an unpredictable temporary name
(``mkstemp``: O_EXCL|O_NOFOLLOW) and renamed over the final name when the capture ends (a
symlink there is replaced, never followed).
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
from typing import BinaryIO, NamedTuple

from fleetkit.netns import _syscalls as sc
from fleetkit.netns.dissect import (
    LINKTYPE_LINUX_SLL2,
    SLL2_LEN,
    Printer,
    PrintOptions,
    linktype_banner,
    sll2_header,
)
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
    "records_of",
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
SKF_AD_OFF = 0xFFFFF000  # -0x1000 as a load's unsigned offset: the kernel's ancillary data
SKF_AD_PROTOCOL, SKF_AD_PKTTYPE, SKF_AD_IFINDEX = 0, 4, 8
_BLOCK = struct.Struct("<III")  # tpacket_hdr_v1 at +8: block_status, num_pkts, offset_to_first_pkt
_STATUS = struct.Struct("<I")  # block_status alone: writing TP_STATUS_KERNEL hands a block back
_RECORD = struct.Struct("<IIII")  # pcap record header: ts_sec, ts_usec, incl_len, orig_len
_HEAD = struct.Struct("<IIIII4xH")  # tpacket3_hdr: next_offset, sec, nsec, snaplen, len, mac
# struct sockaddr_ll after the tpacket3_hdr (+48): family, protocol (network order), ifindex,
# hatype, then pkttype, halen and 8 address bytes, which the LINUX_SLL2 header carries as they are
_SLL = struct.Struct("=2x2siH10s")
_SLL2 = struct.Struct(">2s2xiH10s")  # protocol, reserved, ifindex, hatype, pkttype+halen+addr


class Packet(NamedTuple):
    """One captured frame (Ethernet-framed) and where it was seen."""

    ts: float
    ifname: str
    outgoing: bool
    data: bytes
    length: int  # original length on the wire
    ifindex: int = 0
    pkttype: int = 0  # sockaddr_ll: 0 host, 1 broadcast, 2 multicast, 3 other host, 4 outgoing
    hatype: int = ARPHRD_ETHER


def to_sll2(packet: Packet) -> tuple[bytes, int]:
    """The packet as ``-i any`` records it (LINUX_SLL2 header, no Ethernet header); wire length."""
    data = packet.data
    protocol = data[12] << 8 | data[13] if len(data) >= 14 else 0
    header = sll2_header(protocol, packet.ifindex, packet.hatype, packet.pkttype, data[6:12])
    return header + data[14:], packet.length - 14 + SLL2_LEN


@dataclass(slots=True)
class CaptureStats:
    captured: int = 0
    received: int = 0  # by filter (kernel tp_packets)
    dropped: int = 0  # by kernel (tp_drops)
    interface: str = ""
    program: list[tuple[int, int, int, int]] = field(default_factory=list)


def compile_filter(
    expression: str, snaplen: int = SNAPLEN, linktype: int = LINKTYPE_ETHERNET
) -> list[tuple[int, int, int, int]]:
    """tcpdump's compiled program for ``expression`` (empty: accept all, up to ``snaplen``)."""
    try:
        return sc.compile_bpf(expression, linktype, snaplen)
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
    """An open capture: the packet socket, its TPACKET_V3 ring (or None), ifindex names.

    ``cooked``: the socket is ``any``'s SOCK_DGRAM one (no link header; each record gets the
    LINUX_SLL2 header built from the kernel's sockaddr_ll, as libpcap builds it). ``userland``:
    the filter the kernel could not run (a cooked program reading SLL2 header bytes other than
    the protocol, interface index and packet type), run here on each record, as libpcap does.
    """

    def __init__(
        self,
        sock: socket.socket,
        interface: str,
        names: dict[int, str],
        cooked: bool = False,
        snaplen: int = SNAPLEN,
    ) -> None:
        self.sock = sock
        self.interface = interface
        self.names = names
        self.cooked = cooked
        self.snaplen = snaplen
        self.userland: Callable[[bytes, int], bool] | None = None
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


def _cooked_program(
    program: list[tuple[int, int, int, int]],
) -> list[tuple[int, int, int, int]] | None:
    """An SLL2 program rewritten for a cooked socket, as libpcap's fix_offset rewrites it.

    The kernel sees a cooked packet from its network header: loads past the 20-byte SLL2 header
    move back by 20, loads of its protocol, interface index and packet type become ancillary
    loads. None when the program reads any other header byte: the filter then runs in user
    space (libpcap's ``filter_in_userland``).
    """
    fixed = []
    for code, jt, jf, k in program:
        # BPF_LD / BPF_LDX with BPF_ABS, BPF_IND or BPF_MSH: a load from the packet
        if code & 0x06 == 0 and code & 0xE0 in (0x20, 0x40, 0xA0) and k < SKF_AD_OFF:
            if k >= SLL2_LEN:
                k -= SLL2_LEN
            elif k == 0:
                k = SKF_AD_OFF + SKF_AD_PROTOCOL
            elif k == 4:
                k = SKF_AD_OFF + SKF_AD_IFINDEX
            elif k == 10:
                k = SKF_AD_OFF + SKF_AD_PKTTYPE
            else:
                return None
        fixed.append((code, jt, jf, k))
    return fixed


def _hardware_type(sock: socket.socket, interface: str) -> int:
    """The interface's ARPHRD_* type (SIOCGIFHWADDR), -1 when the kernel does not say."""
    import fcntl

    try:
        raw = fcntl.ioctl(sock, 0x8927, struct.pack("16s16x", interface.encode()[:15]))
    except OSError:
        return -1
    return int(struct.unpack_from("=H", raw, 16)[0])


def open_capture(
    interface: str | None,
    program: list[tuple[int, int, int, int]],
    buffer_bytes: int = DEFAULT_BUFFER_BYTES,
    ring: bool = True,
    shared_stamps: bool = False,
    snaplen: int = SNAPLEN,
) -> Handle:
    """Create, bind and filter an AF_PACKET socket in the *current* thread's namespace.

    ``any`` is captured cooked (SOCK_DGRAM, records with LINUX_SLL2 headers), as tcpdump 4.99
    captures it: ``program`` must then be compiled for LINKTYPE_LINUX_SLL2. One interface is
    captured with its Ethernet header (``program`` compiled for EN10MB).
    """
    if interface is None:
        interface = _default_interface()
    cooked = interface == "any"
    kind = socket.SOCK_DGRAM if cooked else socket.SOCK_RAW
    try:
        sock = socket.socket(socket.AF_PACKET, kind, socket.htons(ETH_P_ALL))
    except PermissionError:
        raise PermissionDenied(
            "cannot open a packet socket: Operation not permitted (needs CAP_NET_RAW)",
            hint=ROOT_HINT,
        ) from None
    handle = Handle(sock, interface, dict(socket.if_nameindex()), cooked, snaplen)
    try:
        _attach(sock, _REJECT_ALL)
        if not cooked:
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
            hatype = _hardware_type(sock, interface)
            if hatype not in (ARPHRD_ETHER, ARPHRD_LOOPBACK, -1):
                raise HelperError(
                    f"{interface}: link type ARPHRD {hatype} is not Ethernet-framed; fleetkit "
                    "captures one interface only as Ethernet (EN10MB)",
                    hint=f"capture it with -i any (LINUX_SLL2), e.g. -i any 'ifindex "
                    f"{socket.if_nametoindex(interface)}'",
                )
        _drain(sock)
        if shared_stamps:
            # kernel time stamps taken once per packet (at receive / transmit) rather than when
            # each packet socket copies it: every capture of a packet, ours and tcpdump's, then
            # prints the same time. It costs the sender a clock read per packet, so only the
            # tests that compare live lines with tcpdump's ask for it.
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if not (ring and handle.setup_ring(buffer_bytes)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_bytes)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            _drain(sock)
        kernel = _cooked_program(program) if cooked else program
        if kernel is None:  # libpcap's filter_in_userland: every packet comes up, cut
            handle.userland = sc.offline_filter(program)
            kernel = [(0x06, 0, 0, snaplen)]
        _attach(sock, _skip_loopback_outgoing(kernel))
    except BaseException:
        handle.close()
        raise
    return handle


def _stats(sock: socket.socket) -> tuple[int, int]:
    """PACKET_STATISTICS: (received by filter, dropped by kernel) since the last call."""
    raw = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
    packets, drops = struct.unpack_from("II", raw)
    return packets, drops


def _block_to_pcap(
    view: memoryview,
    base: int,
    out: bytearray,
    limit: int,
    cooked: bool = False,
    snaplen: int = SNAPLEN,
    userland: Callable[[bytes, int], bool] | None = None,
) -> int:
    """Append one retired ring block's packets to ``out`` as pcap records; how many (<= limit).

    The one reader of ring blocks (text, ``-w``, rotation). Per packet: one header unpack, one
    record pack and one copy of the frame out of the ring; no per-packet objects. Time stamps
    are truncated to microseconds, as libpcap does. On one interface the frame is recorded as
    it is (loopback's outgoing copy was dropped by the kernel filter); ``cooked`` (``any``)
    records the LINUX_SLL2 header built from the ring's sockaddr_ll, then the packet, cut at
    ``snaplen`` with the header counted (libpcap's caplen), filtered by ``userland`` if set.
    """
    _status, num, first = _BLOCK.unpack_from(view, base + 8)
    pack_record = _RECORD.pack
    unpack_head = _HEAD.unpack_from
    offset = base + first
    if not cooked:
        todo: int = min(num, limit)
        for _ in range(todo):
            next_off, sec, nsec, caplen, length, mac = unpack_head(view, offset)
            start = offset + mac
            out += pack_record(sec, nsec // 1000, caplen, length)
            out += view[start : start + caplen]
            offset += next_off
        return todo
    sll, sll2 = _SLL.unpack_from, _SLL2.pack
    kept = 0
    for _ in range(num):
        if kept >= limit:
            break
        next_off, sec, nsec, caplen, length, mac = unpack_head(view, offset)
        start = offset + mac
        head = sll2(*sll(view, offset + 48))
        if userland is not None and not userland(head + view[start : start + caplen], length):
            offset += next_off
            continue
        incl = min(caplen + SLL2_LEN, snaplen)
        out += pack_record(sec, nsec // 1000, incl, length + SLL2_LEN)
        if incl >= SLL2_LEN:
            out += head
            out += view[start : start + incl - SLL2_LEN]
        else:
            out += head[:incl]
        kept += 1
        offset += next_off
    return kept


def _ring_fill(handle: Handle, ring: memoryview) -> Callable[[bytearray, int], int | None]:
    """The ring as a batch source: the next retired block as pcap records, None if the kernel
    still fills it (the block is handed back once copied)."""
    block_size, block_nr = handle.block_size, handle.block_nr
    cooked, snaplen, userland = handle.cooked, handle.snaplen, handle.userland

    def fill(out: bytearray, limit: int) -> int | None:
        base = handle.block * block_size
        if not ring[base + 8] & TP_STATUS_USER:  # block_status, little-endian low byte
            return None
        kept = _block_to_pcap(ring, base, out, limit, cooked, snaplen, userland)
        _STATUS.pack_into(ring, base + 8, TP_STATUS_KERNEL)  # hand the block back
        handle.block = (handle.block + 1) % block_nr
        return kept

    return fill


def _socket_fill(handle: Handle) -> Callable[[bytearray, int], int | None]:
    """The recvmsg() fallback as a batch source: what the socket holds, as pcap records."""
    sock = handle.sock
    ancbuf = socket.CMSG_SPACE(16)
    index_of = {name: index for index, name in handle.names.items()}
    snaplen, userland = handle.snaplen, handle.userland

    def fill(out: bytearray, limit: int) -> int | None:
        kept = 0
        while kept < min(limit, 1024):
            try:
                data, anc, _flags, addr = sock.recvmsg(SNAPLEN, ancbuf, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            ifname, protocol, pkttype, hatype, hwaddr = addr[:5]
            if not handle.cooked and not _keep(hatype, pkttype):
                continue
            now = time.time_ns()
            sec, nsec = now // 1_000_000_000, now % 1_000_000_000
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("qq", value[:16])
            length = len(data)
            if handle.cooked:
                head = sll2_header(protocol, index_of.get(ifname, 0), hatype, pkttype, hwaddr)
                if userland is not None and not userland(head + data, length):
                    continue
                data, length = head + data, length + SLL2_LEN
            data = data[:snaplen]
            out += _RECORD.pack(sec, nsec // 1000, len(data), length)
            out += data
            kept += 1
        return kept or None

    return fill


def _keep(hatype: int, pkttype: int) -> bool:
    if hatype not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
        return False  # not Ethernet-framed: outside LINKTYPE_ETHERNET
    # loopback shows each packet twice; libpcap keeps the incoming copy (the kernel filter
    # prefix already drops it; this covers kernels without ancillary loads)
    return not (pkttype == PACKET_OUTGOING and hatype == ARPHRD_LOOPBACK)


def _record_batches(
    handle: Handle,
    stats: CaptureStats,
    count: int | None = None,
    duration_s: float | None = None,
    stop: Callable[[], bool] | None = None,
    idle: Callable[[], None] | None = None,
) -> Iterator[bytearray]:
    """Captured packets as pcap records (16-byte header + bytes, as ``-w`` writes them), in
    batches: one retired ring block each (handed back to the kernel before the batch is
    used), or what the socket holds (recvmsg fallback). The batch is reused: consume it
    before asking for the next.

    Until ``count`` packets, ``duration_s`` or ``stop()``. ``idle()`` is called whenever nothing
    is waiting (output is flushed then). After ``stop()`` what the kernel already holds is still
    delivered for up to ``DRAIN_S`` (so a sustained flood cannot keep the capture alive).
    """
    view = None if handle.ring is None else memoryview(handle.ring)
    fill = _socket_fill(handle) if view is None else _ring_fill(handle, view)
    buf = bytearray()
    limit = count if count is not None else 1 << 62
    deadline = None if duration_s is None else time.monotonic() + duration_s
    drain_until: float | None = None
    try:
        while stats.captured < limit:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if drain_until is None and stop is not None and stop():
                drain_until = now + DRAIN_S
            elif drain_until is not None and now >= drain_until:
                break
            del buf[:]
            kept = fill(buf, limit - stats.captured)
            if kept is None:
                if drain_until is not None and (view is None or now >= drain_until):
                    break  # the socket queue is empty, or the drain window is over
                if idle is not None and drain_until is None:
                    idle()
                timeout = 0.25 if drain_until is None else max(drain_until - now, 0) / 4
                if deadline is not None:
                    timeout = max(min(timeout, deadline - now), 0)
                select.select([handle.sock], [], [], timeout)
                continue
            stats.captured += kept
            if buf:
                yield buf
    finally:
        if view is not None:
            view.release()
        received, dropped = _stats(handle.sock)
        stats.received += received
        stats.dropped += dropped


def records_of(batch: bytes) -> Iterator[Record]:
    """The records of a buffer of little-endian microsecond pcap records (no file header)."""
    unpack = _RECORD.unpack_from
    at, end = 0, len(batch)
    while at < end:
        sec, usec, incl, orig = unpack(batch, at)
        at += 16
        yield Record(sec, usec, batch[at : at + incl], orig)
        at += incl


def _record_spans(batch: bytes | bytearray) -> list[tuple[int, int]]:
    """Where each record of a batch starts and ends."""
    spans = []
    at, end = 0, len(batch)
    while at < end:
        stop = at + 16 + _RECORD.unpack_from(batch, at)[2]
        spans.append((at, stop))
        at = stop
    return spans


def packets(
    handle: Handle,
    stats: CaptureStats,
    count: int | None = None,
    duration_s: float | None = None,
    stop: Callable[[], bool] | None = None,
    idle: Callable[[], None] | None = None,
) -> Iterator[Record]:
    """Matching packets one by one (Ethernet frames, or SLL2 records on ``any``), until
    ``count`` packets, ``duration_s`` or ``stop()``; see ``_record_batches``."""
    for batch in _record_batches(handle, stats, count, duration_s, stop, idle):
        yield from records_of(bytes(batch))


class LiveHandle:
    """An open capture run by libpcap itself (``-w`` on one Ethernet or loopback interface)."""

    def __init__(self, live: sc.PcapLive, interface: str) -> None:
        self.live = live
        self.interface = interface

    def close(self) -> None:
        self.live.close()


def open_live(
    interface: str | None,
    program: list[tuple[int, int, int, int]],
    buffer_bytes: int,
    snaplen: int,
    linktype: int = LINKTYPE_ETHERNET,
) -> LiveHandle | None:
    """libpcap's own capture of one interface, in the current thread's namespace, for ``-w``;
    None where it does not apply (no such interface, not Ethernet-framed, libpcap says no):
    the caller then opens the socket itself, with its error messages. ``any`` is captured with
    ``linktype`` LINUX_SLL2, as tcpdump 4.99 asks libpcap for it (``program`` compiled for it).

    Written this way, packets go from the ring to the file in C (``pcap_dispatch`` calling
    ``pcap_dump``), as tcpdump -w does: no Python runs per packet.
    """
    name = interface if interface is not None else _default_interface()
    cooked = linktype == LINKTYPE_LINUX_SLL2
    try:
        live = sc.PcapLive(
            name, snaplen, buffer_bytes, RETIRE_BLOCK_MS, program, linktype if cooked else None
        )
    except (OSError, sc.PcapLiveError):
        return None
    if live.linktype != linktype:
        live.close()
        return None
    if cooked:  # libpcap rewrites a cooked filter for the kernel and drops loopback's copy itself
        return LiveHandle(live, name)
    try:
        # loopback's outgoing copy dropped in the kernel, as on the socket path (libpcap would
        # copy both into its ring and discard one per packet in user space). Installed over
        # libpcap's own kernel filter: libpcap filters the first ring block in user space with
        # the plain program, which has no ancillary loads its bpf_filter would reject.
        with socket.fromfd(live.fd, socket.AF_PACKET, socket.SOCK_RAW) as sock:
            _attach(sock, _skip_loopback_outgoing(program or [(0x06, 0, 0, snaplen)]))
    except OSError:
        live.close()
        return None
    return LiveHandle(live, name)


def _live_to_pcap(
    handle: LiveHandle,
    stats: CaptureStats,
    count: int | None,
    duration_s: float | None,
    stop: Callable[[], bool] | None,
) -> None:
    """libpcap dumps each ring block in C; here: the clock, stop requests, one flush a block."""
    live = handle.live
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
            n = live.dispatch(-1 if count is None else count - stats.captured)
            if n:
                stats.captured += n
                live.flush()  # what is captured is written: one write per ring block
                if count is not None and stats.captured >= count:
                    break
                continue
            timeout = 0.25 if drain_until is None else max(drain_until - now, 0) / 4
            if deadline is not None:
                timeout = max(min(timeout, deadline - now), 0)
            select.select([live.fd], [], [], timeout)
    except sc.PcapLiveError as exc:
        raise HelperError(f"capture failed: {exc}") from None
    finally:
        received, dropped = live.stats()
        stats.received += received
        stats.dropped += dropped


def _pcap_header(linktype: int = LINKTYPE_ETHERNET, snaplen: int = SNAPLEN) -> bytes:
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)


class PcapWriter:
    """Classic pcap (magic a1b2c3d4, v2.4, microseconds), as ``tcpdump -w`` writes it.

    With ``linktype=LINKTYPE_LINUX_SLL2`` each packet is written as ``-i any`` records it.
    """

    def __init__(
        self, stream: BinaryIO, linktype: int = LINKTYPE_ETHERNET, snaplen: int = SNAPLEN
    ) -> None:
        self.stream = stream
        self.sll2 = linktype == LINKTYPE_LINUX_SLL2
        stream.write(_pcap_header(linktype, snaplen))

    def write(self, packet: Packet) -> None:
        ts = packet.ts
        sec = int(ts)
        usec = int((ts - sec) * 1_000_000 + 0.5)
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        data, length = to_sll2(packet) if self.sll2 else (packet.data, packet.length)
        self.stream.write(_RECORD.pack(sec, usec, len(data), length) + data)


def _drop_privileges(user: str) -> None:
    """tcpdump -Z: become ``user`` (its groups too) once the packet socket is open."""
    import grp
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise HelperError(
            f"Couldn't find user '{user}'", hint="-Z takes a user name from the passwd database"
        ) from None
    try:
        os.setgroups([g.gr_gid for g in grp.getgrall() if user in g.gr_mem] + [entry.pw_gid])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    except OSError as exc:
        raise from_oserror(exc, f"cannot change to user {user}") from None


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
    options: PrintOptions | None = None,
    snaplen: int = SNAPLEN,
    user: str | None = None,
    line_buffered: bool = False,
    stdout: BinaryIO | None = None,
    rotation: Rotation | None = None,
) -> CaptureStats:
    """Capture in the network namespace of ``pid`` (None: ours); print or write pcap.

    ``out`` may buffer: ``flush`` is called whenever the kernel has nothing waiting (and at the
    end), so summaries appear as soon as traffic pauses without a write per packet under load
    (``line_buffered``: after every packet, as tcpdump -l). ``write_path`` "-" writes the pcap
    to ``stdout``. On ``any`` packets carry LINUX_SLL2 headers, as tcpdump 4.99 writes them.
    """
    if options is None:
        options = PrintOptions(numeric=True, absolute_seq=True)
    # tcpdump 4.99 captures any cooked, its filter compiled for LINUX_SLL2
    linktype = LINKTYPE_LINUX_SLL2 if interface == "any" else LINKTYPE_ETHERNET
    program = compile_filter(expression, snaplen, linktype)

    def opener() -> Handle | LiveHandle:
        if write_path is not None and rotation is None:
            live = open_live(interface, program, buffer_bytes, snaplen, linktype)
            if live is not None:
                return live
        return open_capture(interface, program, buffer_bytes, snaplen=snaplen)

    handle = run_in_netns(pid, opener)
    name = handle.interface
    stats = CaptureStats(interface=name, program=program)
    try:
        if user is not None:
            _drop_privileges(user)
        if write_path is None and not options.verbose:
            log("verbose output suppressed, use -v[v]... for full protocol decode")
        log(
            f"listening on {name}, link-type {linktype_banner(linktype)}, snapshot length {snaplen} bytes"
        )
        if write_path == "-":
            assert stdout is not None
            _stream_pcap(handle, stats, stdout, count, duration_s, stop, linktype, snaplen)
        elif write_path is not None and rotation is not None:
            assert isinstance(handle, Handle)
            _write_rotating(
                handle, stats, write_path, count, duration_s, stop, linktype, snaplen, rotation
            )
        elif write_path is not None:
            _write_pcap(handle, stats, write_path, count, duration_s, stop, linktype, snaplen)
        else:
            assert isinstance(handle, Handle)
            printer = Printer(options, linktype, lambda index: handle.names.get(index, "?"))
            idle = None if line_buffered else flush
            try:
                # a ring block at a time: its lines formatted into one string, one write
                for batch in _record_batches(handle, stats, count, duration_s, stop, idle):
                    out(printer.format_records(bytes(batch))[0])  # whole records: all used
                    if line_buffered and flush is not None:
                        flush()
            finally:
                if flush is not None:
                    flush()
    except OSError as exc:
        raise from_oserror(exc, "capture failed") from None
    finally:
        handle.close()
    return stats


@dataclass(frozen=True, slots=True)
class Rotation:
    """tcpdump's -C (millions of bytes), -G (seconds, FILE through strftime), -W (file count)."""

    size_bytes: int | None = None
    seconds: float | None = None
    files: int | None = None

    def name(self, path: str, index: int, started: float) -> str:
        """MakeFilename: FILE (strftime'd with -G), a number appended with -C or -W."""
        base = time.strftime(path, time.localtime(started)) if self.seconds else path
        if self.files is not None and self.size_bytes is not None:
            width = len(str(max(self.files - 1, 0)))
            return f"{base}{index % self.files:0{width}d}"
        if self.size_bytes is not None and index:
            return f"{base}{index}"
        return base


def _write_rotating(
    handle: Handle,
    stats: CaptureStats,
    path: str,
    count: int | None,
    duration_s: float | None,
    stop: Callable[[], bool] | None,
    linktype: int,
    snaplen: int,
    rotation: Rotation,
) -> None:
    """``-w FILE`` with ``-C``/``-G``/``-W``: a new file when the size or the time is up.

    Each file is written to a temporary name and renamed when it is complete (so a finished
    file is never seen half-written, and no symlink is followed); with ``-G -W N`` the capture
    ends after N files, with ``-C -W N`` the names wrap around (the oldest is replaced).
    """
    index = 0
    stream: BinaryIO | None = None
    tmp = final = ""
    started = time.time()

    def open_next() -> None:
        nonlocal stream, tmp, final, started
        started = time.time()
        final = rotation.name(path, index, started)
        directory = os.path.dirname(os.path.abspath(final))
        try:
            fd, tmp = tempfile.mkstemp(
                prefix=f".{os.path.basename(final)}.", suffix=".tmp", dir=directory
            )
        except OSError as exc:
            raise HelperError(
                f"cannot write {final}: {exc.strerror}",
                hint="check that the directory exists and is writable",
            ) from None
        umask = os.umask(0o022)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        stream = os.fdopen(fd, "wb")
        stream.write(_pcap_header(linktype, snaplen))

    def close_current() -> None:
        nonlocal stream
        if stream is not None:
            stream.flush()
            os.fsync(stream.fileno())
            stream.close()
            os.replace(tmp, final)
            stream = None

    done: list[bool] = []

    def stopping() -> bool:
        return bool(done) or (stop is not None and stop())

    open_next()
    try:

        def flush() -> None:  # whatever is captured is in the file when traffic pauses
            if stream is not None:
                stream.flush()

        for batch in _record_batches(handle, stats, count, duration_s, stopping, flush):
            for at, end in _record_spans(batch):
                assert stream is not None
                now = time.time()
                due = rotation.seconds is not None and now - started >= rotation.seconds
                full = rotation.size_bytes is not None and stream.tell() > rotation.size_bytes
                if due or full:
                    close_current()
                    index += 1
                    if due and rotation.files is not None and index >= rotation.files:
                        done.append(True)  # -G with -W: that many files, then stop
                        stats.captured -= len(_record_spans(batch[at:]))
                        break
                    open_next()
                    assert stream is not None
                stream.write(batch[at:end])
            if done:
                break
    finally:
        close_current()


def _stream_pcap(
    handle: Handle | LiveHandle,
    stats: CaptureStats,
    stream: BinaryIO,
    count: int | None,
    duration_s: float | None,
    stop: Callable[[], bool] | None,
    linktype: int,
    snaplen: int,
) -> None:
    """``-w -``: pcap on standard output, flushed per ring block (``| wireshark -k -i -``)."""
    if isinstance(handle, LiveHandle):
        stream.flush()
        handle.live.start_dump(stream.fileno())
        _live_to_pcap(handle, stats, count, duration_s, stop)
        return
    stream.write(_pcap_header(linktype, snaplen))
    stream.flush()
    for batch in _record_batches(handle, stats, count, duration_s, stop):
        stream.write(batch)
        stream.flush()  # a ring block per write, flushed: what is captured is in the pipe


def _write_pcap(
    handle: Handle | LiveHandle,
    stats: CaptureStats,
    path: str,
    count: int | None,
    duration_s: float | None,
    stop: Callable[[], bool] | None,
    linktype: int = LINKTYPE_ETHERNET,
    snaplen: int = SNAPLEN,
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
                if isinstance(handle, LiveHandle):
                    handle.live.start_dump(stream.fileno())
                    try:
                        _live_to_pcap(handle, stats, count, duration_s, stop)
                    finally:
                        handle.live.end_dump()
                else:
                    # a ring block per write, flushed: what is captured is on disk
                    stream.write(_pcap_header(linktype, snaplen))
                    for batch in _record_batches(handle, stats, count, duration_s, stop):
                        stream.write(batch)
                        stream.flush()
            finally:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(tmp, path)  # rename(2) replaces a symlink at path, never follows it
    except BaseException:
        if os.path.exists(tmp):
            # an interrupted capture is still a complete pcap up to the last packet
            os.replace(tmp, path)
        raise


# --- reading capture files ---------------------------------------------------------------

_PCAP_MAGICS = {
    0xA1B2C3D4: ("<", 1_000_000),
    0xD4C3B2A1: (">", 1_000_000),
    0xA1B23C4D: ("<", 1_000_000_000),
    0x4D3CB2A1: (">", 1_000_000_000),
}
_PCAPNG_SHB = 0x0A0D0D0A
_SUPPORTED_LINKTYPES = (LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2)
MAX_RECORD_BYTES = 1 << 20  # a record claiming more is a damaged file, not a packet


class Record(NamedTuple):
    """One packet of a capture file: time stamp (seconds, microseconds), bytes, wire length."""

    sec: int
    usec: int
    data: bytes
    length: int


class Savefile:
    """A pcap or pcapng file opened for reading, as ``tcpdump -r`` opens it."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        head = stream.read(4)
        if len(head) < 4:
            raise HelperError("not a pcap file (too short)", hint="expected a file from tcpdump -w")
        magic = struct.unpack("<I", head)[0]
        self.linktype = LINKTYPE_ETHERNET
        self.snaplen = SNAPLEN
        self._ng = magic == _PCAPNG_SHB
        self._order = "<"
        self._unit = 1_000_000
        self._ifaces: list[tuple[int, int]] = []  # (linktype, units per second)
        if self._ng:
            self._first = self._pcapng_first(head)
        else:
            if magic not in _PCAP_MAGICS:
                raise HelperError(
                    "unknown file format", hint="expected a pcap or pcapng file (tcpdump -w)"
                )
            self._order, self._unit = _PCAP_MAGICS[magic]
            rest = stream.read(20)
            if len(rest) < 20:
                raise HelperError("truncated dump file header", hint="the file is damaged")
            self.snaplen, linktype = struct.unpack(self._order + "12xII", rest)
            self.linktype = linktype & 0x0FFFFFFF
        if self.linktype not in _SUPPORTED_LINKTYPES:
            raise HelperError(
                f"unsupported link type {self.linktype}",
                hint="fleetkit reads Ethernet (1) and LINUX_SLL2 (276) captures",
            )

    def records(self) -> Iterator[Record]:
        """The file's packets in order; HelperError on a damaged record (after the good ones)."""
        if self._ng:
            yield from self._pcapng_records()
            return
        record = struct.Struct(self._order + "IIII")
        read = self.stream.read
        scale = self._unit // 1_000_000
        while True:
            head = read(16)
            if not head:
                return
            if len(head) < 16:
                raise HelperError(
                    f"truncated dump file; tried to read 16 header bytes, only got {len(head)}",
                    hint="the file is damaged or still being written",
                )
            sec, frac, incl, orig = record.unpack(head)
            if incl > MAX_RECORD_BYTES or incl > max(self.snaplen, SNAPLEN):
                raise HelperError(
                    f"invalid packet capture length {incl}, bigger than snaplen of {self.snaplen}",
                    hint="the file is damaged",
                )
            data = read(incl)
            if len(data) < incl:
                raise HelperError(
                    f"truncated dump file; tried to read {incl} captured bytes, only got "
                    f"{len(data)}",
                    hint="the file is damaged or still being written",
                )
            yield Record(sec, frac // scale, data, orig)

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        """The file's packets as little-endian microsecond pcap records (no file header), in
        chunks of about ``size`` bytes that may end inside a record: a classic little-endian
        microsecond file is read as it is, anything else converted record by record."""
        if self._ng or self._order != "<" or self._unit != 1_000_000:
            out = bytearray()
            for rec in self.records():
                out += _RECORD.pack(rec.sec, rec.usec, len(rec.data), rec.length)
                out += rec.data
                if len(out) >= size:
                    yield bytes(out)
                    del out[:]
            if out:
                yield bytes(out)
            return
        read = getattr(self.stream, "read1", self.stream.read)  # a pipe: what is there
        while chunk := read(size):
            yield chunk

    def lines(
        self,
        printer: Printer,
        matches: Callable[[bytes, int], bool] | None = None,
        count: int | None = None,
    ) -> Iterator[str]:
        """``tcpdump -r``: the file's packets printed, the lines of a chunk of the file at a
        time; HelperError on a damaged record, after the lines of the good ones."""
        left = -1 if count is None else count
        biggest = min(MAX_RECORD_BYTES, max(self.snaplen, SNAPLEN))
        unpack = _RECORD.unpack_from
        pending = b""  # a record the previous chunk cut off
        for chunk in self.chunks():
            start = 0
            if pending:  # complete it from this chunk (its header first), print it alone
                if len(pending) < 16:
                    start = min(16 - len(pending), len(chunk))
                    pending += chunk[:start]
                    if len(pending) < 16:
                        continue
                whole = 16 + unpack(pending)[2]
                if whole - 16 > biggest:
                    break
                taken = min(whole - len(pending), len(chunk) - start)
                pending += chunk[start : start + taken]
                start += taken
                if len(pending) < whole:
                    continue
                text, shown, _used = printer.format_records(pending, matches, left, biggest)
                pending = b""
                if text:
                    yield text
                if count is not None:
                    left -= shown
                    if left == 0:
                        return
            text, shown, used = printer.format_records(chunk, matches, left, biggest, start)
            if text:
                yield text
            if count is not None:
                left -= shown
                if left == 0:
                    return
            pending = chunk[used:]
            if len(pending) >= 16 and unpack(pending)[2] > biggest:
                break
        if len(pending) >= 16 and unpack(pending)[2] > biggest:
            raise HelperError(
                f"invalid packet capture length {unpack(pending)[2]}, bigger than snaplen of "
                f"{self.snaplen}",
                hint="the file is damaged",
            )
        if not pending:
            return
        if len(pending) < 16:
            raise HelperError(
                f"truncated dump file; tried to read 16 header bytes, only got {len(pending)}",
                hint="the file is damaged or still being written",
            )
        raise HelperError(
            f"truncated dump file; tried to read {_RECORD.unpack_from(pending)[2]} captured "
            f"bytes, only got {len(pending) - 16}",
            hint="the file is damaged or still being written",
        )

    # pcapng: section header, interface descriptions, enhanced/simple packet blocks
    def _block(self) -> tuple[int, bytes] | None:
        head = self.stream.read(8)
        if not head:
            return None
        if len(head) < 8:
            raise HelperError("truncated pcapng block", hint="the file is damaged")
        kind, total = struct.unpack(self._order + "II", head)
        if total < 12 or total % 4 or total > MAX_RECORD_BYTES + 64:
            raise HelperError(f"bad pcapng block length {total}", hint="the file is damaged")
        body = self.stream.read(total - 8)
        if len(body) < total - 8:
            raise HelperError("truncated pcapng block", hint="the file is damaged")
        return kind, body[:-4]

    def _pcapng_first(self, head: bytes) -> list[Record]:
        rest = self.stream.read(8)
        if len(rest) < 8:
            raise HelperError("truncated pcapng section header", hint="the file is damaged")
        bom = rest[4:8]
        self._order = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
        total = struct.unpack(self._order + "I", rest[:4])[0]
        if total < 28 or total % 4 or total > MAX_RECORD_BYTES:
            raise HelperError("bad pcapng section header", hint="the file is damaged")
        self.stream.read(total - 12)
        pending: list[Record] = []
        while not self._ifaces:  # the link type comes from the first interface description
            block = self._block()
            if block is None:
                break
            record = self._pcapng_block(*block)
            if record is not None:
                pending.append(record)
        return pending

    def _pcapng_records(self) -> Iterator[Record]:
        yield from self._first
        while True:
            block = self._block()
            if block is None:
                return
            record = self._pcapng_block(*block)
            if record is not None:
                yield record

    def _pcapng_block(self, kind: int, body: bytes) -> Record | None:
        order = self._order
        if kind == 1:  # interface description
            linktype, snaplen = struct.unpack_from(order + "HxxI", body)
            units = 1_000_000
            at = 8
            while at + 4 <= len(body):
                code, size = struct.unpack_from(order + "HH", body, at)
                if code == 0:
                    break
                if code == 9 and size >= 1:
                    value = body[at + 4]
                    units = 2 ** (value & 0x7F) if value & 0x80 else 10**value
                at += 4 + (size + 3) // 4 * 4
            if not self._ifaces:
                self.linktype, self.snaplen = linktype, snaplen or SNAPLEN
            elif linktype != self.linktype:
                raise HelperError(
                    "an interface has a different link type than the first interface",
                    hint="read files whose interfaces share one link type (as libpcap does)",
                )
            self._ifaces.append((linktype, units))
            return None
        if kind == 6:  # enhanced packet
            iface, high, low, incl, orig = struct.unpack_from(order + "IIIII", body)
            if iface >= len(self._ifaces):
                raise HelperError(f"a packet on unknown interface {iface}", hint="damaged file")
            units = self._ifaces[iface][1]
            stamp = high << 32 | low
            sec, frac = divmod(stamp, units)
            return Record(sec, frac * 1_000_000 // units, body[20 : 20 + incl], orig)
        if kind == 3:  # simple packet
            orig = struct.unpack_from(order + "I", body)[0]
            return Record(0, 0, body[4 : 4 + min(orig, self.snaplen)], orig)
        if kind == _PCAPNG_SHB:
            raise HelperError(
                "a second pcapng section is not supported", hint="split the file with editcap"
            )
        return None  # name resolution, statistics, custom blocks: not packets


def read_pcap(stream: BinaryIO) -> Iterator[Packet]:
    """Packets of a pcap or pcapng file (Ethernet captures), as Packets."""
    for rec in Savefile(stream).records():
        yield Packet(rec.sec + rec.usec * 1e-6, "", False, rec.data, rec.length)


def summarize(packet: Packet, show_interface: bool = False) -> str:
    """One line per packet, as ``tcpdump -n -S`` prints it (``-i any``: with interface)."""
    printer = Printer(
        PrintOptions(numeric=True, absolute_seq=True),
        LINKTYPE_LINUX_SLL2 if show_interface else LINKTYPE_ETHERNET,
        lambda _index: packet.ifname,
    )
    sec = int(packet.ts)
    usec = round((packet.ts - sec) * 1_000_000)
    if show_interface:
        pkttype = PACKET_OUTGOING if packet.outgoing else packet.pkttype
        data, length = to_sll2(packet._replace(pkttype=pkttype))
    else:
        data, length = packet.data, packet.length
    return printer.format(sec, usec, data, length).rstrip("\n")


def list_interfaces(pid: int | None) -> str:
    """``tcpdump -D`` for the target's namespace: capturable interfaces in libpcap's order.

    libpcap orders devices by a figure of merit (up, running, not loopback first; ``any``
    after the real interfaces that are up); pseudo-devices fleetkit cannot capture on (nflog,
    nfqueue, D-Bus, Bluetooth) are not listed.
    """
    import fcntl

    def probe() -> list[tuple[int, int, str, int]]:
        rows = []
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for index, name in socket.if_nameindex():
                raw = fcntl.ioctl(sock, 0x8913, struct.pack("16sH14x", name.encode(), 0))
                flags = struct.unpack("16sH14x", raw)[1]
                merit = 0
                if not flags & 0x1:
                    merit |= 0x80000000
                if not flags & 0x40:
                    merit |= 0x40000000
                if flags & 0x8:
                    merit |= 0x10000000
                rows.append((merit, index, name, flags))
        finally:
            sock.close()
        rows.append((0x08000000, 1 << 30, "any", -1))
        return sorted(rows)

    lines = []
    for number, (_merit, _index, name, flags) in enumerate(run_in_netns(pid, probe), 1):
        if flags == -1:
            lines.append(
                f"{number}.any (Pseudo-device that captures on all interfaces) [Up, Running]"
            )
            continue
        words = [w for bit, w in ((0x1, "Up"), (0x40, "Running")) if flags & bit]
        if flags & 0x8:
            words.append("Loopback")
        elif flags & 0x40:
            words.append("Connected")
        elif flags & 0x1:
            words.append("Disconnected")
        lines.append(f"{number}.{name} [{', '.join(words) or 'none'}]")
    return "".join(line + "\n" for line in lines)
