from __future__ import annotations

from typing import Any

from fleetkit.scheduler import default_config
from fleetkit.scheduler.simulator import Simulation
from tests.scheduler.builders import node


def template(labels: dict[str, str], cpu: str = "100m", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": labels},
        "spec": {
            "containers": [
                {"name": "c", "image": "nginx:1.27", "resources": {"requests": {"cpu": cpu}}}
            ],
            **spec,
        },
    }


def workload(kind: str, name: str, replicas: int | None = None, **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    body: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "template": template(labels),
        **spec,
    }
    if replicas is not None:
        body["replicas"] = replicas
    api = "batch/v1" if kind == "Job" else "apps/v1"
    if kind == "Job":
        body.pop("selector")
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name}, "spec": body}


def run(objs: list[dict[str, Any]], seed: int = 1) -> Simulation:
    sim = Simulation(default_config(), seed=seed)
    sim.load_objects(objs)
    sim.run()
    return sim


def test_deployment_replicaset_pods() -> None:
    sim = run([node("a"), node("b"), workload("Deployment", "web", 3)])
    assert len(sim.created) == 3
    rs = sim.created[0].owner_name
    assert rs.startswith("web-") and len(rs) == len("web-") + 10
    for p in sim.created:
        ref = p.raw["metadata"]["ownerReferences"][0]
        assert ref["kind"] == "ReplicaSet" and ref["name"] == rs and ref["controller"] is True
        assert p.name.startswith(rs + "-") and len(p.name) == len(rs) + 6
        assert p.labels["pod-template-hash"] == rs.split("-")[-1]
        assert p.node_name in ("a", "b")
    # same seed, same names and placements
    again = run([node("a"), node("b"), workload("Deployment", "web", 3)])
    assert [(p.name, p.node_name) for p in again.created] == [
        (p.name, p.node_name) for p in sim.created
    ]


def test_statefulset_ordered_ready_stops_at_first_pending() -> None:
    objs = [node("a", cpu="250m"), workload("StatefulSet", "db", 3)]
    sim = run(objs)
    # 100m each on a 250m node: db-0 and db-1 run, db-2 is created (its predecessors run) and stays Pending
    names = [(p.name, p.node_name) for p in sim.created]
    assert names == [("db-0", "a"), ("db-1", "a"), ("db-2", "")]
    # 150m holds one: db-1 stays Pending, so OrderedReady never creates db-2
    objs = [node("a", cpu="150m"), workload("StatefulSet", "db", 3)]
    assert [p.name for p in run(objs).created] == ["db-0", "db-1"]
    par = [node("a", cpu="150m"), workload("StatefulSet", "db", 3, podManagementPolicy="Parallel")]
    assert [(p.name, bool(p.node_name)) for p in run(par).created] == [
        ("db-0", True),
        ("db-1", False),
        ("db-2", False),
    ]


def test_statefulset_next_ordinal_is_scheduled_before_later_workloads() -> None:
    # Pods are scheduled one at a time in creation order; OrderedReady creates db-1 the moment
    # db-0 runs, so db-1 is the next pod the scheduler sees, ahead of a workload defined later.
    # Two 200m nodes, 100m pods: db-0..db-3 fill both nodes, the Deployment gets nothing.
    objs = [
        node("a", cpu="200m"),
        node("b", cpu="200m"),
        workload("StatefulSet", "db", 4),
        workload("Deployment", "web", 2),
    ]
    sim = run(objs)
    placed = {p.name: p.node_name for p in sim.created}
    assert all(placed[f"db-{i}"] for i in range(4))
    web = [p for p in sim.created if p.name.startswith("web-")]
    assert len(web) == 2 and not any(p.node_name for p in web)


def test_daemonset_one_pinned_pod_per_eligible_node() -> None:
    taint = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    objs = [
        node("cp", taints=taint),
        node("w1"),
        node("w2", unschedulable=True),
        workload("DaemonSet", "agent"),
    ]
    sim = run(objs)
    assert sorted(p.node_name for p in sim.created) == [
        "w1",
        "w2",
    ]  # cordoned is fine, tainted is not
    for p in sim.created:
        terms = p.raw["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"]
        assert terms == [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [p.node_name]}]}
        ]
        keys = {t["key"] for t in p.raw["spec"]["tolerations"]}
        assert "node.kubernetes.io/unschedulable" in keys


def test_job_parallelism() -> None:
    sim = run([node("a"), workload("Job", "batch", parallelism=2, completions=5)])
    assert len(sim.created) == 2
    assert all(p.labels["job-name"] == "batch" for p in sim.created)


def test_job_suspended_or_defaulted_parallelism() -> None:
    # a suspended Job runs no pods; parallelism defaults to 1 (also when given as null)
    assert run([node("a"), workload("Job", "b", parallelism=3, suspend=True)]).created == []
    assert len(run([node("a"), workload("Job", "b", parallelism=None)]).created) == 1
    assert len(run([node("a"), workload("Job", "b", completions=4)]).created) == 1


def test_defaulting_priority_tolerations() -> None:
    pcs = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": "hi"},
        "value": 1000,
        "globalDefault": True,
    }
    sim = run([node("a"), pcs, workload("Deployment", "web", 1)])
    spec = sim.created[0].raw["spec"]
    assert spec["priority"] == 1000 and spec["priorityClassName"] == "hi"
    secs = {t["key"]: t.get("tolerationSeconds") for t in spec["tolerations"]}
    assert secs == {"node.kubernetes.io/not-ready": 300, "node.kubernetes.io/unreachable": 300}


def test_dump_with_existing_replicaset_pods_is_adopted() -> None:
    # a `kubectl get deploy,rs,pods -o yaml` dump: the Deployment's ReplicaSet and 2 of its pods
    dep = workload("Deployment", "web", 3)
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web-7d4b9c8f5d",
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "controller": True}
            ],
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d4b9c8f5d"}},
            "template": template({"app": "web", "pod-template-hash": "7d4b9c8f5d"}),
        },
    }
    pods = []
    for i, n in enumerate(("a", "b")):
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"web-7d4b9c8f5d-x{i}",
                    "labels": {"app": "web", "pod-template-hash": "7d4b9c8f5d"},
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "ReplicaSet",
                            "name": "web-7d4b9c8f5d",
                            "controller": True,
                        }
                    ],
                },
                "spec": {"nodeName": n, "containers": [{"name": "c", "image": "nginx:1.27"}]},
                "status": {"phase": "Running"},
            }
        )
    sim = run([node("a"), node("b"), node("c"), *pods, rs, dep])
    # only the missing replica is created, owned by the existing ReplicaSet
    assert len(sim.created) == 1
    assert sim.created[0].owner_name == "web-7d4b9c8f5d"
    assert ("ReplicaSet", "default", "web-7d4b9c8f5d") in sim.controllers
