"""A scripted registry on 127.0.0.1 for hostile-server tests (no peers needed).

It serves ``GET /v2/``, manifests (by tag or digest) and blobs from dicts, counts every
request, and lets a test replace any response with ``hook`` (return a response, or None to let
the request through).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.registry.client.servers import _ThreadServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"

Hook = Callable[[web.Request], Awaitable[web.StreamResponse | None]]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry(_ThreadServer):
    """Anonymous registry serving what the test put into ``manifests`` and ``blobs``."""

    def __init__(self) -> None:
        super().__init__()
        self.manifests: dict[str, tuple[str, bytes]] = {}  # "repo@ref" -> (media type, raw)
        self.blobs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.hook: Hook | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    # -- content ---------------------------------------------------------------------------

    def put_manifest(self, repo: str, doc: Any, media_type: str, tag: str | None = None) -> str:
        raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        digest = sha(raw)
        self.manifests[f"{repo}@{digest}"] = (media_type, raw)
        if tag:
            self.manifests[f"{repo}@{tag}"] = (media_type, raw)
        return digest

    def put_blob(self, data: bytes) -> dict[str, Any]:
        digest = sha(data)
        self.blobs[digest] = data
        return {"mediaType": OCI_LAYER, "digest": digest, "size": len(data)}

    def put_image(
        self, repo: str, tag: str | None = None, arch: str = "amd64", seed: bytes = b""
    ) -> tuple[str, int]:
        """A one-layer image; returns (manifest digest, manifest size)."""
        config = json.dumps(
            {"architecture": arch, "os": "linux", "rootfs": {"type": "layers"}, "seed": repr(seed)}
        ).encode()
        cdesc = self.put_blob(config) | {"mediaType": OCI_CONFIG}
        ldesc = self.put_blob(b"layer-" + arch.encode() + seed)
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cdesc, "layers": [ldesc]}
        raw = json.dumps(doc).encode()
        return self.put_manifest(repo, raw, OCI_MANIFEST, tag), len(raw)

    def count(self, method: str, fragment: str) -> int:
        return sum(1 for m, p in self.requests if m == method and fragment in p)

    # -- serving ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        if self.hook is not None:
            resp = await self.hook(request)
            if resp is not None:
                return resp
        path = request.path
        if path == "/v2/":
            return web.json_response({})
        if "/manifests/" in path:
            repo, _, ref = path[len("/v2/") :].rpartition("/manifests/")
            found = self.manifests.get(f"{repo}@{ref}")
            if found is None:
                return _error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            media_type, raw = found
            headers = {"Docker-Content-Digest": sha(raw), "Content-Type": media_type}
            if request.method == "HEAD":
                headers["Content-Length"] = str(len(raw))
                return web.Response(headers=headers)
            return web.Response(body=raw, headers=headers)
        if "/blobs/" in path and request.method in ("GET", "HEAD"):
            digest = path.rpartition("/")[2]
            data = self.blobs.get(digest)
            if data is None:
                return _error(404, "BLOB_UNKNOWN", "blob unknown")
            return web.Response(body=data, content_type="application/octet-stream")
        return _error(404, "NAME_UNKNOWN", "not here")


def _error(status: int, code: str, message: str) -> web.Response:
    body = {"errors": [{"code": code, "message": message}]}
    return web.json_response(body, status=status)
