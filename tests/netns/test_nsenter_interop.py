"""fleetkit nsenter against util-linux nsenter, on the same targets, flag by flag."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.netns._unpriv import unprivileged_env
from tests.netns.conftest import Lab, fleetkit, run, stop, wait_for
from tests.peers import require

pytestmark = pytest.mark.interop


def both(
    *argv: str, user: str | None = None, cwd: str | None = None
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """Run ``nsenter ARGV`` and ``fleetkit nsenter ARGV`` (optionally as ``user``)."""
    nsenter = require("nsenter", "apt-get install -y util-linux")
    prefix: list[str] = []
    if user is not None:
        setpriv = require("setpriv", "apt-get install -y util-linux")
        prefix = [setpriv, f"--reuid={user}", f"--regid={user_group(user)}", "--clear-groups"]
    theirs = run(*prefix, nsenter, *argv, cwd=cwd)
    env = unprivileged_env() if user is not None else None
    ours = run(*prefix, sys.executable, "-m", "fleetkit", "nsenter", *argv, cwd=cwd, env=env)
    return theirs, ours


def user_group(user: str) -> str:
    import pwd

    return str(pwd.getpwnam(user).pw_gid)


def test_ip_addr_matches_util_linux(netlab: Lab) -> None:
    ip = require("ip", "apt-get install -y iproute2")
    theirs, ours = both("-t", str(netlab.target), "-n", ip, "addr")
    assert theirs.returncode == ours.returncode == 0, ours.stderr
    assert "10.77.0.2/24" in ours.stdout
    assert ours.stdout == theirs.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["-n", "sh", "-c", "exit 7"],
        ["-n", "sh", "-c", "kill -TERM $$"],
        ["-n", "/nonexistent/program"],
        ["-n", "/etc/hostname"],
        ["-n", "--bogus"],
        ["-n", "-S", "abc", "true"],
        ["-n", "-w", "-W", "/", "true"],
        ["-x"],
        ["-n"],  # no program: runs $SHELL, which sees EOF on stdin
    ],
    ids=[
        "exit7",
        "signal",
        "enoent",
        "noexec",
        "badlong",
        "baduid",
        "wd-excl",
        "badshort",
        "shell",
    ],
)
def test_exit_codes_match(netlab: Lab, argv: list[str]) -> None:
    theirs, ours = both("-t", str(netlab.target), *argv)
    assert ours.returncode == theirs.returncode, (theirs.stderr, ours.stderr)
    if theirs.stderr.startswith("nsenter: "):  # nsenter's own error, not the program's
        lines = ours.stderr.strip().splitlines()
        assert lines[0].startswith("error: "), ours.stderr
        assert "Traceback" not in ours.stderr


def test_no_such_pid(netlab: Lab) -> None:
    theirs, ours = both("-t", "999999999", "-n", "true")
    assert theirs.returncode == ours.returncode == 1
    assert ours.stderr.splitlines() == [
        "error: no such process: 999999999",
        "hint: check the PID with 'ps -p PID' or list targets with 'fleetkit ns ps'",
    ]


def test_namespace_files_and_all(netlab: Lab) -> None:
    nsfile = f"/run/netns/{netlab.client}"
    theirs, ours = both(f"--net={nsfile}", "readlink", "/proc/self/ns/net")
    assert theirs.returncode == ours.returncode == 0
    assert ours.stdout == theirs.stdout == f"net:[{os.stat(nsfile).st_ino}]\n"
    probe = ["readlink", "/proc/self/ns/net", "/proc/self/ns/mnt", "/proc/self/ns/uts"]
    theirs, ours = both("-t", str(netlab.target), "-a", *probe)
    assert theirs.returncode == ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout


def test_root_and_wd(
    netlab: Lab, tmp_path: Path, scratch_ns: Callable[..., subprocess.Popen[bytes]]
) -> None:
    workdir = tmp_path / "work"
    (workdir / "sub").mkdir(parents=True)
    proc = scratch_ns("ip", "netns", "exec", netlab.client, "sleep", "600", cwd=str(workdir))
    wait_for(lambda: os.readlink(f"/proc/{proc.pid}/cwd") == str(workdir), what="target cwd")
    pid = str(proc.pid)
    cases = [
        ["-t", pid, "-n", "-w", "pwd"],
        ["-t", pid, "-n", f"-w{workdir}/sub", "pwd"],
        ["-t", pid, "-n", f"--wd={tmp_path}", "pwd"],
        ["-t", pid, "-n", "-W", "/etc", "pwd"],
        ["-t", pid, "-n", "-r", "pwd"],
        ["-t", pid, "-n", "-r", "-w", "pwd"],
        ["-t", pid, "-n", "-r", "-W", "/usr", "pwd"],
        ["-t", pid, "-n", f"-r{tmp_path}", "/bin/pwd"],
    ]
    for argv in cases:
        theirs, ours = both(*argv, cwd="/tmp")
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), (
            argv,
            ours.stderr,
            theirs.stderr,
        )


def test_pid_namespace_fork_and_no_fork(scratch_ns: Callable[..., subprocess.Popen[bytes]]) -> None:
    unshare = require("unshare", "apt-get install -y util-linux")
    proc = scratch_ns(unshare, "--pid", "--fork", "--mount-proc", "sleep", "600")
    child: list[int] = []

    def sleeping_child() -> bool:
        kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        child[:] = [int(k) for k in kids]
        return bool(kids) and Path(f"/proc/{kids[0]}/comm").read_text().strip() == "sleep"

    wait_for(sleeping_child, what="pid-namespace init")
    pid = str(child[0])
    script = "echo $$; readlink /proc/self/ns/pid"
    theirs, ours = both("-t", pid, "-p", "-m", "sh", "-c", script)
    assert theirs.returncode == ours.returncode == 0, ours.stderr
    # the forked child is inside the pid namespace: a small PID, the target's namespace
    assert ours.stdout.splitlines()[1] == theirs.stdout.splitlines()[1]
    assert int(ours.stdout.split()[0]) < 100 and int(theirs.stdout.split()[0]) < 100
    # -F: no fork, so the shell itself stays outside the pid namespace; its children do not
    theirs, ours = both("-t", pid, "-p", "-F", "sh", "-c", "sh -c 'readlink /proc/self/ns/pid'")
    assert theirs.returncode == ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    # a signal kills the forked child: the parent reports it the same way
    theirs, ours = both("-t", pid, "-p", "sh", "-c", "kill -KILL $$")
    assert ours.returncode == theirs.returncode == -9


def test_uts_hostname(scratch_ns: Callable[..., subprocess.Popen[bytes]]) -> None:
    unshare = require("unshare", "apt-get install -y util-linux")
    name = f"fk-uts-{os.getpid()}"
    proc = scratch_ns(unshare, "--uts", "sh", "-c", f"hostname {name} && exec sleep 600")
    wait_for(
        lambda: Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep", what="uts target"
    )
    theirs, ours = both("-t", str(proc.pid), "-u", "hostname")
    assert theirs.returncode == ours.returncode == 0
    assert ours.stdout == theirs.stdout == f"{name}\n"


def _userns_target(start: Callable[..., subprocess.Popen[bytes]], user: str | None) -> int:
    unshare = require("unshare", "apt-get install -y util-linux")
    prefix: list[str] = []
    if user is not None:
        setpriv = require("setpriv", "apt-get install -y util-linux")
        prefix = [setpriv, f"--reuid={user}", f"--regid={user_group(user)}", "--clear-groups"]
    proc = start(*prefix, unshare, "-Urn", "sleep", "600")
    mine = os.stat("/proc/self/ns/user").st_ino
    wait_for(
        lambda: (
            Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep"
            and os.stat(f"/proc/{proc.pid}/ns/user").st_ino != mine
        ),
        what="user-namespace target",
    )
    return proc.pid


PROBE = "id -u; id -g; readlink /proc/self/ns/user /proc/self/ns/net; cat /proc/self/uid_map"


def test_user_namespace_as_root(scratch_ns: Callable[..., subprocess.Popen[bytes]]) -> None:
    pid = str(_userns_target(scratch_ns, None))
    for argv in (
        ["-U", "-n"],
        ["-U", "-n", "--preserve-credentials"],
        ["-a"],
        ["-U", "-n", "-S", "0", "-G", "0"],
    ):
        theirs, ours = both("-t", pid, *argv, "sh", "-c", PROBE)
        assert theirs.returncode == ours.returncode == 0, (argv, ours.stderr)
        assert ours.stdout == theirs.stdout, argv
    theirs, ours = both("-t", pid, "-n", "sh", "-c", "id -G")
    assert ours.stdout == theirs.stdout


def test_user_namespace_unprivileged_owner(
    scratch_ns: Callable[..., subprocess.Popen[bytes]],
) -> None:
    pid = str(_userns_target(scratch_ns, "nobody"))
    # the owner may enter: net fails in the first pass, user then net in the second
    theirs, ours = both(
        "-t", pid, "-U", "-n", "--preserve-credentials", "sh", "-c", PROBE, user="nobody"
    )
    assert theirs.returncode == ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert ours.stdout.splitlines()[0] == "0"
    # without --preserve-credentials util-linux 2.38 fails on setgroups (the namespace has
    # setgroups "deny" and the caller no CAP_SETGID outside): same status here
    theirs, ours = both("-t", pid, "-U", "-n", "true", user="nobody")
    assert ours.returncode == theirs.returncode
    # ... but not the host's network namespace of a root process
    theirs, ours = both("-t", str(os.getpid()), "-n", "true", user="nobody")
    assert theirs.returncode == ours.returncode == 1
    assert "Permission denied" in ours.stderr or "not permitted" in ours.stderr
    assert "hint: run as root" in ours.stderr


def test_exits_mid_way(netlab: Lab, scratch_ns: Callable[..., subprocess.Popen[bytes]]) -> None:
    proc = scratch_ns("ip", "netns", "exec", netlab.client, "sleep", "600")
    wait_for(lambda: Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep", what="target")
    pid = proc.pid
    stop(proc)
    out = fleetkit("nsenter", "-t", str(pid), "-n", "true")
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: no such process: {pid}\nhint: ")


@pytest.mark.parametrize(
    ("flag", "kind"), [("--ipc", "ipc"), ("--cgroup", "cgroup"), ("--time", "time")]
)
def test_ipc_cgroup_time(
    scratch_ns: Callable[..., subprocess.Popen[bytes]], flag: str, kind: str
) -> None:
    unshare = require("unshare", "apt-get install -y util-linux")
    if not os.path.exists(f"/proc/self/ns/{kind}"):
        pytest.skip(f"this kernel has no {kind} namespaces")
    proc = scratch_ns(unshare, flag, "sleep", "600")
    mine = os.stat(f"/proc/self/ns/{kind}").st_ino
    wait_for(
        lambda: (
            Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep"
            and os.stat(f"/proc/{proc.pid}/ns/{kind}").st_ino != mine
        ),
        what=f"{kind} target",
    )
    short = {"ipc": "-i", "cgroup": "-C", "time": "-T"}[kind]
    theirs, ours = both("-t", str(proc.pid), short, "readlink", f"/proc/self/ns/{kind}")
    assert theirs.returncode == ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout == os.readlink(f"/proc/{proc.pid}/ns/{kind}") + "\n"
