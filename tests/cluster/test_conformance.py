"""The recorded kube-scheduler v1.32.2 scenarios, run through the simulated cluster
(``fleetkit cluster schedule``: the controllers, queue and binder of ``cluster serve``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("FLEETKIT_SHARED", ROOT.parent / "shared")) / "conformance"


def test_scheduler_scenarios_through_the_cluster() -> None:
    script = SHARED / "check-scheduler-scenarios"
    if not script.exists():
        # the recorded cases live beside the repository (../shared), never inside it: a clean
        # clone on its own has none, so this is not a missing peer
        pytest.skip(f"no conformance samples at {SHARED} (set FLEETKIT_SHARED)")
    env = {**os.environ, "FLEETKIT": f"{sys.executable} -m fleetkit cluster"}
    proc = subprocess.run(
        [sys.executable, str(script), str(SHARED / "scheduler-scenarios")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1].endswith(" 0 failed")
