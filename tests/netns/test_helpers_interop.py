"""fleetkit ns helpers against the real tools run with util-linux nsenter in the same netns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.netns._unpriv import unprivileged_env
from tests.netns.conftest import DOMAIN, SERVER_IP, Lab, fleetkit, run, wait_for
from tests.peers import require

pytestmark = pytest.mark.interop


def in_ns(lab: Lab, *argv: str, mount: bool = False) -> subprocess.CompletedProcess[str]:
    nsenter = require("nsenter", "apt-get install -y util-linux")
    flags = ["-n", "-m"] if mount else ["-n"]
    return run(nsenter, "-t", str(lab.target), *flags, *argv)


# --- dig -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        [f"web.default.{DOMAIN}"],
        [f"www.default.{DOMAIN}"],  # CNAME chain
        [f"info.default.{DOMAIN}", "TXT"],
        [f"mail.default.{DOMAIN}", "MX"],
        [f"nothere.default.{DOMAIN}"],  # NXDOMAIN: no output
        [f"@{SERVER_IP}", f"api.default.{DOMAIN}", "+tcp"],
        [f"_http._tcp.default.{DOMAIN}", "SRV"],
        [f"default.{DOMAIN}", "CAA"],
        [f"quoted.default.{DOMAIN}", "TXT"],  # quotes, a backslash, two strings
        ["80.0.77.10.in-addr.arpa.", "PTR"],
        [f"web.default.{DOMAIN}", "TYPE1"],
    ],
    ids=[
        "a",
        "cname",
        "txt",
        "mx",
        "nxdomain",
        "server-tcp",
        "srv",
        "caa",
        "txt-escapes",
        "ptr",
        "type1",
    ],
)
def test_dig_short_matches_dig(netlab: Lab, query: list[str]) -> None:
    dig = require("dig", "apt-get install -y dnsutils")
    theirs = in_ns(netlab, dig, "+short", *query, mount=True)
    ours = fleetkit("ns", "dig", "-t", str(netlab.target), "+short", "+nosearch", *query)
    assert theirs.returncode == ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert ours.stdout or query[0].startswith("nothere")  # an answer was compared


def test_dig_uses_target_search_list_and_ndots(netlab: Lab) -> None:
    dig = require("dig", "apt-get install -y dnsutils")
    # 'web' has fewer dots than ndots:5: the search list (default.svc.cluster.local first) applies
    theirs = in_ns(netlab, dig, "+short", "+search", "web", mount=True)
    ours = fleetkit("ns", "dig", "-t", str(netlab.target), "+short", "web")
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout == "10.77.0.80\n"
    full = fleetkit("ns", "dig", "-t", str(netlab.target), "web", "-o", "json")
    data = json.loads(full.stdout)
    assert data["tried"] == [f"web.default.{DOMAIN}."]
    assert data["server"] == f"{SERVER_IP}#53" and data["status"] == "NOERROR"


def _walk(text: str) -> list[tuple[str, str]]:
    """(question name, status) of each answer block in dig's full output."""
    statuses = [
        line.split("status: ")[1].split(",")[0]
        for line in text.splitlines()
        if line.startswith(";; ->>HEADER<<-")
    ]
    names = [
        line[1:].split()[0]
        for line in text.splitlines()
        if line.startswith(";") and not line.startswith(";;") and line.split()[1:2] == ["IN"]
    ]
    return list(zip(names, statuses, strict=True))


def test_dig_showsearch_lists_each_suffix_like_dig(netlab: Lab) -> None:
    dig = require("dig", "apt-get install -y dnsutils")
    # ndots:5 and three search domains: three NXDOMAINs, then the name as given (REFUSED)
    theirs = in_ns(netlab, dig, "+search", "+showsearch", "+tries=1", "nothere", mount=True)
    ours = fleetkit("ns", "dig", "-t", str(netlab.target), "+showsearch", "nothere")
    assert ours.returncode == 0, ours.stderr
    walk = _walk(ours.stdout)
    assert walk == _walk(theirs.stdout)
    assert walk == [
        (f"nothere.default.{DOMAIN}.", "NXDOMAIN"),
        (f"nothere.{DOMAIN}.", "NXDOMAIN"),
        ("nothere.cluster.local.", "NXDOMAIN"),
        ("nothere.", "REFUSED"),
    ]
    # the final block lists every name tried with its status; so does the default output
    default = fleetkit("ns", "dig", "-t", str(netlab.target), "nothere")
    for text in (ours.stdout, default.stdout):
        searched = [line.split()[2:] for line in text.splitlines() if line.startswith(";; search:")]
        assert searched == [[name, status] for name, status in walk]
    data = json.loads(
        fleetkit("ns", "dig", "-t", str(netlab.target), "nothere", "-o", "json").stdout
    )
    assert [(s["name"], s["status"]) for s in data["search"]] == walk
    # a name found on the first suffix: one step, no search lines
    found = fleetkit("ns", "dig", "-t", str(netlab.target), "web")
    assert ";; search:" not in found.stdout and "status: NOERROR" in found.stdout


def test_dig_full_output_sections(netlab: Lab) -> None:
    ours = fleetkit("ns", "dig", "-t", str(netlab.target), f"web.default.{DOMAIN}.")
    assert ours.returncode == 0, ours.stderr
    assert "status: NOERROR" in ours.stdout
    assert f"web.default.{DOMAIN}.\t\t0\tIN\tA\t10.77.0.80" in ours.stdout
    assert f";; SERVER: {SERVER_IP}#53({SERVER_IP}) (UDP)" in ours.stdout


def test_dig_unreachable_server_exit_9_like_dig(netlab: Lab) -> None:
    dig = require("dig", "apt-get install -y dnsutils")
    theirs = in_ns(netlab, dig, "+short", "+time=1", "+tries=1", "@10.77.0.99", "web")
    ours = fleetkit(
        "ns", "dig", "-t", str(netlab.target), "+short", "+time=1", "@10.77.0.99", "web"
    )
    assert theirs.returncode == ours.returncode == 9
    assert ours.stderr.startswith("error: communications error to 10.77.0.99#53: timed out")
    assert "hint:" in ours.stderr


# --- capture -----------------------------------------------------------------------------

SEED_FILTER = ["port", "80", "and", "tcp[tcpflags] & tcp-syn != 0"]


def _syn(lab: Lab, port: int) -> None:
    """One TCP connect attempt from the target's namespace (refused: SYN then RST)."""
    code = (
        "import socket; s=socket.socket(); s.settimeout(1)\n"
        f"try: s.connect(('{SERVER_IP}', {port}))\nexcept OSError: pass"
    )
    nsenter = require("nsenter", "apt-get install -y util-linux")
    run(nsenter, "-t", str(lab.target), "-n", sys.executable, "-c", code)


def _listening(proc: subprocess.Popen[str], needle: str) -> None:
    """Wait for a capture's 'listening on' line on stderr (read line by line)."""
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if needle in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"capture exited: {proc.returncode}")
    raise AssertionError("capture never started")


def test_capture_seed_filter_catches_syn_to_80_not_81(netlab: Lab) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleetkit",
            "ns",
            "capture",
            "-t",
            str(netlab.target),
            "-i",
            "eth0",
            "-c",
            "2",
            *SEED_FILTER,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _listening(proc, "listening on eth0")
        for port in (81, 80, 81, 80):
            _syn(netlab, port)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = out.splitlines()
    assert proc.returncode == 0, err
    assert len(lines) == 2
    for line in lines:
        assert " IP 10.77.0.2." in line and f" > {SERVER_IP}.80: Flags [S], seq " in line
        assert ".81:" not in line
    assert "2 packets captured" in err


def test_capture_pcap_reads_back_like_tcpdump(netlab: Lab, tmp_path: Path) -> None:
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    nsenter = require("nsenter", "apt-get install -y util-linux")
    ours_file, theirs_file = tmp_path / "ours.pcap", tmp_path / "theirs.pcap"
    ours = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleetkit",
            "ns",
            "capture",
            "-t",
            str(netlab.target),
            "-i",
            "eth0",
            "-c",
            "3",
            "-w",
            str(ours_file),
            *SEED_FILTER,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    theirs = subprocess.Popen(
        [
            nsenter,
            "-t",
            str(netlab.target),
            "-n",
            tcpdump,
            "-i",
            "eth0",
            "-c",
            "3",
            "-w",
            str(theirs_file),
            *SEED_FILTER,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _listening(ours, "listening on eth0")
        _listening(theirs, "listening on eth0")
        for port in (80, 81, 80, 81, 80):
            _syn(netlab, port)
        ours.communicate(timeout=30)
        theirs.communicate(timeout=30)
    finally:
        for proc in (ours, theirs):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert ours.returncode == theirs.returncode == 0
    assert not list(tmp_path.glob(".*.tmp"))
    read = [run(tcpdump, "-r", str(f), "-n", "-tt", "-x") for f in (ours_file, theirs_file)]
    assert read[0].returncode == read[1].returncode == 0, read[0].stderr
    # identical packets (headers and bytes), timestamps within the same millisecond-ish window
    strip = [
        [line.split(" ", 1)[1] if line[:1].isdigit() else line for line in r.stdout.splitlines()]
        for r in read
    ]
    assert strip[0] == strip[1]
    assert sum(1 for line in strip[0] if "Flags [S]" in line) == 3
    stamps = [
        [float(line.split(" ", 1)[0]) for line in r.stdout.splitlines() if line[:1].isdigit()]
        for r in read
    ]
    assert all(abs(a - b) < 0.05 for a, b in zip(*stamps, strict=True))


def test_capture_program_equals_tcpdump_ddd(netlab: Lab) -> None:
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    for expression in (
        SEED_FILTER,
        ["udp", "port", "53"],
        ["icmp", "or", "arp"],
        ["host", SERVER_IP, "and", "not", "port", "22"],
    ):
        theirs = in_ns(netlab, tcpdump, "-ddd", "-i", "eth0", *expression)
        ours = fleetkit("ns", "capture", "-d", *expression)
        assert theirs.returncode == ours.returncode == 0, ours.stderr
        assert ours.stdout == theirs.stdout, expression


def test_capture_bad_filter_is_a_usage_error(netlab: Lab) -> None:
    out = fleetkit("ns", "capture", "-t", str(netlab.target), "port", "eighty", "and")
    assert out.returncode == 2
    assert out.stderr.startswith("error: bad filter expression: ")
    assert out.stderr.splitlines()[1].startswith("hint: ")


def test_capture_sigint_stops_cleanly_with_stats(netlab: Lab, tmp_path: Path) -> None:
    pcap = tmp_path / "x.pcap"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleetkit",
            "ns",
            "capture",
            "-t",
            str(netlab.target),
            "-i",
            "any",
            "-w",
            str(pcap),
            "udp",
            "port",
            "9999",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _listening(proc, "listening on any")
        code = (
            "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"for i in range(3): s.sendto(b'x' * (i + 1), ('{SERVER_IP}', 9999))\n"
            "s.sendto(b'other', ('127.0.0.1', 9998))"
        )
        sent = run("ip", "netns", "exec", netlab.client, sys.executable, "-c", code)
        assert sent.returncode == 0, sent.stderr
        # the writer flushes whenever the kernel queue is empty: 3 records of 43..45 bytes
        size = 24 + 3 * 16 + 43 + 44 + 45
        wait_for(
            lambda: any(p.stat().st_size >= size for p in tmp_path.glob(".x.pcap.*")),
            what="3 packets in the pcap being written",
        )
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "packets captured" in err and "dropped by kernel" in err
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    read = run(tcpdump, "-r", str(pcap), "-n")
    assert read.returncode == 0
    lines = read.stdout.splitlines()
    assert lines, err
    assert [line.split(": ")[-1] for line in lines] == [
        "UDP, length 1",
        "UDP, length 2",
        "UDP, length 3",
    ]
    assert all("10.77.0.2." in line and f"> {SERVER_IP}.9999" in line for line in lines)


# --- ip, sockets, connect, http ----------------------------------------------------------


def test_ip_addr_and_route_match_iproute2(netlab: Lab) -> None:
    ip = require("ip", "apt-get install -y iproute2")
    for obj in (["addr"], ["route"]):
        theirs = in_ns(netlab, ip, *obj)
        ours = fleetkit("ns", "ip", "-t", str(netlab.target), *obj)
        assert theirs.returncode == ours.returncode == 0, ours.stderr
        assert ours.stdout == theirs.stdout, obj
    data = json.loads(fleetkit("ns", "ip", "-t", str(netlab.target), "-o", "json").stdout)
    eth0 = next(link for link in data["links"] if link["ifname"] == "eth0")
    assert {"family": "inet", "local": "10.77.0.2", "prefixlen": 24, "scope": "global"} in eth0[
        "addr_info"
    ]


def test_sockets_match_ss(netlab: Lab) -> None:
    ss = require("ss", "apt-get install -y iproute2")
    nsenter = require("nsenter", "apt-get install -y util-linux")
    theirs = run(nsenter, "-t", str(netlab.dns_pid), "-n", ss, "-tuanH")
    ours = fleetkit("ns", "sockets", "-t", str(netlab.dns_pid), "-o", "json")
    assert theirs.returncode == ours.returncode == 0, ours.stderr

    expected = [tuple(line.split()[:6]) for line in theirs.stdout.splitlines()]
    got = [
        (s["netid"], s["state"], str(s["recv_q"]), str(s["send_q"]), s["local"], s["peer"])
        for s in json.loads(ours.stdout)
    ]
    assert got == expected  # same rows, same order, queues and listen backlogs included
    assert ("tcp", "LISTEN", "0", "5", f"{SERVER_IP}:8080", "0.0.0.0:*") in got
    users = {u["name"] for s in json.loads(ours.stdout) for u in s["users"]}
    assert {"dnsmasq", "python"} <= users or {"dnsmasq", "python3"} <= users
    table = fleetkit("ns", "sockets", "-t", str(netlab.dns_pid))
    assert table.stdout.splitlines()[0].split()[:4] == ["Netid", "State", "Recv-Q", "Send-Q"]
    assert f'users:(("dnsmasq",pid={netlab.dns_pid},' in table.stdout


def test_connect_and_http(netlab: Lab) -> None:
    ok = fleetkit(
        "ns", "connect", "-t", str(netlab.target), f"{SERVER_IP}:{netlab.http_port}", "-o", "json"
    )
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["address"] == f"{SERVER_IP}:{netlab.http_port}" and data["local"].startswith(
        "10.77.0.2:"
    )
    refused = fleetkit("ns", "connect", "-t", str(netlab.target), f"{SERVER_IP}:81")
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        f"error: connect to {SERVER_IP}:81: Connection refused\nhint: "
    )
    http = fleetkit(
        "ns",
        "http",
        "-t",
        str(netlab.target),
        "-b",
        f"http://{SERVER_IP}:{netlab.http_port}/healthz",
    )
    assert http.returncode == 0, http.stderr
    assert http.stdout.startswith("HTTP/1.0 200 OK\n") and http.stdout.endswith("ok\n")
    missing = fleetkit(
        "ns", "http", "-t", str(netlab.target), f"http://{SERVER_IP}:{netlab.http_port}/nope"
    )
    assert missing.returncode == 22 and "404" in missing.stdout
    # a host name is resolved with the target's resolv.conf (search list: default.svc...)
    named = fleetkit(
        "ns", "connect", "-t", str(netlab.target), f"origin:{netlab.http_port}", "-o", "json"
    )
    assert named.returncode == 0, named.stderr
    assert json.loads(named.stdout)["address"] == f"{SERVER_IP}:{netlab.http_port}"


def test_helpers_leave_the_process_namespace_alone(netlab: Lab) -> None:
    from fleetkit.netns.links import dump
    from fleetkit.netns.probe import connect

    before = os.stat("/proc/thread-self/ns/net").st_ino
    threads = threading.active_count()
    snap = dump(netlab.target)
    assert "eth0" in [link.name for link in snap.links]
    assert connect(netlab.target, SERVER_IP, netlab.http_port).address.startswith(SERVER_IP)
    assert os.stat("/proc/thread-self/ns/net").st_ino == before
    assert os.stat("/proc/self/ns/net").st_ino == before
    wait_for(lambda: threading.active_count() == threads, what="helper threads to end")


def test_target_errors(netlab: Lab) -> None:
    gone = fleetkit("ns", "ip", "-t", "999999999")
    assert gone.returncode == 1
    assert gone.stderr.splitlines() == [
        "error: no such process: 999999999",
        "hint: check the PID with 'ps -p PID' or list targets with 'fleetkit ns ps'",
    ]
    none = fleetkit("ns", "ip")
    assert none.returncode == 2 and none.stderr.startswith("error: no target given\nhint: ")


def test_process_exits_mid_way(netlab: Lab) -> None:
    """The PID resolves, then the process exits before its namespace is opened."""
    from fleetkit.netns.errors import NoSuchProcess
    from fleetkit.netns.links import dump
    from fleetkit.netns.target import check_pid

    proc = subprocess.Popen(["ip", "netns", "exec", netlab.client, "sleep", "600"])
    try:
        wait_for(
            lambda: Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep", what="sleep"
        )
        pid = check_pid(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    with pytest.raises(NoSuchProcess) as info:
        dump(pid)
    assert info.value.hint


def test_not_root_one_line_and_hint(netlab: Lab) -> None:
    setpriv = require("setpriv", "apt-get install -y util-linux")
    for argv in (
        ["ns", "ip", "-t", str(netlab.target)],
        ["ns", "capture", "-t", str(netlab.target), "-c", "1"],
    ):
        out = run(
            setpriv,
            "--reuid=nobody",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-m",
            "fleetkit",
            *argv,
            env=unprivileged_env(),
        )
        assert out.returncode == 1, out.stderr
        lines = out.stderr.splitlines()
        assert (
            len(lines) == 2 and lines[0].startswith("error: ") and "Permission denied" in lines[0]
        )
        assert lines[1].startswith("hint: run as root")


def test_summaries_match_tcpdump_read(netlab: Lab, tmp_path: Path) -> None:
    """A mixed capture (ARP, DNS over UDP, HTTP, a refused SYN) printed by both tools."""
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    dig = require("dig", "apt-get install -y dnsutils")
    pcap = tmp_path / "mixed.pcap"
    run("ip", "-n", netlab.client, "neigh", "flush", "all")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleetkit",
            "ns",
            "capture",
            "-t",
            str(netlab.target),
            "-i",
            "eth0",
            "-w",
            str(pcap),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _listening(proc, "listening on eth0")
        for query in (["web"], ["info", "TXT"], ["mail", "MX"], ["www"], ["nothere"]):
            in_ns(netlab, dig, "+search", "+tries=1", *query, mount=True)
        fleetkit(
            "ns", "http", "-t", str(netlab.target), f"http://{SERVER_IP}:{netlab.http_port}/healthz"
        )
        _syn(netlab, 81)

        def saw_reset() -> bool:  # the last exchange (SYN to 81, RST back) is in the file
            partial = next(tmp_path.glob(".mixed.pcap.*"), None)
            if partial is None:
                return False
            text = fleetkit("ns", "capture", "-r", str(partial)).stdout
            return f"{SERVER_IP}.81 > " in text

        wait_for(saw_reset, what="the RST from port 81 in the capture")
        os.kill(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    theirs = run(tcpdump, "-r", str(pcap), "-n", "-S")
    ours = fleetkit("ns", "capture", "-r", str(pcap), "-n", "-S")
    assert theirs.returncode == ours.returncode == 0, ours.stderr
    got, want = ours.stdout.splitlines(), theirs.stdout.splitlines()
    assert len(got) == len(want) > 20
    assert any("ARP, Request who-has" in line for line in want)
    assert any(" A? web.default." in line for line in want)
    assert any(": HTTP: GET /healthz HTTP/1.1" in line for line in want)
    assert got == want


@pytest.mark.parametrize("ring", [True, False], ids=["tpacket-v3-ring", "recvmsg"])
def test_capture_library_both_read_paths(netlab: Lab, ring: bool) -> None:
    from fleetkit.netns.capture import CaptureStats, compile_filter, open_capture, packets
    from fleetkit.netns.namespaces import run_in_netns

    program = compile_filter(" ".join(SEED_FILTER))
    handle = run_in_netns(netlab.target, lambda: open_capture("eth0", program, ring=ring))
    try:
        assert (handle.ring is not None) == ring
        for port in (81, 80, 80):
            _syn(netlab, port)
        stats = CaptureStats()
        got = list(packets(handle, stats, count=2, duration_s=20))
    finally:
        handle.close()
    assert len(got) == 2 and stats.captured == 2 and stats.received >= 2
    for record in got:  # Ethernet frames of the target's SYNs to port 80
        assert record.data[12:14] == b"\x08\x00" and record.length == len(record.data)
        assert record.data[36:38] == (80).to_bytes(2, "big")  # TCP destination port
        assert record.data[47] & 0x02  # SYN


def test_capture_write_on_loopback_keeps_one_copy_like_tcpdump(netlab: Lab, tmp_path: Path) -> None:
    # -w on one interface is libpcap's capture with the loopback filter over it; libpcap filters
    # the first ring block in user space, which must keep its packets too
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    ping = require("ping", "apt-get install -y iputils-ping")
    mine, theirs_file = tmp_path / "ours.pcap", tmp_path / "theirs.pcap"
    flags = ["-i", "lo", "-c", "4", "icmp"]
    ours = subprocess.Popen(
        [sys.executable, "-m", "fleetkit", "ns", "capture", "-t", str(netlab.target)]
        + ["-w", str(mine), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    theirs = subprocess.Popen(
        ["ip", "netns", "exec", netlab.client, tcpdump, "-w", str(theirs_file), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _listening(ours, "listening on lo")
        _listening(theirs, "listening on lo")
        run("ip", "netns", "exec", netlab.client, ping, "-c", "2", "-i", "0.2", "127.0.0.1")
        _, err = ours.communicate(timeout=30)
        theirs.communicate(timeout=30)
    finally:
        for proc in (ours, theirs):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert ours.returncode == theirs.returncode == 0, err
    assert "4 packets captured" in err
    got = run(tcpdump, "-r", str(mine), "-n", "-t").stdout  # two captures: stamps may differ
    want = run(tcpdump, "-r", str(theirs_file), "-n", "-t").stdout
    assert got == want and got.count("ICMP echo") == 4
