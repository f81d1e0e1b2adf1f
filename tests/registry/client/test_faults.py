"""Faults injected by a loopback proxy in front of the real registry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from fleetkit.registry.client import (
    Credential,
    RetryPolicy,
    TransportError,
    VerificationError,
    pull,
)
from tests.registry.client.conftest import PASSWORD, USER, Images, TokenRegistry
from tests.registry.client.helpers import Registry, sha256, wait_for
from tests.registry.client.servers import (
    CORRUPT,
    CUT_AT,
    CUT_WHEN,
    RATE,
    SHORT,
    FaultProxy,
    Recorder,
)

pytestmark = pytest.mark.interop
FAST = RetryPolicy(attempts=5, base_s=0.05, max_s=0.2)


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    p = FaultProxy(registry.host).start()
    assert isinstance(p, FaultProxy)
    try:
        yield p
    finally:
        p.stop()


def _once(predicate, action):  # type: ignore[no-untyped-def]
    """A fault handler that applies ``action`` to the first request matching ``predicate``."""
    fired = []

    async def handler(request: web.Request, proxy: FaultProxy) -> web.StreamResponse | None:
        if not fired and predicate(request):
            fired.append(True)
            return await action(request)
        return None

    return handler


def _blob(digest: str):  # type: ignore[no-untyped-def]
    return lambda r: r.method == "GET" and r.path.endswith(f"/blobs/{digest}")


def _assert_blobs(root: Path, blobs: list[bytes]) -> None:
    for b in blobs:
        assert (root / "blobs" / "sha256" / sha256(b)[7:]).read_bytes() == b


def test_cut_mid_blob_resumes_with_range(proxy: FaultProxy, images: Images, tmp_path: Path) -> None:
    layer = images.big.layers[0]
    digest = sha256(layer)

    partial = tmp_path / "blobs" / "sha256" / f"{digest[7:]}.partial"

    async def cut(request: web.Request) -> None:
        request[CUT_AT] = 600_000
        request[CUT_WHEN] = lambda: partial.exists() and partial.stat().st_size >= 600_000
        return None

    proxy.faults.append(_once(_blob(digest), cut))
    result = pull(f"{proxy.host}/test/big:v1", f"oci:{tmp_path}:v1", retry=FAST)
    gets = proxy.blob_gets(digest)
    assert len(gets) == 2
    assert "Range" not in gets[0].headers
    assert gets[1].headers["Range"] == "bytes=600000-"
    assert gets[1].status == 206
    _assert_blobs(tmp_path, images.big.layers)
    assert result.digest == images.big.digest
    assert not list(tmp_path.rglob("*.partial*"))


def test_truncated_body_is_completed(proxy: FaultProxy, images: Images, tmp_path: Path) -> None:
    layer = images.big.layers[1]

    async def short(request: web.Request) -> None:
        request[SHORT] = 1000
        return None

    proxy.faults.append(_once(_blob(sha256(layer)), short))
    pull(f"{proxy.host}/test/big:v1", f"oci:{tmp_path}:v1", retry=FAST)
    gets = proxy.blob_gets(sha256(layer))
    assert [g.headers.get("Range") for g in gets] == [None, "bytes=1000-"]
    _assert_blobs(tmp_path, images.big.layers)


def test_429_with_retry_after_is_honoured(
    proxy: FaultProxy, images: Images, tmp_path: Path
) -> None:
    async def too_many(request: web.Request) -> web.Response:
        return web.json_response(
            {"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]},
            status=429,
            headers={"Retry-After": "1"},
        )

    proxy.faults.append(_once(lambda r: "/manifests/" in r.path, too_many))
    result = pull(f"{proxy.host}/test/app:v1", f"oci:{tmp_path}:v1", retry=FAST)
    assert result.digest == images.app.digest
    manifest_gets = [s for s in proxy.seen if "/manifests/" in s.path]
    assert [s.status for s in manifest_gets] == [429, 200]
    # the client waited as told, not its own (much shorter) backoff
    assert manifest_gets[1].at - manifest_gets[0].at >= 0.9


def test_5xx_are_retried_then_give_up(proxy: FaultProxy, images: Images, tmp_path: Path) -> None:
    layer = images.app.layers[0]
    statuses = [500, 502, 503]

    async def flaky(request: web.Request, p: FaultProxy) -> web.StreamResponse | None:
        if _blob(sha256(layer))(request) and statuses:
            return web.Response(status=statuses.pop(0), text="upstream trouble")
        return None

    proxy.faults.append(flaky)
    pull(f"{proxy.host}/test/app:v1", f"oci:{tmp_path / 'ok'}:v1", retry=FAST)
    assert [g.status for g in proxy.blob_gets(sha256(layer))] == [500, 502, 503, 200]
    _assert_blobs(tmp_path / "ok", images.app.layers)

    async def always(request: web.Request, p: FaultProxy) -> web.StreamResponse | None:
        return web.Response(status=503) if _blob(sha256(images.app.layers[1]))(request) else None

    proxy.faults[:] = [always]
    proxy.seen.clear()
    with pytest.raises(TransportError, match="503"):
        pull(
            f"{proxy.host}/test/app:v1",
            f"oci:{tmp_path / 'fail'}:v1",
            retry=RetryPolicy(3, 0.01, 0.02),
        )
    assert len(proxy.blob_gets(sha256(images.app.layers[1]))) == 3
    # the other blobs finished and are kept; no manifest was recorded
    _assert_blobs(tmp_path / "fail", [images.app.layers[0], images.app.layers[2]])
    assert json.loads((tmp_path / "fail" / "index.json").read_text())["manifests"] == []


def test_wrong_digest_fails_loudly_and_deletes_partial(
    proxy: FaultProxy, images: Images, tmp_path: Path
) -> None:
    bad = images.app.layers[1]

    async def corrupt(request: web.Request) -> None:
        request[CORRUPT] = True
        return None

    proxy.faults.append(_once(_blob(sha256(bad)), corrupt))
    with pytest.raises(VerificationError) as info:
        pull(f"{proxy.host}/test/app:v1", f"oci:{tmp_path}:v1", retry=FAST)
    assert sha256(bad) in info.value.message and "partial file was deleted" in info.value.message
    blob_dir = tmp_path / "blobs" / "sha256"
    assert not (blob_dir / sha256(bad)[7:]).exists()
    assert not list(blob_dir.glob("*.partial*"))
    assert json.loads((tmp_path / "index.json").read_text())["manifests"] == []
    # the next run fetches it cleanly and only it
    proxy.seen.clear()
    result = pull(f"{proxy.host}/test/app:v1", f"oci:{tmp_path}:v1", retry=FAST)
    assert [b.status for b in result.blobs].count("downloaded") == 1
    _assert_blobs(tmp_path, images.app.layers)


@pytest.fixture
def token_proxy(token_registry: TokenRegistry) -> Iterator[FaultProxy]:
    p = FaultProxy(token_registry.registry.host).start()
    assert isinstance(p, FaultProxy)
    try:
        yield p
    finally:
        p.stop()


def test_redirect_to_other_host_drops_authorization(
    token_proxy: FaultProxy, token_registry: TokenRegistry, images: Images, tmp_path: Path
) -> None:
    layer = images.app.layers[0]
    other = Recorder(layer).start()
    assert isinstance(other, Recorder)
    try:

        async def redirect(request: web.Request) -> web.Response:
            return web.Response(
                status=307,
                headers={"Location": f"http://{other.host}/storage/{sha256(layer)}?sig=abc"},
            )

        token_proxy.faults.append(_once(_blob(sha256(layer)), redirect))
        pull(
            f"{token_proxy.host}/test/app:v1",
            f"oci:{tmp_path}:v1",
            credential=Credential(USER, PASSWORD),
            retry=FAST,
        )
    finally:
        other.stop()
    assert len(other.seen) == 1
    assert "Authorization" not in other.seen[0]
    assert token_proxy.blob_gets(sha256(layer))[0].headers["Authorization"].startswith("Bearer ")
    _assert_blobs(tmp_path, images.app.layers)


def test_expired_token_mid_pull_is_refreshed(
    token_proxy: FaultProxy, token_registry: TokenRegistry, images: Images, tmp_path: Path
) -> None:
    tokens = token_registry.tokens
    layer = images.app.layers[2]
    realm = tokens.registry_auth()["token"]

    async def expired(request: web.Request) -> web.Response:
        challenge = (
            f'Bearer realm="{realm["realm"]}",service="{realm["service"]}",'
            f'scope="repository:test/app:pull",error="invalid_token"'
        )
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED", "message": "token expired"}]},
            status=401,
            headers={"WWW-Authenticate": challenge},
        )

    token_proxy.faults.append(_once(_blob(sha256(layer)), expired))
    before = len(tokens.issued)
    pull(
        f"{token_proxy.host}/test/app:v1",
        f"oci:{tmp_path}:v1",
        credential=Credential(USER, PASSWORD),
        retry=FAST,
        max_concurrent_downloads=1,
    )
    assert len(tokens.issued) - before == 2  # the first, then one after the 401
    gets = token_proxy.blob_gets(sha256(layer))
    assert [g.status for g in gets] == [401, 200]
    assert gets[0].headers["Authorization"] != gets[1].headers["Authorization"]
    _assert_blobs(tmp_path, images.app.layers)


def test_kill_9_then_rerun_skips_completed_layers(
    proxy: FaultProxy, images: Images, tmp_path: Path
) -> None:
    first, second, third = (sha256(b) for b in images.big.layers)

    async def slow(request: web.Request, p: FaultProxy) -> None:
        # the second layer trickles, so the kill lands while it is under way
        if "/blobs/" in request.path:
            request[RATE] = 400_000 if request.path.endswith(second) else 4_000_000
        return None

    proxy.faults.append(slow)
    dest = tmp_path / "layout"
    cmd = [
        sys.executable,
        "-m",
        "fleetkit",
        "pull",
        f"{proxy.host}/test/big:v1",
        f"oci:{dest}:v1",
        "--max-concurrent-downloads",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        blobs = dest / "blobs" / "sha256"
        partial = blobs / f"{second[7:]}.partial"
        wait_for(
            lambda: (
                (blobs / first[7:]).exists()
                and partial.exists()
                and partial.stat().st_size > 200_000
            ),
            timeout_s=60,
            what="first layer done and second under way",
        )
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert not (blobs / third[7:]).exists()
    size_at_kill = partial.stat().st_size
    assert 0 < size_at_kill < len(images.big.layers[1])
    proxy.faults.clear()
    proxy.seen.clear()
    rerun = subprocess.run([*cmd, "-o", "json"], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    doc = json.loads(rerun.stdout)
    status = {b["digest"]: (b["status"], b["resumed_from"]) for b in doc["blobs"]}
    assert status[first] == ("exists", 0)
    assert status[second] == ("resumed", size_at_kill)
    assert status[third][0] == "downloaded"
    assert proxy.blob_gets(first) == []
    assert [g.headers.get("Range") for g in proxy.blob_gets(second)] == [f"bytes={size_at_kill}-"]
    _assert_blobs(dest, images.big.layers)
    assert not list(blobs.glob("*.partial*"))


def test_missing_scope_from_401_is_added(
    token_proxy: FaultProxy, token_registry: TokenRegistry, images: Images, tmp_path: Path
) -> None:
    tokens = token_registry.tokens
    realm = tokens.registry_auth()["token"]
    extra = "repository:test/app:pull repository:public/app:pull"

    async def insufficient(request: web.Request) -> web.Response:
        challenge = (
            f'Bearer realm="{realm["realm"]}",service="{realm["service"]}",'
            f'scope="{extra}",error="insufficient_scope"'
        )
        return web.json_response(
            {"errors": [{"code": "DENIED", "message": "insufficient scope"}]},
            status=401,
            headers={"WWW-Authenticate": challenge},
        )

    token_proxy.faults.append(_once(lambda r: "/manifests/" in r.path, insufficient))
    tokens.requests.clear()
    pull(
        f"{token_proxy.host}/test/app:v1",
        f"oci:{tmp_path}:v1",
        credential=Credential(USER, PASSWORD),
        retry=FAST,
    )
    scopes = [sorted(r.query["scope"]) for r in tokens.requests]
    assert scopes[0] == ["repository:test/app:pull"]
    assert scopes[1] == ["repository:public/app:pull", "repository:test/app:pull"]


def test_concurrent_pulls_share_one_layout(
    proxy: FaultProxy, images: Images, tmp_path: Path
) -> None:
    import threading

    async def slow(request: web.Request, p: FaultProxy) -> None:
        if "/blobs/" in request.path:
            request[RATE] = 8_000_000
        return None

    proxy.faults.append(slow)
    errors: list[BaseException] = []

    def run(tag: str) -> None:
        try:
            pull(f"{proxy.host}/test/big:v1", f"oci:{tmp_path}:{tag}", retry=FAST)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    _assert_blobs(tmp_path, images.big.layers)
    names = [
        m["annotations"]["org.opencontainers.image.ref.name"]
        for m in json.loads((tmp_path / "index.json").read_text())["manifests"]
    ]
    assert sorted(names) == ["a", "b"]
    # each blob crossed the wire once: the second puller waited on the lock, then found it done
    for layer in images.big.layers:
        assert len(proxy.blob_gets(sha256(layer))) == 1
    assert not list(tmp_path.rglob("*.partial"))


def test_push_starts_a_failed_upload_over(proxy: FaultProxy, images: Images) -> None:
    from fleetkit.registry.client import push

    layer = sha256(images.app.layers[0])

    async def fail_put(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=503, text="storage backend busy")

    proxy.faults.append(
        _once(
            lambda r: r.method == "PUT" and "/blobs/uploads/" in r.path and layer in r.path_qs,
            fail_put,
        )
    )
    result = push(f"oci:{images.src / 'app'}:v1", f"{proxy.host}/faults/push:v1", retry=FAST)
    assert result.digest == images.app.digest
    puts = [s for s in proxy.seen if s.method == "PUT" and layer in s.path]
    assert [p.status for p in puts] == [503, 201]
    assert get_manifest_bytes(proxy.host) == images.app.manifest


def get_manifest_bytes(host: str) -> bytes:
    from fleetkit.registry.client import get_manifest

    return get_manifest(f"{host}/faults/push:v1").raw


def test_docker_archive_pull_resumes_from_its_staging_layout(
    proxy: FaultProxy, images: Images, tmp_path: Path
) -> None:
    bad = sha256(images.app.layers[2])

    async def corrupt(request: web.Request) -> None:
        request[CORRUPT] = True
        return None

    proxy.faults.append(_once(_blob(bad), corrupt))
    archive = tmp_path / "app.tar"
    with pytest.raises(VerificationError):
        pull(f"{proxy.host}/test/app:v1", f"docker-archive:{archive}", retry=FAST)
    assert not archive.exists()
    staging = tmp_path / ".app.tar.fleetkit-partial"
    kept = {p.name for p in (staging / "blobs" / "sha256").iterdir()}
    assert sha256(images.app.layers[0])[7:] in kept and bad[7:] not in kept
    proxy.seen.clear()
    result = pull(f"{proxy.host}/test/app:v1", f"docker-archive:{archive}", retry=FAST)
    assert [b.status for b in result.blobs].count("downloaded") == 1
    assert len(proxy.blob_gets(bad)) == 1 and proxy.blob_gets(sha256(images.app.layers[0])) == []
    assert archive.is_file() and not staging.exists()


def test_chunked_blob_body_is_received_whole(
    proxy: FaultProxy, images: Images, tmp_path: Path
) -> None:
    # a registry behind a proxy may send blobs with Transfer-Encoding: chunked (no length)
    layer = images.big.layers[0]
    digest = sha256(layer)

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=200,
            headers={"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream"},
        )
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(layer), 70_001):
            await resp.write(layer[i : i + 70_001])
        await resp.write_eof()
        return resp

    proxy.faults.append(_once(_blob(digest), chunked))
    result = pull(f"{proxy.host}/test/big:v1", f"oci:{tmp_path}:v1", retry=FAST)
    assert len(proxy.blob_gets(digest)) == 1
    assert {b.digest: b.status for b in result.blobs}[digest] == "downloaded"
    _assert_blobs(tmp_path, images.big.layers)
    assert not list(tmp_path.rglob("*.partial*"))


def test_ctrl_c_mid_blob_stops_the_receiving_thread_and_keeps_the_partial(
    proxy: FaultProxy, images: Images, tmp_path: Path
) -> None:
    """A plain-HTTP body is received on a thread (remote.receive_direct): SIGINT while it
    trickles ends the pull with the CLI's interrupt message, no traceback, nothing more
    written after exit, and a rerun resumes from the partial file."""
    layer = images.big.layers[1]
    digest = sha256(layer)

    async def slow(request: web.Request, p: FaultProxy) -> None:
        if request.path.endswith(digest):
            request[RATE] = 100_000  # slow enough that SIGINT lands mid-body on a busy machine
        return None

    proxy.faults.append(slow)
    dest = tmp_path / "layout"
    cmd = [sys.executable, "-m", "fleetkit", "pull", f"{proxy.host}/test/big:v1", f"oci:{dest}:v1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    partial = dest / "blobs" / "sha256" / f"{digest[7:]}.partial"
    try:
        wait_for(
            lambda: partial.exists() and partial.stat().st_size > 100_000,
            timeout_s=60,
            what="the slow layer under way",
        )
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, err
    assert "error: interrupted" in err and "Traceback" not in err
    size = partial.stat().st_size
    assert 0 < size < len(layer)
    proxy.faults.clear()
    proxy.seen.clear()
    rerun = subprocess.run([*cmd, "-o", "json"], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    resumed = {b["digest"]: b for b in json.loads(rerun.stdout)["blobs"]}[digest]
    assert resumed["status"] == "resumed" and resumed["resumed_from"] == size
    gets = proxy.blob_gets(digest)
    assert [g.headers.get("Range") for g in gets] == [f"bytes={size}-"]
    _assert_blobs(dest, images.big.layers)
