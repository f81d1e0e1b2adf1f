"""The dissector and the capture-file reader on hostile input: no exception, bounded reads.

Golden equality with tcpdump is tests/netns/test_tcpdump_golden.py; here the packets are
built by hand and then mutated (a fixed seed, a bounded count), and capture files are damaged.
"""

from __future__ import annotations

import io
import random
import socket
import struct
import time

import pytest

from fleetkit.netns.capture import Savefile, _pcap_header, records_of
from fleetkit.netns.dissect import Printer, PrintOptions, sll2_header
from fleetkit.netns.errors import HelperError

MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
V4_A, V4_B = socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")
V6_A, V6_B = (
    socket.inet_pton(socket.AF_INET6, "fd00::1"),
    socket.inet_pton(socket.AF_INET6, "fd00::2"),
)


def ether(ethertype: int, body: bytes) -> bytes:
    return MAC_B + MAC_A + struct.pack("!H", ethertype) + body


def ipv4(proto: int, payload: bytes) -> bytes:
    head = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000, 64, proto, 0, V4_A, V4_B
    )
    return ether(0x0800, head + payload)


def ipv6(nh: int, payload: bytes) -> bytes:
    return ether(
        0x86DD, struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, 64, V6_A, V6_B) + payload
    )


def dns_response() -> bytes:
    q = b"\x03web\x04test\x00" + struct.pack("!HH", 1, 1)
    answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + V4_B
    answers += b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 30, 6) + b"\x05hello"
    answers += b"\xc0\x0c" + struct.pack("!HHIH", 15, 1, 30, 4) + b"\x00\x0a\xc0\x0c"
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 12) + struct.pack("!HH", 10, 8) + b"c" * 8
    return struct.pack("!HHHHHH", 7, 0x8580, 1, 3, 0, 1) + q + answers + opt


def packets() -> list[bytes]:
    syn = struct.pack("!HHIIBBHHH", 40000, 80, 1000, 0, 0xA0, 0x02, 64240, 0, 0)
    syn += b"\x02\x04\x05\xb4\x04\x02\x08\x0a" + b"\x00" * 8 + b"\x01\x03\x03\x07"
    http = struct.pack("!HHIIBBHHH", 40000, 80, 1000, 2000, 0x50, 0x18, 502, 0, 0)
    http += b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
    dns = dns_response()
    udp = struct.pack("!HHHH", 53, 40000, 8 + len(dns), 0) + dns
    tcp_dns = struct.pack("!HHIIBBHHH", 53, 40000, 1, 1, 0x50, 0x18, 502, 0, 0)
    tcp_dns += struct.pack("!H", len(dns)) + dns
    inner = (
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, 30, 1, 0, 64, 17, 0, V4_B, V4_A)
        + b"\x9c\x40\x27\x0f\x00\x0a\x00\x00"
    )
    unreach = struct.pack("!BBHI", 3, 3, 0, 0) + inner
    ns = struct.pack("!BBHI16s", 135, 0, 0, 0, V6_B) + b"\x01\x01" + MAC_A
    mld = struct.pack("!BBHHH", 143, 0, 0, 0, 1) + struct.pack("!BBH16s", 4, 0, 0, V6_B)
    hbh = bytes([58, 0, 5, 2, 0, 0, 1, 0]) + mld
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, MAC_A, V4_A, b"\0" * 6, V4_B)
    return [
        ipv4(6, syn),
        ipv4(6, http),
        ipv4(17, udp),
        ipv4(6, tcp_dns),
        ipv4(1, unreach),
        ipv6(58, ns),
        ipv6(0, hbh),
        ipv6(17, udp),
        ether(0x0806, arp),
        ether(0x88B5, b"\x01\x02\x03"),
    ]


def test_built_packets_print_tcpdump_lines() -> None:
    printer = Printer(PrintOptions(numeric=True, verbose=1), ifname=lambda i: "eth0")
    text = "".join(printer.format(1, 2, p, len(p)) for p in packets())
    assert "Flags [S], cksum 0x0000 (incorrect -> 0x" in text
    assert "options [mss 1460,sackOK,TS val 0 ecr 0,nop,wscale 7]" in text
    assert "HTTP, length: 28\n\tGET /x HTTP/1.1\n\tHost: a\n\t\n" in text
    dns = '7* 3/0/1 web.test. A 10.0.0.2, web.test. TXT "hello", web.test. MX web.test. 10 (99)'
    assert text.count(dns) == 3  # over UDP/IPv4, TCP (length-prefixed) and UDP/IPv6
    assert "ICMP 10.0.0.1 udp port 9999 unreachable, length 36 (wrong icmp cksum 0 (->" in text
    assert "\n\tIP (tos 0x0, ttl 64, id 1, offset 0, flags [none], proto UDP (17)" in text
    assert "ICMP6, neighbor solicitation, length 32, who has fd00::2" in text
    assert "HBH (rtalert: 0x0000) (padn) [bad icmp6 cksum 0x0000 -> 0x" in text
    assert (
        "multicast listener report v2, 1 group record(s) [gaddr fd00::2 to_ex, 0 source(s)]" in text
    )
    assert "ARP, Ethernet (len 6), IPv4 (len 4), Request who-has 10.0.0.2 tell 10.0.0.1" in text
    assert "ethertype Unknown (0x88b5), length 17: \n\t0x0000:  0102 03" in text


@pytest.mark.parametrize("linktype", [1, 276])
def test_mutated_and_cut_packets_never_raise(linktype: int) -> None:
    rng = random.Random(14)
    base = packets()
    if linktype == 276:
        base = [sll2_header(p[12] << 8 | p[13], 2, 1, 4, p[6:12]) + p[14:] for p in base]
    options = [
        PrintOptions(numeric=True, verbose=v, ether=e, quiet=q, hex_ascii=x)
        for v in (0, 1, 2, 3)
        for e in (False, True)
        for q in (0, 1)
        for x in (0, 1)
    ]
    for _ in range(3000):
        data = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data) + 1)]
        printer = Printer(rng.choice(options), linktype, lambda i: "eth0")
        line = printer.format(0, 0, bytes(data), len(data) + rng.randrange(3))
        assert line.endswith("\n")
        # nothing unprintable reaches the terminal but the dumps' tabs and newlines
        assert all(c in "\t\n" or 0x20 <= ord(c) < 0x7F for c in line), repr(line)


def _flows() -> list[bytes]:
    """UDP and TCP over IPv4 and IPv6, as a busy capture is mostly made of (the fast path)."""
    out = []
    for seq in range(3):
        for flags, options in (
            (0x02, b"\x02\x04\x05\xb4\x04\x02\x08\x0a" + bytes(8) + b"\x01\x03\x03\x07"),
            (0x12, b"\x02\x04\x05\xb4\x01\x01\x04\x02"),
            (0x10, b"\x01\x01\x08\x0a" + struct.pack("!II", 7 + seq, 9)),
            (0x18, b"\x01\x01\x05\x0a" + struct.pack("!II", 100, 200)),  # SACK
            (0x11, b""),
            (0x04, b""),
            (0x30, b"\x01\x01\x08\x0a"),  # the TS option cut off by the header length
        ):
            hlen = 20 + len(options)
            offset = (hlen // 4) << 4 if hlen % 4 == 0 else (hlen // 4 + 1) << 4
            options += b"\x00" * (-len(options) % 4)
            for sport, dport in ((40000, 9000), (9000, 40000), (40000, 80)):
                head = struct.pack(
                    "!HHIIBBHHH", sport, dport, 1000 + seq * 10, 5000, offset, flags, 502, 0, 7
                )
                payload = b"x" * (seq * 5)
                out.append(ipv4(6, head + options + payload))
                out.append(ipv6(6, head + options + payload))
        udp = struct.pack("!HHHH", 40000 + seq, 9999, 8 + 18, 0) + b"y" * 18
        out += [ipv4(17, udp), ipv6(17, udp)]
        out.append(ipv4(17, struct.pack("!HHHH", 1, 2, 200, 0) + b"z" * 4))  # bad length
        for kind, code in ((8, 0), (0, 0), (3, 3), (3, 1), (11, 0)):
            inner = struct.pack(
                "!BBHHHBBH4s4s", 0x45, 0, 48, 1, 0, 64, (17, 6, 47)[seq], 0, V4_B, V4_A
            )
            inner += struct.pack("!HHHH", 40000, 9999 + seq, 28, 0) + b"q" * 20
            out.append(ipv4(1, struct.pack("!BBHHH", kind, code, 0, 7, seq) + inner))
    return out


@pytest.mark.parametrize("linktype", [1, 276])
@pytest.mark.parametrize("absolute", [False, True])
def test_fast_path_prints_the_general_line(linktype: int, absolute: bool) -> None:
    """The default line's fast path against the general printer, packet for packet (in order:
    relative sequence numbers are state), on built flows and mutated or cut copies of them."""
    rng = random.Random(4)
    base = _flows()
    frames = list(base)
    for _ in range(1500):
        data = bytearray(rng.choice(base))
        for _ in range(rng.randint(0, 3)):
            data[rng.randrange(14, len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data) + 1)]
        frames.append(bytes(data))
    if linktype == 276:
        frames = [sll2_header(0x0800 if f[12:14] == b"\x08\x00" else 0x86DD, 2, 1, 4, f[6:12])
                  + f[14:] for f in frames]  # fmt: skip
    fast = Printer(PrintOptions(numeric=True, absolute_seq=absolute), linktype, lambda i: "eth0")
    general = Printer(PrintOptions(numeric=True, absolute_seq=absolute), linktype, lambda i: "eth0")
    general._plain = False
    taken: list[bool] = []
    real = fast._fast

    def counting(data: bytes, length: int) -> str | None:
        line = real(data, length)
        taken.append(line is not None)
        return line

    fast._fast = counting  # type: ignore[method-assign]
    for i, frame in enumerate(frames):
        length = len(frame) + (i % 3 == 0) * rng.randrange(20)
        assert fast.format(i, 5, frame, length) == general.format(i, 5, frame, length), frame
    assert sum(taken) > len(frames) // 3  # the fast path is taken for the bulk of them
    # a batch of records (what capture and -r print) gives the same lines, with -ttt too
    for tstamp in (0, 3):
        options = PrintOptions(numeric=True, absolute_seq=absolute, tstamp=tstamp)
        one, batched = Printer(options, linktype, lambda i: "eth0"), Printer(options, linktype)
        batched.ifname = lambda i: "eth0"
        records = b"".join(
            struct.pack("<IIII", 1_700_000_000 + i // 7, i * 3, len(f), len(f)) + f
            for i, f in enumerate(frames)
        )
        want = "".join(
            one.format(1_700_000_000 + i // 7, i * 3, f, len(f)) for i, f in enumerate(frames)
        )
        assert batched.format_records(records) == (want, len(frames), len(records))
        assert batched.format_records(records, limit=5)[1] == 5
        # a record cut off by the end of the buffer is left for the next chunk
        assert batched.format_records(records[:-3])[1:] == (
            len(frames) - 1,
            len(records) - 16 - len(frames[-1]),
        )


def test_file_lines_are_the_records_printed_chunk_by_chunk() -> None:
    frames = [p for p in packets() for _ in range(40)]
    raw = _pcap([(len(f), f) for f in frames])
    one = Printer(PrintOptions(numeric=True))
    want = [one.format(1, 2, f, len(f)) for f in frames]
    savefile = Savefile(io.BytesIO(raw))
    # 1000-byte chunks: records cut at every chunk boundary come out whole
    savefile.chunks = lambda size=1000, real=savefile.chunks: real(1000)  # type: ignore[method-assign]
    texts = list(savefile.lines(Printer(PrintOptions(numeric=True))))
    assert len(texts) > 5 and "".join(texts) == "".join(want)
    assert "".join(
        Savefile(io.BytesIO(raw)).lines(Printer(PrintOptions(True)), count=7)
    ) == "".join(want[:7])
    # big-endian or nanosecond files are converted to the same records
    ns = Savefile(io.BytesIO(raw))
    ns._unit = 1_000_000_000
    assert [r.usec for c in ns.chunks() for r in records_of(c)] == [0] * len(frames)
    # a damaged file: the good records' lines first, then the error
    good = frames[0]
    for damaged, message in (
        (_pcap([(len(good), good), (2**31, b"")]), "invalid packet capture length 2147483648"),
        (
            _pcap([(len(good), good), (len(good), good)])[:-10],
            f"tried to read {len(good)} captured",
        ),
        (_pcap([(len(good), good)]) + b"\x01\x02", "tried to read 16 header bytes, only got 2"),
    ):
        seen = []
        with pytest.raises(HelperError, match=message):
            for text in Savefile(io.BytesIO(damaged)).lines(Printer(PrintOptions(numeric=True))):
                seen.append(text)
        assert seen == [want[0]]


def _pcap(records: list[tuple[int, bytes]], snaplen: int = 262144) -> bytes:
    out = _pcap_header(1, snaplen)
    for incl, data in records:
        out += struct.pack("<IIII", 1, 2, incl, len(data)) + data
    return out


def test_savefile_refuses_damage_after_the_good_records() -> None:
    good = packets()[0]
    # a record claiming 2 GiB is refused before anything is allocated for it
    stream = io.BytesIO(_pcap([(len(good), good), (2**31, b"")]))
    savefile = Savefile(stream)
    got = []
    with pytest.raises(HelperError, match="invalid packet capture length 2147483648"):
        for record in savefile.records():
            got.append(record)
    assert [r.data for r in got] == [good]
    # a cut record: the good ones, then one error
    cut = _pcap([(len(good), good), (len(good), good)])[:-10]
    with pytest.raises(HelperError, match="truncated dump file"):
        list(Savefile(io.BytesIO(cut)).records())
    # a header claiming a 4 GiB snapshot does not make a 2 GiB record acceptable
    huge = _pcap([(2**31, b"")], snaplen=0xFFFFFFFF)
    with pytest.raises(HelperError, match="invalid packet capture length"):
        list(Savefile(io.BytesIO(huge)).records())
    with pytest.raises(HelperError, match="unknown file format"):
        Savefile(io.BytesIO(b"GIF89a" + b"\0" * 30))
    with pytest.raises(HelperError, match="unsupported link type 113"):
        Savefile(io.BytesIO(_pcap_header(113)))


def test_pcapng_blocks_are_bounded() -> None:
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<IIHHI", 1, 20, 1, 0, 0) + struct.pack("<I", 20)
    huge = struct.pack("<II", 6, 0x7FFFFFF0)
    savefile = Savefile(io.BytesIO(shb + idb + huge))
    with pytest.raises(HelperError, match="bad pcapng block length"):
        list(savefile.records())


def test_rotation_names_follow_tcpdump() -> None:
    from fleetkit.netns.capture import Rotation

    size = Rotation(size_bytes=1_000_000)
    assert [size.name("t", i, 0) for i in range(3)] == ["t", "t1", "t2"]
    ring = Rotation(size_bytes=1_000_000, files=12)
    assert [ring.name("t", i, 0) for i in (0, 1, 11, 12)] == ["t00", "t01", "t11", "t00"]
    timed = Rotation(seconds=60, files=3)
    stamp = 1_700_000_000.0
    assert timed.name("trace-%Y%m%d.pcap", 0, stamp) == time.strftime(
        "trace-%Y%m%d.pcap", time.localtime(stamp)
    )
