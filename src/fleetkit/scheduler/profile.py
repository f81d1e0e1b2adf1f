"""KubeSchedulerConfiguration v1: profiles, plugin sets per extension point and multiPoint,
weights, pluginConfig args and percentageOfNodesToScore, merged with the default profile the
way kube-scheduler v1.32 does (``mergePluginSet`` then ``expandMultiPointPlugins``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetkit.errors import UsageError
from fleetkit.scheduler.decode import (
    SCHEDULER_CONFIG,
    FieldError,
    check,
    load_yaml_documents,
    read_input,
)
from fleetkit.scheduler.plugins.base import Plugin
from fleetkit.scheduler.plugins.image_locality import ImageLocality
from fleetkit.scheduler.plugins.inter_pod_affinity import InterPodAffinity
from fleetkit.scheduler.plugins.node_affinity import NodeAffinity
from fleetkit.scheduler.plugins.node_name import NodeName
from fleetkit.scheduler.plugins.node_ports import NodePorts
from fleetkit.scheduler.plugins.node_resources_balanced_allocation import (
    NodeResourcesBalancedAllocation,
)
from fleetkit.scheduler.plugins.node_resources_fit import NodeResourcesFit
from fleetkit.scheduler.plugins.node_unschedulable import NodeUnschedulable
from fleetkit.scheduler.plugins.pod_topology_spread import PodTopologySpread
from fleetkit.scheduler.plugins.simple import (
    DefaultBinder,
    DefaultPreemption,
    NodeVolumeLimits,
    PrioritySort,
    SchedulingGates,
    VolumeBinding,
    VolumeRestrictions,
    VolumeZone,
)
from fleetkit.scheduler.plugins.taint_toleration import TaintToleration

__all__ = ["REGISTRY", "ProfileSpec", "SchedulerConfig", "load_config", "default_config"]

REGISTRY: dict[str, type[Plugin]] = {
    cls.name: cls
    for cls in (
        SchedulingGates,
        PrioritySort,
        NodeUnschedulable,
        NodeName,
        TaintToleration,
        NodeAffinity,
        NodePorts,
        NodeResourcesFit,
        VolumeRestrictions,
        NodeVolumeLimits,
        VolumeBinding,
        VolumeZone,
        PodTopologySpread,
        InterPodAffinity,
        DefaultPreemption,
        NodeResourcesBalancedAllocation,
        ImageLocality,
        DefaultBinder,
    )
}

DEFAULT_MULTIPOINT: list[dict[str, Any]] = [
    {"name": "SchedulingGates"},
    {"name": "PrioritySort"},
    {"name": "NodeUnschedulable"},
    {"name": "NodeName"},
    {"name": "TaintToleration", "weight": 3},
    {"name": "NodeAffinity", "weight": 2},
    {"name": "NodePorts"},
    {"name": "NodeResourcesFit", "weight": 1},
    {"name": "VolumeRestrictions"},
    {"name": "NodeVolumeLimits"},
    {"name": "VolumeBinding"},
    {"name": "VolumeZone"},
    {"name": "PodTopologySpread", "weight": 2},
    {"name": "InterPodAffinity", "weight": 2},
    {"name": "DefaultPreemption"},
    {"name": "NodeResourcesBalancedAllocation", "weight": 1},
    {"name": "ImageLocality", "weight": 1},
    {"name": "DefaultBinder"},
]

# config field -> the point name plugins declare
POINTS = {
    "preEnqueue": "preEnqueue",
    "queueSort": "queueSort",
    "preFilter": "preFilter",
    "filter": "filter",
    "postFilter": "postFilter",
    "preScore": "preScore",
    "score": "score",
    "reserve": "reserve",
    "permit": "permit",
    "preBind": "preBind",
    "bind": "bind",
    "postBind": "postBind",
}


@dataclass(slots=True)
class ProfileSpec:
    scheduler_name: str
    points: dict[str, list[str]]
    weights: dict[str, int]
    args: dict[str, dict[str, Any]]


@dataclass(slots=True)
class SchedulerConfig:
    profiles: dict[str, ProfileSpec]
    percentage_of_nodes_to_score: int | None = None
    source: str = "<default>"
    warnings: list[str] = field(default_factory=list)


def _implements(name: str, point: str) -> bool:
    cls = REGISTRY[name]
    if point == "score":
        return "score" in cls.points
    return point in cls.points


def _merge_set(
    default: list[dict[str, Any]], custom: dict[str, Any]
) -> tuple[list[dict[str, Any]], set[str]]:
    disabled = {str(p.get("name")) for p in custom.get("disabled") or []}
    enabled_custom = list(custom.get("enabled") or [])
    by_name = {str(p.get("name")): (i, p) for i, p in enumerate(enabled_custom)}
    replaced: set[int] = set()
    out: list[dict[str, Any]] = []
    if "*" not in disabled:
        for p in default:
            if p["name"] in disabled:
                continue
            if p["name"] in by_name:
                i, cp = by_name[p["name"]]
                out.append(cp)
                replaced.add(i)
            else:
                out.append(p)
    for i, p in enumerate(enabled_custom):
        if i not in replaced:
            out.append(p)
    return out, disabled


def build_profile(raw: dict[str, Any], where: str) -> ProfileSpec:
    name = str(raw.get("schedulerName") or "default-scheduler")
    plugins = raw.get("plugins") or {}
    unknown_points = set(plugins) - set(POINTS) - {"multiPoint"}
    if unknown_points:
        raise UsageError(
            f'{where}: unknown field "plugins.{sorted(unknown_points)[0]}"',
            hint="extension points: multiPoint, " + ", ".join(POINTS),
        )
    multi, _ = _merge_set(DEFAULT_MULTIPOINT, plugins.get("multiPoint") or {})
    for p in multi:
        if str(p.get("name")) not in REGISTRY:
            raise UsageError(
                f"{where}: initializing profiles: creating profile for scheduler name {name}: "
                f"{p.get('name')!r} does not exist".replace("'", '"'),
                hint="known plugins: " + ", ".join(sorted(REGISTRY)),
            )
    points: dict[str, list[str]] = {}
    weights: dict[str, int] = {}
    for p in multi:
        if p.get("weight") is not None:
            weights[str(p["name"])] = int(p["weight"])
    for field_name, point in POINTS.items():
        custom = plugins.get(field_name) or {}
        enabled = [str(p.get("name")) for p in custom.get("enabled") or []]
        disabled = {str(p.get("name")) for p in custom.get("disabled") or []}
        for n in enabled:
            if n not in REGISTRY:
                raise UsageError(
                    f"{where}: initializing profiles: creating profile for scheduler name {name}: "
                    f'"{n}" does not exist',
                    hint="known plugins: " + ", ".join(sorted(REGISTRY)),
                )
            if not _implements(n, point):
                raise UsageError(
                    f'{where}: plugin "{n}" does not extend {field_name} plugin',
                )
        if field_name == "score":
            for p in custom.get("enabled") or []:
                if p.get("weight") is not None:
                    weights[str(p["name"])] = int(p["weight"])
        if "*" in disabled:
            points[point] = list(dict.fromkeys(enabled))
            continue
        override = [m["name"] for m in multi if m["name"] in enabled]
        from_multi = [
            str(m["name"])
            for m in multi
            if _implements(str(m["name"]), point)
            and m["name"] not in disabled
            and m["name"] not in enabled
        ]
        rest = [n for n in enabled if n not in override]
        seen: list[str] = []
        for n in override + from_multi + rest:
            if n in seen:
                raise UsageError(f'{where}: plugin "{n}" already registered as "{field_name}"')
            seen.append(n)
        points[point] = seen
    if len(points["queueSort"]) != 1:
        raise UsageError(
            f"{where}: profiles[0].plugins.queueSort: Invalid value: one queue sort plugin "
            f"required for profile with scheduler name {name}"
        )
    if not points["bind"]:
        raise UsageError(
            f"{where}: profiles[0].plugins.bind: Invalid value: at least one bind plugin is "
            f"needed for profile with scheduler name {name}"
        )
    args: dict[str, dict[str, Any]] = {}
    for pc in raw.get("pluginConfig") or []:
        pname = str(pc.get("name"))
        if pname not in REGISTRY:
            raise UsageError(f'{where}: pluginConfig: "{pname}" does not exist')
        a = pc.get("args") or {}
        if not isinstance(a, dict):
            raise UsageError(f"{where}: pluginConfig {pname}: args must be a mapping")
        args[pname] = {k: v for k, v in a.items() if k not in ("apiVersion", "kind")}
        _validate_args(pname, args[pname], where)
    for w in weights.values():
        if w < 0 or w > 100:
            raise UsageError(
                f"{where}: profiles[0].plugins.score.enabled: Invalid value: {w}: "
                "plugin weight must be in the range 0..100"
            )
    return ProfileSpec(name, points, {k: (v or 1) for k, v in weights.items()}, args)


ARG_FIELDS = {
    "InterPodAffinity": {"hardPodAffinityWeight", "ignorePreferredTermsOfExistingPods"},
    "NodeAffinity": {"addedAffinity"},
    "NodeResourcesFit": {"ignoredResources", "ignoredResourceGroups", "scoringStrategy"},
    "NodeResourcesBalancedAllocation": {"resources"},
    "PodTopologySpread": {"defaultConstraints", "defaultingType"},
    "DefaultPreemption": {"minCandidateNodesPercentage", "minCandidateNodesAbsolute"},
    "VolumeBinding": {"bindTimeoutSeconds", "shape"},
}


def _bad(where: str, plugin: str, msg: str) -> UsageError:
    return UsageError(
        f"{where}: pluginConfig[{plugin}]: {msg}",
        hint="see the plugin's args in KubeSchedulerConfiguration v1",
    )


def _validate_args(plugin: str, a: dict[str, Any], where: str) -> None:
    """What kube's strict decoding and args validation reject."""
    known = ARG_FIELDS.get(plugin, set())
    for k in a:
        if k not in known:
            raise _bad(where, plugin, f'strict decoding error: unknown field "{k}"')
    if plugin == "InterPodAffinity":
        w = a.get("hardPodAffinityWeight", 1)
        if not isinstance(w, int) or not 0 <= w <= 100:
            raise _bad(
                where,
                plugin,
                f"hardPodAffinityWeight: Invalid value: {w}: not in valid range [0, 100]",
            )
    elif plugin == "NodeResourcesFit":
        st = a.get("scoringStrategy") or {}
        kind = st.get("type", "LeastAllocated")
        if kind not in ("LeastAllocated", "MostAllocated", "RequestedToCapacityRatio"):
            raise _bad(
                where,
                plugin,
                f'scoringStrategy.type: Unsupported value: "{kind}": supported values: '
                '"LeastAllocated", "MostAllocated", "RequestedToCapacityRatio"',
            )
        for i, r in enumerate(st.get("resources") or []):
            w = r.get("weight")
            if not isinstance(w, int) or not 1 <= w <= 100:
                raise _bad(
                    where,
                    plugin,
                    f"scoringStrategy.resources[{i}].weight: Invalid value: {w}: resource weight "
                    f"of {r.get('name')} not in valid range [1, 100]",
                )
        if kind == "RequestedToCapacityRatio":
            shape = (st.get("requestedToCapacityRatio") or {}).get("shape") or []
            if not shape:
                raise _bad(
                    where,
                    plugin,
                    "scoringStrategy.requestedToCapacityRatio.shape: Required value: at least one point must be specified",
                )
            last = -1
            for i, pt in enumerate(shape):
                u, sc = pt.get("utilization"), pt.get("score")
                if not isinstance(u, int) or not 0 <= u <= 100:
                    raise _bad(
                        where,
                        plugin,
                        f"shape[{i}].utilization: Invalid value: {u}: not in valid range [0, 100]",
                    )
                if u <= last:
                    raise _bad(
                        where,
                        plugin,
                        f"shape[{i}].utilization: Invalid value: {u}: utilization values must be sorted in increasing order",
                    )
                if not isinstance(sc, int) or not 0 <= sc <= 10:
                    raise _bad(
                        where,
                        plugin,
                        f"shape[{i}].score: Invalid value: {sc}: not in valid range [0, 10]",
                    )
                last = u
    elif plugin == "PodTopologySpread":
        dt = a.get("defaultingType", "System")
        if dt not in ("System", "List"):
            raise _bad(
                where,
                plugin,
                f'defaultingType: Unsupported value: "{dt}": supported values: "List", "System"',
            )
        if dt == "System" and a.get("defaultConstraints"):
            raise _bad(
                where,
                plugin,
                'defaultConstraints: Invalid value: ...: when .defaultingType is "System", '
                ".defaultConstraints must be empty",
            )
        for i, c in enumerate(a.get("defaultConstraints") or []):
            if c.get("labelSelector") is not None:
                raise _bad(
                    where,
                    plugin,
                    f"defaultConstraints[{i}].labelSelector: Forbidden: constraint must not define a selector, as they deduced for each pod",
                )


def default_config() -> SchedulerConfig:
    prof = build_profile({}, "<default>")
    return SchedulerConfig({prof.scheduler_name: prof})


def load_config(path: str) -> SchedulerConfig:
    text = read_input(path, "config", flag="--config")
    docs = load_yaml_documents(text, path)  # JSON is YAML; aliases and nesting are bounded
    raw = docs[0][0] if docs else None
    if not isinstance(raw, dict) or raw.get("kind") != "KubeSchedulerConfiguration":
        raise UsageError(
            f"{path}: not a KubeSchedulerConfiguration",
            hint="apiVersion: kubescheduler.config.k8s.io/v1, kind: KubeSchedulerConfiguration",
        )
    api = str(raw.get("apiVersion") or "")
    if api != "kubescheduler.config.k8s.io/v1":
        raise UsageError(
            f'{path}: no kind "KubeSchedulerConfiguration" is registered for version "{api}"',
            hint="use apiVersion: kubescheduler.config.k8s.io/v1",
        )
    try:
        check(raw, SCHEDULER_CONFIG)
    except FieldError as exc:
        raise UsageError(
            f"KubeSchedulerConfiguration: {exc}",
            hint="see KubeSchedulerConfiguration v1: profiles[].plugins.<point>.enabled[].name/weight",
            source=path,
        ) from exc
    profiles: dict[str, ProfileSpec] = {}
    raw_profiles = raw.get("profiles") or [{}]
    if not isinstance(raw_profiles, list):
        raise UsageError(f"{path}: profiles: Invalid value: expected an array of profiles")
    for raw_prof in raw_profiles:
        try:
            prof = build_profile(raw_prof or {}, path)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            raise UsageError(
                f"{path}: KubeSchedulerConfiguration: a profile field has a value of the wrong type",
                hint="see KubeSchedulerConfiguration v1: profiles[].plugins.<point>.enabled[].name",
            ) from exc
        if prof.scheduler_name in profiles:
            raise UsageError(
                f'{path}: duplicate profile with scheduler name "{prof.scheduler_name}"'
            )
        profiles[prof.scheduler_name] = prof
    pct = raw.get("percentageOfNodesToScore")
    if pct is not None and not (0 <= int(pct) <= 100):
        raise UsageError(
            f"{path}: percentageOfNodesToScore: Invalid value: {pct}: not in valid range [0-100]"
        )
    return SchedulerConfig(profiles, None if pct is None else int(pct), path)
