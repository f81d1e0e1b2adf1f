"""What every controller shares: owner references, selectors, pod readiness."""

from __future__ import annotations

from typing import Any

from fleetkit.cluster.api.selectors import labels_match

__all__ = ["controller_ref", "owner_ref", "is_active", "is_ready", "selects"]

Obj = dict[str, Any]


def controller_ref(obj: Obj) -> Obj | None:
    """The owner reference marked controller (the stored dict itself: read it, never change it)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref  # type: ignore[no-any-return]
    return None


def owner_ref(owner: Obj) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_active(pod: Obj) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def is_ready(pod: Obj) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def selects(owner: Obj, obj: Obj) -> bool:
    sel = (owner.get("spec") or {}).get("selector")
    return bool(sel) and labels_match(sel, (obj.get("metadata") or {}).get("labels") or {})
