"""The Job controller: keeps min(parallelism, completions - succeeded) pods active, labelled
and selected by the Job's uid as the API's defaulting does. Simulated pods never finish on
their own (a pod set to Succeeded through the API counts as a completion)."""

from __future__ import annotations

from typing import Any

from fleetkit.cluster.controllers._common import controller_ref, is_active, is_ready, owner_ref
from fleetkit.cluster.store import now_ts
from fleetkit.scheduler import clone

__all__ = ["JobController"]

Obj = dict[str, Any]


class JobController:
    """Runs each Job's pods to its completions."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.res = cp.state.res("batch", "Job")
        self.pods = cp.state.res("", "Pod")

    def _labels(self, job: Obj) -> dict[str, str]:
        uid, name = job["metadata"]["uid"], job["metadata"]["name"]
        return {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }

    def sync(self, ns: str, name: str) -> None:
        st = self.cp.state
        job = st.store.get(self.res.qualified, ns, name)
        if job is None:
            return
        spec = job.get("spec") or {}
        if not spec.get("selector"):
            job = clone(job)
            labels = self._labels(job)
            job["spec"]["selector"] = {
                "matchLabels": {"batch.kubernetes.io/controller-uid": labels["controller-uid"]}
            }
            tmeta = job["spec"].setdefault("template", {}).setdefault("metadata", {})
            tmeta["labels"] = {**(tmeta.get("labels") or {}), **labels}
            job["metadata"]["labels"] = {**labels, **(job["metadata"].get("labels") or {})}
            job = st.store.update(self.res.qualified, job)
            spec = job["spec"]
        uid = job["metadata"]["uid"]
        pods = [
            p
            for p in self.cp.pods_by_owner.get(uid, {}).values()
            if (controller_ref(p) or {}).get("uid") == uid
        ]
        active = [p for p in pods if is_active(p)]
        succeeded = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded")
        failed = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Failed")
        par = int(spec.get("parallelism", 1) or 0)
        comp = spec.get("completions")
        target = (
            0
            if spec.get("suspend")
            else (par if comp is None else max(0, min(par, int(comp) - succeeded)))
        )
        for _ in range(target - len(active)):
            self._create(job)
        for p in active[target:] if len(active) > target else []:
            st.delete(self.pods, ns, p["metadata"]["name"])
        active = [p for p in self.cp.pods_by_owner.get(uid, {}).values() if is_active(p)]
        status: Obj = dict(job.get("status") or {})
        status.setdefault("startTime", now_ts())
        status.update(
            {
                "active": len(active),
                "ready": sum(1 for p in active if is_ready(p)),
                "succeeded": succeeded,
                "failed": failed,
                "terminating": 0,
            }
        )
        if (
            comp is not None
            and succeeded >= int(comp)
            and not any(c.get("type") == "Complete" for c in status.get("conditions") or [])
        ):
            now = now_ts()
            status["completionTime"] = now
            status["conditions"] = [
                {
                    "type": "SuccessCriteriaMet",
                    "status": "True",
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                    "reason": "CompletionsReached",
                    "message": "Reached expected number of succeeded pods",
                },
                {
                    "type": "Complete",
                    "status": "True",
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                    "reason": "CompletionsReached",
                    "message": "Reached expected number of succeeded pods",
                },
            ]
        status = {k: v for k, v in status.items() if v or k in ("ready", "terminating")}
        if job.get("status") != status:
            st.store.update(
                self.res.qualified, {**job, "status": status, "metadata": dict(job["metadata"])}
            )

    def _create(self, job: Obj) -> None:
        tmpl = clone((job.get("spec") or {}).get("template") or {})
        meta = dict(tmpl.get("metadata") or {})
        meta.update(
            {
                "generateName": job["metadata"]["name"] + "-",
                "namespace": job["metadata"]["namespace"],
                "labels": {**(meta.get("labels") or {}), **self._labels(job)},
                "ownerReferences": [owner_ref(job)],
            }
        )
        spec = tmpl.get("spec") or {}
        spec.setdefault("restartPolicy", "Never")
        created = self.cp.state.create(
            self.pods, {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
        )
        self.cp.recorder.record(
            job,
            "Normal",
            "SuccessfulCreate",
            f"Created pod: {created['metadata']['name']}",
            "job-controller",
        )
