"""NodeName: a pod that names a node fits only there."""

from __future__ import annotations

from fleetkit.scheduler.cluster import NodeInfo
from fleetkit.scheduler.model import Pod
from fleetkit.scheduler.plugins.base import CycleState, Plugin
from fleetkit.scheduler.status import Status

REASON = "node(s) didn't match the requested node name"


class NodeName(Plugin):
    name = "NodeName"
    points = frozenset({"filter"})
    node_local = True

    def filter(self, state: CycleState, pod: Pod, info: NodeInfo) -> Status | None:
        want = str((pod.raw.get("spec") or {}).get("nodeName") or "")
        if want and want != info.name:
            return Status.unresolvable(REASON)
        return None
