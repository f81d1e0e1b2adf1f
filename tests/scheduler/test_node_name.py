from __future__ import annotations

from tests.scheduler.builders import cycle, node, only, pod, reasons


def test_pod_naming_a_node_fits_only_there() -> None:
    res = cycle([node("a"), node("b")], pod("p", nodeName=None), only("NodeName"))
    assert res.feasible == ["a", "b"]
    p = pod("p")
    p["spec"]["nodeName"] = "b"
    res = cycle([node("a"), node("b")], p, only("NodeName"))
    assert res.feasible == ["b"]
    assert reasons(res) == {"a": ["node(s) didn't match the requested node name"]}
