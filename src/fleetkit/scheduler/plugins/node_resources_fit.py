"""NodeResourcesFit: requests must fit allocatable minus what placed pods request; scores with
LeastAllocated (default), MostAllocated or RequestedToCapacityRatio over configured resources.

Scoring uses the non-zero requests (a container without a cpu/memory request counts as 100m /
200Mi), like upstream, so that many request-less pods do not pile onto one node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fleetkit.scheduler.cluster import Cluster, NodeInfo
from fleetkit.scheduler.model import (
    DEFAULT_MEMORY_REQUEST,
    DEFAULT_MILLI_CPU_REQUEST,
    Pod,
    is_extended_resource,
    is_scalar_resource,
)
from fleetkit.scheduler.plugins.base import MAX_NODE_SCORE, CycleState, Plugin, go_round
from fleetkit.scheduler.status import Status

__all__ = ["NodeResourcesFit", "ResourceAllocationScorer", "insufficient_resources"]

_DEFAULT_RESOURCES = [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}]


def insufficient_resources(
    pod: Pod, info: NodeInfo, ignored: set[str], ignored_groups: set[str]
) -> list[str]:
    """fitsRequest: the reasons, in kube's order (pods, cpu, memory, ephemeral, scalars)."""
    out: list[str] = []
    alloc = info.node.allocatable
    if len(info.pods) + 1 > alloc.allowed_pods:
        out.append("Too many pods")
    req = pod.requests
    if req.milli_cpu == 0 and req.memory == 0 and req.ephemeral_storage == 0 and not req.scalars:
        return out
    used = info.requested
    if req.milli_cpu > 0 and req.milli_cpu > alloc.milli_cpu - used.milli_cpu:
        out.append("Insufficient cpu")
    if req.memory > 0 and req.memory > alloc.memory - used.memory:
        out.append("Insufficient memory")
    if (
        req.ephemeral_storage > 0
        and req.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage
    ):
        out.append("Insufficient ephemeral-storage")
    for name, q in req.scalars.items():
        if q == 0:
            continue
        if is_extended_resource(name) and (name in ignored or name.split("/")[0] in ignored_groups):
            continue
        if q > alloc.scalars.get(name, 0) - used.scalars.get(name, 0):
            out.append(f"Insufficient {name}")
    return out


def least_requested(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


def most_requested(requested: int, capacity: int) -> int:
    if capacity == 0:
        return 0
    requested = min(requested, capacity)
    return requested * MAX_NODE_SCORE // capacity


def broken_linear(shape: list[tuple[int, int]]) -> Callable[[int], int]:
    def f(p: int) -> int:
        for i, (u, s) in enumerate(shape):
            if p <= u:
                if i == 0:
                    return shape[0][1]
                pu, ps = shape[i - 1]
                num = (s - ps) * (p - pu)
                den = u - pu
                q = abs(num) // den
                return ps + (q if num >= 0 else -q)
        return shape[-1][1]

    return f


class ResourceAllocationScorer:
    """resourceAllocationScorer shared by NodeResourcesFit and BalancedAllocation."""

    def __init__(self, resources: list[dict[str, Any]], use_requested: bool) -> None:
        self.resources = [(str(r["name"]), int(r.get("weight") or 1)) for r in resources]
        self.use_requested = use_requested

    def pod_requests(self, pod: Pod) -> list[int]:
        src = pod.requests if self.use_requested else pod.requests_nonzero
        return [src.get(name) for name, _w in self.resources]

    def alloc_req(self, info: NodeInfo, name: str, pod_req: int) -> tuple[int, int]:
        alloc = info.node.allocatable
        if pod_req == 0 and is_scalar_resource(name):
            return 0, 0
        if name == "cpu":
            used = info.requested.milli_cpu if self.use_requested else info.nonzero_cpu
            return alloc.milli_cpu, used + pod_req
        if name == "memory":
            used = info.requested.memory if self.use_requested else info.nonzero_mem
            return alloc.memory, used + pod_req
        if name == "ephemeral-storage":
            return alloc.ephemeral_storage, info.requested.ephemeral_storage + pod_req
        if name in alloc.scalars:
            return alloc.scalars[name], info.requested.scalars.get(name, 0) + pod_req
        return 0, 0

    def vectors(self, info: NodeInfo, pod_reqs: list[int]) -> tuple[list[int], list[int]]:
        requested = [0] * len(self.resources)
        allocatable = [0] * len(self.resources)
        for i, (name, _w) in enumerate(self.resources):
            a, r = self.alloc_req(info, name, pod_reqs[i])
            if a == 0:
                continue
            allocatable[i] = a
            requested[i] = r
        return requested, allocatable


_ = (DEFAULT_MILLI_CPU_REQUEST, DEFAULT_MEMORY_REQUEST)
_KEY = "NodeResourcesFit.prescore"


class NodeResourcesFit(Plugin):
    name = "NodeResourcesFit"
    points = frozenset({"preFilter", "filter", "preScore", "score"})
    node_local = True

    def __init__(self, args: dict[str, Any], cluster: Cluster, ctx: Any) -> None:
        super().__init__(args, cluster, ctx)
        self.ignored = set(args.get("ignoredResources") or [])
        self.ignored_groups = set(args.get("ignoredResourceGroups") or [])
        strategy = args.get("scoringStrategy") or {}
        self.kind = str(strategy.get("type") or "LeastAllocated")
        resources = strategy.get("resources") or _DEFAULT_RESOURCES
        self.scorer = ResourceAllocationScorer(resources, use_requested=False)
        shape = (strategy.get("requestedToCapacityRatio") or {}).get("shape") or [
            {"utilization": 0, "score": 10},
            {"utilization": 100, "score": 0},
        ]
        self.shape = broken_linear(
            [(int(p["utilization"]), int(p["score"]) * MAX_NODE_SCORE // 10) for p in shape]
        )

    def filter(self, state: CycleState, pod: Pod, info: NodeInfo) -> Status | None:
        reasons = insufficient_resources(pod, info, self.ignored, self.ignored_groups)
        if reasons:
            return Status.unschedulable(*reasons)
        return None

    def pre_score(self, state: CycleState, pod: Pod, nodes: list[NodeInfo]) -> Status | None:
        state[_KEY] = self.scorer.pod_requests(pod)
        return None

    def score(self, state: CycleState, pod: Pod, info: NodeInfo) -> int:
        pod_reqs = state.get(_KEY)
        if pod_reqs is None:
            pod_reqs = self.scorer.pod_requests(pod)
        requested, allocatable = self.scorer.vectors(info, pod_reqs)
        node_score = weight_sum = 0
        if self.kind == "RequestedToCapacityRatio":
            for i, (_name, w) in enumerate(self.scorer.resources):
                if allocatable[i] == 0:
                    continue
                if requested[i] > allocatable[i]:
                    s = self.shape(100)
                else:
                    s = self.shape(requested[i] * 100 // allocatable[i])
                if s > 0:
                    node_score += s * w
                    weight_sum += w
            return 0 if weight_sum == 0 else go_round(node_score / weight_sum)
        fn = most_requested if self.kind == "MostAllocated" else least_requested
        for i, (_name, w) in enumerate(self.scorer.resources):
            if allocatable[i] == 0:
                continue
            node_score += fn(requested[i], allocatable[i]) * w
            weight_sum += w
        return 0 if weight_sum == 0 else node_score // weight_sum
