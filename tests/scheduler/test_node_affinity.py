from __future__ import annotations

from typing import Any

from tests.scheduler.builders import cycle, node, only, pod, reasons, scores

REASON = "node(s) didn't match Pod's node affinity/selector"


def required(*terms: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
        }
    }


def expr(key: str, op: str, *values: str) -> dict[str, Any]:
    e: dict[str, Any] = {"key": key, "operator": op}
    if values:
        e["values"] = list(values)
    return {"matchExpressions": [e]}


NODES = [
    node("a", labels={"zone": "z1", "gen": "3"}),
    node("b", labels={"zone": "z2", "gen": "5"}),
    node("c", labels={}),
]


def feasible(affinity: dict[str, Any]) -> list[str]:
    return cycle(NODES, pod("p", affinity=affinity), only("NodeAffinity")).feasible


def test_operators() -> None:
    assert feasible(required(expr("zone", "In", "z1"))) == ["a"]
    assert feasible(required(expr("zone", "NotIn", "z1"))) == [
        "b",
        "c",
    ]  # absent label passes NotIn
    assert feasible(required(expr("zone", "Exists"))) == ["a", "b"]
    assert feasible(required(expr("zone", "DoesNotExist"))) == ["c"]
    assert feasible(required(expr("gen", "Gt", "4"))) == ["b"]
    assert feasible(required(expr("gen", "Lt", "4"))) == ["a"]
    # terms are ORed, expressions inside a term ANDed; an empty term matches nothing
    assert feasible(required(expr("zone", "In", "z1"), expr("zone", "In", "z2"))) == ["a", "b"]
    assert feasible(required({"matchExpressions": []})) == []


def test_node_selector_and_reason() -> None:
    res = cycle(NODES, pod("p", nodeSelector={"zone": "z2"}), only("NodeAffinity"))
    assert res.feasible == ["b"]
    assert reasons(res) == {"a": [REASON], "c": [REASON]}


def test_match_fields_prefilter_narrows_nodes() -> None:
    aff = required({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]})
    res = cycle(NODES, pod("p", affinity=aff), only("NodeAffinity"))
    assert res.feasible == ["b"]
    # nodes outside the PreFilterResult are never filtered: kube's own wording for them
    assert reasons(res) == {
        "a": ["node(s) didn't satisfy plugin(s) [NodeAffinity]"],
        "c": ["node(s) didn't satisfy plugin(s) [NodeAffinity]"],
    }


def test_preferred_weights_normalized() -> None:
    aff = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 2, "preference": expr("zone", "Exists")},
                {"weight": 8, "preference": expr("zone", "In", "z2")},
            ]
        }
    }
    res = cycle(NODES, pod("p", affinity=aff), only("NodeAffinity"))
    # raw: a=2 b=2+8=10 c=0; normalized 100*raw/10 -> 20, 100, 0
    assert scores(res, "NodeAffinity") == {"a": 20, "b": 100, "c": 0}


def test_added_affinity_enforced() -> None:
    args = {"addedAffinity": required(expr("zone", "In", "z1"))["nodeAffinity"]}
    res = cycle(NODES, pod("p"), only("NodeAffinity", args))
    assert res.feasible == ["a"]
    assert reasons(res)["b"] == ["node(s) didn't match scheduler-enforced node affinity"]


def test_unparsable_preferred_term_fails_prescore() -> None:
    aff = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 2, "preference": expr("invalid key", "In", "v")}
            ]
        }
    }
    res = cycle(NODES, pod("p", affinity=aff), only("NodeAffinity"))
    assert res.node is None
    assert res.error is not None
    assert res.error.startswith(
        'running PreScore plugin "NodeAffinity": [0].matchExpressions[0].key: Invalid value: "invalid key": name part must consist of'
    )
    # an unparsable required term just matches no node
    assert feasible(required(expr("zone", "In", "bad value!"))) == []
