"""``fleetkit ns ... --ssh root@NODE``: a "node" namespace with Debian's sshd (key auth) and a
"pod" process in it; fleetkit is shipped there and its output must equal a local run's."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.netns.conftest import fleetkit, run, spawn_in, stop, wait_for
from tests.peers import require, require_root

pytestmark = pytest.mark.interop


@dataclass
class Node:
    ns: str
    address: str
    host_address: str
    pod: int
    ssh: list[str]  # the fleetkit flags that reach the node
    cache: Path


def _sh(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    require_root("creates a network namespace")
    sshd = require("sshd", "apt-get install -y openssh-server")
    keygen = require("ssh-keygen", "apt-get install -y openssh-client")
    tmp = tmp_path_factory.mktemp("node")
    key, hostkey = tmp / "id_ed25519", tmp / "hostkey"
    for path in (key, hostkey):
        _sh(keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(path))
    (tmp / "authorized_keys").write_bytes(Path(f"{key}.pub").read_bytes())
    tag = f"fr{os.getpid() % 100000}"
    ns, veth = f"{tag}n", f"{tag}v"
    host_address, address = "10.81.0.1", "10.81.0.2"
    privsep = Path("/run/sshd")
    made_privsep = not privsep.exists()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if made_privsep:
            privsep.mkdir(mode=0o755, parents=True)
        _sh("ip", "netns", "add", ns)
        _sh("ip", "link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
        _sh("ip", "link", "set", f"{veth}p", "netns", ns)
        _sh("ip", "addr", "add", f"{host_address}/24", "dev", veth)
        _sh("ip", "link", "set", veth, "up")
        _sh("ip", "-n", ns, "link", "set", f"{veth}p", "name", "eth0")
        _sh("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _sh("ip", "-n", ns, "link", "set", "eth0", "up")
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
        config = tmp / "sshd_config"
        config.write_text(
            f"ListenAddress {address}\nHostKey {hostkey}\n"
            f"AuthorizedKeysFile {tmp / 'authorized_keys'}\nPasswordAuthentication no\n"
            f"PidFile {tmp / 'sshd.pid'}\nUsePAM no\nStrictModes no\nPermitRootLogin yes\n"
        )
        procs.append(spawn_in(ns, sshd, "-D", "-e", "-f", str(config)))
        wait_for(
            lambda: ":22 " in run("ip", "netns", "exec", ns, "ss", "-ltn").stdout,
            what="sshd in the node namespace",
        )
        pod = spawn_in(ns, "sleep", "600")
        procs.append(pod)
        known = tmp / "known_hosts"
        pub = Path(f"{hostkey}.pub").read_text().split()
        known.write_text(f"{address} {pub[0]} {pub[1]}\n")
        cache = tmp / "cache"
        ssh = [
            "--ssh",
            f"root@{address}",
            "--ssh-key",
            str(key),
            "--ssh-option",
            f"UserKnownHostsFile={known}",
            "--ssh-cache",
            str(cache),
        ]
        yield Node(ns, address, host_address, pod.pid, ssh, cache)
    finally:
        for proc in procs:
            stop(proc)
        subprocess.run(["ip", "link", "del", veth], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        if made_privsep:
            subprocess.run(["rm", "-rf", str(privsep)], timeout=30)


def test_remote_ip_equals_local_and_ships_once(node: Node) -> None:
    # routes, not addresses: an IPv6 address may stop being "tentative" between two runs
    local = fleetkit("ns", "ip", "-t", str(node.pod), "route")
    first = fleetkit("ns", "ip", "-t", str(node.pod), "route", *node.ssh)
    again = fleetkit("ns", *node.ssh, "ip", "-t", str(node.pod), "route")
    assert local.returncode == first.returncode == again.returncode == 0, first.stderr
    assert first.stdout == again.stdout == local.stdout
    assert f"src {node.address}" in first.stdout
    shipped = list(node.cache.glob("fleetkit-*.pyz"))
    assert len(shipped) == 1  # shipped once, found by its hash the second time


def _listening(proc: subprocess.Popen[str]) -> None:
    assert proc.stderr is not None
    for _ in range(200):
        line = proc.stderr.readline()
        if "listening on" in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"capture exited {proc.returncode}: {proc.stderr.read()}")
    raise AssertionError("capture never started")


def test_remote_capture_lines_and_pcap(node: Node, tmp_path: Path, kernel_stamps: None) -> None:
    ping = require("ping", "apt-get install -y iputils-ping")
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    base = [sys.executable, "-m", "fleetkit", "ns", "capture", "-t", str(node.pod)]
    flags = ["-i", "eth0", "-n", "-v", "-c", "4", "icmp"]
    pcap = tmp_path / "remote.pcap"
    procs = [
        subprocess.Popen(
            [*base, *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ),
        subprocess.Popen(
            [*base, *flags, *node.ssh], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ),
        subprocess.Popen(
            [*base, *flags, "-w", str(pcap), *node.ssh],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
    ]
    try:
        for proc in procs:
            _listening(proc)
        run(ping, "-c", "2", "-i", "0.2", node.address)
        outs = [proc.communicate(timeout=60)[0] for proc in procs]
    finally:
        for proc in procs:
            stop(proc)
    assert [proc.returncode for proc in procs] == [0, 0, 0]
    local, remote, _ = outs
    assert local.count("ICMP echo") == 4
    assert remote == local  # the node's lines, streamed back unchanged
    read = run(tcpdump, "-r", str(pcap), "-n", "-v")
    assert read.returncode == 0, read.stderr
    assert read.stdout == local
    assert not list(tmp_path.glob(".*.tmp"))


def test_remote_unreachable_is_one_error_line(node: Node) -> None:
    out = fleetkit(
        "ns",
        "ip",
        "-t",
        "1",
        "--ssh",
        "root@10.81.0.99",
        "--ssh-option",
        "ConnectTimeout=2",
        "--ssh-key",
        node.ssh[3],
        timeout=60,
    )
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    assert lines[0].startswith("error: ssh root@10.81.0.99: ") and lines[1].startswith("hint: ")


@pytest.fixture()
def api(node: Node, tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """A minimal API server on 127.0.0.1: pod shop/web on node n1 (the node's address)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []
    objects = {
        "/api/v1/namespaces/shop/pods/web": {"kind": "Pod", "spec": {"nodeName": "n1"}},
        "/api/v1/namespaces/shop/pods/pending": {"kind": "Pod", "spec": {}},
        "/api/v1/nodes/n1": {
            "kind": "Node",
            "status": {
                "addresses": [
                    {"type": "Hostname", "address": "n1"},
                    {"type": "InternalIP", "address": node.address},
                ]
            },
        },
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            seen.append(f"{self.path} {self.headers.get('Authorization')}")
            body = objects.get(self.path)
            data = json.dumps(body or {"kind": "Status", "code": 404}).encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        f"clusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{server.server_port}\n"
        "users:\n- name: u\n  user:\n    token: s3cret\n"
        "contexts:\n- name: test\n  context:\n    cluster: c\n    user: u\n"
    )
    try:
        yield kubeconfig, seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _node_root(tmp_path: Path, pid: int) -> Path:
    """containerd's task state for pod shop/web whose sandbox is ``pid`` (and the real /proc)."""
    root = tmp_path / "noderoot"
    task = root / "run/containerd/io.containerd.runtime.v2.task/k8s.io" / ("ab" * 32)
    task.mkdir(parents=True)
    (task / "init.pid").write_text(str(pid))
    cri = "io.kubernetes.cri."
    annotations = {
        cri + "container-type": "sandbox",
        cri + "sandbox-name": "web",
        cri + "sandbox-namespace": "shop",
        cri + "sandbox-id": "ab" * 32,
    }
    import json

    (task / "config.json").write_text(json.dumps({"annotations": annotations}))
    (root / "proc").symlink_to("/proc")
    return root


def test_kubeconfig_finds_the_pods_node(
    node: Node, api: tuple[Path, list[str]], tmp_path: Path
) -> None:
    kubeconfig, seen = api
    root = _node_root(tmp_path, node.pod)
    ssh = [node.ssh[i] for i in range(2, len(node.ssh))]  # key, options, cache; no --ssh
    local = fleetkit("ns", "ip", "-t", str(node.pod), "route")
    ours = fleetkit(
        "ns",
        "ip",
        "--kubeconfig",
        str(kubeconfig),
        "--pod",
        "shop/web",
        "--node-root",
        str(root),
        "route",
        *ssh,
    )
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == local.stdout
    assert f"pod shop/web runs on n1 ({node.address})" in ours.stderr
    assert seen == [
        "/api/v1/namespaces/shop/pods/web Bearer s3cret",
        "/api/v1/nodes/n1 Bearer s3cret",
    ]
    pending = fleetkit("ns", "ip", "--kubeconfig", str(kubeconfig), "--pod", "shop/pending")
    assert pending.returncode == 1
    assert pending.stderr.startswith("error: pod shop/pending is not placed on a node yet")
    missing = fleetkit("ns", "ip", "--kubeconfig", str(kubeconfig), "--pod", "shop/nope")
    assert missing.returncode == 1 and "404" in missing.stderr.splitlines()[0]
    assert "s3cret" not in pending.stderr + missing.stderr + ours.stderr


def _pcapng_interfaces(raw: bytes) -> list[str]:
    names = []
    at = 0
    while at + 12 <= len(raw):
        kind, size = struct.unpack_from("<II", raw, at)
        if kind == 1:
            opt = at + 16
            while opt + 4 <= at + size - 4:
                code, length = struct.unpack_from("<HH", raw, opt)
                if code == 0:
                    break
                if code == 2:
                    names.append(raw[opt + 4 : opt + 4 + length].decode())
                opt += 4 + (length + 3) // 4 * 4
        at += size
    return names


def test_several_pods_merge_in_time_order(node: Node, tmp_path: Path) -> None:
    ping = require("ping", "apt-get install -y iputils-ping")
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    other = subprocess.Popen(["sleep", "600"])  # a second "pod", in this namespace
    root = _node_root(tmp_path, node.pod)
    task = root / "run/containerd/io.containerd.runtime.v2.task/k8s.io" / ("cd" * 32)
    task.mkdir()
    (task / "init.pid").write_text(str(other.pid))
    annotations = json.loads(
        (
            root
            / "run/containerd/io.containerd.runtime.v2.task/k8s.io"
            / ("ab" * 32)
            / "config.json"
        ).read_text()
    )["annotations"]
    annotations.update(
        {"io.kubernetes.cri.sandbox-name": "api", "io.kubernetes.cri.sandbox-id": "cd" * 32}
    )
    (task / "config.json").write_text(json.dumps({"annotations": annotations}))
    merged = tmp_path / "merged.pcapng"
    argv = [sys.executable, "-m", "fleetkit", "ns", "capture", "--node-root", str(root)]
    argv += ["--pod", "shop/web", "--pod", "shop/api", "-i", "any", "-c", "8"]
    proc = subprocess.Popen(
        [*argv, "-w", str(merged), f"icmp and host {node.address}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _listening(proc)
        _listening(proc)
        run(ping, "-c", "2", "-i", "0.2", node.address)
        proc.communicate(timeout=60)
    finally:
        stop(proc)
        stop(other)
    assert proc.returncode == 0
    raw = merged.read_bytes()
    assert sorted(_pcapng_interfaces(raw)) == ["shop/api", "shop/web"]
    read = run(tcpdump, "-r", str(merged), "-n", "-tt")
    lines = read.stdout.splitlines()
    assert len(lines) == 8, read.stdout + read.stderr
    stamps = [float(line.split()[0]) for line in lines]
    assert stamps == sorted(stamps)
    assert sum("echo request" in line for line in lines) == 4
