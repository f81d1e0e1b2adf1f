"""A one-node Ceph (one monitor, one memstore OSD, radosgw) on 127.0.0.1 for S3 tests.

Started once per test session by the ``ceph_s3`` fixture (tests/registry/conftest.py) in a temp
directory, never as a system service; every daemon is killed by PID and the directory removed
at the end. Settings from /work/shared/recipes/ceph-s3.md (fast, reliable start).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["CephS3", "ceph_available", "start_ceph"]

ACCESS_KEY = "FLEETKITTESTKEY"
SECRET_KEY = "fleetkit-test-secret-not-a-real-one"
_TOOLS = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph")


@dataclass(frozen=True)
class CephS3:
    endpoint: str
    access_key: str
    secret_key: str
    dir: str


def ceph_available() -> bool:
    return all(shutil.which(t) for t in _TOOLS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _free_range(width: int = 20) -> int:
    """A base port whose next ``width`` ports were free a moment ago."""
    for _ in range(50):
        base = _free_port()
        if base + width > 65000:
            continue
        socks = []
        try:
            for p in range(base, base + width):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range for the Ceph OSD")


def _conf(d: str, fsid: str, mon_port: int, rgw_port: int, ms_base: int) -> str:
    return f"""[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{mon_port}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr2 = false
ms bind port min = {ms_base}
ms bind port max = {ms_base + 19}
auth cluster required = none
auth service required = none
auth client required = none
run dir = {d}/run
admin socket = {d}/run/$name.asok
pid file = {d}/run/$name.pid
log file = {d}/log/$name.log
mon cluster log file = {d}/log/cluster.log
mon data = {d}/mon/ceph-$id
osd data = {d}/osd/ceph-$id
log to stderr = false
err to stderr = false
osd objectstore = memstore
memstore device bytes = 4294967296
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
paxos propose interval = 0.05
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 1
mon data avail crit = 0
osd crush update on start = false
osd class update on start = false

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {d}/rgw
rgw thread pool size = 32
"""


def _pids(d: str) -> list[int]:
    out = []
    run = os.path.join(d, "run")
    for name in os.listdir(run) if os.path.isdir(run) else []:
        if name.endswith(".pid"):
            with contextlib.suppress(OSError, ValueError), open(os.path.join(run, name)) as f:
                out.append(int(f.read().strip()))
    return out


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _stop(d: str, pids: set[int]) -> None:
    pids |= set(_pids(d))  # read pid files before the daemons remove them
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(_gone(p) for p in pids):
        time.sleep(0.05)  # waiting for the kernel to reap, not synchronising with the daemons
    shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def start_ceph() -> Iterator[CephS3]:
    d = tempfile.mkdtemp(prefix="fleetkit-ceph-")
    for sub in ("mon/ceph-a", "osd/ceph-0", "run", "log", "rgw"):
        os.makedirs(os.path.join(d, sub))
    mon_port, rgw_port, ms_base = _free_port(), _free_port(), _free_range()
    fsid = str(uuid.uuid4())
    conf = os.path.join(d, "ceph.conf")
    with open(conf, "w") as f:
        f.write(_conf(d, fsid, mon_port, rgw_port, ms_base))
    env = dict(os.environ, CEPH_CONF=conf)
    env.pop("PYTHONPATH", None)
    pids: set[int] = set()

    def run(*argv: str, attempts: int = 1) -> str:
        for attempt in range(attempts):
            p = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=60, check=False
            )
            if p.returncode == 0:
                return p.stdout
            if attempt + 1 < attempts:
                time.sleep(0.5)  # a monitor still forming its quorum: bounded retries
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.strip()[-2000:]}")

    try:
        monmap = os.path.join(d, "monmap")
        run("monmaptool", "--create", "--fsid", fsid, "--addv", "a", f"[v1:127.0.0.1:{mon_port}]",
            monmap)  # fmt: skip
        run("ceph-mon", "--mkfs", "-i", "a", "--monmap", monmap)
        run("ceph-mon", "-i", "a")
        pids |= set(_pids(d))
        osd_uuid = str(uuid.uuid4())
        osd_id = run("ceph", "osd", "new", osd_uuid, attempts=5).strip()
        run("ceph", "osd", "crush", "add", f"osd.{osd_id}", "1.0", "root=default", attempts=5)
        run("ceph-osd", "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid)
        run("ceph-osd", "-i", osd_id)
        pids |= set(_pids(d))
        run("radosgw", "-n", "client.rgw")
        pids |= set(_pids(d))
        endpoint = f"http://127.0.0.1:{rgw_port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(endpoint + "/", timeout=2):
                    break
            except urllib.error.HTTPError:
                break  # it answers
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("radosgw did not answer in 30 s") from None
                time.sleep(0.1)  # polling an external daemon's port, bounded above
        run("radosgw-admin", "user", "create", "--uid=fleetkit", "--display-name=fleetkit",
            f"--access-key={ACCESS_KEY}", f"--secret-key={SECRET_KEY}")  # fmt: skip
        pids |= set(_pids(d))
        yield CephS3(endpoint, ACCESS_KEY, SECRET_KEY, d)
    finally:
        _stop(d, pids)
