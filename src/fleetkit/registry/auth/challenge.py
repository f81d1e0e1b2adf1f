"""Scopes and ``WWW-Authenticate`` challenges as distribution speaks them.

A scope is ``type:name:actions`` (``repository:nginx/ingress:pull,push``,
``registry:catalog:*``); the name may itself contain ``:`` so the type ends at the first colon
and the actions start after the last one.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

__all__ = [
    "Scope",
    "parse_scope",
    "parse_scopes",
    "format_scopes",
    "bearer_challenge",
    "basic_challenge",
    "parse_authorization",
    "Credentials",
]


@dataclass(frozen=True, slots=True)
class Scope:
    type: str
    name: str
    actions: frozenset[str]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"

    def to_claim(self) -> dict[str, object]:
        return {"type": self.type, "name": self.name, "actions": sorted(self.actions)}


def parse_scope(text: str) -> Scope | None:
    """Parse one scope; ``None`` when it is not ``type:name:actions``."""
    first = text.find(":")
    last = text.rfind(":")
    if first <= 0 or last == first:
        return None
    type_, name, actions = text[:first], text[first + 1 : last], text[last + 1 :]
    if not name:
        return None
    acts = frozenset(a for a in actions.split(",") if a)
    return Scope(type_, name, acts)


def parse_scopes(values: list[str]) -> list[Scope]:
    """Repeated ``scope`` parameters, each possibly space-separated (OAuth2 form); merged by
    (type, name) with their actions united, in first-seen order."""
    merged: dict[tuple[str, str], set[str]] = {}
    for value in values:
        for part in value.split():
            scope = parse_scope(part)
            if scope is None:
                continue
            merged.setdefault((scope.type, scope.name), set()).update(scope.actions)
    return [Scope(t, n, frozenset(a)) for (t, n), a in merged.items()]


def format_scopes(scopes: list[Scope]) -> str:
    return " ".join(str(s) for s in scopes)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bearer_challenge(
    realm: str, service: str, scopes: list[Scope] | None = None, error: str | None = None
) -> str:
    parts = [f"realm={_quote(realm)}", f"service={_quote(service)}"]
    if scopes:
        parts.append(f"scope={_quote(format_scopes(scopes))}")
    if error:
        parts.append(f"error={_quote(error)}")
    return "Bearer " + ",".join(parts)


def basic_challenge(realm: str) -> str:
    return f"Basic realm={_quote(realm)}"


@dataclass(frozen=True, slots=True)
class Credentials:
    scheme: str  # "basic" | "bearer"
    username: str = ""
    password: str = ""
    token: str = ""

    def __repr__(self) -> str:  # never show secrets
        return f"Credentials(scheme={self.scheme!r}, username={self.username!r})"


def parse_authorization(header: str | None) -> Credentials | None:
    """Parse ``Authorization``; ``None`` when absent or unusable."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    rest = rest.strip()
    if scheme.lower() == "basic":
        try:
            raw = base64.b64decode(rest, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        user, sep, password = raw.partition(":")
        if not sep:
            return None
        return Credentials("basic", username=user, password=password)
    if scheme.lower() == "bearer" and rest:
        return Credentials("bearer", token=rest)
    return None
