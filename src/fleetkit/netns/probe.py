"""``connect`` and ``http`` probes from inside a target's network namespace.

The socket is created and connected in a thread joined to the target's network namespace;
timings are wall-clock from the first syscall to the connected socket / the complete response.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

from fleetkit.netns.errors import HelperError
from fleetkit.netns.namespaces import run_in_netns

__all__ = ["ConnectResult", "HttpResult", "connect", "http_get", "split_hostport"]


@dataclass(frozen=True, slots=True)
class ConnectResult:
    host: str
    port: int
    address: str
    local: str
    connect_s: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "address": self.address,
            "local": self.local,
            "connect_ms": round(self.connect_s * 1000, 3),
        }


@dataclass(frozen=True, slots=True)
class HttpResult:
    url: str
    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    size_bytes: int
    connect_s: float
    total_s: float
    body: bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "status": self.status,
            "reason": self.reason,
            "http_version": self.version,
            "size_bytes": self.size_bytes,
            "connect_ms": round(self.connect_s * 1000, 3),
            "total_ms": round(self.total_s * 1000, 3),
            "headers": dict(self.headers),
        }


def split_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host or not 0 < int(port) <= 65535:
        from fleetkit.errors import UsageError

        raise UsageError(
            f"expected HOST:PORT, got {text!r}", hint="e.g. 10.96.0.10:53 or [fd00::1]:80"
        )
    return host.strip("[]"), int(port)


def _fmt(addr: Any) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _connect_here(host: str, port: int, timeout_s: float) -> tuple[socket.socket, float]:
    start = time.perf_counter()
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except TimeoutError:
        raise HelperError(
            f"connect to {host}:{port}: timed out after {timeout_s:g}s",
            hint="a firewall may drop the SYN; try 'fleetkit ns capture' on the target",
        ) from None
    except socket.gaierror as exc:
        raise HelperError(
            f"cannot resolve {host}: {exc.strerror}", hint="check 'fleetkit ns dig'"
        ) from None
    except OSError as exc:
        raise HelperError(
            f"connect to {host}:{port}: {exc.strerror or exc}",
            hint="nothing listens there, or a route/firewall rejects it; see 'fleetkit ns sockets'",
        ) from None
    return sock, time.perf_counter() - start


def resolve_host(pid: int | None, host: str) -> str:
    """An address for ``host`` as the target would resolve it (its resolv.conf, via dig)."""
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if host == "localhost":
        return "127.0.0.1"
    from fleetkit.netns.dns import dig

    for rdtype in ("A", "AAAA"):
        response = dig(pid, host, rdtype).response
        answer = response.answer if response is not None else []
        addresses = [record.data for record in answer if record.rtype in (1, 28)]
        if addresses:
            return addresses[0]
    raise HelperError(
        f"cannot resolve {host} with the target's resolv.conf",
        hint=f"check with 'fleetkit ns dig TARGET {host}'",
    )


def connect(pid: int | None, host: str, port: int, timeout_s: float = 5.0) -> ConnectResult:
    address = resolve_host(pid, host)

    def run() -> ConnectResult:
        sock, elapsed = _connect_here(address, port, timeout_s)
        try:
            return ConnectResult(
                host, port, _fmt(sock.getpeername()), _fmt(sock.getsockname()), elapsed
            )
        finally:
            sock.close()

    return run_in_netns(pid, run)


def http_get(
    pid: int | None, url: str, timeout_s: float = 10.0, max_body: int = 1 << 20
) -> HttpResult:
    import http.client
    import urllib.parse

    from fleetkit.errors import UsageError

    hint = "use http://HOST[:PORT]/PATH or https://..."
    try:
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        explicit_port = parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535"
        raise UsageError(f"invalid URL {url!r}: {exc}", hint=hint) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"unsupported URL {url!r}", hint=hint)
    host = parts.hostname
    port = explicit_port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query

    start = time.perf_counter()
    address = resolve_host(pid, host)

    def run() -> HttpResult:
        sock, connect_s = _connect_here(address, port, timeout_s)
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            import ssl

            ctx = ssl.create_default_context()
            sock = ctx.wrap_socket(sock, server_hostname=host)
            conn = http.client.HTTPSConnection(host, port, timeout=timeout_s, context=ctx)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
        conn.sock = sock
        try:
            conn.request("GET", path, headers={"User-Agent": "fleetkit-ns-http", "Accept": "*/*"})
            resp = conn.getresponse()
            body = resp.read(max_body)
            total = time.perf_counter() - start
            version = {10: "HTTP/1.0", 11: "HTTP/1.1"}.get(resp.version, "HTTP/1.1")
            return HttpResult(
                url,
                resp.status,
                resp.reason,
                version,
                list(resp.getheaders()),
                len(body),
                connect_s,
                total,
                body,
            )
        except (OSError, http.client.HTTPException) as exc:
            raise HelperError(
                f"GET {url}: {exc}",
                hint="the server closed or timed out; see 'fleetkit ns capture'",
            ) from None
        finally:
            conn.close()

    return run_in_netns(pid, run)
