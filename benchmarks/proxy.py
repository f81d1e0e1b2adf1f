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

  proxy_floor_pull (--floor) the direct pull again, while a second process does the least a
                   cold cache must do for it: GET every blob of the image from the upstream,
                   write it to a spool file and sha256 it (a thread per blob, 1 MiB recv_into;
                   nothing sent on). Its time over the direct pull's is what that work alone
                   costs this machine's cores (work_cpu_s: that process's CPU seconds).

The image is benchmarks/registry.py's: 3 layers of random gzip'd tars, --size-mib in total.

Usage: .venv/bin/python benchmarks/proxy.py [--runs 3] [--size-mib 60 | --large] [--floor]
"""

from __future__ import annotations

import argparse
import hashlib
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
from pathlib import Path

from registry import Server, build_layout, emit, timed  # benchmarks/registry.py


def cache_work(host: str, name: str, spool: Path, digests: list[str]) -> None:
    """GET each blob from ``host``, write it to a file under ``spool`` and check its sha256."""

    def one(digest: str) -> None:
        sock = socket.create_connection(tuple(host.rsplit(":", 1)))  # type: ignore[arg-type]
        request = f"GET /v2/{name}/blobs/{digest} HTTP/1.1\r\nHost: {host}\r\n"
        sock.sendall((request + "Connection: close\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            got = sock.recv(65536)
            if not got:
                raise RuntimeError(f"{digest}: no response")
            head += got
        status, _, rest = head.partition(b"\r\n\r\n")
        if not status.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"{digest}: {status.splitlines()[0]!r}")
        fd = os.open(spool / digest.split(":", 1)[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        h = hashlib.sha256(rest)
        os.write(fd, rest)
        view = memoryview(bytearray(1 << 20))
        while n := sock.recv_into(view):
            os.write(fd, view[:n])
            h.update(view[:n])
        os.close(fd)
        sock.close()
        if "sha256:" + h.hexdigest() != digest:
            raise RuntimeError(f"{digest}: the bytes hash to sha256:{h.hexdigest()}")

    threads = [threading.Thread(target=one, args=(d,)) for d in digests]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def children_cpu_s() -> float:
    """User + system CPU seconds of this process's waited-for children so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> int:
    if sys.argv[1:2] == ["--cache-work"]:  # the --floor shape's second process
        host, name, spool, *digests = sys.argv[2:]
        cache_work(host, name, Path(spool), digests)
        return 0
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=60)
    ap.add_argument("--large", action="store_true", help="300 MiB image (the issue's shape)")
    ap.add_argument(
        "--floor",
        action="store_true",
        help="also the direct pull under a cold cache's least work (see proxy_floor_pull)",
    )
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
        shapes = ("direct", "cold", "warm", "floor")
        times: dict[str, list[float]] = {shape: [] for shape in shapes}
        cpu: dict[str, list[float]] = {shape: [] for shape in shapes}
        work_cpu: list[float] = []
        index = json.loads((work / "image" / "index.json").read_text())
        manifest_hex = index["manifests"][0]["digest"].split(":", 1)[1]
        manifest = json.loads((work / "image" / "blobs" / "sha256" / manifest_hex).read_text())
        digests = [manifest["config"]["digest"]] + [d["digest"] for d in manifest["layers"]]

        skopeo_cpu: dict[str, list[float]] = {shape: [] for shape in shapes}

        def pull(server: Server, out: Path, shape: str) -> None:
            ref = f"docker://{server.host}/bench/app:v1"
            before, children = server.cpu_s(), children_cpu_s()
            took = timed(["skopeo", "copy", "--src-tls-verify=false", ref, f"oci:{out}:v1"])
            skopeo_cpu[shape].append(children_cpu_s() - children)
            cpu[shape].append(server.cpu_s() - before)
            times[shape].append(took)
            shutil.rmtree(out, ignore_errors=True)

        def floor(run: int) -> None:
            spool = work / f"spool-{run}"
            spool.mkdir()
            before = children_cpu_s()
            helper = subprocess.Popen(
                [sys.executable, __file__, "--cache-work", upstream.host, "bench/app"]
                + [str(spool), *digests]
            )
            try:
                pull(upstream, work / f"floor-{run}", "floor")
            finally:
                if helper.wait(600) != 0:
                    raise RuntimeError("the cache work failed")
            # both children are reaped now: theirs minus skopeo's (timed() reaped it first)
            work_cpu.append(children_cpu_s() - before - skopeo_cpu["floor"][-1])
            shutil.rmtree(spool, ignore_errors=True)

        rss: list[float] = []
        for run in range(args.runs):
            pull(upstream, work / f"direct-{run}", "direct")
            if args.floor:
                floor(run)
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
        if args.floor:
            emit(
                f"proxy_floor_pull_{size}MiB",
                statistics.median(times["floor"]),
                direct,
                "s",
                runs=args.runs,
                work_cpu_s=round(statistics.median(work_cpu), 3),
                skopeo_cpu_s=round(statistics.median(skopeo_cpu["floor"]), 3),
                peer_skopeo_cpu_s=round(statistics.median(skopeo_cpu["direct"]), 3),
                peer_server_cpu_s=round(statistics.median(cpu["floor"]), 3),
                peer_is="the direct pull alone (ours: the same pull under the cache's least work)",
                loadavg=[round(x, 2) for x in load],
            )
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
                skopeo_cpu_s=round(statistics.median(skopeo_cpu[shape]), 3),
                peer_skopeo_cpu_s=round(statistics.median(skopeo_cpu["direct"]), 3),
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
