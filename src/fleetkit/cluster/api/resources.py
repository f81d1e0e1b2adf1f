"""The resource table: every kind the simulated API server serves, as discovery describes it."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Resource", "RESOURCES", "by_path", "by_kind", "GROUP_VERSIONS"]

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True, slots=True)
class Resource:
    """One API resource (a plural name under a group/version)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    singular: str = field(default="")

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` as error messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _r(
    group: str,
    plural: str,
    kind: str,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    cats: tuple[str, ...] = (),
    subs: tuple[str, ...] = (),
    version: str = "v1",
) -> Resource:
    return Resource(group, version, plural, kind, namespaced, short, cats, subs, kind.lower())


RESOURCES: list[Resource] = [
    _r("", "namespaces", "Namespace", False, ("ns",), (), ("status", "finalize")),
    _r("", "nodes", "Node", False, ("no",), (), ("status", "proxy")),
    _r(
        "",
        "pods",
        "Pod",
        True,
        ("po",),
        ("all",),
        ("binding", "status", "eviction", "log", "ephemeralcontainers"),
    ),
    _r("", "bindings", "Binding"),
    _r("", "events", "Event", True, ("ev",)),
    _r("", "services", "Service", True, ("svc",), ("all",), ("status", "proxy")),
    _r("", "endpoints", "Endpoints", True, ("ep",)),
    _r("", "configmaps", "ConfigMap", True, ("cm",)),
    _r("", "secrets", "Secret"),
    _r("", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    _r("", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), (), ("status",)),
    _r("", "resourcequotas", "ResourceQuota", True, ("quota",), (), ("status",)),
    _r("", "limitranges", "LimitRange", True, ("limits",)),
    _r("apps", "deployments", "Deployment", True, ("deploy",), ("all",), ("scale", "status")),
    _r("apps", "replicasets", "ReplicaSet", True, ("rs",), ("all",), ("scale", "status")),
    _r("apps", "statefulsets", "StatefulSet", True, ("sts",), ("all",), ("scale", "status")),
    _r("apps", "daemonsets", "DaemonSet", True, ("ds",), ("all",), ("status",)),
    _r("apps", "controllerrevisions", "ControllerRevision"),
    _r("batch", "jobs", "Job", True, (), ("all",), ("status",)),
    _r("batch", "cronjobs", "CronJob", True, ("cj",), ("all",), ("status",)),
    _r("policy", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), (), ("status",)),
    _r("scheduling.k8s.io", "priorityclasses", "PriorityClass", False, ("pc",)),
    _r("coordination.k8s.io", "leases", "Lease"),
]

GROUP_VERSIONS: list[tuple[str, str]] = []
for _res in RESOURCES:
    if (_res.group, _res.version) not in GROUP_VERSIONS:
        GROUP_VERSIONS.append((_res.group, _res.version))

_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND = {(r.group, r.kind): r for r in RESOURCES}


def by_path(group: str, version: str, plural: str) -> Resource | None:
    """The resource served at /api[s]/GROUP/VERSION/PLURAL."""
    return _BY_PATH.get((group, version, plural))


def by_kind(api_version: str, kind: str) -> Resource | None:
    """The resource of an object's apiVersion and kind."""
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    return _BY_KIND.get((group, kind))
