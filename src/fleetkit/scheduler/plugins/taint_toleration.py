"""TaintToleration: NoSchedule/NoExecute taints filter, PreferNoSchedule taints score (reversed)."""

from __future__ import annotations

from fleetkit.scheduler.cluster import NodeInfo
from fleetkit.scheduler.model import Pod, Toleration, first_untolerated, tolerates_taint
from fleetkit.scheduler.plugins.base import CycleState, Plugin, default_normalize
from fleetkit.scheduler.status import Status

_KEY = "TaintToleration.prescore"


class TaintToleration(Plugin):
    name = "TaintToleration"
    points = frozenset({"filter", "preScore", "score", "normalizeScore"})
    node_local = True

    def filter(self, state: CycleState, pod: Pod, info: NodeInfo) -> Status | None:
        taint = first_untolerated(info.node.taints, pod.tolerations, ("NoSchedule", "NoExecute"))
        if taint is None:
            return None
        return Status.unresolvable(f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}")

    def pre_score(self, state: CycleState, pod: Pod, nodes: list[NodeInfo]) -> Status | None:
        # Only tolerations with an empty effect or PreferNoSchedule count for scoring.
        state[_KEY] = tuple(t for t in pod.tolerations if t.effect in ("", "PreferNoSchedule"))
        return None

    def score(self, state: CycleState, pod: Pod, info: NodeInfo) -> int:
        tols: tuple[Toleration, ...] = state[_KEY]
        return sum(
            1
            for t in info.node.taints
            if t.effect == "PreferNoSchedule" and not tolerates_taint(tols, t)
        )

    def normalize(self, state: CycleState, pod: Pod, scores: dict[str, int]) -> None:
        default_normalize(scores, reverse=True)
