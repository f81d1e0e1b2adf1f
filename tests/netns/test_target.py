"""Target resolution from fixture trees laid out as docker, containerd, CRI-O and podman do."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from fleetkit.netns.errors import AmbiguousTarget, NoSuchProcess, UnknownTarget
from fleetkit.netns.target import Resolver, check_pid
from tests.netns.conftest import FIXTURES, fleetkit

NODE = FIXTURES / "node"
IDS: dict[str, str] = json.loads((NODE / "ids.json").read_text())


@pytest.fixture()
def resolver() -> Resolver:
    return Resolver(NODE)


def test_every_runtime_is_listed(resolver: Resolver) -> None:
    found = {c.id: c for c in resolver.containers()}
    expected = {k: v for k, v in IDS.items() if not k.startswith("U")}
    assert set(expected.values()) == set(found)
    assert found[IDS["D1"]].runtime == "docker" and found[IDS["D1"]].name == "web"
    assert found[IDS["C2"]].runtime == "containerd"
    assert found[IDS["R2"]].runtime == "cri-o" and found[IDS["P1"]].runtime == "podman"
    assert found[IDS["D3"]].pid is None  # stopped


def test_docker_by_name_and_id_prefix(resolver: Resolver) -> None:
    assert resolver.container("web").pid == 4101
    assert resolver.container(IDS["D1"][:12]).pid == 4101
    assert resolver.container(IDS["D1"]).name == "web"


def test_stale_state_pid_is_replaced_by_cgroup_scan(resolver: Resolver) -> None:
    db = resolver.container("db")
    assert db.pid == 4102  # config.v2.json says 4999, which does not exist
    assert any(src.endswith("/proc/4102/cgroup") for src in db.sources)


def test_containerd_cri_annotations(resolver: Resolver) -> None:
    sandbox = resolver.pod("default/web-7d9f")
    assert sandbox.sandbox and sandbox.pid == 4201 and sandbox.id == IDS["C1"]
    assert resolver.pod("default/web-7d9f", "nginx").pid == 4202
    # an older containerd leaves the pod name off containers: it comes from the sandbox
    sidecar = resolver.pod("default/web-7d9f", "sidecar")
    assert sidecar.pid == 4203 and sidecar.pod_uid is not None


def test_cgroup_scan_lowest_pid_and_pod_uid(resolver: Resolver) -> None:
    nginx = resolver.container(IDS["C2"])
    assert nginx.pid == 4202  # 4230 is a child in the same cgroup
    assert nginx.pod_uid == IDS["U1"]
    orphan = resolver.container(IDS["X1"])  # only the cgroup scan knows it
    assert orphan.pid == 4501 and orphan.runtime == "containerd"
    assert orphan.pod == "kube-system/coredns-abc"  # pod uid from systemd slice, name from CRI-O


def test_crio_and_podman_from_containers_storage(resolver: Resolver) -> None:
    assert resolver.pod("kube-system/coredns-abc").pid == 4301
    assert resolver.pod("kube-system/coredns-abc", "coredns").pid == 4302
    cache = resolver.container("cache")
    assert cache.runtime == "podman" and cache.pid == 4401


def test_ambiguous_container_name(resolver: Resolver) -> None:
    with pytest.raises(AmbiguousTarget) as info:
        resolver.container("nginx")
    assert "matches 2 containers" in info.value.message
    assert info.value.hint and "--pod" in info.value.hint


def test_unknown_pod_and_container(resolver: Resolver) -> None:
    with pytest.raises(UnknownTarget) as info:
        resolver.pod("default/nope")
    assert info.value.message == "unknown pod default/nope"
    assert info.value.hint and "default/web-7d9f" in info.value.hint
    with pytest.raises(UnknownTarget) as info:
        resolver.pod("web-7d9f", "nope")  # namespace defaults to "default"
    assert "sidecar" in (info.value.hint or "")
    with pytest.raises(UnknownTarget):
        resolver.container("nosuchthing")


def test_check_pid() -> None:
    assert check_pid(4101, str(NODE / "proc")) == 4101
    with pytest.raises(NoSuchProcess):
        check_pid(4999, str(NODE / "proc"))


def test_stopped_container_is_not_running(tmp_path: Path) -> None:
    out = fleetkit("ns", "ip", "--node-root", str(NODE), "--container", "old")
    assert out.returncode == 1
    assert out.stderr.startswith("error: container ") and "is not running" in out.stderr


def test_cli_ps_and_errors() -> None:
    table = fleetkit("ns", "ps", "--node-root", str(NODE))
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == [
        "POD",
        "CONTAINER",
        "NAME",
        "ID",
        "PID",
        "RUNTIME",
    ]
    assert "old" not in table.stdout  # stopped: only with -a
    data = json.loads(fleetkit("ns", "ps", "--node-root", str(NODE), "-a", "-o", "json").stdout)
    assert {c["runtime"] for c in data} == {"docker", "containerd", "cri-o", "podman"}
    ambiguous = fleetkit("ns", "sockets", "--node-root", str(NODE), "--container", "nginx")
    assert ambiguous.returncode == 1
    lines = ambiguous.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: container name 'nginx' matches 2")
    unknown = fleetkit("ns", "dig", "--node-root", str(NODE), "--pod", "x/y", "example.com")
    assert unknown.stderr.splitlines()[0] == "error: unknown pod x/y"
    assert unknown.returncode == 1


# --- Docker Engine API over a unix socket ----------------------------------------------------


@pytest.fixture()
def docker_api(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """A minimal Docker Engine API (GET /containers/json, /containers/ID/json) on a socket."""
    root = tmp_path / "root"
    shutil.copytree(NODE / "proc", root / "proc")
    seen: list[str] = []
    cid = IDS["D1"]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.path)
            if self.path == "/containers/json":
                body = [
                    {
                        "Id": cid,
                        "Names": ["/api-web"],
                        "Labels": {
                            "io.kubernetes.pod.name": "web",
                            "io.kubernetes.pod.namespace": "shop",
                            "io.kubernetes.container.name": "app",
                            "io.kubernetes.docker.type": "container",
                        },
                    }
                ]
            elif self.path == f"/containers/{cid}/json":
                body = {"Id": cid, "State": {"Running": True, "Pid": 4101}}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    class UnixServer(HTTPServer):
        address_family = socket.AF_UNIX

        def server_bind(self) -> None:
            self.socket.bind(self.server_address)
            self.server_name, self.server_port = "docker", 0

    (root / "run").mkdir()
    sock_path = root / "run" / "docker.sock"
    server = UnixServer(str(sock_path), Handler)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        if sock_path.exists():
            os.unlink(sock_path)


def test_docker_api_socket(docker_api: tuple[Path, list[str]]) -> None:
    root, seen = docker_api
    resolver = Resolver(root)
    found = resolver.pod("shop/web", "app")
    assert found.pid == 4101 and found.name == "api-web" and found.runtime == "docker"
    assert found.sources == (f"unix://{root}/run/docker.sock",)
    assert seen == ["/containers/json", f"/containers/{IDS['D1']}/json"]


def test_ns_ps_as_non_root_is_one_error_line(tmp_path: Path) -> None:
    """Issue 11 item 19: unreadable runtime state as a non-root user was a PermissionError."""
    import subprocess
    import sys
    import tempfile

    from tests.netns._unpriv import unprivileged_env
    from tests.peers import require

    if os.geteuid() != 0:
        pytest.skip("needs root to run the command as another user")
    setpriv = require("setpriv", "apt-get install -y util-linux")
    root = Path(tempfile.mkdtemp(prefix="fleetkit-ps-"))
    try:
        node = root / "node"
        shutil.copytree(NODE, node, symlinks=True)
        for dirpath, _dirs, _files in os.walk(root):
            os.chmod(dirpath, 0o755)
        os.chmod(node / "var" / "lib" / "docker", 0o700)  # as dockerd leaves it
        out = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
            + ["-m", "fleetkit", "ns", "ps", "--node-root", str(node)],
            env=unprivileged_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert out.returncode == 1, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and "Permission denied" in lines[0]
    assert "docker/containers" in lines[0] and lines[1].startswith("hint: run as root")
