"""The scheduler's cache: NodeInfo per node, kept up to date on every placement and removal.

Besides upstream's per-node aggregates (requested, non-zero requested, ports, pods with affinity)
it keeps incremental indexes so a scheduling cycle never walks every pod:

- ``match_counts``: per-node count of placed pods matching a predicate (a label selector);
- ``pair_counts``: the same summed per value of a node label (a topology domain);
- ``domain_counts``: per-domain counts over the nodes a spread constraint includes;
- ``term_groups``: placed pods' affinity terms grouped by term, counted per topology pair;
- equivalence classes: nodes whose state is identical for every plugin (same labels except a
  unique hostname, taints, allocatable, requests, ports, images and the same multiset of pods).

Each is built lazily on first use, updated on every add/remove, and dropped when nodes change.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from fleetkit.scheduler.model import HOSTNAME, AffinityTerm, Node, Pod, Resource

__all__ = ["NodeInfo", "Cluster", "TERM_KINDS"]

PodPred = Callable[[Pod], bool]
TERM_KINDS = ("anti", "req", "pref", "prefanti")
PRED_RESULTS_KEPT = 1024  # label sets whose predicate answers are kept
SIG_IDS_KEPT = 4096  # class signatures remembered (with their ids) before the unused are dropped


class NodeInfo:
    __slots__ = (
        "node",
        "name",
        "index",
        "pods",
        "requested",
        "nonzero_cpu",
        "nonzero_mem",
        "used_ports",
        "pods_with_affinity",
        "pods_with_required_anti_affinity",
        "generation",
        "kinds",
        "static_sig",
        "sig",
        "sig_id",
    )

    def __init__(self, node: Node, index: int) -> None:
        self.node = node
        self.name = node.name  # a node's info is found by its name: it never changes
        self.index = index
        self.pods: dict[tuple[str, str], Pod] = {}
        self.requested = Resource()
        self.nonzero_cpu = 0
        self.nonzero_mem = 0
        self.used_ports: dict[tuple[str, int], set[str]] = {}
        self.pods_with_affinity: dict[tuple[str, str], Pod] = {}
        self.pods_with_required_anti_affinity: dict[tuple[str, str], Pod] = {}
        self.generation = 0
        self.kinds: dict[Any, int] = {}
        self.static_sig: Any = None
        self.sig: Any = None
        self.sig_id = -1

    def add_pod(self, pod: Pod, sign: int = 1) -> None:
        self.requested.add(pod.requests, sign)
        self.nonzero_cpu += sign * pod.requests_nonzero.milli_cpu
        self.nonzero_mem += sign * pod.requests_nonzero.memory
        for ip, proto, port in pod.host_ports:
            ips = self.used_ports.setdefault((proto, port), set())
            if sign > 0:
                ips.add(ip)
            else:
                ips.discard(ip)
                if not ips:
                    del self.used_ports[(proto, port)]
        kind = pod.kind()
        left = self.kinds.get(kind, 0) + sign
        if left > 0:
            self.kinds[kind] = left
        else:
            self.kinds.pop(kind, None)
        if sign > 0:
            self.pods[pod.key] = pod
            if pod.has_pod_affinity:
                self.pods_with_affinity[pod.key] = pod
            if pod.required_anti_affinity:
                self.pods_with_required_anti_affinity[pod.key] = pod
        else:
            self.pods.pop(pod.key, None)
            self.pods_with_affinity.pop(pod.key, None)
            self.pods_with_required_anti_affinity.pop(pod.key, None)
        self.generation += 1

    def dynamic_sig(self) -> Any:
        r = self.requested
        return (
            r.milli_cpu,
            r.memory,
            r.ephemeral_storage,
            tuple(sorted(r.scalars.items())) if r.scalars else (),
            self.nonzero_cpu,
            self.nonzero_mem,
            len(self.pods),
            frozenset((k, frozenset(v)) for k, v in self.used_ports.items())
            if self.used_ports
            else (),
            frozenset(self.kinds.items()),
        )


class _PairCache:
    __slots__ = ("pred", "key", "counts")

    def __init__(self, pred: PodPred, key: str) -> None:
        self.pred = pred
        self.key = key
        self.counts: dict[str, int] = {}


class _DomainCache:
    __slots__ = ("pred", "included", "counts")

    def __init__(self, pred: PodPred) -> None:
        self.pred = pred
        self.included: dict[str, str] = {}
        self.counts: dict[str, int] = {}


class Cluster:
    """Nodes in input order plus every pod that the scheduler sees as placed."""

    def __init__(self, namespaces: dict[str, dict[str, str]] | None = None) -> None:
        self.infos: list[NodeInfo] = []
        self.by_name: dict[str, NodeInfo] = {}
        self.namespaces: dict[str, dict[str, str]] = dict(namespaces or {})
        self._image_nodes: dict[str, int] | None = None
        self._counters: dict[Hashable, tuple[PodPred, dict[str, int]]] = {}
        # (id(labels), namespace, terminating) -> (labels, {predicate: its answer})
        self._pred_results: dict[tuple[int, str, bool], tuple[Any, dict[PodPred, bool]]] = {}
        self._pairs: dict[Hashable, _PairCache] = {}
        self._domains: dict[Hashable, _DomainCache] = {}
        self.anti_affinity_nodes: dict[str, NodeInfo] = {}
        self.affinity_nodes: dict[str, NodeInfo] = {}
        # kind -> term key -> (term, {topology value: count})
        self.term_groups: dict[str, dict[Hashable, tuple[AffinityTerm, dict[str, int]]]] = {
            k: {} for k in TERM_KINDS
        }
        # class id -> sorted member indices; a class id names one signature (static, dynamic)
        # and is never reused for another, so results memoized by it stay true
        self.classes: dict[int, list[int]] | None = None
        self._sig_ids: dict[Any, int] = {}
        self._next_sig_id = 0
        self.generation = 0

    # -- nodes -------------------------------------------------------------------------------
    def add_node(self, node: Node) -> NodeInfo:
        info = NodeInfo(node, len(self.infos))
        self.infos.append(info)
        self.by_name[node.name] = info
        self.node_changed()
        return info

    def remove_node(self, name: str) -> list[Pod]:
        info = self.by_name[name]
        pods = list(info.pods.values())
        for p in pods:
            self.remove_pod(p)
        del self.by_name[name]
        self.infos.remove(info)
        for i, ni in enumerate(self.infos):
            ni.index = i
        self.anti_affinity_nodes.pop(name, None)
        self.affinity_nodes.pop(name, None)
        self.node_changed()
        return pods

    def node_changed(self) -> None:
        """Labels, taints or the node set changed: drop every node-derived index."""
        self.generation += 1
        self._image_nodes = None
        self._pairs.clear()
        self._domains.clear()
        self.classes = None
        self._sig_ids.clear()
        self._pred_results.clear()

    @property
    def image_nodes(self) -> dict[str, int]:
        """Image name -> number of nodes holding it (ImageLocality's spread)."""
        if self._image_nodes is None:
            self._recount_images()
        assert self._image_nodes is not None
        return self._image_nodes

    def _recount_images(self) -> None:
        counts: dict[str, int] = {}
        for info in self.infos:
            seen: set[str] = set()
            for names, _size in info.node.images:
                seen.update(names)
            for n in seen:
                counts[n] = counts.get(n, 0) + 1
        self._image_nodes = counts

    # -- pods --------------------------------------------------------------------------------
    def add_pod(self, pod: Pod, node_name: str) -> None:
        self._place(pod, self.by_name[node_name], 1)

    def remove_pod(self, pod: Pod) -> None:
        info = self.by_name.get(pod.node_name)
        if info is None or pod.key not in info.pods:
            return
        self._place(pod, info, -1)

    def _place(self, pod: Pod, info: NodeInfo, sign: int) -> None:
        name = info.name
        labels = info.node.labels
        if sign > 0:
            pod.node_name = name
        info.add_pod(pod, sign)
        if sign > 0:
            if pod.required_anti_affinity:
                self.anti_affinity_nodes[name] = info
            if pod.has_pod_affinity:
                self.affinity_nodes[name] = info
        else:
            if not info.pods_with_required_anti_affinity:
                self.anti_affinity_nodes.pop(name, None)
            if not info.pods_with_affinity:
                self.affinity_nodes.pop(name, None)
        matches = self._matcher(pod)
        for pred, counts in self._counters.values():
            if matches(pred):
                _bump(counts, name, sign)
        for pc in self._pairs.values():
            val = labels.get(pc.key)
            if val is not None and matches(pc.pred):
                _bump(pc.counts, val, sign)
        for dc in self._domains.values():
            val = dc.included.get(name)
            if val is not None and matches(dc.pred):
                dc.counts[val] = dc.counts.get(val, 0) + sign
        if pod.has_pod_affinity:
            self._group_terms(pod, labels, sign)
        if self.classes is not None:
            self._reclass(info)

    def _matcher(self, pod: Pod) -> Callable[[PodPred], bool]:
        """``pred(pod)`` for the count predicates, which read only the pod's namespace, labels
        and terminating: the pods of one template share their labels object, so each
        predicate's answer is kept per (labels object, namespace, terminating)."""
        labels = pod.labels
        key = (id(labels), pod.namespace, pod.terminating)
        known = self._pred_results.get(key)
        if known is None or known[0] is not labels:
            if len(self._pred_results) >= PRED_RESULTS_KEPT:
                self._pred_results.clear()
            known = self._pred_results[key] = (labels, {})
        results = known[1]

        def matches(pred: PodPred) -> bool:
            hit = results.get(pred)
            if hit is None:
                hit = results[pred] = pred(pod)
            return hit

        return matches

    def _group_terms(self, pod: Pod, labels: dict[str, str], sign: int) -> None:
        for kind, terms in (
            ("anti", pod.required_anti_affinity),
            ("req", pod.required_affinity),
            ("pref", pod.preferred_affinity),
            ("prefanti", pod.preferred_anti_affinity),
        ):
            groups = self.term_groups[kind]
            for t in terms:
                val = labels.get(t.topology_key)
                if val is None:
                    continue
                k = t.key
                entry = groups.get(k)
                if entry is None:
                    entry = groups[k] = (t, {})
                _bump(entry[1], val, sign)
                if not entry[1]:
                    del groups[k]

    def all_pods(self) -> Iterator[Pod]:
        for info in self.infos:
            yield from info.pods.values()

    # -- memoized counts -------------------------------------------------------------------------
    def match_counts(self, key: Hashable, pred: PodPred) -> dict[str, int]:
        """Per-node count of placed pods matching ``pred``; memoized under ``key``. ``pred``
        reads only the pod's namespace, labels and terminating (answers are reused per labels
        object)."""
        hit = self._counters.get(key)
        if hit is not None:
            return hit[1]
        counts: dict[str, int] = {}
        for info in self.infos:
            n = sum(1 for p in info.pods.values() if pred(p))
            if n:
                counts[info.name] = n
        self._counters[key] = (pred, counts)
        return counts

    def pair_counts(self, key: Hashable, pred: PodPred, topology_key: str) -> dict[str, int]:
        """Placed pods matching ``pred`` per value of ``topology_key`` on their node."""
        full = (key, topology_key)
        hit = self._pairs.get(full)
        if hit is not None:
            return hit.counts
        pc = _PairCache(pred, topology_key)
        per_node = self.match_counts(key, pred)
        for name, n in per_node.items():
            val = self.by_name[name].node.labels.get(topology_key)
            if val is not None:
                pc.counts[val] = pc.counts.get(val, 0) + n
        self._pairs[full] = pc
        return pc.counts

    def domain_counts(
        self, key: Hashable, pred: PodPred, domain_of: Callable[[Node], str | None]
    ) -> dict[str, int]:
        """Pods matching ``pred`` per domain, over the nodes ``domain_of`` includes (a domain
        with no matching pod is present with 0). ``key`` must identify pred and domain_of."""
        hit = self._domains.get(key)
        if hit is not None:
            return hit.counts
        dc = _DomainCache(pred)
        per_node = self.match_counts(("dom", key), pred)
        for info in self.infos:
            val = domain_of(info.node)
            if val is None:
                continue
            dc.included[info.name] = val
            dc.counts[val] = dc.counts.get(val, 0) + per_node.get(info.name, 0)
        self._domains[key] = dc
        return dc.counts

    def namespace_labels(self, ns: str) -> dict[str, str] | None:
        return self.namespaces.get(ns)

    # -- equivalence classes -------------------------------------------------------------------
    def _static_sigs(self) -> None:
        hostnames: dict[str, int] = {}
        for info in self.infos:
            h = info.node.labels.get(HOSTNAME)
            if h is not None:
                hostnames[h] = hostnames.get(h, 0) + 1
        for info in self.infos:
            node = info.node
            labels = node.labels
            h = labels.get(HOSTNAME)
            if h is not None and hostnames[h] == 1:
                items = frozenset((k, v) for k, v in labels.items() if k != HOSTNAME)
                marker: Any = "unique-hostname"
            else:
                items = frozenset(labels.items())
                marker = node.name if h is not None else "no-hostname"
            a = node.allocatable
            info.static_sig = (
                items,
                marker,
                node.taints,
                node.unschedulable,
                (
                    a.milli_cpu,
                    a.memory,
                    a.ephemeral_storage,
                    a.allowed_pods,
                    tuple(sorted(a.scalars.items())),
                ),
                node.images,
            )

    def _sig_id(self, sig: Any) -> int:
        sid = self._sig_ids.get(sig)
        if sid is None:
            if len(self._sig_ids) >= SIG_IDS_KEPT:
                # signatures no node has now are forgotten; their ids are never given again
                self._sig_ids = {i.sig: i.sig_id for i in self.infos if i.sig_id >= 0}
            sid = self._sig_ids[sig] = self._next_sig_id
            self._next_sig_id += 1
        return sid

    def class_groups(self) -> list[tuple[NodeInfo, list[int]]]:
        """(representative, sorted member indices) per class of interchangeable nodes; the
        representative's ``sig_id`` names the class."""
        if self.classes is None:
            self._static_sigs()
            self.classes = {}
            for info in self.infos:
                info.sig_id = -1  # ids given before the nodes changed are not given again
            for info in self.infos:
                info.sig = (info.static_sig, info.dynamic_sig())
                info.sig_id = self._sig_id(info.sig)
                self.classes.setdefault(info.sig_id, []).append(info.index)
        infos = self.infos
        return [(infos[m[0]], m) for m in self.classes.values()]

    def _reclass(self, info: NodeInfo) -> None:
        assert self.classes is not None
        old = info.sig_id
        members = self.classes.get(old)
        if members is not None:
            i = bisect.bisect_left(members, info.index)
            if i < len(members) and members[i] == info.index:
                del members[i]
            if not members:
                del self.classes[old]
        info.sig = (info.static_sig, info.dynamic_sig())
        info.sig_id = self._sig_id(info.sig)
        bisect.insort(self.classes.setdefault(info.sig_id, []), info.index)


def _bump(counts: dict[str, int], key: str, sign: int) -> None:
    left = counts.get(key, 0) + sign
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
