"""The simulation: a cluster snapshot, controllers, the scheduling queue (PrioritySort), and the
what-if steps (scale, apply, cordon, uncordon, drain, delete node(s)).

Bounded: at most ``max_pods`` pods exist at once (``--max-pods``, default ``MAX_PODS``, the
pod count kube documents for its largest clusters); a controller that would create more is
refused before it creates any, so ``replicas: 2147483647`` is an error line, not an OOM.
"""

from __future__ import annotations

import heapq
import random
import uuid
from datetime import UTC, datetime
from typing import Any

from fleetkit.errors import UsageError
from fleetkit.scheduler.cluster import Cluster
from fleetkit.scheduler.framework import CycleResult, Framework, fit_error_message
from fleetkit.scheduler.labels import (
    Selector,
    parse_label_selector,
    qualified_name_errors,
    selector_from_labels,
)
from fleetkit.scheduler.model import Node, Pod, clone
from fleetkit.scheduler.preemption import budget_from, preempt
from fleetkit.scheduler.profile import SchedulerConfig
from fleetkit.scheduler.steps import Step, parse_step
from fleetkit.scheduler.workloads import (
    API_GROUP,
    BUILTIN_PRIORITY_CLASSES,
    Controller,
    Document,
    check_documents,
    controller_selector,
    daemon_tolerations,
    default_pod,
    malformed,
    node_should_run_daemon,
    pod_template,
    read_documents,
    template_hash,
)

__all__ = ["Simulation", "Step", "parse_step", "BASE_EPOCH"]

MAX_PODS = 100_000  # default --max-pods: about 4 KiB of memory per pod
BASE_EPOCH = 1735689600.0  # 2025-01-01T00:00:00Z: the simulated clock starts here
RETRY_ON_BIND = {"InterPodAffinity", "PodTopologySpread"}


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_ts(s: Any) -> float | None:
    if not s:
        return None
    try:
        return datetime.strptime(str(s), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _parse_kubectl_selector(text: str) -> Selector:
    """A kubectl -l selector: a=b, a!=b, a in (x,y), a notin (x), a, !a."""
    import re

    out: dict[str, Any] = {"matchExpressions": []}
    exprs = out["matchExpressions"]
    for part in re.findall(r"[^,()]+(?:\([^)]*\))?", text):
        part = part.strip()
        if not part:
            continue
        m = re.match(r"^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$", part)
        if m:
            vals = [v.strip() for v in m.group(3).split(",") if v.strip()]
            exprs.append(
                {
                    "key": m.group(1),
                    "operator": "In" if m.group(2) == "in" else "NotIn",
                    "values": vals,
                }
            )
        elif "!=" in part:
            k, v = part.split("!=", 1)
            exprs.append({"key": k.strip(), "operator": "NotIn", "values": [v.strip()]})
        elif "=" in part:
            k, v = part.replace("==", "=").split("=", 1)
            exprs.append({"key": k.strip(), "operator": "In", "values": [v.strip()]})
        elif part.startswith("!"):
            exprs.append({"key": part[1:].strip(), "operator": "DoesNotExist"})
        else:
            exprs.append({"key": part, "operator": "Exists"})
    for e in exprs:
        problems = qualified_name_errors(str(e["key"]))
        if problems:
            raise UsageError(
                f"unable to parse requirement: key {e['key']!r}: {problems[0]}",
                hint="use -l 'key=value', 'key!=value', 'key in (a,b)', 'key' or '!key'",
            )
    return parse_label_selector(out)


class Context:
    """What plugins may look up beyond the cluster: services and controller selectors."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim

    def default_selector(self, pod: Pod) -> Selector:
        labels: dict[str, str] = {}
        for ns, sel in self.sim.services:
            if ns == pod.namespace and sel and all(pod.labels.get(k) == v for k, v in sel.items()):
                labels.update(sel)
        selector = selector_from_labels(labels)
        if pod.owner_kind in ("ReplicaSet", "StatefulSet"):
            ctrl = self.sim.controllers.get((pod.owner_kind, pod.namespace, pod.owner_name))
            if ctrl is not None and not ctrl.selector.nothing:
                selector = selector.add(ctrl.selector.requirements)
        return selector


class Simulation:
    def __init__(
        self,
        config: SchedulerConfig,
        seed: int = 1,
        explain: bool = False,
        max_pods: int = MAX_PODS,
    ) -> None:
        self.config = config
        self.max_pods = max_pods
        self.rng = random.Random(seed)
        self.name_rng = random.Random(seed + 7919)
        self.cluster = Cluster(
            {
                ns: {"kubernetes.io/metadata.name": ns}
                for ns in ("default", "kube-system", "kube-public", "kube-node-lease")
            }
        )
        self.ctx = Context(self)
        self.frameworks = {
            name: Framework(
                spec, self.cluster, self.ctx, config.percentage_of_nodes_to_score, self.rng
            )
            for name, spec in config.profiles.items()
        }
        self.explain = explain
        self.services: list[tuple[str, dict[str, str]]] = []
        self.pdbs: list[dict[str, Any]] = []
        self.classes: dict[str, dict[str, Any]] = {
            k: {"metadata": {"name": k}, **v} for k, v in BUILTIN_PRIORITY_CLASSES.items()
        }
        self.controllers: dict[tuple[str, str, str], Controller] = {}
        self.given: list[Pod] = []
        self.created: list[Pod] = []
        self.names: set[tuple[str, str]] = set()
        self.active: list[tuple[int, int, Pod]] = []
        self.unschedulable: dict[tuple[str, str], Pod] = {}
        self.retry: set[tuple[str, str]] = set()
        self.failed_plugins: dict[tuple[str, str], set[str]] = {}
        self.results: dict[tuple[str, str], CycleResult] = {}
        self.warnings: list[str] = []
        self.seq = 0
        # queue position of OrderedReady StatefulSet pods: that of ordinal 0 (see _make_pod)
        self.queue_keys: dict[tuple[str, str], int] = {}
        self.clock = BASE_EPOCH
        self.step_of: dict[tuple[str, str], int] = {}
        self.step_index = 0
        self.attempts = 0
        self._current_doc: Document | None = None

    # -- helpers -------------------------------------------------------------------------------
    def _tick(self) -> float:
        self.clock += 1.0
        return self.clock

    def _uid(self) -> str:
        return str(uuid.UUID(int=self.name_rng.getrandbits(128), version=4))

    def _suffix(self) -> str:
        return "".join(self.name_rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    # -- loading -------------------------------------------------------------------------------
    def load(self, paths: list[str]) -> None:
        docs = read_documents(paths, self.warnings)
        self._apply_docs(docs, initial=True)

    def load_objects(self, objs: list[dict[str, Any]], source: str = "<objects>") -> None:
        """Like :meth:`load` for objects already in memory (tests, benchmarks)."""
        docs = [Document(o, source, i + 1) for i, o in enumerate(objs)]
        self._apply_docs(check_documents(docs, self.warnings), initial=True)

    def _apply_docs(self, docs: list[Document], initial: bool) -> None:
        try:
            self._apply_docs_checked(docs)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            # types are checked at the decode boundary (decode.SHAPES, in check_documents);
            # this only names the document for a field that table does not describe yet
            where = self._current_doc
            if where is None:
                raise
            meta = where.obj.get("metadata")
            name = str(meta.get("name") or "") if isinstance(meta, dict) else ""
            kind = str(where.obj.get("kind") or "")
            raise malformed(kind, name, f"{where.source}:{where.line}") from exc

    def _apply_docs_checked(self, docs: list[Document]) -> None:
        # Cluster-scoped and policy objects first, so that pods see them whatever the file order.
        for d in docs:
            self._current_doc = d
            kind = d.obj["kind"]
            meta = d.obj.get("metadata") or {}
            if kind == "Namespace":
                name = str(meta.get("name"))
                labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
                labels["kubernetes.io/metadata.name"] = name
                self.cluster.namespaces[name] = labels
            elif kind == "PriorityClass":
                self.classes[str(meta.get("name"))] = d.obj
            elif kind == "Service":
                sel = (d.obj.get("spec") or {}).get("selector") or {}
                self.services.append(
                    (
                        str(meta.get("namespace") or "default"),
                        {str(k): str(v) for k, v in sel.items()},
                    )
                )
            elif kind == "PodDisruptionBudget":
                self.pdbs.append(d.obj)
            elif kind == "Node":
                self._apply_node(d.obj)
        # ReplicaSets a Deployment in the inputs owns (a `kubectl get -o yaml` dump lists both)
        # are managed through that Deployment, not as controllers of their own.
        deployments = {
            (
                str((d.obj.get("metadata") or {}).get("namespace") or "default"),
                str(d.obj["metadata"].get("name")),
            )
            for d in docs
            if d.obj["kind"] == "Deployment"
        } | {(ns, n) for (k, ns, n) in self.controllers if k == "Deployment"}
        for d in docs:
            self._current_doc = d
            kind = d.obj["kind"]
            if kind == "Pod":
                self._add_given_pod(d.obj, d)
            elif kind == "ReplicaSet" and self._owned_by_deployment(d.obj, deployments):
                continue
            elif kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"):
                self._apply_controller(d.obj)

    @staticmethod
    def _owned_by_deployment(obj: dict[str, Any], deployments: set[tuple[str, str]]) -> bool:
        meta = obj.get("metadata") or {}
        ns = str(meta.get("namespace") or "default")
        return any(
            r.get("kind") == "Deployment" and (ns, str(r.get("name"))) in deployments
            for r in meta.get("ownerReferences") or []
        )

    def _adopt_replicaset(self, ns: str, name: str, selector: Selector) -> tuple[str, str] | None:
        """An existing ReplicaSet of this Deployment, seen through the pods it owns."""
        seen: dict[tuple[str, str], int] = {}
        for p in self.given + self.created:
            if (
                p.namespace != ns
                or p.owner_kind != "ReplicaSet"
                or not p.owner_name.startswith(name + "-")
            ):
                continue
            h = p.owner_name[len(name) + 1 :]
            if "-" in h or p.labels.get("pod-template-hash") != h or not selector.matches(p.labels):
                continue
            uid = ""
            for ref in (p.raw.get("metadata") or {}).get("ownerReferences") or []:
                if ref.get("controller"):
                    uid = str(ref.get("uid") or "")
            seen[(p.owner_name, uid)] = seen.get((p.owner_name, uid), 0) + 1
        if not seen:
            return None
        return max(seen, key=lambda k: seen[k])

    def _apply_node(self, obj: dict[str, Any]) -> None:
        obj = clone(obj)
        node = Node.from_obj(obj)
        info = self.cluster.by_name.get(node.name)
        if info is None:
            self.cluster.add_node(node)
            for ctrl in list(self.controllers.values()):
                if ctrl.kind == "DaemonSet":
                    self._sync_daemonset(ctrl)
        else:
            pods = list(info.pods.values())
            for p in pods:
                self.cluster.remove_pod(p)
            info.node = node
            for p in pods:
                self.cluster.add_pod(p, node.name)
            self.cluster.node_changed()
            self._node_event()

    def _add_given_pod(self, obj: dict[str, Any], d: Document) -> None:
        obj = clone(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        key = (str(meta["namespace"]), str(meta.get("name")))
        if key in self.names:
            raise UsageError(
                f'pods "{key[1]}" already exists in namespace "{key[0]}"',
                source=f"{d.source}:{d.line}",
            )
        spec = obj.setdefault("spec", {})
        status = obj.get("status") or {}
        bound = bool(spec.get("nodeName"))
        if not bound:
            default_pod(obj, self.classes)
        elif spec.get("priorityClassName") and "priority" not in spec:
            pc = self.classes.get(spec["priorityClassName"])
            if pc is not None:
                spec["priority"] = int(pc.get("value", 0))
        pod = Pod.from_obj(obj, self._next_seq())
        pod.given = bound
        self.names.add(key)
        if bound:
            self.given.append(pod)
            pod.start_time = _parse_ts(status.get("startTime")) or float("inf")
            if status.get("phase") in ("Succeeded", "Failed"):
                pod.phase = str(status["phase"])
                return
            if pod.node_name not in self.cluster.by_name:
                self.warnings.append(
                    f"warning: pod {key[0]}/{key[1]} is bound to unknown node {pod.node_name!r}; ignored"
                )
                return
            pod.phase = str(status.get("phase") or "Running")
            self.cluster.add_pod(pod, pod.node_name)
        else:
            self._stamp(pod)
            self.created.append(pod)
            self._enqueue(pod)

    def _stamp(self, pod: Pod) -> None:
        meta = pod.raw.setdefault("metadata", {})
        meta.setdefault("uid", self._uid())
        meta.setdefault("creationTimestamp", _ts(self._tick()))
        self.step_of[pod.key] = self.step_index
        self._warn_volumes(pod)

    def _warn_volumes(self, pod: Pod) -> None:
        for v in (pod.raw.get("spec") or {}).get("volumes") or []:
            if v.get("persistentVolumeClaim"):
                msg = (
                    f"warning: {pod.namespace}/{pod.owner_name or pod.name}: volumes are not "
                    "modelled; placing as if its PersistentVolumeClaims bind"
                )
                if msg not in self.warnings:
                    self.warnings.append(msg)
                return

    # -- controllers ---------------------------------------------------------------------------
    def _apply_controller(self, obj: dict[str, Any]) -> None:
        obj = clone(obj)
        kind = obj["kind"]
        meta = obj.setdefault("metadata", {})
        ns = str(meta.setdefault("namespace", "default"))
        name = str(meta.get("name"))
        spec = obj.setdefault("spec", {})
        existing = self.controllers.get((kind, ns, name))
        if kind == "Deployment":
            tmpl = pod_template(obj)
            h = template_hash(tmpl)
            rs_name = f"{name}-{h}"
            replicas = int(spec.get("replicas", 1))
            if existing is not None:
                existing.obj = obj
                existing.replicas = replicas
                current = next((rs for rs in existing.children if rs.name == rs_name), None)
                if current is not None:
                    # same template: a replicas change (or a rollback to an old revision)
                    existing.children.remove(current)
                    existing.children.append(current)
                    self._rollout(existing)
                    return
                dep = existing
            else:
                dep = Controller(
                    kind, ns, name, obj, controller_selector(obj), replicas, self._uid()
                )
                self.controllers[(kind, ns, name)] = dep
                adopted = self._adopt_replicaset(ns, name, dep.selector)
                if adopted is not None:
                    rs_name = adopted[0]
                    h = rs_name[len(name) + 1 :]
            labels = dict((tmpl.get("metadata") or {}).get("labels") or {})
            labels["pod-template-hash"] = h
            sel = dict(spec.get("selector") or {})
            ml = dict(sel.get("matchLabels") or {})
            ml["pod-template-hash"] = h
            sel["matchLabels"] = ml
            rs_obj: dict[str, Any] = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": rs_name, "namespace": ns, "labels": labels},
                "spec": {
                    "replicas": replicas,
                    "selector": sel,
                    "template": {
                        **tmpl,
                        "metadata": {**(tmpl.get("metadata") or {}), "labels": labels},
                    },
                },
            }
            rs = Controller(
                "ReplicaSet",
                ns,
                rs_name,
                rs_obj,
                controller_selector(rs_obj),
                0,
                self._uid(),
                owner_kind="Deployment",
                owner_name=name,
                owner_uid=dep.uid,
            )
            rs.template = clone(rs_obj["spec"]["template"])
            rs.pod_prefix = rs_name + "-"
            self.controllers[("ReplicaSet", ns, rs_name)] = rs
            if not dep.children:
                dep.children = [rs]
                self._scale(rs, replicas)
                return
            dep.children.append(rs)
            self._rollout(dep)
            return
        if existing is not None:
            existing.obj = obj
            if kind == "Job":
                self._scale(existing, self._job_target(obj))
            elif kind != "DaemonSet":
                self._scale(existing, int(spec.get("replicas", 1)))
            return
        ctrl = Controller(kind, ns, name, obj, controller_selector(obj), 0, self._uid())
        ctrl.template = pod_template(obj)
        tlabels = dict((ctrl.template.get("metadata") or {}).get("labels") or {})
        if kind == "ReplicaSet":
            ctrl.pod_prefix = name + "-"
        elif kind == "StatefulSet":
            tlabels["controller-revision-hash"] = f"{name}-{template_hash(ctrl.template)[:10]}"
        elif kind == "DaemonSet":
            tlabels["controller-revision-hash"] = template_hash(ctrl.template)[:10]
            tlabels["pod-template-generation"] = "1"
            ctrl.pod_prefix = name + "-"
        elif kind == "Job":
            tlabels.update(
                {
                    "batch.kubernetes.io/controller-uid": ctrl.uid,
                    "batch.kubernetes.io/job-name": name,
                    "controller-uid": ctrl.uid,
                    "job-name": name,
                }
            )
            ctrl.pod_prefix = name + "-"
        ctrl.template.setdefault("metadata", {})["labels"] = tlabels
        self.controllers[(kind, ns, name)] = ctrl
        if kind == "DaemonSet":
            self._sync_daemonset(ctrl)
        elif kind == "Job":
            self._scale(ctrl, self._job_target(obj))
        else:
            self._scale(ctrl, int(spec.get("replicas", 1)))

    # -- Deployment rollouts ---------------------------------------------------------------
    @staticmethod
    def _fenceposts(dep: Controller) -> tuple[int, int]:
        """(maxSurge, maxUnavailable) of a RollingUpdate, resolved against spec.replicas."""
        ru = ((dep.obj.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}

        def resolve(v: Any, up: bool) -> int:
            if v is None:
                v = "25%"
            if isinstance(v, str) and v.endswith("%"):
                x = int(v[:-1]) * dep.replicas
                return -(-x // 100) if up else x // 100
            return int(v)

        surge, unavailable = (
            resolve(ru.get("maxSurge"), True),
            resolve(ru.get("maxUnavailable"), False),
        )
        if surge == 0 and unavailable == 0:
            unavailable = 1
        return surge, unavailable

    def _available(self, rs: Controller) -> int:
        return sum(1 for p in self._owned(rs) if p.node_name)

    def _rollout(self, dep: Controller) -> None:
        """The Deployment controller: the newest ReplicaSet takes over from the older ones,
        RollingUpdate (maxSurge / maxUnavailable, bound pods count as available) or Recreate.
        Stops when done or when the new pods cannot be placed (a stuck rollout)."""
        new, olds = dep.children[-1], dep.children[:-1]
        want = dep.replicas
        strategy = ((dep.obj.get("spec") or {}).get("strategy") or {}).get(
            "type"
        ) or "RollingUpdate"
        if strategy == "Recreate":
            for rs in olds:
                self._scale(rs, 0)
            self._scale(new, want)
        else:
            surge, unavailable = self._fenceposts(dep)
            for _ in range(4 * want + 8):
                changed = False
                total = sum(rs.replicas for rs in dep.children)
                if new.replicas > want:
                    self._scale(new, want)
                    changed = True
                elif new.replicas < want and total < want + surge:
                    self._scale(new, new.replicas + min(want + surge - total, want - new.replicas))
                    changed = True
                self.run()
                old_total = sum(rs.replicas for rs in olds)
                if old_total:
                    total = sum(rs.replicas for rs in dep.children)
                    min_available = want - unavailable
                    new_unavailable = new.replicas - self._available(new)
                    budget = total - min_available - new_unavailable
                    # unhealthy (unplaced) old pods go first, then available ones above the floor
                    for rs in olds:
                        if budget <= 0:
                            break
                        down = min(rs.replicas - self._available(rs), budget)
                        if down > 0:
                            self._scale(rs, rs.replicas - down)
                            budget -= down
                            changed = True
                    available = sum(self._available(rs) for rs in dep.children)
                    excess = available - min_available
                    for rs in olds:
                        if excess <= 0:
                            break
                        down = min(rs.replicas, excess)
                        if down > 0:
                            self._scale(rs, rs.replicas - down)
                            excess -= down
                            changed = True
                    self.run()
                if not changed:
                    break
        for rs in olds:
            if rs.replicas == 0 and not self._owned(rs):
                dep.children.remove(rs)
                self.controllers.pop(("ReplicaSet", rs.namespace, rs.name), None)

    @staticmethod
    def _job_target(obj: dict[str, Any]) -> int:
        spec = obj.get("spec") or {}
        if spec.get("suspend"):
            return 0  # a suspended Job has no active pods
        par = 1 if spec.get("parallelism") is None else int(spec["parallelism"])
        comp = spec.get("completions")
        if comp is None:
            return par
        done = int((obj.get("status") or {}).get("succeeded") or 0)
        return max(0, min(par, int(comp) - done))

    def _owned(self, ctrl: Controller) -> list[Pod]:
        return [
            p
            for p in self.created + self.given
            if p.owner_kind == ctrl.kind
            and p.owner_name == ctrl.name
            and p.namespace == ctrl.namespace
            and not p.terminating
            and p.phase not in ("Succeeded", "Failed")
        ]

    def _admit(self, ctrl: Controller, more: int) -> None:
        """Refuse to create ``more`` pods for ``ctrl`` when that passes ``max_pods``."""
        if len(self.created) + len(self.given) + more > self.max_pods:
            raise UsageError(
                f'{ctrl.kind} "{ctrl.namespace}/{ctrl.name}": the simulation would hold more '
                f"than {self.max_pods} pods (the --max-pods limit)",
                hint="lower the replicas, or raise --max-pods (each pod costs a few KiB)",
            )

    def _make_pod(
        self, ctrl: Controller, name: str, node: str | None = None, queue_after: int | None = None
    ) -> Pod:
        self._admit(ctrl, 1)
        tmpl = clone(ctrl.template)
        meta = dict(tmpl.get("metadata") or {})
        meta.pop("creationTimestamp", None)
        labels = dict(meta.get("labels") or {})
        if ctrl.kind == "StatefulSet":
            labels["statefulset.kubernetes.io/pod-name"] = name
            labels["apps.kubernetes.io/pod-index"] = name.rsplit("-", 1)[1]
        obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                **meta,
                "name": name,
                "namespace": ctrl.namespace,
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": f"{API_GROUP[ctrl.kind]}/v1",
                        "kind": ctrl.kind,
                        "name": ctrl.name,
                        "uid": ctrl.uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": tmpl.get("spec") or {},
        }
        if ctrl.pod_prefix and ctrl.kind != "StatefulSet":
            obj["metadata"]["generateName"] = ctrl.pod_prefix
        spec = obj["spec"]
        if ctrl.kind == "StatefulSet":
            spec["hostname"] = name
            svc = (ctrl.obj.get("spec") or {}).get("serviceName")
            if svc:
                spec["subdomain"] = svc
        if ctrl.kind == "DaemonSet" and node is not None:
            daemon_tolerations(spec)
            aff = spec.setdefault("affinity", {})
            na = aff.setdefault("nodeAffinity", {})
            na["requiredDuringSchedulingIgnoredDuringExecution"] = {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
                ]
            }
        if ctrl.kind == "Job":
            spec.setdefault("restartPolicy", "Never")
        default_pod(obj, self.classes)
        pod = Pod.from_obj(obj, self._next_seq())
        self.names.add(pod.key)
        self._stamp(pod)
        self.created.append(pod)
        if queue_after is None:
            self._enqueue(pod)
        else:
            self.queue_keys[pod.key] = queue_after
            heapq.heappush(self.active, (queue_after, pod.seq, pod))
        return pod

    def _fresh_name(self, ctrl: Controller) -> str:
        while True:
            name = ctrl.pod_prefix + self._suffix()
            if (ctrl.namespace, name) not in self.names:
                return name

    def _scale(self, ctrl: Controller, replicas: int) -> None:
        ctrl.replicas = replicas
        if isinstance(ctrl.obj.get("spec"), dict):
            ctrl.obj["spec"]["replicas"] = replicas
        owned = self._owned(ctrl)
        if ctrl.kind == "StatefulSet":
            self._sync_statefulset(ctrl, owned)
            return
        if len(owned) < replicas:
            self._admit(ctrl, replicas - len(owned))
            for _ in range(replicas - len(owned)):
                self._make_pod(ctrl, self._fresh_name(ctrl))
        elif len(owned) > replicas:
            per_node: dict[str, int] = {}
            for p in owned:
                if p.node_name:
                    per_node[p.node_name] = per_node.get(p.node_name, 0) + 1

            def rank(p: Pod) -> tuple[int, int, float]:
                # getPodsToDelete: unassigned first, then doubled-up nodes, then newest first
                return (1 if p.node_name else 0, -per_node.get(p.node_name, 0), -p.seq)

            for p in sorted(owned, key=rank)[: len(owned) - replicas]:
                self._delete_pod(p, reason=None)

    def _sync_statefulset(self, ctrl: Controller, owned: list[Pod]) -> None:
        have = {p.name for p in owned}
        by_ord = sorted(owned, key=lambda p: int(p.name.rsplit("-", 1)[1]))
        for p in reversed(by_ord):
            if int(p.name.rsplit("-", 1)[1]) >= ctrl.replicas:
                self._delete_pod(p, reason=None)
        for i in range(ctrl.replicas):
            name = f"{ctrl.name}-{i}"
            if name in have:
                continue
            if ctrl.ordered_ready:
                # OrderedReady: the next ordinal only once every lower one is Running
                lower = [p for p in self._owned(ctrl) if int(p.name.rsplit("-", 1)[1]) < i]
                if len(lower) < i or any(not p.node_name for p in lower):
                    return
            self.names.discard((ctrl.namespace, name))
            prev = next((p for p in self._owned(ctrl) if p.name == f"{ctrl.name}-{i - 1}"), None)
            if (
                ctrl.ordered_ready
                and prev is not None
                and self.step_of.get(prev.key) == self.step_index
            ):
                # created as soon as its predecessor is Running, it is the next pod the
                # scheduler sees: queued right behind ordinal i-1, ahead of later workloads
                self._make_pod(ctrl, name, queue_after=self.queue_keys.get(prev.key, prev.seq))
            else:
                self._make_pod(ctrl, name)
            if ctrl.ordered_ready:
                return

    def _sync_daemonset(self, ctrl: Controller) -> None:
        owned = self._owned(ctrl)
        pinned: dict[str, Pod] = {}
        for p in owned:
            target = p.node_name or self._pinned_node(p)
            if target:
                pinned[target] = p
        probe = {
            "metadata": {"namespace": ctrl.namespace},
            "spec": clone(ctrl.template.get("spec") or {}),
        }
        daemon_tolerations(probe["spec"])
        for info in list(self.cluster.infos):
            if info.name in pinned:
                continue
            if node_should_run_daemon(info.node, probe):
                self._make_pod(ctrl, self._fresh_name(ctrl), node=info.name)

    @staticmethod
    def _pinned_node(p: Pod) -> str:
        for t in p.required_node_terms or ():
            for r in t.fields:
                if r.key == "metadata.name" and r.operator == "In" and len(r.values) == 1:
                    return r.values[0]
        return ""

    def _delete_pod(self, pod: Pod, reason: tuple[str, str] | None) -> None:
        """Delete (scale-down, node loss: the pod is gone from the output) or evict (reason
        set: preemption, drain: it stays, terminating, with a DisruptionTarget condition)."""
        self.unschedulable.pop(pod.key, None)
        self.retry.discard(pod.key)
        if pod.node_name:
            self.cluster.remove_pod(pod)
        pod.terminating = True
        if reason is None:
            for lst in (self.created, self.given):
                for i, q in enumerate(lst):
                    if q is pod:
                        del lst[i]
                        break
            self.retry.update(self.unschedulable)
            return
        meta = pod.raw.setdefault("metadata", {})
        meta["deletionTimestamp"] = _ts(self._tick())
        meta["deletionGracePeriodSeconds"] = int(
            (pod.raw.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        )
        if reason is not None:
            status = pod.raw.setdefault("status", {})
            conds = [
                c for c in status.get("conditions") or [] if c.get("type") != "DisruptionTarget"
            ]
            conds.append(
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": reason[0],
                    "message": reason[1],
                    "lastTransitionTime": _ts(self.clock),
                }
            )
            status["conditions"] = conds
        self.retry.update(self.unschedulable)

    def _replace(self, pod: Pod) -> None:
        """The owning controller notices a lost pod and creates a replacement."""
        ctrl = self.controllers.get((pod.owner_kind, pod.namespace, pod.owner_name))
        if ctrl is None:
            return
        if ctrl.kind == "DaemonSet":
            node = pod.node_name or self._pinned_node(pod)
            if node in self.cluster.by_name:
                self._make_pod(ctrl, self._fresh_name(ctrl), node=node)
        elif ctrl.kind == "StatefulSet":
            self._sync_statefulset(ctrl, self._owned(ctrl))
        else:
            self._scale(ctrl, ctrl.replicas)

    # -- the queue -----------------------------------------------------------------------------
    def _enqueue(self, pod: Pod) -> None:
        # Creation order: controllers create pods in bursts and the scheduler drains them as
        # fast as they arrive, so PrioritySort rarely sees two pods at once; retried pods are
        # older than a step's new pods and go first.
        heapq.heappush(self.active, (pod.seq, pod.seq, pod))

    def _node_event(self) -> None:
        self.retry.update(self.unschedulable)

    def run(self) -> None:
        while True:
            while self.active:
                _p, _s, pod = heapq.heappop(self.active)
                if pod.terminating or pod.node_name:
                    continue
                self._attempt(pod)
            again = [self.unschedulable[k] for k in list(self.retry) if k in self.unschedulable]
            self.retry.clear()
            if not again:
                return
            for p in again:
                del self.unschedulable[p.key]
                self._enqueue(p)

    def _explain_this(self, pod: Pod) -> bool:
        return self.explain

    def _attempt(self, pod: Pod, depth: int = 0) -> None:
        self.attempts += 1
        fw = self.frameworks.get(pod.scheduler_name)
        if fw is None:
            pod.message = None
            self.warnings.append(
                f'warning: pod {pod.namespace}/{pod.name}: no profile for schedulerName "{pod.scheduler_name}"; left Pending'
            )
            return
        res = fw.schedule(pod, explain=self._explain_this(pod))
        self.results[pod.key] = res
        if res.error is not None and res.node is None:
            pod.error = res.error
            pod.message = res.error
            self.unschedulable[pod.key] = pod
            self.failed_plugins[pod.key] = set()
            return
        if res.node is not None:
            self._bind(pod, res.node)
            return
        num = len(self.cluster.infos)
        post = ""
        if any(pl.name == "DefaultPreemption" for pl in fw.post_filter):
            budgets = [budget_from(o, list(self.cluster.all_pods())) for o in self.pdbs]
            pr = preempt(fw, pod, res, budgets)
            if pr.node is not None:
                for v in pr.victims:
                    self._delete_pod(
                        v,
                        (
                            "PreemptionByScheduler",
                            f"{pod.scheduler_name}: preempting to accommodate a higher priority pod",
                        ),
                    )
                    self.warnings.append(
                        f"info: {v.namespace}/{v.name} preempted by {pod.namespace}/{pod.name} on {pr.node}"
                    )
                pod.nominated_node = pr.node
                pod.message = fit_error_message(num, res.statuses, res.absent, res.prefilter_msg)
                for v in pr.victims:
                    self._replace(v)
                if depth < 3:
                    self._attempt(pod, depth + 1)
                else:
                    self._enqueue(pod)
                return
            post = "preemption: " + pr.message
        pod.message = fit_error_message(num, res.statuses, res.absent, res.prefilter_msg, post)
        pod.error = None
        self.unschedulable[pod.key] = pod
        plugins = {s.plugin for s in res.statuses.values()}
        if res.absent is not None:
            plugins.add(res.absent.plugin)
        self.failed_plugins[pod.key] = plugins

    def _bind(self, pod: Pod, node: str) -> None:
        self.cluster.add_pod(pod, node)
        pod.phase = "Running"
        pod.message = None
        pod.error = None
        pod.start_time = self._tick()
        self.unschedulable.pop(pod.key, None)
        for k in self.unschedulable:
            if self.failed_plugins.get(k, set()) & RETRY_ON_BIND:
                self.retry.add(k)
        if pod.owner_kind == "StatefulSet":
            ctrl = self.controllers.get(("StatefulSet", pod.namespace, pod.owner_name))
            if ctrl is not None and ctrl.ordered_ready:
                self._sync_statefulset(ctrl, self._owned(ctrl))

    # -- steps ---------------------------------------------------------------------------------
    def apply_step(self, step: Step) -> None:
        self.step_index += 1
        # Pending pods go back to the queue first: older than anything the step creates, they
        # are retried before the step's new pods.
        for p in sorted(self.unschedulable.values(), key=lambda q: q.seq):
            del self.unschedulable[p.key]
            self._enqueue(p)
        self.retry.clear()
        if step.verb == "scale":
            ctrl = self.controllers.get((step.kind, step.namespace, step.name))
            if ctrl is None:
                group = API_GROUP.get(step.kind, "apps")
                plural = step.kind.lower() + "s"
                raise UsageError(
                    f'{plural}.{group} "{step.name}" not found',
                    hint=f"--then {step.text!r}: no {step.kind} {step.namespace}/{step.name} in the inputs",
                )
            if ctrl.kind == "Deployment":
                ctrl.replicas = step.replicas
                ctrl.obj.setdefault("spec", {})["replicas"] = step.replicas
                self._rollout(ctrl)
            elif ctrl.kind == "Job":
                ctrl.obj.setdefault("spec", {})["parallelism"] = step.replicas
                self._scale(ctrl, self._job_target(ctrl.obj))
            else:
                self._scale(ctrl, step.replicas)
        elif step.verb == "apply":
            docs = read_documents(step.files, self.warnings)
            self._apply_docs(docs, initial=False)
        elif step.verb in ("cordon", "uncordon", "drain"):
            info = self.cluster.by_name.get(step.name)
            if info is None:
                raise UsageError(
                    f'nodes "{step.name}" not found',
                    hint=f"--then {step.text!r}: known nodes: "
                    + ", ".join(i.name for i in self.cluster.infos[:10]),
                )
            self._set_cordon(info.node, step.verb != "uncordon")
            if step.verb == "drain":
                for p in list(info.pods.values()):
                    if p.owner_kind == "DaemonSet":
                        continue
                    if not p.owner_kind:
                        self.warnings.append(
                            f"warning: deleting Pod {p.namespace}/{p.name} that is not managed by a controller (drain --force)"
                        )
                    self._delete_pod(p, ("EvictionByEvictionAPI", "Eviction API: evicting"))
                    self._replace(p)
        elif step.verb in ("taint", "label"):
            raise UsageError(
                f"--then {step.text!r}: {step.verb} is a step of fleetkit schedule's cluster",
                hint="run it through fleetkit schedule (the simulated cluster)",
            )
        elif step.verb == "delete":
            targets: list[str] = []
            if step.names:
                for n in step.names:
                    if n not in self.cluster.by_name:
                        raise UsageError(
                            f'nodes "{n}" not found',
                            hint=f"--then {step.text!r}: known nodes: "
                            + ", ".join(i.name for i in self.cluster.infos[:10]),
                        )
                    targets.append(n)
            if step.selector:
                sel = _parse_kubectl_selector(step.selector)
                targets += [
                    i.name
                    for i in self.cluster.infos
                    if sel.matches(i.node.labels) and i.name not in targets
                ]
                if not targets:
                    self.warnings.append(f"warning: --then {step.text!r}: No resources found")
            for n in targets:
                pods = self.cluster.remove_node(n)
                for p in pods:
                    self._delete_pod(p, None)
                for p in pods:
                    if p.owner_kind != "DaemonSet":
                        self._replace(p)
                for p in list(self.unschedulable.values()):
                    if p.owner_kind == "DaemonSet" and self._pinned_node(p) == n:
                        self._delete_pod(p, None)
            self._node_event()
        self.run()

    def _set_cordon(self, node: Node, on: bool) -> None:
        spec = node.raw.setdefault("spec", {})
        taints = [
            t
            for t in spec.get("taints") or []
            if t.get("key") != "node.kubernetes.io/unschedulable"
        ]
        if on:
            spec["unschedulable"] = True
            taints.append(
                {
                    "key": "node.kubernetes.io/unschedulable",
                    "effect": "NoSchedule",
                    "timeAdded": _ts(self.clock),
                }
            )
        else:
            spec.pop("unschedulable", None)
        if taints:
            spec["taints"] = taints
        else:
            spec.pop("taints", None)
        node.refresh()
        self.cluster.node_changed()
        self._node_event()

    # -- results -------------------------------------------------------------------------------
    def all_pods(self) -> list[Pod]:
        return self.given + self.created

    def new_pods(self) -> list[Pod]:
        return self.created
