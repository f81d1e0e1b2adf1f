"""``/v2/<name>/referrers/<digest>``: an OCI index of the manifests whose subject is digest."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fleetkit.registry import mediatypes as mt
from fleetkit.registry.digest import parse_digest
from fleetkit.registry.errors import RegistryAPIError
from fleetkit.registry.manifest import parse_manifest
from fleetkit.registry.server._common import authorize, json_response, state
from fleetkit.registry.storage.base import PathNotFound

__all__ = ["list_referrers"]


async def list_referrers(request: web.Request, name: str, digest: str) -> web.Response:
    await authorize(request, name, "pull")
    st = state(request)
    parse_digest(digest)
    wanted = request.query.get("artifactType")
    descriptors: list[dict[str, Any]] = []
    for ref in st.store.referrers(name, digest):
        info = st.store.revision(name, ref)
        if info is None:
            continue
        try:
            manifest = parse_manifest(st.store.read_blob(ref), info.media_type)
        except (PathNotFound, RegistryAPIError):
            continue
        artifact_type = manifest.effective_artifact_type()
        if wanted is not None and artifact_type != wanted:
            continue
        desc: dict[str, Any] = {"mediaType": info.media_type, "digest": ref, "size": info.size}
        if artifact_type:
            desc["artifactType"] = artifact_type
        if manifest.annotations:
            desc["annotations"] = manifest.annotations
        descriptors.append(desc)
    headers = {"OCI-Filters-Applied": "artifactType"} if wanted is not None else {}
    return json_response(
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": descriptors},
        headers=headers,
        content_type=mt.OCI_INDEX,
    )
