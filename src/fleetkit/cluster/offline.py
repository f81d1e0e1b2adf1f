"""``fleetkit cluster schedule``: the objects of ``fleetkit schedule``'s inputs applied to a
simulated cluster in process (as ``kubectl apply`` would, one at a time, the control plane
reacting to each), what-if steps in kubectl's grammar, and the resulting pods as a PodList.
The same machinery as ``fleetkit cluster serve``, without HTTP."""

from __future__ import annotations

from typing import Any

from fleetkit.cluster.api.resources import by_kind
from fleetkit.cluster.runtime import ControlPlane
from fleetkit.cluster.serve import ServeOptions, build, load_manifests
from fleetkit.cluster.state import ApiError, ClusterState, key_of
from fleetkit.cluster.store import WatchEvent
from fleetkit.errors import UsageError
from fleetkit.scheduler import SchedulerConfig, parse_step

__all__ = ["run", "apply_objects"]

Obj = dict[str, Any]
_SCALE = {
    "Deployment": "deployments.apps",
    "ReplicaSet": "replicasets.apps",
    "StatefulSet": "statefulsets.apps",
}


def apply_objects(state: ClusterState, cp: ControlPlane, objs: list[Obj], source: str) -> None:
    """Create or update each object through the API's rules, letting the cluster settle after each."""
    for o in objs:
        res = by_kind(str(o.get("apiVersion") or ""), str(o.get("kind") or ""))
        if res is None:
            continue  # kinds the cluster does not serve are not used for placement
        try:
            obj, _ = state.decode(res, o, "Strict")
            meta = obj.setdefault("metadata", {})
            ns = str(meta.get("namespace") or ("default" if res.namespaced else ""))
            live = state.store.get(key_of(res), ns, str(meta.get("name")))
            if live is None:
                state.create(res, obj)
            else:
                obj["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
                state.update(res, obj, ns)
        except ApiError as exc:
            raise UsageError(f"{source}: {exc.message}") from exc
        cp.settle()


def run(
    cluster_files: list[str],
    files: list[str],
    steps: list[str],
    config: SchedulerConfig | None = None,
    seed: int = 1,
) -> Obj:
    """Load ``cluster_files`` as the starting state, apply ``files`` then ``steps``; a PodList
    of every pod in creation order."""
    parsed = [parse_step(s) for s in steps]
    order: dict[tuple[str, str], int] = {}

    def note(ev: WatchEvent) -> None:
        if ev.resource == "pods" and ev.type == "ADDED":
            m = ev.obj["metadata"]
            order.setdefault((m.get("namespace"), m["name"]), len(order))

    state, cp = build(ServeOptions(nodes=cluster_files, config=config, seed=seed), listener=note)
    for f in files:
        apply_objects(state, cp, load_manifests([f]), f)
    for step in parsed:
        if step.verb == "scale":
            key = _SCALE.get(step.kind)
            if key is None:
                raise UsageError(f"--then {step.text!r}: cannot scale {step.kind} in the cluster")
            res = state.resources[key]
            obj = state.get(res, step.namespace, step.name)
            state.update(
                res, {**obj, "spec": {**obj["spec"], "replicas": step.replicas}}, step.namespace
            )
        elif step.verb == "apply":
            for f in step.files:
                apply_objects(state, cp, load_manifests([f]), f)
        elif step.verb in ("cordon", "uncordon"):
            nodes = state.res("", "Node")
            obj = state.get(nodes, "", step.name)
            spec = {k: v for k, v in (obj.get("spec") or {}).items() if k != "unschedulable"}
            if step.verb == "cordon":
                spec["unschedulable"] = True
            state.update(nodes, {**obj, "spec": spec})
        elif step.verb == "delete":
            for n in step.names:
                state.delete(state.res("", "Node"), "", n)
        else:
            raise UsageError(f"--then {step.text!r}: not supported by the cluster runner yet")
        cp.settle()
    pods = list(state.store.iter("pods"))
    pods.sort(key=lambda p: order.get((p["metadata"].get("namespace"), p["metadata"]["name"]), -1))
    return {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": pods}
