"""fleetkit.scheduler: where kube-scheduler v1.32 (default profile) would place each pod.

The engine (the scheduler's cache, the Framework and its plugins, preemption), the decoding and
validation of the objects it reads and the ``--then`` step grammar. ``fleetkit.cluster`` drives
it from its store's watch; ``fleetkit schedule`` runs that cluster without HTTP.
"""

from __future__ import annotations

from fleetkit.scheduler.cluster import Cluster, NodeInfo
from fleetkit.scheduler.framework import RETRY_ON_BIND, CycleResult, Framework, fit_error_message
from fleetkit.scheduler.labels import Selector, parse_label_selector, selector_from_labels
from fleetkit.scheduler.model import Node, Pod, clone
from fleetkit.scheduler.preemption import budget_from, preempt
from fleetkit.scheduler.profile import SchedulerConfig, default_config, load_config
from fleetkit.scheduler.steps import Step, parse_step
from fleetkit.scheduler.validation import format_invalid, is_lenient, validate_object
from fleetkit.scheduler.workloads import (
    BUILTIN_PRIORITY_CLASSES,
    MAX_PODS,
    daemon_tolerations,
    default_pod,
    node_should_run_daemon,
    template_hash,
)

__all__ = [
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
