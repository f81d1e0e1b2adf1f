"""``module_defaults`` as ansible-core 2.19 applies it.

The keyword (play, block, role, task, include ``apply``) is a list of dicts: each level's entries
come after its parent's, so the nearest wins. Keys are static: an action or module name, resolved
to its FQCN when the playbook loads (a short name is ``ansible.legacy.<name>`` and also covers
``ansible.builtin.<name>``), or ``group/<name>``: an action group of ansible.builtin or of a
collection (``action_groups`` in its ``meta/runtime.yml``, with ``metadata: extend_group``).
Values may be templates. When a task runs, the defaults of its groups, then of its own action,
are overridden by the task's arguments; an action that runs further modules (``package``, an
action plugin's ``_execute_module``) applies the defaults of each module it runs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

import yaml

__all__ = ["ModuleDefaultsError", "normalize", "args_with_defaults", "group_actions"]

_lock = threading.Lock()
_groups: dict[str, tuple[str, ...]] = {}


class ModuleDefaultsError(ValueError):
    """A module_defaults value ansible refuses (its message)."""


def _resolve(name: str) -> str | None:
    from fleetkit.playbook.modules import resolve

    return resolve(name)


def normalize(value: Any) -> list[dict[str, Any]]:
    """A ``module_defaults`` keyword value as ansible validates it: a list of dicts whose keys
    are FQCNs or ``group/<fqcn>``."""
    if value is None:
        return []
    entries = value if isinstance(value, list) else [value]
    out: list[dict[str, Any]] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise ModuleDefaultsError(
                "The field 'module_defaults' is supposed to be a dictionary or list of "
                "dictionaries, the keys of which must be static action, module, or group "
                "names. Only the values may contain templates. For example: "
                "{'ping': \"{{ ping_defaults }}\"}"
            )
        validated: dict[str, Any] = {}
        for key, defaults in entry.items():
            key = str(key)
            if "{{" in key or "{%" in key:
                raise ModuleDefaultsError(
                    "The field 'module_defaults' is supposed to be a dictionary or list of "
                    "dictionaries, the keys of which must be static action, module, or group "
                    "names. Only the values may contain templates. For example: "
                    "{'ping': \"{{ ping_defaults }}\"}"
                )
            if key.startswith("group/"):
                fq_group, _actions = _group(key[len("group/") :])
                validated[f"group/{fq_group}"] = defaults
                continue
            name = key if len(key.split(".")) >= 3 else f"ansible.legacy.{key}"
            resolved = _resolve(name)
            if resolved is None:
                raise ModuleDefaultsError(f"Could not resolve action {name} in module_defaults")
            validated[resolved] = defaults
            if name.startswith("ansible.legacy."):
                builtin = _resolve(name.replace("ansible.legacy.", "ansible.builtin.", 1))
                if builtin is not None:
                    validated[builtin] = defaults
        out.append(validated)
    return out


def _collection_groups(collection: str) -> dict[str, Any]:
    if collection == "ansible.builtin":
        from fleetkit.playbook.modules import _finder

        base = _finder._ansible_dir()
        path = os.path.join(base, "config", "ansible_builtin_runtime.yml") if base else ""
    else:
        from fleetkit.playbook.modules import _finder

        ns, _, coll = collection.partition(".")
        cdir = _finder._collection_dir(ns, coll)
        if cdir is None:
            raise ModuleDefaultsError(f"collection {collection} not found")
        path = os.path.join(cdir, "meta", "runtime.yml")
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError):
        return {}
    groups = data.get("action_groups") if isinstance(data, dict) else None
    return groups if isinstance(groups, dict) else {}


def _is_fqcr(name: str) -> bool:
    return len(name.split(".")) >= 3


def _group(
    name: str, mandatory: bool = True, seen: frozenset[str] = frozenset()
) -> tuple[str, tuple[str, ...]]:
    """(FQCN of the group, the FQCNs of its actions, extended groups included)."""
    if _is_fqcr(name):
        collection = ".".join(name.split(".")[:2])
        fq = name
    else:
        collection = "ansible.builtin"
        fq = f"ansible.builtin.{name}"
    with _lock:
        if fq in _groups:
            return fq, _groups[fq]
    missing = f"Error loading module_defaults: could not resolve the module_defaults group {fq}"
    try:
        groups = _collection_groups(collection)
    except ModuleDefaultsError:
        if not mandatory:
            return fq, ()
        raise ModuleDefaultsError(missing) from None
    group = groups.get(fq, groups.get(fq[len(collection) + 1 :]))
    if not isinstance(group, list):
        if not mandatory:
            return fq, ()
        raise ModuleDefaultsError(missing)
    actions: list[str] = []
    extend: list[str] = []
    for action in group:
        if isinstance(action, dict):
            meta = action.get("metadata")
            if isinstance(meta, dict):
                more = meta.get("extend_group", [])
                extend = [more] if isinstance(more, str) else list(more or [])
            continue
        action = str(action)
        if not _is_fqcr(action):
            action = f"{collection}.{action}"
        resolved = _resolve(action)
        if resolved is not None:
            actions.append(resolved)
    for other in extend:
        other = other if _is_fqcr(other) else f"{collection}.{other}"
        if other in seen or other == fq:
            continue
        _fq, more_actions = _group(other, mandatory=False, seen=seen | {fq})
        actions.extend(more_actions)
    result = tuple(actions)
    with _lock:
        _groups[fq] = result
    return fq, result


def group_actions(group: str) -> tuple[str, ...]:
    """The FQCNs of the actions in a (fully qualified) action group."""
    return _group(group, mandatory=False)[1]


def args_with_defaults(
    action: str,
    args: Mapping[str, Any],
    defaults: list[dict[str, Any]] | None,
    render: Callable[[Any], Any],
) -> dict[str, Any]:
    """The arguments ``action`` (an FQCN) runs with: its groups' defaults, then its own, then
    ``args``; ``render`` templates the values of the defaults."""
    if not defaults:
        return dict(args)
    merged: dict[str, Any] = {}
    for entry in defaults:
        merged.update(entry)
    out: dict[str, Any] = {}
    for key in merged:
        if key.startswith("group/") and action in group_actions(key[len("group/") :]):
            value = render(merged[key])
            if isinstance(value, Mapping):
                out.update(value)
    if action in merged:
        value = render(merged[action])
        if isinstance(value, Mapping):
            out.update(value)
    out.update(args)
    return out
