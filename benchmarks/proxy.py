"""fleetkit's pull-through cache vs pulling straight from its upstream, distribution 2.8.2.

Shapes (one JSON line each, median of --runs; each run alternates the three pulls so load
drift hits them alike):
  proxy_cold_pull  skopeo pull through a fresh fleetkit proxy (empty cache: every byte comes
                   from the upstream while it is streamed and stored) vs skopeo pulling the
                   same image straight from the upstream distribution. Target: <= 1.1x time.
  (server_cpu_s: the proxy's CPU seconds for the pull; peer_server_cpu_s: distribution's
  for the direct one; a cold pull also costs the upstream its direct-pull CPU.)
  proxy_warm_pull  the same pull again through that proxy (served from its cache; the tag is
                   revalidated with one HEAD upstream, --proxy-ttl 0) vs the direct pull from
                   distribution. Target: >= 1.0x (no slower).

The image is benchmarks/registry.py's: 3 layers of random gzip'd tars, --size-mib in total.

Usage: .venv/bin/python benchmarks/proxy.py [--runs 3] [--size-mib 60 | --large]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from registry import Server, build_layout, emit, timed  # benchmarks/registry.py


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=60)
    ap.add_argument("--large", action="store_true", help="300 MiB image (the issue's shape)")
    args = ap.parse_args()
    size = 300 if args.large else args.size_mib
    for tool in ("skopeo", "docker-registry"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is missing (apt-get install -y {tool})", file=sys.stderr)
            return 1
    work = Path(tempfile.mkdtemp(prefix="fleetkit-bench-proxy-"))
    upstream = None
    try:
        src = build_layout(work / "image", size)
        upstream = Server("distribution", work)
        subprocess.run(
            [
                "skopeo",
                "copy",
                "--dest-tls-verify=false",
                src,
                f"docker://{upstream.host}/bench/app:v1",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=600,
        )
        times: dict[str, list[float]] = {"direct": [], "cold": [], "warm": []}
        cpu: dict[str, list[float]] = {"direct": [], "cold": [], "warm": []}

        def pull(server: Server, out: Path, shape: str) -> None:
            ref = f"docker://{server.host}/bench/app:v1"
            before = server.cpu_s()
            took = timed(["skopeo", "copy", "--src-tls-verify=false", ref, f"oci:{out}:v1"])
            cpu[shape].append(server.cpu_s() - before)
            times[shape].append(took)
            shutil.rmtree(out, ignore_errors=True)

        rss: list[float] = []
        for run in range(args.runs):
            pull(upstream, work / f"direct-{run}", "direct")
            # a fresh cache each run (no --proxy-ttl: 0, every pull revalidates the tag)
            proxy = Server(
                "fleetkit", work, fleetkit_args=("--proxy-remote", f"http://{upstream.host}")
            )
            try:
                pull(proxy, work / f"cold-{run}", "cold")
                pull(proxy, work / f"warm-{run}", "warm")
                rss.append(proxy.peak_rss_mib())
            finally:
                proxy.stop()
        load = os.getloadavg()
        direct = statistics.median(times["direct"])
        for shape in ("cold", "warm"):
            emit(
                f"proxy_{shape}_pull_{size}MiB",
                statistics.median(times[shape]),
                direct,
                "s",
                runs=args.runs,
                server_cpu_s=round(statistics.median(cpu[shape]), 3),
                proxy_peak_rss_MiB=round(max(rss), 1),
                peer_server_cpu_s=round(statistics.median(cpu["direct"]), 3),
                peer_is="skopeo pull straight from distribution 2.8.2 (the upstream)",
                loadavg=[round(x, 2) for x in load],
            )
    finally:
        if upstream is not None:
            upstream.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
