"""ansible-core 2.19's own integration targets, run as `ansible-test integration` runs them, with
`fleetkit play` standing in for ansible-playbook: the acceptance suite for `fleetkit play`.

XFAIL below is the ONE table of targets that do not pass yet, each with its first concrete reason
(see /work/briefs/targets-report.md for the triage). It is strict: a target that starts passing
fails until its row is removed. Run one target by hand with
`scripts/ansible-targets --peer fleetkit TARGET --keep` (then `source WORK/env.sh`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.peers import require
from tests.playbook._targets import (
    TARGETS,
    dependencies,
    ensure_source,
    find_venv_bin,
    first_failure,
    run_target,
)

# target -> first failing line under fleetkit today (the run log has the whole story)
XFAIL: dict[str, str] = {}
# 52 of 52 pass (limit_inventory trivially: it runs only the real `ansible` ad-hoc command);
# regenerate the reasons with `scripts/ansible-targets --peer fleetkit -j 2 -o json`

TIMEOUT_S = 240.0
# targets whose real-ansible run is longer (callback_default: ~420 s here, mostly host1/host2 DNS)
SLOW_TIMEOUT_S = {"callback_default": 600.0, "pause": 300.0}

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def source() -> Path:
    """The extracted ansible-core sdist (pip download into the test cache, once)."""
    try:
        find_venv_bin()
    except FileNotFoundError:
        require("ansible-playbook beside sys.executable", "make .venv/.installed")
    return ensure_source()


def _params() -> list[object]:
    return [
        pytest.param(t, marks=pytest.mark.xfail(strict=True, reason=XFAIL[t])) if t in XFAIL else t
        for t in TARGETS
    ]


def _check(result_log: str, passed: bool, reason: str) -> None:
    if not passed:
        tail = "\n".join(Path(result_log).read_text(errors="replace").splitlines()[-40:])
        pytest.fail(f"{reason}\n--- last lines of {result_log} ---\n{tail}", pytrace=False)


@pytest.mark.timeout(max(SLOW_TIMEOUT_S.values()) + 60)
@pytest.mark.parametrize("target", _params())
def test_target_under_fleetkit(target: str, source: Path, tmp_path: Path) -> None:
    timeout_s = SLOW_TIMEOUT_S.get(target, TIMEOUT_S)
    result = run_target(source, target, "fleetkit", tmp_path, timeout_s=timeout_s)
    _check(result.log, result.passed, result.first_failure)


@pytest.mark.timeout(TIMEOUT_S + 60)
def test_harness_passes_ping_under_real_ansible(source: Path, tmp_path: Path) -> None:
    result = run_target(source, "ping", "ansible", tmp_path, timeout_s=TIMEOUT_S)
    _check(result.log, result.passed, result.first_failure)
    assert re.search(r"testhost\s+: ok=\d+", Path(result.log).read_text())


def test_table_names_only_known_targets() -> None:
    assert set(XFAIL) <= set(TARGETS)
    assert len(TARGETS) == len(set(TARGETS)) == 52
    assert all(reason.strip() for reason in XFAIL.values())


def test_dependencies_follow_aliases_and_role_meta(source: Path) -> None:
    targets = source / "test" / "integration" / "targets"
    assert {"include_parent_role_vars", "prepare_tests"} <= dependencies(targets, "special_vars")
    assert "setup_remote_tmp_dir" in dependencies(targets, "wait_for")
    assert dependencies(targets, "ping") == set()


def test_first_failure_skips_ignored_errors() -> None:
    out = "TASK [a]\nfatal: [h]: FAILED! => {}\n...ignoring\nTASK [b]\nfatal: [h]: FAILED! => {x}\n"
    assert first_failure(out) == "fatal: [h]: FAILED! => {x}"
    assert first_failure("all good\nlast line\n") == "last line"
