"""A private podman for tests: its own root, runroot and auth file, removed afterwards.

The ``podman`` fixture (import it into a test module) or ``with private_podman(tmp_path) as
podman``; then ``podman("pull", "--tls-verify=false", ref)``, and ``podman.images()`` is
``podman images --format json``. Needs podman and root (vfs storage): skips (fails under CI)
before the test does any work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.peers import require, require_root

__all__ = ["Podman", "private_podman", "podman"]


@dataclass(frozen=True)
class Podman:
    """podman with a private store (vfs, cgroupfs, no events) and an empty auth file."""

    base: tuple[str, ...]
    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=300, env=self.env
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def images(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = json.loads(self("images", "--format", "json").stdout)
        return out


@contextmanager
def private_podman(tmp_path: Path) -> Iterator[Podman]:
    """A :class:`Podman` whose store lives under a short /tmp path (runroot <= 50 chars)."""
    podman = require("podman", "apt-get install -y podman")
    require_root("podman with --storage-driver vfs and a private --root")
    short = Path(tempfile.mkdtemp(prefix="fkpm", dir="/tmp"))
    auth = tmp_path / "podman-auth.json"
    auth.write_text('{"auths": {}}')
    tool = Podman(
        (
            podman,
            "--root",
            str(short / "root"),
            "--runroot",
            str(short / "run"),
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ),
        dict(os.environ, REGISTRY_AUTH_FILE=str(auth)),
    )
    try:
        yield tool
    finally:
        tool("rmi", "-a", "-f", check=False)
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    """A private podman for one test (see the module docstring)."""
    with private_podman(tmp_path) as tool:
        yield tool
