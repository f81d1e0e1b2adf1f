"""Debian 12 hosts with systemd as PID 1 and sshd, as podman containers on a podman network the
tests create, for differential tests of ansible's modules (packages, services, users...).

The root file system is built once by mmdebstrap from the machine's own apt sources and cached
under ~/.cache/fleetkit-tests, keyed by the package list and the build hooks; each test session
imports it into podman once and removes the image, its containers and its network at the end.
A local apt repository (file: URI, built here with dpkg-deb) stands in for the internet, which
the containers do not have (the network is ``--internal``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.playbook._netns import _reserve_subnet

SUITE = "bookworm"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "sudo",
    "cron",
    "apt",
    "procps",
    "iproute2",
    "e2fsprogs",
    # setfacl: how ansible shares its temporary files with an unprivileged become user
    "acl",
)
# a user whose sudo asks for a password (the become-password tests)
SUDO_USER = "deploy"
SUDO_PASSWORD = "deploy-sudo-pass"
HEALTHZ_UNIT = """[Unit]
Description=healthz stand-in (GET /healthz answers 200 while /srv/healthz/healthz exists)
[Service]
ExecStart=/usr/bin/python3 -m http.server 10248 --bind 0.0.0.0 --directory /srv/healthz
[Install]
WantedBy=multi-user.target
"""
HOOKS = (
    f'chroot "$1" useradd -m -s /bin/bash {SUDO_USER}',
    f'echo "{SUDO_USER}:{SUDO_PASSWORD}" | chroot "$1" chpasswd',
    f'echo "{SUDO_USER} ALL=(ALL:ALL) ALL" > "$1/etc/sudoers.d/{SUDO_USER}"',
    f'mkdir -p "$1/root/.ssh" "$1/home/{SUDO_USER}/.ssh" "$1/srv/healthz"',
    'echo ok > "$1/srv/healthz/healthz"',
    f"printf '%s' '{HEALTHZ_UNIT}' > \"$1/etc/systemd/system/fk-healthz.service\"",
    'chroot "$1" systemctl enable fk-healthz.service',
    # nothing inside may reach for the internet, nor hold apt's lock behind the tests' back
    'chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer',
    'rm -f "$1/etc/apt/sources.list" "$1"/etc/apt/sources.list.d/*',
    'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin',
)
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fleetkit-tests"
_RUN = (
    "--systemd=always",
    "--runtime",
    "runc",
    # this sandbox refuses podman's default rlimits
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
    # mount (loop file) and sysctl (net.* of the container's own namespace)
    "--cap-add",
    "SYS_ADMIN,NET_ADMIN",
    "--security-opt",
    "unmask=/proc/sys",
    "--device",
    "/dev/loop-control",
    *(a for i in range(8) for a in ("--device", f"/dev/loop{i}")),
)


def _run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def _must(*argv: str, timeout: float = 120) -> str:
    res = _run(*argv, timeout=timeout)
    if res.returncode != 0:
        raise AssertionError(f"{' '.join(argv[:4])} failed: {res.stderr.strip()[-800:]}")
    return res.stdout


def cache_key() -> str:
    """What the cached root file system depends on."""
    text = "\n".join((SUITE, *PACKAGES, *HOOKS))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sources() -> list[str]:
    """The machine's Debian sources (deb822 or one-line files) for mmdebstrap."""
    files = [
        p
        for p in (
            Path("/etc/apt/sources.list.d/debian.sources"),
            Path("/etc/apt/sources.list"),
        )
        if p.is_file() and p.stat().st_size > 0 and "debian" in p.read_text()
    ]
    return [str(files[0])] if files else []


def build_rootfs(mmdebstrap: str) -> Path:
    """The cached rootfs tarball, built by mmdebstrap on first use (one builder at a time)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tar = CACHE / f"debian-{SUITE}-{cache_key()}.tar"
    with open(CACHE / f"{tar.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tar.is_file():
            return tar
        tmp = tar.with_suffix(".tar.part")
        argv = [
            mmdebstrap,
            "--quiet",
            "--variant=minbase",
            "--format=tar",
            f"--include={','.join(PACKAGES)}",
            *(f"--customize-hook={h}" for h in HOOKS),
            SUITE,
            str(tmp),
            *_sources(),
        ]
        res = _run(*argv, timeout=1500)
        if res.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise AssertionError(f"mmdebstrap failed: {res.stderr.strip()[-1500:]}")
        tmp.rename(tar)
        return tar


def build_deb(out: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A tiny architecture-independent .deb with the given files (built by dpkg-deb)."""
    root = out / f"{name}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: fleetkit tests <tests@fleetkit.invalid>\n"
        f"Description: fleetkit test package {name}\n"
    )
    for rel, text in files.items():
        path = root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    deb = out / f"{name}_{version}_all.deb"
    _must("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb))
    shutil.rmtree(root)
    return deb


def build_repo(repo: Path, debs: list[Path]) -> None:
    """A flat apt repository (``deb [trusted=yes] file:/... ./``) holding ``debs``."""
    repo.mkdir(parents=True, exist_ok=True)
    entries = []
    for deb in debs:
        shutil.copy(deb, repo / deb.name)
        control = _must("dpkg-deb", "-f", str(deb)).strip()
        data = deb.read_bytes()
        entries.append(
            f"{control}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
            f"MD5sum: {hashlib.md5(data).hexdigest()}\n"
            f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
        )
    (repo / "Packages").write_text("\n".join(entries))


SNAPSHOT = r"""
import grp, hashlib, os, pwd, stat, sys
def owner(st):
    try: u = pwd.getpwuid(st.st_uid).pw_name
    except KeyError: u = str(st.st_uid)
    try: g = grp.getgrgid(st.st_gid).gr_name
    except KeyError: g = str(st.st_gid)
    return u + ":" + g
def one(p):
    try: st = os.lstat(p)
    except FileNotFoundError: return p + " absent"
    kind = "l" if stat.S_ISLNK(st.st_mode) else "d" if stat.S_ISDIR(st.st_mode) else "f"
    what = ""
    if kind == "l": what = os.readlink(p)
    elif kind == "f":
        with open(p, "rb") as fh: what = hashlib.sha256(fh.read()).hexdigest()[:16]
    return "%s %s %o %s %s" % (p, kind, stat.S_IMODE(st.st_mode), owner(st), what)
out = []
for top in sys.argv[1:]:
    out.append(one(top))
    if os.path.isdir(top) and not os.path.islink(top):
        for d, dirs, files in os.walk(top):
            for n in sorted(dirs + files): out.append(one(os.path.join(d, n)))
print("\n".join(sorted(out)))
"""


@dataclass
class DebianLab:
    """The session's image, network and key; starts fresh hosts for each tool run."""

    podman: str
    image: str
    network: str
    subnet: int
    workdir: Path
    key: Path
    repo: Path
    containers: list[str] = field(default_factory=list)
    _slot: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _start_one(self, cname: str, hostname: str, ip: str) -> None:
        _must(
            self.podman,
            "run",
            "-d",
            "--name",
            cname,
            "--hostname",
            hostname,
            "--network",
            self.network,
            "--ip",
            ip,
            *_RUN,
            "-v",
            f"{self.key}.pub:/root/.ssh/authorized_keys:ro",
            "-v",
            f"{self.key}.pub:/home/{SUDO_USER}/.ssh/authorized_keys:ro",
            "-v",
            f"{self.repo}:/srv/fkrepo:ro",
            self.image,
            "/sbin/init",
        )
        # systemd says when the boot is over (sshd started), once its bus socket exists
        res = _run(
            self.podman,
            "exec",
            cname,
            "sh",
            "-c",
            "for i in $(seq 600); do [ -S /run/systemd/private ] && break; sleep 0.05; done; "
            "systemctl is-system-running --wait",
            timeout=120,
        )
        if res.stdout.strip() not in ("running", "degraded"):
            logs = _run(self.podman, "logs", cname).stdout[-1500:]
            raise AssertionError(f"{cname} did not boot: {res.stdout}{res.stderr}\n{logs}")
        with socket.create_connection((ip, 22), timeout=10):
            pass

    def start(
        self,
        names: list[str],
        user: str = "root",
        group: str = "nodes",
        host_vars: dict[str, str] | None = None,
    ) -> tuple[Path, dict[str, str]]:
        """Fresh containers named after ``names``; an inventory (``group``) for them."""
        with self._lock:
            self._slot += 1
            slot = self._slot
            tag = f"fkdeb{os.getpid()}s{slot}"
            cnames = {n: f"{tag}-{n}" for n in names}
            self.containers += cnames.values()
        ips = {n: f"10.{self.subnet}.{(slot * 10) % 240 + i + 2}.2" for i, n in enumerate(names)}
        with ThreadPoolExecutor(len(names)) as pool:
            for f in [pool.submit(self._start_one, cnames[n], n, ips[n]) for n in names]:
                f.result()
        extra = host_vars or {}
        lines = [
            f"[{group}]",
            *(f"{n} ansible_host={ips[n]} {extra.get(n, '')}".rstrip() for n in names),
            "",
            f"[{group}:vars]",
        ]
        lines += [
            f"ansible_user={user}",
            f"ansible_ssh_private_key_file={self.key}",
            "ansible_python_interpreter=/usr/bin/python3",
            "ansible_ssh_common_args='-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no'",
        ]
        inv = self.workdir / f"inventory-{slot}.ini"
        inv.write_text("\n".join(lines) + "\n")
        return inv, cnames

    def exec(self, cname: str, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run a command in a container."""
        return _run(self.podman, "exec", cname, *argv)

    def snapshot(self, cname: str, paths: list[str]) -> str:
        """Type, mode, owner and content hash of every file under ``paths`` in a container."""
        return _must(self.podman, "exec", cname, "python3", "-c", SNAPSHOT, *paths)

    def remove(self, cnames: list[str]) -> None:
        """Remove containers (and forget them)."""
        if cnames:
            _run(self.podman, "rm", "-f", "-t", "0", *cnames, timeout=180)
        with self._lock:
            self.containers = [c for c in self.containers if c not in cnames]


def _subnet_free(podman: str, subnet: int) -> bool:
    nets = _run(podman, "network", "ls", "--format", "{{.Name}}").stdout.split()
    for net in nets:
        text = _run(podman, "network", "inspect", net).stdout
        if f'"10.{subnet}.' in text:
            return False
    return True


@contextlib.contextmanager
def debian_lab(podman: str, mmdebstrap: str) -> Iterator[DebianLab]:
    """The session's Debian lab: image imported, network created; all removed at the end."""
    tar = build_rootfs(mmdebstrap)
    tag = f"localhost/fleetkit-test-debian:{cache_key()}-{os.getpid()}"
    workdir = Path(tempfile.mkdtemp(prefix="fk-debian-"))
    workdir.chmod(0o755)
    lock: Path | None = None
    network = f"fkdeb{os.getpid()}"
    lab: DebianLab | None = None
    try:
        _must(podman, "import", "-q", str(tar), tag, timeout=600)
        skipped: list[Path] = []
        subnet, lock = _reserve_subnet(150 + os.getpid() % 50)
        while not _subnet_free(podman, subnet) and len(skipped) < 20:
            skipped.append(lock)  # held while looking, so the next try picks another
            subnet, lock = _reserve_subnet(subnet + 1)
        for held in skipped:
            held.unlink(missing_ok=True)
        _must(
            podman,
            "network",
            "create",
            "--internal",
            "--subnet",
            f"10.{subnet}.0.0/16",
            network,
        )
        key = workdir / "id_ed25519"
        _must("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        (workdir / "id_ed25519.pub").chmod(0o644)
        repo = workdir / "repo"
        debs = workdir / "debs"
        debs.mkdir()
        build_repo(
            repo,
            [
                build_deb(
                    debs, "fk-hello", "1.0", {"/usr/share/fk-hello/hello.txt": "hello 1.0\n"}
                ),
                build_deb(debs, "fk-extra", "2.0", {"/usr/share/fk-extra/extra.txt": "extra\n"}),
            ],
        )
        # a newer fk-hello in a second repository: an upgrade for the rolling-update test
        build_repo(
            repo / "updates",
            [build_deb(debs, "fk-hello", "1.1", {"/usr/share/fk-hello/hello.txt": "hello 1.1\n"})],
        )
        lab = DebianLab(podman, tag, network, subnet, workdir, key, repo)
        # netavark takes the bridge (and its gateway address, where the tests' HTTP server
        # listens) down with the network's last container: one stays for the session
        keeper = f"{network}-keeper"
        lab.containers.append(keeper)
        _must(
            podman,
            "run",
            "-d",
            "--name",
            keeper,
            "--network",
            network,
            *_RUN[1:7],
            tag,
            "sleep",
            "infinity",
        )
        yield lab
    finally:
        if lab is not None:
            lab.remove(list(lab.containers))
        _run(podman, "network", "rm", "-f", network)
        _run(podman, "rmi", "-f", tag, timeout=300)
        if lock is not None:
            lock.unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)
