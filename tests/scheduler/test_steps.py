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
    with pytest.raises(UsageError, match="unknown step"):
        parse_step("reboot a")
    with pytest.raises(UsageError, match="--replicas"):
        parse_step("scale deploy/web")
