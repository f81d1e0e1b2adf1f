"""What ``fleetkit schedule`` prints about a settled :class:`~fleetkit.cluster.offline.Outcome`:
the pods as ``kubectl get pods -o wide`` shows them (without AGE: no time passes offline), the
workloads with READY/UP-TO-DATE and stuck rollouts called out, FailedScheduling events, node and
zone fill (one unit per column, as kubectl's quantities), and a closing ``N Running, M Pending``
line; ``--explain`` records naming the pods that block each node."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fleetkit.cluster.api.tables import node_row, pod_row
from fleetkit.cluster.controllers._common import controller_ref
from fleetkit.cluster.offline import Outcome
from fleetkit.scheduler import NodeInfo, Pod
from fleetkit.scheduler.model import ZONE
from fleetkit.scheduler.plugins.base import CycleState
from fleetkit.scheduler.plugins.pod_topology_spread import (
    SPREAD_PREFILTER,
    Constraint,
    PodTopologySpread,
)
from fleetkit.scheduler.report import explain_entry

__all__ = ["pod_list", "render_table", "explain_entries", "summary_line"]

Obj = dict[str, Any]
_POD_HEAD = ["NAME", "READY", "STATUS", "RESTARTS", "IP", "NODE", "NOMINATED NODE"]
_POD_HEAD += ["READINESS GATES"]
_BINARY = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))


def pod_list(out: Outcome) -> Obj:
    """Every pod as a v1 List, in creation order (``-o json|yaml``)."""
    return {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": out.pods(),
    }


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _message(p: Obj) -> str:
    for c in (p.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return str(c.get("message") or c.get("reason") or "")
    return ""


def _phase(p: Obj) -> str:
    if p["metadata"].get("deletionTimestamp"):
        return "Terminating"
    return str((p.get("status") or {}).get("phase") or "Pending")


def summary_line(pods: list[Obj]) -> str:
    """``6 pods: 3 Running, 3 Pending`` (other phases only when present)."""
    counts = Counter(_phase(p) for p in pods)
    parts = [f"{counts.pop('Running', 0)} Running", f"{counts.pop('Pending', 0)} Pending"]
    parts += [f"{n} {phase}" for phase, n in sorted(counts.items())]
    return f"{len(pods)} pod{'s' if len(pods) != 1 else ''}: " + ", ".join(parts)


def _pods_table(pods: list[Obj]) -> str:
    multi_ns = any(p["metadata"].get("namespace") != "default" for p in pods)
    rows = [(["NAMESPACE"] if multi_ns else []) + _POD_HEAD]
    for p in pods:
        cells = [str(c) for c in pod_row(p)]
        del cells[4]  # AGE: nothing ages in a simulation that has no clock
        rows.append(([str(p["metadata"].get("namespace"))] if multi_ns else []) + cells)
    return _table(rows)


# -- workloads -------------------------------------------------------------------------------
def _workload_of(p: Obj, rs_owner: dict[tuple[str, str], str]) -> str:
    ref = controller_ref(p)
    if ref is None:
        return ""
    kind, name = str(ref.get("kind")), str(ref.get("name"))
    ns = str(p["metadata"].get("namespace"))
    if kind == "ReplicaSet" and (ns, name) in rs_owner:
        return f"deployment.apps/{rs_owner[(ns, name)]}"
    group = "batch" if kind == "Job" else "apps"
    return f"{kind.lower()}.{group}/{name}"


def _workloads(out: Outcome, pods: list[Obj]) -> str:
    store = out.state.store
    rs_owner: dict[tuple[str, str], str] = {}
    for rs in store.iter("replicasets.apps"):
        ref = controller_ref(rs)
        if ref is not None and ref.get("kind") == "Deployment":
            rs_owner[(str(rs["metadata"]["namespace"]), rs["metadata"]["name"])] = str(ref["name"])
    pending: dict[str, list[Obj]] = {}
    for p in pods:
        if _phase(p) == "Pending":
            pending.setdefault(_workload_of(p, rs_owner), []).append(p)
    rows: list[list[str]] = []
    for res, kind in (
        ("deployments.apps", "deployment.apps"),
        ("statefulsets.apps", "statefulset.apps"),
        ("daemonsets.apps", "daemonset.apps"),
        ("replicasets.apps", "replicaset.apps"),
        ("jobs.batch", "job.batch"),
    ):
        for o in store.list(res):
            if res == "replicasets.apps" and controller_ref(o) is not None:
                continue  # shown through its Deployment
            spec, st = o.get("spec") or {}, o.get("status") or {}
            if res == "daemonsets.apps":
                want = int(st.get("desiredNumberScheduled") or 0)
                ready, updated = int(st.get("numberReady") or 0), st.get("updatedNumberScheduled")
                avail = int(st.get("numberAvailable") or 0)
            elif res == "jobs.batch":
                want = int(spec.get("parallelism", 1) or 0)
                ready, updated = int(st.get("ready") or 0), None
                avail = int(st.get("active") or 0)
            else:
                want = int(spec.get("replicas", 1) or 0)
                ready, updated = int(st.get("readyReplicas") or 0), st.get("updatedReplicas")
                avail = int(st.get("availableReplicas") or ready)
            name = f"{kind}/{o['metadata']['name']}"
            ns = str(o["metadata"].get("namespace"))
            stuck = [p for p in pending.get(name, []) if p["metadata"].get("namespace") == ns]
            note = "-"
            if stuck:
                why = Counter(_reason(p) for p in stuck).most_common(1)[0][0]
                note = f"rollout stuck: {len(stuck)} Pending ({why})"
            rows.append(
                [
                    ns,
                    name,
                    f"{ready}/{want}",
                    "-" if updated is None else str(int(updated or 0)),
                    str(avail),
                    note,
                ]
            )
    if not rows:
        return ""
    multi_ns = any(r[0] != "default" for r in rows)
    head = ["NAMESPACE"] if multi_ns else []
    body = [r if multi_ns else r[1:] for r in rows]
    return _table([head + ["WORKLOAD", "READY", "UP-TO-DATE", "AVAILABLE", "NOTE"]] + body)


def _reason(p: Obj) -> str:
    """The plugins' reasons of a FailedScheduling message, without the node counts' header."""
    msg = _message(p)
    if ": " in msg:
        msg = msg.split(": ", 1)[1]
    return msg.split(" preemption:", 1)[0].rstrip(".") or "not scheduled yet"


# -- nodes -------------------------------------------------------------------------------------
def _unit(values: list[int]) -> tuple[str, int]:
    """The largest binary suffix every value of a column is a whole multiple of (kubectl prints
    quantities exactly; one suffix per column keeps them comparable)."""
    for suffix, size in _BINARY:
        if all(v % size == 0 for v in values):
            return suffix, size
    return "", 1


def _pct(part: int, whole: int) -> str:
    return f"{(part * 100 // whole) if whole else 0}%"


def _fill_rows(
    rows: list[tuple[str, ...]], cpu: list[tuple[int, int]], mem: list[tuple[int, int]]
) -> list[list[str]]:
    cores = all(c % 1000 == 0 for c, _ in cpu)
    suffix, size = _unit([m for m, _ in mem if m] or [0])
    out = []
    for head, (c, ca), (m, ma) in zip(rows, cpu, mem, strict=True):
        cpu_s = f"{c // 1000}" if cores or not c else f"{c}m"
        mem_s = f"{m // size}{suffix}" if m else "0"
        out.append([*head, f"{cpu_s} ({_pct(c, ca)})", f"{mem_s} ({_pct(m, ma)})"])
    return out


def _nodes(out: Outcome) -> str:
    cache = out.cp.binder.cache
    heads: list[tuple[str, ...]] = []
    cpu: list[tuple[int, int]] = []
    mem: list[tuple[int, int]] = []
    status: list[str] = []
    zones: dict[str, list[int]] = {}
    for node in out.state.store.list("nodes"):
        name = node["metadata"]["name"]
        info: NodeInfo | None = cache.by_name.get(name)
        if info is None:
            continue
        alloc = info.node.allocatable
        zone = info.node.labels.get(ZONE, "<none>")
        req = info.requested
        heads.append((name, zone, f"{len(info.pods)}/{alloc.allowed_pods}"))
        cpu.append((req.milli_cpu, alloc.milli_cpu))
        mem.append((req.memory, alloc.memory))
        status.append(str(node_row(node)[1]))
        z = zones.setdefault(zone, [0, 0, 0, 0, 0, 0])
        for i, v in enumerate((1, len(info.pods), req.milli_cpu, alloc.milli_cpu, req.memory)):
            z[i] += v
        z[5] += alloc.memory
    if not heads:
        return ""
    head = ["NODE", "ZONE", "PODS", "CPU REQUESTS", "MEMORY REQUESTS", "STATUS"]
    body = [r + [s] for r, s in zip(_fill_rows(heads, cpu, mem), status, strict=True)]
    text = _table([head] + body)
    zsorted = sorted(zones.items())
    zrows = _fill_rows(
        [(z, str(v[0]), str(v[1])) for z, v in zsorted],
        [(v[2], v[3]) for _, v in zsorted],
        [(v[4], v[5]) for _, v in zsorted],
    )
    return (
        text + "\n" + _table([["ZONE", "NODES", "PODS", "CPU REQUESTS", "MEMORY REQUESTS"]] + zrows)
    )


def render_table(out: Outcome) -> str:
    """The default (``-o wide``) output."""
    pods = out.pods()
    parts = [_pods_table(pods) if pods else "No resources found\n"]
    wl = _workloads(out, pods)
    if wl:
        parts.append(wl)
    pending = [p for p in out.new_pods() if _phase(p) == "Pending" and _message(p)]
    if pending:
        parts.append(
            _table(
                [["TYPE", "REASON", "OBJECT", "MESSAGE"]]
                + [
                    ["Warning", "FailedScheduling", f"pod/{p['metadata']['name']}", _message(p)]
                    for p in pending
                ]
            )
        )
    nodes = _nodes(out)
    if nodes:
        parts.append(nodes)
    parts.append(summary_line(pods) + "\n")
    return "\n".join(parts)


# -- explain -------------------------------------------------------------------------------------
def _matches(p: Obj, target: str) -> bool:
    ns, name = str(p["metadata"].get("namespace")), str(p["metadata"]["name"])
    if "/" in target:
        tns, tname = target.split("/", 1)
        return ns == tns and name.startswith(tname)
    return name.startswith(target)


def _blockers(out: Outcome, pod: Pod, node: str, plugin: str, reasons: list[str]) -> list[str]:
    """The placed pods that make ``node`` fail ``plugin`` for ``pod`` (empty when none do)."""
    cache = out.cp.binder.cache
    info = cache.by_name.get(node)
    if info is None:
        return []
    found: list[Pod] = []
    if plugin == "InterPodAffinity":
        for other in cache.all_pods():
            if other.key == pod.key:
                continue
            where = cache.by_name.get(other.node_name)
            if where is None:
                continue
            for t in pod.required_anti_affinity:
                val = info.node.labels.get(t.topology_key)
                if (
                    val is not None
                    and where.node.labels.get(t.topology_key) == val
                    and t.matches(other, cache.namespace_labels(other.namespace))
                ):
                    found.append(other)
                    break
            else:
                for t in other.required_anti_affinity:
                    val = where.node.labels.get(t.topology_key)
                    if (
                        val is not None
                        and info.node.labels.get(t.topology_key) == val
                        and t.matches(pod, cache.namespace_labels(pod.namespace))
                    ):
                        found.append(other)
                        break
    elif plugin == "PodTopologySpread":
        found = _spread_blockers(out, pod, info)
    elif plugin == "NodePorts":
        want = {(proto, port) for _ip, proto, port in pod.host_ports}
        found = [o for o in info.pods.values() if want & {(pr, po) for _i, pr, po in o.host_ports}]
    elif plugin == "NodeResourcesFit":
        short = " ".join(reasons)
        if "cpu" in short:
            found = sorted(info.pods.values(), key=lambda o: -o.requests.milli_cpu)
        elif "memory" in short:
            found = sorted(info.pods.values(), key=lambda o: -o.requests.memory)
        else:
            found = list(info.pods.values())
    names = [f"{o.namespace}/{o.name}" for o in found]
    return names[:5] + ([f"(+{len(names) - 5} more)"] if len(names) > 5 else [])


def _spread_blockers(out: Outcome, pod: Pod, info: NodeInfo) -> list[Pod]:
    """The placed pods a DoNotSchedule spread constraint counts in the node's domain, for the
    constraints whose skew the pod would break there (all of the node's constraints if none)."""
    cache = out.cp.binder.cache
    fw = out.cp.binder.frameworks.get(pod.scheduler_name)
    plugin = next((p for p in fw.filters if p.name == "PodTopologySpread"), None) if fw else None
    if not isinstance(plugin, PodTopologySpread):
        return []
    state: CycleState = {}
    plugin.pre_filter(state, pod)
    prepared = state.get(SPREAD_PREFILTER)
    if prepared is None:
        return []
    cons, pair_counts, domains, minimum = prepared
    labels = info.node.labels
    present = [c for c in cons if c.topology_key in labels]
    breaking: list[Constraint] = []
    for c in present:
        val = labels[c.topology_key]
        low = minimum.get(c.topology_key, 0)
        if domains.get(c.topology_key, 0) < c.min_domains:
            low = 0
        self_match = 1 if c.selector.matches(pod.labels) else 0
        if pair_counts.get((c.topology_key, val), 0) + self_match - low > c.max_skew:
            breaking.append(c)
    found: dict[tuple[str, str], Pod] = {}
    for c in breaking or present:
        val = labels[c.topology_key]
        for other in cache.all_pods():
            where = cache.by_name.get(other.node_name)
            if (
                other.key != pod.key
                and other.key not in found
                and where is not None
                and where.node.labels.get(c.topology_key) == val
                and other.namespace == pod.namespace
                and not other.terminating
                and c.selector.matches(other.labels)
            ):
                found[other.key] = other
    return list(found.values())


def explain_entries(out: Outcome, target: str | None) -> list[Obj]:
    """--explain records of the new pods (or those matching ``target``)."""
    entries = []
    for p in out.new_pods():
        if target is not None and not _matches(p, target):
            continue
        key = (str(p["metadata"]["namespace"]), str(p["metadata"]["name"]))
        res = out.results.get(key)
        node = (p.get("spec") or {}).get("nodeName")
        msg = _message(p) or None
        err = None
        for c in (p.get("status") or {}).get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulerError":
                err, msg = msg, None
        e = explain_entry(key[0], key[1], node, msg, err, res)
        pod = Pod.from_obj(p, 0)
        for n, f in e["filter"].items():
            if f["code"] != "Success":
                f["blockedBy"] = _blockers(out, pod, n, f["plugin"], f["reasons"])
        entries.append(e)
    return entries
