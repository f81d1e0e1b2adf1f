"""``fleetkit schedule`` as a thin client of the cluster's machinery (issue 13): strict decoding
with the API server's messages, order-independent adoption, summary and workload lines, units,
``--explain`` naming blocking pods, kubectl's step grammar, Nodes without allocatable."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetkit.cli import main
from fleetkit.cluster.offline import simulate
from fleetkit.errors import UsageError
from fleetkit.scheduler import parse_step
from tests.cluster.conftest import FIXTURES

NODES = str(FIXTURES / "nodes.yaml")
NGINX = str(FIXTURES / "nginx.yaml")


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["schedule", *args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _nginx(tmp_path: Path, edit: dict[str, Any] | None = None, text: str = "") -> str:
    obj = yaml.safe_load(Path(NGINX).read_text())
    for path, value in (edit or {}).items():
        cur = obj
        keys = path.split(".")
        for k in keys[:-1]:
            cur = cur[k]
        cur[keys[-1]] = value
    f = tmp_path / "deploy.yaml"
    f.write_text(text or yaml.safe_dump(obj))
    return str(f)


def test_typo_is_refused_with_strict_decoding_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    anti = yaml.safe_load(Path(NGINX).read_text())["spec"]["template"]["spec"]["affinity"]
    terms = anti["podAntiAffinity"].pop("requiredDuringSchedulingIgnoredDuringExecution")
    anti["podAntiAffinity"]["requiredDuringScheduling"] = terms
    f = _nginx(tmp_path, {"spec.template.spec.affinity": anti})
    rc, out, err = _run(capsys, "-f", NODES, "-f", f)
    assert rc == 2 and out == ""
    assert err.startswith(f"error: {f}:1: ")
    assert (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.template.spec.affinity.podAntiAffinity.requiredDuringScheduling"'
    ) in err


def test_replicas_as_a_string_is_the_api_decoding_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _nginx(tmp_path, {"spec.replicas": "3"})
    rc, _out, err = _run(capsys, "-f", NODES, "-f", f)
    assert rc == 2
    assert (
        "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of "
        "type int32"
    ) in err
    assert "greater than or equal to 0" not in err


def _dump() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = yaml.safe_load((FIXTURES / "dump.yaml").read_text())["items"]
    # as `kubectl get -o yaml` would show a Deployment someone applied: no uid, no status
    for o in items:
        if o["kind"] == "Deployment":
            o["metadata"].pop("uid", None)
            o.pop("status", None)
    return items


@pytest.mark.parametrize("reverse", [False, True], ids=["deployment-first", "pods-first"])
def test_adoption_does_not_depend_on_input_order(tmp_path: Path, reverse: bool) -> None:
    items = _dump()[::-1] if reverse else _dump()
    f = tmp_path / "dump.yaml"
    f.write_text(yaml.safe_dump_all(items))
    out = simulate([NODES, str(f)])
    names = sorted(p["metadata"]["name"] for p in out.pods())
    assert names == ["nginx-7c5ddbdf54-pod1", "nginx-7c5ddbdf54-pod2", "nginx-7c5ddbdf54-pod3"]
    assert not out.new_pods()


def test_table_has_summary_workloads_no_age_and_one_unit_per_column(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc, out, _err = _run(
        capsys,
        "-f",
        NODES,
        "-f",
        NGINX,
        "--then",
        "kubectl scale deployment.apps/nginx --replicas=6",
    )
    assert rc == 0
    lines = out.splitlines()
    assert lines[-1] == "6 pods: 3 Running, 3 Pending"
    assert "AGE" not in lines[0].split()
    wl = next(line for line in lines if line.startswith("deployment.apps/nginx"))
    assert wl.split()[1:4] == ["3/6", "6", "3"]
    assert "rollout stuck: 3 Pending (" in wl and "didn't match pod anti-affinity rules" in wl
    node_head = lines.index(next(x for x in lines if x.startswith("NODE ")))
    mem = [re.split(r"\s{3,}", x)[4] for x in lines[node_head + 1 : node_head + 5]]
    units = {re.sub(r"[\d ]|\(.*\)", "", m) for m in mem if not m.startswith("0 ")}
    assert units == {"Mi"}, mem


def test_mixed_memory_column_uses_one_suffix(tmp_path: Path) -> None:
    from fleetkit.cluster.report import render_table

    deploy = _nginx(
        tmp_path,
        {
            "spec.replicas": 2,
            "spec.template.spec.containers": [
                {"name": "c", "image": "x", "resources": {"requests": {"memory": "1Gi"}}}
            ],
        },
    )
    extra = tmp_path / "one.yaml"
    extra.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "odd"},
                "spec": {
                    "nodeName": "demo-worker3",
                    "containers": [
                        {"name": "c", "image": "x", "resources": {"requests": {"memory": "1536Mi"}}}
                    ],
                },
            }
        )
    )
    text = render_table(simulate([NODES, deploy, str(extra)]))
    rows = text.split("\nNODE ", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    cells = [re.split(r"\s{3,}", r)[4] for r in rows]
    assert [c for c in cells if not c.startswith("0 ")] == [
        "1024Mi (12%)",
        "1024Mi (12%)",
        "1536Mi (18%)",
    ]


def test_explain_names_the_pods_that_block_each_node(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _err = _run(
        capsys,
        "-f",
        NODES,
        "-f",
        NGINX,
        "--then",
        "kubectl scale deploy nginx --replicas 4",
        "--explain",
        "-o",
        "json",
    )
    assert rc == 0
    pods = json.loads(out)["pods"]
    pending = [p for p in pods if not p["node"]]
    assert len(pending) == 1
    filt = pending[0]["filter"]
    running = {p["node"]: f"default/{p['name']}" for p in pods if p["node"]}
    for node, who in running.items():
        assert filt[node]["plugin"] == "InterPodAffinity"
        assert filt[node]["blockedBy"] == [who]
    assert filt["demo-control-plane"]["blockedBy"] == []
    rc, text, _err = _run(
        capsys, "-f", NODES, "-f", NGINX, "--then", "scale deploy/nginx --replicas=4", "--explain"
    )
    assert "BLOCKED BY" in text and running["demo-worker"] in text


def test_kubectl_step_grammar() -> None:
    s = parse_step("kubectl scale deployment.apps/nginx --replicas=6")
    assert (s.verb, s.kind, s.name, s.replicas) == ("scale", "Deployment", "nginx", 6)
    s = parse_step("scale deploy nginx --replicas 2 -n web")
    assert (s.kind, s.name, s.replicas, s.namespace) == ("Deployment", "nginx", 2, "web")
    s = parse_step("kubectl taint nodes n1 dedicated=gpu:NoSchedule other:NoExecute-")
    assert (s.verb, s.name, s.changes) == (
        "taint",
        "n1",
        ["dedicated=gpu:NoSchedule", "other:NoExecute-"],
    )
    s = parse_step("kubectl label node/n1 disk=ssd --overwrite")
    assert (s.verb, s.name, s.changes, "--overwrite" in s.flags) == (
        "label",
        "n1",
        ["disk=ssd"],
        True,
    )
    for bad, msg in (
        ("kubectl reboot n1", 'unknown command "reboot"'),
        ("kubectl scale deployment.apps/nginx", "--replicas=COUNT flag is required"),
        ("kubectl scale configmap/x --replicas=1", 'resource type "configmap"'),
        ("kubectl drain n1 --bogus", "unknown flag: --bogus"),
        ("kubectl taint nodes n1", "at least one taint update is required"),
    ):
        with pytest.raises(UsageError, match=re.escape(msg)):
            parse_step(bad)


def _node_of(out: Any, name: str) -> dict[str, Any]:
    node: dict[str, Any] = out.state.store.get("nodes", "", name)
    return node


def test_taint_label_cordon_steps_reach_the_scheduler() -> None:
    out = simulate(
        [NODES, NGINX],
        [
            "kubectl taint nodes demo-worker dedicated=gpu:NoExecute",
            "kubectl label nodes demo-worker2 disk=ssd",
            "kubectl cordon demo-worker3",
            "kubectl scale deployment.apps/nginx --replicas=3",
        ],
    )
    taints = _node_of(out, "demo-worker")["spec"]["taints"]
    assert {"key": "dedicated", "value": "gpu", "effect": "NoExecute"} in taints
    assert _node_of(out, "demo-worker2")["metadata"]["labels"]["disk"] == "ssd"
    assert _node_of(out, "demo-worker3")["spec"]["unschedulable"] is True
    placed = {p["spec"].get("nodeName") for p in out.pods()}
    # the NoExecute taint evicted the pod on demo-worker; the replacement cannot go there
    assert "demo-worker" not in placed
    pending = [p for p in out.pods() if p["status"]["phase"] == "Pending"]
    assert len(pending) == 1
    cond = next(c for c in pending[0]["status"]["conditions"] if c["type"] == "PodScheduled")
    assert "1 node(s) had untolerated taint {dedicated: gpu}" in cond["message"]
    out = simulate(
        [NODES, NGINX],
        [
            "kubectl taint nodes demo-worker dedicated=gpu:NoExecute",
            "kubectl taint nodes demo-worker dedicated:NoExecute-",
            "kubectl cordon demo-worker3",
            "kubectl uncordon demo-worker3",
        ],
    )
    assert not _node_of(out, "demo-worker")["spec"].get("taints")
    assert not _node_of(out, "demo-worker3")["spec"].get("unschedulable")


def test_step_refusals_carry_kubectl_messages() -> None:
    with pytest.raises(UsageError, match='taint "nope:NoSchedule" not found'):
        simulate([NODES], ["kubectl taint nodes demo-worker nope:NoSchedule-"])
    with pytest.raises(
        UsageError, match="already has a value \\(amd64\\), and --overwrite is false"
    ):
        simulate([NODES], ["kubectl label nodes demo-worker kubernetes.io/arch=arm64"])
    with pytest.raises(UsageError, match="invalid taint effect: Sometimes"):
        simulate([NODES], ["kubectl taint nodes demo-worker a=b:Sometimes"])
    with pytest.raises(UsageError, match='deployments.apps "ghost" not found'):
        simulate([NODES], ["kubectl scale deployment.apps/ghost --replicas=2"])


def test_drain_refuses_unmanaged_pods_without_force(tmp_path: Path) -> None:
    bare = tmp_path / "bare.yaml"
    bare.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "bare"},
                "spec": {"nodeName": "demo-worker", "containers": [{"name": "c", "image": "x"}]},
            }
        )
    )
    with pytest.raises(UsageError, match="cannot delete Pods that declare no controller"):
        simulate([NODES, str(bare)], ["kubectl drain demo-worker --ignore-daemonsets"])
    out = simulate([NODES, str(bare), NGINX], ["kubectl drain demo-worker --force"])
    names = {p["metadata"]["name"] for p in out.pods()}
    assert "bare" not in names
    assert all(p["spec"].get("nodeName") != "demo-worker" for p in out.pods())


def test_drain_stops_at_a_pdb(tmp_path: Path) -> None:
    out = simulate(
        [NODES, NGINX, str(FIXTURES / "pdb.yaml")],
        ["kubectl drain demo-worker --ignore-daemonsets"],
    )
    assert any("violate the pod's disruption budget" in w for w in out.warnings)


def test_node_without_allocatable_is_warned_about(tmp_path: Path) -> None:
    f = tmp_path / "bare-node.yaml"
    f.write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "naked"}})
    )
    out = simulate([str(f)])
    assert any(
        "Node 'naked' has no status.allocatable" in w and f"{f}:1" in w for w in out.warnings
    )


def test_fixtures_use_the_current_control_plane_taint() -> None:
    for path in (FIXTURES / "nodes.yaml", FIXTURES.parent / "scheduler" / "seed" / "cluster.yaml"):
        assert "node-role.kubernetes.io/master" not in path.read_text()
        assert "key: node-role.kubernetes.io/control-plane" in path.read_text()


def test_cached_table_rows_serialize_as_the_table() -> None:
    """The row cache behind `kubectl get` (table_json) gives the Table that table() builds."""
    from fleetkit.cluster.api import tables

    def timeless(t: Any) -> Any:
        at = [c["name"] for c in t["columnDefinitions"]].index("Age")
        for r in t["rows"]:
            r["cells"][at] = "AGE"  # the one cell that moves with the clock
        return t

    out = simulate([NODES, NGINX], ["kubectl scale deployment.apps/nginx --replicas=5"])
    for res, key in (("pods", "pods"), ("nodes", "nodes"), ("deployments", "deployments.apps")):
        objs = out.state.store.list(key)
        for include in ("Metadata", "None", "Object"):
            first = timeless(json.loads(tables.table_json(res, objs, "7", include)))
            cached = timeless(json.loads(tables.table_json(res, objs, "7", include)))
            assert first == cached == timeless(tables.table(res, objs, "7", include))
    # a changed object (new resourceVersion) is rendered again, not served from the cache
    pods = out.state.store.list("pods")
    tables.table_json("pods", pods, "7")
    node = out.state.store.get("nodes", "", "demo-worker")
    out.state.update(
        out.state.res("", "Node"), {**node, "spec": {**node.get("spec", {}), "unschedulable": True}}
    )
    row = json.loads(tables.table_json("nodes", out.state.store.list("nodes"), "8"))["rows"]
    assert any(r["cells"][1] == "Ready,SchedulingDisabled" for r in row)


def test_explain_names_the_pods_that_block_a_node_for_topology_spread(tmp_path: Path) -> None:
    from fleetkit.cluster.report import explain_entries

    def node(name: str, zone: str) -> dict[str, Any]:
        alloc = {"cpu": "4", "memory": "8Gi", "pods": "110"}
        labels = {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": zone}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "status": {"capacity": alloc, "allocatable": alloc},
        }

    def pod(name: str, labels: dict[str, str], **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}], **spec},
        }

    spread = {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}},
    }
    objs = [node("a1", "z1"), node("a2", "z1"), node("b1", "z2")]
    objs += [
        pod("web-0", {"app": "web"}, nodeName="a1"),
        pod("web-1", {"app": "web"}, nodeName="a2"),
    ]
    objs += [
        pod("other", {"app": "db"}, nodeName="a1"),
        pod("web-2", {"app": "web"}, nodeName="b1"),
    ]
    objs.append(pod("web-3", {"app": "web"}, topologySpreadConstraints=[spread]))
    f = tmp_path / "in.yaml"
    f.write_text(yaml.safe_dump_all(objs))
    out = simulate([str(f)], explain=True)
    (entry,) = explain_entries(out, "web-3")
    assert entry["node"] == "b1"
    filt = entry["filter"]
    # zone z1 holds 2 matching pods, z2 holds 1: web-3 in z1 would make the skew 2
    for name in ("a1", "a2"):
        assert filt[name]["plugin"] == "PodTopologySpread"
        assert filt[name]["blockedBy"] == ["default/web-0", "default/web-1"]
    assert "blockedBy" not in filt["b1"]
