"""The host_pinned strategy: free, but a fork stays with its host until the host is done.

At most ``forks`` hosts have started; the next host starts when one finishes its play.
"""

from __future__ import annotations

from fleetkit.playbook.strategies.free import FreeStrategy

__all__ = ["HostPinnedStrategy"]


class HostPinnedStrategy(FreeStrategy):
    """ansible's host_pinned strategy."""

    pinned = True
