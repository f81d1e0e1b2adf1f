"""``fleetkit.k8s.drain_check`` against ``fleetkit cluster serve``: the README's rolling update
stops before the drain that would strand the nginx replicas; with room to spare it drains,
updates and uncordons every node; PodDisruptionBudgets and non-fleetkit API servers are
reported as such. The what-if runs on a copy: the live cluster is never changed by a check."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from fleetkit.playbook.connection import Connection
from fleetkit.playbook.modules import ModuleContext, get_module, resolve, validate
from tests.cluster.conftest import FIXTURES, Kubectl

MAINTENANCE = FIXTURES / "maintenance"
WORKERS = ("demo-worker", "demo-worker2", "demo-worker3")


def _play(kubectl: Kubectl) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HOME": str(kubectl.workdir),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": os.path.dirname(kubectl.binary) + os.pathsep + os.environ.get("PATH", ""),
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "fleetkit",
            "play",
            "-i",
            str(MAINTENANCE / "inventory.ini"),
            str(MAINTENANCE / "rolling.yml"),
            "-e",
            f"kubeconfig={kubectl.kubeconfig}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=kubectl.workdir,
    )


def _placement(kubectl: Kubectl) -> dict[str, str]:
    out = kubectl.out(
        "get",
        "po",
        "-l",
        "app=nginx",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.spec.nodeName}{'\\n'}{end}",
    )
    return dict(line.split("=", 1) for line in out.split())


def _cordoned(kubectl: Kubectl) -> str:
    return kubectl.out("get", "nodes", "-o", "jsonpath={.items[*].spec.unschedulable}")


def test_rolling_update_stops_before_stranding_nginx(kubectl: Kubectl) -> None:
    kubectl.out("apply", "-f", str(FIXTURES / "nginx.yaml"))
    kubectl.out("rollout", "status", "deploy/nginx", "--timeout=60s")
    before = _placement(kubectl)
    assert sorted(before.values()) == list(WORKERS)  # one nginx per worker

    proc = _play(kubectl)

    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = proc.stdout
    assert "TASK [would draining this node strand pods?]" in out
    assert "fatal: [demo-worker]: FAILED!" in out
    assert "draining demo-worker would leave 1 pod(s) unschedulable: default/nginx-" in out
    assert "(Deployment/nginx): 0/4 nodes are available" in out
    assert "didn't match pod anti-affinity rules" in out
    # the rollout stopped there: no drain ran, on this node or any later one
    assert "TASK [drain]" not in out
    assert "demo-worker2" not in out
    assert _cordoned(kubectl) == ""
    assert _placement(kubectl) == before  # the what-if ran on a copy


def test_rolling_update_with_room_drains_every_node(kubectl: Kubectl) -> None:
    kubectl.out("apply", "-f", str(FIXTURES / "nginx.yaml"))
    kubectl.out("scale", "deploy", "nginx", "--replicas", "2")
    kubectl.out("rollout", "status", "deploy/nginx", "--timeout=60s")

    proc = _play(kubectl)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    for node in WORKERS:
        assert f'ok: [{node}] => {{\n    "msg": "{node} updated"\n}}' in proc.stdout
    assert "every pod stays schedulable" not in proc.stdout  # a passing check prints ok only
    assert proc.stdout.count("TASK [drain]") == 3
    assert _cordoned(kubectl) == ""
    assert len(_placement(kubectl)) == 2


def _run_module(kubeconfig: str, node: str) -> dict[str, Any]:
    name = "fleetkit.k8s.drain_check"
    assert resolve(name) is not None
    module = get_module(name)
    assert module.controller
    args = validate(module, {"kubeconfig": kubeconfig})
    # a controller-side action: it never touches the host's connection
    ctx = ModuleContext(
        host=node, conn=cast(Connection, None), variables={"inventory_hostname": node}
    )
    return module.run(ctx, args)


def test_drain_check_reports_disruption_budget(kubectl: Kubectl) -> None:
    kubectl.out("apply", "-f", str(FIXTURES / "nginx.yaml"))
    kubectl.out("scale", "deploy", "nginx", "--replicas", "2")
    kubectl.out("rollout", "status", "deploy/nginx", "--timeout=60s")
    kubectl.out("apply", "-f", str(FIXTURES / "pdb.yaml"))  # minAvailable 3 of 2: no disruption
    node = _placement(kubectl)
    busy = sorted(node.values())[0]
    idle = next(n for n in WORKERS if n not in node.values())

    result = _run_module(kubectl.kubeconfig, busy)
    assert result["failed"] is True
    assert "violate a PodDisruptionBudget for 1 pod(s)" in result["msg"]
    assert "The disruption budget nginx needs 3 healthy pods and has 2 currently" in result["msg"]
    [refused] = result["disruption_budget_violations"]
    assert refused["workload"] == "Deployment/nginx" and node[refused["name"]] == busy

    ok = _run_module(kubectl.kubeconfig, idle)
    assert "failed" not in ok and ok["evicted"] == []

    missing = _run_module(kubectl.kubeconfig, "no-such-node")
    assert missing["failed"] is True and missing["msg"] == 'nodes "no-such-node" not found'


class _NotFleetkit(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = (
            b'{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}'
        )
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def plain_apiserver(tmp_path: Path) -> Iterator[str]:
    """A server that answers 404 to every path, as a real kube-apiserver does to the what-if."""
    srv = http.server.HTTPServer(("127.0.0.1", 0), _NotFleetkit)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    kubeconfig = tmp_path / "live.kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: live\n"
        f"clusters: [{{name: live, cluster: {{server: 'http://127.0.0.1:{srv.server_address[1]}'}}}}]\n"
        "contexts: [{name: live, context: {cluster: live, user: me}}]\n"
        "users: [{name: me, user: {token: s3cret-token}}]\n"
    )
    try:
        yield str(kubeconfig)
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=10)


def test_drain_check_against_a_live_apiserver_says_how(plain_apiserver: str) -> None:
    result = _run_module(plain_apiserver, "demo-worker")
    assert result["failed"] is True
    assert "has no what-if API" in result["msg"]
    assert "fleetkit cluster serve --from-kubeconfig" in result["msg"]
    assert "s3cret-token" not in repr(result)
