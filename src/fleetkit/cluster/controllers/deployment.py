"""The Deployment controller: one ReplicaSet per pod template (``NAME-<pod-template-hash>``),
adopted by selector whatever the order objects arrived in; RollingUpdate (maxSurge,
maxUnavailable) or Recreate; revision annotations for ``kubectl rollout history/undo``;
status and conditions for ``kubectl rollout status``."""

from __future__ import annotations

import math
from typing import Any

from fleetkit.cluster.controllers._common import controller_ref, is_active, owner_ref, selects
from fleetkit.cluster.store import now_ts
from fleetkit.scheduler import clone, template_hash

__all__ = ["DeploymentController"]

Obj = dict[str, Any]
HASH = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"


def _resolve(v: Any, total: int, up: bool) -> int:
    if v is None:
        v = "25%"
    if isinstance(v, str) and v.endswith("%"):
        x = int(v[:-1]) * total / 100
        return math.ceil(x) if up else math.floor(x)
    return int(v)


def _strip_hash(tmpl: Obj) -> Obj:
    t: Obj = clone(tmpl)
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH, None)
    return t


def _revision(rs: Obj) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION) or 0)
    except ValueError:
        return 0


class DeploymentController:
    """Rolls each Deployment's ReplicaSets toward its template and replicas."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.res = cp.state.res("apps", "Deployment")
        self.rs_res = cp.state.res("apps", "ReplicaSet")

    def owned(self, d: Obj) -> list[Obj]:
        st = self.cp.state
        ns, uid = d["metadata"]["namespace"], d["metadata"]["uid"]
        out = []
        for rs in st.objects(self.rs_res, ns):
            ref = controller_ref(rs)
            if ref is not None:
                if ref.get("uid") == uid:
                    out.append(rs)
                continue
            if selects(d, rs):
                new = clone(rs)
                new["metadata"].setdefault("ownerReferences", []).append(owner_ref(d))
                out.append(st.store.update(self.rs_res.qualified, new))
        return sorted(
            out, key=lambda r: (str(r["metadata"].get("creationTimestamp")), r["metadata"]["name"])
        )

    def _scale(self, d: Obj, rs: Obj, n: int) -> Obj:
        old = int(rs["spec"].get("replicas") or 0)
        if old == n:
            return rs
        new = clone(rs)
        new["spec"]["replicas"] = n
        ann = new["metadata"].setdefault("annotations", {})
        ann["deployment.kubernetes.io/desired-replicas"] = str(d["spec"].get("replicas", 1))
        out: Obj = self.cp.state.store.update(self.rs_res.qualified, new)
        verb = "up" if n > old else "down"
        self.cp.recorder.record(
            d,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled {verb} replica set {rs['metadata']['name']} from {old} to {n}",
            "deployment-controller",
        )
        return out

    def sync(self, ns: str, name: str) -> None:
        st = self.cp.state
        d = st.store.get(self.res.qualified, ns, name)
        if d is None:
            return
        spec = d["spec"]
        want = int(spec.get("replicas", 1))
        rss = self.owned(d)
        tmpl = spec.get("template") or {}
        new_rs = next(
            (r for r in rss if _strip_hash(r["spec"].get("template") or {}) == _strip_hash(tmpl)),
            None,
        )
        olds = [r for r in rss if r is not new_rs]
        max_rev = max((_revision(r) for r in rss), default=0)
        if spec.get("paused"):
            self._status(d, new_rs, rss)
            return
        if new_rs is None:
            new_rs = self._create_rs(
                d,
                max_rev + 1,
                0 if any(int(r["spec"].get("replicas") or 0) for r in olds) else want,
            )
            rss.append(new_rs)
        elif _revision(new_rs) < max_rev or _revision(new_rs) == 0:
            new_rs = self._set_revision(
                new_rs, max_rev + 1 if _revision(new_rs) < max_rev else max(max_rev, 1)
            )
        rss = [new_rs] + olds
        strategy = (spec.get("strategy") or {}).get("type") or "RollingUpdate"
        if strategy == "Recreate":
            active_old = any(int(r["spec"].get("replicas") or 0) for r in olds)
            for r in olds:
                self._scale(d, r, 0)
            old_pods = any(
                is_active(p)
                for r in olds
                for p in st.objects(st.res("", "Pod"), ns)
                if (controller_ref(p) or {}).get("uid") == r["metadata"]["uid"]
            )
            if not active_old and not old_pods:
                new_rs = self._scale(d, new_rs, want)
        else:
            ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
            surge = _resolve(ru.get("maxSurge"), want, True)
            unavailable = _resolve(ru.get("maxUnavailable"), want, False)
            if surge == 0 and unavailable == 0:
                unavailable = 1
            nrep = int(new_rs["spec"].get("replicas") or 0)
            if nrep > want:
                new_rs = self._scale(d, new_rs, want)
            elif nrep < want:
                if not any(int(r["spec"].get("replicas") or 0) for r in olds):
                    new_rs = self._scale(d, new_rs, want)
                else:
                    total = sum(int(r["spec"].get("replicas") or 0) for r in [new_rs] + olds)
                    up = min(want + surge - total, want - nrep)
                    if up > 0:
                        new_rs = self._scale(d, new_rs, nrep + up)
            olds = [self._reconcile_old(d, r) for r in olds] if olds else []
            old_total = sum(int(r["spec"].get("replicas") or 0) for r in olds)
            if old_total:
                all_total = old_total + int(new_rs["spec"].get("replicas") or 0)
                min_avail = want - unavailable
                new_unavail = int(new_rs["spec"].get("replicas") or 0) - int(
                    (new_rs.get("status") or {}).get("availableReplicas") or 0
                )
                budget = all_total - min_avail - new_unavail
                if budget > 0:
                    for i, r in enumerate(olds):
                        rep = int(r["spec"].get("replicas") or 0)
                        unhealthy = rep - int((r.get("status") or {}).get("availableReplicas") or 0)
                        down = min(budget, unhealthy)
                        if down > 0:
                            olds[i] = self._scale(d, r, rep - down)
                            budget -= down
                    available = sum(
                        int((r.get("status") or {}).get("availableReplicas") or 0)
                        for r in [new_rs] + olds
                    )
                    excess = min(available - min_avail, budget)
                    for i, r in enumerate(olds):
                        if excess <= 0:
                            break
                        rep = int(r["spec"].get("replicas") or 0)
                        down = min(rep, excess)
                        if down > 0:
                            olds[i] = self._scale(d, r, rep - down)
                            excess -= down
        self._cleanup(d, [r for r in olds if r is not new_rs])
        self._status(d, new_rs, [new_rs] + olds)

    def _reconcile_old(self, d: Obj, rs: Obj) -> Obj:
        return rs

    def _create_rs(self, d: Obj, revision: int, replicas: int) -> Obj:
        tmpl = clone(d["spec"].get("template") or {})
        h = template_hash(_strip_hash(tmpl))
        labels = dict((tmpl.get("metadata") or {}).get("labels") or {})
        labels[HASH] = h
        tmpl.setdefault("metadata", {})["labels"] = labels
        sel = clone(d["spec"].get("selector") or {})
        sel.setdefault("matchLabels", {})[HASH] = h
        rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{d['metadata']['name']}-{h}",
                "namespace": d["metadata"]["namespace"],
                "labels": labels,
                "annotations": {
                    "deployment.kubernetes.io/desired-replicas": str(d["spec"].get("replicas", 1)),
                    "deployment.kubernetes.io/max-replicas": str(d["spec"].get("replicas", 1)),
                    REVISION: str(revision),
                },
                "ownerReferences": [owner_ref(d)],
            },
            "spec": {
                "replicas": replicas,
                "selector": sel,
                "template": tmpl,
                "minReadySeconds": d["spec"].get("minReadySeconds", 0),
            },
        }
        cause = (d["metadata"].get("annotations") or {}).get("kubernetes.io/change-cause")
        if cause:
            rs["metadata"]["annotations"]["kubernetes.io/change-cause"] = cause
        created: Obj = self.cp.state.create(self.rs_res, rs)
        if replicas:
            self.cp.recorder.record(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {rs['metadata']['name']} from 0 to {replicas}",
                "deployment-controller",
            )
        return created

    def _set_revision(self, rs: Obj, rev: int) -> Obj:
        new = clone(rs)
        new["metadata"].setdefault("annotations", {})[REVISION] = str(rev)
        out: Obj = self.cp.state.store.update(self.rs_res.qualified, new)
        return out

    def _cleanup(self, d: Obj, olds: list[Obj]) -> None:
        limit = int(d["spec"].get("revisionHistoryLimit", 10))
        idle = [
            r
            for r in olds
            if not int(r["spec"].get("replicas") or 0)
            and not int((r.get("status") or {}).get("replicas") or 0)
        ]
        idle.sort(key=_revision)
        for r in idle[: max(0, len(idle) - limit)]:
            self.cp.state.delete(self.rs_res, r["metadata"]["namespace"], r["metadata"]["name"])

    def _status(self, d: Obj, new_rs: Obj | None, rss: list[Obj]) -> None:
        want = int(d["spec"].get("replicas", 1))

        def s(r: Obj, k: str) -> int:
            return int((r.get("status") or {}).get(k) or 0)

        replicas = sum(s(r, "replicas") for r in rss)
        updated = s(new_rs, "replicas") if new_rs else 0
        ready = sum(s(r, "readyReplicas") for r in rss)
        available = sum(s(r, "availableReplicas") for r in rss)
        ru = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        max_unavail = (
            _resolve(ru.get("maxUnavailable"), want, False)
            if (d["spec"].get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
            else want
        )
        old_status = d.get("status") or {}
        old_conds = {c["type"]: c for c in old_status.get("conditions") or []}
        now = now_ts()

        def cond(t: str, status: str, reason: str, message: str) -> Obj:
            prev = old_conds.get(t)
            if (
                prev
                and prev.get("status") == status
                and prev.get("reason") == reason
                and prev.get("message") == message
            ):
                return dict(prev)
            return {
                "type": t,
                "status": status,
                "lastUpdateTime": now,
                "lastTransitionTime": prev["lastTransitionTime"]
                if prev and prev.get("status") == status
                else now,
                "reason": reason,
                "message": message,
            }

        avail_ok = available >= want - max_unavail
        conds = [
            cond(
                "Available",
                "True" if avail_ok else "False",
                "MinimumReplicasAvailable" if avail_ok else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if avail_ok
                else "Deployment does not have minimum availability.",
            )
        ]
        if new_rs is not None:
            done = updated == want and replicas == want and available == want
            rsname = new_rs["metadata"]["name"]
            conds.append(
                cond(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
                    f'ReplicaSet "{rsname}" has successfully progressed.'
                    if done
                    else f'ReplicaSet "{rsname}" is progressing.',
                )
            )
        status: Obj = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": max(0, want - available),
            "conditions": conds,
        }
        status = {k: v for k, v in status.items() if v or k in ("observedGeneration", "conditions")}
        meta = dict(d["metadata"])
        if new_rs is not None:
            ann = dict(meta.get("annotations") or {})
            rev = str(_revision(new_rs))
            if ann.get(REVISION) != rev:
                ann[REVISION] = rev
                meta["annotations"] = ann
        if status != old_status or meta != d["metadata"]:
            new = {**d, "status": status, "metadata": meta}
            self.cp.state.store.update(self.res.qualified, new)
