"""kubectl's maintenance and change verbs against ``fleetkit cluster serve`` (real kubectl)."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
import urllib.parse
from pathlib import Path

from tests.cluster.conftest import FIXTURES, Kubectl


def _copy(tmp_path: Path, *names: str) -> None:
    for n in names:
        (tmp_path / n).write_text((FIXTURES / n).read_text())


def _ready(kubectl: Kubectl, deploy: str) -> None:
    kubectl.run("rollout", "status", f"deploy/{deploy}", "--timeout=60s")


def test_cordon_drain_respects_pdb(kubectl: Kubectl, tmp_path: Path) -> None:
    _copy(tmp_path, "nginx.yaml", "pdb.yaml")
    kubectl.run("apply", "-f", "nginx.yaml", "-f", "pdb.yaml")
    _ready(kubectl, "nginx")
    kubectl.run("wait", "--for=jsonpath={.status.currentHealthy}=3", "pdb/nginx", "--timeout=60s")
    pdb = kubectl.out("get", "pdb").splitlines()
    assert pdb[0].split() == [
        "NAME",
        "MIN",
        "AVAILABLE",
        "MAX",
        "UNAVAILABLE",
        "ALLOWED",
        "DISRUPTIONS",
        "AGE",
    ]
    assert pdb[1].split()[:4] == ["nginx", "3", "N/A", "0"]
    assert kubectl.out("cordon", "demo-worker").strip() == "node/demo-worker cordoned"
    nodes = {ln.split()[0]: ln.split()[1] for ln in kubectl.out("get", "nodes").splitlines()[1:]}
    assert nodes["demo-worker"] == "Ready,SchedulingDisabled"
    proc = kubectl.run("drain", "demo-worker", "--ignore-daemonsets", "--timeout=3s", check=False)
    assert proc.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget." in proc.stderr
    assert (
        len(
            kubectl.out(
                "get", "po", "--field-selector=spec.nodeName=demo-worker", "-o", "name"
            ).split()
        )
        == 1
    )
    kubectl.run("delete", "pdb", "nginx")
    out = kubectl.out("drain", "demo-worker", "--ignore-daemonsets", "--timeout=30s")
    assert "evicted" in out and out.strip().endswith("node/demo-worker drained")
    kubectl.run(
        "wait",
        "--for=condition=PodScheduled=False",
        "pod",
        "--field-selector=status.phase=Pending",
        "--timeout=60s",
    )
    assert (
        kubectl.out("get", "po", "--field-selector=spec.nodeName=demo-worker", "-o", "name") == ""
    )
    assert kubectl.out("uncordon", "demo-worker").strip() == "node/demo-worker uncordoned"
    kubectl.run("wait", "--for=jsonpath={.status.readyReplicas}=3", "deploy/nginx", "--timeout=60s")


def test_taint_and_label(kubectl: Kubectl) -> None:
    assert (
        kubectl.out("taint", "nodes", "demo-worker3", "dedicated=gpu:NoSchedule").strip()
        == "node/demo-worker3 tainted"
    )
    node = json.loads(kubectl.out("get", "node", "demo-worker3", "-o", "json"))
    assert {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"} in node["spec"]["taints"]
    assert (
        kubectl.out("label", "nodes", "demo-worker2", "disk=ssd").strip()
        == "node/demo-worker2 labeled"
    )
    assert (
        kubectl.out("get", "nodes", "-l", "disk=ssd", "-o", "name").strip() == "node/demo-worker2"
    )
    kubectl.run("taint", "nodes", "demo-worker3", "dedicated-")
    node = json.loads(kubectl.out("get", "node", "demo-worker3", "-o", "json"))
    assert not node["spec"].get("taints")
    kubectl.run("label", "nodes", "demo-worker2", "disk-")
    assert "No resources found" in kubectl.run("get", "nodes", "-l", "disk=ssd").stderr


def test_rollout_status_history_undo(kubectl: Kubectl, tmp_path: Path) -> None:
    _copy(tmp_path, "web.yaml")
    kubectl.run("apply", "-f", "web.yaml")
    _ready(kubectl, "web")
    kubectl.run("set", "image", "deploy/web", "web=nginx:1.28")
    out = kubectl.out("rollout", "status", "deploy/web", "--timeout=60s")
    assert out.strip().endswith('deployment "web" successfully rolled out')
    history = kubectl.out("rollout", "history", "deploy/web").split()
    assert history[:4] == ["deployment.apps/web", "REVISION", "CHANGE-CAUSE", "1"]
    assert kubectl.out("rollout", "undo", "deploy/web").strip() == "deployment.apps/web rolled back"
    _ready(kubectl, "web")
    images = kubectl.out(
        "get", "po", "-l", "app=web", "-o", "jsonpath={.items[*].spec.containers[0].image}"
    )
    assert images.split() == ["nginx:1.27", "nginx:1.27"]
    rs = kubectl.out("get", "rs", "-l", "app=web", "-o", "name").split()
    assert len(rs) == 2  # the undo went back to revision 1's ReplicaSet


def test_get_watch_sees_scale_up(kubectl: Kubectl, tmp_path: Path) -> None:
    _copy(tmp_path, "web.yaml")
    kubectl.run("apply", "-f", "web.yaml")
    _ready(kubectl, "web")
    env = {**os.environ, "KUBECONFIG": kubectl.kubeconfig, "HOME": str(tmp_path)}
    watcher = subprocess.Popen(
        [kubectl.binary, "get", "po", "-l", "app=web", "-w"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        assert watcher.stdout is not None
        fd = watcher.stdout.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        buf = b""
        lines: list[str] = []
        deadline = time.monotonic() + 60
        scaled = False
        while time.monotonic() < deadline:
            if not scaled and len(lines) >= 3:  # header + the two pods
                kubectl.run("scale", "deploy/web", "--replicas=3")
                scaled = True
            if not sel.select(timeout=1):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            *done, buf = buf.split(b"\n")
            lines += [d.decode() for d in done]
            names = {ln.split()[0] for ln in lines[1:] if ln.strip()}
            if len(names) == 3 and any("Running" in ln for ln in lines[3:]):
                break
        assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        assert len({ln.split()[0] for ln in lines[1:] if ln.strip()}) == 3, lines
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)


def test_server_side_apply_diff_and_delete(kubectl: Kubectl, tmp_path: Path) -> None:
    _copy(tmp_path, "web.yaml")
    out = kubectl.out("apply", "--server-side", "-f", "web.yaml")
    assert out.strip() == "deployment.apps/web serverside-applied"
    (tmp_path / "web3.yaml").write_text(
        (FIXTURES / "web.yaml").read_text().replace("replicas: 2", "replicas: 3")
    )
    proc = kubectl.run("diff", "-f", "web3.yaml", check=False)
    assert proc.returncode == 1, proc.stderr
    assert "-  replicas: 2" in proc.stdout and "+  replicas: 3" in proc.stdout
    kubectl.run("apply", "--server-side", "-f", "web3.yaml")
    assert kubectl.run("diff", "-f", "web3.yaml", check=False).returncode == 0
    (tmp_path / "web4.yaml").write_text(
        (FIXTURES / "web.yaml").read_text().replace("replicas: 2", "replicas: 4")
    )
    proc = kubectl.run(
        "apply", "--server-side", "--field-manager=other", "-f", "web4.yaml", check=False
    )
    assert proc.returncode != 0 and "conflict" in proc.stderr.lower()
    kubectl.run(
        "apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "web4.yaml"
    )
    kubectl.run("wait", "--for=jsonpath={.status.readyReplicas}=4", "deploy/web", "--timeout=60s")
    assert kubectl.out("delete", "deploy", "web").strip() == 'deployment.apps "web" deleted'
    assert "No resources found" in kubectl.run("get", "deploy,rs,po").stderr


def test_explain_prints_field_docs(kubectl: Kubectl) -> None:
    out = kubectl.out("explain", "pod.spec.affinity.podAntiAffinity")
    assert "KIND:       Pod" in out and "VERSION:    v1" in out
    assert "requiredDuringSchedulingIgnoredDuringExecution" in out
    out = kubectl.out("explain", "deployment.spec.replicas")
    assert "Number of desired pods" in out


def test_kustomize_overlay_and_helm_rendered_chart(kubectl: Kubectl, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(FIXTURES / "kustomize", tmp_path / "kustomize")
    out = kubectl.out("apply", "-k", "kustomize/overlays/prod")
    assert out.strip() == "deployment.apps/prod-web created"
    kubectl.run("rollout", "status", "deploy/prod-web", "--timeout=60s")
    names = kubectl.out("get", "po", "-l", "env=prod", "-o", "name").split()
    assert len(names) == 3
    _copy(tmp_path, "helm-rendered.yaml")
    out = kubectl.out("apply", "-f", "helm-rendered.yaml").split("\n")
    assert out[:4] == [
        "serviceaccount/demo-web created",
        "configmap/demo-web created",
        "service/demo-web created",
        "deployment.apps/demo-web created",
    ]
    kubectl.run("rollout", "status", "deploy/demo-web", "--timeout=60s")
    nodes = kubectl.out(
        "get",
        "po",
        "-l",
        "app.kubernetes.io/instance=demo",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ).split()
    assert len(nodes) == 2 and len(set(nodes)) == 2  # maxSkew 1 over hostnames


def test_from_kubeconfig_imports_a_live_cluster(kubectl: Kubectl, tmp_path: Path) -> None:
    """--from-kubeconfig reads another API server (here a fleetkit cluster) and diverges."""
    from tests.cluster.conftest import start_cluster, stop_cluster

    _copy(tmp_path, "nginx.yaml")
    kubectl.run("apply", "-f", "nginx.yaml")
    _ready(kubectl, "nginx")
    live = {
        ln.split()[0]: ln.split()[6]
        for ln in kubectl.out("get", "po", "-o", "wide").splitlines()[1:]
    }
    copy_dir = tmp_path / "copy"
    copy_dir.mkdir()
    proc, kc = start_cluster(
        copy_dir, "--from-kubeconfig", "fleetkit", "--kubeconfig", kubectl.kubeconfig
    )
    try:
        other = Kubectl(kubectl.binary, kc, copy_dir)
        copied = {
            ln.split()[0]: ln.split()[6]
            for ln in other.out("get", "po", "-o", "wide").splitlines()[1:]
        }
        assert copied == live  # the same pods on the same nodes, none duplicated
        other.run("scale", "deploy/nginx", "--replicas=4")
        other.run(
            "wait", "--for=jsonpath={.status.updatedReplicas}=4", "deploy/nginx", "--timeout=60s"
        )
        assert len(kubectl.out("get", "po", "-o", "name").split()) == 3  # the source is untouched
    finally:
        stop_cluster(proc)


def test_kubectl_create_generators_protobuf_bodies(kubectl: Kubectl) -> None:
    """kubectl's generators POST protobuf: the kinds they create are decoded."""
    assert kubectl.out("create", "ns", "team").strip() == "namespace/team created"
    kubectl.run("create", "cm", "cfg", "-n", "team", "--from-literal=a=b")
    kubectl.run("create", "secret", "generic", "pw", "-n", "team", "--from-literal=p=q")
    kubectl.run("create", "sa", "bot", "-n", "team")
    out = kubectl.out(
        "create",
        "deployment",
        "web",
        "-n",
        "team",
        "--image=nginx:1.27",
        "--replicas=2",
        "--port=80",
    )
    assert out.strip() == "deployment.apps/web created"
    kubectl.run("rollout", "status", "deploy/web", "-n", "team", "--timeout=60s")
    assert kubectl.out("get", "cm", "cfg", "-n", "team", "-o", "jsonpath={.data.a}") == "b"
    assert kubectl.out("get", "secret", "pw", "-n", "team", "-o", "jsonpath={.data.p}") == "cQ=="
    dep = json.loads(kubectl.out("get", "deploy", "web", "-n", "team", "-o", "json"))
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert (c["name"], c["image"], c["ports"]) == (
        "nginx",
        "nginx:1.27",
        [{"containerPort": 80, "protocol": "TCP"}],
    )
    assert dep["spec"]["replicas"] == 2
    kubectl.run("create", "job", "once", "-n", "team", "--image=busybox:1.36", "--", "echo", "hi")
    job = json.loads(kubectl.out("get", "job", "once", "-n", "team", "-o", "json"))
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["echo", "hi"]


def test_lists_are_served_in_chunks(kubectl: Kubectl, tmp_path: Path) -> None:
    # kubectl get reads lists 500 items a page (limit + continue); --chunk-size 2 makes the 5
    # pods three pages: every pod once, in the order of one unchunked list
    _copy(tmp_path, "nginx.yaml")
    kubectl.run("apply", "-f", "nginx.yaml")
    kubectl.run("scale", "deploy/nginx", "--replicas=5")
    kubectl.run("wait", "--for=jsonpath={.status.replicas}=5", "deploy/nginx", "--timeout=60s")
    whole = kubectl.out("get", "pods", "-A", "--chunk-size=0", "-o", "name").split()
    paged = kubectl.out("get", "pods", "-A", "--chunk-size=2", "-o", "name").split()
    assert len(whole) >= 5 and paged == whole
    # Table lists are served whole whatever the limit (kubectl would be rate limited per page)
    proc = kubectl.run("get", "pods", "-A", "--chunk-size=2", "-v=6")
    table = proc.stdout.splitlines()
    assert table[0].split()[:2] == ["NAMESPACE", "NAME"] and len(table) == len(whole) + 1
    assert "limit=2" in proc.stderr and "continue=" not in proc.stderr
    raw = json.loads(kubectl.out("get", "--raw", "/api/v1/pods?limit=2"))
    assert len(raw["items"]) == 2 and raw["metadata"]["remainingItemCount"] == len(whole) - 2
    token = urllib.parse.quote(raw["metadata"]["continue"], safe="")
    rest = json.loads(kubectl.out("get", "--raw", f"/api/v1/pods?limit=100&continue={token}"))
    assert "continue" not in rest["metadata"]
    names = [f"pod/{p['metadata']['name']}" for p in raw["items"] + rest["items"]]
    assert names == whole
