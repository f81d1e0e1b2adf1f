"""A ``fleetkit cluster serve`` process on 127.0.0.1 (any free port) and real kubectl."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.peers import require

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cluster"
STARTUP_TIMEOUT_S = 60


@dataclass
class Kubectl:
    """kubectl bound to one fleetkit cluster's kubeconfig."""

    binary: str
    kubeconfig: str
    workdir: Path

    def run(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": self.kubeconfig, "HOME": str(self.workdir)}
        proc = subprocess.run(
            [self.binary, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=self.workdir,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def out(self, *args: str) -> str:
        return self.run(*args).stdout


def start_cluster(workdir: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """Start the server; returns the process and its kubeconfig once it is listening."""
    kubeconfig = str(workdir / "kubeconfig")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleetkit",
            "--debug",
            "cluster",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig-out",
            kubeconfig,
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=workdir,
    )
    assert proc.stderr is not None
    seen = ""
    while True:
        line = proc.stderr.readline()  # blocks until the server says it is serving (or exits)
        seen += line
        if "serving" in line:
            return proc, kubeconfig
        if not line:
            proc.kill()
            proc.wait(timeout=10)
            raise AssertionError(f"fleetkit cluster serve did not start:\n{seen}")


def stop_cluster(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def kubectl(tmp_path: Path) -> Iterator[Kubectl]:
    binary = require(
        "kubectl", "apt-get install -y kubectl (or the google-cloud-cli-kubectl package)"
    )
    proc, kubeconfig = start_cluster(tmp_path, "--nodes", str(FIXTURES / "nodes.yaml"))
    try:
        yield Kubectl(binary, kubeconfig, tmp_path)
    finally:
        stop_cluster(proc)
