"""DefaultPreemption (PostFilter): find nodes where evicting lower-priority pods lets the pod fit,
pick victims as kube does (remove all lower-priority pods, then reprieve from the most important
down), choose the node by kube's ordered criteria, and report 'preemption: ...' otherwise.

PodDisruptionBudgets are not modelled: no victim counts as a PDB violation.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetkit.scheduler.framework import NOT_HELPFUL, CycleResult, Framework, fit_error_message
from fleetkit.scheduler.model import Pod
from fleetkit.scheduler.status import Code, Status

__all__ = ["preempt", "Preemption"]

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


def select_victims(fw: Framework, pod: Pod, node_name: str) -> tuple[list[Pod], Status | None]:
    cluster = fw.cluster
    info = cluster.by_name[node_name]
    potential = [p for p in info.pods.values() if p.priority < pod.priority]
    if not potential:
        return [], Status.unresolvable(NO_VICTIMS)
    for p in potential:
        cluster.remove_pod(p)
    try:
        st = fw.fits_on(pod, info)
        if st is not None:
            return [], st
        potential.sort(key=more_important)
        victims: list[Pod] = []
        for p in potential:
            cluster.add_pod(p, node_name)
            if fw.fits_on(pod, info) is not None:
                cluster.remove_pod(p)
                victims.append(p)
        return victims, None
    finally:
        for p in potential:
            if p.key not in info.pods:
                cluster.add_pod(p, node_name)


def pick_node(cands: dict[str, list[Pod]], order: list[str]) -> str:
    nodes = [n for n in order if n in cands]

    def highest(n: str) -> int:
        return -max(p.priority for p in cands[n])

    def sum_prio(n: str) -> int:
        return -sum(p.priority + MAX_INT32 + 1 for p in cands[n])

    def fewest(n: str) -> int:
        return -len(cands[n])

    def latest_start(n: str) -> float:
        top = max(p.priority for p in cands[n])
        return min(p.start_time for p in cands[n] if p.priority == top)

    for f in (highest, sum_prio, fewest, latest_start):
        best = max(f(n) for n in nodes)
        nodes = [n for n in nodes if f(n) == best]
        if len(nodes) == 1:
            return nodes[0]
    return nodes[0]


def preempt(fw: Framework, pod: Pod, res: CycleResult) -> Preemption:
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
    if potential:
        want = max(len(potential) * MIN_CANDIDATE_PERCENT // 100, MIN_CANDIDATE_ABSOLUTE)
        want = min(want, len(potential))
        for n in potential:
            victims, st = select_victims(fw, pod, n)
            if st is None and victims:
                cands[n] = victims
                if len(cands) >= want:
                    break
                continue
            if st is None:
                st = Status(Code.ERROR, [f'expected at least one victim pod on node "{n}"'])
            dry[n] = st
    if not cands:
        msg = fit_error_message(num, dry, Status.unresolvable(NOT_HELPFUL))
        return Preemption(None, [], msg)
    node = pick_node(cands, all_nodes)
    return Preemption(node, sorted(cands[node], key=more_important), "")
