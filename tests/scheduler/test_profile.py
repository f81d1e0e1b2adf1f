from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fleetkit.errors import UsageError
from fleetkit.scheduler.profile import build_profile, default_config, load_config


def test_default_profile_points_and_weights() -> None:
    prof = default_config().profiles["default-scheduler"]
    assert prof.points["filter"] == [
        "NodeUnschedulable",
        "NodeName",
        "TaintToleration",
        "NodeAffinity",
        "NodePorts",
        "NodeResourcesFit",
        "VolumeRestrictions",
        "NodeVolumeLimits",
        "VolumeBinding",
        "VolumeZone",
        "PodTopologySpread",
        "InterPodAffinity",
    ]
    assert prof.points["score"] == [
        "TaintToleration",
        "NodeAffinity",
        "NodeResourcesFit",
        "PodTopologySpread",
        "InterPodAffinity",
        "NodeResourcesBalancedAllocation",
        "ImageLocality",
    ]
    assert prof.weights["TaintToleration"] == 3 and prof.weights["InterPodAffinity"] == 2
    assert prof.points["postFilter"] == ["DefaultPreemption"]


def test_per_point_disabled_overrides_multipoint() -> None:
    prof = build_profile(
        {
            "plugins": {
                "score": {"disabled": [{"name": "ImageLocality"}]},
                "filter": {"disabled": [{"name": "*"}]},
            }
        },
        "t",
    )
    assert "ImageLocality" not in prof.points["score"]
    assert prof.points["filter"] == []
    assert "ImageLocality" not in prof.points.get("preScore", [])


def test_score_weight_override() -> None:
    prof = build_profile(
        {"plugins": {"multiPoint": {"enabled": [{"name": "ImageLocality", "weight": 7}]}}}, "t"
    )
    assert prof.weights["ImageLocality"] == 7
    assert prof.points["score"].count("ImageLocality") == 1


def test_unknown_plugin_and_invalid_profiles(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match='"Frobnicate" does not exist'):
        build_profile({"plugins": {"multiPoint": {"enabled": [{"name": "Frobnicate"}]}}}, "t")
    with pytest.raises(UsageError, match="one queue sort plugin"):
        build_profile({"plugins": {"queueSort": {"disabled": [{"name": "*"}]}}}, "t")
    with pytest.raises(UsageError, match="at least one bind plugin"):
        build_profile({"plugins": {"bind": {"disabled": [{"name": "*"}]}}}, "t")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kubescheduler.config.k8s.io/v1beta3",
                "kind": "KubeSchedulerConfiguration",
            }
        )
    )
    with pytest.raises(UsageError, match="v1beta3"):
        load_config(str(cfg))


def test_profiles_by_scheduler_name(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kubescheduler.config.k8s.io/v1",
                "kind": "KubeSchedulerConfiguration",
                "percentageOfNodesToScore": 50,
                "profiles": [
                    {"schedulerName": "default-scheduler"},
                    {
                        "schedulerName": "bin-packer",
                        "pluginConfig": [
                            {
                                "name": "NodeResourcesFit",
                                "args": {"scoringStrategy": {"type": "MostAllocated"}},
                            }
                        ],
                    },
                ],
            }
        )
    )
    conf = load_config(str(cfg))
    assert set(conf.profiles) == {"default-scheduler", "bin-packer"}
    assert conf.percentage_of_nodes_to_score == 50
    assert (
        conf.profiles["bin-packer"].args["NodeResourcesFit"]["scoringStrategy"]["type"]
        == "MostAllocated"
    )


def test_plugin_args_validated_like_kube() -> None:
    def with_args(plugin: str, args: dict[str, object]) -> None:
        build_profile({"pluginConfig": [{"name": plugin, "args": args}]}, "t")

    with pytest.raises(UsageError, match='unknown field "hardPodAffinityWeigth"'):
        with_args("InterPodAffinity", {"hardPodAffinityWeigth": 2})
    with pytest.raises(UsageError, match=r"not in valid range \[0, 100\]"):
        with_args("InterPodAffinity", {"hardPodAffinityWeight": 101})
    with pytest.raises(UsageError, match="Unsupported value"):
        with_args("NodeResourcesFit", {"scoringStrategy": {"type": "Random"}})
    with pytest.raises(UsageError, match="defaultConstraints must be empty"):
        with_args(
            "PodTopologySpread",
            {
                "defaultConstraints": [
                    {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}
                ]
            },
        )
    with_args("PodTopologySpread", {"defaultingType": "List", "defaultConstraints": []})
