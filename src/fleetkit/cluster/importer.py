"""``--from-kubeconfig``: read a live cluster's nodes, pods and workloads (read-only: GETs only)
through a kubeconfig as kubectl reads it (KUBECONFIG lists, contexts, exec credential plugins,
client certificates, tokens: the ``kubernetes`` client's loader), to start a what-if copy."""

from __future__ import annotations

from typing import Any

from fleetkit.errors import ClusterError

__all__ = ["import_objects", "IMPORTED"]

Obj = dict[str, Any]
# (list path, kind, apiVersion) in the order they are loaded
IMPORTED = [
    ("/api/v1/namespaces", "Namespace", "v1"),
    ("/apis/scheduling.k8s.io/v1/priorityclasses", "PriorityClass", "scheduling.k8s.io/v1"),
    ("/api/v1/nodes", "Node", "v1"),
    ("/api/v1/services", "Service", "v1"),
    ("/apis/policy/v1/poddisruptionbudgets", "PodDisruptionBudget", "policy/v1"),
    ("/apis/apps/v1/deployments", "Deployment", "apps/v1"),
    ("/apis/apps/v1/replicasets", "ReplicaSet", "apps/v1"),
    ("/apis/apps/v1/statefulsets", "StatefulSet", "apps/v1"),
    ("/apis/apps/v1/daemonsets", "DaemonSet", "apps/v1"),
    ("/apis/batch/v1/jobs", "Job", "batch/v1"),
    ("/api/v1/pods", "Pod", "v1"),
]
_DROP_META = ("resourceVersion", "managedFields", "selfLink", "generation")


def _clean(obj: Obj, kind: str, api_version: str) -> Obj:
    out = dict(obj)
    out["kind"], out["apiVersion"] = kind, api_version
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _DROP_META}
    out["metadata"] = meta
    if kind == "Service":
        spec = dict(out.get("spec") or {})
        for k in ("clusterIP", "clusterIPs"):
            spec.pop(k, None)
        out["spec"] = spec
    return out


def import_objects(context: str, kubeconfig: str | None = None) -> list[Obj]:
    """Every object of the imported kinds, as the API server returns them (status kept)."""
    try:
        from kubernetes import config
        from kubernetes.client.exceptions import ApiException
        from kubernetes.config.config_exception import ConfigException
    except ImportError as exc:  # pragma: no cover - a dependency
        raise ClusterError("--from-kubeconfig needs the kubernetes package") from exc
    try:
        api = config.new_client_from_config(
            config_file=kubeconfig, context=None if context in ("", "current") else context
        )
    except (ConfigException, OSError, ValueError) as exc:
        raise ClusterError(
            f"--from-kubeconfig {context}: {exc}",
            hint="name a context of your kubeconfig (kubectl config get-contexts), or 'current'",
        ) from exc
    out: list[Obj] = []
    try:
        for path, kind, api_version in IMPORTED:
            try:
                data = api.call_api(
                    path,
                    "GET",
                    auth_settings=["BearerToken"],
                    response_type="object",
                    _return_http_data_only=True,
                    _preload_content=True,
                )
            except ApiException as exc:
                if exc.status in (403, 404):
                    continue  # a kind this user may not list, or the server does not serve
                raise ClusterError(
                    f"--from-kubeconfig: GET {path}: {exc.status} {exc.reason}"
                ) from exc
            except OSError as exc:
                raise ClusterError(f"--from-kubeconfig: GET {path}: {exc}") from exc
            for item in (data or {}).get("items") or []:
                out.append(_clean(item, kind, api_version))
    finally:
        api.close()
    return out
