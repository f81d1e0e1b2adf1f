"""Every command has --help ending with a runnable example, and a docs page that names it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fleetkit.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]
DOCS = {
    "fleetkit.cli.registry": "registry.md",
    "fleetkit.cli.client": "registry.md",
    "fleetkit.cli.schedule": "schedule.md",
    "fleetkit.cli.cluster": "cluster.md",
    "fleetkit.cli.play": "play.md",
    "fleetkit.cli.nsenter": "nsenter.md",
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_ends_with_example(command: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fleetkit", command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    tail = proc.stdout.rstrip().splitlines()[-3:]
    assert any(line.strip().startswith("fleetkit ") for line in tail), proc.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_docs_page_names_command(command: str) -> None:
    page = ROOT / "docs" / DOCS[COMMANDS[command][0]]
    assert page.exists(), page
    assert f"fleetkit {command}" in page.read_text()


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown command 'frobnicate'")
    assert "hint:" in err


def test_unexpected_exception_is_one_line_unless_debug(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 item 19: a bug is 'error: internal error (please report)'; --debug shows it."""
    import fleetkit.cli.client as client_cli

    def boom(_args: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setitem(client_cli._HANDLERS, "logout", boom)
    assert main(["logout", "127.0.0.1:5000"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.splitlines() == [
        "error: internal error (please report): ZeroDivisionError: a bug",
        "hint: run again with 'fleetkit --debug logout ...' to see the traceback",
    ]
    assert main(["--debug", "logout", "127.0.0.1:5000"]) == 1
    out, err = capsys.readouterr()
    assert "Traceback (most recent call last)" in err and "ZeroDivisionError: a bug" in err
    assert err.rstrip().splitlines()[-1] == (
        "error: internal error (please report): ZeroDivisionError: a bug"
    )
    monkeypatch.setenv("FLEETKIT_DEBUG", "1")
    assert main(["logout", "127.0.0.1:5000"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_a_command_module_is_imported_with_the_gc_paused_then_frozen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """cli._import_command: no cyclic collection during the import (a quarter of the import
    CPU of `fleetkit pull`), what it built frozen afterwards, and the GC on again."""
    import gc
    import importlib
    import types

    from fleetkit import cli

    seen: list[bool] = []

    def fake_import(name: str) -> types.ModuleType:
        seen.append(gc.isenabled())
        return types.ModuleType(name)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    before = gc.get_freeze_count()
    try:
        assert cli._import_command("fleetkit.cli.example").__name__ == "fleetkit.cli.example"
        assert seen == [False]
        assert gc.isenabled()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
