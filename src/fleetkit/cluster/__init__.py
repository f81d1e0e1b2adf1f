"""fleetkit.cluster: a simulated Kubernetes cluster that real kubectl talks to.

One process: an API server (discovery, OpenAPI v3, Table output, watch, patch and apply),
controllers (Deployment, ReplicaSet), a kubelet that starts bound pods at once, and the
scheduler of :mod:`fleetkit.scheduler` driven by the same store and watch.
"""

from __future__ import annotations

from fleetkit.cluster.api.ui import render_objects
from fleetkit.cluster.runtime import ControlPlane
from fleetkit.cluster.serve import ServeOptions, build, kubeconfig_text, load_manifests, serve
from fleetkit.cluster.state import ApiError, ClusterState
from fleetkit.cluster.store import Store

__all__ = [
    "ServeOptions",
    "serve",
    "build",
    "kubeconfig_text",
    "load_manifests",
    "ControlPlane",
    "ClusterState",
    "ApiError",
    "Store",
    "render_objects",
]
