"""The control plane in process (no HTTP): controllers, adoption, scheduling, events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetkit.cluster import ServeOptions, build
from fleetkit.cluster.state import ApiError
from tests.cluster.conftest import FIXTURES


def _pods(state: Any) -> list[dict[str, Any]]:
    return state.objects(state.res("", "Pod"), "default")


@pytest.mark.parametrize("reverse", [False, True], ids=["deployment-first", "pods-first"])
def test_adoption_does_not_depend_on_input_order(tmp_path: Path, reverse: bool) -> None:
    """Issue 13: a dump lists the Deployment first; its pods are adopted, not duplicated."""
    dump = yaml.safe_load((FIXTURES / "dump.yaml").read_text())
    items = dump["items"][::-1] if reverse else dump["items"]
    path = tmp_path / "dump.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    state, cp = build(ServeOptions(nodes=[str(FIXTURES / "nodes.yaml"), str(path)]))
    pods = _pods(state)
    assert sorted(p["metadata"]["name"] for p in pods) == [
        "nginx-7c5ddbdf54-pod1",
        "nginx-7c5ddbdf54-pod2",
        "nginx-7c5ddbdf54-pod3",
    ]
    assert all(p["status"]["phase"] == "Running" for p in pods)
    rs = state.objects(state.res("apps", "ReplicaSet"), "default")
    assert [r["metadata"]["name"] for r in rs] == ["nginx-7c5ddbdf54"]
    dep = state.get(state.res("apps", "Deployment"), "default", "nginx")
    assert dep["status"]["readyReplicas"] == 3


def test_scale_up_leaves_pods_pending_with_failed_scheduling(tmp_path: Path) -> None:
    state, cp = build(
        ServeOptions(nodes=[str(FIXTURES / "nodes.yaml"), str(FIXTURES / "nginx.yaml")])
    )
    deployments = state.res("apps", "Deployment")
    dep = state.get(deployments, "default", "nginx")
    state.update(deployments, {**dep, "spec": {**dep["spec"], "replicas": 6}}, "default")
    cp.settle()
    pods = _pods(state)
    pending = [p for p in pods if p["status"]["phase"] == "Pending"]
    assert len(pods) == 6 and len(pending) == 3
    cond = next(c for c in pending[0]["status"]["conditions"] if c["type"] == "PodScheduled")
    assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
    assert "3 node(s) didn't match pod anti-affinity rules" in cond["message"]
    events = [
        e
        for e in state.objects(state.res("", "Event"), "default")
        if e["reason"] == "FailedScheduling"
    ]
    assert len(events) == 3 and all(e["source"]["component"] == "default-scheduler" for e in events)


def test_node_added_schedules_pending_pod(tmp_path: Path) -> None:
    state, cp = build(
        ServeOptions(nodes=[str(FIXTURES / "nodes.yaml"), str(FIXTURES / "nginx.yaml")])
    )
    deployments = state.res("apps", "Deployment")
    dep = state.get(deployments, "default", "nginx")
    state.update(deployments, {**dep, "spec": {**dep["spec"], "replicas": 4}}, "default")
    cp.settle()
    assert sum(p["status"]["phase"] == "Pending" for p in _pods(state)) == 1
    node = yaml.safe_load_all((FIXTURES / "nodes.yaml").read_text())
    worker = next(n for n in node if n and n["metadata"]["name"] == "demo-worker3")
    worker["metadata"]["name"] = worker["metadata"]["labels"]["kubernetes.io/hostname"] = (
        "demo-worker4"
    )
    state.create(state.res("", "Node"), worker)
    cp.settle()
    pods = _pods(state)
    assert all(p["status"]["phase"] == "Running" for p in pods)
    assert "demo-worker4" in {p["spec"]["nodeName"] for p in pods}


def test_delete_cascades_to_replicasets_and_pods() -> None:
    state, cp = build(
        ServeOptions(nodes=[str(FIXTURES / "nodes.yaml"), str(FIXTURES / "nginx.yaml")])
    )
    state.delete(state.res("apps", "Deployment"), "default", "nginx")
    cp.settle()
    assert _pods(state) == []
    assert state.objects(state.res("apps", "ReplicaSet"), "default") == []


def test_strict_decoding_messages() -> None:
    state, _cp = build(ServeOptions())
    res = state.res("", "Pod")
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": 1}},
        "spec": {"containers": [{"name": "c", "image": "x", "imagePul": "Always"}]},
    }
    with pytest.raises(ApiError) as exc:
        state.decode(res, body)
    assert exc.value.code == 400
    assert exc.value.message == (
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal number into Go '
        "struct field ObjectMeta.metadata.labels of type string"
    )
    body["metadata"]["labels"] = {"a": "1"}
    with pytest.raises(ApiError) as exc:
        state.decode(res, body, "Strict")
    assert exc.value.message.endswith(
        'strict decoding error: unknown field "spec.containers[0].imagePul"'
    )
    _obj, warnings = state.decode(res, body, "Warn")
    assert warnings == ['unknown field "spec.containers[0].imagePul"']
    _obj, warnings = state.decode(res, body, "Ignore")
    assert warnings == []


def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    from fleetkit.cluster.serve import save_state

    state_file = tmp_path / "state.json"
    state, cp = build(
        ServeOptions(
            nodes=[str(FIXTURES / "nodes.yaml"), str(FIXTURES / "nginx.yaml")],
            state_file=str(state_file),
        )
    )
    save_state(state, str(state_file))
    before = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in _pods(state)}
    again, _cp = build(ServeOptions(state_file=str(state_file)))
    after = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in _pods(again)}
    assert before == after and len(after) == 3
    assert not list(tmp_path.glob(".fleetkit-state-*"))  # no temporary file left behind


def test_statefulset_ordinals_and_job_pods(tmp_path: Path) -> None:
    manifests = tmp_path / "w.yaml"
    tmpl = {
        "metadata": {"labels": {"app": "db"}},
        "spec": {"containers": [{"name": "db", "image": "postgres:17"}]},
    }
    manifests.write_text(
        yaml.safe_dump_all(
            [
                {
                    "apiVersion": "apps/v1",
                    "kind": "StatefulSet",
                    "metadata": {"name": "db"},
                    "spec": {
                        "replicas": 3,
                        "serviceName": "db",
                        "selector": {"matchLabels": {"app": "db"}},
                        "template": tmpl,
                    },
                },
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {"name": "batch"},
                    "spec": {
                        "parallelism": 2,
                        "completions": 4,
                        "template": {
                            "spec": {"containers": [{"name": "b", "image": "busybox:1.36"}]}
                        },
                    },
                },
            ]
        )
    )
    state, cp = build(ServeOptions(nodes=[str(FIXTURES / "nodes.yaml"), str(manifests)]))
    pods = {p["metadata"]["name"]: p for p in _pods(state)}
    assert {"db-0", "db-1", "db-2"} <= set(pods)
    assert pods["db-1"]["spec"]["hostname"] == "db-1" and pods["db-1"]["spec"]["subdomain"] == "db"
    assert pods["db-2"]["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "2"
    sts = state.get(state.res("apps", "StatefulSet"), "default", "db")
    assert sts["status"]["readyReplicas"] == 3
    job_pods = [p for p in pods.values() if p["metadata"]["labels"].get("job-name") == "batch"]
    assert len(job_pods) == 2 and all(p["status"]["phase"] == "Running" for p in job_pods)
    job = state.get(state.res("batch", "Job"), "default", "batch")
    assert job["status"]["active"] == 2
    # a finished pod counts as a completion; the controller starts the next one
    done = dict(job_pods[0])
    done["status"] = {**done["status"], "phase": "Succeeded"}
    state.update(state.res("", "Pod"), done, "default", subresource="status")
    cp.settle()
    job = state.get(state.res("batch", "Job"), "default", "batch")
    assert job["status"]["succeeded"] == 1 and job["status"]["active"] == 2


def test_system_namespaces_cannot_be_deleted() -> None:
    state, _cp = build(ServeOptions())
    with pytest.raises(ApiError) as exc:
        state.delete(state.res("", "Namespace"), "", "kube-system")
    assert exc.value.code == 403
    assert (
        exc.value.message
        == 'namespaces "kube-system" is forbidden: this namespace may not be deleted'
    )


def test_new_uid_is_a_random_version_4_uuid() -> None:
    """metadata.uid: RFC 4122 version 4, lower-case canonical text, never repeated, and a
    forked child does not replay its parent's random bytes."""
    import os
    import uuid

    from fleetkit.cluster.store import new_uid

    uids = [new_uid() for _ in range(5000)]  # past the 4 KiB read ahead several times
    assert len(set(uids)) == len(uids)
    for u in uids[:600]:
        parsed = uuid.UUID(u)
        assert str(parsed) == u and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    variants = {u[19] for u in uids}
    assert variants == set("89ab")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, new_uid().encode())
        os._exit(0)
    os.close(w)
    child = os.read(r, 64).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert child != new_uid()


def test_strict_decoding_field_table_matches_the_installed_client() -> None:
    """_fields.py (what strict decoding reads instead of importing kubernetes.client) is what
    the installed client's models say: regenerate it when this fails (see schema.py)."""
    from fleetkit.cluster.api._fields import FIELDS
    from fleetkit.cluster.api.schema import _decode_model, field_table, model

    assert FIELDS == field_table()
    assert len(FIELDS) > 100 and FIELDS["V1PodSpec"]["containers"] == "list[V1Container]"
    for name in ("V1Pod", "V1Node", "V1Deployment", "V1ObjectMeta", "V1Toleration"):
        full, quick = model(name), _decode_model(name)
        assert full is not None and quick is not None
        assert quick.go_name == full.go_name
        assert {k: f.type for k, f in quick.fields.items()} == {
            k: f.type for k, f in full.fields.items()
        }
