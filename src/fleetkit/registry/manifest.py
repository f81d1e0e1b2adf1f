"""Manifests and indexes as the server sees them: parse, validate, list what they reference.

Only what the registry needs: the media type (body field vs ``Content-Type``), the descriptors a
manifest points at (config, layers, child manifests, subject) and the fields the referrers API
reports (``artifactType``, ``annotations``). Errors are the wire's MANIFEST_INVALID.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fleetkit.registry import mediatypes as mt
from fleetkit.registry.digest import parse_digest
from fleetkit.registry.errors import DigestInvalid, RegistryAPIError

__all__ = ["Descriptor", "Manifest", "ManifestInvalid", "parse_manifest", "MAX_MANIFEST_BYTES"]

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


class ManifestInvalid(RegistryAPIError):
    code = "MANIFEST_INVALID"


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    urls: tuple[str, ...] = ()
    platform: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        if self.urls:
            out["urls"] = list(self.urls)
        if self.platform:
            out["platform"] = self.platform
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    config: Descriptor | None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEX_TYPES

    def effective_artifact_type(self) -> str | None:
        """What the referrers API reports: ``artifactType``, else the config's media type."""
        if self.artifact_type:
            return self.artifact_type
        if self.config is not None and not self.is_index:
            return self.config.media_type
        return None

    def blob_references(self) -> list[Descriptor]:
        """Config and layers that must exist as blobs (foreign layers with urls excepted)."""
        out = [self.config] if self.config is not None else []
        out += [d for d in self.layers if not d.urls]
        return out


def _descriptor(obj: Any, where: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise ManifestInvalid(f"{where}: descriptor must be an object")
    media_type = obj.get("mediaType")
    digest = obj.get("digest")
    size = obj.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise ManifestInvalid(f"{where}: mediaType must be a non-empty string")
    if not isinstance(digest, str):
        raise ManifestInvalid(f"{where}: digest must be a string")
    try:
        parse_digest(digest)
    except DigestInvalid as exc:
        raise ManifestInvalid(f"{where}: {exc.message}") from None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ManifestInvalid(f"{where}: size must be a non-negative integer")
    artifact_type = obj.get("artifactType")
    annotations = obj.get("annotations")
    urls = obj.get("urls") or []
    platform = obj.get("platform")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid(f"{where}: artifactType must be a string")
    if annotations is not None and not (
        isinstance(annotations, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items())
    ):
        raise ManifestInvalid(f"{where}: annotations must map strings to strings")
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise ManifestInvalid(f"{where}: urls must be a list of strings")
    if platform is not None and not isinstance(platform, dict):
        raise ManifestInvalid(f"{where}: platform must be an object")
    return Descriptor(media_type, digest, size, artifact_type, annotations, tuple(urls), platform)


def parse_manifest(data: bytes, content_type: str | None = None) -> Manifest:
    """Parse a manifest body; ``content_type`` is the request's (parameters stripped).

    The body's ``mediaType`` wins when present and must then agree with ``content_type``; an
    OCI manifest may omit it, in which case ``content_type`` decides, and without either the
    shape decides (``manifests`` -> OCI index, else OCI manifest).
    """
    if len(data) > MAX_MANIFEST_BYTES:
        raise RegistryAPIError(
            f"manifest is {len(data)} bytes, the limit is {MAX_MANIFEST_BYTES}",
            code="MANIFEST_TOO_BIG",
        )
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestInvalid(f"manifest is not JSON: {exc}") from None
    except RecursionError:
        raise ManifestInvalid("manifest JSON is nested too deeply") from None
    if not isinstance(doc, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    ctype = (content_type or "").split(";", 1)[0].strip().lower() or None
    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise ManifestInvalid("mediaType must be a string")
    if body_type and ctype and ctype in mt.MANIFEST_TYPES and body_type != ctype:
        raise ManifestInvalid(f"mediaType {body_type!r} does not match Content-Type {ctype!r}")
    media_type = body_type or (ctype if ctype in mt.MANIFEST_TYPES else None)
    if media_type is None:
        media_type = mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
    if media_type not in mt.MANIFEST_TYPES:
        raise ManifestInvalid(f"unsupported manifest media type {media_type!r}")
    if doc.get("schemaVersion") != 2:
        raise ManifestInvalid("schemaVersion must be 2")
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid("artifactType must be a string")
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise ManifestInvalid("annotations must map strings to strings")
    subject = _descriptor(doc["subject"], "subject") if doc.get("subject") is not None else None
    if media_type in mt.INDEX_TYPES:
        children = doc.get("manifests")
        if not isinstance(children, list):
            raise ManifestInvalid("an index needs a manifests list")
        return Manifest(
            media_type,
            None,
            manifests=tuple(_descriptor(c, f"manifests[{i}]") for i, c in enumerate(children)),
            subject=subject,
            artifact_type=artifact_type,
            annotations=annotations,
        )
    if "config" not in doc:
        raise ManifestInvalid("an image manifest needs a config descriptor")
    config = _descriptor(doc["config"], "config")
    layers = doc.get("layers", [])
    if not isinstance(layers, list):
        raise ManifestInvalid("layers must be a list")
    return Manifest(
        media_type,
        config,
        layers=tuple(_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(layers)),
        subject=subject,
        artifact_type=artifact_type,
        annotations=annotations,
    )
