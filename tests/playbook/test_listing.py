"""--list-hosts / --list-tasks / --list-tags print what ansible-playbook prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleetkit.playbook.listing import tags_selected
from tests.playbook._harness import run_ansible, run_fleetkit

INVENTORY = "[web]\nw1\nw2\nw3\n[db]\nd1\n"
PLAYBOOK = """\
- hosts: web
  gather_facts: false
  tags: [p1]
  tasks:
    - debug: msg=a
      tags: [t1, t2]
    - name: named
      ansible.builtin.command: echo
    - block:
        - name: in block
          debug: msg=b
          tags: blk
      rescue:
        - action: ping
      tags: outer
- name: second
  hosts: all:!d1
  tasks:
    - shell: echo {{ x }}
      tags: [always]
    - include_tasks: other.yml
    - ping:
      tags: never
    - name: both
      ping:
      tags: [never, always]
"""


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "inv.ini").write_text(INVENTORY)
    (tmp_path / "p.yml").write_text(PLAYBOOK)
    (tmp_path / "other.yml").write_text("- debug: msg=inc\n")
    (tmp_path / "limit.txt").write_text("w3\nd1\n\nw1\n")
    return tmp_path


def _sorted_hosts(text: str) -> str:
    """ansible lists a play's hosts from a set: compare each host block sorted."""
    out: list[str] = []
    block: list[str] = []
    for line in text.splitlines():
        if re.match(r"^      \S", line) and "\t" not in line:
            block.append(line)
            continue
        out.extend(sorted(block))
        block = []
        out.append(line)
    out.extend(sorted(block))
    return "\n".join(out)


@pytest.mark.parametrize(
    "flags",
    [
        ["--list-hosts"],
        ["--list-tasks"],
        ["--list-tags"],
        ["--list-hosts", "--list-tasks", "--list-tags"],
        ["--list-tasks", "-t", "t1,blk"],
        ["--list-tasks", "--skip-tags", "p1"],
        ["--list-tasks", "-t", "never"],
        ["--list-tasks", "-t", "tagged", "--skip-tags", "always"],
        ["--list-tags", "--skip-tags", "all"],
        ["--list-hosts", "-l", "w1,w3"],
        ["--list-hosts", "-l", "@limit.txt"],
    ],
)
def test_listing_matches_ansible(project: Path, flags: list[str]) -> None:
    args = ["-i", "inv.ini", "p.yml", *flags]
    theirs = run_ansible(args, project)
    ours = run_fleetkit(["play", *args], project)
    assert theirs.returncode == ours.returncode == 0, (theirs.stderr, ours.stderr)
    assert _sorted_hosts(ours.stdout) == _sorted_hosts(theirs.stdout)


def test_limit_matching_nothing_is_an_error(project: Path) -> None:
    args = ["-i", "inv.ini", "p.yml", "--list-hosts", "-l", "nosuch"]
    theirs = run_ansible(args, project)
    ours = run_fleetkit(["play", *args], project)
    assert theirs.returncode == ours.returncode == 1
    assert "leaves us with no hosts to target" in ours.stderr


@pytest.mark.parametrize(
    "tags,only,skip,expected",
    [
        ([], [], [], True),
        (["never"], [], [], False),
        (["never"], ["never"], [], True),
        (["always"], ["x"], [], True),
        (["always"], [], ["always"], False),
        (["always"], [], ["all"], True),
        (["a"], ["tagged"], [], True),
        ([], ["tagged"], [], False),
        ([], ["untagged"], [], True),
        (["a"], [], ["tagged"], False),
    ],
)
def test_tags_selected(tags: list[str], only: list[str], skip: list[str], expected: bool) -> None:
    assert tags_selected(tags, only, skip) is expected
