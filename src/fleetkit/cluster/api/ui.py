"""``GET /ui``: the cluster as a picture: nodes grouped by zone with their CPU, memory and pod
fill, pods coloured by workload, and Pending pods with the scheduler's reason. One static HTML
page (no scripts), rendered from the store."""

from __future__ import annotations

import hashlib
import html
from typing import Any

from fleetkit.cluster.controllers._common import controller_ref
from fleetkit.scheduler import Node, Pod

__all__ = ["render", "render_objects"]

Obj = dict[str, Any]
ZONE = "topology.kubernetes.io/zone"
STYLE = """
body{font-family:system-ui,sans-serif;margin:1rem;background:#f6f7f9;color:#222}
h1{font-size:1.3rem}h2{font-size:1.05rem;margin:1rem 0 .4rem}
.zone{display:flex;flex-wrap:wrap;gap:.6rem}
.node{background:#fff;border:1px solid #ccd;border-radius:6px;padding:.5rem;width:15rem}
.node.cordoned{border-style:dashed;opacity:.8}
.node h3{font-size:.9rem;margin:0 0 .3rem}
.bar{height:.45rem;background:#e4e6eb;border-radius:3px;margin:.15rem 0}
.bar span{display:block;height:100%;background:#4a78c2;border-radius:3px}
.bar.hot span{background:#c2504a}
.label{font-size:.7rem;color:#555}
.pods{display:flex;flex-wrap:wrap;gap:.2rem;margin-top:.3rem}
.pod{font-size:.65rem;padding:.1rem .3rem;border-radius:3px;color:#fff}
table.pending{border-collapse:collapse;background:#fff}
table.pending td,table.pending th{border:1px solid #ccd;padding:.25rem .5rem;font-size:.8rem;text-align:left}
"""


def _workload(p: Obj) -> str:
    ref = controller_ref(p)
    if ref is None:
        return "Pod/" + str(p["metadata"]["name"])
    name = str(ref.get("name"))
    if ref.get("kind") == "ReplicaSet" and "-" in name:
        return "Deployment/" + name.rsplit("-", 1)[0]
    return f"{ref.get('kind')}/{name}"


def _colour(workload: str) -> str:
    h = int(hashlib.sha256(workload.encode()).hexdigest()[:4], 16) % 360
    return f"hsl({h},55%,42%)"


def _bar(name: str, used: int, total: int) -> str:
    pct = 0 if total <= 0 else min(100, round(100 * used / total))
    hot = " hot" if pct >= 90 else ""
    return (
        f'<div class="label">{name} {pct}%</div>'
        f'<div class="bar{hot}" data-resource="{name}" data-percent="{pct}"><span style="width:{pct}%"></span></div>'
    )


def _message(p: Obj) -> str:
    for c in (p.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return str(c.get("message") or c.get("reason") or "")
    return "waiting for the scheduler"


def render(state: Any) -> str:
    """The page for the cluster's current state."""
    return render_objects(list(state.store.iter("nodes")), list(state.store.iter("pods")))


def render_objects(nodes: list[Obj], all_pods: list[Obj], title: str = "fleetkit cluster") -> str:
    """The page for Node and Pod objects (``GET /ui``, ``fleetkit schedule -o html``)."""
    pods = [
        p for p in all_pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]
    by_node: dict[str, list[Obj]] = {}
    pending: list[Obj] = []
    for p in pods:
        node = (p.get("spec") or {}).get("nodeName")
        if node:
            by_node.setdefault(str(node), []).append(p)
        else:
            pending.append(p)
    zones: dict[str, list[Obj]] = {}
    for n in sorted(nodes, key=lambda o: o["metadata"]["name"]):
        zones.setdefault((n["metadata"].get("labels") or {}).get(ZONE, "(no zone)"), []).append(n)
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}: {len(nodes)} nodes, {len(pods) - len(pending)} Running, {len(pending)} Pending</h1>",
    ]
    for zone in sorted(zones):
        out.append(
            f'<h2>zone {html.escape(zone)}</h2><div class="zone" data-zone="{html.escape(zone)}">'
        )
        for n in zones[zone]:
            name = n["metadata"]["name"]
            model = Node.from_obj(n)
            placed = by_node.get(name, [])
            cpu = mem = 0
            for i, p in enumerate(placed):
                req = Pod.from_obj(p, i).requests
                cpu += req.milli_cpu
                mem += req.memory
            a = model.allocatable
            cls = "node cordoned" if model.unschedulable else "node"
            out.append(
                f'<div class="{cls}" data-node="{html.escape(name)}"><h3>{html.escape(name)}</h3>'
            )
            out.append(_bar("cpu", cpu, a.milli_cpu))
            out.append(_bar("memory", mem, a.memory))
            out.append(_bar("pods", len(placed), a.allowed_pods))
            out.append('<div class="pods">')
            for p in sorted(placed, key=lambda q: q["metadata"]["name"]):
                wl = _workload(p)
                out.append(
                    f'<span class="pod" data-pod="{html.escape(p["metadata"]["name"])}" data-workload="{html.escape(wl)}" '
                    f'style="background:{_colour(wl)}" title="{html.escape(wl)}">{html.escape(p["metadata"]["name"])}</span>'
                )
            out.append("</div></div>")
        out.append("</div>")
    out.append("<h2>Pending</h2>")
    if pending:
        out.append('<table class="pending"><tr><th>pod</th><th>workload</th><th>reason</th></tr>')
        for p in sorted(pending, key=lambda q: q["metadata"]["name"]):
            wl = _workload(p)
            out.append(
                f'<tr data-pending="{html.escape(p["metadata"]["name"])}"><td>{html.escape(p["metadata"]["namespace"] + "/" + p["metadata"]["name"])}</td>'
                f'<td><span class="pod" style="background:{_colour(wl)}">{html.escape(wl)}</span></td>'
                f"<td>{html.escape(_message(p))}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append("<p>none</p>")
    out.append("</body></html>")
    return "\n".join(out)
