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

# target -> first reason it fails under fleetkit today (ranked list in targets-report.md)
XFAIL: dict[str, str] = {
    "assert": "play roles: refused; then `assert: '{{ item }}'` args from a template",
    "callback_default": "module replace missing (test.yml:68)",
    "check_mode": "play roles: refused (check_mode.yml)",
    "command_shell": "play roles: refused; then module stat missing",
    "conditionals": "module stat missing; then lookup() undefined ('lookup.unsafe_callable')",
    "debug": "`var: !unsafe debug_me` renders instead of failing (untrusted expression)",
    "environment": "list-form `environment:` with omit entries refused; ansible_env fact missing",
    "gathering_facts": "gather_subset keyword refused; then library/ module file_utils refused",
    "handlers": "play roles: refused; then notify of a missing handler does not error",
    "ignore_unreachable": "ANSIBLE_CONNECTION_PLUGINS plugin bad_put_file refused by name",
    "include_import": "import_playbook refused",
    "loop-until": "play roles: refused; then templated set_fact key",
    "loops": "play roles: refused; then loop_control.pause ignored",
    "meta_tasks": "module file missing (refresh_inventory part)",
    "no_log": "playbook-adjacent action_plugins/ action_sets_no_log not found",
    "package": "play roles: refused; then module dnf5 missing",
    "pause": "no-tty warning 'Not waiting for response to prompt' missing",
    "set_fact": "templated set_fact key '{{ a_key }}' refused",
    "special_vars": "play roles: refused; then module template missing",
    "task_ordering": "play roles: refused; then module slurp missing",
    "templating": "play roles: refused; then role library/ module noisy not found",
    "test_core": "module 'file' (modules branch); reachable/unreachable tests work",
    "throttle": "non-integer throttle '{{ 'nope' }}' accepted; then module script missing",
    "until": "play roles: refused; then target action_plugins/ shell_no_failed not found",
    "var_blending": "play roles: refused (test_var_blending.yml)",
    "var_precedence": "play roles: refused (test_var_precedence.yml)",
    "wait_for": "play roles: refused; then module script missing",
}
# passing: ignore_errors, strategy_free; limit_inventory passes trivially (it runs only the
# real `ansible` ad-hoc command, which fleetkit does not replace)

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
