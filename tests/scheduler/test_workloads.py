from __future__ import annotations

from typing import Any

from fleetkit.cluster.offline import Outcome
from tests.scheduler.builders import created, node, node_of
from tests.scheduler.builders import run as run_objects


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


def run(objs: list[dict[str, Any]], seed: int = 1) -> Outcome:
    return run_objects(objs, seed=seed)


def owner(p: dict[str, Any]) -> str:
    return str(p["metadata"]["ownerReferences"][0]["name"])


def names(sim: Outcome) -> list[tuple[str, str]]:
    return [(p["metadata"]["name"], node_of(p)) for p in created(sim)]


def test_deployment_replicaset_pods() -> None:
    sim = run([node("a"), node("b"), workload("Deployment", "web", 3)])
    pods = created(sim)
    assert len(pods) == 3
    rs = owner(pods[0])
    assert rs.startswith("web-") and 8 <= len(rs) - len("web-") <= 10  # the pod-template-hash
    for p in pods:
        ref = p["metadata"]["ownerReferences"][0]
        assert ref["kind"] == "ReplicaSet" and ref["name"] == rs and ref["controller"] is True
        name = p["metadata"]["name"]
        assert name.startswith(rs + "-") and len(name) == len(rs) + 6
        assert p["metadata"]["labels"]["pod-template-hash"] == rs.split("-")[-1]
        assert node_of(p) in ("a", "b")
    # same seed, same names and placements
    again = run([node("a"), node("b"), workload("Deployment", "web", 3)])
    assert names(again) == names(sim)


def test_statefulset_ordered_ready_stops_at_first_pending() -> None:
    objs = [node("a", cpu="250m"), workload("StatefulSet", "db", 3)]
    sim = run(objs)
    # 100m each on a 250m node: db-0 and db-1 run, db-2 is created (its predecessors run) and stays Pending
    assert names(sim) == [("db-0", "a"), ("db-1", "a"), ("db-2", "")]
    # 150m holds one: db-1 stays Pending, so OrderedReady never creates db-2
    objs = [node("a", cpu="150m"), workload("StatefulSet", "db", 3)]
    assert [n for n, _node in names(run(objs))] == ["db-0", "db-1"]
    par = [node("a", cpu="150m"), workload("StatefulSet", "db", 3, podManagementPolicy="Parallel")]
    assert [(n, bool(where)) for n, where in names(run(par))] == [
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
    placed = dict(names(sim))
    assert all(placed[f"db-{i}"] for i in range(4))
    web = [where for n, where in placed.items() if n.startswith("web-")]
    assert len(web) == 2 and not any(web)


def test_daemonset_one_pinned_pod_per_eligible_node() -> None:
    taint = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    objs = [
        node("cp", taints=taint),
        node("w1"),
        node("w2", unschedulable=True),
        workload("DaemonSet", "agent"),
    ]
    sim = run(objs)
    assert sorted(node_of(p) for p in created(sim)) == [
        "w1",
        "w2",
    ]  # cordoned is fine, tainted is not
    for p in created(sim):
        terms = p["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"]
        assert terms == [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_of(p)]}]}
        ]
        keys = {t["key"] for t in p["spec"]["tolerations"]}
        assert "node.kubernetes.io/unschedulable" in keys


def test_job_parallelism() -> None:
    sim = run([node("a"), workload("Job", "batch", parallelism=2, completions=5)])
    assert len(created(sim)) == 2
    assert all(p["metadata"]["labels"]["job-name"] == "batch" for p in created(sim))


def test_job_suspended_or_defaulted_parallelism() -> None:
    # a suspended Job runs no pods; parallelism defaults to 1 (also when given as null)
    assert created(run([node("a"), workload("Job", "b", parallelism=3, suspend=True)])) == []
    assert len(created(run([node("a"), workload("Job", "b", parallelism=None)]))) == 1
    assert len(created(run([node("a"), workload("Job", "b", completions=4)]))) == 1


def test_defaulting_priority_tolerations() -> None:
    pcs = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": "hi"},
        "value": 1000,
        "globalDefault": True,
    }
    sim = run([node("a"), pcs, workload("Deployment", "web", 1)])
    spec = created(sim)[0]["spec"]
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
            "uid": "5e0c7a8e-0000-4000-8000-000000000002",
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "web",
                    "uid": "5e0c7a8e-0000-4000-8000-000000000001",
                    "controller": True,
                }
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
                            "uid": "5e0c7a8e-0000-4000-8000-000000000002",
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
    (new,) = created(sim)
    assert owner(new) == "web-7d4b9c8f5d"
    assert [rs["metadata"]["name"] for rs in sim.state.store.iter("replicasets.apps")] == [
        "web-7d4b9c8f5d"
    ]
