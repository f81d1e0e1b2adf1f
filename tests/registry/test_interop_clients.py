"""Real clients against ``fleetkit registry serve``: skopeo, podman, python-dxf, oras, ctr.

Each auth mode gets a real server process on 127.0.0.1 (ephemeral port, temp root) that the
tests stop by PID.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetkit.registry.auth.users import add_user
from tests.peers import require, require_module, require_root
from tests.registry._images import make_image, sha256, write_oci_layout
from tests.registry._podman import Podman, podman  # noqa: F401 (podman: the fixture)
from tests.registry._server import ProcessServer, make_tls_cert

pytestmark = pytest.mark.interop

USER, PASSWORD = "alice", "alice-secret"


def run(
    cmd: list[str], timeout: float = 120, check: bool = True, **kw: object
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc  # type: ignore[no-any-return]


@dataclass
class Mode:
    name: str
    server: ProcessServer
    creds: str | None  # user:password for clients, None when no auth
    ca: str | None = None  # the server's self-signed TLS certificate (auth modes run HTTPS)


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "htpasswd"
    add_user(str(path), USER, PASSWORD, cost=4)
    return path


@pytest.fixture(scope="module", params=["none", "htpasswd", "token"])
def mode(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, users: Path
) -> Iterator[Mode]:
    tmp = tmp_path_factory.mktemp(f"srv-{request.param}")
    args = ["--root", str(tmp / "data"), "--listen", "127.0.0.1:0", "--auth", request.param]
    if request.param != "none":
        # auth over TLS (python-dxf refuses credentials over plain HTTP, as it should)
        cert, key = make_tls_cert(tmp)
        policy = tmp / "policy.yaml"
        policy.write_text(
            f'repositories:\n  - name: "*"\n    pull: [{USER}]\n    push: [{USER}]\n'
            f"    delete: [{USER}]\n"
        )
        args += ["--htpasswd", str(users), "--policy", str(policy)]
        args += ["--tls-cert", cert, "--tls-key", key]
    server = ProcessServer(tmp, *args).start()
    ca = str(tmp / "tls.crt") if request.param != "none" else None
    if ca is not None:  # a cert dir with only the CA (a .key there would mean a client cert)
        (tmp / "ca").mkdir()
        (tmp / "ca" / "ca.crt").write_bytes((tmp / "tls.crt").read_bytes())
    try:
        yield Mode(
            request.param, server, None if request.param == "none" else f"{USER}:{PASSWORD}", ca
        )
    finally:
        assert server.stop() == 0, server.log_text()[-2000:]


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    img = make_image(42, (50_000, 120_000, 7_000))
    path = tmp_path_factory.mktemp("img") / "oci"
    return write_oci_layout(img, str(path), "v1"), img.digest


def tls(side: str, mode: Mode) -> list[str]:
    """skopeo flags: verify the server against its CA in auth modes, plain HTTP otherwise."""
    prefix = f"--{side}-" if side else "--"
    if mode.ca is None:
        return [f"{prefix}tls-verify=false"]
    return [f"{prefix}cert-dir", str(Path(mode.ca).parent / "ca")]


def skopeo_creds(flag: str, mode: Mode) -> list[str]:
    return [flag, mode.creds] if mode.creds else []


def test_skopeo_push_pull_oci_and_docker_archive(
    mode: Mode, layout: tuple[str, str], tmp_path: Path
) -> None:
    skopeo = require("skopeo", "apt-get install -y skopeo")
    src, digest = layout
    dest = f"docker://{mode.server.host}/interop/skopeo:{mode.name}"
    run([skopeo, "copy", *tls("dest", mode), *skopeo_creds("--dest-creds", mode), src, dest])
    out = run([skopeo, "inspect", "--raw", *tls("", mode), *skopeo_creds("--creds", mode), dest])
    assert sha256(out.stdout.encode()) == digest  # stored byte for byte
    run(
        [
            skopeo,
            "copy",
            *tls("src", mode),
            *skopeo_creds("--src-creds", mode),
            dest,
            f"oci:{tmp_path / 'pulled'}:x",
        ]
    )
    index = json.loads((tmp_path / "pulled" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest
    archive = tmp_path / "pulled.tar"
    run(
        [
            skopeo,
            "copy",
            *tls("src", mode),
            *skopeo_creds("--src-creds", mode),
            dest,
            f"docker-archive:{archive}:interop/skopeo:{mode.name}",
        ]
    )
    with tarfile.open(archive) as tar:
        doc = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert doc[0]["RepoTags"] == [f"docker.io/interop/skopeo:{mode.name}"]
    # and back: docker-archive -> registry (skopeo converts to a Docker v2 manifest)
    back = f"docker://{mode.server.host}/interop/from-archive:{mode.name}"
    run(
        [
            skopeo,
            "copy",
            *tls("dest", mode),
            *skopeo_creds("--dest-creds", mode),
            f"docker-archive:{archive}",
            back,
        ]
    )
    raw = json.loads(
        run(
            [skopeo, "inspect", "--raw", *tls("", mode), *skopeo_creds("--creds", mode), back]
        ).stdout
    )
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    tags = json.loads(
        run(
            [
                skopeo,
                "list-tags",
                *tls("", mode),
                *skopeo_creds("--creds", mode),
                f"docker://{mode.server.host}/interop/skopeo",
            ]
        ).stdout
    )
    assert mode.name in tags["Tags"]


def test_skopeo_without_credentials_is_refused(mode: Mode, layout: tuple[str, str]) -> None:
    skopeo = require("skopeo", "apt-get install -y skopeo")
    src, _ = layout
    if mode.creds is None:
        # no auth: the same anonymous push is accepted
        run(
            [skopeo, "copy", *tls("dest", mode), src, f"docker://{mode.server.host}/interop/anon:x"]
        )
        return
    proc = run(
        [
            skopeo,
            "copy",
            *tls("dest", mode),
            src,
            f"docker://{mode.server.host}/interop/anon:x",
        ],
        check=False,
    )
    assert proc.returncode != 0
    assert any(w in proc.stderr.lower() for w in ("unauthorized", "denied", "401"))
    proc = run(
        [
            skopeo,
            "copy",
            *tls("dest", mode),
            "--dest-creds",
            f"{USER}:wrong",
            src,
            f"docker://{mode.server.host}/interop/anon:x",
        ],
        check=False,
    )
    assert proc.returncode != 0
    tags = run(
        [
            skopeo,
            "list-tags",
            *tls("", mode),
            "--creds",
            mode.creds,
            f"docker://{mode.server.host}/interop/anon",
        ],
        check=False,
    )
    assert proc.returncode != 0
    # the repository never appeared
    assert tags.returncode != 0 and "404" in tags.stderr


def test_python_dxf(mode: Mode, tmp_path: Path) -> None:
    require_module("dxf", "pip install python-dxf")
    import dxf

    def auth(d: dxf.DXF, response: object) -> None:
        user, _, pw = (mode.creds or ":").partition(":")
        d.authenticate(user or None, pw or None, response=response)

    repo = dxf.DXF(
        mode.server.host,
        "interop/dxf",
        auth=auth if mode.creds else None,
        insecure=mode.creds is None,
        tlsverify=mode.ca or True,
    )
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(300_000))
    digest = repo.push_blob(str(blob))
    assert digest == sha256(blob.read_bytes())
    repo.set_alias("latest", digest)
    assert repo.list_aliases() == ["latest"]
    assert repo.get_alias("latest") == [digest]
    got = b"".join(repo.pull_blob(digest))
    assert got == blob.read_bytes()
    assert repo.blob_size(digest) == 300_000
    assert repo.del_alias("latest") == [digest]
    assert repo.list_aliases() == []


def test_oras(mode: Mode, tmp_path: Path) -> None:
    require_module("oras", "pip install oras")
    import oras.client

    client = oras.client.OrasClient(
        hostname=mode.server.host,
        insecure=mode.creds is None,
        tls_verify=mode.ca or True,
        auth_backend="token" if mode.name == "token" else "basic",
    )
    if mode.creds:
        client.login(
            USER,
            PASSWORD,
            hostname=mode.server.host,
            config_path=str(tmp_path / "cfg.json"),
            tls_verify=mode.ca or True,
        )
    work = tmp_path / "work"
    work.mkdir()
    (work / "artifact.txt").write_text("hello from oras\n" * 1000)
    target = f"{mode.server.host}/interop/oras:v1"
    if mode.name == "token":
        # oras-py reuses its cached token after a 401 insufficient_scope (it only refreshes on
        # 403), so a push that starts with a pull-scoped HEAD would fail against any
        # distribution-like registry. Let its first challenge ask for pull,push instead.
        r = client.do_request(f"https://{mode.server.host}/v2/interop/oras/blobs/uploads/", "POST")
        assert r.status_code == 202
        client.do_request(r.headers["Location"], "DELETE")
    cwd = os.getcwd()
    os.chdir(work)
    try:
        resp = client.push(target=target, files=["artifact.txt"])
        assert resp.status_code == 201
        out = tmp_path / "out"
        files = client.pull(target=target, outdir=str(out))
    finally:
        os.chdir(cwd)
    assert [Path(f).read_text() for f in files] == ["hello from oras\n" * 1000]
    assert "v1" in client.get_tags(f"{mode.server.host}/interop/oras")


def test_podman_push_pull(
    mode: Mode,
    layout: tuple[str, str],
    podman: Podman,  # noqa: F811 (the fixture)
) -> None:
    src, digest = layout
    ref = f"{mode.server.host}/interop/podman:{mode.name}"
    creds = ["--creds", mode.creds] if mode.creds else []
    podman("pull", src)
    images = podman.images()
    assert images, "podman pull oci: stored nothing"
    podman("tag", str(images[0]["Id"]), ref)
    podman("push", *tls("", mode), *creds, ref)
    podman("rmi", "-a", "-f")
    podman("pull", *tls("", mode), *creds, ref)
    images = podman.images()
    assert any(ref in (i.get("Names") or []) for i in images), images


def test_ctr_content_fetch(mode: Mode, layout: tuple[str, str], tmp_path: Path) -> None:
    """containerd's resolver, through a private containerd (temp root/state/socket).

    With auth token: 401 -> OAuth2 POST to the realm (ctr --user) -> bearer pulls."""
    containerd = require("containerd", "apt-get install -y containerd")
    ctr = require("ctr", "apt-get install -y containerd")
    skopeo = require("skopeo", "apt-get install -y skopeo")
    require_root("containerd needs root for its state directories")
    src, digest = layout
    ref = f"{mode.server.host}/interop/ctr:v1"
    run(
        [
            skopeo,
            "copy",
            *tls("dest", mode),
            *skopeo_creds("--dest-creds", mode),
            src,
            f"docker://{ref}",
        ]
    )
    fetch_flags = ["--plain-http"]
    if mode.ca:
        # 127.0.0.1 defaults to plain HTTP in ctr: declare HTTPS with our certificate as CA
        hosts = tmp_path / "hosts"
        (hosts / mode.server.host).mkdir(parents=True)
        (hosts / mode.server.host / "hosts.toml").write_text(
            f'server = "{mode.server.url}"\n[host."{mode.server.url}"]\n'
            f'  capabilities = ["pull", "resolve"]\n  ca = "{mode.ca}"\n'
        )
        fetch_flags = ["--hosts-dir", str(hosts), "--user", mode.creds or ""]
    sock = tmp_path / "containerd.sock"
    config = tmp_path / "config.toml"
    config.write_text(
        "version = 2\n"
        f'root = "{tmp_path / "root"}"\nstate = "{tmp_path / "state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",'
        ' "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",'
        ' "io.containerd.snapshotter.v1.aufs"]\n'
        f'[grpc]\n  address = "{sock}"\n'
        '[metrics]\n  address = ""\n'
    )
    log = open(tmp_path / "containerd.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [containerd, "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (
                sock.exists()
                and run(
                    [ctr, "--address", str(sock), "version"], check=False, timeout=10
                ).returncode
                == 0
            ):
                break
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("containerd did not start")
        assert proc.poll() is None, (tmp_path / "containerd.log").read_text()[-2000:]
        out = run(
            [
                ctr,
                "--address",
                str(sock),
                "content",
                "fetch",
                *fetch_flags,
                ref,
            ],
            timeout=120,
        )
        listing = run([ctr, "--address", str(sock), "content", "ls", "-q"]).stdout.split()
        assert digest in listing, out.stdout
        img = make_image(42, (50_000, 120_000, 7_000))
        assert set(img.blobs()) <= set(listing)
        if mode.name == "token":
            # the OAuth2 flavour, as containerd does with credentials
            assert '"POST /service/token' in mode.server.log_text()
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        shutil.rmtree(tmp_path / "root", ignore_errors=True)


def test_pulled_blobs_verify(mode: Mode, layout: tuple[str, str]) -> None:
    """Every blob skopeo pushed reads back with its digest, straight over HTTP."""
    import requests

    skopeo = require("skopeo", "apt-get install -y skopeo")
    src, _ = layout
    dest = f"docker://{mode.server.host}/interop/skopeo:verify"
    run([skopeo, "copy", *tls("dest", mode), *skopeo_creds("--dest-creds", mode), src, dest])
    img = make_image(42, (50_000, 120_000, 7_000))
    headers: dict[str, str] = {}
    if mode.name == "token":
        r = requests.get(
            mode.server.url + "/service/token",
            params={"scope": "repository:interop/skopeo:pull", "service": "fleetkit-registry"},
            auth=(USER, PASSWORD),
            timeout=30,
            verify=mode.ca or True,
        )
        headers["Authorization"] = f"Bearer {r.json()['token']}"
    auth = (USER, PASSWORD) if mode.name == "htpasswd" else None
    for digest in img.blobs():
        r = requests.get(
            f"{mode.server.url}/v2/interop/skopeo/blobs/{digest}",
            headers=headers,
            auth=auth,
            timeout=30,
            verify=mode.ca or True,
        )
        assert r.status_code == 200, (digest, r.text)
        assert "sha256:" + hashlib.sha256(r.content).hexdigest() == digest
