"""`fleetkit schedule` end to end: the seed's story, outputs, and bad input (exit codes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "scheduler" / "seed"
SEED_MESSAGE = (
    "0/4 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/master: }, "
    "3 node(s) didn't match pod anti-affinity rules. preemption: 0/4 nodes are available: "
    "1 Preemption is not helpful for scheduling, 3 No preemption victims found for incoming pod."
)


def fk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetkit", "schedule", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_seed_story_blog_manifest_rejected_with_hint() -> None:
    p = fk("-f", str(SEED / "cluster.yaml"), "-f", str(SEED / "blog-deploy.yaml"))
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr.startswith('error: The Deployment "nginx" is invalid: \n')
    assert (
        "requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: Required value: can not be empty"
        in p.stderr
    )
    assert "hint: " in p.stderr and "kubernetes.io/hostname" in p.stderr
    assert "Traceback" not in p.stderr


def test_seed_story_three_workers_then_scale_to_six() -> None:
    p = fk(
        "-f",
        str(SEED / "cluster.yaml"),
        "-f",
        str(SEED / "deploy.yaml"),
        "--then",
        "scale deploy/nginx --replicas=6",
        "-o",
        "json",
    )
    assert p.returncode == 0, p.stderr
    items = json.loads(p.stdout)["items"]
    assert len(items) == 6
    running = [i for i in items if i["status"]["phase"] == "Running"]
    pending = [i for i in items if i["status"]["phase"] == "Pending"]
    assert sorted(i["spec"]["nodeName"] for i in running) == [
        "demo-worker",
        "demo-worker2",
        "demo-worker3",
    ]
    assert len(pending) == 3
    for i in pending:
        cond = i["status"]["conditions"][0]
        assert cond == {
            **cond,
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": SEED_MESSAGE,
        }
    for i in items:
        ref = i["metadata"]["ownerReferences"][0]
        assert (
            ref["kind"] == "ReplicaSet" and ref["name"].startswith("nginx-") and ref["controller"]
        )


def test_default_table_shows_failed_scheduling_and_summary() -> None:
    p = fk(
        "-f",
        str(SEED / "cluster.yaml"),
        "-f",
        str(SEED / "deploy.yaml"),
        "--then",
        "scale deploy/nginx --replicas=4",
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "READY", "STATUS"]
    events = [ln for ln in lines if ln.startswith("Warning")]
    assert len(events) == 1 and events[0].endswith(SEED_MESSAGE)
    assert any(ln.startswith("demo-worker ") and "100m (2%)" in ln for ln in lines)


def test_explain_json_and_table() -> None:
    p = fk(
        "-f", str(SEED / "cluster.yaml"), "-f", str(SEED / "deploy.yaml"), "--explain", "-o", "json"
    )
    assert p.returncode == 0, p.stderr
    pods = json.loads(p.stdout)["pods"]
    assert len(pods) == 3
    first = pods[0]
    assert set(first) == {"namespace", "name", "node", "message", "error", "filter", "scores"}
    assert first["filter"]["demo-control-plane"]["code"] == "UnschedulableAndUnresolvable"
    assert first["filter"]["demo-control-plane"]["plugin"] == "TaintToleration"
    assert set(first["scores"]) == {"demo-worker", "demo-worker2", "demo-worker3"}
    # the last pod has one feasible node: kube skips scoring then, explain still scores it
    assert len(pods[2]["scores"]) == 1
    s = next(iter(pods[2]["scores"].values()))
    assert s["total"] == sum(
        v * w for v, w in zip(s["plugins"].values(), [3, 2, 1, 2, 2, 1, 1], strict=True)
    )
    t = fk(
        "-f",
        str(SEED / "cluster.yaml"),
        "-f",
        str(SEED / "deploy.yaml"),
        "--explain",
        first["name"],
    )
    assert t.returncode == 0 and "TaintToleration" in t.stdout and "TOTAL" in t.stdout


def test_yaml_output_is_a_list() -> None:
    p = fk("-f", str(SEED / "cluster.yaml"), "-f", str(SEED / "deploy.yaml"), "-o", "yaml")
    assert yaml.safe_load(p.stdout)["kind"] == "List"


def test_invalid_yaml_reports_file_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: [x\n")
    p = fk("-f", str(bad))
    assert p.returncode == 2
    assert p.stderr.startswith(f"error: {bad}:") and "invalid YAML" in p.stderr
    assert "Traceback" not in p.stderr


def test_unknown_kind_skipped_with_warning(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(
        yaml.safe_dump_all([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}])
    )
    p = fk("-f", str(SEED / "cluster.yaml"), "-f", str(f), "-o", "json")
    assert p.returncode == 0
    assert "skipping ConfigMap" in p.stderr and f"{f}:1" in p.stderr


def test_invalid_object_and_unknown_node_and_plugin(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}},
                        }
                    ]
                },
            }
        )
    )
    p = fk("-f", str(f))
    assert (
        p.returncode == 2
        and 'The Pod "p" is invalid: spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1'
        in p.stderr
    )
    p = fk("-f", str(SEED / "cluster.yaml"), "--then", "drain ghost")
    assert p.returncode == 2 and 'nodes "ghost" not found' in p.stderr and "hint:" in p.stderr
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kubescheduler.config.k8s.io/v1",
                "kind": "KubeSchedulerConfiguration",
                "profiles": [{"plugins": {"score": {"enabled": [{"name": "Nope"}]}}}],
            }
        )
    )
    p = fk("-f", str(SEED / "cluster.yaml"), "--config", str(cfg))
    assert p.returncode == 2 and '"Nope" does not exist' in p.stderr


def test_usage_errors() -> None:
    assert fk().returncode == 2
    assert fk("-f", "/nonexistent.yaml").returncode == 2
    assert fk("-f", str(SEED / "cluster.yaml"), "--then", "reboot all").returncode == 2


def test_malformed_objects_are_usage_errors(tmp_path: Path) -> None:
    cases = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": []},
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "resources": []}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "n"},
            "status": {"allocatable": {"cpu": "lots"}},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": "nope"},
        },
    ]
    for i, obj in enumerate(cases):
        f = tmp_path / f"bad{i}.yaml"
        f.write_text(yaml.safe_dump(obj))
        p = fk("-f", str(f))
        assert p.returncode == 2, (obj, p.stderr)
        assert p.stderr.startswith("error: ") and "Traceback" not in p.stderr, p.stderr
