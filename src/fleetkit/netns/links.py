"""Links, addresses and routes of a network namespace over rtnetlink, printed as ``ip`` does.

The netlink socket is created (and the dump run) in a thread joined to the target's network
namespace. Rendering follows iproute2's ``ip addr`` / ``ip route`` text for the common cases.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from fleetkit.netns.namespaces import run_in_netns

__all__ = ["Address", "Link", "Route", "Snapshot", "dump", "render_addr", "render_route"]

NETLINK_ROUTE = 0
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
RT_TABLE_MAIN = 254

_IFF = (
    ("LOOPBACK", 0x8),
    ("BROADCAST", 0x2),
    ("POINTOPOINT", 0x10),
    ("MULTICAST", 0x1000),
    ("NOARP", 0x80),
    ("ALLMULTI", 0x200),
    ("PROMISC", 0x100),
    ("NOTRAILERS", 0x20),
    ("DEBUG", 0x4),
    ("DYNAMIC", 0x8000),
    ("AUTOMEDIA", 0x4000),
    ("PORTSEL", 0x2000),
    ("MASTER", 0x400),
    ("SLAVE", 0x800),
    ("UP", 0x1),
    ("LOWER_UP", 0x10000),
    ("DORMANT", 0x20000),
    ("ECHO", 0x40000),
)
IFF_UP, IFF_RUNNING = 0x1, 0x40
_OPERSTATE = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")
_LINK_TYPES = {1: "ether", 772: "loopback", 65534: "none", 768: "ipip", 776: "sit", 778: "gre"}
_IFA_FLAGS = (
    ("secondary", 0x01),
    ("nodad", 0x02),
    ("optimistic", 0x04),
    ("dadfailed", 0x08),
    ("home", 0x10),
    ("deprecated", 0x20),
    ("tentative", 0x40),
    ("permanent", 0x80),
    ("mngtmpaddr", 0x100),
    ("noprefixroute", 0x200),
    ("autojoin", 0x400),
    ("stable-privacy", 0x800),
)
_SCOPES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
_PROTOS = {0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 16: "dhcp", 9: "ra"}
_RTN_TYPES = {
    2: "local",
    3: "broadcast",
    4: "anycast",
    5: "multicast",
    6: "blackhole",
    7: "unreachable",
    8: "prohibit",
    9: "throw",
    10: "nat",
}
_PREF = {0: "medium", 1: "high", 3: "low"}


@dataclass(frozen=True, slots=True)
class Link:
    index: int
    name: str
    flags: int
    mtu: int = 0
    qdisc: str | None = None
    operstate: int = 0
    linkmode: int = 0
    group: int = 0
    txqlen: int | None = None
    hwtype: int = 0
    address: bytes = b""
    broadcast: bytes = b""
    link: int | None = None
    link_netnsid: int | None = None
    master: int | None = None


@dataclass(frozen=True, slots=True)
class Address:
    family: int
    index: int
    prefixlen: int
    scope: int
    flags: int
    local: str
    peer: str | None = None
    broadcast: str | None = None
    label: str | None = None
    valid: int = 0xFFFFFFFF
    preferred: int = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Route:
    family: int
    dst: str | None
    dst_len: int
    table: int
    protocol: int
    scope: int
    type: int
    flags: int
    gateway: str | None = None
    oif: int | None = None
    prefsrc: str | None = None
    priority: int | None = None
    pref: int | None = None


@dataclass(slots=True)
class Snapshot:
    links: list[Link] = field(default_factory=list)
    addresses: list[Address] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    netns_names: dict[int, str] = field(default_factory=dict)  # nsid -> /run/netns name

    def name_of(self, index: int | None) -> str:
        for link in self.links:
            if link.index == index:
                return link.name
        return f"if{index}"

    def as_dict(self) -> dict[str, Any]:
        out = []
        for link in self.links:
            out.append(
                {
                    "ifindex": link.index,
                    "ifname": link.name,
                    "flags": _flag_names(link.flags),
                    "mtu": link.mtu,
                    "operstate": _OPERSTATE[link.operstate] if link.operstate < 7 else "UNKNOWN",
                    "link_type": _LINK_TYPES.get(link.hwtype, str(link.hwtype)),
                    "address": _mac(link.address),
                    "addr_info": [
                        {
                            "family": "inet" if a.family == socket.AF_INET else "inet6",
                            "local": a.local,
                            "prefixlen": a.prefixlen,
                            "scope": _SCOPES.get(a.scope, str(a.scope)),
                        }
                        for a in self.addresses
                        if a.index == link.index
                    ],
                }
            )
        routes = [
            {
                "dst": _route_dst(r),
                "gateway": r.gateway,
                "dev": self.name_of(r.oif) if r.oif else None,
                "protocol": _PROTOS.get(r.protocol, str(r.protocol)),
                "scope": _SCOPES.get(r.scope, str(r.scope)),
                "prefsrc": r.prefsrc,
                "metric": r.priority,
            }
            for r in self.routes
        ]
        return {"links": out, "routes": routes}


def _attrs(buf: bytes, offset: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while offset + 4 <= len(buf):
        length, kind = struct.unpack_from("HH", buf, offset)
        if length < 4:
            break
        out.setdefault(kind & 0x3FFF, buf[offset + 4 : offset + length])
        offset += (length + 3) & ~3
    return out


def _request(sock: socket.socket, msg_type: int, body: bytes, seq: int) -> list[tuple[int, bytes]]:
    header = struct.pack("IHHII", 16 + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
    sock.send(header + body)
    messages: list[tuple[int, bytes]] = []
    while True:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + 16 <= len(data):
            length, kind, _flags, mseq, _pid = struct.unpack_from("IHHII", data, offset)
            if length < 16:
                return messages
            payload = data[offset + 16 : offset + length]
            offset += (length + 3) & ~3
            if mseq != seq:
                continue
            if kind == NLMSG_DONE:
                return messages
            if kind == NLMSG_ERROR:
                code = -struct.unpack_from("i", payload)[0]
                if code:
                    raise OSError(code, os.strerror(code))
                continue
            messages.append((kind, payload))


def _ip(family: int, raw: bytes) -> str:
    return socket.inet_ntop(family, raw)


def _dump_here() -> Snapshot:
    snap = Snapshot()
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    sock.settimeout(5)
    try:
        for kind, payload in _request(sock, RTM_GETLINK, struct.pack("BxHiII", 0, 0, 0, 0, 0), 1):
            if kind != RTM_NEWLINK:
                continue
            _family, hwtype, index, flags, _change = struct.unpack_from("BxHiII", payload)
            a = _attrs(payload, 16)

            def u32(key: int, attrs: dict[int, bytes] = a) -> int | None:
                return struct.unpack("I", attrs[key][:4])[0] if key in attrs else None

            snap.links.append(
                Link(
                    index=index,
                    name=a.get(3, b"").rstrip(b"\0").decode(),
                    flags=flags,
                    mtu=u32(4) or 0,
                    qdisc=a[6].rstrip(b"\0").decode() if 6 in a else None,
                    operstate=a[16][0] if 16 in a else 0,
                    linkmode=a[17][0] if 17 in a else 0,
                    group=u32(27) or 0,
                    txqlen=u32(13),
                    hwtype=hwtype,
                    address=a.get(1, b""),
                    broadcast=a.get(2, b""),
                    link=u32(5),
                    link_netnsid=struct.unpack("i", a[37][:4])[0] if 37 in a else None,
                    master=u32(10),
                )
            )
        for kind, payload in _request(sock, RTM_GETADDR, struct.pack("BBBBI", 0, 0, 0, 0, 0), 2):
            if kind != RTM_NEWADDR:
                continue
            family, prefixlen, flags, scope, index = struct.unpack_from("BBBBI", payload)
            a = _attrs(payload, 8)
            if 8 in a:
                flags = struct.unpack("I", a[8][:4])[0]
            local = a.get(2) or a.get(1) or b""
            address = a.get(1)
            valid = preferred = 0xFFFFFFFF
            if 6 in a:
                preferred, valid = struct.unpack("II", a[6][:8])
            snap.addresses.append(
                Address(
                    family=family,
                    index=index,
                    prefixlen=prefixlen,
                    scope=scope,
                    flags=flags,
                    local=_ip(family, local),
                    peer=_ip(family, address) if address and address != local else None,
                    broadcast=_ip(family, a[4]) if 4 in a else None,
                    label=a[3].rstrip(b"\0").decode() if 3 in a else None,
                    valid=valid,
                    preferred=preferred,
                )
            )
        for family in (socket.AF_INET, socket.AF_INET6):
            body = struct.pack("BBBBBBBBI", family, 0, 0, 0, 0, 0, 0, 0, 0)
            for kind, payload in _request(sock, RTM_GETROUTE, body, 3 + family):
                if kind != RTM_NEWROUTE:
                    continue
                fam, dst_len, _src_len, _tos, table, proto, scope, rtype, rflags = (
                    struct.unpack_from("BBBBBBBBI", payload)
                )
                a = _attrs(payload, 12)
                if 15 in a:
                    table = struct.unpack("I", a[15][:4])[0]
                snap.routes.append(
                    Route(
                        family=fam,
                        dst=_ip(fam, a[1]) if 1 in a else None,
                        dst_len=dst_len,
                        table=table,
                        protocol=proto,
                        scope=scope,
                        type=rtype,
                        flags=rflags,
                        gateway=_ip(fam, a[5]) if 5 in a else None,
                        oif=struct.unpack("i", a[4][:4])[0] if 4 in a else None,
                        prefsrc=_ip(fam, a[7]) if 7 in a else None,
                        priority=struct.unpack("I", a[6][:4])[0] if 6 in a else None,
                        pref=a[20][0] if 20 in a else None,
                    )
                )
        if any(link.link_netnsid is not None for link in snap.links):
            snap.netns_names = _nsid_names(sock)
    finally:
        sock.close()
    return snap


RTM_NEWNSID, RTM_GETNSID = 88, 90
NETNSA_NSID, NETNSA_FD = 1, 3


def _nsid_names(sock: socket.socket, run_dir: str = "/run/netns") -> dict[int, str]:
    """nsid -> name for the namespaces named in /run/netns, as iproute2 resolves them."""
    names: dict[int, str] = {}
    try:
        entries = sorted(os.listdir(run_dir))
    except OSError:
        return names
    for seq, name in enumerate(entries, start=100):
        try:
            fd = os.open(os.path.join(run_dir, name), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            attr = struct.pack("HHI", 8, NETNSA_FD, fd)
            body = struct.pack("Bxxx", socket.AF_UNSPEC) + attr
            header = struct.pack("IHHII", 16 + len(body), RTM_GETNSID, NLM_F_REQUEST, seq, 0)
            sock.send(header + body)
            data = sock.recv(65536)
            length, kind = struct.unpack_from("IH", data)
            if kind == RTM_NEWNSID:
                nsid_raw = _attrs(data[:length], 16 + 4).get(NETNSA_NSID)
                if nsid_raw is not None:
                    nsid = struct.unpack("i", nsid_raw[:4])[0]
                    if nsid >= 0:
                        names.setdefault(nsid, name)
        except OSError:
            continue
        finally:
            os.close(fd)
    return names


def dump(pid: int | None) -> Snapshot:
    """Links, addresses and routes of the network namespace of ``pid`` (None: ours)."""
    return run_in_netns(pid, _dump_here)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _flag_names(flags: int) -> list[str]:
    names = []
    if flags & IFF_UP and not flags & IFF_RUNNING:
        names.append("NO-CARRIER")
    names += [name for name, bit in _IFF if flags & bit]
    return names


def _lifetime(value: int) -> str:
    return "forever" if value == 0xFFFFFFFF else f"{value}sec"


def render_addr(snap: Snapshot) -> str:
    """``ip addr show``."""
    lines: list[str] = []
    for link in sorted(snap.links, key=lambda item: item.index):
        name = link.name
        if link.link is not None and link.link != link.index:
            if link.link_netnsid is not None:
                name += f"@if{link.link}"
            elif link.link == 0:
                name += "@NONE"
            else:
                name += f"@{snap.name_of(link.link)}"
        head = f"{link.index}: {name}: <{','.join(_flag_names(link.flags))}> mtu {link.mtu}"
        if link.qdisc:
            head += f" qdisc {link.qdisc}"
        if link.master:
            head += f" master {snap.name_of(link.master)}"
        state = _OPERSTATE[link.operstate] if link.operstate < len(_OPERSTATE) else "UNKNOWN"
        head += f" state {state}"
        if link.linkmode == 1:
            head += " mode DORMANT"
        head += f" group {'default' if link.group == 0 else link.group}"
        if link.txqlen is not None:
            head += f" qlen {link.txqlen}"
        lines.append(head)
        kind = _LINK_TYPES.get(link.hwtype, f"[{link.hwtype}]")
        second = f"    link/{kind}"
        if link.address:
            second += f" {_mac(link.address)}"
        if link.broadcast:
            second += f" brd {_mac(link.broadcast)}"
        if link.link_netnsid is not None:
            named = snap.netns_names.get(link.link_netnsid)
            second += f" link-netns {named}" if named else f" link-netnsid {link.link_netnsid}"
        lines.append(second)
        for family in (socket.AF_INET, socket.AF_INET6):
            for addr in snap.addresses:
                if addr.index != link.index or addr.family != family:
                    continue
                word = "inet" if family == socket.AF_INET else "inet6"
                text = f"    {word} {addr.local}"
                if addr.peer:
                    text += f" peer {addr.peer}/{addr.prefixlen}"
                else:
                    text += f"/{addr.prefixlen}"
                if addr.broadcast:
                    text += f" brd {addr.broadcast}"
                text += f" scope {_SCOPES.get(addr.scope, str(addr.scope))} "
                flags = addr.flags
                for flag_name, bit in _IFA_FLAGS:
                    if bit == 0x80:
                        if not flags & bit:
                            text += "dynamic "
                    elif flags & bit:
                        text += (
                            "temporary" if bit == 1 and family == socket.AF_INET6 else flag_name
                        ) + " "
                if family == socket.AF_INET and addr.label:
                    text += addr.label
                lines.append(text)
                lines.append(
                    f"       valid_lft {_lifetime(addr.valid)} preferred_lft {_lifetime(addr.preferred)}"
                )
    return "\n".join(lines) + ("\n" if lines else "")


def _route_dst(route: Route) -> str:
    full = 32 if route.family == socket.AF_INET else 128
    if route.dst is None or route.dst_len == 0:
        return "default"
    return route.dst if route.dst_len == full else f"{route.dst}/{route.dst_len}"


def render_route(snap: Snapshot, family: int = socket.AF_INET) -> str:
    """``ip route show`` (main table) or ``ip -6 route show``."""
    lines = []
    for route in snap.routes:
        if route.family != family or route.table != RT_TABLE_MAIN:
            continue
        if family == socket.AF_INET6 and route.type in (2, 5):
            continue  # ip -6 route hides local/multicast entries of other tables
        parts = []
        if route.type != 1:
            parts.append(_RTN_TYPES.get(route.type, str(route.type)))
        parts.append(_route_dst(route))
        if route.gateway:
            parts.append(f"via {route.gateway}")
        if route.oif:
            parts.append(f"dev {snap.name_of(route.oif)}")
        if route.protocol != 3:
            parts.append(f"proto {_PROTOS.get(route.protocol, str(route.protocol))}")
        if route.scope != 0:
            parts.append(f"scope {_SCOPES.get(route.scope, str(route.scope))}")
        if route.prefsrc:
            parts.append(f"src {route.prefsrc}")
        if route.priority is not None:
            parts.append(f"metric {route.priority}")
        if route.flags & 0x10:
            parts.append("linkdown")
        if route.flags & 0x4:
            parts.append("onlink")
        if family == socket.AF_INET6 and route.pref is not None:
            parts.append(f"pref {_PREF.get(route.pref, str(route.pref))}")
        pref = family == socket.AF_INET6 and route.pref is not None
        lines.append(" ".join(parts) + ("" if pref else " "))
    return "\n".join(lines) + ("\n" if lines else "")
