"""``GET /ui[/...]``: the read-only web view, served when ``registry serve --ui`` is given.

Pages (repository names contain slashes; ``:`` and ``@`` never occur in them)::

    /ui                  repositories (``?last=NAME`` pages on, 100 a page)
    /ui/NAME             its tags: digest, kind, size, platforms, referrers, pull commands
    /ui/NAME:TAG         the manifest a tag points at
    /ui/NAME@DIGEST      one manifest or index: layers / platforms, referrers, its JSON

Access follows the registry's auth mode. ``none``: everyone sees everything. ``htpasswd`` and
``token``: the browser logs in with HTTP Basic against the same users (rate-limited like every
login), or sends a Bearer token in token mode; the viewer sees exactly the repositories the
policy lets them pull, and the list only if the policy lets them read the catalog. A page
nobody anonymous may see answers 401 with a Basic challenge, so the browser asks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from fleetkit.registry.auth.access import HtpasswdAuthorizer, TokenAuthorizer
from fleetkit.registry.auth.challenge import Scope, basic_challenge, parse_authorization
from fleetkit.registry.auth.policy import Policy
from fleetkit.registry.digest import parse_digest
from fleetkit.registry.errors import RegistryAPIError
from fleetkit.registry.reference import validate_repository, validate_tag
from fleetkit.registry.server._common import ROUTE_KEY, USER_KEY, State, state, store_io
from fleetkit.registry.ui import model, render

__all__ = ["add_routes", "Viewer"]

PAGE_SIZE = 100
REALM = "fleetkit registry UI"
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking, and what they may see."""

    user: str  # "" = anonymous
    may_pull: Callable[[str], bool]
    may_list: bool
    everything: bool = False  # auth none: no per-repository check


def _page(text: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={**_HEADERS, **(headers or {})},
    )


def _login_required(text: str = "Log in with your registry account.") -> web.Response:
    return _page(
        render.message_page("Login required", text),
        401,
        {"WWW-Authenticate": basic_challenge(REALM)},
    )


def _policy_viewer(policy: Policy, user: str | None) -> Viewer:
    def may_pull(name: str) -> bool:
        return "pull" in policy.grant(user, "repository", name, frozenset({"pull"}))

    catalog = policy.grant(user, "registry", "catalog", frozenset({"*"}))
    return Viewer(user or "", may_pull, bool(catalog))


async def viewer_of(request: web.Request, st: State) -> Viewer | web.Response:
    """The viewer of this request, or the 401 that asks the browser to log in."""
    auth = st.authorizer
    if auth.mode == "none":
        return Viewer("", lambda _n: True, True, everything=True)
    header = request.headers.get("Authorization")
    creds = parse_authorization(header)
    if isinstance(auth, HtpasswdAuthorizer):
        policy = auth.policy
    else:
        assert st.token_service is not None
        policy = st.token_service.policy
    if creds is None:
        return _policy_viewer(policy, None)
    if creds.scheme == "basic":
        if st.logins is None or not await st.logins.check(
            creds.username, creds.password, request.remote
        ):
            return _login_required("Wrong user name or password.")
        request[USER_KEY] = creds.username
        return _policy_viewer(policy, creds.username)
    if isinstance(auth, TokenAuthorizer):
        try:
            user = auth.authorize(header, [], "")
        except RegistryAPIError:
            return _login_required("The token is not valid here.")
        request[USER_KEY] = user

        def may_pull(name: str) -> bool:
            return auth.permits(header, Scope("repository", name, frozenset({"pull"})))

        return Viewer(
            user, may_pull, auth.permits(header, Scope("registry", "catalog", frozenset({"*"})))
        )
    return _login_required()


def _split(tail: str) -> tuple[str, str | None, str | None]:
    """``NAME``, ``NAME:TAG`` or ``NAME@DIGEST`` -> (name, tag, digest); ValueError if invalid."""
    tag: str | None = None
    digest: str | None = None
    name = tail.rstrip("/")
    if "@" in name:
        name, digest = name.split("@", 1)
        parse_digest(digest)
    else:
        head, _, last = name.rpartition("/")
        if ":" in last:
            last, tag = last.split(":", 1)
            validate_tag(tag)
            name = f"{head}/{last}" if head else last
    validate_repository(name)
    return name, tag, digest


def _not_found(what: str, v: Viewer) -> web.Response:
    if not v.user and not v.everything:
        # anonymous: the page may exist for someone who logs in; say so the same way either way
        return _login_required(f"{what}: not found, or you need to log in to see it.")
    return _page(render.message_page("Not found", f"{what}: not found.", v.user), 404)


async def ui_index(request: web.Request) -> web.StreamResponse:
    """``GET /ui``: the repositories the viewer may pull."""
    request[ROUTE_KEY] = "ui"
    st = state(request)
    v = await viewer_of(request, st)
    if isinstance(v, web.Response):
        return v
    return await _index(request, st, v)


async def _index(request: web.Request, st: State, v: Viewer) -> web.Response:
    if "login" in request.query and not v.user and not v.everything:
        return _login_required()
    if not v.may_list and not v.user:
        return _login_required()
    last = request.query.get("last") or None
    if not v.may_list:
        return _page(render.index_page([], False, request.host, v.user, may_list=False))

    found, more = await store_io(
        st,
        model.repository_rows,
        st.store,
        None if v.everything else v.may_pull,
        last,
        PAGE_SIZE,
    )
    return _page(render.index_page(found, more, request.host, v.user))


async def ui_page(request: web.Request) -> web.StreamResponse:
    """``GET /ui/NAME``, ``/ui/NAME:TAG``, ``/ui/NAME@DIGEST``."""
    request[ROUTE_KEY] = "ui"
    st = state(request)
    v = await viewer_of(request, st)
    if isinstance(v, web.Response):
        return v
    tail = request.match_info.get("tail", "")
    if not tail.strip("/"):
        return await _index(request, st, v)
    try:
        name, tag, digest = _split(tail)
    except RegistryAPIError:
        return _page(render.message_page("Not found", "not a repository or image reference"), 404)
    if not v.may_pull(name):
        return _not_found(name, v)
    store = st.store
    if tag is None and digest is None:
        if not await store_io(st, store.repository_exists, name):
            return _not_found(name, v)
        rows = await store_io(st, model.tag_rows, store, name)
        return _page(render.repository_page(name, rows, request.host, v.user))
    if digest is None:
        assert tag is not None
        digest = await store_io(st, store.resolve_tag, name, tag)
        if digest is None:
            return _not_found(f"{name}:{tag}", v)
    view = await store_io(st, model.manifest_view, store, name, digest)
    if view is None:
        return _not_found(f"{name}@{digest}", v)
    return _page(render.manifest_page(view, request.host, v.user))


def add_routes(app: web.Application) -> None:
    """Serve the web view under ``/ui`` of ``app`` (GET and HEAD only)."""
    app.router.add_get("/ui", ui_index)
    app.router.add_get("/ui/{tail:[\\s\\S]*}", ui_page)
