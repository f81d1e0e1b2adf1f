"""Network namespaces with a veth pair and Debian's sshd (key auth) each, for SSH tests and
benchmarks. Everything created (namespaces, links, processes inside them, /run/sshd when it
was missing) is removed on exit."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def _reserve_subnet(preferred: int) -> tuple[int, Path]:
    """A 10.S.0.0/16 no other fleet uses: no address of it on this machine and a lock file
    created with O_EXCL (a lock whose owner is gone is taken over), so concurrent test runs
    never route into each other's namespaces."""
    used = subprocess.run(
        ["ip", "-o", "addr"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    for k in range(100):
        subnet = 100 + (preferred - 100 + k) % 100
        if f" 10.{subnet}." in used:
            continue
        lock = Path(tempfile.gettempdir()) / f"fleetkit-netns-10.{subnet}.lock"
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = int(lock.read_text() or "0")
                os.kill(owner, 0)
                continue  # its owner still runs
            except (ValueError, ProcessLookupError, FileNotFoundError):
                lock.unlink(missing_ok=True)
                try:
                    fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return subnet, lock
    raise AssertionError("no free 10.S.0.0/16 subnet for the test namespaces")


def wait_port(ns: str, addr: str, port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((addr, port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing in {ns} listens on {addr}:{port}")


@contextlib.contextmanager
def ssh_fleet(
    tmp_path: Path,
    n_hosts: int,
    sshd: str = "/usr/sbin/sshd",
    keygen: str = "ssh-keygen",
    subnet: int | None = None,
) -> Iterator[tuple[Path, list[subprocess.Popen[bytes]]]]:
    """n_hosts namespaces, each with a veth pair and an sshd (key auth); writes
    tmp_path/inventory.ini (group ``nodes``) and tmp_path/namespaces; removes everything."""
    tag = f"{os.getpid() % 100000}"
    lock: Path | None = None
    if subnet is None:
        subnet, lock = _reserve_subnet(100 + os.getpid() % 100)
    key = tmp_path / "id_ed25519"
    _sh(keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    hostkey = tmp_path / "hostkey"
    _sh(keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey))
    auth = tmp_path / "authorized_keys"
    shutil.copy(f"{key}.pub", auth)
    auth.chmod(0o600)
    created: list[tuple[str, str]] = []
    procs: list[subprocess.Popen[bytes]] = []
    privsep = Path("/run/sshd")
    made_privsep = not privsep.exists()
    if made_privsep:
        privsep.mkdir(mode=0o755, parents=True)
    lines = ["[nodes]"]
    try:
        for i in range(n_hosts):
            ns, veth = f"fkpb{tag}n{i}", f"fkpb{tag}v{i}"
            base = 10 + i
            _sh("ip", "netns", "add", ns)
            created.append((ns, veth))
            _sh("ip", "link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
            _sh("ip", "link", "set", f"{veth}p", "netns", ns)
            _sh("ip", "addr", "add", f"10.{subnet}.{base}.1/24", "dev", veth)
            _sh("ip", "link", "set", veth, "up")
            _sh(
                "ip",
                "netns",
                "exec",
                ns,
                "ip",
                "addr",
                "add",
                f"10.{subnet}.{base}.2/24",
                "dev",
                f"{veth}p",
            )
            _sh("ip", "netns", "exec", ns, "ip", "link", "set", f"{veth}p", "up")
            _sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            cfg = tmp_path / f"sshd{i}.conf"
            cfg.write_text(
                f"Port 22\nListenAddress 10.{subnet}.{base}.2\nHostKey {hostkey}\n"
                f"AuthorizedKeysFile {auth}\nPasswordAuthentication no\n"
                f"PidFile {tmp_path}/sshd{i}.pid\nUsePAM no\nStrictModes no\n"
                "PermitRootLogin yes\n"
            )
            procs.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", ns, sshd, "-D", "-e", "-f", str(cfg)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            wait_port(ns, f"10.{subnet}.{base}.2", 22)
            lines.append(
                f"node{i} ansible_host=10.{subnet}.{base}.2 ansible_user=root "
                f"ansible_ssh_private_key_file={key} ns_name={ns} "
                f"sshd_config={cfg} sshd_pidfile={tmp_path}/sshd{i}.pid"
            )
        (tmp_path / "inventory.ini").write_text("\n".join(lines) + "\n")
        (tmp_path / "namespaces").write_text("\n".join(ns for ns, _ in created) + "\n")
        (tmp_path / "addresses").write_text(
            "\n".join(f"10.{subnet}.{10 + i}.2" for i in range(n_hosts)) + "\n"
        )
        yield tmp_path, procs
    finally:
        for ns, _ in created:
            # everything started inside our namespaces (sshd, sessions, test servers)
            pids = subprocess.run(
                ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30, check=False
            ).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 15)
                except (ProcessLookupError, ValueError):
                    pass
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        for ns, veth in created:
            subprocess.run(
                ["ip", "link", "del", veth], capture_output=True, timeout=30, check=False
            )
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30, check=False)
        # /run/sshd is shared by every sshd (other fixtures may run at once): removed only
        # when no sshd is left
        others = subprocess.run(["pgrep", "-x", "sshd"], capture_output=True, check=False)
        if made_privsep and others.returncode != 0:
            shutil.rmtree(privsep, ignore_errors=True)
        if lock is not None:
            lock.unlink(missing_ok=True)
