"""DNS lookups from inside a target's network namespace, with the target's own resolv.conf.

The query runs in a short-lived thread joined to the target's network namespace (its sockets
are created there). By default the servers, search list and ``ndots`` come from
``/proc/PID/root/etc/resolv.conf`` (the file the target's libc reads), and the search list is
applied as the stub resolver applies it: a name with at least ``ndots`` dots is tried as-is
first, otherwise each search domain is tried first; a trailing dot disables the search.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from fleetkit.netns.errors import HelperError, NoSuchProcess
from fleetkit.netns.namespaces import run_in_netns

__all__ = ["DigResult", "ResolvConf", "candidates", "dig", "read_resolv_conf"]


@dataclass(frozen=True, slots=True)
class ResolvConf:
    nameservers: tuple[str, ...] = ("127.0.0.1",)
    search: tuple[str, ...] = ()
    ndots: int = 1
    timeout_s: float = 5.0
    attempts: int = 2
    path: str = ""


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


@dataclass(slots=True)
class DigResult:
    qname: str
    rdtype: str
    server: str
    port: int
    tcp: bool
    tried: list[str] = field(default_factory=list)
    response: Any = None  # dns.message.Message
    elapsed_s: float = 0.0

    def short(self) -> list[str]:
        """Like ``dig +short``: the rdata of every answer record, in order."""
        if self.response is None:
            return []
        return [rdata.to_text() for rrset in self.response.answer for rdata in rrset]

    def rcode(self) -> str:
        import dns.rcode

        return str(dns.rcode.to_text(self.response.rcode())) if self.response is not None else ""

    def as_dict(self) -> dict[str, Any]:
        answers = []
        if self.response is not None:
            for rrset in self.response.answer:
                for rdata in rrset:
                    answers.append(
                        {
                            "name": rrset.name.to_text(),
                            "ttl": rrset.ttl,
                            "type": _type_text(rrset.rdtype),
                            "data": rdata.to_text(),
                        }
                    )
        return {
            "name": self.qname,
            "type": self.rdtype,
            "server": f"{self.server}#{self.port}",
            "protocol": "TCP" if self.tcp else "UDP",
            "status": self.rcode(),
            "tried": self.tried,
            "answers": answers,
            "query_time_ms": round(self.elapsed_s * 1000, 3),
        }

    def full_text(self) -> str:
        """dig's default presentation (header, question, answer, authority, stats)."""
        msg = self.response
        import dns.flags
        import dns.opcode

        lines = [
            f"; <<>> fleetkit ns dig <<>> {self.qname} {self.rdtype}",
            ";; global options: +cmd",
            ";; Got answer:",
            f";; ->>HEADER<<- opcode: {dns.opcode.to_text(msg.opcode())}, "
            f"status: {self.rcode()}, id: {msg.id}",
            f";; flags: {dns.flags.to_text(msg.flags).lower()}; QUERY: {len(msg.question)}, "
            f"ANSWER: {_count(msg.answer)}, AUTHORITY: {_count(msg.authority)}, "
            f"ADDITIONAL: {_count(msg.additional)}",
        ]
        if len(self.tried) > 1:
            lines.append(f";; searched: {', '.join(self.tried)}")
        lines += ["", ";; QUESTION SECTION:"]
        lines += [f";{rr.name.to_text()}\t\tIN\t{_type_text(rr.rdtype)}" for rr in msg.question]
        for title, section in (
            ("ANSWER", msg.answer),
            ("AUTHORITY", msg.authority),
            ("ADDITIONAL", msg.additional),
        ):
            if section:
                lines += ["", f";; {title} SECTION:"]
                for rrset in section:
                    for rdata in rrset:
                        lines.append(
                            f"{rrset.name.to_text()}\t\t{rrset.ttl}\tIN\t"
                            f"{_type_text(rrset.rdtype)}\t{rdata.to_text()}"
                        )
        proto = "TCP" if self.tcp else "UDP"
        lines += [
            "",
            f";; Query time: {round(self.elapsed_s * 1000)} msec",
            f";; SERVER: {self.server}#{self.port}({self.server}) ({proto})",
            f";; WHEN: {time.strftime('%a %b %d %H:%M:%S %Z %Y')}",
            f";; MSG SIZE  rcvd: {len(msg.to_wire())}",
            "",
        ]
        return "\n".join(lines)


def _count(section: Any) -> int:
    return sum(len(rrset) for rrset in section)


def _type_text(rdtype: Any) -> str:
    import dns.rdatatype

    return str(dns.rdatatype.to_text(rdtype))


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
    import dns.exception
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    try:
        qtype = dns.rdatatype.from_text(rdtype.upper())
    except dns.rdatatype.UnknownRdatatype:
        from fleetkit.errors import UsageError

        raise UsageError(
            f"unknown query type {rdtype!r}", hint="e.g. A, AAAA, MX, TXT, SRV"
        ) from None
    if conf is None:
        conf = read_resolv_conf(pid)
    servers = [server] if server else list(conf.nameservers)
    names = candidates(name, conf, search)
    timeout = timeout_s if timeout_s is not None else conf.timeout_s
    result = DigResult(name, dns.rdatatype.to_text(qtype), servers[0], port, tcp)

    def run() -> DigResult:
        last_error: Exception | None = None
        for qname in names:
            query = dns.message.make_query(qname, qtype)
            response = None
            for where in servers:
                result.server = where
                for _attempt in range(max(1, conf.attempts if server is None else 1)):
                    start = time.perf_counter()
                    try:
                        if tcp:
                            response = dns.query.tcp(query, where, timeout=timeout, port=port)
                        else:
                            response = dns.query.udp(query, where, timeout=timeout, port=port)
                            if response.flags & dns.flags.TC:
                                response = dns.query.tcp(query, where, timeout=timeout, port=port)
                    except (dns.exception.Timeout, OSError) as exc:
                        last_error = exc
                        continue
                    except dns.exception.DNSException as exc:
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
            result.response = response
            if response.rcode() == dns.rcode.NOERROR and response.answer:
                return result
        if result.response is None:
            reason = (
                "timed out" if isinstance(last_error, dns.exception.Timeout) else str(last_error)
            )
            error = HelperError(
                f"communications error to {servers[0]}#{port}: {reason}; no servers could be reached",
                hint=f"servers from {conf.path or 'the command line'}: {', '.join(servers)}",
            )
            error.exit_code = 9  # dig: no reply from server
            raise error
        return result

    import dns.flags

    return run_in_netns(pid, run)
