"""Typed access at the decode boundary: the JSON shape of the fields the scheduler reads.

Objects are checked once, where they enter (the scheduler configuration in
``profile.load_config``; manifests go through the cluster API's decoding), against a small declarative shape: object, array, map,
integer. A field of the wrong JSON type is reported the way the API server reports it,
``spec.containers[0]: Invalid value: 5: must be an object``, instead of surfacing later as a
Python exception. ``null`` reads as "not set" (as in kube), except where a shape says otherwise.
Leaf strings are not checked: the loaders read them with ``str()``. Integers are range-checked
as the API types them: ``int32`` (replicas, ports, weights, priorities...) or ``int64``, so
``replicas: 2147483648`` is refused at the boundary, as the API server refuses it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from fleetkit.errors import UsageError

__all__ = [
    "FieldError",
    "Shape",
    "check",
    "POD",
    "NODE",
    "SHAPES",
    "SCHEDULER_CONFIG",
    "value",
    "MAX_INPUT_BYTES",
    "read_input",
    "load_json",
    "load_yaml_documents",
]

MAX_INPUT_BYTES = 64 * 1024 * 1024  # one manifest, config or kubeconfig file
# go-yaml's alias budget (what kubectl and the API server decode YAML with): past 100 aliases
# and 1000 decoded nodes, aliases may be at most 99% of what is decoded for small documents,
# falling linearly to 10% at 4,000,000 decoded nodes. A "billion laughs" is far beyond it.
_ALIAS_RANGE_LOW, _ALIAS_RANGE_HIGH = 400_000, 4_000_000


def read_input(path: str, what: str = "", flag: str = "-f") -> str:
    """A file's text, refused past ``MAX_INPUT_BYTES`` (read bounded, never whole)."""
    import sys
    from pathlib import Path

    label = f"{what} {path}".strip()
    try:
        if path == "-":
            stream = getattr(sys.stdin, "buffer", None)
            if stream is None:  # a text stream put in place of stdin (tests)
                text = sys.stdin.read(MAX_INPUT_BYTES + 1)
                data = text.encode("utf-8", "surrogateescape")
            else:
                data = stream.read(MAX_INPUT_BYTES + 1)
        else:
            with Path(path).open("rb") as fh:
                data = fh.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError as exc:
        raise UsageError(
            f'the path "{path}" does not exist', hint=f"check the {flag} argument"
        ) from exc
    except OSError as exc:
        raise UsageError(f"cannot read {label}: {exc.strerror}") from exc
    if len(data) > MAX_INPUT_BYTES:
        raise UsageError(
            f"cannot read {label}: larger than {MAX_INPUT_BYTES >> 20} MiB",
            hint="split the manifests into several files (each -f FILE is read separately)",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"cannot read {label}: not UTF-8 text (byte {exc.start})",
            hint="pass a YAML or JSON manifest",
        ) from exc


def load_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"invalid JSON: {exc.msg}",
            source=f"{source}:{exc.lineno}",
            hint="fix the file and retry",
        ) from exc
    except RecursionError:
        raise UsageError("invalid JSON: nested too deeply", source=source) from None


def _allowed_alias_ratio(decoded: int) -> float:
    if decoded <= _ALIAS_RANGE_LOW:
        return 0.99
    if decoded >= _ALIAS_RANGE_HIGH:
        return 0.10
    span = (decoded - _ALIAS_RANGE_LOW) / (_ALIAS_RANGE_HIGH - _ALIAS_RANGE_LOW)
    return 0.99 - 0.89 * span


def _check_aliasing(root: yaml.Node, source: str) -> None:
    """Count the nodes a full decode would visit (aliases re-visited), without decoding."""
    expanded: dict[int, int] = {}  # id(node) -> nodes decoded for it, aliases included
    distinct = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in expanded:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if not done:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in expanded)
            continue
        distinct += 1
        expanded[id(node)] = 1 + sum(expanded.get(id(c), 0) for c in children)
    decoded = expanded[id(root)]
    aliases = decoded - distinct
    if aliases > 100 and decoded > 1000 and aliases / decoded > _allowed_alias_ratio(decoded):
        raise UsageError(
            "yaml: document contains excessive aliasing",
            source=f"{source}:{root.start_mark.line + 1}",
            hint=f"{decoded} nodes once aliases are expanded; write the values out instead",
        )


def load_yaml_documents(text: str, source: str) -> list[tuple[Any, int]]:
    """Every document of a YAML stream with its first line; aliases and nesting bounded."""
    loader_cls: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(text)
    docs: list[tuple[Any, int]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            _check_aliasing(node, source)
            obj = loader.construct_document(node)
            if obj is not None:
                docs.append((obj, node.start_mark.line + 1))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise UsageError(
            f"invalid YAML: {problem}", source=where, hint="fix the YAML and retry"
        ) from exc
    except RecursionError:
        raise UsageError("invalid YAML: nested too deeply", source=source) from None
    finally:
        loader.dispose()
    return docs


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
    bits: int = 32  # for "int": the API field's width (int32 or int64)


ANY = Shape()
INT = Shape("int")  # int32, as most integer fields of the API are
INT64 = Shape("int", bits=64)


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
        try:
            n = int(v)
        except (ValueError, OverflowError):
            raise FieldError(path, v, "must be an integer") from None
        limit = 1 << (shape.bits - 1)
        if not -limit <= n < limit:
            raise FieldError(path, v, f"must be a {shape.bits}-bit integer (int{shape.bits})")


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
        images=arr(obj(names=arr(), sizeBytes=INT64)),
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
