"""Hosts for the namespace tests: network namespaces + veth, built here and always removed.

``netlab`` builds two namespaces joined by a veth pair (``client`` 10.77.0.2, ``server``
10.77.0.53); a target process sleeps in ``client`` with its own resolv.conf (``ip netns exec``
bind-mounts /etc/netns/NAME/resolv.conf); dnsmasq and an HTTP server run in ``server``.
Names carry os.getpid(); processes are stopped by PID; everything is removed in finalizers.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.peers import require, require_root

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "netns"
CLIENT_IP, SERVER_IP = "10.77.0.2", "10.77.0.53"
DOMAIN = "svc.cluster.local"


def wait_for(cond: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def kernel_stamps() -> Iterator[None]:
    """Packets time-stamped once by the kernel while the test runs (SO_TIMESTAMPNS on any
    socket turns that on for every packet), so two captures of a packet print the same time.

    Neither tcpdump nor fleetkit asks for it (each packet socket then reads the clock as it
    copies the packet, a microsecond apart; ping's own request flips it on only after its
    first packets); a test comparing live lines of two captures does.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS
    try:
        yield
    finally:
        sock.close()


def ns_inode(pid: int, kind: str = "net") -> int:
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def fleetkit(*args: str, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(
        [sys.executable, "-m", "fleetkit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,  # type: ignore[call-overload]
    )


def run(*args: str, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@dataclass
class Lab:
    client: str
    server: str
    target: int  # a process sleeping in the client namespace
    dns_pid: int
    http_port: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


def _sh(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True, timeout=30)


def spawn_in(ns: str, *argv: str) -> subprocess.Popen[bytes]:
    """Start ``argv`` in netns ``ns``; the Popen PID is the program's (ip netns exec execs)."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    me = ns_inode(os.getpid())
    wait_for(
        lambda: (
            proc.poll() is None
            and ns_inode(proc.pid) != me
            and Path(f"/proc/{proc.pid}/comm").read_text().strip() == Path(argv[0]).name[:15]
        ),
        what=f"{argv[0]} in {ns}",
    )
    return proc


@pytest.fixture(scope="session")
def netlab() -> Iterator[Lab]:
    require_root("creates network namespaces")
    require("ip", "apt-get install -y iproute2")
    dnsmasq = require("dnsmasq", "apt-get install -y dnsmasq-base")
    tag = f"fk{os.getpid()}"
    client, server = f"{tag}c", f"{tag}s"
    veth_c, veth_s = f"{tag}vc", f"{tag}vs"
    procs: list[subprocess.Popen[bytes]] = []
    etc_dir = Path("/etc/netns") / client
    try:
        _sh("ip", "netns", "add", client)
        _sh("ip", "netns", "add", server)
        _sh("ip", "link", "add", veth_c, "type", "veth", "peer", "name", veth_s)
        _sh("ip", "link", "set", veth_c, "netns", client)
        _sh("ip", "link", "set", veth_s, "netns", server)
        for ns, dev, addr in ((client, veth_c, CLIENT_IP), (server, veth_s, SERVER_IP)):
            _sh("ip", "-n", ns, "link", "set", dev, "name", "eth0")
            _sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
            _sh("ip", "-n", ns, "link", "set", "eth0", "up")
        _sh("ip", "-n", client, "route", "add", "default", "via", SERVER_IP)
        etc_dir.mkdir(parents=True, exist_ok=True)
        (etc_dir / "resolv.conf").write_text(
            f"nameserver {SERVER_IP}\nsearch default.{DOMAIN} {DOMAIN} cluster.local\n"
            "options ndots:5 timeout:2 attempts:1\n"
        )
        dns = spawn_in(
            server,
            dnsmasq,
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            f"--listen-address={SERVER_IP}",
            "--pid-file=",
            "--user=root",
            f"--address=/web.default.{DOMAIN}/10.77.0.80",
            f"--address=/api.default.{DOMAIN}/10.77.0.81",
            f"--cname=www.default.{DOMAIN},web.default.{DOMAIN}",
            f"--txt-record=info.default.{DOMAIN},fleetkit test",
            f"--mx-host=mail.default.{DOMAIN},web.default.{DOMAIN},10",
            f"--srv-host=_http._tcp.default.{DOMAIN},web.default.{DOMAIN},8080,1,2",
            f"--caa-record=default.{DOMAIN},0,issue,ca.example",
            f'--txt-record=quoted.default.{DOMAIN},say "hi" \\ back,second string',
            f"--ptr-record=80.0.77.10.in-addr.arpa,web.default.{DOMAIN}",
            f"--address=/origin.default.{DOMAIN}/{SERVER_IP}",
            # authoritative for the search domains: unknown names are NXDOMAIN, so a search
            # walk moves on (outside them dnsmasq without upstreams answers REFUSED)
            f"--local=/{DOMAIN}/",
            "--local=/cluster.local/",
        )
        procs.append(dns)
        http = spawn_in(
            server,
            sys.executable,
            "-m",
            "http.server",
            "--bind",
            SERVER_IP,
            "8080",
            "--directory",
            str(FIXTURES),
        )
        procs.append(http)
        target = spawn_in(client, "sleep", "3600")
        procs.append(target)
        # wait until both servers answer inside the namespace
        wait_for(
            lambda: (
                run(
                    "ip",
                    "netns",
                    "exec",
                    client,
                    "dig",
                    "+short",
                    "+time=1",
                    "+tries=1",
                    f"@{SERVER_IP}",
                    f"web.default.{DOMAIN}",
                ).stdout.strip()
                == "10.77.0.80"
            ),
            what="dnsmasq",
        )
        wait_for(
            lambda: run("ip", "netns", "exec", server, "ss", "-ltn").stdout.count(":8080") > 0,
            what="http.server",
        )
        yield Lab(client, server, target.pid, dns.pid, 8080, procs)
    finally:
        for proc in procs:
            stop(proc)
        for ns in (client, server):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", veth_c], capture_output=True, timeout=30)
        shutil.rmtree(etc_dir, ignore_errors=True)
        try:
            etc_dir.parent.rmdir()
        except OSError:
            pass


@pytest.fixture()
def scratch_ns(netlab: Lab) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start throwaway processes (stopped by PID at the end of the test)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*argv: str, **kw: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **kw,  # type: ignore[call-overload]
        )
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            stop(proc)
