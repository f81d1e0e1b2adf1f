"""Node lifecycle (simulated): a node without a Ready condition gets the status its kubelet
would post (Ready, allocatable from capacity, kubelet version); PodDisruptionBudget status
(the disruption controller) for ``kubectl get pdb`` and eviction."""

from __future__ import annotations

from typing import Any

from fleetkit.cluster.controllers._common import is_ready, selects
from fleetkit.cluster.store import now_ts
from fleetkit.scheduler import clone

__all__ = ["NodeController", "pdb_status"]

Obj = dict[str, Any]


def pdb_status(pdb: Obj, pods: list[Obj]) -> Obj:
    """currentHealthy, desiredHealthy, expectedPods, disruptionsAllowed over matching pods."""
    matching = [p for p in pods if selects(pdb, p) and not p["metadata"].get("deletionTimestamp")]
    expected = len(matching)
    healthy = sum(1 for p in matching if is_ready(p))
    spec = pdb.get("spec") or {}

    def scaled(v: Any, up: bool) -> int:
        if isinstance(v, str) and v.endswith("%"):
            x = int(v[:-1]) * expected
            return -(-x // 100) if up else x // 100
        return int(v)

    if "maxUnavailable" in spec and spec["maxUnavailable"] is not None:
        desired = max(0, expected - scaled(spec["maxUnavailable"], True))
    elif "minAvailable" in spec and spec["minAvailable"] is not None:
        desired = scaled(spec["minAvailable"], True)
    else:
        desired = expected
    allowed = max(0, healthy - desired)
    return {
        "observedGeneration": pdb["metadata"].get("generation", 1),
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "disruptionsAllowed": allowed,
        "conditions": [
            {
                "type": "DisruptionAllowed",
                "status": "True" if allowed > 0 else "False",
                "reason": "SufficientPods" if allowed > 0 else "InsufficientPods",
                "message": "",
                "observedGeneration": pdb["metadata"].get("generation", 1),
                "lastTransitionTime": now_ts(),
            }
        ],
    }


class NodeController:
    """Fills in a node's kubelet-posted status; keeps PDB status current."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.res = cp.state.res("", "Node")
        self.pdb_res = cp.state.res("policy", "PodDisruptionBudget")
        # a kubelet registers its node with kubernetes.io/hostname; `fleetkit schedule` keeps
        # the Nodes of its inputs as given (kube-scheduler's own tests have nodes without it)
        self.label_hostname = True

    def sync(self, ns: str, name: str) -> None:
        node = self.cp.state.store.get("nodes", "", name)
        if node is None:
            return
        status = node.get("status") or {}
        conds = status.get("conditions") or []
        changed = False
        new = clone(node)
        ns_ = new.setdefault("status", {})
        if not any(c.get("type") == "Ready" for c in conds):
            now = now_ts()
            ns_["conditions"] = list(conds) + [
                {
                    "type": "Ready",
                    "status": "True",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
            ]
            changed = True
        if "allocatable" not in ns_ and "capacity" in ns_:
            ns_["allocatable"] = dict(ns_["capacity"])
            changed = True
        info = ns_.setdefault("nodeInfo", {})
        for k, v in (
            ("kubeletVersion", "v1.32.2"),
            ("kubeProxyVersion", "v1.32.2"),
            ("operatingSystem", "linux"),
            ("architecture", "amd64"),
            ("containerRuntimeVersion", "containerd://1.7.24"),
            ("osImage", "Debian GNU/Linux 12 (bookworm)"),
            ("kernelVersion", "6.1.0-fleetkit"),
        ):
            if k not in info:
                info[k] = v
                changed = True
        if not ns_.get("addresses"):
            idx = self.cp.node_index(name)
            ns_["addresses"] = [
                {"type": "InternalIP", "address": f"172.18.{idx // 250}.{idx % 250 + 2}"},
                {"type": "Hostname", "address": name},
            ]
            changed = True
        labels = new["metadata"].setdefault("labels", {})
        if self.label_hostname and "kubernetes.io/hostname" not in labels:
            labels["kubernetes.io/hostname"] = name
            changed = True
        if changed:
            self.cp.state.store.update("nodes", new)

    def sync_pdb(self, ns: str, name: str) -> None:
        st = self.cp.state
        pdb = st.store.get(self.pdb_res.qualified, ns, name)
        if pdb is None:
            return
        status = pdb_status(pdb, st.objects(st.res("", "Pod"), ns))
        old = dict(pdb.get("status") or {})
        if {k: v for k, v in old.items() if k != "conditions"} != {
            k: v for k, v in status.items() if k != "conditions"
        }:
            new = {**pdb, "status": status, "metadata": dict(pdb["metadata"])}
            st.store.update(self.pdb_res.qualified, new)
