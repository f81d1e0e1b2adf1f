"""``/v2/<name>/tags/list``: sorted, paginated with ``n``/``last`` and a ``Link`` header."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from fleetkit.registry.errors import api_error
from fleetkit.registry.server._common import (
    authorize,
    json_response,
    parse_pagination,
    state,
    store_io,
)

__all__ = ["list_tags", "paginate"]


def paginate(items: list[str], n: int | None, last: str | None) -> tuple[list[str], bool]:
    """Items strictly after ``last`` (lexically), at most ``n``; and whether more remain."""
    if last is not None:
        items = [i for i in items if i > last]
    if n is None:
        return items, False
    return items[:n], len(items) > n


async def list_tags(request: web.Request, name: str) -> web.Response:
    await authorize(request, name, "pull")
    st = state(request)
    n, last = parse_pagination(request)
    if not await store_io(st, st.store.repository_exists, name):
        raise api_error("NAME_UNKNOWN", detail={"name": name})
    page, more = paginate(await store_io(st, st.store.tags, name), n, last)
    headers = {}
    if more and page:
        headers["Link"] = f'</v2/{name}/tags/list?n={n}&last={quote(page[-1])}>; rel="next"'
    return json_response({"name": name, "tags": page}, headers=headers)
