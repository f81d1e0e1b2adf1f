"""Pods on two "nodes": ``fleetkit ns ... --kubeconfig --inventory --pod/--selector``.

Two network namespaces with Debian's sshd (play's ``ssh_fleet``), a "pod" process in each (and
a second one on node0), containerd task state naming them, and ``fleetkit cluster serve``
placing the pods (labels, nodeName, node addresses). The inventory maps node names to the
namespaces' sshd as ``fleetkit play`` reads it (group vars included).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.netns.conftest import fleetkit, run, spawn_in, stop, wait_for
from tests.peers import require, require_root
from tests.playbook._netns import ssh_fleet

pytestmark = pytest.mark.interop

PODS = (  # name, node index, labels
    ("web", 0, {"app": "web", "tier": "front"}),
    ("api", 1, {"app": "api", "tier": "front"}),
    ("db", 0, {"app": "db", "tier": "back"}),
)


@dataclass
class Fleet:
    namespaces: list[str]
    addresses: list[str]
    pids: dict[str, int]  # pod name -> its process (in its node's namespace)
    kubeconfig: Path
    inventory: Path
    root: Path  # containerd state naming the pods (shared by both "nodes": one filesystem)
    flags: list[str]  # --kubeconfig --inventory --node-root --ssh-cache


def _objects(addresses: list[str]) -> str:
    docs: list[dict[str, object]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    ]
    for i, address in enumerate(addresses):
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": f"node{i}"},
                "status": {
                    "addresses": [
                        {"type": "InternalIP", "address": address},
                        {"type": "Hostname", "address": f"node{i}"},
                    ],
                    "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                    "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                },
            }
        )
    for name, node, labels in PODS:
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "shop", "labels": labels},
                "spec": {"nodeName": f"node{node}", "containers": [{"name": "c", "image": "x"}]},
            }
        )
    docs.append(  # never placed: no node has the label
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "pending", "namespace": "shop", "labels": {"tier": "front"}},
            "spec": {"nodeSelector": {"nowhere": "x"}, "containers": [{"name": "c", "image": "x"}]},
        }
    )
    return "\n---\n".join(json.dumps(d) for d in docs)


def _containerd_state(root: Path, pids: dict[str, int]) -> None:
    for i, (name, pid) in enumerate(sorted(pids.items())):
        sandbox = f"{i + 1:x}" * 64
        task = root / "run/containerd/io.containerd.runtime.v2.task/k8s.io" / sandbox
        task.mkdir(parents=True)
        (task / "init.pid").write_text(str(pid))
        cri = "io.kubernetes.cri."
        annotations = {
            cri + "container-type": "sandbox",
            cri + "sandbox-name": name,
            cri + "sandbox-namespace": "shop",
            cri + "sandbox-id": sandbox,
        }
        (task / "config.json").write_text(json.dumps({"annotations": annotations}))
    (root / "proc").symlink_to("/proc")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    require_root("creates network namespaces")
    sshd = require("sshd", "apt-get install -y openssh-server")
    keygen = require("ssh-keygen", "apt-get install -y openssh-client")
    tmp = tmp_path_factory.mktemp("nodes")
    with ssh_fleet(tmp, 2, sshd, keygen) as (d, _procs):
        namespaces = (d / "namespaces").read_text().split()
        addresses = (d / "addresses").read_text().split()
        procs = [spawn_in(namespaces[node], "sleep", "600") for _name, node, _ in PODS]
        api = None
        try:
            dnsmasq = require("dnsmasq", "apt-get install -y dnsmasq-base")
            for i, ns in enumerate(namespaces):  # each node answers web.test its own way
                procs.append(
                    spawn_in(
                        ns, dnsmasq, "--keep-in-foreground", "--no-resolv", "--no-hosts",
                        "--bind-interfaces", "--listen-address=127.0.0.1", "--pid-file=",
                        "--user=root", f"--address=/web.test/192.0.2.{10 + i}",
                    )
                )  # fmt: skip
                wait_for(
                    lambda ns=ns: (
                        "127.0.0.1:53 " in run("ip", "netns", "exec", ns, "ss", "-lun").stdout
                    ),
                    what="dnsmasq on a node",
                )
                site = tmp / f"site{i}"  # and serves its own page
                site.mkdir()
                (site / "index.html").write_text(f"node{i}\n")
                procs.append(
                    spawn_in(
                        ns, sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                        "--directory", str(site), "8080",
                    )
                )  # fmt: skip
                wait_for(
                    lambda ns=ns: (
                        "127.0.0.1:8080 " in run("ip", "netns", "exec", ns, "ss", "-ltn").stdout
                    ),
                    what="an HTTP server on a node",
                )
            pids = {name: p.pid for (name, _, _), p in zip(PODS, procs[: len(PODS)], strict=True)}
            root = tmp / "noderoot"
            _containerd_state(root, pids)
            objects = tmp / "objects.yaml"
            objects.write_text(_objects(addresses))
            kubeconfig = tmp / "kubeconfig"
            api = subprocess.Popen(
                [sys.executable, "-m", "fleetkit", "cluster", "serve", "--nodes", str(objects)]
                + ["--listen", "127.0.0.1:0", "--kubeconfig-out", str(kubeconfig)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_for(
                lambda: kubeconfig.exists() and "server:" in kubeconfig.read_text(),
                timeout_s=60,
                what="fleetkit cluster serve's kubeconfig",
            )
            key = d / "id_ed25519"
            inventory = tmp / "hosts.yml"
            hosts = "".join(
                f"        node{i}:\n          ansible_host: {address}\n"
                for i, address in enumerate(addresses)
            )
            inventory.write_text(  # connection variables as group vars, as play reads them
                "all:\n  children:\n    nodes:\n      hosts:\n"
                + hosts
                + "      vars:\n        ansible_user: root\n"
                f"        ansible_ssh_private_key_file: {key}\n"
                "        ansible_ssh_common_args: -o UserKnownHostsFile=/dev/null\n"
                "        ansible_host_key_checking: false\n"
                "        ansible_python_interpreter: /usr/bin/python3\n"
            )
            flags = ["--kubeconfig", str(kubeconfig), "--inventory", str(inventory)]
            flags += ["--node-root", str(root), "--ssh-cache", str(tmp / "cache")]
            yield Fleet(namespaces, addresses, pids, kubeconfig, inventory, root, flags)
        finally:
            for proc in procs:
                stop(proc)
            if api is not None:
                stop(api)


def _listening(proc: subprocess.Popen[str]) -> str:
    """Standard error up to the "listening on" line."""
    assert proc.stderr is not None
    seen = ""
    for _ in range(200):
        line = proc.stderr.readline()
        seen += line
        if "listening on" in line:
            return seen
        if not line and proc.poll() is not None:
            raise AssertionError(f"capture exited {proc.returncode}: {seen}")
    raise AssertionError("capture never started")


def test_pod_on_the_other_node_captured_as_tcpdump_there(fleet: Fleet, kernel_stamps: None) -> None:
    ping = require("ping", "apt-get install -y iputils-ping")
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    flags = ["-n", "-v", "-c", "4", "icmp"]
    ours = subprocess.Popen(
        [sys.executable, "-m", "fleetkit", "ns", "capture", *fleet.flags]
        + ["--pod", "shop/api", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peer = subprocess.Popen(  # tcpdump itself, on node1 (where the API placed shop/api)
        ["ip", "netns", "exec", fleet.namespaces[1], tcpdump, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        head = _listening(ours)
        _listening(peer)
        run(ping, "-c", "2", "-i", "0.2", fleet.addresses[1])
        (out, err), (expected, _) = ours.communicate(timeout=60), peer.communicate(timeout=60)
        err = head + err
    finally:
        stop(ours)
        stop(peer)
    assert ours.returncode == 0, err
    assert f"pod shop/api runs on node1 ({fleet.addresses[1]})" in err
    assert expected.count("ICMP echo") == 4
    assert out == expected


def _pcapng_interfaces(raw: bytes) -> list[str]:
    names = []
    at = 0
    while at + 12 <= len(raw):
        kind, size = struct.unpack_from("<II", raw, at)
        if kind == 1:
            length = struct.unpack_from("<H", raw, at + 18)[0]
            names.append(raw[at + 20 : at + 20 + length].decode())
        at += size
    return names


def test_selector_captures_pods_on_both_nodes_merged(fleet: Fleet, tmp_path: Path) -> None:
    ping = require("ping", "apt-get install -y iputils-ping")
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    merged = tmp_path / "merged.pcapng"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetkit", "ns", "capture", *fleet.flags]
        + ["--selector", "tier in (front),!canary", "--namespace", "shop", "-c", "8"]
        + ["-w", str(merged), "icmp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        head = _listening(proc)
        head += _listening(proc)
        for address in fleet.addresses:
            run(ping, "-c", "2", "-i", "0.2", address)
        _, err = proc.communicate(timeout=60)
        err = head + err
    finally:
        stop(proc)
    assert proc.returncode == 0, err
    assert "pod shop/pending is not placed on a node yet; left out" in err
    assert "shop/db" not in err  # tier=back
    raw = merged.read_bytes()
    assert sorted(_pcapng_interfaces(raw)) == ["shop/api", "shop/web"]
    read = run(tcpdump, "-r", str(merged), "-n", "-tt")
    lines = read.stdout.splitlines()
    assert len(lines) == 8, read.stdout + read.stderr
    stamps = [float(line.split()[0]) for line in lines]
    assert stamps == sorted(stamps)
    for address in fleet.addresses:
        assert sum(f"> {address}: ICMP echo request" in line for line in lines) == 2
    wait_for(lambda: not _remote_helpers(fleet), what="the nodes' captures to end")


def _remote_helpers(fleet: Fleet) -> list[str]:
    """fleetkit helpers still running in the nodes' namespaces."""
    found = []
    for ns in fleet.namespaces:
        for pid in run("ip", "netns", "pids", ns).stdout.split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b".pyz" in cmdline:
                found.append(cmdline.decode(errors="replace"))
    return found


def test_selector_runs_ip_on_each_pods_node(fleet: Fleet) -> None:
    out = fleetkit("ns", "ip", "route", *fleet.flags, "--selector", "tier=front", "--namespace")
    assert out.returncode == 2  # --namespace without its value
    out = fleetkit(
        "ns", "ip", "route", *fleet.flags, "--namespace", "shop", "--selector", "tier=front"
    )
    assert out.returncode == 0, out.stderr
    expected = ""
    for pod in ("api", "web"):
        local = fleetkit("ns", "ip", "-t", str(fleet.pids[pod]), "route")
        assert local.returncode == 0
        expected += "".join(f"shop/{pod}: {line}\n" for line in local.stdout.splitlines())
    assert out.stdout == expected
    as_json = fleetkit("ns", "sockets", "-o", "json", *fleet.flags, "--selector", "app=db")
    assert as_json.returncode == 1  # the context's namespace is default: no pod there
    assert "no running pod matches --selector 'app=db' in namespace default" in as_json.stderr
    as_json = fleetkit(
        "ns", "sockets", "-o", "json", *fleet.flags, "--selector", "app", "--all-namespaces"
    )
    assert as_json.returncode == 0, as_json.stderr
    assert sorted(json.loads(as_json.stdout)) == ["shop/api", "shop/db", "shop/web"]


def test_selector_errors_are_the_servers(fleet: Fleet) -> None:
    out = fleetkit("ns", "ip", *fleet.flags, "--selector", "app in (web", "--namespace", "shop")
    assert out.returncode == 1
    first = out.stderr.splitlines()[0]
    assert first.startswith("error: GET ") and "unable to parse requirement" in first


def test_node_by_inventory_name_and_unknown_node(fleet: Fleet, tmp_path: Path) -> None:
    ours = fleetkit(
        "ns", "ip", "route", "--inventory", str(fleet.inventory), "--node", "node0",
        "-t", str(fleet.pids["db"]), "--ssh-cache", str(tmp_path / "c"),
    )  # fmt: skip
    local = fleetkit("ns", "ip", "-t", str(fleet.pids["db"]), "route")
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == local.stdout
    assert list((tmp_path / "c").glob("fleetkit-*.pyz"))
    other = tmp_path / "other.ini"
    other.write_text("[nodes]\nsomewhere ansible_host=10.255.255.1\n")
    missing = fleetkit("ns", "ip", *fleet.flags[:2], "--inventory", str(other), "--pod", "shop/web")
    assert missing.returncode == 2
    assert missing.stderr.startswith(f"error: node node0 is not in the inventory ({other})")


def test_selector_digs_from_each_pods_node(fleet: Fleet) -> None:
    out = fleetkit(
        "ns", "dig", "+short", "@127.0.0.1", "web.test", *fleet.flags,
        "--selector", "tier=front", "--namespace", "shop",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == "shop/api: 192.0.2.11\nshop/web: 192.0.2.10\n"
    missing = fleetkit(
        "ns", "dig", "+short", "@127.0.0.2", "web.test", "+time=1", *fleet.flags,
        "--pod", "shop/web", "--pod", "shop/api",
    )  # fmt: skip
    assert missing.returncode == 9  # dig's status when no server answers, the worst of the two
    assert "shop/web: " in missing.stderr and "shop/api: " in missing.stderr


def test_node_found_by_address_and_api_node(fleet: Fleet, tmp_path: Path) -> None:
    key = fleet.inventory.read_text().split("ansible_ssh_private_key_file: ")[1].split()[0]
    by_address = tmp_path / "by-address.ini"  # hosts not named after the nodes
    by_address.write_text(
        "".join(f"worker-{i} ansible_host={a}\n" for i, a in enumerate(fleet.addresses))
        + f"[all:vars]\nansible_user=root\nansible_ssh_private_key_file={key}\n"
        "ansible_ssh_common_args='-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no'\n"
    )
    cache = ["--ssh-cache", str(tmp_path / "c"), "--node-root", str(fleet.root)]
    ours = fleetkit(
        "ns", "ip", "route", "--kubeconfig", str(fleet.kubeconfig), "--inventory",
        str(by_address), "--pod", "shop/api", *cache,
    )  # fmt: skip
    local = fleetkit("ns", "ip", "-t", str(fleet.pids["api"]), "route")
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == local.stdout
    # --node with only the API: the node's InternalIP, as --ssh-user (root)
    api_node = fleetkit(
        "ns", "ip", "route", "--kubeconfig", str(fleet.kubeconfig), "--node", "node1",
        "-t", str(fleet.pids["api"]), "--ssh-key", key,
        "--ssh-option", "UserKnownHostsFile=/dev/null",
        "--ssh-option", "StrictHostKeyChecking=no", *cache,
    )  # fmt: skip
    assert api_node.returncode == 0, api_node.stderr
    assert api_node.stdout == local.stdout


def test_selector_http_gets_from_each_pods_node(fleet: Fleet) -> None:
    out = fleetkit(
        "ns", "http", "-b", "http://127.0.0.1:8080/", *fleet.flags,
        "--selector", "tier=front,app!=db", "--namespace", "shop",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == (
        "shop/api: HTTP/1.0 200 OK\nshop/api: node1\nshop/web: HTTP/1.0 200 OK\nshop/web: node0\n"
    )
    assert "shop/api: # 6 bytes, connect " in out.stderr


def test_selector_text_lines_are_tcpdumps_prefixed_by_pod(
    fleet: Fleet, kernel_stamps: None
) -> None:
    ping = require("ping", "apt-get install -y iputils-ping")
    tcpdump = require("tcpdump", "apt-get install -y tcpdump")
    flags = ["-n", "-c", "4", "icmp"]
    ours = subprocess.Popen(
        [sys.executable, "-m", "fleetkit", "ns", "capture", *fleet.flags]
        + ["--selector", "tier=front", "--namespace", "shop", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peer = subprocess.Popen(
        ["ip", "netns", "exec", fleet.namespaces[1], tcpdump, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _listening(ours)
        _listening(ours)
        _listening(peer)
        run(ping, "-c", "2", "-i", "0.2", fleet.addresses[1])  # node1 only: shop/api
        (out, err), (expected, _) = ours.communicate(timeout=60), peer.communicate(timeout=60)
    finally:
        stop(ours)
        stop(peer)
    assert ours.returncode == 0, err
    assert expected.count("ICMP echo") == 4
    assert out == "".join(f"shop/api: {line}\n" for line in expected.splitlines())
