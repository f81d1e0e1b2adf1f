"""Crashes and races: kill -9 mid-push, restart mid-upload, many pushers of one blob."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.registry._images import OCI_MANIFEST, make_image, sha256
from tests.registry._server import ProcessServer


def push(url: str, name: str, tag: str, seed: int, chunk: int = 32 * 1024) -> str:
    """Push an image with chunked PATCH uploads (many requests, so a kill lands mid-flight)."""
    img = make_image(seed, (300_000, 200_000, 50_000))
    s = requests.Session()
    for digest, data in img.blobs().items():
        r = s.post(f"{url}/v2/{name}/blobs/uploads/", timeout=30)
        assert r.status_code == 202
        loc = r.headers["Location"]
        for off in range(0, len(data), chunk):
            piece = data[off : off + chunk]
            r = s.patch(
                loc,
                data=piece,
                timeout=30,
                headers={"Content-Range": f"{off}-{off + len(piece) - 1}"},
            )
            assert r.status_code == 202, r.text
            loc = r.headers["Location"]
        r = s.put(loc, params={"digest": digest}, timeout=30)
        assert r.status_code == 201, r.text
    r = s.put(
        f"{url}/v2/{name}/manifests/{tag}",
        data=img.manifest,
        headers={"Content-Type": OCI_MANIFEST},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    return img.digest


def verify_registry(url: str, root: Path) -> set[str]:
    """Every tag resolves, every referenced blob verifies, every blob on disk is whole.

    Returns the repositories that have a tag."""
    s = requests.Session()
    tagged: set[str] = set()
    for name in s.get(f"{url}/v2/_catalog", timeout=30).json()["repositories"]:
        r = s.get(f"{url}/v2/{name}/tags/list", timeout=30)
        assert r.status_code == 200
        for tag in r.json()["tags"]:
            m = s.get(f"{url}/v2/{name}/manifests/{tag}", timeout=30)
            assert m.status_code == 200, (name, tag, m.text)
            assert sha256(m.content) == m.headers["Docker-Content-Digest"]
            doc = json.loads(m.content)
            for desc in [doc["config"], *doc["layers"]]:
                b = s.get(f"{url}/v2/{name}/blobs/{desc['digest']}", timeout=30)
                assert b.status_code == 200, (name, tag, desc)
                assert sha256(b.content) == desc["digest"] and len(b.content) == desc["size"]
            tagged.add(name)
    for path in (root / "blobs").rglob("data"):
        assert (
            "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
            == "sha256:" + path.parent.name
        )
    return tagged


def test_kill9_during_20_concurrent_pushes(tmp_path: Path) -> None:
    root = tmp_path / "data"
    server = ProcessServer(tmp_path, "--root", str(root), "--listen", "127.0.0.1:0", "-q").start()
    done: list[str] = []
    failed: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        try:
            push(server.url, f"crash/app{i}", "v1", seed=100 + i)
            with lock:
                done.append(f"crash/app{i}")
        except (requests.RequestException, AssertionError):
            with lock:
                failed.append(f"crash/app{i}")

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(20)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(done) < 3 and len(failed) == 0:
        time.sleep(0.01)
    server.kill9()
    for t in threads:
        t.join(60)
    assert failed, "every push finished before the kill: the test proved nothing"
    restarted = ProcessServer(
        tmp_path, "--root", str(root), "--listen", "127.0.0.1:0", "-q"
    ).start()
    try:
        # every acknowledged push is there (a push whose 201 was lost in the kill may be too)
        assert set(done) <= verify_registry(restarted.url, root)
        # the interrupted pushes simply succeed when retried
        with ThreadPoolExecutor(4) as pool:
            list(
                pool.map(
                    lambda i: push(restarted.url, f"crash/app{i}", "v1", seed=100 + i), range(20)
                )
            )
        assert len(verify_registry(restarted.url, root)) == 20
    finally:
        assert restarted.stop() == 0


def test_restart_mid_upload_resumes(tmp_path: Path) -> None:
    root = tmp_path / "data"
    data = os.urandom(3 * 1024 * 1024)
    server = ProcessServer(tmp_path, "--root", str(root), "--listen", "127.0.0.1:0", "-q").start()
    loc = requests.post(f"{server.url}/v2/r/blobs/uploads/", timeout=30).headers["Location"]
    path = loc.split("://", 1)[1].split("/", 1)[1]
    assert requests.patch(loc, data=data[:1_000_000], timeout=30).status_code == 202
    # a second PATCH streams half a megabyte, then the server dies mid-request
    sent = threading.Event()

    def body() -> object:
        yield data[1_000_000:1_500_000]
        sent.set()
        time.sleep(30)  # never finishes: the server is killed first
        yield b""

    def patch() -> None:
        try:
            requests.patch(loc, data=body(), timeout=60)
        except requests.RequestException:
            pass

    t = threading.Thread(target=patch, daemon=True)
    t.start()
    assert sent.wait(30)
    received = root / "repositories" / "r" / "_uploads" / loc.rsplit("/", 1)[1] / "data"
    deadline = time.monotonic() + 30
    while received.stat().st_size < 1_500_000 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill9()
    restarted = ProcessServer(
        tmp_path, "--root", str(root), "--listen", "127.0.0.1:0", "-q"
    ).start()
    try:
        url = f"{restarted.url}/{path}"
        r = requests.get(url, timeout=30)
        assert r.status_code == 204
        offset = int(r.headers["Range"].split("-")[1]) + 1
        assert offset == 1_500_000  # what reached the disk before the kill
        r = requests.patch(
            url,
            data=data[offset:],
            timeout=30,
            headers={"Content-Range": f"{offset}-{len(data) - 1}"},
        )
        assert r.status_code == 202
        r = requests.put(url, params={"digest": sha256(data)}, timeout=30)
        assert r.status_code == 201, r.text
        got = requests.get(f"{restarted.url}/v2/r/blobs/{sha256(data)}", timeout=30)
        assert got.content == data
    finally:
        assert restarted.stop() == 0


def test_graceful_stop_keeps_upload_sessions(tmp_path: Path) -> None:
    root = tmp_path / "data"
    server = ProcessServer(tmp_path, "--root", str(root), "--listen", "127.0.0.1:0").start()
    loc = requests.post(f"{server.url}/v2/r/blobs/uploads/", timeout=30).headers["Location"]
    requests.patch(loc, data=b"kept across a clean restart", timeout=30)
    assert server.stop() == 0  # SIGTERM: graceful
    assert "shutting down" in server.log_text()
    again = ProcessServer(tmp_path, "--root", str(root), "--listen", "127.0.0.1:0").start()
    try:
        url = again.url + "/" + loc.split("://", 1)[1].split("/", 1)[1]
        r = requests.put(url, params={"digest": sha256(b"kept across a clean restart")}, timeout=30)
        assert r.status_code == 201
    finally:
        again.stop()
