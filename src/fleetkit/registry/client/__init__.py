"""The registry client: ``pull``, ``push``, ``copy``, ``sync``, ``inspect``, ``delete``,
``catalog``, ``login``, ``logout``, ``list_tags``, ``get_manifest``.

Layers import downward only: reference -> image (manifests) -> transport (auth, retries) ->
remote (protocol calls) -> pull / push / commands (verbs) -> ``fleetkit.cli.client``.
Every verb is ``async`` inside (``*_async``) with a synchronous wrapper of the plain name.
"""

from fleetkit.registry.client.commands import (
    LoginResult,
    catalog,
    catalog_async,
    delete,
    delete_async,
    get_manifest,
    get_manifest_async,
    list_tags,
    list_tags_async,
    login,
    login_async,
    logout,
)
from fleetkit.registry.client.copy import CopyResult, copy, copy_async
from fleetkit.registry.client.credentials import Credential
from fleetkit.registry.client.errors import (
    AuthError,
    ClientError,
    CredentialsError,
    DestinationError,
    PlatformNotFound,
    TransportError,
    VerificationError,
)
from fleetkit.registry.client.events import Event
from fleetkit.registry.client.image import Manifest, Platform
from fleetkit.registry.client.inspect import Inspection, inspect, inspect_async
from fleetkit.registry.client.pull import BlobResult, PullResult, pull, pull_async
from fleetkit.registry.client.push import PushResult, push, push_async
from fleetkit.registry.client.sync import SyncResult, sync, sync_async
from fleetkit.registry.client.transport import RetryPolicy

__all__ = [
    "AuthError",
    "BlobResult",
    "ClientError",
    "CopyResult",
    "Inspection",
    "SyncResult",
    "catalog",
    "catalog_async",
    "copy",
    "copy_async",
    "delete",
    "delete_async",
    "inspect",
    "inspect_async",
    "sync",
    "sync_async",
    "Credential",
    "CredentialsError",
    "DestinationError",
    "Event",
    "LoginResult",
    "Manifest",
    "Platform",
    "PlatformNotFound",
    "PullResult",
    "PushResult",
    "RetryPolicy",
    "TransportError",
    "VerificationError",
    "get_manifest",
    "get_manifest_async",
    "list_tags",
    "list_tags_async",
    "login",
    "login_async",
    "logout",
    "pull",
    "pull_async",
    "push",
    "push_async",
]
