"""``fleetkit ns capture`` against the real tcpdump 4.99: the goldens are made at test time.

A module-scoped lab (two namespaces joined by a veth pair, IPv4 and IPv6, dnsmasq and an HTTP
server in one) carries ping, dig and curl traffic while the real tcpdump writes it to pcap files
(on eth0: Ethernet; on any: LINUX_SLL2). Both tools then read the same files (and a pcapng copy)
with every printing flag, and their stdout must be byte-identical. Live: both capture the same
packets at the same time, as text and as ``-i any -w`` files.
"""

from __future__ import annotations

import os
import re
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.netns.conftest import fleetkit, run, spawn_in, stop, wait_for
from tests.peers import require, require_root

pytestmark = pytest.mark.interop

V4 = ("10.79.0.2", "10.79.0.53")
V6 = ("fd00:79::2", "fd00:79::53")


@dataclass
class GoldenLab:
    client: str
    server: str
    # eth (EN10MB), any (LINUX_SLL2), ng (pcapng copy of eth), eth60/eth90/any80 (as if
    # captured with -s 60/90/80: every protocol cut off somewhere)
    files: dict[str, Path]


def _sh(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, timeout=30)


def _traffic(client: str) -> None:
    """Bounded traffic: ARP/ND, ping, dig (UDP, TCP, IPv6), curl, refused TCP, closed UDP."""
    ping = require("ping", "apt-get install -y iputils-ping")
    dig = require("dig", "apt-get install -y dnsutils")
    curl = require("curl", "apt-get install -y curl")
    c = ("ip", "netns", "exec", client)
    run("ip", "-n", client, "neigh", "flush", "all")
    steps = [
        [ping, "-c", "2", "-i", "0.2", V4[1]],
        [ping, "-6", "-c", "2", "-i", "0.2", V6[1]],
        [dig, "+tries=1", f"@{V4[1]}", "web.test"],
        [dig, "+tries=1", f"@{V4[1]}", "web.test", "AAAA"],
        [dig, "+tries=1", f"@{V4[1]}", "info.test", "TXT"],
        [dig, "+tries=1", f"@{V4[1]}", "mail.test", "MX"],
        [dig, "+tries=1", f"@{V4[1]}", "_http._tcp.test", "SRV"],
        [dig, "+tries=1", f"@{V4[1]}", "www.test"],
        [dig, "+tries=1", f"@{V4[1]}", "nothere.test"],
        [dig, "+tries=1", "+noedns", f"@{V6[1]}", "web.test"],
        [dig, "+tries=1", "+tcp", f"@{V4[1]}", "web.test"],
        [curl, "-s", "-o", "/dev/null", f"http://{V4[1]}:8080/"],
        [curl, "-s", "-o", "/dev/null", "-d", "a=1&b=2", f"http://[{V6[1]}]:8080/missing"],
        [curl, "-s", "-o", "/dev/null", "--max-time", "2", f"http://{V4[1]}:81/"],
        [
            sys.executable,
            "-c",
            "import socket\n"
            f"socket.socket().connect_ex(('{V4[1]}', 80))\n"
            f"socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'hi', ('{V4[1]}', 9999))\n"
            f"socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b'hey', ('{V6[1]}', 9999))",
        ],
    ]
    for step in steps:
        run(*c, *step, timeout=30)


def _has_last_exchange(path: Path) -> bool:
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    text = run(tcpdump, "-r", str(path), "-n").stdout
    return "udp port 9999 unreachable" in text and "unreachable port" in text


def _capture_with_tcpdump(client: str, path: Path, iface: str) -> subprocess.Popen[str]:
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", client, tcpdump, "-U", "-i", iface, "-w", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _listening(proc)
    return proc


def _listening(proc: subprocess.Popen[str]) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "listening on" in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"capture exited: {proc.returncode}")
    raise AssertionError("capture never started")


def _interrupt(proc: subprocess.Popen[str]) -> None:
    """SIGINT (tcpdump then writes its counts and closes the file), then wait."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGINT)
    try:
        proc.communicate(timeout=20)
    finally:
        stop(proc)


def to_pcapng(pcap: bytes) -> bytes:
    """The same packets as pcapng: SHB, one IDB (nanosecond resolution), EPBs."""
    magic, _v1, _v2, _zone, _figs, snaplen, linktype = struct.unpack("<IHHiIII", pcap[:24])
    assert magic == 0xA1B2C3D4

    def block(kind: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    options = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)  # if_tsresol 10^-9
    out += block(1, struct.pack("<HHI", linktype, 0, snaplen) + options)
    at = 24
    while at < len(pcap):
        sec, usec, incl, orig = struct.unpack_from("<IIII", pcap, at)
        data = pcap[at + 16 : at + 16 + incl]
        stamp = sec * 1_000_000_000 + usec * 1000 + 789  # sub-microsecond part: truncated
        body = struct.pack("<IIIII", 0, stamp >> 32, stamp & 0xFFFFFFFF, incl, orig) + data
        out += block(6, body)
        at += 16 + incl
    return out


def truncated(pcap: bytes, snaplen: int) -> bytes:
    """The same packets as if captured with ``-s snaplen`` (records cut, header snaplen set)."""
    out = bytearray(pcap[:24])
    struct.pack_into("<I", out, 16, snaplen)
    at = 24
    while at < len(pcap):
        sec, usec, incl, orig = struct.unpack_from("<IIII", pcap, at)
        data = pcap[at + 16 : at + 16 + incl][:snaplen]
        out += struct.pack("<IIII", sec, usec, len(data), orig) + data
        at += 16 + incl
    return bytes(out)


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GoldenLab]:
    require_root("creates network namespaces")
    dnsmasq = require("dnsmasq", "apt-get install -y dnsmasq-base")
    tag = f"fg{os.getpid()}"
    client, server = f"{tag}c", f"{tag}s"
    veth_c, veth_s = f"{tag}vc", f"{tag}vs"
    www = tmp_path_factory.mktemp("www")
    (www / "index.html").write_text("hello from the golden lab\n")
    out = tmp_path_factory.mktemp("pcaps")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _sh("ip", "netns", "add", client)
        _sh("ip", "netns", "add", server)
        _sh("ip", "link", "add", veth_c, "type", "veth", "peer", "name", veth_s)
        _sh("ip", "link", "set", veth_c, "netns", client)
        _sh("ip", "link", "set", veth_s, "netns", server)
        for ns, dev, v4, v6 in ((client, veth_c, V4[0], V6[0]), (server, veth_s, V4[1], V6[1])):
            _sh("ip", "-n", ns, "link", "set", dev, "name", "eth0")
            _sh("ip", "-n", ns, "addr", "add", f"{v4}/24", "dev", "eth0")
            _sh("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", "eth0", "nodad")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
            _sh("ip", "-n", ns, "link", "set", "eth0", "up")
        procs.append(
            spawn_in(
                server,
                dnsmasq,
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                f"--listen-address={V4[1]}",
                f"--listen-address={V6[1]}",
                "--pid-file=",
                "--user=root",
                "--address=/web.test/10.79.0.80",
                "--address=/web.test/fd00:79::80",
                "--cname=www.test,web.test",
                "--txt-record=info.test,hello world,second",
                "--mx-host=mail.test,web.test,10",
                "--srv-host=_http._tcp.test,web.test,8080,1,2",
            )
        )
        procs.append(
            spawn_in(
                server,
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                "::",
                "8080",
                "--directory",
                str(www),
            )
        )
        wait_for(
            lambda: run("ip", "netns", "exec", server, "ss", "-ltn").stdout.count(":8080") > 0,
            what="http.server",
        )
        wait_for(
            lambda: ":53" in run("ip", "netns", "exec", server, "ss", "-lun").stdout,
            what="dnsmasq",
        )
        files = {"eth": out / "eth.pcap", "any": out / "any.pcap", "ng": out / "eth.pcapng"}
        captures = [
            _capture_with_tcpdump(client, files["eth"], "eth0"),
            _capture_with_tcpdump(client, files["any"], "any"),
        ]
        try:
            _traffic(client)
            # the last exchange (both ICMP errors) is in both files before tcpdump is stopped:
            # tcpdump drops what it has not read yet when interrupted
            for path in (files["eth"], files["any"]):
                wait_for(lambda path=path: _has_last_exchange(path), what=f"the end of {path}")
        finally:
            for proc in captures:
                _interrupt(proc)
        files["ng"].write_bytes(to_pcapng(files["eth"].read_bytes()))
        for kind, source, snaplen in (
            ("eth60", "eth", 60),
            ("eth90", "eth", 90),
            ("any80", "any", 80),
        ):
            files[kind] = out / f"{kind}.pcap"
            files[kind].write_bytes(truncated(files[source].read_bytes(), snaplen))
        yield GoldenLab(client, server, files)
    finally:
        for proc in procs:
            stop(proc)
        for ns in (client, server):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", veth_c], capture_output=True, timeout=30)


FLAGS = [
    ["-n"],
    ["-nn", "-S"],
    ["-n", "-v"],
    ["-n", "-vv"],
    ["-n", "-vvv"],
    ["-n", "-e"],
    ["-n", "-e", "-v"],
    ["-n", "-q"],
    ["-n", "-q", "-e"],
    ["-n", "-qq", "-v"],
    ["-n", "-A"],
    ["-n", "-AA"],
    ["-n", "-x"],
    ["-n", "-xx"],
    ["-n", "-X"],
    ["-n", "-XX", "-v"],
    ["-n", "-t"],
    ["-n", "-tt"],
    ["-n", "-ttt"],
    ["-n", "-tttt"],
    ["-n", "-ttttt"],
    ["-n", "-s", "0", "-l"],
    ["-n", "-c", "7", "-vv", "-S"],
    ["-n", "-v", "udp", "port", "53"],
    ["-n", "-A", "tcp", "port", "8080"],
    ["-n", "-vv", "icmp", "or", "icmp6", "or", "arp"],
]


@pytest.mark.parametrize("kind", ["eth", "any", "ng", "eth60", "eth90", "any80"])
@pytest.mark.parametrize("flags", FLAGS, ids=[" ".join(f) for f in FLAGS])
def test_read_matches_tcpdump(golden: GoldenLab, kind: str, flags: list[str]) -> None:
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    path = str(golden.files[kind])
    # the same namespace for both readers: SLL2 interface names come from if_indextoname
    theirs = run("ip", "netns", "exec", golden.client, tcpdump, "-r", path, *flags)
    ours = run(
        "ip",
        "netns",
        "exec",
        golden.client,
        sys.executable,
        "-m",
        "fleetkit",
        "ns",
        "capture",
        "-r",
        path,
        *flags,
    )
    assert theirs.returncode == ours.returncode == 0, ours.stderr
    # worth comparing: a filtered read keeps the bounded traffic's 8 echo packets and the
    # ARP/ND and unreachables around them (how many of the latter varies run to run)
    filtered = any(word in flags for word in ("udp", "tcp", "icmp"))
    assert theirs.stdout.count("\n") > (5 if "-c" in flags else 10 if filtered else 20)
    assert ours.stdout == theirs.stdout


def test_capture_covers_the_protocols(golden: GoldenLab) -> None:
    """The goldens above are worth something only if the traffic has every protocol in it."""
    ours = fleetkit("ns", "capture", "-r", str(golden.files["eth"]), "-n", "-vv")
    assert ours.returncode == 0, ours.stderr
    text = ours.stdout
    for needle in (
        "ARP, Ethernet (len 6), IPv4 (len 4), Request who-has",
        "ICMP echo request",
        "ICMP6, echo request",
        "ICMP6, neighbor solicitation",
        "udp port 9999 unreachable",
        "ICMP6, destination unreachable, unreachable port",
        "Flags [S.]",
        "Flags [R.]",
        " A? web.test.",
        " AAAA fd00:79::80",
        ' TXT "hello world" "second"',
        " SRV web.test.:8080 1 2",
        " CNAME web.test.",
        "OPT UDPsize=",
        "HTTP, length: ",
        "POST /missing HTTP/1.1",
        "HTTP/1.0 501",  # http.server does not do POST
    ):
        assert needle in text, needle


# --- live: both tools capture the same packets at the same time --------------------------


def _target(golden: GoldenLab) -> subprocess.Popen[bytes]:
    return spawn_in(golden.client, "sleep", "600")


def test_live_text_matches_tcpdump(golden: GoldenLab, kernel_stamps: None) -> None:
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    ping = require("ping", "apt-get install -y iputils-ping")
    target = _target(golden)
    flags = ["-i", "eth0", "-n", "-vv", "-c", "6", "icmp or icmp6"]
    theirs = subprocess.Popen(
        ["ip", "netns", "exec", golden.client, tcpdump, "-l", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ours = subprocess.Popen(
        [sys.executable, "-m", "fleetkit", "ns", "capture", "-t", str(target.pid), "-l", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _listening(theirs)
        _listening(ours)
        c = ("ip", "netns", "exec", golden.client)
        run(*c, ping, "-c", "2", "-i", "0.2", V4[1])
        run(*c, ping, "-6", "-c", "1", V6[1])
        got, _ = ours.communicate(timeout=30)
        want, _ = theirs.communicate(timeout=30)
    finally:
        for proc in (ours, theirs):
            stop(proc)
        stop(target)
    assert ours.returncode == theirs.returncode == 0
    assert got.count("\n") >= 6
    assert got == want


def test_live_snaplen_matches_tcpdump(golden: GoldenLab, kernel_stamps: None) -> None:
    """``-s 70``: the kernel cuts each packet (the filter's return value), both print the same."""
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    dig = require("dig", "apt-get install -y dnsutils")
    target = _target(golden)
    flags = ["-i", "eth0", "-s", "70", "-n", "-v", "-x", "-c", "2", "udp port 53"]
    theirs = subprocess.Popen(
        ["ip", "netns", "exec", golden.client, tcpdump, "-l", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ours = subprocess.Popen(
        [sys.executable, "-m", "fleetkit", "ns", "capture", "-t", str(target.pid), "-l", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _listening(theirs)
        _listening(ours)
        run("ip", "netns", "exec", golden.client, dig, "+tries=1", f"@{V4[1]}", "mail.test", "MX")
        got, _ = ours.communicate(timeout=30)
        want, _ = theirs.communicate(timeout=30)
    finally:
        for proc in (ours, theirs):
            stop(proc)
        stop(target)
    assert ours.returncode == theirs.returncode == 0
    assert "[|domain]" in want or "MX" in want
    assert got == want


# -i any printed live: the cooked capture (LINUX_SLL2 records, the filter compiled for SLL2 and
# run in the kernel, or here when it reads other SLL2 header bytes), against tcpdump -r of the
# SLL2 file tcpdump -i any wrote of the same packets, at several verbosity levels at once
ANY_RUNS = [
    (["-n"], ["icmp", "or", "icmp6"]),
    (["-n", "-v"], ["icmp", "and", "inbound"]),  # the SLL2 packet type: an ancillary load
    (["-n", "-vv", "-S"], ["icmp", "or", "icmp6"]),
    (["-n", "-e"], ["link[8:2]", "=", "65534", "or", "(icmp", "and", "inbound)"]),  # hatype
]
TUN = (  # a tun device (ARPHRD_NONE, no link header) held open while stdin is
    "import fcntl, os, struct, sys\n"
    "fd = os.open('/dev/net/tun', os.O_RDWR)\n"
    "fcntl.ioctl(fd, 0x400454CA, struct.pack('16sH14x', b'fkt0', 0x1001))\n"  # TUN|NO_PI
    "print('ready', flush=True)\n"
    "sys.stdin.read()\n"
)


def _entries(text: str, since: str) -> list[str]:
    """A capture's lines grouped per packet (-v continuation lines joined), those stamped at
    or after ``since`` (HH:MM:SS.ffffff) up to the last loopback echo reply."""
    entries: list[str] = []
    for line in text.splitlines(keepends=True):
        if line[:1].isdigit() or not entries:
            entries.append(line)
        else:
            entries[-1] += line
    kept = [e for e in entries if e[:15] >= since]
    ends = [i for i, e in enumerate(kept) if "127.0.0.1 > 127.0.0.1: ICMP echo reply" in e]
    assert ends, text
    return kept[: ends[-1] + 1]


def test_live_any_text_matches_tcpdump_reading_its_sll2_capture(
    golden: GoldenLab, tmp_path: Path, kernel_stamps: None
) -> None:
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    ping = require("ping", "apt-get install -y iputils-ping")
    c = ("ip", "netns", "exec", golden.client)
    assert os.path.exists("/dev/net/tun"), "needs /dev/net/tun (a kernel with CONFIG_TUN)"
    tun = subprocess.Popen(
        [*c, sys.executable, "-c", TUN], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    target = _target(golden)
    sll2 = tmp_path / "any.pcap"
    outs = [tmp_path / f"ours{i}.txt" for i in range(len(ANY_RUNS))]
    procs: list[subprocess.Popen[str]] = []
    try:
        assert tun.stdout is not None and tun.stdout.readline() == b"ready\n"
        run("ip", "-n", golden.client, "addr", "add", "10.78.0.1/30", "dev", "fkt0")
        run("ip", "-n", golden.client, "link", "set", "fkt0", "up")
        run("ip", "-n", golden.client, "link", "set", "lo", "up")
        procs.append(_capture_with_tcpdump(golden.client, sll2, "any"))
        for out, (flags, expression) in zip(outs, ANY_RUNS, strict=True):
            with out.open("w") as sink:
                ours = subprocess.Popen(
                    [sys.executable, "-m", "fleetkit", "ns", "capture", "-t", str(target.pid)]
                    + ["-i", "any", "-l", *flags, *expression],
                    stdout=sink,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            procs.append(ours)
            _listening(ours)
        now = time.time()  # every capture is listening: compare what follows
        since = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1e6):06d}"
        run(*c, ping, "-c", "2", "-i", "0.2", V4[1])  # eth0: Ethernet
        run(*c, ping, "-6", "-c", "1", V6[1])
        run(*c, ping, "-c", "1", "-W", "0.5", "10.78.0.2")  # fkt0: no link header, no answer
        run(*c, ping, "-c", "1", "127.0.0.1")  # lo: the outgoing copy is not shown

        def everyone_has_the_end() -> bool:
            texts = [run(*c, tcpdump, "-r", str(sll2), "-n").stdout]
            texts += [out.read_text() for out in outs]
            return all("127.0.0.1 > 127.0.0.1: ICMP echo reply" in t for t in texts)

        wait_for(everyone_has_the_end, timeout_s=20, what="the last packet in every capture")
        for proc in procs:
            _interrupt(proc)
        # read while fkt0 exists: SLL2 interface names come from if_indextoname
        wants = [run(*c, tcpdump, "-r", str(sll2), *flags, *expr) for flags, expr in ANY_RUNS]
        # alone, a link without an Ethernet header is refused (tcpdump would record it RAW)
        alone = fleetkit("ns", "capture", "-t", str(target.pid), "-i", "fkt0", "-c", "1")
    finally:
        for proc in procs:
            stop(proc)
        stop(target)
        if tun.stdin is not None:
            tun.stdin.close()
        tun.wait(timeout=10)
    assert all(proc.returncode == 0 for proc in procs)
    for out, want, (flags, expression) in zip(outs, wants, ANY_RUNS, strict=True):
        assert want.returncode == 0, want.stderr
        got_entries, want_entries = _entries(out.read_text(), since), _entries(want.stdout, since)
        assert got_entries == want_entries, flags + expression
    texts = [out.read_text() for out in outs]
    assert "fkt0  Out IP 10.78.0.1 > 10.78.0.2: ICMP echo request" in texts[0]
    assert "fkt0  Out ifindex " in texts[3] and "lo    In  ifindex 1 " in texts[3]
    assert " Out " not in texts[1]  # inbound only
    assert alone.returncode == 1
    assert alone.stderr.startswith("error: fkt0: link type ARPHRD 65534 is not Ethernet-framed;"), (
        alone.stderr
    )
    assert "hint: capture it with -i any (LINUX_SLL2), e.g. -i any 'ifindex " in alone.stderr


def test_live_any_writes_sll2_like_tcpdump(golden: GoldenLab, tmp_path: Path) -> None:
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    ping = require("ping", "apt-get install -y iputils-ping")
    target = _target(golden)
    mine, theirs_file = tmp_path / "ours.pcap", tmp_path / "theirs.pcap"
    flags = ["-i", "any", "-c", "4", "icmp"]
    theirs = subprocess.Popen(
        ["ip", "netns", "exec", golden.client, tcpdump, "-w", str(theirs_file), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    ours = subprocess.Popen(
        [sys.executable, "-m", "fleetkit", "ns", "capture", "-t", str(target.pid)]
        + ["-w", str(mine), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _listening(theirs)
        _listening(ours)
        run("ip", "netns", "exec", golden.client, ping, "-c", "2", "-i", "0.2", V4[1])
        ours.communicate(timeout=30)
        theirs.communicate(timeout=30)
    finally:
        for proc in (ours, theirs):
            stop(proc)
        stop(target)
    assert ours.returncode == theirs.returncode == 0
    assert (
        mine.read_bytes()[20:24] == theirs_file.read_bytes()[20:24] == (276).to_bytes(4, "little")
    )
    read = [
        # -t: two captures of one packet may be stamped a microsecond apart (as two tcpdumps)
        run("ip", "netns", "exec", golden.client, tcpdump, "-r", str(f), "-n", "-e", "-xx", "-t")
        for f in (mine, theirs_file)
    ]
    assert read[0].returncode == read[1].returncode == 0, read[0].stderr
    assert "eth0  Out ifindex" in read[1].stdout
    assert read[0].stdout == read[1].stdout


def test_write_to_stdout_is_a_pcap_stream(golden: GoldenLab) -> None:
    """``-w -``: the pcap goes to stdout (for ``| wireshark -k -i -``), logs to stderr."""
    ping = require("ping", "apt-get install -y iputils-ping")
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    target = _target(golden)
    ours = subprocess.Popen(
        [sys.executable, "-m", "fleetkit", "ns", "capture", "-t", str(target.pid)]
        + ["-i", "eth0", "-w", "-", "-c", "2", "icmp"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert ours.stderr is not None
        deadline = time.monotonic() + 20
        while b"listening on" not in ours.stderr.readline():
            assert time.monotonic() < deadline and ours.poll() is None
        run("ip", "netns", "exec", golden.client, ping, "-c", "1", V4[1])
        stream, _ = ours.communicate(timeout=30)
    finally:
        stop(ours)
        stop(target)
    assert ours.returncode == 0
    assert stream[:4] == b"\xd4\xc3\xb2\xa1"
    read = subprocess.run([tcpdump, "-r", "-", "-n"], input=stream, capture_output=True, timeout=30)
    assert read.returncode == 0
    assert [
        b"ICMP echo request" in line or b"ICMP echo reply" in line
        for line in read.stdout.splitlines()
    ] == [True, True]


def test_list_interfaces_like_tcpdump(golden: GoldenLab) -> None:
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    target = _target(golden)
    try:
        ours = fleetkit("ns", "capture", "-t", str(target.pid), "-D")
    finally:
        stop(target)
    theirs = run("ip", "netns", "exec", golden.client, tcpdump, "-D")
    assert ours.returncode == 0, ours.stderr
    # fleetkit lists what it can capture on: tcpdump's list without the pseudo-devices
    pseudo = ("bluetooth", "nflog", "nfqueue", "dbus", "usbmon")
    want = [line for line in theirs.stdout.splitlines() if not any(p in line for p in pseudo)]
    assert ours.stdout.splitlines() == want


def test_drop_privileges_before_the_file_is_created(golden: GoldenLab, tmp_path: Path) -> None:
    """``-Z nobody``: the socket is opened as root, the -w file is created as nobody."""
    target = _target(golden)
    private = tmp_path / "root-only"
    private.mkdir(mode=0o700)
    try:
        ours = fleetkit(
            "ns",
            "capture",
            "-t",
            str(target.pid),
            "-i",
            "eth0",
            "-Z",
            "nobody",
            "-c",
            "1",
            "-w",
            str(private / "x.pcap"),
            "--duration",
            "5",
        )
        unknown = fleetkit(
            "ns", "capture", "-t", str(target.pid), "-Z", "no-such-user-fk", "-c", "1"
        )
    finally:
        stop(target)
    assert ours.returncode == 1, ours.stderr
    assert f"error: cannot write {private / 'x.pcap'}: Permission denied" in ours.stderr
    assert not list(private.iterdir())
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: Couldn't find user 'no-such-user-fk'")


@pytest.mark.parametrize("extra", [[], ["-W", "2"]], ids=["C", "C-W"])
def test_rotation_matches_tcpdump(golden: GoldenLab, tmp_path: Path, extra: list[str]) -> None:
    """``-C 1`` (and ``-W 2``): the same file names, the same packets in each file."""
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    ping = require("ping", "apt-get install -y iputils-ping")
    target = _target(golden)
    ours_dir, theirs_dir = tmp_path / "ours", tmp_path / "theirs"
    for d in (ours_dir, theirs_dir):
        d.mkdir()
    flags = ["-i", "eth0", "-C", "1", *extra, "icmp"]
    # -Z root: Debian's tcpdump otherwise opens rotated files as the tcpdump user
    theirs = subprocess.Popen(
        ["ip", "netns", "exec", golden.client, tcpdump, "-U", "-Z", "root", "-B", "32768"]
        + ["-w", str(theirs_dir / "t"), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    ours = subprocess.Popen(
        [sys.executable, "-m", "fleetkit", "ns", "capture", "-t", str(target.pid)]
        + ["-w", str(ours_dir / "t"), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _listening(theirs)
        _listening(ours)
        # 1500 echo requests and replies of 1042 bytes: a little over 3 MB, 4 files with -C 1
        c = ("ip", "netns", "exec", golden.client)
        # paced (1 ms), not a flood: tcpdump -U writing every packet must not drop any
        run(*c, ping, "-i", "0.001", "-q", "-c", "1500", "-s", "1000", V4[1], timeout=60)

        def both_have_all() -> bool:
            texts = [
                "".join(run(tcpdump, "-r", str(f), "-n").stdout for f in sorted(d.iterdir()))
                for d in (ours_dir, theirs_dir)
            ]
            return all(re.search(r"echo reply, id \d+, seq 1500,", t) for t in texts)

        wait_for(both_have_all, timeout_s=30, what="every packet in the files")
        for proc in (ours, theirs):
            _interrupt(proc)
    finally:
        for proc in (ours, theirs):
            stop(proc)
        stop(target)
    names = sorted(p.name for p in theirs_dir.iterdir())
    assert sorted(p.name for p in ours_dir.iterdir()) == names
    assert names == (["t", "t1", "t2", "t3"] if not extra else ["t0", "t1"])
    for name in names:
        want = run(tcpdump, "-r", str(theirs_dir / name), "-n", "-t").stdout
        got = run(tcpdump, "-r", str(ours_dir / name), "-n", "-t").stdout
        assert got == want, name
