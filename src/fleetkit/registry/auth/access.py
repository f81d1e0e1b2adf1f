"""Request authorization for the three modes: none, htpasswd (Basic) and token (Bearer).

Each authorizer answers "may this request do these scopes?" with the user name (``""`` for
anonymous) or raises :class:`AuthFailure`, a wire error carrying the challenge headers the way
distribution sends them: ``401`` + ``WWW-Authenticate: Bearer realm=..,service=..,scope=..``
(with ``error="invalid_token"`` or ``"insufficient_scope"`` when a token was presented), or
``Basic realm=..``; ``403 DENIED`` for an authenticated user the policy refuses.
"""

from __future__ import annotations

from typing import Any, Protocol

from fleetkit.registry.auth.challenge import (
    Scope,
    basic_challenge,
    bearer_challenge,
    parse_authorization,
)
from fleetkit.registry.auth.policy import Policy
from fleetkit.registry.auth.tokens import InvalidToken, TokenVerifier
from fleetkit.registry.auth.users import Htpasswd
from fleetkit.registry.errors import RegistryAPIError

__all__ = [
    "AuthFailure",
    "Authorizer",
    "NoAuth",
    "HtpasswdAuthorizer",
    "TokenAuthorizer",
]


class AuthFailure(RegistryAPIError):
    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(message, code=code, detail=detail, headers=headers)


def _detail(scopes: list[Scope]) -> list[dict[str, object]]:
    return [
        {"Type": s.type, "Name": s.name, "Action": a} for s in scopes for a in sorted(s.actions)
    ]


class Authorizer(Protocol):
    mode: str

    def authorize(
        self,
        authorization: str | None,
        scopes: list[Scope],
        realm: str,
        also_ask: list[Scope] | None = None,
    ) -> str:
        """Return the user ('' = anonymous) or raise :class:`AuthFailure`.

        ``also_ask``: scopes not required here but named in a token challenge."""
        ...

    def permits(self, authorization: str | None, scope: Scope) -> bool: ...


class NoAuth:
    mode = "none"

    def authorize(
        self,
        authorization: str | None,
        scopes: list[Scope],
        realm: str,
        also_ask: list[Scope] | None = None,
    ) -> str:
        return ""

    def permits(self, authorization: str | None, scope: Scope) -> bool:
        return True


class HtpasswdAuthorizer:
    mode = "htpasswd"

    def __init__(self, users: Htpasswd, policy: Policy, realm: str = "fleetkit-registry") -> None:
        self.users = users
        self.policy = policy
        self.realm = realm

    def bad_credentials(self) -> AuthFailure:
        return AuthFailure(
            "UNAUTHORIZED",
            "invalid username or password",
            headers={"WWW-Authenticate": basic_challenge(self.realm)},
        )

    def _user(self, authorization: str | None) -> str | None:
        creds = parse_authorization(authorization)
        if creds is None or creds.scheme != "basic":
            return None
        if not self.users.check(creds.username, creds.password):
            raise self.bad_credentials()
        return creds.username

    def authorize(
        self,
        authorization: str | None,
        scopes: list[Scope],
        realm: str,
        also_ask: list[Scope] | None = None,
    ) -> str:
        user = self._user(authorization)
        challenge = {"WWW-Authenticate": basic_challenge(self.realm)}
        if not scopes and user is None:
            raise AuthFailure("UNAUTHORIZED", headers=challenge)
        for scope in scopes:
            granted = self.policy.grant(user, scope.type, scope.name, scope.actions)
            if "*" in granted or scope.actions <= granted:
                continue
            if user is None:
                raise AuthFailure("UNAUTHORIZED", headers=challenge, detail=_detail(scopes))
            raise AuthFailure("DENIED", detail=_detail([scope]))
        return user or ""

    def permits(self, authorization: str | None, scope: Scope) -> bool:
        try:
            self.authorize(authorization, [scope], "")
        except AuthFailure:
            return False
        return True


class TokenAuthorizer:
    mode = "token"

    def __init__(
        self,
        verifier: TokenVerifier,
        service: str,
        realm: str | None = None,
    ) -> None:
        self.verifier = verifier
        self.service = service
        self.realm = realm

    def authorize(
        self,
        authorization: str | None,
        scopes: list[Scope],
        realm: str,
        also_ask: list[Scope] | None = None,
    ) -> str:
        realm = self.realm or realm
        # the challenge names every scope the client should ask for; only ``scopes`` are required
        asked = scopes + [s for s in also_ask or [] if s not in scopes]
        creds = parse_authorization(authorization)
        if creds is None or creds.scheme != "bearer":
            raise AuthFailure(
                "UNAUTHORIZED",
                headers={"WWW-Authenticate": bearer_challenge(realm, self.service, asked)},
                detail=_detail(scopes) or None,
            )
        try:
            claims = self.verifier.verify(creds.token)
        except InvalidToken as exc:
            raise AuthFailure(
                "UNAUTHORIZED",
                f"authentication required: {exc.message}",
                headers={
                    "WWW-Authenticate": bearer_challenge(
                        realm, self.service, asked, "invalid_token"
                    )
                },
            ) from None
        for scope in scopes:
            if not claims.allows(scope):
                raise AuthFailure(
                    "UNAUTHORIZED",
                    "insufficient scope",
                    headers={
                        "WWW-Authenticate": bearer_challenge(
                            realm, self.service, asked, "insufficient_scope"
                        )
                    },
                    detail=_detail(scopes),
                )
        return claims.subject

    def permits(self, authorization: str | None, scope: Scope) -> bool:
        try:
            self.authorize(authorization, [scope], "")
        except AuthFailure:
            return False
        return True
