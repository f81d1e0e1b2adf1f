"""Packets printed as tcpdump 4.99 prints them: the one dissector module of ``fleetkit ns``.

Covers the link layers ``ns capture`` writes and reads (Ethernet, LINUX_SLL2 for ``-i any``),
ARP, IPv4, IPv6 (hop-by-hop options), ICMP, ICMPv6 (echo, neighbour discovery, MLDv2 reports),
TCP (flags, options, relative or absolute sequence numbers, checksums with ``-v``), UDP, DNS over
UDP and TCP (its wire format read by :mod:`fleetkit.netns.dns`, the one DNS codec) and HTTP
request and status lines, at tcpdump's verbosity levels, with ``-e``, ``-q``, ``-x``/``-X``/``-A``
payload dumps and the five ``-t`` time-stamp forms. Where tcpdump has no dissector either, the
same fallback line is printed (``UDP, length N``, ``ip-proto-N``, ``ethertype Unknown``).

Each function below names the tcpdump printer it follows (print-tcp.c's tcp_print, ...); the
formats are tcpdump's, the code is written from the behaviour, checked against the real
tcpdump by tests/netns/test_tcpdump_golden.py.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from fleetkit.netns import dns

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_LINUX_SLL2",
    "PrintOptions",
    "Printer",
    "linktype_banner",
    "sll2_header",
]

LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL2 = 276
SLL2_LEN = 20


def linktype_banner(linktype: int) -> str:
    """tcpdump's ``link-type NAME (description)`` words for a link type."""
    if linktype == LINKTYPE_LINUX_SLL2:
        return "LINUX_SLL2 (Linux cooked v2)"
    return "EN10MB (Ethernet)"


def sll2_header(protocol: int, ifindex: int, hatype: int, pkttype: int, addr: bytes) -> bytes:
    """The 20-byte LINUX_SLL2 header libpcap puts before a packet captured on ``any``."""
    return struct.pack(
        "!HHiHBB8s", protocol, 0, ifindex, hatype, pkttype, len(addr), addr.ljust(8, b"\0")
    )


@dataclass(frozen=True, slots=True)
class PrintOptions:
    """tcpdump's printing flags: -n, -v, -q, -e, -x, -X, -A, -t, -S (counts where repeatable)."""

    numeric: bool = False  # -n / -nn: no address or port names
    verbose: int = 0  # -v, -vv, -vvv
    quiet: int = 0  # -q
    ether: bool = False  # -e
    hex: int = 0  # -x, -xx
    hex_ascii: int = 0  # -X, -XX
    ascii: int = 0  # -A
    tstamp: int = 0  # 0 default, 1 -t, 2 -tt, 3 -ttt, 4 -tttt, 5 -ttttt
    absolute_seq: bool = False  # -S


class _Truncated(Exception):
    """A printer ran past the captured bytes: tcpdump prints `` [|proto]``."""

    def __init__(self, proto: str, suffix: str = "", unwound: bool = False) -> None:
        super().__init__(proto)
        self.proto = proto
        self.suffix = suffix  # tcpdump's ">" after a TCP option cut off mid-list
        # tcpdump's bounds-checked reads unwind the whole packet (longjmp): its -x/-X/-A dump
        # then starts at the link header, as if the link layer had not been printed
        self.unwound = unwound


_ETHERTYPES = {
    0x0800: "IPv4",
    0x0806: "ARP",
    0x86DD: "IPv6",
    0x8100: "802.1Q",
    0x88A8: "802.1Q-QinQ",
    0x8035: "Reverse ARP",
    0x8847: "MPLS unicast",
    0x8848: "MPLS multicast",
    0x888E: "EAPOL",
    0x88CC: "LLDP",
    0x8863: "PPPoE D",
    0x8864: "PPPoE S",
    0x9000: "Loopback",
}
_IPPROTO = {
    0: "Options",
    1: "ICMP",
    2: "IGMP",
    4: "IPIP",
    6: "TCP",
    17: "UDP",
    41: "IPv6",
    43: "Routing",
    44: "Frag",
    47: "GRE",
    50: "ESP",
    51: "AH",
    58: "ICMPv6",
    59: "none",
    60: "DSTOPT",
    89: "OSPF",
    103: "PIM",
    112: "VRRP",
    132: "SCTP",
}
_TCP_FLAGS: tuple[tuple[int, str], ...] = (
    (0x01, "F"),
    (0x02, "S"),
    (0x04, "R"),
    (0x08, "P"),
    (0x10, "."),
    (0x20, "U"),
    (0x40, "E"),
    (0x80, "W"),
)
_TCP_OPTS = {
    0: "eol",
    1: "nop",
    2: "mss",
    3: "wscale",
    4: "sackOK",
    5: "sack",
    6: "echo",
    7: "echoreply",
    8: "TS",
    11: "cc",
    12: "ccnew",
    13: "ccecho",
    19: "md5",
    20: "scps",
    21: "snack",
    28: "uto",
    29: "tcp-ao",
    30: "mptcp",
    34: "tfo",
}
_SLL_PKTTYPES = {0: "In", 1: "B", 2: "M", 3: "P", 4: "Out"}
_ICMP_TYPES = {
    0: "echo reply",
    3: "destination unreachable",
    4: "source quench",
    5: "redirect",
    8: "echo request",
    9: "router advertisement",
    10: "router solicitation",
    11: "time exceeded",
    12: "parameter problem",
    13: "time stamp request",
    14: "time stamp reply",
    15: "information request",
    16: "information reply",
    17: "address mask request",
    18: "address mask reply",
}
_ICMP_UNREACH = {
    0: "net {} unreachable",
    1: "host {} unreachable",
    5: "{} unreachable - source route failed",
    6: "net {} unreachable - unknown",
    7: "host {} unreachable - unknown",
    8: "{} unreachable - source host isolated",
    9: "net {} unreachable - admin prohibited",
    10: "host {} unreachable - admin prohibited",
    11: "net {} unreachable - tos prohibited",
    12: "host {} unreachable - tos prohibited",
    13: "{} unreachable - admin prohibited filter",
    14: "{} unreachable - host precedence violation",
    15: "{} unreachable - precedence cutoff",
}
_ICMP6_TYPES = {
    1: "destination unreachable",
    2: "packet too big",
    3: "time exceeded in-transit",
    4: "parameter problem",
    128: "echo request",
    129: "echo reply",
    130: "multicast listener query",
    131: "multicast listener report",
    132: "multicast listener done",
    133: "router solicitation",
    134: "router advertisement",
    135: "neighbor solicitation",
    136: "neighbor advertisement",
    137: "redirect",
    143: "multicast listener report v2",
}
_ICMP6_UNREACH = {
    0: "unreachable route",
    1: "unreachable prohibited",
    2: "beyond scope",
    3: "unreachable address",
    4: "unreachable port",
}
_ND_OPTS = {
    1: "source link-address",
    2: "destination link-address",
    3: "prefix info",
    4: "redirected header",
    5: "mtu",
    7: "advertisement interval",
    8: "homeagent information",
    24: "route info",
    25: "rdnss",
    31: "dnssl",
}
_MLDV2_RECORDS = {1: "is_in", 2: "is_ex", 3: "to_in", 4: "to_ex", 5: "allow", 6: "block"}
_DNS_TYPES = {
    **{code: text for code, text in dns.TYPES.items()},
    3: "MD",
    4: "MF",
    7: "MB",
    8: "MG",
    9: "MR",
    10: "NULL",
    11: "WKS",
    14: "MINFO",
    17: "RP",
    18: "AFSDB",
    24: "SIG",
    25: "KEY",
    29: "LOC",
    30: "NXT",
    37: "CERT",
    38: "A6",
    44: "SSHFP",
    45: "IPSECKEY",
    49: "DHCID",
    50: "NSEC3",
    51: "NSEC3PARAM",
    52: "TLSA",
    59: "CDS",
    60: "CDNSKEY",
    249: "TKEY",
    250: "TSIG",
    251: "IXFR",
    252: "AXFR",
    253: "MAILB",
    254: "MAILA",
    256: "URI",
}
_DNS_CLASSES = {1: "IN", 3: "CHAOS", 4: "HS", 255: "ANY"}
_DNS_RCODES = (
    "",
    " FormErr",
    " ServFail",
    " NXDomain",
    " NotImp",
    " Refused",
    " YXDomain",
    " YXRRSet",
    " NXRRSet",
    " NotAuth",
    " NotZone",
)
_DNS_OPS = ("", " inv_q", " stat", " op3", " notify", " update")
_EDNS_OPTS = {
    1: "LLQ",
    2: "UL",
    3: "NSID",
    5: "DAU",
    6: "DHU",
    7: "N3U",
    8: "ECS",
    9: "EXPIRE",
    10: "COOKIE",
    11: "KEEPALIVE",
    12: "PADDING",
    13: "CHAIN",
    14: "KEY-TAG",
    16: "CLIENT-TAG",
    17: "SERVER-TAG",
}
_HTTP_METHODS = frozenset(
    b"GET PUT COPY DELETE HEAD LINK LOCK MKCOL MOVE OPTIONS POST PROPFIND PROPPATCH PURGE "
    b"TRACE UNLINK UNLOCK CONNECT ACL BIND MERGE REPORT SEARCH".split()
)


# the fast path's header reads (print-ip.c / print-udp.c / print-tcp.c fields it needs)
# ethertype, IPv4 version+ihl, total length, flags+offset, protocol, then (UDP) the ports and
# length behind an IPv4 header without options; on Ethernet and behind an SLL2 header
_ETH_IP4 = struct.Struct("!12xHBxH2xHxB10xHHH")
_SLL2_IP4 = struct.Struct("!H18xBxH2xHxB10xHHH")
_TS_FAST = struct.Struct("!II")
_ECHO_FAST = struct.Struct("!HH")  # ICMP echo id, sequence
_PORT_FAST = struct.Struct("!H")
_IP6_FAST = struct.Struct("!IHB")  # version+class+flow label, payload length, next header
_UDP_FAST = struct.Struct("!HHH")  # ports, length
_TCP_FAST = struct.Struct("!HHIIBBH2xH")  # ports, seq, ack, data offset, flags, window, urgent
_RECORD = struct.Struct("<IIII")  # pcap record header: ts_sec, ts_usec, incl_len, orig_len
_TCP_FLAG_TEXT = tuple(
    "".join(name for bit, name in _TCP_FLAGS if flags & bit) or "none" for flags in range(256)
)
_NOP_NOP_TS = b"\x01\x01\x08\x0a"  # the options of nearly every segment after the handshake
_CACHE_MAX = 1 << 16  # entries per name cache, then it starts over
_FAST_BYTES = 128  # the most the fast path reads: SLL2 20 + IPv6 40 + TCP 60


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def _cksum(data: bytes) -> int:
    """in_cksum: the one's complement of the one's complement sum (0 when the sum is right)."""
    return ~_fold(_sum16(data)) & 0xFFFF


def _shouldbe(field: int, computed: int) -> int:
    """in_cksum_shouldbe: the checksum the field should have held."""
    return _fold(_fold(field + computed))


def _printable(raw: bytes) -> str:
    """fn_print_char for each byte: M- for the high bit, ^X for controls."""
    out = []
    for c in raw:
        if c & 0x80:
            out.append("M-")
            c &= 0x7F
        if not 0x20 <= c <= 0x7E:
            out.append("^")
            c ^= 0x40
        out.append(chr(c))
    return "".join(out)


def _hex(ident: str, data: bytes, offset: int = 0) -> str:
    """hex_print_with_offset: 8 groups of 2 bytes per line."""
    out = []
    for line in range(0, len(data), 16):
        chunk = data[line : line + 16]
        groups = [chunk[i : i + 2].hex() for i in range(0, len(chunk), 2)]
        out.append(f"{ident}0x{offset + line:04x}: " + "".join(" " + g for g in groups))
    return "".join(out)


def _hex_ascii(ident: str, data: bytes, offset: int = 0) -> str:
    """hex_and_ascii_print_with_offset: hex column padded to 40, then printable ASCII."""
    out = []
    for line in range(0, len(data), 16):
        chunk = data[line : line + 16]
        groups = "".join(" " + chunk[i : i + 2].hex() for i in range(0, len(chunk), 2))
        text = "".join(chr(c) if 0x21 <= c <= 0x7E else "." for c in chunk)
        out.append(f"{ident}0x{offset + line:04x}: {groups:<40}  {text}")
    return "".join(out)


def _ascii(data: bytes) -> str:
    """ascii_print: a newline, then the bytes with CRs before LFs dropped, others as '.'."""
    out = ["\n"]
    n = len(data)
    for i, c in enumerate(data):
        remaining = n - i - 1
        if c == 0x0D:
            if remaining > 1 and data[i + 1] != 0x0A:
                out.append(".")
        elif 0x21 <= c <= 0x7E or c in (0x09, 0x20, 0x0A):
            out.append(chr(c))
        else:
            out.append(".")
    return "".join(out)


def _relts(secs: int) -> str:
    """unsigned_relts_print: 1h2m3s."""
    if secs == 0:
        return "0s"
    out = []
    for unit, size in (("y", 31536000), ("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            out.append(f"{secs // size}{unit}")
            secs %= size
    if secs:
        out.append(f"{secs}s")
    return "".join(out)


class Printer:
    """Formats packets of one capture (one link type) as tcpdump lines; keeps tcpdump's state.

    The state is what tcpdump keeps between packets: the previous and first time stamps (for
    ``-ttt``/``-ttttt``) and each TCP conversation's initial sequence numbers (relative numbers
    unless ``-S``).
    """

    def __init__(
        self,
        options: PrintOptions,
        linktype: int = LINKTYPE_ETHERNET,
        ifname: Callable[[int], str] | None = None,
    ) -> None:
        self.o = options
        self.linktype = linktype
        self.ifname = ifname or _if_indextoname
        self._first: int | None = None
        self._prev: int | None = None
        self._clock: tuple[int, str] = (-1, "")
        self._tcp: dict[tuple[bytes, bytes, int], list[int]] = {}
        self._tcp_flows: dict[bytes, tuple[bool, list[int]]] = {}  # per direction, for _fast
        self._services: dict[tuple[int, str], str] = {}
        self._hosts: dict[bytes, str] = {}
        self._unwound = False
        o = options
        # the default line (no -v/-q/-e/-x/-X/-A) of IPv4/IPv6 UDP and TCP has a fast path
        self._plain = not (o.verbose or o.quiet or o.ether or o.hex or o.hex_ascii or o.ascii)
        self._ethernet = linktype == LINKTYPE_ETHERNET
        self._udp_heads: dict[bytes, str] = {}  # "SRC.PORT > DST.PORT: " per flow
        self._tcp_heads: dict[bytes, str] = {}
        self._ip_heads: dict[bytes, str] = {}  # "SRC > DST: " per address pair
        self._sll_heads: dict[bytes, str] = {}  # "eth0  Out " per ifindex and packet type

    # --- the line ------------------------------------------------------------------------

    def format_records(
        self,
        batch: bytes,
        matches: Callable[[bytes, int], bool] | None = None,
        limit: int = -1,
        biggest: int = 1 << 62,
        start: int = 0,
    ) -> tuple[str, int, int]:
        """The lines of a buffer of pcap records (little-endian, microseconds, no file header)
        from offset ``start``: (text, how many, where it stopped). Those ``matches`` accepts,
        at most ``limit`` (-1: all); it stops before a record cut off by the end of the buffer
        or claiming more than ``biggest`` bytes (the caller decides whether that is damage or
        the next chunk)."""
        unpack = _RECORD.unpack_from
        fast = self._fast if self._plain else None
        general, stamp = self._general, self._stamp
        lines: list[str] = []
        append = lines.append
        at, end, shown = start, len(batch), 0
        if fast is not None and matches is None and limit < 0 and self.o.tstamp == 0:
            # the common case, its own loop: every record, default lines and stamps
            clock_sec, clock = self._clock
            cut = 16 + _FAST_BYTES
            while at + 16 <= end:
                sec, usec, incl, orig = unpack(batch, at)
                after = at + 16 + incl
                if after > end or incl > biggest:
                    break
                # the fast path reads headers only (each of its length checks is below
                # _FAST_BYTES, so they see what they would see in the whole packet)
                line = fast(batch[at + 16 : after if incl <= _FAST_BYTES else at + cut], orig)
                if line is None:
                    append(general(sec, usec, batch[at + 16 : after], orig))
                else:
                    if sec != clock_sec:  # _stamp's default form: the clock text once a second
                        clock_sec, clock = sec, time.strftime("%H:%M:%S", time.localtime(sec))
                        self._clock = (clock_sec, clock)
                    append(f"{clock}.{usec:06d} {line}")
                at = after
            return "".join(lines), len(lines), at
        while at + 16 <= end and shown != limit:
            sec, usec, incl, orig = unpack(batch, at)
            if at + 16 + incl > end or incl > biggest:
                break
            at += 16
            data = batch[at : at + incl]
            at += incl
            if matches is not None and not matches(data, orig):
                continue
            shown += 1
            line = None if fast is None else fast(data, orig)
            append(general(sec, usec, data, orig) if line is None else stamp(sec, usec) + line)
        return "".join(lines), shown, at

    def format(self, sec: int, usec: int, data: bytes, length: int) -> str:
        """One packet, as tcpdump prints it (with its trailing newline)."""
        if self._plain:
            line = self._fast(data, length)
            if line is not None:
                return self._stamp(sec, usec) + line
        return self._general(sec, usec, data, length)

    def _general(self, sec: int, usec: int, data: bytes, length: int) -> str:
        """Any packet at any verbosity: the printers below, each as tcpdump's."""
        out: list[str] = [self._stamp(sec, usec)]
        self._unwound = False
        if self.linktype == LINKTYPE_LINUX_SLL2:
            hdrlen = self._sll2(out, data, length)
        else:
            hdrlen = self._ether(out, data, length)
        if self._unwound:
            hdrlen = 0
        o = self.o
        if o.hex_ascii:
            if o.hex_ascii > 1:
                out.append(_hex_ascii("\n\t", data))
            elif len(data) > hdrlen:
                out.append(_hex_ascii("\n\t", data[hdrlen:]))
        elif o.hex:
            if o.hex > 1:
                out.append(_hex("\n\t", data))
            elif len(data) > hdrlen:
                out.append(_hex("\n\t", data[hdrlen:]))
        elif o.ascii:
            if o.ascii > 1:
                out.append(_ascii(data))
            elif len(data) > hdrlen:
                out.append(_ascii(data[hdrlen:]))
        out.append("\n")
        return "".join(out)

    # --- the fast path: what most lines of a busy capture are --------------------------------

    def _fast(self, data: bytes, length: int) -> str | None:
        """The default line of an IPv4/IPv6 UDP or TCP packet whose headers were captured whole
        and hold nothing unusual; None sends the packet down the general path (which prints the
        same line for these packets: tests/netns/test_dissect.py compares the two)."""
        if self._ethernet:
            if len(data) < 42:
                return None
            ethertype, vhl, total, frag, proto, sport, dport, word = _ETH_IP4.unpack_from(data)
            off, prefix = 14, ""
        else:
            if len(data) < 48:
                return None
            ethertype, vhl, total, frag, proto, sport, dport, word = _SLL2_IP4.unpack_from(data)
            off = SLL2_LEN
            key = data[4:11]  # interface index, hardware type, packet type
            prefix = self._sll_heads.get(key, "")
            if not prefix:
                ifindex, pkttype = struct.unpack_from("!i2xB", data, 4)
                prefix = f"{self.ifname(ifindex):<5} {_SLL_PKTTYPES.get(pkttype, '?'):<3} "
                if len(self._sll_heads) >= _CACHE_MAX:
                    self._sll_heads.clear()
                self._sll_heads[key] = prefix
        if ethertype == 0x0800:
            # no options, not a fragment, lengths that add up: else the general path
            if vhl != 0x45 or frag & 0x3FFF or total < 20 or total > length - off:
                return None
            if proto == 17:
                if sport == 53 or dport == 53 or word < 8 or word > total - 20:
                    return None
                key = data[off + 12 : off + 24]  # addresses and ports
                head = self._udp_heads.get(key)
                if head is None:
                    head = self._new_head(self._udp_heads, key, 4, "udp")
                return f"{prefix}IP {head}UDP, length {word - 8}\n"
            if proto == 1:
                line = self._fast_icmp(data, off, total - 20)
            elif proto == 6:
                line = self._fast_tcp(data, off, off + 12, off + 20, total - 20)
            else:
                return None
            return None if line is None else f"{prefix}IP {line}"
        if ethertype == 0x86DD and len(data) >= off + 48:
            flow, plen, nh = _IP6_FAST.unpack_from(data, off)
            if flow >> 28 != 6:
                return None
            if nh == 17:
                sport, dport, ulen = _UDP_FAST.unpack_from(data, off + 40)
                if plen < 8 or sport == 53 or dport == 53 or not 8 <= ulen <= plen:
                    return None
                key = data[off + 8 : off + 44]
                head = self._udp_heads.get(key)
                if head is None:
                    head = self._new_head(self._udp_heads, key, 16, "udp")
                return f"{prefix}IP6 {head}UDP, length {ulen - 8}\n"
            if nh != 6:
                return None
            line = self._fast_tcp(data, off, off + 8, off + 40, plen)
            return None if line is None else f"{prefix}IP6 {line}"
        return None

    def _fast_icmp(self, data: bytes, off: int, plen: int) -> str | None:
        """ICMP echo and port unreachable (print-icmp.c's default lines) after an IPv4 header
        without options at ``off``, ``plen`` bytes of message."""
        at = off + 20
        have = min(len(data), at + plen) - at  # the captured part of the message
        if have < 8:
            return None
        kind = data[at]
        if kind == 8 or kind == 0:
            ident, seq = _ECHO_FAST.unpack_from(data, at + 4)
            what = f"echo {'request' if kind == 8 else 'reply'}, id {ident}, seq {seq}"
        elif kind == 3 and data[at + 1] == 3 and have >= 28:
            ihl = (data[at + 8] & 0x0F) * 4
            if have < 8 + ihl + 4:
                return None
            idst = self._addr(data[at + 24 : at + 28])
            iport = _PORT_FAST.unpack_from(data, at + 8 + ihl + 2)[0]
            inner = data[at + 17]
            if inner == 17:
                what = f"{idst} udp port {self._port(iport, 'udp')} unreachable"
            elif inner == 6:
                what = f"{idst} tcp port {self._port(iport, 'tcp')} unreachable"
            else:
                what = f"{idst} protocol {inner} port {iport} unreachable"
        else:
            return None
        key = data[off + 12 : off + 20]
        head = self._ip_heads.get(key)
        if head is None:
            head = f"{self._addr(key[:4])} > {self._addr(key[4:])}: "
            if len(self._ip_heads) >= _CACHE_MAX:
                self._ip_heads.clear()
            self._ip_heads[key] = head
        return f"{head}ICMP {what}, length {plen}\n"

    def _fast_tcp(self, data: bytes, off: int, addrs: int, at: int, plen: int) -> str | None:
        """TCP (not DNS, not HTTP with data) at ``at``, addresses at ``addrs``, ``plen`` bytes
        of IP payload."""
        if plen < 20 or len(data) < at + 20:
            return None
        sport, dport, seq, ack, offset, flags, win, urp = _TCP_FAST.unpack_from(data, at)
        thlen = (offset >> 4) * 4
        if thlen < 20 or thlen > plen or len(data) < at + thlen or sport == 53 or dport == 53:
            return None
        data_len = plen - thlen
        if data_len > 0 and (sport in (80, 8080) or dport in (80, 8080)):
            return None
        key = data[addrs : at + 4]
        head = self._tcp_heads.get(key)
        if head is None:
            head = self._new_head(self._tcp_heads, key, (at - addrs) // 2, "tcp")
        rev = False
        thseq = thack = 0
        if flags & 0x10 and not self.o.absolute_seq:  # _relative, per direction remembered
            flow = self._tcp_flows.get(key)
            if flow is None:
                size = (at - addrs) // 2
                src, dst = data[addrs : addrs + size], data[addrs + size : at]
                flow = self._conversation(src, dst, sport, dport)
                if len(self._tcp_flows) >= _CACHE_MAX:
                    self._tcp_flows.clear()
                self._tcp_flows[key] = flow
            rev, state = flow
            if not state or flags & 0x02:
                state[:] = ((ack - 1) & 0xFFFFFFFF, seq) if rev else (seq, (ack - 1) & 0xFFFFFFFF)
            elif rev:
                seq = (seq - state[1]) & 0xFFFFFFFF
                ack = (ack - state[0]) & 0xFFFFFFFF
            else:
                seq = (seq - state[0]) & 0xFFFFFFFF
                ack = (ack - state[1]) & 0xFFFFFFFF
            thseq, thack = state
        names = _TCP_FLAG_TEXT[flags]
        if flags & 0x30 == 0x10 and thlen == 32 and data[at + 20 : at + 24] == _NOP_NOP_TS:
            # an established conversation's segment: one format
            val, ecr = _TS_FAST.unpack_from(data, at + 24)
            if data_len > 0:
                return (
                    f"{head}Flags [{names}], seq {seq}:{(seq + data_len) & 0xFFFFFFFF}, "
                    f"ack {ack}, win {win}, options [nop,nop,TS val {val} ecr {ecr}], "
                    f"length {data_len}\n"
                )
            if not flags & 0x07:
                return (
                    f"{head}Flags [{names}], ack {ack}, win {win}, "
                    f"options [nop,nop,TS val {val} ecr {ecr}], length 0\n"
                )
        if data_len > 0:
            text = f"{head}Flags [{names}], seq {seq}:{(seq + data_len) & 0xFFFFFFFF}"
        elif flags & 0x07:
            text = f"{head}Flags [{names}], seq {seq}"
        else:
            text = f"{head}Flags [{names}]"
        if flags & 0x10:
            text += f", ack {ack}, win {win}"
        else:
            text += f", win {win}"
        if flags & 0x20:
            text += f", urg {urp}"
        if thlen == 32 and data[at + 20 : at + 24] == _NOP_NOP_TS:
            val, ecr = _TS_FAST.unpack_from(data, at + 24)
            return f"{text}, options [nop,nop,TS val {val} ecr {ecr}], length {data_len}\n"
        if thlen > 20:
            parts = [text, ", options ["]
            try:
                if not self._tcp_options(
                    parts, data[at + 20 : at + thlen], thlen - 20, rev, thseq, thack
                ):
                    return "".join(parts) + "\n"
            except _Truncated as exc:  # cannot happen with the header captured whole
                return "".join(parts) + f" [|{exc.proto}]{exc.suffix}\n"
            parts.append("]")
            text = "".join(parts)
        return f"{text}, length {data_len}\n"

    def _new_head(self, heads: dict[bytes, str], key: bytes, size: int, proto: str) -> str:
        """``SRC.SPORT > DST.DPORT: `` of a flow (``key``: the two addresses of ``size`` bytes
        each, then the two ports), remembered in ``heads``."""
        sport, dport = struct.unpack_from("!HH", key, 2 * size)
        head = (
            f"{self._addr(key[:size])}.{self._port(sport, proto)} > "
            f"{self._addr(key[size : 2 * size])}.{self._port(dport, proto)}: "
        )
        if len(heads) >= _CACHE_MAX:
            heads.clear()
        heads[key] = head
        return head

    def _conversation(
        self, src: bytes, dst: bytes, sport: int, dport: int
    ) -> tuple[bool, list[int]]:
        """A TCP conversation's initial numbers ``[seq, ack]`` (empty until the first segment
        with ACK), as print-tcp.c keys them (the lower port first), and whether this
        direction is the reverse one."""
        rev = sport > dport or (sport == dport and src > dst)
        key = (dst, src, dport << 16 | sport) if rev else (src, dst, sport << 16 | dport)
        state = self._tcp.get(key)
        if state is None:
            state = self._tcp[key] = []
        return rev, state

    def _relative(
        self, src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int
    ) -> tuple[int, int, bool, int, int]:
        """print-tcp.c's relative sequence numbers: (seq, ack, reversed, base seq, base ack).

        The first segment of a conversation seen with ACK (or any SYN) sets its initial
        numbers and prints absolute ones; later segments print theirs relative to them.
        """
        rev, state = self._conversation(src, dst, sport, dport)
        if not state or flags & 0x02:
            state[:] = ((ack - 1) & 0xFFFFFFFF, seq) if rev else (seq, (ack - 1) & 0xFFFFFFFF)
        elif rev:
            seq = (seq - state[1]) & 0xFFFFFFFF
            ack = (ack - state[0]) & 0xFFFFFFFF
        else:
            seq = (seq - state[0]) & 0xFFFFFFFF
            ack = (ack - state[1]) & 0xFFFFFFFF
        return seq, ack, rev, state[0], state[1]

    def _stamp(self, sec: int, usec: int) -> str:
        mode = self.o.tstamp
        now = sec * 1_000_000 + usec
        if mode == 1:
            return ""
        if mode == 2:
            return f"{sec}.{usec:06d} "
        if mode in (3, 5):
            if self._first is None:
                self._first = self._prev = now
            base = self._prev if mode == 3 else self._first
            assert base is not None
            delta = now - base
            self._prev = now
            sign = "-" if delta < 0 else " "
            delta = abs(delta)
            secs, frac = divmod(delta, 1_000_000)
            hours, rest = divmod(secs, 3600)
            return f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}.{frac:06d} "
        if self._clock[0] != sec:
            fmt = "%Y-%m-%d %H:%M:%S" if mode == 4 else "%H:%M:%S"
            self._clock = (sec, time.strftime(fmt, time.localtime(sec)))
        return f"{self._clock[1]}.{usec:06d} "

    # --- link layers ---------------------------------------------------------------------

    def _ether(self, out: list[str], data: bytes, length: int) -> int:
        """print-ether.c: the header only with -e; then the payload by ethertype."""
        if len(data) < 14:
            out.append("[|ether]")
            return len(data)
        ethertype = data[12] << 8 | data[13]
        hdrlen = 14
        if self.o.ether:
            out.append(f"{_mac(data[6:12])} > {_mac(data[0:6])}, ")
            if ethertype < 0x0600:
                out.append(f"802.3, length {ethertype}: ")
            else:
                out.append(self._ethertype_text(ethertype) + f", length {length}: ")
        self._ethertype(out, ethertype, data[hdrlen:], length - hdrlen, data, length)
        return hdrlen

    def _ethertype_text(self, ethertype: int) -> str:
        if self.o.quiet:
            return _ETHERTYPES.get(ethertype, f"Unknown Ethertype (0x{ethertype:04x})")
        return f"ethertype {_ETHERTYPES.get(ethertype, 'Unknown')} (0x{ethertype:04x})"

    def _sll2(self, out: list[str], data: bytes, length: int) -> int:
        """print-sll.c (sll2_if_print): interface, direction, then with -e the header fields."""
        if len(data) < SLL2_LEN:
            out.append("[|sll2]")
            return len(data)
        protocol, _res, ifindex, _hatype, pkttype, halen = struct.unpack_from("!HHiHBB", data)
        out.append(f"{self.ifname(ifindex):<5} {_SLL_PKTTYPES.get(pkttype, '?'):<3} ")
        if self.o.ether:
            out.append(f"ifindex {ifindex} ")
            if halen == 6:
                out.append(_mac(data[12:18]) + " ")
            if not self.o.quiet:
                if protocol <= 1500:
                    names = {0x0001: "802.3", 0x0004: "802.2"}
                    out.append(names.get(protocol, f"ethertype Unknown (0x{protocol:04x})"))
                else:
                    name = _ETHERTYPES.get(protocol, "Unknown")
                    out.append(f"ethertype {name} (0x{protocol:04x})")
                out.append(f", length {length}: ")
        self._ethertype(out, protocol, data[SLL2_LEN:], length - SLL2_LEN, data, length)
        return SLL2_LEN

    def _ethertype(
        self, out: list[str], ethertype: int, body: bytes, length: int, frame: bytes, wire: int
    ) -> None:
        try:
            if ethertype == 0x0800:
                self._ip(out, body, length)
            elif ethertype == 0x86DD:
                self._ip6(out, body, length)
            elif ethertype == 0x0806:
                self._arp(out, body, length)
            else:
                if not self.o.ether:
                    if self.linktype == LINKTYPE_ETHERNET:
                        out.append(f"{_mac(frame[6:12])} > {_mac(frame[0:6])}, ")
                        out.append(self._ethertype_text(ethertype) + f", length {wire}: ")
                    else:
                        out.append(self._ethertype_text(ethertype) + f", length {wire}: ")
                if not (self.o.hex or self.o.hex_ascii or self.o.ascii):
                    out.append(_hex_ascii("\n\t", body))
        except _Truncated as exc:
            out.append(f" [|{exc.proto}]{exc.suffix}")
            self._unwound = exc.unwound
        except (IndexError, struct.error):
            out.append(" [|ether]")

    # --- names ---------------------------------------------------------------------------

    def _addr(self, raw: bytes) -> str:
        name = self._hosts.get(raw)
        if name is None:
            family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
            name = socket.inet_ntop(family, raw)
            if not self.o.numeric:
                try:
                    name = socket.gethostbyaddr(name)[0]
                except OSError:
                    pass
            if len(self._hosts) >= _CACHE_MAX:
                self._hosts.clear()
            self._hosts[bytes(raw)] = name
        return name

    def _port(self, port: int, proto: str) -> str:
        if self.o.numeric:
            return str(port)
        key = (port, proto)
        name = self._services.get(key)
        if name is None:
            try:
                name = socket.getservbyport(port, proto)
            except OSError:
                name = str(port)
            self._services[key] = name
        return name

    # --- ARP -------------------------------------------------------------------------------

    def _arp(self, out: list[str], body: bytes, length: int) -> None:
        """print-arp.c (arp_print) for Ethernet/IPv4."""
        if len(body) < 8:
            raise _Truncated("arp")
        hrd, pro, hln, pln, op = struct.unpack_from("!HHBBH", body)
        if len(body) < 8 + 2 * hln + 2 * pln:
            raise _Truncated("arp")
        sha = body[8 : 8 + hln]
        spa = body[8 + hln : 8 + hln + pln]
        tha = body[8 + hln + pln : 8 + 2 * hln + pln]
        tpa = body[8 + 2 * hln + pln : 8 + 2 * hln + 2 * pln]
        if pro != 0x0800 or pln != 4 or hln == 0:
            out.append(
                f"ARP, {'Ethernet' if hrd == 1 else f'Unknown Hardware ({hrd})'} (len {hln}), "
                f"{_ETHERTYPES.get(pro, f'Unknown Protocol (0x{pro:04x})')} (len {pln})"
            )
            return
        if not self.o.ether:
            out.append("ARP, ")
        if self.o.verbose:
            hw = "Ethernet" if hrd == 1 else f"Unknown Hardware ({hrd})"
            out.append(f"{hw} (len {hln}), IPv4 (len {pln}), ")
        spa_s, tpa_s = self._addr(spa), self._addr(tpa)
        if op == 1:
            out.append(f"Request who-has {tpa_s}")
            if any(tha):
                out.append(f" ({_mac(tha)})")
            out.append(f" tell {spa_s}")
        elif op == 2:
            out.append(f"Reply {spa_s} is-at {_mac(sha)}")
        elif op == 3:
            out.append(f"Reverse Request who-is {_mac(tha)} tell {_mac(sha)}")
        elif op == 4:
            out.append(f"Reverse Reply {_mac(tha)} at {tpa_s}")
        elif op == 8:
            out.append(f"Inverse Request who-is {tpa_s} tell {_mac(sha)}")
        elif op == 9:
            out.append(f"Inverse Reply {_mac(sha)} at {spa_s}")
        else:
            if not (self.o.hex or self.o.hex_ascii or self.o.ascii):
                out.append(_hex_ascii("\n\t", body))
            return
        out.append(f", length {length}")

    # --- IPv4 ------------------------------------------------------------------------------

    def _ip(self, out: list[str], body: bytes, length: int) -> None:
        """print-ip.c (ip_print)."""
        if len(body) < 20:
            out.append("IP " if not self.o.ether else "")
            raise _Truncated("ip")
        if not self.o.ether:
            out.append("IP ")
        vhl, tos, total, ident, off, ttl, proto, _sum = struct.unpack_from("!BBHHHBBH", body)
        if vhl >> 4 != 4:
            out.append(f"IP{vhl >> 4}")
            return
        hlen = (vhl & 0x0F) * 4
        if hlen < 20:
            out.append(f"bad-hlen {hlen}")
            return
        if total > length:
            out.append(f"[total length {total} > length {length}] (invalid) ")
        if total < hlen:
            out.append(f"bad-len {total}")
            return
        if self.o.verbose:
            text = f"(tos 0x{tos:x}"
            text += {1: ",ECT(1)", 2: ",ECT(0)", 3: ",CE"}.get(tos & 3, "")
            flags = [n for bit, n in ((0x2000, "+"), (0x4000, "DF"), (0x8000, "rsvd")) if off & bit]
            text += (
                f", ttl {ttl}, id {ident}, offset {(off & 0x1FFF) * 8}, "
                f"flags [{', '.join(flags) or 'none'}], "
                f"proto {_IPPROTO.get(proto, 'unknown')} ({proto})"
            )
            if hlen > 20:
                text += ", options (" + self._ip_options(body[20:hlen]) + ")"
            if len(body) >= hlen:
                computed = _cksum(body[:hlen])
                if computed:
                    field = _sum
                    text += f", bad cksum {field:x} (->{_shouldbe(field, computed):x})!"
            text += f", length {total})\n    "
            out.append(text)
        src, dst = body[12:16], body[16:20]
        payload = body[hlen:total]
        plen = total - hlen
        fragmented = bool(off & 0x3FFF)
        if off & 0x1FFF:
            if self.o.quiet > 1:
                return
            out.append(f"{self._addr(src)} > {self._addr(dst)}: ip-proto-{proto}")
            return
        pseudo = src + dst + struct.pack("!BBH", 0, proto, plen)
        self._transport(out, proto, src, dst, payload, plen, pseudo, fragmented, 4, body)

    def _ip_options(self, raw: bytes) -> str:
        parts = []
        i = 0
        names = {0: "EOL", 1: "NOP", 7: "RR", 68: "TS", 130: "SECURITY", 131: "LSRR"}
        names.update({137: "SSRR", 148: "RA"})
        while i < len(raw):
            kind = raw[i]
            if kind in (0, 1):
                parts.append(names[kind])
                i += 1
                continue
            size = raw[i + 1] if i + 1 < len(raw) else 0
            if size < 2:
                parts.append(f"{names.get(kind, f'unknown {kind}')} [bad length {size}]")
                break
            if kind == 148 and size == 4:
                value = struct.unpack_from("!H", raw, i + 2)[0]
                parts.append("RA" + (f" value {value}" if value else ""))
            else:
                parts.append(names.get(kind, f"unknown {kind}") + f" len {size}")
            i += size
        return ",".join(parts)

    # --- IPv6 ------------------------------------------------------------------------------

    def _ip6(self, out: list[str], body: bytes, length: int) -> None:
        """print-ip6.c (ip6_print): fixed header, hop-by-hop options, then the payload."""
        if not self.o.ether:
            out.append("IP6 ")
        if len(body) < 40:
            raise _Truncated("ip6")
        flow, plen, nh, hlim = struct.unpack_from("!IHBB", body)
        if flow >> 28 != 6:
            out.append(f"version error: {flow >> 28} != 6")
            return
        if self.o.verbose:
            text = "("
            if flow & 0x0FF00000:
                text += f"class 0x{(flow & 0x0FF00000) >> 20:02x}, "
            if flow & 0x000FFFFF:
                text += f"flowlabel 0x{flow & 0x000FFFFF:05x}, "
            text += (
                f"hlim {hlim}, next-header {_IPPROTO.get(nh, 'unknown')} ({nh}) "
                f"payload length: {plen}) "
            )
            out.append(text)
        src, dst = body[8:24], body[24:40]
        payload = body[40 : 40 + plen]
        if nh not in (6, 17):
            out.append(f"{self._addr(src)} > {self._addr(dst)}: ")
        while nh == 0:  # hop-by-hop options
            if len(payload) < 2:
                raise _Truncated("hbhopt")
            size = (payload[1] + 1) * 8
            if len(payload) < size:
                raise _Truncated("hbhopt")
            out.append("HBH ")
            if self.o.verbose:
                out.append(self._ip6_options(payload[2:size]))
            nh = payload[0]
            payload = payload[size:]
            plen -= size
        if nh == 59:
            out.append("no next header")
            return
        pseudo = src + dst + struct.pack("!IxxxB", plen, nh)
        self._transport(out, nh, src, dst, payload, plen, pseudo, False, 6, body)

    def _ip6_options(self, raw: bytes) -> str:
        parts = []
        i = 0
        while i < len(raw):
            kind = raw[i]
            if kind == 0:
                parts.append("(pad1)")
                i += 1
                continue
            size = raw[i + 1] + 2
            if kind == 1:
                parts.append("(padn)")
            elif kind == 5 and size == 4:
                parts.append(f"(rtalert: 0x{struct.unpack_from('!H', raw, i + 2)[0]:04x}) ")
            else:
                parts.append(f"(opt_type 0x{kind:02x}: len={raw[i + 1]})")
            i += size
        return "".join(parts) + " "

    # --- transport -------------------------------------------------------------------------

    def _transport(
        self,
        out: list[str],
        proto: int,
        src: bytes,
        dst: bytes,
        payload: bytes,
        plen: int,
        pseudo: bytes,
        fragmented: bool,
        version: int,
        ip: bytes,
    ) -> None:
        if proto == 6:
            self._tcp_print(out, src, dst, payload, plen, pseudo, fragmented)
        elif proto == 17:
            self._udp(out, src, dst, payload, plen, pseudo, fragmented, version)
        elif proto == 1 and version == 4:
            out.append(f"{self._addr(src)} > {self._addr(dst)}: ")
            self._icmp(out, payload, plen, fragmented)
        elif proto == 58 and version == 6:
            self._icmp6(out, payload, plen, pseudo, fragmented)
        else:
            if version == 4:
                out.append(f"{self._addr(src)} > {self._addr(dst)}: ")
            out.append(f" ip-proto-{proto} {plen}")

    def _tcp_print(
        self,
        out: list[str],
        src: bytes,
        dst: bytes,
        seg: bytes,
        length: int,
        pseudo: bytes,
        fragmented: bool,
    ) -> None:
        """print-tcp.c (tcp_print)."""
        if len(seg) < 4:
            out.append(f"{self._addr(src)} > {self._addr(dst)}:")
            raise _Truncated("tcp")
        sport, dport = struct.unpack_from("!HH", seg)
        out.append(
            f"{self._addr(src)}.{self._port(sport, 'tcp')} > "
            f"{self._addr(dst)}.{self._port(dport, 'tcp')}: "
        )
        if len(seg) < 20:
            raise _Truncated("tcp")
        _sp, _dp, seq, ack, off, flags, win, tcp_sum, urp = struct.unpack_from("!HHIIBBHHH", seg)
        hlen = (off >> 4) * 4
        if hlen < 20:
            out.append(f" tcp {length - hlen} [bad hdr length {hlen} - too short, < 20]")
            return
        if self.o.quiet:
            out.append(f"tcp {length - hlen}")
            if hlen > length:
                out.append(f" [bad hdr length {hlen} - too long, > {length}]")
            return
        out.append("Flags [" + ("".join(n for bit, n in _TCP_FLAGS if flags & bit) or "none") + "]")
        thseq = thack = 0
        rev = False
        if not self.o.absolute_seq and flags & 0x10:
            seq, ack, rev, thseq, thack = self._relative(src, dst, sport, dport, seq, ack, flags)
        if hlen > length:
            out.append(f" [bad hdr length {hlen} - too long, > {length}]")
            return
        if self.o.verbose and not fragmented and len(seg) >= length:
            computed = _cksum(pseudo + seg[:length])
            out.append(f", cksum 0x{tcp_sum:04x}")
            if computed:
                out.append(f" (incorrect -> 0x{_shouldbe(tcp_sum, computed):04x})")
            else:
                out.append(" (correct)")
        data_len = length - hlen
        if self.o.verbose > 1 or data_len > 0 or flags & 0x07:
            out.append(f", seq {seq}")
            if data_len > 0:
                out.append(f":{(seq + data_len) & 0xFFFFFFFF}")
        if flags & 0x10:
            out.append(f", ack {ack}")
        out.append(f", win {win}")
        if flags & 0x20:
            out.append(f", urg {urp}")
        if hlen > 20:
            out.append(", options [")
            if not self._tcp_options(out, seg[20:hlen], hlen - 20, rev, thseq, thack):
                return  # a malformed option ends the line, as in tcpdump
            out.append("]")
        out.append(f", length {data_len}")
        if data_len <= 0:
            return
        data = seg[hlen:length]
        if flags & 0x04 and self.o.verbose:
            shown = data[:30]
            out.append(" [RST" + ("+" if data_len > 30 else "") + " " + _printable(shown) + "]")
            return
        if 53 in (sport, dport):
            self._dns_tcp(out, data, data_len)
        elif sport in (80, 8080) or dport in (80, 8080):
            out.append(": ")
            self._http(out, data, data_len)

    def _tcp_options(
        self, out: list[str], raw: bytes, hlen: int, rev: bool, thseq: int, thack: int
    ) -> bool:
        """The option list (``raw``: the captured part of ``hlen`` bytes); False if malformed.

        Cut off by the snapshot: `` [|tcp]``, with tcpdump's ``>`` when an option's data (not
        its kind or length) is missing after the first option.
        """
        i = 0
        sep = ""
        while hlen > 0:
            out.append(sep)
            if i >= len(raw):
                raise _Truncated("tcp", unwound=True)
            kind = raw[i]
            i += 1
            if kind in (0, 1):
                size = 1
            else:
                if i >= len(raw):
                    raise _Truncated("tcp", unwound=True)
                size = raw[i]
                i += 1
                if size < 2 or size > hlen:
                    out.append("[bad opt]" + ("]" if sep else ""))
                    return False
                hlen -= 1
            hlen -= 1
            out.append(_TCP_OPTS.get(kind, f"unknown-{kind}"))

            body = raw[i:]
            datalen = 0
            if kind == 2:
                datalen = 2
                if not _opt_fits(out, 2, hlen, i, raw, sep):
                    return False
                out.append(f" {struct.unpack_from('!H', body)[0]}")
            elif kind == 3:
                datalen = 1
                if not _opt_fits(out, 1, hlen, i, raw, sep):
                    return False
                out.append(f" {body[0]}")
            elif kind == 5:
                datalen = size - 2
                if datalen % 8:
                    out.append(" invalid sack")
                else:
                    out.append(f" {datalen // 8} ")
                    base = thseq if rev else thack
                    for j in range(0, datalen, 8):
                        if not _opt_fits(out, j + 8, hlen, i, raw, sep):
                            return False
                        s, e = struct.unpack_from("!II", body, j)
                        out.append(f"{{{(s - base) & 0xFFFFFFFF}:{(e - base) & 0xFFFFFFFF}}}")
            elif kind in (6, 7, 11, 12, 13):
                datalen = 4
                if not _opt_fits(out, 4, hlen, i, raw, sep):
                    return False
                out.append(f" {struct.unpack_from('!I', body)[0]}")
            elif kind == 8:
                datalen = 8
                if not _opt_fits(out, 8, hlen, i, raw, sep):
                    return False
                val, ecr = struct.unpack_from("!II", body)
                out.append(f" val {val} ecr {ecr}")
            elif kind == 28:
                datalen = 2
                if not _opt_fits(out, 2, hlen, i, raw, sep):
                    return False
                uto = struct.unpack_from("!H", body)[0]
                out.append(f" 0x{uto:x} {(uto >> 1) * 60 if uto & 1 else uto >> 1}")
            elif kind not in (0, 1, 4):
                datalen = size - 2
                if datalen:
                    out.append(" 0x")
                for j in range(datalen):
                    if not _opt_fits(out, j + 1, hlen, i, raw, sep):
                        return False
                    out.append(f"{body[j]:02x}")
            i += datalen
            hlen -= datalen
            if datalen + (1 if kind in (0, 1) else 2) != size:
                out.append(f"[len {size}]")
            sep = ","
            if kind == 0:
                break
        return True

    def _udp(
        self,
        out: list[str],
        src: bytes,
        dst: bytes,
        dgram: bytes,
        length: int,
        pseudo: bytes,
        fragmented: bool,
        version: int,
    ) -> None:
        """print-udp.c (udp_print) with DNS on port 53."""
        if len(dgram) < 4:
            out.append(f"{self._addr(src)} > {self._addr(dst)}: ")
            raise _Truncated("udp")
        sport, dport = struct.unpack_from("!HH", dgram)
        head = (
            f"{self._addr(src)}.{self._port(sport, 'udp')} > "
            f"{self._addr(dst)}.{self._port(dport, 'udp')}: "
        )
        if length < 8:
            out.append(head + f"truncated-udp {length}")
            return
        if len(dgram) < 6:
            out.append(head)
            raise _Truncated("udp")
        ulen = struct.unpack_from("!H", dgram, 4)[0]
        if ulen < 8:
            out.append(head + f"truncated-udplength {ulen}")
            return
        ulen -= 8
        length -= 8
        if ulen < length:
            length = ulen
        out.append(head)
        if len(dgram) < 8:
            raise _Truncated("udp")
        udp_sum = struct.unpack_from("!H", dgram, 6)[0] if len(dgram) >= 8 else 0
        if self.o.verbose and not fragmented:
            if version == 4 and self.o.verbose > 1:
                if udp_sum == 0:
                    out.append("[no cksum] ")
                elif len(dgram) >= 8 + length:
                    computed = _cksum(pseudo + dgram[: 8 + length])
                    if computed:
                        fix = _shouldbe(udp_sum, computed)
                        out.append(f"[bad udp cksum 0x{udp_sum:04x} -> 0x{fix:04x}!] ")
                    else:
                        out.append("[udp sum ok] ")
            elif version == 6 and len(dgram) >= 8 + length:
                computed = _cksum(pseudo + dgram[: 8 + length])
                if computed:
                    fix = _shouldbe(udp_sum, computed)
                    out.append(f"[bad udp cksum 0x{udp_sum:04x} -> 0x{fix:04x}!] ")
                else:
                    out.append("[udp sum ok] ")
        if not self.o.quiet and 53 in (sport, dport):
            self._dns(out, dgram[8 : 8 + length], length)
            return
        if ulen > length and not fragmented:
            out.append(f"UDP, bad length {ulen} > {length}")
        else:
            out.append(f"UDP, length {ulen}")

    # --- ICMP ------------------------------------------------------------------------------

    def _icmp(self, out: list[str], msg: bytes, plen: int, fragmented: bool) -> None:
        """print-icmp.c (icmp_print)."""
        if len(msg) < 4:
            raise _Truncated("icmp")
        kind, code = msg[0], msg[1]
        if kind in (0, 8):
            if len(msg) < 8:
                raise _Truncated("icmp")
            ident, seq = struct.unpack_from("!HH", msg, 4)
            what = f"echo {'reply' if kind == 0 else 'request'}, id {ident}, seq {seq}"
        elif kind == 3:
            if len(msg) < 28:
                raise _Truncated("icmp", unwound=True)
            inner = msg[8:]
            idst = self._addr(inner[16:20])
            if code == 2:
                what = f"{idst} protocol {inner[9]} unreachable"
            elif code == 3:
                ihl = (inner[0] & 0x0F) * 4
                if len(inner) < ihl + 4:
                    raise _Truncated("icmp", unwound=True)
                iport = struct.unpack_from("!H", inner, ihl + 2)[0]
                if inner[9] == 6:
                    what = f"{idst} tcp port {self._port(iport, 'tcp')} unreachable"
                elif inner[9] == 17:
                    what = f"{idst} udp port {self._port(iport, 'udp')} unreachable"
                else:
                    what = f"{idst} protocol {inner[9]} port {iport} unreachable"
            elif code == 4:
                mtu = struct.unpack_from("!H", msg, 6)[0]
                what = f"{idst} unreachable - need to frag" + (f" (mtu {mtu})" if mtu else "")
            else:
                what = _ICMP_UNREACH.get(code, "{} unreachable - #" + str(code)).format(idst)
        elif kind == 11:
            what = {0: "time exceeded in-transit", 1: "ip reassembly time exceeded"}.get(
                code, f"time exceeded-#{code}"
            )
        else:
            what = _ICMP_TYPES.get(kind, f"type-#{kind}")
        out.append(f"ICMP {what}, length {plen}")
        if self.o.verbose and not fragmented and len(msg) >= plen:
            computed = _cksum(msg[:plen])
            if computed:
                field = struct.unpack_from("!H", msg, 2)[0]
                out.append(f" (wrong icmp cksum {field:x} (->{_shouldbe(field, computed):x})!)")
        if self.o.verbose and kind in (3, 4, 5, 11, 12) and len(msg) >= 28:
            out.append("\n\t")
            inner = msg[8:]
            total = struct.unpack_from("!H", inner, 2)[0]
            self._ip(out, inner[:total], total)

    def _icmp6(
        self, out: list[str], msg: bytes, length: int, pseudo: bytes, fragmented: bool
    ) -> None:
        """print-icmp6.c (icmp6_print)."""
        if len(msg) < 4:
            raise _Truncated("icmp6", unwound=True)
        kind, code = msg[0], msg[1]
        verbose = self.o.verbose
        if verbose and not fragmented and len(msg) >= length:
            computed = _cksum(pseudo + msg[:length])
            field = struct.unpack_from("!H", msg, 2)[0]
            if computed:
                out.append(
                    f"[bad icmp6 cksum 0x{field:04x} -> 0x{_shouldbe(field, computed):04x}!] "
                )
            else:
                out.append("[icmp6 sum ok] ")
        out.append("ICMP6, " + _ICMP6_TYPES.get(kind, f"unknown icmp6 type ({kind})"))
        if verbose and kind in (133, 134, 135, 136, 137):
            out.append(f", length {length}")
        if kind in (128, 129):
            if len(msg) < 8:
                raise _Truncated("icmp6", unwound=True)
            ident, seq = struct.unpack_from("!HH", msg, 4)
            out.append(f", id {ident}, seq {seq}")
        elif kind == 1:
            out.append(", " + _ICMP6_UNREACH.get(code, f"unknown unreach code ({code})"))
            inner = msg[8:]
            if code in (0, 1, 3) and len(inner) >= 40:
                out.append(" " + self._addr(inner[24:40]))
            elif code == 4:
                if len(inner) < 44:
                    raise _Truncated("icmp6")  # get_upperlayer: the inner ports are cut off
                iport = struct.unpack_from("!H", inner, 42)[0]
                if inner[6] == 6:
                    out.append(f", {self._addr(inner[24:40])} tcp port {self._port(iport, 'tcp')}")
                elif inner[6] == 17:
                    out.append(f", {self._addr(inner[24:40])} udp port {self._port(iport, 'udp')}")
                else:
                    out.append(
                        f", {self._addr(inner[24:40])} protocol {inner[6]} port {iport} unreachable"
                    )
        elif kind == 133:
            if verbose:
                self._nd_options(out, msg[8:length])
        elif kind == 135:
            if len(msg) < 24:
                raise _Truncated("icmp6", unwound=True)
            out.append(f", who has {self._addr(msg[8:24])}")
            if verbose:
                self._nd_options(out, msg[24:length])
        elif kind == 136:
            if len(msg) < 24:
                raise _Truncated("icmp6", unwound=True)
            out.append(f", tgt is {self._addr(msg[8:24])}")
            if verbose:
                word = struct.unpack_from("!I", msg, 4)[0]
                names = [
                    n
                    for bit, n in (
                        (1 << 31, "router"),
                        (1 << 30, "solicited"),
                        (1 << 29, "override"),
                    )
                    if word & bit
                ]
                out.append(f", Flags [{', '.join(names) or 'none'}]")
                self._nd_options(out, msg[24:length])
        elif kind == 143:
            self._mldv2_report(out, msg, length)
        else:
            out.append(f", length {length}")
            if verbose <= 1:
                out.append(_hex("\n\t", msg[:length]))
            return
        if not verbose:
            out.append(f", length {length}")

    def _nd_options(self, out: list[str], raw: bytes) -> None:
        i = 0
        while i < len(raw):
            if i + 2 > len(raw):
                raise _Truncated("icmp6", unwound=True)
            kind, units = raw[i], raw[i + 1]
            if units == 0 or i + units * 8 > len(raw):
                raise _Truncated("icmp6", unwound=True)
            size = units * 8
            body = raw[i + 2 : i + size]
            out.append(
                f"\n\t  {_ND_OPTS.get(kind, 'unknown')} option ({kind}), length {size} ({units}): "
            )
            if kind in (1, 2):
                out.append(_mac(body))
            elif kind == 5 and len(body) >= 6:
                out.append(f" {struct.unpack_from('!I', body, 2)[0]}")
            else:
                if self.o.verbose <= 1:
                    out.append(_hex("\n\t  ", body))
                    return
            if self.o.verbose > 1:
                out.append(_hex("\n\t    ", body))
            i += size

    def _mldv2_report(self, out: list[str], msg: bytes, length: int) -> None:
        if length < 8 or len(msg) < 8:
            out.append(f" [invalid len {length}]")
            return
        groups = struct.unpack_from("!H", msg, 6)[0]
        out.append(f", {groups} group record(s)")
        if not self.o.verbose:
            return
        at = 8
        for _ in range(groups):
            if length < at + 20:
                out.append(" [invalid number of groups]")
                return
            if len(msg) < at + 20:
                raise _Truncated("icmp6", unwound=True)
            rtype, _aux, nsrcs = struct.unpack_from("!BBH", msg, at)
            out.append(f" [gaddr {self._addr(msg[at + 4 : at + 20])}")
            out.append(" " + _MLDV2_RECORDS.get(rtype, f" [v2-report-#{rtype}]"))
            if length < at + 20 + nsrcs * 16:
                out.append(f" [invalid number of sources {nsrcs}]")
                return
            if self.o.verbose == 1:
                out.append(f", {nsrcs} source(s)")
            else:
                if len(msg) < at + 20 + nsrcs * 16:
                    out.append(" {")
                    raise _Truncated("icmp6", unwound=True)
                sources = [
                    self._addr(msg[at + 20 + j * 16 : at + 36 + j * 16]) for j in range(nsrcs)
                ]
                out.append(" {" + "".join(" " + s for s in sources) + " }")
            at += 20 + nsrcs * 16
            out.append("]")

    # --- DNS (wire format read by fleetkit.netns.dns) ------------------------------------------

    def _dns_tcp(self, out: list[str], data: bytes, length: int) -> None:
        if length < 2:
            out.append(f" [DNS over TCP: length {length} < 2] (invalid)")
            return
        length -= 2
        prefix = struct.unpack_from("!H", data)[0]
        if prefix != length:
            out.append(f" [prefix length({prefix}) != length({length})] (invalid)")
            return
        out.append(" ")
        self._dns(out, data[2:], length)

    def _dns(self, out: list[str], msg: bytes, length: int) -> None:
        """print-domain.c (ns_print): header summary, question, answers; more with -vv."""
        if length < 12:
            out.append(f"domain [length {length} < 12] (invalid)")
            return
        try:
            self._dns_message(out, msg, length)
        except (dns.DNSWireError, struct.error, IndexError):
            out.append(" [|domain]")

    def _name(self, labels: list[bytes]) -> str:
        if not labels:
            return "."
        return "".join(_printable(label) + "." for label in labels)

    def _dns_message(self, out: list[str], msg: bytes, length: int) -> None:
        """ns_print over the captured bytes ``msg`` (the message may be cut by the snapshot).

        As tcpdump: what fits is printed as it is read; a record whose fixed part is cut off
        ends the listing quietly, anything else cut off ends in `` [|domain]``.
        """
        if len(msg) < 12:
            raise dns.DNSWireError("header cut off")
        ident, flags, qd, an, ns, ar = dns.read_header(msg)
        vv = self.o.verbose > 1
        rcode = flags & 0xF
        rcode |= self._extended_rcode(msg, qd, an + ns, ar) << 4
        opcode = (flags >> 11) & 0xF
        ops = _DNS_OPS[opcode] if opcode < len(_DNS_OPS) else f" op{opcode}"
        end = len(msg)
        at = 12
        if flags & 0x8000:
            rtext = _DNS_RCODES[rcode] if rcode < len(_DNS_RCODES) else f" Resp{rcode}"
            out.append(
                f"{ident}{ops}{rtext}{'*' if flags & 0x0400 else ''}"
                f"{'' if flags & 0x0080 else '-'}{'|' if flags & 0x0200 else ''}"
                f"{'$' if flags & 0x0020 else ''}"
            )
            if qd != 1:
                out.append(f" [{qd}q]")
            for i in range(qd):
                if i:
                    out.append(",")
                if vv:
                    out.append(" q:")
                    at = self._dns_question(out, msg, at)
                else:
                    at = dns.read_labels(msg, at)[1] + 4
            out.append(f" {an}/{ns}/{ar}")
            if an:
                at = self._dns_section(out, msg, at, an, "", True)
            if vv:
                for count, title in ((ns, " ns:"), (ar, " ar:")):
                    if count:
                        at = self._dns_section(out, msg, at, count, title, at < end)
        else:
            out.append(
                f"{ident}{ops}{'+' if flags & 0x0100 else ''}{'%' if flags & 0x0010 else ''}"
            )
            if flags & 0x6CF:
                out.append(f" [b2&3=0x{flags:x}]")
            if opcode == 1:
                if qd:
                    out.append(f" [{qd}q]")
                if an != 1:
                    out.append(f" [{an}a]")
            else:
                if an:
                    out.append(f" [{an}a]")
                if qd != 1:
                    out.append(f" [{qd}q]")
            if ns:
                out.append(f" [{ns}n]")
            if ar:
                out.append(f" [{ar}au]")
            for i in range(qd):
                if i and at >= end:
                    raise dns.DNSWireError("questions cut off")
                at = self._dns_question(out, msg, at)
            if vv:
                for count, title in ((an, " an:"), (ns, " ns:"), (ar, " ar:")):
                    if count:
                        at = self._dns_section(out, msg, at, count, title, True)
        out.append(f" ({length})")

    def _extended_rcode(self, msg: bytes, qd: int, records: int, ar: int) -> int:
        """The upper rcode bits from an OPT record's TTL (0 when none can be read)."""
        try:
            at = 12
            for _ in range(qd):
                at = dns.read_labels(msg, at)[1] + 4
            for _ in range(records):
                at = dns.read_record(msg, at).end
            for _ in range(ar):
                rr = dns.read_record(msg, at)
                if rr.rtype == 41:
                    return rr.ttl >> 24
                at = rr.end
        except (dns.DNSWireError, struct.error):
            pass
        return 0

    def _dns_question(self, out: list[str], msg: bytes, at: int) -> int:
        labels, qtype, qclass, end = dns.read_question(msg, at)
        text = " " + _DNS_TYPES.get(qtype, f"Type{qtype}")
        if qclass != 1:
            text += " " + _DNS_CLASSES.get(qclass, f"(Class {qclass})")
        out.append(text + "? " + self._name(labels))
        return end

    def _dns_section(
        self, out: list[str], msg: bytes, at: int, count: int, title: str, first: bool
    ) -> int:
        """Records while bytes remain; DNSWireError (`` [|domain]``) if some were not shown."""
        end = len(msg)
        if first:
            out.append(title)
            at = self._dns_record(out, msg, at)
            count -= 1
        while at < end and count:
            out.append(",")
            at = self._dns_record(out, msg, at)
            count -= 1
        if count:
            raise dns.DNSWireError("records cut off")
        return at

    def _dns_record(self, out: list[str], msg: bytes, at: int) -> int:
        """ns_rprint: [name] [class] [ttl] TYPE data; the offset after it."""
        if self.o.verbose:
            out.append(" ")
            labels, at = dns.read_labels(msg, at)  # cut off: `` [|domain]``
            out.append(self._name(labels))
        else:
            try:
                at = dns.read_labels(msg, at)[1]
            except dns.DNSWireError:
                return len(msg)  # ns_nskip failed: the listing stops quietly
        if at + 10 > len(msg):
            return len(msg)  # the fixed part is cut off: tcpdump stops listing, quietly
        rtype, rclass, ttl, size = (int(v) for v in struct.unpack_from("!HHIH", msg, at))
        start = at + 10
        text = ""
        if rclass != 1 and rtype != 41:
            text += " " + _DNS_CLASSES.get(rclass, f"(Class {rclass})")
        if rtype != 41 and self.o.verbose > 2:
            text += f" [{_relts(ttl)}]"
        text += " " + _DNS_TYPES.get(rtype, f"Type{rtype}")
        out.append(text)
        if start + size > len(msg):
            raise dns.DNSWireError("record data cut off")
        data = msg[start : start + size]
        text = ""
        if rtype == 1:
            if size < 4:
                raise dns.DNSWireError("short A")
            text = " " + socket.inet_ntop(socket.AF_INET, data[:4])
        elif rtype == 28:
            if size < 16:
                raise dns.DNSWireError("short AAAA")
            text = " " + socket.inet_ntop(socket.AF_INET6, data[:16])
        elif rtype in (2, 5, 12, 39):
            text = " " + self._name(dns.read_labels(msg, start)[0])
        elif rtype == 6:
            if self.o.verbose:
                mname, pos = dns.read_labels(msg, start)
                rname, pos = dns.read_labels(msg, pos)
                numbers = struct.unpack_from("!IIIII", msg, pos)
                text = f" {self._name(mname)} {self._name(rname)}"
                text += "".join(f" {n}" for n in numbers)
        elif rtype == 15:
            pref = struct.unpack_from("!H", msg, start)[0]
            text = f" {self._name(dns.read_labels(msg, start + 2)[0])} {pref}"
        elif rtype == 16:
            i = 0
            while i < size:
                n = data[i]
                if i + 1 + n > size:
                    raise dns.DNSWireError("TXT string past its record")
                text += ' "' + _printable(data[i + 1 : i + 1 + n]) + '"'
                i += 1 + n
        elif rtype == 33:
            prio, weight, port = struct.unpack_from("!HHH", msg, start)
            text = f" {self._name(dns.read_labels(msg, start + 6)[0])}:{port} {prio} {weight}"
        elif rtype == 41:
            text = f" UDPsize={rclass}"
            if ttl & 0x8000:
                text += " DO"
            if size:
                text += " [" + self._edns_options(data) + "]"
        out.append(text)
        return start + size

    def _edns_options(self, data: bytes) -> str:
        parts = []
        i = 0
        while i < len(data):
            code, size = struct.unpack_from("!HH", data, i)
            body = data[i + 4 : i + 4 + size]
            if len(body) != size:
                raise dns.DNSWireError("EDNS option past its record")
            text = _EDNS_OPTS.get(code, f"Opt{code}")
            if size:
                text += " "
                if code == 10:
                    if size < 8 or 8 < size < 16 or size > 40:
                        text += "(invalid)"
                    else:
                        text += body[:8].hex() + (" " + body[8:].hex() if size > 8 else "")
                elif code == 11 and size == 2:
                    text += f"{struct.unpack('!H', body)[0] / 10.0:0.1f} sec"
                elif code == 9 and size == 4:
                    text += f"{struct.unpack('!I', body)[0]} sec"
                elif code == 12:
                    text += f"({size})"
                elif code == 14 and size % 2 == 0:
                    text += " ".join(str(v) for v in struct.unpack(f"!{size // 2}H", body))
                elif code in (9, 11, 14):
                    text += "(invalid)"
                else:
                    text += body.hex()
            parts.append(text)
            i += 4 + size
        return ",".join(parts)

    # --- HTTP ------------------------------------------------------------------------------

    def _http(self, out: list[str], data: bytes, length: int) -> None:
        """print-http.c via txtproto_print: the request/status line; every line with -v."""
        show = False
        token, idx = _fetch_token(data, 0, length)
        if idx:
            if token.upper() in _HTTP_METHODS:
                show = True
            token, idx = _fetch_token(data, idx, length)
            if idx and len(token) == 3 and token.isdigit():
                show = True
        out.append("HTTP")
        if not show:
            return
        if self.o.verbose:
            out.append(f", length: {length}")
            at = 0
            while at < length:
                at = _txt_line(out, "\n\t", data, at, length)
                if at == 0:
                    break
        else:
            _txt_line(out, ": ", data, 0, length)


def _opt_fits(out: list[str], n: int, hlen: int, at: int, raw: bytes, sep: str) -> bool:
    """print-tcp.c LENCHECK: ``n`` option bytes inside the header (else ``[bad opt]``, False)
    and captured (else `` [|tcp]``, with ``>`` after the first option)."""
    if n > hlen:
        out.append("[bad opt]" + ("]" if sep else ""))
        return False
    if at + n > len(raw):
        raise _Truncated("tcp", ">" if sep else "")
    return True


def _fetch_token(data: bytes, idx: int, length: int) -> tuple[bytes, int]:
    """print-txtproto.c fetch_token: (token, index after the token and blanks) or (b"", 0)."""
    start = idx
    n = min(length, len(data))
    while idx < length:
        if idx >= n:
            return b"", 0  # past the captured bytes
        c = data[idx]
        if c >= 0x80:
            return b"", 0
        if c in b" \t\r\n":
            break
        if not 0x20 <= c <= 0x7E:
            return b"", 0
        if idx - start + 2 > 129:
            return b"", 0
        idx += 1
    if idx == start:
        return b"", 0
    token = data[start:idx]
    while idx < n:
        c = data[idx]
        if c in b"\r\n" or not 0x20 <= c <= 0x7E or c not in b" \t":
            break
        idx += 1
    return token, idx


def _txt_line(out: list[str], prefix: str, data: bytes, idx: int, length: int) -> int:
    """print_txt_line: print one line (with ``prefix``); the index after it, 0 to stop.

    A line running into the end of the captured bytes prints `` [|http]`` alone; one running
    to the end of the segment without a line end prints its text, then `` [|http]``.
    """
    start = idx
    while idx < length:
        if idx >= len(data):
            raise _Truncated("http", unwound=True)
        c = data[idx]
        if c == 0x0A:
            out.append(prefix + data[start:idx].decode("latin-1"))
            return idx + 1
        if c == 0x0D:
            if idx + 1 >= length:
                return 0
            if idx + 1 >= len(data):
                raise _Truncated("http", unwound=True)
            if data[idx + 1] == 0x0A:
                out.append(prefix + data[start:idx].decode("latin-1"))
                return idx + 2
            return 0
        if not (0x20 <= c <= 0x7E or c == 0x09):
            return 0
        idx += 1
    out.append(prefix + data[start:idx].decode("latin-1"))
    raise _Truncated("http", unwound=True)


def _if_indextoname(index: int) -> str:
    """The interface name in *this* namespace, as tcpdump -r does ('?' when unknown)."""
    try:
        return socket.if_indextoname(index)
    except OSError:
        return "?"
