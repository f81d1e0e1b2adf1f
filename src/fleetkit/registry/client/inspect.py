"""``inspect``: skopeo inspect's JSON for an image in any transport, or its raw manifest/config.

The document has skopeo's keys and meanings as skopeo 1.9 (Debian 12's, the peer the tests
compare with) prints them: ``Name``, ``Digest``, ``RepoTags``, ``Created`` (null when the config
has none), ``DockerVersion``, ``Labels``, ``Architecture``, ``Os``, ``Layers``, ``Env``; newer skopeo adds
``Variant`` and ``LayersData``. ``Digest`` is the digest of the manifest
the reference names (an index's, for a multi-platform image); the other fields come from the
image chosen for ``platform`` (default: this machine). ``RepoTags`` lists the repository's tags
for ``docker://`` (empty elsewhere, or with ``no_tags``). ``render`` indents by four spaces, as
skopeo's ``json.MarshalIndent`` does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetkit.registry.client.copy import ImageName, open_image, parse_image_name
from fleetkit.registry.client.credentials import Credential
from fleetkit.registry.client.errors import VerificationError
from fleetkit.registry.client.events import TraceSink
from fleetkit.registry.client.image import Manifest, Platform, select_platform
from fleetkit.registry.client.pull import MAX_INDEX_DEPTH
from fleetkit.registry.client.remote import Remote
from fleetkit.registry.client.transport import RetryPolicy, connect
from fleetkit.registry.digest import digest_bytes, parse_digest

__all__ = ["Inspection", "inspect", "inspect_async", "render", "image_info"]

_CONFIG_LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Inspection:
    raw_manifest: bytes  # the top manifest, as stored
    raw_config: bytes  # the chosen image's config blob, as stored
    info: dict[str, Any]  # skopeo inspect's document


def image_info(
    name: str | None,
    top: Manifest,
    image: Manifest,
    config_raw: bytes,
    tags: list[str],
) -> dict[str, Any]:
    """skopeo inspect's document (``types.ImageInspectOutput``) for one image."""
    try:
        config = json.loads(config_raw)
    except ValueError:
        raise VerificationError(f"config of {image.digest} is not valid JSON") from None
    if not isinstance(config, dict):
        raise VerificationError(f"config of {image.digest} is not a JSON object")
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    assert isinstance(inner, dict)
    layers = image.layers()
    doc: dict[str, Any] = {}
    if name:
        doc["Name"] = name
    doc["Digest"] = top.digest
    doc["RepoTags"] = tags
    doc["Created"] = config.get("created") or None
    doc["DockerVersion"] = str(config.get("docker_version", ""))
    doc["Labels"] = inner.get("Labels") or None
    doc["Architecture"] = str(config.get("architecture", ""))
    doc["Os"] = str(config.get("os", ""))
    doc["Layers"] = [d.digest for d in layers]
    doc["Env"] = inner.get("Env") or None
    return doc


def render(doc: Any) -> str:
    return json.dumps(doc, indent=4)


async def inspect_async(
    image: str | ImageName,
    *,
    platform: str | Platform | None = None,
    no_tags: bool = False,
    tls_verify: bool = True,
    credential: Credential | None = None,
    config_path: str | Path | None = None,
    retry: RetryPolicy | None = None,
    trace: TraceSink | None = None,
    notify: Callable[[str], None] | None = None,
) -> Inspection:
    name = parse_image_name(image) if isinstance(image, str) else image
    wanted = (
        Platform.parse(platform) if isinstance(platform, str) else (platform or Platform.host())
    )
    if name.reference is None:
        return await asyncio.to_thread(_inspect_local, name, wanted)
    ref = name.reference
    async with connect(
        ref.registry,
        credential=credential,
        config_path=config_path,
        tls_verify=tls_verify,
        retry=retry,
        trace=trace,
        notify=notify,
    ) as t:
        remote = Remote(t, ref.repository)
        top = await remote.get_manifest(ref.identifier, expect_digest=ref.digest)
        image_m = top
        for _depth in range(MAX_INDEX_DEPTH + 1):
            if not image_m.is_index:
                break
            child = select_platform(image_m, wanted)
            image_m = await remote.get_manifest(child.digest, expect_digest=child.digest)
        else:
            raise VerificationError(f"index {top.digest} is nested too deeply")
        config_raw = await remote.get_blob(image_m.config(), _CONFIG_LIMIT)
        tags = [] if no_tags else await remote.list_tags()
    repo_name = f"{ref.registry}/{ref.repository}"
    return Inspection(top.raw, config_raw, image_info(repo_name, top, image_m, config_raw, tags))


def _inspect_local(name: ImageName, wanted: Platform) -> Inspection:
    src = open_image(name)
    try:
        top = src.top()
        image_m = top
        for _depth in range(MAX_INDEX_DEPTH + 1):
            if not image_m.is_index:
                break
            image_m = src.manifest(select_platform(image_m, wanted))
        else:
            raise VerificationError(f"index {top.digest} is nested too deeply")
        config = image_m.config()
        with src.open_blob(config.digest) as fh:
            config_raw = fh.read(_CONFIG_LIMIT + 1)
        if len(config_raw) > _CONFIG_LIMIT:
            raise VerificationError(f"config {config.digest} is too large")
        if digest_bytes(config_raw, parse_digest(config.digest).algorithm) != config.digest:
            raise VerificationError(f"config {config.digest}: content does not match its digest")
    finally:
        src.close()
    return Inspection(top.raw, config_raw, image_info(None, top, image_m, config_raw, []))


def inspect(image: str | ImageName, **kwargs: Any) -> Inspection:
    """Synchronous :func:`inspect_async`."""
    return asyncio.run(inspect_async(image, **kwargs))
