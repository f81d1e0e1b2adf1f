"""core/v1 Events as the components record them, aggregated (same object, reason, message and
source: one Event whose count and lastTimestamp grow)."""

from __future__ import annotations

from typing import Any

from fleetkit.cluster.store import now_ts

__all__ = ["Recorder"]

Obj = dict[str, Any]


class Recorder:
    """Writes Events into the store for a component (``default-scheduler``, ...)."""

    def __init__(self, state: Any) -> None:
        self.state = state
        # `fleetkit schedule` prints no Normal events (Scheduled, SuccessfulCreate, ...): off there
        self.normal = True
        self.index: dict[tuple[str, str, str, str, str], tuple[str, str]] = {}

    def record(
        self, obj: Obj, type_: str, reason: str, message: str, component: str, host: str = ""
    ) -> None:
        if type_ == "Normal" and not self.normal:
            return
        meta = obj.get("metadata") or {}
        ns = str(meta.get("namespace") or "default")
        uid = str(meta.get("uid") or "")
        key = (uid, reason, message, component, type_)
        res = self.state.res("", "Event")
        now = now_ts()
        hit = self.index.get(key)
        if hit is not None:
            old = self.state.store.get("events", hit[0], hit[1])
            if old is not None:
                new = {**old, "count": int(old.get("count") or 1) + 1, "lastTimestamp": now}
                new["metadata"] = dict(old["metadata"])
                self.state.store.update("events", new)
                return
        name = f"{meta.get('name')}.{self.state.rng.getrandbits(64):016x}"
        ev: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {
                "kind": obj.get("kind"),
                "namespace": meta.get("namespace"),
                "name": meta.get("name"),
                "uid": meta.get("uid"),
                "apiVersion": obj.get("apiVersion"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "source": {"component": component, **({"host": host} if host else {})},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": type_,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": host,
        }
        if self.state.store.get("namespaces", "", ns) is None:
            return
        self.state.store.create(res.qualified, ev)
        self.index[key] = (ns, name)
