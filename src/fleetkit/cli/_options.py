"""Flags and helpers shared by the subsystem CLIs."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from fleetkit.errors import UsageError

__all__ = ["ArgumentParser", "stderr_is_tty"]


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` (exit 2) instead of exiting by itself.

    ``epilog`` should end with a runnable example; help keeps its formatting.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, hint=f"run '{self.prog} --help' for usage")


def stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
