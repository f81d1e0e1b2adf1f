"""Nodes, pods and resource quantities, parsed once from their API objects.

``Pod.raw`` and ``Node.raw`` keep the (defaulted) API object for output; everything a plugin
reads is parsed into attributes here so the hot path does no dict walking.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from fleetkit.scheduler.labels import (
    NOTHING,
    NodeSelectorTerm,
    Selector,
    aggregate,
    parse_label_selector,
    parse_node_selector_term,
    parse_node_selector_terms,
)

__all__ = [
    "clone",
    "parse_quantity",
    "cpu_millis",
    "int_value",
    "Resource",
    "Toleration",
    "Taint",
    "AffinityTerm",
    "Node",
    "Pod",
    "DEFAULT_MILLI_CPU_REQUEST",
    "DEFAULT_MEMORY_REQUEST",
    "HOSTNAME",
    "ZONE",
    "is_scalar_resource",
    "is_extended_resource",
]

HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

_QTY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def clone(obj: Any) -> Any:
    """A deep copy of JSON-like data (dicts, lists, scalars), much faster than copy.deepcopy."""
    if isinstance(obj, dict):
        return {k: clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [clone(v) for v in obj]
    return obj


def parse_quantity(value: Any) -> Decimal:
    """A resource.Quantity as an exact decimal; raises ValueError with kube's wording."""
    if isinstance(value, bool):
        raise ValueError("quantities must match the regular expression")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(str(value))
    s = str(value).strip()
    m = _QTY.match(s)
    if not m or m.group(2) not in _SUFFIX:
        raise ValueError(
            "quantities must match the regular expression "
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        )
    try:
        return Decimal(m.group(1)) * _SUFFIX[m.group(2)]
    except InvalidOperation as exc:  # "1.5.5": kube stops the number at the second "."
        raise ValueError(
            "quantities must match the regular expression "
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        ) from exc


@functools.lru_cache(maxsize=4096)
def _millis(value: str | int | float) -> int:
    return math.ceil(parse_quantity(value) * 1000)


@functools.lru_cache(maxsize=4096)
def _units(value: str | int | float) -> int:
    return math.ceil(parse_quantity(value))


def cpu_millis(value: Any) -> int:
    """Quantity.MilliValue(): rounds up."""
    return _millis(
        value if isinstance(value, int | float) and not isinstance(value, bool) else str(value)
    )


def int_value(value: Any) -> int:
    """Quantity.Value(): rounds up."""
    return _units(
        value if isinstance(value, int | float) and not isinstance(value, bool) else str(value)
    )


def is_native_resource(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def is_extended_resource(name: str) -> bool:
    return not is_native_resource(name) and not name.startswith("requests.")


def is_scalar_resource(name: str) -> bool:
    """schedutil.IsScalarResourceName: extended, hugepages-*, prefixed native, attachable volumes."""
    if name in ("cpu", "memory", "ephemeral-storage", "pods"):
        return False
    return (
        is_extended_resource(name)
        or name.startswith("hugepages-")
        or "kubernetes.io/" in name
        or name.startswith("attachable-volumes-")
    )


class Resource:
    """framework.Resource: cpu in millis, the rest in units; scalars keyed by resource name."""

    __slots__ = ("milli_cpu", "memory", "ephemeral_storage", "allowed_pods", "scalars")

    def __init__(self) -> None:
        self.milli_cpu = 0
        self.memory = 0
        self.ephemeral_storage = 0
        self.allowed_pods = 0
        self.scalars: dict[str, int] = {}

    @classmethod
    def from_list(cls, rl: Mapping[str, Any] | None) -> Resource:
        r = cls()
        for name, q in (rl or {}).items():
            r.set(str(name), q)
        return r

    def set(self, name: str, q: Any) -> None:
        if name == "cpu":
            self.milli_cpu = cpu_millis(q)
        elif name == "memory":
            self.memory = int_value(q)
        elif name == "ephemeral-storage":
            self.ephemeral_storage = int_value(q)
        elif name == "pods":
            self.allowed_pods = int_value(q)
        elif is_scalar_resource(name):
            self.scalars[name] = int_value(q)

    def get(self, name: str) -> int:
        if name == "cpu":
            return self.milli_cpu
        if name == "memory":
            return self.memory
        if name == "ephemeral-storage":
            return self.ephemeral_storage
        if name == "pods":
            return self.allowed_pods
        return self.scalars.get(name, 0)

    def add(self, other: Resource, sign: int = 1) -> None:
        self.milli_cpu += sign * other.milli_cpu
        self.memory += sign * other.memory
        self.ephemeral_storage += sign * other.ephemeral_storage
        for k, v in other.scalars.items():
            self.scalars[k] = self.scalars.get(k, 0) + sign * v

    def clone(self) -> Resource:
        r = Resource()
        r.milli_cpu, r.memory = self.milli_cpu, self.memory
        r.ephemeral_storage, r.allowed_pods = self.ephemeral_storage, self.allowed_pods
        r.scalars = dict(self.scalars)
        return r


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str
    effect: str


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str
    operator: str
    value: str
    effect: str

    def tolerates(self, taint: Taint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator in ("", "Equal"):
            return self.value == taint.value
        return self.operator == "Exists"


def tolerates_taint(tolerations: tuple[Toleration, ...], taint: Taint) -> bool:
    return any(t.tolerates(taint) for t in tolerations)


def first_untolerated(
    taints: tuple[Taint, ...], tolerations: tuple[Toleration, ...], effects: tuple[str, ...]
) -> Taint | None:
    for t in taints:
        if t.effect in effects and not tolerates_taint(tolerations, t):
            return t
    return None


@dataclass(slots=True)
class AffinityTerm:
    """framework.AffinityTerm: namespaces already defaulted to the owning pod's namespace."""

    namespaces: frozenset[str]
    ns_selector: Selector
    selector: Selector
    topology_key: str
    weight: int = 0

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.namespaces, self.ns_selector, self.selector, self.topology_key, self.weight)

    def matches(self, pod: Pod, ns_labels: Mapping[str, str] | None) -> bool:
        if pod.namespace in self.namespaces or self.ns_selector.matches(ns_labels or {}):
            return self.selector.matches(pod.labels)
        return False


def _affinity_term(raw: Any, namespace: str, weight: int, errors: list[str]) -> AffinityTerm:
    raw = raw or {}
    sel = parse_label_selector(raw.get("labelSelector"))
    if sel.error:
        errors.append(sel.error)
    nss_raw = raw.get("namespaces") or []
    ns_sel_raw = raw.get("namespaceSelector")
    if not nss_raw and ns_sel_raw is None:
        nss = frozenset([namespace])
    else:
        nss = frozenset(str(n) for n in nss_raw)
    ns_sel = parse_label_selector(ns_sel_raw) if ns_sel_raw is not None else NOTHING
    if ns_sel.error:
        errors.append(ns_sel.error)
    # matchLabelKeys / mismatchLabelKeys (beta in v1.31+, on): merged by the API server into the
    # selector at creation; we merge them here with the owning pod's labels.
    return AffinityTerm(nss, ns_sel, sel, str(raw.get("topologyKey") or ""), weight)


def _merge_label_keys(term_raw: Any, labels: Mapping[str, str]) -> Any:
    if not isinstance(term_raw, dict):
        return term_raw
    mlk = term_raw.get("matchLabelKeys") or []
    mmlk = term_raw.get("mismatchLabelKeys") or []
    if not mlk and not mmlk:
        return term_raw
    out = dict(term_raw)
    sel = dict(out.get("labelSelector") or {})
    exprs = list(sel.get("matchExpressions") or [])
    for k in mlk:
        if k in labels:
            exprs.append({"key": k, "operator": "In", "values": [labels[k]]})
    for k in mmlk:
        if k in labels:
            exprs.append({"key": k, "operator": "NotIn", "values": [labels[k]]})
    sel["matchExpressions"] = exprs
    out["labelSelector"] = sel
    return out


# TaintNodesByCondition: the node lifecycle controller taints nodes from their conditions
_CONDITION_TAINTS = {
    ("Ready", "False"): "node.kubernetes.io/not-ready",
    ("Ready", "Unknown"): "node.kubernetes.io/unreachable",
    ("MemoryPressure", "True"): "node.kubernetes.io/memory-pressure",
    ("DiskPressure", "True"): "node.kubernetes.io/disk-pressure",
    ("PIDPressure", "True"): "node.kubernetes.io/pid-pressure",
    ("NetworkUnavailable", "True"): "node.kubernetes.io/network-unavailable",
}


def _condition_taints(conditions: list[Any], have: tuple[Taint, ...]) -> tuple[Taint, ...]:
    keys = {t.key for t in have}
    out = []
    for c in conditions:
        if not isinstance(c, dict):
            continue
        key = _CONDITION_TAINTS.get((str(c.get("type")), str(c.get("status"))))
        if key and key not in keys:
            out.append(Taint(key, "", "NoSchedule"))
            keys.add(key)
    return tuple(out)


@dataclass(slots=True)
class Node:
    name: str
    labels: dict[str, str]
    taints: tuple[Taint, ...]
    unschedulable: bool
    allocatable: Resource
    images: tuple[tuple[tuple[str, ...], int], ...]
    raw: dict[str, Any]

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> Node:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        taints = tuple(
            Taint(str(t.get("key", "")), str(t.get("value") or ""), str(t.get("effect", "")))
            for t in spec.get("taints") or []
        )
        taints += _condition_taints(status.get("conditions") or [], taints)
        alloc_raw = status.get("allocatable") or status.get("capacity") or {}
        images = tuple(
            (tuple(str(n) for n in img.get("names") or []), int(img.get("sizeBytes") or 0))
            for img in status.get("images") or []
        )
        return cls(
            name=str(meta.get("name")),
            labels={
                str(k): "" if v is None else str(v) for k, v in (meta.get("labels") or {}).items()
            },
            taints=taints,
            unschedulable=bool(spec.get("unschedulable")),
            allocatable=Resource.from_list(alloc_raw),
            images=images,
            raw=obj,
        )

    def refresh(self) -> None:
        """Re-read labels/taints/unschedulable from ``raw`` after a step edited it."""
        fresh = Node.from_obj(self.raw)
        self.labels, self.taints, self.unschedulable = (
            fresh.labels,
            fresh.taints,
            fresh.unschedulable,
        )


def _container_requests(c: dict[str, Any]) -> dict[str, Any]:
    res = c.get("resources") or {}
    return dict(res.get("requests") or {})


def _pod_requests(spec: dict[str, Any], non_missing: bool) -> Resource:
    """resourcehelper.PodRequests: containers + sidecars, max with init containers, + overhead."""

    def creq(c: dict[str, Any]) -> Resource:
        reqs = _container_requests(c)
        r = Resource.from_list(reqs)
        if non_missing:
            if "cpu" not in reqs:
                r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST
            if "memory" not in reqs:
                r.memory = DEFAULT_MEMORY_REQUEST
        return r

    total = Resource()
    for c in spec.get("containers") or []:
        total.add(creq(c))
    restartable = Resource()
    init_max = Resource()
    for c in spec.get("initContainers") or []:
        r = creq(c)
        if c.get("restartPolicy") == "Always":
            total.add(r)
            restartable.add(r)
            cur = restartable.clone()
        else:
            cur = r.clone()
            cur.add(restartable)
        _max_into(init_max, cur)
    _max_into(total, init_max)
    if spec.get("overhead"):
        total.add(Resource.from_list(spec["overhead"]))
    return total


def _max_into(dst: Resource, src: Resource) -> None:
    dst.milli_cpu = max(dst.milli_cpu, src.milli_cpu)
    dst.memory = max(dst.memory, src.memory)
    dst.ephemeral_storage = max(dst.ephemeral_storage, src.ephemeral_storage)
    for k, v in src.scalars.items():
        dst.scalars[k] = max(dst.scalars.get(k, 0), v)


@dataclass(slots=True)
class Pod:
    seq: int
    namespace: str
    name: str
    labels: dict[str, str]
    raw: dict[str, Any]
    node_name: str
    scheduler_name: str
    priority: int
    preemption_policy: str
    tolerations: tuple[Toleration, ...]
    node_selector: dict[str, str]
    required_node_terms: tuple[NodeSelectorTerm, ...] | None
    preferred_node_terms: tuple[tuple[int, NodeSelectorTerm], ...]
    required_affinity: list[AffinityTerm]
    required_anti_affinity: list[AffinityTerm]
    preferred_affinity: list[AffinityTerm]
    preferred_anti_affinity: list[AffinityTerm]
    affinity_error: str | None
    has_pod_affinity: bool
    spread_constraints: list[dict[str, Any]]
    requests: Resource
    requests_nonzero: Resource
    host_ports: tuple[tuple[str, str, int], ...]
    images: tuple[str, ...]
    num_containers: int
    owner_kind: str = ""
    owner_name: str = ""
    terminating: bool = False
    start_time: float = math.inf
    phase: str = "Pending"
    nominated_node: str = ""
    message: str | None = None
    error: str | None = None
    given: bool = False
    warnings: list[str] = field(default_factory=list)
    kind_sig: Any = None
    node_affinity_sig: str | None = None
    # shared by the pods parsed from one spec (:meth:`sibling`): what node-local plugins read of
    # them is the same, so their results on one node state hold for every sibling
    spec_token: Any = field(default_factory=object)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def kind(self) -> Any:
        """What makes two placed pods interchangeable for every plugin (equivalence classes)."""
        if self.kind_sig is None:
            import json

            spec = self.raw.get("spec") or {}
            self.kind_sig = (
                self.namespace,
                tuple(sorted(self.labels.items())),
                json.dumps(spec.get("affinity"), sort_keys=True, default=str),
                self.host_ports,
            )
        return (self.kind_sig, self.terminating)

    @classmethod
    def from_obj(cls, obj: dict[str, Any], seq: int, priority: int = 0) -> Pod:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        ns = str(meta.get("namespace") or "default")
        labels = {
            str(k): "" if v is None else str(v) for k, v in (meta.get("labels") or {}).items()
        }
        aff = spec.get("affinity") or {}
        na = aff.get("nodeAffinity") or {}
        req = na.get("requiredDuringSchedulingIgnoredDuringExecution")
        required_terms = (
            parse_node_selector_terms(req.get("nodeSelectorTerms"))
            if isinstance(req, dict)
            else None
        )
        preferred = tuple(
            (
                int(p.get("weight") or 0),
                parse_node_selector_term(p.get("preference") or {}, f"[{i}]"),
            )
            for i, p in enumerate(na.get("preferredDuringSchedulingIgnoredDuringExecution") or [])
        )
        pa = aff.get("podAffinity") or {}
        paa = aff.get("podAntiAffinity") or {}
        errs_ra: list[str] = []
        errs_raa: list[str] = []
        errs_pfa: list[str] = []
        errs_pfaa: list[str] = []
        ra = [
            _affinity_term(_merge_label_keys(t, labels), ns, 0, errs_ra)
            for t in pa.get("requiredDuringSchedulingIgnoredDuringExecution") or []
        ]
        raa = [
            _affinity_term(_merge_label_keys(t, labels), ns, 0, errs_raa)
            for t in paa.get("requiredDuringSchedulingIgnoredDuringExecution") or []
        ]
        pfa = [
            _affinity_term(
                _merge_label_keys(t.get("podAffinityTerm"), labels),
                ns,
                int(t.get("weight") or 0),
                errs_pfa,
            )
            for t in pa.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        ]
        pfaa = [
            _affinity_term(
                _merge_label_keys(t.get("podAffinityTerm"), labels),
                ns,
                int(t.get("weight") or 0),
                errs_pfaa,
            )
            for t in paa.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        ]
        # framework.PodInfo.Update: one aggregate, each part named after its term list
        errors = [
            f"{name}: {aggregate(errs)}"
            for name, errs in (
                ("requiredAffinityTerms", errs_ra),
                ("requiredAntiAffinityTerms", errs_raa),
                ("preferredAffinityTerms", errs_pfa),
                ("preferredAntiAffinityTerms", errs_pfaa),
            )
            if errs
        ]
        tolerations = tuple(
            Toleration(
                str(t.get("key") or ""),
                str(t.get("operator") or ""),
                str(t.get("value") or ""),
                str(t.get("effect") or ""),
            )
            for t in spec.get("tolerations") or []
        )
        ports: list[tuple[str, str, int]] = []
        for c in spec.get("containers") or []:
            for p in c.get("ports") or []:
                hp = int(p.get("hostPort") or 0)
                if hp > 0:
                    ports.append(
                        (str(p.get("hostIP") or "0.0.0.0"), str(p.get("protocol") or "TCP"), hp)
                    )
        images = tuple(
            str(c.get("image") or "")
            for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
        )
        owner_kind = owner_name = ""
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller"):
                owner_kind, owner_name = str(ref.get("kind", "")), str(ref.get("name", ""))
        status = obj.get("status") or {}
        return cls(
            seq=seq,
            namespace=ns,
            name=str(meta.get("name") or ""),
            labels=labels,
            raw=obj,
            node_name=str(spec.get("nodeName") or ""),
            scheduler_name=str(spec.get("schedulerName") or "default-scheduler"),
            priority=int(spec.get("priority") or priority),
            preemption_policy=str(spec.get("preemptionPolicy") or "PreemptLowerPriority"),
            tolerations=tolerations,
            node_selector={str(k): str(v) for k, v in (spec.get("nodeSelector") or {}).items()},
            required_node_terms=required_terms,
            preferred_node_terms=preferred,
            required_affinity=ra,
            required_anti_affinity=raa,
            preferred_affinity=pfa,
            preferred_anti_affinity=pfaa,
            affinity_error=aggregate(errors) if errors else None,
            has_pod_affinity=bool(ra or raa or pfa or pfaa),
            spread_constraints=list(spec.get("topologySpreadConstraints") or []),
            requests=_pod_requests(spec, False),
            requests_nonzero=_pod_requests(spec, True),
            host_ports=tuple(ports),
            images=images,
            num_containers=len(images),
            owner_kind=owner_kind,
            owner_name=owner_name,
            terminating=bool(meta.get("deletionTimestamp")),
            phase=str(status.get("phase") or "Pending"),
        )

    def sibling(self, obj: dict[str, Any], seq: int) -> Pod:
        """:meth:`from_obj` for a pod with this pod's spec, namespace, labels and owner (the
        pods of one template): the parsed parts are shared, the pod's own parts read anew."""
        meta = obj.get("metadata") or {}
        status = obj.get("status") or {}
        return Pod(
            seq=seq,
            namespace=self.namespace,
            name=str(meta.get("name") or ""),
            labels=self.labels,
            raw=obj,
            node_name=self.node_name,
            scheduler_name=self.scheduler_name,
            priority=self.priority,
            preemption_policy=self.preemption_policy,
            tolerations=self.tolerations,
            node_selector=self.node_selector,
            required_node_terms=self.required_node_terms,
            preferred_node_terms=self.preferred_node_terms,
            required_affinity=self.required_affinity,
            required_anti_affinity=self.required_anti_affinity,
            preferred_affinity=self.preferred_affinity,
            preferred_anti_affinity=self.preferred_anti_affinity,
            affinity_error=self.affinity_error,
            has_pod_affinity=self.has_pod_affinity,
            spread_constraints=self.spread_constraints,
            requests=self.requests,
            requests_nonzero=self.requests_nonzero,
            host_ports=self.host_ports,
            images=self.images,
            num_containers=self.num_containers,
            owner_kind=self.owner_kind,
            owner_name=self.owner_name,
            terminating=bool(meta.get("deletionTimestamp")),
            phase=str(status.get("phase") or "Pending"),
            kind_sig=self.kind_sig,
            node_affinity_sig=self.node_affinity_sig,
            spec_token=self.spec_token,
        )

    def required_node_match(self, node: Node) -> bool:
        """nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)."""
        for k, v in self.node_selector.items():
            if node.labels.get(k) != v:
                return False
        if self.required_node_terms is not None:
            return any(t.matches(node.name, node.labels) for t in self.required_node_terms)
        return True
