"""Bad input to ``fleetkit play`` / ``fleetkit inventory``: ``error:``, documented exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetkit.cli import main

FILES: dict[str, bytes] = {
    "inv.ini": b"[web]\nh1 ansible_connection=local\n",
    "site.yml": b"- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n",
    "bad.yml": b"a: [1,\n  b: {\n",
    "binary.yml": b"\x00\xff\xfe garbage\n",
}

# exit codes as docs/play.md and ansible-playbook 2.19: 2 a refused inventory source,
# 4 a file that does not parse, 1 a file that cannot be found
CASES = [
    ("missing -e @file", ["play", "-i", "inv.ini", "site.yml", "-e", "@missing.yml"], 1, "find"),
    (
        "-e @file that does not parse",
        ["play", "-i", "inv.ini", "site.yml", "-e", "@bad.yml"],
        4,
        ":3",
    ),
    ("binary playbook", ["play", "-i", "inv.ini", "binary.yml"], 4, "cannot read"),
    ("forks 0", ["play", "-i", "inv.ini", "site.yml", "-f", "0"], 2, "error: "),
    ("unknown flag", ["play", "-i", "inv.ini", "site.yml", "--bogus"], 2, "error: "),
]


@pytest.mark.parametrize(("what", "args", "code", "expect"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(
    what: str,
    args: list[str],
    code: int,
    expect: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    rc = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("error: "), err
    assert expect in err.splitlines()[0]
    assert rc == code


# as ansible: an inventory source no plugin parses is a warning per plugin, then the run goes
# on with what parsed (here only the implicit localhost); exit 0
UNPARSED = [
    ("inventory YAML syntax error", ["play", "-i", "bad.yml", "site.yml"], "bad.yml:3"),
    ("inventory --list YAML error", ["inventory", "-i", "bad.yml", "--list"], "bad.yml:3"),
    ("binary inventory", ["inventory", "-i", "binary.yml", "--list"], "cannot read"),
]


@pytest.mark.parametrize(("what", "args", "expect"), UNPARSED, ids=[c[0] for c in UNPARSED])
def test_unparsed_inventory_warns(
    what: str,
    args: list[str],
    expect: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    rc = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("[WARNING]: Failed to parse inventory with "), err
    assert expect in err.splitlines()[0]
    assert "as an inventory source" in err
    assert rc == 0


# issue 11 item 19: inputs that fail a task (as ansible-playbook does), never the controller
TASK_FAILURES = [
    (
        "non-integer ansible_port",
        b"[g]\nh1 ansible_host=127.0.0.1 ansible_port=abc\n",
        b"- hosts: all\n  gather_facts: false\n  tasks:\n    - command: 'true'\n",
        "Error processing keyword 'port': The value 'abc' could not be converted to 'int'.",
    ),
    (
        "huge range in a template",
        b"[g]\nh1 ansible_connection=local\n",
        b"- hosts: all\n  gather_facts: false\n  tasks:\n"
        b"    - debug: msg='{{ range(100000000) | length }}'\n      ignore_errors: true\n"
        b"    - debug: msg=after\n",
        '"msg": 100000000',  # ranges are lazy, as in ansible: no memory for the length
    ),
]


@pytest.mark.parametrize(
    ("what", "inv", "book", "expect"), TASK_FAILURES, ids=[c[0] for c in TASK_FAILURES]
)
def test_bad_input_fails_the_task_not_the_controller(
    what: str,
    inv: bytes,
    book: bytes,
    expect: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inv.ini").write_bytes(inv)
    (tmp_path / "pb.yml").write_bytes(book)
    rc = main(["play", "-i", "inv.ini", "pb.yml"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err
    assert expect in out
    assert "PLAY RECAP" in out
    assert rc in (0, 2)
