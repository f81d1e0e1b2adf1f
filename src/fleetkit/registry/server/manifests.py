"""``/v2/<name>/manifests/<reference>``: GET/HEAD with content negotiation, PUT, DELETE."""

from __future__ import annotations

from aiohttp import web

from fleetkit.registry import mediatypes as mt
from fleetkit.registry.digest import Hasher, is_digest, parse_digest
from fleetkit.registry.errors import RegistryAPIError, api_error
from fleetkit.registry.manifest import MAX_MANIFEST_BYTES, parse_manifest
from fleetkit.registry.reference import TAG_RE
from fleetkit.registry.server._common import absolute, authorize, run_blocking, state
from fleetkit.registry.storage.store import RevisionInfo

__all__ = ["parse_accept", "acceptable", "get_manifest", "put_manifest", "delete_manifest"]


def parse_accept(values: list[str]) -> list[str]:
    """Merge several ``Accept`` header lines into media types (parameters and q dropped)."""
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            media = part.split(";", 1)[0].strip().lower()
            if media and media not in out:
                out.append(media)
    return out


def acceptable(stored: str, accepted: list[str]) -> bool:
    """No Accept (or a wildcard) takes anything; otherwise the stored type must be listed.

    A client that lists no manifest type at all (``application/json`` only, say) is served the
    stored type, as distribution does for schema 2 manifests.
    """
    if not accepted or "*/*" in accepted or "application/*" in accepted:
        return True
    if stored in accepted:
        return True
    return not any(a in mt.MANIFEST_TYPES for a in accepted)


def _check_reference(reference: str) -> None:
    if ":" in reference:
        parse_digest(reference)
    elif not reference.isascii() or not TAG_RE.fullmatch(reference):
        raise api_error("TAG_INVALID", f"invalid tag {reference[:140]!r}")


def _resolve(request: web.Request, name: str, reference: str) -> RevisionInfo:
    st = state(request)
    _check_reference(reference)
    digest = reference if is_digest(reference) else st.store.resolve_tag(name, reference)
    info = st.store.revision(name, digest) if digest is not None else None
    if info is None:
        if not st.store.repository_exists(name):
            raise api_error("NAME_UNKNOWN", detail={"name": name})
        raise api_error(
            "MANIFEST_UNKNOWN", detail={"tag" if ":" not in reference else "digest": reference}
        )
    return info


async def get_manifest(request: web.Request, name: str, reference: str) -> web.Response:
    authorize(request, name, "pull")
    st = state(request)
    info = _resolve(request, name, reference)
    accepted = parse_accept(request.headers.getall("Accept", []))
    if not acceptable(info.media_type, accepted):
        raise api_error(
            "MANIFEST_UNKNOWN",
            f"manifest is {info.media_type}, which the Accept header does not list",
            detail={"mediaType": info.media_type, "accept": accepted},
        )
    headers = {
        "Docker-Content-Digest": info.digest,
        "Etag": f'"{info.digest}"',
        "Content-Type": info.media_type,
        "Content-Length": str(info.size),
    }
    inm = request.headers.get("If-None-Match", "")
    if inm and any(t.strip() in (f'"{info.digest}"', info.digest, "*") for t in inm.split(",")):
        del headers["Content-Length"]
        return web.Response(status=304, headers=headers)
    if request.method == "HEAD":
        resp = web.StreamResponse(status=200, headers=headers)
        await resp.prepare(request)
        return resp  # type: ignore[return-value]
    body = st.store.read_blob(info.digest)
    st.metrics.bytes_sent += len(body)
    resp2 = web.Response(body=body, status=200, headers=headers)
    return resp2


async def put_manifest(request: web.Request, name: str, reference: str) -> web.Response:
    authorize(request, name, "pull,push")
    st = state(request)
    _check_reference(reference)
    if request.content_length is not None and request.content_length > MAX_MANIFEST_BYTES:
        raise api_error(
            "MANIFEST_TOO_BIG",
            f"manifest is {request.content_length} bytes, the limit is {MAX_MANIFEST_BYTES}",
        )
    data = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        data += chunk
        if len(data) > MAX_MANIFEST_BYTES:
            raise api_error("MANIFEST_TOO_BIG", f"manifest exceeds {MAX_MANIFEST_BYTES} bytes")
    body = bytes(data)
    manifest = parse_manifest(body, request.headers.get("Content-Type"))
    algorithm = "sha256"
    if is_digest(reference):
        algorithm = parse_digest(reference).algorithm
        h = Hasher(algorithm)
        h.update(body)
        if h.digest() != reference:
            raise api_error(
                "DIGEST_INVALID",
                "manifest digest does not match the reference",
                detail={"expected": reference, "actual": h.digest()},
            )
    missing: list[RegistryAPIError] = []
    for desc in manifest.blob_references():
        if not st.store.repo_has_blob(name, desc.digest) or st.store.blob_size(desc.digest) is None:
            missing.append(api_error("MANIFEST_BLOB_UNKNOWN", detail={"digest": desc.digest}))
    for child in manifest.manifests:
        if st.store.revision(name, child.digest) is None:
            missing.append(api_error("MANIFEST_BLOB_UNKNOWN", detail={"digest": child.digest}))
    if missing:
        first = missing[0]
        first.detail = {
            "digest": first.detail["digest"],
            "missing": [m.detail["digest"] for m in missing],
        }
        raise first
    tags: list[str] = []
    if is_digest(reference):
        for tag in request.query.getall("tag", []):
            if not tag.isascii() or not TAG_RE.fullmatch(tag):
                raise api_error("TAG_INVALID", f"invalid tag {tag[:140]!r}")
            tags.append(tag)
    else:
        tags.append(reference)
    digest = await run_blocking(st.store.put_manifest, name, body, manifest, tags, algorithm)
    headers = {
        "Location": absolute(request, f"/v2/{name}/manifests/{digest}"),
        "Docker-Content-Digest": digest,
        "Content-Length": "0",
    }
    if manifest.subject is not None:
        headers["OCI-Subject"] = manifest.subject.digest
    if tags and is_digest(reference):
        headers["OCI-Tag"] = ", ".join(tags)
    return web.Response(status=201, headers=headers)


async def delete_manifest(request: web.Request, name: str, reference: str) -> web.Response:
    authorize(request, name, "delete")
    st = state(request)
    _check_reference(reference)
    if not st.delete_enabled:
        raise api_error("UNSUPPORTED", "deletes are disabled on this registry")
    if is_digest(reference):
        ok = await run_blocking(st.store.delete_manifest, name, reference)
    else:
        ok = await run_blocking(st.store.delete_tag, name, reference)
    if not ok:
        raise api_error("MANIFEST_UNKNOWN", detail={"reference": reference})
    return web.Response(status=202, headers={"Content-Length": "0"})
