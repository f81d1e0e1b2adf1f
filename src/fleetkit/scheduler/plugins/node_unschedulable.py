"""NodeUnschedulable: a cordoned node admits only pods tolerating the unschedulable taint."""

from __future__ import annotations

from fleetkit.scheduler.cluster import NodeInfo
from fleetkit.scheduler.model import Pod, Taint, tolerates_taint
from fleetkit.scheduler.plugins.base import CycleState, Plugin
from fleetkit.scheduler.status import Status

REASON = "node(s) were unschedulable"
_TAINT = Taint("node.kubernetes.io/unschedulable", "", "NoSchedule")


class NodeUnschedulable(Plugin):
    name = "NodeUnschedulable"
    points = frozenset({"filter"})
    node_local = True

    def filter(self, state: CycleState, pod: Pod, info: NodeInfo) -> Status | None:
        if info.node.unschedulable and not tolerates_taint(pod.tolerations, _TAINT):
            return Status.unresolvable(REASON)
        return None
