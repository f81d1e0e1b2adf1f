"""DNS lookups from inside a target's network namespace, with the target's own resolv.conf.

The query runs in a short-lived thread joined to the target's network namespace (its sockets
are created there). By default the servers, search list and ``ndots`` come from
``/proc/PID/root/etc/resolv.conf`` (the file the target's libc reads), and the search list is
applied as dig's ``+search`` applies it: a name with at least ``ndots`` dots is tried as-is
first, otherwise each search domain is tried first; a trailing dot disables the search. As dig
does, the walk moves on to the next name only on NXDOMAIN; every name tried is kept with its
status (``DigResult.steps``), for ``+showsearch`` and the search lines of the full output.

``fleetkit ns dig`` is a one-shot command whose wall time is mostly start-up, so the wire format
(RFC 1035: one question out; header, question and resource records back, with name compression)
is handled here with ``struct`` rather than by importing dnspython, whose import alone costs
~70 ms (``dns.name`` pulls in ``importlib.metadata``; ``dns.query`` pulls in ``ssl``). Records
are kept in wire order, as dig prints them. The presentation of the common record types (A, AAAA,
NS, CNAME, PTR, DNAME, MX, TXT, SPF, SRV, SOA, CAA) is written out below and matches dig's;
any other type is rendered by dnspython (imported only then), as are type names outside
the table.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from typing import NamedTuple

from fleetkit.netns.errors import HelperError, NoSuchProcess
from fleetkit.netns.namespaces import run_in_netns

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DigResult",
    "Message",
    "Record",
    "RawRecord",
    "ResolvConf",
    "candidates",
    "dig",
    "make_query",
    "parse_message",
    "read_header",
    "read_labels",
    "read_question",
    "read_record",
    "read_resolv_conf",
]


class ResolvConf:
    """What resolv.conf(5) says: servers, search list and the options dig honours."""

    __slots__ = ("nameservers", "search", "ndots", "timeout_s", "attempts", "path")

    def __init__(
        self,
        nameservers: tuple[str, ...] = ("127.0.0.1",),
        search: tuple[str, ...] = (),
        ndots: int = 1,
        timeout_s: float = 5.0,
        attempts: int = 2,
        path: str = "",
    ) -> None:
        self.nameservers = nameservers
        self.search = search
        self.ndots = ndots
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.path = path

    def _key(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResolvConf) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"ResolvConf({fields})"


def parse_resolv_conf(text: str, path: str = "") -> ResolvConf:
    servers: list[str] = []
    search: list[str] = []
    ndots, timeout_s, attempts = 1, 5.0, 2
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        key, *values = line.split()
        if key == "nameserver" and values:
            servers.append(values[0])
        elif key in ("search", "domain"):
            search = list(values)  # the last search/domain line wins
        elif key == "options":
            for opt in values:
                name, _, value = opt.partition(":")
                if name == "ndots" and value.isdigit():
                    ndots = min(int(value), 15)
                elif name == "timeout" and value.isdigit():
                    timeout_s = float(value)
                elif name == "attempts" and value.isdigit():
                    attempts = int(value)
    return ResolvConf(
        tuple(servers) or ("127.0.0.1",), tuple(search), ndots, timeout_s, attempts, path
    )


def read_resolv_conf(pid: int | None, proc: str = "/proc") -> ResolvConf:
    path = f"{proc}/{pid}/root/etc/resolv.conf" if pid is not None else "/etc/resolv.conf"
    try:
        with open(path) as fh:
            return parse_resolv_conf(fh.read(), path)
    except FileNotFoundError:
        if pid is not None and not _exists(f"{proc}/{pid}"):
            raise NoSuchProcess(
                f"no such process: {pid}", hint="the target exited; pick a live process"
            ) from None
        return ResolvConf(path=path)
    except PermissionError:
        from fleetkit.netns.errors import ROOT_HINT, PermissionDenied

        raise PermissionDenied(f"cannot read {path}: Permission denied", hint=ROOT_HINT) from None


def _exists(path: str) -> bool:
    import os

    return os.path.exists(path)


def candidates(name: str, conf: ResolvConf, search: bool = True) -> list[str]:
    """Names the stub resolver would try, in order."""
    if name.endswith(".") or not search or not conf.search:
        return [name if name.endswith(".") else name + "."]
    absolute = name + "."
    searched = [f"{name}.{domain.rstrip('.')}." for domain in conf.search]
    if name.count(".") >= conf.ndots:
        return [absolute, *searched]
    return [*searched, absolute]


# --- wire format ----------------------------------------------------------------------------

TYPES = {
    1: "A",
    2: "NS",
    5: "CNAME",
    6: "SOA",
    12: "PTR",
    13: "HINFO",
    15: "MX",
    16: "TXT",
    28: "AAAA",
    33: "SRV",
    35: "NAPTR",
    39: "DNAME",
    41: "OPT",
    43: "DS",
    46: "RRSIG",
    47: "NSEC",
    48: "DNSKEY",
    64: "SVCB",
    65: "HTTPS",
    99: "SPF",
    255: "ANY",
    257: "CAA",
}
_TYPE_CODES = {text: code for code, text in TYPES.items()}
RCODES = (
    "NOERROR",
    "FORMERR",
    "SERVFAIL",
    "NXDOMAIN",
    "NOTIMP",
    "REFUSED",
    "YXDOMAIN",
    "YXRRSET",
    "NXRRSET",
    "NOTAUTH",
    "NOTZONE",
)
OPCODES = ("QUERY", "IQUERY", "STATUS", "3", "NOTIFY", "UPDATE")
# header flag bits in dig's (and dnspython's) order
_FLAGS = (
    ("qr", 0x8000),
    ("aa", 0x0400),
    ("tc", 0x0200),
    ("rd", 0x0100),
    ("ra", 0x0080),
    ("ad", 0x0020),
    ("cd", 0x0010),
)
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_CLASS_IN = 1
_TC = 0x0200
# bytes dig (and dnspython) print with a backslash in names; others outside 0x21-0x7e as \DDD
_NAME_SPECIALS = frozenset(b'"().;\\@$')


class DNSWireError(ValueError):
    """A message that does not parse (truncated, a compression loop, a bad label)."""


def type_code(text: str) -> int:
    """``A`` -> 1, ``TYPE65`` -> 65; other mnemonics through dnspython. ValueError if unknown."""
    text = text.upper()
    code = _TYPE_CODES.get(text)
    if code is not None:
        return code
    if text.startswith("TYPE") and text[4:].isdigit() and int(text[4:]) < 65536:
        return int(text[4:])
    import dns.rdatatype

    try:
        return int(dns.rdatatype.from_text(text))
    except dns.rdatatype.UnknownRdatatype:
        raise ValueError(text) from None


def type_text(code: int) -> str:
    text = TYPES.get(code)
    if text is not None:
        return text
    import dns.rdatatype

    to_text: Any = dns.rdatatype.to_text
    return str(to_text(code))


def encode_name(name: str) -> bytes:
    """A presentation-format name as wire labels (``\\.`` and ``\\DDD`` escapes; IDNA)."""
    if name in ("", "."):
        return b"\0"
    labels: list[bytes] = []
    label = bytearray()
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "\\" and i + 1 < len(name):
            if name[i + 1 : i + 4].isdigit() and len(name[i + 1 : i + 4]) == 3:
                label.append(int(name[i + 1 : i + 4]) & 0xFF)
                i += 4
                continue
            label += name[i + 1].encode()
            i += 2
            continue
        if ch == ".":
            if not label:
                raise ValueError(f"empty label in {name!r}")
            labels.append(bytes(label))
            label = bytearray()
        else:
            label += ch.encode("ascii") if ch.isascii() else ch.encode("idna")
        i += 1
    if label:
        labels.append(bytes(label))
    wire = b"".join(bytes((len(part),)) + part for part in labels if _label_ok(part, name))
    if len(wire) + 1 > 255:
        raise ValueError(f"name too long: {name!r}")
    return wire + b"\0"


def _label_ok(label: bytes, name: str) -> bool:
    if len(label) > 63:
        raise ValueError(f"label longer than 63 octets in {name!r}")
    return True


def make_query(qname: str, qtype: int, ident: int | None = None, rd: bool = True) -> bytes:
    """One question, class IN, RD set (as dig and dnspython send by default), no EDNS."""
    if ident is None:
        ident = int.from_bytes(os.urandom(2), "big")
    header = _HEADER.pack(ident, 0x0100 if rd else 0, 1, 0, 0, 0)
    return header + encode_name(qname) + struct.pack("!HH", qtype, _CLASS_IN)


def _name_text(labels: list[bytes]) -> str:
    if not labels:
        return "."
    parts = []
    for label in labels:
        text = []
        for byte in label:
            if byte in _NAME_SPECIALS:
                text.append("\\" + chr(byte))
            elif 0x20 < byte < 0x7F:
                text.append(chr(byte))
            else:
                text.append(f"\\{byte:03d}")
        parts.append("".join(text))
    return ".".join(parts) + "."


def read_labels(wire: bytes, offset: int) -> tuple[list[bytes], int]:
    """The (possibly compressed) name at ``offset``: (its labels, the offset after it).

    The one place a name is taken off the wire (dig and capture both use it): every length and
    pointer is checked against the message, loops and names over 255 octets are errors.
    """
    labels: list[bytes] = []
    end = -1
    hops = 0
    total = 0
    while True:
        if offset >= len(wire):
            raise DNSWireError("name runs past the end of the message")
        size = wire[offset]
        if size & 0xC0 == 0xC0:
            if offset + 1 >= len(wire):
                raise DNSWireError("truncated compression pointer")
            if end < 0:
                end = offset + 2
            hops += 1
            if hops > 127:
                raise DNSWireError("compression loop")
            offset = ((size & 0x3F) << 8) | wire[offset + 1]
            continue
        if size & 0xC0:
            raise DNSWireError(f"unsupported label type 0x{size:02x}")
        offset += 1
        if size == 0:
            break
        if offset + size > len(wire):
            raise DNSWireError("label runs past the end of the message")
        labels.append(wire[offset : offset + size])
        total += size + 1
        if total > 255:
            raise DNSWireError("name longer than 255 octets")
        offset += size
    return labels, (end if end >= 0 else offset)


def read_name(wire: bytes, offset: int) -> tuple[str, int]:
    """The (possibly compressed) name at ``offset``: (presentation text, offset after it)."""
    labels, end = read_labels(wire, offset)
    return _name_text(labels), end


class RawRecord(NamedTuple):
    """One resource record as it is on the wire: owner labels, fields, where its data is."""

    labels: list[bytes]
    rtype: int
    rclass: int
    ttl: int
    rdata: int  # offset of the data in the message
    rdlength: int
    end: int  # offset after the record


def read_header(wire: bytes) -> tuple[int, int, int, int, int, int]:
    """(id, flags, qdcount, ancount, nscount, arcount); DNSWireError if shorter than 12 bytes."""
    if len(wire) < 12:
        raise DNSWireError("message shorter than its header")
    return _HEADER.unpack_from(wire)


def read_question(wire: bytes, offset: int) -> tuple[list[bytes], int, int, int]:
    """(labels, qtype, qclass, offset after) of the question at ``offset``."""
    labels, offset = read_labels(wire, offset)
    if offset + 4 > len(wire):
        raise DNSWireError("question runs past the end of the message")
    qtype, qclass = struct.unpack_from("!HH", wire, offset)
    return labels, qtype, qclass, offset + 4


def read_record(wire: bytes, offset: int) -> RawRecord:
    """The resource record at ``offset``; its data must lie inside the message."""
    labels, offset = read_labels(wire, offset)
    if offset + 10 > len(wire):
        raise DNSWireError("record header runs past the end of the message")
    rtype, rclass, ttl, size = _RR.unpack_from(wire, offset)
    offset += 10
    if offset + size > len(wire):
        raise DNSWireError("record data runs past the end of the message")
    return RawRecord(labels, rtype, rclass, ttl, offset, size, offset + size)


def _character_strings(data: bytes) -> str:
    """TXT-style strings, quoted and escaped as dig prints them."""
    out = []
    i = 0
    while i < len(data):
        size = data[i]
        chunk = data[i + 1 : i + 1 + size]
        if len(chunk) != size:
            raise DNSWireError("character-string runs past its record")
        text = []
        for byte in chunk:
            if byte in (0x22, 0x5C):
                text.append("\\" + chr(byte))
            elif 0x20 <= byte < 0x7F:
                text.append(chr(byte))
            else:
                text.append(f"\\{byte:03d}")
        out.append('"' + "".join(text) + '"')
        i += 1 + size
    return " ".join(out)


def rdata_text(wire: bytes, rtype: int, start: int, size: int) -> str:
    """dig's presentation of one record's data (the part after the type)."""
    end = start + size
    data = wire[start:end]
    if rtype == 1 and size == 4:
        return socket.inet_ntop(socket.AF_INET, data)
    if rtype == 28 and size == 16:
        return socket.inet_ntop(socket.AF_INET6, data)
    if rtype in (2, 5, 12, 39):  # NS CNAME PTR DNAME
        return read_name(wire, start)[0]
    if rtype == 15 and size >= 3:  # MX
        return f"{struct.unpack_from('!H', wire, start)[0]} {read_name(wire, start + 2)[0]}"
    if rtype in (16, 99):  # TXT SPF
        return _character_strings(data)
    if rtype == 33 and size >= 7:  # SRV
        prio, weight, port = struct.unpack_from("!HHH", wire, start)
        return f"{prio} {weight} {port} {read_name(wire, start + 6)[0]}"
    if rtype == 6:  # SOA
        mname, offset = read_name(wire, start)
        rname, offset = read_name(wire, offset)
        if offset + 20 > end:
            raise DNSWireError("SOA runs past its record")
        numbers = struct.unpack_from("!IIIII", wire, offset)
        return f"{mname} {rname} " + " ".join(str(n) for n in numbers)
    if rtype == 257 and size >= 2:  # CAA
        flags, tag_len = data[0], data[1]
        tag = data[2 : 2 + tag_len].decode("ascii", "backslashreplace")
        value = _character_strings(bytes((len(data) - 2 - tag_len,)) + data[2 + tag_len :])
        return f"{flags} {tag} {value}"
    return _rdata_text_dnspython(wire, rtype, start, size)


def _rdata_text_dnspython(wire: bytes, rtype: int, start: int, size: int) -> str:
    import dns.rdata

    from_wire: Any = dns.rdata.from_wire
    rdata = from_wire(_CLASS_IN, rtype, wire, start, size)
    return str(rdata.to_text())


class Record:
    """One resource record, in presentation form."""

    __slots__ = ("name", "rtype", "rclass", "ttl", "data")

    def __init__(self, name: str, rtype: int, rclass: int, ttl: int, data: str) -> None:
        self.name, self.rtype, self.rclass, self.ttl, self.data = name, rtype, rclass, ttl, data

    def type_text(self) -> str:
        return type_text(self.rtype)

    def class_text(self) -> str:
        return "IN" if self.rclass == _CLASS_IN else f"CLASS{self.rclass}"


class Message:
    """A parsed DNS message: header fields and the four sections, records in wire order."""

    __slots__ = ("id", "flags", "question", "answer", "authority", "additional", "size")

    def __init__(self, ident: int, flags: int, size: int) -> None:
        self.id = ident
        self.flags = flags
        self.size = size
        self.question: list[tuple[str, int, int]] = []
        self.answer: list[Record] = []
        self.authority: list[Record] = []
        self.additional: list[Record] = []

    def rcode(self) -> int:
        return self.flags & 0xF

    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    def rcode_text(self) -> str:
        code = self.rcode()
        return RCODES[code] if code < len(RCODES) else str(code)

    def opcode_text(self) -> str:
        code = self.opcode()
        return OPCODES[code] if code < len(OPCODES) else str(code)

    def flags_text(self) -> str:
        return " ".join(name for name, bit in _FLAGS if self.flags & bit)


def parse_message(wire: bytes) -> Message:
    """Parse a response; raises DNSWireError when it is malformed."""
    ident, flags, qd, an, ns, ar = read_header(wire)
    msg = Message(ident, flags, len(wire))
    offset = 12
    try:
        for _ in range(qd):
            labels, qtype, qclass, offset = read_question(wire, offset)
            msg.question.append((_name_text(labels), qtype, qclass))
        for section, count in ((msg.answer, an), (msg.authority, ns), (msg.additional, ar)):
            for _ in range(count):
                rr = read_record(wire, offset)
                offset = rr.end
                if rr.rtype == 41:  # OPT pseudo-record: not a record dig lists in a section
                    continue
                section.append(
                    Record(
                        _name_text(rr.labels),
                        rr.rtype,
                        rr.rclass,
                        rr.ttl,
                        rdata_text(wire, rr.rtype, rr.rdata, rr.rdlength),
                    )
                )
    except struct.error:
        raise DNSWireError("message truncated") from None
    return msg


def _same_question(query: bytes, response: bytes) -> bool:
    """The response echoes our question (names compared case-insensitively)."""
    question = query[12:]
    return response[12 : 12 + len(question)].lower() == question.lower()


def _udp(query: bytes, server: str, port: int, timeout_s: float) -> bytes:
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    deadline = time.monotonic() + timeout_s
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((server, port))  # the kernel drops datagrams from anyone else
        sock.send(query)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out")
            sock.settimeout(remaining)
            wire = sock.recv(65535)  # TimeoutError("timed out") when nothing comes
            # ignore stray or spoofed answers: same id, QR set, our question
            if len(wire) >= 12 and wire[:2] == query[:2] and wire[2] & 0x80:
                if wire[4:6] == b"\0\0" or _same_question(query, wire):
                    return wire


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _tcp(query: bytes, server: str, port: int, timeout_s: float) -> bytes:
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)  # TimeoutError("timed out") on connect or a read
        sock.connect((server, port))
        sock.sendall(struct.pack("!H", len(query)) + query)
        while True:
            (size,) = struct.unpack("!H", _recv_exactly(sock, 2))
            wire = _recv_exactly(sock, size)
            if wire[:2] == query[:2]:
                return wire


class DigResult:
    """What a lookup found: the names tried, the server that answered, its response."""

    __slots__ = (
        "qname",
        "rdtype",
        "server",
        "port",
        "tcp",
        "tried",
        "steps",
        "response",
        "elapsed_s",
    )

    def __init__(self, qname: str, rdtype: str, server: str, port: int, tcp: bool) -> None:
        self.qname = qname
        self.rdtype = rdtype
        self.server = server
        self.port = port
        self.tcp = tcp
        self.tried: list[str] = []
        self.steps: list[tuple[str, Message]] = []  # each name tried and its response
        self.response: Message | None = None
        self.elapsed_s = 0.0

    def short(self) -> list[str]:
        """Like ``dig +short``: the data of every answer record, in order."""
        if self.response is None:
            return []
        return [record.data for record in self.response.answer]

    def rcode(self) -> str:
        return self.response.rcode_text() if self.response is not None else ""

    def as_dict(self) -> dict[str, Any]:
        answers = []
        if self.response is not None:
            for record in self.response.answer:
                answers.append(
                    {
                        "name": record.name,
                        "ttl": record.ttl,
                        "type": record.type_text(),
                        "data": record.data,
                    }
                )
        return {
            "name": self.qname,
            "type": self.rdtype,
            "server": f"{self.server}#{self.port}",
            "protocol": "TCP" if self.tcp else "UDP",
            "status": self.rcode(),
            "tried": self.tried,
            "search": [{"name": name, "status": msg.rcode_text()} for name, msg in self.steps],
            "answers": answers,
            "query_time_ms": round(self.elapsed_s * 1000, 3),
        }

    def full_text(self, msg: Message | None = None) -> str:
        """dig's default presentation (header, question, answer, authority, stats).

        ``msg``: one of ``steps``' responses (``+showsearch`` prints each); default the last.
        """
        final = msg is None
        if msg is None:
            msg = self.response
        assert msg is not None
        status = msg.rcode_text()
        lines = [
            f"; <<>> fleetkit ns dig <<>> {self.qname} {self.rdtype}",
            ";; global options: +cmd",
            ";; Got answer:",
            f";; ->>HEADER<<- opcode: {msg.opcode_text()}, status: {status}, id: {msg.id}",
            f";; flags: {msg.flags_text()}; QUERY: {len(msg.question)}, "
            f"ANSWER: {len(msg.answer)}, AUTHORITY: {len(msg.authority)}, "
            f"ADDITIONAL: {len(msg.additional)}",
        ]
        if final and len(self.steps) > 1:
            width = max(len(name) for name, _msg in self.steps)
            for name, step in self.steps:
                lines.append(f";; search: {name:<{width}}  {step.rcode_text()}")
        lines += ["", ";; QUESTION SECTION:"]
        lines += [f";{name}\t\tIN\t{type_text(qtype)}" for name, qtype, _c in msg.question]
        for title, section in (
            ("ANSWER", msg.answer),
            ("AUTHORITY", msg.authority),
            ("ADDITIONAL", msg.additional),
        ):
            if section:
                lines += ["", f";; {title} SECTION:"]
                for record in section:
                    lines.append(
                        f"{record.name}\t\t{record.ttl}\t{record.class_text()}\t"
                        f"{record.type_text()}\t{record.data}"
                    )
        proto = "TCP" if self.tcp else "UDP"
        lines += [
            "",
            f";; Query time: {round(self.elapsed_s * 1000)} msec",
            f";; SERVER: {self.server}#{self.port}({self.server}) ({proto})",
            f";; WHEN: {time.strftime('%a %b %d %H:%M:%S %Z %Y')}",
            f";; MSG SIZE  rcvd: {msg.size}",
            "",
        ]
        return "\n".join(lines)


def dig(
    pid: int | None,
    name: str,
    rdtype: str = "A",
    server: str | None = None,
    port: int = 53,
    tcp: bool = False,
    search: bool = True,
    timeout_s: float | None = None,
    conf: ResolvConf | None = None,
) -> DigResult:
    """Resolve ``name`` from inside the network namespace of ``pid``."""
    try:
        qtype = type_code(rdtype)
    except ValueError:
        from fleetkit.errors import UsageError

        raise UsageError(
            f"unknown query type {rdtype!r}", hint="e.g. A, AAAA, MX, TXT, SRV"
        ) from None
    if conf is None:
        conf = read_resolv_conf(pid)
    servers = [server] if server else list(conf.nameservers)
    names = candidates(name, conf, search)
    try:
        queries = [make_query(qname, qtype) for qname in names]
    except (ValueError, UnicodeError) as exc:
        from fleetkit.errors import UsageError

        raise UsageError(
            f"bad name {name!r}: {exc}", hint="e.g. web.default.svc.cluster.local"
        ) from None
    timeout = timeout_s if timeout_s is not None else conf.timeout_s
    result = DigResult(name, type_text(qtype), servers[0], port, tcp)
    attempts = max(1, conf.attempts if server is None else 1)

    def run() -> DigResult:
        last_error: Exception | None = None
        for qname, query in zip(names, queries, strict=True):
            response = None
            for where in servers:
                result.server = where
                for _attempt in range(attempts):
                    start = time.perf_counter()
                    try:
                        if tcp:
                            wire = _tcp(query, where, port, timeout)
                        else:
                            wire = _udp(query, where, port, timeout)
                            if wire[2] & (_TC >> 8):
                                wire = _tcp(query, where, port, timeout)
                        response = parse_message(wire)
                    except (OSError, DNSWireError) as exc:
                        last_error = exc
                        continue
                    finally:
                        result.elapsed_s = time.perf_counter() - start
                    break
                if response is not None:
                    break
            if response is None:
                break
            result.tried.append(qname)
            result.steps.append((qname, response))
            result.response = response
            if response.rcode() != 3:  # as dig: only NXDOMAIN moves on to the next name
                return result
        if result.response is None:
            reason = "timed out" if isinstance(last_error, TimeoutError) else str(last_error)
            error = HelperError(
                f"communications error to {servers[0]}#{port}: {reason}; no servers could be reached",
                hint=f"servers from {conf.path or 'the command line'}: {', '.join(servers)}",
            )
            error.exit_code = 9  # dig: no reply from server
            raise error
        return result

    return run_in_netns(pid, run)
