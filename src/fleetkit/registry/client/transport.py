"""HTTP to one registry: scheme choice, ping, Docker token auth, retries, redirects, tracing.

What a request goes through (as dockerd and go-containerregistry do it):

1. ``GET /v2/`` once (the ping) learns the registry's challenge from ``WWW-Authenticate``.
2. Each request names the scopes it needs (``repository:NAME:pull``). With a Bearer challenge
   a token for exactly those scopes is fetched from the realm -- ``GET realm?service=&scope=``
   (plus ``account`` and Basic credentials when known), or an OAuth2 ``POST`` with
   ``grant_type=refresh_token`` when an identity token is stored -- and cached until it expires.
   With a Basic challenge the credentials go with every request.
3. A ``401`` adds the challenge's scope to the request's, drops the refused token, fetches a new
   one and retries once (an expired token mid-pull recovers here).
4. Connection errors, ``5xx`` and ``429`` are retried with exponential backoff (``Retry-After``
   honoured) when the request body can be replayed; each retry is announced to ``notify`` as
   ``...; retry 2/5 in 1.0s``. Errors that cannot heal fail at once: an unknown host, a failed
   TLS handshake (a plain-HTTP registry spoken to over https), and a refused connection before
   the registry ever answered. A failed ping is remembered, so parallel requests fail with it.
5. Redirects are followed by hand: ``Authorization`` is sent only to the registry's own origin,
   never to the host a blob is redirected to.
6. Credentials never travel in clear text from an https registry: a token realm on plain
   ``http://`` is refused when there is a password or identity token to send.

``trace`` receives each request and response head with tokens, passwords and signed query
parameters (also in ``Location``) redacted, and with control characters escaped.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import errno
import itertools
import json
import random
import re
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from fleetkit import __version__
from fleetkit.registry.client import credentials
from fleetkit.registry.client.credentials import Credential
from fleetkit.registry.client.errors import AuthError, TransportError, VerificationError
from fleetkit.registry.client.events import TraceSink, printable
from fleetkit.registry.errors import RegistryAPIError, from_response
from fleetkit.registry.reference import is_insecure_default

__all__ = [
    "RetryPolicy",
    "Challenge",
    "Transport",
    "connect",
    "parse_challenges",
    "redact_url",
    "redact_header",
    "RETRY_STATUSES",
    "read_body",
    "MAX_ERROR_BODY_BYTES",
]

MAX_ERROR_BODY_BYTES = 64 << 10  # an error's JSON; only its first message is shown anyway
MAX_TOKEN_BODY_BYTES = 1 << 20  # a token response (JWTs with x5c chains are a few KiB)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_SECRET_PARAMS = {
    "access_token",
    "refresh_token",
    "token",
    "password",
    "secret",
    "client_secret",
    "signature",
    "sig",
    "x-amz-signature",
    "x-amz-security-token",
    "x-amz-credential",
    "x-goog-signature",
    "x-goog-credential",
}
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie"}
_URL_HEADERS = {"location", "content-location", "link"}
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BARE_VALUE_RE = re.compile(r"[^,\s]*")
_READ_BUFSIZE = 2 << 20  # aiohttp default 64 KiB: pausing the socket that often halves throughput


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all; backoff ``base_s * 2**n`` (jittered) capped at ``max_s``."""

    attempts: int = 5
    base_s: float = 0.5
    max_s: float = 20.0
    max_retry_after_s: float = 60.0

    def delay(self, failure: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return max(0.0, min(retry_after, self.max_retry_after_s))
        step = min(self.max_s, self.base_s * 2.0 ** max(0, failure - 1))
        return step * (0.5 + random.random() / 2)


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "bearer", "basic"
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` values (RFC 7235): ``Bearer realm="...",scope="a b"``."""
    out: list[Challenge] = []
    for header in values:
        current: Challenge | None = None
        i, n = 0, len(header)
        while i < n:
            while i < n and header[i] in ", \t":
                i += 1
            m = _TOKEN_RE.match(header, i)
            if not m:
                break
            name, j = m.group(0), m.end()
            k = j
            while k < n and header[k] in " \t":
                k += 1
            if current is not None and k < n and header[k] == "=":
                k += 1
                while k < n and header[k] in " \t":
                    k += 1
                if k < n and header[k] == '"':
                    k += 1
                    buf: list[str] = []
                    while k < n and header[k] != '"':
                        if header[k] == "\\" and k + 1 < n:
                            k += 1
                        buf.append(header[k])
                        k += 1
                    value, k = "".join(buf), k + 1
                else:
                    vm = _BARE_VALUE_RE.match(header, k)
                    value, k = (vm.group(0), vm.end()) if vm else ("", k)
                current.params[name.lower()] = value
                i = k
            else:
                current = Challenge(name.lower(), {})
                out.append(current)
                i = j
    return out


def redact_url(url: URL | str) -> str:
    u = URL(url) if isinstance(url, str) else url
    if u.user or u.password:
        u = u.with_user(None)
    if not u.query:
        return str(u)
    pairs = [(k, "[redacted]" if k.lower() in _SECRET_PARAMS else v) for k, v in u.query.items()]
    return str(u.with_query(pairs)).replace("%5Bredacted%5D", "[redacted]")


def redact_header(name: str, value: str) -> str:
    if name.lower() in _URL_HEADERS:
        return _redact_urls_in(value)
    if name.lower() in _SECRET_HEADERS:
        scheme, _, rest = value.partition(" ")
        return (
            f"{scheme} [redacted]"
            if rest and name.lower().endswith("authorization")
            else "[redacted]"
        )
    return value


_URL_IN_TEXT_RE = re.compile(r"[^\s<>,]*\?[^\s<>,]*")


def _redact_urls_in(value: str) -> str:
    """Redact secret query parameters of every URL in a header value (relative ones too)."""

    def one(m: re.Match[str]) -> str:
        text = m.group(0)
        try:
            return redact_url(URL(text, encoded=True))
        except (ValueError, TypeError):
            return text.split("?", 1)[0] + "?[redacted]"

    return _URL_IN_TEXT_RE.sub(one, value)


async def read_body(resp: aiohttp.ClientResponse, limit: int, what: str | None = None) -> bytes:
    """At most ``limit`` bytes of a body, however it arrives (pieces, chunks).

    Without ``what`` a longer body is cut (an error body: its start is enough, and the
    connection is dropped rather than drained); with ``what`` it is an error naming it.
    """
    buf = bytearray()
    try:
        while len(buf) <= limit:
            piece = await resp.content.read(limit + 1 - len(buf))
            if not piece:
                return bytes(buf)
            buf += piece
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        if what is None:
            return bytes(buf)
        raise TransportError(printable(f"{what}: reading the response failed ({exc})")) from None
    if what is None:
        resp.close()  # do not read the rest just to reuse the connection
        return bytes(buf[:limit])
    resp.close()
    raise VerificationError(printable(f"{what}: response larger than {limit} bytes"))


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _origin(url: URL) -> tuple[str, str, int | None]:
    return (url.scheme, (url.host or "").lower(), url.explicit_port or url.port)


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float


BodyFactory = Callable[[], Any]
Notify = Callable[[str], None]


class Transport:
    """An ``aiohttp`` session bound to one registry; use as ``async with Transport(...)``."""

    def __init__(
        self,
        registry: str,
        *,
        credential: Credential | None = None,
        tls_verify: bool = True,
        retry: RetryPolicy | None = None,
        trace: TraceSink | None = None,
        timeout_s: float = 60.0,
        max_connections: int = 16,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.registry = registry
        self.host = "registry-1.docker.io" if registry == "docker.io" else registry
        self.credential = credential if credential and not credential.empty else None
        self.tls_verify = tls_verify
        self.scheme = "http" if is_insecure_default(registry) else "https"
        self.retry = retry or RetryPolicy()
        self._trace = trace
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._challenge: Challenge | None = None
        self._pinged = False
        self._ping_lock = asyncio.Lock()
        self._tokens: dict[tuple[str, str, tuple[str, ...]], _Token] = {}
        self._token_locks: dict[tuple[str, str, tuple[str, ...]], asyncio.Lock] = {}
        self._ids = itertools.count(1)
        self._ssl_context: ssl.SSLContext | None = None
        self._ping_error: TransportError | None = None
        self._notify = notify  # retries of requests that name no notify of their own
        self.token_fetches = 0

    async def __aenter__(self) -> Transport:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self._timeout_s, sock_read=self._timeout_s
                ),
                auto_decompress=False,
                read_bufsize=_READ_BUFSIZE,
                headers={"User-Agent": f"fleetkit/{__version__}"},
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def auth_scheme(self) -> str:
        """What the ping's challenge asked for: ``bearer``, ``basic`` or ``none``."""
        return self._challenge.scheme if self._challenge is not None else "none"

    @property
    def read_timeout_s(self) -> float:
        """How long a response may send nothing before the read fails."""
        return self._timeout_s

    @property
    def base_url(self) -> URL:
        return URL.build(scheme=self.scheme, authority=self.host)

    def url(self, path: str) -> URL:
        return URL(f"{self.base_url}{path}", encoded=True)

    def _ssl_for(self, url: URL) -> ssl.SSLContext | bool:
        """An explicit TLS context per https request (never aiohttp's import-time defaults)."""
        if url.scheme != "https":
            return True
        if not self.tls_verify:
            return False
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
            self._ssl_context.set_alpn_protocols(["http/1.1"])
        return self._ssl_context

    # -- tracing ---------------------------------------------------------------------------

    def _trace_request(self, rid: int, method: str, url: URL, headers: CIMultiDict[str]) -> None:
        if self._trace is None:
            return
        lines = [f"[{rid}] > {method} {redact_url(url)}"]
        lines += [f"[{rid}] > {k}: {redact_header(k, v)}" for k, v in headers.items()]
        self._trace("\n".join(printable(line) for line in lines))

    def _trace_response(self, rid: int, resp: aiohttp.ClientResponse) -> None:
        if self._trace is None:
            return
        lines = [f"[{rid}] < HTTP/{_version(resp)} {resp.status} {resp.reason}"]
        lines += [f"[{rid}] < {k}: {redact_header(k, v)}" for k, v in resp.headers.items()]
        self._trace("\n".join(printable(line) for line in lines))

    def trace_note(self, text: str) -> None:
        if self._trace is not None:
            self._trace(f"* {printable(text)}")

    # -- sending with retries --------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        body: BodyFactory | None,
        notify: Notify | None,
        replayable: bool,
    ) -> aiohttp.ClientResponse:
        assert self._session is not None, "Transport used outside 'async with'"
        notify = notify or self._notify
        failure = 0
        while True:
            rid = next(self._ids)
            self._trace_request(rid, method, url, headers)
            try:
                resp = await self._session.request(
                    method,
                    url,
                    headers=headers,
                    data=body() if body is not None else None,
                    allow_redirects=False,
                    ssl=self._ssl_for(url),
                )
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                failure += 1
                reason = _describe(exc)
                permanent = isinstance(
                    exc, aiohttp.ClientConnectorDNSError | aiohttp.ClientSSLError
                ) or (not self._pinged and _refused(exc))
                if permanent or not replayable or failure >= self.retry.attempts:
                    hint = (
                        "check that the registry is reachable (tried "
                        f"{failure} time{'s' if failure != 1 else ''})"
                    )
                    if isinstance(exc, aiohttp.ClientSSLError):
                        hint = (
                            "the registry speaks plain HTTP or has a certificate this machine "
                            "does not trust; for a registry you trust, pass --tls-verify=false"
                        )
                    raise TransportError(
                        printable(f"{method} {redact_url(url)}: {reason}"),
                        hint=hint,
                        retryable=not permanent,
                    ) from None
                await self._backoff(failure, None, f"{reason}", notify)
                continue
            self._trace_response(rid, resp)
            if resp.status in RETRY_STATUSES and replayable and failure + 1 < self.retry.attempts:
                failure += 1
                wait = _retry_after(resp.headers.get("Retry-After"))
                await read_body(resp, MAX_ERROR_BODY_BYTES)
                resp.release()
                await self._backoff(failure, wait, f"HTTP {resp.status}", notify)
                continue
            return resp

    async def _backoff(
        self, failure: int, retry_after: float | None, reason: str, notify: Notify | None
    ) -> None:
        delay = self.retry.delay(failure, retry_after)
        message = printable(f"{reason}; retry {failure + 1}/{self.retry.attempts} in {delay:.1f}s")
        self.trace_note(message)
        if notify is not None:
            notify(message)
        await asyncio.sleep(delay)

    # -- ping and auth ---------------------------------------------------------------------

    async def ping(self) -> None:
        """``GET /v2/`` once; learns the auth challenge (and, with tls_verify off, the scheme)."""
        async with self._ping_lock:
            if self._pinged:
                return
            if self._ping_error is not None:
                raise self._ping_error
            await self.open()
            try:
                await self._ping()
            except TransportError as exc:
                if not exc.retryable:
                    self._ping_error = exc  # concurrent requests fail with it, not again
                raise
            self._pinged = True

    async def _ping(self) -> None:
        """One ``GET /v2/`` (https, then http when --tls-verify=false allows)."""
        try:
            resp = await self._send("GET", self.url("/v2/"), CIMultiDict(), None, None, True)
        except TransportError:
            if self.scheme == "https" and not self.tls_verify:
                self.trace_note("https failed; falling back to plain http (--tls-verify=false)")
                self.scheme = "http"
                resp = await self._send("GET", self.url("/v2/"), CIMultiDict(), None, None, True)
            else:
                raise
        async with resp:
            body = await read_body(resp, MAX_ERROR_BODY_BYTES)
            if resp.status == 401:
                self._challenge = _pick(
                    parse_challenges(resp.headers.getall("WWW-Authenticate", []))
                )
            elif resp.status == 404:
                raise TransportError(
                    f"{self.registry} does not implement the registry API v2 (GET /v2/ -> 404)"
                )
            elif resp.status >= 400:
                raise self.error(resp.status, body, f"{self.registry}")

    def _basic(self) -> str | None:
        cred = self.credential
        if cred is None or not (cred.username or cred.password):
            return None
        raw = f"{cred.username}:{cred.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    async def _authorization(self, scopes: frozenset[str]) -> str | None:
        ch = self._challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            return self._basic()
        if ch.scheme == "bearer":
            return "Bearer " + await self._token(ch, scopes)
        return None

    async def _token(self, ch: Challenge, scopes: frozenset[str]) -> str:
        key = (ch.params.get("realm", ""), ch.params.get("service", ""), tuple(sorted(scopes)))
        lock = self._token_locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.expires_at > time.monotonic():
                return cached.value
            token = await self._fetch_token(ch, key[2])
            self._tokens[key] = token
            return token.value

    def _forget_token(self, authorization: str | None) -> None:
        if not authorization or not authorization.startswith("Bearer "):
            return
        value = authorization[len("Bearer ") :]
        for key in [k for k, t in self._tokens.items() if t.value == value]:
            del self._tokens[key]

    async def _fetch_token(self, ch: Challenge, scopes: tuple[str, ...]) -> _Token:
        realm = ch.params.get("realm")
        if not realm:
            raise AuthError(f"{self.registry}: Bearer challenge without a realm")
        try:
            realm_url = URL(realm)
        except ValueError:
            raise AuthError(f"{self.registry}: invalid token realm {realm!r}") from None
        if realm_url.scheme not in ("http", "https"):
            raise AuthError(f"{self.registry}: invalid token realm {realm!r}")
        service = ch.params.get("service", "")
        cred = self.credential
        if cred is not None and realm_url.scheme == "http" and self.scheme == "https":
            # docker sends Basic credentials to any realm; over http they would cross the
            # network in clear text, although the registry itself was reached over TLS
            raise AuthError(
                printable(
                    f"{self.registry}: the token realm {redact_url(realm_url)} is plain HTTP; "
                    "refusing to send credentials there unencrypted"
                ),
                hint="ask the registry's operator for an https:// token realm, or pull "
                "anonymously (without stored credentials for this registry)",
            )
        headers: CIMultiDict[str] = CIMultiDict()
        self.token_fetches += 1
        if cred is not None and cred.identity_token:
            form: list[tuple[str, str]] = [
                ("grant_type", "refresh_token"),
                ("refresh_token", cred.identity_token),
                ("service", service),
                ("client_id", "fleetkit"),
                ("scope", " ".join(scopes)),
            ]
            raw = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"

            def body() -> bytes:
                return raw

            resp = await self._send("POST", realm_url, headers, body, None, True)
        else:
            query: list[tuple[str, str]] = []
            if service:
                query.append(("service", service))
            query += [("scope", s) for s in scopes]
            if cred is not None and cred.username:
                query.append(("account", cred.username))
            basic = self._basic()
            if basic:
                headers["Authorization"] = basic
            resp = await self._send("GET", realm_url.extend_query(query), headers, None, None, True)
        async with resp:
            if resp.status == 200:
                body_bytes = await read_body(resp, MAX_TOKEN_BODY_BYTES, "token response")
            else:
                body_bytes = await read_body(resp, MAX_ERROR_BODY_BYTES)
            if resp.status in (401, 403):
                err = self.error(resp.status, body_bytes, "token request")
                raise AuthError(
                    f"{self.registry}: the token service refused the request: {err.message}",
                    hint=f"check the credentials (fleetkit login {self.registry})",
                )
            if resp.status != 200:
                raise self.error(resp.status, body_bytes, f"token request to {realm_url.host}")
        try:
            doc = json.loads(body_bytes)
            value = doc.get("token") or doc.get("access_token")
            expires_in = int(doc.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            value, expires_in = None, 0
        if not isinstance(value, str) or not value:
            raise AuthError(f"{self.registry}: the token service returned no token")
        expires_in = max(expires_in, 60)  # docker's minimum
        return _Token(value, time.monotonic() + expires_in - 5)

    # -- the one entry point ---------------------------------------------------------------

    async def request(
        self,
        method: str,
        target: str | URL,
        *,
        scopes: Iterable[str] = (),
        headers: CIMultiDict[str] | dict[str, str] | None = None,
        body: BodyFactory | None = None,
        replayable: bool = True,
        notify: Notify | None = None,
        max_redirects: int = 5,
    ) -> aiohttp.ClientResponse:
        """Send with auth, retries and redirects; return the (unread) final response.

        ``target`` is a path on the registry (``/v2/...``) or an absolute URL (an upload
        location). ``body`` is called for every attempt; pass ``replayable=False`` when it can
        be called only once (then nothing is retried).
        """
        await self.ping()
        url = (
            self.url(target) if isinstance(target, str) and target.startswith("/") else URL(target)
        )
        wanted = set(scopes)
        reauthed = False
        hops = 0
        while True:
            h: CIMultiDict[str] = CIMultiDict(headers or {})
            same_origin = _origin(url) == _origin(self.base_url)
            authorization = await self._authorization(frozenset(wanted)) if same_origin else None
            if authorization:
                h["Authorization"] = authorization
            elif not same_origin:
                h.popall("Authorization", None)
            resp = await self._send(method, url, h, body, notify, replayable)
            if resp.status == 401 and same_origin and not reauthed:
                ch = _pick(parse_challenges(resp.headers.getall("WWW-Authenticate", [])))
                if ch is None:
                    return resp
                reauthed = True
                self._challenge = ch
                if ch.scheme == "bearer":
                    wanted |= set(ch.params.get("scope", "").split())
                    self._forget_token(authorization)
                elif self._basic() is None or authorization == self._basic():
                    return resp
                resp.release()
                self.trace_note("401: authenticating and retrying once")
                continue
            if resp.status in REDIRECT_STATUSES and "Location" in resp.headers:
                hops += 1
                if hops > max_redirects:
                    resp.release()
                    raise TransportError(f"{method} {redact_url(url)}: too many redirects")
                location = URL(resp.headers["Location"], encoded=True)
                resp.release()
                url = url.join(location)
                if resp.status == 303:
                    method, body = "GET", None
                if _origin(url) != _origin(self.base_url):
                    self.trace_note(f"redirect to {url.host}: Authorization is not sent there")
                continue
            return resp

    def error(self, status: int, body: bytes, context: str) -> RegistryAPIError | AuthError:
        """The registry's error for a response, with ``context`` (what was asked) in front."""
        err = from_response(status, body)
        message = printable(f"{context}: {err.message}", limit=_MAX_MESSAGE_CHARS)
        if status == 401:
            return AuthError(
                message,
                hint=f"log in with 'fleetkit login {self.registry}' or check the credentials",
            )
        if status == 403:
            return AuthError(message, hint="the credentials lack access to this repository")
        out = type(err)(message, code=err.code, detail=err.detail, status=status)
        if err.code in ("NAME_UNKNOWN", "MANIFEST_UNKNOWN"):
            out.hint = "check the repository and tag with 'fleetkit tags REPOSITORY'"
        return out


_MAX_MESSAGE_CHARS = 1000


def connect(
    registry: str,
    *,
    credential: Credential | None = None,
    config_path: str | Path | None = None,
    tls_verify: bool = True,
    retry: RetryPolicy | None = None,
    trace: TraceSink | None = None,
    notify: Callable[[str], None] | None = None,
    timeout_s: float = 60.0,
    max_connections: int = 16,
) -> Transport:
    """The one setup of every verb: a :class:`Transport` to ``registry`` with ``credential``,
    else the one stored for it (docker's config.json or credential helper)."""
    if credential is None:
        credential = credentials.resolve(registry, config_path)
    return Transport(
        registry,
        credential=credential,
        tls_verify=tls_verify,
        retry=retry,
        trace=trace,
        timeout_s=timeout_s,
        max_connections=max_connections,
        notify=notify,
    )


def _refused(exc: BaseException) -> bool:
    if not isinstance(exc, aiohttp.ClientConnectorError):
        return False
    return exc.os_error.errno == errno.ECONNREFUSED or isinstance(
        exc.os_error, ConnectionRefusedError
    )


def _version(resp: aiohttp.ClientResponse) -> str:
    v = resp.version
    return f"{v.major}.{v.minor}" if v is not None else "1.1"


def _pick(challenges: list[Challenge]) -> Challenge | None:
    for scheme in ("bearer", "basic"):
        for ch in challenges:
            if ch.scheme == scheme:
                return ch
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.ClientSSLError):
        os_error = getattr(exc, "os_error", None)
        detail = getattr(os_error, "reason", None) or getattr(os_error, "verify_message", None)
        return f"TLS handshake failed ({detail or exc})"
    if _refused(exc):
        assert isinstance(exc, aiohttp.ClientConnectorError)
        return f"cannot connect to {exc.host}:{exc.port} (connection refused)"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or exc.os_error})"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "connection closed mid-response"
    text = str(exc) or type(exc).__name__
    return text
