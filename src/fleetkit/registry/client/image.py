"""Descriptors, manifests and platforms as the client sees them (OCI and Docker v2 schema 2)."""

from __future__ import annotations

import json
import platform as _platform
from dataclasses import dataclass, field
from typing import Any

from fleetkit.errors import UsageError
from fleetkit.registry import mediatypes as mt
from fleetkit.registry.client.errors import PlatformNotFound, VerificationError
from fleetkit.registry.client.events import printable
from fleetkit.registry.digest import Hasher, parse_digest
from fleetkit.registry.errors import DigestInvalid

__all__ = ["Platform", "Descriptor", "Manifest", "select_platform", "MAX_MANIFEST_BYTES"]

MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # distribution's limit

_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "i386": "386",
    "i686": "386",
}


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise UsageError(
                f"invalid platform {text!r}", hint="expected os/arch[/variant], e.g. linux/arm64/v8"
            )
        return cls(
            *_normalize(parts[0].lower(), parts[1].lower(), parts[2] if len(parts) == 3 else "")
        )

    @classmethod
    def host(cls) -> Platform:
        machine = _platform.machine().lower()
        os_name = _platform.system().lower() or "linux"
        variant = ""
        if machine.startswith("armv"):
            variant, machine = machine[3:5].rstrip("l"), "arm"
        return cls(*_normalize(os_name, machine, variant))

    @classmethod
    def from_json(cls, doc: Any) -> Platform | None:
        if not isinstance(doc, dict):
            return None
        return cls(
            *_normalize(
                str(doc.get("os", "")),
                str(doc.get("architecture", "")),
                str(doc.get("variant", "")),
            )
        )

    def matches(self, other: Platform) -> bool:
        """``self`` is what was asked for; an empty variant accepts any."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        return not self.variant or self.variant == other.variant


def _normalize(os_name: str, arch: str, variant: str) -> tuple[str, str, str]:
    arch = _ARCH_ALIASES.get(arch, arch)
    if arch == "arm64" and variant in ("", "8"):
        variant = "v8" if variant else ""
    if arch == "arm" and variant in ("7", "6", "5"):
        variant = "v" + variant
    return os_name, arch, variant


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    doc: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, doc: Any, where: str) -> Descriptor:
        if not isinstance(doc, dict):
            raise VerificationError(f"{where}: descriptor is not an object")
        digest, size = doc.get("digest"), doc.get("size")
        try:
            parse_digest(str(digest))
        except DigestInvalid:
            raise VerificationError(f"{where}: invalid digest {digest!r}") from None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise VerificationError(f"{where}: invalid size {size!r} for {digest}")
        return cls(
            str(doc.get("mediaType", "")),
            str(digest),
            size,
            Platform.from_json(doc.get("platform")),
            dict(doc),
        )

    def to_json(self) -> dict[str, Any]:
        out = dict(self.doc) if self.doc else {}
        out.update({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest or index exactly as the registry sent it, digest verified."""

    raw: bytes
    media_type: str
    digest: str
    doc: dict[str, Any] = field(compare=False, repr=False)

    @classmethod
    def parse(
        cls, raw: bytes, content_type: str, *, where: str, algorithm: str = "sha256"
    ) -> Manifest:
        try:
            doc = json.loads(raw)
        except ValueError:
            raise VerificationError(f"{where}: the manifest is not valid JSON") from None
        if not isinstance(doc, dict):
            raise VerificationError(f"{where}: the manifest is not a JSON object")
        media_type = content_type.split(";")[0].strip()
        if media_type not in mt.MANIFEST_TYPES:
            media_type = str(doc.get("mediaType") or "")
            if not media_type:
                media_type = mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
        if media_type not in mt.MANIFEST_TYPES:
            raise VerificationError(
                f"{where}: unsupported manifest media type {media_type!r}",
                hint="fleetkit handles OCI and Docker v2 schema 2 manifests and indexes",
            )
        h = Hasher(algorithm)
        h.update(raw)
        return cls(raw, media_type, h.digest(), doc)

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEX_TYPES

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))

    def children(self) -> list[Descriptor]:
        items = self.doc.get("manifests")
        if not isinstance(items, list):
            raise VerificationError(f"index {self.digest}: 'manifests' is not a list")
        return [Descriptor.from_json(d, f"index {self.digest}") for d in items]

    def config(self) -> Descriptor:
        return Descriptor.from_json(self.doc.get("config"), f"manifest {self.digest} config")

    def layers(self) -> list[Descriptor]:
        items = self.doc.get("layers")
        if not isinstance(items, list):
            raise VerificationError(f"manifest {self.digest}: 'layers' is not a list")
        return [Descriptor.from_json(d, f"manifest {self.digest} layer") for d in items]


def select_platform(index: Manifest, wanted: Platform) -> Descriptor:
    """The first image manifest in ``index`` whose platform matches ``wanted``."""
    children = index.children()
    for child in children:
        if child.platform is not None and wanted.matches(child.platform):
            return child
    available = sorted({printable(str(c.platform)) for c in children if c.platform is not None})
    raise PlatformNotFound(
        f"no manifest for platform {wanted} in index {index.digest}",
        hint="available: "
        + (", ".join(available) or "none")
        + "; choose one with --platform or use --all-platforms",
    )
