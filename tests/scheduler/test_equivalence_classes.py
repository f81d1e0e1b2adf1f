"""The fast path (one evaluation per class of interchangeable nodes, memoized domain counts) must
place every pod exactly where the per-node path (used by --explain) does, with the same seed."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.scheduler.builders import created, message, node, node_of, run

ZONE = "topology.kubernetes.io/zone"


def scenario(seed: int) -> list[dict[str, Any]]:
    r = random.Random(seed)
    objs: list[dict[str, Any]] = []
    for i in range(r.randint(4, 12)):
        taints = [{"key": "soft", "effect": "PreferNoSchedule"}] if r.random() < 0.2 else None
        objs.append(
            node(
                f"n{i}",
                cpu=r.choice(["1", "2", "4"]),
                memory=r.choice(["2Gi", "4Gi"]),
                labels={ZONE: f"z{i % 3}", "disk": r.choice(["ssd", "hdd"])},
                taints=taints,
            )
        )
    objs += [
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": f"p{v}"},
            "value": v,
        }
        for v in (0, 100, 1000)
    ]
    apps = ["a", "b", "c"]
    for j in range(r.randint(3, 7)):
        app = r.choice(apps)
        spec: dict[str, Any] = {
            "containers": [
                {
                    "name": "c",
                    "image": "nginx",
                    "resources": {
                        "requests": {"cpu": r.choice(["100m", "300m", "700m"]), "memory": "256Mi"}
                    },
                }
            ]
        }
        spec["priorityClassName"] = r.choice(["p0", "p0", "p100", "p1000"])
        roll = r.random()
        other = r.choice(apps)
        if roll < 0.2:
            spec["affinity"] = {
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "labelSelector": {"matchLabels": {"app": other}},
                            "topologyKey": r.choice(["kubernetes.io/hostname", ZONE]),
                        }
                    ]
                }
            }
        elif roll < 0.4:
            spec["affinity"] = {
                "podAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": r.randint(1, 100),
                            "podAffinityTerm": {
                                "labelSelector": {"matchLabels": {"app": other}},
                                "topologyKey": r.choice(["kubernetes.io/hostname", ZONE]),
                            },
                        }
                    ]
                }
            }
        elif roll < 0.6:
            spec["topologySpreadConstraints"] = [
                {
                    "maxSkew": r.randint(1, 2),
                    "topologyKey": r.choice(["kubernetes.io/hostname", ZONE]),
                    "whenUnsatisfiable": r.choice(["DoNotSchedule", "ScheduleAnyway"]),
                    "labelSelector": {"matchLabels": {"app": app}},
                }
            ]
        elif roll < 0.7:
            spec["nodeSelector"] = {"disk": "ssd"}
        elif roll < 0.8:
            spec["affinity"] = {
                "podAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": {"app": other}}, "topologyKey": ZONE}
                    ]
                }
            }
        objs.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": f"d{j}"},
                "spec": {
                    "replicas": r.randint(1, 8),
                    "selector": {"matchLabels": {"app": app, "d": str(j)}},
                    "template": {"metadata": {"labels": {"app": app, "d": str(j)}}, "spec": spec},
                },
            }
        )
    return objs


def placements(objs: list[dict[str, Any]], explain: bool) -> list[tuple[str, str, str | None]]:
    # explain: every node is evaluated one by one (the per-node path)
    sim = run(objs, seed=5, explain=explain)
    return [(p["metadata"]["name"], node_of(p), message(p)) for p in created(sim)]


@pytest.mark.parametrize("seed", range(40))
def test_fast_path_matches_per_node_path(seed: int) -> None:
    objs = scenario(seed)
    assert placements(objs, explain=False) == placements(objs, explain=True)


def steps_for(seed: int, objs: list[dict[str, Any]]) -> list[str]:
    """What-ifs between scale-ups: node labels, taints and cordons change the classes and the
    results memoized per pod spec and class must not outlive them."""
    r = random.Random(seed)
    nodes = [o["metadata"]["name"] for o in objs if o["kind"] == "Node"]
    deploys = [o["metadata"]["name"] for o in objs if o["kind"] == "Deployment"]
    out: list[str] = []
    for _ in range(4):
        n = r.choice(nodes)
        change = r.choice(["label", "taint", "cordon", "uncordon"])
        if change == "label":
            out.append(f"kubectl label node {n} disk={r.choice(['ssd', 'hdd'])} --overwrite")
        elif change == "taint":
            out.append(f"kubectl taint node {n} t{len(out)}=x:PreferNoSchedule")
        else:
            out.append(f"kubectl {change} {n}")
        d = r.choice(deploys)
        out.append(f"kubectl scale deployment.apps/{d} --replicas={r.randint(2, 10)}")
    return out


@pytest.mark.parametrize("seed", range(12))
def test_fast_path_matches_per_node_path_across_node_changes(seed: int) -> None:
    objs = scenario(100 + seed)
    steps = steps_for(seed, objs)
    fast = run(objs, *steps, seed=5)
    slow = run(objs, *steps, seed=5, explain=True)
    got = [(p["metadata"]["name"], node_of(p), message(p)) for p in created(fast)]
    assert got == [(p["metadata"]["name"], node_of(p), message(p)) for p in created(slow)]


def test_kth_of_two_sorted_lists() -> None:
    """The tie break across two tied classes picks the k-th smallest node index of both."""
    from fleetkit.scheduler.framework import kth_of_two

    r = random.Random(7)
    for _ in range(2000):
        both = r.sample(range(60), r.randint(2, 40))
        cut = r.randint(1, len(both) - 1)
        a, b = sorted(both[:cut]), sorted(both[cut:])
        for k in range(len(both)):
            assert kth_of_two(a, b, k) == sorted(both)[k]
            assert kth_of_two(b, a, k) == sorted(both)[k]
