"""Controller-side file actions (``copy``, ``template``, ...)."""

from __future__ import annotations

from fleetkit.playbook.modules import Module

__all__ = ["MODULES"]

MODULES: tuple[Module, ...] = ()
