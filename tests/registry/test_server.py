"""The HTTP API against a live server (in a thread), once per storage driver."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.registry._images import OCI_MANIFEST, make_image, sha256
from tests.registry._server import ThreadServer, thread_server
from tests.registry.conftest import s3_config

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(params=["filesystem", "memory", "s3"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ThreadServer]:
    if request.param == "s3":  # the registry's API on Ceph radosgw (tests/registry/conftest.py)
        bucket = request.getfixturevalue("s3_bucket")
        cfg = s3_config(request.getfixturevalue("ceph_s3"), bucket)
        with thread_server(root=f"s3://{bucket}", s3=cfg) as srv:
            yield srv
        return
    root = str(tmp_path / "data") if request.param == "filesystem" else "memory:"
    with thread_server(root=root) as srv:
        yield srv


class Client:
    def __init__(self, url: str) -> None:
        self.url = url
        self.s = requests.Session()

    def req(self, method: str, path: str, **kw: object) -> requests.Response:
        kw.setdefault("timeout", 30)
        kw.setdefault("allow_redirects", False)
        return self.s.request(method, self.url + path, **kw)  # type: ignore[arg-type]

    def push_blob(self, name: str, data: bytes) -> str:
        digest = sha256(data)
        r = self.req("POST", f"/v2/{name}/blobs/uploads/", params={"digest": digest}, data=data)
        assert r.status_code == 201, r.text
        return digest

    def push_image(self, name: str, tag: str, seed: int = 0) -> str:
        img = make_image(seed)
        for data in img.blobs().values():
            self.push_blob(name, data)
        r = self.req(
            "PUT",
            f"/v2/{name}/manifests/{tag}",
            data=img.manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert r.status_code == 201, r.text
        assert r.headers["Docker-Content-Digest"] == img.digest
        return img.digest


@pytest.fixture
def c(server: ThreadServer) -> Client:
    return Client(server.url)


def code(r: requests.Response) -> str:
    return str(r.json()["errors"][0]["code"])


def test_ping(c: Client) -> None:
    r = c.req("GET", "/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_chunked_upload_flow(c: Client) -> None:
    data = bytes(range(256)) * 40
    r = c.req("POST", "/v2/a/b/blobs/uploads/")
    assert r.status_code == 202
    loc = r.headers["Location"]
    assert r.headers["Range"] == "0-0"
    r = c.s.patch(loc, data=data[:1000], headers={"Content-Range": "0-999"}, timeout=30)
    assert r.status_code == 202 and r.headers["Range"] == "0-999"
    # out of order -> 416 with the current range
    r = c.s.patch(loc, data=data[2000:3000], headers={"Content-Range": "2000-2999"}, timeout=30)
    assert r.status_code == 416 and r.headers["Range"] == "0-999"
    r = c.s.patch(loc, data=data[1000:5000], headers={"Content-Range": "1000-3999"}, timeout=30)
    assert r.status_code == 416  # length and range disagree
    r = c.s.get(loc, timeout=30)
    assert r.status_code == 204 and r.headers["Range"] == "0-999"
    r = c.s.patch(r.headers["Location"], data=data[1000:5000], timeout=30)  # streamed, no range
    assert r.status_code == 202 and r.headers["Range"] == "0-4999"
    r = c.s.put(loc, params={"digest": sha256(data)}, data=data[5000:], timeout=30)
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == sha256(data)
    assert r.headers["Location"].endswith(f"/v2/a/b/blobs/{sha256(data)}")
    got = c.req("GET", f"/v2/a/b/blobs/{sha256(data)}")
    assert got.content == data and got.headers["Docker-Content-Digest"] == sha256(data)
    assert c.s.get(loc, timeout=30).status_code == 404  # the session is gone


def test_put_without_or_with_wrong_digest(c: Client) -> None:
    loc = c.req("POST", "/v2/r/blobs/uploads/").headers["Location"]
    r = c.s.put(loc, data=b"abc", timeout=30)
    assert r.status_code == 400 and code(r) == "DIGEST_INVALID"
    r = c.s.put(loc, params={"digest": "sha256:" + "0" * 64}, data=b"abc", timeout=30)
    assert r.status_code == 400 and code(r) == "DIGEST_INVALID"
    r = c.s.put(loc, params={"digest": "sha256:xyz"}, timeout=30)
    assert r.status_code == 400 and code(r) == "DIGEST_INVALID"
    assert c.req("HEAD", f"/v2/r/blobs/sha256:{'0' * 64}").status_code == 404


def test_cancel_upload(c: Client) -> None:
    loc = c.req("POST", "/v2/r/blobs/uploads/").headers["Location"]
    assert c.s.delete(loc, timeout=30).status_code == 204
    r = c.s.patch(loc, data=b"x", timeout=30)
    assert r.status_code == 404 and code(r) == "BLOB_UPLOAD_UNKNOWN"


def test_sha512_monolithic(c: Client) -> None:
    data = b"sha512 please"
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    r = c.req("POST", "/v2/r/blobs/uploads/", params={"digest": digest}, data=data)
    assert r.status_code == 201
    assert c.req("GET", f"/v2/r/blobs/{digest}").content == data


def test_blob_get_head_range(c: Client) -> None:
    data = bytes(range(100))
    d = c.push_blob("r", data)
    h = c.req("HEAD", f"/v2/r/blobs/{d}")
    assert h.status_code == 200 and h.headers["Content-Length"] == "100" and h.content == b""
    assert h.headers["Docker-Content-Digest"] == d
    r = c.req("GET", f"/v2/r/blobs/{d}", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == "bytes 10-19/100"
    assert c.req("GET", f"/v2/r/blobs/{d}", headers={"Range": "bytes=-5"}).content == data[95:]
    assert c.req("GET", f"/v2/r/blobs/{d}", headers={"Range": "bytes=90-"}).content == data[90:]
    for bad in ("bytes=200-300", "bytes=5-2", "garbage", "bytes=0-1,5-6", "bytes=-0"):
        r = c.req("GET", f"/v2/r/blobs/{d}", headers={"Range": bad})
        assert r.status_code == 416, bad
        assert r.headers["Content-Range"] == "bytes */100"
        assert code(r) == "RANGE_INVALID"
    r = c.req("GET", f"/v2/r/blobs/{d}", headers={"If-None-Match": f'"{d}"'})
    assert r.status_code == 304


def test_blob_unknown_and_other_repo(c: Client) -> None:
    d = c.push_blob("r", b"mine")
    r = c.req("GET", f"/v2/other/blobs/{d}")
    assert r.status_code == 404 and code(r) == "BLOB_UNKNOWN"
    r = c.req("GET", "/v2/r/blobs/sha256:abc")
    assert r.status_code == 400 and code(r) == "DIGEST_INVALID"
    r = c.req("GET", "/v2/r/blobs/md5:" + "0" * 32)
    assert r.status_code == 400 and code(r) == "DIGEST_INVALID"


def test_blob_delete(c: Client) -> None:
    d = c.push_blob("r", b"bye")
    assert c.req("DELETE", f"/v2/r/blobs/{d}").status_code == 202
    assert c.req("HEAD", f"/v2/r/blobs/{d}").status_code == 404
    r = c.req("DELETE", f"/v2/r/blobs/{d}")
    assert r.status_code == 404 and code(r) == "BLOB_UNKNOWN"


def test_mount(c: Client) -> None:
    d = c.push_blob("src", b"shared layer")
    r = c.req("POST", "/v2/dst/blobs/uploads/", params={"mount": d, "from": "src"})
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == d
    assert c.req("GET", f"/v2/dst/blobs/{d}").content == b"shared layer"
    # unknown source -> falls back to an upload session
    r = c.req("POST", "/v2/x/blobs/uploads/", params={"mount": d, "from": "nope"})
    assert r.status_code == 202 and "/blobs/uploads/" in r.headers["Location"]
    # no from: automatic content discovery
    r = c.req("POST", "/v2/auto/blobs/uploads/", params={"mount": d})
    assert r.status_code == 201
    r = c.req("POST", "/v2/auto/blobs/uploads/", params={"mount": "sha256:" + "1" * 64})
    assert r.status_code == 202


@pytest.mark.parametrize("name", ["UPPER/case", "a/../b", "-lead", "a//b", "a" * 256, "a/b_", "_x"])
def test_invalid_names(c: Client, name: str) -> None:
    r = c.req("GET", f"/v2/{name}/tags/list")
    assert r.status_code in (400, 404)
    if r.status_code == 400:
        assert code(r) == "NAME_INVALID"
    assert r.headers["Content-Type"].startswith("application/json")


def test_name_too_long_is_name_invalid(c: Client) -> None:
    r = c.req("GET", f"/v2/{'a' * 256}/manifests/latest")
    assert r.status_code == 400 and code(r) == "NAME_INVALID"
    r = c.req("GET", "/v2/Upper/manifests/latest")
    assert r.status_code == 400 and code(r) == "NAME_INVALID"


def test_manifest_roundtrip_and_negotiation(c: Client) -> None:
    digest = c.push_image("app", "v1", seed=3)
    img = make_image(3)
    r = c.req("GET", "/v2/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200 and r.content == img.manifest
    assert r.headers["Content-Type"] == OCI_MANIFEST
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Etag"] == f'"{digest}"'
    r = c.req("GET", "/v2/app/manifests/v1", headers={"Accept": f"{DOCKER_MANIFEST}, {OCI_INDEX}"})
    assert r.status_code == 404 and code(r) == "MANIFEST_UNKNOWN"
    r = c.req("HEAD", f"/v2/app/manifests/{digest}")
    assert r.status_code == 200 and r.headers["Content-Length"] == str(len(img.manifest))
    assert r.content == b""
    r = c.req("GET", "/v2/app/manifests/v1", headers={"If-None-Match": f'"{digest}"'})
    assert r.status_code == 304
    r = c.req("GET", "/v2/app/manifests/nope")
    assert r.status_code == 404 and code(r) == "MANIFEST_UNKNOWN"
    r = c.req("GET", "/v2/ghost/manifests/latest")
    assert r.status_code == 404 and code(r) in ("NAME_UNKNOWN", "MANIFEST_UNKNOWN")


def test_http_raw_multiple_accept_lines(server: ThreadServer, c: Client) -> None:
    import http.client

    c.push_image("app", "v1")
    host, port = server.host.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("GET", "/v2/app/manifests/v1")
    conn.putheader("Accept", DOCKER_MANIFEST)
    conn.putheader("Accept", OCI_MANIFEST)
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == OCI_MANIFEST
    conn.close()


def test_manifest_put_errors(c: Client) -> None:
    img = make_image(4)
    h = {"Content-Type": OCI_MANIFEST}
    r = c.req("PUT", "/v2/app/manifests/v1", data=img.manifest, headers=h)
    assert r.status_code == 404 and code(r) == "MANIFEST_BLOB_UNKNOWN"
    assert r.json()["errors"][0]["detail"]["digest"] in img.blobs()
    r = c.req("PUT", "/v2/app/manifests/v1", data=b"{not json", headers=h)
    assert r.status_code == 400 and code(r) == "MANIFEST_INVALID"
    r = c.req("PUT", "/v2/app/manifests/v1", data=b'{"schemaVersion": 1}', headers=h)
    assert r.status_code == 400 and code(r) == "MANIFEST_INVALID"
    r = c.req("PUT", "/v2/app/manifests/v1", data=b"x" * (4 * 1024 * 1024 + 1), headers=h)
    assert r.status_code == 413 and code(r) == "MANIFEST_TOO_BIG"
    for data in img.blobs().values():
        c.push_blob("app", data)
    r = c.req("PUT", f"/v2/app/manifests/sha256:{'0' * 64}", data=img.manifest, headers=h)
    assert r.status_code == 400 and code(r) == "DIGEST_INVALID"
    r = c.req("PUT", "/v2/app/manifests/bad:tag:x", data=img.manifest, headers=h)
    assert r.status_code == 400
    r = c.req("PUT", "/v2/app/manifests/.bad", data=img.manifest, headers=h)
    assert r.status_code == 400 and code(r) == "TAG_INVALID"
    wrong = {"Content-Type": DOCKER_MANIFEST}
    r = c.req("PUT", "/v2/app/manifests/v1", data=img.manifest, headers=wrong)
    assert r.status_code == 400 and code(r) == "MANIFEST_INVALID"
    assert c.req("GET", "/v2/app/tags/list").json()["tags"] == []


def test_put_by_digest_with_tags(c: Client) -> None:
    img = make_image(5)
    for data in img.blobs().values():
        c.push_blob("app", data)
    r = c.req(
        "PUT",
        f"/v2/app/manifests/{img.digest}",
        params=[("tag", "a"), ("tag", "b")],
        data=img.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 201
    assert r.headers["OCI-Tag"] == "a, b"
    assert c.req("GET", "/v2/app/tags/list").json() == {"name": "app", "tags": ["a", "b"]}


def test_index_needs_its_children(c: Client) -> None:
    child = c.push_image("app", "child", seed=6)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": child, "size": len(make_image(6).manifest)}
            ],
        }
    ).encode()
    r = c.req("PUT", "/v2/app/manifests/multi", data=index, headers={"Content-Type": OCI_INDEX})
    assert r.status_code == 201
    r = c.req("GET", "/v2/app/manifests/multi", headers={"Accept": OCI_INDEX})
    assert r.headers["Content-Type"] == OCI_INDEX
    r = c.req("PUT", "/v2/other/manifests/multi", data=index, headers={"Content-Type": OCI_INDEX})
    assert r.status_code == 404 and code(r) == "MANIFEST_BLOB_UNKNOWN"


def test_tags_pagination(c: Client) -> None:
    digest = c.push_image("app", "v0")
    for t in ["b", "a", "c", "d"]:
        r = c.req(
            "PUT",
            f"/v2/app/manifests/{t}",
            data=make_image(0).manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert r.headers["Docker-Content-Digest"] == digest
    assert c.req("GET", "/v2/app/tags/list").json()["tags"] == ["a", "b", "c", "d", "v0"]
    r = c.req("GET", "/v2/app/tags/list", params={"n": 2})
    assert r.json()["tags"] == ["a", "b"]
    assert r.headers["Link"] == '</v2/app/tags/list?n=2&last=b>; rel="next"'
    r = c.req("GET", "/v2/app/tags/list", params={"n": 2, "last": "b"})
    assert r.json()["tags"] == ["c", "d"]
    r = c.req("GET", "/v2/app/tags/list", params={"n": 2, "last": "d"})
    assert r.json()["tags"] == ["v0"] and "Link" not in r.headers
    assert c.req("GET", "/v2/app/tags/list", params={"n": 0}).json()["tags"] == []
    r = c.req("GET", "/v2/app/tags/list", params={"n": "x"})
    assert r.status_code == 400 and code(r) == "PAGINATION_NUMBER_INVALID"
    r = c.req("GET", "/v2/nope/tags/list")
    assert r.status_code == 404 and code(r) == "NAME_UNKNOWN"


def test_catalog(c: Client) -> None:
    for name in ("b", "a/x", "c"):
        c.push_image(name, "t")
    assert c.req("GET", "/v2/_catalog").json() == {"repositories": ["a/x", "b", "c"]}
    r = c.req("GET", "/v2/_catalog", params={"n": 1})
    assert r.json() == {"repositories": ["a/x"]} and "last=a/x" in r.headers["Link"]


def test_manifest_delete(c: Client) -> None:
    digest = c.push_image("app", "v1")
    c.req(
        "PUT",
        "/v2/app/manifests/v2",
        data=make_image(0).manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert c.req("DELETE", "/v2/app/manifests/v2").status_code == 202  # a tag
    assert c.req("GET", "/v2/app/tags/list").json()["tags"] == ["v1"]
    assert c.req("DELETE", f"/v2/app/manifests/{digest}").status_code == 202
    assert c.req("GET", "/v2/app/manifests/v1").status_code == 404
    r = c.req("DELETE", f"/v2/app/manifests/{digest}")
    assert r.status_code == 404 and code(r) == "MANIFEST_UNKNOWN"


def _artifact(subject_digest: str, subject_size: int, artifact_type: str, note: str) -> bytes:
    empty = b"{}"
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": sha256(empty),
                "size": 2,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": sha256(empty),
                    "size": 2,
                }
            ],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": subject_size},
            "annotations": {"note": note},
        }
    ).encode()


def test_referrers(c: Client) -> None:
    subject = c.push_image("app", "v1")
    size = len(make_image(0).manifest)
    c.push_blob("app", b"{}")
    sig = _artifact(subject, size, "application/vnd.example.sig", "s")
    sbom = _artifact(subject, size, "application/vnd.example.sbom", "b")
    for art in (sig, sbom):
        r = c.req(
            "PUT",
            f"/v2/app/manifests/{sha256(art)}",
            data=art,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert r.status_code == 201 and r.headers["OCI-Subject"] == subject
    r = c.req("GET", f"/v2/app/referrers/{subject}")
    assert r.status_code == 200 and r.headers["Content-Type"] == OCI_INDEX
    doc = r.json()
    assert doc["mediaType"] == OCI_INDEX
    got = {m["digest"]: m for m in doc["manifests"]}
    assert set(got) == {sha256(sig), sha256(sbom)}
    assert got[sha256(sig)]["artifactType"] == "application/vnd.example.sig"
    assert got[sha256(sig)]["annotations"] == {"note": "s"}
    r = c.req(
        "GET",
        f"/v2/app/referrers/{subject}",
        params={"artifactType": "application/vnd.example.sbom"},
    )
    assert [m["digest"] for m in r.json()["manifests"]] == [sha256(sbom)]
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    # a subject nobody refers to: an empty index, not a 404
    r = c.req("GET", f"/v2/app/referrers/sha256:{'2' * 64}")
    assert r.status_code == 200 and r.json()["manifests"] == []
    r = c.req("GET", "/v2/app/referrers/sha256:nothex")
    assert r.status_code == 400 and code(r) == "DIGEST_INVALID"
    # deleting the referrer removes it from the list
    c.req("DELETE", f"/v2/app/manifests/{sha256(sig)}")
    assert [
        m["digest"] for m in c.req("GET", f"/v2/app/referrers/{subject}").json()["manifests"]
    ] == [sha256(sbom)]


def test_unsupported_method_and_endpoint(c: Client) -> None:
    r = c.req("POST", "/v2/app/tags/list")
    assert r.status_code == 405 and code(r) == "UNSUPPORTED"
    r = c.req("GET", "/v2/app/unknown/thing")
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/json")


def test_metrics(c: Client) -> None:
    c.req("GET", "/v2/")
    text = c.req("GET", "/metrics").text
    assert 'fleetkit_registry_http_requests_total{method="GET",route="base",code="200"}' in text
    assert "process_resident_memory_bytes" in text


def test_restart_keeps_upload_session(tmp_path: Path) -> None:
    root = str(tmp_path / "data")
    with thread_server(root=root) as s1:
        c1 = Client(s1.url)
        loc = c1.req("POST", "/v2/r/blobs/uploads/").headers["Location"]
        assert c1.s.patch(loc, data=b"before ", timeout=30).status_code == 202
        upload_id = loc.rsplit("/", 1)[1]
    with thread_server(root=root) as s2:
        c2 = Client(s2.url)
        path = f"/v2/r/blobs/uploads/{upload_id}"
        r = c2.req("GET", path)
        assert r.status_code == 204 and r.headers["Range"] == "0-6"
        r = c2.req(
            "PUT",
            path,
            params={"digest": sha256(b"before after")},
            data=b"after",
            headers={"Content-Range": "7-11"},
        )
        assert r.status_code == 201, r.text
        assert c2.req("GET", f"/v2/r/blobs/{sha256(b'before after')}").content == b"before after"


def test_concurrent_pushes_of_the_same_blob(c: Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    data = b"same bytes " * 50000
    digest = sha256(data)

    def push(i: int) -> int:
        s = requests.Session()
        loc = s.post(c.url + f"/v2/r{i % 3}/blobs/uploads/", timeout=30).headers["Location"]
        for off in range(0, len(data), 100000):
            assert s.patch(loc, data=data[off : off + 100000], timeout=30).status_code == 202
        return s.put(loc, params={"digest": digest}, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(push, range(16))) == [201] * 16
    for i in range(3):
        r = c.req("GET", f"/v2/r{i}/blobs/{digest}")
        assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == digest[7:]


def test_control_characters_in_names_and_tags(c: Client) -> None:
    r = c.req("GET", "/v2/foo%0A/tags/list")
    assert r.status_code == 400 and code(r) == "NAME_INVALID"
    r = c.req("PUT", "/v2/foo/manifests/v1%0A", data=b"{}", headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400 and code(r) == "TAG_INVALID"
    r = c.req("GET", "/v2/foo/manifests/t%C3%BC")
    assert r.status_code == 400 and code(r) == "TAG_INVALID"


def test_client_disconnect_mid_patch_keeps_what_arrived(server: ThreadServer, c: Client) -> None:
    import socket
    import time

    loc = c.req("POST", "/v2/r/blobs/uploads/").headers["Location"]
    path = loc.split("://", 1)[1].split("/", 1)[1]
    host, port = server.host.rsplit(":", 1)
    received = server.state.metrics.bytes_received
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = f"PATCH /{path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
        sock.sendall(head.encode() + b"a" * 5000)
        deadline = time.monotonic() + 10
        # S3 stores a request's bytes when it ends (or every 16 MiB): wait until the server has
        # them, disconnect, then look
        while server.state.metrics.bytes_received < received + 5000 or (
            server.state.store.driver.name != "s3"
            and c.s.get(loc, timeout=10).headers["Range"] != "0-4999"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    deadline = time.monotonic() + 10
    while (got := c.s.get(loc, timeout=10).headers["Range"]) != "0-4999":
        assert time.monotonic() < deadline, got
        time.sleep(0.01)
    deadline = time.monotonic() + 10
    while server.state.metrics.uploads_in_progress:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    r = c.s.patch(loc, data=b"b" * 10, headers={"Content-Range": "5000-5009"}, timeout=30)
    assert r.status_code == 202 and r.headers["Range"] == "0-5009"
    data = b"a" * 5000 + b"b" * 10
    assert c.s.put(loc, params={"digest": sha256(data)}, timeout=30).status_code == 201


@pytest.mark.parametrize("copy_max", [1, None])
@pytest.mark.parametrize("first_range", [None, 1_000_003])
def test_blob_bodies_sent_at_once_are_whole(
    c: Client, first_range: int | None, copy_max: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bodies in flight together. With ``COPY_MAX_BODIES`` 1: one that starts alone (copied
    through user space) and goes on with ``sendfile`` once a second one starts, and the second
    (``sendfile`` throughout); by default both are copied."""
    import os

    from fleetkit.registry.server import blobs

    if copy_max is not None:
        monkeypatch.setattr(blobs, "COPY_MAX_BODIES", copy_max)
    data = os.urandom(8 * 1024 * 1024 + 17)
    d = c.push_blob("r", data)
    url = f"{c.url}/v2/r/blobs/{d}"
    headers = {"Range": f"bytes={first_range}-"} if first_range else {}
    # streamed and read slowly: the server is parked in the middle of each body
    first = requests.get(url, headers=headers, stream=True, timeout=30)
    second = requests.get(url, stream=True, timeout=30)
    try:
        head1 = first.raw.read(65536)
        head2 = second.raw.read(65536)
        rest1 = first.raw.read()  # the first body resumes while the second is in flight
        rest2 = second.raw.read()
    finally:
        first.close()
        second.close()
    start = first_range or 0
    assert first.status_code == (206 if first_range else 200)
    assert second.status_code == 200
    assert head1 + rest1 == data[start:]
    assert head2 + rest2 == data


@pytest.mark.parametrize("copy_max", [1, None])
def test_a_client_gone_mid_body_on_the_sendfile_thread(
    tmp_path: Path, copy_max: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two bodies in flight, each from a thread of its own (``sendfile`` for the second with
    ``COPY_MAX_BODIES`` 1, copied by default). Its client closing mid-body is a disconnect
    (499 in the metrics), not a server error, the other body completes whole and the server
    serves on."""
    import os
    import socket
    import struct
    import time

    from fleetkit.registry.server import blobs

    if copy_max is not None:
        monkeypatch.setattr(blobs, "COPY_MAX_BODIES", copy_max)
    data = os.urandom(16 * 1024 * 1024)
    with thread_server(root=str(tmp_path / "data")) as srv:
        c = Client(srv.url)
        d = c.push_blob("r", data)
        url = f"{c.url}/v2/r/blobs/{d}"
        first = requests.get(url, stream=True, timeout=30)
        head = first.raw.read(65536)
        host, port = srv.host.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as raw:
            raw.sendall(f"GET /v2/r/blobs/{d} HTTP/1.1\r\nHost: {srv.host}\r\n\r\n".encode())
            assert raw.recv(65536)  # headers and the start of the body: it is being sent
            # close with a reset, mid-body
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        rest = first.raw.read()
        first.close()
        assert head + rest == data
        deadline = time.monotonic() + 30
        while srv.state.metrics.client_disconnects < 1:
            assert time.monotonic() < deadline, "the disconnect was not seen"
            time.sleep(0.02)
        assert not any(status == 500 for (_m, _r, status) in srv.state.metrics.requests), (
            srv.state.metrics.requests
        )
        assert requests.get(url, timeout=30).content == data
