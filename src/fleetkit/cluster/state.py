"""The API's write semantics over the store: decoding (strict/warn/ignore field validation),
defaulting and admission, validation with the API's messages, optimistic concurrency, dry
runs, and deletion with garbage collection of dependents (propagation policies)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from fleetkit.cluster.api.resources import RESOURCES, Resource, by_kind
from fleetkit.cluster.api.schema import decode_errors
from fleetkit.cluster.defaults import apply_defaults, priority_classes
from fleetkit.cluster.store import Store, now_ts
from fleetkit.errors import ClusterError, UsageError
from fleetkit.scheduler import clone, is_lenient, validate_object

__all__ = ["ApiError", "ClusterState", "key_of", "not_found", "SYSTEM_NAMESPACES"]

Obj = dict[str, Any]
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


class ApiError(ClusterError):
    """An API failure: HTTP code, reason and the Status object kubectl prints."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.details = details or {}

    def status(self) -> Obj:
        out: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            out["details"] = self.details
        return out


def key_of(res: Resource) -> str:
    """The store key of a resource (``pods``, ``deployments.apps``)."""
    return res.qualified


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{res.qualified} "{name}" not found',
        {"name": name, "group": res.group, "kind": res.plural},
    )


def _invalid(res: Resource, name: str, errs: list[str]) -> ApiError:
    causes = []
    for e in errs:
        fld, _, msg = e.partition(": ")
        reason = "FieldValueRequired" if msg.startswith("Required value") else "FieldValueInvalid"
        causes.append({"reason": reason, "message": msg, "field": fld})
    kind_q = f"{res.kind}.{res.group}" if res.group else res.kind
    return ApiError(
        422,
        "Invalid",
        f'{kind_q} "{name}" is invalid: '
        + ", ".join(errs if len(errs) < 2 else [f"[{', '.join(errs)}]"]),
        {"name": name, "group": res.group, "kind": res.kind, "causes": causes},
    )


@dataclass(slots=True)
class WriteResult:
    """A stored (or dry-run) object and the warnings for the response's Warning headers."""

    obj: Obj
    warnings: list[str] = field(default_factory=list)


class ClusterState:
    """The store plus the API's write rules; controllers write through it too."""

    def __init__(self, store: Store | None = None, seed: int | None = None) -> None:
        self.store = store or Store()
        self.rng = random.Random(seed)
        self.resources = {key_of(r): r for r in RESOURCES}
        self.applied: dict[tuple[str, str, str, str], Obj] = {}  # SSA: last config per manager
        for ns in SYSTEM_NAMESPACES:
            self.create(self.res("", "Namespace"), {"metadata": {"name": ns}})
        self.create(
            self.res("", "ServiceAccount"),
            {"metadata": {"name": "default", "namespace": "default"}},
        )

    # -- lookups -------------------------------------------------------------------------------
    @staticmethod
    def res(group: str, kind: str) -> Resource:
        r = by_kind(f"{group}/v1" if group else "v1", kind)
        assert r is not None, kind
        return r

    def get(self, res: Resource, ns: str, name: str) -> Obj:
        obj = self.store.get(key_of(res), ns if res.namespaced else "", name)
        if obj is None:
            raise not_found(res, name)
        return obj

    def objects(self, res: Resource, ns: str = "") -> list[Obj]:
        return self.store.list(key_of(res), ns if res.namespaced else "")

    # -- decoding ------------------------------------------------------------------------------
    def decode(self, res: Resource, body: Any, validation: str = "Strict") -> tuple[Obj, list[str]]:
        """Check the body's kind and fields; Strict raises on unknown fields, Warn returns them."""
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
        kind = str(body.get("kind") or res.kind)
        av = str(body.get("apiVersion") or res.api_version)
        head = f'{kind} in version "{res.version}" cannot be handled as a {res.kind}'
        if kind != res.kind or av != res.api_version:
            raise ApiError(
                400,
                "BadRequest",
                f"the API version in the data ({av}) does not match the expected API version "
                f"({res.api_version})"
                if av != res.api_version
                else f"{head}: kind mismatch",
            )
        errs = decode_errors(body, res.kind)
        fatal = [e.message for e in errs if not e.unknown]
        if fatal:
            raise ApiError(400, "BadRequest", f"{head}: {fatal[0]}")
        unknown = [e.message for e in errs if e.unknown]
        if unknown and validation == "Strict":
            raise ApiError(
                400, "BadRequest", f"{head}: strict decoding error: " + ", ".join(unknown)
            )
        obj = _prune_nulls(body)
        obj["kind"], obj["apiVersion"] = res.kind, res.api_version
        return obj, unknown if validation == "Warn" else []

    def _validate(self, res: Resource, obj: Obj) -> None:
        errs = [e for e in validate_object(obj) if not is_lenient(e, res.kind)]
        if errs:
            raise _invalid(res, str(obj["metadata"].get("name") or ""), errs)

    # -- writes --------------------------------------------------------------------------------
    def _namespace_of(self, res: Resource, obj: Obj, ns: str) -> str:
        meta = obj.setdefault("metadata", {})
        if not res.namespaced:
            meta.pop("namespace", None)
            return ""
        body_ns = meta.get("namespace")
        if body_ns and ns and body_ns != ns:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        ns = ns or str(body_ns or "default")
        meta["namespace"] = ns
        if self.store.get("namespaces", "", ns) is None:
            raise ApiError(
                404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"}
            )
        return ns

    def create(
        self,
        res: Resource,
        obj: Obj,
        ns: str = "",
        dry_run: bool = False,
        keep_uid: bool = False,
        from_template: bool = False,
        defaulted: bool = False,
    ) -> Obj:
        """Create through admission; ``keep_uid`` (loading a dump) keeps metadata.uid so the
        dump's ownerReferences still point at their owners (and a terminating pod stays so).
        ``from_template``: a controller's new pod, built from a fresh copy of a template the API
        already validated (the copy is not copied again, nor the spec validated twice).
        ``defaulted``: its spec is one defaulting and admission already produced (shared, as
        stored objects are never mutated, by the pods of one template)."""
        if not from_template:
            obj = clone(obj)
        obj["kind"], obj["apiVersion"] = res.kind, res.api_version
        ns = self._namespace_of(res, obj, ns)
        meta = obj["metadata"]
        for k in (
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "managedFields",
        ):
            if not (keep_uid and k in ("uid", "creationTimestamp", "deletionTimestamp")):
                meta.pop(k, None)
        if not meta.get("name") and meta.get("generateName"):
            while True:
                choice = self.rng.choice
                name = str(meta["generateName"]) + "".join([choice(_ALPHANUMS) for _ in range(5)])
                if self.store.get(key_of(res), ns, name) is None:
                    meta["name"] = name
                    break
        name = str(meta.get("name") or "")
        if defaulted:
            pass
        elif res.kind == "Pod":
            try:
                apply_defaults(
                    res.kind,
                    obj,
                    priority_classes(self.objects(self.res("scheduling.k8s.io", "PriorityClass"))),
                )
            except UsageError as exc:
                raise ApiError(
                    403, "Forbidden", exc.message, {"name": name, "kind": "pods"}
                ) from exc
        else:
            apply_defaults(res.kind, obj)
        if not from_template:
            self._validate(res, obj)
        if self.store.get(key_of(res), ns, name) is not None:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{res.qualified} "{name}" already exists',
                {"name": name, "group": res.group, "kind": res.plural},
            )
        if dry_run:
            meta.setdefault("uid", "00000000-0000-0000-0000-000000000000")
            meta["creationTimestamp"] = now_ts()
            return obj
        return self.store.create(key_of(res), obj)

    def update(
        self,
        res: Resource,
        obj: Obj,
        ns: str = "",
        subresource: str = "",
        dry_run: bool = False,
        check_rv: bool = True,
    ) -> Obj:
        obj = clone(obj)
        obj["kind"], obj["apiVersion"] = res.kind, res.api_version
        ns = self._namespace_of(res, obj, ns)
        meta = obj["metadata"]
        name = str(meta.get("name") or "")
        old = self.store.get(key_of(res), ns, name)
        if old is None:
            raise not_found(res, name)
        rv = meta.get("resourceVersion")
        if check_rv and rv and str(rv) != old["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                {"name": name, "group": res.group, "kind": res.plural},
            )
        if subresource == "status":
            new = {**old, "status": obj.get("status") or {}}
            new["metadata"] = dict(old["metadata"])
        else:
            new = obj
            if "status" in old:
                new["status"] = old["status"]
            for k in (
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "ownerReferences",
            ):
                if k in old["metadata"] and k not in meta:
                    meta[k] = old["metadata"][k]
            if res.kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"):
                apply_defaults(res.kind, new)
            elif res.kind == "Pod":
                self._check_pod_update(old, new)
            self._validate(res, new)
        if dry_run:
            return new
        return self.store.update(key_of(res), new)

    @staticmethod
    def _check_pod_update(old: Obj, new: Obj) -> None:
        ospec, nspec = old.get("spec") or {}, new.get("spec") or {}
        allowed = (
            "containers",
            "initContainers",
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
        )
        strip = {k: v for k, v in nspec.items() if k not in allowed}
        ostrip = {k: v for k, v in ospec.items() if k not in allowed}
        if ostrip != strip:
            name = old["metadata"]["name"]
            raise ApiError(
                422,
                "Invalid",
                f'Pod "{name}" is invalid: spec: Forbidden: pod updates may not change fields other '
                "than `spec.containers[*].image`,`spec.initContainers[*].image`,"
                "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it "
                "was previously negative)",
                {
                    "name": name,
                    "kind": "Pod",
                    "causes": [{"reason": "FieldValueForbidden", "field": "spec"}],
                },
            )

    def write(self, res: Resource, obj: Obj) -> Obj:
        """A controller's write: store ``obj`` as is (no admission, no RV check)."""
        if (
            self.store.get(
                key_of(res), str(obj["metadata"].get("namespace") or ""), obj["metadata"]["name"]
            )
            is None
        ):
            return self.store.create(key_of(res), obj)
        return self.store.update(key_of(res), obj)

    def delete(
        self,
        res: Resource,
        ns: str,
        name: str,
        propagation: str = "Background",
        dry_run: bool = False,
    ) -> Obj:
        ns = ns if res.namespaced else ""
        obj = self.get(res, ns, name)
        if res.kind == "Namespace" and name in ("default", "kube-system", "kube-public"):
            raise ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                {"name": name, "kind": "namespaces"},
            )
        if dry_run:
            return obj
        gone = self.store.delete(key_of(res), ns, name)
        assert gone is not None
        for k in [k for k in self.applied if k[:3] == (key_of(res), ns, name)]:
            del self.applied[k]
        uid = obj["metadata"].get("uid")
        if res.kind == "Namespace":
            for r in RESOURCES:
                if r.namespaced:
                    for o in self.store.list(key_of(r), name):
                        self.delete(r, name, o["metadata"]["name"], "Background")
            return gone
        self._collect(uid, ns, propagation)
        return gone

    def _collect(self, uid: Any, ns: str, propagation: str) -> None:
        """The garbage collector: dependents of a deleted owner are deleted (or orphaned)."""
        for r in RESOURCES:
            if not r.namespaced:
                continue
            for o in self.store.list(key_of(r), ns):
                refs = o["metadata"].get("ownerReferences") or []
                if not any(ref.get("uid") == uid for ref in refs):
                    continue
                if propagation == "Orphan":
                    new = clone(o)
                    new["metadata"]["ownerReferences"] = [
                        ref for ref in refs if ref.get("uid") != uid
                    ] or None
                    if new["metadata"]["ownerReferences"] is None:
                        del new["metadata"]["ownerReferences"]
                    self.store.update(key_of(r), new)
                else:
                    self.delete(r, ns, o["metadata"]["name"], "Background")


def _prune_nulls(v: Any) -> Any:
    """A copy without null map values (Go decodes them to zero values that omitempty drops)."""
    if isinstance(v, dict):
        return {k: _prune_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_prune_nulls(x) for x in v]
    return v
