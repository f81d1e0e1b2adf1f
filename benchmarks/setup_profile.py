"""Where ansible's setup module spends its time on this machine, and the floor it sets.

Runs the real setup module (ansible-core's ``ansible.modules.setup`` from the installed
package, default ``gather_subset: all``) and prints one JSON line per shape:

  floor       N runs of setup's ``main()`` in this one process (imports paid once, before the
              first timed run): per run wall, CPU of this process and CPU of the commands it
              ran; per collector the same three figures; the commands by name; the seconds
              spent in ``time.sleep``. ``floor_50_on_2_cores_s`` is 50 runs' CPU on 2 cores.
  spawn       the cost of one ``run_command``-shaped spawn of /bin/true from a process the size
              of a setup run: with a ``preexec_fn`` (what ansible's run_command passes, which
              forces a full fork()) and without (CPython's vfork path).
  fork_run    N runs each in a fork of a parent that imported the setup module and its
              module_utils first (how fleetkit's agent runs it), with and without the spawn
              change fleetkit's agent makes (and with gc.freeze() in the parent).
  ideal       the floor of any runner of the real setup module for --hosts "hosts" (default
              50): one parent that imported setup and its module_utils once, a fork per host,
              at most --forks (default 5) at once, the agent's vfork spawns, each host's JSON
              result read and parsed by the parent; no controller, templating or SSH. Prints
              wall, CPU (parent + children), CPU per host and the load average, at --forks
              and at forks = hosts (the waits then overlap) for reference; --runs rounds.

usage: .venv/bin/python benchmarks/setup_profile.py [--runs N] [--only floor|spawn|fork_run|ideal]
                                                    [--vfork] [--hosts N] [--forks N]
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

ARGS = {
    "ANSIBLE_MODULE_ARGS": {
        "_ansible_module_name": "setup",
        "_ansible_remote_tmp": "~/.ansible/tmp",
        "_ansible_verbosity": 0,
    }
}


def _cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


class Probe:
    """Per-collector wall and CPU, commands run, seconds slept."""

    def __init__(self) -> None:
        self.coll: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0.0])
        self.cmds: collections.Counter[str] = collections.Counter()
        self.preexec = 0
        self.slept = 0.0

    def install(self) -> None:
        from ansible.module_utils.facts import collector

        base = collector.BaseFactCollector
        orig = base.collect_with_namespace
        probe = self

        def timed(self: Any, module: Any = None, collected_facts: Any = None) -> Any:
            w0, (c0, k0) = time.perf_counter(), _cpu()
            try:
                return orig(self, module=module, collected_facts=collected_facts)
            finally:
                w1, (c1, k1) = time.perf_counter(), _cpu()
                row = probe.coll[type(self).__name__]
                row[0] += w1 - w0
                row[1] += c1 - c0
                row[2] += k1 - k0

        base.collect_with_namespace = timed  # type: ignore[method-assign]
        popen_init = subprocess.Popen.__init__

        def init(self: Any, args: Any, *a: Any, **kw: Any) -> None:
            argv0 = args[0] if isinstance(args, (list, tuple)) else str(args).split()[0]
            if isinstance(argv0, bytes):
                argv0 = argv0.decode()
            probe.cmds[os.path.basename(argv0)] += 1
            if kw.get("preexec_fn") is not None:
                probe.preexec += 1
            popen_init(self, args, *a, **kw)

        subprocess.Popen.__init__ = init  # type: ignore[method-assign]
        sleep = time.sleep

        def nap(s: float) -> None:
            probe.slept += s
            sleep(s)

        time.sleep = nap


def run_setup_once() -> int:
    """Run setup's main() once; return the number of fact keys it printed."""
    from ansible.module_utils import basic
    from ansible.modules import setup

    basic._ANSIBLE_ARGS = json.dumps(ARGS).encode()
    basic._ANSIBLE_PROFILE = "legacy"
    out, real = io.StringIO(), sys.stdout
    sys.stdout = out
    try:
        setup.main()
    except SystemExit:
        pass
    finally:
        sys.stdout = real
    text = out.getvalue()
    return len(json.loads(text[text.index("{") :])["ansible_facts"])


def measure(runs: int, fn: Callable[[], Any]) -> tuple[list[float], list[float], list[float]]:
    wall, cpu, kids = [], [], []
    for _ in range(runs):
        w0, (c0, k0) = time.perf_counter(), _cpu()
        fn()
        w1, (c1, k1) = time.perf_counter(), _cpu()
        wall.append(w1 - w0)
        cpu.append(c1 - c0)
        kids.append(k1 - k0)
    return wall, cpu, kids


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def shape_floor(runs: int, vfork: bool = False) -> dict[str, Any]:
    if vfork:
        from fleetkit.playbook.connection._module_agent import _cheap_spawn

        _cheap_spawn()
    probe = Probe()
    keys = run_setup_once()  # imports and first-run caches out of the timed runs
    probe.install()
    wall, cpu, kids = measure(runs, run_setup_once)
    per = {
        name: {
            "wall_s": round(w / runs, 4),
            "cpu_s": round(c / runs, 4),
            "cmd_cpu_s": round(k / runs, 4),
        }
        for name, (w, c, k) in sorted(probe.coll.items(), key=lambda kv: -(kv[1][1] + kv[1][2]))
    }
    total = statistics.median(c + k for c, k in zip(cpu, kids, strict=True))
    return {
        "bench": "setup_floor",
        "spawn": "vfork" if vfork else "fork (ansible's run_command as is)",
        "fact_keys": keys,
        "runs": runs,
        "wall_s": round(statistics.median(wall), 4),
        "cpu_s": round(statistics.median(cpu), 4),
        "cmd_cpu_s": round(statistics.median(kids), 4),
        "cpu_total_s": round(total, 4),
        "floor_50_on_2_cores_s": round(total * 50 / 2, 2),
        "commands_per_run": sum(probe.cmds.values()) / runs,
        "commands_with_preexec_fn_per_run": probe.preexec / runs,
        "commands": {k: v / runs for k, v in probe.cmds.most_common()},
        "slept_s_per_run": round(probe.slept / runs, 3),
        "rss_mib": round(_rss_mib(), 1),
        "collectors": per,
    }


def shape_spawn(runs: int) -> dict[str, Any]:
    run_setup_once()  # the process as large as a setup run makes it
    out: dict[str, Any] = {"bench": "setup_spawn", "runs": runs, "rss_mib": round(_rss_mib(), 1)}
    for label, pre in (("preexec_fn", lambda: None), ("vfork", None)):

        def one(pre: Any = pre) -> None:
            subprocess.run(["/bin/true"], preexec_fn=pre, stdout=subprocess.PIPE, check=True)

        wall, cpu, kids = measure(runs, one)
        out[label] = {
            "wall_ms": round(statistics.median(wall) * 1000, 3),
            "cpu_ms": round(statistics.mean(cpu) * 1000, 3),
            "child_cpu_ms": round(statistics.mean(kids) * 1000, 3),
        }
    return out


def _forked(vfork: bool, freeze: bool) -> tuple[float, float]:
    """One setup run in a fork; (wall, CPU of the fork and its commands) as the parent sees."""
    import gc

    from fleetkit.playbook.connection._module_agent import _cheap_spawn

    if freeze:
        gc.freeze()
    w0, (_c0, k0) = time.perf_counter(), _cpu()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            if vfork:
                _cheap_spawn()
            run_setup_once()
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    w1, (_c1, k1) = time.perf_counter(), _cpu()
    if freeze:
        gc.unfreeze()
    if status != 0:
        raise SystemExit("setup failed in the fork")
    return w1 - w0, k1 - k0


VARIANTS = {"fork": (False, False), "vfork": (True, False), "vfork_gc_freeze": (True, True)}


def shape_fork_run(runs: int) -> dict[str, Any]:
    run_setup_once()  # the parent has setup and its module_utils imported
    out: dict[str, Any] = {
        "bench": "setup_fork_run",
        "runs": runs,
        "parent_rss_mib": round(_rss_mib(), 1),
    }
    res: dict[str, list[tuple[float, float]]] = {k: [] for k in VARIANTS}
    for _ in range(runs):  # alternating
        for name, (vfork, freeze) in VARIANTS.items():
            res[name].append(_forked(vfork, freeze))
    for name, rows in res.items():
        out[name] = {
            "wall_s": round(statistics.median(r[0] for r in rows), 4),
            "cpu_s": round(statistics.median(r[1] for r in rows), 4),
        }
    return out


def _ideal_child(out_path: str) -> None:
    """In a host's fork: run setup with its stdout in out_path, the agent's spawns; exit."""
    from fleetkit.playbook.connection._module_agent import _cheap_spawn

    code = 1
    try:
        fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.close(fd)
        sys.stdout = open(1, "w", closefd=False)
        _cheap_spawn()
        from ansible.module_utils import basic
        from ansible.modules import setup

        basic._ANSIBLE_ARGS = json.dumps(ARGS).encode()
        basic._ANSIBLE_PROFILE = "legacy"
        try:
            setup.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
        sys.stdout.flush()
    finally:
        os._exit(code)


def _ideal_round(hosts: int, forks: int, tmp: str) -> dict[str, Any]:
    """hosts setup runs, forks at once, in forks of this (preloaded) process; figures."""
    load0 = os.getloadavg()[0]
    w0, (c0, k0) = time.perf_counter(), _cpu()
    running: dict[int, str] = {}
    keys: list[int] = []
    started = 0
    while started < hosts or running:
        while started < hosts and len(running) < forks:
            path = os.path.join(tmp, f"host{started}.json")
            pid = os.fork()
            if pid == 0:
                _ideal_child(path)
            running[pid] = path
            started += 1
        pid, status = os.wait()
        path = running.pop(pid)
        if status != 0:
            raise SystemExit(f"setup failed in a host's fork: status {status}")
        with open(path, "rb") as fh:
            text = fh.read()
        os.unlink(path)
        keys.append(len(json.loads(text[text.index(b"{") :])["ansible_facts"]))
    w1, (c1, k1) = time.perf_counter(), _cpu()
    return {
        "forks": forks,
        "wall_s": round(w1 - w0, 3),
        "cpu_s": round((c1 - c0) + (k1 - k0), 3),
        "parent_cpu_s": round(c1 - c0, 3),
        "cpu_per_host_s": round((k1 - k0) / hosts, 4),
        "fact_keys": min(keys),
        "loadavg_before": round(load0, 2),
        "loadavg_after": round(os.getloadavg()[0], 2),
    }


def shape_ideal(runs: int, hosts: int, forks: int) -> dict[str, Any]:
    import importlib
    import tempfile

    from ansible.modules import setup  # noqa: F401  (and, through it, the facts module_utils)

    from fleetkit.playbook.connection import _module_agent  # noqa: F401

    # what a setup run imports lazily (its JSON profiles): in the parent too, as the agent's
    # preload has them
    for name in ("c2m", "m2c"):
        importlib.import_module(
            f"ansible.module_utils._internal._json._profiles._module_legacy_{name}"
        )
    "".encode("ascii")

    out: dict[str, Any] = {"bench": "setup_ideal", "hosts": hosts, "rounds": []}
    with tempfile.TemporaryDirectory(prefix="fleetkit-ideal-") as tmp:
        for _ in range(runs):  # alternating forks and forks = hosts
            out["rounds"].append(_ideal_round(hosts, forks, tmp))
            out["rounds"].append(_ideal_round(hosts, hosts, tmp))
    for label, n in (("at_forks", forks), ("at_forks_all", hosts)):
        rows = [r for r in out["rounds"] if r["forks"] == n]
        out[label] = {
            "forks": n,
            "wall_s": statistics.median(r["wall_s"] for r in rows),
            "cpu_s": statistics.median(r["cpu_s"] for r in rows),
            "cpu_per_host_s": statistics.median(r["cpu_per_host_s"] for r in rows),
        }
    out["parent_rss_mib"] = round(_rss_mib(), 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--only", action="append", choices=["floor", "spawn", "fork_run", "ideal"])
    ap.add_argument("--hosts", type=int, default=50, help="ideal: hosts")
    ap.add_argument("--forks", type=int, default=5, help="ideal: at most this many at once")
    ap.add_argument(
        "--vfork",
        action="store_true",
        help="floor: with the agent's spawn change (no-op preexec_fn dropped)",
    )
    args = ap.parse_args()
    shapes: dict[str, Callable[[int], dict[str, Any]]] = {
        "floor": lambda n: shape_floor(n, args.vfork),
        "spawn": shape_spawn,
        "fork_run": shape_fork_run,
        "ideal": lambda n: shape_ideal(n, args.hosts, args.forks),
    }
    for name, fn in shapes.items():
        if args.only and name not in args.only:
            continue
        if name == "ideal" and not args.only:
            continue  # a minute of both cores: only when asked for
        line = fn(args.runs if name != "spawn" else args.runs * 20)
        line["loadavg"] = round(os.getloadavg()[0], 2)
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
