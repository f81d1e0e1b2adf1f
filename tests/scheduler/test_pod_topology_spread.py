from __future__ import annotations

from typing import Any

from tests.scheduler.builders import cycle, node, only, pod, reasons, scores

ZONE = "topology.kubernetes.io/zone"
WEB = {"app": "web"}


def spread(
    key: str, skew: int = 1, when: str = "DoNotSchedule", **extra: Any
) -> list[dict[str, Any]]:
    return [
        {
            "maxSkew": skew,
            "topologyKey": key,
            "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": WEB},
            **extra,
        }
    ]


def zones() -> list[dict[str, Any]]:
    return [
        node("a1", labels={ZONE: "a"}),
        node("a2", labels={ZONE: "a"}),
        node("b1", labels={ZONE: "b"}),
        node("c1", labels={ZONE: "c"}),
        pod("w1", "a1", labels=WEB),
        pod("w2", "a2", labels=WEB),
        pod("w3", "b1", labels=WEB),
    ]


def test_skew_filter() -> None:
    res = cycle(
        zones(),
        pod("p", labels=WEB, topologySpreadConstraints=spread(ZONE)),
        only("PodTopologySpread"),
    )
    # zone counts a=2 b=1 c=0, min 0: placing in a gives 2+1-0 = 3 > 1, in b 1+1-0 = 2 > 1, in c 1
    assert res.feasible == ["c1"]
    assert reasons(res)["a1"] == ["node(s) didn't match pod topology spread constraints"]
    assert res.statuses["a1"].code.value == "Unschedulable"


def test_missing_label_is_unresolvable() -> None:
    objs = zones() + [node("nolabel")]
    res = cycle(
        objs,
        pod("p", labels=WEB, topologySpreadConstraints=spread(ZONE, skew=3)),
        only("PodTopologySpread"),
    )
    assert res.statuses["nolabel"].code.value == "UnschedulableAndUnresolvable"
    assert reasons(res)["nolabel"] == [
        "node(s) didn't match pod topology spread constraints (missing required label)"
    ]


def test_min_domains_forces_global_minimum_zero() -> None:
    objs = [
        node("a1", labels={ZONE: "a"}),
        node("b1", labels={ZONE: "b"}),
        pod("w1", "a1", labels=WEB),
        pod("w2", "b1", labels=WEB),
    ]
    plain = cycle(
        objs,
        pod("p", labels=WEB, topologySpreadConstraints=spread(ZONE)),
        only("PodTopologySpread"),
    )
    # 2 domains, counts 1/1: 1+1-1 = 1 <= 1 everywhere
    assert plain.feasible == ["a1", "b1"]
    md = cycle(
        objs,
        pod("p", labels=WEB, topologySpreadConstraints=spread(ZONE, minDomains=3)),
        only("PodTopologySpread"),
    )
    # only 2 of minDomains=3 domains exist: the global minimum counts as 0 -> 1+1-0 = 2 > 1
    assert md.feasible == []


def test_node_affinity_policy() -> None:
    objs = zones()
    sel = {"nodeSelector": {ZONE: "b"}}
    # Honor (default): only zone b is counted; a's pods do not matter -> b passes (1+1-1 = 1)
    res = cycle(
        objs,
        pod("p", labels=WEB, topologySpreadConstraints=spread(ZONE), **sel),
        only("PodTopologySpread"),
    )
    assert "b1" in res.feasible
    # Ignore: all zones counted, min is c=0 -> b: 1+1-0 = 2 > 1
    res = cycle(
        objs,
        pod(
            "p",
            labels=WEB,
            topologySpreadConstraints=spread(ZONE, nodeAffinityPolicy="Ignore"),
            **sel,
        ),
        only("PodTopologySpread"),
    )
    assert "b1" not in res.feasible


def test_schedule_anyway_score_arithmetic() -> None:
    objs = [
        node("n1"),
        node("n2"),
        node("n3"),
        pod("w1", "n1", labels=WEB),
        pod("w2", "n1", labels=WEB),
        pod("w3", "n2", labels=WEB),
    ]
    res = cycle(
        objs,
        pod(
            "p",
            labels=WEB,
            topologySpreadConstraints=spread("kubernetes.io/hostname", when="ScheduleAnyway"),
        ),
        only("PodTopologySpread"),
    )
    # weight = ln(3 nodes + 2) = 1.609; raw = count*w + (maxSkew-1): n1 2*1.609=3.22->3, n2 1.61->2, n3 0
    # normalize: 100*(max+min-s)/max with max=3 min=0 -> n1 0, n2 33, n3 100
    assert scores(res, "PodTopologySpread") == {"n1": 0, "n2": 33, "n3": 100}


def test_system_default_spreading_for_controller_pods_only() -> None:
    objs = [node("n1"), node("n2")]
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": WEB},
            "template": {
                "metadata": {"labels": WEB},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }
    from tests.scheduler.builders import created, node_of, run

    sim = run(objs + [dep], config=only("PodTopologySpread"), seed=3)
    per_node: dict[str, int] = {}
    for p in created(sim):
        per_node[node_of(p)] = per_node.get(node_of(p), 0) + 1
    # hostname maxSkew 3 scoring alone still prefers the emptier node every time: 2 + 2
    assert per_node == {"n1": 2, "n2": 2}
    # a bare pod has no Service/ReplicaSet selector: no default constraint, PreScore skips
    res = cycle(objs, pod("p", labels=WEB), only("PodTopologySpread"))
    assert scores(res, "PodTopologySpread") == {"n1": 0, "n2": 0}


def test_default_constraints_keep_their_inclusion_policies() -> None:
    # defaultingType List: a zone DoNotSchedule default applies to pods a Service selects.
    # b1 carries an untolerated taint. Ignore (the default): zones a=1, b=0, min 0, so a1 gets
    # 1+1-0 = 2 > 1 and fails. nodeTaintsPolicy Honor drops zone b: min 1, a1 gets 1+1-1 = 1.
    objs = [
        node("a1", labels={ZONE: "a"}),
        node("b1", labels={ZONE: "b"}, taints=[{"key": "k", "effect": "NoSchedule"}]),
        pod("w1", "a1", labels=WEB),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": WEB},
        },
    ]
    base = {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule"}
    for extra, feasible in (({}, False), ({"nodeTaintsPolicy": "Honor"}, True)):
        args = {"defaultingType": "List", "defaultConstraints": [{**base, **extra}]}
        res = cycle(objs, pod("p", labels=WEB), only("PodTopologySpread", args))
        assert ("a1" in res.feasible) is feasible, extra
