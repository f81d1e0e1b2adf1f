"""Benchmark fleetkit schedule on kube-scheduler's scheduler_perf shapes (5000 nodes, 3 zones).

The real kube-scheduler cannot run here (no API server/etcd), so "peer" is the v1.32.2 figure
recorded on this machine kind in issue 4 ("peer_source" says so). Prints one JSON line per shape:
{"bench", "ours", "peer", "unit": "pods/s", "speedup": ours/peer, ...}; throughput, so bigger
is better and speedup = ours / peer. Median of --runs runs. The shapes run the scheduler of the
cluster's machinery in process (as ``fleetkit schedule`` does); ``--bulk`` (alias ``--bulk-cli``) runs the command on
100,000 replicas of one Deployment in a child process (wall, CPU seconds, max RSS).

usage: python benchmarks/schedule.py [--nodes 5000] [--runs 3] [--shapes a,b] [--scale 1.0]
       [--bulk]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from typing import Any

from fleetkit.cluster.offline import simulate

ZONE = "topology.kubernetes.io/zone"
PEER = {"plain": 464.0, "anti_affinity": 64.0, "zone_spread": 82.0, "preferred_affinity": 135.0}
PEER_SOURCE = "kube-scheduler v1.32.2 scheduler_perf, recorded in issue 4 (not runnable here)"


def nodes(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        alloc = {"cpu": "4", "memory": "32Gi", "pods": "110"}
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": f"node-{i}",
                    "labels": {"kubernetes.io/hostname": f"node-{i}", ZONE: f"zone{i % 3 + 1}"},
                },
                "status": {"capacity": alloc, "allocatable": alloc},
            }
        )
    return out


def pods(prefix: str, n: int, shape: str) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        spec: dict[str, Any] = {
            "containers": [
                {
                    "name": "pause",
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}},
                }
            ]
        }
        labels = {"app": "bench", "color": "green"}
        if shape == "anti_affinity":
            spec["affinity"] = {
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "labelSelector": {"matchLabels": {"color": "green"}},
                            "topologyKey": "kubernetes.io/hostname",
                        }
                    ]
                }
            }
        elif shape == "zone_spread":
            spec["topologySpreadConstraints"] = [
                {
                    "maxSkew": 1,
                    "topologyKey": ZONE,
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": {"matchLabels": {"color": "green"}},
                }
            ]
        elif shape == "preferred_affinity":
            spec["affinity"] = {
                "podAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 1,
                            "podAffinityTerm": {
                                "labelSelector": {"matchLabels": {"color": "green"}},
                                "topologyKey": "kubernetes.io/hostname",
                            },
                        }
                    ]
                }
            }
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"{prefix}-{i}", "labels": labels},
                "spec": spec,
            }
        )
    return out


# 100,000 plain pods on 5,000 nodes: the memory target (< 2 GiB RSS); no peer figure recorded
BULK = ("bulk_100k", 100_000)

SHAPES = {
    # shape: (init pods, measured pods) as in scheduler_perf / issue 4
    "plain": (1000, 1000),
    "anti_affinity": (1000, 2000),
    "zone_spread": (1000, 1000),
    "preferred_affinity": (1000, 1000),
}


def run_once(shape: str, n_nodes: int, scale: float) -> tuple[float, int]:
    """The scheduler of the cluster's machinery (binder, controllers, kubelet) on a settled
    cluster: the measured pods are stored at once (defaulted, without per-request admission, as
    scheduler_perf creates them before it measures) and the control plane settles."""
    from fleetkit.scheduler import BUILTIN_PRIORITY_CLASSES, default_pod

    init, measured = (max(1, int(x * scale)) for x in SHAPES[shape])
    out = simulate([], objects=nodes(n_nodes) + pods("init", init, shape), seed=1)
    classes = {k: {"metadata": {"name": k}, **v} for k, v in BUILTIN_PRIORITY_CLASSES.items()}
    batch = pods("measured", measured, shape)
    for obj in batch:
        default_pod(obj, classes)
        obj["metadata"]["uid"] = f"measured-{obj['metadata']['name']}"
    t0 = time.perf_counter()
    for obj in batch:
        out.state.store.create("pods", obj)
    out.cp.settle()
    dt = time.perf_counter() - t0
    placed = sum(
        1
        for p in out.state.store.iter("pods")
        if p["metadata"]["name"].startswith("measured") and p["spec"].get("nodeName")
    )
    return measured / dt, placed


def bulk_cli(n_nodes: int, replicas: int) -> None:
    """The command line end to end, in a child process (its own RSS)."""
    import os
    import subprocess
    import tempfile

    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bulk"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "bulk"}},
            "template": {
                "metadata": {"labels": {"app": "bulk"}},
                "spec": pods("x", 1, "plain")[0]["spec"],
            },
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        nf, df = os.path.join(tmp, "nodes.json"), os.path.join(tmp, "deploy.json")
        with open(nf, "w") as fh:
            json.dump({"apiVersion": "v1", "kind": "List", "items": nodes(n_nodes)}, fh)
        with open(df, "w") as fh:
            json.dump(deploy, fh)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "fleetkit", "schedule", "-f", nf, "-f", df, "-o", "json"],
            check=True,
            capture_output=True,
        ).stdout
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    items = json.loads(out)["items"]
    running = sum(1 for p in items if p["status"].get("phase") == "Running")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(
        json.dumps(
            {
                "bench": "schedule/cli_deployment_100k",
                "nodes": n_nodes,
                "replicas": replicas,
                "running": running,
                "wall_s": round(wall, 1),
                "cpu_s": round(cpu, 1),
                "max_rss_mib": after.ru_maxrss // 1024,
                "loadavg": os.getloadavg()[0],
                "target": "< 20 s, < 1024 MiB",
            }
        ),
        flush=True,
    )


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply pod counts (quick runs)")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument(
        "--bulk",
        "--bulk-cli",
        action="store_true",
        help="run `fleetkit schedule` (the cluster's thin client) on 100,000 replicas of one "
        "Deployment: wall and CPU seconds, max RSS, load average",
    )
    args = ap.parse_args(argv)
    for shape in args.shapes.split(","):
        rates = []
        placed = 0
        for _ in range(args.runs):
            rate, placed = run_once(shape, args.nodes, args.scale)
            rates.append(rate)
        ours = statistics.median(rates)
        init, measured = (max(1, int(x * args.scale)) for x in SHAPES[shape])
        print(
            json.dumps(
                {
                    "bench": f"schedule/{shape}",
                    "ours": round(ours, 1),
                    "peer": PEER[shape],
                    "unit": "pods/s",
                    "speedup": round(ours / PEER[shape], 2),
                    "peer_source": PEER_SOURCE,
                    "nodes": args.nodes,
                    "init_pods": init,
                    "measured_pods": measured,
                    "placed": placed,
                    "runs": args.runs,
                    "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                }
            ),
            flush=True,
        )
    if args.bulk:
        bulk_cli(args.nodes, int(BULK[1] * args.scale))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
