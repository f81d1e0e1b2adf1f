"""Typed access at the decode boundary: the JSON shape of the fields the scheduler reads.

Objects are checked once, where they enter (manifests in ``workloads.check_documents``, the
config in ``profile.load_config``), against a small declarative shape: object, array, map,
integer. A field of the wrong JSON type is reported the way the API server reports it,
``spec.containers[0]: Invalid value: 5: must be an object``, instead of surfacing later as a
Python exception. ``null`` reads as "not set" (as in kube), except where a shape says otherwise.
Leaf strings are not checked: the loaders read them with ``str()``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FieldError", "Shape", "check", "POD", "NODE", "SHAPES", "SCHEDULER_CONFIG", "value"]


class FieldError(Exception):
    """A field of the wrong JSON type: ``path: Invalid value: VALUE: must be ...``."""

    def __init__(self, path: str, got: Any, expected: str) -> None:
        self.path = path or "<root>"
        self.got = got
        self.expected = expected
        super().__init__(f"{self.path}: Invalid value: {value(got)}: {expected}")


def value(v: Any) -> str:
    """A value as kube prints it in an ``Invalid value`` message."""
    if isinstance(v, str):
        return json.dumps(v)
    return json.dumps(v, default=str, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Shape:
    """``kind`` is "object" (known ``fields``), "map" (any keys, each ``item``), "array" (each
    ``item``), "int" or "any"; ``nullable=False`` rejects an explicit ``null``."""

    kind: str = "any"
    fields: dict[str, Shape] = field(default_factory=dict)
    item: Shape | None = None
    nullable: bool = True


ANY = Shape()
INT = Shape("int")


def obj(nullable: bool = True, **fields: Shape) -> Shape:
    return Shape("object", fields, nullable=nullable)


def arr(item: Shape = ANY) -> Shape:
    return Shape("array", item=item)


def mapping(item: Shape = ANY) -> Shape:
    return Shape("map", item=item)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check(v: Any, shape: Shape, path: str = "") -> None:
    """Raise :class:`FieldError` for the first field of ``v`` that does not fit ``shape``."""
    if v is None:
        if not shape.nullable:
            raise FieldError(path, v, "must be an object")
        return
    if shape.kind in ("object", "map"):
        if not isinstance(v, dict):
            raise FieldError(path, v, "must be an object")
        if shape.kind == "map":
            if shape.item is not None and shape.item is not ANY:
                for k, sub in v.items():
                    check(sub, shape.item, _join(path, str(k)))
            return
        for k, sub_shape in shape.fields.items():
            if k in v:
                check(v[k], sub_shape, _join(path, k))
    elif shape.kind == "array":
        if not isinstance(v, list):
            raise FieldError(path, v, "must be an array")
        if shape.item is not None and shape.item is not ANY:
            for i, sub in enumerate(v):
                check(sub, shape.item, f"{path}[{i}]")
    elif shape.kind == "int":
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            raise FieldError(path, v, "must be an integer")
        if isinstance(v, str):
            try:
                int(v)
            except ValueError:
                raise FieldError(path, v, "must be an integer") from None


# -- shapes of what the scheduler reads --------------------------------------------------------

_SELECTOR = obj(matchLabels=mapping(), matchExpressions=arr(obj(values=arr())))
_NODE_SELECTOR_TERM = obj(matchExpressions=arr(obj(values=arr())), matchFields=arr(obj()))
_AFFINITY_TERM = obj(
    labelSelector=_SELECTOR,
    namespaceSelector=_SELECTOR,
    namespaces=arr(),
    matchLabelKeys=arr(),
    mismatchLabelKeys=arr(),
)
_POD_AFFINITY = obj(
    requiredDuringSchedulingIgnoredDuringExecution=arr(_AFFINITY_TERM),
    preferredDuringSchedulingIgnoredDuringExecution=arr(
        obj(weight=INT, podAffinityTerm=_AFFINITY_TERM)
    ),
)
_AFFINITY = obj(
    nodeAffinity=obj(
        requiredDuringSchedulingIgnoredDuringExecution=obj(
            nodeSelectorTerms=arr(_NODE_SELECTOR_TERM)
        ),
        preferredDuringSchedulingIgnoredDuringExecution=arr(
            obj(weight=INT, preference=_NODE_SELECTOR_TERM)
        ),
    ),
    podAffinity=_POD_AFFINITY,
    podAntiAffinity=_POD_AFFINITY,
)
_CONTAINER = obj(
    resources=obj(requests=mapping(), limits=mapping()),
    ports=arr(obj(hostPort=INT, containerPort=INT)),
)
_METADATA = obj(labels=mapping(), annotations=mapping(), ownerReferences=arr(obj()))
_POD_SPEC = obj(
    containers=arr(_CONTAINER),
    initContainers=arr(_CONTAINER),
    nodeSelector=mapping(),
    affinity=_AFFINITY,
    tolerations=arr(obj()),
    topologySpreadConstraints=arr(
        obj(maxSkew=INT, minDomains=INT, labelSelector=_SELECTOR, matchLabelKeys=arr())
    ),
    overhead=mapping(),
    priority=INT,
)
_TEMPLATE = obj(metadata=_METADATA, spec=_POD_SPEC)

POD = obj(metadata=_METADATA, spec=Shape("object", _POD_SPEC.fields, nullable=False), status=obj())
NODE = obj(
    metadata=_METADATA,
    spec=obj(taints=arr(obj())),
    status=obj(
        allocatable=mapping(),
        capacity=mapping(),
        conditions=arr(obj()),
        images=arr(obj(names=arr(), sizeBytes=INT)),
    ),
)
_CONTROLLER_SPEC = dict(replicas=INT, selector=_SELECTOR, template=_TEMPLATE)

SHAPES: dict[str, Shape] = {
    "Pod": POD,
    "Node": NODE,
    "Namespace": obj(metadata=_METADATA),
    "PriorityClass": obj(metadata=_METADATA, value=INT),
    "Service": obj(metadata=_METADATA, spec=obj(selector=mapping())),
    "PodDisruptionBudget": obj(metadata=_METADATA, spec=obj(selector=_SELECTOR)),
    "Deployment": obj(metadata=_METADATA, spec=obj(nullable=False, **_CONTROLLER_SPEC)),
    "ReplicaSet": obj(metadata=_METADATA, spec=obj(nullable=False, **_CONTROLLER_SPEC)),
    "StatefulSet": obj(metadata=_METADATA, spec=obj(nullable=False, **_CONTROLLER_SPEC)),
    "DaemonSet": obj(metadata=_METADATA, spec=obj(nullable=False, **_CONTROLLER_SPEC)),
    "Job": obj(
        metadata=_METADATA,
        spec=obj(
            nullable=False, parallelism=INT, completions=INT, selector=_SELECTOR, template=_TEMPLATE
        ),
        status=obj(succeeded=INT),
    ),
}

_PLUGIN_SET = obj(enabled=arr(obj(weight=INT)), disabled=arr(obj()))
SCHEDULER_CONFIG = obj(
    percentageOfNodesToScore=INT,
    profiles=arr(
        obj(
            percentageOfNodesToScore=INT,
            plugins=mapping(_PLUGIN_SET),
            pluginConfig=arr(obj(args=obj())),
        )
    ),
)
