"""A real containerd (its own root, state and socket), resolved from its task state files.

containerd writes /run/containerd/io.containerd.runtime.v2.task/NS/ID/{init.pid,config.json};
here its state directory is ROOT/run/containerd with ROOT/proc -> /proc, so the resolver reads
real files for real processes. Containers are started with ctr from a tiny rootfs (no image, no
network); CRI's annotations are set as a kubelet would set them. Where containerd or runc cannot
run in the sandbox, the test skips with containerd's message.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetkit.netns.target import Resolver
from tests.netns.conftest import fleetkit, run, wait_for

pytestmark = pytest.mark.interop
CRI = "io.kubernetes.cri."


def _rootfs(dest: Path) -> None:
    sleep = shutil.which("sleep") or "/bin/sleep"
    (dest / "bin").mkdir(parents=True)
    shutil.copy(sleep, dest / "bin" / "sleep")
    for part in run("ldd", sleep).stdout.split():
        if part.startswith("/"):
            target = dest / part.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(os.path.realpath(part), target)


@pytest.fixture()
def containerd(tmp_path: Path) -> Iterator[tuple[Path, list[str], Path]]:
    binary, ctr = shutil.which("containerd"), shutil.which("ctr")
    if binary is None or ctr is None or shutil.which("containerd-shim-runc-v2") is None:
        pytest.skip("containerd is not installed (apt-get install -y containerd runc)")
    if os.geteuid() != 0:
        pytest.skip("containerd needs root")
    root = tmp_path / "root"
    (root / "run").mkdir(parents=True)
    (root / "proc").symlink_to("/proc")
    config = tmp_path / "config.toml"
    config.write_text('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n')
    address = str(tmp_path / "containerd.sock")
    daemon = subprocess.Popen(
        [
            binary,
            "--config",
            str(config),
            "--root",
            str(tmp_path / "lib"),
            "--state",
            str(root / "run" / "containerd"),
            "--address",
            address,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = [ctr, "--address", address, "-n", "k8s.io"]
    try:
        wait_for(lambda: os.path.exists(address) or daemon.poll() is not None, what="containerd")
        if daemon.poll() is not None:
            pytest.skip(f"containerd exited with {daemon.returncode} in this sandbox")
        _rootfs(tmp_path / "rootfs")
        yield root, base, tmp_path / "rootfs"
    finally:
        for cid in ("fk-sandbox", "fk-app"):
            subprocess.run(
                base + ["task", "kill", "-s", "KILL", cid], capture_output=True, timeout=30
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if (
                    subprocess.run(
                        base + ["task", "delete", cid], capture_output=True, timeout=30
                    ).returncode
                    != 0
                ):
                    listing = subprocess.run(
                        base + ["task", "ls", "-q"], capture_output=True, text=True, timeout=30
                    )
                    if cid not in listing.stdout.split():
                        break
                    time.sleep(0.1)
                    continue
                break
            subprocess.run(base + ["container", "delete", cid], capture_output=True, timeout=30)
        if daemon.poll() is None:
            os.kill(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(daemon.pid, signal.SIGKILL)
                daemon.wait(timeout=5)


def test_containerd_task_state_with_cri_annotations(
    containerd: tuple[Path, list[str], Path],
) -> None:
    root, base, rootfs = containerd
    pod = {
        CRI + "sandbox-name": "web-1",
        CRI + "sandbox-namespace": "shop",
        CRI + "sandbox-uid": "1f2e3d4c-0000-4000-8000-000000000001",
    }
    labels = {
        "fk-sandbox": {CRI + "container-type": "sandbox", CRI + "sandbox-id": "fk-sandbox", **pod},
        "fk-app": {
            CRI + "container-type": "container",
            CRI + "container-name": "app",
            CRI + "sandbox-id": "fk-sandbox",
            **pod,
        },
    }
    for cid, ann in labels.items():
        flags = [arg for key, value in ann.items() for arg in ("--label", f"{key}={value}")]
        out = run(
            *base,
            "run",
            "-d",
            *flags,
            "--rootfs",
            str(rootfs),
            cid,
            "/bin/sleep",
            "600",
            timeout=60,
        )
        if out.returncode != 0:
            pytest.skip(f"containerd cannot run containers here: {out.stderr.strip()[:200]}")
    tasks = root / "run" / "containerd" / "io.containerd.runtime.v2.task" / "k8s.io"
    pids = {cid: int((tasks / cid / "init.pid").read_text()) for cid in labels}
    spec = json.loads((tasks / "fk-app" / "config.json").read_text())
    if CRI + "container-name" not in (spec.get("annotations") or {}):
        pytest.skip("this ctr does not copy labels into the OCI annotations")
    resolver = Resolver(root)
    sandbox = resolver.pod("shop/web-1")
    assert (sandbox.id, sandbox.pid, sandbox.sandbox) == ("fk-sandbox", pids["fk-sandbox"], True)
    app = resolver.pod("shop/web-1", "app")
    assert (app.id, app.pid, app.runtime) == ("fk-app", pids["fk-app"], "containerd")
    links = fleetkit(
        "ns", "ip", "--node-root", str(root), "--pod", "shop/web-1", "-c", "app", "-o", "json"
    )
    assert links.returncode == 0, links.stderr
    assert [link["ifname"] for link in json.loads(links.stdout)["links"]] == ["lo"]
    assert os.readlink(f"/proc/{pids['fk-app']}/ns/net") != os.readlink("/proc/self/ns/net")
