"""fleetkit play vs ansible-playbook on the same playbook, same machine, same run.

Shapes (one JSON line each):
  local_50x10   10 `command: /bin/true` tasks x 50 local hosts, default forks (5), both tools
  ssh_10x10     10 tasks x 10 SSH hosts (network namespaces + sshd, root only), both tools
  local_1000x10 10 tasks x 1000 local hosts with -f 100, fleetkit only (wall time, peak RSS)
  local_1000x10_modules  the same with 10 `stat` tasks (modules from ansible's own code, run
                on fleetkit's agent): wall time and peak controller RSS
  facts_50      gather_facts (ansible's setup module) on 50 local hosts, both tools
  ssh_roles_10  a play with 3 roles (30 tasks: templates, copy, command/shell, set_fact, assert,
                a loop; handlers notified by the templates) x 10 SSH hosts, both tools; every
                run starts from empty host directories, so the templates change and the
                handlers run

--render copy renders the role templates with `copy: content="{{ lookup('template', ...) }}"`
instead of the `template` module (for a fleetkit without it). --only ssh_roles runs that
shape alone. Every line carries the 1-minute load average at its end.

The SSH shapes and facts_50 also run ansible-core with Mitogen (`pip install -e '.[bench]'`;
its mitogen_linear strategy) and with pipelining, as extra peers on the same line
(`mitogen`/`speedup_mitogen`, `pipelining`/`speedup_pipelining`); without mitogen installed
those keys are null and the line says why.

--hosts podman runs the SSH shapes on 10 podman containers of the tests' Debian 12 root file
system (sshd only, root's stock login, /usr/bin/python3 for every tool) instead of network
namespaces that share this machine's sshd, /root and its ~/.bashrc.

As root, every tool's run is measured in CPU seconds too (`cpu_s`, `<peer>_cpu_s`): the script
moves itself into a cgroup of its own, so the whole process tree counts (ssh clients and
masters, the netns hosts' sshd sessions, agents and commands) and nothing else on the machine
(podman hosts are started in that group too, with --cgroup-parent, on cgroup v1).
--baseline-src DIR alternates each fleetkit run with one of the fleetkit in DIR (`before`,
`before_cpu_s`): an A/B in one run on a shared machine.

usage: python benchmarks/play.py [--runs N] [--ansible-runs N] [--skip-ssh]
                                 [--only ssh_roles] [--render template|copy]
                                 [--hosts netns|podman] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

BIN = Path(sys.executable).parent
ROLES = ("base", "app", "monitoring")
RECAP = re.compile(r"^(\S+)\s+: (ok=.*)$", re.M)


def write_case(d: Path, hosts: int, task: str = "command: /bin/true", tasks: int = 10) -> None:
    lines = ["[fleet]"] + [f"h{i:04d}" for i in range(hosts)]
    lines += ["", "[all:vars]", "ansible_connection=local"]
    (d / "inventory.ini").write_text("\n".join(lines) + "\n")
    body = "".join(f"    - name: task {i}\n      {task}\n" for i in range(tasks))
    tasks_yaml = body
    (d / "pb.yml").write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{tasks_yaml}")


def _render(role: str, src: str, dest: str, render: str) -> str:
    if render == "template":
        return f'  ansible.builtin.template:\n    src: {src}\n    dest: {dest}\n    mode: "0644"\n'
    return (
        "  ansible.builtin.copy:\n"
        f"    content: \"{{{{ lookup('template', '{src}') }}}}\"\n"
        f'    dest: {dest}\n    mode: "0644"\n'
    )


def write_roles(d: Path, hosts_group: str, render: str) -> None:
    """roles.yml + roles/{base,app,monitoring}: 10 tasks, 2 templates, 1 handler each."""
    for i, role in enumerate(ROLES):
        r = d / "roles" / role
        for sub in ("defaults", "tasks", "handlers", "templates", "meta"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        (r / "meta" / "main.yml").write_text("---\ndependencies: []\n")
        (r / "defaults" / "main.yml").write_text(
            f'---\n{role}_dir: "{{{{ bench_root }}}}/{{{{ inventory_hostname }}}}/{role}"\n'
            f'{role}_version: "1.{i}"\n'
            f"{role}_items: [alpha, beta, gamma]\n"
            f"{role}_defaults:\n  port: {8080 + i}\n  workers: 4\n  debug: false\n"
        )
        (r / "templates" / "main.conf.j2").write_text(
            f"# {role} on {{{{ inventory_hostname }}}}\n[{role}]\n"
            f"{{% for k, v in {role}_settings | dictsort %}}\n{{{{ k }}}} = {{{{ v }}}}\n"
            "{% endfor %}\n"
            f"{{% for h in groups['{hosts_group}'] | sort %}}\npeer = {{{{ h }}}}\n"
            "{% endfor %}\n"
        )
        (r / "templates" / "env.j2").write_text(
            f"{{% for item in {role}_items %}}\n{{{{ item | upper }}}}_ENABLED=1\n"
            f"{{% endfor %}}\nVERSION={{{{ {role}_version }}}}\n"
        )
        dr = f"{{{{ {role}_dir }}}}"
        tasks = [
            f"- name: {role} directory\n  ansible.builtin.command: mkdir -p {dr}\n"
            f'  args:\n    creates: "{dr}"\n',
            f"- name: {role} settings\n  ansible.builtin.set_fact:\n"
            f"    {role}_settings: \"{{{{ {role}_defaults | combine({{'host': "
            f'inventory_hostname}}) }}}}"\n',
            f"- name: {role} main config\n"
            + _render(role, "main.conf.j2", f'"{dr}/main.conf"', render)
            + f"  notify: reload {role}\n",
            f"- name: {role} environment\n"
            + _render(role, "env.j2", f'"{dr}/env"', render)
            + f"  notify: reload {role}\n",
            f"- name: {role} readme\n  ansible.builtin.copy:\n"
            f'    content: "managed by the {role} role\\n"\n    dest: "{dr}/README"\n',
            f"- name: {role} item files\n  ansible.builtin.copy:\n"
            f'    content: "{{{{ item }}}}\\n"\n    dest: "{dr}/item-{{{{ item }}}}"\n'
            f'  loop: "{{{{ {role}_items }}}}"\n',
            f"- name: {role} count config lines\n"
            f'  ansible.builtin.command: grep -c . "{dr}/main.conf"\n'
            f"  register: {role}_lines\n  changed_when: false\n",
            f"- name: {role} config is complete\n  ansible.builtin.assert:\n"
            f"    that: {role}_lines.stdout | int > 3\n    quiet: true\n",
            f"- name: {role} version stamp\n"
            f'  ansible.builtin.shell: echo {{{{ {role}_version }}}} > "{dr}/version"\n',
            f"- name: {role} summary\n  ansible.builtin.debug:\n"
            f'    msg: "{{{{ {role}_settings.host }}}} runs {role} {{{{ {role}_version }}}}"\n',
        ]
        (r / "tasks" / "main.yml").write_text("---\n" + "\n".join(tasks))
        (r / "handlers" / "main.yml").write_text(
            f'---\n- name: reload {role}\n  ansible.builtin.command: touch "{dr}/reloaded"\n'
        )
    roles = "".join(f"    - role: {role}\n" for role in ROLES)
    (d / "roles.yml").write_text(
        f"---\n- name: three roles\n  hosts: {hosts_group}\n  gather_facts: false\n"
        f"  roles:\n{roles}"
    )


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class CpuMeter:
    """CPU seconds used by this script's whole process tree (the tools, their ssh clients and
    masters, the hosts' sshd sessions and agents): a cgroup the script moves itself into
    (cgroup v1 cpuacct or v2; root only). Other users of a shared machine do not count."""

    def __init__(self) -> None:
        self.group: Path | None = None
        self.usage: Callable[[], float] | None = None
        if os.geteuid() != 0:
            return
        v1 = Path("/sys/fs/cgroup/cpuacct")
        v2 = Path("/sys/fs/cgroup")
        if (v1 / "cpuacct.usage").is_file():
            group = v1 / f"fk-bench-play-{os.getpid()}"

            def usage() -> float:
                return int((group / "cpuacct.usage").read_text()) / 1e9

        elif (v2 / "cgroup.controllers").is_file():
            group = v2 / f"fk-bench-play-{os.getpid()}"

            def usage() -> float:
                stat = dict(line.split() for line in (group / "cpu.stat").read_text().splitlines())
                return int(stat["usage_usec"]) / 1e6

        else:
            return
        try:
            group.mkdir()
            (group / "cgroup.procs").write_text(str(os.getpid()))
        except OSError:
            return
        self.group, self.usage = group, usage

    def now(self) -> float | None:
        """The tree's CPU seconds so far (None: no cgroup here)."""
        return self.usage() if self.usage is not None else None

    def close(self) -> None:
        """Move back to the root group and remove ours (and the same-named groups podman
        made in the other v1 hierarchies for --cgroup-parent)."""
        if self.group is None:
            return
        try:
            (self.group.parent / "cgroup.procs").write_text(str(os.getpid()))
        except OSError:
            pass
        for top in {self.group, *self.group.parent.parent.glob(f"*/{self.group.name}")}:
            # podman's own groups under ours (conmon, emptied containers) first
            for sub, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(sub)


CPU: CpuMeter | None = None
# fleetkit's src directory of the "before" side of an A/B run (--baseline-src)
BASELINE: dict[str, str] = {}


def timed_cpu(
    argv: list[str], cwd: Path, extra_env: dict[str, str] | None = None
) -> tuple[float, float | None, str]:
    """Wall seconds, CPU seconds of the whole tree (None without a cgroup) and stdout."""
    c0 = CPU.now() if CPU is not None else None
    r0 = _children_cpu_s()
    elapsed, _, out = timed(argv, cwd, extra_env)
    c1 = CPU.now() if CPU is not None else None
    if c0 is None or c1 is None:  # no cgroup (not root): the processes the tool waited for
        return elapsed, _children_cpu_s() - r0, out
    return elapsed, c1 - c0, out


def timed(
    argv: list[str], cwd: Path, extra_env: dict[str, str] | None = None
) -> tuple[float, int, str]:
    env = dict(
        os.environ,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_RETRY_FILES_ENABLED="False",
        **(extra_env or {}),
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=1800, check=False)
    elapsed = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(
            f"{argv[0]} failed ({p.returncode}): {(p.stdout + p.stderr).decode()[-2000:]}"
        )
    rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(rss_kib, before), p.stdout.decode()


def mitogen_env() -> dict[str, str] | None:
    """ansible-playbook with Mitogen's mitogen_linear strategy (None: mitogen not installed)."""
    try:
        import ansible_mitogen  # type: ignore[import-not-found]
    except ImportError:
        return None
    plugins = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    return {"ANSIBLE_STRATEGY_PLUGINS": str(plugins), "ANSIBLE_STRATEGY": "mitogen_linear"}


PIPELINING = {"ANSIBLE_PIPELINING": "True"}
# the ansible variants to run (--peers)
PEERS = {"peer", "pipelining", "mitogen"}


def ansible_peers(
    argv: list[str],
    cwd: Path,
    runs: int,
    before: Callable[[], None] | None = None,
    plain: bool = True,
) -> dict[str, object]:
    """ansible-core plain, with pipelining and with Mitogen on the same work: medians."""
    out: dict[str, object] = {}
    variants: list[tuple[str, dict[str, str] | None]] = [("pipelining", PIPELINING)]
    if plain:
        variants.insert(0, ("peer", None))
    mito = mitogen_env()
    variants.append(("mitogen", mito))
    for name, env in variants:
        if name not in PEERS:
            continue
        if name == "mitogen" and env is None:
            out["mitogen"] = None
            out["mitogen_note"] = "mitogen not installed: pip install -e '.[bench]'"
            continue
        times, cpus = [], []
        for _ in range(runs):
            if before is not None:
                before()
            wall, cpu, _out = timed_cpu(argv, cwd, env)
            times.append(wall)
            cpus.append(cpu)
        out[name] = round(statistics.median(times), 3)
        if CPU is not None and CPU.usage is not None:
            out[f"{name}_cpu_s"] = _median_cpu(cpus)
    return out


def _median_cpu(cpus: list[float | None]) -> float | None:
    got = [c for c in cpus if c is not None]
    return round(statistics.median(got), 3) if got else None


def fleetkit_runs(
    argv: list[str], cwd: Path, runs: int, before: Callable[[], None] | None = None
) -> tuple[list[tuple[float, float | None, str]], dict[str, object]]:
    """fleetkit's runs (wall, CPU, stdout); with --baseline-src, alternated run by run with the
    same command against that src tree ("before": the same keys for the old code)."""
    ours: list[tuple[float, float | None, str]] = []
    base: list[tuple[float, float | None, str]] = []
    for _ in range(runs):
        if before is not None:
            before()
        ours.append(timed_cpu(argv, cwd))
        if BASELINE:
            if before is not None:
                before()
            base.append(timed_cpu(argv, cwd, BASELINE))
    extra: dict[str, object] = {}
    if CPU is not None and CPU.usage is not None:
        extra["cpu_s"] = _median_cpu([r[1] for r in ours])
    if base:
        extra["before"] = round(statistics.median(r[0] for r in base), 3)
        extra["before_cpu_s"] = _median_cpu([r[1] for r in base])
        extra["before_src"] = BASELINE["PYTHONPATH"]
    return ours, extra


def with_speedups(ours: float, line: dict[str, object]) -> dict[str, object]:
    """Add speedup (vs ansible-core) and speedup_<peer> for the extra peers."""
    line["ours"] = round(ours, 3)
    for key in ("peer", "pipelining", "mitogen"):
        value = line.get(key)
        speed = round(float(value) / ours, 1) if isinstance(value, (int, float)) else None
        line["speedup" if key == "peer" else f"speedup_{key}"] = speed
    return line


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def emit(line: dict[str, object]) -> None:
    """Print one JSON line, with the 1-minute load average at its end."""
    print(json.dumps({**line, "loadavg": loadavg()}), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ansible-runs", type=int, default=1)
    ap.add_argument("--skip-ssh", action="store_true")
    ap.add_argument(
        "--only",
        action="append",
        choices=SHAPES,
        help="run only this shape (repeatable; default: all)",
    )
    ap.add_argument(
        "--render",
        choices=["template", "copy"],
        default="template",
        help="role templates via the template module, or copy: content= + lookup('template')",
    )
    ap.add_argument(
        "--peers",
        default="peer,pipelining,mitogen",
        help="the ansible variants to run, comma-separated (peer = plain ansible-playbook)",
    )
    ap.add_argument(
        "--hosts",
        choices=["netns", "podman"],
        default="netns",
        help="the SSH shapes' 10 hosts: network namespaces with this machine's sshd and /root, "
        "or podman containers of the tests' Debian 12 root file system running sshd",
    )
    ap.add_argument(
        "--baseline-src",
        help="A/B: also run fleetkit from this src directory (e.g. main's, exported with "
        "`git archive main src | tar -x -C DIR`), alternating run by run; adds before/before_cpu_s",
    )
    args = ap.parse_args()
    PEERS.intersection_update(args.peers.split(","))
    if args.baseline_src:
        BASELINE["PYTHONPATH"] = str(Path(args.baseline_src).resolve())
    global CPU
    CPU = CpuMeter()
    try:
        return _main(args)
    finally:
        CPU.close()


def _main(args: argparse.Namespace) -> int:
    fleetkit = [sys.executable, "-m", "fleetkit", "play"]
    with tempfile.TemporaryDirectory(prefix="fk-bench-play-") as tmp:
        d = Path(tmp)
        bench_local(d, fleetkit, args)
        if any(wanted(args, s) for s in ("ssh_10x10", "ssh_roles")) and (
            args.only or (not args.skip_ssh and os.geteuid() == 0)
        ):
            if os.geteuid() != 0:
                raise SystemExit("the SSH shapes build network namespaces: run as root")
            bench_ssh(d / "ssh", args)
    return 0


SHAPES = [
    "local_1000x10",
    "local_1000x10_modules",
    "facts_50",
    "local_50x10",
    "ssh_10x10",
    "ssh_roles",
]


def wanted(args: argparse.Namespace, shape: str) -> bool:
    """Whether --only selects ``shape`` (every shape without --only)."""
    return not args.only or shape in args.only


def peak_rss_kib(argv: list[str], cwd: Path) -> tuple[float, int]:
    """Wall time and the peak RSS of the largest process of one run (measured in a fresh
    wrapper process, so earlier runs do not count)."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
        "el = time.perf_counter() - t\n"
        "print(el, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)\n"
    )
    out = timed([sys.executable, "-c", probe, *argv], cwd)[2].split()
    if out[2] != "0":
        raise SystemExit(f"{argv[0]} failed ({out[2]}) in {cwd}")
    return float(out[0]), int(out[1])


def bench_fleet_only(
    d: Path, fleetkit: list[str], args: argparse.Namespace, name: str, task: str
) -> None:
    """1000 local hosts x 10 tasks with -f 100, fleetkit alone: wall time and peak RSS."""
    d.mkdir()
    write_case(d, 1000, task=task)
    res = [
        peak_rss_kib([*fleetkit, "-i", "inventory.ini", "pb.yml", "-f", "100"], d)
        for _ in range(args.runs)
    ]
    emit(
        {
            "bench": name,
            "ours": round(statistics.median(r[0] for r in res), 3),
            "peer": None,
            "unit": "s",
            "speedup": None,
            "rss_mib": round(max(r[1] for r in res) / 1024, 1),
            "task": task,
            "forks": 100,
            "runs": len(res),
        }
    )


def bench_local(d: Path, fleetkit: list[str], args: argparse.Namespace) -> None:
    if wanted(args, "local_1000x10"):
        bench_fleet_only(d / "big", fleetkit, args, "play_local_1000x10_f100", "command: /bin/true")
    if wanted(args, "local_1000x10_modules"):
        bench_fleet_only(
            d / "mods",
            fleetkit,
            args,
            "play_local_1000x10_modules_f100",
            "ansible.builtin.stat: path=/tmp",
        )
    if wanted(args, "facts_50"):
        bench_facts(d, fleetkit, args)
    if wanted(args, "local_50x10"):
        bench_local_50x10(d, fleetkit, args)


def bench_facts(d: Path, fleetkit: list[str], args: argparse.Namespace) -> None:
    facts = d / "facts"
    facts.mkdir()
    write_case(facts, 50, task="ansible.builtin.debug: var=ansible_facts.default_ipv4", tasks=1)
    (facts / "pb.yml").write_text(
        (facts / "pb.yml").read_text().replace("gather_facts: false", "gather_facts: true")
    )
    argv = ["-i", "inventory.ini", "pb.yml"]
    runs, extra = fleetkit_runs([*fleetkit, *argv], facts, args.runs)
    f_ours = [r[0] for r in runs]
    line: dict[str, object] = {"bench": "play_facts_50", "unit": "s", "forks": 5}
    line["ours_cpu_s"] = _median_cpu([r[1] for r in runs])
    line.update((k, v) for k, v in extra.items() if k != "cpu_s")
    line.update(ansible_peers([str(BIN / "ansible-playbook"), *argv], facts, args.ansible_runs))
    emit(with_speedups(statistics.median(f_ours), {**line, "runs": len(f_ours)}))


def bench_local_50x10(d: Path, fleetkit: list[str], args: argparse.Namespace) -> None:
    write_case(d, 50)
    ours = [timed([*fleetkit, "-i", "inventory.ini", "pb.yml"], d)[0] for _ in range(args.runs)]
    peer = [
        timed([str(BIN / "ansible-playbook"), "-i", "inventory.ini", "pb.yml"], d)[0]
        for _ in range(args.ansible_runs)
    ]
    o, p = statistics.median(ours), statistics.median(peer)
    emit(
        {
            "bench": "play_local_50x10",
            "ours": round(o, 3),
            "peer": round(p, 3),
            "unit": "s",
            "speedup": round(p / o, 1),
            "forks": 5,
            "runs": len(ours),
            "peer_runs": len(peer),
        }
    )


@contextlib.contextmanager
def podman_fleet(d: Path, n_hosts: int) -> Iterator[Path]:
    """n_hosts podman containers of the tests' cached Debian 12 root file system, each running
    only sshd (key auth, root's stock Debian login, /usr/bin/python3) on a podman network made
    here; writes d/inventory.ini (group ``nodes``) and removes everything on exit. The role
    shape's output directory is bind-mounted at the same path in every container."""
    from tests.playbook._debian import _RUN, build_rootfs, cache_key
    from tests.playbook._netns import _reserve_subnet, wait_port

    podman = shutil.which("podman")
    mmdebstrap = shutil.which("mmdebstrap")
    if podman is None or mmdebstrap is None:
        raise SystemExit("--hosts podman needs podman and mmdebstrap (apt-get install -y ...)")
    tar = build_rootfs(mmdebstrap)
    tag = f"localhost/fk-bench-play:{cache_key()}-{os.getpid()}"
    network = f"fkbench{os.getpid()}"
    names = [f"fkbench{os.getpid()}-{i}" for i in range(n_hosts)]
    out = d / "roles-out"
    out.mkdir(parents=True, exist_ok=True)
    subnet, lock = _reserve_subnet(190 + os.getpid() % 10)

    def run(*argv: str) -> None:
        subprocess.run(argv, check=True, capture_output=True, timeout=600)

    # the containers in this script's cgroup: their sshd sessions and agents count in cpu_s
    v1 = CPU is not None and CPU.group is not None and CPU.group.parent.name == "cpuacct"
    parent = ["--cgroup-parent", f"/{CPU.group.name}"] if v1 and CPU and CPU.group else []

    try:
        run(podman, "import", "-q", str(tar), tag)
        run(podman, "network", "create", "--internal", "--subnet", f"10.{subnet}.0.0/16", network)
        key = d / "id_ed25519"
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        (d / "id_ed25519.pub").chmod(0o644)
        lines = ["[nodes]"]
        for i, name in enumerate(names):
            ip = f"10.{subnet}.{10 + i}.2"
            run(
                podman, "run", "-d", "--name", name, "--hostname", f"node{i}",
                "--network", network, "--ip", ip, *_RUN[1:7], *parent,
                "-v", f"{key}.pub:/root/.ssh/authorized_keys:ro",
                "-v", f"{out}:{out}", tag,
                "/bin/sh", "-c", "mkdir -p /run/sshd && ssh-keygen -A && exec /usr/sbin/sshd -D -e",
            )  # fmt: skip
            lines.append(
                f"node{i} ansible_host={ip} ansible_user=root ansible_ssh_private_key_file={key}"
                " ansible_python_interpreter=/usr/bin/python3"
            )
        for i in range(n_hosts):
            wait_port(names[i], f"10.{subnet}.{10 + i}.2", 22, timeout_s=60)
        (d / "inventory.ini").write_text("\n".join(lines) + "\n")
        yield d
    finally:
        subprocess.run([podman, "rm", "-f", "-t", "0", *names], capture_output=True, check=False)
        subprocess.run([podman, "network", "rm", "-f", network], capture_output=True, check=False)
        subprocess.run([podman, "rmi", "-f", tag], capture_output=True, check=False)
        lock.unlink(missing_ok=True)


def bench_ssh(d: Path, args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.playbook._netns import ssh_fleet

    d.mkdir()
    fleetkit = [sys.executable, "-m", "fleetkit", "play", "-i", "inventory.ini"]
    ansible = [str(BIN / "ansible-playbook"), "-i", "inventory.ini"]
    fleet = podman_fleet(d, 10) if args.hosts == "podman" else ssh_fleet(d, 10)
    with fleet as _:
        if wanted(args, "ssh_10x10"):
            tasks = "".join(f"    - name: task {i}\n      command: /bin/true\n" for i in range(10))
            (d / "pb.yml").write_text(f"- hosts: nodes\n  gather_facts: false\n  tasks:\n{tasks}")
            ours, extra = fleetkit_runs([*fleetkit, "pb.yml"], d, args.runs)
            line: dict[str, object] = {"bench": "play_ssh_10x10", "unit": "s", "forks": 5}
            line["hosts"] = args.hosts
            line.update(extra)
            line.update(ansible_peers([*ansible, "pb.yml"], d, args.ansible_runs))
            line.update(runs=len(ours), peer_runs=args.ansible_runs)
            emit(with_speedups(statistics.median(r[0] for r in ours), line))
        if wanted(args, "ssh_roles"):
            bench_ssh_roles(d, fleetkit, ansible, args)


def bench_ssh_roles(
    d: Path, fleetkit: list[str], ansible: list[str], args: argparse.Namespace
) -> None:
    """The role-based shape on the SSH hosts: every run starts from empty host directories."""
    root = d / "roles-out"
    write_roles(d, "nodes", args.render)
    with (d / "inventory.ini").open("a") as f:
        f.write(f"\n[nodes:vars]\nbench_root={root}\n")

    def clean() -> None:
        # the directory stays (the podman hosts have it bind-mounted): its contents go
        root.mkdir(exist_ok=True)
        for child in root.iterdir():
            shutil.rmtree(child)

    def run(argv: list[str]) -> tuple[float, str]:
        clean()
        elapsed, _, out = timed([*argv, "roles.yml"], d)
        return elapsed, out

    ours, extra = fleetkit_runs([*fleetkit, "roles.yml"], d, args.runs, before=clean)
    peer = [run(ansible) for _ in range(args.ansible_runs)] if "peer" in PEERS else []
    o = statistics.median(r[0] for r in ours)
    p = statistics.median(r[0] for r in peer) if peer else None
    recap_ours = sorted(RECAP.findall(ours[-1][2]))
    # the recap is compared with plain ansible's run (None: not run, see --peers)
    recap_peer = sorted(RECAP.findall(peer[-1][1])) if peer else None
    line: dict[str, object] = {
        "bench": "play_ssh_roles_10",
        "hosts": args.hosts,
        "peer": round(p, 3) if p is not None else None,
        "unit": "s",
        "roles": len(ROLES),
        "tasks": 10 * len(ROLES),
        "render": args.render,
        "same_recap": recap_ours == recap_peer if recap_peer is not None else None,
        "recap": recap_ours[0][1].split() if recap_ours else None,
        "forks": 5,
        "runs": len(ours),
        "peer_runs": len(peer),
        **extra,
    }
    extra = ansible_peers(
        [*ansible, "roles.yml"],
        d,
        args.ansible_runs,
        before=clean,
        plain=False,
    )
    line.update(extra)
    emit(with_speedups(o, line))


if __name__ == "__main__":
    sys.exit(main())
