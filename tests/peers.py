"""Real peers for interop tests: under CI=true a missing peer FAILS, elsewhere it skips.

Use :func:`require` at the top of a test or fixture::

    skopeo = require("skopeo", "apt-get install -y skopeo")
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

__all__ = ["in_ci", "require", "require_module", "require_root"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(what: str, install: str) -> None:
    msg = f"{what} is missing; install it with: {install}"
    if in_ci():
        pytest.fail(f"CI=true and {msg}", pytrace=False)
    pytest.skip(msg)


def require(binary: str, install: str) -> str:
    """Return the path of ``binary`` or fail (CI) / skip (elsewhere)."""
    path = shutil.which(binary) or next(
        (p for d in ("/usr/sbin", "/sbin", "/usr/bin") if os.access(p := f"{d}/{binary}", os.X_OK)),
        None,
    )
    if path is None:
        _missing(binary, install)
        raise AssertionError("unreachable")
    return path


def require_module(module: str, install: str) -> None:
    if importlib.util.find_spec(module) is None:
        _missing(f"Python module {module}", install)


def require_root(reason: str) -> None:
    if os.geteuid() != 0:
        _missing(f"root ({reason})", "run the tests as root (CI does)")
