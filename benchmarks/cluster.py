"""Benchmark ``fleetkit cluster serve`` through the API with real kubectl.

Shapes (issue 13): ``kubectl apply`` of a Deployment of N replicas with hostname anti-affinity on
N nodes: time until every pod is bound and Running (pods/s; the recorded kube-scheduler v1.32.2
figure for this shape on this machine kind is 64 pods/s); ``kubectl get pods -A`` time; the
server's RSS. Prints one JSON line. Not a test.

usage: python benchmarks/cluster.py [--nodes 5000] [--replicas 5000] [--bound-pods 45000]
  --bound-pods N: also start with N pods already bound (round-robin over the nodes), for the
  `kubectl get pods -A` and RSS figures at scale (issue 13: 50,000 pods < 2 s, < 1.5 GiB)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

PEER_PODS_PER_S = 64.0
PEER_SOURCE = "kube-scheduler v1.32.2 scheduler_perf anti-affinity shape, recorded in issue 4"


def nodes(n: int) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"node-{i}",
                "labels": {
                    "kubernetes.io/hostname": f"node-{i}",
                    "topology.kubernetes.io/zone": f"zone{i % 3 + 1}",
                },
            },
            "status": {
                "capacity": {"cpu": "4", "memory": "32Gi", "pods": "110"},
                "allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
        for i in range(n)
    ]


def bound_pods(n: int, n_nodes: int) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"filler-{i}",
                "namespace": "default",
                "labels": {"app": "filler"},
            },
            "spec": {
                "nodeName": f"node-{i % n_nodes}",
                "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
            },
            "status": {"phase": "Running"},
        }
        for i in range(n)
    ]


def deployment(replicas: int) -> dict[str, Any]:
    term = {
        "labelSelector": {"matchLabels": {"app": "bench"}},
        "topologyKey": "kubernetes.io/hostname",
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "bench"}},
            "template": {
                "metadata": {"labels": {"app": "bench"}},
                "spec": {
                    "affinity": {
                        "podAntiAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": [term]
                        }
                    },
                    "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                },
            },
        },
    }


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_idle(pid: int, window_s: float = 0.5, busy_s: float = 0.05) -> None:
    """Until the server spends under ``busy_s`` of CPU in ``window_s`` (it renders Table rows
    while idle after loading; the apply's CPU figure is then the apply's alone)."""
    while True:
        before = _cpu_s(pid)
        time.sleep(window_s)
        if _cpu_s(pid) - before < busy_s:
            return


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--replicas", type=int, default=5000)
    ap.add_argument("--bound-pods", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        nf = os.path.join(tmp, "nodes.yaml")
        with open(nf, "w") as fh:
            items = nodes(args.nodes) + bound_pods(args.bound_pods, args.nodes)
            json.dump({"apiVersion": "v1", "kind": "List", "items": items}, fh)
        df = os.path.join(tmp, "deploy.yaml")
        with open(df, "w") as fh:
            yaml.safe_dump(deployment(args.replicas), fh)
        kc = os.path.join(tmp, "kubeconfig")
        t0 = time.monotonic()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fleetkit",
                "cluster",
                "serve",
                "--nodes",
                nf,
                "--listen",
                "127.0.0.1:0",
                "--kubeconfig-out",
                kc,
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert server.stderr is not None
        while "serving" not in (line := server.stderr.readline()):
            if not line:
                raise SystemExit("server did not start")
        startup_s = time.monotonic() - t0
        _wait_idle(server.pid)
        env = {**os.environ, "KUBECONFIG": kc}
        try:
            apply_cpu0 = _cpu_s(server.pid)
            t0 = time.monotonic()
            subprocess.run(["kubectl", "apply", "-f", df], check=True, env=env, capture_output=True)
            subprocess.run(
                [
                    "kubectl",
                    "wait",
                    f"--for=jsonpath={{.status.readyReplicas}}={args.replicas}",
                    "deploy/bench",
                    "--timeout=1800s",
                ],
                check=True,
                env=env,
                capture_output=True,
            )
            bound_s = time.monotonic() - t0
            bound_cpu_s = _cpu_s(server.pid) - apply_cpu0
            server_cpu0 = _cpu_s(server.pid)
            kubectl_cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.monotonic()
            out = subprocess.run(
                ["kubectl", "get", "pods", "-A"],
                check=True,
                env=env,
                capture_output=True,
                text=True,
            ).stdout
            get_s = time.monotonic() - t0
            kubectl_cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            get_server_cpu_s = _cpu_s(server.pid) - server_cpu0
            get_kubectl_cpu_s = (kubectl_cpu1.ru_utime - kubectl_cpu0.ru_utime) + (
                kubectl_cpu1.ru_stime - kubectl_cpu0.ru_stime
            )
            rss = _rss_kib(server.pid)
            # a second get a moment later: every row rendered (only AGE is per request)
            _wait_idle(server.pid)
            server_cpu0 = _cpu_s(server.pid)
            t0 = time.monotonic()
            subprocess.run(
                ["kubectl", "get", "pods", "-A"], check=True, env=env, capture_output=True
            )
            again_s = time.monotonic() - t0
            again_server_cpu_s = _cpu_s(server.pid) - server_cpu0
        finally:
            server.terminate()
            server.wait(timeout=60)
    pods_per_s = args.replicas / bound_s
    print(
        json.dumps(
            {
                "bench": "cluster_apply_anti_affinity",
                "nodes": args.nodes,
                "replicas": args.replicas,
                "startup_s": round(startup_s, 2),
                "bound_s": round(bound_s, 2),
                "bound_server_cpu_s": round(bound_cpu_s, 2),
                "pods_per_server_cpu_s": round(args.replicas / max(bound_cpu_s, 1e-9), 1),
                "ours": round(pods_per_s, 1),
                "peer": PEER_PODS_PER_S,
                "peer_source": PEER_SOURCE,
                "unit": "pods/s",
                "speedup": round(pods_per_s / PEER_PODS_PER_S, 2),
                "get_pods_all_s": round(get_s, 2),
                "get_pods_all_server_cpu_s": round(get_server_cpu_s, 2),
                "get_pods_all_kubectl_cpu_s": round(get_kubectl_cpu_s, 2),
                "get_pods_all_again_s": round(again_s, 2),
                "get_pods_all_again_server_cpu_s": round(again_server_cpu_s, 2),
                "loadavg": os.getloadavg()[0],
                "get_pods_lines": len(out.splitlines()) - 1,
                "bound_pods_at_start": args.bound_pods,
                "server_rss_mib": round(rss / 1024, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
