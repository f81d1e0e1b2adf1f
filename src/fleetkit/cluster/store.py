"""The object store: every API object by resource, namespace and name, one global
resourceVersion, and watches (with a bounded history so a watch can start from a list's
resourceVersion).

Objects are plain JSON-like dicts and are never mutated once stored: a write stores a new dict,
so watchers and readers may hold references without copying.
"""

from __future__ import annotations

import asyncio
import collections
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["Store", "WatchEvent", "Watch", "now_ts", "new_uid", "HISTORY", "Gone"]

HISTORY = 20_000  # events kept for watches that start at an older resourceVersion
Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace or "", name)


_LAST_TS: list[Any] = [None, ""]  # the last second formatted, and its text


def now_ts(t: float | None = None) -> str:
    """An RFC 3339 timestamp as the API writes them (seconds; formatted once per second)."""
    sec = math.floor(time.time() if t is None else t)
    if sec != _LAST_TS[0]:
        _LAST_TS[1] = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        _LAST_TS[0] = sec
    return str(_LAST_TS[1])


_RANDOM: list[Any] = [b"", 0]  # random bytes read ahead from the OS, and the next one to use


def new_uid() -> str:
    """A random UUID (version 4) as the API server gives ``metadata.uid``; the OS's random bytes
    are read 4 KiB at a time (``uuid.uuid4()`` makes a system call per uid)."""
    data, pos = _RANDOM
    if pos >= len(data):
        data, pos = os.urandom(4096), 0
        _RANDOM[0] = data
    _RANDOM[1] = pos + 16
    h = data[pos : pos + 16].hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


def _forget_random() -> None:
    _RANDOM[:] = [b"", 0]  # a forked child must not reuse its parent's bytes


os.register_at_fork(after_in_child=_forget_random)


class Gone(Exception):
    """The requested resourceVersion is older than the kept history (HTTP 410)."""


@dataclass(slots=True)
class WatchEvent:
    """ADDED, MODIFIED or DELETED, with the object as stored after the change (never changed
    once emitted; not frozen: a frozen dataclass's construction costs three times as much)."""

    rv: int
    resource: str
    type: str
    obj: Obj
    old: Obj | None = None


@dataclass(slots=True)
class Watch:
    """One client's watch: a filter and a queue of matching events (None closes it)."""

    resource: str
    match: Callable[[Obj], bool]
    queue: asyncio.Queue[WatchEvent | None] = field(default_factory=asyncio.Queue)


class Store:
    """Objects by resource (``plural`` or ``group/plural``), then by (namespace, name)."""

    def __init__(self) -> None:
        self.rv = 1
        self.objects: dict[str, dict[Key, Obj]] = collections.defaultdict(dict)
        # the same objects by resource, then namespace, then name (namespaced lists)
        self.by_ns: dict[str, dict[str, dict[str, Obj]]] = collections.defaultdict(
            lambda: collections.defaultdict(dict)
        )
        self.history: collections.deque[WatchEvent] = collections.deque(maxlen=HISTORY)
        self.watches: list[Watch] = []
        self.listeners: list[Callable[[WatchEvent], None]] = []

    # -- reads ---------------------------------------------------------------------------------
    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        return self.objects[resource].get((namespace, name))

    def list(self, resource: str, namespace: str = "") -> list[Obj]:
        if not namespace:
            objs = self.objects[resource]
            return [objs[k] for k in sorted(objs)]
        named = self.by_ns[resource].get(namespace) or {}
        return [named[n] for n in sorted(named)]

    def iter(self, resource: str) -> Iterator[Obj]:
        yield from list(self.objects[resource].values())

    # -- writes --------------------------------------------------------------------------------
    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def create(self, resource: str, obj: Obj) -> Obj:
        """Store a new object (the caller checked it does not exist); stamps metadata."""
        meta = obj.setdefault("metadata", {})
        if "uid" not in meta:
            meta["uid"] = new_uid()
        meta.setdefault("creationTimestamp", now_ts())
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        key = (str(meta.get("namespace") or ""), str(meta["name"]))
        self.objects[resource][key] = obj
        self.by_ns[resource][key[0]][key[1]] = obj
        self._emit(WatchEvent(rv, resource, "ADDED", obj))
        return obj

    def update(self, resource: str, obj: Obj) -> Obj:
        """Replace a stored object with ``obj`` (a new dict); bumps generation on spec change."""
        meta = obj["metadata"]
        key = (str(meta.get("namespace") or ""), str(meta["name"]))
        old = self.objects[resource].get(key)
        if old is not None:
            ometa = old.get("metadata") or {}
            meta["uid"] = ometa.get("uid")
            meta["creationTimestamp"] = ometa.get("creationTimestamp")
            if "generation" in ometa:
                gen = int(ometa["generation"])
                if _spec_of(obj) != _spec_of(old):
                    gen += 1
                meta["generation"] = gen
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        self.objects[resource][key] = obj
        self.by_ns[resource][key[0]][key[1]] = obj
        self._emit(WatchEvent(rv, resource, "MODIFIED" if old else "ADDED", obj, old))
        return obj

    def delete(self, resource: str, namespace: str, name: str) -> Obj | None:
        old = self.objects[resource].pop((namespace, name), None)
        if old is None:
            return None
        self.by_ns[resource][namespace].pop(name, None)
        rv = self._next_rv()
        gone = dict(old)
        gone["metadata"] = {**old["metadata"], "resourceVersion": str(rv)}
        self._emit(WatchEvent(rv, resource, "DELETED", gone, old))
        return gone

    # -- watches -------------------------------------------------------------------------------
    def _emit(self, ev: WatchEvent) -> None:
        self.history.append(ev)
        for w in self.watches:
            if w.resource == ev.resource and (w.match(ev.obj) or (ev.old and w.match(ev.old))):
                w.queue.put_nowait(ev)
        for listener in self.listeners:
            listener(ev)

    def watch(self, resource: str, match: Callable[[Obj], bool], since: int | None) -> Watch:
        """A watch that first replays the kept events after ``since`` (None: from now)."""
        w = Watch(resource, match)
        if since is not None and since < self.rv:
            if self.history and since + 1 < self.history[0].rv and since != 0:
                raise Gone(f"too old resource version: {since} ({self.history[0].rv - 1})")
            for ev in self.history:
                if ev.rv > since and ev.resource == resource and match(ev.obj):
                    w.queue.put_nowait(ev)
        self.watches.append(w)
        return w

    def stop(self, w: Watch) -> None:
        if w in self.watches:
            self.watches.remove(w)

    def close_all(self) -> None:
        for w in self.watches:
            w.queue.put_nowait(None)
        self.watches.clear()


def _spec_of(obj: Obj) -> Any:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
