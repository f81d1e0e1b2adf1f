"""The registry HTTP server (aiohttp): OCI distribution v1.1 + main, token service, metrics."""

from __future__ import annotations

from fleetkit.registry.server.app import (
    ServerConfig,
    create_app,
    create_token_app,
    parse_listen,
    serve,
)

__all__ = ["ServerConfig", "create_app", "create_token_app", "parse_listen", "serve"]
