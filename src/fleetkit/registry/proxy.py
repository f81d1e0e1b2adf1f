"""The pull-through cache: repositories served from an upstream registry and kept locally.

Two ways to name the upstream (both may be configured at once):

- ``--proxy-remote URL`` (distribution's ``proxy.remoteurl``): every repository is proxied,
  ``/v2/<name>/...`` is ``<name>`` upstream;
- proxy projects (Harbor's proxy-cache projects, ``proxy.projects`` in ``--config``):
  ``/v2/<project>/<name>/...`` is ``<name>`` on that project's upstream, each with its own
  credentials and TTL. Other repositories stay ordinary (pushable) ones.

On a Docker Hub upstream a single-component name gets Hub's ``library/`` prefix.

What is cached and when upstream is asked:

- manifests by digest are immutable: fetched once, verified against the digest, then local;
- a manifest by tag is served from the cache for ``ttl`` after it was last confirmed; after that
  a ``HEAD`` upstream revalidates it by digest (a new digest is fetched). If the upstream cannot
  answer (down, an error), the cached manifest is served, as distribution does;
- a blob is fetched once however many clients of a repository ask for it: the first request
  starts one upstream GET whose bytes are spooled (``_proxy/`` beside the data on a directory
  root, the temp directory otherwise) and hashed as they arrive, while each client is sent the
  bytes spooled so far (a client has bytes before the blob is complete). Over plain HTTP both
  ends run off the event loop: one thread receives the upstream body straight from its socket
  (``recv_into``, ``write``, hash; :func:`~fleetkit.registry.client.remote.receive_direct`) and
  one thread per client sends the spool's fresh pages to it as they land, woken per write
  (copied through a reused buffer while few bodies are in flight, ``sendfile`` beyond, as
  the registry's own blob bodies: see :class:`_Sender`). The last byte goes out only after
  the digest verified; a mismatch or a cut aborts every client's connection and nothing is
  cached. A verified spool is committed through an upload session as a push is (fsync,
  rename, link), so a partial blob is never visible under its digest;
- a manifest GET that had to be fetched upstream starts the fetches of the blobs it references
  (config, layers) before the client asks for them, as Harbor and zot do; a client that asks
  meanwhile joins that fetch (see :meth:`Proxy._prefetch`);
- tag lists come from the upstream (from the cache when it is down); pushes and deletes on
  proxied repositories are refused with ``UNSUPPORTED`` (405), as distribution does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import re
import select
import socket
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from fleetkit.errors import RegistryError, UsageError
from fleetkit.registry import mediatypes as mt
from fleetkit.registry.client.credentials import Credential
from fleetkit.registry.client.errors import ClientError, TransportError
from fleetkit.registry.client.image import Descriptor
from fleetkit.registry.client.remote import receive_direct
from fleetkit.registry.client.transport import (
    MAX_ERROR_BODY_BYTES,
    RetryPolicy,
    Transport,
    read_body,
)
from fleetkit.registry.digest import Hasher, is_digest, parse_digest
from fleetkit.registry.errors import RegistryAPIError, api_error
from fleetkit.registry.manifest import MAX_MANIFEST_BYTES, parse_manifest
from fleetkit.registry.server import blobs, manifests
from fleetkit.registry.server._common import (
    SENT_KEY,
    State,
    authorize,
    json_response,
    run_blocking,
    run_on_own_thread,
    state,
    store_io,
)
from fleetkit.registry.server.app import PROXY_KEY
from fleetkit.registry.storage.store import RegistryStore, Upload

__all__ = [
    "ProxyUpstream",
    "ProxyConfig",
    "Proxy",
    "parse_duration",
    "install_proxy",
]

log = logging.getLogger("fleetkit.registry.proxy")

_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_MAX_PENDING = 16 << 20  # received bytes not yet in the spool before the receiver waits
SPOOL_DIR = "_proxy"  # under a directory root: blobs being fetched (never listed, never gc'd)
_SEND = 1 << 20
_COPY_BUFFER = 128 << 10  # one pread + write of a sender's copy path (see _Sender)
_PREFETCH_MAX = 4  # blobs of fetched manifests being prefetched at once (clients' fetches aside)
_UPSTREAM_TIMEOUT_S = 30.0  # an upstream that sends nothing for this long has failed
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``168h``, ``1h30m``, ``90s``) or a plain number of seconds."""
    raw = str(text).strip()
    try:
        value = float(raw)
    except ValueError:
        pos, total = 0, 0.0
        for m in _DURATION_RE.finditer(raw):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _UNITS_S[m.group(2)]
            pos = m.end()
        if pos != len(raw) or not raw:
            raise UsageError(
                f"invalid duration {raw!r}", hint="use e.g. 30s, 10m, 1h30m or 168h"
            ) from None
        value = total
    if value < 0:
        raise UsageError(f"invalid duration {raw!r}: negative")
    return value


@dataclass(frozen=True, slots=True)
class ProxyUpstream:
    """One upstream registry: its URL, the credentials to use there, the tag TTL."""

    url: str
    username: str = ""
    password: str = field(default="", repr=False)
    ttl_s: float = 0.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
            raise UsageError(
                f"invalid proxy remote URL {self.url!r}",
                hint="use the registry's base URL, e.g. https://registry-1.docker.io",
            )
        if bool(self.username) != bool(self.password):
            raise UsageError("proxy username and password go together")

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def is_docker_hub(self) -> bool:
        return urlsplit(self.url).hostname in _HUB_HOSTS


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """``remote`` proxies every repository; ``projects`` map a first path component to one."""

    remote: ProxyUpstream | None = None
    projects: dict[str, ProxyUpstream] = field(default_factory=dict)


@dataclass(slots=True)
class _Fetch:
    """One upstream GET of a blob, shared by every client that asks for it meanwhile."""

    spool: str
    upload: Upload | None = None
    size: int | None = None
    media_type: str = "application/octet-stream"
    written: int = 0
    outcome: str = "running"  # running | ok | failed
    error: RegistryAPIError | None = None
    headers_known: asyncio.Event = field(default_factory=asyncio.Event)
    committed: asyncio.Event = field(default_factory=asyncio.Event)
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    # ``written`` and ``outcome`` change under ``cond``: sender threads wait on it, and
    # ``loop_waiters`` says whether a reader on the event loop needs ``progress`` set too
    cond: threading.Condition = field(default_factory=threading.Condition)
    loop_waiters: int = 0
    loop: asyncio.AbstractEventLoop | None = None

    def notify(self) -> None:
        """Wake the readers waiting on the event loop (call on the loop)."""
        done, self.progress = self.progress, asyncio.Event()
        done.set()

    def advance(self, n: int) -> None:
        """``n`` more bytes are in the spool (called from any thread): wake every reader."""
        with self.cond:
            self.written += n
            self.cond.notify_all()
            wake_loop = self.loop_waiters > 0
        if wake_loop and self.loop is not None:
            self.loop.call_soon_threadsafe(self.notify)

    def settle(self, outcome: str, error: RegistryAPIError | None = None) -> None:
        """The fetch is verified (``ok``) or over (``failed``); call on the loop."""
        with self.cond:
            self.outcome = outcome
            if error is not None:
                self.error = error
            self.cond.notify_all()
        self.notify()

    @property
    def sendable(self) -> int:
        """Bytes a client may be sent now: all once verified, else all but the last one."""
        return self.written if self.outcome == "ok" else max(self.written - 1, 0)


def _bad_gateway(message: str) -> RegistryAPIError:
    return api_error("UNKNOWN", f"upstream registry: {message}", status=502)


class Proxy:
    """Runtime of the pull-through cache (one per app): upstream sessions, tag ages, fetches."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self._transports: dict[str, Transport] = {}
        self._confirmed: dict[tuple[str, str], tuple[str, float]] = {}
        self._fetches: dict[tuple[str, str], _Fetch] = {}
        self._manifest_work: dict[tuple[str, str, str], asyncio.Future[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._swept = False  # spools a killed process left behind are removed once
        self._prefetch_slots = asyncio.Semaphore(_PREFETCH_MAX)

    # -- which upstream ----------------------------------------------------------------------

    def route(self, name: str) -> tuple[ProxyUpstream, str] | None:
        """The upstream and the upstream repository name for a local name, or None."""
        first, _, rest = name.partition("/")
        up = self.config.projects.get(first)
        if up is not None and rest:
            upstream_name = rest
        elif self.config.remote is not None:
            up, upstream_name = self.config.remote, name
        else:
            return None
        if up.is_docker_hub and "/" not in upstream_name:
            upstream_name = "library/" + upstream_name
        return up, upstream_name

    async def _transport(self, up: ProxyUpstream) -> Transport:
        t = self._transports.get(up.url)
        if t is None:
            cred = Credential(up.username, up.password) if up.username else None
            t = Transport(
                up.host,
                credential=cred,
                retry=RetryPolicy(attempts=2, base_s=0.2, max_s=1.0),
                timeout_s=_UPSTREAM_TIMEOUT_S,
                max_connections=64,
            )
            t.scheme = urlsplit(up.url).scheme
            await t.open()
            self._transports[up.url] = t
        return t

    async def _drop(self, up: ProxyUpstream, t: Transport) -> None:
        """Forget a session whose ping failed, so the next request pings (and logs in) afresh."""
        if self._transports.get(up.url) is t:
            del self._transports[up.url]
        await t.close()

    async def _request(
        self,
        up: ProxyUpstream,
        method: str,
        path: str,
        upstream_name: str,
        headers: dict[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        """One request upstream with its auth dance; a failure to reach it is a TransportError."""
        t = await self._transport(up)
        try:
            return await t.request(
                method, path, scopes=[f"repository:{upstream_name}:pull"], headers=headers
            )
        except TransportError as exc:
            if not exc.retryable:
                # a session that never reached the upstream remembers that for good (so its
                # parallel requests fail at once): start afresh next time
                await self._drop(up, t)
            raise

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for t in list(self._transports.values()):
            await t.close()
        self._transports.clear()

    # -- the dispatch hook -------------------------------------------------------------------

    async def handle(
        self, request: web.Request, route: str, name: str, ident: str | None
    ) -> web.StreamResponse | None:
        """Serve a request on a proxied repository; None when ``name`` is not proxied."""
        found = self.route(name)
        if found is None:
            return None
        up, upstream_name = found
        method = request.method
        if route == "blob_upload_chunk":
            return None  # no session exists here: the registry answers an unknown upload
        if route == "blob_upload" or method in ("PUT", "POST", "PATCH"):
            await authorize(request, name, "pull,push")
            raise api_error("UNSUPPORTED", "pushes to a proxy cache repository are not supported")
        if method == "DELETE":
            await authorize(request, name, "delete")
            raise api_error("UNSUPPORTED", "deletes in a proxy cache repository are not supported")
        if route == "manifest" and ident is not None and method in ("GET", "HEAD"):
            return await self._manifest(request, name, ident, up, upstream_name)
        if route == "blob" and ident is not None and method in ("GET", "HEAD"):
            return await self._blob(request, name, ident, up, upstream_name)
        if route == "tags" and method == "GET":
            return await self._tags(request, name, up, upstream_name)
        return None  # referrers: what the cache holds

    # -- manifests ---------------------------------------------------------------------------

    async def _manifest(
        self, request: web.Request, name: str, reference: str, up: ProxyUpstream, uname: str
    ) -> web.StreamResponse:
        await authorize(request, name, "pull")
        st = state(request)
        manifests._check_reference(reference)
        if is_digest(reference):
            parse_digest(reference)
            if await store_io(st, st.store.revision, name, reference) is None:
                await self._once(
                    (name, reference, _accept(request)),
                    lambda: self._fetch_manifest(request, st, name, reference, up, uname),
                )
            return await manifests.get_manifest(request, name, reference)
        cached = await store_io(st, st.store.resolve_tag, name, reference)
        confirmed = self._confirmed.get((name, reference))
        if (
            cached is not None
            and confirmed is not None
            and confirmed[0] == cached
            and time.monotonic() - confirmed[1] < up.ttl_s
        ):
            return await manifests.get_manifest(request, name, cached)
        accept = _accept(request)

        async def refresh() -> str:
            digest = await self._revalidate(up, uname, reference, accept, cached)
            if digest is None or digest != cached:
                digest = await self._fetch_manifest(request, st, name, reference, up, uname)
            return digest

        try:  # clients asking for one tag at once share one revalidation (and fetch)
            digest = await self._once((name, reference, accept), refresh)
        except RegistryAPIError as exc:
            if cached is None:
                raise
            st.quiet.warning(  # a down upstream fails every request alike: logged sparingly
                f"proxy-cached:{up.url}",
                "%s:%s: upstream did not answer (%s); serving the cached %s",
                name,
                reference,
                exc.message,
                cached,
            )
            return await manifests.get_manifest(request, name, cached)
        self._confirmed[(name, reference)] = (digest, time.monotonic())
        return await manifests.get_manifest(request, name, digest)

    async def _once(self, key: tuple[str, str, str], work: Callable[[], Awaitable[str]]) -> str:
        """Run ``work`` once for everyone who asks for ``key`` while it runs."""
        fut = self._manifest_work.get(key)
        if fut is None:
            fut = asyncio.ensure_future(work())
            self._manifest_work[key] = fut
            fut.add_done_callback(lambda f: self._forget_work(key, f))
        return await asyncio.shield(fut)

    def _forget_work(self, key: tuple[str, str, str], fut: asyncio.Future[str]) -> None:
        self._manifest_work.pop(key, None)
        if not fut.cancelled():
            fut.exception()  # retrieved: its waiters have it, nothing is logged as lost

    async def _revalidate(
        self, up: ProxyUpstream, uname: str, tag: str, accept: str, cached: str | None
    ) -> str | None:
        """The tag's digest upstream (``HEAD``), or None when it must be fetched to know."""
        if cached is None:
            return None
        try:
            resp = await self._request(
                up, "HEAD", f"/v2/{uname}/manifests/{tag}", uname, {"Accept": accept}
            )
        except ClientError as exc:
            raise _bad_gateway(exc.message) from None
        async with resp:
            if resp.status != 200:
                raise _upstream_error(resp.status, b"", f"HEAD {uname}:{tag}")
            digest = resp.headers.get("Docker-Content-Digest")
        return digest if digest and is_digest(digest) else None

    async def _fetch_manifest(
        self,
        request: web.Request,
        st: State,
        name: str,
        reference: str,
        up: ProxyUpstream,
        uname: str,
    ) -> str:
        """GET a manifest upstream, verify its digest, store it (and the tag); its digest."""
        try:
            resp = await self._request(
                up,
                "GET",
                f"/v2/{uname}/manifests/{reference}",
                uname,
                {"Accept": _accept(request)},
            )
        except ClientError as exc:
            raise _bad_gateway(exc.message) from None
        async with resp:
            if resp.status != 200:
                body = await read_body(resp, MAX_ERROR_BODY_BYTES)
                raise _upstream_error(resp.status, body, f"{uname}:{reference}")
            try:
                body = await read_body(resp, MAX_MANIFEST_BYTES, f"manifest {uname}:{reference}")
            except ClientError as exc:
                raise _bad_gateway(exc.message) from None
            content_type = resp.headers.get("Content-Type", "").split(";", 1)[0].strip()
            claimed = resp.headers.get("Docker-Content-Digest")
        expected = reference if is_digest(reference) else claimed
        algorithm = parse_digest(expected).algorithm if expected and is_digest(expected) else None
        h = Hasher(algorithm or "sha256")
        h.update(body)
        actual = h.digest()
        if expected and actual != expected:
            raise api_error(
                "DIGEST_INVALID",
                f"upstream sent a manifest for {uname}:{reference} whose digest is {actual}, "
                f"not {expected}; not cached",
                detail={"expected": expected, "actual": actual},
                status=502,
            )
        manifest = parse_manifest(body, content_type or None)
        if request.method == "GET" and not manifest.is_index:
            # the client asks for these next: their upstream fetches start now, while the
            # manifest is stored and the client reads it (a HEAD or an index fetches nothing)
            self._prefetch(st, name, [d.digest for d in manifest.blob_references()], up, uname)
        tags = [] if is_digest(reference) else [reference]
        return await run_blocking(
            st.store.put_manifest, name, body, manifest, tags, algorithm or "sha256"
        )

    # -- tags --------------------------------------------------------------------------------

    async def _tags(
        self, request: web.Request, name: str, up: ProxyUpstream, uname: str
    ) -> web.StreamResponse | None:
        await authorize(request, name, "pull")
        query = request.query_string
        path = f"/v2/{uname}/tags/list" + (f"?{query}" if query else "")
        try:
            resp = await self._request(up, "GET", path, uname)
        except ClientError as exc:
            state(request).quiet.warning(
                f"proxy-tags:{up.url}",
                "%s: upstream tag list failed (%s); listing the cache",
                name,
                exc.message,
            )
            return None  # the local handler lists what the cache holds
        async with resp:
            body = await read_body(resp, 16 << 20)
            if resp.status != 200:
                if resp.status >= 500:
                    return None
                raise _upstream_error(resp.status, body, f"tags of {uname}")
            link = resp.headers.get("Link")
        try:
            doc = json.loads(body)
            tags = [str(t) for t in (doc.get("tags") or [])]
        except (ValueError, AttributeError, TypeError):
            raise _bad_gateway(f"tags of {uname}: not a tag list") from None
        headers: dict[str, str] = {}
        if link:
            m = re.search(r"[?&]last=([^&>]*)", link)
            n = re.search(r"[?&]n=(\d+)", link)
            if m:
                extra = f"n={n.group(1)}&" if n else ""
                headers["Link"] = f'</v2/{name}/tags/list?{extra}last={m.group(1)}>; rel="next"'
        return json_response({"name": name, "tags": tags}, headers=headers)

    # -- blobs -------------------------------------------------------------------------------

    async def _blob(
        self, request: web.Request, name: str, digest: str, up: ProxyUpstream, uname: str
    ) -> web.StreamResponse:
        await authorize(request, name, "pull")
        st = state(request)
        parse_digest(digest)
        if await store_io(st, st.store.repo_blob_size, name, digest) is not None:
            return await blobs.get_blob(request, name, digest)
        if request.method == "HEAD" or await store_io(st, st.store.blob_size, digest) is not None:
            # HEAD: what upstream says (nothing is fetched; a fetch under way already knows).
            # A blob cached for another repository is linked here once upstream confirms this
            # repository has it.
            running = self._fetches.get((name, digest))
            if request.method == "HEAD" and running is not None and running.size is not None:
                size, media_type = running.size, running.media_type
            else:
                size, media_type = await self._head_blob(up, uname, digest)
            if await store_io(st, st.store.blob_size, digest) is not None:
                await run_blocking(st.store.link_blob, name, digest)
                return await blobs.get_blob(request, name, digest)
            headers = {
                "Docker-Content-Digest": digest,
                "Etag": f'"{digest}"',
                "Content-Type": media_type,
                "Content-Length": str(size),
            }
            resp = web.StreamResponse(status=200, headers=headers)
            await resp.prepare(request)
            return resp
        key = (name, digest)
        fetch = self._fetches.get(key)
        if fetch is None:
            fetch = self._start_fetch(st, name, digest, up, uname)
        await fetch.headers_known.wait()
        if fetch.outcome == "failed" and fetch.written == 0:
            assert fetch.error is not None
            raise fetch.error
        if "Range" in request.headers:
            await fetch.committed.wait()
            if fetch.outcome != "ok":
                assert fetch.error is not None
                raise fetch.error
            return await blobs.get_blob(request, name, digest)
        try:
            fd = os.open(fetch.spool, os.O_RDONLY)
        except FileNotFoundError:  # committed (or removed) meanwhile
            await fetch.committed.wait()
            if fetch.outcome != "ok":
                assert fetch.error is not None
                raise fetch.error from None
            return await blobs.get_blob(request, name, digest)
        try:
            return await self._stream(request, st, fetch, fd, digest)
        finally:
            os.close(fd)

    def _prefetch(
        self, st: State, name: str, digests: list[str], up: ProxyUpstream, uname: str
    ) -> None:
        """Fetch the blobs an image manifest references before they are asked for (Harbor's and
        zot's on-demand sync do so too), at most ``_PREFETCH_MAX`` at a time.

        A prefetch is an ordinary fetch: clients that ask meanwhile are streamed its spool,
        the blob is cached only once verified, and a failed or cancelled one leaves nothing.
        """
        task = asyncio.create_task(self._prefetch_all(st, name, digests, up, uname))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _prefetch_all(
        self, st: State, name: str, digests: list[str], up: ProxyUpstream, uname: str
    ) -> None:
        async def one(digest: str) -> None:
            async with self._prefetch_slots:
                if (name, digest) in self._fetches:
                    return  # a client's request started it
                try:
                    if await store_io(st, st.store.blob_size, digest) is not None:
                        return  # cached already (a GET links it for this repository)
                except (RegistryError, OSError) as exc:
                    log.debug("prefetch of %s skipped: %s", digest, exc)
                    return
                fetch = self._fetches.get((name, digest))
                if fetch is None:
                    fetch = self._start_fetch(st, name, digest, up, uname)
                await fetch.committed.wait()

        await asyncio.gather(*(one(d) for d in dict.fromkeys(digests)))

    async def _head_blob(self, up: ProxyUpstream, uname: str, digest: str) -> tuple[int, str]:
        try:
            resp = await self._request(up, "HEAD", f"/v2/{uname}/blobs/{digest}", uname)
        except ClientError as exc:
            raise _bad_gateway(exc.message) from None
        async with resp:
            if resp.status != 200:
                raise _upstream_error(resp.status, b"", f"blob {digest} of {uname}", "BLOB_UNKNOWN")
            length = resp.headers.get("Content-Length", "")
            media_type = resp.headers.get("Content-Type", "application/octet-stream")
        if not length.isdigit():
            raise _bad_gateway(f"HEAD of blob {digest} gave no Content-Length")
        return int(length), media_type

    def _start_fetch(
        self, st: State, name: str, digest: str, up: ProxyUpstream, uname: str
    ) -> _Fetch:
        """Register a fetch (no await: two requests never both start one) and run it."""
        store = st.store
        spool_dir = store.driver.local_path(SPOOL_DIR)
        if spool_dir is not None:  # beside the data: the commit is a rename
            os.makedirs(spool_dir, exist_ok=True)
        if not self._swept:
            self._swept = True
            _sweep_spools(spool_dir if spool_dir is not None else tempfile.gettempdir())
        fd, spool = tempfile.mkstemp(prefix="fleetkit-proxy-", dir=spool_dir)
        os.close(fd)
        fetch = _Fetch(spool=spool, loop=asyncio.get_running_loop())
        key = (name, digest)
        self._fetches[key] = fetch
        task = asyncio.create_task(self._run_fetch(store, key, fetch, up, uname, spool_dir is None))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return fetch

    async def _run_fetch(
        self,
        store: RegistryStore,
        key: tuple[str, str],
        fetch: _Fetch,
        up: ProxyUpstream,
        uname: str,
        spooled_apart: bool,
    ) -> None:
        digest = key[1]
        hasher = Hasher(parse_digest(digest).algorithm)
        error: RegistryAPIError | None = _bad_gateway(f"blob {digest}: the fetch stopped")
        fd = os.open(fetch.spool, os.O_WRONLY | os.O_APPEND)
        closed = committed = False
        try:
            try:
                resp = await self._request(up, "GET", f"/v2/{uname}/blobs/{digest}", uname)
            except ClientError as exc:
                raise _bad_gateway(exc.message) from None
            async with resp:
                if resp.status != 200:
                    body = await read_body(resp, MAX_ERROR_BODY_BYTES)
                    raise _upstream_error(
                        resp.status, body, f"blob {digest} of {uname}", "BLOB_UNKNOWN"
                    )
                length = resp.headers.get("Content-Length", "")
                fetch.size = int(length) if length.isdigit() else None
                fetch.media_type = resp.headers.get("Content-Type", fetch.media_type)
                fetch.headers_known.set()

                try:
                    if fetch.size is None or not await receive_direct(
                        resp,
                        Descriptor(fetch.media_type, digest, fetch.size),
                        _SpoolSink(fd, hasher, fetch),
                        _no_events,
                        _UPSTREAM_TIMEOUT_S,
                    ):
                        await self._spool(resp, fd, hasher, fetch)
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    raise _bad_gateway(f"blob {digest} of {uname}: {exc}") from None
            if fetch.size is not None and fetch.written < fetch.size:
                raise _bad_gateway(
                    f"blob {digest} of {uname}: the body ended at {fetch.written} of "
                    f"{fetch.size} bytes"
                )
            actual = hasher.digest()
            if actual != digest or (fetch.size is not None and fetch.written != fetch.size):
                log.error(
                    "upstream %s sent %d bytes hashing to %s for blob %s of %s: not cached",
                    up.host,
                    fetch.written,
                    actual,
                    digest,
                    uname,
                )
                raise api_error(
                    "DIGEST_INVALID",
                    f"upstream sent blob bytes whose digest is {actual}, not {digest}",
                    detail={"expected": digest, "actual": actual},
                    status=502,
                )
            # verified: clients may have the last byte now; the commit (fsync, rename) follows
            fetch.settle("ok")
            os.close(fd)
            closed = True
            await asyncio.to_thread(
                self._commit, store, key[0], fetch, digest, hasher, spooled_apart
            )
            committed = True
        except asyncio.CancelledError:
            error = _bad_gateway("the fetch was cancelled")
            raise
        except RegistryAPIError as exc:
            error = exc
        except (RegistryError, OSError) as exc:
            log.exception("proxy fetch of %s failed", digest)
            error = api_error("UNKNOWN", str(exc))
        finally:
            if not closed:
                os.close(fd)
            # nothing of a failed fetch stays, and it is forgotten before anyone hears of it:
            # the next request starts a fresh one
            self._fetches.pop(key, None)
            if not committed:
                self._discard(store, fetch)
            if fetch.outcome != "ok":
                fetch.settle("failed", error)
            fetch.headers_known.set()
            fetch.committed.set()
            fetch.notify()

    @staticmethod
    async def _spool(resp: aiohttp.ClientResponse, fd: int, hasher: Hasher, fetch: _Fetch) -> None:
        """Write and hash the body in a thread of its own while the loop keeps receiving.

        Pieces are taken as they arrived (``readchunk`` joins nothing) and handed to the
        writer in batches: at once when it is idle, else all that arrived meanwhile when it is
        done with the last batch. The loop waits only when more than ``_MAX_PENDING`` bytes are
        queued (on a busy machine a thread hop per piece would stall the socket each time).
        ``fetch.written`` grows, on the loop, as batches land; readers wake once per batch.
        """
        loop = asyncio.get_running_loop()
        queued: list[bytes] = []
        pending = 0  # received, not yet landed in the spool
        busy = False  # a batch is with the writer
        failure: BaseException | None = None
        changed = asyncio.Event()

        def absorb(pieces: list[bytes]) -> None:
            for piece in pieces:
                view = memoryview(piece)
                while view:
                    view = view[os.write(fd, view) :]
                hasher.update(piece)  # while the piece is still in cache

        def landed(n: int, error: BaseException | None) -> None:
            nonlocal busy, pending, failure
            busy = False
            if error is not None:
                failure = failure or error
            else:
                pending -= n
                fetch.advance(n)
                if queued:
                    submit()
            changed.set()

        def submit() -> None:
            nonlocal busy
            pieces = queued[:]
            queued.clear()
            n = sum(map(len, pieces))
            busy = True

            def done(f: concurrent.futures.Future[None]) -> None:
                loop.call_soon_threadsafe(landed, n, f.exception())

            writer.submit(absorb, pieces).add_done_callback(done)

        async def until(condition: Callable[[], bool]) -> None:
            while not condition():
                changed.clear()
                await changed.wait()

        def room() -> bool:
            return pending <= _MAX_PENDING or failure is not None

        def all_landed() -> bool:
            return failure is not None or not (busy or queued)

        def idle() -> bool:
            return not busy

        with concurrent.futures.ThreadPoolExecutor(1, "fleetkit-proxy-spool") as writer:
            try:
                while failure is None:
                    chunk, end_of_http_chunk = await resp.content.readchunk()
                    if not chunk:
                        if end_of_http_chunk:
                            continue
                        break
                    queued.append(chunk)
                    pending += len(chunk)
                    if not busy:
                        submit()
                    elif pending > _MAX_PENDING:
                        await until(room)
                if failure is None and queued and not busy:
                    submit()
                await until(all_landed)
            finally:
                await until(idle)  # the writer is never left using ``fd``
        if failure is not None:
            raise failure

    @staticmethod
    def _commit(
        store: RegistryStore,
        name: str,
        fetch: _Fetch,
        digest: str,
        hasher: Hasher,
        spooled_apart: bool,
    ) -> None:
        """Commit the verified spool as the blob, through an upload session as a push does."""
        upload = fetch.upload = store.start_upload(name)
        if spooled_apart:  # S3, memory: copy the spool into the session
            from fleetkit.registry.storage.store import UploadWriter

            writer = UploadWriter(store, upload)
            try:
                with open(fetch.spool, "rb") as f:
                    while chunk := f.read(8 << 20):
                        writer.write(chunk)
            finally:
                writer.close()
            # the copy is the session's now: the spool goes (clients sending from it keep
            # their open descriptors; later ones find it gone and wait for the commit)
            with contextlib.suppress(FileNotFoundError):  # swept by another process meanwhile
                os.unlink(fetch.spool)
        else:  # the spool becomes the session's bytes, already hashed as they came
            data = store.driver.local_path(f"repositories/{name}/_uploads/{upload.id}/data")
            assert data is not None
            os.replace(fetch.spool, data)
            upload.size = fetch.written
            store._remember_hasher(upload, hasher)
        store.finish_upload(upload, digest)

    @staticmethod
    def _discard(store: RegistryStore, fetch: _Fetch) -> None:
        if fetch.upload is not None:
            with contextlib.suppress(RegistryError, OSError):
                store.cancel_upload(fetch.upload)
        with contextlib.suppress(OSError):
            os.unlink(fetch.spool)

    async def _stream(
        self, request: web.Request, st: State, fetch: _Fetch, fd: int, digest: str
    ) -> web.StreamResponse:
        """Send the spool to one client as it grows; abort the connection if the fetch fails."""
        headers = {
            "Docker-Content-Digest": digest,
            "Etag": f'"{digest}"',
            "Content-Type": "application/octet-stream",
        }
        if fetch.size is not None:
            headers["Content-Length"] = str(fetch.size)
        resp = web.StreamResponse(status=200, headers=headers)
        await resp.prepare(request)
        request[SENT_KEY] = 0
        transport = request.transport
        if (
            fetch.size is not None  # else aiohttp frames the body (chunked encoding)
            and transport is not None
            and transport.get_write_buffer_size() == 0
            and blobs.plain_socket(transport) is not None
        ):
            sender = _Sender(fetch, fd, transport, st)
            st.blob_bodies_in_flight += 1
            try:
                await sender.run()
            finally:
                st.blob_bodies_in_flight -= 1
                request[SENT_KEY] = sent = sender.sent
                st.metrics.bytes_sent += sender.sent
        else:
            sent = await self._stream_on_loop(request, st, resp, fetch, fd)
        if fetch.outcome != "ok":
            # the status line is gone: a cut connection is the only way to say it
            log.warning("%s: upstream fetch failed after %d bytes were sent", digest, sent)
            if request.transport is not None:
                request.transport.abort()
            return resp
        await resp.write_eof()
        return resp

    @staticmethod
    async def _stream_on_loop(
        request: web.Request, st: State, resp: web.StreamResponse, fetch: _Fetch, fd: int
    ) -> int:
        """The spool through the response writer (TLS, or bytes already queued on it)."""
        sent = 0
        while True:
            limit = fetch.sendable
            if sent < limit:
                data = os.pread(fd, min(limit - sent, _SEND), sent)
                if not data:
                    raise _bad_gateway("the spool shrank")
                await resp.write(data)
                sent += len(data)
                request[SENT_KEY] = sent
                st.metrics.bytes_sent += len(data)
                continue
            with fetch.cond:
                if fetch.sendable > sent:
                    continue
                if fetch.outcome != "running":
                    return sent
                fetch.loop_waiters += 1
                progress = fetch.progress
            try:
                await progress.wait()
            finally:
                with fetch.cond:
                    fetch.loop_waiters -= 1


class _SpoolSink:
    """The upstream body's destination on the receiving thread: spool file, hash, readers."""

    def __init__(self, fd: int, hasher: Hasher, fetch: _Fetch) -> None:
        self.fd = fd
        self.hasher = hasher
        self.fetch = fetch
        self.offset = 0

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.offset += len(data)
        # readers may send it now (the last byte waits for the digest): the hash below runs
        # while they do, on the piece still in cache
        self.fetch.advance(len(data))
        self.hasher.update(data)


def _no_events(_event: object) -> None:
    return None


class _Sender:
    """One client of a blob being fetched, sent from the spool by a thread of its own.

    The thread waits on the fetch's condition, then sends what landed since to a duplicate
    of the client's socket, as the registry's own blob bodies go (``blobs._send_on_thread``):
    while at most ``COPY_MAX_BODIES`` bodies are in flight, through one reused buffer
    (``pread`` of the spool's fresh pages, ``write``: a receiver on this host copies that out
    of the socket while it is in cache, and a client on this host gets the bounded send buffer
    of ``blobs.bound_local_send_buffer``), beyond that with ``sendfile`` (nothing copied here).
    The socket stays non-blocking: a full send buffer waits in ``poll``, and a client that
    reads nothing for the server's body timeout is treated as gone. A thread of its own, not
    the shared executor (see :func:`~fleetkit.registry.server._common.run_on_own_thread`).
    """

    def __init__(
        self, fetch: _Fetch, spool_fd: int, transport: asyncio.BaseTransport, st: State
    ) -> None:
        sock = blobs.plain_socket(transport)
        assert sock is not None
        self.fetch = fetch
        self.spool_fd = spool_fd
        if st.blob_bodies_in_flight <= blobs.COPY_MAX_BODIES:
            blobs.bound_local_send_buffer(sock)
        self.sock = socket.socket(fileno=os.dup(sock.fileno()))
        self.st = st
        self.timeout_s = st.body_timeout_s
        self.sent = 0
        self.stop = False

    async def run(self) -> None:
        """Send until the blob is verified and all sent, the fetch failed, or the client left."""
        done = run_on_own_thread(self._push, "fleetkit-proxy-send")
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            with self.fetch.cond:
                self.stop = True
                self.fetch.cond.notify_all()
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes a poll that waits for room
            with contextlib.suppress(BaseException):
                await done
            raise
        finally:
            self.sock.close()

    def _push(self) -> None:
        fetch = self.fetch
        out = self.sock.fileno()
        poller = select.poll()
        poller.register(out, select.POLLOUT)
        buf = memoryview(bytearray(_COPY_BUFFER))
        while True:
            with fetch.cond:
                while not self.stop and fetch.outcome == "running" and fetch.sendable <= self.sent:
                    fetch.cond.wait()
                if self.stop or fetch.outcome == "failed":
                    return
                limit = fetch.sendable
            if self.sent >= limit:
                return  # verified and all sent
            while self.sent < limit:
                try:
                    if self.st.blob_bodies_in_flight > blobs.COPY_MAX_BODIES:
                        n = os.sendfile(out, self.spool_fd, self.sent, limit - self.sent)
                    else:
                        want = min(limit - self.sent, _COPY_BUFFER)
                        got = os.preadv(self.spool_fd, [buf[:want]], self.sent)
                        n = os.write(out, buf[:got]) if got else 0
                except BlockingIOError:
                    if not poller.poll(int(self.timeout_s * 1000)):
                        raise ConnectionResetError("the client stopped reading") from None
                    continue
                if n == 0:
                    raise ConnectionResetError("the spool shrank")
                self.sent += n


def _sweep_spools(spool_dir: str, max_age_s: float = 3600.0) -> None:
    """Remove spool files older than ``max_age_s`` (what a killed process left behind)."""
    cutoff = time.time() - max_age_s
    with contextlib.suppress(OSError), os.scandir(spool_dir) as entries:
        for entry in entries:
            if entry.name.startswith("fleetkit-proxy-") and entry.stat().st_mtime < cutoff:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _accept(request: web.Request) -> str:
    wanted = manifests.parse_accept(request.headers.getall("Accept", []))
    types = [a for a in wanted if a in mt.MANIFEST_TYPES]
    return ", ".join(types or sorted(mt.MANIFEST_TYPES))


def _upstream_error(
    status: int, body: bytes, what: str, unknown: str = "MANIFEST_UNKNOWN"
) -> RegistryAPIError:
    """An upstream refusal as the client's error: 404s keep their code, the rest are 502.

    A 401/403 after the token dance (the proxy's upstream account may not read this
    repository) is answered as not found, with the reason in the message."""
    from fleetkit.registry.errors import from_response

    err = from_response(status, body) if body else None
    if status == 404:
        code = err.code if err is not None and err.code.endswith("_UNKNOWN") else unknown
        return api_error(code, f"upstream: {what} not found", status=404)
    if status in (401, 403):
        return api_error(
            unknown,
            f"upstream refused access to {what} (HTTP {status}): check the proxy's upstream "
            "credentials",
            status=404,
        )
    message = err.message if err is not None else f"HTTP {status}"
    return _bad_gateway(f"{what}: {message}")


def install_proxy(app: web.Application, config: ProxyConfig) -> Proxy:
    """Attach a pull-through cache to a registry app (see ``dispatch``'s hook)."""
    proxy = Proxy(config)
    app[PROXY_KEY] = proxy
    if config.remote is not None:
        log.info(
            "pull-through cache of %s (tags revalidated after %gs); pushes are refused",
            config.remote.url,
            config.remote.ttl_s,
        )
    for project, up in sorted(config.projects.items()):
        log.info("proxy project %s/: cache of %s (ttl %gs)", project, up.url, up.ttl_s)

    async def _close(_: web.Application) -> None:
        await proxy.close()

    app.on_cleanup.append(_close)
    return proxy
