"""Output callbacks: ``default`` (ansible's screen format) and ``json`` (one event a line)."""

from fleetkit.playbook.callbacks.default import DefaultCallback
from fleetkit.playbook.callbacks.json import JsonCallback

__all__ = ["DefaultCallback", "JsonCallback"]
