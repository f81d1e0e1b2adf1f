"""fleetkit.scheduler: where kube-scheduler v1.32 (default profile) would place each pod.

``simulate(files, config=..., steps=..., seed=...)`` loads manifests, runs the scheduling queue,
applies what-if steps and returns the :class:`Simulation` for rendering.
"""

from __future__ import annotations

from typing import Any

from fleetkit.scheduler.profile import SchedulerConfig, default_config, load_config
from fleetkit.scheduler.simulator import MAX_PODS, Simulation, Step, parse_step

__all__ = [
    "simulate",
    "Simulation",
    "Step",
    "parse_step",
    "load_config",
    "default_config",
    "SchedulerConfig",
    "MAX_PODS",
]


def simulate(
    files: list[str],
    config: SchedulerConfig | None = None,
    steps: list[str] | None = None,
    seed: int = 1,
    explain: bool = False,
    live: list[dict[str, Any]] | None = None,
    max_pods: int = MAX_PODS,
) -> Simulation:
    """``live`` objects (a cluster snapshot) are loaded before ``files``.

    At most ``max_pods`` pods may exist at once (a :class:`UsageError` otherwise).
    """
    parsed = [parse_step(s) for s in steps or []]
    sim = Simulation(config or default_config(), seed=seed, explain=explain, max_pods=max_pods)
    if live:
        sim.load_objects(live, source="<cluster>")
    sim.load(files)
    sim.run()
    for step in parsed:
        sim.apply_step(step)
    return sim
