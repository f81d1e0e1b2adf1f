"""``/v2/_catalog``: repository names, sorted and paginated like tags (scope registry:catalog:*)."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from fleetkit.registry.auth.challenge import Scope
from fleetkit.registry.server._common import (
    authorize,
    json_response,
    parse_pagination,
    state,
    store_io,
)
from fleetkit.registry.server.tags import paginate

__all__ = ["list_catalog"]


async def list_catalog(request: web.Request) -> web.Response:
    await authorize(request, None, "", [Scope("registry", "catalog", frozenset({"*"}))])
    st = state(request)
    n, last = parse_pagination(request)
    page, more = paginate(await store_io(st, st.store.repositories), n, last)
    headers = {}
    if more and page:
        headers["Link"] = f'</v2/_catalog?n={n}&last={quote(page[-1])}>; rel="next"'
    return json_response({"repositories": page}, headers=headers)
