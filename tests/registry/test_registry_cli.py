"""``fleetkit registry ...``: flags, exit codes, one-line errors with hints, gc output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fleetkit.registry.manifest import parse_manifest
from fleetkit.registry.storage import FilesystemDriver, RegistryStore
from tests.registry._images import make_image
from tests.registry._server import REPO


def fk(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetkit", "registry", *args],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        cwd=cwd,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
    )


def assert_clean_error(proc: subprocess.CompletedProcess[str], code: int) -> None:
    assert proc.returncode == code, proc
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    assert all(line.startswith(("error: ", "hint: ")) for line in lines), proc.stderr


@pytest.mark.parametrize("sub", ["serve", "token-server", "htpasswd", "gc"])
def test_help_ends_with_example(sub: str) -> None:
    proc = fk(sub, "--help")
    assert proc.returncode == 0
    assert proc.stdout.rstrip().splitlines()[-1].strip().startswith("fleetkit registry ")


def test_bad_flags_exit_2() -> None:
    assert_clean_error(fk("serve", "--auth", "kerberos"), 2)
    assert_clean_error(fk("frobnicate"), 2)
    assert_clean_error(fk("serve", "--listen", "nonsense"), 2)
    assert_clean_error(fk("serve", "--auth", "htpasswd", "--root", "memory:"), 2)
    assert_clean_error(fk("token-server"), 2)


def test_plain_http_only_on_loopback() -> None:
    proc = fk("serve", "--root", "memory:", "--listen", "0.0.0.0:0")
    assert_clean_error(proc, 2)
    assert "--insecure-listen" in proc.stderr


def test_bad_policy_and_htpasswd_files(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("repositories:\n  - name: x\n    pushh: [a]\n")
    (tmp_path / "users").write_text("alice:plaintext\n")
    proc = fk("serve", "--root", "memory:", "--auth", "token", "--policy", str(tmp_path / "p.yaml"))
    assert_clean_error(proc, 2)
    assert f"{tmp_path / 'p.yaml'}:2" in proc.stderr
    proc = fk(
        "serve", "--root", "memory:", "--auth", "htpasswd", "--htpasswd", str(tmp_path / "users")
    )
    assert_clean_error(proc, 2)
    assert f"{tmp_path / 'users'}:1" in proc.stderr


def test_htpasswd_add(tmp_path: Path) -> None:
    f = tmp_path / "htpasswd"
    proc = fk(
        "htpasswd",
        "add",
        "alice",
        "--file",
        str(f),
        "--password-stdin",
        "--cost",
        "4",
        stdin="pw\n",
    )
    assert proc.returncode == 0 and "added user alice" in proc.stdout
    assert f.read_text().startswith("alice:$2y$04$")
    proc = fk(
        "htpasswd",
        "add",
        "alice",
        "--file",
        str(f),
        "--password-stdin",
        "--cost",
        "4",
        stdin="pw2\n",
    )
    assert "updated user alice" in proc.stdout
    assert_clean_error(fk("htpasswd", "add", "bob", "--file", str(f)), 2)  # no tty, no stdin flag
    assert_clean_error(
        fk("htpasswd", "add", "a:b", "--file", str(f), "--password-stdin", stdin="x\n"), 2
    )


def test_htpasswd_remove_and_list(tmp_path: Path) -> None:
    f = tmp_path / "htpasswd"
    for user in ("alice", "bob", "carol"):
        add = fk(
            "htpasswd",
            "add",
            user,
            "--file",
            str(f),
            "--password-stdin",
            "--cost",
            "4",
            stdin="pw\n",
        )
        assert add.returncode == 0, add.stderr
    proc = fk("htpasswd", "list", "--file", str(f))
    assert proc.returncode == 0 and proc.stdout.split() == ["alice", "bob", "carol"]
    proc = fk("htpasswd", "remove", "bob", "--file", str(f))
    assert proc.returncode == 0 and "removed user bob" in proc.stdout
    assert [line.split(":")[0] for line in f.read_text().splitlines()] == ["alice", "carol"]
    assert f.stat().st_mode & 0o777 == 0o600
    proc = fk("htpasswd", "list", "--file", str(f), "-o", "json")
    assert json.loads(proc.stdout)["users"] == ["alice", "carol"]
    missing = fk("htpasswd", "remove", "bob", "--file", str(f))
    assert_clean_error(missing, 2)
    assert "no user 'bob'" in missing.stderr
    assert_clean_error(fk("htpasswd", "remove", "--file", str(f)), 2)
    assert_clean_error(fk("htpasswd", "list", "--file", str(tmp_path / "none")), 2)
    (tmp_path / "bad").write_text("alice:plaintext\n")
    assert_clean_error(fk("htpasswd", "list", "--file", str(tmp_path / "bad")), 2)


def test_gc_cli(tmp_path: Path) -> None:
    root = tmp_path / "data"
    store = RegistryStore(FilesystemDriver(str(root)))
    img = make_image(1)
    for data in img.blobs().values():
        store.put_blob("app", data)
    store.put_manifest("app", img.manifest, parse_manifest(img.manifest), ["v1"])
    orphan = store.put_blob("app", b"nobody references me")
    proc = fk("gc", "--root", str(root), "--dry-run", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["dry_run"] and doc["blobs_deleted"] == [orphan]
    assert store.blob_size(orphan) is not None
    proc = fk("gc", "--root", str(root))
    assert proc.returncode == 0 and f"deleted blob {orphan}" in proc.stdout
    assert store.blob_size(orphan) is None
    assert store.resolve_tag("app", "v1") == img.digest
    assert_clean_error(fk("gc", "--root", str(tmp_path / "missing")), 2)
