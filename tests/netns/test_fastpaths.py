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
    ARPHRD_LOOPBACK,
    PACKET_OUTGOING,
    TP_STATUS_USER,
    _block_to_pcap,
    _pcap_header,
    read_pcap,
)
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


def _block(packets: list[tuple[int, int, int, bytes]]) -> bytearray:
    """A retired ring block: (ifindex, hatype, pkttype, frame) per packet, 2 KiB apart."""
    first, stride, mac = 64, 2048, 80
    ring = bytearray(first + stride * len(packets))
    struct.pack_into("<III", ring, 8, TP_STATUS_USER, len(packets), first)
    for i, (ifindex, hatype, pkttype, frame) in enumerate(packets):
        at = first + i * stride
        nxt = stride if i + 1 < len(packets) else 0
        sec, nsec = 1_700_000_000 + i, 123_456_789
        struct.pack_into("<IIIIIIH", ring, at, nxt, sec, nsec, len(frame), len(frame) + 4, 1, mac)
        struct.pack_into("<iHB", ring, at + 52, ifindex, hatype, pkttype)
        ring[at + mac : at + mac + len(frame)] = frame
    return ring


def test_block_to_pcap_records_and_skips() -> None:
    frames = [b"A" * 60, b"B" * 42, b"C" * 70, b"D" * 50]
    ring = _block(
        [
            (2, ARPHRD_ETHER, 0, frames[0]),
            (1, ARPHRD_LOOPBACK, PACKET_OUTGOING, frames[1]),  # loopback's duplicate: skipped
            (3, 65534, 0, frames[2]),  # not Ethernet-framed (tun): skipped
            (2, ARPHRD_ETHER, PACKET_OUTGOING, frames[3]),
        ]
    )
    out = bytearray()
    view = memoryview(ring)
    assert _block_to_pcap(view, 0, out, 1 << 30) == 2
    got = list(read_pcap(io.BytesIO(_pcap_header() + bytes(out))))
    assert [(p.data, p.length) for p in got] == [(frames[0], 64), (frames[3], 54)]
    # microseconds truncated from the kernel's nanoseconds, as libpcap does
    assert struct.unpack_from("<II", out, 0) == (1_700_000_000, 123_456)
    limited = bytearray()
    assert _block_to_pcap(view, 0, limited, 1) == 1
    assert len(limited) == 16 + 60
    view.release()


@pytest.mark.parametrize("hatype", [ARPHRD_ETHER, ARPHRD_LOOPBACK])
def test_one_interface_block_equals_the_general_path(hatype: int) -> None:
    frames = [bytes([65 + i]) * (40 + 7 * i) for i in range(5)]
    ring = _block([(2, hatype, 0, frame) for frame in frames])
    view = memoryview(ring)
    general, uniform = bytearray(), bytearray()
    assert _block_to_pcap(view, 0, general, 1 << 30) == 5
    assert _block_to_pcap(view, 0, uniform, 1 << 30, uniform=True) == 5
    assert uniform == general
    limited = bytearray()
    assert _block_to_pcap(view, 0, limited, 3, uniform=True) == 3
    assert limited == general[: 3 * 16 + sum(len(f) for f in frames[:3])]
    tun = _block([(3, 65534, 0, frame) for frame in frames])  # not Ethernet-framed: none kept
    assert _block_to_pcap(memoryview(tun), 0, bytearray(), 1 << 30, uniform=True) == 0
    view.release()


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
