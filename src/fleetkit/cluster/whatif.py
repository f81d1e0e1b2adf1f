"""What-if questions asked of a copy of the cluster: "what happens if this node is drained?".

The copy is the store's objects (uids, status, PDBs, controllers) loaded into a fresh
:class:`ClusterState` with its own :class:`ControlPlane` (the same scheduler configuration and
seed), so the answer comes from the same controllers, eviction rules and scheduler as the live
simulation, and the live state is never touched. Served as
``GET /fleetkit/v1/whatif/drain/{node}`` (see docs/cluster.md); the playbook module
``fleetkit.k8s.drain_check`` calls it over HTTP.
"""

from __future__ import annotations

from typing import Any

from fleetkit.cluster.api.resources import RESOURCES
from fleetkit.cluster.controllers._common import controller_ref
from fleetkit.cluster.runtime import ControlPlane
from fleetkit.cluster.state import ApiError, ClusterState, key_of
from fleetkit.scheduler import clone

__all__ = ["drain_report"]

Obj = dict[str, Any]
WHATIF_API = "fleetkit.dev/v1"


def _copy(cp: ControlPlane) -> tuple[ClusterState, ControlPlane]:
    state = ClusterState(seed=1)
    for res in RESOURCES:
        key = key_of(res)
        for obj in cp.state.store.list(key):
            meta = obj["metadata"]
            if state.store.get(key, str(meta.get("namespace") or ""), meta["name"]) is None:
                state.store.create(key, clone(obj))
            else:
                state.store.update(key, clone(obj))
    copy = ControlPlane(state, cp.binder.config)
    copy.settle()
    return state, copy


def _pending(state: ClusterState) -> dict[str, Obj]:
    out: dict[str, Obj] = {}
    for p in state.store.iter("pods"):
        status = p.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed") or p["metadata"].get("deletionTimestamp"):
            continue
        if not (p.get("spec") or {}).get("nodeName"):
            out[f"{p['metadata'].get('namespace')}/{p['metadata']['name']}"] = p
    return out


def _reason(p: Obj) -> str:
    for c in (p.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return str(c.get("message") or c.get("reason") or "")
    return "not scheduled"


def _workload(p: Obj) -> str:
    ref = controller_ref(p)
    if ref is None:
        return "Pod/" + str(p["metadata"]["name"])
    name = str(ref.get("name"))
    if ref.get("kind") == "ReplicaSet" and "-" in name:
        return "Deployment/" + name.rsplit("-", 1)[0]
    return f"{ref.get('kind')}/{name}"


def drain_report(cp: ControlPlane, node: str) -> Obj:
    """What ``kubectl drain NODE --ignore-daemonsets`` would do, on a copy: the pods it evicts,
    the evictions a PodDisruptionBudget refuses, and the pods left Pending with the scheduler's
    reasons. ``ok`` is true when the drain would complete and every pod would be placed."""
    if cp.state.store.get("nodes", "", node) is None:
        raise ApiError(
            404, "NotFound", f'nodes "{node}" not found', {"name": node, "kind": "nodes"}
        )
    state, copy = _copy(cp)
    before = set(_pending(state))
    nodes = state.res("", "Node")
    obj = state.get(nodes, "", node)
    state.update(nodes, {**obj, "spec": {**(obj.get("spec") or {}), "unschedulable": True}})
    copy.settle()
    victims = sorted(
        (
            p
            for p in state.store.iter("pods")
            if (p.get("spec") or {}).get("nodeName") == node
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            and (controller_ref(p) or {}).get("kind") != "DaemonSet"
        ),
        key=lambda p: (str(p["metadata"].get("namespace")), str(p["metadata"]["name"])),
    )
    evicted: list[Obj] = []
    refused: list[Obj] = []
    for p in victims:
        ns, name = str(p["metadata"]["namespace"]), str(p["metadata"]["name"])
        entry = {"namespace": ns, "name": name, "workload": _workload(p)}
        try:
            # kubectl drain retries a refused eviction; by then the replacements of the pods
            # evicted before have been scheduled (settle), so one try after settling is the same
            copy.evict(ns, name, dry_run=False)
        except ApiError as exc:
            causes = (exc.details or {}).get("causes") or [{}]
            refused.append({**entry, "reason": exc.message, "message": causes[0].get("message")})
            continue
        evicted.append(entry)
        copy.settle()
    after = _pending(state)
    stranded = [
        {
            "namespace": str(p["metadata"].get("namespace")),
            "name": str(p["metadata"]["name"]),
            "workload": _workload(p),
            "reason": _reason(p),
        }
        for key, p in sorted(after.items())
        if key not in before
    ]
    return {
        "apiVersion": WHATIF_API,
        "kind": "DrainReport",
        "node": node,
        "ok": not refused and not stranded,
        "evicted": evicted,
        "disruptionBudgetViolations": refused,
        "unschedulable": stranded,
    }
