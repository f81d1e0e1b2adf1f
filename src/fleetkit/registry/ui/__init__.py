"""The registry's read-only web view (``registry serve --ui``): repositories, tags, sizes,
manifests, platforms, referrers and pull commands, under ``/ui``."""

from __future__ import annotations

from fleetkit.registry.ui.views import Viewer, add_routes

__all__ = ["add_routes", "Viewer"]
