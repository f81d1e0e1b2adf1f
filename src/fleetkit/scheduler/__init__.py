"""fleetkit.scheduler: where kube-scheduler v1.32 (default profile) would place each pod.

``simulate(files, config=..., steps=..., seed=...)`` loads manifests, runs the scheduling queue,
applies what-if steps and returns the :class:`Simulation` for rendering.
"""

from __future__ import annotations

from typing import Any

from fleetkit.scheduler.cluster import Cluster, NodeInfo
from fleetkit.scheduler.framework import CycleResult, Framework, fit_error_message
from fleetkit.scheduler.labels import Selector, parse_label_selector, selector_from_labels
from fleetkit.scheduler.model import Node, Pod, clone
from fleetkit.scheduler.preemption import budget_from, preempt
from fleetkit.scheduler.profile import SchedulerConfig, default_config, load_config
from fleetkit.scheduler.simulator import MAX_PODS, RETRY_ON_BIND, Simulation, Step, parse_step
from fleetkit.scheduler.validation import format_invalid, is_lenient, validate_object
from fleetkit.scheduler.workloads import (
    BUILTIN_PRIORITY_CLASSES,
    daemon_tolerations,
    default_pod,
    node_should_run_daemon,
    template_hash,
)

__all__ = [
    "simulate",
    "Simulation",
    "Step",
    "parse_step",
    "load_config",
    "default_config",
    "SchedulerConfig",
    "MAX_PODS",
    # the engine, for fleetkit.cluster (a scheduler driven by an API server's watch)
    "Cluster",
    "NodeInfo",
    "Framework",
    "CycleResult",
    "fit_error_message",
    "Node",
    "Pod",
    "clone",
    "Selector",
    "parse_label_selector",
    "selector_from_labels",
    "preempt",
    "budget_from",
    "RETRY_ON_BIND",
    "validate_object",
    "format_invalid",
    "is_lenient",
    "BUILTIN_PRIORITY_CLASSES",
    "default_pod",
    "daemon_tolerations",
    "node_should_run_daemon",
    "template_hash",
]


def simulate(
    files: list[str],
    config: SchedulerConfig | None = None,
    steps: list[str] | None = None,
    seed: int = 1,
    explain: bool = False,
    live: list[dict[str, Any]] | None = None,
    max_pods: int = MAX_PODS,
) -> Simulation:
    """``live`` objects (a cluster snapshot) are loaded before ``files``.

    At most ``max_pods`` pods may exist at once (a :class:`UsageError` otherwise).
    """
    parsed = [parse_step(s) for s in steps or []]
    sim = Simulation(config or default_config(), seed=seed, explain=explain, max_pods=max_pods)
    if live:
        sim.load_objects(live, source="<cluster>")
    sim.load(files)
    sim.run()
    for step in parsed:
        sim.apply_step(step)
    return sim
