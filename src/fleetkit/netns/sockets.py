"""TCP and UDP sockets of a network namespace, as ``ss -tuanp`` lists them.

In a thread joined to the target's network namespace, sockets are dumped over NETLINK_SOCK_DIAG
(inet_diag, what ss itself uses: queue sizes, listen backlogs, IPV6_V6ONLY), in ss's order
(udp then tcp, IPv4 then IPv6). Where sock_diag is unavailable, the ``/proc/net/{tcp,tcp6,udp,
udp6}`` tables are read through ``/proc/thread-self/net`` instead. Owning processes come from a
scan of ``/proc/*/fd`` for ``socket:[INODE]`` links (root sees them all).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from fleetkit.netns.namespaces import run_in_netns

__all__ = ["Socket", "list_sockets", "parse_table", "render"]

_TCP_STATES = {
    1: "ESTAB",
    2: "SYN-SENT",
    3: "SYN-RECV",
    4: "FIN-WAIT-1",
    5: "FIN-WAIT-2",
    6: "TIME-WAIT",
    7: "UNCONN",
    8: "CLOSE-WAIT",
    9: "LAST-ACK",
    10: "LISTEN",
    11: "CLOSING",
}


@dataclass(frozen=True, slots=True)
class Socket:
    netid: str  # tcp | udp
    state: str
    recv_q: int
    send_q: int
    local: str
    local_port: int
    peer: str
    peer_port: int
    inode: int
    v6: bool
    users: tuple[tuple[str, int, int], ...] = field(default_factory=tuple)  # (comm, pid, fd)
    dual_stack: bool = False  # an IPv6 wildcard socket without IPV6_V6ONLY: ss prints '*'

    def endpoint(self, local: bool = True) -> str:
        addr, port = (self.local, self.local_port) if local else (self.peer, self.peer_port)
        if self.dual_stack and addr == "::":
            host = "*"
        else:
            host = f"[{addr}]" if self.v6 else addr
        return f"{host}:{port if port else '*'}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "netid": self.netid,
            "state": self.state,
            "recv_q": self.recv_q,
            "send_q": self.send_q,
            "local": self.endpoint(True),
            "peer": self.endpoint(False),
            "users": [{"name": n, "pid": p, "fd": f} for n, p, f in self.users],
        }


def _addr(hexaddr: str) -> tuple[str, int, bool]:
    host, port = hexaddr.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1]), int(port, 16), False
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words), int(port, 16), True


def parse_table(text: str, netid: str) -> list[Socket]:
    """Parse one /proc/net/{tcp,tcp6,udp,udp6} table."""
    out = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 10:
            continue
        local, lport, v6 = _addr(cols[1])
        peer, pport, _ = _addr(cols[2])
        state = int(cols[3], 16)
        tx, rx = (int(x, 16) for x in cols[4].split(":"))
        name = _TCP_STATES.get(state, str(state))
        if netid == "udp" and state == 7:
            name = "UNCONN"
        out.append(Socket(netid, name, rx, tx, local, lport, peer, pport, int(cols[9]), v6))
    return out


def _read_tables(proc: str) -> list[Socket]:
    found: list[Socket] = []
    for table, netid in (("tcp", "tcp"), ("tcp6", "tcp"), ("udp", "udp"), ("udp6", "udp")):
        try:
            with open(f"{proc}/thread-self/net/{table}") as fh:
                found += parse_table(fh.read(), netid)
        except FileNotFoundError:
            continue  # e.g. no IPv6
    return found


def _owners(inodes: set[int], proc: str = "/proc") -> dict[int, list[tuple[str, int, int]]]:
    owners: dict[int, list[tuple[str, int, int]]] = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        fd_dir = f"{proc}/{entry}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        comm: str | None = None
        for fd in fds:
            try:
                link = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if not link.startswith("socket:["):
                continue
            inode = int(link[8:-1])
            if inode not in inodes:
                continue
            if comm is None:
                try:
                    with open(f"{proc}/{entry}/comm") as fh:
                        comm = fh.read().strip()
                except OSError:
                    comm = "?"
            owners.setdefault(inode, []).append((comm, int(entry), int(fd)))
    return owners


NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
INET_DIAG_SKV6ONLY = 11
_NLM_F_REQUEST_DUMP = 0x1 | 0x300


def _diag_dump(sock: socket.socket, family: int, protocol: int, seq: int) -> list[Socket]:
    """One inet_diag dump (struct inet_diag_req_v2), parsed into Socket rows."""
    req = struct.pack("BBBxI", family, protocol, 0, 0xFFFFFFFF)  # SKV6ONLY comes unasked
    req += bytes(48)  # struct inet_diag_sockid: match everything
    sock.send(
        struct.pack("IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, seq, 0) + req
    )
    netid = "tcp" if protocol == socket.IPPROTO_TCP else "udp"
    af = socket.AF_INET if family == socket.AF_INET else socket.AF_INET6
    size = 4 if af == socket.AF_INET else 16
    rows: list[Socket] = []
    while True:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + 16 <= len(data):
            length, kind, _flags, _seq, _pid = struct.unpack_from("IHHII", data, offset)
            if length < 16 or kind == 3:  # NLMSG_DONE
                return rows
            if kind == 2:  # NLMSG_ERROR
                code = -struct.unpack_from("i", data, offset + 16)[0]
                raise OSError(code, os.strerror(code))
            msg = data[offset + 16 : offset + length]
            offset += (length + 3) & ~3
            state = msg[1]
            sport, dport = struct.unpack_from("!HH", msg, 4)
            src, dst = msg[8 : 8 + size], msg[24 : 24 + size]
            rqueue, wqueue, _uid, inode = struct.unpack_from("IIII", msg, 56)
            v6only = None
            attr = 72
            while attr + 4 <= len(msg):
                alen, atype = struct.unpack_from("HH", msg, attr)
                if alen < 4:
                    break
                if atype == INET_DIAG_SKV6ONLY:
                    v6only = bool(msg[attr + 4])
                attr += (alen + 3) & ~3
            name = _TCP_STATES.get(state, str(state))
            rows.append(
                Socket(
                    netid,
                    name,
                    rqueue,
                    wqueue,
                    socket.inet_ntop(af, src),
                    sport,
                    socket.inet_ntop(af, dst),
                    dport,
                    inode,
                    af == socket.AF_INET6,
                    dual_stack=af == socket.AF_INET6 and v6only is False,
                )
            )


def _read_diag() -> list[Socket]:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    sock.settimeout(5)
    try:
        rows: list[Socket] = []
        seq = 1
        for protocol in (socket.IPPROTO_UDP, socket.IPPROTO_TCP):
            for family in (socket.AF_INET, socket.AF_INET6):
                try:
                    rows += _diag_dump(sock, family, protocol, seq)
                except OSError as exc:
                    if exc.errno not in (errno.ENOENT, errno.EAFNOSUPPORT):
                        raise
                seq += 1
        return rows
    finally:
        sock.close()


def _read_here(proc: str) -> list[Socket]:
    try:
        return _read_diag()
    except OSError:
        found = _read_tables(proc)
        order = {"udp": 0, "tcp": 1}
        found.sort(key=lambda s: order[s.netid])
        return found


def list_sockets(pid: int | None, proc: str = "/proc") -> list[Socket]:
    """All TCP/UDP sockets in the network namespace of ``pid``, with their owners."""
    found = run_in_netns(pid, lambda: _read_here(proc))
    owners = _owners({s.inode for s in found if s.inode}, proc)
    result = []
    for s in found:
        users = tuple(sorted(owners.get(s.inode, []), key=lambda u: (u[1], u[2])))
        result.append(
            Socket(
                s.netid,
                s.state,
                s.recv_q,
                s.send_q,
                s.local,
                s.local_port,
                s.peer,
                s.peer_port,
                s.inode,
                s.v6,
                users,
            )
        )
    order = {"udp": 0, "tcp": 1}
    result.sort(key=lambda s: (order[s.netid], s.state != "UNCONN" and s.state != "LISTEN"))
    return result


def render(sockets: list[Socket], processes: bool = True) -> str:
    """``ss -tuanp``-style table."""
    rows = [("Netid", "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port")]
    extra = ["Process" if processes else ""]
    for s in sockets:
        rows.append(
            (s.netid, s.state, str(s.recv_q), str(s.send_q), s.endpoint(True), s.endpoint(False))
        )
        users = ",".join(f'("{n}",pid={p},fd={f})' for n, p, f in s.users)
        extra.append(f"users:({users})" if users and processes else "")
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = []
    for row, tail in zip(rows, extra, strict=True):
        cells = [
            row[0].ljust(widths[0]),
            row[1].ljust(widths[1]),
            row[2].ljust(widths[2]),
            row[3].ljust(widths[3]),
            row[4].rjust(widths[4]),
            row[5].ljust(widths[5]),
        ]
        lines.append((" ".join(cells) + (" " + tail if tail else "")).rstrip())
    return "\n".join(lines) + "\n"
