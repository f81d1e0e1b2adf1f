from __future__ import annotations

from typing import Any

from tests.scheduler.builders import cycle, node, only, pod, reasons, scores

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"


def term(labels: dict[str, str], key: str = HOST, **extra: Any) -> dict[str, Any]:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key, **extra}


def aff(
    kind: str, *terms: dict[str, Any], preferred: bool = False, weight: int = 10
) -> dict[str, Any]:
    if preferred:
        return {
            kind: {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": weight, "podAffinityTerm": t} for t in terms
                ]
            }
        }
    return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}


def nodes() -> list[dict[str, Any]]:
    return [
        node("a", labels={ZONE: "z1"}),
        node("b", labels={ZONE: "z1"}),
        node("c", labels={ZONE: "z2"}),
    ]


def test_required_affinity_by_zone() -> None:
    objs = nodes() + [pod("db", "a", labels={"app": "db"})]
    res = cycle(
        objs,
        pod("p", affinity=aff("podAffinity", term({"app": "db"}, ZONE))),
        only("InterPodAffinity"),
    )
    assert res.feasible == ["a", "b"]
    assert reasons(res) == {"c": ["node(s) didn't match pod affinity rules"]}
    assert res.statuses["c"].code.value == "UnschedulableAndUnresolvable"


def test_first_pod_of_a_group_may_land_anywhere() -> None:
    # no pod matches yet, and the pod matches its own term: allowed on nodes with the label
    p = pod("p", labels={"app": "db"}, affinity=aff("podAffinity", term({"app": "db"}, ZONE)))
    res = cycle(nodes() + [node("nozone")], p, only("InterPodAffinity"))
    assert res.feasible == ["a", "b", "c"]
    assert reasons(res) == {"nozone": ["node(s) didn't match pod affinity rules"]}


def test_anti_affinity_and_symmetry() -> None:
    objs = nodes() + [pod("w", "a", labels={"app": "web"})]
    res = cycle(
        objs,
        pod("p", labels={"app": "web"}, affinity=aff("podAntiAffinity", term({"app": "web"}))),
        only("InterPodAffinity"),
    )
    assert res.feasible == ["b", "c"]
    assert reasons(res) == {"a": ["node(s) didn't match pod anti-affinity rules"]}
    # the existing pod's anti-affinity rejects an incoming pod it matches, per zone here
    guard = pod(
        "g",
        "c",
        labels={"app": "guard"},
        affinity=aff("podAntiAffinity", term({"app": "client"}, ZONE)),
    )
    res = cycle(
        nodes() + [guard], pod("client", labels={"app": "client"}), only("InterPodAffinity")
    )
    assert res.feasible == ["a", "b"]
    assert reasons(res) == {"c": ["node(s) didn't satisfy existing pods anti-affinity rules"]}


def test_node_without_topology_label_never_blocked_by_anti_affinity() -> None:
    objs = [node("a", labels={ZONE: "z1"}), node("bare"), pod("w", "a", labels={"app": "web"})]
    res = cycle(
        objs,
        pod("p", affinity=aff("podAntiAffinity", term({"app": "web"}, ZONE))),
        only("InterPodAffinity"),
    )
    assert res.feasible == ["bare"]


def test_namespaces_and_namespace_selector() -> None:
    objs = nodes() + [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team-a", "labels": {"team": "a"}},
        },
        pod("w", "a", labels={"app": "web"}, namespace="team-a"),
    ]
    same_ns = cycle(
        objs,
        pod("p", affinity=aff("podAntiAffinity", term({"app": "web"}))),
        only("InterPodAffinity"),
    )
    assert same_ns.feasible == [
        "a",
        "b",
        "c",
    ]  # default namespace only: the team-a pod is invisible
    by_sel = cycle(
        objs,
        pod(
            "p",
            affinity=aff(
                "podAntiAffinity",
                term({"app": "web"}, namespaceSelector={"matchLabels": {"team": "a"}}),
            ),
        ),
        only("InterPodAffinity"),
    )
    assert by_sel.feasible == ["b", "c"]


def test_preferred_score_min_max_normalized() -> None:
    objs = nodes() + [
        pod("w1", "a", labels={"app": "web"}),
        pod("w2", "c", labels={"app": "web"}),
        pod("w3", "c", labels={"app": "web"}),
    ]
    p = pod("p", affinity=aff("podAffinity", term({"app": "web"}), preferred=True, weight=5))
    res = cycle(objs, p, only("InterPodAffinity"))
    # hostname domains: a = 1 match * 5 = 5, b = 0, c = 2 * 5 = 10; min 0 max 10 -> 50, 0, 100
    assert scores(res, "InterPodAffinity") == {"a": 50, "b": 0, "c": 100}


def test_existing_pods_required_affinity_scores_with_hard_weight() -> None:
    objs = nodes() + [
        pod(
            "w",
            "b",
            labels={"app": "x"},
            affinity=aff("podAffinity", term({"app": "client"}, ZONE)),
        )
    ]
    res = cycle(
        objs,
        pod("client", labels={"app": "client"}),
        only("InterPodAffinity", {"hardPodAffinityWeight": 4}),
    )
    # zone z1 (a, b) gets +4, z2 0 -> 100, 100, 0
    assert scores(res, "InterPodAffinity") == {"a": 100, "b": 100, "c": 0}


def test_invalid_selector_value_fails_prescore() -> None:
    bad = term({"app": "web"})
    bad["labelSelector"] = {
        "matchExpressions": [{"key": "app", "operator": "In", "values": ["{{bad}}"]}]
    }
    p = pod("p", affinity=aff("podAffinity", bad, preferred=True))
    res = cycle(nodes(), p, only("InterPodAffinity"))
    # PreFilter parses every term first (UnschedulableAndUnresolvable for all nodes)
    assert res.prefilter_msg.startswith("parsing pod: ")
    assert 'Invalid value: "{{bad}}"' in res.prefilter_msg
    assert res.absent is not None and res.absent.code.value == "UnschedulableAndUnresolvable"
