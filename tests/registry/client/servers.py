"""In-test HTTP servers on 127.0.0.1 (aiohttp, each on its own thread and loop):

* :class:`TokenService` -- a Docker token service issuing ES256 JWTs that docker-registry
  (``auth: token`` with ``rootcertbundle``) accepts; records every request.
* :class:`FaultProxy` -- a reverse proxy in front of a registry that injects the faults a test
  asks for (cut connections, 429/5xx, short or corrupt bodies, redirects, token expiry,
  throttling) and records every request it sees.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from multidict import CIMultiDict


class _ThreadServer:
    """Runs an aiohttp app on 127.0.0.1:0 in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.port = 0

    def app(self) -> web.Application:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self) -> _ThreadServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        self.runner = web.AppRunner(
            self.app(), access_log=None, handler_cancellation=True, shutdown_timeout=0.1
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]

    async def _on_start(self) -> None:
        pass

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_kid(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, 48, 4))


@dataclass
class TokenRequest:
    method: str
    query: dict[str, list[str]]
    authorization: str | None
    form: dict[str, str] = field(default_factory=dict)


class TokenService(_ThreadServer):
    SERVICE = "fleetkit-test-registry"
    ISSUER = "fleetkit-test-issuer"

    def __init__(
        self,
        workdir: Path,
        users: dict[str, str] | None = None,
        refresh_tokens: dict[str, str] | None = None,
        expires_in: int = 300,
    ) -> None:
        super().__init__()
        self.users = users or {}
        self.refresh_tokens = refresh_tokens or {}
        self.expires_in = expires_in
        self.requests: list[TokenRequest] = []
        self.issued: list[str] = []
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleetkit test token issuer")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        self.bundle = workdir / "token-ca.pem"
        self.bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.kid = libtrust_kid(self.key.public_key())

    def registry_auth(self) -> dict[str, Any]:
        return {
            "token": {
                "realm": f"http://{self.host}/token",
                "service": self.SERVICE,
                "issuer": self.ISSUER,
                "rootcertbundle": str(self.bundle),
            }
        }

    def sign(self, subject: str, scopes: list[str], lifetime_s: int) -> str:
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) >= 3:
                access.append(
                    {
                        "type": parts[0],
                        "name": ":".join(parts[1:-1]),
                        "actions": parts[-1].split(","),
                    }
                )
        now = int(time.time())
        claims = {
            "iss": self.ISSUER,
            "sub": subject,
            "aud": self.SERVICE,
            "exp": now + lifetime_s,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        header = {"typ": "JWT", "alg": "ES256", "kid": self.kid}
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/token", self._get)
        app.router.add_post("/token", self._post)
        return app

    def _reply(self, subject: str, scopes: list[str]) -> web.Response:
        token = self.sign(subject, scopes, self.expires_in)
        self.issued.append(token)
        body = {
            "token": token,
            "access_token": token,
            "expires_in": self.expires_in,
            "issued_at": datetime.datetime.now(datetime.UTC).isoformat(),
        }
        return web.json_response(body)

    async def _get(self, request: web.Request) -> web.Response:
        query: dict[str, list[str]] = {}
        for k, v in request.query.items():
            query.setdefault(k, []).append(v)
        auth = request.headers.get("Authorization")
        self.requests.append(TokenRequest("GET", query, auth))
        subject = "anonymous"
        if auth:
            try:
                user, _, password = base64.b64decode(auth.split(" ", 1)[1]).decode().partition(":")
            except Exception:
                return web.json_response({"details": "bad auth"}, status=400)
            if self.users.get(user) != password:
                return web.json_response(
                    {
                        "errors": [
                            {"code": "UNAUTHORIZED", "message": "invalid username or password"}
                        ]
                    },
                    status=401,
                )
            subject = user
        elif self.users:
            # anonymous: only pull of public/* is granted
            scopes = [s for s in query.get("scope", []) if s.startswith("repository:public/")]
            return self._reply(subject, scopes)
        return self._reply(subject, query.get("scope", []))

    async def _post(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(TokenRequest("POST", {}, request.headers.get("Authorization"), form))
        user = self.refresh_tokens.get(form.get("refresh_token", ""))
        if form.get("grant_type") != "refresh_token" or user is None:
            return web.json_response({"error": "invalid_grant"}, status=401)
        return self._reply(user, form.get("scope", "").split())


# -- fault proxy -------------------------------------------------------------------------------

Handler = Callable[[web.Request, "FaultProxy"], Awaitable[web.StreamResponse | None]]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    status: int = 0
    sent_bytes: int = 0
    at: float = 0.0


CUT_AT = web.RequestKey("cut_at", int)
# polled (with a deadline) after the first CUT_AT bytes are out and before the cut, e.g. "the
# client has written them all to its partial file", so the cut point is deterministic
CUT_WHEN = web.RequestKey("cut_when", object)
SHORT = web.RequestKey("short", int)
CORRUPT = web.RequestKey("corrupt", bool)
RATE = web.RequestKey("rate", int)

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-encoding", "upgrade", "host"}


class FaultProxy(_ThreadServer):
    """Forwards to ``upstream``; ``self.faults`` is a list of handlers tried in order.

    A handler returns a response to short-circuit, or None to let the request through; it may
    set ``request[CUT_AT]`` (abort the body after N bytes), ``request[SHORT]`` (end the body
    cleanly after N bytes), ``request[CORRUPT]`` (flip a byte) or ``request[RATE]``
    (bytes per second) to alter the forwarded body.
    """

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream
        self.faults: list[Handler] = []
        self.seen: list[Seen] = []
        self.session: ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    def blob_gets(self, digest: str) -> list[Seen]:
        return [s for s in self.seen if s.method == "GET" and s.path.endswith(f"/blobs/{digest}")]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(request.method, request.path_qs, dict(request.headers), at=time.monotonic())
        self.seen.append(seen)
        for fault in list(self.faults):
            resp = await fault(request, self)
            if resp is not None:
                seen.status = resp.status
                return resp
        if self.session is None:
            self.session = ClientSession(auto_decompress=False)
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _HOP)
        body = await request.read()
        async with self.session.request(
            request.method,
            f"http://{self.upstream}{request.path_qs}",
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as up:
            out_headers = CIMultiDict(
                (k, v) for k, v in up.headers.items() if k.lower() not in _HOP
            )
            location = out_headers.get("Location")
            if location and self.upstream in location:
                out_headers["Location"] = location.replace(self.upstream, self.host)
            resp = web.StreamResponse(status=up.status, headers=out_headers)
            seen.status = up.status
            cut_at = request.get(CUT_AT)
            short = request.get(SHORT)
            if short is not None:
                resp.headers["Content-Length"] = str(short)
            await resp.prepare(request)
            sent = 0
            rate = request.get(RATE)
            corrupt = request.get(CORRUPT, False)
            async for chunk in up.content.iter_chunked(16384):
                if corrupt and sent == 0 and chunk:
                    chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                if cut_at is not None and sent + len(chunk) >= cut_at:
                    await resp.write(chunk[: cut_at - sent])
                    seen.sent_bytes = cut_at
                    transport = request.transport
                    assert transport is not None
                    # let asyncio hand every written byte to the kernel, then cut (FIN after data)
                    deadline = time.monotonic() + 5
                    while transport.get_write_buffer_size() and time.monotonic() < deadline:
                        await asyncio.sleep(0.005)
                    ready = request.get(CUT_WHEN)
                    while callable(ready) and not ready() and time.monotonic() < deadline:
                        await asyncio.sleep(0.005)
                    transport.close()
                    return resp
                if short is not None and sent + len(chunk) >= short:
                    await resp.write(chunk[: short - sent])
                    sent = short
                    break
                await resp.write(chunk)
                sent += len(chunk)
                seen.sent_bytes = sent
                if rate:
                    await asyncio.sleep(len(chunk) / rate)
            await resp.write_eof()
            return resp

    def stop(self) -> None:
        if self.session is not None:
            asyncio.run_coroutine_threadsafe(self.session.close(), self.loop).result(10)
        super().stop()


class Recorder(_ThreadServer):
    """An "other host" that serves one body for any GET and records the request headers."""

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body
        self.seen: list[dict[str, str]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._get)
        return app

    async def _get(self, request: web.Request) -> web.Response:
        self.seen.append(dict(request.headers))
        return web.Response(body=self.body, content_type="application/octet-stream")
