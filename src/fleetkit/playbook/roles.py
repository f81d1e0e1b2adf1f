"""Roles: finding, loading and expanding them (``roles:``, ``import_role``, ``include_role``).

Contract with the engine: ``expand_include_role`` is called by the iterator when it reaches an
:class:`~fleetkit.playbook.playbook.IncludeRole` node for a host, with the node's arguments
already templated for that host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetkit.playbook.errors import PlaybookError
from fleetkit.playbook.playbook import IncludeRole, Node, Play, RoleRef, Task

__all__ = ["IncludedRole", "expand_include_role"]


@dataclass(slots=True)
class IncludedRole:
    """What an ``include_role`` brings in: the role, its task nodes and its handlers."""

    role: RoleRef
    tasks: list[Node] = field(default_factory=list)
    handlers: list[Task] = field(default_factory=list)


def expand_include_role(node: IncludeRole, args: Mapping[str, Any], play: Play) -> IncludedRole:
    """Load the role an ``include_role`` names (args templated for one host)."""
    raise PlaybookError(
        f"include_role is not supported yet (role {node.role_name!r})",
        hint="use roles: or import_role",
    )
