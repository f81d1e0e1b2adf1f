"""The HTTP API (aiohttp): discovery, OpenAPI v3, and every verb on the served resources.

Paths as kube-apiserver serves them: ``/api/v1[/namespaces/NS]/PLURAL[/NAME[/SUB]]`` and
``/apis/GROUP/VERSION/...``. Responses are JSON; ``Accept: ...;as=Table`` gives the Table form
``kubectl get`` prints. Errors are ``Status`` objects with the API's reasons and messages.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import collections
import json
import time
from typing import Any

from aiohttp import web

from fleetkit.cluster.api import discovery, openapi, tables
from fleetkit.cluster.api.patch import PatchError, apply, json_patch, merge_patch, strategic_merge
from fleetkit.cluster.api.resources import GROUP_VERSIONS, Resource, by_path
from fleetkit.cluster.api.selectors import SelectorError, field_predicate, label_predicate
from fleetkit.cluster.state import ApiError, ClusterState, key_of, not_found
from fleetkit.cluster.store import Gone, now_ts

__all__ = ["make_app", "VERSION_INFO"]

Obj = dict[str, Any]
VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.2-fleetkit",
    "gitCommit": "",
    "gitTreeState": "clean",
    "buildDate": "2025-02-12T00:00:00Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}
BOOKMARK_INTERVAL_S = 15.0
PAGES_KEPT = 16  # list snapshots kept for continue tokens (kubectl reads 500 items a page)


def _limit(text: str) -> int:
    try:
        return max(0, int(text or 0))
    except ValueError as exc:
        raise ApiError(400, "BadRequest", f"invalid limit {text!r}") from exc


def _page_key(o: Obj) -> str:
    meta = o.get("metadata") or {}
    ns = str(meta.get("namespace") or "")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def _everything(o: Obj) -> bool:
    """The filter of a request without label and field selectors."""
    return True


def _sort_key(o: Obj) -> tuple[str, str]:
    meta = o.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name")))


class _Pages:
    """Snapshots of listed objects by continue token (the most recent ``PAGES_KEPT``)."""

    def __init__(self) -> None:
        self.kept: collections.OrderedDict[str, tuple[list[Obj], int]] = collections.OrderedDict()

    def add(self, objs: list[Obj], rv: str, start: int, last: Obj) -> str:
        doc = {"v": "meta.k8s.io/v1", "rv": int(rv), "start": _page_key(last) + "\x00"}
        # kube's encoding: URL-safe base64 without padding (a token travels in a query string)
        raw = base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode())
        token = raw.decode().rstrip("=")
        self.kept[token] = (objs, start)
        while len(self.kept) > PAGES_KEPT:
            self.kept.popitem(last=False)
        return token

    def get(self, token: str) -> tuple[list[Obj], int] | None:
        return self.kept.get(token)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _error(exc: ApiError) -> web.Response:
    return _json(exc.status(), exc.code)


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _warn_headers(warnings: list[str]) -> dict[str, str]:
    if not warnings:
        return {}
    # aiohttp sends one header per key: join as RFC 7234 allows (comma-separated warn-values)
    return {"Warning": ", ".join('299 - "' + w.replace('"', '\\"') + '"' for w in warnings)}


class API:
    """Request handlers over one :class:`ClusterState`; ``hooks`` are the simulated
    control plane's entry points (binding, eviction, scale)."""

    def __init__(self, state: ClusterState, address: str, hooks: Any = None) -> None:
        self.state = state
        self.address = address
        self.hooks = hooks
        self._pages = _Pages()

    # -- discovery and OpenAPI -------------------------------------------------------------------
    async def version(self, request: web.Request) -> web.Response:
        return _json(VERSION_INFO)

    async def ui(self, request: web.Request) -> web.Response:
        from fleetkit.cluster.api.ui import render

        return web.Response(text=render(self.state), content_type="text/html")

    async def whatif_drain(self, request: web.Request) -> web.Response:
        """GET /fleetkit/v1/whatif/drain/{node}: a DrainReport computed on a copy of the cluster."""
        from fleetkit.cluster.whatif import drain_report

        if self.hooks is None:
            return _json({"kind": "Status", "status": "Failure", "code": 404}, 404)
        try:
            return _json(drain_report(self.hooks, request.match_info["node"]))
        except ApiError as exc:
            return _error(exc)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def api_root(self, request: web.Request) -> web.Response:
        if "as=APIGroupDiscoveryList" in request.headers.get("Accept", ""):
            return web.Response(
                body=json.dumps(discovery.aggregated(legacy=True)).encode(),
                headers={"Content-Type": discovery.AGGREGATED_TYPE},
            )
        return _json(discovery.api_versions(self.address))

    async def apis_root(self, request: web.Request) -> web.Response:
        if "as=APIGroupDiscoveryList" in request.headers.get("Accept", ""):
            return web.Response(
                body=json.dumps(discovery.aggregated(legacy=False)).encode(),
                headers={"Content-Type": discovery.AGGREGATED_TYPE},
            )
        return _json(discovery.api_group_list())

    async def openapi_v3(self, request: web.Request) -> web.Response:
        tail = request.match_info.get("tail", "")
        if not tail:
            return _json(await asyncio.to_thread(openapi.root_index))
        for group, version in GROUP_VERSIONS:
            if tail == openapi.gv_path(group, version):
                body = await asyncio.to_thread(openapi.group_version_doc, group, version)
                return web.Response(body=body, content_type="application/json")
        return _error(ApiError(404, "NotFound", "the server could not find the requested resource"))

    async def not_found_path(self, request: web.Request) -> web.Response:
        return _error(ApiError(404, "NotFound", "the server could not find the requested resource"))

    # -- resources -------------------------------------------------------------------------------
    async def core(self, request: web.Request) -> web.StreamResponse:
        return await self._dispatch(request, "", "v1", request.match_info.get("tail", ""))

    async def grouped(self, request: web.Request) -> web.StreamResponse:
        mi = request.match_info
        return await self._dispatch(request, mi["group"], mi["version"], mi.get("tail", ""))

    async def _dispatch(
        self, request: web.Request, group: str, version: str, tail: str
    ) -> web.StreamResponse:
        parts = [p for p in tail.split("/") if p]
        if not parts:
            doc = discovery.resource_list(group, version)
            if doc is None:
                return await self.not_found_path(request)
            return _json(doc)
        ns = ""
        if (
            parts[0] == "namespaces"
            and len(parts) >= 3
            and not (len(parts) == 3 and parts[2] in ("status", "finalize"))
        ):
            ns, parts = parts[1], parts[2:]
        res = by_path(group, version, parts[0])
        if res is None or (ns and not res.namespaced):
            return await self.not_found_path(request)
        name = parts[1] if len(parts) > 1 else ""
        sub = parts[2] if len(parts) > 2 else ""
        if sub and sub not in res.subresources:
            return await self.not_found_path(request)
        try:
            return await self._verb(request, res, ns, name, sub)
        except ApiError as exc:
            return _error(exc)
        except SelectorError as exc:
            return _error(ApiError(400, "BadRequest", str(exc)))
        except PatchError as exc:
            return _error(ApiError(422, "Invalid", str(exc)))

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        ctype = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
        if ctype.startswith("application/vnd.kubernetes.protobuf"):
            from fleetkit.cluster.api.protobuf import decode_object

            try:
                return decode_object(raw)
            except ValueError as exc:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types "
                    f"include: application/json, application/yaml (protobuf: {exc})",
                ) from exc
        if ctype == "application/cbor":
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
            )
        if ctype == "application/apply-patch+yaml":
            import yaml

            try:
                return yaml.safe_load(raw.decode())
            except (yaml.YAMLError, RecursionError) as exc:
                raise ApiError(400, "BadRequest", f"error decoding YAML: {exc}") from exc
        try:
            return json.loads(raw.decode() or "null")
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            if ctype in ("application/yaml",):
                import yaml

                return yaml.safe_load(raw.decode())
            raise ApiError(400, "BadRequest", f"error decoding body: {exc}") from exc

    async def _verb(
        self, request: web.Request, res: Resource, ns: str, name: str, sub: str
    ) -> web.StreamResponse:
        q = request.query
        method = request.method
        dry = q.get("dryRun") == "All"
        validation = q.get("fieldValidation", "Warn")
        st = self.state
        if method == "GET":
            if not name:
                if q.get("watch") in ("true", "1"):
                    return await self._watch(request, res, ns)
                return self._list(request, res, ns)
            obj = st.get(res, ns, name)
            if sub == "scale":
                return _json(_scale_of(res, obj))
            if sub == "log":
                return web.Response(text="", content_type="text/plain")
            if _wants_table(request):
                return _json(
                    tables.table(
                        res.plural,
                        [obj],
                        obj["metadata"]["resourceVersion"],
                        q.get("includeObject", "Metadata"),
                    )
                )
            return _json(obj)
        if method == "POST":
            if sub == "eviction" and request.headers.get("Content-Type", "").startswith(
                "application/vnd.kubernetes.protobuf"
            ):
                from fleetkit.cluster.api.protobuf import eviction_dry_run

                try:
                    dry = dry or eviction_dry_run(await request.read())
                except ValueError as exc:
                    raise ApiError(400, "BadRequest", f"error decoding body: {exc}") from exc
                self.hooks.evict(ns, name, dry)
                return _json(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "code": 201,
                    },
                    201,
                )
            body = await self._body(request)
            if sub == "eviction" and "All" in (
                ((body or {}).get("deleteOptions") or {}).get("dryRun") or []
            ):
                dry = True
            if sub == "binding":
                return _json(self.hooks.bind(ns, name, body), 201)
            if sub == "eviction":
                self.hooks.evict(ns, name, dry)
                return _json(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "code": 201,
                    },
                    201,
                )
            if name:
                raise ApiError(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )
            obj, warnings = st.decode(res, body, validation)
            created = st.create(res, obj, ns, dry_run=dry)
            return _json(created, 201, _warn_headers(warnings))
        if method == "PUT":
            body = await self._body(request)
            if sub == "scale":
                return _json(self._set_scale(res, ns, name, body, dry))
            obj, warnings = st.decode(res, body, validation)
            if obj.get("metadata", {}).get("name") not in (None, name):
                raise ApiError(
                    400, "BadRequest", "the name of the object does not match the name on the URL"
                )
            obj.setdefault("metadata", {})["name"] = name
            return _json(st.update(res, obj, ns, sub, dry_run=dry), 200, _warn_headers(warnings))
        if method == "PATCH":
            return await self._patch(request, res, ns, name, sub, dry, validation)
        if method == "DELETE":
            opts: Obj = {}
            raw = await request.read()
            if raw:
                try:
                    opts = json.loads(raw)
                except ValueError:
                    opts = {}
            prop = q.get("propagationPolicy") or opts.get("propagationPolicy") or "Background"
            dry = dry or "All" in (opts.get("dryRun") or [])
            if not name:
                return self._delete_collection(request, res, ns, prop, dry)
            gone = st.delete(res, ns, name, prop, dry)
            if res.kind == "Pod" or prop == "Orphan" or dry:
                return _json(gone)
            return _json(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        "group": res.group,
                        "kind": res.plural,
                        "uid": gone["metadata"].get("uid"),
                    },
                }
            )
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    # -- list and watch --------------------------------------------------------------------------
    def _filter(self, request: web.Request) -> Any:
        q = request.query
        if not q.get("labelSelector") and not q.get("fieldSelector"):
            return _everything
        lp = label_predicate(q.get("labelSelector", ""))
        fp = field_predicate(q.get("fieldSelector", ""))
        return lambda o: lp((o.get("metadata") or {}).get("labels") or {}) and fp(o)

    def _list(self, request: web.Request, res: Resource, ns: str) -> web.Response:
        q = request.query
        token = q.get("continue", "")
        if token:
            objs, rv, start = self._continued(token, res, ns, self._filter(request))
        else:
            match = self._filter(request)
            objs = self.state.objects(res, ns)
            if match is not _everything:
                objs = [o for o in objs if match(o)]
            rv, start = str(self.state.store.rv), 0
        limit = _limit(q.get("limit", ""))
        if _wants_table(request):
            # a Table list is served whole (servers may ignore limit): kubectl's client-side
            # rate limit (a burst of 10 requests, then about 5 a second) would spread 50,000
            # pods over 100 requests and 20 s, where one response takes under a second
            limit = 0
        page = objs[start : start + limit] if limit else objs[start:]
        meta: Obj = {"resourceVersion": rv}
        left = len(objs) - start - len(page)
        if limit and left > 0:
            # the rest is served from this list (one consistent resourceVersion, as etcd does)
            meta["continue"] = self._pages.add(objs, rv, start + len(page), page[-1])
            meta["remainingItemCount"] = left
        if _wants_table(request):
            include = q.get("includeObject", "Metadata")
            body = tables.table_json(res.plural, page, rv, include, meta, len(objs))
            return web.Response(body=body, content_type="application/json")
        return _json(
            {
                "kind": f"{res.kind}List",
                "apiVersion": res.api_version,
                "metadata": meta,
                "items": page,
            }
        )

    def _continued(
        self, token: str, res: Resource, ns: str, match: Any
    ) -> tuple[list[Obj], str, int]:
        """A continued list: the first page's snapshot, or (once forgotten) the current objects
        after the token's key (kube-apiserver answers 410 Expired once etcd compacted)."""
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            rv, key = str(int(data["rv"])), str(data["start"]).rstrip("\x00")
        except (ValueError, KeyError, TypeError) as exc:
            raise ApiError(400, "BadRequest", f"continue key is not valid: {exc}") from exc
        hit = self._pages.get(token)
        if hit is not None:
            return hit[0], rv, hit[1]
        if int(rv) < self.state.store.rv:
            raise ApiError(
                410,
                "Expired",
                "The provided continue parameter is too old to display a consistent list result. "
                "You can start a new list without the continue parameter.",
            )
        objs = [o for o in self.state.objects(res, ns) if match(o)]
        ns_part, sep, name_part = key.partition("/")
        after = (ns_part, name_part) if sep else ("", key)
        keys = [_sort_key(o) for o in objs]
        return objs, rv, bisect.bisect_right(keys, after)

    async def _watch(self, request: web.Request, res: Resource, ns: str) -> web.StreamResponse:
        q = request.query
        match = self._filter(request)
        if ns:
            inner = match
            match = lambda o: (o.get("metadata") or {}).get("namespace") == ns and inner(o)  # noqa: E731
        rv_text = q.get("resourceVersion", "")
        since: int | None
        try:
            since = int(rv_text) if rv_text not in ("", "0") else None
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"invalid resourceVersion {rv_text!r}") from exc
        try:
            w = self.state.store.watch(key_of(res), match, since)
        except Gone as exc:
            raise ApiError(410, "Expired", str(exc)) from exc
        table = _wants_table(request)
        include = q.get("includeObject", "Metadata")
        resp = web.StreamResponse(status=200)
        resp.content_type = "application/json"
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if since is None and rv_text in ("", "0") and q.get("sendInitialEvents") != "false":
            # a watch without a resourceVersion starts with the current state
            for o in self.state.objects(res, ns):
                if match(o):
                    await self._send(resp, "ADDED", o, res, table, include)
        timeout = float(q.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        bookmarks = q.get("allowWatchBookmarks") == "true"
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    ev = await asyncio.wait_for(w.queue.get(), min(left, BOOKMARK_INTERVAL_S))
                except TimeoutError:
                    if bookmarks:
                        mark = {
                            "kind": res.kind,
                            "apiVersion": res.api_version,
                            "metadata": {"resourceVersion": str(self.state.store.rv)},
                        }
                        await resp.write(
                            json.dumps({"type": "BOOKMARK", "object": mark}).encode() + b"\n"
                        )
                    continue
                if ev is None:
                    break
                kind = ev.type
                if kind == "MODIFIED" and not match(ev.obj):
                    kind = "DELETED"
                elif kind == "MODIFIED" and ev.old is not None and not match(ev.old):
                    kind = "ADDED"
                await self._send(resp, kind, ev.obj, res, table, include)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.state.store.stop(w)
        return resp

    async def _send(
        self,
        resp: web.StreamResponse,
        kind: str,
        obj: Obj,
        res: Resource,
        table: bool,
        include: str,
    ) -> None:
        out = (
            tables.table(res.plural, [obj], obj["metadata"]["resourceVersion"], include)
            if table
            else obj
        )
        await resp.write(
            json.dumps({"type": kind, "object": out}, separators=(",", ":")).encode() + b"\n"
        )

    def _delete_collection(
        self, request: web.Request, res: Resource, ns: str, prop: str, dry: bool
    ) -> web.Response:
        match = self._filter(request)
        gone = [
            self.state.delete(res, ns, o["metadata"]["name"], prop, dry)
            for o in self.state.objects(res, ns)
            if match(o)
        ]
        return _json(
            {
                "kind": f"{res.kind}List",
                "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(self.state.store.rv)},
                "items": gone,
            }
        )

    # -- patch -------------------------------------------------------------------------------------
    async def _patch(
        self,
        request: web.Request,
        res: Resource,
        ns: str,
        name: str,
        sub: str,
        dry: bool,
        validation: str,
    ) -> web.Response:
        st = self.state
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        body = await self._body(request)
        q = request.query
        if sub == "scale":
            cur = _scale_of(res, st.get(res, ns, name))
            patched = _apply_patch(ctype, cur, body, None)
            return _json(self._set_scale(res, ns, name, patched, dry))
        try:
            live: Obj | None = st.get(res, ns, name)
        except ApiError:
            if ctype != "application/apply-patch+yaml":
                raise
            live = None
        manager = q.get("fieldManager", "")
        akey = (key_of(res), ns if res.namespaced else "", name, manager)
        if ctype == "application/apply-patch+yaml":
            if not isinstance(body, dict):
                raise ApiError(
                    400, "BadRequest", "the body of the request was in an unknown format"
                )
            decoded, warnings = st.decode(res, body, q.get("fieldValidation", "Strict"))
            if live is None:
                decoded.setdefault("metadata", {})["name"] = name
                out = st.create(res, decoded, ns, dry_run=dry)
                if not dry:
                    st.applied[akey] = body
                return _json(out, 201, _warn_headers(warnings))
            conflicts = self._apply_conflicts(akey, live, body, q.get("force") == "true")
            if conflicts:
                raise ApiError(
                    409,
                    "Conflict",
                    f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}: "
                    + "\n".join(conflicts),
                    {
                        "causes": [
                            {"reason": "FieldManagerConflict", "message": c} for c in conflicts
                        ]
                    },
                )
            new = apply(live, body, st.applied.get(akey))
        else:
            assert live is not None
            new = _apply_patch(ctype, live, body, res)
            warnings = []
        if not isinstance(new, dict):
            raise ApiError(422, "Invalid", "the patch produced a non-object")
        new.setdefault("metadata", {})
        new["metadata"]["name"] = name
        if "resourceVersion" in (body.get("metadata") or {} if isinstance(body, dict) else {}):
            pass
        else:
            new["metadata"]["resourceVersion"] = (
                live["metadata"]["resourceVersion"] if live else None
            )
        decoded, warnings2 = st.decode(
            res,
            new,
            validation
            if ctype != "application/apply-patch+yaml"
            else q.get("fieldValidation", "Strict"),
        )
        out = st.update(res, decoded, ns, sub, dry_run=dry)
        if ctype == "application/apply-patch+yaml" and not dry:
            st.applied[akey] = body
        return _json(out, 200, _warn_headers(warnings + warnings2))

    def _apply_conflicts(
        self, akey: tuple[str, str, str, str], live: Obj, body: Obj, force: bool
    ) -> list[str]:
        """Fields this apply sets to a different value than another applier set them."""
        if force:
            for k in [k for k in self.state.applied if k[:3] == akey[:3] and k != akey]:
                del self.state.applied[k]
            return []
        out: list[str] = []
        for k, other in self.state.applied.items():
            if k[:3] != akey[:3] or k == akey:
                continue
            for path in _leaf_conflicts(body, other):
                out.append(f'conflict with "{k[3]}": {path}')
        return out

    # -- scale -------------------------------------------------------------------------------------
    def _set_scale(self, res: Resource, ns: str, name: str, body: Any, dry: bool) -> Obj:
        obj = self.state.get(res, ns, name)
        try:
            replicas = int(((body or {}).get("spec") or {}).get("replicas"))  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise ApiError(400, "BadRequest", "Scale.spec.replicas must be an integer") from exc
        if replicas < 0:
            raise ApiError(
                422,
                "Invalid",
                f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0',
                {
                    "name": name,
                    "group": "autoscaling",
                    "kind": "Scale",
                    "causes": [
                        {
                            "reason": "FieldValueInvalid",
                            "message": f"Invalid value: {replicas}: must be greater than or equal to 0",
                            "field": "spec.replicas",
                        }
                    ],
                },
            )
        new = {**obj, "spec": {**obj.get("spec", {}), "replicas": replicas}}
        new["metadata"] = dict(obj["metadata"])
        out = self.state.update(res, new, ns, dry_run=dry)
        return _scale_of(res, out)


def _leaf_conflicts(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in a:
            if k in b and k not in ("apiVersion", "kind") and not (path == "" and k == "metadata"):
                out += _leaf_conflicts(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) or isinstance(b, list):
        return [] if a == b else [path]
    return [] if a == b else [path]


def _apply_patch(ctype: str, cur: Obj, body: Any, res: Resource | None) -> Any:
    if ctype == "application/json-patch+json":
        return json_patch(cur, body)
    if ctype == "application/merge-patch+json":
        return merge_patch(cur, body)
    if ctype == "application/strategic-merge-patch+json":
        return strategic_merge(cur, body)
    raise ApiError(
        415, "UnsupportedMediaType", f"the server does not support the patch type {ctype!r}"
    )


def _scale_of(res: Resource, obj: Obj) -> Obj:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    from fleetkit.cluster.api.tables import selector_string

    sel = selector_string(spec.get("selector"))
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"].get("namespace"),
            "uid": obj["metadata"].get("uid"),
            "resourceVersion": obj["metadata"].get("resourceVersion"),
            "creationTimestamp": obj["metadata"].get("creationTimestamp"),
        },
        "spec": {"replicas": int(spec.get("replicas") or 0)},
        "status": {
            "replicas": int(status.get("replicas") or 0),
            "selector": "" if sel == "<none>" else sel,
        },
    }


def make_app(state: ClusterState, address: str, hooks: Any = None) -> web.Application:
    """The aiohttp application serving ``state``."""
    api = API(state, address, hooks)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    r = app.router
    r.add_get("/version", api.version)
    for p in ("/healthz", "/readyz", "/livez"):
        r.add_get(p, api.healthz)
    r.add_get("/ui", api.ui)
    r.add_get("/fleetkit/v1/whatif/drain/{node}", api.whatif_drain)
    r.add_get("/api", api.api_root)
    r.add_get("/apis", api.apis_root)
    r.add_get("/openapi/v3", api.openapi_v3)
    r.add_get("/openapi/v3/{tail:.*}", api.openapi_v3)
    r.add_get("/openapi/v2", api.not_found_path)
    r.add_route("*", "/api/v1", api.core)
    r.add_route("*", "/api/v1/{tail:.*}", api.core)
    r.add_route("*", "/apis/{group}/{version}", api.grouped)
    r.add_route("*", "/apis/{group}/{version}/{tail:.*}", api.grouped)
    app["api"] = api
    _ = now_ts, not_found
    return app
