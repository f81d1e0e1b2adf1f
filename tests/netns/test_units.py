"""Pure pieces: nsenter argument parsing, resolv.conf and search order, packet summaries."""

from __future__ import annotations

import io
import socket
import struct

import pytest

from fleetkit.netns.capture import Packet, PcapWriter, summarize
from fleetkit.netns.dns import ResolvConf, candidates, parse_resolv_conf
from fleetkit.netns.plan import PlanError, parse
from fleetkit.netns.sockets import parse_table

# --- nsenter getopt_long semantics ---------------------------------------------------------


def test_optional_arguments_must_be_attached() -> None:
    plan = parse(["-t", "42", "-n", "ip", "addr"])
    assert plan.target == 42 and plan.namespaces == {"net": None} and plan.argv == ["ip", "addr"]
    plan = parse(["-n/run/netns/x", "--uts=/proc/1/ns/uts", "-m=/m", "true"])
    assert plan.namespaces == {"net": "/run/netns/x", "uts": "/proc/1/ns/uts", "mnt": "/m"}


def test_stops_at_first_non_option_and_double_dash() -> None:
    assert parse(["-t", "1", "-n", "ls", "-l"]).argv == ["ls", "-l"]
    assert parse(["-t1", "-n", "--", "-weird"]).argv == ["-weird"]
    assert parse(["-at1"]).all and parse(["-at1"]).target == 1


def test_long_option_abbreviations() -> None:
    plan = parse(["--targ", "7", "--ne", "--preserve", "--no-f", "x"])
    assert plan.target == 7 and "net" in plan.namespaces and plan.preserve_credentials
    assert plan.fork is False
    with pytest.raises(PlanError, match="option '--p' is ambiguous"):
        parse(["--p", "x"])


def test_root_and_wd_forms() -> None:
    plan = parse(["-r", "-w", "x"])
    assert plan.root_from_target and plan.wd_from_target and plan.argv == ["x"]
    plan = parse(["-r/srv", "--wd=/tmp", "x"])
    assert (plan.root, plan.wd) == ("/srv", "/tmp")
    assert parse(["-W", "/etc", "x"]).wdns == "/etc"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bogus"], "unrecognized option '--bogus'"),
        (["-x"], "invalid option -- 'x'"),
        (["-t"], "option requires an argument -- 't'"),
        (["--target"], "option '--target' requires an argument"),
        (["-t", "abc"], "failed to parse pid: 'abc'"),
        (["-S", "-1"], "failed to parse uid: '-1'"),
        (["-w", "-W", "/"], "mutually exclusive arguments: --wdns --wd"),
        (["--all=1"], "option '--all' doesn't allow an argument"),
    ],
)
def test_errors_use_util_linux_wording(argv: list[str], message: str) -> None:
    with pytest.raises(PlanError) as info:
        parse(argv)
    assert str(info.value) == message


def test_order_is_util_linux_namespace_order() -> None:
    plan = parse(["-m", "-n", "-U", "-p", "-u", "-i", "-C", "-T"])
    assert [name for name, _t, _f in plan.ordered()] == [
        "user",
        "cgroup",
        "ipc",
        "uts",
        "net",
        "pid",
        "mnt",
        "time",
    ]


# --- resolv.conf ---------------------------------------------------------------------------


def test_parse_resolv_conf() -> None:
    conf = parse_resolv_conf(
        "# comment\nnameserver 10.96.0.10\nnameserver 10.96.0.11 ; x\ndomain old\n"
        "search default.svc.cluster.local svc.cluster.local\noptions ndots:5 timeout:1 attempts:3\n"
    )
    assert conf.nameservers == ("10.96.0.10", "10.96.0.11")
    assert conf.search == ("default.svc.cluster.local", "svc.cluster.local")
    assert (conf.ndots, conf.timeout_s, conf.attempts) == (5, 1.0, 3)
    assert parse_resolv_conf("").nameservers == ("127.0.0.1",)


def test_search_order_follows_ndots() -> None:
    conf = ResolvConf(search=("a.example", "b.example"), ndots=2)
    assert candidates("web", conf) == ["web.a.example.", "web.b.example.", "web."]
    assert candidates("web.x.y", conf) == ["web.x.y.", "web.x.y.a.example.", "web.x.y.b.example."]
    assert candidates("web.", conf) == ["web."]
    assert candidates("web", conf, search=False) == ["web."]


# --- packets ------------------------------------------------------------------------------


def _ipv4_tcp(flags: int, payload: bytes = b"", options: bytes = b"") -> bytes:
    hlen = 20 + len(options)
    tcp = struct.pack("!HHIIBBHHH", 41000, 80, 1000, 2000, (hlen // 4) << 4, flags, 64240, 0, 0)
    tcp += options + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(tcp),
        1,
        0,
        64,
        6,
        0,
        socket.inet_aton("10.0.0.1"),
        socket.inet_aton("10.0.0.2"),
    )
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp


def test_tcp_summaries_like_tcpdump() -> None:
    syn = _ipv4_tcp(0x02, options=b"\x02\x04\x05\xb4\x04\x02\x01\x03\x03\x07\x01\x01")
    line = summarize(Packet(0.0, "eth0", False, syn, len(syn)))
    assert line.split(" ", 1)[1] == (
        "IP 10.0.0.1.41000 > 10.0.0.2.80: Flags [S], seq 1000, win 64240, "
        "options [mss 1460,sackOK,nop,wscale 7,nop,nop], length 0"
    )
    push = _ipv4_tcp(0x18, b"hello")
    assert summarize(Packet(0.0, "eth0", False, push, len(push))).endswith(
        "Flags [P.], seq 1000:1005, ack 2000, win 64240, length 5: HTTP"
    )
    ack = _ipv4_tcp(0x10)
    assert "Flags [.], ack 2000, win 64240, length 0" in summarize(
        Packet(0.0, "eth0", True, ack, 54)
    )
    # tcpdump pads the interface name to 5 columns and the direction to 3
    assert " eth0  Out IP " in summarize(Packet(0.0, "eth0", True, ack, 54), show_interface=True)


def test_arp_summary() -> None:
    arp = struct.pack(
        "!HHBBH6s4s6s4s",
        1,
        0x0800,
        6,
        4,
        1,
        b"\x02" * 6,
        socket.inet_aton("10.0.0.1"),
        b"\x00" * 6,
        socket.inet_aton("10.0.0.2"),
    )
    frame = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + arp
    assert summarize(Packet(0.0, "eth0", False, frame, len(frame))).endswith(
        "ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 28"
    )


def test_pcap_writer_layout() -> None:
    out = io.BytesIO()
    writer = PcapWriter(out)
    writer.write(Packet(1700000000.25, "eth0", False, b"abc", 3))
    raw = out.getvalue()
    assert struct.unpack("<IHHiIII", raw[:24]) == (0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    assert struct.unpack("<IIII", raw[24:40]) == (1700000000, 250000, 3, 3)
    assert raw[40:] == b"abc"


def test_proc_net_tcp_parsing() -> None:
    text = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 3500A8C0:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1\n"
    )
    (sock,) = parse_table(text, "tcp")
    assert (sock.state, sock.endpoint(True), sock.endpoint(False), sock.inode) == (
        "LISTEN",
        "192.168.0.53:53",
        "0.0.0.0:*",
        12345,
    )
    text6 = (
        text.splitlines()[0]
        + "\n   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 9 1\n"
    )
    (sock6,) = parse_table(text6, "tcp")
    assert sock6.endpoint(True) == "[::1]:8080"


# --- ns capture -w: the temporary file (issue 11 item 5) -----------------------------------


def _capture_to(path: str) -> None:
    """Run the -w writer for an empty capture (duration 0) on a socket that sees nothing."""
    from fleetkit.netns.capture import CaptureStats, Handle, _write_pcap

    try:  # protocol 0: bound to no traffic, but PACKET_STATISTICS works
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError:
        pytest.skip("needs CAP_NET_RAW for an AF_PACKET socket")
    try:
        _write_pcap(Handle(sock, "lo", {}), CaptureStats(), path, None, 0.0, None)
    finally:
        sock.close()


def test_capture_write_never_follows_a_planted_symlink(tmp_path: pytest.TempPathFactory) -> None:
    import os
    from pathlib import Path

    root = Path(str(tmp_path))
    victim = root / "victim"
    victim.write_bytes(b"root-only\n")
    out = root / "out.pcap"
    # the old predictable temp name, and a symlink planted at the final name itself
    (root / f".out.pcap.{os.getpid()}.tmp").symlink_to(victim)
    final_link = root / "final.pcap"
    final_link.symlink_to(victim)
    _capture_to(str(out))
    _capture_to(str(final_link))
    assert victim.read_bytes() == b"root-only\n"
    assert out.read_bytes()[:4] == struct.pack("=I", 0xA1B2C3D4)
    assert not final_link.is_symlink() and final_link.read_bytes()[:4] == out.read_bytes()[:4]
    leftovers = sorted(p.name for p in root.iterdir() if p.name.endswith(".tmp"))
    assert leftovers == [f".out.pcap.{os.getpid()}.tmp"]  # only the planted link, untouched
    assert (root / f".out.pcap.{os.getpid()}.tmp").is_symlink()
