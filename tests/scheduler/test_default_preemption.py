from __future__ import annotations

from typing import Any

from fleetkit.cluster.offline import Outcome
from tests.scheduler.builders import by_name, created, message, node, node_of, pod
from tests.scheduler.builders import run as run_objects


def pc(name: str, value: int, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": name},
        "value": value,
        **extra,
    }


def run(objs: list[dict[str, Any]]) -> Outcome:
    return run_objects(objs)


def gone(sim: Outcome, objs: list[dict[str, Any]]) -> list[str]:
    """The given pods preemption deleted."""
    left = by_name(sim)
    return [
        o["metadata"]["name"]
        for o in objs
        if o["kind"] == "Pod" and o["spec"].get("nodeName") and o["metadata"]["name"] not in left
    ]


def test_lowest_priority_victims_on_the_cheapest_node() -> None:
    objs = [
        pc("high", 1000),
        node("a", cpu="2"),
        node("b", cpu="2"),
        pod("a-low", "a", cpu="1500m", priority=10),
        pod("b-lowest", "b", cpu="1500m", priority=1),
        pod("urgent", cpu="1", priorityClassName="high"),
    ]
    sim = run(objs)
    # both nodes need one eviction; the node whose highest victim priority is lowest wins: b
    assert node_of(by_name(sim)["urgent"]) == "b"
    assert gone(sim, objs) == ["b-lowest"]


def test_reprieve_keeps_pods_that_need_not_go() -> None:
    objs = [
        pc("high", 1000),
        node("a", cpu="3"),
        pod("keep", "a", cpu="1", priority=5),
        pod("go", "a", cpu="1500m", priority=1),
        pod("urgent", cpu="1500m", priorityClassName="high"),
    ]
    sim = run(objs)
    # removing both frees 3 cpu; reprieving 'keep' (more important) still leaves 1.5 free: only 'go' goes
    assert gone(sim, objs) == ["go"]
    assert node_of(created(sim)[0]) == "a"


def test_equal_priority_no_victims_and_never_policy() -> None:
    objs = [node("a", cpu="1"), pod("x", "a", cpu="1"), pod("p", cpu="1")]
    sim = run(objs)
    assert message(created(sim)[0]) == (
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
        "1 No preemption victims found for incoming pod."
    )
    objs = [
        pc("never", 100, preemptionPolicy="Never"),
        node("a", cpu="1"),
        pod("x", "a", cpu="1"),
        pod("p", cpu="1", priorityClassName="never"),
    ]
    sim = run(objs)
    assert message(created(sim)[0]) == (
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
    )


def test_victim_still_not_enough() -> None:
    objs = [
        pc("high", 1000),
        node("a", cpu="2"),
        pod("x", "a", cpu="1", priority=1),
        pod("p", cpu="3", priorityClassName="high"),
    ]
    sim = run(objs)
    # even with every lower-priority pod gone the pod does not fit: the dry run reports the filter reason
    assert message(created(sim)[0]) == (
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 Insufficient cpu."
    )
    assert gone(sim, objs) == []


def test_pdb_violations_decide_the_node() -> None:
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "db"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}},
    }
    objs = [
        pc("high", 1000),
        pdb,
        node("a", cpu="2"),
        node("b", cpu="2"),
        # the only db pod: evicting it would leave 0 < minAvailable 1 (a violation)
        pod("db", "a", cpu="1500m", priority=1, labels={"app": "db"}),
        # higher priority than the db pod, but no budget protects it
        pod("cache", "b", cpu="1500m", priority=5, labels={"app": "cache"}),
        pod("urgent", cpu="1", priorityClassName="high"),
    ]
    sim = run(objs)
    # without the PDB node a (lower-priority victim) would win; with it, b has 0 violations
    assert node_of(by_name(sim)["urgent"]) == "b"
    assert gone(sim, objs) == ["cache"]
