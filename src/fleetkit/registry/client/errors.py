"""Errors the pull/push client raises (wire errors come from :mod:`fleetkit.registry.errors`).

::

    RegistryError (fleetkit.errors)
    ├── RegistryAPIError ...            the registry's own error, parsed by ``from_response``
    └── ClientError                     this client
        ├── AuthError                   credentials missing or refused (401/403 after a retry)
        ├── TransportError              connection failures and 5xx/429 after every retry
        ├── VerificationError           a manifest or blob whose digest or size is wrong
        ├── PlatformNotFound            no manifest in an index matches --platform
        ├── DestinationError            the destination (or source) on disk cannot be used
        └── CredentialsError            docker config.json or a credential helper failed
"""

from __future__ import annotations

from fleetkit.errors import RegistryError

__all__ = [
    "ClientError",
    "AuthError",
    "TransportError",
    "VerificationError",
    "PlatformNotFound",
    "DestinationError",
    "CredentialsError",
]


class ClientError(RegistryError):
    """Root of the client's own errors."""


class AuthError(ClientError):
    pass


class TransportError(ClientError):
    """``retryable`` is False for failures that cannot heal (TLS to a plain-HTTP server...)."""

    def __init__(self, message: str, hint: str | None = None, retryable: bool = True) -> None:
        super().__init__(message, hint)
        self.retryable = retryable


class VerificationError(ClientError):
    pass


class PlatformNotFound(ClientError):
    pass


class DestinationError(ClientError):
    pass


class CredentialsError(ClientError):
    pass
