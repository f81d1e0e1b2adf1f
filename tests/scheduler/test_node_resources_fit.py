from __future__ import annotations

from typing import Any

from fleetkit.scheduler.model import Pod
from fleetkit.scheduler.workloads import default_pod
from tests.scheduler.builders import cycle, node, only, pod, reasons, scores


def requests_of(spec: dict[str, Any]) -> tuple[int, int]:
    obj = {"metadata": {"name": "p"}, "spec": spec}
    default_pod(obj, {})
    p = Pod.from_obj(obj, 1)
    return p.requests.milli_cpu, p.requests.memory


def c(cpu: str, mem: str = "0", **extra: Any) -> dict[str, Any]:
    return {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}, **extra}


def test_pod_requests_with_init_containers_sidecars_overhead() -> None:
    # containers sum to 300m; an init container of 500m runs alone: max(300, 500) = 500m
    assert (
        requests_of({"containers": [c("100m"), c("200m")], "initContainers": [c("500m")]})[0] == 500
    )
    # a sidecar (restartPolicy Always) adds to the containers and to every later init container:
    # containers 300 + sidecar 100 = 400; init after sidecar: 350 + 100 = 450 -> max = 450
    spec = {
        "containers": [c("100m"), c("200m")],
        "initContainers": [c("100m", restartPolicy="Always"), c("350m")],
    }
    assert requests_of(spec)[0] == 450
    # overhead is added on top: 300 + 250
    assert (
        requests_of({"containers": [c("100m"), c("200m")], "overhead": {"cpu": "250m"}})[0] == 550
    )
    # limits-only containers get requests from limits (API defaulting)
    lim = {"containers": [{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}
    assert requests_of(lim) == (1000, 2**30)


def test_insufficient_reasons_in_kube_order() -> None:
    objs = [
        node("small", cpu="1", memory="1Gi"),
        node("full", pods="1"),
        pod("x", "full", cpu="10m"),
        node("big"),
    ]
    res = cycle(objs, pod("p", cpu="2", memory="2Gi"), only("NodeResourcesFit"))
    assert res.feasible == ["big"]
    assert reasons(res) == {
        "small": ["Insufficient cpu", "Insufficient memory"],
        "full": ["Too many pods"],
    }


def test_extended_resources_and_ignored_groups() -> None:
    objs = [node("a", extra={"example.com/gpu": "1"}), node("b")]
    p = pod("p")
    p["spec"]["containers"][0]["resources"] = {"requests": {"example.com/gpu": "1"}}
    res = cycle(objs, p, only("NodeResourcesFit"))
    assert res.feasible == ["a"]
    assert reasons(res) == {"b": ["Insufficient example.com/gpu"]}
    res = cycle(objs, p, only("NodeResourcesFit", {"ignoredResourceGroups": ["example.com"]}))
    assert res.feasible == ["a", "b"]


def test_least_allocated_arithmetic() -> None:
    objs = [
        node("a", cpu="4", memory="8Gi"),
        node("b", cpu="4", memory="8Gi"),
        pod("x", "b", cpu="2", memory="4Gi"),
    ]
    res = cycle(objs, pod("p", cpu="1", memory="2Gi"), only("NodeResourcesFit"))
    # a: cpu (4000-1000)*100/4000 = 75, mem (8-2)*100/8 = 75 -> (75+75)/2 = 75
    # b: cpu (4000-3000)*100/4000 = 25, mem (8-6)*100/8 = 25 -> 25
    assert scores(res, "NodeResourcesFit") == {"a": 75, "b": 25}


def test_non_zero_defaults_for_request_less_containers() -> None:
    objs = [node("a", cpu="1", memory="1000Mi")]
    res = cycle(objs, pod("p"), only("NodeResourcesFit"))
    # no requests: scored as 100m and 200Mi
    # cpu (1000-100)*100/1000 = 90; mem (1000-200)*100/1000 = 80 -> (90+80)/2 = 85
    assert scores(res, "NodeResourcesFit") == {"a": 85}


def test_most_allocated_and_weights() -> None:
    objs = [node("a", cpu="4", memory="8Gi")]
    args = {
        "scoringStrategy": {
            "type": "MostAllocated",
            "resources": [{"name": "cpu", "weight": 3}, {"name": "memory", "weight": 1}],
        }
    }
    res = cycle(objs, pod("p", cpu="1", memory="4Gi"), only("NodeResourcesFit", args))
    # cpu 1000*100/4000 = 25 (w3), mem 4*100/8 = 50 (w1) -> (75+50)/4 = 31
    assert scores(res, "NodeResourcesFit") == {"a": 31}


def test_requested_to_capacity_ratio() -> None:
    objs = [node("a", cpu="4", memory="8Gi")]
    shape = [{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]
    args = {
        "scoringStrategy": {
            "type": "RequestedToCapacityRatio",
            "resources": [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}],
            "requestedToCapacityRatio": {"shape": shape},
        }
    }
    res = cycle(objs, pod("p", cpu="1", memory="2Gi"), only("NodeResourcesFit", args))
    # utilization cpu 25%, memory 25%; shape scaled x10: 0->0, 100->100: 25 each -> round(50/2) = 25
    assert scores(res, "NodeResourcesFit") == {"a": 25}
