"""Controller-side parts of ansible's actions, as fleetkit's own code: each prepares on the
controller what ansible's action plugin prepares (facts, package manager choice, rendered
templates, files to transfer) and then runs ansible's real module on the host."""

from __future__ import annotations

from fleetkit.playbook.actions import facts, files, k8s_drain_check, package, services
from fleetkit.playbook.modules import Module

__all__ = ["ACTIONS"]

ACTIONS: dict[str, Module] = {
    m.name: m for mod in (facts, package, files, services, k8s_drain_check) for m in mod.MODULES
}
