"""PodTopologySpread: DoNotSchedule constraints filter on skew, ScheduleAnyway constraints (or
the system defaults, hostname maxSkew 3 and zone maxSkew 5, for pods owned by a Service,
ReplicaSet or StatefulSet) score by how crowded each domain is.

Per-node match counts come from ``Cluster.match_counts`` (updated on every placement), so a pod
costs O(nodes x constraints), never a walk over all pods.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fleetkit.scheduler.cluster import Cluster, NodeInfo
from fleetkit.scheduler.labels import Requirement, Selector, parse_label_selector
from fleetkit.scheduler.model import HOSTNAME, ZONE, Node, Pod, first_untolerated
from fleetkit.scheduler.plugins.base import (
    MAX_NODE_SCORE,
    MULTIPLICITY,
    CycleState,
    Plugin,
    go_round,
)
from fleetkit.scheduler.status import Status

REASON = "node(s) didn't match pod topology spread constraints"
REASON_LABEL = REASON + " (missing required label)"
_PF = SPREAD_PREFILTER = "PodTopologySpread.prefilter"  # CycleState key of PreFilter's counts
_PS = "PodTopologySpread.prescore"
MAX_INT32 = 2**31 - 1
MEMO_MAX = 1024  # pod specs whose constraints are kept

SYSTEM_DEFAULTS = [
    {"maxSkew": 3, "topologyKey": HOSTNAME, "whenUnsatisfiable": "ScheduleAnyway"},
    {"maxSkew": 5, "topologyKey": ZONE, "whenUnsatisfiable": "ScheduleAnyway"},
]


@dataclass(frozen=True, slots=True)
class Constraint:
    max_skew: int
    topology_key: str
    selector: Selector
    min_domains: int
    honor_affinity: bool
    honor_taints: bool


def _never(p: Pod) -> bool:
    return False


def _affinity_sig(pod: Pod) -> str:
    """The pod's required node affinity as text (kept on the pod: siblings share it)."""
    if pod.node_affinity_sig is None:
        spec = pod.raw.get("spec") or {}
        req = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        pod.node_affinity_sig = json.dumps([pod.node_selector, req], sort_keys=True, default=str)
    return pod.node_affinity_sig


def node_has_keys(node: Node, constraints: list[Constraint]) -> bool:
    labels = node.labels
    return all(c.topology_key in labels for c in constraints)


def included(c: Constraint, pod: Pod, node: Node) -> bool:
    """matchNodeInclusionPolicies."""
    if c.honor_affinity and not pod.required_node_match(node):
        return False
    if c.honor_taints and first_untolerated(
        node.taints, pod.tolerations, ("NoSchedule", "NoExecute")
    ):
        return False
    return True


class PodTopologySpread(Plugin):
    name = "PodTopologySpread"
    points = frozenset({"preFilter", "filter", "preScore", "score", "normalizeScore"})

    def __init__(self, args: dict[str, Any], cluster: Cluster, ctx: Any) -> None:
        super().__init__(args, cluster, ctx)
        self.defaulting = str(args.get("defaultingType") or "System")
        if self.defaulting == "System":
            self.defaults: list[dict[str, Any]] = SYSTEM_DEFAULTS
        else:
            self.defaults = list(args.get("defaultConstraints") or [])
        self.system_defaulted = self.defaulting == "System"
        # per pod spec (siblings share it) and action: (the default selector it was built
        # from, the constraints); and per constraint list: its live per-node counts and
        # (with the node set's generation) its per-domain counts for scoring
        self._cons: dict[tuple[Any, str], tuple[Selector | None, list[Constraint]]] = {}
        self._score_counts: dict[int, tuple[Any, int, list[dict[str, int]], list[Any]]] = {}

    # -- constraints -----------------------------------------------------------------------
    def _own(self, pod: Pod, action: str) -> list[Constraint]:
        out = []
        for c in pod.spread_constraints:
            if (c.get("whenUnsatisfiable") or "DoNotSchedule") != action:
                continue
            sel = parse_label_selector(c.get("labelSelector"))
            keys = c.get("matchLabelKeys") or []
            extra = tuple(
                Requirement(str(k), "In", (pod.labels[k],)) for k in keys if k in pod.labels
            )
            if extra:
                sel = sel.add(extra)
            out.append(
                Constraint(
                    int(c.get("maxSkew") or 1),
                    str(c.get("topologyKey") or ""),
                    sel,
                    int(c.get("minDomains") or 1),
                    (c.get("nodeAffinityPolicy") or "Honor") == "Honor",
                    (c.get("nodeTaintsPolicy") or "Ignore") == "Honor",
                )
            )
        return out

    def _defaults(self, pod: Pod, action: str, sel: Selector | None) -> list[Constraint]:
        wanted = [
            c for c in self.defaults if (c.get("whenUnsatisfiable") or "DoNotSchedule") == action
        ]
        if not wanted or sel is None:
            return []
        if sel.empty:
            return []
        # filterTopologySpreadConstraints: default constraints keep their own minDomains and
        # inclusion policies (Honor node affinity, Ignore taints when unset)
        return [
            Constraint(
                int(c.get("maxSkew") or 1),
                str(c["topologyKey"]),
                sel,
                int(c.get("minDomains") or 1),
                (c.get("nodeAffinityPolicy") or "Honor") == "Honor",
                (c.get("nodeTaintsPolicy") or "Ignore") == "Honor",
            )
            for c in wanted
        ]

    def constraints(self, pod: Pod, action: str) -> list[Constraint]:
        """The pod's own constraints for ``action``, or the defaults (memoized per pod spec)."""
        key = (pod.spec_token, action)
        hit = self._cons.get(key)
        if pod.spread_constraints:
            if hit is not None:
                return hit[1]
            sel = None
            cons = self._own(pod, action)
        else:
            sel = self.ctx.default_selector(pod) if self._wants(action) else None
            if hit is not None and hit[0] is sel:
                return hit[1]
            cons = self._defaults(pod, action, sel)
        if len(self._cons) >= MEMO_MAX:
            self._cons.clear()
            self._score_counts.clear()
        self._cons[key] = (sel, cons)
        return cons

    def _wants(self, action: str) -> bool:
        return any((c.get("whenUnsatisfiable") or "DoNotSchedule") == action for c in self.defaults)

    def _pod_pred(self, ns: str, sel: Selector) -> Callable[[Pod], bool]:
        def pred(p: Pod) -> bool:
            return p.namespace == ns and not p.terminating and sel.matches(p.labels)

        return pred

    def domains(
        self, tag: str, pod: Pod, c: Constraint, required: list[Constraint]
    ) -> dict[str, int]:
        """Matching pods per domain of ``c`` over the nodes the constraint includes: nodes
        with every key of ``required`` that pass the inclusion policies (memoized)."""
        if c.selector.empty:
            pred: Callable[[Pod], bool] = _never
        else:
            pred = self._pod_pred(pod.namespace, c.selector)
        keys = tuple(r.topology_key for r in required)
        incl = (
            _affinity_sig(pod) if c.honor_affinity else None,
            pod.tolerations if c.honor_taints else None,
        )
        key = (tag, pod.namespace, c.selector, c.topology_key, keys, incl)

        def domain_of(node: Node) -> str | None:
            labels = node.labels
            for k in keys:
                if k not in labels:
                    return None
            if not included(c, pod, node):
                return None
            return labels.get(c.topology_key, "")

        return self.cluster.domain_counts(key, pred, domain_of)

    def counts(self, ns: str, sel: Selector) -> dict[str, int]:
        if sel.empty:
            return {}

        def pred(p: Pod) -> bool:
            return p.namespace == ns and not p.terminating and sel.matches(p.labels)

        return self.cluster.match_counts(("pts", ns, sel), pred)

    # -- filter ----------------------------------------------------------------------------
    def pre_filter(self, state: CycleState, pod: Pod) -> tuple[None, Status | None]:
        cons = self.constraints(pod, "DoNotSchedule")
        if not cons:
            state[_PF] = None
            return None, None
        pair_counts: dict[tuple[str, str], int] = {}
        domains: dict[str, int] = {}
        minimum: dict[str, int] = {}
        for c in cons:
            per_domain = self.domains("filter", pod, c, cons)
            for val, n in per_domain.items():
                pair_counts[(c.topology_key, val)] = n
            domains[c.topology_key] = len(per_domain)
            if per_domain:
                minimum[c.topology_key] = min(per_domain.values())
        state[_PF] = (cons, pair_counts, domains, minimum)
        return None, None

    def filter(self, state: CycleState, pod: Pod, info: NodeInfo) -> Status | None:
        s = state.get(_PF)
        if s is None:
            return None
        cons, pair_counts, domains, minimum = s
        labels = info.node.labels
        for c in cons:
            val = labels.get(c.topology_key)
            if val is None:
                return Status.unresolvable(REASON_LABEL)
            min_match = minimum.get(c.topology_key, MAX_INT32)
            if domains.get(c.topology_key, 0) < c.min_domains:
                min_match = 0
            self_match = 1 if c.selector.matches(pod.labels) else 0
            skew = pair_counts.get((c.topology_key, val), 0) + self_match - min_match
            if skew > c.max_skew:
                return Status.unschedulable(REASON)
        return None

    # -- score -----------------------------------------------------------------------------
    def pre_score(self, state: CycleState, pod: Pod, nodes: list[NodeInfo]) -> Status | None:
        if not nodes or not self.cluster.infos:
            return Status.skip()
        cons = self.constraints(pod, "ScheduleAnyway")
        if not cons:
            return Status.skip()
        require_all = bool(pod.spread_constraints) or not self.system_defaulted
        ignored: set[str] = set()
        # (topology key, value) -> matching pods there; filled from the per-domain counts below
        pair_counts: dict[tuple[str, str], int] = {}
        topo_size = [0] * len(cons)
        keyed = [(i, c.topology_key) for i, c in enumerate(cons) if c.topology_key != HOSTNAME]
        mult: dict[str, int] = state.get(MULTIPLICITY) or {}
        scored = 0
        for info in nodes:
            node = info.node
            if require_all and not node_has_keys(node, cons):
                ignored.add(node.name)
                continue
            scored += mult.get(node.name, 1)
            labels = node.labels
            for i, key in keyed:
                pair = (key, labels.get(key, ""))
                if pair not in pair_counts:
                    pair_counts[pair] = 0
                    topo_size[i] += 1
        counts, domains = self._scoring_counts(pod, cons, require_all)
        if pair_counts:
            of_key = {
                c.topology_key: d for c, d in zip(cons, domains, strict=True) if d is not None
            }
            for pair in pair_counts:
                per_domain = of_key.get(pair[0])
                if per_domain is not None:
                    pair_counts[pair] = per_domain.get(pair[1], 0)
        # per constraint, in order: its key, its per-node counts (hostname) or None, weight, skew
        terms = [
            (
                c.topology_key,
                counts[i] if c.topology_key == HOSTNAME else None,
                math.log((scored if c.topology_key == HOSTNAME else topo_size[i]) + 2),
                c.max_skew - 1,
            )
            for i, c in enumerate(cons)
        ]
        state[_PS] = (terms, pair_counts, ignored)
        return None

    def _scoring_counts(
        self, pod: Pod, cons: list[Constraint], require_all: bool
    ) -> tuple[list[dict[str, int]], list[dict[str, int] | None]]:
        """Per constraint: matching pods per node, and per domain (None for hostname). Both are
        the cluster's live counts (updated on every placement; the per-domain ones are dropped
        when the node set changes), kept per constraint list."""
        gen = self.cluster.generation
        hit = self._score_counts.get(id(cons))
        if hit is not None and hit[0] is cons and hit[1] == gen:
            return hit[2], hit[3]
        counts = [self.counts(pod.namespace, c.selector) for c in cons]
        domains: list[dict[str, int] | None] = [
            None
            if c.topology_key == HOSTNAME
            else self.domains("score", pod, c, cons if require_all else [])
            for c in cons
        ]
        self._score_counts[id(cons)] = (cons, gen, counts, domains)
        return counts, domains

    def score(self, state: CycleState, pod: Pod, info: NodeInfo) -> int:
        terms, pair_counts, ignored = state[_PS]
        node = info.node
        name = node.name
        if name in ignored:
            return 0
        labels = node.labels
        total = 0.0
        for key, per_node, weight, skew in terms:
            val = labels.get(key)
            if val is None:
                continue
            if per_node is not None:
                cnt = per_node.get(name, 0)
            else:
                cnt = pair_counts.get((key, val), 0)
            total += cnt * weight + skew
        return go_round(total)

    def normalize(self, state: CycleState, pod: Pod, scores: dict[str, int]) -> None:
        s = state.get(_PS)
        if s is None:
            return
        ignored: set[str] = s[2]
        lo, hi = math.inf, 0
        for name, sc in scores.items():
            if name in ignored:
                continue
            lo = min(lo, sc)
            hi = max(hi, sc)
        for name, sc in scores.items():
            if name in ignored:
                scores[name] = 0
            elif hi == 0:
                scores[name] = MAX_NODE_SCORE
            else:
                scores[name] = MAX_NODE_SCORE * (hi + int(lo) - sc) // hi
