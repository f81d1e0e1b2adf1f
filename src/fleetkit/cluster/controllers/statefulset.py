"""The StatefulSet controller: pods ``NAME-0`` .. ``NAME-(n-1)`` with stable hostnames;
OrderedReady creates ordinal i only once every lower ordinal is Running and Ready, Parallel
creates them all; scale-down removes the highest ordinals first."""

from __future__ import annotations

from typing import Any

from fleetkit.cluster.controllers._common import controller_ref, is_active, is_ready, owner_ref
from fleetkit.scheduler import clone, template_hash

__all__ = ["StatefulSetController"]

Obj = dict[str, Any]


def _ordinal(pod: Obj, name: str) -> int:
    suffix = pod["metadata"]["name"][len(name) + 1 :]
    return int(suffix) if suffix.isdigit() else -1


class StatefulSetController:
    """Keeps each StatefulSet's ordinals in order."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.res = cp.state.res("apps", "StatefulSet")
        self.pods = cp.state.res("", "Pod")

    def sync(self, ns: str, name: str) -> None:
        st = self.cp.state
        sts = st.store.get(self.res.qualified, ns, name)
        if sts is None:
            return
        spec = sts.get("spec") or {}
        want = int(spec.get("replicas", 1))
        ordered = (spec.get("podManagementPolicy") or "OrderedReady") == "OrderedReady"
        uid = sts["metadata"]["uid"]
        owned = {
            _ordinal(p, name): p
            for p in self.cp.pods_by_owner.get(uid, {}).values()
            if is_active(p) and (controller_ref(p) or {}).get("uid") == uid
        }
        for i in sorted((o for o in owned if o >= want or o < 0), reverse=True):
            st.delete(self.pods, ns, owned.pop(i)["metadata"]["name"])
        revision = f"{name}-{template_hash(spec.get('template') or {})[:10]}"
        for i in range(want):
            if i in owned:
                if ordered and not is_ready(owned[i]):
                    break
                continue
            self._create(sts, i, revision)
            if ordered:
                break
        pods = [
            p
            for p in self.cp.pods_by_owner.get(uid, {}).values()
            if is_active(p) and (controller_ref(p) or {}).get("uid") == uid
        ]
        ready = sum(1 for p in pods if is_ready(p))
        status = {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": len(pods),
            "readyReplicas": ready,
            "currentReplicas": len(pods),
            "updatedReplicas": len(pods),
            "availableReplicas": ready,
            "currentRevision": revision,
            "updateRevision": revision,
            "collisionCount": 0,
        }
        status = {
            k: v
            for k, v in status.items()
            if v or k in ("replicas", "collisionCount", "availableReplicas")
        }
        if sts.get("status") != status:
            st.store.update(
                self.res.qualified, {**sts, "status": status, "metadata": dict(sts["metadata"])}
            )

    def _create(self, sts: Obj, i: int, revision: str) -> None:
        name = f"{sts['metadata']['name']}-{i}"
        tmpl = clone((sts.get("spec") or {}).get("template") or {})
        meta = dict(tmpl.get("metadata") or {})
        labels = dict(meta.get("labels") or {})
        labels.update(
            {
                "controller-revision-hash": revision,
                "statefulset.kubernetes.io/pod-name": name,
                "apps.kubernetes.io/pod-index": str(i),
            }
        )
        meta.update(
            {
                "name": name,
                "namespace": sts["metadata"]["namespace"],
                "labels": labels,
                "ownerReferences": [owner_ref(sts)],
            }
        )
        meta.pop("generateName", None)
        spec = tmpl.get("spec") or {}
        spec["hostname"] = name
        svc = (sts.get("spec") or {}).get("serviceName")
        if svc:
            spec["subdomain"] = svc
        self.cp.state.create(
            self.pods, {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
        )
        self.cp.recorder.record(
            sts,
            "Normal",
            "SuccessfulCreate",
            f"create Pod {name} in StatefulSet {sts['metadata']['name']} successful",
            "statefulset-controller",
        )
