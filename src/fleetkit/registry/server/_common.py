"""What every resource handler shares: the server state, authorization, URLs, JSON replies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from fleetkit.registry.auth.access import Authorizer, HtpasswdAuthorizer
from fleetkit.registry.auth.challenge import Scope, parse_authorization
from fleetkit.registry.auth.logins import LoginGuard
from fleetkit.registry.auth.service import TokenService
from fleetkit.registry.errors import RegistryAPIError, api_error
from fleetkit.registry.reference import validate_repository
from fleetkit.registry.server.limits import QuietLog
from fleetkit.registry.server.metrics import Metrics
from fleetkit.registry.storage.store import RegistryStore

__all__ = [
    "State",
    "STATE_KEY",
    "authorize",
    "absolute",
    "json_response",
    "run_blocking",
    "run_on_own_thread",
    "body_chunks",
    "BodyStalled",
]

T = TypeVar("T")


@dataclass(slots=True)
class _SharedLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@dataclass
class State:
    store: RegistryStore
    authorizer: Authorizer
    service: str
    realm: str | None
    token_service: TokenService | None
    metrics: Metrics
    delete_enabled: bool = True
    logins: LoginGuard | None = None  # password checks (htpasswd mode, token service)
    body_timeout_s: float = 60.0  # a request body that sends nothing for this long is cut off
    metrics_url: str = ""  # where /metrics is served when on its own listener
    quiet: QuietLog = field(default_factory=QuietLog)  # recurring conditions, logged sparingly
    upload_locks: dict[str, _SharedLock] = field(default_factory=dict)
    blob_bodies_in_flight: int = 0  # blob GET bodies being sent right now (see blobs.py)
    upload_state_key: bytes | None = None  # HMAC key for Location's _state (http.secret)
    storage_redirect: bool = False  # blob GET answers 307 to a presigned storage URL

    @asynccontextmanager
    async def upload_lock(self, key: str) -> AsyncIterator[None]:
        """Serialise requests on one upload session; the lock lives only while it is used.

        Callers validate the session id first (see ``RegistryStore.check_upload_id``), so a
        flood of made-up ids costs nothing that outlives its request.
        """
        entry = self.upload_locks.get(key)
        if entry is None:
            entry = self.upload_locks[key] = _SharedLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self.upload_locks[key]


STATE_KEY: web.AppKey[State] = web.AppKey("fleetkit_registry_state", State)
USER_KEY: web.RequestKey[str] = web.RequestKey("fleetkit_user", str)
ROUTE_KEY: web.RequestKey[str] = web.RequestKey("fleetkit_route", str)
# body bytes a handler sent itself (write + sendfile), for the access log
SENT_KEY: web.RequestKey[int] = web.RequestKey("fleetkit_sent", int)


class BodyStalled(RegistryAPIError):
    """The client stopped sending the request body; the connection is closed after the reply."""

    code = "SIZE_INVALID"


async def body_chunks(request: web.Request, size: int) -> AsyncIterator[bytes]:
    """The request body in pieces of at most ``size``; raise :class:`BodyStalled` (408) when
    no byte arrives for the server's ``body_timeout_s``."""
    timeout = state(request).body_timeout_s
    while True:
        try:
            async with asyncio.timeout(timeout):
                chunk = await request.content.read(size)
        except TimeoutError:
            raise BodyStalled(f"no request body bytes for {timeout:g} s", status=408) from None
        if not chunk:
            return
        yield chunk


def state(request: web.Request) -> State:
    return request.app[STATE_KEY]


def realm_of(request: web.Request, st: State) -> str:
    return st.realm or f"{request.scheme}://{request.host}/service/token"


async def authorize(
    request: web.Request,
    name: str | None,
    actions: str,
    extra: list[Scope] | None = None,
    also_ask: list[Scope] | None = None,
) -> str:
    """Check the request may do ``actions`` ("pull", "pull,push", "delete") on ``name``.

    ``also_ask`` scopes are not required but are named in a token challenge, so a client that
    follows challenges asks for them too (a cross-repository mount's source, say). A Basic
    password is verified off the event loop and rate-limited when it fails (see logins.py).
    """
    st = state(request)
    scopes: list[Scope] = []
    if name is not None:
        scopes.append(Scope("repository", name, frozenset(actions.split(","))))
    scopes += extra or []
    header = request.headers.get("Authorization")
    if st.logins is not None and isinstance(st.authorizer, HtpasswdAuthorizer):
        creds = parse_authorization(header)
        if creds is not None and creds.scheme == "basic":
            if not await st.logins.check(creds.username, creds.password, request.remote):
                raise st.authorizer.bad_credentials()
    user = st.authorizer.authorize(header, scopes, realm_of(request, st), also_ask)
    request[USER_KEY] = user
    return user


def check_name(name: str) -> str:
    validate_repository(name)
    return name


def absolute(request: web.Request, path: str) -> str:
    return f"{request.scheme}://{request.host}{path}"


def json_response(
    doc: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> web.Response:
    body = json.dumps(doc, indent=None, separators=(",", ":")).encode()
    resp = web.Response(body=body, status=status, headers=headers)
    resp.content_type = content_type
    return resp


async def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


def run_on_own_thread(fn: Callable[[], T], name: str) -> asyncio.Future[T]:
    """Run ``fn`` on a new daemon thread; its result (or exception) arrives in the future.

    For a body's sender: it may wait for as long as its client reads slowly (or, in the proxy,
    for bytes from upstream), which must not take a worker of the shared executor that
    storage calls and other bodies' work need. Call on the event loop.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def main() -> None:
        try:
            result, error = fn(), None
        except BaseException as exc:  # noqa: BLE001 - handed to the loop
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=main, name=name, daemon=True).start()
    return done


async def store_io(st: State, fn: Callable[..., T], *args: Any) -> T:
    """Run a storage call off the event loop when the driver talks to the network (S3);
    local reads (page cache, memory) stay on the loop, where they are cheaper."""
    if st.store.driver.name == "s3":
        return await asyncio.to_thread(fn, *args)
    return fn(*args)


def parse_pagination(request: web.Request) -> tuple[int | None, str | None]:
    n_raw = request.query.get("n")
    n: int | None = None
    if n_raw is not None:
        try:
            n = int(n_raw)
        except ValueError:
            raise api_error("PAGINATION_NUMBER_INVALID", detail={"n": n_raw}) from None
        if n < 0 or n > 100000:
            raise api_error("PAGINATION_NUMBER_INVALID", detail={"n": n_raw})
    return n, request.query.get("last")
