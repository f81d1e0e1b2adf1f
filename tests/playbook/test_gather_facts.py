"""``gather_facts`` as ansible's action: ``facts_modules`` (the ``ansible_facts_modules``
variable, ``ANSIBLE_FACTS_MODULES``), their facts deep-merged in order, task arguments withheld
from non-setup modules, a module of a playbook-adjacent collection, facts of a looped module
reaching the next items, and restricted keys removed from the injected variables; differential
against ansible-playbook on tests/fixtures/playbook/gather_facts."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.playbook._harness import FIXTURES, run_ansible, run_fleetkit


def _warnings(stderr: str) -> set[str]:
    # ansible removes restricted keys in set order (varies run to run): compare as a set
    return {ln for ln in stderr.splitlines() if ln.startswith("[WARNING]")}


def test_facts_modules_merge_and_clean_facts_as_ansible(tmp_path: Path) -> None:
    work = tmp_path / "gather_facts"
    shutil.copytree(FIXTURES / "gather_facts", work)
    want = run_ansible(["-i", "hosts", "p.yml"], work)
    got = run_fleetkit(["play", "-i", "hosts", "p.yml"], work)
    assert want.returncode == 0, want.stdout + want.stderr
    assert got.stdout == want.stdout, got.stderr
    assert _warnings(got.stderr) == _warnings(want.stderr)
    assert "Not passing subset(min) to ns.coll.net_facts" in got.stderr
    assert '\\"k1\\": \\"a\\", \\"k2\\": \\"b\\", \\"k3\\": \\"b\\"' in got.stdout


def test_facts_modules_and_inject_facts_as_vars_from_the_environment_as_ansible(
    tmp_path: Path,
) -> None:
    work = tmp_path / "gather_facts"
    shutil.copytree(FIXTURES / "gather_facts", work)
    (work / "env.yml").write_text(
        "- hosts: localhost\n  tasks:\n    - debug:\n"
        "        msg: \"{{ ansible_facts.common }} {{ 'system' in ansible_facts }}"
        " {{ common | default('not injected') }}\"\n"
    )
    env = {"ANSIBLE_FACTS_MODULES": "smart, facts_b", "ANSIBLE_INJECT_FACT_VARS": "0"}
    # serial: ansible's parallel fact modules are async jobs whose timeout a busy machine exceeds
    args = ["-i", "hosts", "env.yml", "-e", "ansible_facts_parallel=false"]
    want = run_ansible(args, work, env=env)
    got = run_fleetkit(["play", *args], work, env=env)
    assert want.returncode == 0, want.stdout + want.stderr
    assert got.stdout == want.stdout, got.stderr
    assert '"msg": "from b True not injected"' in got.stdout
