"""ansible's lookup, filter and test plugins, loaded from ansible-core and collections.

Contract with the engine: ``run_lookup`` serves ``with_<name>`` loops, ``lookup()`` and
``query()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetkit.playbook.errors import PlaybookError

__all__ = ["run_lookup"]


def run_lookup(name: str, terms: Any, variables: Mapping[str, Any], **kwargs: Any) -> list[Any]:
    """Run lookup plugin ``name`` on ``terms`` (already templated) and return its list."""
    raise PlaybookError(
        f"lookup plugin ({name}) not found", hint="fleetkit does not load lookup plugins yet"
    )
