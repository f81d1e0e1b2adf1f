"""Registry auth: scopes and challenges, htpasswd users, the YAML policy, ES256 tokens."""

from __future__ import annotations

from fleetkit.registry.auth.access import (
    AuthFailure,
    Authorizer,
    HtpasswdAuthorizer,
    NoAuth,
    TokenAuthorizer,
)
from fleetkit.registry.auth.challenge import Scope, parse_scope, parse_scopes
from fleetkit.registry.auth.policy import Policy, load_policy, parse_policy
from fleetkit.registry.auth.service import TokenGrant, TokenService
from fleetkit.registry.auth.tokens import InvalidToken, SigningKey, TokenVerifier
from fleetkit.registry.auth.users import Htpasswd, add_user

__all__ = [
    "AuthFailure",
    "Authorizer",
    "Htpasswd",
    "HtpasswdAuthorizer",
    "InvalidToken",
    "NoAuth",
    "Policy",
    "Scope",
    "SigningKey",
    "TokenAuthorizer",
    "TokenGrant",
    "TokenService",
    "TokenVerifier",
    "add_user",
    "load_policy",
    "parse_policy",
    "parse_scope",
    "parse_scopes",
]
