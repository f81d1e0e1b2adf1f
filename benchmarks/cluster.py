"""Benchmark ``fleetkit cluster serve`` through the API with real kubectl.

Shapes (issue 13): ``kubectl apply`` of a Deployment of N replicas with hostname anti-affinity on
N nodes: time until every pod is bound and Running (pods/s; the recorded kube-scheduler v1.32.2
figure for this shape on this machine kind is 64 pods/s); ``kubectl get pods -A`` time; the
server's RSS. Prints one JSON line. Not a test.

usage: python benchmarks/cluster.py [--nodes 5000] [--replicas 5000] [--bound-pods 45000]
       [--floor-runs 5]
  --bound-pods N: also start with N pods already bound (round-robin over the nodes), for the
  `kubectl get pods -A` and RSS figures at scale (issue 13: 50,000 pods < 2 s, < 1.5 GiB)
  --floor-runs N: kubectl's own floor for `kubectl get pods -A`: the responses kubectl got from
  the server, recorded through a proxy, served again byte for byte by a trivial static HTTP
  server; the same kubectl timed against both, alternating, N times each (fresh discovery cache
  every run). Also times the fixed part of the apply figure: `kubectl apply` + `kubectl wait` of
  a 1-replica Deployment on the same server.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
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


def _server_address(kc: str) -> str:
    """host:port of the kubeconfig's (plain HTTP) server."""
    with open(kc) as fh:
        url = str(yaml.safe_load(fh)["clusters"][0]["cluster"]["server"])
    return url.split("://", 1)[1].rstrip("/")


def _wait_idle(pid: int, window_s: float = 0.5, busy_s: float = 0.05) -> None:
    """Until the server spends under ``busy_s`` of CPU in ``window_s`` (it renders Table rows
    while idle after loading; the apply's CPU figure is then the apply's alone)."""
    while True:
        before = _cpu_s(pid)
        time.sleep(window_s)
        if _cpu_s(pid) - before < busy_s:
            return


Recorded = dict[str, tuple[int, list[tuple[str, str]], bytes]]
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "date"}


class _Quick(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 with Nagle off: headers and body are two writes, and a delayed ACK would
    otherwise hold every response back by 40 ms."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *a: Any) -> None:
        pass

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> http.server.HTTPServer:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def _recording_proxy(upstream: str, recorded: Recorded) -> http.server.HTTPServer:
    """A proxy to ``upstream`` (host:port) that keeps every GET's response by path."""

    class Proxy(_Quick):
        def do_GET(self) -> None:
            conn = http.client.HTTPConnection(upstream, timeout=600)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            conn.request("GET", self.path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP]
            recorded[self.path] = (resp.status, kept, body)
            conn.close()
            self._send(resp.status, kept, body)

    return _serve(Proxy)


def _static_server(recorded: Recorded) -> http.server.HTTPServer:
    """A trivial HTTP server answering each recorded path with the recorded bytes."""

    class Static(_Quick):
        def do_GET(self) -> None:
            status, headers, body = recorded.get(self.path) or (404, [], b"")
            self._send(status, headers, body)

    return _serve(Static)


def _kubectl(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, kubectl's CPU seconds (user + sys) and stdout of one kubectl run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run(
        ["kubectl", *argv], check=True, env=env, capture_output=True, text=True
    ).stdout
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out


def kubectl_floor(address: str, kc: str, tmp: str, runs: int, server_pid: int) -> dict[str, Any]:
    """``kubectl get pods -A`` against the server and against a static replay of its bytes."""
    recorded: Recorded = {}
    proxy = _recording_proxy(address, recorded)
    env = {**os.environ, "KUBECONFIG": kc}

    def get(port: int, tag: str) -> tuple[float, float, str]:
        cache = os.path.join(tmp, f"cache-{tag}")
        shutil.rmtree(cache, ignore_errors=True)  # discovery read every run, as the first get
        return _kubectl(
            ["get", "pods", "-A", f"--server=http://127.0.0.1:{port}", f"--cache-dir={cache}"],
            env,
        )

    _w, _c, via_proxy = get(proxy.server_address[1], "proxy")
    proxy.shutdown()
    static = _static_server(recorded)
    host, _, port = address.partition(":")
    ours: list[tuple[float, float, float]] = []
    floor: list[tuple[float, float]] = []
    same = True
    for _ in range(runs):
        cpu0 = _cpu_s(server_pid)
        w, c, out = get(int(port), "ours")
        ours.append((w, c, _cpu_s(server_pid) - cpu0))
        w, c, replayed = get(static.server_address[1], "static")
        floor.append((w, c))
        # AGE moves between the two runs; everything else must print the same
        same = same and len(out.splitlines()) == len(replayed.splitlines())
    static.shutdown()
    big = max(recorded.values(), key=lambda r: len(r[2]))
    return {
        "floor_runs": runs,
        "get_ours_wall_s": round(statistics.median(r[0] for r in ours), 2),
        "get_ours_kubectl_cpu_s": round(statistics.median(r[1] for r in ours), 2),
        "get_ours_server_cpu_s": round(statistics.median(r[2] for r in ours), 2),
        "get_static_wall_s": round(statistics.median(r[0] for r in floor), 2),
        "get_static_kubectl_cpu_s": round(statistics.median(r[1] for r in floor), 2),
        "get_requests": sorted(p.split("?")[0] for p in recorded),
        "table_bytes": len(big[2]),
        "same_lines": same and len(via_proxy.splitlines()) > 0,
    }


def fixed_part(kc: str, tmp: str, runs: int) -> dict[str, Any]:
    """The apply figure's fixed part: ``kubectl apply`` + ``kubectl wait`` of a 1-replica
    Deployment of the same shape (its own label) on the same server."""
    env = {**os.environ, "KUBECONFIG": kc}
    walls: list[float] = []
    for i in range(runs):
        dep = deployment(1)
        name = f"probe{i}"
        dep["metadata"]["name"] = name
        dep["spec"]["selector"]["matchLabels"]["app"] = name
        dep["spec"]["template"]["metadata"]["labels"]["app"] = name
        term = dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ][0]
        term["labelSelector"]["matchLabels"]["app"] = name
        path = os.path.join(tmp, f"{name}.yaml")
        with open(path, "w") as fh:
            yaml.safe_dump(dep, fh)
        t0 = time.monotonic()
        subprocess.run(["kubectl", "apply", "-f", path], check=True, env=env, capture_output=True)
        subprocess.run(
            [
                "kubectl",
                "wait",
                "--for=jsonpath={.status.readyReplicas}=1",
                f"deploy/{name}",
                "--timeout=600s",
            ],
            check=True,
            env=env,
            capture_output=True,
        )
        walls.append(time.monotonic() - t0)
    return {"fixed_apply_wait_s": round(statistics.median(walls), 2), "fixed_runs": runs}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--replicas", type=int, default=5000)
    ap.add_argument("--bound-pods", type=int, default=0)
    ap.add_argument("--floor-runs", type=int, default=0)
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
            extra: dict[str, Any] = {}
            if args.floor_runs:
                address = _server_address(kc)
                extra.update(kubectl_floor(address, kc, tmp, args.floor_runs, server.pid))
                extra.update(fixed_part(kc, tmp, args.floor_runs))
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
                **extra,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
