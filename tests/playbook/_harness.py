"""Run ansible-playbook and fleetkit play on the same files; parse both outputs the same way."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.peers import require

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "playbook"
VENV_BIN = Path(sys.executable).parent

PLAY = re.compile(r"^PLAY \[(.*)\] \*+\s*$")
TASK = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(.*)\] \*+\s*$")
RESULT = re.compile(r"^(ok|changed|skipping|fatal|failed): \[([^\]]+)\](.*)$")
RECAP = re.compile(
    r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"
    r"\s+skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)"
)
VOLATILE = re.compile(r'"(delta|start|end|date|elapsed)": ("[^"]*"|\d+)')


def parse(text: str) -> tuple[list[tuple[str, ...]], dict[str, list[int]]]:
    events: list[tuple[str, ...]] = []
    recap: dict[str, list[int]] = {}
    task = ""
    in_recap = False
    for line in text.splitlines():
        if in_recap:
            m = RECAP.match(line)
            if m:
                recap[m.group(1)] = [int(x) for x in m.group(2, 3, 4, 5, 6, 7, 8)]
            continue
        if line.startswith("PLAY RECAP"):
            in_recap = True
        elif m := PLAY.match(line):
            events.append(("play", m.group(1)))
        elif m := TASK.match(line):
            task = m.group(1)
        elif line.strip() == "...ignoring":
            events.append(("ignoring", task))
        elif m := RESULT.match(line):
            status, host, rest = m.groups()
            if status == "fatal":
                status = "unreachable" if "UNREACHABLE!" in rest else "failed"
            events.append((status, task, host, VOLATILE.sub("", rest)))
    return events, recap


def ansible_env() -> dict[str, str]:
    return dict(
        os.environ,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
    )


def run_ansible(
    args: list[str], cwd: Path, timeout: float = 240, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    exe = str(VENV_BIN / "ansible-playbook")
    if not os.path.exists(exe):
        exe = require("ansible-playbook", "pip install 'ansible-core>=2.19,<2.20'")
    return subprocess.run(
        [exe, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**ansible_env(), **(env or {})},
        check=False,
    )


def run_fleetkit(
    args: list[str], cwd: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetkit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, NO_COLOR="1", **(env or {})),
        check=False,
    )


def ansible_tool(name: str) -> str:
    exe = str(VENV_BIN / name)
    if not os.path.exists(exe):
        exe = require(name, "pip install 'ansible-core>=2.19,<2.20'")
    return exe


def run_both(
    cwd: Path,
    playbook: str,
    inventory: str,
    extra: Sequence[str] = (),
    *,
    pb: str = "pb.yml",
    files: Mapping[str, str] | None = None,
    forks: int | None = 1,
    timeout: float = 120,
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """Write ``playbook`` (as ``pb``), ``inventory.ini`` and ``files`` in ``cwd``, then run
    ansible-playbook and fleetkit play there with the same arguments: (ansible, fleetkit)."""
    (cwd / "inventory.ini").write_text(inventory)
    (cwd / pb).write_text(playbook)
    for name, text in (files or {}).items():
        path = cwd / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    args = ["-i", "inventory.ini", pb, *(["-f", str(forks)] if forks else []), *extra]
    return run_ansible(args, cwd), run_fleetkit(["play", *args], cwd, timeout=timeout)
