from __future__ import annotations

from fleetkit.scheduler.plugins.image_locality import normalized_image_name
from tests.scheduler.builders import cycle, node, only, pod, scores

MB = 1024 * 1024


def test_normalized_names() -> None:
    assert normalized_image_name("nginx") == "nginx:latest"
    assert normalized_image_name("localhost:5000/app") == "localhost:5000/app:latest"
    assert normalized_image_name("nginx:1.27") == "nginx:1.27"


def test_score_scaled_by_spread() -> None:
    img = {"names": ["registry.k8s.io/pause:3.10"], "sizeBytes": 500 * MB}
    objs = [node("a", images=[img]), node("b")]
    res = cycle(objs, pod("p"), only("ImageLocality"))
    # a: 500MB * (1 of 2 nodes) = 250MB; clamp to [23MB, 1000MB*1 container]
    # 100 * (250-23) / (1000-23) = 23.2 -> 23; b: below threshold -> 0
    assert scores(res, "ImageLocality") == {"a": 23, "b": 0}
