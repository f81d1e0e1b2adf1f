"""NodeResourcesBalancedAllocation: favour nodes whose resource fractions (after placing the pod)
are close to each other: score = (1 - std(fractions)) * 100, on actual (not non-zero) requests."""

from __future__ import annotations

import math
from typing import Any

from fleetkit.scheduler.cluster import Cluster, NodeInfo
from fleetkit.scheduler.model import Pod
from fleetkit.scheduler.plugins.base import MAX_NODE_SCORE, CycleState, Plugin
from fleetkit.scheduler.plugins.node_resources_fit import ResourceAllocationScorer
from fleetkit.scheduler.status import Status

_KEY = "NodeResourcesBalancedAllocation.prescore"


def balanced_score(requested: list[int], allocatable: list[int]) -> int:
    fractions: list[float] = []
    total = 0.0
    for r, a in zip(requested, allocatable, strict=True):
        if a == 0:
            continue
        f = min(r / a, 1.0)
        total += f
        fractions.append(f)
    std = 0.0
    if len(fractions) == 2:
        std = abs((fractions[0] - fractions[1]) / 2)
    elif len(fractions) > 2:
        mean = total / len(fractions)
        std = math.sqrt(sum((f - mean) * (f - mean) for f in fractions) / len(fractions))
    return int((1 - std) * MAX_NODE_SCORE)


class NodeResourcesBalancedAllocation(Plugin):
    name = "NodeResourcesBalancedAllocation"
    points = frozenset({"preScore", "score"})
    node_local = True

    def __init__(self, args: dict[str, Any], cluster: Cluster, ctx: Any) -> None:
        super().__init__(args, cluster, ctx)
        resources = args.get("resources") or [
            {"name": "cpu", "weight": 1},
            {"name": "memory", "weight": 1},
        ]
        self.scorer = ResourceAllocationScorer(resources, use_requested=True)

    def pre_score(self, state: CycleState, pod: Pod, nodes: list[NodeInfo]) -> Status | None:
        reqs = self.scorer.pod_requests(pod)
        if all(r == 0 for r in reqs):
            # best-effort pods are not scored (kubernetes#129138)
            return Status.skip()
        state[_KEY] = reqs
        return None

    def score(self, state: CycleState, pod: Pod, info: NodeInfo) -> int:
        reqs = state.get(_KEY) or self.scorer.pod_requests(pod)
        requested, allocatable = self.scorer.vectors(info, reqs)
        return balanced_score(requested, allocatable)
