"""The Table form of ``kubectl get``: the columns and cells the real API server prints
(kubernetes/pkg/printers/internalversion), ``-o wide`` columns at priority 1."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "table",
    "table_json",
    "human_duration",
    "age",
    "selector_string",
    "pod_status",
    "pod_row",
    "node_row",
]

Obj = dict[str, Any]
Column = tuple[str, str, int, str]  # name, type, priority, description
Row = Callable[[Obj], list[Any]]

AGE_DESC = (
    "CreationTimestamp is a timestamp representing the server time when this object was created."
)
NAME_DESC = "Name must be unique within a namespace."


def human_duration(seconds: float) -> str:
    """duration.HumanDuration, as kubectl and the API server print ages."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d{h % 24}h" if h % 24 else f"{h // 24}d"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    if h < 24 * 365 * 8:
        d = h // 24
        return f"{d // 365}y{d % 365}d" if d % 365 else f"{d // 365}y"
    return f"{h // 24 // 365}y"


def _parse(ts: Any) -> float | None:
    if not ts:
        return None
    return _parse_text(str(ts)[:19])


@functools.lru_cache(maxsize=65536)
def _parse_text(text: str) -> float | None:
    """An RFC 3339 timestamp (seconds) as epoch seconds; cached: objects share their seconds."""
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def age(ts: Any) -> str:
    t = _parse(ts)
    return "<unknown>" if t is None else human_duration(time.time() - t)


def _meta(o: Obj) -> Obj:
    m: Obj = o.get("metadata") or {}
    return m


def _spec(o: Obj) -> Obj:
    s: Obj = o.get("spec") or {}
    return s


def _status(o: Obj) -> Obj:
    s: Obj = o.get("status") or {}
    return s


def selector_string(sel: Any) -> str:
    """metav1.LabelSelectorAsSelector(...).String()."""
    if not isinstance(sel, dict):
        return "<none>"
    parts: list[str] = []
    for k, v in sorted((sel.get("matchLabels") or {}).items()):
        parts.append(f"{k}={v}")
    for e in sel.get("matchExpressions") or []:
        op, key, vals = e.get("operator"), e.get("key"), sorted(e.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({','.join(vals)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(vals)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(sorted(parts)) if parts else "<none>"


def _containers(o: Obj, path: tuple[str, ...] = ("spec", "template", "spec")) -> list[Obj]:
    cur: Any = o
    for p in path:
        cur = (cur or {}).get(p) if isinstance(cur, dict) else None
    return list((cur or {}).get("containers") or []) if isinstance(cur, dict) else []


def _names(cs: list[Obj]) -> str:
    return ",".join(str(c.get("name", "")) for c in cs)


def _images(cs: list[Obj]) -> str:
    return ",".join(str(c.get("image", "")) for c in cs)


def pod_status(o: Obj) -> str:
    """printPod's STATUS cell."""
    st = _status(o)
    reason = str(st.get("reason") or st.get("phase") or "Pending")
    initializing = False
    inits = st.get("initContainerStatuses") or []
    for i, c in enumerate(inits):
        state = c.get("state") or {}
        term = state.get("terminated")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            reason = "Init:" + str(term.get("reason") or f"ExitCode:{term.get('exitCode')}")
        elif (state.get("waiting") or {}).get("reason") not in (None, "PodInitializing"):
            reason = "Init:" + str(state["waiting"]["reason"])
        else:
            reason = f"Init:{i}/{len(inits)}"
        initializing = True
        break
    if not initializing:
        has_running = False
        for c in reversed(st.get("containerStatuses") or []):
            state = c.get("state") or {}
            if (state.get("waiting") or {}).get("reason"):
                reason = str(state["waiting"]["reason"])
            elif (state.get("terminated") or {}).get("reason"):
                reason = str(state["terminated"]["reason"])
            elif state.get("running") and c.get("ready"):
                has_running = True
        if reason == "Completed" and has_running:
            reason = "Running"
    if _meta(o).get("deletionTimestamp"):
        reason = "Unknown" if st.get("reason") == "NodeLost" else "Terminating"
    return reason


def pod_row(o: Obj) -> list[Any]:
    """printPod's cells: NAME READY STATUS RESTARTS AGE IP NODE NOMINATED-NODE READINESS-GATES."""
    st = _status(o)
    spec = _spec(o)
    total = len(spec.get("containers") or [])
    css = st.get("containerStatuses") or []
    ready = sum(1 for c in css if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in css)
    gates = spec.get("readinessGates") or []
    gates_cell = "<none>"
    if gates:
        conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
        ok = sum(1 for g in gates if conds.get(g.get("conditionType")) == "True")
        gates_cell = f"{ok}/{len(gates)}"
    return [
        _meta(o).get("name"),
        f"{ready}/{total}",
        pod_status(o),
        restarts,
        age(_meta(o).get("creationTimestamp")),
        st.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        st.get("nominatedNodeName") or "<none>",
        gates_cell,
    ]


def node_row(o: Obj) -> list[Any]:
    """printNode's cells: NAME STATUS ROLES AGE VERSION, then the -o wide ones."""
    st = _status(o)
    conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
    ready = conds.get("Ready")
    status = "Ready" if ready == "True" else "NotReady" if ready == "False" else "Unknown"
    if _spec(o).get("unschedulable"):
        status += ",SchedulingDisabled"
    roles = sorted(
        k.split("/", 1)[1] or ""
        for k in (_meta(o).get("labels") or {})
        if k.startswith("node-role.kubernetes.io/")
    )
    role_label = (_meta(o).get("labels") or {}).get("kubernetes.io/role")
    if role_label:
        roles.append(role_label)
    addrs = {a.get("type"): a.get("address") for a in st.get("addresses") or []}
    info = st.get("nodeInfo") or {}
    return [
        _meta(o).get("name"),
        status,
        ",".join(r for r in roles if r) or "<none>",
        age(_meta(o).get("creationTimestamp")),
        info.get("kubeletVersion") or "",
        addrs.get("InternalIP") or "<none>",
        addrs.get("ExternalIP") or "<none>",
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _workload(*cells: Callable[[Obj], Any], wide: int = 3) -> Row:
    """A workload's row: NAME, ``cells``, AGE, then -o wide CONTAINERS IMAGES [SELECTOR]."""

    def row(o: Obj) -> list[Any]:
        cs = _containers(o)
        extra = [_names(cs), _images(cs), selector_string(_spec(o).get("selector"))]
        return (
            [_meta(o).get("name")]
            + [c(o) for c in cells]
            + [age(_meta(o).get("creationTimestamp"))]
            + extra[:wide]
        )

    return row


def _int(where: Callable[[Obj], Obj], key: str) -> Callable[[Obj], int]:
    return lambda o: int(where(o).get(key) or 0)


def _ready_of(o: Obj) -> str:
    return f"{int(_status(o).get('readyReplicas') or 0)}/{int(_spec(o).get('replicas') or 0)}"


def _node_selector(o: Obj) -> str:
    ns = ((_spec(o).get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(ns.items())) or "<none>"


def _job_status(o: Obj) -> str:
    conds = {c.get("type"): c.get("status") for c in _status(o).get("conditions") or []}
    if conds.get("Complete") == "True":
        return "Complete"
    if conds.get("Failed") == "True":
        return "Failed"
    return "Suspended" if _spec(o).get("suspend") else "Running"


def _job_completions(o: Obj) -> str:
    spec = _spec(o)
    succeeded = int(_status(o).get("succeeded") or 0)
    comp = spec.get("completions")
    if comp is not None:
        return f"{succeeded}/{comp}"
    return f"{succeeded}/1 of {spec.get('parallelism', 1)}"


def _job_duration(o: Obj) -> str:
    st = _status(o)
    start, end = _parse(st.get("startTime")), _parse(st.get("completionTime"))
    return "" if start is None else human_duration((end or time.time()) - start)


_deploy_row = _workload(
    _ready_of, _int(_status, "updatedReplicas"), _int(_status, "availableReplicas")
)
_rs_row = _workload(
    _int(_spec, "replicas"), _int(_status, "replicas"), _int(_status, "readyReplicas")
)
_sts_row = _workload(_ready_of, wide=2)
_ds_row = _workload(
    _int(_status, "desiredNumberScheduled"),
    _int(_status, "currentNumberScheduled"),
    _int(_status, "numberReady"),
    _int(_status, "updatedNumberScheduled"),
    _int(_status, "numberAvailable"),
    _node_selector,
)
_job_row = _workload(_job_status, _job_completions, _job_duration)


def _svc_ports(spec: Obj) -> str:
    out = []
    for p in spec.get("ports") or []:
        s = f"{p.get('port')}"
        if p.get("nodePort"):
            s += f":{p['nodePort']}"
        out.append(f"{s}/{p.get('protocol') or 'TCP'}")
    return ",".join(out) or "<none>"


def _svc_row(o: Obj) -> list[Any]:
    spec = _spec(o)
    sel = spec.get("selector") or {}
    return [
        _meta(o).get("name"),
        spec.get("type") or "ClusterIP",
        spec.get("clusterIP") or "<none>",
        ",".join(spec.get("externalIPs") or []) or "<none>",
        _svc_ports(spec),
        age(_meta(o).get("creationTimestamp")),
        ",".join(f"{k}={v}" for k, v in sorted(sel.items())) or "<none>",
    ]


def _event_row(o: Obj) -> list[Any]:
    inv = o.get("involvedObject") or {}
    last = o.get("lastTimestamp") or o.get("eventTime") or _meta(o).get("creationTimestamp")
    first = o.get("firstTimestamp") or o.get("eventTime")
    src = o.get("source") or {}
    source = str(src.get("component") or o.get("reportingComponent") or "")
    if src.get("host"):
        source += f", {src['host']}"
    return [
        age(last),
        o.get("type") or "",
        o.get("reason") or "",
        f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}",
        inv.get("fieldPath") or "",
        source,
        o.get("message") or "",
        age(first),
        int(o.get("count") or 1),
        _meta(o).get("name"),
    ]


def _pdb_row(o: Obj) -> list[Any]:
    spec, st = _spec(o), _status(o)
    return [
        _meta(o).get("name"),
        str(spec["minAvailable"]) if "minAvailable" in spec else "N/A",
        str(spec["maxUnavailable"]) if "maxUnavailable" in spec else "N/A",
        int(st.get("disruptionsAllowed") or 0),
        age(_meta(o).get("creationTimestamp")),
    ]


def _simple(*cells: Callable[[Obj], Any]) -> Row:
    def row(o: Obj) -> list[Any]:
        return (
            [_meta(o).get("name")]
            + [c(o) for c in cells]
            + [age(_meta(o).get("creationTimestamp"))]
        )

    return row


def _c(name: str, typ: str = "string", priority: int = 0, desc: str = "") -> Column:
    return (name, typ, priority, desc)


NAME = _c("Name", "string", 0, NAME_DESC)
AGE = _c("Age", "string", 0, AGE_DESC)
WIDE_WORKLOAD = [
    _c("Containers", "string", 1, "Names of each container in the template."),
    _c("Images", "string", 1, "Images referenced by each container in the template."),
    _c("Selector", "string", 1, "Label selector of the workload."),
]

TABLES: dict[str, tuple[list[Column], Row]] = {
    "pods": (
        [
            NAME,
            _c(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            _c("Status", "string", 0, "The aggregate status of the containers in this pod."),
            _c(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            AGE,
            _c(
                "IP",
                "string",
                1,
                "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            ),
            _c(
                "Node",
                "string",
                1,
                "NodeName is a request to schedule this pod onto a specific node.",
            ),
            _c(
                "Nominated Node",
                "string",
                1,
                "nominatedNodeName is set only when this pod preempts other pods on the node.",
            ),
            _c(
                "Readiness Gates",
                "string",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        pod_row,
    ),
    "nodes": (
        [
            NAME,
            _c("Status", "string", 0, "The status of the node"),
            _c("Roles", "string", 0, "The roles of the node"),
            AGE,
            _c("Version", "string", 0, "Kubelet Version reported by the node."),
            _c("Internal-IP", "string", 1, "List of addresses reachable to the node."),
            _c("External-IP", "string", 1, "List of addresses reachable to the node."),
            _c("OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release."),
            _c("Kernel-Version", "string", 1, "Kernel Version reported by the node."),
            _c("Container-Runtime", "string", 1, "ContainerRuntime Version reported by the node."),
        ],
        node_row,
    ),
    "deployments": (
        [
            NAME,
            _c("Ready", "string", 0, "Number of the pod with ready state"),
            _c(
                "Up-to-date",
                "integer",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            _c(
                "Available",
                "integer",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            AGE,
            *WIDE_WORKLOAD,
        ],
        _deploy_row,
    ),
    "replicasets": (
        [
            NAME,
            _c("Desired", "integer", 0, "Replicas is the number of desired replicas."),
            _c(
                "Current",
                "integer",
                0,
                "Replicas is the most recently observed number of replicas.",
            ),
            _c("Ready", "integer", 0, "The number of ready replicas for this replica set."),
            AGE,
            *WIDE_WORKLOAD,
        ],
        _rs_row,
    ),
    "statefulsets": (
        [
            NAME,
            _c("Ready", "string", 0, "Number of the pod with ready state"),
            AGE,
            *WIDE_WORKLOAD[:2],
        ],
        _sts_row,
    ),
    "daemonsets": (
        [
            NAME,
            _c(
                "Desired",
                "integer",
                0,
                "The total number of nodes that should be running the daemon pod.",
            ),
            _c(
                "Current",
                "integer",
                0,
                "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
            ),
            _c(
                "Ready",
                "integer",
                0,
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
            ),
            _c(
                "Up-to-date",
                "integer",
                0,
                "The total number of nodes that are running updated daemon pod",
            ),
            _c(
                "Available",
                "integer",
                0,
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
            ),
            _c(
                "Node Selector",
                "string",
                0,
                "NodeSelector is a selector which must be true for the pod to fit on a node.",
            ),
            AGE,
            *WIDE_WORKLOAD,
        ],
        _ds_row,
    ),
    "jobs": (
        [
            NAME,
            _c("Status", "string", 0, "Status of the job."),
            _c(
                "Completions",
                "string",
                0,
                "The desired number of successfully finished pods the job should be run with.",
            ),
            _c("Duration", "string", 0, "Time required to complete the job."),
            AGE,
            *WIDE_WORKLOAD,
        ],
        _job_row,
    ),
    "services": (
        [
            NAME,
            _c("Type", "string", 0, "The type of the service"),
            _c("Cluster-IP", "string", 0, "The cluster IP of the service"),
            _c("External-IP", "string", 0, "The external IP of the service"),
            _c("Port(s)", "string", 0, "The ports of the service"),
            AGE,
            _c("Selector", "string", 1, "The selector of the service"),
        ],
        _svc_row,
    ),
    "events": (
        [
            _c("Last Seen", "string", 0, "Time when last occurrence of the event was observed."),
            _c("Type", "string", 0, "Type of this event."),
            _c(
                "Reason",
                "string",
                0,
                "Short, machine understandable string that gives the reason for this event being generated.",
            ),
            _c("Object", "string", 0, "The object this Event is about."),
            _c("Subobject", "string", 1, "The subobject this Event is about."),
            _c("Source", "string", 1, "The component reporting this event."),
            _c(
                "Message",
                "string",
                0,
                "A human-readable description of the status of this operation.",
            ),
            _c("First Seen", "string", 1, "The time at which the event was first recorded."),
            _c("Count", "string", 1, "The number of times this event has occurred."),
            _c("Name", "string", 1, NAME_DESC),
        ],
        _event_row,
    ),
    "poddisruptionbudgets": (
        [
            NAME,
            _c("Min Available", "string", 0, "The minimum number of pods that must be available."),
            _c(
                "Max Unavailable",
                "string",
                0,
                "The maximum number of pods that may be unavailable.",
            ),
            _c(
                "Allowed Disruptions",
                "integer",
                0,
                "Calculated number of pods that may be disrupted at this time.",
            ),
            AGE,
        ],
        _pdb_row,
    ),
    "namespaces": (
        [NAME, _c("Status", "string", 0, "The status of the namespace"), AGE],
        _simple(lambda o: _status(o).get("phase") or "Active"),
    ),
    "configmaps": (
        [NAME, _c("Data", "string", 0, "Number of data in the configmap"), AGE],
        _simple(lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
    ),
    "secrets": (
        [
            NAME,
            _c("Type", "string", 0, "The type of the secret"),
            _c("Data", "string", 0, "The number of data in the secret"),
            AGE,
        ],
        _simple(lambda o: o.get("type") or "Opaque", lambda o: len(o.get("data") or {})),
    ),
    "serviceaccounts": (
        [
            NAME,
            _c(
                "Secrets",
                "string",
                0,
                "Secrets is the list of secrets allowed to be used by pods running using this ServiceAccount.",
            ),
            AGE,
        ],
        _simple(lambda o: len(o.get("secrets") or [])),
    ),
    "leases": (
        [NAME, _c("Holder", "string", 0, "The holder of the lease."), AGE],
        _simple(lambda o: _spec(o).get("holderIdentity") or ""),
    ),
    "priorityclasses": (
        [
            NAME,
            _c("Value", "integer", 0, "The value of this priority class."),
            _c(
                "Global-Default",
                "boolean",
                0,
                "globalDefault specifies whether this PriorityClass should be considered as the default priority.",
            ),
            AGE,
            _c(
                "PreemptionPolicy",
                "string",
                0,
                "PreemptionPolicy is the Policy for preempting pods with lower priority.",
            ),
        ],
        lambda o: [
            _meta(o).get("name"),
            int(o.get("value") or 0),
            bool(o.get("globalDefault")),
            age(_meta(o).get("creationTimestamp")),
            o.get("preemptionPolicy") or "PreemptLowerPriority",
        ],
    ),
}
DEFAULT: tuple[list[Column], Row] = ([NAME, AGE], _simple())


def _partial(o: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": _meta(o)}


# resources whose cells change with time only through AGE (jobs' DURATION and events' LAST
# SEEN do too): their rows are cached as JSON around the AGE cell, by resourceVersion
_TIMELESS = set(TABLES) - {"jobs", "events"}
_ROWS: dict[str, dict[tuple[str, str], tuple[str, str, bytes, bytes]]] = {}
_DUMPS = json.JSONEncoder(separators=(",", ":")).encode


def _row_parts(resource: str, o: Obj, include: str, age_at: int) -> tuple[bytes, bytes]:
    """A row's JSON before and after its AGE cell's text (cached per object version)."""
    meta = _meta(o)
    key = (str(meta.get("namespace") or ""), str(meta.get("name")))
    rv = str(meta.get("resourceVersion") or "")
    rows = _ROWS.setdefault(resource, {})
    hit = rows.get(key)
    if hit is not None and hit[0] == rv and hit[1] == include:
        return hit[2], hit[3]
    cells = TABLES[resource][1](o)
    head = _DUMPS(cells[:age_at])[:-1]
    tail = _DUMPS(cells[age_at + 1 :])[1:]
    pre = ('{"cells":' + head + ("," if age_at else "") + '"').encode()
    post = '"' + ("," + tail if len(cells) > age_at + 1 else "]")
    if include == "Object":
        post += ',"object":' + _DUMPS(o)
    elif include != "None":
        post += ',"object":' + _DUMPS(_partial(o))
    out = (pre, (post + "}").encode())
    rows[key] = (rv, include, *out)
    return out


def warm(resource: str, objs: list[Obj], include: str) -> None:
    """Render and cache the rows of ``objs`` ahead of the request that will list them."""
    if resource in _TIMELESS:
        age_at = TABLES[resource][0].index(AGE)
        for o in objs:
            _row_parts(resource, o, include, age_at)


def table_json(
    resource: str,
    objs: list[Obj],
    rv: str,
    include: str = "Metadata",
    meta: Obj | None = None,
    listed: int = 0,
) -> bytes:
    """:func:`table` serialized; rows of unchanged objects come from a cache (``kubectl get
    pods -A`` of 50,000 pods renders only the AGE cells again). ``meta``: the list metadata
    (resourceVersion, continue, remainingItemCount) when not just ``rv``; ``listed``: how many
    objects the whole list has when ``objs`` is one page of it."""
    if resource not in _TIMELESS:
        return _DUMPS(table(resource, objs, rv, include, meta)).encode()
    cols = TABLES[resource][0]
    age_at = cols.index(AGE)
    if len(_ROWS.get(resource) or ()) > 2 * max(len(objs), listed) + 10_000:
        _ROWS[resource].clear()  # forget deleted objects' rows now and then
    empty = table(resource, [], rv, include, meta)
    head = _DUMPS(empty)[: -len('"rows":[]}')].encode()
    now = time.time()
    parts = []
    # one AGE text per creationTimestamp in this response (pods created in the same second)
    cells: dict[Any, bytes] = {}
    for o in objs:
        pre, post = _row_parts(resource, o, include, age_at)
        ts = _meta(o).get("creationTimestamp")
        cell = cells.get(ts)
        if cell is None:
            t = _parse(ts)
            cell = ("<unknown>" if t is None else human_duration(now - t)).encode()
            if isinstance(ts, str | None):
                cells[ts] = cell
        parts.append(pre + cell + post)
    return head + b'"rows":[' + b",".join(parts) + b"]}"


def table(
    resource: str, objs: list[Obj], rv: str, include: str = "Metadata", meta: Obj | None = None
) -> Obj:
    """A meta.k8s.io/v1 Table of ``objs`` (``include``: Object, Metadata or None)."""
    cols, row = TABLES.get(resource, DEFAULT)
    defs = [
        {
            "name": n,
            "type": t,
            "format": "name" if n == "Name" else "",
            "description": d,
            "priority": p,
        }
        for n, t, p, d in cols
    ]
    rows = []
    for o in objs:
        r: Obj = {"cells": row(o)}
        if include == "Object":
            r["object"] = o
        elif include != "None":
            r["object"] = _partial(o)
        rows.append(r)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta or {"resourceVersion": rv},
        "columnDefinitions": defs,
        "rows": rows,
    }
