"""Several captures at once (``ns capture --pod a --pod b``), merged in time order; the other
helpers (dig, ip, sockets, http) for several pods at once, their output in pod order.

Each pod's capture runs as its own ``fleetkit ns capture --pod P -w -`` process (locally, or on
the pod's node when ``--ssh``/``--kubeconfig`` is given, which that process handles), and
streams pcap. The records are merged by time stamp: a record is released once every other
stream has shown a later one or ended, or once it has waited ``HOLD_S`` (a quiet pod cannot
hold the others back). The result is pcapng with one interface per pod, named after it, or
tcpdump's lines prefixed with the pod's name.
"""

from __future__ import annotations

import heapq
import os
import queue
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import BinaryIO

from fleetkit.netns.dissect import Printer, PrintOptions

__all__ = ["PcapngWriter", "capture_many", "run_many"]

HOLD_S = 1.0
_DROPPED = (b"kex_exchange_identification", b"Connection reset by peer")  # sshd's MaxStartups
_EOF = None


class PcapngWriter:
    """pcapng: a section header, one interface description per source (if_name), packets."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.interfaces = 0
        self._block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))

    def _block(self, kind: int, body: bytes) -> None:
        body += b"\0" * (-len(body) % 4)
        size = len(body) + 12
        self.stream.write(struct.pack("<II", kind, size) + body + struct.pack("<I", size))

    def add_interface(self, linktype: int, snaplen: int, name: str) -> int:
        """An interface description (microsecond time stamps); its index."""
        raw = name.encode()
        option = struct.pack("<HH", 2, len(raw)) + raw + b"\0" * (-len(raw) % 4)
        self._block(1, struct.pack("<HHI", linktype, 0, snaplen) + option + b"\0\0\0\0")
        self.interfaces += 1
        return self.interfaces - 1

    def write(self, interface: int, sec: int, usec: int, data: bytes, length: int) -> None:
        stamp = sec * 1_000_000 + usec
        head = struct.pack("<IIIII", interface, stamp >> 32, stamp & 0xFFFFFFFF, len(data), length)
        self._block(6, head + data)


Record = tuple[int, int, bytes, int]  # sec, usec, data, wire length


def _reader(index: int, stream: BinaryIO, out: queue.Queue[tuple[int, object]]) -> None:
    """One child's pcap stream: its header (linktype, snaplen), then records, then EOF."""
    try:
        head = stream.read(24)
        if len(head) < 24:
            return
        magic = struct.unpack("<I", head[:4])[0]
        order = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
        snaplen, linktype = struct.unpack(order + "II", head[16:24])
        out.put((index, ("header", linktype & 0x0FFFFFFF, snaplen)))
        record = struct.Struct(order + "IIII")
        while True:
            raw = stream.read(16)
            if len(raw) < 16:
                return
            sec, frac, incl, orig = record.unpack(raw)
            if incl > max(snaplen, 262144):
                return
            data = stream.read(incl)
            if len(data) < incl:
                return
            out.put((index, (sec, frac // 1000 if nano else frac, data, orig)))
    finally:
        out.put((index, _EOF))


def capture_many(
    pods: Sequence[str],
    child_argv: Callable[[str], list[str]],
    write_path: str | None,
    stdout: BinaryIO,
    text_out: Callable[[str], None],
    options: PrintOptions,
    count: int | None,
) -> int:
    """Run one capture per pod and merge them; the worst exit status of the captures."""
    procs = [
        subprocess.Popen(child_argv(pod), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        for pod in pods
    ]
    events: queue.Queue[tuple[int, object]] = queue.Queue()
    threads = [
        threading.Thread(target=_reader, args=(i, p.stdout, events), daemon=True)
        for i, p in enumerate(procs)
    ]
    for thread in threads:
        thread.start()
    tmp = None
    stream: BinaryIO | None = None
    if write_path == "-":
        stream = stdout
    elif write_path is not None:
        directory = os.path.dirname(os.path.abspath(write_path))
        fd, tmp = tempfile.mkstemp(
            prefix=f".{os.path.basename(write_path)}.", suffix=".tmp", dir=directory
        )
        stream = os.fdopen(fd, "wb")
    writer = PcapngWriter(stream) if stream is not None else None
    interfaces: dict[int, int] = {}
    printers: dict[int, Printer] = {}
    last_seen: dict[int, int] = {}  # stream -> last time stamp (us)
    ended: set[int] = set()
    heap: list[tuple[int, int, float, int, Record]] = []  # (ts, seq, arrived, stream, record)
    seq = 0
    shown = 0
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the children get it and finish

    def release(force_before: float) -> bool:
        nonlocal shown
        while heap:
            ts, _seq, arrived, index, rec = heap[0]
            ready = all(j in ended or last_seen.get(j, -1) >= ts for j in range(len(procs)))
            if not ready and arrived > force_before:
                return False
            heapq.heappop(heap)
            sec, usec, data, length = rec
            if writer is not None:
                writer.write(interfaces[index], sec, usec, data, length)
            else:
                text_out(f"{pods[index]}: " + printers[index].format(sec, usec, data, length))
            shown += 1
            if count is not None and shown >= count:
                return True
        return False

    try:
        done = False
        while len(ended) < len(procs) and not done:
            try:
                index, item = events.get(timeout=HOLD_S / 4)
            except queue.Empty:
                done = release(time.monotonic() - HOLD_S)
                if stream is not None:
                    stream.flush()
                continue
            if item is _EOF:
                ended.add(index)
            elif isinstance(item, tuple) and item[0] == "header":
                _tag, linktype, snaplen = item
                if writer is not None:
                    interfaces[index] = writer.add_interface(
                        int(linktype), int(snaplen), pods[index]
                    )
                printers[index] = Printer(options, int(linktype))
            else:
                rec: Record = item  # type: ignore[assignment]
                ts = rec[0] * 1_000_000 + rec[1]
                last_seen[index] = ts
                heapq.heappush(heap, (ts, seq, time.monotonic(), index, rec))
                seq += 1
            done = release(time.monotonic() - HOLD_S)
        if not done:
            release(float("inf"))
    finally:
        signal.signal(signal.SIGINT, previous)
        stopped = [proc.poll() is None for proc in procs]
        for proc, running in zip(procs, stopped, strict=True):
            if running:  # the merge is complete (-c N): stopping it is not its failure
                proc.send_signal(signal.SIGTERM)
        codes = [
            0 if was_running else proc.wait()
            for proc, was_running in zip(procs, stopped, strict=True)
        ]
        for proc in procs:
            proc.wait()
        if stream is not None:
            stream.flush()
            if tmp is not None and write_path is not None:
                stream.close()
                os.replace(tmp, write_path)
    sys.stdout.flush()
    return max(codes)


def run_many(
    labels: Sequence[str],
    argvs: Sequence[list[str]],
    stdout: BinaryIO,
    stderr: BinaryIO,
    json_output: bool,
) -> int:
    """Run every ARGV at once; each one's output in turn, every line prefixed ``LABEL: ``.

    With ``json_output`` the result is one JSON object mapping each label to its helper's JSON
    (null when it printed none). Standard error is prefixed the same way. The worst exit status.
    """
    import json

    procs = [
        subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for argv in argvs
    ]
    results: dict[str, object] = {}
    codes: list[int] = []
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the children get it and finish
    try:
        outputs = [proc.communicate() for proc in procs]  # all run at once; read in turn
        for i, argv in enumerate(argvs):
            for _retry in range(2):  # an ssh that sshd dropped before it ran anything
                out, err = outputs[i]
                if procs[i].returncode != 255 or out or not any(m in err for m in _DROPPED):
                    break
                procs[i] = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
                outputs[i] = procs[i].communicate()
    finally:
        signal.signal(signal.SIGINT, previous)
    for label, proc, (out, err) in zip(labels, procs, outputs, strict=True):
        codes.append(proc.returncode)
        prefix = label.encode() + b": "
        for line in err.splitlines(keepends=True):
            stderr.write(prefix + line)
        if json_output:
            try:
                results[label] = json.loads(out) if out.strip() else None
            except ValueError:
                results[label] = None
                stderr.write(prefix + b"not JSON: " + out[:200] + b"\n")
            continue
        for line in out.splitlines(keepends=True):
            stdout.write(prefix + line + (b"" if line.endswith(b"\n") else b"\n"))
    if json_output:
        stdout.write(json.dumps(results, indent=2).encode() + b"\n")
    stdout.flush()
    stderr.flush()
    return max(codes)
