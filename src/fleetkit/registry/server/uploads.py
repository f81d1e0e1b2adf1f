"""``/v2/<name>/blobs/uploads/``: POST (session, monolithic, mount), PATCH, PUT, GET, DELETE."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re

from aiohttp import web

from fleetkit.registry.auth.challenge import Scope
from fleetkit.registry.digest import parse_digest
from fleetkit.registry.errors import DigestInvalid, NameInvalid, RegistryAPIError, api_error
from fleetkit.registry.reference import validate_repository
from fleetkit.registry.server._common import (
    absolute,
    authorize,
    body_chunks,
    run_blocking,
    state,
    store_io,
)
from fleetkit.registry.storage.store import Upload, UploadWriter

__all__ = [
    "parse_content_range",
    "start_upload",
    "patch_upload",
    "put_upload",
    "get_upload",
    "delete_upload",
]

_CONTENT_RANGE_RE = re.compile(r"^(?:bytes[ =])?(\d{1,20})-(\d{1,20})(?:/(?:\d{1,20}|\*))?$")
_CHUNK = 1 << 20


def parse_content_range(header: str) -> tuple[int, int]:
    """``start-end`` (inclusive; ``bytes `` prefix and ``/total`` tolerated) or ValueError."""
    m = _CONTENT_RANGE_RE.match(header.strip())
    if not m:
        raise ValueError(f"invalid Content-Range {header[:80]!r}")
    start, end = int(m.group(1)), int(m.group(2))
    if end < start:
        raise ValueError(f"invalid Content-Range {header[:80]!r}")
    return start, end


def _range(size: int) -> str:
    # distribution's convention: inclusive end, "0-0" for an empty upload
    return f"0-{max(size - 1, 0)}"


def _sign_state(key: bytes, upload: Upload) -> str:
    """distribution's ``_state``: the session (name, uuid, offset, start) under an HMAC of
    http.secret, so any replica holding the same secret can check what a client sends back."""
    doc = {
        "Name": upload.repository,
        "UUID": upload.id,
        "Offset": upload.size,
        "StartedAt": upload.started_at,
    }
    payload = base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode())
    mac = base64.urlsafe_b64encode(hmac.new(key, payload, hashlib.sha256).digest())
    return (mac.rstrip(b"=") + b"." + payload.rstrip(b"=")).decode()


def check_state(key: bytes, token: str, name: str, upload_id: str) -> int:
    """The offset a valid ``_state`` vouches for; BLOB_UPLOAD_INVALID for anything else."""
    mac_b64, _, payload_b64 = token.partition(".")
    try:
        mac = base64.urlsafe_b64decode(mac_b64 + "=" * (-len(mac_b64) % 4))
        payload = payload_b64.encode()
        padded = payload + b"=" * (-len(payload) % 4)
        want = hmac.new(key, padded, hashlib.sha256).digest()
        if not hmac.compare_digest(mac, want):
            raise ValueError("bad mac")
        doc = json.loads(base64.urlsafe_b64decode(padded))
        if doc["Name"] != name or doc["UUID"] != upload_id:
            raise ValueError("another session")
        offset = int(doc["Offset"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise api_error("BLOB_UPLOAD_INVALID", "the upload state (_state) is invalid") from None
    return offset


def _verify_state(request: web.Request, name: str, upload_id: str) -> None:
    key = state(request).upload_state_key
    if key is None:
        return
    token = request.query.get("_state")
    if token is None:
        raise api_error("BLOB_UPLOAD_INVALID", "the upload URL lacks its _state")
    check_state(key, token, name, upload_id)


def _upload_headers(request: web.Request, upload: Upload) -> dict[str, str]:
    location = f"/v2/{upload.repository}/blobs/uploads/{upload.id}"
    key = state(request).upload_state_key
    if key is not None:
        location += "?_state=" + _sign_state(key, upload)
    return {
        "Location": absolute(request, location),
        "Range": _range(upload.size),
        "Docker-Upload-UUID": upload.id,
        "Blob-Upload-Session-ID": upload.id,
    }


def _created(request: web.Request, name: str, digest: str) -> web.Response:
    return web.Response(
        status=201,
        headers={
            "Location": absolute(request, f"/v2/{name}/blobs/{digest}"),
            "Docker-Content-Digest": digest,
            "Content-Length": "0",
        },
    )


async def _receive(request: web.Request, upload: Upload) -> None:
    st = state(request)
    writer = await run_blocking(UploadWriter, st.store, upload)
    st.metrics.uploads_in_progress += 1
    try:
        async for chunk in body_chunks(request, _CHUNK):
            await store_io(st, writer.write, chunk)  # S3: a segment PUT every 16 MiB
            st.metrics.bytes_received += len(chunk)
    finally:
        st.metrics.uploads_in_progress -= 1
        await store_io(st, writer.close)


# one digest per algorithm is all a client can mean; more is refused before any byte is hashed
MAX_DIGEST_PARAMS = 2


def _digests(request: web.Request) -> list[str]:
    """The ``digest`` parameters, validated and de-duplicated (at most one per algorithm)."""
    values = request.query.getall("digest", [])
    if len(values) > MAX_DIGEST_PARAMS:
        raise api_error(
            "DIGEST_INVALID", f"at most {MAX_DIGEST_PARAMS} digest parameters (one per algorithm)"
        )
    out: list[str] = []
    for value in values:
        parse_digest(value)
        if value not in out:
            out.append(value)
    return out


async def _finish(request: web.Request, upload: Upload, digests: list[str]) -> web.Response:
    st = state(request)
    try:
        await run_blocking(st.store.finish_upload, upload, *digests)
    except RegistryAPIError as exc:
        if exc.code == "DIGEST_INVALID":
            await run_blocking(st.store.cancel_upload, upload)
        raise
    return _created(request, upload.repository, digests[0])


def _mount_source(request: web.Request) -> Scope | None:
    """``repository:FROM:pull`` of a cross-repository mount request (None when not one)."""
    source, mount = request.query.get("from"), request.query.get("mount")
    if source is None or mount is None:
        return None
    try:
        parse_digest(mount)
        validate_repository(source)
    except (DigestInvalid, NameInvalid):
        return None
    return Scope("repository", source, frozenset({"pull"}))


async def start_upload(request: web.Request, name: str) -> web.Response:
    # a mount needs pull on its source too: the challenge names both scopes (as distribution's
    # does), so a client that follows challenges gets a token able to mount; a token without the
    # source's scope still pushes, by upload
    source_scope = _mount_source(request)
    await authorize(
        request, name, "pull,push", also_ask=[source_scope] if source_scope is not None else None
    )
    st = state(request)
    mount = request.query.get("mount")
    if mount is not None:
        try:
            parse_digest(mount)
        except DigestInvalid:
            mount = None
    if mount is not None:
        source = request.query.get("from")
        if source is not None:
            try:
                validate_repository(source)
            except NameInvalid:
                source = None
            if source is not None and st.authorizer.permits(
                request.headers.get("Authorization"),
                Scope("repository", source, frozenset({"pull"})),
            ):
                if st.store.repo_has_blob(source, mount) and st.store.blob_size(mount) is not None:
                    await run_blocking(st.store.link_blob, name, mount)
                    return _created(request, name, mount)
        elif st.store.blob_size(mount) is not None:
            # automatic content discovery: any repository this client may pull from
            auth = request.headers.get("Authorization")
            for repo in st.store.repositories_with_blob(mount):
                if st.authorizer.permits(auth, Scope("repository", repo, frozenset({"pull"}))):
                    await run_blocking(st.store.link_blob, name, mount)
                    return _created(request, name, mount)
    digests = _digests(request)
    upload = await run_blocking(st.store.start_upload, name)
    if digests:  # monolithic: POST ?digest= with the whole blob as body
        try:
            await _receive(request, upload)
            return await _finish(request, upload, digests)
        except BaseException:
            # the client never learnt this session's id: nobody can resume it, so drop it now
            # (a full disk, a client gone, a bad digest) rather than leave it to gc
            await asyncio.shield(run_blocking(st.store.cancel_upload, upload))
            raise
    return web.Response(status=202, headers=_upload_headers(request, upload))


async def _load(request: web.Request, name: str, upload_id: str) -> Upload:
    st = state(request)
    return await run_blocking(st.store.get_upload, name, upload_id)


async def patch_upload(request: web.Request, name: str, upload_id: str) -> web.Response:
    await authorize(request, name, "pull,push")
    st = state(request)
    st.store.check_upload_id(upload_id)
    _verify_state(request, name, upload_id)
    async with st.upload_lock(f"{name}/{upload_id}"):
        upload = await _load(request, name, upload_id)
        header = request.headers.get("Content-Range")
        if header is not None:
            try:
                start, end = parse_content_range(header)
            except ValueError:
                raise api_error("RANGE_INVALID", headers=_upload_headers(request, upload)) from None
            length = request.content_length
            if start != upload.size or (length is not None and length != end - start + 1):
                raise api_error(
                    "RANGE_INVALID",
                    f"chunk {start}-{end} does not continue the upload at {upload.size}",
                    headers=_upload_headers(request, upload),
                )
        await _receive(request, upload)
        return web.Response(status=202, headers=_upload_headers(request, upload))


async def put_upload(request: web.Request, name: str, upload_id: str) -> web.Response:
    await authorize(request, name, "pull,push")
    st = state(request)
    digests = _digests(request)
    if not digests:
        raise api_error("DIGEST_INVALID", "the digest parameter is required to finish an upload")
    st.store.check_upload_id(upload_id)
    _verify_state(request, name, upload_id)
    async with st.upload_lock(f"{name}/{upload_id}"):
        upload = await _load(request, name, upload_id)
        header = request.headers.get("Content-Range")
        if header is not None and request.content_length:
            try:
                start, _ = parse_content_range(header)
            except ValueError:
                raise api_error("RANGE_INVALID", headers=_upload_headers(request, upload)) from None
            if start != upload.size:
                raise api_error("RANGE_INVALID", headers=_upload_headers(request, upload))
        await _receive(request, upload)
        return await _finish(request, upload, digests)


async def get_upload(request: web.Request, name: str, upload_id: str) -> web.Response:
    await authorize(request, name, "pull")
    upload = await _load(request, name, upload_id)
    return web.Response(status=204, headers=_upload_headers(request, upload))


async def delete_upload(request: web.Request, name: str, upload_id: str) -> web.Response:
    await authorize(request, name, "pull,push")
    st = state(request)
    _verify_state(request, name, upload_id)
    upload = await _load(request, name, upload_id)
    await run_blocking(st.store.cancel_upload, upload)
    return web.Response(status=204, headers={"Content-Length": "0"})
