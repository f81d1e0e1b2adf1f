from __future__ import annotations

from tests.scheduler.builders import cycle, node, only, pod, scores

PLUGIN = "NodeResourcesBalancedAllocation"


def test_balanced_arithmetic() -> None:
    objs = [
        node("a", cpu="4", memory="8Gi"),
        node("b", cpu="4", memory="8Gi"),
        pod("x", "b", cpu="3", memory="0"),
    ]
    res = cycle(objs, pod("p", cpu="1", memory="2Gi"), only(PLUGIN))
    # a: cpu 1/4 = 0.25, mem 2/8 = 0.25: std = |0.25-0.25|/2 = 0 -> 100
    # b: cpu 4/4 = 1.0, mem 0.25: std = 0.375 -> int((1-0.375)*100) = 62
    assert scores(res, PLUGIN) == {"a": 100, "b": 62}


def test_best_effort_pod_skipped() -> None:
    res = cycle([node("a"), node("b")], pod("p"), only(PLUGIN))
    assert scores(res, PLUGIN) == {"a": 0, "b": 0}


def test_three_resources_use_population_std() -> None:
    objs = [node("a", cpu="4", memory="4Gi", extra={"example.com/gpu": "4"})]
    p = pod("p", cpu="1", memory="2Gi")
    p["spec"]["containers"][0]["resources"]["requests"]["example.com/gpu"] = "4"
    args = {
        "resources": [
            {"name": "cpu", "weight": 1},
            {"name": "memory", "weight": 1},
            {"name": "example.com/gpu", "weight": 1},
        ]
    }
    res = cycle(objs, p, only(PLUGIN, args))
    # fractions 0.25, 0.5, 1.0: mean 0.5833; variance (0.1111+0.0069+0.1736)/3 = 0.0972
    # std 0.3118 -> int((1-0.3118)*100) = 68
    assert scores(res, PLUGIN) == {"a": 68}
