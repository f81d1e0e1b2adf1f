"""fleetkit play vs ansible-playbook on the same playbook, same machine, same run.

Shapes (one JSON line each):
  local_50x10   10 `command: /bin/true` tasks x 50 local hosts, default forks (5), both tools
  ssh_10x10     10 tasks x 10 SSH hosts (network namespaces + sshd, root only), both tools
  local_1000x10 10 tasks x 1000 local hosts with -f 100, fleetkit only (wall time, peak RSS)

usage: python benchmarks/play.py [--runs N] [--ansible-runs N] [--skip-ssh]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def write_case(d: Path, hosts: int) -> None:
    lines = ["[fleet]"] + [f"h{i:04d}" for i in range(hosts)]
    lines += ["", "[all:vars]", "ansible_connection=local"]
    (d / "inventory.ini").write_text("\n".join(lines) + "\n")
    tasks = "".join(f"    - name: task {i}\n      command: /bin/true\n" for i in range(10))
    (d / "pb.yml").write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{tasks}")


def timed(argv: list[str], cwd: Path) -> tuple[float, int]:
    env = dict(
        os.environ,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_RETRY_FILES_ENABLED="False",
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=1800, check=False)
    elapsed = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({p.returncode}): {p.stderr.decode()[-500:]}")
    rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(rss_kib, before)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ansible-runs", type=int, default=1)
    ap.add_argument("--skip-ssh", action="store_true")
    args = ap.parse_args()
    fleetkit = [sys.executable, "-m", "fleetkit", "play"]
    with tempfile.TemporaryDirectory(prefix="fk-bench-play-") as tmp:
        d = Path(tmp)
        big = d / "big"
        big.mkdir()
        write_case(big, 1000)
        res = [
            timed([*fleetkit, "-i", "inventory.ini", "pb.yml", "-f", "100"], big)
            for _ in range(args.runs)
        ]
        print(
            json.dumps(
                {
                    "bench": "play_local_1000x10_f100",
                    "ours": round(statistics.median(r[0] for r in res), 3),
                    "peer": None,
                    "unit": "s",
                    "speedup": None,
                    "rss_mib": round(max(r[1] for r in res) / 1024, 1),
                    "forks": 100,
                    "runs": len(res),
                }
            ),
            flush=True,
        )
        write_case(d, 50)
        ours = [timed([*fleetkit, "-i", "inventory.ini", "pb.yml"], d)[0] for _ in range(args.runs)]
        peer = [
            timed([str(BIN / "ansible-playbook"), "-i", "inventory.ini", "pb.yml"], d)[0]
            for _ in range(args.ansible_runs)
        ]
        o, p = statistics.median(ours), statistics.median(peer)
        print(
            json.dumps(
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
            ),
            flush=True,
        )
        if not args.skip_ssh and os.geteuid() == 0:
            bench_ssh(d / "ssh", args)
    return 0


def bench_ssh(d: Path, args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.playbook._netns import ssh_fleet

    d.mkdir()
    with ssh_fleet(d, 10) as _:
        tasks = "".join(f"    - name: task {i}\n      command: /bin/true\n" for i in range(10))
        (d / "pb.yml").write_text(f"- hosts: nodes\n  gather_facts: false\n  tasks:\n{tasks}")
        fleetkit = [sys.executable, "-m", "fleetkit", "play", "-i", "inventory.ini", "pb.yml"]
        ours = [timed(fleetkit, d)[0] for _ in range(args.runs)]
        ansible = [str(BIN / "ansible-playbook"), "-i", "inventory.ini", "pb.yml"]
        peer = [timed(ansible, d)[0] for _ in range(args.ansible_runs)]
        o, p = statistics.median(ours), statistics.median(peer)
        print(
            json.dumps(
                {
                    "bench": "play_ssh_10x10",
                    "ours": round(o, 3),
                    "peer": round(p, 3),
                    "unit": "s",
                    "speedup": round(p / o, 1),
                    "forks": 5,
                    "runs": len(ours),
                    "peer_runs": len(peer),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
