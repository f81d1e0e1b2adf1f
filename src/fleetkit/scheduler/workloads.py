"""Reading manifests and doing what the API server and controllers do before the scheduler sees a
pod: validation, defaulting (priority, tolerations, requests from limits) and controller
expansion (Deployment -> ReplicaSet <name>-<hash> -> pods, StatefulSet, DaemonSet, Job)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from fleetkit.errors import UsageError
from fleetkit.scheduler.decode import (
    load_json,
    load_yaml_documents,
    read_input,
)
from fleetkit.scheduler.model import Node, first_untolerated

__all__ = [
    "MAX_PODS",
    "Document",
    "read_raw_documents",
    "POD_KINDS",
    "CONTROLLER_KINDS",
    "fnv32a",
    "safe_encode",
    "default_pod",
    "daemon_tolerations",
    "node_should_run_daemon",
    "BUILTIN_PRIORITY_CLASSES",
]

MAX_PODS = 100_000  # default --max-pods: about 4 KiB of memory per pod

POD_KINDS = {"Pod"}
CONTROLLER_KINDS = {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"}
BUILTIN_PRIORITY_CLASSES = {
    "system-node-critical": {"value": 2000001000, "preemptionPolicy": "PreemptLowerPriority"},
    "system-cluster-critical": {"value": 2000000000, "preemptionPolicy": "PreemptLowerPriority"},
}
ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(slots=True)
class Document:
    obj: dict[str, Any]
    source: str
    line: int


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(s: str) -> str:
    """rand.SafeEncodeString: map each byte onto kube's vowel-free alphabet."""
    return "".join(ALPHANUMS[ord(c) % len(ALPHANUMS)] for c in s)


def _load_text(text: str, source: str) -> list[Document]:
    stripped = text.lstrip()
    if stripped.startswith("{") or stripped.startswith("["):
        data = load_json(text, source)
        items = data if isinstance(data, list) else [data]
        return [Document(d, source, 1) for d in items if d]
    return [Document(obj, source, line) for obj, line in load_yaml_documents(text, source)]


def _expand_lists(docs: list[Document]) -> list[Document]:
    out: list[Document] = []
    for d in docs:
        if not isinstance(d.obj, dict):
            raise UsageError(
                "expected a Kubernetes object (a mapping with apiVersion and kind)",
                source=f"{d.source}:{d.line}",
            )
        kind = str(d.obj.get("kind") or "")
        if kind == "List" and not isinstance(d.obj.get("items"), (list, type(None))):
            raise UsageError(
                f"List.items must be a list, got {type(d.obj.get('items')).__name__}",
                source=f"{d.source}:{d.line}",
            )
        if kind == "List" or (kind.endswith("List") and isinstance(d.obj.get("items"), list)):
            out += _expand_lists([Document(i, d.source, d.line) for i in d.obj.get("items") or []])
        else:
            out.append(d)
    return out


def read_raw_documents(paths: list[str]) -> list[Document]:
    """Every object of the files and directories (``-``: stdin) with its file and line."""
    files: list[str] = []
    for p in paths:
        if p == "-":
            files.append("-")
        elif os.path.isdir(p):
            for name in sorted(os.listdir(p)):
                if name.endswith((".yaml", ".yml", ".json")):
                    files.append(os.path.join(p, name))
        else:
            files.append(p)
    docs: list[Document] = []
    for f in files:
        text = read_input(f)
        docs += _expand_lists(_load_text(text, f))
    return docs


def daemon_tolerations(spec: dict[str, Any]) -> None:
    """util.AddOrUpdateDaemonPodTolerations."""
    want = [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
    if spec.get("hostNetwork"):
        want.append(("node.kubernetes.io/network-unavailable", "NoSchedule"))
    tols = list(spec.get("tolerations") or [])
    for key, effect in want:
        tol = {"key": key, "operator": "Exists", "effect": effect}
        tols = [t for t in tols if not (t.get("key") == key and t.get("effect") == effect)]
        tols.append(tol)
    spec["tolerations"] = tols


def node_should_run_daemon(node: Node, pod_obj: dict[str, Any]) -> bool:
    """NodeShouldRunDaemonPod (v1.32): nodeName, node affinity/selector and taints."""
    from fleetkit.scheduler.model import Pod

    spec = pod_obj.get("spec") or {}
    if spec.get("nodeName") and spec["nodeName"] != node.name:
        return False
    probe = Pod.from_obj(pod_obj, 0)
    if not probe.required_node_match(node):
        return False
    return first_untolerated(node.taints, probe.tolerations, ("NoSchedule", "NoExecute")) is None


def default_pod(obj: dict[str, Any], classes: dict[str, dict[str, Any]]) -> None:
    """What defaulting and admission add to a new pod (in place)."""
    meta = obj.setdefault("metadata", {})
    meta.setdefault("namespace", "default")
    spec = obj.setdefault("spec", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        res = c.setdefault("resources", {})
        lims = res.get("limits") or {}
        if lims:
            reqs = res.setdefault("requests", {})
            for k, v in lims.items():
                reqs.setdefault(k, v)
        c.setdefault(
            "imagePullPolicy",
            "Always"
            if str(c.get("image", "")).endswith(":latest")
            or ":" not in str(c.get("image", "")).rsplit("/", 1)[-1]
            else "IfNotPresent",
        )
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
    # Priority admission
    pcn = spec.get("priorityClassName")
    if pcn:
        pc = classes.get(pcn)
        if pc is None:
            raise UsageError(
                f'pods "{meta.get("name") or meta.get("generateName", "")}" is forbidden: '
                f"no PriorityClass with name {pcn} was found",
                hint="add the PriorityClass to the inputs or fix priorityClassName",
            )
        spec["priority"] = int(pc.get("value", 0))
        spec.setdefault("preemptionPolicy", pc.get("preemptionPolicy") or "PreemptLowerPriority")
    elif "priority" not in spec:
        default = [c for c in classes.values() if c.get("globalDefault")]
        if default:
            spec["priorityClassName"] = default[0]["metadata"]["name"]
            spec["priority"] = int(default[0].get("value", 0))
            spec.setdefault(
                "preemptionPolicy", default[0].get("preemptionPolicy") or "PreemptLowerPriority"
            )
        else:
            spec["priority"] = 0
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    # DefaultTolerationSeconds admission
    tols = list(spec.get("tolerations") or [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(
            (t.get("key") == key or (not t.get("key") and t.get("operator") == "Exists"))
            and t.get("effect") in (None, "", "NoExecute")
            for t in tols
        ):
            tols.append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            )
    spec["tolerations"] = tols


def template_hash(template: dict[str, Any]) -> str:
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    return safe_encode(str(fnv32a(data)))
