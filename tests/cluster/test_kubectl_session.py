"""The blog's kubectl session, verbatim, against ``fleetkit cluster serve`` (real kubectl)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.cluster.conftest import FIXTURES, Kubectl

GOLDEN = FIXTURES / "golden"


def shape(text: str) -> list[list[str]]:
    """Table output as cells per line, generated names, ages and IPs replaced by placeholders."""
    out = []
    for line in text.strip().splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        norm = []
        for c in cells:
            c = re.sub(
                r"\b(nginx)-[bcdfghjklmnpqrstvwxz2456789]{8,10}-[bcdfghjklmnpqrstvwxz2456789]{5}\b",
                r"\1-<hash>-<id>",
                c,
            )
            c = re.sub(r"\b(nginx)-[bcdfghjklmnpqrstvwxz2456789]{8,10}\b", r"\1-<hash>", c)
            c = re.sub(r"^(\d+[smhdy])+(\d+[smhdy])?$", "<age>", c)
            c = re.sub(r"^(\d+[smhdy])+ \(x\d+ over (\d+[smhdy])+\)$", "<age> (x<n> over <age>)", c)
            c = re.sub(r"^\d+\.\d+\.\d+\.\d+$", "<ip>", c)
            norm.append(c)
        out.append(norm)
    return out


def golden(name: str) -> list[list[str]]:
    return shape((GOLDEN / name).read_text())


def test_blog_session(kubectl: Kubectl, tmp_path: Path) -> None:
    assert shape(kubectl.out("get", "nodes")) == golden("get-nodes.txt")
    (tmp_path / "nginx.yaml").write_text((FIXTURES / "nginx.yaml").read_text())
    assert kubectl.out("apply", "-f", "nginx.yaml").strip() == "deployment.apps/nginx created"
    kubectl.run("rollout", "status", "deploy/nginx", "--timeout=60s")
    wide = kubectl.out("get", "po", "-o", "wide")
    assert shape(wide)[0] == golden("get-po-wide.txt")[0]
    rows = shape(wide)[1:]
    assert len(rows) == 3 and all(r[2] == "Running" for r in rows)
    assert sorted(r[6] for r in rows) == ["demo-worker", "demo-worker2", "demo-worker3"]
    assert (
        kubectl.out("scale", "deploy", "nginx", "--replicas", "6").strip()
        == "deployment.apps/nginx scaled"
    )
    kubectl.run(
        "wait", "--for=jsonpath={.status.updatedReplicas}=6", "deploy/nginx", "--timeout=60s"
    )
    kubectl.run(
        "wait",
        "--for=condition=PodScheduled=False",
        "pod",
        "--field-selector=status.phase=Pending",
        "--timeout=60s",
    )
    rows = shape(kubectl.out("get", "po"))
    assert rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    statuses = sorted(r[2] for r in rows[1:])
    assert statuses == ["Pending"] * 3 + ["Running"] * 3
    pending = kubectl.out(
        "get", "po", "--field-selector=status.phase=Pending", "-o", "name"
    ).split()[0]
    described = kubectl.out("describe", pending)
    events = described[described.index("Events:") :]
    assert shape(events)[1] == ["Type", "Reason", "Age", "From", "Message"]
    line = next(r for r in shape(events) if "FailedScheduling" in r)
    assert line[0] == "Warning" and line[3] == "default-scheduler"
    assert line[4] == (
        "0/4 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 3 node(s) didn't match pod anti-affinity "
        "rules. preemption: 0/4 nodes are available: 1 Preemption is not helpful for scheduling, "
        "3 No preemption victims found for incoming pod."
    )
    ev = shape(kubectl.out("get", "events", "--field-selector=reason=FailedScheduling"))
    assert ev[0] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert len(ev) - 1 == 3  # one aggregated Event per Pending pod


def test_typo_rejected_with_strict_validation(kubectl: Kubectl, tmp_path: Path) -> None:
    text = (FIXTURES / "nginx.yaml").read_text()
    (tmp_path / "typo.yaml").write_text(
        text.replace("requiredDuringSchedulingIgnoredDuringExecution", "requiredDuringScheduling")
    )
    proc = kubectl.run("apply", "-f", "typo.yaml", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        'Error from server (BadRequest): error when creating "typo.yaml": Deployment in version '
        '"v1" cannot be handled as a Deployment: strict decoding error: unknown field '
        '"spec.template.spec.affinity.podAntiAffinity.requiredDuringScheduling"'
    )
    (tmp_path / "str.yaml").write_text(text.replace("replicas: 3", 'replicas: "3"'))
    proc = kubectl.run("apply", "-f", "str.yaml", check=False)
    assert proc.stderr.strip().endswith(
        "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"
    )
    (tmp_path / "neg.yaml").write_text(text.replace("replicas: 3", "replicas: -1"))
    proc = kubectl.run("apply", "-f", "neg.yaml", check=False)
    assert proc.stderr.strip() == (
        'The Deployment "nginx" is invalid: spec.replicas: Invalid value: -1: must be greater '
        "than or equal to 0"
    )
    assert "No resources found" in kubectl.run("get", "deploy").stderr


def test_dry_run_server_creates_nothing(kubectl: Kubectl, tmp_path: Path) -> None:
    (tmp_path / "nginx.yaml").write_text((FIXTURES / "nginx.yaml").read_text())
    out = kubectl.out("apply", "-f", "nginx.yaml", "--dry-run=server")
    assert out.strip() == "deployment.apps/nginx created (server dry run)"
    assert "No resources found" in kubectl.run("get", "deploy,po").stderr


def test_tls_with_generated_ca(tmp_path: Path) -> None:
    """--tls (always on off loopback): kubectl verifies the server against the embedded CA."""
    from tests.cluster.conftest import start_cluster, stop_cluster
    from tests.peers import require

    binary = require("kubectl", "apt-get install -y kubectl")
    proc, kubeconfig = start_cluster(tmp_path, "--tls", "--nodes", str(FIXTURES / "nodes.yaml"))
    try:
        k = Kubectl(binary, kubeconfig, tmp_path)
        assert "https://127.0.0.1:" in (tmp_path / "kubeconfig").read_text()
        assert shape(k.out("get", "nodes")) == golden("get-nodes.txt")
        assert (
            (tmp_path / "fleetkit-cluster-ca.crt").read_text().startswith("-----BEGIN CERTIFICATE")
        )
    finally:
        stop_cluster(proc)


def test_ui_page_shows_zones_pods_and_pending(kubectl: Kubectl, tmp_path: Path) -> None:
    """GET /ui: nodes by zone with fill bars, pods by workload, Pending pods with reasons
    (checked by structure: the elements present, not pixels)."""
    import urllib.request
    from html.parser import HTMLParser

    import yaml

    (tmp_path / "nginx.yaml").write_text((FIXTURES / "nginx.yaml").read_text())
    kubectl.run("apply", "-f", "nginx.yaml")
    kubectl.run("rollout", "status", "deploy/nginx", "--timeout=60s")
    kubectl.run("scale", "deploy/nginx", "--replicas=4")
    kubectl.run(
        "wait",
        "--for=condition=PodScheduled=False",
        "pod",
        "--field-selector=status.phase=Pending",
        "--timeout=60s",
    )
    server = yaml.safe_load(Path(kubectl.kubeconfig).read_text())["clusters"][0]["cluster"][
        "server"
    ]
    with urllib.request.urlopen(server + "/ui", timeout=30) as resp:
        assert resp.headers["Content-Type"].startswith("text/html")
        page = resp.read().decode()

    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.attrs: list[dict[str, str | None]] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.attrs.append(dict(attrs))

    c = Collect()
    c.feed(page)
    nodes = [a["data-node"] for a in c.attrs if "data-node" in a]
    assert sorted(nodes) == ["demo-control-plane", "demo-worker", "demo-worker2", "demo-worker3"]
    bars = [a for a in c.attrs if "data-resource" in a]
    assert len(bars) == 12 and {a["data-resource"] for a in bars} == {"cpu", "memory", "pods"}
    placed = [a for a in c.attrs if "data-pod" in a]
    assert len(placed) == 3 and {a["data-workload"] for a in placed} == {"Deployment/nginx"}
    pending = [a for a in c.attrs if "data-pending" in a]
    assert len(pending) == 1
    assert "didn&#x27;t match pod anti-affinity rules" in page
