"""The real distribution registry (Debian docker-registry 2.8.2) trusting fleetkit's tokens.

``fleetkit registry token-server`` issues the tokens; docker-registry's ``auth: token`` points
at it (realm, service, issuer, rootcertbundle = the certificate the token server generated).
skopeo then pushes and pulls through docker-registry with those tokens.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetkit.registry.auth.users import add_user
from tests.peers import require
from tests.registry._images import make_image, sha256, write_oci_layout
from tests.registry._server import ProcessServer

pytestmark = pytest.mark.interop

POLICY = """
repositories:
  - name: "public/*"
    pull: ["*"]
    push: [alice]
    anonymous_pull: true
  - name: "private/*"
    pull: [alice]
    push: [alice]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ProcessServer]]:
    registry_bin = require("docker-registry", "apt-get install -y docker-registry")
    tmp = tmp_path_factory.mktemp("distribution")
    users = tmp / "htpasswd"
    add_user(str(users), "alice", "alicepw", cost=4)
    (tmp / "policy.yaml").write_text(POLICY)
    key, cert = tmp / "token.key", tmp / "token.crt"
    tokens = ProcessServer(
        tmp,
        "--listen",
        "127.0.0.1:0",
        "--token-key",
        str(key),
        "--token-cert",
        str(cert),
        "--htpasswd",
        str(users),
        "--policy",
        str(tmp / "policy.yaml"),
        "--service",
        "fleetkit-registry",
        "--issuer",
        "fleetkit-token-issuer",
        command="token-server",
    ).start()
    assert cert.exists()  # generated on first start; the registry's rootcertbundle
    port = free_port()
    config = tmp / "config.yml"
    config.write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "info"},
                "storage": {"filesystem": {"rootdirectory": str(tmp / "data")}},
                "http": {"addr": f"127.0.0.1:{port}", "secret": "fleetkit-test"},
                "auth": {
                    "token": {
                        "realm": f"{tokens.url}/service/token",
                        "service": "fleetkit-registry",
                        "issuer": "fleetkit-token-issuer",
                        "rootcertbundle": str(cert),
                    }
                },
            }
        )
    )
    log = open(tmp / "registry.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [registry_bin, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    host = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{host}/v2/", timeout=2)
            except urllib.error.HTTPError as exc:
                assert exc.code == 401
                assert f'realm="{tokens.url}/service/token"' in exc.headers["WWW-Authenticate"]
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp / "registry.log").read_text()[-3000:]) from None
                time.sleep(0.1)
        yield host, tokens
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        tokens.stop()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    img = make_image(7, (40_000, 9_000))
    return write_oci_layout(img, str(tmp_path_factory.mktemp("img") / "oci"), "v1"), img.digest


def test_push_and_pull_through_distribution(
    stack: tuple[str, ProcessServer], image: tuple[str, str], tmp_path: Path
) -> None:
    skopeo = require("skopeo", "apt-get install -y skopeo")
    host, tokens = stack
    src, digest = image
    for repo in ("public/app", "private/app"):
        run(
            [
                skopeo,
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                "alice:alicepw",
                src,
                f"docker://{host}/{repo}:v1",
            ]
        )
        raw = run(
            [
                skopeo,
                "inspect",
                "--raw",
                "--tls-verify=false",
                "--creds",
                "alice:alicepw",
                f"docker://{host}/{repo}:v1",
            ]
        ).stdout
        assert sha256(raw.encode()) == digest
    run(
        [
            skopeo,
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            "alice:alicepw",
            f"docker://{host}/private/app:v1",
            f"oci:{tmp_path / 'out'}:v1",
        ]
    )
    assert (
        json.loads((tmp_path / "out" / "index.json").read_text())["manifests"][0]["digest"]
        == digest
    )
    # the tokens came from fleetkit's token service
    assert "GET /service/token?" in tokens.log_text()


def test_anonymous_pull_only(
    stack: tuple[str, ProcessServer], image: tuple[str, str], tmp_path: Path
) -> None:
    skopeo = require("skopeo", "apt-get install -y skopeo")
    host, _ = stack
    src, digest = image
    run(
        [
            skopeo,
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:alicepw",
            src,
            f"docker://{host}/public/anon:v1",
        ]
    )
    # anonymous pull of a public repository works
    run(
        [
            skopeo,
            "copy",
            "--src-tls-verify=false",
            f"docker://{host}/public/anon:v1",
            f"oci:{tmp_path / 'anon'}:v1",
        ]
    )
    assert (
        json.loads((tmp_path / "anon" / "index.json").read_text())["manifests"][0]["digest"]
        == digest
    )
    # anonymous pull of a private repository is refused
    proc = run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{host}/private/app:v1"],
        check=False,
    )
    assert proc.returncode != 0
    # anonymous push is denied, and nothing lands
    proc = run(
        [skopeo, "copy", "--dest-tls-verify=false", src, f"docker://{host}/public/anon:pushed"],
        check=False,
    )
    assert proc.returncode != 0
    tags = json.loads(
        run(
            [
                skopeo,
                "list-tags",
                "--tls-verify=false",
                "--creds",
                "alice:alicepw",
                f"docker://{host}/public/anon",
            ]
        ).stdout
    )["Tags"]
    assert tags == ["v1"]
    # and a wrong password gets no token at all
    proc = run(
        [
            skopeo,
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:nope",
            src,
            f"docker://{host}/public/anon:bad",
        ],
        check=False,
    )
    assert proc.returncode != 0
