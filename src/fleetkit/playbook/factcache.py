"""ansible's fact cache: each host's facts for the run, and across runs through the cache
plugin ansible.cfg names (``fact_caching`` / ``ANSIBLE_CACHE_PLUGIN``).

As ansible's VariableManager, one cache serves the run: gathered facts and ``set_fact`` with
``cacheable: true`` are merged into the host's entry and written back (``set_host_facts``),
``meta: clear_facts`` and ``--flush-cache`` delete entries, smart gathering asks whether the
entry says ``_ansible_facts_gathered``. The default ``memory`` plugin is a dict here; any other
plugin is ansible's own (``ansible.builtin.jsonfile``, a collection's ``yaml``/``pickle``/
``redis``..., a ``cache_plugins/`` directory's), loaded by ansible's cache loader with the
options ansible's configuration gives it (``fact_caching_connection``, ``_prefix``,
``_timeout``), so its files, keys and expiry are ansible's. A plugin that cannot load is
ansible's warning and the memory cache, as ansible does.

Each host's entry is read from the plugin once and kept until the next write (ansible's file
plugins keep what they read the same way). Strings cross the boundary with their trust as
ansible's data tags: a plain fleetkit string (trusted) is stored ``TrustedAsTemplate``, an
:class:`~fleetkit.playbook.trust.UnsafeText` as a plain string, and back.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from fleetkit.playbook.errors import PlaybookError
from fleetkit.playbook.trust import from_ansible, to_ansible

__all__ = ["FactCache", "MEMORY_NAMES", "clean_facts", "load_fact_cache", "namespace_facts"]

# what ansible's default (the builtin memory plugin) is called in ansible.cfg
MEMORY_NAMES = frozenset({"memory", "ansible.builtin.memory", "ansible.legacy.memory"})


class FactCache:
    """Per-host facts, backed by an ansible cache plugin (None: ansible's memory plugin)."""

    def __init__(self, plugin: Any = None, name: str = "memory") -> None:
        self.name = name
        self._plugin = plugin
        self._entries: dict[str, dict[str, Any] | None] = {}
        self._lock = threading.RLock()

    @property
    def persistent(self) -> bool:
        """Whether the entries live in a plugin (outside this run's memory)."""
        return self._plugin is not None

    def get(self, host: str) -> dict[str, Any] | None:
        """The facts of ``host``, or None when the cache has none (or they expired)."""
        with self._lock:
            if host in self._entries:
                return self._entries[host]
            if self._plugin is None:
                return None
            entry = self._load(host)
            self._entries[host] = entry
            return entry

    def update(self, host: str, facts: Mapping[str, Any]) -> None:
        """Merge ``facts`` into the entry of ``host`` and write it back (set_host_facts)."""
        with self._lock:
            current = self.get(host)
            if self._plugin is None:
                if current is None:
                    self._entries[host] = dict(facts)
                else:
                    current.update(facts)
                return
            merged = dict(current or {})
            merged.update(facts)
            self._call("set", host, to_ansible(merged))
            # read back as ansible reads it on its next lookup (the stored form)
            self._entries.pop(host, None)

    def delete(self, host: str) -> None:
        """Remove the entry of ``host`` (``meta: clear_facts``, ``--flush-cache``)."""
        with self._lock:
            self._entries[host] = None
            if self._plugin is not None:
                try:
                    self._call("delete", host)
                except KeyError:
                    pass

    def gathered(self, host: str) -> bool:
        """Whether the facts of ``host`` were gathered (what ``gathering = smart`` skips)."""
        entry = self.get(host)
        return bool(entry and entry.get("_ansible_facts_gathered", False))

    def _load(self, host: str) -> dict[str, Any] | None:
        try:
            value = self._call("get", host)
        except KeyError:
            return None
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise PlaybookError(
                f"The object retrieved for {host} must be a MutableMapping but was a "
                f"{type(value).__name__}",
                hint=f"remove the {self.name} cache entry of {host}",
            )
        out = from_ansible(value)
        return out if isinstance(out, dict) else dict(out)

    def _call(self, method: str, *args: Any) -> Any:
        from ansible.errors import AnsibleError

        try:
            return getattr(self._plugin, method)(*args)
        except AnsibleError as exc:
            raise PlaybookError(
                ansible_error_text(exc),
                hint=f"check the {self.name!r} fact cache (fact_caching_connection)",
            ) from None


def load_fact_cache(name: str, warn: Callable[[str], None]) -> FactCache:
    """The fact cache ``name`` (ansible's CACHE_PLUGIN); a plugin that cannot load is
    ansible's warning and the memory cache."""
    if name in MEMORY_NAMES:
        return FactCache()
    from fleetkit.playbook.plugins import _init

    _init()
    from ansible.plugins.loader import cache_loader

    try:
        plugin = cache_loader.get(name)
    except Exception as exc:  # noqa: BLE001 - ansible: "bad cache plugin is not fatal error"
        warn(ansible_error_text(exc))
        return FactCache()
    return FactCache(plugin, name)


def ansible_error_text(exc: BaseException) -> str:
    """An exception as ansible's error/warning line shows it, with its causes."""
    parts = [str(getattr(exc, "message", "") or exc) or type(exc).__name__]
    seen = {id(exc)}
    cause = exc.__cause__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        text = str(getattr(cause, "message", "") or cause) or type(cause).__name__
        parts.append(text)
        cause = cause.__cause__
    return "\n\n<<< caused by >>>\n\n".join(parts)


_restricted: tuple[frozenset[str], tuple[str, ...]] | None = None
_restricted_lock = threading.Lock()  # the forks' first results arrive together: read it once
_INTERPRETER = re.compile(r"^ansible_.*_interpreter$")


def _restricted_names() -> tuple[frozenset[str], tuple[str, ...]]:
    """ansible's clean_facts lists: magic/connection variable names and result keys, and the
    ``ansible_<connection plugin>_`` prefixes (read once from ansible)."""
    global _restricted
    with _restricted_lock:
        if _restricted is None:
            _restricted = _read_restricted()
    return _restricted


def _read_restricted() -> tuple[frozenset[str], tuple[str, ...]]:
    from ansible import constants as C
    from ansible.plugins.loader import connection_loader

    from fleetkit.playbook.plugins import _init

    _init()
    names: set[str] = set(C.COMMON_CONNECTION_VARS)
    for mapped in C.MAGIC_VARIABLE_MAPPING.values():
        names.update(mapped)
    names.update(C.RESTRICTED_RESULT_KEYS)
    names.update(C.INTERNAL_RESULT_KEYS)
    prefixes = tuple(
        sorted(
            {
                f"ansible_{os.path.splitext(os.path.basename(p))[0]}_"
                for p in connection_loader.all(path_only=True)
            }
        )
    )
    return frozenset(names), prefixes


def clean_facts(facts: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Facts as ansible injects them as variables (``clean_facts``): without the keys that
    could override connection or internal variables; returns them and the keys removed."""
    names, prefixes = _restricted_names()
    removed: list[str] = []
    for key in facts:
        if not isinstance(key, str) or key.startswith("ansible_ssh_host_key_"):
            continue
        if (
            key in names
            or _INTERPRETER.match(key)
            or key.startswith("ansible_become_")
            or (key.startswith(prefixes) and not key.endswith(("_bridge", "_gwbridge")))
        ):
            removed.append(key)
    cleaned = {
        k: v
        for k, v in facts.items()
        if k not in removed and not (isinstance(k, str) and k.startswith("_ansible_"))
    }
    return cleaned, removed


def namespace_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Facts as ``ansible_facts`` holds them: without their ``ansible_`` prefix (but
    ``ansible_local``)."""
    return {
        k[8:] if isinstance(k, str) and k.startswith("ansible_") and k != "ansible_local" else k: v
        for k, v in facts.items()
    }
