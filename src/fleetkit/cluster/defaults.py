"""What API defaulting and admission add to a new object, per kind (in place)."""

from __future__ import annotations

from typing import Any

from fleetkit.scheduler import BUILTIN_PRIORITY_CLASSES, default_pod

__all__ = ["apply_defaults", "pod_spec_defaults", "priority_classes"]


def priority_classes(stored: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Built-in and stored PriorityClasses by name, as Priority admission reads them."""
    out = {k: {"metadata": {"name": k}, **v} for k, v in BUILTIN_PRIORITY_CLASSES.items()}
    for pc in stored:
        out[str(pc["metadata"]["name"])] = pc
    return out


def pod_spec_defaults(spec: dict[str, Any]) -> None:
    """SetDefaults_PodSpec and its containers (what a template carries once stored)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        if not isinstance(c, dict):
            continue
        image = str(c.get("image", ""))
        c.setdefault(
            "imagePullPolicy",
            "Always"
            if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]
            else "IfNotPresent",
        )
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("resources", {})
        for p in c.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")


def _template(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    tmpl = spec.setdefault("template", {})
    tmpl.setdefault("metadata", {})
    pod_spec_defaults(tmpl.setdefault("spec", {}))


def apply_defaults(
    kind: str, obj: dict[str, Any], classes: dict[str, dict[str, Any]] | None = None
) -> None:
    """Defaults and admission for a created object (``classes``: for Pod priority)."""
    meta = obj.setdefault("metadata", {})
    if kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"):
        meta.setdefault("generation", 1)
        _template(obj)
        spec = obj["spec"]
        if kind in ("Deployment", "ReplicaSet", "StatefulSet"):
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
        if kind == "Deployment":
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {})
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                ru = strategy.setdefault("rollingUpdate", {})
                ru.setdefault("maxSurge", "25%")
                ru.setdefault("maxUnavailable", "25%")
        if kind == "StatefulSet":
            spec.setdefault("podManagementPolicy", "OrderedReady")
            spec.setdefault(
                "updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
            )
            spec.setdefault(
                "persistentVolumeClaimRetentionPolicy",
                {"whenDeleted": "Retain", "whenScaled": "Retain"},
            )
        if kind == "DaemonSet":
            spec.setdefault(
                "updateStrategy",
                {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            )
        if kind == "Job":
            spec.setdefault("parallelism", 1)
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completionMode", "NonIndexed")
            spec.setdefault("suspend", False)
            spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
            spec["template"]["spec"].setdefault("restartPolicy", "Never")
            if spec.get("completions") is None:
                spec["completions"] = 1 if spec.get("parallelism", 1) == 1 else None
    elif kind == "Pod":
        spec = obj.setdefault("spec", {})
        pod_spec_defaults(spec)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("enableServiceLinks", True)
        default_pod(obj, classes or priority_classes([]))
        obj.setdefault("status", {}).setdefault("phase", "Pending")
        obj["status"].setdefault("qosClass", _qos(spec))
    elif kind == "Namespace":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name")
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {"phase": "Active"})
    elif kind == "Service":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                p.setdefault("targetPort", p.get("port"))
    elif kind == "PriorityClass":
        obj.setdefault("preemptionPolicy", "PreemptLowerPriority")
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")


def _qos(spec: dict[str, Any]) -> str:
    cs = spec.get("containers") or []
    reqs = [((c.get("resources") or {}).get("requests") or {}) for c in cs]
    lims = [((c.get("resources") or {}).get("limits") or {}) for c in cs]
    if not any(reqs) and not any(lims):
        return "BestEffort"
    if all(
        lim.get("cpu")
        and lim.get("memory")
        and req.get("cpu", lim["cpu"]) == lim["cpu"]
        and req.get("memory", lim["memory"]) == lim["memory"]
        for req, lim in zip(reqs, lims, strict=True)
    ):
        return "Guaranteed"
    return "Burstable"
