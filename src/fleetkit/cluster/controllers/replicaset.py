"""The ReplicaSet controller: adopt matching orphans, create or delete pods to match
spec.replicas (deleting unscheduled, then doubled-up, then newest first), report status."""

from __future__ import annotations

from typing import Any

from fleetkit.cluster.controllers._common import (
    controller_ref,
    is_active,
    is_ready,
    owner_ref,
    selects,
)
from fleetkit.scheduler import clone

__all__ = ["ReplicaSetController"]

Obj = dict[str, Any]
BURST = 500  # pods created per sync (kube's slow-start batches; the rest on the next sync)


class ReplicaSetController:
    """Keeps each ReplicaSet's pod count at spec.replicas."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        # ReplicaSet uid -> (template generation and priority classes, the defaulted pod spec):
        # the pods of one template share one spec (stored objects are never mutated)
        self.specs: dict[str, tuple[Any, Obj, str]] = {}
        # ReplicaSet uid -> (its template, the metadata its pods start from)
        self.metas: dict[str, tuple[Obj, Obj]] = {}
        self.res = cp.state.res("apps", "ReplicaSet")
        self.pods = cp.state.res("", "Pod")

    def owned_pods(self, rs: Obj) -> list[Obj]:
        """Pods this ReplicaSet controls, adopting orphans its selector matches."""
        self._adopt(rs)
        return list(self.cp.pods_by_owner.get(rs["metadata"]["uid"], {}).values())

    def _adopt(self, rs: Obj) -> None:
        st = self.cp.state
        ns = rs["metadata"]["namespace"]
        for p in self.cp.orphan_candidates(ns, (rs.get("spec") or {}).get("selector")):
            if controller_ref(p) is not None:
                continue
            if selects(rs, p) and is_active(p) and not rs["metadata"].get("deletionTimestamp"):
                new = clone(p)
                new["metadata"].setdefault("ownerReferences", []).append(owner_ref(rs))
                st.store.update("pods", new)

    def sync(self, ns: str, name: str) -> None:
        st = self.cp.state
        rs = st.store.get(self.res.qualified, ns, name)
        if rs is None:
            return
        self._adopt(rs)
        uid = rs["metadata"]["uid"]
        want = int((rs.get("spec") or {}).get("replicas") or 0)
        # the control plane's per-owner counts: no walk over the pods unless some must go
        diff = want - self.cp.owner_counts[uid][0]
        if diff > 0:
            for _ in range(min(diff, BURST)):
                self._create_pod(rs)
            if diff > BURST:
                self.cp.enqueue("replicaset", (ns, name))
        elif diff < 0:
            pods = [p for p in self.cp.pods_by_owner.get(uid, {}).values() if is_active(p)]
            per_node: dict[str, int] = {}
            for p in pods:
                node = (p.get("spec") or {}).get("nodeName") or ""
                if node:
                    per_node[node] = per_node.get(node, 0) + 1

            def rank(p: Obj) -> tuple[int, int, int, str, int]:
                node = (p.get("spec") or {}).get("nodeName") or ""
                return (
                    1 if node else 0,
                    1 if is_ready(p) else 0,
                    -per_node.get(node, 0),
                    # newer first
                    _neg(p["metadata"].get("creationTimestamp")),
                    -int(p["metadata"].get("resourceVersion") or 0),
                )

            for p in sorted(pods, key=rank)[:-diff]:
                st.delete(self.pods, ns, p["metadata"]["name"])
        rs = st.store.get(self.res.qualified, ns, name) or rs
        self._status(rs)

    def _create_pod(self, rs: Obj) -> None:
        st = self.cp.state
        uid = rs["metadata"]["uid"]
        classes = st.store.objects["priorityclasses.scheduling.k8s.io"]
        version = (
            rs["metadata"].get("generation"),
            tuple((k, o["metadata"].get("resourceVersion")) for k, o in classes.items()),
        )
        hit = self.specs.get(uid)
        template = (rs.get("spec") or {}).get("template") or {}
        shared = hit is not None and hit[0] == version
        made = self.metas.get(uid)
        if made is None or made[0] is not template:
            # the template's metadata, copied once per template: its pods share the labels,
            # annotations and owner references (stored objects are never mutated)
            base = clone(template.get("metadata") or {})
            base.pop("creationTimestamp", None)
            base["generateName"] = rs["metadata"]["name"] + "-"
            base["namespace"] = rs["metadata"]["namespace"]
            base["ownerReferences"] = [owner_ref(rs)]
            made = self.metas[uid] = (template, base)
        meta = dict(made[1])
        spec = hit[1] if hit is not None and shared else clone(template.get("spec") or {})
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
        if hit is not None and shared:
            pod["status"] = {"phase": "Pending", "qosClass": hit[2]}
        created = st.create(self.pods, pod, from_template=True, defaulted=shared)
        if not shared:
            self.specs[uid] = (version, created["spec"], created["status"]["qosClass"])
        if self.cp.recorder.normal:  # (`fleetkit schedule` records no Normal events)
            self.cp.recorder.record(
                rs,
                "Normal",
                "SuccessfulCreate",
                f"Created pod: {created['metadata']['name']}",
                "replicaset-controller",
            )

    def _status(self, rs: Obj) -> None:
        uid = rs["metadata"]["uid"]
        active, ready = self.cp.owner_counts[uid]
        spec = rs.get("spec") or {}
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        selected = (spec.get("selector") or {}).get("matchLabels") or {}
        if all(selected.get(k) == v for k, v in labels.items()):
            # every owned pod matches the selector, so it carries each template label
            labeled = active
        else:
            labeled = sum(
                1
                for p in self.cp.pods_by_owner.get(uid, {}).values()
                if is_active(p)
                and all((p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())
            )
        status = {
            "replicas": active,
            "fullyLabeledReplicas": labeled,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        status = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}
        if rs.get("status") != status:
            new = {**rs, "status": status}
            new["metadata"] = dict(rs["metadata"])
            self.cp.state.store.update(self.res.qualified, new)


def _neg(ts: Any) -> str:
    """A sort key that puts later timestamps first."""
    return "".join(chr(0x7F - ord(c)) for c in str(ts or ""))
