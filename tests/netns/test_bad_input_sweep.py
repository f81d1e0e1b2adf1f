"""Bad input to ``fleetkit ns ...``: one ``error:`` line, exit 2, never a traceback.

Each case fails on its arguments before any namespace is entered (the target is this process).
"""

from __future__ import annotations

import os

import pytest

from fleetkit.cli import main

CASES = [
    ("dig port out of range", ["dig", "-p", "99999", "@127.0.0.1", "x"], "invalid port"),
    ("connect port out of range", ["connect", "127.0.0.1:99999"], "expected HOST:PORT"),
    ("connect negative timeout", ["connect", "127.0.0.1:1", "--timeout", "-1"], "invalid duration"),
    ("http port out of range", ["http", "http://127.0.0.1:99999/"], "Port out of range"),
    ("http broken IPv6 URL", ["http", "http://[::1"], "Invalid IPv6 URL"),
    ("capture zero packets", ["capture", "-c", "0"], "invalid count"),
    ("capture bad duration", ["capture", "--duration", "abc"], "invalid duration"),
    ("capture -w a directory", ["capture", "-w", "/"], "Is a directory"),
    ("capture -w in a missing dir", ["capture", "-w", "/nonexistent-dir/x.pcap"], "writable"),
]


@pytest.mark.parametrize(("what", "args", "expect"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(
    what: str, args: list[str], expect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["ns", args[0], "-t", str(os.getpid()), *args[1:]])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("error: "), err
    assert expect in err.splitlines()[0]
    assert rc == 2
