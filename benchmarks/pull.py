"""Benchmark: ``fleetkit pull`` vs ``skopeo copy`` from the same distribution registry.

One run starts docker-registry (distribution 2.8) on 127.0.0.1 with a temp root, pushes a
3-layer image of random data (gzip) with skopeo, then times, per shape, the median of --runs
fresh pulls by each tool (each into an empty destination) and reads each process's peak RSS
from ``wait4``. Prints one JSON line per shape:

  pull-oci             fleetkit pull IMAGE oci:DIR          vs  skopeo copy docker://IMAGE oci:DIR
  pull-oci-loaded      the same while a CPU hog (one busy process per core, started and
                       stopped by this script) keeps every core busy
  pull-docker-archive  fleetkit pull IMAGE docker-archive:F vs  skopeo copy ... docker-archive:F
  rss-vs-layer-size    fleetkit's peak RSS for the 3-layer image and for one --rss-layer-mib layer

Targets (issue 12): fleetkit's wall time <= 0.8x skopeo's (speedup >= 1.25) and its CPU time
<= skopeo's, quiet and loaded. Every line carries the 1-minute load average.

Usage: .venv/bin/python benchmarks/pull.py [--total-mib 60 | --big] [--runs 3] [--rss-layer-mib 256]
                                           [--only-oci]
Never part of the test run.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_CHUNK = 1 << 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _RandomReader:
    """A file-like source of ``size`` random bytes (for tarfile.addfile), constant memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return os.urandom(n)


class _HashingWriter:
    def __init__(self, path: Path) -> None:
        self.fh = path.open("wb")
        self.h = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.fh.write(data)
        self.h.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def _layer(blobs: Path, size: int, seed: int) -> tuple[dict[str, Any], str]:
    """Write a gzip'd tar holding ``size`` random bytes; returns (descriptor, diff_id)."""
    tmp = blobs / f"layer-{seed}.tmp"
    writer = _HashingWriter(tmp)
    diff = hashlib.sha256()

    class _DiffTee:
        def __init__(self, gz: gzip.GzipFile) -> None:
            self.gz = gz

        def write(self, data: bytes) -> int:
            diff.update(data)
            return self.gz.write(data)

        def flush(self) -> None:
            pass

    with gzip.GzipFile(fileobj=writer, mode="wb", compresslevel=1, mtime=0) as gz:  # type: ignore[arg-type]
        tee = _DiffTee(gz)
        with tarfile.open(fileobj=tee, mode="w|") as tar:  # type: ignore[call-overload]
            info = tarfile.TarInfo(f"data-{seed}.bin")
            info.size = size
            tar.addfile(info, _RandomReader(size))
    writer.close()
    digest = writer.h.hexdigest()
    tmp.rename(blobs / digest)
    desc = {
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": f"sha256:{digest}",
        "size": writer.size,
    }
    return desc, f"sha256:{diff.hexdigest()}"


def _put(blobs: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def build_layout(root: Path, layer_sizes: list[int]) -> None:
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    layers, diffs = [], []
    for i, size in enumerate(layer_sizes):
        desc, diff = _layer(blobs, size, i)
        layers.append(desc)
        diffs.append(diff)
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diffs}}
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                **_put(blobs, config),
            },
            "layers": layers,
        }
    ).encode()
    top = {"mediaType": OCI_MANIFEST, **_put(blobs, manifest)}
    top["annotations"] = {"org.opencontainers.image.ref.name": "bench"}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))


def start_registry(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / "config.yml"
    cfg.write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "error", "accesslog": {"disabled": True}},
                "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
                "http": {"addr": f"127.0.0.1:{port}"},
            }
        )
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    host = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://{host}/v2/", timeout=2)
            return proc, host
        except urllib.error.HTTPError:
            return proc, host
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("docker-registry did not start")


def timed(cmd: list[str]) -> tuple[float, float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS MiB, CPU seconds) of that one process.

    Peak RSS comes from GNU time (``/usr/bin/time -f %M``) when present: ``wait4`` on a child
    forked from this (larger) Python process would count the pre-exec copy of our own memory.
    """
    gnu_time = shutil.which("time") or (
        "/usr/bin/time" if os.path.exists("/usr/bin/time") else None
    )
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        argv = [gnu_time, "-f", "%M %U %S", "-o", report.name, *cmd] if gnu_time else cmd
        start = time.perf_counter()
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=1800)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(
                f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}"
            )
        if gnu_time:
            rss_kib, user, system = report.read().split()[-3:]
            return wall, int(rss_kib) / 1024, float(user) + float(system)
    return wall, float("nan"), float("nan")


class CpuHog:
    """One busy-looping process per core for the duration of a ``with`` block (stopped by PID)."""

    def __init__(self, processes: int | None = None) -> None:
        self.n = processes or os.cpu_count() or 2
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> CpuHog:
        for _ in range(self.n):
            self.procs.append(
                subprocess.Popen([sys.executable, "-c", "while True: pass"], close_fds=True)
            )
        time.sleep(1.0)  # let the hogs reach the run queue before the first timing
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
            p.wait(10)


def compare(
    name: str, ours: list[str], peer: list[str], dest: Path, runs: int, extra: dict[str, Any]
) -> dict[str, Any]:
    ours_t, peer_t, ours_rss, peer_rss = [], [], [], []
    ours_cpu: list[float] = []
    peer_cpu: list[float] = []
    for _ in range(runs):
        for cmd, times, rss, cpus in (
            (ours, ours_t, ours_rss, ours_cpu),
            (peer, peer_t, peer_rss, peer_cpu),
        ):
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            wall, peak, cpu = timed(cmd)
            times.append(wall)
            rss.append(peak)
            cpus.append(cpu)
    o, p = statistics.median(ours_t), statistics.median(peer_t)
    return {
        "bench": name,
        "ours": round(o, 3),
        "peer": round(p, 3),
        "unit": "s",
        "speedup": round(p / o, 3),
        "ours_peak_rss_mib": round(max(ours_rss), 1),
        "peer_peak_rss_mib": round(max(peer_rss), 1),
        "ours_cpu_s": round(statistics.median(ours_cpu), 3),
        "peer_cpu_s": round(statistics.median(peer_cpu), 3),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "runs": runs,
        "peer_name": "skopeo copy",
        "target_speedup_min": 1.25,
        "target_cpu": "ours_cpu_s <= peer_cpu_s",
        **extra,
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--total-mib", type=int, default=60, help="image size (3 equal layers)")
    ap.add_argument("--big", action="store_true", help="300 MiB image (the issue's shape)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--rss-layer-mib", type=int, default=256, help="one-layer image for the RSS check"
    )
    ap.add_argument("--only-oci", action="store_true", help="only pull-oci and pull-oci-loaded")
    args = ap.parse_args()
    total = 300 if args.big else args.total_mib
    for tool in ("docker-registry", "skopeo"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing (apt-get install -y {tool})")
    fleetkit = [sys.executable, "-m", "fleetkit"]
    # Time fleetkit as installed: pip compiles bytecode at install time, while an editable
    # checkout under PYTHONDONTWRITEBYTECODE=1 would re-compile every module on every run.
    import fleetkit as _fk

    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(_fk.__file__).parent)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    work = Path(tempfile.mkdtemp(prefix="fk-bench-pull-"))
    proc = None
    try:
        proc, host = start_registry(work / "registry")
        layer = total * 1024 * 1024 // 3
        build_layout(work / "src", [layer, layer, layer])
        build_layout(work / "src-one", [args.rss_layer_mib * 1024 * 1024])
        for src, repo in ((work / "src", "bench/three"), (work / "src-one", "bench/one")):
            subprocess.run(
                [
                    "skopeo",
                    "copy",
                    "--quiet",
                    "--dest-tls-verify=false",
                    f"oci:{src}:bench",
                    f"docker://{host}/{repo}:v1",
                ],
                check=True,
                timeout=600,
            )
        ref = f"{host}/bench/three:v1"
        dest = work / "dest"
        shape = {"image_mib": total, "layers": 3}
        print(
            json.dumps(
                compare(
                    "pull-oci",
                    [*fleetkit, "pull", "-q", ref, f"oci:{dest}/img:v1"],
                    [
                        "skopeo",
                        "copy",
                        "--quiet",
                        "--src-tls-verify=false",
                        f"docker://{ref}",
                        f"oci:{dest}/img:v1",
                    ],
                    dest,
                    args.runs,
                    shape,
                )
            ),
            flush=True,
        )
        ours_oci = [*fleetkit, "pull", "-q", ref, f"oci:{dest}/img:v1"]
        peer_oci = [
            "skopeo",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            f"docker://{ref}",
            f"oci:{dest}/img:v1",
        ]
        with CpuHog() as hog:
            loaded = compare("pull-oci-loaded", ours_oci, peer_oci, dest, args.runs, shape)
        loaded["cpu_hog_processes"] = hog.n
        print(json.dumps(loaded), flush=True)
        if args.only_oci:
            return 0
        print(
            json.dumps(
                compare(
                    "pull-docker-archive",
                    [*fleetkit, "pull", "-q", ref, f"docker-archive:{dest}/img.tar"],
                    [
                        "skopeo",
                        "copy",
                        "--quiet",
                        "--src-tls-verify=false",
                        f"docker://{ref}",
                        f"docker-archive:{dest}/img.tar:{ref}",
                    ],
                    dest,
                    args.runs,
                    {
                        **shape,
                        "note": "skopeo decompresses layers into the archive; fleetkit keeps them gzip",
                    },
                )
            ),
            flush=True,
        )
        rss = []
        for repo in ("bench/three", "bench/one"):
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            _, peak, _ = timed([*fleetkit, "pull", "-q", f"{host}/{repo}:v1", f"oci:{dest}/img:v1"])
            rss.append(round(peak, 1))
        print(
            json.dumps(
                {
                    "bench": "rss-vs-layer-size",
                    "ours": rss[1],
                    "peer": rss[0],
                    "unit": "MiB",
                    "speedup": round(rss[0] / rss[1], 3),
                    "note": f"ours = fleetkit peak RSS with one {args.rss_layer_mib} MiB layer; "
                    f"peer = fleetkit peak RSS with three {total // 3} MiB layers",
                }
            ),
            flush=True,
        )
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
