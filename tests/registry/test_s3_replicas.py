"""Two ``fleetkit registry serve`` replicas on one Ceph (radosgw) bucket serve the same content.

An upload started on one replica continues on the other chunk by chunk (session bytes in the
bucket, the Location carrying distribution's signed ``_state``); a manifest pushed through A is
pulled through B; a replica killed with -9 mid-upload leaves nothing partial visible.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from fleetkit.errors import UsageError
from fleetkit.registry.manifest import parse_manifest
from fleetkit.registry.server.config_file import load_config_file
from fleetkit.registry.storage import RegistryStore
from fleetkit.registry.storage.s3 import S3Driver
from tests.peers import require
from tests.registry._ceph import CephS3
from tests.registry._images import make_image, write_oci_layout
from tests.registry._server import REPO, ProcessServer, thread_server
from tests.registry.conftest import s3_config

SECRET = "replica-shared-secret-for-tests"


def _config(tmp: Path, ceph: CephS3, bucket: str, secret: str = SECRET) -> Path:
    path = tmp / f"registry-{secret[:6]}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 0.1,
                "http": {"addr": "127.0.0.1:0", "secret": secret},
                "storage": {
                    "s3": {
                        "bucket": bucket,
                        "region": "us-east-1",
                        "regionendpoint": ceph.endpoint,
                        "accesskey": ceph.access_key,
                        "secretkey": ceph.secret_key,
                        "secure": False,
                    },
                    "delete": {"enabled": True},
                },
            }
        )
    )
    return path


@pytest.fixture
def replicas(tmp_path: Path, ceph_s3: CephS3, s3_bucket: str) -> Iterator[list[ProcessServer]]:
    cfg = _config(tmp_path, ceph_s3, s3_bucket)
    servers: list[ProcessServer] = []
    try:
        for _ in range(2):
            servers.append(ProcessServer(tmp_path, "--config", str(cfg), "-q").start())
        yield servers
    finally:
        for s in servers:
            s.stop()


def _other_host(location: str, base: str) -> str:
    """The same path and query on another replica (what a load balancer does)."""
    parts = urllib.parse.urlsplit(location)
    return base + parts.path + ("?" + parts.query if parts.query else "")


def test_chunked_upload_alternates_replicas_and_pull_from_the_other(
    replicas: list[ProcessServer],
) -> None:
    a, b = (s.url for s in replicas)
    img = make_image(7)
    blobs = img.blobs()
    for digest, data in blobs.items():
        r = requests.post(f"{a}/v2/app/blobs/uploads/", timeout=30)
        assert r.status_code == 202, r.text
        assert "_state=" in r.headers["Location"]
        location = r.headers["Location"]
        chunks = [data[i : i + 97] for i in range(0, len(data), 97)] or [b""]
        offset = 0
        for n, chunk in enumerate(chunks):
            base = b if n % 2 == 0 else a
            r = requests.patch(
                _other_host(location, base),
                data=chunk,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                },
                timeout=30,
            )
            assert r.status_code == 202, r.text
            offset += len(chunk)
            location = r.headers["Location"]
        base = a if len(chunks) % 2 == 0 else b
        sep = "&" if "?" in location else "?"
        r = requests.put(_other_host(location, base) + f"{sep}digest={digest}", timeout=30)
        assert r.status_code == 201, r.text
    r = requests.put(
        f"{a}/v2/app/manifests/v1",
        data=img.manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    r = requests.get(
        f"{b}/v2/app/manifests/v1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=30,
    )
    assert r.status_code == 200 and r.content == img.manifest
    for digest, data in blobs.items():
        r = requests.get(f"{b}/v2/app/blobs/{digest}", timeout=30)
        assert r.status_code == 200 and r.content == data
    assert requests.get(f"{b}/v2/app/tags/list", timeout=30).json()["tags"] == ["v1"]
    assert requests.get(f"{a}/v2/_catalog", timeout=30).json()["repositories"] == ["app"]


def test_state_is_checked_on_every_replica(replicas: list[ProcessServer]) -> None:
    a, b = (s.url for s in replicas)
    r = requests.post(f"{a}/v2/app/blobs/uploads/", timeout=30)
    location = r.headers["Location"]
    bare = location.split("?", 1)[0]
    for url in (_other_host(bare, b), _other_host(location, b).replace("_state=", "_state=x")):
        r = requests.patch(url, data=b"abc", timeout=30)
        assert r.status_code == 400
        assert r.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    # a state signed for another session does not open this one
    other = requests.post(f"{b}/v2/app/blobs/uploads/", timeout=30).headers["Location"]
    forged = bare + "?" + urllib.parse.urlsplit(other).query
    r = requests.patch(_other_host(forged, b), data=b"abc", timeout=30)
    assert r.status_code == 400


def test_kill9_mid_upload_leaves_nothing_partial(
    tmp_path: Path, replicas: list[ProcessServer]
) -> None:
    a, b = replicas
    data = bytes(range(256)) * 4096  # 1 MiB
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = requests.post(f"{a.url}/v2/app/blobs/uploads/", timeout=30)
    location = r.headers["Location"]
    r = requests.patch(location, data=data[:1000], timeout=30)
    assert r.status_code == 202
    a.kill9()
    # nothing is visible under the digest; the session resumes on the survivor
    assert requests.head(f"{b.url}/v2/app/blobs/{digest}", timeout=30).status_code == 404
    moved = _other_host(r.headers["Location"], b.url)
    status = requests.get(moved, timeout=30)
    assert status.status_code == 204 and status.headers["Range"] == "0-999"
    sep = "&" if "?" in moved else "?"
    r = requests.put(f"{moved}{sep}digest={digest}", data=data[1000:], timeout=30)
    assert r.status_code == 201, r.text
    got = requests.get(f"{b.url}/v2/app/blobs/{digest}", timeout=30)
    assert got.content == data


def test_gc_on_s3_keeps_blobs_within_the_grace_period(
    tmp_path: Path, ceph_s3: CephS3, s3_bucket: str
) -> None:
    """Replicas may be pushing while gc runs on S3: what changed within --grace stays."""
    store = RegistryStore(S3Driver(s3_config(ceph_s3, s3_bucket)))
    img = make_image(3)
    for data in img.blobs().values():
        store.put_blob("app", data)
    store.put_manifest("app", img.manifest, parse_manifest(img.manifest), ["v1"])
    orphan = store.put_blob("app", b"a push in progress, manifest not yet sent")
    cfg = _config(tmp_path, ceph_s3, s3_bucket)
    out = subprocess.run(
        [sys.executable, "-m", "fleetkit", "registry", "gc", "--config", str(cfg), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(REPO / "src")),
        check=True,
    )
    assert json.loads(out.stdout)["blobs_deleted"] == []  # within the default hour
    assert store.blob_size(orphan) is not None
    report = store.gc(grace_s=0.0)
    assert report.blobs_deleted == [orphan]
    for digest in img.blobs():
        assert store.blob_size(digest) is not None
    assert store.resolve_tag("app", "v1") == img.digest


def test_config_file_rejects_unknown_keys(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("storage:\n  s3:\n    bucket: b\n    acesskey: typo\n")
    with pytest.raises(UsageError, match="acesskey"):
        load_config_file(str(bad))
    good = tmp_path / "good.yaml"
    good.write_text(
        "http: {addr: '127.0.0.1:0', secret: s}\nstorage:\n  s3: {bucket: b, secure: false}\n"
        "  delete: {enabled: false}\nauth:\n  token: {realm: 'https://x/token', service: reg}\n"
    )
    conf = load_config_file(str(good))
    assert conf["root"] == "s3://b" and conf["s3"].secure is False
    assert conf["http_secret"] == "s" and conf["disable_delete"] is True
    assert (conf["auth"], conf["realm"], conf["service"]) == ("token", "https://x/token", "reg")


@pytest.mark.interop
def test_skopeo_pushes_through_a_and_pulls_through_b(
    tmp_path: Path, replicas: list[ProcessServer]
) -> None:
    skopeo = require("skopeo", "apt-get install -y skopeo")
    a, b = replicas
    img = make_image(11, (300_000, 40_000))
    src = write_oci_layout(img, str(tmp_path / "src"), "v1")
    tls = ["--dest-tls-verify=false"]
    subprocess.run(
        [skopeo, "copy", *tls, src, f"docker://{a.host}/s3/app:v1"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    out = tmp_path / "out"
    subprocess.run(
        [skopeo, "copy", "--src-tls-verify=false", f"docker://{b.host}/s3/app:v1", f"dir:{out}"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (out / "manifest.json").read_bytes() == img.manifest
    for digest, data in img.blobs().items():
        if digest != img.digest:
            assert (out / digest.split(":", 1)[1]).read_bytes() == data


def test_storage_redirect_sends_clients_to_a_presigned_url(ceph_s3: CephS3, s3_bucket: str) -> None:
    data = b"redirected bytes" * 1000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    cfg = s3_config(ceph_s3, s3_bucket)
    with thread_server(root=f"s3://{s3_bucket}", s3=cfg, storage_redirect=True) as srv:
        r = requests.post(f"{srv.url}/v2/app/blobs/uploads/", params={"digest": digest}, data=data)
        assert r.status_code == 201, r.text
        r = requests.get(f"{srv.url}/v2/app/blobs/{digest}", allow_redirects=False, timeout=30)
        assert r.status_code == 307
        assert r.headers["Location"].startswith(ceph_s3.endpoint)
        assert requests.get(r.headers["Location"], timeout=30).content == data
        assert requests.head(f"{srv.url}/v2/app/blobs/{digest}", timeout=30).status_code == 200


def test_bad_storage_flags_are_one_line_errors(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    for args, needle in (
        (["--storage", "s3://b?accesskey=x"], "unknown s3:// URL parameter"),
        (["--root", str(tmp_path / "d"), "--storage-redirect"], "--storage-redirect needs S3"),
    ):
        p = subprocess.run(
            [sys.executable, "-m", "fleetkit", "registry", "serve", "--listen", "127.0.0.1:0"]
            + args,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert p.returncode == 2, p.stderr
        assert needle in p.stderr and "Traceback" not in p.stderr
