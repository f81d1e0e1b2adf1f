"""InterPodAffinity: required pod affinity / anti-affinity (the incoming pod's and, symmetrically,
existing pods' anti-affinity) filter; preferred terms (both directions) and existing pods' required
affinity (x hardPodAffinityWeight) score per topology domain, min-max normalized.

Counts of existing pods matching a term are memoized per node in ``Cluster.match_counts``.
"""

from __future__ import annotations

from typing import Any

from fleetkit.scheduler.cluster import Cluster, NodeInfo
from fleetkit.scheduler.labels import EVERYTHING, NOTHING
from fleetkit.scheduler.model import AffinityTerm, Pod
from fleetkit.scheduler.plugins.base import MAX_NODE_SCORE, CycleState, Plugin
from fleetkit.scheduler.status import Status

REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING = "node(s) didn't satisfy existing pods anti-affinity rules"
_PF = "InterPodAffinity.prefilter"
_PS = "InterPodAffinity.prescore"

Pair = tuple[str, str]


def term_key(t: AffinityTerm) -> tuple[Any, ...]:
    return (t.namespaces, t.ns_selector, t.selector)


class InterPodAffinity(Plugin):
    name = "InterPodAffinity"
    points = frozenset({"preFilter", "filter", "preScore", "score", "normalizeScore"})

    def __init__(self, args: dict[str, Any], cluster: Cluster, ctx: Any) -> None:
        super().__init__(args, cluster, ctx)
        w = args.get("hardPodAffinityWeight")
        self.hard_weight = 1 if w is None else int(w)
        self.ignore_existing_preferred = bool(args.get("ignorePreferredTermsOfExistingPods"))

    def _merge_namespaces(self, t: AffinityTerm) -> AffinityTerm:
        """mergeAffinityTermNamespacesIfNotEmpty: resolve a non-empty namespaceSelector now."""
        if t.ns_selector.nothing or t.ns_selector is EVERYTHING or t.ns_selector.empty:
            return t
        extra = {
            ns for ns, labels in self.cluster.namespaces.items() if t.ns_selector.matches(labels)
        }
        return AffinityTerm(t.namespaces | extra, NOTHING, t.selector, t.topology_key, t.weight)

    def _pair_counts(self, terms: list[AffinityTerm], topology_key: str) -> dict[str, int]:
        """Placed pods matching every term, per value of ``topology_key`` (memoized)."""
        keys = tuple(term_key(t) for t in terms)

        def pred(p: Pod) -> bool:
            return all(t.matches(p, None) for t in terms)

        return self.cluster.pair_counts(("ipa", keys), pred, topology_key)

    # -- filter ----------------------------------------------------------------------------
    def pre_filter(self, state: CycleState, pod: Pod) -> tuple[None, Status | None]:
        if pod.affinity_error:
            return None, Status.unresolvable(f"parsing pod: {pod.affinity_error}")
        if not pod.required_affinity and not pod.required_anti_affinity:
            if not self.cluster.term_groups["anti"]:
                return None, Status.skip()  # nothing below could find a term
        req_aff = [self._merge_namespaces(t) for t in pod.required_affinity]
        req_anti = [self._merge_namespaces(t) for t in pod.required_anti_affinity]
        ns_labels = self.cluster.namespace_labels(pod.namespace)
        # Live per-topology-value counts (memoized in the cluster cache) are referenced, not
        # copied: a cycle reads them without placing anything.
        # existing pods' required anti-affinity terms that match the incoming pod
        existing: list[tuple[str, dict[str, int]]] = [
            (t.topology_key, counts)
            for t, counts in self.cluster.term_groups["anti"].values()
            if t.matches(pod, ns_labels)
        ]
        # an existing pod counts for the affinity terms only if it matches every term
        affinity = [(t.topology_key, self._pair_counts(req_aff, t.topology_key)) for t in req_aff]
        anti = [(t.topology_key, self._pair_counts([t], t.topology_key)) for t in req_anti]
        if not existing and not req_aff and not req_anti:
            return None, Status.skip()
        no_affinity_match = all(not counts for _k, counts in affinity)
        self_match = all(t.matches(pod, None) for t in req_aff)
        state[_PF] = (existing, affinity, anti, no_affinity_match and self_match)
        return None, None

    def filter(self, state: CycleState, pod: Pod, info: NodeInfo) -> Status | None:
        existing, affinity, anti, first_of_group = state[_PF]
        labels = info.node.labels
        # satisfyPodAffinity: every term's topology label must exist; pods must match in each
        pods_exist = True
        for key, counts in affinity:
            val = labels.get(key)
            if val is None:
                return Status.unresolvable(REASON_AFFINITY)
            if counts.get(val, 0) <= 0:
                pods_exist = False
        # the first pod of a group that matches its own terms may go to any labelled node
        if not pods_exist and not first_of_group:
            return Status.unresolvable(REASON_AFFINITY)
        # satisfyPodAntiAffinity: a node without the topology label is never blocked
        for key, counts in anti:
            val = labels.get(key)
            if val is not None and counts.get(val, 0) > 0:
                return Status.unschedulable(REASON_ANTI)
        # satisfyExistingPodsAntiAffinity
        for key, counts in existing:
            val = labels.get(key)
            if val is not None and counts.get(val, 0) > 0:
                return Status.unschedulable(REASON_EXISTING)
        return None

    # -- score -----------------------------------------------------------------------------
    def pre_score(self, state: CycleState, pod: Pod, nodes: list[NodeInfo]) -> Status | None:
        if not nodes:
            return None
        has_constraints = bool(pod.preferred_affinity or pod.preferred_anti_affinity)
        if self.ignore_existing_preferred and not has_constraints:
            return Status.skip()
        if pod.affinity_error:
            return Status.error(f"failed to parse pod: {pod.affinity_error}")
        groups = self.cluster.term_groups
        if not has_constraints and not groups["pref"] and not groups["prefanti"]:
            if self.hard_weight <= 0 or not groups["req"]:
                return Status.skip()  # no term on either side: nothing below would count
        pref = [self._merge_namespaces(t) for t in pod.preferred_affinity]
        pref_anti = [self._merge_namespaces(t) for t in pod.preferred_anti_affinity]
        ns_labels = self.cluster.namespace_labels(pod.namespace)
        topo: dict[str, dict[str, int]] = {}

        def bump(key: str, val: str, amount: int) -> None:
            d = topo.setdefault(key, {})
            d[val] = d.get(val, 0) + amount

        # the incoming pod's preferred terms against every placed pod (memoized counts)
        for terms, sign in ((pref, 1), (pref_anti, -1)):
            for t in terms:
                for val, n in self._pair_counts([t], t.topology_key).items():
                    bump(t.topology_key, val, sign * t.weight * n)
        # existing pods' terms against the incoming pod, grouped by term
        kinds: list[tuple[str, int]] = [("pref", 1), ("prefanti", -1)]
        if self.hard_weight > 0:
            kinds.insert(0, ("req", 0))
        for kind, sign in kinds:
            for t, counts in groups[kind].values():
                if not t.matches(pod, ns_labels):
                    continue
                amount = self.hard_weight if kind == "req" else sign * t.weight
                for val, n in counts.items():
                    bump(t.topology_key, val, amount * n)
        topo = {k: {v: n for v, n in d.items() if n != 0} for k, d in topo.items()}
        topo = {k: d for k, d in topo.items() if d}
        if not topo:
            return Status.skip()
        state[_PS] = topo
        return None

    def score(self, state: CycleState, pod: Pod, info: NodeInfo) -> int:
        topo: dict[str, dict[str, int]] = state[_PS]
        labels = info.node.labels
        total = 0
        for key, values in topo.items():
            val = labels.get(key)
            if val is not None:
                total += values.get(val, 0)
        return total

    def normalize(self, state: CycleState, pod: Pod, scores: dict[str, int]) -> None:
        if not state.get(_PS) or not scores:
            return
        lo = min(scores.values())
        hi = max(scores.values())
        diff = hi - lo
        for name, s in scores.items():
            scores[name] = int(MAX_NODE_SCORE * ((s - lo) / diff)) if diff > 0 else 0
