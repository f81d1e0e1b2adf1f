"""A tiny upstream registry for proxy tests: fixed content, request counts, gates, lies.

It serves ``/v2/``, manifests, blobs and tag lists from dicts the test fills, counts every
request by (method, path), can hold a blob half-sent until the test opens its gate, and can
send other bytes than a blob's digest says (``wrong``), which a real registry never does.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter

from aiohttp import web


class FakeUpstream:
    """``start()`` runs it on 127.0.0.1 in its own thread; ``stop()`` closes the listener."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.manifests: dict[tuple[str, str], tuple[bytes, str, str]] = {}  # (repo, ref) -> ...
        self.blobs: dict[str, bytes] = {}
        self.wrong: dict[str, bytes] = {}
        self.gated: set[str] = set()
        self.truncated: set[str] = set()  # half the bytes, then the connection is cut
        self.chunked: set[str] = set()  # GET without Content-Length (chunked encoding)
        self.gate = threading.Event()
        self.counts: Counter[tuple[str, str]] = Counter()
        self._counted = threading.Condition()  # notified on every request (see wait_for)
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def add_manifest(self, repo: str, body: bytes, media_type: str, *tags: str) -> str:
        from tests.registry._images import sha256

        digest = sha256(body)
        for ref in (digest, *tags):
            self.manifests[(repo, ref)] = (body, media_type, digest)
        return digest

    def wait_for(self, method: str, path: str, timeout_s: float = 30.0) -> bool:
        """Block until a ``method path`` request has arrived (False after ``timeout_s``)."""
        with self._counted:
            return self._counted.wait_for(lambda: self.counts[(method, path)] > 0, timeout_s)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        with self._counted:
            self.counts[(request.method, request.path)] += 1
            self._counted.notify_all()
        if tail == "":
            return web.json_response({})
        if tail.endswith("/tags/list"):
            repo = tail[: -len("/tags/list")]
            tags = sorted({ref for (r, ref) in self.manifests if r == repo and ":" not in ref})
            return web.json_response({"name": repo, "tags": tags})
        if "/manifests/" in tail:
            repo, ref = tail.rsplit("/manifests/", 1)
            found = self.manifests.get((repo, ref))
            if found is None:
                return _error(404, "MANIFEST_UNKNOWN")
            body, media_type, digest = found
            headers = {"Docker-Content-Digest": digest, "Content-Type": media_type}
            if request.method == "HEAD":
                headers["Content-Length"] = str(len(body))
                return web.Response(headers=headers)
            return web.Response(body=body, headers=headers)
        if "/blobs/" in tail:
            digest = tail.rsplit("/blobs/", 1)[1]
            data = self.wrong.get(digest, self.blobs.get(digest))
            if data is None:
                return _error(404, "BLOB_UNKNOWN")
            headers = {"Content-Length": str(len(data)), "Docker-Content-Digest": digest}
            if digest in self.chunked and request.method == "GET":
                del headers["Content-Length"]
            resp = web.StreamResponse(headers=headers)
            await resp.prepare(request)
            if request.method == "HEAD":
                return resp
            half = len(data) // 2 if digest in self.gated else len(data)
            if digest in self.truncated:
                await resp.write(data[: len(data) // 2])
                assert request.transport is not None
                request.transport.abort()
                return resp
            await resp.write(data[:half])
            if half < len(data):
                await asyncio.to_thread(self.gate.wait, 60)
                await resp.write(data[half:])
            await resp.write_eof()
            return resp
        return _error(404, "UNSUPPORTED")

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            app = web.Application()
            app.router.add_route("*", "/v2/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", self.port)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}"
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()

        asyncio.run(main())

    def start(self) -> FakeUpstream:
        self._thread.start()
        assert self._ready.wait(30), "fake upstream did not start"
        return self

    def stop(self) -> None:
        self.gate.set()
        if self._thread.is_alive() and self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def _error(status: int, code: str) -> web.Response:
    body = json.dumps({"errors": [{"code": code, "message": code.lower()}]})
    return web.Response(status=status, text=body, content_type="application/json")
