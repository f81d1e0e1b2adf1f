"""ImageLocality: favour nodes that already hold the pod's images, scaled by how widely spread
the image is (an image on every node is no reason to pick any one of them)."""

from __future__ import annotations

from fleetkit.scheduler.cluster import NodeInfo
from fleetkit.scheduler.model import Pod
from fleetkit.scheduler.plugins.base import MAX_NODE_SCORE, CycleState, Plugin

MB = 1024 * 1024
MIN_THRESHOLD = 23 * MB
MAX_CONTAINER_THRESHOLD = 1000 * MB


def normalized_image_name(name: str) -> str:
    if name.rfind(":") <= name.rfind("/"):
        return name + ":latest"
    return name


def calculate_priority(sum_scores: int, num_containers: int) -> int:
    max_threshold = MAX_CONTAINER_THRESHOLD * num_containers
    if sum_scores < MIN_THRESHOLD:
        sum_scores = MIN_THRESHOLD
    elif sum_scores > max_threshold:
        sum_scores = max_threshold
    if max_threshold == MIN_THRESHOLD:
        return 0
    num = MAX_NODE_SCORE * (sum_scores - MIN_THRESHOLD)
    den = max_threshold - MIN_THRESHOLD
    q = abs(num) // abs(den)
    return q if (num >= 0) == (den > 0) else -q


class ImageLocality(Plugin):
    name = "ImageLocality"
    points = frozenset({"score"})
    node_local = True

    def score(self, state: CycleState, pod: Pod, info: NodeInfo) -> int:
        if not info.node.images:
            return calculate_priority(0, pod.num_containers)
        total_nodes = len(self.cluster.infos)
        sizes: dict[str, int] = {}
        for names, size in info.node.images:
            for n in names:
                sizes[n] = size
        total = 0
        for img in pod.images:
            norm = normalized_image_name(img)
            if norm in sizes:
                spread = self.cluster.image_nodes.get(norm, 0) / total_nodes
                total += int(sizes[norm] * spread)
        return calculate_priority(total, pod.num_containers)
