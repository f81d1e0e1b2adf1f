"""fleetkit registry vs distribution 2.8.2 (Debian docker-registry) on the same work, same run.

Shapes (one JSON line each, median of --runs):
  skopeo_push / skopeo_pull  a 3-layer image of random gzip layers (--size-mib total, default 60;
                             --large = 300), oci: layout <-> each registry, fresh servers per run
  blob_get_100MiB            one 100 MiB blob GET with curl, MiB/s
  blob_get_server_cpu_s      the server's CPU seconds per such GET (from /proc/PID/stat)
  manifest_get_rps           wrk on GET /v2/<name>/manifests/<tag>, requests/s
  server_rss_MiB             server VmHWM (peak RSS) after the load above

With --ceph, the same image through both registries on S3: one Ceph (tests/registry/_ceph.py:
one monitor, one memstore OSD, radosgw on 127.0.0.1) with a bucket per registry per run:
  ceph_skopeo_push / ceph_skopeo_pull   fleetkit (storage.s3) vs distribution 2.8.2 (its s3
                                        driver, redirect disabled: the bytes go through it)
  ceph_skopeo_pull_redirect             both answering blob GETs with presigned-URL redirects
                                        (fleetkit --storage-redirect; distribution's default)
  ceph_server_rss_MiB                   each registry's peak RSS after its push and pull

With --floor, the pull's floor on the server side: skopeo pulls the same image from a server
that does the least any registry can (LeastWorkServer below: a thread per connection, the
manifest and blobs straight from the oci: layout with sendfile, no storage layer, no auth, no
logging), from fleetkit and from distribution, alternating in one run:
  skopeo_pull_floor          the least-work server's median vs distribution's (and fleetkit's)

Every line carries the 1-minute load average when it was printed (the machine may be shared).

Usage: .venv/bin/python benchmarks/registry.py [--runs 3] [--size-mib 60 | --large]
                                               [--ceph [--skip-local]] [--floor]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests.registry._ceph: the tests' one-node Ceph
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_layout(path: Path, total_mib: int) -> str:
    """A 3-layer OCI layout of gzip'd tars of random bytes (sizes 1/2, 1/3, 1/6 of total)."""
    import io
    import tarfile

    blobs: dict[str, bytes] = {}
    layers, diff_ids = [], []
    for i, frac in enumerate((3, 2, 1)):
        size = total_mib * 1024 * 1024 * frac // 6
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(f"layer{i}.bin")
            info.size = size
            tar.addfile(info, io.BytesIO(os.urandom(size)))
        tar_bytes = buf.getvalue()
        diff_ids.append(sha256(tar_bytes))
        gz = gzip.compress(tar_bytes, compresslevel=1, mtime=0)
        blobs[sha256(gz)] = gz
        layers.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": sha256(gz),
                "size": len(gz),
            }
        )
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    blobs[sha256(config)] = config
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": layers,
        }
    ).encode()
    blobs[sha256(manifest)] = manifest
    (path / "blobs" / "sha256").mkdir(parents=True)
    for digest, data in blobs.items():
        (path / "blobs" / "sha256" / digest[7:]).write_bytes(data)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (path / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": sha256(manifest),
                        "size": len(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": "v1"},
                    }
                ],
            }
        )
    )
    return f"oci:{path}:v1"


@dataclass(frozen=True)
class S3Target:
    """A bucket on the benchmark's radosgw."""

    endpoint: str
    access_key: str
    secret_key: str
    bucket: str

    def distribution_keys(self) -> dict[str, object]:
        return {
            "bucket": self.bucket,
            "region": "us-east-1",
            "regionendpoint": self.endpoint,
            "accesskey": self.access_key,
            "secretkey": self.secret_key,
            "secure": False,
        }


class Server:
    """``fleetkit registry serve`` or distribution 2.8.2 on a free port with a fresh root.

    ``fleetkit_args`` go to fleetkit's command line (e.g. ``--proxy-remote URL``)."""

    def __init__(
        self,
        kind: str,
        work: Path,
        s3: S3Target | None = None,
        redirect: bool = False,
        fleetkit_args: tuple[str, ...] = (),
    ) -> None:
        self.kind = kind
        self.root = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=work))
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        if kind == "fleetkit":
            cmd = [sys.executable, "-m", "fleetkit", "registry", "serve", "--listen", self.host]
            if s3 is None:
                cmd += ["--root", str(self.root / "data")]
            else:
                cfg = self.root / "registry.yaml"
                cfg.write_text(
                    json.dumps(
                        {
                            "version": 0.1,
                            "http": {"secret": "bench"},
                            "storage": {"s3": s3.distribution_keys()},
                        }
                    )
                )
                cmd += ["--config", str(cfg)] + (["--storage-redirect"] if redirect else [])
            cmd += [*fleetkit_args, "-q"]
        else:
            storage: dict[str, object] = {
                "filesystem": {"rootdirectory": str(self.root / "data")},
                "delete": {"enabled": True},
            }
            if s3 is not None:
                storage = {
                    "s3": {**s3.distribution_keys(), "v4auth": True, "rootdirectory": "/"},
                    "delete": {"enabled": True},
                    "redirect": {"disable": not redirect},
                }
            cfg = self.root / "config.yml"
            cfg.write_text(
                json.dumps(
                    {
                        "version": 0.1,
                        "log": {"level": "error", "accesslog": {"disabled": True}},
                        "storage": storage,
                        "http": {"addr": self.host, "secret": "bench"},
                    }
                )
            )
            cmd = ["docker-registry", "serve", str(cfg)]
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        # distribution's AWS SDK refuses a custom CA bundle with its own HTTP transport (a
        # panic at start), and radosgw here is plain HTTP anyway
        env.pop("AWS_CA_BUNDLE", None)
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"{kind} did not start") from None
                time.sleep(0.05)

    def cpu_s(self) -> float:
        """User + system CPU seconds the server process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mib(self) -> float:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        m = re.search(r"VmHWM:\s+(\d+) kB", text)
        return int(m.group(1)) / 1024 if m else float("nan")

    def stop(self) -> None:
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


class LeastWorkServer:
    """The least a registry can do for ``skopeo copy docker://...``: answers ``/v2/``, the one
    tag's manifest and the blobs of an ``oci:`` layout with ``sendfile``, a thread per
    connection, HTTP/1.1 keep-alive; a TLS probe (skopeo tries https first) gets a plain 400,
    as a real registry's plain-HTTP port answers it. Not a registry: the floor of the pull."""

    def __init__(self, layout: Path) -> None:
        self.layout = layout
        index = json.loads((layout / "index.json").read_text())["manifests"][0]
        self.manifest_hex = index["digest"].split(":", 1)[1]
        self.manifest_type = index["mediaType"]
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            pending = b""
            while True:
                while b"\r\n\r\n" not in pending:
                    data = conn.recv(65536)
                    if not data:
                        return
                    if not pending and data[:1] == b"\x16":  # a TLS ClientHello
                        conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
                        return
                    pending += data
                head, pending = pending.split(b"\r\n\r\n", 1)
                method, path = head.split(b" ", 2)[:2]
                if not self._answer(conn, method == b"HEAD", path.decode()):
                    return

    def _answer(self, conn: socket.socket, head_only: bool, path: str) -> bool:
        ctype, hex_digest = "application/octet-stream", ""
        if path == "/v2/":
            body = b"{}"
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                b"Docker-Distribution-Api-Version: registry/2.0\r\n\r\n"
                + (b"" if head_only else body)
            )
            return True
        if "/manifests/" in path:
            ctype, hex_digest = self.manifest_type, self.manifest_hex
        elif "/blobs/sha256:" in path:
            hex_digest = path.rsplit(":", 1)[1]
        blob = self.layout / "blobs" / "sha256" / hex_digest
        if not hex_digest or not blob.is_file():
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return True
        with blob.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            conn.sendall(
                f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {size}\r\n"
                f"Docker-Content-Digest: sha256:{hex_digest}\r\n\r\n".encode()
            )
            offset = 0
            while not head_only and offset < size:
                sent = os.sendfile(conn.fileno(), f.fileno(), offset, size - offset)
                if sent == 0:
                    return False
                offset += sent
        return True

    def stop(self) -> None:
        self.sock.close()


def floor_shape(args: argparse.Namespace, work: Path, src: str, size: int) -> None:
    """skopeo pulls from the least-work server, fleetkit and distribution, alternating."""
    layout = Path(src.split(":")[1])
    servers: dict[str, Server] = {}
    least = LeastWorkServer(layout)
    try:
        hosts = {"least_work": least.host}
        for kind in ("fleetkit", "distribution"):
            servers[kind] = Server(kind, work)
            dest = f"docker://{servers[kind].host}/bench/app:v1"
            timed(["skopeo", "copy", "--dest-tls-verify=false", src, dest])
            hosts[kind] = servers[kind].host
        times: dict[str, list[float]] = {kind: [] for kind in hosts}
        runs = max(args.runs * 2, 7)
        for run in range(runs):
            order = list(hosts) if run % 2 == 0 else list(hosts)[::-1]
            for kind in order:
                out = work / f"floor-{kind}-{run}"
                pull = ["skopeo", "copy", "--src-tls-verify=false"]
                times[kind].append(
                    timed([*pull, f"docker://{hosts[kind]}/bench/app:v1", f"oci:{out}:v1"])
                )
                shutil.rmtree(out, ignore_errors=True)
        median = {kind: statistics.median(t) for kind, t in times.items()}
        emit(
            f"skopeo_pull_floor_{size}MiB",
            median["least_work"],
            median["distribution"],
            "s",
            runs=runs,
            fleetkit=round(median["fleetkit"], 4),
            fleetkit_vs_peer=round(median["distribution"] / median["fleetkit"], 3),
            ours_is="the least-work server (a floor for any registry), not fleetkit",
        )
    finally:
        least.stop()
        for srv in servers.values():
            srv.stop()


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
    return time.perf_counter() - t0


def emit(
    bench: str, ours: float, peer: float, unit: str, higher_is_better: bool = False, **extra: object
) -> None:
    speedup = (ours / peer if higher_is_better else peer / ours) if ours and peer else None
    print(
        json.dumps(
            {
                "bench": bench,
                "ours": round(ours, 4),
                "peer": round(peer, 4),
                "unit": unit,
                "speedup": round(speedup, 3) if speedup else None,
                "better": "higher" if higher_is_better else "lower",
                "load_avg_1m": round(os.getloadavg()[0], 2),
                **extra,
            }
        ),
        flush=True,
    )


def push_blob(host: str, name: str, data: bytes) -> str:
    digest = sha256(data)
    req = urllib.request.Request(f"http://{host}/v2/{name}/blobs/uploads/", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=60) as r:
        loc = r.headers["Location"]
    if loc.startswith("/"):
        loc = f"http://{host}{loc}"
    sep = "&" if "?" in loc else "?"
    req = urllib.request.Request(
        f"{loc}{sep}digest={digest}",
        method="PUT",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    urllib.request.urlopen(req, timeout=300).read()
    return digest


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=60)
    ap.add_argument("--large", action="store_true", help="300 MiB image (the issue's shape)")
    ap.add_argument("--wrk-seconds", type=int, default=5)
    ap.add_argument("--ceph", action="store_true", help="also the shapes on S3 (Ceph radosgw)")
    ap.add_argument("--skip-local", action="store_true", help="with --ceph: only the S3 shapes")
    ap.add_argument(
        "--floor", action="store_true", help="only the pull from a least-work server (a floor)"
    )
    args = ap.parse_args()
    size = 300 if args.large else args.size_mib
    for tool in ("skopeo", "docker-registry", "wrk", "curl"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is missing (apt-get install -y {tool})", file=sys.stderr)
            return 1
    work = Path(tempfile.mkdtemp(prefix="fleetkit-bench-registry-"))
    try:
        src = build_layout(work / "image", size)
        if args.floor:
            floor_shape(args, work, src, size)
            return 0
        if not args.skip_local:
            local_shapes(args, work, src, size)
        if args.ceph:
            ceph_shapes(args, work, src, size)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def ceph_shapes(args: argparse.Namespace, work: Path, src: str, size: int) -> None:
    """Push and pull through each registry on buckets of one radosgw (see the docstring)."""
    import uuid

    from tests.registry._ceph import start_ceph

    from fleetkit.registry.storage.s3 import S3Config, S3Driver

    with start_ceph() as ceph:

        def bucket() -> S3Target:
            target = S3Target(
                ceph.endpoint, ceph.access_key, ceph.secret_key, "bench-" + uuid.uuid4().hex[:16]
            )
            cfg = S3Config(
                bucket=target.bucket,
                regionendpoint=ceph.endpoint,
                accesskey=ceph.access_key,
                secretkey=ceph.secret_key,
                secure=False,
            )
            S3Driver(cfg).client.create_bucket(Bucket=target.bucket)
            return target

        push: dict[str, list[float]] = {"fleetkit": [], "distribution": []}
        pull: dict[str, list[float]] = {"fleetkit": [], "distribution": []}
        redirected: dict[str, list[float]] = {"fleetkit": [], "distribution": []}
        rss: dict[str, float] = {"fleetkit": 0.0, "distribution": 0.0}
        for run in range(args.runs):
            for kind in ("fleetkit", "distribution"):
                target = bucket()
                srv = Server(kind, work, target)
                try:
                    dest = f"docker://{srv.host}/bench/app:v1"
                    push[kind].append(
                        timed(["skopeo", "copy", "--dest-tls-verify=false", src, dest])
                    )
                    out = work / f"ceph-pull-{kind}-{run}"
                    pull[kind].append(
                        timed(["skopeo", "copy", "--src-tls-verify=false", dest, f"oci:{out}:v1"])
                    )
                    shutil.rmtree(out, ignore_errors=True)
                    rss[kind] = max(rss[kind], srv.peak_rss_mib())
                finally:
                    srv.stop()
                srv = Server(kind, work, target, redirect=True)
                try:
                    dest = f"docker://{srv.host}/bench/app:v1"
                    out = work / f"ceph-redirect-{kind}-{run}"
                    redirected[kind].append(
                        timed(["skopeo", "copy", "--src-tls-verify=false", dest, f"oci:{out}:v1"])
                    )
                    shutil.rmtree(out, ignore_errors=True)
                finally:
                    srv.stop()
        for bench, times in (
            (f"ceph_skopeo_push_{size}MiB", push),
            (f"ceph_skopeo_pull_{size}MiB", pull),
            (f"ceph_skopeo_pull_redirect_{size}MiB", redirected),
        ):
            emit(
                bench,
                statistics.median(times["fleetkit"]),
                statistics.median(times["distribution"]),
                "s",
                runs=args.runs,
                target_speedup_min=1.0,
            )
        emit(
            "ceph_server_rss_MiB",
            rss["fleetkit"],
            rss["distribution"],
            "MiB",
            target_ours_max=150,
        )


def local_shapes(args: argparse.Namespace, work: Path, src: str, size: int) -> None:
    """The filesystem shapes: skopeo push/pull, blob GET, manifest GET, server RSS."""
    push: dict[str, list[float]] = {"fleetkit": [], "distribution": []}
    pull: dict[str, list[float]] = {"fleetkit": [], "distribution": []}
    for run in range(args.runs):
        for kind in ("fleetkit", "distribution"):
            srv = Server(kind, work)
            try:
                dest = f"docker://{srv.host}/bench/app:v1"
                push[kind].append(timed(["skopeo", "copy", "--dest-tls-verify=false", src, dest]))
                out = work / f"pull-{kind}-{run}"
                pull[kind].append(
                    timed(["skopeo", "copy", "--src-tls-verify=false", dest, f"oci:{out}:v1"])
                )
                shutil.rmtree(out, ignore_errors=True)
            finally:
                srv.stop()
    emit(
        f"skopeo_push_{size}MiB",
        statistics.median(push["fleetkit"]),
        statistics.median(push["distribution"]),
        "s",
        runs=args.runs,
    )
    emit(
        f"skopeo_pull_{size}MiB",
        statistics.median(pull["fleetkit"]),
        statistics.median(pull["distribution"]),
        "s",
        runs=args.runs,
    )

    blob = os.urandom(100 * 1024 * 1024)
    manifest_src = src
    rates: dict[str, float] = {}
    rps: dict[str, float] = {}
    rss: dict[str, float] = {}
    cpu: dict[str, float] = {}
    # both servers up at once, blob GETs alternating between them: the machine's load
    # drifts, and alternating puts both under the same drift
    servers: dict[str, Server] = {}
    try:
        for kind in ("fleetkit", "distribution"):
            servers[kind] = Server(kind, work)
        digest = ""
        for srv in servers.values():
            digest = push_blob(srv.host, "bench/blob", blob)
        times: dict[str, list[float]] = {kind: [] for kind in servers}
        cpu_before = {kind: srv.cpu_s() for kind, srv in servers.items()}
        for _ in range(max(args.runs * 3, 11)):
            for kind, srv in servers.items():
                times[kind].append(
                    timed(
                        [
                            "curl",
                            "-sf",
                            "-o",
                            "/dev/null",
                            f"http://{srv.host}/v2/bench/blob/blobs/{digest}",
                        ]
                    )
                )
        for kind, srv in servers.items():
            rates[kind] = 100 / statistics.median(times[kind])
            cpu[kind] = (srv.cpu_s() - cpu_before[kind]) / len(times[kind])
            subprocess.run(
                [
                    "skopeo",
                    "copy",
                    "--dest-tls-verify=false",
                    manifest_src,
                    f"docker://{srv.host}/bench/app:v1",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=600,
            )
            out = subprocess.run(
                [
                    "wrk",
                    "-t2",
                    "-c32",
                    f"-d{args.wrk_seconds}s",
                    "-H",
                    f"Accept: {OCI_MANIFEST}",
                    f"http://{srv.host}/v2/bench/app/manifests/v1",
                ],
                check=True,
                capture_output=True,
                text=True,
                timeout=120,
            ).stdout
            m = re.search(r"Requests/sec:\s+([\d.]+)", out)
            non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            if non2xx:
                raise RuntimeError(f"{kind}: {non2xx.group(1)} non-2xx manifest responses")
            rps[kind] = float(m.group(1)) if m else float("nan")
            rss[kind] = srv.peak_rss_mib()
    finally:
        for srv in servers.values():
            srv.stop()
    emit(
        "blob_get_100MiB",
        rates["fleetkit"],
        rates["distribution"],
        "MiB/s",
        True,
        runs=len(times["fleetkit"]),
    )
    emit(
        "blob_get_server_cpu_s",
        cpu["fleetkit"],
        cpu["distribution"],
        "s",
        note="server CPU (user+sys) per 100 MiB GET: less sensitive to a shared machine",
    )
    emit(
        "manifest_get_rps",
        rps["fleetkit"],
        rps["distribution"],
        "req/s",
        True,
        wrk=f"-t2 -c32 -d{args.wrk_seconds}s",
    )
    emit("server_rss_MiB", rss["fleetkit"], rss["distribution"], "MiB", target_ours_max=150)


if __name__ == "__main__":
    sys.exit(main())
