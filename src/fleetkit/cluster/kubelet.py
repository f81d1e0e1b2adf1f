"""The simulated kubelet: a bound pod starts at once (Running, every container ready, pod IP
from the node's range); nothing runs, logs are empty, images are not pulled."""

from __future__ import annotations

import hashlib
from typing import Any

from fleetkit.cluster.store import now_ts

__all__ = ["Kubelet"]

Obj = dict[str, Any]


class Kubelet:
    """Marks pods bound to a node Running and Ready."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.next_ip: dict[str, int] = {}
        # `fleetkit schedule`: the pod starts in the same write as its binding (one store update
        # per pod; nothing watches the Pending -> Running step offline)
        self.with_binding = False
        # parts of a started pod's status that are equal for every pod started in the same
        # second (or on the same node), shared: stored objects are never mutated
        self._now = ""
        self._ready: list[Obj] = []
        self._running: Obj = {}
        self._conditions: dict[int, tuple[Obj, list[Obj]]] = {}
        self._host_ips: dict[str, list[Obj]] = {}
        self._node_ip: dict[str, tuple[Obj | None, str]] = {}  # node name -> (node, InternalIP)

    def _ips(self, node: Obj | None, name: str) -> tuple[str, str]:
        known = self._node_ip.get(name)
        if known is not None and known[0] is node:
            host = known[1]
        else:
            host = ""
            for a in ((node or {}).get("status") or {}).get("addresses") or []:
                if a.get("type") == "InternalIP":
                    host = str(a.get("address"))
            self._node_ip[name] = (node, host)
        idx = self.cp.node_index(name)
        n = self.next_ip.get(name, 1) + 1
        self.next_ip[name] = n
        return host, f"10.{244 + idx // 250}.{idx % 250}.{n % 254 + 1}"

    def sync(self, ns: str, name: str) -> None:
        pod = self.cp.state.store.get("pods", ns, name)
        if pod is None:
            return
        new = self.started(pod)
        if new is not None:
            self.cp.state.store.update("pods", new)

    @staticmethod
    def wants(pod: Obj) -> bool:
        """Whether this kubelet has a pod to start: bound, not deleted, not finished, not
        already Running and Ready."""
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        if not spec.get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            return False
        phase = status.get("phase")
        if phase in ("Succeeded", "Failed"):
            return False
        if phase != "Running":
            return True
        for c in status.get("conditions") or []:
            if c.get("type") == "Ready":
                return False
        return True

    def _conditions_for(self, now: str, scheduled: Obj | None) -> list[Obj]:
        """Ready and the other started conditions at ``now``, then PodScheduled as it was."""
        if now != self._now:
            self._now = now
            self._ready = [
                {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
                for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
            ]
            self._running = {"running": {"startedAt": now}}
            self._conditions.clear()
        if scheduled is None:
            return list(self._ready)
        hit = self._conditions.get(id(scheduled))
        if hit is None or hit[0] is not scheduled:
            if len(self._conditions) >= 64:
                self._conditions.clear()
            hit = self._conditions[id(scheduled)] = (scheduled, self._ready + [scheduled])
        return hit[1]

    def started(self, pod: Obj) -> Obj | None:
        """The bound pod as this kubelet reports it once its containers run (None: no change)."""
        if not self.wants(pod):
            return None
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        spec = pod.get("spec") or {}
        node_name = spec["nodeName"]
        node = self.cp.state.store.get("nodes", "", node_name)
        if node is None:
            return None
        now = now_ts()
        host_ip, pod_ip = self._ips(node, node_name)
        if spec.get("hostNetwork"):
            pod_ip = host_ip
        st = dict(pod.get("status") or {})
        new = {**pod, "metadata": dict(pod["metadata"]), "status": st}
        st["phase"] = "Running"
        scheduled = next(
            (c for c in st.get("conditions") or [] if c.get("type") == "PodScheduled"), None
        )
        st["conditions"] = self._conditions_for(now, scheduled)
        st["hostIP"] = host_ip
        if host_ip:
            ips = self._host_ips.get(node_name)
            if ips is None or ips[0]["ip"] != host_ip:
                ips = self._host_ips[node_name] = [{"ip": host_ip}]
            st["hostIPs"] = ips
        else:
            st["hostIPs"] = []
        st["podIP"] = pod_ip
        st["podIPs"] = [{"ip": pod_ip}]
        st.setdefault("startTime", now)
        st["containerStatuses"] = [
            {
                "name": c.get("name"),
                "state": self._running,
                "lastState": {},
                "ready": True,
                "restartCount": 0,
                "image": c.get("image"),
                "imageID": "",
                "containerID": "containerd://"
                + hashlib.sha256(f"{ns}/{name}/{c.get('name')}".encode()).hexdigest(),
                "started": True,
            }
            for c in spec.get("containers") or []
        ]
        if spec.get("initContainers"):
            st["initContainerStatuses"] = [
                {
                    "name": c.get("name"),
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": now,
                            "finishedAt": now,
                        }
                    },
                    "lastState": {},
                    "ready": True,
                    "restartCount": 0,
                    "image": c.get("image"),
                    "imageID": "",
                }
                for c in spec["initContainers"]
            ]
        return new
