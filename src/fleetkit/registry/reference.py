"""Image references ``[registry[:port]/]repo[:tag][@digest]`` with Docker's defaults.

Grammar as distribution/reference defines it: path components ``[a-z0-9]+`` joined by ``.``,
``_``, ``__`` or runs of ``-``; a first component is a registry when it contains ``.`` or ``:``,
is ``localhost``, or has upper-case letters; the repository name is at most 255 characters.
Docker's defaults: registry ``docker.io``, ``library/`` for one-component names on Docker Hub,
tag ``latest`` when neither tag nor digest is given.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from fleetkit.errors import UsageError
from fleetkit.registry.digest import parse_digest
from fleetkit.registry.errors import DigestInvalid, NameInvalid

__all__ = [
    "DEFAULT_REGISTRY",
    "NAME_COMPONENT_RE",
    "REPOSITORY_RE",
    "TAG_RE",
    "Reference",
    "InvalidReference",
    "check_registry_host",
    "parse_reference",
    "validate_repository",
    "validate_tag",
    "is_insecure_default",
    "familiar_name",
]

DEFAULT_REGISTRY = "docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}
MAX_NAME_LENGTH = 255

NAME_COMPONENT_RE = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"^{NAME_COMPONENT_RE}(?:/{NAME_COMPONENT_RE})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", re.ASCII)
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$"
)


class InvalidReference(UsageError):
    """A reference that does not parse (exit 2)."""


@dataclass(frozen=True, slots=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/``: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def with_tag(self, tag: str | None) -> Reference:
        return Reference(self.registry, self.repository, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, self.tag, digest)


def validate_repository(name: str) -> None:
    """Raise :class:`NameInvalid` (wire NAME_INVALID) unless ``name`` is a valid repository."""
    if not name or len(name) > MAX_NAME_LENGTH or not REPOSITORY_RE.fullmatch(name):
        raise NameInvalid(f"invalid repository name {name!r}")


def validate_tag(tag: str) -> None:
    if not TAG_RE.fullmatch(tag):
        raise InvalidReference(
            f"invalid tag {tag!r}",
            hint="a tag is up to 128 of [A-Za-z0-9_.-], not starting with . or -",
        )


def _split_registry(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        return first, rest
    return DEFAULT_REGISTRY, name


def check_registry_host(registry: str, text: str | None = None, hint: str | None = None) -> None:
    """Raise :class:`InvalidReference` for a registry host that no URL can hold."""
    what = f"invalid reference {text!r}: " if text is not None else ""
    if registry != DEFAULT_REGISTRY and not _DOMAIN_RE.fullmatch(registry):
        raise InvalidReference(f"{what}invalid registry {registry!r}", hint=hint)
    port = registry.rpartition(":")[2] if not registry.endswith("]") else ""
    if port.isdigit() and int(port) > 65535:
        raise InvalidReference(
            f"{what}invalid port {port} in registry {registry!r}",
            hint=hint or "a port is 0..65535",
        )


def parse_reference(text: str, *, default_tag: str | None = "latest") -> Reference:
    """Parse ``text`` with Docker's defaults; raise :class:`InvalidReference` (exit 2)."""
    hint = "expected [registry[:port]/]repository[:tag][@digest], e.g. 127.0.0.1:5000/nginx/ingress:v1.0.0"
    raw = text.strip()
    if not raw or raw != text or any(c.isspace() for c in raw):
        raise InvalidReference(f"invalid reference format: {text!r}", hint=hint)
    digest: str | None = None
    if "@" in raw:
        raw, _, digest = raw.partition("@")
        try:
            parse_digest(digest)
        except DigestInvalid as exc:
            raise InvalidReference(
                f"invalid reference {text!r}: {exc.message}", hint=hint
            ) from None
    tag: str | None = None
    slash = raw.rfind("/")
    colon = raw.rfind(":")
    if colon > slash:
        raw, tag = raw[:colon], raw[colon + 1 :]
        if not TAG_RE.fullmatch(tag):
            raise InvalidReference(f"invalid reference {text!r}: invalid tag {tag!r}", hint=hint)
    registry, repository = _split_registry(raw)
    check_registry_host(registry, text, hint)
    if registry in _HUB_ALIASES:
        registry = DEFAULT_REGISTRY
        if "/" not in repository:
            repository = f"library/{repository}"
    if repository.lower() != repository and REPOSITORY_RE.fullmatch(repository.lower()):
        raise InvalidReference(
            f"invalid reference {text!r}: repository name must be lowercase", hint=hint
        )
    if (
        not repository
        or len(repository) > MAX_NAME_LENGTH
        or not REPOSITORY_RE.fullmatch(repository)
    ):
        raise InvalidReference(f"invalid reference {text!r}: invalid repository name", hint=hint)
    if tag is None and digest is None:
        tag = default_tag
    return Reference(registry, repository, tag, digest)


def is_insecure_default(registry: str) -> bool:
    """True when docker would use plain HTTP without a flag: localhost and 127.0.0.0/8 (and ::1)."""
    host = registry
    if host.startswith("["):
        host = host[1 : host.find("]")]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def familiar_name(ref: Reference) -> str:
    """The short name docker shows: ``nginx:latest`` for ``docker.io/library/nginx:latest``."""
    name = f"{ref.registry}/{ref.repository}"
    if ref.registry == DEFAULT_REGISTRY:
        name = ref.repository.removeprefix("library/")
    if ref.tag:
        name += f":{ref.tag}"
    if ref.digest:
        name += f"@{ref.digest}"
    return name
