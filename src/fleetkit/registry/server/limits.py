"""Connection-level limits: a cap on open connections with a clean refusal, and quiet logs.

aiohttp closes a connection that sends no complete request head within its keep-alive timeout
(from the connection's start and after each response), which serves as the header-read and
idle timeout (``--idle-timeout``); a body that stalls is cut off by ``_common.body_chunks``
(``--body-timeout``). What aiohttp does not have is a cap: near the file-descriptor limit every
accept and every open fails, and each failure used to log a traceback. Here a connection past
the cap gets a complete ``503`` at once and is closed, and each condition is logged once when
it starts and once when it ends, never once per socket.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from fleetkit.registry.errors import api_error
from fleetkit.registry.server.metrics import Metrics

__all__ = [
    "ConnectionGuard",
    "GuardedTCPSite",
    "effective_max_connections",
    "QuietLog",
    "http_logger",
    "quiet_loop_errors",
]

log = logging.getLogger("fleetkit.registry")

# descriptors kept free for what connections open besides their socket (blob files, storage
# writes, the htpasswd file, logs): a connection may hold a blob file open while it sends
_FDS_PER_CONNECTION = 2
_FDS_RESERVED = 64


def effective_max_connections(requested: int) -> int:
    """``requested``, lowered so that the connections cannot exhaust ``RLIMIT_NOFILE``.

    The soft limit is raised toward the hard limit first when that is what it takes (as Go's
    runtime does for distribution), so the default 1024 connections fit a default ``ulimit``.
    """
    needed = requested * _FDS_PER_CONNECTION + _FDS_RESERVED
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return requested
    return max(1, min(requested, (soft - _FDS_RESERVED) // _FDS_PER_CONNECTION))


class QuietLog:
    """Log a recurring condition once per ``every_s`` with how often it happened meanwhile."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: Any) -> None:
        self.log(logging.WARNING, key, message, *args)

    def log(self, level: int, key: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        extra = self._suppressed.pop(key, 0)
        if extra:
            message += f" (and {extra} more times in the last {self.every_s:.0f} s)"
        log.log(level, message, *args)


class _QuietFilter(logging.Filter):
    """Turns aiohttp's per-connection tracebacks into rate-limited one-line warnings.

    A malformed request (an oversized header, garbage instead of HTTP) is the client's problem:
    one line naming it, at most once per 10 s per kind, never a traceback. Anything else keeps
    its traceback, also at most once per 10 s per kind.
    """

    def __init__(self, every_s: float = 10.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        key = type(exc).__name__ if exc is not None else record.getMessage()[:80]
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        extra = self._suppressed.pop(key, 0)
        more = f" (and {extra} more in the last {self.every_s:.0f} s)" if extra else ""
        if isinstance(exc, HttpProcessingError):
            record.msg = "bad request: %s%s"
            record.args = (str(exc.message)[:200], more)
            record.exc_info = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        elif more:
            record.msg = str(record.msg) + more
        return True


def http_logger() -> logging.Logger:
    """The logger aiohttp's connection handling reports to (rate-limited, see _QuietFilter)."""
    logger = logging.getLogger("fleetkit.registry.http")
    if not any(isinstance(f, _QuietFilter) for f in logger.filters):
        logger.addFilter(_QuietFilter())
    return logger


def quiet_loop_errors(loop: asyncio.AbstractEventLoop, every_s: float = 10.0) -> None:
    """Route the loop's error reports (failed accepts near the fd limit, say) through a log
    that repeats each kind at most once per ``every_s``."""
    quiet = QuietLog(every_s)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        message = str(context.get("message", "event loop error"))
        detail = f": {exc}" if exc is not None else ""
        quiet.warning(message[:80] + type(exc).__name__, "%s%s", message, detail)

    loop.set_exception_handler(handler)


class _Refusal(asyncio.Protocol):
    """Answers ``503`` with the wire error body and closes; reads nothing."""

    def __init__(self, response: bytes) -> None:
        self.response = response

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.response)
        transport.close()


def _refusal_bytes() -> bytes:
    # the table's error body; the status line and headers are written here because this
    # connection never reaches aiohttp's request handling
    body = api_error(
        "TOOMANYREQUESTS", "too many open connections; retry shortly", status=503
    ).body_bytes()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Docker-Distribution-API-Version: registry/2.0\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class ConnectionGuard:
    """Hands new connections to aiohttp up to ``limit`` open ones; refuses the rest."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self.limit = limit
        self.metrics = metrics
        self.refusing = False
        self._refused_since = 0
        self._response = _refusal_bytes()

    def protocol(self, server: web.Server) -> asyncio.BaseProtocol:
        if len(server.connections) >= self.limit:
            self.metrics.connections_refused += 1
            self._refused_since += 1
            if not self.refusing:
                self.refusing = True
                log.warning(
                    "connection limit reached (%d open): refusing new connections with 503",
                    self.limit,
                )
            return _Refusal(self._response)
        if self.refusing:
            self.refusing = False
            log.warning(
                "accepting connections again (%d refused while at the limit)",
                self._refused_since,
            )
            self._refused_since = 0
        return server()


class GuardedTCPSite(web.TCPSite):
    """A :class:`aiohttp.web.TCPSite` whose connections pass through a :class:`ConnectionGuard`."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, *, guard: ConnectionGuard, **kwargs: Any
    ) -> None:
        super().__init__(runner, host, port, **kwargs)
        self.guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert isinstance(server, web.Server)
        guard = self.guard
        self._server = await loop.create_server(
            lambda: guard.protocol(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
