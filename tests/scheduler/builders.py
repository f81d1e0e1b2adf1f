"""Small builders for Node/Pod objects and a one-plugin scheduling cycle, for the plugin tests."""

from __future__ import annotations

import random
from typing import Any

from fleetkit.scheduler.framework import CycleResult, Framework
from fleetkit.scheduler.profile import SchedulerConfig, build_profile
from fleetkit.scheduler.simulator import Simulation


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


def cycle(
    objs: list[dict[str, Any]], incoming: dict[str, Any], config: SchedulerConfig | None = None
) -> CycleResult:
    """Load a cluster, then run one explained cycle for ``incoming`` without binding it."""
    from fleetkit.scheduler import default_config
    from fleetkit.scheduler.model import Pod
    from fleetkit.scheduler.workloads import default_pod

    sim = Simulation(config or default_config(), seed=1)
    sim.load_objects(objs)
    sim.run()
    obj = dict(incoming)
    default_pod(obj, sim.classes)
    p = Pod.from_obj(obj, 10_000)
    fw: Framework = sim.frameworks["default-scheduler"]
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
