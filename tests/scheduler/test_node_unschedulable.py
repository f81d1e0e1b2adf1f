from __future__ import annotations

from tests.scheduler.builders import cycle, node, only, pod, reasons


def test_cordoned_node_rejected_unless_tolerated() -> None:
    objs = [node("a", unschedulable=True), node("b")]
    res = cycle(objs, pod("p"), only("NodeUnschedulable"))
    assert res.feasible == ["b"]
    assert reasons(res) == {"a": ["node(s) were unschedulable"]}
    assert res.statuses["a"].code.value == "UnschedulableAndUnresolvable"
    tol = [
        {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
    ]
    res = cycle(objs, pod("p", tolerations=tol), only("NodeUnschedulable"))
    assert res.feasible == ["a", "b"]
