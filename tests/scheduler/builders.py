"""Small builders for Node/Pod objects, a one-plugin scheduling cycle (for the plugin tests) and
runs of the cluster's machinery (``fleetkit schedule`` without files) for the engine tests."""

from __future__ import annotations

import random
from typing import Any

from fleetkit.cluster.offline import Outcome, simulate
from fleetkit.scheduler.framework import CycleResult, Framework
from fleetkit.scheduler.profile import SchedulerConfig, build_profile


def node(
    name: str,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: str = "110",
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    unschedulable: bool = False,
    extra: dict[str, str] | None = None,
    images: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    alloc = {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})}
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    status: dict[str, Any] = {"capacity": dict(alloc), "allocatable": dict(alloc)}
    if images:
        status["images"] = images
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": spec,
        "status": status,
    }


def pod(
    name: str,
    node_name: str | None = None,
    cpu: str | None = None,
    memory: str | None = None,
    labels: dict[str, str] | None = None,
    namespace: str = "default",
    **spec: Any,
) -> dict[str, Any]:
    requests: dict[str, str] = {}
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = memory
    container: dict[str, Any] = {"name": "app", "image": "registry.k8s.io/pause:3.10"}
    if requests:
        container["resources"] = {"requests": requests}
    body: dict[str, Any] = {"containers": [container], **spec}
    if node_name:
        body["nodeName"] = node_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": body,
    }


def only(
    plugin: str, args: dict[str, Any] | None = None, extra: tuple[str, ...] = ()
) -> SchedulerConfig:
    """A profile running one plugin (plus the queue sort and binder every profile needs)."""
    enabled = [{"name": "PrioritySort"}, {"name": "DefaultBinder"}, {"name": plugin}]
    enabled += [{"name": e} for e in extra]
    raw: dict[str, Any] = {
        "plugins": {"multiPoint": {"enabled": enabled, "disabled": [{"name": "*"}]}}
    }
    if args:
        raw["pluginConfig"] = [{"name": plugin, "args": args}]
    prof = build_profile(raw, "<test>")
    return SchedulerConfig({prof.scheduler_name: prof})


def run(
    objs: list[dict[str, Any]],
    *steps: str,
    config: SchedulerConfig | None = None,
    seed: int = 1,
    explain: bool = False,
) -> Outcome:
    """``fleetkit schedule`` on ``objs`` (as if read from one file), then the ``--then`` steps."""
    return simulate([], list(steps), config, seed, explain=explain, objects=objs)


def created(out: Outcome) -> list[dict[str, Any]]:
    """The pods the inputs and steps created (stored objects, in creation order)."""
    return out.new_pods()


def by_name(out: Outcome) -> dict[str, dict[str, Any]]:
    """Every stored pod by name."""
    return {p["metadata"]["name"]: p for p in out.pods()}


def node_of(p: dict[str, Any]) -> str:
    return str((p.get("spec") or {}).get("nodeName") or "")


def message(p: dict[str, Any]) -> str | None:
    """The scheduler's message on a Pending pod (its PodScheduled=False condition)."""
    for c in (p.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return str(c.get("message"))
    return None


def cycle(
    objs: list[dict[str, Any]], incoming: dict[str, Any], config: SchedulerConfig | None = None
) -> CycleResult:
    """Load a cluster, then run one explained cycle for ``incoming`` without binding it."""
    from fleetkit.scheduler import BUILTIN_PRIORITY_CLASSES, clone, default_config
    from fleetkit.scheduler.model import Pod
    from fleetkit.scheduler.workloads import default_pod

    out = run(objs, config=config or default_config())
    classes = {k: {"metadata": {"name": k}, **v} for k, v in BUILTIN_PRIORITY_CLASSES.items()}
    for pc in out.state.store.iter("priorityclasses.scheduling.k8s.io"):
        classes[pc["metadata"]["name"]] = pc
    obj = clone(incoming)
    default_pod(obj, classes)
    p = Pod.from_obj(obj, 10_000)
    fw: Framework = out.cp.binder.frameworks["default-scheduler"]
    fw.rng = random.Random(1)
    return fw.schedule(p, explain=True)


def scores(res: CycleResult, plugin: str) -> dict[str, int]:
    return {n: s.get(plugin, 0) for n, s in res.scores.items()}


def reasons(res: CycleResult) -> dict[str, list[str]]:
    out = {n: list(s.reasons) for n, s in res.statuses.items()}
    for n in res.evaluated:
        if n not in out and n not in res.feasible and res.absent is not None:
            out[n] = list(res.absent.reasons)
    return out
