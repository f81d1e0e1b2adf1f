from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetkit.errors import UsageError
from fleetkit.scheduler import default_config, parse_step
from fleetkit.scheduler.simulator import Simulation
from tests.scheduler.builders import node, pod
from tests.scheduler.test_workloads import workload

ZONE = "topology.kubernetes.io/zone"


def run(objs: list[dict[str, Any]], *steps: str) -> Simulation:
    sim = Simulation(default_config(), seed=1)
    sim.load_objects(objs)
    sim.run()
    for s in steps:
        sim.apply_step(parse_step(s))
    return sim


def live(sim: Simulation) -> list[Any]:
    return [p for p in sim.all_pods() if not p.terminating]


def test_scale_up_and_down() -> None:
    sim = run(
        [node("a", cpu="350m"), workload("Deployment", "web", 2)], "scale deploy/web --replicas=5"
    )
    assert (
        sum(1 for p in live(sim) if p.node_name) == 3
        and sum(1 for p in live(sim) if not p.node_name) == 2
    )
    sim.apply_step(parse_step("scale deploy/web --replicas=3"))
    # scale-down removes the Pending pods first
    assert all(p.node_name for p in live(sim)) and len(live(sim)) == 3


def test_cordon_uncordon() -> None:
    sim = run([node("a"), node("b")], "cordon a")
    assert sim.cluster.by_name["a"].node.unschedulable
    assert any(
        t.key == "node.kubernetes.io/unschedulable" for t in sim.cluster.by_name["a"].node.taints
    )
    sim.apply_step(parse_step("uncordon a"))
    assert (
        not sim.cluster.by_name["a"].node.unschedulable and not sim.cluster.by_name["a"].node.taints
    )


def test_drain_evicts_and_controller_recreates() -> None:
    sim = run([node("a"), node("b"), workload("Deployment", "web", 2), pod("bare", "a")], "drain a")
    evicted = [p for p in sim.all_pods() if p.terminating]
    assert evicted and all(
        p.raw["status"]["conditions"][-1]["reason"] == "EvictionByEvictionAPI" for p in evicted
    )
    assert all(p.node_name == "b" for p in live(sim) if p.owner_kind)
    assert len([p for p in live(sim) if p.owner_kind]) == 2
    assert any("not managed by a controller" in w for w in sim.warnings)


def test_lose_a_zone() -> None:
    objs = [
        node("a1", labels={ZONE: "a"}),
        node("b1", labels={ZONE: "b"}),
        node("b2", labels={ZONE: "b"}),
        workload("Deployment", "web", 3),
    ]
    sim = run(objs, f"delete nodes -l {ZONE}=b")
    assert [i.name for i in sim.cluster.infos] == ["a1"]
    assert all(p.node_name == "a1" for p in live(sim))
    assert len(live(sim)) == 3


def test_apply_adds_nodes_and_daemonset_follows(tmp_path: Path) -> None:
    f = tmp_path / "more.yaml"
    f.write_text(yaml.safe_dump(node("new")))
    sim = run([node("a"), workload("DaemonSet", "agent")], f"apply -f {f}")
    assert sorted(p.node_name for p in live(sim)) == ["a", "new"]


def test_unknown_node_and_bad_steps() -> None:
    with pytest.raises(UsageError, match='nodes "ghost" not found'):
        run([node("a")], "cordon ghost")
    with pytest.raises(UsageError, match='deployments.apps "nope" not found'):
        run([node("a")], "scale deploy/nope --replicas=2")
    with pytest.raises(UsageError, match="unknown command"):
        parse_step("reboot a")
    with pytest.raises(UsageError, match="--replicas"):
        parse_step("scale deploy/web")


def test_scaled_down_and_lost_pods_leave_the_output_evicted_ones_stay() -> None:
    sim = run(
        [node("a"), node("b"), workload("Deployment", "web", 4)], "scale deploy/web --replicas=2"
    )
    assert len(sim.all_pods()) == 2 and not any(p.terminating for p in sim.all_pods())
    sim.apply_step(parse_step("delete node a"))
    assert all(p.node_name == "b" for p in sim.all_pods()) and len(sim.all_pods()) == 2
    sim.apply_step(parse_step("drain b"))
    # drained pods stay (terminating, DisruptionTarget) and their replacements are Pending
    assert sum(1 for p in sim.all_pods() if p.terminating) == 2
    pending = [p for p in sim.all_pods() if not p.terminating]
    assert len(pending) == 2 and all(not p.node_name for p in pending)
    assert all("were unschedulable" in (p.message or "") for p in pending)


def _versioned(image: str, replicas: int, strategy: dict[str, Any] | None = None) -> dict[str, Any]:
    d = workload("Deployment", "web", replicas)
    d["spec"]["template"]["spec"]["containers"][0]["image"] = image
    d["spec"]["template"]["spec"]["affinity"] = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"app": "web"}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    if strategy:
        d["spec"]["strategy"] = strategy
    return d


def test_rolling_update_needs_room_to_surge(tmp_path: Path) -> None:
    # 3 workers, 3 mutually anti-affine replicas: a surge pod has nowhere to go, and
    # maxUnavailable 25% of 3 rounds down to 0, so the rollout is stuck with the old pods serving
    v2 = tmp_path / "v2.yaml"
    v2.write_text(yaml.safe_dump(_versioned("nginx:1.28", 3)))
    sim = run([node("a"), node("b"), node("c"), _versioned("nginx:1.27", 3)], f"apply -f {v2}")
    images = sorted(
        (p.raw["spec"]["containers"][0]["image"], bool(p.node_name)) for p in sim.all_pods()
    )
    assert images == [("nginx:1.27", True)] * 3 + [("nginx:1.28", False)]
    # with maxUnavailable 1 the controller takes an old pod down first and the rollout completes
    v3 = tmp_path / "v3.yaml"
    v3.write_text(
        yaml.safe_dump(
            _versioned(
                "nginx:1.28",
                3,
                {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            )
        )
    )
    sim = run([node("a"), node("b"), node("c"), _versioned("nginx:1.27", 3)], f"apply -f {v3}")
    live_pods = [p for p in sim.all_pods() if not p.terminating]
    assert sorted(p.raw["spec"]["containers"][0]["image"] for p in live_pods) == ["nginx:1.28"] * 3
    assert sorted(p.node_name for p in live_pods) == ["a", "b", "c"]


def test_step_retries_pending_before_new_pods(tmp_path: Path) -> None:
    # 'first' is Pending (no room); the step adds a node with room for one pod and a new pod:
    # the older Pending pod is retried first and takes the room
    objs = [node("a", cpu="1"), pod("hog", "a", cpu="1"), pod("first", cpu="500m")]
    f = tmp_path / "more.yaml"
    f.write_text(yaml.safe_dump_all([node("b", cpu="500m"), pod("second", cpu="500m")]))
    sim = run(objs, f"apply -f {f}")
    placed = {p.name: p.node_name for p in sim.created}
    assert placed == {"first": "b", "second": ""}
    sim.apply_step(parse_step("delete nodes -l 'kubernetes.io/hostname in (a,b)'"))
    assert all(p.message == "no nodes available to schedule pods" for p in sim.created)
