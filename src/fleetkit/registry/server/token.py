"""``/service/token``: Docker token auth (GET) and the OAuth2 flavour (POST) containerd uses."""

from __future__ import annotations

import asyncio

from aiohttp import web

from fleetkit.registry.auth.challenge import parse_authorization, parse_scopes
from fleetkit.registry.auth.service import TokenService
from fleetkit.registry.errors import api_error
from fleetkit.registry.server._common import (
    ROUTE_KEY,
    USER_KEY,
    BodyStalled,
    json_response,
    run_blocking,
    state,
)

__all__ = ["token_get", "token_post", "TOKEN_PATH"]

TOKEN_PATH = "/service/token"


def _service(request: web.Request) -> TokenService:
    request[ROUTE_KEY] = "token"
    ts = state(request).token_service
    if ts is None:
        raise api_error("UNSUPPORTED", "this server runs no token service", status=404)
    return ts


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return json_response({"error": error, "error_description": description}, status=status)


async def _check_password(request: web.Request, ts: TokenService, user: str, password: str) -> bool:
    """Off the event loop, rate-limited per user and client address (429 + Retry-After)."""
    logins = state(request).logins
    if logins is None:  # no users: nobody logs in (and no bcrypt is run)
        return False
    return await logins.check(user, password, request.remote)


async def token_get(request: web.Request) -> web.Response:
    ts = _service(request)
    st = state(request)
    service = request.query.get("service")
    if service is not None and service != ts.service:
        return _oauth_error(400, "invalid_request", f"unknown service {service!r}")
    creds = parse_authorization(request.headers.get("Authorization"))
    user: str | None = None
    if creds is not None and creds.scheme == "basic":
        if not await _check_password(request, ts, creds.username, creds.password):
            raise api_error(
                "UNAUTHORIZED",
                "invalid username or password",
                headers={"WWW-Authenticate": 'Basic realm="fleetkit token service"'},
            )
        user = creds.username
    scopes = parse_scopes(request.query.getall("scope", []))
    offline = request.query.get("offline_token", "").lower() == "true"
    grant = ts.grant(user, scopes, offline=offline)
    st.metrics.tokens_issued += 1
    request[USER_KEY] = user or ""
    return json_response(grant.docker_json())


async def token_post(request: web.Request) -> web.Response:
    ts = _service(request)
    st = state(request)
    try:
        async with asyncio.timeout(st.body_timeout_s):
            form = await request.post()
    except TimeoutError:
        raise BodyStalled(
            f"no request body bytes for {st.body_timeout_s:g} s", status=408
        ) from None
    grant_type = str(form.get("grant_type", ""))
    service = str(form.get("service", ""))
    if service and service != ts.service:
        return _oauth_error(400, "invalid_request", f"unknown service {service!r}")
    user: str | None
    if grant_type == "password":
        user = str(form.get("username", ""))
        password = str(form.get("password", ""))
        if not user or not await _check_password(request, ts, user, password):
            return _oauth_error(401, "invalid_grant", "invalid username or password")
    elif grant_type == "refresh_token":
        user = await run_blocking(ts.check_refresh_token, str(form.get("refresh_token", "")))
        if user is None:
            return _oauth_error(401, "invalid_grant", "invalid or expired refresh token")
    else:
        return _oauth_error(
            400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported"
        )
    scopes = parse_scopes([str(v) for v in form.getall("scope", [])])
    offline = str(form.get("access_type", "")) == "offline"
    grant = ts.grant(user, scopes, offline=offline or grant_type == "refresh_token")
    st.metrics.tokens_issued += 1
    request[USER_KEY] = user
    return json_response(grant.oauth_json())
