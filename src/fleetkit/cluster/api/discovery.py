"""Discovery documents: legacy (/api, /apis, APIResourceList) and aggregated (apidiscovery v2)."""

from __future__ import annotations

from typing import Any

from fleetkit.cluster.api.resources import GROUP_VERSIONS, RESOURCES, VERBS, Resource

__all__ = ["api_versions", "api_group_list", "resource_list", "aggregated", "AGGREGATED_TYPE"]

AGGREGATED_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
_SUB_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "binding": ["create"],
    "eviction": ["create"],
    "log": ["get"],
    "proxy": ["create", "delete", "get", "patch", "update"],
    "finalize": ["update"],
    "ephemeralcontainers": ["get", "patch", "update"],
}


def _sub_kind(r: Resource, sub: str) -> tuple[str, str, str]:
    if sub == "scale":
        return ("autoscaling", "v1", "Scale")
    if sub == "binding":
        return ("", "v1", "Binding")
    if sub == "eviction":
        return ("policy", "v1", "Eviction")
    return (r.group, r.version, r.kind)


def api_versions(address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def api_group_list() -> dict[str, Any]:
    groups = []
    for group, version in GROUP_VERSIONS:
        if not group:
            continue
        gv = {"groupVersion": f"{group}/{version}", "version": version}
        groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    out = []
    for r in RESOURCES:
        if r.group != group or r.version != version:
            continue
        entry: dict[str, Any] = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ["create"] if r.kind == "Binding" else VERBS,
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        out.append(entry)
        for sub in r.subresources:
            g, v, k = _sub_kind(r, sub)
            e: dict[str, Any] = {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": k,
                "verbs": _SUB_VERBS.get(sub, ["get"]),
            }
            if g != r.group:
                e["group"], e["version"] = g, v
            out.append(e)
    if not out:
        return None
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}


def aggregated(legacy: bool) -> dict[str, Any]:
    """APIGroupDiscoveryList for /api (legacy=True) or /apis."""
    items = []
    for group, version in GROUP_VERSIONS:
        if (group == "") != legacy:
            continue
        resources = []
        for r in RESOURCES:
            if r.group != group or r.version != version or r.kind == "Binding":
                continue
            entry: dict[str, Any] = {
                "resource": r.plural,
                "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                "scope": "Namespaced" if r.namespaced else "Cluster",
                "singularResource": r.singular,
                "verbs": VERBS,
            }
            if r.short_names:
                entry["shortNames"] = list(r.short_names)
            if r.categories:
                entry["categories"] = list(r.categories)
            subs = []
            for sub in r.subresources:
                g, v, k = _sub_kind(r, sub)
                subs.append(
                    {
                        "subresource": sub,
                        "responseKind": {"group": g, "version": v, "kind": k},
                        "verbs": _SUB_VERBS.get(sub, ["get"]),
                    }
                )
            if subs:
                entry["subresources"] = subs
            resources.append(entry)
        items.append(
            {
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [{"version": version, "resources": resources, "freshness": "Current"}],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }
