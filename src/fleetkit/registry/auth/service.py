"""The token service's logic (HTTP lives in server/token.py): who is asking, what they get."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

from fleetkit.registry.auth.challenge import Scope
from fleetkit.registry.auth.policy import Policy
from fleetkit.registry.auth.tokens import SigningKey
from fleetkit.registry.auth.users import Htpasswd

__all__ = ["TokenService", "TokenGrant"]


@dataclass(frozen=True, slots=True)
class TokenGrant:
    token: str
    expires_in_s: int
    issued_at: int
    access: tuple[Scope, ...]
    refresh_token: str | None = None

    def issued_at_rfc3339(self) -> str:
        return (
            _dt.datetime.fromtimestamp(self.issued_at, _dt.UTC).isoformat().replace("+00:00", "Z")
        )

    def docker_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "token": self.token,
            "access_token": self.token,
            "expires_in": self.expires_in_s,
            "issued_at": self.issued_at_rfc3339(),
        }
        if self.refresh_token:
            out["refresh_token"] = self.refresh_token
        return out

    def oauth_json(self) -> dict[str, Any]:
        out = self.docker_json()
        out["scope"] = " ".join(str(s) for s in self.access)
        out["token_type"] = "Bearer"
        return out


class TokenService:
    def __init__(
        self,
        signer: SigningKey,
        *,
        issuer: str,
        service: str,
        users: Htpasswd | None,
        policy: Policy,
        expires_in_s: int = 300,
    ) -> None:
        self.signer = signer
        self.issuer = issuer
        self.service = service
        self.users = users
        self.policy = policy
        self.expires_in_s = expires_in_s

    def check_password(self, user: str, password: str) -> bool:
        return self.users is not None and self.users.check(user, password)

    def check_refresh_token(self, token: str) -> str | None:
        """The user of a valid, unrevoked refresh token (None otherwise).

        The user must still exist with the entry they had when the token was issued; what they
        may do is decided afresh by :meth:`grant` from the current policy.
        """
        if self.users is None:
            return None
        return self.signer.check_refresh_token(token, self.users.generation)

    def grant(self, user: str | None, scopes: list[Scope], *, offline: bool = False) -> TokenGrant:
        """Requested scopes intersected with the policy; scopes granted nothing are dropped."""
        access: list[Scope] = []
        for scope in scopes:
            actions = self.policy.grant(user, scope.type, scope.name, scope.actions)
            if actions:
                access.append(Scope(scope.type, scope.name, frozenset(actions)))
        token, iat = self.signer.issue(
            issuer=self.issuer,
            subject=user or "",
            audience=self.service,
            access=access,
            expires_in_s=self.expires_in_s,
        )
        refresh: str | None = None
        if offline and user and self.users is not None:
            generation = self.users.generation(user)
            if generation is not None:
                refresh = self.signer.refresh_token(user, generation=generation)
        return TokenGrant(token, self.expires_in_s, iat, tuple(access), refresh)
