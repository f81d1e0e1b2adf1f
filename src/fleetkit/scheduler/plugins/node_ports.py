"""NodePorts: a host port (protocol, port) may be bound once per IP, 0.0.0.0 conflicting with all."""

from __future__ import annotations

from fleetkit.scheduler.cluster import NodeInfo
from fleetkit.scheduler.model import Pod
from fleetkit.scheduler.plugins.base import CycleState, Plugin
from fleetkit.scheduler.status import Status

REASON = "node(s) didn't have free ports for the requested pod ports"


class NodePorts(Plugin):
    name = "NodePorts"
    points = frozenset({"preFilter", "filter"})
    node_local = True

    def pre_filter(self, state: CycleState, pod: Pod) -> tuple[None, Status | None]:
        if not pod.host_ports:
            return None, Status.skip()
        return None, None

    def filter(self, state: CycleState, pod: Pod, info: NodeInfo) -> Status | None:
        used = info.used_ports
        if not used:
            return None
        for ip, proto, port in pod.host_ports:
            ips = used.get((proto, port))
            if not ips:
                continue
            if ip == "0.0.0.0" or "0.0.0.0" in ips or ip in ips:
                return Status.unschedulable(REASON)
        return None
