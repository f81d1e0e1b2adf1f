"""--kubeconfig: a read-only snapshot through the API server (a local fake one here)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.scheduler.builders import node, pod

NODES = [node("w1", cpu="1"), node("w2", cpu="2")]
PODS = [dict(pod("busy", "w2", cpu="1500m"), status={"phase": "Running"})]


class _Api(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        _Api.seen.append((self.path, self.headers.get("Authorization")))
        items: list[dict[str, Any]] = []
        if self.path == "/api/v1/nodes":
            items = [{k: v for k, v in n.items() if k != "kind"} for n in NODES]
        elif self.path == "/api/v1/pods":
            items = [{k: v for k, v in p.items() if k != "kind"} for p in PODS]
        elif self.path.startswith("/apis/batch"):
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": items}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def api() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=10)


def test_snapshot_live_cluster(api: str, tmp_path: Path) -> None:
    kc = tmp_path / "kubeconfig"
    kc.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "kind",
                "contexts": [{"name": "kind", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": api}}],
                "users": [{"name": "u", "user": {"token": "s3cret"}}],
            }
        )
    )
    new = tmp_path / "new.yaml"
    new.write_text(yaml.safe_dump(pod("web", cpu="800m")))
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleetkit",
            "schedule",
            "--kubeconfig",
            str(kc),
            "-f",
            str(new),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    items = json.loads(p.stdout)["items"]
    # the live pod is part of the cluster: w2 has 500m left, so the new pod goes to w1
    assert [(i["metadata"]["name"], i["spec"].get("nodeName")) for i in items] == [
        ("busy", "w2"),
        ("web", "w1"),
    ]
    assert ("/api/v1/nodes", "Bearer s3cret") in _Api.seen
    assert "s3cret" not in p.stderr + p.stdout


def test_unreachable_cluster_is_an_error(tmp_path: Path) -> None:
    kc = tmp_path / "kubeconfig"
    kc.write_text(
        yaml.safe_dump(
            {
                "current-context": "x",
                "contexts": [{"name": "x", "context": {"cluster": "c"}}],
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
            }
        )
    )
    p = subprocess.run(
        [sys.executable, "-m", "fleetkit", "schedule", "--kubeconfig", str(kc)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1
    assert p.stderr.startswith("error: GET http://127.0.0.1:1/api/v1/namespaces")
    assert "hint:" in p.stderr and "Traceback" not in p.stderr


class _Hostile(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(_Hostile.body)))
        self.end_headers()
        self.wfile.write(_Hostile.body)

    def log_message(self, *args: Any) -> None:
        return


@pytest.mark.parametrize(
    "body",
    [b"[1, 2]", b'{"items": 5}', b'{"items": ["x"]}', b"[" * 50_000 + b"]" * 50_000],
    ids=["list", "items-number", "items-strings", "deep"],
)
def test_hostile_api_answers_are_error_lines(
    body: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 11 item 11/19: a list response of the wrong shape was an AttributeError."""
    from fleetkit.cli import main

    _Hostile.body = body
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        kc = tmp_path / "kubeconfig"
        server = f"http://127.0.0.1:{srv.server_address[1]}"
        kc.write_text(
            yaml.safe_dump(
                {
                    "current-context": "x",
                    "contexts": [{"name": "x", "context": {"cluster": "c"}}],
                    "clusters": [{"name": "c", "cluster": {"server": server}}],
                }
            )
        )
        rc = main(["schedule", "--kubeconfig", str(kc)])
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=10)
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith(f"error: GET {server}/api/v1/"), err
    assert "internal error" not in err and "Traceback" not in err
