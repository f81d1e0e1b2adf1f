"""The engine's entry point for the CLI: ``PlaybookRunner(inv, plays, opts, cb).run()``.

The engine itself lives in variables.py, iterator.py, executor.py, strategies/ and
play_runner.py; this module only keeps the name the CLI imports.
"""

from __future__ import annotations

from fleetkit.playbook.options import RunOptions, RunSummary
from fleetkit.playbook.play_runner import PlaybookExecutor as PlaybookRunner

__all__ = ["RunOptions", "PlaybookRunner", "RunSummary"]
