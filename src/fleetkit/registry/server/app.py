"""The registry application: configuration, routing, middleware, and running it.

Routing is done here, not by aiohttp's router, because repository names contain slashes: every
``/v2/...`` request goes to :func:`dispatch`, which splits the path into (resource, name, id).
Every error leaves as the spec's JSON body (``{"errors": [...]}``) with its status; anything
unexpected is logged with its traceback and answered ``500 UNKNOWN``, never an HTML page.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import re
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from fleetkit.errors import RegistryError, UsageError
from fleetkit.registry.auth.access import (
    Authorizer,
    HtpasswdAuthorizer,
    NoAuth,
    TokenAuthorizer,
)
from fleetkit.registry.auth.logins import LoginGuard, LoginLimiter
from fleetkit.registry.auth.policy import load_policy
from fleetkit.registry.auth.service import TokenService
from fleetkit.registry.auth.tokens import SigningKey, TokenVerifier, load_cert_bundle
from fleetkit.registry.auth.users import Htpasswd
from fleetkit.registry.errors import RegistryAPIError, api_error
from fleetkit.registry.reference import validate_repository
from fleetkit.registry.server import blobs, catalog, manifests, referrers, tags, token, uploads
from fleetkit.registry.server._common import (
    ROUTE_KEY,
    SENT_KEY,
    STATE_KEY,
    USER_KEY,
    BodyStalled,
    State,
    json_response,
)
from fleetkit.registry.server.limits import (
    ConnectionGuard,
    GuardedTCPSite,
    effective_max_connections,
    http_logger,
    quiet_loop_errors,
)
from fleetkit.registry.server.metrics import Metrics
from fleetkit.registry.storage import (
    FilesystemDriver,
    MemoryDriver,
    RegistryStore,
    S3Config,
    open_driver,
)

if TYPE_CHECKING:
    from fleetkit.registry.proxy import ProxyConfig

__all__ = [
    "ServerConfig",
    "PROXY_KEY",
    "create_app",
    "create_token_app",
    "serve",
    "parse_listen",
    "dispatch",
]

log = logging.getLogger("fleetkit.registry")
access_log = logging.getLogger("fleetkit.registry.access")
DISCONNECTED_KEY: web.RequestKey[bool] = web.RequestKey("fleetkit_disconnected", bool)

AUTH_MODES = ("none", "htpasswd", "token")

# Bodies read whole (token forms; aiohttp's request.read()/post()) are refused past this size
# while being read. Blob uploads stream to storage and manifests have their own 4 MiB bound.
MAX_FORM_BYTES = 64 << 10


@dataclass
class ServerConfig:
    root: str = "./registry-data"
    listen: str = "127.0.0.1:5000"
    auth: str = "none"
    htpasswd: str | None = None
    policy: str | None = None
    realm: str | None = None
    service: str = "fleetkit-registry"
    issuer: str = "fleetkit-token-issuer"
    token_key: str | None = None
    token_cert: str | None = None
    token_rootcert: str | None = None
    token_expiry_s: int = 300
    tls_cert: str | None = None
    tls_key: str | None = None
    insecure_listen: bool = False
    delete_enabled: bool = True
    ready_file: str | None = None
    shutdown_timeout_s: float = 10.0
    login_failures_per_user: int = 10  # failed logins per minute before 429
    login_failures_per_client: int = 30
    idle_timeout_s: float = 60.0  # a request head must arrive within this of connect/last reply
    body_timeout_s: float = 60.0  # a request body may pause this long, no longer
    max_connections: int = 1024  # lowered to fit RLIMIT_NOFILE; more get 503
    metrics_listen: str | None = None  # /metrics on its own listener (HOST:PORT)
    s3: S3Config | None = None  # storage.s3 from --config (else root may be an s3:// URL)
    http_secret: str | None = None  # signs upload state in Location (shared by replicas)
    storage_redirect: bool = False  # S3: blob GET -> 307 to a presigned URL
    proxy: ProxyConfig | None = None  # pull-through cache (--proxy-remote, proxy.* in --config)
    ui: bool = False  # serve the read-only web view under /ui

    @property
    def on_s3(self) -> bool:
        return self.s3 is not None or self.root.startswith("s3://")


def _signer(config: ServerConfig) -> SigningKey:
    if config.token_key:
        cert = config.token_cert or os.path.splitext(config.token_key)[0] + ".crt"
        return SigningKey.load_or_create(config.token_key, cert)
    if config.on_s3:
        raise UsageError(
            "--auth token on S3 storage needs --token-key FILE",
            hint="every replica must sign with the same key: give each the same --token-key",
        )
    if config.root != "memory:":
        base = os.path.join(config.root, "_token")
        return SigningKey.load_or_create(
            os.path.join(base, "signing-key.pem"), os.path.join(base, "signing-cert.pem")
        )
    return SigningKey.generate()


def _token_service(config: ServerConfig) -> TokenService:
    users = Htpasswd.load(config.htpasswd) if config.htpasswd else None
    service = TokenService(
        _signer(config),
        issuer=config.issuer,
        service=config.service,
        users=users,
        policy=load_policy(config.policy),
        expires_in_s=config.token_expiry_s,
    )
    if users is None:
        log.warning(
            "warning: the token service has no --htpasswd: nobody can log in, and tokens grant "
            "only what the policy allows anonymous users"
        )
    return service


def _limiter(config: ServerConfig) -> LoginLimiter:
    return LoginLimiter(config.login_failures_per_user, config.login_failures_per_client)


def build_state(config: ServerConfig) -> State:
    if config.auth not in AUTH_MODES:
        raise UsageError(f"unknown auth mode {config.auth!r}", hint="use none, htpasswd or token")
    store = RegistryStore(open_driver(config.root, config.s3))
    if config.storage_redirect and not config.on_s3:
        raise UsageError("--storage-redirect needs S3 storage", hint="pass --storage s3://...")
    token_service: TokenService | None = None
    authorizer: Authorizer
    logins: LoginGuard | None = None
    if config.auth == "none":
        authorizer = NoAuth()
    elif config.auth == "htpasswd":
        if not config.htpasswd:
            raise UsageError(
                "--auth htpasswd needs --htpasswd FILE",
                hint="create one with: fleetkit registry htpasswd add USER --file FILE",
            )
        users = Htpasswd.load(config.htpasswd)
        authorizer = HtpasswdAuthorizer(users, load_policy(config.policy))
        logins = LoginGuard(users, _limiter(config))
    else:
        token_service = _token_service(config)
        if token_service.users is not None:
            logins = LoginGuard(token_service.users, _limiter(config))
        roots = [token_service.signer.cert]
        if config.token_rootcert:
            roots += load_cert_bundle(config.token_rootcert)
        authorizer = TokenAuthorizer(
            TokenVerifier(roots, config.issuer, config.service), config.service, config.realm
        )
    return State(
        store=store,
        authorizer=authorizer,
        service=config.service,
        realm=config.realm,
        token_service=token_service,
        metrics=Metrics(),
        delete_enabled=config.delete_enabled,
        logins=logins,
        body_timeout_s=config.body_timeout_s,
        upload_state_key=(
            hashlib.sha256(b"fleetkit upload state\0" + config.http_secret.encode()).digest()
            if config.http_secret
            else None
        ),
        storage_redirect=config.storage_redirect,
    )


# -- routing -----------------------------------------------------------------------------------


class ProxyHook(Protocol):
    """The pull-through cache as dispatch sees it (fleetkit.registry.proxy.Proxy)."""

    async def handle(
        self, request: web.Request, route: str, name: str, ident: str | None
    ) -> web.StreamResponse | None: ...


PROXY_KEY: web.AppKey[ProxyHook] = web.AppKey("fleetkit_registry_proxy", ProxyHook)

Handler = Callable[..., Awaitable[web.StreamResponse]]

_ROUTES: list[tuple[re.Pattern[str], str, dict[str, Handler]]] = [
    (
        re.compile(r"^(?P<name>.+)/blobs/uploads/?$", re.S),
        "blob_upload",
        {"POST": uploads.start_upload},
    ),
    (
        re.compile(r"^(?P<name>.+)/blobs/uploads/(?P<id>[^/]+)$", re.S),
        "blob_upload_chunk",
        {
            "PATCH": uploads.patch_upload,
            "PUT": uploads.put_upload,
            "GET": uploads.get_upload,
            "DELETE": uploads.delete_upload,
        },
    ),
    (
        re.compile(r"^(?P<name>.+)/blobs/(?P<id>[^/]+)$", re.S),
        "blob",
        {"GET": blobs.get_blob, "HEAD": blobs.get_blob, "DELETE": blobs.delete_blob},
    ),
    (
        re.compile(r"^(?P<name>.+)/manifests/(?P<id>[^/]+)$", re.S),
        "manifest",
        {
            "GET": manifests.get_manifest,
            "HEAD": manifests.get_manifest,
            "PUT": manifests.put_manifest,
            "DELETE": manifests.delete_manifest,
        },
    ),
    (re.compile(r"^(?P<name>.+)/tags/list$", re.S), "tags", {"GET": tags.list_tags}),
    (
        re.compile(r"^(?P<name>.+)/referrers/(?P<id>[^/]+)$", re.S),
        "referrers",
        {"GET": referrers.list_referrers},
    ),
]


def route_of(tail: str) -> tuple[str, str | None, str | None, dict[str, Handler]] | None:
    """Map the path after ``/v2/`` to (route, name, id, handlers by method)."""
    for pattern, route, handlers in _ROUTES:
        m = pattern.match(tail)
        if m:
            return route, m.group("name"), m.groupdict().get("id"), handlers
    return None


async def _ping(request: web.Request) -> web.Response:
    from fleetkit.registry.server._common import authorize

    await authorize(request, None, "")
    return json_response({})


async def dispatch(request: web.Request) -> web.StreamResponse:
    tail = request.match_info.get("tail", "")
    request[ROUTE_KEY] = "other"
    if tail == "":
        request[ROUTE_KEY] = "base"
        if request.method not in ("GET", "HEAD"):
            raise api_error("UNSUPPORTED", status=405)
        return await _ping(request)
    if tail in ("_catalog", "_catalog/"):
        request[ROUTE_KEY] = "catalog"
        if request.method != "GET":
            raise api_error("UNSUPPORTED", status=405)
        return await catalog.list_catalog(request)
    found = route_of(tail)
    if found is None:
        raise api_error("UNSUPPORTED", "no such endpoint", status=404)
    route, name, ident, handlers = found
    request[ROUTE_KEY] = route
    assert name is not None
    if not name.isascii() or not name.isprintable():  # REPOSITORY_RE's $ admits a final \n
        raise api_error("NAME_INVALID", detail={"name": name[:300]})
    validate_repository(name)
    proxy = request.app.get(PROXY_KEY)
    if proxy is not None:  # a proxied repository is served by the pull-through cache
        served = await proxy.handle(request, route, name, ident)
        if served is not None:
            return served
    handler = handlers.get(request.method)
    if handler is None:
        raise api_error("UNSUPPORTED", f"{request.method} is not supported here", status=405)
    if ident is None:
        return await handler(request, name)
    return await handler(request, name, ident)


# -- middleware --------------------------------------------------------------------------------


# headers that describe the body: only the response builder sets them, from the body it sends
_ENTITY_HEADERS = frozenset({"content-length", "content-type", "transfer-encoding"})


def error_response(exc: RegistryAPIError, method: str) -> web.Response:
    """The one builder of error responses: the table's JSON body, and headers that match it.

    Handlers attach headers to errors (a challenge, an upload's ``Range``); any that describe a
    body (``Content-Length: 0`` of an upload status, say) are dropped, never sent with this one.
    """
    data = exc.body_bytes()
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in _ENTITY_HEADERS}
    resp = web.Response(
        body=b"" if method == "HEAD" else data, status=exc.status, headers=headers or None
    )
    resp.content_type = "application/json"
    if method == "HEAD":
        resp.headers["Content-Length"] = str(len(data))
    if isinstance(exc, BodyStalled):
        resp.force_close()  # the rest of the body is not worth waiting for
    return resp


def _error_response(exc: RegistryAPIError, request: web.Request) -> web.Response:
    return error_response(exc, request.method)


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except RegistryAPIError as exc:
        return _error_response(exc, request)
    except web.HTTPException as exc:
        if exc.status == 404:
            return _error_response(
                api_error("UNSUPPORTED", "no such endpoint", status=404), request
            )
        if exc.status == 405:
            return _error_response(api_error("UNSUPPORTED", status=405), request)
        if exc.status == 413:
            return _error_response(
                api_error("SIZE_INVALID", "request too large", status=413), request
            )
        raise
    except ConnectionError:
        # the client went away mid-request or mid-response (Ctrl-C, a closed pipe): not a
        # server error. One log line, status 499 in the access log and metrics; what an
        # upload received so far is kept. Nobody reads this response.
        request[DISCONNECTED_KEY] = True
        log.info("%s %s: client disconnected", request.method, _redacted(request))
        if request.protocol is not None:
            request.protocol.force_close()
        return web.Response(status=499)
    except asyncio.CancelledError:
        raise
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            request.app[STATE_KEY].quiet.warning(
                "fd",
                "out of file descriptors (%s): answering 503; raise the limit or lower "
                "--max-connections",
                exc.strerror,
            )
            return _error_response(
                api_error(
                    "TOOMANYREQUESTS",
                    "server is out of resources",
                    status=503,
                    headers={"Retry-After": "1"},
                ),
                request,
            )
        log.exception("internal error on %s %s", request.method, request.path)
        return _error_response(api_error("UNKNOWN"), request)
    except RegistryError as exc:  # storage failures and friends: a clean 500
        # a failing disk fails every request the same way: one line per kind per 10 s
        request.app[STATE_KEY].quiet.log(
            logging.ERROR,
            "storage:" + exc.message.rsplit(": ", 1)[-1],
            "%s %s: %s",
            request.method,
            request.path,
            exc.message,
        )
        return _error_response(api_error("UNKNOWN", exc.message), request)
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return _error_response(api_error("UNKNOWN"), request)


_SECRET_PARAMS = frozenset({"password", "refresh_token", "access_token", "token", "client_secret"})


def _redacted(request: web.Request) -> str:
    """The request target for the access log, with secret-looking query values hidden."""
    if not request.query_string or not any(k.lower() in _SECRET_PARAMS for k in request.query):
        return request.rel_url.raw_path_qs
    parts = [
        f"{k}=REDACTED" if k.lower() in _SECRET_PARAMS else f"{k}={v}"
        for k, v in request.query.items()
    ]
    return f"{request.rel_url.raw_path}?{'&'.join(parts)}"


@web.middleware
async def log_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    length: int | None = None
    try:
        resp = await handler(request)
        status = resp.status
        length = resp.body_length if resp.prepared else resp.content_length
        return resp
    finally:
        elapsed = time.perf_counter() - started
        st = request.app[STATE_KEY]
        if SENT_KEY in request:  # bytes a handler sent itself (sendfile bypasses body_length)
            length = request[SENT_KEY]
        if request.get(DISCONNECTED_KEY):
            status = 499
            st.metrics.client_disconnects += 1
        st.metrics.observe(request.method, str(request.get(ROUTE_KEY, "other")), status, elapsed)
        if access_log.isEnabledFor(logging.INFO):
            user = request.get(USER_KEY) or "-"
            access_log.info(
                '%s - %s [%s] "%s %s HTTP/%d.%d" %d %s %.3fs "%s"',
                request.remote or "-",
                user,
                time.strftime("%d/%b/%Y:%H:%M:%S %z"),
                request.method,
                _redacted(request),
                request.version.major,
                request.version.minor,
                status,
                length if length is not None else "-",
                elapsed,
                request.headers.get("User-Agent", "-"),
            )


async def _metrics(request: web.Request) -> web.Response:
    st = request.app[STATE_KEY]
    request[ROUTE_KEY] = "metrics"
    return web.Response(
        text=st.metrics.render(),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


def _headers_on_prepare(request: web.Request, response: web.StreamResponse) -> Awaitable[None]:
    response.headers.setdefault("Docker-Distribution-API-Version", "registry/2.0")
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fut.set_result(None)
    return fut


async def _close_state(app: web.Application) -> None:
    logins = app[STATE_KEY].logins
    if logins is not None:
        logins.close()


def create_app(config: ServerConfig, state: State | None = None) -> web.Application:
    st = state or build_state(config)
    app = web.Application(
        middlewares=[log_middleware, error_middleware], client_max_size=MAX_FORM_BYTES
    )
    app[STATE_KEY] = st
    app.on_cleanup.append(_close_state)
    app.on_response_prepare.append(_headers_on_prepare)
    app.router.add_route("*", "/v2/{tail:[\\s\\S]*}", dispatch)
    app.router.add_route("*", "/v2", dispatch)
    if config.auth == "none" and not config.metrics_listen:
        # everything is open in this mode anyway; with auth, /metrics is only served on
        # --metrics-listen (distribution's debug listener), never to anonymous clients
        app.router.add_get("/metrics", _metrics)
    if st.token_service is not None:
        app.router.add_get(token.TOKEN_PATH, token.token_get)
        app.router.add_post(token.TOKEN_PATH, token.token_post)
    if config.proxy is not None:
        from fleetkit.registry.proxy import install_proxy

        install_proxy(app, config.proxy)
    if config.ui:
        from fleetkit.registry.ui import add_routes

        add_routes(app)
    return app


def create_token_app(config: ServerConfig) -> web.Application:
    """The standalone token service: ``/service/token`` (GET and POST); ``/metrics`` is served
    only on ``--metrics-listen``."""
    ts = _token_service(config)
    st = State(
        store=RegistryStore(MemoryDriver()),
        authorizer=NoAuth(),
        service=config.service,
        realm=config.realm,
        token_service=ts,
        metrics=Metrics(),
        logins=LoginGuard(ts.users, _limiter(config)) if ts.users is not None else None,
        body_timeout_s=config.body_timeout_s,
    )
    app = web.Application(
        middlewares=[log_middleware, error_middleware], client_max_size=MAX_FORM_BYTES
    )
    app[STATE_KEY] = st
    app.on_cleanup.append(_close_state)
    app.router.add_get(token.TOKEN_PATH, token.token_get)
    app.router.add_post(token.TOKEN_PATH, token.token_post)
    return app  # /metrics: only on --metrics-listen


def create_metrics_app(st: State) -> web.Application:
    """``/metrics`` alone, for the separate listener of ``--metrics-listen``."""
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_FORM_BYTES)
    app[STATE_KEY] = st
    app.router.add_get("/metrics", _metrics)
    return app


# -- running -----------------------------------------------------------------------------------


def parse_listen(listen: str) -> tuple[str, int]:
    m = re.match(r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d{1,5})$", listen)
    if not m or int(m.group("port")) > 65535:
        raise UsageError(
            f"invalid listen address {listen!r}", hint="use HOST:PORT, e.g. 127.0.0.1:5000"
        )
    host = m.group("v6") or m.group("host") or "0.0.0.0"
    return host, int(m.group("port"))


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    if not config.tls_cert and not config.tls_key:
        return None
    if not (config.tls_cert and config.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load TLS certificate/key: {exc}") from None
    return ctx


async def serve(
    config: ServerConfig,
    app_factory: Callable[[ServerConfig], web.Application] = create_app,
    what: str = "registry",
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Listen until SIGINT/SIGTERM (or ``stop``), then shut down gracefully.

    Graceful: stop accepting, let requests in flight finish for ``shutdown_timeout_s``; upload
    sessions live in storage and resume after the next start (not with ``memory:``, whose data
    goes with the process). A filesystem root is held with a shared lock while serving, so
    ``registry gc`` refuses to run under a live server.
    """
    host, port = parse_listen(config.listen)
    ctx = _ssl_context(config)
    if ctx is None and not _is_loopback(host) and not config.insecure_listen:
        raise UsageError(
            f"refusing plain HTTP on {host}: only loopback addresses may listen without TLS",
            hint="pass --tls-cert/--tls-key, or --insecure-listen to accept plain HTTP",
        )
    with contextlib.ExitStack() as stack:
        if config.root != "memory:" and not config.on_s3:
            # a shared lock on the root: gc (exclusive) refuses to run while any server does
            stack.enter_context(FilesystemDriver(config.root).lock(exclusive=False))
        await _serve(config, app_factory, what, stop, on_ready, host, port, ctx)


async def _start_site(
    runner: web.AppRunner,
    host: str,
    port: int,
    ctx: ssl.SSLContext | None,
    listen: str,
    flag: str,
    guard: ConnectionGuard,
) -> str:
    """Start listening; return the URL actually bound (port 0 picks one)."""
    site = GuardedTCPSite(runner, host, port, guard=guard, ssl_context=ctx, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        raise RegistryError(
            f"cannot listen on {listen}: {exc.strerror}",
            hint=f"pick another {flag} port (port 0 picks a free one)",
        ) from None
    server = site._server
    sockets: list[Any] = list(getattr(server, "sockets", []) or [])
    bound = sockets[0].getsockname() if sockets else (host, port)
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    return f"{'https' if ctx else 'http'}://{shown}:{bound[1]}"


async def _serve(
    config: ServerConfig,
    app_factory: Callable[[ServerConfig], web.Application],
    what: str,
    stop: asyncio.Event | None,
    on_ready: Callable[[str], None] | None,
    host: str,
    port: int,
    ctx: ssl.SSLContext | None,
) -> None:
    metrics_addr = parse_listen(config.metrics_listen) if config.metrics_listen else None
    if metrics_addr and not _is_loopback(metrics_addr[0]) and not config.insecure_listen:
        raise UsageError(
            f"refusing plain HTTP /metrics on {metrics_addr[0]}: use a loopback address",
            hint="or pass --insecure-listen to serve metrics on another address",
        )
    app = app_factory(config)
    st = app[STATE_KEY]
    limit = effective_max_connections(config.max_connections)
    if limit < config.max_connections:
        log.warning("--max-connections lowered to %d to fit the open-file limit (ulimit -n)", limit)
    quiet_loop_errors(asyncio.get_running_loop())
    runners: list[web.AppRunner] = []
    try:
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=config.shutdown_timeout_s,
            keepalive_timeout=config.idle_timeout_s,
            logger=http_logger(),
        )
        runners.append(runner)
        await runner.setup()
        guard = ConnectionGuard(limit, st.metrics)
        url = await _start_site(runner, host, port, ctx, config.listen, "--listen", guard)
        if metrics_addr is not None:
            assert config.metrics_listen is not None
            mrunner = web.AppRunner(
                create_metrics_app(st),
                access_log=None,
                handle_signals=False,
                keepalive_timeout=config.idle_timeout_s,
                logger=http_logger(),
            )
            runners.append(mrunner)
            await mrunner.setup()
            st.metrics_url = await _start_site(
                mrunner,
                metrics_addr[0],
                metrics_addr[1],
                None,
                config.metrics_listen,
                "--metrics-listen",
                ConnectionGuard(16, st.metrics),
            )
            log.info("fleetkit %s metrics on %s/metrics", what, st.metrics_url)
        if config.ready_file:
            tmp = config.ready_file + ".tmp"
            try:
                with open(tmp, "w") as f:
                    f.write(url + "\n")
                os.replace(tmp, config.ready_file)
            except OSError as exc:
                raise RegistryError(
                    f"cannot write --ready-file {config.ready_file}: {exc.strerror}",
                    hint="pick a path in an existing, writable directory",
                ) from None
        log.info(
            "fleetkit %s listening on %s (root %s, auth %s)", what, url, config.root, config.auth
        )
        if on_ready is not None:
            on_ready(url)
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests run servers in threads)
        await stop.wait()
        if what != "registry":
            log.info("fleetkit %s shutting down", what)
        elif config.root == "memory:":
            log.info("fleetkit %s shutting down (in-memory storage: all data is discarded)", what)
        else:
            log.info("fleetkit %s shutting down (upload sessions are kept)", what)
    finally:
        for r in reversed(runners):
            await r.cleanup()
