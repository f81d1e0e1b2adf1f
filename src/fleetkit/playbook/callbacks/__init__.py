"""Output callbacks: ``default`` (ansible's screen format), ``json`` (one event a line) and
ansible's own callback plugins behind a shim (``stdout_callback``, ``callbacks_enabled``)."""

from __future__ import annotations

import sys
from typing import Any

from fleetkit.playbook.callbacks.default import DefaultCallback
from fleetkit.playbook.callbacks.json import JsonCallback
from fleetkit.playbook.callbacks.shim import AnsiblePlugins, Tee, is_default_stdout, load_plugins
from fleetkit.playbook.config import Config
from fleetkit.playbook.events import Callback

__all__ = ["DefaultCallback", "JsonCallback", "AnsiblePlugins", "Tee", "build_callback"]


def build_callback(
    cfg: Config, playbook: str, verbosity: int, check: bool, cli: dict[str, Any]
) -> Callback:
    """The callbacks ansible-playbook would run for this configuration, as one Callback."""
    native = DefaultCallback(
        sys.stdout, sys.stderr, verbosity=verbosity, check=check, options=cfg.values
    )
    stdout_name = str(cfg["stdout_callback"])
    enabled = [str(c) for c in cfg["callbacks_enabled"] if c]
    if is_default_stdout(stdout_name) and not enabled:
        return native
    own = None if is_default_stdout(stdout_name) else stdout_name
    plugins = load_plugins(own, enabled, playbook, verbosity, cli)
    shim = AnsiblePlugins(plugins, warn=native, diff=bool(cli.get("diff")))
    if own is not None:
        return shim
    return Tee([native, shim])
