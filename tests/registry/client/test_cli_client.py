"""The commands: output, exit codes, errors without tracebacks, credentials, bad destinations."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetkit.cli import main
from tests.peers import require_root
from tests.registry.client.conftest import PASSWORD, USER, Images, TokenRegistry
from tests.registry.client.helpers import Registry, env, sha256

pytestmark = pytest.mark.interop


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def docker_config(tmp_path: Path) -> Iterator[Path]:
    cfg = tmp_path / "docker-config"
    cfg.mkdir()
    with env(DOCKER_CONFIG=str(cfg)):
        yield cfg / "config.json"


def test_pull_text_and_json(
    registry: Registry, images: Images, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = run(capsys, "pull", f"{registry.host}/test/app:v1", f"oci:{tmp_path}:v1")
    assert rc == 0, err
    assert out.splitlines()[0] == f"Digest: {images.app.digest}"
    assert "Status: Downloaded newer image" in out
    # not a TTY: one line per blob on stderr
    assert sum("Download complete" in line for line in err.splitlines()) == 4
    rc, out, err = run(
        capsys, "pull", "-o", "json", f"{registry.host}/test/app:v1", f"oci:{tmp_path}:v1"
    )
    doc = json.loads(out)
    assert rc == 0 and doc["digest"] == images.app.digest and doc["bytes_downloaded"] == 0
    assert {b["status"] for b in doc["blobs"]} == {"exists"}
    assert err.count("Already exists") == 4
    rc, out, err = run(capsys, "pull", "-q", f"{registry.host}/test/app:v1", f"oci:{tmp_path}:v1")
    assert rc == 0 and err == "" and "Image is up to date" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pull", "nginx/UPPER", "oci:/tmp/x"], "repository name must be lowercase"),
        (["pull", "127.0.0.1:1/a:b@sha256:zz", "oci:/tmp/x"], "invalid reference"),
        (["pull", "127.0.0.1:1/a", "/tmp/x"], "invalid image location"),
        (["pull", "127.0.0.1:1/a", "oci:/tmp/x", "--platform", "linux"], "invalid platform"),
        (
            ["pull", "127.0.0.1:1/a", "docker-archive:/tmp/x.tar", "--all-platforms"],
            "docker-archive holds one image",
        ),
        (["pull", "127.0.0.1:1/a", "oci:/tmp/x", "--max-concurrent-downloads", "0"], "at least 1"),
        (["pull", "--tls-verify=maybe", "a", "oci:/tmp/x"], "invalid boolean"),
        (["push", "oci:/tmp/x", "127.0.0.1:1/a", "--chunk-size", "0"], "chunk-size"),
        (["tags", "a//b"], "invalid reference"),
        (["pull"], "the following arguments are required"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = run(capsys, *argv)
    assert rc == 2
    assert err.startswith("error: ") and message in err
    assert "hint: " in err and "Traceback" not in err


def test_unknown_repository_and_tag_shown_plainly(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = run(capsys, "pull", f"{registry.host}/no/such:v1", f"oci:{tmp_path}")
    assert rc == 1
    # distribution 2.8 answers MANIFEST_UNKNOWN here (newer versions NAME_UNKNOWN): shown as is
    assert err.splitlines()[0] == f"error: {registry.host}/no/such:v1: manifest unknown"
    rc, _, err = run(capsys, "pull", f"{registry.host}/test/app:v9", f"oci:{tmp_path}")
    assert (
        rc == 1 and err.splitlines()[0] == f"error: {registry.host}/test/app:v9: manifest unknown"
    )
    assert "hint: check the repository and tag" in err
    rc, _, err = run(capsys, "tags", f"{registry.host}/no/such")
    assert rc == 1
    assert (
        err.splitlines()[0]
        == f"error: {registry.host}/no/such (tags): repository name not known to registry"
    )
    rc, _, err = run(capsys, "tags", "--retry-times", "2", "127.0.0.1:1/nothing/listens")
    assert rc == 1 and "cannot connect to 127.0.0.1:1" in err and "Traceback" not in err


def test_unwritable_destination(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    rc, _, err = run(
        capsys, "pull", "--retry-times", "1", f"{registry.host}/test/app:v1", f"oci:{blocker}/sub"
    )
    assert rc == 1 and "error: cannot write" in err and "Not a directory" in err
    rc, _, err = run(
        capsys, "pull", f"{registry.host}/test/app:v1", f"docker-archive:{tmp_path}/missing/x.tar"
    )
    assert rc == 1 and "does not exist" in err


@pytest.fixture
def small_fs() -> Iterator[Path]:
    require_root("mounting a small tmpfs to simulate a full disk")
    mnt = Path(tempfile.mkdtemp(prefix="fk-full-"))
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, timeout=30)
        mnt.rmdir()


def test_read_only_destination(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_root("mounting a read-only tmpfs (root ignores file modes)")
    mnt = tmp_path / "ro"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {proc.stderr.strip()}")
    try:
        rc, _, err = run(capsys, "pull", f"{registry.host}/test/app:v1", f"oci:{mnt}/img")
        assert (
            rc == 1
            and "Read-only file system" in err
            and "hint: choose a destination you can write to" in err
        )
        rc, _, err = run(
            capsys, "pull", f"{registry.host}/test/app:v1", f"docker-archive:{mnt}/img.tar"
        )
        assert rc == 1 and "Read-only file system" in err
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, timeout=30)


def test_full_disk(
    registry: Registry, images: Images, small_fs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = run(capsys, "pull", f"{registry.host}/test/big:v1", f"oci:{small_fs}/img:v1")
    assert rc == 1
    assert "No space left on device" in err and "hint: free some space" in err
    assert "Traceback" not in err
    index = json.loads((small_fs / "img" / "index.json").read_text())
    assert index["manifests"] == []  # nothing looks complete
    for blob in (small_fs / "img" / "blobs" / "sha256").iterdir():
        if "." not in blob.name:  # every file named by a digest is whole and verified
            assert sha256(blob.read_bytes())[7:] == blob.name
    rc, _, err = run(
        capsys, "pull", f"{registry.host}/test/big:v1", f"docker-archive:{small_fs}/img.tar"
    )
    assert rc == 1 and not (small_fs / "img.tar").exists()
    assert not [
        p for p in small_fs.iterdir() if p.name.startswith(".img.tar.") and p.suffix == ".tmp"
    ]


def test_login_pull_logout(
    basic_registry: Registry,
    images: Images,
    docker_config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = basic_registry.host
    monkeypatch.setattr(sys, "stdin", _Stdin("wrong\n"))
    rc, _, err = run(capsys, "login", host, "-u", USER, "--password-stdin")
    assert rc == 1 and "error:" in err and not docker_config.exists()
    monkeypatch.setattr(sys, "stdin", _Stdin(PASSWORD + "\n"))
    rc, out, err = run(capsys, "login", host, "-u", USER, "--password-stdin")
    assert rc == 0 and out == "Login Succeeded\n", err
    auth = json.loads(docker_config.read_text())["auths"][host]["auth"]
    assert base64.b64decode(auth).decode() == f"{USER}:{PASSWORD}"
    rc, out, err = run(capsys, "pull", f"{host}/test/app:v1", f"oci:{tmp_path}:v1")
    assert rc == 0, err
    rc, out, _ = run(capsys, "tags", host + "/test/app", "-o", "json")
    assert json.loads(out)["tags"] == ["v1"]
    rc, out, _ = run(capsys, "logout", host)
    assert rc == 0 and out == f"Removing login credentials for {host}\n"
    assert host not in json.loads(docker_config.read_text())["auths"]
    rc, _, err = run(capsys, "pull", f"{host}/test/app:v1", f"oci:{tmp_path}:v1")
    assert rc == 1 and "authentication required" in err and f"fleetkit login {host}" in err


class _Stdin:
    def __init__(self, text: str) -> None:
        self.text = text

    def read(self) -> str:
        return self.text

    def isatty(self) -> bool:
        return False


def test_trace_redacts_secrets(
    token_registry: TokenRegistry,
    images: Images,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, tokens = token_registry.registry.host, token_registry.tokens
    monkeypatch.setattr(sys, "stdin", _Stdin(PASSWORD))
    before = len(tokens.issued)
    rc, out, err = run(
        capsys,
        "pull",
        "--trace",
        "-u",
        USER,
        "--password-stdin",
        f"{host}/test/app:v1",
        f"oci:{tmp_path}:v1",
    )
    assert rc == 0, err
    issued = tokens.issued[before:]
    assert issued and not any(t in err for t in issued)
    assert (
        PASSWORD not in err and base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() not in err
    )
    assert (
        "> Authorization: Bearer [redacted]" in err and "> Authorization: Basic [redacted]" in err
    )
    assert "< HTTP/1.1 401 Unauthorized" in err and "WWW-Authenticate: Bearer realm=" in err
    assert f"Docker-Content-Digest: {images.app.digest}" in err
    assert err.count("/blobs/sha256:") >= 4


def test_manifest_command(
    registry: Registry, images: Images, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = run(capsys, "manifest", f"{registry.host}/test/app:v1")
    assert rc == 0 and out.encode() == images.app.manifest + b"\n"
    rc, out, _ = run(capsys, "manifest", "--descriptor", f"{registry.host}/test/multi:v1")
    doc = json.loads(out)
    assert doc["digest"] == images.multi_index and doc["mediaType"].endswith("index.v1+json")
    rc, out, _ = run(capsys, "manifest", "-o", "json", f"{registry.host}/test/multi:v1")
    assert rc == 0 and len(json.loads(out)["manifests"]) == 3


def test_push_command(
    registry: Registry, images: Images, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = run(
        capsys, "push", f"oci:{images.src / 'app'}:v1", f"{registry.host}/cli/pushed:v3"
    )
    assert rc == 0, err
    assert out == f"v3: digest: {images.app.digest} size: {len(images.app.manifest)}\n"


def test_subprocess_has_no_traceback_on_interrupt_free_errors(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fleetkit", "pull", "Bad Ref", f"oci:{tmp_path}"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: invalid reference format")
