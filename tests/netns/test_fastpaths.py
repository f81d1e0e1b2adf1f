"""The start-up and hot-loop paths: DNS wire codec, ring block -> pcap, lazy imports, setns."""

from __future__ import annotations

import errno
import io
import os
import signal
import struct
import subprocess
import sys
import threading

import pytest

from fleetkit.netns import _syscalls as sc
from fleetkit.netns.capture import (
    ARPHRD_ETHER,
    PACKET_OUTGOING,
    SKF_AD_OFF,
    SNAPLEN,
    TP_STATUS_USER,
    _block_to_pcap,
    _cooked_program,
    _pcap_header,
    read_pcap,
    records_of,
)
from fleetkit.netns.dissect import SLL2_LEN, sll2_header
from fleetkit.netns.dns import (
    DNSWireError,
    encode_name,
    make_query,
    parse_message,
    read_name,
    type_code,
)

# --- DNS wire format ------------------------------------------------------------------------


def _rr(name: bytes, rtype: int, ttl: int, rdata: bytes) -> bytes:
    return name + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def test_make_query_layout() -> None:
    wire = make_query("web.default.svc.", 28, ident=0x1234)
    assert wire[:12] == struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    assert wire[12:] == b"\x03web\x07default\x03svc\x00" + struct.pack("!HH", 28, 1)
    assert encode_name("a\\.b.c") == b"\x03a.b\x01c\x00"
    assert encode_name("x\\065y.") == b"\x03xAy\x00"
    assert encode_name(".") == b"\x00"
    with pytest.raises(ValueError):
        encode_name("a" * 64 + ".example")
    with pytest.raises(ValueError):
        encode_name("a..b")


def test_parse_response_with_compression_and_sections() -> None:
    question = b"\x03www\x01t\x00" + struct.pack("!HH", 1, 1)
    header = struct.pack("!HHHHHH", 7, 0x8580, 1, 3, 1, 1)
    ptr_www, ptr_t = b"\xc0\x0c", b"\xc0\x10"
    answer = (
        _rr(ptr_www, 5, 30, b"\x03web" + ptr_t)
        + _rr(b"\x03web" + ptr_t, 1, 60, bytes([10, 0, 0, 80]))
        + _rr(ptr_www, 16, 5, b'\x07a "q" \\' + b"\x02\x01z")
    )
    soa = b"\x02ns" + ptr_t + b"\x05admin" + ptr_t + struct.pack("!IIIII", 1, 2, 3, 4, 5)
    authority = _rr(ptr_t, 6, 300, soa)
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
    msg = parse_message(header + question + answer + authority + opt)
    assert (msg.id, msg.rcode_text(), msg.opcode_text()) == (7, "NOERROR", "QUERY")
    assert msg.flags_text() == "qr aa rd ra"
    assert msg.question == [("www.t.", 1, 1)]
    assert [(r.name, r.type_text(), r.ttl, r.data) for r in msg.answer] == [
        ("www.t.", "CNAME", 30, "web.t."),
        ("web.t.", "A", 60, "10.0.0.80"),
        ("www.t.", "TXT", 5, '"a \\"q\\" \\\\" "\\001z"'),
    ]
    assert [r.data for r in msg.authority] == ["ns.t. admin.t. 1 2 3 4 5"]
    assert msg.additional == []  # OPT is not a record of a section


def test_names_with_special_bytes_are_escaped_as_dig_does() -> None:
    assert read_name(b"\x03a.b\x02$\x01\x00", 0) == ("a\\.b.\\$\\001.", 8)


def test_malformed_messages_raise_wire_errors() -> None:
    header = struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0)
    with pytest.raises(DNSWireError):
        parse_message(header[:8])
    with pytest.raises(DNSWireError):
        parse_message(header + b"\x03ww")  # label past the end
    with pytest.raises(DNSWireError):
        parse_message(header + b"\xc0\x0c" + struct.pack("!HH", 1, 1))  # points at itself
    truncated = struct.pack("!HHHHHH", 1, 0x8180, 0, 1, 0, 0) + b"\x00" + b"\x00\x01"
    with pytest.raises(DNSWireError):
        parse_message(truncated)


def test_type_names() -> None:
    assert (type_code("aaaa"), type_code("TYPE65"), type_code("CAA")) == (28, 65, 257)
    with pytest.raises(ValueError):
        type_code("NOTATYPE")


# --- TPACKET_V3 block -> pcap records ----------------------------------------------------------


def _block(packets: list[tuple[int, int, int, bytes]], proto: int = 0x0800) -> bytearray:
    """A retired ring block: (ifindex, hatype, pkttype, frame) per packet, 2 KiB apart, with
    the kernel's sockaddr_ll (protocol, ifindex, hatype, pkttype, a 6-byte address)."""
    first, stride, mac = 64, 2048, 80
    ring = bytearray(first + stride * len(packets))
    struct.pack_into("<III", ring, 8, TP_STATUS_USER, len(packets), first)
    for i, (ifindex, hatype, pkttype, frame) in enumerate(packets):
        at = first + i * stride
        nxt = stride if i + 1 < len(packets) else 0
        sec, nsec = 1_700_000_000 + i, 123_456_789
        struct.pack_into("<IIIIIIH", ring, at, nxt, sec, nsec, len(frame), len(frame) + 4, 1, mac)
        struct.pack_into("<H", ring, at + 48, 17)  # AF_PACKET
        struct.pack_into(">H", ring, at + 50, proto)
        struct.pack_into("<iHBB6s", ring, at + 52, ifindex, hatype, pkttype, 6, b"\x02" * 6)
        ring[at + mac : at + mac + len(frame)] = frame
    return ring


def test_block_to_pcap_records_every_frame_of_one_interface() -> None:
    frames = [bytes([65 + i]) * (40 + 7 * i) for i in range(5)]
    ring = _block([(2, ARPHRD_ETHER, 0, frame) for frame in frames])
    out = bytearray()
    view = memoryview(ring)
    assert _block_to_pcap(view, 0, out, 1 << 30) == 5
    got = list(read_pcap(io.BytesIO(_pcap_header() + bytes(out))))
    assert [(p.data, p.length) for p in got] == [(f, len(f) + 4) for f in frames]
    # microseconds truncated from the kernel's nanoseconds, as libpcap does
    assert struct.unpack_from("<II", out, 0) == (1_700_000_000, 123_456)
    assert [r for r in records_of(bytes(out))][1] == (1_700_000_001, 123_456, frames[1], 51)
    limited = bytearray()
    assert _block_to_pcap(view, 0, limited, 3) == 3
    assert limited == out[: 3 * 16 + sum(len(f) for f in frames[:3])]
    view.release()


def test_cooked_block_records_sll2_headers_as_libpcap_builds_them() -> None:
    packets = [b"\x45" + bytes(39), b"\x45" + bytes(59), b"\x45" + bytes(29)]
    ring = _block(
        [
            (2, ARPHRD_ETHER, PACKET_OUTGOING, packets[0]),
            (7, 768, 0, packets[1]),
            (1, 772, 0, packets[2]),
        ]
    )
    view = memoryview(ring)
    out = bytearray()
    assert _block_to_pcap(view, 0, out, 1 << 30, cooked=True) == 3
    got = list(records_of(bytes(out)))
    for rec, (ifindex, hatype, pkttype), packet in zip(
        got, [(2, ARPHRD_ETHER, PACKET_OUTGOING), (7, 768, 0), (1, 772, 0)], packets, strict=True
    ):
        head = sll2_header(0x0800, ifindex, hatype, pkttype, b"\x02" * 6)
        assert rec.data == head + packet and rec.length == len(packet) + 4 + SLL2_LEN
    # the snapshot length counts the header (libpcap's caplen), the wire length too
    cut = bytearray()
    assert _block_to_pcap(view, 0, cut, 1 << 30, cooked=True, snaplen=30) == 3
    assert [len(r.data) for r in records_of(bytes(cut))] == [30, 30, 30]
    # a filter the kernel cannot run (it reads the SLL2 hatype): run here on each record
    seen: list[tuple[bytes, int]] = []

    def tunnel_only(data: bytes, wirelen: int) -> bool:
        seen.append((data[:SLL2_LEN], wirelen))
        return struct.unpack_from("!H", data, 8)[0] == 768

    one = bytearray()
    assert _block_to_pcap(view, 0, one, 1 << 30, True, SNAPLEN, tunnel_only) == 1
    assert [r.data[SLL2_LEN:] for r in records_of(bytes(one))] == [packets[1]]
    assert [w for _h, w in seen] == [len(p) + 4 for p in packets]  # libpcap passes tp_len
    view.release()


def test_cooked_program_moves_loads_past_the_sll2_header() -> None:
    ld_h, ld_b, ldx_msh, ld_ind, ret = 0x28, 0x30, 0xB1, 0x50, 0x06
    program = [
        (ld_h, 0, 0, 0),  # SLL2 protocol -> SKF_AD_PROTOCOL
        (0x20, 0, 0, 4),  # ifindex -> SKF_AD_IFINDEX
        (ld_b, 0, 0, 10),  # packet type -> SKF_AD_PKTTYPE
        (ld_b, 0, 0, 29),  # IPv4 protocol: 20 bytes earlier
        (ldx_msh, 0, 0, 20),
        (ld_ind, 0, 0, 22),
        (ld_b, 0, 0, SKF_AD_OFF + 4),  # already ancillary: kept
        (ret, 0, 0, 262144),
    ]
    assert _cooked_program(program) == [
        (ld_h, 0, 0, SKF_AD_OFF + 0),
        (0x20, 0, 0, SKF_AD_OFF + 8),
        (ld_b, 0, 0, SKF_AD_OFF + 4),
        (ld_b, 0, 0, 9),
        (ldx_msh, 0, 0, 0),
        (ld_ind, 0, 0, 2),
        (ld_b, 0, 0, SKF_AD_OFF + 4),
        (ret, 0, 0, 262144),
    ]
    assert _cooked_program([(ld_h, 0, 0, 8), (ret, 0, 0, 1)]) is None  # hatype: user space
    real = sc.compile_bpf("icmp", 276)
    assert _cooked_program(real) is not None


# --- start-up path ---------------------------------------------------------------------------


def _imported(code: str) -> list[str]:
    probe = (
        f"{code}\nimport sys\n"
        "print(' '.join(m for m in ('ctypes', 'argparse', 'dataclasses', 'dns', 'enum')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.split()


def test_nsenter_path_imports_nothing_heavy() -> None:
    assert _imported("import fleetkit.cli, fleetkit.netns.plan, fleetkit.netns.exec") == []


def test_dig_module_does_not_import_dnspython() -> None:
    assert "dns" not in _imported("import fleetkit.netns.dns")


def test_default_signals_resets_and_tolerates_sigkill() -> None:
    code = (
        "import signal\nfrom fleetkit.netns import _syscalls as sc\n"
        "assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN\n"
        "sc.default_signals(signal.SIGPIPE, signal.SIGKILL)\n"
        "assert signal.getsignal(signal.SIGPIPE) == signal.SIG_DFL\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN  # only the child was touched


@pytest.mark.parametrize("loader", ["_raw_call", "_ctypes_call"])
def test_libc_calls_report_errno(loader: str) -> None:
    call = getattr(sc, loader)("setns")
    assert call(-1, sc.CLONE_NEWNET) == -1
    assert sc._GET_ERRNO[0]() == errno.EBADF


def test_setns_joins_own_namespace_in_a_thread() -> None:
    if os.geteuid() != 0:
        pytest.skip("setns needs CAP_SYS_ADMIN")
    fd = os.open("/proc/self/ns/net", os.O_RDONLY)
    errors: list[BaseException] = []

    def body() -> None:
        try:
            sc.setns(fd, sc.CLONE_NEWNET)
            with pytest.raises(OSError) as info:
                sc.setns(fd, sc.CLONE_NEWUTS)  # wrong type for this fd
            assert info.value.errno == errno.EINVAL
        except BaseException as exc:
            errors.append(exc)

    try:
        thread = threading.Thread(target=body)
        thread.start()
        thread.join(30)
    finally:
        os.close(fd)
    assert not errors, errors


def test_write_path_on_one_interface_is_libpcaps_own() -> None:
    from fleetkit.netns.capture import LiveHandle, compile_filter, open_live
    from tests.peers import require_root

    require_root("opens a packet socket")
    handle = open_live("lo", [], 1 << 20, 262144)
    assert isinstance(handle, LiveHandle) and handle.interface == "lo"
    handle.close()
    # not there: None, so the socket path reports the error with tcpdump's words
    assert open_live("fk-no-such0", [], 1 << 20, 262144) is None
    cooked = open_live("any", compile_filter("icmp", 262144, 276), 1 << 20, 262144, 276)
    assert isinstance(cooked, LiveHandle) and cooked.live.linktype == 276  # LINUX_SLL2
    cooked.close()
