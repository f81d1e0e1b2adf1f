"""``/v2/<name>/manifests/<reference>``: GET/HEAD with content negotiation, PUT, DELETE."""

from __future__ import annotations

from aiohttp import web

from fleetkit.registry import mediatypes as mt
from fleetkit.registry.digest import Hasher, is_digest, parse_digest
from fleetkit.registry.errors import api_error
from fleetkit.registry.manifest import MAX_MANIFEST_BYTES, Manifest, parse_manifest
from fleetkit.registry.reference import TAG_RE
from fleetkit.registry.server._common import (
    absolute,
    authorize,
    body_chunks,
    run_blocking,
    state,
    store_io,
)
from fleetkit.registry.storage.store import RegistryStore, RevisionInfo

__all__ = [
    "parse_accept",
    "acceptable",
    "get_manifest",
    "put_manifest",
    "delete_manifest",
    "MAX_ACCEPT_TYPES",
]

# A client lists a handful of manifest types (dockerd sends 4, skopeo 6); the rest of a longer
# list is ignored, so an Accept header costs time linear in its size and at most this much memory.
MAX_ACCEPT_TYPES = 64


def parse_accept(values: list[str]) -> list[str]:
    """Merge several ``Accept`` header lines into media types (parameters and q dropped).

    Linear in the header's size; de-duplicated; the first :data:`MAX_ACCEPT_TYPES` kept.
    """
    seen: dict[str, None] = {}
    for value in values:
        for part in value.split(","):
            media = part.split(";", 1)[0].strip().lower()
            if media and media not in seen:
                seen[media] = None
                if len(seen) >= MAX_ACCEPT_TYPES:
                    return list(seen)
    return list(seen)


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
    await authorize(request, name, "pull")
    st = state(request)
    info = await store_io(st, _resolve, request, name, reference)
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
    body = await run_blocking(st.store.read_blob, info.digest)  # up to 4 MiB: not on the loop
    st.metrics.bytes_sent += len(body)
    resp2 = web.Response(body=body, status=200, headers=headers)
    return resp2


MAX_TAG_PARAMS = 100


def _validate(
    store: RegistryStore, name: str, reference: str, body: bytes, content_type: str | None
) -> tuple[Manifest, str]:
    """Parse ``body``, check it against a digest reference and check everything it names exists
    in ``name``; return the manifest and the digest algorithm to store it under."""
    manifest = parse_manifest(body, content_type)
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
    missing: list[str] = []
    for desc in manifest.blob_references():
        if not store.repo_has_blob(name, desc.digest) or store.blob_size(desc.digest) is None:
            missing.append(desc.digest)
    for child in manifest.manifests:
        if store.revision(name, child.digest) is None:
            missing.append(child.digest)
    if missing:
        raise api_error("MANIFEST_BLOB_UNKNOWN", detail={"digest": missing[0], "missing": missing})
    return manifest, algorithm


async def put_manifest(request: web.Request, name: str, reference: str) -> web.Response:
    await authorize(request, name, "pull,push")
    st = state(request)
    _check_reference(reference)
    if request.content_length is not None and request.content_length > MAX_MANIFEST_BYTES:
        raise api_error(
            "MANIFEST_TOO_BIG",
            f"manifest is {request.content_length} bytes, the limit is {MAX_MANIFEST_BYTES}",
        )
    data = bytearray()
    async for chunk in body_chunks(request, 1 << 16):
        data += chunk
        if len(data) > MAX_MANIFEST_BYTES:
            raise api_error("MANIFEST_TOO_BIG", f"manifest exceeds {MAX_MANIFEST_BYTES} bytes")
    body = bytes(data)
    tags: list[str] = []
    if is_digest(reference):
        values = request.query.getall("tag", [])
        if len(values) > MAX_TAG_PARAMS:
            raise api_error("TAG_INVALID", f"at most {MAX_TAG_PARAMS} tag parameters")
        for tag in values:
            if not tag.isascii() or not TAG_RE.fullmatch(tag):
                raise api_error("TAG_INVALID", f"invalid tag {tag[:140]!r}")
            if tag not in tags:
                tags.append(tag)
    else:
        tags.append(reference)
    # parsing, hashing and the per-descriptor existence checks of a 4 MiB index take a while:
    # they run in a worker thread, never on the event loop
    manifest, algorithm = await run_blocking(
        _validate, st.store, name, reference, body, request.headers.get("Content-Type")
    )
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
    await authorize(request, name, "delete")
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
