"""Against fleetkit's own registry (``fleetkit registry serve``) and its token service in front
of the real distribution registry (``fleetkit registry token-server``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from fleetkit.cli import main
from fleetkit.registry.client import (
    AuthError,
    Credential,
    RetryPolicy,
    get_manifest,
    list_tags,
    pull,
    push,
)
from tests.registry.client.conftest import PASSWORD, USER, Images
from tests.registry.client.helpers import (
    FleetkitServer,
    Registry,
    env,
    htpasswd_line,
    sha256,
    skopeo_push,
    start_docker_registry,
    start_fleetkit,
)
from tests.registry.client.servers import CUT_AT, CUT_WHEN, FaultProxy

pytestmark = pytest.mark.interop
CRED = Credential(USER, PASSWORD)


@pytest.fixture(scope="module")
def fleetkit_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetkitServer]:
    work = tmp_path_factory.mktemp("fleetkit-serve")
    (work / "htpasswd").write_text(htpasswd_line(USER, PASSWORD))
    server = start_fleetkit(
        work,
        "serve",
        "--root",
        str(work / "data"),
        "--auth",
        "token",
        "--htpasswd",
        str(work / "htpasswd"),
    )
    try:
        yield server
    finally:
        server.stop()


def test_push_pull_round_trip(
    fleetkit_registry: FleetkitServer, images: Images, tmp_path: Path
) -> None:
    host = fleetkit_registry.host
    pushed = push(
        f"oci:{images.src / 'big'}:v1",
        f"{host}/team/big:v1",
        credential=CRED,
        chunk_size=512 * 1024,
    )
    assert pushed.digest == images.big.digest
    multi = push(f"oci:{images.src / 'multi'}:v1", f"{host}/team/multi:v1", credential=CRED)
    assert multi.digest == images.multi_index
    mounted = push(
        f"oci:{images.src / 'big'}:v1",
        f"{host}/team/big-copy:v1",
        credential=CRED,
        mount_from=("team/big",),
    )
    assert {s for _, _, s in mounted.blobs} <= {"mounted", "exists"}
    result = pull(f"{host}/team/big:v1", f"oci:{tmp_path / 'oci'}:v1", credential=CRED)
    assert result.digest == images.big.digest
    for layer in images.big.layers:
        assert (tmp_path / "oci" / "blobs" / "sha256" / sha256(layer)[7:]).read_bytes() == layer
    arm = pull(
        f"{host}/team/multi:v1",
        f"oci:{tmp_path / 'arm'}:v1",
        credential=CRED,
        platform="linux/arm/v7",
    )
    assert arm.digest == images.multi[2].digest and arm.index_digest == images.multi_index
    assert list_tags(f"{host}/team/big", credential=CRED) == ["v1"]
    assert get_manifest(f"{host}/team/big:v1", credential=CRED).raw == images.big.manifest
    with pytest.raises(AuthError):
        pull(f"{host}/team/big:v1", f"oci:{tmp_path / 'anon'}")


def test_login_and_trace(
    fleetkit_registry: FleetkitServer,
    images: Images,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = fleetkit_registry.host
    push(f"oci:{images.src / 'app'}:v1", f"{host}/team/app:v1", credential=CRED)

    class Stdin:
        def read(self) -> str:
            return PASSWORD

        def isatty(self) -> bool:
            return False

    monkeypatch.setattr(sys, "stdin", Stdin())
    with env(DOCKER_CONFIG=str(tmp_path / "cfg")):
        assert main(["login", host, "-u", USER, "--password-stdin"]) == 0
        capsys.readouterr()
        assert (
            main(
                ["pull", "--trace", f"{host}/team/app:v1", f"docker-archive:{tmp_path / 'app.tar'}"]
            )
            == 0
        )
        out, err = capsys.readouterr()
        assert main(["logout", host]) == 0
    assert f"Digest: {images.app.digest}" in out
    assert "< HTTP/1.1 401 Unauthorized" in err and "/service/token?" in err
    assert "Authorization: Bearer [redacted]" in err and PASSWORD not in err
    assert (tmp_path / "app.tar").stat().st_size > sum(len(b) for b in images.app.layers)


def test_resume_against_fleetkit_server(
    fleetkit_registry: FleetkitServer, images: Images, tmp_path: Path
) -> None:
    host = fleetkit_registry.host
    push(f"oci:{images.src / 'big'}:v1", f"{host}/team/resume:v1", credential=CRED)
    proxy = FaultProxy(host).start()
    assert isinstance(proxy, FaultProxy)
    layer = sha256(images.big.layers[2])
    cut: list[bool] = []
    partial = tmp_path / "blobs" / "sha256" / f"{layer[7:]}.partial"

    async def cut_once(request: web.Request, p: FaultProxy) -> None:
        if not cut and request.method == "GET" and request.path.endswith(layer):
            cut.append(True)
            request[CUT_AT] = 700_000
            request[CUT_WHEN] = lambda: partial.exists() and partial.stat().st_size >= 700_000
        return None

    proxy.faults.append(cut_once)
    try:
        pull(
            f"{proxy.host}/team/resume:v1",
            f"oci:{tmp_path}:v1",
            credential=CRED,
            retry=RetryPolicy(5, 0.05, 0.1),
        )
    finally:
        proxy.stop()
    gets = proxy.blob_gets(layer)
    assert [g.headers.get("Range") for g in gets] == [None, "bytes=700000-"]
    assert gets[1].status == 206
    assert (tmp_path / "blobs" / "sha256" / layer[7:]).read_bytes() == images.big.layers[2]


@dataclass
class TokenServed:
    registry: Registry
    tokens: FleetkitServer


@pytest.fixture(scope="module")
def distribution_with_fleetkit_tokens(
    tmp_path_factory: pytest.TempPathFactory, images: Images
) -> Iterator[TokenServed]:
    from tests.peers import require

    require("docker-registry", "apt-get install -y docker-registry")
    require("skopeo", "apt-get install -y skopeo")
    work = tmp_path_factory.mktemp("fleetkit-token-server")
    (work / "htpasswd").write_text(htpasswd_line(USER, PASSWORD))
    tokens = start_fleetkit(
        work,
        "token-server",
        "--htpasswd",
        str(work / "htpasswd"),
        "--token-key",
        str(work / "key.pem"),
    )
    reg = None
    try:
        reg = start_docker_registry(
            work / "registry",
            {
                "token": {
                    "realm": f"http://{tokens.host}/service/token",
                    "service": "fleetkit-registry",
                    "issuer": "fleetkit-token-issuer",
                    "rootcertbundle": str(work / "key.crt"),
                }
            },
        )
        skopeo_push(images.src / "app", "v1", f"{reg.host}/team/app:v1", creds=f"{USER}:{PASSWORD}")
        yield TokenServed(reg, tokens)
    finally:
        if reg is not None:
            reg.stop()
        tokens.stop()


def test_distribution_with_fleetkit_token_server(
    distribution_with_fleetkit_tokens: TokenServed, images: Images, tmp_path: Path
) -> None:
    host = distribution_with_fleetkit_tokens.registry.host
    result = pull(f"{host}/team/app:v1", f"oci:{tmp_path}:v1", credential=CRED)
    assert result.digest == images.app.digest
    pushed = push(f"oci:{tmp_path}:v1", f"{host}/team/again:v1", credential=CRED)
    assert pushed.digest == images.app.digest
    with pytest.raises(AuthError) as info:
        pull(f"{host}/team/app:v1", f"oci:{tmp_path / 'x'}", credential=Credential(USER, "wrong"))
    assert "refused" in info.value.message
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["manifests"][0]["digest"] == images.app.digest


def _self_signed(work: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleetkit test registry")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("0.0.0.0")),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = work / "tls.crt", work / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_verify_for_non_loopback_names(
    registry: Registry, images: Images, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """0.0.0.0 reaches this host but is not 127.0.0.0/8: it gets docker's HTTPS rules."""
    plain = "0.0.0.0:" + registry.host.rpartition(":")[2]
    rc = main(["pull", f"{plain}/test/app:v1", f"oci:{tmp_path / 'a'}"])
    err = capsys.readouterr().err
    assert rc == 1 and "TLS handshake failed" in err and "--tls-verify=false" in err
    rc = main(["pull", "--tls-verify=false", f"{plain}/test/app:v1", f"oci:{tmp_path / 'a'}"])
    assert rc == 0, capsys.readouterr().err
    # a TLS registry with a self-signed certificate: refused, then accepted unverified over https
    cert, key = _self_signed(tmp_path)
    server = start_fleetkit(
        tmp_path / "tls",
        "serve",
        "--root",
        "memory:",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
    )
    try:
        host = "0.0.0.0:" + server.host.rpartition(":")[2]
        capsys.readouterr()
        rc = main(["push", f"oci:{images.src / 'app'}:v1", f"{host}/tls/app:v1"])
        err = capsys.readouterr().err
        assert rc == 1 and "certificate" in err.lower() and "--tls-verify=false" in err
        assert (
            main(
                ["push", "--tls-verify=false", f"oci:{images.src / 'app'}:v1", f"{host}/tls/app:v1"]
            )
            == 0
        )
        capsys.readouterr()
        rc = main(
            [
                "pull",
                "--trace",
                "--tls-verify=false",
                f"{host}/tls/app:v1",
                f"oci:{tmp_path / 'b'}:v1",
            ]
        )
        err = capsys.readouterr().err
        assert rc == 0, err
        assert f"> GET https://{host}/v2/tls/app/manifests/v1" in err and "http://" not in err
        # trusted through SSL_CERT_FILE, the same pull verifies the certificate and succeeds
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "fleetkit",
                "pull",
                "-q",
                f"{host}/tls/app:v1",
                f"oci:{tmp_path / 'c'}:v1",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "SSL_CERT_FILE": str(cert)},
        )
        assert proc.returncode == 0, proc.stderr
        assert f"Digest: {images.app.digest}" in proc.stdout
    finally:
        server.stop()
