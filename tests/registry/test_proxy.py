"""The pull-through cache (registry/proxy.py).

Against a tiny fake upstream (tests/registry/_fake_upstream.py): one upstream fetch for two
clients of one blob, bytes before the blob is complete, a lying upstream never cached, TTL and
revalidation, upstream down, tag lists, refused pushes. Against the real peers: distribution
2.8.2 behind fleetkit's token service as the upstream, skopeo and podman pulling through the
proxy, and the cache serving them while the upstream is stopped.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fleetkit.errors import UsageError
from fleetkit.registry import mediatypes as mt
from fleetkit.registry import proxy
from fleetkit.registry.proxy import ProxyConfig, ProxyUpstream, parse_duration
from fleetkit.registry.server import blobs
from fleetkit.registry.server.app import ServerConfig
from fleetkit.registry.server.config_file import load_config_file
from tests.peers import require
from tests.registry._ceph import CephS3
from tests.registry._fake_upstream import FakeUpstream
from tests.registry._images import make_image, sha256, write_oci_layout
from tests.registry._podman import Podman, podman  # noqa: F401 (podman: the fixture)
from tests.registry._server import ProcessServer, ThreadServer
from tests.registry.test_interop_distribution import free_port, stack  # noqa: F401 (stack)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    try:
        yield fake
    finally:
        fake.stop()


def _proxy(root: Path, config: ProxyConfig) -> ThreadServer:
    return ThreadServer(ServerConfig(root=str(root), listen="127.0.0.1:0", proxy=config)).start()


def _spools(root: Path) -> list[str]:
    return sorted(os.listdir(root / "_proxy")) if (root / "_proxy").exists() else []


@pytest.fixture
def temp_spools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temp directory a cache not on a directory spools into (here: the test's own)."""
    import tempfile

    spools = tmp_path / "tmp"
    spools.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spools))
    return spools


def _get(
    host: str, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(host, timeout=60)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


# -- configuration ------------------------------------------------------------------------------


def test_parse_duration_go_syntax() -> None:
    assert parse_duration("168h") == 168 * 3600
    assert parse_duration("1h30m") == 5400
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("0") == 0
    assert parse_duration("45") == 45
    for bad in ("", "10x", "h", "1h 2m", "-5s"):
        with pytest.raises(UsageError):
            parse_duration(bad)


def test_routes_projects_and_docker_hub_library_rule() -> None:
    from fleetkit.registry.proxy import Proxy

    hub = ProxyUpstream("https://registry-1.docker.io")
    mirror = ProxyUpstream("http://127.0.0.1:5001", "alice", "pw")
    p = Proxy(ProxyConfig(remote=None, projects={"hub": hub, "mirror": mirror}))
    assert p.route("hub/alpine") == (hub, "library/alpine")
    assert p.route("hub/bitnami/redis") == (hub, "bitnami/redis")
    assert p.route("mirror/alpine") == (mirror, "alpine")  # the rule is Docker Hub's only
    assert p.route("hub") is None  # the project itself is no repository upstream
    assert p.route("local/app") is None  # not a proxy project: an ordinary repository
    p2 = Proxy(ProxyConfig(remote=hub))
    assert p2.route("alpine") == (hub, "library/alpine")
    assert p2.route("grafana/grafana") == (hub, "grafana/grafana")
    for bad in ("ftp://x", "https://", "https://h/v2/"):
        with pytest.raises(UsageError):
            ProxyUpstream(bad)
    with pytest.raises(UsageError, match="together"):
        ProxyUpstream("https://h", "alice", "")


def test_config_file_proxy_keys(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(
        "version: 0.1\n"
        "storage: {inmemory: {}}\n"
        "proxy:\n"
        "  remoteurl: https://registry-1.docker.io\n"
        "  username: bob\n"
        "  password: secret\n"
        "  ttl: 10m\n"
        "  projects:\n"
        "    ghcr: {remoteurl: https://ghcr.io, ttl: 1h}\n"
    )
    out = load_config_file(str(path))
    proxy = out["proxy"]
    assert proxy.remote == ProxyUpstream("https://registry-1.docker.io", "bob", "secret", 600.0)
    assert proxy.projects == {"ghcr": ProxyUpstream("https://ghcr.io", ttl_s=3600.0)}
    assert "secret" not in repr(proxy)
    for text, message in (
        ("proxy: {remoteurl: https://h, remotepassword: x}", "remotepassword"),
        ("proxy: {projects: [{remoteurl: https://h}]}", "must be a mapping"),
        ("proxy: {projects: {Hub: {remoteurl: https://h}}}", "invalid project name"),
        ("proxy: {projects: {hub: {username: x}}}", "remoteurl is required"),
        ("proxy: {remoteurl: https://h, ttl: soon}", "invalid duration"),
        ("proxy: {}", "needs remoteurl or projects"),
    ):
        path.write_text(text + "\n")
        with pytest.raises(UsageError, match=message):
            load_config_file(str(path))


def test_proxy_flags_over_the_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    from argparse import Namespace

    from fleetkit.cli.registry import _proxy_config

    def flags(**kw: object) -> Namespace:
        base: dict[str, object] = dict.fromkeys(
            ("proxy_remote", "proxy_username", "proxy_password", "proxy_ttl")
        )
        return Namespace(**{**base, **kw})

    monkeypatch.delenv("FLEETKIT_PROXY_PASSWORD", raising=False)
    from_file = ProxyConfig(
        remote=ProxyUpstream("https://a.example", "bob", "pw", 60.0),
        projects={"hub": ProxyUpstream("https://registry-1.docker.io")},
    )
    assert _proxy_config(flags(), None) is None
    assert _proxy_config(flags(), from_file) is from_file
    out = _proxy_config(flags(proxy_ttl="5m"), from_file)
    assert out.remote == ProxyUpstream("https://a.example", "bob", "pw", 300.0)
    assert out.projects == from_file.projects
    out = _proxy_config(flags(proxy_remote="http://127.0.0.1:5001/"), from_file)
    assert out.remote == ProxyUpstream("http://127.0.0.1:5001")
    monkeypatch.setenv("FLEETKIT_PROXY_PASSWORD", "envpw")
    out = _proxy_config(flags(proxy_remote="http://h:1", proxy_username="carol"), None)
    assert (out.remote.username, out.remote.password) == ("carol", "envpw")
    with pytest.raises(UsageError, match="need an upstream"):
        _proxy_config(flags(proxy_username="carol"), None)
    monkeypatch.delenv("FLEETKIT_PROXY_PASSWORD")
    with pytest.raises(UsageError, match="together"):
        _proxy_config(flags(proxy_remote="http://h:1", proxy_username="x"), None)


def test_serve_with_a_config_file_of_proxy_projects(upstream: FakeUpstream, tmp_path: Path) -> None:
    img = make_image(6)
    upstream.add_manifest("library/app", img.manifest, mt.OCI_MANIFEST, "v1")
    config = tmp_path / "registry.yaml"
    config.write_text(
        f"version: 0.1\nstorage: {{filesystem: {{rootdirectory: {tmp_path / 'data'}}}}}\n"
        f"proxy:\n  projects:\n    mirror: {{remoteurl: {upstream.url}, ttl: 1h}}\n"
    )
    server = ProcessServer(tmp_path, "--config", str(config), "--listen", "127.0.0.1:0").start()
    try:
        status, _, body = _get(server.host, "/v2/mirror/library/app/manifests/v1")
        assert (status, body) == (200, img.manifest)
        assert upstream.counts[("GET", "/v2/library/app/manifests/v1")] == 1
        # outside the project: an ordinary repository, nothing asked upstream
        assert _get(server.host, "/v2/library/app/manifests/v1")[0] == 404
        assert _get(server.host, "/v2/local/app/blobs/uploads/", method="POST")[0] == 202
        assert upstream.counts[("GET", "/v2/library/app/manifests/v1")] == 1
        assert f"proxy project mirror/: cache of {upstream.url} (ttl 3600s)" in server.log_text()
    finally:
        server.stop()


def test_concurrent_manifest_requests_share_one_upstream_exchange() -> None:
    import asyncio

    from fleetkit.registry.proxy import Proxy

    proxy = Proxy(ProxyConfig(remote=ProxyUpstream("http://127.0.0.1:1")))
    calls = 0

    async def main() -> list[str]:
        release = asyncio.Event()

        async def work() -> str:
            nonlocal calls
            calls += 1
            await release.wait()
            return "sha256:" + "a" * 64

        waiters = [asyncio.create_task(proxy._once(("app", "v1", "x"), work)) for _ in range(3)]
        await asyncio.sleep(0)  # let all three reach _once (no timing: one loop turn)
        release.set()
        return await asyncio.gather(*waiters)

    assert asyncio.run(main()) == ["sha256:" + "a" * 64] * 3
    assert calls == 1
    assert proxy._manifest_work == {}


# -- against the fake upstream ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("storage", "sender"),
    [("dir", "thread"), ("memory:", "thread"), ("dir", "loop"), ("dir", "sendfile")],
)
def test_two_clients_one_upstream_fetch_and_bytes_before_the_blob_completes(
    upstream: FakeUpstream,
    tmp_path: Path,
    storage: str,
    sender: str,
    monkeypatch: pytest.MonkeyPatch,
    temp_spools: Path,
) -> None:
    """On a directory the spool becomes the blob by a rename; elsewhere it is copied in (from
    the temp directory, which it leaves).

    Each client is sent the spool by a thread of its own (plain HTTP: copied, or with
    ``sendfile`` beyond ``COPY_MAX_BODIES`` bodies in flight), or, where that cannot be (TLS:
    ``sender == "loop"`` pretends so), by the event loop."""
    from fleetkit.registry.server import blobs

    if sender == "loop":
        monkeypatch.setattr(blobs, "plain_socket", lambda _transport: None)
    if sender == "sendfile":
        monkeypatch.setattr(blobs, "COPY_MAX_BODIES", 0)
    blob = os.urandom(3 << 20)
    digest = sha256(blob)
    upstream.blobs[digest] = blob
    upstream.gated.add(digest)  # upstream sends half, then waits for the gate
    root = tmp_path / "cache" if storage == "dir" else Path(storage)
    proxy = _proxy(root, ProxyConfig(remote=ProxyUpstream(upstream.url)))
    try:
        path = f"/v2/lib/app/blobs/{digest}"
        conns, resps, heads = [], [], []
        for _ in range(2):
            conn = http.client.HTTPConnection(proxy.host, timeout=60)
            conn.request("GET", path)
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.getheader("Content-Length") == str(len(blob))
            # a MiB arrives while upstream still holds back the second half of the blob
            heads.append(resp.read(1 << 20))
            conns.append(conn)
            resps.append(resp)
        assert upstream.counts[("GET", path)] == 1
        # a HEAD meanwhile is answered from the fetch under way, not asked upstream
        status, headers, _ = _get(proxy.host, path, method="HEAD")
        assert (status, headers["Content-Length"]) == (200, str(len(blob)))
        assert upstream.counts[("HEAD", path)] == 0
        upstream.gate.set()
        for head, resp in zip(heads, resps, strict=True):
            assert head + resp.read() == blob
        for conn in conns:
            conn.close()
        # a ranged GET waits for the commit: after it, the blob is in the cache
        status, headers, body = _get(proxy.host, path, headers={"Range": "bytes=10-19"})
        assert (status, body) == (206, blob[10:20])
        assert proxy.state.store.blob_size(digest) == len(blob)
        assert proxy.state.store.uploads("lib/app") == []
        assert _spools(root) == []
        assert os.listdir(temp_spools) == []
        assert _get(proxy.host, path)[2] == blob
        assert upstream.counts[("GET", path)] == 1
    finally:
        proxy.stop()
    assert os.listdir(temp_spools) == []


def test_spools_a_killed_process_left_are_swept(
    upstream: FakeUpstream, tmp_path: Path, temp_spools: Path
) -> None:
    """The first fetch removes spools untouched for an hour (a killed server's), in ``_proxy/``
    on a directory root and in the temp directory otherwise; fresh ones and others' stay."""
    blob = os.urandom(64 << 10)
    digest = sha256(blob)
    upstream.blobs[digest] = blob
    old = time.time() - 7200
    for root in (tmp_path / "cache", Path("memory:")):
        spool_dir = temp_spools if root == Path("memory:") else root / "_proxy"
        spool_dir.mkdir(parents=True, exist_ok=True)
        for name in ("fleetkit-proxy-stale", "fleetkit-proxy-fresh", "other-stale"):
            (spool_dir / name).write_bytes(b"x")
        for name in ("fleetkit-proxy-stale", "other-stale"):
            os.utime(spool_dir / name, (old, old))
        proxy = _proxy(root, ProxyConfig(remote=ProxyUpstream(upstream.url)))
        try:
            assert _get(proxy.host, f"/v2/lib/app/blobs/{digest}")[2] == blob
        finally:
            proxy.stop()
        assert sorted(os.listdir(spool_dir)) == ["fleetkit-proxy-fresh", "other-stale"], root


@pytest.mark.parametrize(
    # SIGTERM: the graceful shutdown waits its 10 s for the request in flight, so once only
    ("stop", "storage"),
    [("thread", "dir"), ("thread", "memory:"), ("sigterm", "memory:")],
)
def test_a_server_stopped_mid_fetch_leaves_no_spool(
    upstream: FakeUpstream,
    tmp_path: Path,
    temp_spools: Path,
    monkeypatch: pytest.MonkeyPatch,
    storage: str,
    stop: str,
) -> None:
    """A server stopped (in-process, or ``SIGTERM`` to ``registry serve``) while a client is
    being sent an uncached blob removes its spool and caches nothing."""
    blob = os.urandom(3 << 20)
    digest = sha256(blob)
    upstream.blobs[digest] = blob
    upstream.gated.add(digest)  # upstream sends half, then waits: the fetch is under way
    root = tmp_path / "cache" if storage == "dir" else Path(storage)
    server: ThreadServer | ProcessServer
    if stop == "thread":
        server = _proxy(root, ProxyConfig(remote=ProxyUpstream(upstream.url)))
    else:
        monkeypatch.setenv("TMPDIR", str(temp_spools))  # the child's temp directory
        args = ("--root", str(root), "--proxy-remote", upstream.url, "--listen", "127.0.0.1:0")
        server = ProcessServer(tmp_path, *args).start()
    conn = http.client.HTTPConnection(server.host, timeout=60)
    try:
        conn.request("GET", f"/v2/lib/app/blobs/{digest}")
        resp = conn.getresponse()
        assert resp.read(1 << 20) == blob[: 1 << 20]
        assert (_spools(root) if storage == "dir" else os.listdir(temp_spools)) != []
    finally:
        conn.close()
        server.stop()
        upstream.gate.set()
    assert os.listdir(temp_spools) == []
    assert _spools(root) == []
    if storage == "dir":
        blob_dir = root / "blobs" / "sha256" / digest[7:9] / digest[7:]
        assert not blob_dir.exists()


def test_a_fetched_manifest_prefetches_its_blobs(upstream: FakeUpstream, tmp_path: Path) -> None:
    """GET of a manifest the cache had to fetch starts the fetches of its config and layers
    before any client asks for them (as Harbor and zot do); a client that asks meanwhile is
    streamed the prefetch's spool (one upstream GET), and a prefetch cut short caches
    nothing and leaves no spool."""
    img = make_image(7, (3 << 20, 2 << 20))
    upstream.add_manifest("app", img.manifest, mt.OCI_MANIFEST, "v1")
    upstream.blobs.update(img.blobs())
    big, small = sha256(img.layers[0]), sha256(img.layers[1])
    config = sha256(img.config)
    upstream.gated.add(big)  # upstream sends half of it, then waits for the gate
    upstream.truncated.add(small)  # upstream cuts this one off halfway, every time
    root = tmp_path / "cache"
    proxy = _proxy(root, ProxyConfig(remote=ProxyUpstream(upstream.url)))
    blob = "/v2/app/blobs/{}".format
    try:
        status, _, body = _get(
            proxy.host, "/v2/app/manifests/v1", headers={"Accept": mt.OCI_MANIFEST}
        )
        assert (status, body) == (200, img.manifest)
        # no client has asked for a blob: the proxy's own requests arrive upstream
        for digest in (config, big, small):
            assert upstream.wait_for("GET", blob(digest)), digest
        conn = http.client.HTTPConnection(proxy.host, timeout=60)
        conn.request("GET", blob(big))
        resp = conn.getresponse()
        assert resp.status == 200
        head = resp.read(1 << 20)  # the prefetch's spool, while upstream holds the rest back
        upstream.gate.set()
        assert head + resp.read() == img.layers[0]
        conn.close()
        # a ranged GET waits for the commit: the config is cached once its prefetch verified
        status, _, body = _get(proxy.host, blob(config), headers={"Range": "bytes=0-9"})
        assert (status, body) == (206, img.config[:10])
        assert _get(proxy.host, blob(big), headers={"Range": "bytes=0-0"})[2] == img.layers[0][:1]
        assert upstream.counts[("GET", blob(big))] == upstream.counts[("GET", blob(config))] == 1
        # the cut layer: never cached, nothing of it left; the client's GET fails as well (cut
        # mid-body, or a 502 when upstream cut it before the first byte)
        try:
            assert _get(proxy.host, blob(small))[0] == 502
        except http.client.IncompleteRead:
            pass
        assert proxy.state.store.blob_size(small) is None
        assert proxy.state.store.uploads("app") == []
        assert _spools(root) == []
    finally:
        proxy.stop()


def test_the_last_byte_waits_for_the_digest_not_for_the_commit(
    upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the digest verified, the client gets its last byte while the commit (fsync, rename,
    link) is still held back; the blob is in the cache once the commit is let through."""
    import threading

    from fleetkit.registry.proxy import Proxy

    commit = Proxy._commit
    release, started = threading.Event(), threading.Event()

    def held(*args: object) -> None:
        started.set()
        release.wait(30)
        commit(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(Proxy, "_commit", staticmethod(held))
    blob = os.urandom(2 << 20)
    digest = sha256(blob)
    upstream.blobs[digest] = blob
    proxy = _proxy(tmp_path / "cache", ProxyConfig(remote=ProxyUpstream(upstream.url)))
    path = f"/v2/lib/app/blobs/{digest}"
    try:
        assert _get(proxy.host, path)[2] == blob  # would time out if it waited for the commit
        assert started.wait(30)
        assert proxy.state.store.blob_size(digest) is None  # not committed yet
        release.set()
        status, _, body = _get(proxy.host, path, headers={"Range": "bytes=0-3"})
        assert (status, body) == (206, blob[:4])  # a ranged GET waits for the commit
        assert proxy.state.store.blob_size(digest) == len(blob)
        assert upstream.counts[("GET", path)] == 1
    finally:
        release.set()
        proxy.stop()


def test_a_client_leaving_mid_blob_does_not_stop_the_fetch(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    """The first client (whose request started the fetch) hangs up mid-blob: the other client
    still gets every byte, and the blob is cached after the one upstream GET."""
    blob = os.urandom(3 << 20)
    digest = sha256(blob)
    upstream.blobs[digest] = blob
    upstream.gated.add(digest)
    proxy = _proxy(tmp_path / "cache", ProxyConfig(remote=ProxyUpstream(upstream.url)))
    path = f"/v2/lib/app/blobs/{digest}"
    try:
        conns, resps = [], []
        for _ in range(2):
            conn = http.client.HTTPConnection(proxy.host, timeout=60)
            conn.request("GET", path)
            resp = conn.getresponse()
            assert resp.read(1 << 20) == blob[: 1 << 20]
            conns.append(conn)
            resps.append(resp)
        resps[0].close()
        conns[0].close()
        upstream.gate.set()
        assert blob[: 1 << 20] + resps[1].read() == blob
        conns[1].close()
        status, _, body = _get(proxy.host, path, headers={"Range": "bytes=5-9"})
        assert (status, body) == (206, blob[5:10])
        assert proxy.state.store.blob_size(digest) == len(blob)
        assert upstream.counts[("GET", path)] == 1
        assert _spools(tmp_path / "cache") == []
    finally:
        proxy.stop()


def test_a_chunked_upstream_body_reaches_the_client_framed(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    """Without an upstream Content-Length the proxy cannot say one either: the client gets a
    chunked body (framed by aiohttp, not sent raw by a sender thread), then it is cached."""
    blob = os.urandom(2 << 20)
    digest = sha256(blob)
    upstream.blobs[digest] = blob
    upstream.chunked.add(digest)
    proxy = _proxy(tmp_path / "cache", ProxyConfig(remote=ProxyUpstream(upstream.url)))
    path = f"/v2/lib/app/blobs/{digest}"
    try:
        status, headers, body = _get(proxy.host, path)
        assert (status, body) == (200, blob)
        assert "Content-Length" not in headers
        assert _get(proxy.host, path, headers={"Range": "bytes=0-3"})[2] == blob[:4]
        assert proxy.state.store.blob_size(digest) == len(blob)
        assert upstream.counts[("GET", path)] == 1
    finally:
        proxy.stop()


def test_a_cache_on_s3(
    upstream: FakeUpstream, ceph_s3: CephS3, s3_bucket: str, temp_spools: Path
) -> None:
    """Ceph's S3 as the cache's storage: the spool (in the temp directory) is copied into an
    upload session there, then removed."""
    from tests.registry.conftest import s3_config

    blob = os.urandom(3 << 20)
    digest = sha256(blob)
    upstream.blobs[digest] = blob
    config = ServerConfig(
        root=f"s3://{s3_bucket}",
        s3=s3_config(ceph_s3, s3_bucket),
        listen="127.0.0.1:0",
        proxy=ProxyConfig(remote=ProxyUpstream(upstream.url)),
    )
    proxy = ThreadServer(config).start()
    path = f"/v2/lib/app/blobs/{digest}"
    try:
        assert _get(proxy.host, path)[2] == blob
        assert _get(proxy.host, path, headers={"Range": "bytes=0-0"})[2] == blob[:1]  # committed
        assert proxy.state.store.blob_size(digest) == len(blob)
        assert proxy.state.store.uploads("lib/app") == []
        assert os.listdir(temp_spools) == []
        assert _get(proxy.host, path)[2] == blob
        assert upstream.counts[("GET", path)] == 1
    finally:
        proxy.stop()


def test_digest_mismatch_from_upstream_is_never_cached(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    blob = os.urandom(1 << 20)
    digest = sha256(blob)
    upstream.blobs[digest] = blob
    upstream.wrong[digest] = bytes(reversed(blob))  # same size, other bytes
    proxy = _proxy(tmp_path / "cache", ProxyConfig(remote=ProxyUpstream(upstream.url)))
    path = f"/v2/lib/app/blobs/{digest}"
    try:
        for _ in range(2):
            # the client never gets a whole body: the connection is cut before the last byte
            with pytest.raises(http.client.IncompleteRead) as info:
                _get(proxy.host, path)
            assert len(info.value.partial) < len(blob)
            assert proxy.state.store.blob_size(digest) is None
            assert proxy.state.store.uploads("lib/app") == []
            assert _spools(tmp_path / "cache") == []
        assert upstream.counts[("GET", path)] == 2  # nothing was cached, so asked again
        del upstream.wrong[digest]
        status, _, body = _get(proxy.host, path)
        assert (status, body) == (200, blob)
    finally:
        proxy.stop()


def test_an_upstream_cut_mid_blob_leaves_nothing(upstream: FakeUpstream, tmp_path: Path) -> None:
    blob = os.urandom(2 << 20)
    digest = sha256(blob)
    upstream.blobs[digest] = blob
    upstream.truncated.add(digest)
    proxy = _proxy(tmp_path / "cache", ProxyConfig(remote=ProxyUpstream(upstream.url)))
    path = f"/v2/lib/app/blobs/{digest}"
    try:
        with pytest.raises(http.client.IncompleteRead):
            _get(proxy.host, path)
        assert proxy.state.store.blob_size(digest) is None
        assert proxy.state.store.uploads("lib/app") == []
        assert _spools(tmp_path / "cache") == []
        upstream.truncated.clear()
        assert _get(proxy.host, path)[2] == blob
    finally:
        proxy.stop()


def test_manifest_ttl_revalidation_by_head_and_upstream_down(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    one, two = make_image(1), make_image(2)
    d1 = upstream.add_manifest("app", one.manifest, mt.OCI_MANIFEST, "v1")
    upstream.blobs.update({**one.blobs(), **two.blobs()})
    config = ProxyConfig(
        projects={
            "fresh": ProxyUpstream(upstream.url),  # ttl 0: revalidated on every request
            "lazy": ProxyUpstream(upstream.url, ttl_s=3600.0),
        }
    )
    proxy = _proxy(tmp_path / "cache", config)
    accept = {"Accept": mt.OCI_MANIFEST}
    up = "/v2/app/manifests/v1"
    try:
        for _ in range(2):
            status, headers, body = _get(proxy.host, "/v2/lazy/app/manifests/v1", headers=accept)
            assert (status, headers["Docker-Content-Digest"], body) == (200, d1, one.manifest)
        assert (upstream.counts[("GET", up)], upstream.counts[("HEAD", up)]) == (1, 0)
        for _ in range(2):
            status, headers, _ = _get(proxy.host, "/v2/fresh/app/manifests/v1", headers=accept)
            assert headers["Docker-Content-Digest"] == d1
        assert (upstream.counts[("GET", up)], upstream.counts[("HEAD", up)]) == (2, 1)
        # the tag moves upstream: the fresh project sees it at once, the lazy one after its TTL
        d2 = upstream.add_manifest("app", two.manifest, mt.OCI_MANIFEST, "v1")
        _, headers, body = _get(proxy.host, "/v2/fresh/app/manifests/v1", headers=accept)
        assert (headers["Docker-Content-Digest"], body) == (d2, two.manifest)
        _, headers, _ = _get(proxy.host, "/v2/lazy/app/manifests/v1", headers=accept)
        assert headers["Docker-Content-Digest"] == d1
        # by digest: fetched once, verified, then local
        status, _, body = _get(proxy.host, f"/v2/fresh/app/manifests/{d1}", headers=accept)
        assert (status, body) == (200, one.manifest)
        # tags come from upstream, under the local name
        status, _, body = _get(proxy.host, "/v2/fresh/app/tags/list")
        assert json.loads(body) == {"name": "fresh/app", "tags": ["v1"]}
        layer = sha256(two.layers[0])
        assert _get(proxy.host, f"/v2/fresh/app/blobs/{layer}")[2] == two.layers[0]
        upstream.stop()
        # upstream down: the cached manifest, blob and tag list are served
        status, headers, body = _get(proxy.host, "/v2/fresh/app/manifests/v1", headers=accept)
        assert (status, headers["Docker-Content-Digest"]) == (200, d2)
        assert _get(proxy.host, f"/v2/fresh/app/blobs/{layer}")[2] == two.layers[0]
        assert json.loads(_get(proxy.host, "/v2/fresh/app/tags/list")[2])["tags"] == ["v1"]
        # what was never cached is a clean error, not a hang
        status, _, body = _get(proxy.host, "/v2/fresh/app/manifests/v9", headers=accept)
        assert status == 502
        assert json.loads(body)["errors"][0]["code"] == "UNKNOWN"
    finally:
        proxy.stop()


def test_an_upstream_down_at_start_is_reached_once_it_is_up(tmp_path: Path) -> None:
    port = free_port()
    proxy = _proxy(
        tmp_path / "cache", ProxyConfig(remote=ProxyUpstream(f"http://127.0.0.1:{port}"))
    )
    img = make_image(4)
    try:
        status, _, body = _get(proxy.host, "/v2/app/manifests/v1")
        assert status == 502
        assert "connection refused" in json.loads(body)["errors"][0]["message"]
        fake = FakeUpstream(port).start()
        try:
            fake.add_manifest("app", img.manifest, mt.OCI_MANIFEST, "v1")
            status, _, body = _get(proxy.host, "/v2/app/manifests/v1")
            assert (status, body) == (200, img.manifest)
        finally:
            fake.stop()
    finally:
        proxy.stop()


def test_upstream_404_keeps_its_code_and_a_lying_manifest_is_refused(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    img = make_image(3)
    upstream.manifests[("app", "v1")] = (img.manifest, mt.OCI_MANIFEST, sha256(b"other"))
    proxy = _proxy(tmp_path / "cache", ProxyConfig(remote=ProxyUpstream(upstream.url)))
    try:
        status, _, body = _get(proxy.host, "/v2/app/manifests/nope")
        assert status == 404
        assert json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
        status, _, body = _get(proxy.host, f"/v2/app/blobs/{sha256(b'x')}")
        assert status == 404
        assert json.loads(body)["errors"][0]["code"] == "BLOB_UNKNOWN"
        status, _, body = _get(proxy.host, "/v2/app/manifests/v1")
        assert status == 502
        assert json.loads(body)["errors"][0]["code"] == "DIGEST_INVALID"
        assert proxy.state.store.resolve_tag("app", "v1") is None
    finally:
        proxy.stop()


def test_pushes_and_deletes_on_proxied_repositories_are_unsupported(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    proxy = _proxy(tmp_path / "cache", ProxyConfig(projects={"hub": ProxyUpstream(upstream.url)}))
    try:
        digest = sha256(b"x")
        for method, path in (
            ("POST", "/v2/hub/app/blobs/uploads/"),
            ("PUT", "/v2/hub/app/manifests/v1"),
            ("DELETE", "/v2/hub/app/manifests/v1"),
            ("DELETE", f"/v2/hub/app/blobs/{digest}"),
        ):
            status, _, body = _get(proxy.host, path, method=method)
            assert status == 405, (method, path)
            assert json.loads(body)["errors"][0]["code"] == "UNSUPPORTED"
        # outside the proxy project, the registry is an ordinary one
        status, headers, _ = _get(proxy.host, "/v2/local/app/blobs/uploads/", method="POST")
        assert status == 202
        assert sum(upstream.counts.values()) == 0
    finally:
        proxy.stop()


def run(
    cmd: list[str], check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_basic_auth_upstream(tmp_path: Path) -> None:
    """An upstream with a Basic challenge (fleetkit --auth htpasswd): the proxy's credentials
    go with each request; wrong ones are a clean not-found, with the reason."""
    from fleetkit.registry.auth.users import add_user
    from fleetkit.registry.manifest import parse_manifest
    from tests.registry._server import thread_server

    users = tmp_path / "htpasswd"
    add_user(str(users), "bob", "bobpw", cost=4)
    img = make_image(9)
    with thread_server(root="memory:", auth="htpasswd", htpasswd=str(users)) as up:
        for digest, data in img.blobs().items():
            up.state.store.put_blob("team/app", data, digest)
        up.state.store.put_manifest("team/app", img.manifest, parse_manifest(img.manifest), ["v1"])
        good = _proxy(tmp_path / "c1", ProxyConfig(remote=ProxyUpstream(up.url, "bob", "bobpw")))
        bad = _proxy(tmp_path / "c2", ProxyConfig(remote=ProxyUpstream(up.url, "bob", "nope")))
        try:
            status, headers, body = _get(good.host, "/v2/team/app/manifests/v1")
            assert (status, body) == (200, img.manifest)
            assert headers["Docker-Content-Digest"] == img.digest
            layer = img.layers[1]
            assert _get(good.host, f"/v2/team/app/blobs/{sha256(layer)}")[2] == layer
            status, _, body = _get(bad.host, "/v2/team/app/manifests/v1")
            assert status == 404
            error = json.loads(body)["errors"][0]
            assert error["code"] == "MANIFEST_UNKNOWN"
            assert "refused access" in error["message"] and "HTTP 401" in error["message"]
        finally:
            good.stop()
            bad.stop()


@pytest.mark.interop
def test_answers_match_distribution_in_proxy_mode(upstream: FakeUpstream, tmp_path: Path) -> None:
    """distribution 2.8.2 with proxy.remoteurl and fleetkit --proxy-remote, same upstream, same
    requests: the same status and error code for each."""
    registry_bin = require("docker-registry", "apt-get install -y docker-registry")
    img = make_image(5)
    digest = upstream.add_manifest("lib/app", img.manifest, mt.OCI_MANIFEST, "v1")
    upstream.blobs.update(img.blobs())
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "error"},
                "storage": {"filesystem": {"rootdirectory": str(tmp_path / "dist")}},
                "http": {"addr": f"127.0.0.1:{port}"},
                "proxy": {"remoteurl": upstream.url},
            }
        )
    )
    proc = subprocess.Popen(
        [registry_bin, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    proxy = _proxy(tmp_path / "cache", ProxyConfig(remote=ProxyUpstream(upstream.url)))
    layer, unknown = sha256(img.layers[0]), sha256(b"never pushed")
    requests = [
        ("POST", "/v2/lib/app/blobs/uploads/"),
        ("PUT", "/v2/lib/app/manifests/v1"),
        ("DELETE", "/v2/lib/app/manifests/v1"),
        ("DELETE", f"/v2/lib/app/blobs/{layer}"),
        ("GET", "/v2/lib/app/tags/list"),
        ("GET", "/v2/lib/app/manifests/v1"),
        ("HEAD", f"/v2/lib/app/manifests/{digest}"),
        ("GET", "/v2/lib/app/manifests/nope"),
        ("GET", f"/v2/lib/app/blobs/{layer}"),
        ("HEAD", f"/v2/lib/app/blobs/{unknown}"),
        ("GET", f"/v2/lib/app/blobs/{unknown}"),
        ("GET", "/v2/lib/other/manifests/v1"),
    ]

    def answers(host: str) -> list[tuple[str, str, int, str, str]]:
        out = []
        for method, path in requests:
            body = img.manifest if method == "PUT" else b""
            headers = {"Content-Type": mt.OCI_MANIFEST, "Accept": mt.OCI_MANIFEST}
            conn = http.client.HTTPConnection(host, timeout=60)
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
            code = ""
            if resp.status >= 400 and data:
                code = json.loads(data)["errors"][0]["code"]
            out.append(
                (method, path, resp.status, code, resp.getheader("Docker-Content-Digest", ""))
            )
        return out

    try:
        host = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:  # distribution pings its upstream while it starts
            try:
                urllib.request.urlopen(f"http://{host}/v2/", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert answers(proxy.host) == answers(host)
        # the upstream goes away: both serve the cached tag and tag list (distribution stores
        # a proxied blob after it answered, so when it has it is a race: blobs are checked
        # against fleetkit alone, here and in the upstream-down tests above)
        upstream.stop()
        requests[:] = [("GET", "/v2/lib/app/manifests/v1"), ("GET", "/v2/lib/app/tags/list")]
        down = answers(proxy.host)
        assert [status for _, _, status, _, _ in down] == [200, 200]
        assert down == answers(host)
        requests[:] = [("GET", f"/v2/lib/app/blobs/{layer}")]
        assert answers(proxy.host)[0][2] == 200
    finally:
        proc.terminate()
        proc.wait(15)
        proxy.stop()


# -- real peers: distribution 2.8.2 + fleetkit's token service upstream; skopeo, podman -----------


class _Relay:
    """A TCP relay to ``target`` on 127.0.0.1 (own thread); ``stop()`` is the upstream going
    away: the listener and every relayed connection close."""

    def __init__(self, target: str) -> None:
        import asyncio
        import threading

        self.target = target
        self.host = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import asyncio

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(1 << 16):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                w.close()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            tasks: set[asyncio.Task[None]] = set()
            host, port = self.target.rsplit(":", 1)

            async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                ur, uw = await asyncio.open_connection(host, int(port))
                for t in (asyncio.create_task(pipe(r, uw)), asyncio.create_task(pipe(ur, w))):
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)

            server = await asyncio.start_server(on_client, "127.0.0.1", 0)
            self.host = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
            self._ready.set()
            await self._stop.wait()
            server.close()
            for t in list(tasks):
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run(main())

    def start(self) -> _Relay:
        self._thread.start()
        assert self._ready.wait(30)
        return self

    def stop(self) -> None:
        if self._thread.is_alive() and self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.mark.interop
def test_skopeo_and_podman_pull_through_the_cache_of_distribution_with_token_auth(
    stack: tuple[str, ProcessServer],  # noqa: F811 (the fixture)
    podman: Podman,  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    skopeo = require("skopeo", "apt-get install -y skopeo")
    host, tokens = stack
    img = make_image(41, (300_000, 90_000))
    src = write_oci_layout(img, str(tmp_path / "src"), "v1")
    run(
        [
            skopeo,
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:alicepw",
            src,
            f"docker://{host}/private/proxied:v1",
        ]
    )
    relay = _Relay(host).start()
    # the proxy logs in upstream as alice (private/* is alice's only); its clients are anonymous
    proxy = ProcessServer(
        tmp_path,
        "--root",
        str(tmp_path / "cache"),
        "--listen",
        "127.0.0.1:0",
        "--proxy-remote",
        f"http://{relay.host}",
        "--proxy-username",
        "alice",
        "--proxy-password",
        "alicepw",
    ).start()
    ref = f"{proxy.host}/private/proxied:v1"

    def pull_both(out: str) -> None:
        run([skopeo, "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{out}:v1"])
        index = json.loads((Path(out) / "index.json").read_text())
        assert index["manifests"][0]["digest"] == img.digest
        for digest, data in img.blobs().items():
            assert (Path(out) / "blobs" / "sha256" / digest[7:]).read_bytes() == data
        podman("rmi", "-a", "-f")
        podman("pull", "--tls-verify=false", ref)
        assert any(i.get("Digest") == img.digest for i in podman.images()), podman.images()

    try:
        pull_both(str(tmp_path / "cold"))
        # the token dance upstream: fleetkit's token service issued alice a pull token
        assert "scope=repository%3Aprivate%2Fproxied%3Apull" in tokens.log_text()
        assert "alice" in tokens.log_text()
        # a push through the proxy is refused with distribution's error
        proc = run(
            [skopeo, "copy", "--dest-tls-verify=false", src, f"docker://{proxy.host}/x/y:v1"],
            check=False,
        )
        assert proc.returncode != 0
        assert "unsupported" in proc.stderr.lower()
        relay.stop()  # the upstream is gone: the cache serves what it holds
        pull_both(str(tmp_path / "warm"))
        assert "serving the cached" in proxy.log_text()
    finally:
        relay.stop()
        proxy.stop()


def test_spool_senders_bound_the_send_buffer_of_a_client_on_this_host() -> None:
    """A cold blob's client on this host gets the registry's bounded send buffer, as its GETs do."""

    def transport(sock: socket.socket) -> Any:
        extra = {"socket": sock, "ssl_object": None}
        return SimpleNamespace(get_extra_info=lambda key, default=None: extra.get(key, default))

    with socket.create_server(("127.0.0.1", 0)) as listener:
        for in_flight, bounded in ((1, True), (blobs.COPY_MAX_BODIES + 1, False)):
            client = socket.create_connection(listener.getsockname())
            conn, _ = listener.accept()
            with client, conn:
                autotuned = conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
                st: Any = SimpleNamespace(blob_bodies_in_flight=in_flight, body_timeout_s=5.0)
                sender = proxy._Sender(Any, -1, transport(conn), st)  # type: ignore[arg-type]
                sender.sock.close()
                size = blobs.LOCAL_SEND_BUFFER
                assert size is not None
                want = 2 * size if bounded else autotuned  # Linux doubles what it is given
                assert conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == want
