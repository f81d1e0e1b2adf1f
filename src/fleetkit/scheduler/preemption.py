"""DefaultPreemption (PostFilter): find nodes where evicting lower-priority pods lets the pod fit,
pick victims as kube does (remove all lower-priority pods, then reprieve from the most important
down), choose the node by kube's ordered criteria, and report 'preemption: ...' otherwise.

PodDisruptionBudgets count as in kube: victims whose eviction would exceed a budget's
``disruptionsAllowed`` (from its status, or computed from minAvailable/maxUnavailable over the
matching running pods) are reprieved first, and nodes with fewer violations win.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fleetkit.scheduler.framework import NOT_HELPFUL, CycleResult, Framework, fit_error_message
from fleetkit.scheduler.labels import Selector, parse_label_selector
from fleetkit.scheduler.model import Pod
from fleetkit.scheduler.status import Code, Status

__all__ = ["preempt", "Preemption", "Budget", "budget_from"]

NO_VICTIMS = "No preemption victims found for incoming pod"
MIN_CANDIDATE_PERCENT = 10
MIN_CANDIDATE_ABSOLUTE = 100
MAX_INT32 = 2**31 - 1


@dataclass(slots=True)
class Preemption:
    node: str | None
    victims: list[Pod]
    message: str


def more_important(p: Pod) -> tuple[int, float, int]:
    """util.MoreImportantPod as a sort key: higher priority first, then earlier start."""
    return (-p.priority, p.start_time, p.seq)


@dataclass(slots=True)
class Budget:
    """A PodDisruptionBudget as preemption reads it."""

    namespace: str
    selector: Selector
    allowed: int
    disrupted: frozenset[str]


def _scaled(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        x = int(value[:-1]) * total / 100
        return math.ceil(x) if round_up else math.floor(x)
    return int(value)


def budget_from(obj: dict[str, Any], pods: list[Pod]) -> Budget:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ns = str(meta.get("namespace") or "default")
    sel = parse_label_selector(spec.get("selector"))
    if "disruptionsAllowed" in status:
        allowed = int(status["disruptionsAllowed"])
    else:
        # what the disruption controller would compute from the running matching pods
        matching = [
            p
            for p in pods
            if p.namespace == ns and not sel.empty and sel.matches(p.labels) and not p.terminating
        ]
        expected = healthy = len(matching)
        if spec.get("minAvailable") is not None:
            desired = _scaled(spec["minAvailable"], expected, True)
        elif spec.get("maxUnavailable") is not None:
            desired = expected - _scaled(spec["maxUnavailable"], expected, True)
        else:
            desired = expected
        allowed = max(0, healthy - desired)
    return Budget(ns, sel, allowed, frozenset(str(k) for k in status.get("disruptedPods") or {}))


def split_by_budget(pods: list[Pod], budgets: list[Budget]) -> tuple[list[Pod], list[Pod]]:
    """filterPodsWithPDBViolation: (violating, non-violating), order kept."""
    left = [b.allowed for b in budgets]
    violating: list[Pod] = []
    fine: list[Pod] = []
    for p in pods:
        hit = False
        if p.labels:
            for i, b in enumerate(budgets):
                if (
                    b.namespace != p.namespace
                    or b.selector.empty
                    or not b.selector.matches(p.labels)
                ):
                    continue
                if p.name in b.disrupted:
                    continue
                left[i] -= 1
                if left[i] < 0:
                    hit = True
        (violating if hit else fine).append(p)
    return violating, fine


def select_victims(
    fw: Framework, pod: Pod, node_name: str, budgets: list[Budget] | None = None
) -> tuple[list[Pod], int, Status | None]:
    """SelectVictimsOnNode: (victims, PDB violations, failure status)."""
    cluster = fw.cluster
    info = cluster.by_name[node_name]
    potential = [p for p in info.pods.values() if p.priority < pod.priority]
    if not potential:
        return [], 0, Status.unresolvable(NO_VICTIMS)
    for p in potential:
        cluster.remove_pod(p)
    try:
        st = fw.fits_on(pod, info)
        if st is not None:
            return [], 0, st
        potential.sort(key=more_important)
        violating, fine = split_by_budget(potential, budgets or [])
        victims: list[Pod] = []
        violations = 0
        for group, counts in ((violating, True), (fine, False)):
            for p in group:
                cluster.add_pod(p, node_name)
                if fw.fits_on(pod, info) is not None:
                    cluster.remove_pod(p)
                    victims.append(p)
                    violations += counts
        return victims, violations, None
    finally:
        for p in potential:
            if p.key not in info.pods:
                cluster.add_pod(p, node_name)


def pick_node(
    cands: dict[str, list[Pod]], order: list[str], violations: dict[str, int] | None = None
) -> str:
    nodes = [n for n in order if n in cands]
    pdb = violations or {}

    def fewest_violations(n: str) -> int:
        return -pdb.get(n, 0)

    def highest(n: str) -> int:
        return -max(p.priority for p in cands[n])

    def sum_prio(n: str) -> int:
        return -sum(p.priority + MAX_INT32 + 1 for p in cands[n])

    def fewest(n: str) -> int:
        return -len(cands[n])

    def latest_start(n: str) -> float:
        top = max(p.priority for p in cands[n])
        return min(p.start_time for p in cands[n] if p.priority == top)

    for f in (fewest_violations, highest, sum_prio, fewest, latest_start):
        best = max(f(n) for n in nodes)
        nodes = [n for n in nodes if f(n) == best]
        if len(nodes) == 1:
            return nodes[0]
    return nodes[0]


def preempt(
    fw: Framework, pod: Pod, res: CycleResult, budgets: list[Budget] | None = None
) -> Preemption:
    if pod.preemption_policy == "Never":
        return Preemption(None, [], "not eligible due to preemptionPolicy=Never.")
    all_nodes = [i.name for i in fw.cluster.infos]
    num = len(all_nodes)
    potential: list[str] = []
    for n in all_nodes:
        st = res.statuses.get(n, res.absent)
        if st is not None and st.code is Code.UNSCHEDULABLE:
            potential.append(n)
    dry: dict[str, Status] = {}
    cands: dict[str, list[Pod]] = {}
    violations: dict[str, int] = {}
    if potential:
        want = max(len(potential) * MIN_CANDIDATE_PERCENT // 100, MIN_CANDIDATE_ABSOLUTE)
        want = min(want, len(potential))
        for n in potential:
            victims, nviol, st = select_victims(fw, pod, n, budgets)
            if st is None and victims:
                cands[n] = victims
                violations[n] = nviol
                # DryRunPreemption stops once it has a non-violating candidate and `want` in all
                if len(cands) >= want and any(not v for v in violations.values()):
                    break
                continue
            if st is None:
                st = Status(Code.ERROR, [f'expected at least one victim pod on node "{n}"'])
            dry[n] = st
    if not cands:
        msg = fit_error_message(num, dry, Status.unresolvable(NOT_HELPFUL))
        return Preemption(None, [], msg)
    node = pick_node(cands, all_nodes, violations)
    return Preemption(node, sorted(cands[node], key=more_important), "")
