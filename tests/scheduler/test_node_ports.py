from __future__ import annotations

from typing import Any

from tests.scheduler.builders import cycle, node, only, pod, reasons


def with_port(
    name: str, port: int, node_name: str | None = None, ip: str | None = None, proto: str = "TCP"
) -> dict[str, Any]:
    p = pod(name, node_name)
    spec: dict[str, Any] = {"containerPort": port, "hostPort": port, "protocol": proto}
    if ip:
        spec["hostIP"] = ip
    p["spec"]["containers"][0]["ports"] = [spec]
    return p


def test_host_port_conflicts() -> None:
    objs = [node("a"), node("b"), with_port("old", 8080, "a")]
    res = cycle(objs, with_port("new", 8080), only("NodePorts"))
    assert res.feasible == ["b"]
    assert reasons(res) == {"a": ["node(s) didn't have free ports for the requested pod ports"]}
    # another protocol on the same port is free
    assert cycle(objs, with_port("new", 8080, proto="UDP"), only("NodePorts")).feasible == [
        "a",
        "b",
    ]


def test_specific_ips() -> None:
    objs = [node("a"), with_port("old", 80, "a", ip="10.0.0.1")]
    assert cycle(objs, with_port("new", 80, ip="10.0.0.2"), only("NodePorts")).feasible == ["a"]
    # 0.0.0.0 conflicts with any address
    assert cycle(objs, with_port("new", 80), only("NodePorts")).feasible == []
