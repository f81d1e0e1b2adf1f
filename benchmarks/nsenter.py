"""fleetkit nsenter / ns capture / ns dig against util-linux nsenter, tcpdump and dig.

Run as root (it builds two network namespaces and removes them):

    .venv/bin/python benchmarks/nsenter.py [--runs 21] [--load-seconds 3] [--capture-reps 3]
        [--shapes nsenter-true,capture-lo-rate,capture-lo-max,capture-lo-max-text,read-text,dig]

Prints one JSON line per shape:
  nsenter-true   wall time of `nsenter -t PID -n true` (median of --runs), ours vs util-linux,
                 with bare `python -c pass` and `python -I -S -c pass` as the floor; the commands
                 run interleaved; ours with bytecode caching on (as an installed package has)
  capture-lo-*   the same loopback flood of small UDP packets in a namespace, captured by
                 `fleetkit ns capture -i lo -w` and by `tcpdump -i lo -w` (--capture-reps runs
                 each, alternating who goes first; medians): packets/s captured and kernel drops
                 ("speedup" = ours/peer packets captured per second). Flat out, the sender shares
                 the CPU with the capturer, so the offered rate differs between the two; the
                 capturer's CPU time per captured packet (flood only, start-up excluded; the
                 scheduler's nanosecond accounting) is reported too: on a shared machine it is
                 the figure load does not move. capture-lo-max-text: the same, printing the
                 lines (to /dev/null) instead of -w
  read-text      `ns capture -r FILE -n` vs `tcpdump -r FILE -n` on one capture of a loopback
                 UDP flood and a TCP flow (written by tcpdump): CPU per packet and wall time
  dig            wall time of `fleetkit ns dig +short @SERVER NAME` vs `nsenter -n dig +short`
  capture-remote-rate
                 a "node" namespace with sshd (play's ssh_fleet) and a pod process in it; the
                 same loopback flood at --rate in the node, captured from here with
                 `fleetkit ns capture --ssh root@NODE -t PID -i lo -w FILE` (the node's capture
                 streams pcap back over ssh): the node's kernel drops, and the end-to-end loss
                 (packets sent minus records in the local file); --capture-reps runs, medians
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLEETKIT = str(ROOT / ".venv" / "bin" / "fleetkit")
SERVER = "10.99.0.53"


def sh(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, timeout=60)


def wall(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=60, env=env)
    return time.perf_counter() - start


def median_walls(
    argvs: list[list[str]], runs: int, env: dict[str, str] | None = None
) -> list[float]:
    """Median wall time of each command, runs interleaved (a load spike hits all of them)."""
    for argv in argvs:
        wall(argv, env)  # warm-up (and bytecode cache)
    times: list[list[float]] = [[] for _ in argvs]
    for _ in range(runs):
        for i, argv in enumerate(argvs):
            times[i].append(wall(argv, env))
    return [statistics.median(t) for t in times]


FLOOD = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.monotonic()
end = start + float(sys.argv[1])
rate = float(sys.argv[2])  # packets/s; 0: as fast as possible
n = 0
payload = b"x" * 18
while time.monotonic() < end:
    for _ in range(100):
        s.sendto(payload, ("127.0.0.1", 9999))
    n += 100
    if rate:
        ahead = start + n / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
print(n)
"""


def flood(ns: str, seconds: float, rate: float) -> int:
    out = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", FLOOD, str(seconds), str(rate)],
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    )
    return int(out.stdout.strip())


def wait_listening(proc: subprocess.Popen[str]) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "listening on" in line:
            return
        if not line and proc.poll() is not None:
            raise RuntimeError(f"capture exited early: {proc.stderr.read()}")
    raise RuntimeError("capture did not start")


def cpu_seconds(pid: int) -> float:
    """CPU time of a process's threads so far, in nanoseconds of the scheduler's accounting
    (/proc/PID/task/*/schedstat; /proc/PID/stat's 10 ms ticks are too coarse for a few
    hundred thousand packets)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def capture_run(
    argv: list[str], ns: str, seconds: float, rate: float
) -> tuple[int, int, int, float]:
    """(sent, captured, dropped, CPU seconds while the flood ran) for one capture program."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # nsenter execs tcpdump, ip netns exec execs it: the PID is the capturer's either way
    try:
        wait_listening(proc)
        cpu_before = cpu_seconds(proc.pid)  # start-up excluded
        sent = flood(ns, seconds, rate)
        time.sleep(0.5)  # let the capture drain its queue before the stop signal
        cpu = cpu_seconds(proc.pid) - cpu_before
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    captured = int(re.search(r"(\d+) packets captured", err).group(1))  # type: ignore[union-attr]
    dropped = int(re.search(r"(\d+) packets dropped by kernel", err).group(1))  # type: ignore[union-attr]
    return sent, captured, dropped, round(cpu, 4)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--load-seconds", type=float, default=3.0)
    parser.add_argument(
        "--capture-reps", type=int, default=3, help="capture runs per tool (medians reported)"
    )
    parser.add_argument("--rate", type=float, default=50000.0, help="packets/s for capture-lo-rate")
    parser.add_argument(
        "--shapes",
        default="nsenter-true,capture-lo-rate,capture-lo-max,capture-lo-max-text,read-text,dig,"
        "capture-remote-rate",
        help="comma-separated subset of the shapes to run",
    )
    args = parser.parse_args()
    shapes = set(args.shapes.split(","))
    if os.geteuid() != 0:
        print("benchmarks/nsenter.py: needs root (network namespaces)", file=sys.stderr)
        return 0
    tag = f"fkb{os.getpid()}"
    client, server = f"{tag}c", f"{tag}s"
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(f"/tmp/{tag}")
    tmp.mkdir()
    try:
        sh("ip", "netns", "add", client)
        sh("ip", "netns", "add", server)
        sh("ip", "link", "add", f"{tag}a", "type", "veth", "peer", "name", f"{tag}b")
        sh("ip", "link", "set", f"{tag}a", "netns", client)
        sh("ip", "link", "set", f"{tag}b", "netns", server)
        sh("ip", "-n", client, "addr", "add", "10.99.0.2/24", "dev", f"{tag}a")
        sh("ip", "-n", server, "addr", "add", f"{SERVER}/24", "dev", f"{tag}b")
        for ns, dev in ((client, f"{tag}a"), (server, f"{tag}b")):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        procs.append(
            subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    server,
                    dnsmasq,
                    "--keep-in-foreground",
                    "--no-resolv",
                    "--no-hosts",
                    "--bind-interfaces",
                    f"--listen-address={SERVER}",
                    "--pid-file=",
                    "--user=root",
                    "--address=/web.bench.test/10.99.0.80",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        target = subprocess.Popen(["ip", "netns", "exec", client, "sleep", "3600"])
        procs.append(target)
        me = os.stat("/proc/self/ns/net").st_ino
        deadline = time.monotonic() + 10
        while os.stat(f"/proc/{target.pid}/ns/net").st_ino == me and time.monotonic() < deadline:
            time.sleep(0.01)
        pid = str(target.pid)

        # 1. nsenter wall time
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        if "nsenter-true" in shapes:
            nsenter_true(pid, args.runs, env)

        # 2. capture under a loopback flood of small UDP packets: a fixed rate, then flat out
        for shape, rate in (
            ("capture-lo-rate", args.rate),
            ("capture-lo-max", 0.0),
            ("capture-lo-max-text", 0.0),
        ):
            if shape in shapes:
                capture_shape(shape, rate, pid, client, tmp, args.load_seconds, args.capture_reps)

        # 2b. printing a capture file: the same input for both
        if "read-text" in shapes:
            read_shape(client, tmp, args.load_seconds, args.capture_reps)

        # 3. dig latency (process start included, as a user sees it)
        if "dig" in shapes:
            dig_shape(pid, args.runs, env)

        # 4. remote capture over loopback ssh at a fixed rate
        if "capture-remote-rate" in shapes:
            remote_shape(tmp, args.rate, args.load_seconds, args.capture_reps)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for ns in (client, server):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def nsenter_true(pid: str, runs: int, env: dict[str, str]) -> None:
    peer, ours, bare, bare_isolated = median_walls(
        [
            ["nsenter", "-t", pid, "-n", "true"],
            [FLEETKIT, "nsenter", "-t", pid, "-n", "true"],
            [sys.executable, "-c", "pass"],
            [sys.executable, "-I", "-S", "-c", "pass"],
        ],
        runs,
        env,
    )
    print(
        json.dumps(
            {
                "bench": "nsenter-true",
                "ours": round(ours, 5),
                "peer": round(peer, 5),
                "unit": "s",
                "speedup": round(peer / ours, 3),
                "ratio": round(ours / peer, 2),
                "python_startup_s": round(bare, 5),
                "python_isolated_nosite_s": round(bare_isolated, 5),
                "runs": runs,
            }
        ),
        flush=True,
    )


def capture_shape(
    shape: str, rate: float, pid: str, client: str, tmp: Path, load_seconds: float, reps: int
) -> None:
    expression = ["udp", "port", "9999"]
    # -text: the lines printed (to /dev/null: buffered, as tcpdump's stdout is when not a tty)
    ours_out = [] if shape.endswith("-text") else ["-w", str(tmp / "ours.pcap")]
    peer_out = [] if shape.endswith("-text") else ["-w", str(tmp / "peer.pcap")]
    argvs = {
        "ours": [FLEETKIT, "ns", "capture", "-t", pid, "-i", "lo", *ours_out],
        "peer": ["nsenter", "-t", pid, "-n", "tcpdump", "-i", "lo", *peer_out],
    }
    runs: dict[str, list[tuple[int, int, int, float]]] = {"ours": [], "peer": []}
    for i in range(reps):
        order = ("ours", "peer") if i % 2 == 0 else ("peer", "ours")  # alternate who goes first
        for name in order:
            runs[name].append(capture_run(argvs[name] + expression, client, load_seconds, rate))

    def med(name: str, field: int) -> int:
        return round(statistics.median(r[field] for r in runs[name]))

    def cpu_us(name: str) -> float:  # capturer CPU per captured packet: what load cannot skew
        return round(statistics.median(r[3] / max(r[1], 1) * 1e6 for r in runs[name]), 3)

    load = os.getloadavg()

    pps_o, pps_p = med("ours", 1) / load_seconds, med("peer", 1) / load_seconds
    print(
        json.dumps(
            {
                "bench": shape,
                "ours": round(pps_o),
                "peer": round(pps_p),
                "unit": "packets/s",
                "speedup": round(pps_o / pps_p, 3),
                "offered_rate": rate or "max",
                "ours_sent": med("ours", 0),
                "ours_captured": med("ours", 1),
                "ours_kernel_drops": med("ours", 2),
                "peer_sent": med("peer", 0),
                "peer_captured": med("peer", 1),
                "peer_kernel_drops": med("peer", 2),
                "ours_cpu_us_per_packet": cpu_us("ours"),
                "peer_cpu_us_per_packet": cpu_us("peer"),
                "cpu_ratio": round(cpu_us("peer") / max(cpu_us("ours"), 1e-9), 3),
                "loadavg": [round(x, 2) for x in load],
                "ours_runs": runs["ours"],
                "peer_runs": runs["peer"],
                "load_seconds": load_seconds,
            }
        ),
        flush=True,
    )


TCP_FLOW = """
import socket, sys, threading, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
def sink():
    conn, _ = server.accept()
    while conn.recv(1 << 16):
        pass
threading.Thread(target=sink, daemon=True).start()
client = socket.create_connection(server.getsockname())
client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    client.send(b"z" * 512)
client.close()
"""


def read_shape(ns: str, tmp: Path, seconds: float, reps: int) -> None:
    """`-r FILE -n` of one large capture (a loopback UDP flood and a TCP flow, as tcpdump -w
    wrote it), output to /dev/null: CPU (the child's rusage) and wall time, runs alternating."""
    pcap = tmp / "read.pcap"
    writer = subprocess.Popen(
        ["ip", "netns", "exec", ns, "tcpdump", "-i", "lo", "-w", str(pcap)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_listening(writer)
        tcp = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", TCP_FLOW, str(seconds)]
        )
        flood(ns, seconds, 0.0)
        tcp.wait(timeout=seconds + 30)
        time.sleep(0.5)
    finally:
        os.kill(writer.pid, signal.SIGINT)
        writer.communicate(timeout=60)
    packets = pcap_records(pcap)
    argvs = {
        "ours": [FLEETKIT, "ns", "capture", "-r", str(pcap), "-n"],
        "peer": ["tcpdump", "-r", str(pcap), "-n"],
    }
    runs: dict[str, list[tuple[float, float]]] = {"ours": [], "peer": []}
    for i in range(reps):
        for name in ("ours", "peer") if i % 2 == 0 else ("peer", "ours"):
            start = time.perf_counter()
            proc = subprocess.Popen(
                argvs[name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            _pid, status, usage = os.wait4(proc.pid, 0)
            wall_s = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            assert proc.returncode == 0, argvs[name]
            runs[name].append((round(usage.ru_utime + usage.ru_stime, 4), round(wall_s, 4)))

    def cpu_us(name: str) -> float:
        return round(statistics.median(r[0] for r in runs[name]) / packets * 1e6, 3)

    def wall(name: str) -> float:
        return statistics.median(r[1] for r in runs[name])

    print(
        json.dumps(
            {
                "bench": "read-text",
                "ours": cpu_us("ours"),
                "peer": cpu_us("peer"),
                "unit": "us CPU per packet (-r FILE -n > /dev/null)",
                "speedup": round(cpu_us("peer") / cpu_us("ours"), 3),
                "packets": packets,
                "ours_wall_s": round(wall("ours"), 4),
                "peer_wall_s": round(wall("peer"), 4),
                "wall_ratio": round(wall("peer") / wall("ours"), 3),
                "loadavg": [round(x, 2) for x in os.getloadavg()],
                "ours_runs": runs["ours"],
                "peer_runs": runs["peer"],
            }
        ),
        flush=True,
    )


def pcap_records(path: Path) -> int:
    """How many records a classic pcap file holds."""
    raw = path.read_bytes()
    at, n = 24, 0
    while at + 16 <= len(raw):
        at += 16 + int.from_bytes(raw[at + 8 : at + 12], "little")
        n += 1
    return n


def remote_shape(tmp: Path, rate: float, load_seconds: float, reps: int) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.playbook._netns import ssh_fleet

    d = tmp / "remote"
    d.mkdir()
    with ssh_fleet(d, 1):
        ns = (d / "namespaces").read_text().split()[0]
        address = (d / "addresses").read_text().split()[0]
        pod = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "3600"])
        try:
            me = os.stat("/proc/self/ns/net").st_ino
            deadline = time.monotonic() + 10
            while os.stat(f"/proc/{pod.pid}/ns/net").st_ino == me and time.monotonic() < deadline:
                time.sleep(0.01)
            ssh = ["--ssh", f"root@{address}", "--ssh-key", str(d / "id_ed25519")]
            ssh += ["--ssh-option", "StrictHostKeyChecking=no"]
            ssh += ["--ssh-option", "UserKnownHostsFile=/dev/null", "--ssh-cache", str(d / "c")]
            runs = []
            for i in range(reps):
                out = d / f"r{i}.pcap"
                argv = [FLEETKIT, "ns", "capture", *ssh, "-t", str(pod.pid), "-i", "lo"]
                argv += ["--duration", str(load_seconds + 3), "-w", str(out), "udp port 9999"]
                proc = subprocess.Popen(
                    argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
                )
                wait_listening(proc)
                sent = flood(ns, load_seconds, rate)
                _, err = proc.communicate(timeout=120)
                node_captured = int(re.search(r"(\d+) packets captured", err).group(1))  # type: ignore[union-attr]
                dropped = int(re.search(r"(\d+) packets dropped by kernel", err).group(1))  # type: ignore[union-attr]
                runs.append((sent, node_captured, dropped, pcap_records(out)))
        finally:
            pod.kill()
            pod.wait()

    def med(field: int) -> int:
        return round(statistics.median(r[field] for r in runs))

    print(
        json.dumps(
            {
                "bench": "capture-remote-rate",
                "ours": round(med(3) / load_seconds),
                "unit": "packets/s (records in the local file)",
                "offered_rate": rate,
                "sent": med(0),
                "node_captured": med(1),
                "node_kernel_drops": med(2),
                "local_records": med(3),
                "end_to_end_loss": med(0) - med(3),
                "runs": runs,
                "load_seconds": load_seconds,
            }
        ),
        flush=True,
    )


def dig_shape(pid: str, runs: int, env: dict[str, str]) -> None:
    dig = shutil.which("dig") or "dig"
    peer, ours = median_walls(
        [
            ["nsenter", "-t", pid, "-n", dig, "+short", f"@{SERVER}", "web.bench.test"],
            [FLEETKIT, "ns", "dig", "-t", pid, "+short", f"@{SERVER}", "web.bench.test"],
        ],
        runs,
        env,
    )
    print(
        json.dumps(
            {
                "bench": "dig",
                "ours": round(ours, 5),
                "peer": round(peer, 5),
                "unit": "s",
                "speedup": round(peer / ours, 3),
                "runs": runs,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
