"""Rendering: kubectl-style pod table + FailedScheduling events + per node/zone summary, the v1
List for -o json/yaml, and --explain (table or JSON)."""

from __future__ import annotations

import json
from typing import Any

import yaml

from fleetkit.scheduler.framework import CycleResult
from fleetkit.scheduler.model import ZONE, Pod, clone
from fleetkit.scheduler.simulator import Simulation, _ts

__all__ = [
    "pod_object",
    "pod_list",
    "render_table",
    "explain_entries",
    "explain_entry",
    "render_explain",
    "render_explain_entries",
    "dump",
    "write_dump",
]

SHORT = {
    "TaintToleration": "Taint",
    "NodeAffinity": "NodeAff",
    "NodeResourcesFit": "Fit",
    "PodTopologySpread": "Spread",
    "InterPodAffinity": "PodAff",
    "NodeResourcesBalancedAllocation": "Balanced",
    "ImageLocality": "Image",
}


def _qos(spec: dict[str, Any]) -> str:
    cs = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for c in cs:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and str(req[r]) != str(lim[r])):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def pod_object(sim: Simulation, pod: Pod) -> dict[str, Any]:
    obj: dict[str, Any] = clone(pod.raw)
    obj.setdefault("apiVersion", "v1")
    obj.setdefault("kind", "Pod")
    if pod.given and pod.phase != "Pending":
        return obj
    meta = obj.setdefault("metadata", {})
    spec = obj.setdefault("spec", {})
    status = obj.setdefault("status", {})
    conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    created = meta.get("creationTimestamp") or _ts(sim.clock)
    if pod.node_name:
        spec["nodeName"] = pod.node_name
        status["phase"] = "Running"
        started = _ts(pod.start_time) if pod.start_time != float("inf") else created
        conds.insert(
            0,
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": started,
            },
        )
        status["startTime"] = started
        if pod.nominated_node:
            # v1.32 keeps nominatedNodeName after binding (cleared only from v1.34, KEP-5278)
            status["nominatedNodeName"] = pod.nominated_node
    else:
        status["phase"] = "Pending"
        cond: dict[str, Any] = {
            "type": "PodScheduled",
            "status": "False",
            "lastProbeTime": None,
            "lastTransitionTime": created,
        }
        if pod.message is not None:
            cond["reason"] = "SchedulerError" if pod.error else "Unschedulable"
            cond["message"] = pod.message
        conds.insert(0, cond)
        if pod.nominated_node:
            status["nominatedNodeName"] = pod.nominated_node
    status["conditions"] = conds
    status["qosClass"] = _qos(spec)
    return obj


def pod_list(sim: Simulation) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": [pod_object(sim, p) for p in sim.all_pods()],
    }


def write_dump(obj: Any, fmt: str, stream: Any) -> None:
    """:func:`dump` written to ``stream`` piece by piece (no whole-document string in memory)."""
    if fmt == "yaml":
        yaml.safe_dump(obj, stream, sort_keys=False, default_flow_style=False)
        return
    buf: list[str] = []
    for chunk in json.JSONEncoder(indent=4).iterencode(obj):
        buf.append(chunk)
        if len(buf) >= 4096:
            stream.write("".join(buf))
            buf.clear()
    buf.append("\n")
    stream.write("".join(buf))


def dump(obj: Any, fmt: str) -> str:
    if fmt == "yaml":
        return str(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))
    return json.dumps(obj, indent=4) + "\n"


def _age(sim: Simulation, pod: Pod) -> str:
    from fleetkit.scheduler.simulator import _parse_ts

    t = _parse_ts((pod.raw.get("metadata") or {}).get("creationTimestamp"))
    if t is None:
        return "<unknown>"
    secs = max(0, int(sim.clock - t))
    if secs < 120:
        return f"{secs}s"
    return f"{secs // 60}m{secs % 60}s" if secs < 600 else f"{secs // 60}m"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _pct(part: int, whole: int) -> str:
    return f"{(part * 100 // whole) if whole else 0}%"


def _cpu(m: int) -> str:
    return f"{m // 1000}" if m % 1000 == 0 else f"{m}m"


def _mem(b: int) -> str:
    for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if b >= size and b % size == 0:
            return f"{b // size}{unit}"
    if b >= 2**20:
        return f"{b // 2**20}Mi"
    return str(b)


def render_table(sim: Simulation) -> str:
    pods = sim.all_pods()
    multi_ns = any(p.namespace != "default" for p in pods)
    head = [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED NODE",
        "READINESS GATES",
    ]
    if multi_ns:
        head = ["NAMESPACE"] + head
    rows = [head]
    for p in pods:
        n = len((p.raw.get("spec") or {}).get("containers") or [])
        if p.terminating:
            status = "Terminating"
        else:
            status = p.phase if p.node_name or p.phase != "Pending" else "Pending"
        ready = f"{n}/{n}" if status == "Running" else f"0/{n}"
        row = [
            p.name,
            ready,
            status,
            "0",
            _age(sim, p),
            "<none>",
            p.node_name or "<none>",
            p.nominated_node or "<none>",
            "<none>",
        ]
        rows.append(([p.namespace] if multi_ns else []) + row)
    out = _table(rows) if len(rows) > 1 else "No resources found\n"
    pending = [p for p in sim.created if not p.node_name and not p.terminating and p.message]
    if pending:
        out += "\n" + _table(
            [["TYPE", "REASON", "OBJECT", "MESSAGE"]]
            + [["Warning", "FailedScheduling", f"pod/{p.name}", p.message or ""] for p in pending]
        )
    out += "\n" + _summary(sim)
    return out


def _summary(sim: Simulation) -> str:
    rows = [["NODE", "ZONE", "PODS", "CPU REQUESTS", "MEMORY REQUESTS", "STATUS"]]
    zones: dict[str, list[int]] = {}
    for info in sim.cluster.infos:
        node = info.node
        alloc = node.allocatable
        zone = node.labels.get(ZONE, "<none>")
        cpu, mem = info.requested.milli_cpu, info.requested.memory
        status = "Ready,SchedulingDisabled" if node.unschedulable else "Ready"
        rows.append(
            [
                node.name,
                zone,
                f"{len(info.pods)}/{alloc.allowed_pods}",
                f"{_cpu(cpu)} ({_pct(cpu, alloc.milli_cpu)})",
                f"{_mem(mem)} ({_pct(mem, alloc.memory)})",
                status,
            ]
        )
        z = zones.setdefault(zone, [0, 0, 0, 0, 0, 0])
        z[0] += 1
        z[1] += len(info.pods)
        z[2] += cpu
        z[3] += alloc.milli_cpu
        z[4] += mem
        z[5] += alloc.memory
    out = _table(rows)
    zrows = [["ZONE", "NODES", "PODS", "CPU REQUESTS", "MEMORY REQUESTS"]]
    for zone, z in sorted(zones.items()):
        zrows.append(
            [
                zone,
                str(z[0]),
                str(z[1]),
                f"{_cpu(z[2])} ({_pct(z[2], z[3])})",
                f"{_mem(z[4])} ({_pct(z[4], z[5])})",
            ]
        )
    return out + "\n" + _table(zrows)


def explain_entry(
    namespace: str,
    name: str,
    node: str | None,
    message: str | None,
    error: str | None,
    res: CycleResult | None,
) -> dict[str, Any]:
    """One pod's --explain record: every evaluated node's filter status and scores."""
    filt: dict[str, Any] = {}
    scores: dict[str, Any] = {}
    if res is not None:
        feasible = set(res.feasible)
        for n in res.evaluated:
            st = None if n in feasible else res.statuses.get(n, res.absent)
            if st is None:
                filt[n] = {"code": "Success", "plugin": "", "reasons": []}
            else:
                filt[n] = {"code": st.code.value, "plugin": st.plugin, "reasons": list(st.reasons)}
        for n in res.feasible:
            if n in res.scores:
                scores[n] = {"plugins": res.scores[n], "total": res.totals[n]}
    return {
        "namespace": namespace,
        "name": name,
        "node": node or None,
        "message": message,
        "error": error,
        "filter": filt,
        "scores": scores,
    }


def _entry(sim: Simulation, pod: Pod, res: CycleResult | None) -> dict[str, Any]:
    msg = None if pod.error else pod.message
    return explain_entry(pod.namespace, pod.name, pod.node_name, msg, pod.error, res)


def _matches(pod: Pod, target: str) -> bool:
    if "/" in target:
        ns, name = target.split("/", 1)
        return pod.namespace == ns and (pod.name == name or pod.name.startswith(name))
    return pod.name == target or pod.name.startswith(target)


def explain_entries(sim: Simulation, target: str | None) -> list[dict[str, Any]]:
    pods = [p for p in sim.created if target is None or _matches(p, target)]
    return [_entry(sim, p, sim.results.get(p.key)) for p in pods]


def render_explain(sim: Simulation, target: str | None) -> str:
    return render_explain_entries(explain_entries(sim, target))


def render_explain_entries(entries: list[dict[str, Any]]) -> str:
    """--explain as tables: per pod, every node's filter result, the pods blocking it, scores."""
    out = []
    for e in entries:
        head = f"Pod {e['namespace']}/{e['name']}: "
        if e["node"]:
            head += f"scheduled on {e['node']}"
        elif e["error"]:
            head += f"error: {e['error']}"
        else:
            head += f"Pending: {e['message']}"
        out.append(head)
        plugins: list[str] = []
        for s in e["scores"].values():
            for name in s["plugins"]:
                if name not in plugins:
                    plugins.append(name)
        blocked = any(f.get("blockedBy") for f in e["filter"].values())
        cols = ["NODE", "FILTER", "PLUGIN", "REASONS"] + (["BLOCKED BY"] if blocked else [])
        rows = [cols + [SHORT.get(p, p) for p in plugins] + ["TOTAL"]]
        for node, f in e["filter"].items():
            s = e["scores"].get(node)
            row = [node, f["code"], f["plugin"] or "-", ", ".join(f["reasons"]) or "-"]
            if blocked:
                row.append(", ".join(f.get("blockedBy") or []) or "-")
            if s:
                row += [str(s["plugins"].get(p, 0)) for p in plugins] + [str(s["total"])]
            else:
                row += ["-"] * len(plugins) + ["-"]
            rows.append(row)
        out.append(_table(rows))
    if not out:
        return "no matching pod\n"
    return "\n".join(out)
