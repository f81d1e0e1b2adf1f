"""A real Podman container (runc), resolved without the podman CLI. Where the sandbox allows it.

The image is imported from a tiny rootfs (the host's sleep and its libraries); no registry, no
network. Any step podman cannot do here (no podman, no runc, rlimits, cgroups) skips the test
with podman's own message, in CI too: it is a "where the sandbox allows it" test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns.conftest import fleetkit, run

pytestmark = pytest.mark.interop


def _rootfs_tar(tmp: Path) -> Path:
    sleep = shutil.which("sleep") or "/bin/sleep"
    out = run("ldd", sleep)
    libs = [
        part for line in out.stdout.splitlines() for part in line.split() if part.startswith("/")
    ]
    tar_path = tmp / "rootfs.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(sleep, arcname="bin/sleep")
        for lib in libs:
            tar.add(os.path.realpath(lib), arcname=lib.lstrip("/"))
        resolv = tmp / "resolv.conf"
        resolv.write_text("nameserver 10.1.2.3\nsearch fleetkit.test\n")
        tar.add(resolv, arcname="etc/resolv.conf")
    return tar_path


@pytest.fixture()
def podman_container(tmp_path: Path) -> Iterator[tuple[str, str, int]]:
    podman = shutil.which("podman")
    if podman is None or shutil.which("runc") is None and not os.path.exists("/usr/sbin/runc"):
        pytest.skip("podman and runc are not installed (apt-get install -y podman runc)")
    if os.geteuid() != 0:
        pytest.skip("rootful podman needs root")
    tag = f"localhost/fleetkit-netns-test:{os.getpid()}"
    name = f"fk-netns-{os.getpid()}"
    imported = run(podman, "import", "-q", str(_rootfs_tar(tmp_path)), tag, timeout=120)
    if imported.returncode != 0:
        pytest.skip(f"podman import failed here: {imported.stderr.strip()[:200]}")
    try:
        started = run(
            podman,
            "run",
            "-d",
            "--name",
            name,
            "--runtime",
            "runc",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            tag,
            "/bin/sleep",
            "600",
            timeout=120,
        )
        if started.returncode != 0:
            pytest.skip(f"podman cannot run containers here: {started.stderr.strip()[:200]}")
        cid = started.stdout.strip().splitlines()[-1]
        inspect = run(podman, "inspect", "-f", "{{.State.Pid}}", name, timeout=60)
        yield name, cid, int(inspect.stdout.strip())
    finally:
        subprocess.run([podman, "rm", "-f", "-t", "0", name], capture_output=True, timeout=120)
        subprocess.run([podman, "rmi", "-f", tag], capture_output=True, timeout=120)


def test_podman_container_resolves_and_enters(podman_container: tuple[str, str, int]) -> None:
    name, cid, pid = podman_container
    listing = fleetkit("ns", "ps", "-o", "json")
    assert listing.returncode == 0, listing.stderr
    mine = [c for c in json.loads(listing.stdout) if c["id"] == cid]
    assert len(mine) == 1
    assert (mine[0]["name"], mine[0]["pid"], mine[0]["runtime"]) == (name, pid, "podman")
    netns = os.readlink(f"/proc/{pid}/ns/net")
    for target in (["--container", name], ["--container", cid[:12]]):
        entered = fleetkit("nsenter", *target, "-n", "readlink", "/proc/self/ns/net")
        assert entered.returncode == 0, entered.stderr
        assert entered.stdout.strip() == netns
    links = fleetkit("ns", "ip", "--container", name, "-o", "json")
    assert [link["ifname"] for link in json.loads(links.stdout)["links"]] == ["lo"]
    from fleetkit.netns.dns import read_resolv_conf

    conf = read_resolv_conf(pid)
    assert conf.path == f"/proc/{pid}/root/etc/resolv.conf"
    assert conf.nameservers == tuple(
        line.split()[1]
        for line in Path(conf.path).read_text().splitlines()
        if line.startswith("nameserver")
    )
