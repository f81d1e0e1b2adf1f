"""Workload controllers, one module per kind, each a ``sync(key)`` over the store."""

from __future__ import annotations

from fleetkit.cluster.controllers.daemonset import DaemonSetController
from fleetkit.cluster.controllers.deployment import DeploymentController
from fleetkit.cluster.controllers.job import JobController
from fleetkit.cluster.controllers.node import NodeController
from fleetkit.cluster.controllers.replicaset import ReplicaSetController
from fleetkit.cluster.controllers.statefulset import StatefulSetController

__all__ = [
    "JobController",
    "StatefulSetController",
    "DaemonSetController",
    "DeploymentController",
    "ReplicaSetController",
    "NodeController",
]
