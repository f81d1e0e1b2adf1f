"""The ``--then`` steps (kubectl commands) on the cluster's machinery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetkit.cluster.offline import Outcome
from fleetkit.errors import UsageError
from fleetkit.scheduler import parse_step
from tests.scheduler.builders import created, message, node, node_of, pod
from tests.scheduler.builders import run as run_objects
from tests.scheduler.test_workloads import workload

ZONE = "topology.kubernetes.io/zone"


def run(objs: list[dict[str, Any]], *steps: str) -> Outcome:
    return run_objects(objs, *steps)


def live(sim: Outcome) -> list[dict[str, Any]]:
    return sim.pods()


def image(p: dict[str, Any]) -> str:
    return str(p["spec"]["containers"][0]["image"])


def test_scale_up_and_down() -> None:
    objs = [node("a", cpu="350m"), workload("Deployment", "web", 2)]
    sim = run(objs, "kubectl scale deploy/web --replicas=5")
    assert sum(1 for p in live(sim) if node_of(p)) == 3
    assert sum(1 for p in live(sim) if not node_of(p)) == 2
    sim = run(objs, "kubectl scale deploy/web --replicas=5", "scale deploy/web --replicas=3")
    # scale-down removes the Pending pods first
    assert all(node_of(p) for p in live(sim)) and len(live(sim)) == 3


def test_cordon_uncordon() -> None:
    sim = run([node("a"), node("b")], "kubectl cordon a")
    assert sim.cp.binder.cache.by_name["a"].node.unschedulable
    assert sim.state.store.get("nodes", "", "a")["spec"]["unschedulable"] is True
    sim = run([node("a"), node("b")], "kubectl cordon a", "kubectl uncordon a")
    assert not sim.cp.binder.cache.by_name["a"].node.unschedulable
    assert "unschedulable" not in sim.state.store.get("nodes", "", "a")["spec"]


def test_drain_evicts_and_controller_recreates() -> None:
    objs = [node("a"), node("b"), workload("Deployment", "web", 2), pod("bare", "a")]
    with pytest.raises(UsageError, match="cannot delete Pods that declare no controller"):
        run(objs, "kubectl drain a")
    sim = run(objs, "kubectl drain a --force")
    names = [p["metadata"]["name"] for p in live(sim)]
    assert "bare" not in names
    assert len(names) == 2 and all(node_of(p) == "b" for p in live(sim))


def test_lose_a_zone() -> None:
    objs = [
        node("a1", labels={ZONE: "a"}),
        node("b1", labels={ZONE: "b"}),
        node("b2", labels={ZONE: "b"}),
        workload("Deployment", "web", 3),
    ]
    sim = run(objs, f"kubectl delete nodes -l {ZONE}=b")
    assert [i.name for i in sim.cp.binder.cache.infos] == ["a1"]
    assert all(node_of(p) == "a1" for p in live(sim))
    assert len(live(sim)) == 3


def test_apply_adds_nodes_and_daemonset_follows(tmp_path: Path) -> None:
    f = tmp_path / "more.yaml"
    f.write_text(yaml.safe_dump(node("new")))
    sim = run([node("a"), workload("DaemonSet", "agent")], f"kubectl apply -f {f}")
    assert sorted(node_of(p) for p in live(sim)) == ["a", "new"]


def test_unknown_node_and_bad_steps() -> None:
    with pytest.raises(UsageError, match='nodes "ghost" not found'):
        run([node("a")], "kubectl cordon ghost")
    with pytest.raises(UsageError, match='deployments.apps "nope" not found'):
        run([node("a")], "kubectl scale deploy/nope --replicas=2")
    with pytest.raises(UsageError, match="unknown command"):
        parse_step("reboot a")
    with pytest.raises(UsageError, match="--replicas"):
        parse_step("scale deploy/web")


def test_scaled_down_lost_and_drained_pods_leave_the_output() -> None:
    objs = [node("a"), node("b"), workload("Deployment", "web", 4)]
    sim = run(objs, "kubectl scale deploy/web --replicas=2")
    assert len(sim.pods()) == 2
    sim = run(objs, "kubectl scale deploy/web --replicas=2", "kubectl delete node a")
    assert all(node_of(p) == "b" for p in sim.pods()) and len(sim.pods()) == 2
    sim = run(
        objs, "kubectl scale deploy/web --replicas=2", "kubectl delete node a", "kubectl drain b"
    )
    # drained pods are gone (evicted) and their replacements are Pending
    pending = sim.pods()
    assert len(pending) == 2 and all(not node_of(p) for p in pending)
    assert all("were unschedulable" in (message(p) or "") for p in pending)


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
    nodes = [node("a"), node("b"), node("c")]
    sim = run([*nodes, _versioned("nginx:1.27", 3)], f"kubectl apply -f {v2}")
    images = sorted((image(p), bool(node_of(p))) for p in sim.pods())
    assert images == [("nginx:1.27", True)] * 3 + [("nginx:1.28", False)]
    # with maxUnavailable 1 the controller takes an old pod down first and the rollout completes
    v3 = tmp_path / "v3.yaml"
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    v3.write_text(yaml.safe_dump(_versioned("nginx:1.28", 3, strategy)))
    sim = run([*nodes, _versioned("nginx:1.27", 3)], f"kubectl apply -f {v3}")
    assert sorted(image(p) for p in sim.pods()) == ["nginx:1.28"] * 3
    assert sorted(node_of(p) for p in sim.pods()) == ["a", "b", "c"]


def test_step_retries_pending_before_new_pods(tmp_path: Path) -> None:
    # 'first' is Pending (no room); the step adds a node with room for one pod and a new pod:
    # the older Pending pod is retried first and takes the room
    objs = [node("a", cpu="1"), pod("hog", "a", cpu="1"), pod("first", cpu="500m")]
    f = tmp_path / "more.yaml"
    f.write_text(yaml.safe_dump_all([node("b", cpu="500m"), pod("second", cpu="500m")]))
    sim = run(objs, f"kubectl apply -f {f}")
    placed = {p["metadata"]["name"]: node_of(p) for p in created(sim)}
    assert placed == {"first": "b", "second": ""}
    sim = run(
        objs, f"kubectl apply -f {f}", "kubectl delete nodes -l 'kubernetes.io/hostname in (a,b)'"
    )
    assert all(message(p) == "no nodes available to schedule pods" for p in created(sim))
