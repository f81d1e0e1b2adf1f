"""``GET /ui`` and ``fleetkit schedule -o html`` rendered by headless Chromium (Debian's
``chromium``, started by the test as its own process with a fresh profile): the DOM Chromium
builds and its screenshot are checked by structure (nodes by zone, pods by workload, Pending
pods with the scheduler's reasons), not by pixels."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.chromium import png_size as _png_size
from tests.chromium import render
from tests.cluster.conftest import FIXTURES, Kubectl

ANTI_AFFINITY = "didn't match pod anti-affinity rules"


class _Dom(HTMLParser):
    """The elements the page marks with data-* attributes, with their enclosing zone/row."""

    def __init__(self) -> None:
        super().__init__()
        self.zone: str | None = None
        self.depth = 0
        self.zone_depth = -1
        self.nodes: dict[str, str] = {}  # node -> zone
        self.pods: dict[str, str] = {}  # pod -> workload
        self.pending: dict[str, str] = {}  # pod -> row text
        self.row: str | None = None
        self.bars: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.depth += 1
        if "data-zone" in a:
            self.zone, self.zone_depth = a["data-zone"], self.depth
        if "data-node" in a:
            self.nodes[a["data-node"]] = self.zone or ""
        if "data-pod" in a:
            self.pods[a["data-pod"]] = a.get("data-workload", "")
        if "data-resource" in a:
            self.bars.append((a["data-resource"], a.get("data-percent", "")))
        if "data-pending" in a:
            self.row = a["data-pending"]
            self.pending[self.row] = ""

    def handle_endtag(self, tag: str) -> None:
        if self.depth == self.zone_depth:
            self.zone, self.zone_depth = None, -1
        if tag == "tr":
            self.row = None
        self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.row is not None:
            self.pending[self.row] += data


def _chromium(url: str, workdir: Path) -> tuple[_Dom, Path]:
    """The DOM Chromium built for ``url`` and a screenshot of it."""
    html, shot = render(url, workdir)
    parser = _Dom()
    parser.feed(html)
    return parser, shot


def _check_blog_page(dom: _Dom, zones: dict[str, str]) -> None:
    assert dom.nodes == zones  # every node, inside its zone's group
    nginx = {p for p, wl in dom.pods.items() if wl == "Deployment/nginx"}
    assert len(nginx) == 3 and all(p.startswith("nginx-") for p in nginx)
    assert len(dom.pending) == 3
    for pod, text in dom.pending.items():
        assert pod.startswith("nginx-") and pod not in nginx
        assert "Deployment/nginx" in text and ANTI_AFFINITY in text
    assert {r for r, _ in dom.bars} == {"cpu", "memory", "pods"}
    assert len(dom.bars) == 3 * len(zones)


def test_ui_in_chromium(kubectl: Kubectl, tmp_path: Path) -> None:
    zones = {"demo-worker": "a", "demo-worker2": "b", "demo-worker3": "b"}
    for node, zone in zones.items():
        kubectl.out("label", "node", node, f"topology.kubernetes.io/zone={zone}")
    kubectl.out("apply", "-f", str(FIXTURES / "nginx.yaml"))
    kubectl.out("rollout", "status", "deploy/nginx", "--timeout=60s")
    kubectl.out("scale", "deploy", "nginx", "--replicas", "6")
    server = kubectl.out(
        "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"
    )
    dom, shot = _chromium(server + "/ui", tmp_path)
    _check_blog_page(dom, {**zones, "demo-control-plane": "(no zone)"})
    width, height = _png_size(shot)
    assert (width, height) == (1280, 900)


def test_schedule_html_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "schedule.html"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleetkit",
            "schedule",
            "-f",
            str(FIXTURES / "nodes.yaml"),
            "-f",
            str(FIXTURES / "nginx.yaml"),
            "--then",
            "scale deploy/nginx --replicas=6",
            "-o",
            "html",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    page.write_text(out.stdout, encoding="utf-8")
    dom, shot = _chromium(page.as_uri(), tmp_path)
    nodes = ("demo-control-plane", "demo-worker", "demo-worker2", "demo-worker3")
    _check_blog_page(dom, dict.fromkeys(nodes, "(no zone)"))
    assert _png_size(shot) == (1280, 900)


def test_schedule_html_refuses_explain(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleetkit",
            "schedule",
            "-f",
            str(FIXTURES / "nodes.yaml"),
            "--explain",
            "-o",
            "html",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "error: --explain has no html form" in proc.stderr


pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
