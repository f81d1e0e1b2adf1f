"""The plugin interface: one small method per extension point, kube's names."""

from __future__ import annotations

from typing import Any, ClassVar

from fleetkit.scheduler.cluster import Cluster, NodeInfo
from fleetkit.scheduler.model import Pod
from fleetkit.scheduler.status import PreFilterResult, Status

__all__ = [
    "Plugin",
    "CycleState",
    "MAX_NODE_SCORE",
    "MULTIPLICITY",
    "default_normalize",
    "go_round",
]

MAX_NODE_SCORE = 100
# CycleState key: node name -> how many interchangeable nodes it stands for (equivalence classes)
MULTIPLICITY = "framework.multiplicity"

CycleState = dict[str, Any]


def go_round(x: float) -> int:
    """Go's math.Round: half away from zero."""
    import math

    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def default_normalize(scores: dict[str, int], reverse: bool) -> None:
    """helper.DefaultNormalizeScore(MaxNodeScore, reverse, scores)."""
    max_count = max(scores.values(), default=0)
    if max_count <= 0:
        if reverse:
            for k in scores:
                scores[k] = MAX_NODE_SCORE
        return
    for k, s in scores.items():
        v = MAX_NODE_SCORE * s // max_count if s >= 0 else -((MAX_NODE_SCORE * -s) // max_count)
        scores[k] = MAX_NODE_SCORE - v if reverse else v


class Plugin:
    """Base class; a plugin overrides the points it implements and lists them in ``points``."""

    name: ClassVar[str] = ""
    points: ClassVar[frozenset[str]] = frozenset()
    # Filter and Score read only the pod's spec, the node and the node's pods (what a node
    # equivalence class's signature holds), plus state that changes only with the node set:
    # their results are memoized per (pod spec, class signature)
    node_local: ClassVar[bool] = False

    def __init__(self, args: dict[str, Any], cluster: Cluster, ctx: Any) -> None:
        self.args = args
        self.cluster = cluster
        self.ctx = ctx

    # queueSort: PrioritySort only
    def pre_filter(
        self, state: CycleState, pod: Pod
    ) -> tuple[PreFilterResult | None, Status | None]:
        return None, None

    def filter(self, state: CycleState, pod: Pod, info: NodeInfo) -> Status | None:
        return None

    def pre_score(self, state: CycleState, pod: Pod, nodes: list[NodeInfo]) -> Status | None:
        return None

    def score(self, state: CycleState, pod: Pod, info: NodeInfo) -> int:
        return 0

    def normalize(self, state: CycleState, pod: Pod, scores: dict[str, int]) -> None:
        return None
