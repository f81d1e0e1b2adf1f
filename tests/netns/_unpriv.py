"""Run ``python -m fleetkit`` as an unprivileged user wherever the checkout lives.

CI clones into directories other users may not traverse (``mktemp -d`` is 0700), so the
package is copied once into a world-readable temporary directory and put on ``PYTHONPATH``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

__all__ = ["unprivileged_env"]

_SRC = Path(__file__).resolve().parents[2] / "src" / "fleetkit"
_copy: Path | None = None


def _cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def unprivileged_env() -> dict[str, str]:
    """The environment for ``sys.executable -m fleetkit`` run as another user."""
    global _copy
    if not os.access(sys.executable, os.X_OK):
        pytest.skip(f"{sys.executable} is not executable")
    if _copy is None:
        top = Path(tempfile.mkdtemp(prefix="fleetkit-unpriv-"))
        atexit.register(_cleanup, top)
        shutil.copytree(_SRC, top / "fleetkit", ignore=shutil.ignore_patterns("__pycache__"))
        for dirpath, _dirnames, filenames in os.walk(top):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o644)
        _copy = top
    env = dict(os.environ)
    env["PYTHONPATH"] = str(_copy)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env
