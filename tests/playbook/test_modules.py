"""Modules on local hosts: copy idempotence, packages (check mode), facts, wait_for, raw."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.playbook._harness import FIXTURES, parse, run_ansible, run_fleetkit


def _events(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


def _run(tmp_path: Path, playbook: str, *extra: str) -> list[dict[str, object]]:
    (tmp_path / "pb.yml").write_text(playbook)
    p = run_fleetkit(
        ["play", "-i", "localhost,", "-c", "local", "pb.yml", "-o", "json", *extra], tmp_path
    )
    assert p.returncode in (0, 2), p.stderr
    return _events(p.stdout)


def _status(events: list[dict[str, object]], task: str) -> str:
    return next(str(e["ev"]) for e in events if e.get("task") == task and "host" in e)


def test_facts_copy_wait_for_same_as_ansible(tmp_path: Path) -> None:
    args = ["-i", "inventory.ini", "facts.yml", "-f", "1", "-e", f"out_dir={tmp_path}"]
    want = run_ansible(args, FIXTURES)
    (tmp_path / "copied.txt").unlink()
    got = run_fleetkit(["play", *args], FIXTURES)
    assert got.returncode == want.returncode == 0, got.stdout + got.stderr
    assert parse(got.stdout) == parse(want.stdout)
    assert (tmp_path / "copied.txt").read_text() == "hello lone\n"


def test_copy_changes_only_when_content_differs(tmp_path: Path) -> None:
    dest = tmp_path / "f.txt"
    pb = (
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - name: c1\n      copy: {{content: \"a\\n\", dest: '{dest}', mode: '0600'}}\n"
        f"    - name: c2\n      copy: {{content: \"a\\n\", dest: '{dest}', mode: '0600'}}\n"
        f"    - name: c3\n      copy: {{content: \"b\\n\", dest: '{dest}'}}\n"
    )
    events = _run(tmp_path, pb)
    assert [_status(events, t) for t in ("c1", "c2", "c3")] == ["changed", "ok", "changed"]
    assert dest.read_text() == "b\n"
    assert oct(dest.stat().st_mode & 0o777) == "0o600"


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs a Debian host")
def test_package_modules_in_check_mode_same_as_ansible(tmp_path: Path) -> None:
    # the real apt module runs: a package that does not exist fails as ansible fails
    pb = (
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: present\n      package: {name: coreutils, state: present}\n"
        "    - name: absent\n      apt: {name: fleetkit-no-such-package, state: absent}\n"
        "    - name: install\n      apt: {name: [coreutils, fleetkit-no-such-package]}\n"
        "      ignore_errors: true\n"
        "    - name: remove\n      package: {name: coreutils, state: absent}\n"
    )
    (tmp_path / "pb.yml").write_text(pb)
    (tmp_path / "hosts").write_text("localhost ansible_connection=local\n")
    args = ["-i", "hosts", "pb.yml", "--check"]
    want = run_ansible(args, tmp_path)
    got = run_fleetkit(["play", *args], tmp_path)
    assert parse(got.stdout) == parse(want.stdout), got.stdout + got.stderr
    events = _run(tmp_path, pb, "--check")
    assert [_status(events, t) for t in ("present", "absent", "install")] == [
        "ok",
        "ok",
        "failed",
    ]


def test_raw_and_shell_and_creates(tmp_path: Path) -> None:
    marker = tmp_path / "m"
    pb = (
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: raw\n      raw: echo hi\n      register: r\n"
        f"    - name: make\n      shell: touch {marker}\n"
        f"    - name: creates\n      command: touch {marker}\n      args: {{creates: '{marker}'}}\n"
        "    - name: show\n      debug: {msg: '{{ r.stdout | trim }}'}\n"
    )
    events = _run(tmp_path, pb)
    assert _status(events, "raw") == "changed"
    assert _status(events, "creates") == "ok"
    show = next(e for e in events if e.get("task") == "show" and "host" in e)
    assert show["result"] == {"changed": False, "failed": False, "msg": "hi"}


def test_wait_for_timeout_message(tmp_path: Path) -> None:
    pb = (
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: w\n      wait_for: {port: 1, timeout: 1}\n"
    )
    events = _run(tmp_path, pb)
    res = next(e for e in events if e.get("task") == "w" and "host" in e)
    assert res["ev"] == "failed"
    assert res["result"]["msg"] == "Timeout when waiting for 127.0.0.1:1"  # type: ignore[index]
