"""``fleetkit schedule``: the cluster's machinery without HTTP.

The inputs are loaded into a :class:`ClusterState` with its :class:`ControlPlane` (the same
store, controllers, kubelet and scheduler as ``fleetkit cluster serve``):

1. what already exists (Nodes, Namespaces, PriorityClasses, Services, PodDisruptionBudgets, bound
   Pods and anything read back from a cluster: objects with a uid, ownerReferences or a status)
   is created first, all of it before any controller runs, so adoption does not depend on the
   order of the inputs (informers sync before controllers start);
2. every other object is applied in input order, as ``kubectl apply`` would send it, the control
   plane settling after each;
3. the ``--then`` steps (kubectl commands) run in order, the control plane settling after each.

Every object goes through the API server's decoding (strict field validation, its messages),
defaulting, admission and validation.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from fleetkit.cluster.api.resources import Resource, by_kind
from fleetkit.cluster.api.selectors import SelectorError, label_predicate
from fleetkit.cluster.controllers._common import controller_ref
from fleetkit.cluster.runtime import ControlPlane
from fleetkit.cluster.serve import ServeOptions, build
from fleetkit.cluster.state import ApiError, ClusterState, key_of
from fleetkit.cluster.store import WatchEvent
from fleetkit.errors import UsageError
from fleetkit.scheduler import (
    MAX_PODS,
    CycleResult,
    SchedulerConfig,
    clone,
    format_invalid,
    is_lenient,
    validate_object,
)
from fleetkit.scheduler.model import first_untolerated
from fleetkit.scheduler.steps import Step, parse_step
from fleetkit.scheduler.validation import HINTS
from fleetkit.scheduler.workloads import Document, read_raw_documents

__all__ = ["Outcome", "simulate", "run", "apply_objects"]

Obj = dict[str, Any]
Key = tuple[str, str]
STATE_KINDS = ("Namespace", "PriorityClass", "Node", "Service", "PodDisruptionBudget")
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_SCALE_RES = {
    "Deployment": "deployments.apps",
    "ReplicaSet": "replicasets.apps",
    "StatefulSet": "statefulsets.apps",
    "Job": "jobs.batch",
}


@dataclass(slots=True)
class Outcome:
    """The settled cluster and what ``fleetkit schedule`` reports about it."""

    state: ClusterState
    cp: ControlPlane
    order: dict[Key, int] = field(default_factory=dict)  # pods in creation order
    existing: set[Key] = field(default_factory=set)  # pods given as already there
    warnings: list[str] = field(default_factory=list)

    def pods(self) -> list[Obj]:
        """Every stored pod, in creation order."""
        pods = list(self.state.store.iter("pods"))
        end = len(self.order)
        pods.sort(key=lambda p: self.order.get(_key(p), end))
        return pods

    def new_pods(self) -> list[Obj]:
        """The pods the inputs and steps created (not given as existing)."""
        return [p for p in self.pods() if _key(p) not in self.existing]

    @property
    def results(self) -> dict[Key, CycleResult]:
        """The last scheduling cycle of each pod (``explain=True`` only)."""
        return self.cp.binder.results


def _key(obj: Obj) -> Key:
    meta = obj["metadata"]
    return (str(meta.get("namespace") or ""), str(meta["name"]))


def _is_state(o: Obj) -> bool:
    """Already part of the cluster rather than something the user applies now."""
    meta = o.get("metadata") if isinstance(o.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    if o.get("kind") in STATE_KINDS or meta.get("uid") or meta.get("ownerReferences"):
        return True
    if o.get("kind") == "Pod" and isinstance(o.get("spec"), dict) and o["spec"].get("nodeName"):
        return True
    return bool(o.get("status"))


def _name(obj: Obj) -> str:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return str((meta or {}).get("name") or "")


def _lenient(d: Document, res: Resource, obj: Obj, warnings: list[str]) -> None:
    """Invalid fields kube-scheduler has defined behaviour for (its own tests schedule such
    pods): the API server would refuse them; fleetkit warns and schedules as kube would."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    if res.kind == "Pod" and "containers" not in (spec or {}):
        raise ApiError(
            422, "Invalid", f'Pod "{_name(obj)}" is invalid: spec.containers: Required value'
        )
    soft = [e for e in validate_object(obj) if is_lenient(e, res.kind)]
    if soft:
        warnings.append(
            f"warning: {d.source}:{d.line}: {format_invalid(res.kind, _name(obj), soft)} "
            "(kubectl apply would reject this; scheduled as kube-scheduler would treat it)"
        )


def _resource(d: Document, warnings: list[str]) -> Resource | None:
    av, kind = d.obj.get("apiVersion"), d.obj.get("kind")
    where = f"{d.source}:{d.line}"
    if not kind:
        raise UsageError("error validating data: kind not set", source=where)
    if not av:
        raise UsageError("error validating data: apiVersion not set", source=where)
    res = by_kind(str(av), str(kind))
    if res is None:
        warnings.append(f"warning: {where}: skipping {av}/{kind} (not used for placement)")
    return res


def _refuse(d: Document, exc: ApiError) -> UsageError:
    hint = (
        f"kubectl apply -f {d.source} is refused the same way (the API server's strict field "
        "validation and admission)"
    )
    if "topologyKey" in exc.message:
        hint += "; " + HINTS["topologyKey"]
    return UsageError(exc.message, hint=hint, source=f"{d.source}:{d.line}")


class _Runner:
    """Loads documents and runs steps against one state and control plane."""

    def __init__(self, out: Outcome, max_pods: int) -> None:
        self.out = out
        self.st = out.state
        self.cp = out.cp
        self.max_pods = max_pods

    # -- loading -----------------------------------------------------------------------------
    def create_existing(
        self, docs: list[tuple[Document, Resource]], validation: str = "Strict"
    ) -> None:
        """Create everything first, then let the controllers run (order-independent)."""
        order = {k: i for i, k in enumerate(STATE_KINDS)}
        docs = sorted(docs, key=lambda dr: order.get(dr[1].kind, len(order)))
        self.cp.paused = True
        try:
            for d, res in docs:
                try:
                    obj, _ = self.st.decode(res, d.obj, validation)
                    if res.kind == "Pod" and (obj.get("spec") or {}).get("nodeName"):
                        obj.setdefault("status", {}).setdefault("phase", "Running")
                    meta = obj.setdefault("metadata", {})
                    ns = str(meta.get("namespace") or ("default" if res.namespaced else ""))
                    if res.kind == "Namespace" and self.st.store.get("namespaces", "", ns):
                        continue
                    if res.kind == "Node":
                        self._check_node(d, obj)
                    elif res.namespaced and not self.st.store.get("namespaces", "", ns):
                        # objects that exist imply their namespace does
                        self.st.create(
                            self.st.res("", "Namespace"),
                            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                        )
                    self._check_room(f"{d.source}:{d.line}", res, obj)
                    _lenient(d, res, obj, self.out.warnings)
                    created = self.st.create(res, obj, keep_uid=True)
                    if res.kind == "Pod":
                        self.out.existing.add(_key(created))
                except ApiError as exc:
                    raise _refuse(d, exc) from exc
        finally:
            self.cp.paused = False
        self.cp.settle()

    def apply(self, d: Document, res: Resource) -> None:
        """``kubectl apply`` of one object: create it or update the live one; then settle."""
        try:
            obj, _ = self.st.decode(res, d.obj, "Strict")
            meta = obj.setdefault("metadata", {})
            ns = str(meta.get("namespace") or ("default" if res.namespaced else ""))
            live = self.st.store.get(key_of(res), ns, str(meta.get("name")))
            if res.kind == "Node":
                self._check_node(d, obj)
            self._check_room(f"{d.source}:{d.line}", res, obj, live)
            _lenient(d, res, obj, self.out.warnings)
            if live is None:
                uid = self._owner_uid(res, ns, _name(obj))
                if uid:
                    # the inputs hold what this object owns (a `kubectl get -o yaml` dump of its
                    # ReplicaSets or pods): it exists in that cluster, and applying it updates it
                    meta["uid"] = uid
                self.st.create(res, obj, keep_uid=bool(uid))
            else:
                meta["resourceVersion"] = live["metadata"]["resourceVersion"]
                self.st.update(res, obj, ns)
        except ApiError as exc:
            raise _refuse(d, exc) from exc
        self.cp.settle()

    def _owner_uid(self, res: Resource, ns: str, name: str) -> str:
        """The uid existing objects' controller references give (kind, ns, name), if any."""
        if res.kind not in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"):
            return ""
        for dependent in ("replicasets.apps", "pods"):
            for o in self.st.store.list(dependent, ns):
                ref = controller_ref(o)
                if ref and ref.get("kind") == res.kind and ref.get("name") == name:
                    return str(ref.get("uid") or "")
        return ""

    def _check_node(self, d: Document, obj: Obj) -> None:
        status = obj.get("status") or {}
        if status.get("allocatable"):
            return
        name = obj["metadata"].get("name")
        if status.get("capacity"):
            self.out.warnings.append(
                f"warning: {d.source}:{d.line}: Node {name!r} has no status.allocatable; using "
                "status.capacity (a kubelet reports allocatable = capacity - reserved)"
            )
        else:
            self.out.warnings.append(
                f"warning: {d.source}:{d.line}: Node {name!r} has no status.allocatable: the "
                "scheduler sees 0 pods, 0 CPU and 0 memory there, so no pod fits "
                "(add status.allocatable as `kubectl get node -o yaml` shows it)"
            )

    def _check_room(self, where: str, res: Resource, obj: Obj, live: Obj | None = None) -> None:
        """Refuse, before creating any, a workload that would hold more than max_pods pods."""
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        if res.kind in ("Deployment", "ReplicaSet", "StatefulSet"):
            want = int(spec.get("replicas", 1) or 0)
        elif res.kind == "Job":
            want = int(spec.get("parallelism", 1) or 0)
        elif res.kind == "DaemonSet":
            want = len(self.st.store.objects["nodes"])
        elif res.kind == "Pod":
            want = 1
        else:
            return
        have = len(self.st.store.objects["pods"])
        if live is not None and res.kind != "Pod":
            want -= int(((live.get("status") or {}).get("replicas")) or 0)
        if have + want > self.max_pods:
            # what the API server itself refuses (an int32 out of range) is said its way first
            errs = [e for e in validate_object(obj) if not is_lenient(e, res.kind)]
            if errs:
                raise ApiError(422, "Invalid", format_invalid(res.kind, _name(obj), errs))
            raise UsageError(
                f"{res.kind} {_name(obj)!r} would bring the pods to {have + want}: "
                f"more than {self.max_pods} pods (--max-pods)",
                hint="raise --max-pods (kube documents 150000 pods per cluster) or lower replicas",
                source=where,
            )

    def load(self, docs: list[Document], validation: str = "Strict") -> None:
        """Create what exists, then apply the rest in order (``validation``: of what exists)."""
        state: list[tuple[Document, Resource]] = []
        applied: list[tuple[Document, Resource]] = []
        for d in docs:
            if not isinstance(d.obj, dict):
                raise UsageError(
                    "expected a Kubernetes object (a mapping with apiVersion and kind)",
                    source=f"{d.source}:{d.line}",
                )
            res = _resource(d, self.out.warnings)
            if res is not None:
                (state if _is_state(d.obj) else applied).append((d, res))
        if state:
            self.create_existing(state, validation)
        for d, res in applied:
            self.apply(d, res)

    # -- steps (kubectl commands) ------------------------------------------------------------
    def step(self, step: Step) -> None:
        getattr(self, "_" + step.verb)(step)
        self.cp.settle()

    def _fail(self, step: Step, message: str, hint: str | None = None) -> UsageError:
        return UsageError(f"--then {step.text!r}: {message}", hint=hint)

    def _get(self, step: Step, res: Resource, ns: str, name: str) -> Obj:
        obj = self.st.store.get(key_of(res), ns if res.namespaced else "", name)
        if obj is None:
            known = ", ".join(o["metadata"]["name"] for o in self.st.objects(res, ns)[:10])
            raise self._fail(
                step,
                f'Error from server (NotFound): {res.qualified} "{name}" not found',
                hint=f"known {res.plural}: {known or '(none)'}",
            )
        return obj

    def _scale(self, step: Step) -> None:
        res = self.st.resources[_SCALE_RES[step.kind]]
        obj = clone(self._get(step, res, step.namespace, step.name))
        field_ = "parallelism" if step.kind == "Job" else "replicas"
        obj["spec"][field_] = step.replicas
        self._check_room(f"--then {step.text!r}", res, obj, obj)
        self.st.update(res, obj, step.namespace)

    def _apply(self, step: Step) -> None:
        for d in read_raw_documents(step.files):
            res = _resource(d, self.out.warnings)
            if res is not None:
                self.apply(d, res)

    def _nodes(self, step: Step) -> list[Obj]:
        nodes = self.st.res("", "Node")
        if step.name:
            return [self._get(step, nodes, "", step.name)]
        if "--all" in step.flags:
            return self.st.objects(nodes)
        try:
            pred = label_predicate(step.selector)
        except SelectorError as exc:
            raise self._fail(step, str(exc)) from exc
        found = [n for n in self.st.objects(nodes) if pred(n["metadata"].get("labels") or {})]
        if not found:
            self.out.warnings.append(f"warning: --then {step.text!r}: No resources found")
        return found

    def _set_unschedulable(self, node: Obj, on: bool) -> None:
        spec = {k: v for k, v in (node.get("spec") or {}).items() if k != "unschedulable"}
        if on:
            spec["unschedulable"] = True
        self.st.update(self.st.res("", "Node"), {**node, "spec": spec})

    def _cordon(self, step: Step) -> None:
        self._set_unschedulable(self._nodes(step)[0], True)

    def _uncordon(self, step: Step) -> None:
        self._set_unschedulable(self._nodes(step)[0], False)

    def _drain(self, step: Step) -> None:
        node = self._nodes(step)[0]
        name = node["metadata"]["name"]
        on_node = [
            p
            for p in self.st.store.iter("pods")
            if (p.get("spec") or {}).get("nodeName") == name
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        daemons = [p for p in on_node if (controller_ref(p) or {}).get("kind") == "DaemonSet"]
        bare = [p for p in on_node if controller_ref(p) is None]
        problems = []
        if bare and "--force" not in step.flags:
            problems.append(
                "cannot delete Pods that declare no controller (use --force to override): "
                + ", ".join("/".join(_key(p)) for p in bare)
            )
        if daemons and "--ignore-daemonsets" not in step.flags:
            problems.append(
                "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): "
                + ", ".join("/".join(_key(p)) for p in daemons)
            )
        if problems:
            raise self._fail(
                step,
                f'error: unable to drain node "{name}" due to error: ' + ", ".join(problems),
                hint="kubectl drain refuses the same; add the flag it names to the step",
            )
        self._set_unschedulable(node, True)
        self.cp.settle()
        refused: list[Obj] = []
        for p in on_node:
            if p in daemons:
                continue
            try:
                self.cp.evict(*_key(p), dry_run=False)
            except ApiError:
                refused.append(p)
                continue
            self.cp.settle()
        for p in refused:
            # kubectl drain retries a refused eviction; by then the replacements of the pods
            # evicted before have been scheduled, so one retry after settling is the same
            try:
                self.cp.evict(*_key(p), dry_run=False)
                self.cp.settle()
            except ApiError as exc:
                self.out.warnings.append(
                    f'warning: --then {step.text!r}: error when evicting pods/"{p["metadata"]["name"]}"'
                    f' -n "{p["metadata"]["namespace"]}" (will retry after 5s): {exc.message} '
                    "(the drain would not finish; the pod stays)"
                )

    def _delete(self, step: Step) -> None:
        nodes = self.st.res("", "Node")
        targets = [self._get(step, nodes, "", n) for n in step.names]
        if step.selector:
            step.name = ""
            targets += [n for n in self._nodes(step) if n not in targets]
        for n in targets:
            self.st.delete(nodes, "", n["metadata"]["name"])
            self.cp.settle()

    def _taint(self, step: Step) -> None:
        nodes = self.st.res("", "Node")
        for node in self._nodes(step):
            name = node["metadata"]["name"]
            taints = [dict(t) for t in (node.get("spec") or {}).get("taints") or []]
            for change in step.changes:
                taints = self._taint_change(step, name, taints, change)
            spec = {k: v for k, v in (node.get("spec") or {}).items() if k != "taints"}
            if taints:
                spec["taints"] = taints
            self.st.update(nodes, {**node, "spec": spec})
            self.cp.settle()
            self._evict_no_execute(name, taints)

    def _taint_change(self, step: Step, node: str, taints: list[Obj], change: str) -> list[Obj]:
        remove = change.endswith("-")
        spec = change[:-1] if remove else change
        key_value, _, effect = spec.partition(":")
        key, eq, value = key_value.partition("=")
        if not key or (effect and effect not in EFFECTS) or (not remove and not effect):
            if effect and effect not in EFFECTS:
                msg = f"invalid taint effect: {effect}, unsupported taint effect"
            else:
                msg = f"invalid taint spec: {change}"
            raise self._fail(step, "error: " + msg)
        if remove:
            keep = [t for t in taints if not (t["key"] == key and effect in ("", t["effect"]))]
            if len(keep) == len(taints):
                shown = f"{key}:{effect}" if effect else key
                raise self._fail(step, f'error: taint "{shown}" not found')
            return keep
        same = [t for t in taints if t["key"] == key and t["effect"] == effect]
        if same and "--overwrite" not in step.flags:
            raise self._fail(
                step,
                f"error: node {node} already has {key} taint(s) with same effect(s) and "
                "--overwrite is false",
            )
        new: Obj = {"key": key, "effect": effect}
        if eq:
            new["value"] = value
        return [t for t in taints if t not in same] + [new]

    def _evict_no_execute(self, node: str, taints: list[Obj]) -> None:
        """The taint-eviction controller: pods that do not tolerate a NoExecute taint go."""
        from fleetkit.scheduler.model import Pod, Taint

        hard = tuple(
            Taint(str(t["key"]), str(t.get("value") or ""), str(t["effect"]))
            for t in taints
            if t.get("effect") == "NoExecute"
        )
        if not hard:
            return
        for p in list(self.st.store.iter("pods")):
            if (p.get("spec") or {}).get("nodeName") != node:
                continue
            model = Pod.from_obj(p, 0)
            if first_untolerated(hard, model.tolerations, ("NoExecute",)) is not None:
                self.st.delete(self.st.res("", "Pod"), *_key(p))
                self.cp.settle()

    def _label(self, step: Step) -> None:
        kinds = {"Node": ("", "Node"), "Pod": ("", "Pod"), "Namespace": ("", "Namespace")}
        res = self.st.res(*kinds[step.kind])
        if step.kind == "Node":
            targets = self._nodes(step)
        elif step.name:
            targets = [self._get(step, res, step.namespace, step.name)]
        else:
            pred = label_predicate(step.selector)
            targets = [
                o
                for o in self.st.objects(res, step.namespace)
                if "--all" in step.flags or pred(o["metadata"].get("labels") or {})
            ]
        for obj in targets:
            labels = dict(obj["metadata"].get("labels") or {})
            for change in step.changes:
                if change.endswith("-"):
                    if labels.pop(change[:-1], None) is None:
                        self.out.warnings.append(
                            f'warning: --then {step.text!r}: label "{change[:-1]}" not found.'
                        )
                    continue
                k, eq, v = change.partition("=")
                if not eq or not k:
                    raise self._fail(step, f"error: invalid label spec: {change}")
                if k in labels and labels[k] != v and "--overwrite" not in step.flags:
                    raise self._fail(
                        step,
                        f"error: '{k}' already has a value ({labels[k]}), and --overwrite is false",
                    )
                labels[k] = v
            new = {**obj, "metadata": {**obj["metadata"], "labels": labels}}
            try:
                self.st.update(res, new, str(obj["metadata"].get("namespace") or ""))
            except ApiError as exc:
                raise self._fail(step, exc.message) from exc


def simulate(
    files: list[str],
    steps: list[str] | None = None,
    config: SchedulerConfig | None = None,
    seed: int = 1,
    explain: bool = False,
    live: list[Obj] | None = None,
    max_pods: int = MAX_PODS,
    objects: list[Obj] | None = None,
) -> Outcome:
    """Load ``live`` objects (a cluster's snapshot), ``objects`` (inputs already in memory, as
    if read from a file) and ``files``, then run ``steps``."""
    parsed = [parse_step(s) for s in steps or []]
    order: dict[Key, int] = {}

    def note(ev: WatchEvent) -> None:
        if ev.resource == "pods" and ev.type == "ADDED":
            order.setdefault(_key(ev.obj), len(order))

    state, cp = build(ServeOptions(config=config, seed=seed), listener=note)
    cp.binder.explain = explain
    cp.nodes.label_hostname = False
    cp.recorder.normal = False
    cp.kubelet.with_binding = True
    # no watch ever starts here: keep no history of old object versions for one
    state.store.history = collections.deque(maxlen=0)
    out = Outcome(state, cp, order)
    runner = _Runner(out, max_pods)
    if live:
        # a live cluster may carry fields newer than these schemas: imported, not validated
        runner.load([Document(o, "<cluster>", i + 1) for i, o in enumerate(live)], "Ignore")
    if objects:
        runner.load([Document(o, "<objects>", i + 1) for i, o in enumerate(objects)])
    runner.load(read_raw_documents(files))
    for step in parsed:
        try:
            runner.step(step)
        except ApiError as exc:
            raise UsageError(f"--then {step.text!r}: {exc.message}") from exc
    names = set(cp.binder.frameworks)
    for p in out.new_pods():
        sched = (p.get("spec") or {}).get("schedulerName") or "default-scheduler"
        if sched not in names and not (p.get("spec") or {}).get("nodeName"):
            out.warnings.append(
                f"warning: pod {'/'.join(_key(p))}: no profile for schedulerName "
                f'"{sched}"; left Pending'
            )
    return out


def apply_objects(state: ClusterState, cp: ControlPlane, objs: list[Obj], source: str) -> None:
    """Apply each object as ``kubectl apply`` would, letting the cluster settle after each."""
    runner = _Runner(Outcome(state, cp), MAX_PODS)
    for i, o in enumerate(objs):
        d = Document(o, source, i + 1)
        res = _resource(d, [])
        if res is not None:
            runner.apply(d, res)


def run(
    cluster_files: list[str],
    files: list[str],
    steps: list[str],
    config: SchedulerConfig | None = None,
    seed: int = 1,
) -> Obj:
    """``fleetkit cluster schedule``: a PodList of every pod in creation order."""
    out = simulate(cluster_files + files, steps, config, seed)
    return {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": out.pods()}
