"""The simulated control plane: the controllers, the scheduler and the kubelet, fed by the
store's events through one work queue and run on the API server's event loop."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any

from fleetkit.cluster.binder import Binder
from fleetkit.cluster.controllers import (
    DaemonSetController,
    DeploymentController,
    JobController,
    NodeController,
    ReplicaSetController,
    StatefulSetController,
)
from fleetkit.cluster.controllers._common import controller_ref, is_active, is_ready, selects
from fleetkit.cluster.events import Recorder
from fleetkit.cluster.kubelet import Kubelet
from fleetkit.cluster.state import ApiError, ClusterState
from fleetkit.cluster.store import WatchEvent
from fleetkit.scheduler import SchedulerConfig

__all__ = ["ControlPlane"]

Obj = dict[str, Any]
Item = tuple[str, str, str]  # (controller, namespace, name)
BATCH = 200  # work items between yields to the HTTP server
# pods the scheduler takes in a row before the controllers catch up (their status syncs are
# then one per batch, not one per binding)
SCHED_BATCH = 100
# the controllers that own pods, by owner kind
_POD_OWNERS = {
    "ReplicaSet": "replicaset",
    "DaemonSet": "daemonset",
    "StatefulSet": "statefulset",
    "Job": "job",
}


class ControlPlane:
    """Controllers + scheduler + kubelet over one :class:`ClusterState`."""

    def __init__(
        self, state: ClusterState, config: SchedulerConfig | None = None, seed: int = 1
    ) -> None:
        self.state = state
        self.recorder = Recorder(state)
        self.queue: collections.deque[Item] = collections.deque()
        self.queued: set[Item] = set()
        self.deployments = DeploymentController(self)
        self.replicasets = ReplicaSetController(self)
        self.nodes = NodeController(self)
        self.daemonsets = DaemonSetController(self)
        self.statefulsets = StatefulSetController(self)
        self.jobs = JobController(self)
        self.kubelet = Kubelet(self)
        self.binder = Binder(self, config, seed)
        self._node_index: dict[str, int] = {}
        self._wake: asyncio.Event | None = None
        self.paused = False  # queue work without running it (bulk loads)
        self._credit = SCHED_BATCH
        # pods by their controller's uid, and pods without a controller per namespace
        self.pods_by_owner: dict[str, dict[tuple[str, str], Obj]] = collections.defaultdict(dict)
        # per controller uid: [active pods, active and Ready pods], kept on every pod event so a
        # controller's sync is O(1) when nothing is to be created or deleted
        self.owner_counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
        self.orphans: dict[str, dict[str, Obj]] = collections.defaultdict(dict)
        # orphans by (namespace, label key, label value): adoption looks only at candidates
        self.orphan_labels: dict[tuple[str, str, str], set[str]] = collections.defaultdict(set)
        self.handlers: dict[str, Callable[[str, str], None]] = {
            "deployment": self.deployments.sync,
            "replicaset": self.replicasets.sync,
            "daemonset": self.daemonsets.sync,
            "statefulset": self.statefulsets.sync,
            "job": self.jobs.sync,
            "node": self.nodes.sync,
            "pdb": self.nodes.sync_pdb,
            "kubelet": self.kubelet.sync,
        }
        # the scheduler's mirror and the pod index must see what is already stored
        for res in ("namespaces", "nodes", "pods"):
            for obj in state.store.iter(res):
                self.binder.on_event(WatchEvent(state.store.rv, res, "ADDED", obj))
                if res == "pods":
                    self._index_pod(
                        WatchEvent(state.store.rv, res, "ADDED", obj), controller_ref(obj)
                    )
        state.store.listeners.append(self.on_event)

    def node_index(self, name: str) -> int:
        return self._node_index.setdefault(name, len(self._node_index))

    # -- routing store events to controllers -------------------------------------------------------
    def enqueue(self, controller: str, key: tuple[str, str]) -> None:
        item = (controller, key[0], key[1])
        if item not in self.queued:
            self.queued.add(item)
            self.queue.append(item)
        if self._wake is not None:
            self._wake.set()

    def _index_pod(self, ev: WatchEvent, ref: Obj | None) -> None:
        """Keep the per-owner pod index and counts (``ref``: the pod's controller reference)."""
        meta = ev.obj["metadata"]
        ns, name = str(meta.get("namespace") or ""), str(meta["name"])
        if ev.old is not None:
            old_ref = controller_ref(ev.old)
            if old_ref is not None:
                uid = str(old_ref.get("uid"))
                if self.pods_by_owner[uid].pop((ns, name), None) is not None:
                    _count(self.owner_counts[uid], ev.old, -1)
            else:
                self.orphans[ns].pop(name, None)
                for k, v in (ev.old["metadata"].get("labels") or {}).items():
                    self.orphan_labels[(ns, k, str(v))].discard(name)
        if ev.type == "DELETED":
            return
        if ref is not None:
            uid = str(ref.get("uid"))
            self.pods_by_owner[uid][(ns, name)] = ev.obj
            _count(self.owner_counts[uid], ev.obj, 1)
        else:
            self.orphans[ns][name] = ev.obj
            for k, v in (meta.get("labels") or {}).items():
                self.orphan_labels[(ns, k, str(v))].add(name)

    def orphan_candidates(self, ns: str, selector: Any) -> list[Obj]:
        """Orphan pods of ``ns`` that may match ``selector`` (all of them without matchLabels)."""
        orphans = self.orphans.get(ns) or {}
        ml = (selector or {}).get("matchLabels") if isinstance(selector, dict) else None
        if not ml:
            return list(orphans.values())
        k, v = next(iter(ml.items()))
        names = self.orphan_labels.get((ns, k, str(v))) or set()
        return [orphans[n] for n in list(names) if n in orphans]

    def on_event(self, ev: WatchEvent) -> None:
        pod_ref = None
        if ev.resource == "pods":
            pod_ref = controller_ref(ev.obj)
            self._index_pod(ev, pod_ref)
        self.binder.on_event(ev)
        meta = ev.obj["metadata"]
        ns, name = str(meta.get("namespace") or ""), str(meta["name"])
        r = ev.resource
        if r == "pods":  # the most frequent first
            ref = pod_ref
            if ref is None:
                self._enqueue_selecting(ev.obj, "replicasets.apps", "replicaset")
            elif ref.get("kind") in _POD_OWNERS:
                self.enqueue(_POD_OWNERS[str(ref["kind"])], (ns, str(ref.get("name"))))
            if ev.type != "DELETED" and self.kubelet.wants(ev.obj):
                self.enqueue("kubelet", (ns, name))
            pdbs = self.state.store.by_ns["poddisruptionbudgets.policy"].get(ns)
            for pdb in list(pdbs.values()) if pdbs else ():
                if selects(pdb, ev.obj):
                    self.enqueue("pdb", (ns, pdb["metadata"]["name"]))
        elif r == "deployments.apps":
            if ev.type != "DELETED":
                self.enqueue("deployment", (ns, name))
        elif r == "replicasets.apps":
            if ev.type != "DELETED":
                self.enqueue("replicaset", (ns, name))
            self._enqueue_owner(ev.obj, "Deployment", "deployment")
            if ev.type == "DELETED" or not controller_ref(ev.obj):
                self._enqueue_selecting(ev.obj, "deployments.apps", "deployment")
        elif r in ("daemonsets.apps", "statefulsets.apps", "jobs.batch"):
            if ev.type != "DELETED":
                self.enqueue(r.split("s.", 1)[0], (ns, name))
        elif r == "nodes":
            if ev.old is None or _node_view(ev.old) != _node_view(ev.obj):
                for ds in self.state.store.iter("daemonsets.apps"):
                    self.enqueue("daemonset", (ds["metadata"]["namespace"], ds["metadata"]["name"]))
            if ev.type != "DELETED":
                self.enqueue("node", ("", name))
            else:
                self._evict_node_pods(name)
        elif r == "poddisruptionbudgets.policy" and ev.type != "DELETED":
            self.enqueue("pdb", (ns, name))
        if self._wake is not None and self.binder.pending():
            self._wake.set()

    def _enqueue_owner(self, obj: Obj, kind: str, controller: str) -> None:
        ref = controller_ref(obj)
        if ref and ref.get("kind") == kind:
            self.enqueue(controller, (obj["metadata"]["namespace"], str(ref.get("name"))))

    def _enqueue_selecting(self, obj: Obj, resource: str, controller: str) -> None:
        ns = obj["metadata"]["namespace"]
        for owner in self.state.store.list(resource, ns):
            if selects(owner, obj):
                self.enqueue(controller, (ns, owner["metadata"]["name"]))

    def _evict_node_pods(self, node: str) -> None:
        """A deleted node's pods are deleted (the pod GC); controllers replace them."""
        for p in list(self.state.store.iter("pods")):
            if (p.get("spec") or {}).get("nodeName") == node:
                self.state.delete(
                    self.state.res("", "Pod"), p["metadata"]["namespace"], p["metadata"]["name"]
                )

    # -- running ---------------------------------------------------------------------------------
    def step(self, budget: int = BATCH) -> bool:
        """Process up to ``budget`` items (controllers first, then scheduling); False when idle."""
        if self.paused:
            return False
        done = 0
        while done < budget:
            if self.binder.pending() and self._credit > 0:
                self.binder.schedule_one()
                self._credit -= 1
            elif self.queue:
                item = self.queue.popleft()
                self.queued.discard(item)
                try:
                    self.handlers[item[0]](item[1], item[2])
                except ApiError:
                    pass  # a controller's write refused (e.g. its namespace is gone): retried on the next event
                if not self.queue:
                    self._credit = SCHED_BATCH
            elif self.binder.pending():
                self._credit = SCHED_BATCH
            else:
                return False
            done += 1
        return True

    def idle(self) -> bool:
        """Nothing queued for the controllers or the scheduler."""
        return not self.queue and not self.binder.pending()

    def settle(self, limit: int = 1_000_000) -> None:
        """Run until nothing is left to do (tests, ``fleetkit schedule``, loading a state)."""
        for _ in range(limit):
            if not self.step():
                return

    async def run(self) -> None:
        """The control loop: wake on events, work in batches, yield to the HTTP server."""
        self._wake = asyncio.Event()
        while True:
            if not self.step():
                self._wake.clear()
                if self.queue or self.binder.pending():
                    continue
                await self._wake.wait()
            else:
                await asyncio.sleep(0)

    # -- subresources the API server hands over ------------------------------------------------------
    def bind(self, ns: str, name: str, body: Obj) -> Obj:
        """POST pods/NAME/binding: an external scheduler's decision."""
        pods = self.state.res("", "Pod")
        pod = self.state.get(pods, ns, name)
        if (pod.get("spec") or {}).get("nodeName"):
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} is already assigned to node "{pod["spec"]["nodeName"]}"',
            )
        target = str(((body or {}).get("target") or {}).get("name") or "")
        new = {
            **pod,
            "spec": {**pod["spec"], "nodeName": target},
            "metadata": dict(pod["metadata"]),
        }
        self.state.store.update("pods", new)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }

    def evict(self, ns: str, name: str, dry_run: bool) -> None:
        """POST pods/NAME/eviction: refused (429) while a PodDisruptionBudget allows no disruption."""
        from fleetkit.cluster.controllers.node import pdb_status

        pods = self.state.res("", "Pod")
        pod = self.state.get(pods, ns, name)
        for pdb in self.state.store.list("poddisruptionbudgets.policy", ns):
            if not selects(pdb, pod):
                continue
            status = pdb_status(pdb, self.state.objects(pods, ns))
            if (
                status["disruptionsAllowed"] <= 0
                and (pod.get("status") or {}).get("phase") == "Running"
            ):
                raise ApiError(
                    429,
                    "TooManyRequests",
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    {
                        "causes": [
                            {
                                "reason": "DisruptionBudget",
                                "message": f"The disruption budget {pdb['metadata']['name']} needs {status['desiredHealthy']} healthy pods and has {status['currentHealthy']} currently",
                            }
                        ]
                    },
                )
        if not dry_run:
            self.state.delete(pods, ns, name)


def _count(counts: list[int], pod: Obj, sign: int) -> None:
    if is_active(pod):
        counts[0] += sign
        if is_ready(pod):
            counts[1] += sign


def _node_view(node: Obj) -> Any:
    """What decides where daemons run: labels, taints, name."""
    return ((node.get("metadata") or {}).get("labels"), (node.get("spec") or {}).get("taints"))
