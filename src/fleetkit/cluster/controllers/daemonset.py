"""The DaemonSet controller: one pod per eligible node (NodeShouldRunDaemonPod: node name,
affinity, taints), pinned by a ``metadata.name`` node-affinity term and the daemon
tolerations, as kube's controller creates them; the scheduler still places (and may refuse) it."""

from __future__ import annotations

from typing import Any

from fleetkit.cluster.controllers._common import controller_ref, is_active, is_ready, owner_ref
from fleetkit.scheduler import (
    Node,
    clone,
    daemon_tolerations,
    node_should_run_daemon,
    template_hash,
)

__all__ = ["DaemonSetController"]

Obj = dict[str, Any]


def _pinned(pod: Obj) -> str:
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    req = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in req.get("nodeSelectorTerms") or []:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and len(f.get("values") or []) == 1:
                return str(f["values"][0])
    return ""


class DaemonSetController:
    """Keeps one daemon pod on every node that should run it."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.res = cp.state.res("apps", "DaemonSet")
        self.pods = cp.state.res("", "Pod")

    def sync(self, ns: str, name: str) -> None:
        st = self.cp.state
        ds = st.store.get(self.res.qualified, ns, name)
        if ds is None:
            return
        uid = ds["metadata"]["uid"]
        owned = [
            p
            for p in st.objects(self.pods, ns)
            if (controller_ref(p) or {}).get("uid") == uid and is_active(p)
        ]
        by_node: dict[str, list[Obj]] = {}
        for p in owned:
            by_node.setdefault(_pinned(p), []).append(p)
        tmpl = (ds.get("spec") or {}).get("template") or {}
        probe = {"metadata": {"namespace": ns}, "spec": clone(tmpl.get("spec") or {})}
        daemon_tolerations(probe["spec"])
        want: list[str] = []
        for node in st.store.iter("nodes"):
            n = Node.from_obj(node)
            if node_should_run_daemon(n, probe):
                want.append(n.name)
        for node_name in want:
            if not by_node.get(node_name):
                self._create(ds, node_name)
        for node_name, pods in by_node.items():
            extra = pods if node_name not in want else pods[1:]
            for p in extra:
                st.delete(self.pods, ns, p["metadata"]["name"])
        owned = [
            p
            for p in st.objects(self.pods, ns)
            if (controller_ref(p) or {}).get("uid") == uid and is_active(p)
        ]
        scheduled = [p for p in owned if (p.get("spec") or {}).get("nodeName")]
        ready = sum(1 for p in scheduled if is_ready(p))
        status = {
            "currentNumberScheduled": len(scheduled),
            "desiredNumberScheduled": len(want),
            "numberMisscheduled": 0,
            "numberReady": ready,
            "numberAvailable": ready,
            "numberUnavailable": max(0, len(want) - ready),
            "updatedNumberScheduled": len(scheduled),
            "observedGeneration": ds["metadata"].get("generation", 1),
        }
        status = {
            k: v
            for k, v in status.items()
            if v
            or k
            in (
                "currentNumberScheduled",
                "desiredNumberScheduled",
                "numberMisscheduled",
                "numberReady",
            )
        }
        if ds.get("status") != status:
            st.store.update(
                self.res.qualified, {**ds, "status": status, "metadata": dict(ds["metadata"])}
            )

    def _create(self, ds: Obj, node: str) -> None:
        tmpl = clone((ds.get("spec") or {}).get("template") or {})
        meta = dict(tmpl.get("metadata") or {})
        labels = dict(meta.get("labels") or {})
        labels["controller-revision-hash"] = template_hash(tmpl)[:10]
        labels["pod-template-generation"] = str(ds["metadata"].get("generation", 1))
        meta.update(
            {
                "labels": labels,
                "generateName": ds["metadata"]["name"] + "-",
                "namespace": ds["metadata"]["namespace"],
                "ownerReferences": [owner_ref(ds)],
            }
        )
        spec = tmpl.get("spec") or {}
        daemon_tolerations(spec)
        aff = spec.setdefault("affinity", {})
        na = aff.setdefault("nodeAffinity", {})
        na["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
            ]
        }
        created = self.cp.state.create(
            self.pods, {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
        )
        self.cp.recorder.record(
            ds,
            "Normal",
            "SuccessfulCreate",
            f"Created pod: {created['metadata']['name']}",
            "daemonset-controller",
        )
