"""Plugins that take no part in Filter/Score here: queue sort, binder, preemption marker, and the
volume plugins (volumes are out of scope: pods are placed as if their claims bind)."""

from __future__ import annotations

from fleetkit.scheduler.plugins.base import Plugin


class PrioritySort(Plugin):
    name = "PrioritySort"
    points = frozenset({"queueSort"})


class DefaultBinder(Plugin):
    name = "DefaultBinder"
    points = frozenset({"bind"})


class DefaultPreemption(Plugin):
    name = "DefaultPreemption"
    points = frozenset({"preEnqueue", "postFilter"})


class SchedulingGates(Plugin):
    name = "SchedulingGates"
    points = frozenset({"preEnqueue"})


class VolumeRestrictions(Plugin):
    name = "VolumeRestrictions"
    points = frozenset({"preFilter", "filter"})
    node_local = True


class NodeVolumeLimits(Plugin):
    name = "NodeVolumeLimits"
    points = frozenset({"preFilter", "filter"})
    node_local = True


class VolumeBinding(Plugin):
    name = "VolumeBinding"
    points = frozenset({"preFilter", "filter", "reserve", "preBind"})
    node_local = True


class VolumeZone(Plugin):
    name = "VolumeZone"
    points = frozenset({"preFilter", "filter"})
    node_local = True
