"""NodeAffinity: nodeSelector + required node affinity filter, preferred terms score.

Args: ``addedAffinity`` (a scheduler-enforced affinity ANDed to every pod's).
"""

from __future__ import annotations

from typing import Any

from fleetkit.scheduler.cluster import Cluster, NodeInfo
from fleetkit.scheduler.labels import (
    NodeSelectorTerm,
    aggregate,
    parse_node_selector_term,
    parse_node_selector_terms,
)
from fleetkit.scheduler.model import Pod
from fleetkit.scheduler.plugins.base import CycleState, Plugin, default_normalize
from fleetkit.scheduler.status import PreFilterResult, Status

REASON_POD = "node(s) didn't match Pod's node affinity/selector"
REASON_ENFORCED = "node(s) didn't match scheduler-enforced node affinity"
REASON_CONFLICT = "pod affinity terms conflict"
_KEY = "NodeAffinity.prescore"


def _non_empty(raw: Any) -> bool:
    return isinstance(raw, dict) and bool(raw.get("matchExpressions") or raw.get("matchFields"))


class NodeAffinity(Plugin):
    name = "NodeAffinity"
    points = frozenset({"preFilter", "filter", "preScore", "score", "normalizeScore"})
    node_local = True

    def __init__(self, args: dict[str, Any], cluster: Cluster, ctx: Any) -> None:
        super().__init__(args, cluster, ctx)
        added = args.get("addedAffinity") or {}
        req = added.get("requiredDuringSchedulingIgnoredDuringExecution")
        self.added_required: tuple[NodeSelectorTerm, ...] | None = (
            parse_node_selector_terms(req.get("nodeSelectorTerms"))
            if isinstance(req, dict)
            else None
        )
        self.added_preferred = tuple(
            (
                int(p.get("weight") or 0),
                parse_node_selector_term(p.get("preference") or {}, f"[{i}]"),
            )
            for i, p in enumerate(
                added.get("preferredDuringSchedulingIgnoredDuringExecution") or []
            )
        )

    def pre_filter(
        self, state: CycleState, pod: Pod
    ) -> tuple[PreFilterResult | None, Status | None]:
        terms = pod.required_node_terms
        if terms is None and self.added_required is None and not pod.node_selector:
            return None, Status.skip()
        if not terms:
            return None, None
        names: set[str] | None = None
        for t in terms:
            term_names: set[str] | None = None
            for r in t.fields:
                if r.key == "metadata.name" and r.operator == "In":
                    s = set(r.values)
                    term_names = s if term_names is None else term_names & s
            if term_names is None:
                return None, None
            names = term_names if names is None else names | term_names
        if names is not None and not names:
            return None, Status.unresolvable(REASON_CONFLICT)
        if names:
            return PreFilterResult(names), None
        return None, None

    def filter(self, state: CycleState, pod: Pod, info: NodeInfo) -> Status | None:
        node = info.node
        if self.added_required is not None and not any(
            t.matches(node.name, node.labels) for t in self.added_required
        ):
            return Status.unresolvable(REASON_ENFORCED)
        if not pod.required_node_match(node):
            return Status.unresolvable(REASON_POD)
        return None

    def pre_score(self, state: CycleState, pod: Pod, nodes: list[NodeInfo]) -> Status | None:
        # NewPreferredSchedulingTerms: zero-weight and empty terms are skipped, parse errors fail
        errors = [
            t.error
            for w, t in pod.preferred_node_terms
            if w != 0 and t.error and (t.raw or {}) and _non_empty(t.raw)
        ]
        if errors:
            return Status.error(aggregate([e for e in errors if e]))
        terms = [(w, t) for w, t in self.added_preferred + pod.preferred_node_terms if w != 0]
        if not terms:
            return Status.skip()
        state[_KEY] = terms
        return None

    def score(self, state: CycleState, pod: Pod, info: NodeInfo) -> int:
        total = 0
        for w, t in state[_KEY]:
            if t.matches(info.node.name, info.node.labels):
                total += w
        return total

    def normalize(self, state: CycleState, pod: Pod, scores: dict[str, int]) -> None:
        default_normalize(scores, reverse=False)
