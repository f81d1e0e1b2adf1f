"""One scheduling cycle for one pod: PreFilter, Filter, PostFilter (preemption), PreScore, Score,
NormalizeScore, weights, host selection; and the FailedScheduling text (FitError.Error)."""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from fleetkit.scheduler.cluster import Cluster, NodeInfo
from fleetkit.scheduler.model import HOSTNAME, Pod
from fleetkit.scheduler.plugins.base import MAX_NODE_SCORE, MULTIPLICITY, CycleState, Plugin
from fleetkit.scheduler.profile import REGISTRY, ProfileSpec
from fleetkit.scheduler.status import Code, PreFilterResult, Status

__all__ = [
    "Framework",
    "CycleResult",
    "fit_error_message",
    "kth_of_two",
    "NOT_HELPFUL",
    "RETRY_ON_BIND",
]

NOT_HELPFUL = "Preemption is not helpful for scheduling"
MIN_FEASIBLE_NODES = 100
MIN_FEASIBLE_PERCENT = 5
LOCAL_MEMO_MAX = 8192  # node-local results kept (pod specs x class signatures)
# plugins whose failures a binding may resolve: their Unschedulable pods are retried on each bind
RETRY_ON_BIND = {"InterPodAffinity", "PodTopologySpread"}


def kth_of_two(a: list[int], b: list[int], k: int) -> int:
    """The ``k``-th smallest (from 0) of two sorted lists without common items."""
    # take i items from a and k + 1 - i from b: the smallest i where a's next is not smaller
    # than b's last taken
    lo, hi = max(0, k + 1 - len(b)), min(k + 1, len(a))
    while lo < hi:
        i = (lo + hi) // 2
        if i < len(a) and b[k - i] > a[i]:
            lo = i + 1
        else:
            hi = i
    j = k + 1 - lo
    if lo == 0:
        return b[j - 1]
    if j == 0:
        return a[lo - 1]
    return max(a[lo - 1], b[j - 1])


def _invalid_score(plugin: str, score: int) -> str:
    return (
        f'plugin "{plugin}" returns an invalid score {score}, it should in the range '
        f"of [0, {MAX_NODE_SCORE}] after normalizing"
    )


def fit_error_message(
    num_all: int,
    statuses: dict[str, Status],
    absent: Status | None,
    prefilter_msg: str = "",
    postfilter_msg: str = "",
) -> str:
    """framework.FitError.Error(): reasons counted over nodes, formatted 'N reason', sorted as strings."""
    msg = f"0/{num_all} nodes are available:"
    if prefilter_msg:
        msg += f" {prefilter_msg}."
    else:
        hist: dict[str, int] = {}
        for s in statuses.values():
            for r in s.reasons:
                hist[r] = hist.get(r, 0) + 1
        if len(statuses) < num_all and absent is not None:
            for r in absent.reasons:
                hist[r] = hist.get(r, 0) + num_all - len(statuses)
        parts = sorted(f"{n} {r}" for r, n in hist.items())
        if parts:
            msg += " " + ", ".join(parts) + "."
    if postfilter_msg:
        msg += " " + postfilter_msg
    return msg


@dataclass(slots=True)
class _Local:
    """The node-local plugins' outcome for one pod spec on one node state (a class signature):
    the first failing local filter (its index in the profile's filters), raw local scores."""

    fail_at: int
    status: Status | None
    scores: dict[int, int] = field(default_factory=dict)  # scorer index -> raw score
    base: int | None = None  # the weighted sum of the local scores that are not normalized
    base_error: tuple[int, str] | None = None


@dataclass(slots=True)
class CycleResult:
    node: str | None = None
    statuses: dict[str, Status] = field(default_factory=dict)
    absent: Status | None = None
    prefilter_msg: str = ""
    feasible: list[str] = field(default_factory=list)
    scores: dict[str, dict[str, int]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    message: str | None = None
    nominated: str | None = None
    victims: list[Pod] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)


class Framework:
    def __init__(
        self,
        spec: ProfileSpec,
        cluster: Cluster,
        ctx: Any,
        percentage: int | None,
        rng: random.Random,
    ) -> None:
        self.spec = spec
        self.cluster = cluster
        self.ctx = ctx
        self.percentage = percentage
        self.rng = rng
        instances: dict[str, Plugin] = {}

        def get(name: str) -> Plugin:
            if name not in instances:
                instances[name] = REGISTRY[name](spec.args.get(name, {}), cluster, ctx)
            return instances[name]

        self.pre_filter = [get(n) for n in spec.points.get("preFilter", [])]
        self.filters = [get(n) for n in spec.points.get("filter", [])]
        self.post_filter = [get(n) for n in spec.points.get("postFilter", [])]
        self.pre_score = [get(n) for n in spec.points.get("preScore", [])]
        self.scorers = [(get(n), spec.weights.get(n, 1)) for n in spec.points.get("score", [])]
        self.next_start = 0
        # the equivalence-class path: node-local results by (pod spec token, class id)
        self._global_filters = [(i, pl) for i, pl in enumerate(self.filters) if not pl.node_local]
        self._memo: dict[tuple[Any, int], _Local] = {}
        self._classes_ok_by_spec: dict[Any, bool] = {}
        # scorers summed once per memo entry, and the rest (global, or normalized per cycle)
        self._folded_scorers = [
            (j, pl, w)
            for j, (pl, w) in enumerate(self.scorers)
            if pl.node_local and "normalizeScore" not in pl.points
        ]
        folded = {j for j, _pl, _w in self._folded_scorers}
        self._live_scorers = [
            (j, pl, w, pl.node_local) for j, (pl, w) in enumerate(self.scorers) if j not in folded
        ]

    # -- building blocks ---------------------------------------------------------------------
    def run_pre_filter(
        self, state: CycleState, pod: Pod
    ) -> tuple[PreFilterResult, Status | None, list[str], set[str]]:
        result = PreFilterResult(None)
        ret: Status | None = None
        with_nodes: list[str] = []
        skip: set[str] = set()
        for pl in self.pre_filter:
            r, s = pl.pre_filter(state, pod)
            if s is not None and s.code is Code.SKIP:
                skip.add(pl.name)
                continue
            if s is not None and not s.ok:
                s.plugin = pl.name
                if s.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                    return result, s, with_nodes, skip
                if s.code is Code.UNSCHEDULABLE:
                    ret = s
                    continue
                return (
                    result,
                    Status.error(f'running PreFilter plugin "{pl.name}": {s.message}').with_plugin(
                        pl.name
                    ),
                    with_nodes,
                    skip,
                )
            if r is not None and r.node_names is not None:
                with_nodes.append(pl.name)
            result = result.merge(r)
            if result.node_names is not None and not result.node_names:
                if len(with_nodes) == 1:
                    msg = f"node(s) didn't satisfy plugin {with_nodes[0]}"
                else:
                    msg = (
                        f"node(s) didn't satisfy plugin(s) [{' '.join(sorted(with_nodes))}] "
                        "simultaneously"
                    )
                return result, Status.unresolvable(msg), with_nodes, skip
        return result, ret, with_nodes, skip

    def run_filters(
        self, state: CycleState, pod: Pod, info: NodeInfo, skip: set[str]
    ) -> Status | None:
        for pl in self.filters:
            if pl.name in skip:
                continue
            s = pl.filter(state, pod, info)
            if s is not None and not s.ok:
                s.plugin = pl.name
                return s
        return None

    def fits_on(self, pod: Pod, info: NodeInfo) -> Status | None:
        """PreFilter (fresh, on the current state) + Filter on one node; used by preemption."""
        state: CycleState = {}
        res, st, _with, skip = self.run_pre_filter(state, pod)
        if st is not None and not st.ok:
            return st
        if res.node_names is not None and info.name not in res.node_names:
            return Status.unresolvable("node(s) didn't satisfy plugin(s)")
        return self.run_filters(state, pod, info, skip)

    def num_to_find(self, n: int) -> int:
        if self.percentage is None or n < MIN_FEASIBLE_NODES:
            return n
        pct = self.percentage
        if pct == 0:
            pct = max(50 - n // 125, MIN_FEASIBLE_PERCENT)
        return max(n * pct // 100, MIN_FEASIBLE_NODES)

    # -- the cycle ---------------------------------------------------------------------------
    def schedule(self, pod: Pod, explain: bool = False) -> CycleResult:
        out = CycleResult()
        state: CycleState = {}
        infos = self.cluster.infos
        if explain:
            out.evaluated = [i.name for i in infos]
        if not infos:
            out.message = "no nodes available to schedule pods"
            out.error = out.message
            return out
        res, st, with_nodes, skip = self.run_pre_filter(state, pod)
        if st is not None and not st.ok:
            if st.code is Code.ERROR:
                out.error = st.message
                return out
            out.absent = st
            out.prefilter_msg = st.message
            return out
        # evaluateNominatedNode: a node nominated by preemption is tried first and taken if it
        # passes Filter (explain still evaluates every node, for display)
        nominated = ""
        if pod.nominated_node and pod.nominated_node in self.cluster.by_name:
            info = self.cluster.by_name[pod.nominated_node]
            if (res.node_names is None or info.name in res.node_names) and self.run_filters(
                state, pod, info, skip
            ) is None:
                if not explain:
                    out.node = info.name
                    out.feasible = [info.name]
                    return out
                nominated = info.name
        if (
            not explain
            and self.percentage is None
            and res.node_names is None
            and self._classes_ok(pod)
        ):
            self._schedule_classes(state, pod, skip, out)
            return out
        nodes = infos
        if res.node_names is not None:
            nodes = [i for i in infos if i.name in res.node_names]
            out.absent = Status.unresolvable(
                f"node(s) didn't satisfy plugin(s) [{' '.join(sorted(with_nodes))}]"
            ).with_plugin(",".join(sorted(with_nodes)))
        feasible: list[NodeInfo] = []
        want = len(nodes) if explain else self.num_to_find(len(nodes))
        n = len(nodes)
        start = self.next_start % n if n and want < n else 0
        processed = 0
        for k in range(n):
            info = nodes[(start + k) % n]
            processed += 1
            s = self.run_filters(state, pod, info, skip)
            if s is None:
                feasible.append(info)
                if len(feasible) >= want:
                    break
            elif s.code is Code.ERROR:
                out.error = f'running "{s.plugin}" filter plugin: {s.message}'
                return out
            else:
                out.statuses[info.name] = s
        if want < n:
            self.next_start = (start + processed) % max(n, 1)
        out.feasible = [i.name for i in feasible]
        if not feasible:
            return out
        if len(feasible) == 1 and not explain:
            out.node = feasible[0].name
            return out
        err = self._score(state, pod, feasible, out)
        if err:
            out.error = err
            return out
        if nominated:
            out.node = nominated
            return out
        best = max(out.totals.values())
        top = [i.name for i in feasible if out.totals[i.name] == best]
        out.node = top[0] if len(top) == 1 else top[self.rng.randrange(len(top))]
        return out

    # -- equivalence classes: one evaluation per class of interchangeable nodes -----------------
    def _classes_ok(self, pod: Pod) -> bool:
        """Node identity must not matter: no nodeName, no hostname/field node selectors."""
        if (pod.raw.get("spec") or {}).get("nodeName"):
            return False
        ok = self._classes_ok_by_spec.get(pod.spec_token)
        if ok is None:
            if len(self._classes_ok_by_spec) >= LOCAL_MEMO_MAX:
                self._classes_ok_by_spec.clear()
            ok = self._classes_ok_by_spec[pod.spec_token] = self._spec_classes_ok(pod)
        return ok

    def _spec_classes_ok(self, pod: Pod) -> bool:
        if HOSTNAME in pod.node_selector:
            return False
        terms = list(pod.required_node_terms or ()) + [t for _w, t in pod.preferred_node_terms]
        for t in terms:
            if t.fields or any(r.key == HOSTNAME for r in t.expressions):
                return False
        for pl in self.filters:
            if pl.name == "NodeAffinity" and pl.args.get("addedAffinity"):
                return False
        return True

    def _local(self, state: CycleState, pod: Pod, info: NodeInfo, skip: set[str]) -> _Local:
        """The node-local filters on ``info`` (memoized by pod spec and class signature)."""
        key = (pod.spec_token, info.sig_id)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        if len(self._memo) >= LOCAL_MEMO_MAX:
            self._memo.clear()
        entry = _Local(len(self.filters), None)
        for i, pl in enumerate(self.filters):
            if not pl.node_local or pl.name in skip:
                continue
            s = pl.filter(state, pod, info)
            if s is not None and not s.ok:
                s.plugin = pl.name
                entry.fail_at, entry.status = i, s
                break
        self._memo[key] = entry
        return entry

    def _schedule_classes(
        self, state: CycleState, pod: Pod, skip: set[str], out: CycleResult
    ) -> None:
        infos = self.cluster.infos
        feasible: list[NodeInfo] = []
        members_of: dict[str, list[int]] = {}
        failed: list[tuple[Status, list[int]]] = []
        local: list[_Local] = []
        global_filters = self._global_filters
        for rep, members in self.cluster.class_groups():
            entry = self._local(state, pod, rep, skip)
            s = entry.status
            for i, pl in global_filters:
                if i > entry.fail_at:
                    break
                if pl.name in skip:
                    continue
                g = pl.filter(state, pod, rep)
                if g is not None and not g.ok:
                    g.plugin = pl.name
                    s = g
                    break
            if s is None:
                feasible.append(rep)
                members_of[rep.name] = members
                local.append(entry)
            elif s.code is Code.ERROR:
                out.error = f'running "{s.plugin}" filter plugin: {s.message}'
                return
            else:
                failed.append((s, members))
        if not feasible:
            for s, members in failed:
                for idx in members:
                    out.statuses[infos[idx].name] = s
            return
        total = sum(len(m) for m in members_of.values())
        out.feasible = [f.name for f in feasible]
        if total == 1:
            out.node = feasible[0].name
            return
        state[MULTIPLICITY] = {name: len(m) for name, m in members_of.items()}
        err = self._score_classes(state, pod, feasible, local, out)
        if err:
            out.error = err
            return
        best = max(out.totals.values())
        tops = [members_of[f.name] for f in feasible if out.totals[f.name] == best]
        count = sum(len(m) for m in tops)
        if count == 1:
            out.node = infos[tops[0][0]].name
            return
        k = self.rng.randrange(count)
        if len(tops) == 1:
            out.node = infos[tops[0][k]].name
            return
        if len(tops) == 2:
            out.node = infos[kth_of_two(tops[0], tops[1], k)].name
            return
        # the k-th smallest node index across the tied classes (as the per-node path sees them)
        lo, hi = 0, len(infos) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if sum(map(bisect.bisect_right, tops, itertools.repeat(mid, len(tops)))) > k:
                hi = mid
            else:
                lo = mid + 1
        out.node = infos[lo].name

    def _pre_score(self, state: CycleState, pod: Pod, feasible: list[NodeInfo]) -> str | set[str]:
        """PreScore: the plugins that skip, or the error message."""
        skip: set[str] = set()
        for pl in self.pre_score:
            s = pl.pre_score(state, pod, feasible)
            if s is None or s.ok:
                continue
            if s.code is Code.SKIP:
                skip.add(pl.name)
                continue
            return f'running PreScore plugin "{pl.name}": {s.message}'
        return skip

    def _score(
        self, state: CycleState, pod: Pod, feasible: list[NodeInfo], out: CycleResult
    ) -> str | None:
        skip = self._pre_score(state, pod, feasible)
        if isinstance(skip, str):
            return skip
        totals = {i.name: 0 for i in feasible}
        per_node: dict[str, dict[str, int]] = {i.name: {} for i in feasible}
        for pl, weight in self.scorers:
            if pl.name in skip:
                for name in per_node:
                    per_node[name][pl.name] = 0
                continue
            scores = {i.name: pl.score(state, pod, i) for i in feasible}
            if "normalizeScore" in pl.points:
                pl.normalize(state, pod, scores)
            for name, sc in scores.items():
                if sc < 0 or sc > MAX_NODE_SCORE:
                    return _invalid_score(pl.name, sc)
                per_node[name][pl.name] = sc
                totals[name] += sc * weight
        out.scores = per_node
        out.totals = totals
        return None

    def _score_classes(
        self,
        state: CycleState,
        pod: Pod,
        feasible: list[NodeInfo],
        local: list[_Local],
        out: CycleResult,
    ) -> str | None:
        """:meth:`_score` over class representatives (``local``: their memo entries, in the same
        order): node-local scores that need no normalizing are summed once per pod spec and
        class; the rest per cycle. Totals only (no per-plugin record: nothing explains here)."""
        skip = self._pre_score(state, pod, feasible)
        if isinstance(skip, str):
            return skip
        # (scorer index, position in feasible, message): the first in kube's order is reported
        errors: list[tuple[int, int, str]] = []
        totals: dict[str, int] = {}
        for pos, (info, entry) in enumerate(zip(feasible, local, strict=True)):
            if entry.base is None:
                entry.base, entry.base_error = self._base_score(state, pod, info, skip)
            if entry.base_error is not None:
                errors.append((entry.base_error[0], pos, entry.base_error[1]))
            totals[info.name] = entry.base
        for j, pl, weight, is_local in self._live_scorers:
            if pl.name in skip:
                continue
            if is_local:
                scores = {}
                for info, entry in zip(feasible, local, strict=True):
                    sc = entry.scores.get(j)
                    if sc is None:
                        sc = entry.scores[j] = pl.score(state, pod, info)
                    scores[info.name] = sc
            else:
                scores = {info.name: pl.score(state, pod, info) for info in feasible}
            if "normalizeScore" in pl.points:
                pl.normalize(state, pod, scores)
            for pos, (name, sc) in enumerate(scores.items()):
                if sc < 0 or sc > MAX_NODE_SCORE:
                    errors.append((j, pos, _invalid_score(pl.name, sc)))
                    break
                totals[name] += sc * weight
        if errors:
            return min(errors)[2]
        out.totals = totals
        return None

    def _base_score(
        self, state: CycleState, pod: Pod, info: NodeInfo, skip: set[str]
    ) -> tuple[int, tuple[int, str] | None]:
        """The weighted sum of the node-local scores that are not normalized (which plugins
        skip is decided by the pod alone), and the first invalid one."""
        total = 0
        for j, pl, weight in self._folded_scorers:
            if pl.name in skip:
                continue
            sc = pl.score(state, pod, info)
            if sc < 0 or sc > MAX_NODE_SCORE:
                return total, (j, _invalid_score(pl.name, sc))
            total += sc * weight
        return total, None
