from __future__ import annotations

from tests.scheduler.builders import cycle, node, only, pod, reasons, scores

GPU = {"key": "gpu", "value": "true", "effect": "NoSchedule"}


def test_first_untolerated_noschedule_taint_is_reported() -> None:
    objs = [node("a", taints=[GPU, {"key": "x", "effect": "NoExecute"}]), node("b")]
    res = cycle(objs, pod("p"), only("TaintToleration"))
    assert reasons(res) == {"a": ["node(s) had untolerated taint {gpu: true}"]}
    # Equal needs the value; Exists does not; an effect-less toleration matches every effect
    ok = cycle(
        objs,
        pod(
            "p",
            tolerations=[{"key": "gpu", "operator": "Exists"}, {"key": "x", "operator": "Exists"}],
        ),
        only("TaintToleration"),
    )
    assert ok.feasible == ["a", "b"]
    wrong = cycle(
        objs,
        pod("p", tolerations=[{"key": "gpu", "value": "false", "effect": "NoSchedule"}]),
        only("TaintToleration"),
    )
    assert wrong.feasible == ["b"]


def test_prefer_no_schedule_scores_reversed() -> None:
    soft = {"effect": "PreferNoSchedule"}
    objs = [
        node("a"),
        node("b", taints=[{"key": "k1", **soft}]),
        node("c", taints=[{"key": "k1", **soft}, {"key": "k2", **soft}]),
    ]
    res = cycle(objs, pod("p"), only("TaintToleration"))
    # raw counts of intolerable PreferNoSchedule taints: a=0 b=1 c=2; max=2
    # reverse-normalized: 100 - 100*count/2 -> a=100 b=50 c=0
    assert scores(res, "TaintToleration") == {"a": 100, "b": 50, "c": 0}
    tol = [{"key": "k2", "operator": "Exists", "effect": "PreferNoSchedule"}]
    res = cycle(objs, pod("p", tolerations=tol), only("TaintToleration"))
    # counts a=0 b=1 c=1 -> 100, 0, 0
    assert scores(res, "TaintToleration") == {"a": 100, "b": 0, "c": 0}


def test_node_conditions_taint_like_the_lifecycle_controller() -> None:
    sick = node("sick")
    sick["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    res = cycle([sick, node("ok")], pod("p"), only("TaintToleration"))
    # Ready=False becomes node.kubernetes.io/not-ready:NoSchedule; the default NoExecute
    # toleration (300 s) does not cover NoSchedule
    assert reasons(res) == {
        "sick": ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]
    }
