"""The scheduler, driven by the store's watch: it mirrors nodes and bound pods into the engine's
cache (fleetkit.scheduler.Cluster), runs each Pending pod through the profile's Framework (the
same plugins, messages and preemption as ``fleetkit schedule``), binds it, or records
FailedScheduling on the pod (condition PodScheduled=False and an Event)."""

from __future__ import annotations

import heapq
import random
from typing import Any

from fleetkit.cluster.controllers._common import controller_ref
from fleetkit.cluster.store import WatchEvent, now_ts
from fleetkit.scheduler import (
    RETRY_ON_BIND,
    Cluster,
    CycleResult,
    Framework,
    Node,
    Pod,
    SchedulerConfig,
    Selector,
    budget_from,
    clone,
    default_config,
    fit_error_message,
    parse_label_selector,
    preempt,
    selector_from_labels,
)

__all__ = ["Binder"]

Obj = dict[str, Any]
Key = tuple[str, str]
MODELS_KEPT = 256  # parsed pod specs kept for the template's next pods


class _Context:
    """What plugins look up beyond the cache: services' and controllers' selectors."""

    def __init__(self, binder: Binder) -> None:
        self.binder = binder
        # owner uid -> its parsed selector (immutable in apps/v1)
        self.selectors: dict[str, Selector] = {}
        # (namespace, id(labels), owner uid) -> (labels, default selector)
        self.memo: dict[tuple[str, int, str], tuple[dict[str, str], Selector]] = {}
        self.by_spec: dict[Any, Selector] = {}  # Pod.spec_token -> its selector

    def changed(self, ev: WatchEvent) -> None:
        """Services (any change) and pod owners (created, deleted) decide default selectors."""
        if ev.resource == "services" or (
            ev.resource in ("replicasets.apps", "statefulsets.apps") and ev.type != "MODIFIED"
        ):
            self.memo.clear()
            self.by_spec.clear()

    def default_selector(self, pod: Pod) -> Selector:
        """Pods of one template share their labels: their selector is computed once."""
        # the pods parsed from one spec (Pod.sibling) share namespace, labels and owner
        by_spec = self.by_spec.get(pod.spec_token)
        if by_spec is not None:
            return by_spec
        sel = self._template_selector(pod)
        if len(self.by_spec) >= MODELS_KEPT:
            self.by_spec.clear()
        self.by_spec[pod.spec_token] = sel
        return sel

    def _template_selector(self, pod: Pod) -> Selector:
        ref = controller_ref(pod.raw)
        key = (pod.namespace, id(pod.labels), str((ref or {}).get("uid") or ""))
        hit = self.memo.get(key)
        if hit is not None and hit[0] is pod.labels:
            return hit[1]
        sel = self._default_selector(pod)
        if len(self.memo) >= MODELS_KEPT:
            self.memo.clear()
        self.memo[key] = (pod.labels, sel)
        return sel

    def _default_selector(self, pod: Pod) -> Selector:
        st = self.binder.cp.state
        labels: dict[str, str] = {}
        for svc in st.store.list("services", pod.namespace):
            sel = (svc.get("spec") or {}).get("selector") or {}
            if sel and all(pod.labels.get(k) == v for k, v in sel.items()):
                labels.update(sel)
        selector = selector_from_labels(labels)
        ref = controller_ref(pod.raw)
        if ref and ref.get("kind") in ("ReplicaSet", "StatefulSet"):
            key = "replicasets.apps" if ref["kind"] == "ReplicaSet" else "statefulsets.apps"
            owner = st.store.get(key, pod.namespace, str(ref.get("name")))
            if owner is not None:
                uid = str(owner["metadata"].get("uid"))
                s = self.selectors.get(uid)
                if s is None:
                    s = parse_label_selector((owner.get("spec") or {}).get("selector") or {})
                    self.selectors[uid] = s
                if not s.nothing:
                    selector = selector.add(s.requirements)
        return selector


class Binder:
    """kube-scheduler's loop over the store: queue (PrioritySort), cycle, bind or report."""

    def __init__(self, cp: Any, config: SchedulerConfig | None = None, seed: int = 1) -> None:
        self.cp = cp
        self.config = config or default_config()
        self.cache = Cluster({})
        self.rng = random.Random(seed)
        ctx = self.ctx = _Context(self)
        self.frameworks = {
            name: Framework(
                spec, self.cache, ctx, self.config.percentage_of_nodes_to_score, self.rng
            )
            for name, spec in self.config.profiles.items()
        }
        self.active: list[tuple[int, int, Key]] = []
        self.queued: set[Key] = set()
        self.unschedulable: dict[Key, set[str]] = {}
        self.placed: dict[Key, Pod] = {}
        self.bound_models: dict[Key, Pod] = {}  # the cycle's Pod, reused when the binding lands
        # id(spec) -> (spec, (namespace, labels, owners), its parsed Pod): see _model
        self._models: dict[int, tuple[Any, Any, Pod]] = {}
        self.seq = 0
        self.attempts = 0
        # ``fleetkit schedule --explain``: every node's filter result and scores, per pod
        self.explain = False
        self.results: dict[Key, CycleResult] = {}
        self._scheduled: Obj = {"lastTransitionTime": None}

    # -- the mirror ------------------------------------------------------------------------------
    def on_event(self, ev: WatchEvent) -> None:
        self.ctx.changed(ev)
        if ev.resource == "nodes":
            self._node_event(ev)
        elif ev.resource == "pods":
            self._pod_event(ev)
        elif ev.resource == "namespaces":
            name = ev.obj["metadata"]["name"]
            if ev.type == "DELETED":
                self.cache.namespaces.pop(name, None)
            else:
                self.cache.namespaces[name] = dict(ev.obj["metadata"].get("labels") or {})

    def _node_event(self, ev: WatchEvent) -> None:
        name = ev.obj["metadata"]["name"]
        info = self.cache.by_name.get(name)
        if ev.type == "DELETED":
            if info is not None:
                for p in self.cache.remove_node(name):
                    self.placed.pop(p.key, None)
        else:
            node = Node.from_obj(ev.obj)
            if info is None:
                self.cache.add_node(node)
                for p in list(self.cp.state.store.iter("pods")):
                    if (p.get("spec") or {}).get("nodeName") == name:
                        self._place(p)
            else:
                if _sched_view(info.node.raw) == _sched_view(ev.obj):
                    info.node = node
                    return
                pods = list(info.pods.values())
                for p in pods:
                    self.cache.remove_pod(p)
                info.node = node
                for p in pods:
                    self.cache.add_pod(p, name)
                self.cache.node_changed()
        self._retry_all()

    def _place(self, obj: Obj) -> None:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if key in self.placed:
            return
        node = (obj.get("spec") or {}).get("nodeName")
        if node not in self.cache.by_name:
            return
        if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        pod = self.bound_models.pop(key, None)
        if pod is None or pod.node_name != node:
            self.seq += 1
            pod = Pod.from_obj(obj, self.seq)
        pod.raw = obj
        pod.phase = "Running"
        self.cache.add_pod(pod, str(node))
        self.placed[key] = pod

    def _unplace(self, key: Key) -> None:
        pod = self.placed.pop(key, None)
        if pod is not None:
            self.cache.remove_pod(pod)

    def _pod_event(self, ev: WatchEvent) -> None:
        meta = ev.obj["metadata"]
        key = (meta["namespace"], meta["name"])
        if ev.type == "DELETED":
            self.queued.discard(key)
            self.unschedulable.pop(key, None)
            if key in self.placed:
                self._unplace(key)
                self._retry_all()
            return
        spec = ev.obj.get("spec") or {}
        if spec.get("nodeName"):
            self.queued.discard(key)
            self.unschedulable.pop(key, None)
            if (ev.obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                if key in self.placed:
                    self._unplace(key)
                    self._retry_all()
                return
            self._place(ev.obj)
            return
        if (
            meta.get("deletionTimestamp")
            or spec.get("schedulerName", "default-scheduler") not in self.frameworks
        ):
            return
        if key in self.queued or key in self.unschedulable:
            return
        self._enqueue(key, int(spec.get("priority") or 0))

    def _enqueue(self, key: Key, priority: int) -> None:
        self.seq += 1
        self.queued.add(key)
        heapq.heappush(self.active, (-priority, self.seq, key))

    def _retry_all(self) -> None:
        for key in list(self.unschedulable):
            del self.unschedulable[key]
            obj = self.cp.state.store.get("pods", *key)
            if obj is not None:
                self._enqueue(key, int((obj.get("spec") or {}).get("priority") or 0))

    def _retry_on_bind(self) -> None:
        for key in [k for k, plugins in self.unschedulable.items() if plugins & RETRY_ON_BIND]:
            del self.unschedulable[key]
            obj = self.cp.state.store.get("pods", *key)
            if obj is not None:
                self._enqueue(key, int((obj.get("spec") or {}).get("priority") or 0))

    # -- the cycle -------------------------------------------------------------------------------
    def pending(self) -> bool:
        return bool(self.active)

    def schedule_one(self) -> None:
        _p, _s, key = heapq.heappop(self.active)
        if key not in self.queued:
            return
        self.queued.discard(key)
        obj = self.cp.state.store.get("pods", *key)
        if (
            obj is None
            or (obj.get("spec") or {}).get("nodeName")
            or obj["metadata"].get("deletionTimestamp")
        ):
            return
        self.attempts += 1
        pod = self._model(obj)
        pod.nominated_node = str((obj.get("status") or {}).get("nominatedNodeName") or "")
        fw = self.frameworks[pod.scheduler_name]
        res = fw.schedule(pod, explain=self.explain)
        if self.explain:
            self.results[key] = res
        if res.node is not None:
            self._bind(obj, pod, res.node)
            return
        if res.error is not None:
            self._failed(obj, res.error, set(), "SchedulerError")
            return
        num = len(self.cache.infos)
        post = ""
        if any(pl.name == "DefaultPreemption" for pl in fw.post_filter):
            pods_all = list(self.cache.all_pods())
            budgets = [
                budget_from(o, pods_all)
                for o in self.cp.state.store.iter("poddisruptionbudgets.policy")
            ]
            pr = preempt(fw, pod, res, budgets)
            if pr.node is not None:
                for v in pr.victims:
                    vobj = self.cp.state.store.get("pods", v.namespace, v.name)
                    if vobj is not None:
                        self.cp.recorder.record(
                            vobj,
                            "Normal",
                            "Preempted",
                            f"Preempted by pod {obj['metadata'].get('uid')} on node {pr.node}",
                            "default-scheduler",
                        )
                        self.cp.state.delete(self.cp.state.res("", "Pod"), v.namespace, v.name)
                msg = fit_error_message(num, res.statuses, res.absent, res.prefilter_msg)
                new = clone(self.cp.state.store.get("pods", *key) or obj)
                new.setdefault("status", {})["nominatedNodeName"] = pr.node
                self.cp.state.store.update("pods", new)
                self._failed(new, msg, set(), "Unschedulable", requeue=True)
                return
            post = "preemption: " + pr.message
        msg = fit_error_message(num, res.statuses, res.absent, res.prefilter_msg, post)
        plugins = {s.plugin for s in res.statuses.values()}
        if res.absent is not None:
            plugins.add(res.absent.plugin)
        self._failed(obj, msg, plugins, "Unschedulable")

    def _model(self, obj: Obj) -> Pod:
        """The engine's Pod for a stored pod. The pods of one template share their spec object
        (stored objects are never mutated): its parse is reused for pods with the same
        namespace, labels and owner."""
        self.seq += 1
        spec = obj.get("spec")
        meta = obj["metadata"]
        ident = (meta.get("namespace"), meta.get("labels"), meta.get("ownerReferences"))
        hit = self._models.get(id(spec))
        if hit is not None and hit[0] is spec and hit[1] == ident:
            return hit[2].sibling(obj, self.seq)
        pod = Pod.from_obj(obj, self.seq)
        if len(self._models) >= MODELS_KEPT:
            self._models.clear()
        self._models[id(spec)] = (spec, ident, pod)
        return pod

    def _bind(self, obj: Obj, pod: Pod, node: str) -> None:
        # stored objects are never mutated: copy only the parts that change
        st = {k: v for k, v in (obj.get("status") or {}).items() if k != "nominatedNodeName"}
        new = {**obj, "metadata": dict(obj["metadata"]), "spec": {**obj["spec"], "nodeName": node}}
        new["status"] = st
        pod.node_name = node
        self.bound_models[(pod.namespace, pod.name)] = pod
        now = now_ts()
        if self._scheduled["lastTransitionTime"] != now:
            # one condition object per second, shared (stored objects are never mutated)
            self._scheduled = {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": now,
            }
        st["conditions"] = [
            c for c in st.get("conditions") or [] if c.get("type") != "PodScheduled"
        ] + [self._scheduled]
        if self.cp.kubelet.with_binding:
            new = self.cp.kubelet.started(new) or new
        self.cp.state.store.update("pods", new)
        ns, name = pod.namespace, pod.name
        if self.cp.recorder.normal:  # (`fleetkit schedule` records no Normal events)
            self.cp.recorder.record(
                new,
                "Normal",
                "Scheduled",
                f"Successfully assigned {ns}/{name} to {node}",
                "default-scheduler",
            )
        self._retry_on_bind()

    def _failed(
        self, obj: Obj, message: str, plugins: set[str], reason: str, requeue: bool = False
    ) -> None:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        st = obj.get("status") or {}
        cond = next(
            (c for c in st.get("conditions") or [] if c.get("type") == "PodScheduled"), None
        )
        if not cond or cond.get("message") != message or cond.get("status") != "False":
            new = clone(obj)
            nst = new.setdefault("status", {})
            nst["conditions"] = [
                c for c in nst.get("conditions") or [] if c.get("type") != "PodScheduled"
            ] + [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": now_ts(),
                    "reason": reason,
                    "message": message,
                }
            ]
            obj = self.cp.state.store.update("pods", new)
        self.cp.recorder.record(obj, "Warning", "FailedScheduling", message, "default-scheduler")
        if requeue:
            self._enqueue(key, int((obj.get("spec") or {}).get("priority") or 0))
        else:
            self.unschedulable[key] = plugins


def _sched_view(node: Obj) -> Any:
    """The parts of a Node the scheduler reads."""
    st = node.get("status") or {}
    return (
        (node.get("metadata") or {}).get("labels"),
        node.get("spec"),
        st.get("allocatable"),
        st.get("capacity"),
        st.get("images"),
        [(c.get("type"), c.get("status")) for c in st.get("conditions") or []],
    )
