"""API validation of the fields the scheduler reads, with kube's field paths and messages.

Only what changes placement is validated (affinity, tolerations, spread constraints, resources,
names); the report reads like `kubectl apply`'s: ``The Deployment "nginx" is invalid: ...``.
"""

from __future__ import annotations

from typing import Any

from fleetkit.scheduler.labels import label_value_errors, qualified_name_errors
from fleetkit.scheduler.model import parse_quantity

__all__ = ["validate_object", "format_invalid", "is_lenient", "HINTS"]

# Validation errors the scheduler still gives a defined meaning, reported as warnings instead
# of rejecting the input: minDomains is ignored by ScheduleAnyway scoring; on a bare Pod (test
# fixtures, hand-written what-ifs) an empty pod (anti-)affinity topologyKey names a label no
# node has, so required affinity never matches and anti-affinity never blocks. Workload
# templates stay strict: that is the mistake `kubectl apply` catches (the seed's manifest).
_LENIENT = ("can only use minDomains if whenUnsatisfiable=DoNotSchedule",)


def is_lenient(err: str, kind: str = "") -> bool:
    if any(m in err for m in _LENIENT):
        return True
    return (
        kind == "Pod"
        and err.startswith("spec.affinity.pod")
        and ".topologyKey: " in err
        and ("Required value: can not be empty" in err or 'Invalid value: "": ' in err)
    )


_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)

HINTS = {
    "topologyKey": (
        "topologyKey must name a node label: kubernetes.io/hostname (at most one matching pod per "
        "node) or topology.kubernetes.io/zone (per zone)"
    ),
}


def _q(v: Any) -> str:
    return '"' + str(v).replace('"', '\\"') + '"'


def _label_key_errs(key: str, path: str) -> list[str]:
    return [f"{path}: Invalid value: {_q(key)}: {m}" for m in qualified_name_errors(key)]


def _selector_errs(sel: Any, path: str) -> list[str]:
    errs: list[str] = []
    if sel is None:
        return errs
    if not isinstance(sel, dict):
        return [f"{path}: Invalid value: {_q(sel)}: must be an object"]
    for i, e in enumerate(sel.get("matchExpressions") or []):
        p = f"{path}.matchExpressions[{i}]"
        op = e.get("operator")
        vals = e.get("values") or []
        if op in ("In", "NotIn"):
            if not vals:
                errs.append(
                    f"{p}.values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
                )
        elif op in ("Exists", "DoesNotExist"):
            if vals:
                errs.append(
                    f"{p}.values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                )
        else:
            errs.append(f"{p}.operator: Invalid value: {_q(op)}: not a valid selector operator")
    return errs


def _node_selector_term_errs(term: Any, path: str) -> list[str]:
    """Node selector terms are left to NodeAffinity: a term it cannot parse matches no node."""
    return []


def _affinity_term_errs(term: Any, path: str) -> list[str]:
    term = term or {}
    errs = _selector_errs(term.get("labelSelector"), f"{path}.labelSelector")
    errs += _selector_errs(term.get("namespaceSelector"), f"{path}.namespaceSelector")
    tk = str(term.get("topologyKey") or "")
    if not tk:
        errs.append(f"{path}.topologyKey: Required value: can not be empty")
    errs += _label_key_errs(tk, f"{path}.topologyKey")
    return errs


def _affinity_errs(aff: Any, path: str) -> list[str]:
    errs: list[str] = []
    if not isinstance(aff, dict):
        return errs
    for kind in ("podAffinity", "podAntiAffinity"):
        pa = aff.get(kind) or {}
        for i, t in enumerate(pa.get("requiredDuringSchedulingIgnoredDuringExecution") or []):
            errs += _affinity_term_errs(
                t, f"{path}.{kind}.requiredDuringSchedulingIgnoredDuringExecution[{i}]"
            )
        for i, t in enumerate(pa.get("preferredDuringSchedulingIgnoredDuringExecution") or []):
            p = f"{path}.{kind}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
            errs += _affinity_term_errs((t or {}).get("podAffinityTerm"), f"{p}.podAffinityTerm")
    return errs


def _toleration_errs(tols: Any, path: str) -> list[str]:
    errs: list[str] = []
    for i, t in enumerate(tols or []):
        p = f"{path}[{i}]"
        key = str(t.get("key") or "")
        op = t.get("operator") or "Equal"
        if key:
            errs += _label_key_errs(key, f"{p}.key")
        elif op != "Exists":
            errs.append(
                f'{p}.operator: Invalid value: {_q(op)}: operator must be Exists when `key` is empty, which means "match all values and all keys"'
            )
        if op == "Exists" and t.get("value"):
            errs.append(
                f"{p}.operator: Invalid value: {_q(t.get('value'))}: value must be empty when `operator` is 'Exists'"
            )
        elif op not in ("Equal", "Exists"):
            errs.append(
                f'{p}.operator: Unsupported value: {_q(op)}: supported values: "Equal", "Exists"'
            )
        eff = t.get("effect")
        if eff and eff not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            errs.append(
                f'{p}.effect: Unsupported value: {_q(eff)}: supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'
            )
    return errs


def _spread_errs(cons: Any, path: str) -> list[str]:
    errs: list[str] = []
    seen: set[tuple[str, str]] = set()
    for i, c in enumerate(cons or []):
        p = f"{path}[{i}]"
        ms = c.get("maxSkew")
        if not isinstance(ms, int) or ms <= 0:
            errs.append(f"{p}.maxSkew: Invalid value: {ms}: must be greater than zero")
        tk = str(c.get("topologyKey") or "")
        if not tk:
            errs.append(f"{p}.topologyKey: Required value: can not be empty")
        wu = c.get("whenUnsatisfiable")
        if wu not in ("DoNotSchedule", "ScheduleAnyway"):
            errs.append(
                f'{p}.whenUnsatisfiable: Unsupported value: {_q(wu)}: supported values: "DoNotSchedule", "ScheduleAnyway"'
            )
        md = c.get("minDomains")
        if md is not None:
            if not isinstance(md, int) or md <= 0:
                errs.append(f"{p}.minDomains: Invalid value: {md}: must be greater than 0")
            elif wu != "DoNotSchedule":
                errs.append(
                    f"{p}.minDomains: Invalid value: {md}: can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {wu}"
                )
        for pol in ("nodeAffinityPolicy", "nodeTaintsPolicy"):
            v = c.get(pol)
            if v is not None and v not in ("Honor", "Ignore"):
                errs.append(
                    f'{p}.{pol}: Unsupported value: {_q(v)}: supported values: "Honor", "Ignore"'
                )
        pair = (tk, str(wu))
        if pair in seen:
            errs.append(
                f"{p}.{{topologyKey, whenUnsatisfiable}}: Duplicate value: {{{_q(tk)}, {_q(wu)}}}"
            )
        seen.add(pair)
        errs += _selector_errs(c.get("labelSelector"), f"{p}.labelSelector")
    return errs


def _resources_errs(containers: Any, path: str) -> list[str]:
    errs: list[str] = []
    for i, c in enumerate(containers or []):
        res = c.get("resources") or {}
        reqs = res.get("requests") or {}
        lims = res.get("limits") or {}
        p = f"{path}[{i}].resources"
        parsed: dict[str, dict[str, Any]] = {"requests": {}, "limits": {}}
        for kind, rl in (("requests", reqs), ("limits", lims)):
            for name, q in rl.items():
                try:
                    v = parse_quantity(q)
                except ValueError as exc:
                    errs.append(f"{p}.{kind}[{name}]: Invalid value: {_q(q)}: {exc}")
                    continue
                if v < 0:
                    errs.append(
                        f"{p}.{kind}[{name}]: Invalid value: {_q(q)}: must be greater than or equal to 0"
                    )
                parsed[kind][name] = v
        for name, rv in parsed["requests"].items():
            lv = parsed["limits"].get(name)
            if lv is not None and rv > lv:
                errs.append(
                    f"{p}.requests: Invalid value: {_q(reqs[name])}: must be less than or equal to {name} limit of {lims[name]}"
                )
    return errs


def validate_pod_spec(spec: Any, path: str) -> list[str]:
    if not isinstance(spec, dict):
        return [f"{path}: Required value"]
    errs = _affinity_errs(spec.get("affinity"), f"{path}.affinity")
    errs += _toleration_errs(spec.get("tolerations"), f"{path}.tolerations")
    errs += _spread_errs(spec.get("topologySpreadConstraints"), f"{path}.topologySpreadConstraints")
    errs += _resources_errs(spec.get("containers"), f"{path}.containers")
    errs += _resources_errs(spec.get("initContainers"), f"{path}.initContainers")
    for k, v in (spec.get("nodeSelector") or {}).items():
        errs += _label_key_errs(str(k), f"{path}.nodeSelector")
        errs += [
            f"{path}.nodeSelector: Invalid value: {_q(v)}: {m}" for m in label_value_errors(str(v))
        ]
    return errs


def _meta_errs(obj: dict[str, Any]) -> list[str]:
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    errs: list[str] = []
    if not name and not meta.get("generateName"):
        errs.append("metadata.name: Required value: name or generateName is required")
    elif name:
        import re

        if (
            not re.match(
                r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", str(name)
            )
            or len(str(name)) > 253
        ):
            errs.append(f"metadata.name: Invalid value: {_q(name)}: {_DNS1123_LABEL_MSG}")
    for k, v in (meta.get("labels") or {}).items():
        errs += _label_key_errs(str(k), "metadata.labels")
        errs += [
            f"metadata.labels: Invalid value: {_q(v)}: {m}"
            for m in label_value_errors("" if v is None else str(v))
        ]
    return errs


def validate_object(obj: dict[str, Any]) -> list[str]:
    kind = obj.get("kind")
    shape = _shape_errs(obj)
    if shape:
        return shape
    # Node names are not checked: fixtures and kind clusters use names kube's lister tolerates.
    errs = _meta_errs(obj) if kind != "Node" else []
    if kind == "Node":
        for field_name in ("capacity", "allocatable"):
            for name, q in ((obj.get("status") or {}).get(field_name) or {}).items():
                try:
                    parse_quantity(q)
                except ValueError as exc:
                    errs.append(f"status.{field_name}[{name}]: Invalid value: {_q(q)}: {exc}")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        errs += validate_pod_spec(spec, "spec")
    elif kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"):
        tmpl = spec.get("template") or {}
        errs += validate_pod_spec(tmpl.get("spec") or {}, "spec.template.spec")
        if kind != "Job":
            sel = spec.get("selector")
            if not sel:
                errs.append("spec.selector: Required value")
            else:
                errs += _selector_errs(sel, "spec.selector")
                from fleetkit.scheduler.labels import parse_label_selector

                s = parse_label_selector(sel)
                tl = {
                    str(k): str(v)
                    for k, v in ((tmpl.get("metadata") or {}).get("labels") or {}).items()
                }
                if not s.error and not s.matches(tl):
                    errs.append(
                        "spec.template.metadata.labels: Invalid value: "
                        + _q(_fmt_map(tl))
                        + ": `selector` does not match template `labels`"
                    )
        reps = spec.get("replicas")
        if reps is not None and (not isinstance(reps, int) or reps < 0):
            errs.append(f"spec.replicas: Invalid value: {reps}: must be greater than or equal to 0")
    elif kind == "PriorityClass":
        value = obj.get("value")
        name = str((obj.get("metadata") or {}).get("name") or "")
        if not isinstance(value, int):
            errs.append("value: Required value")
        elif value > 1_000_000_000 and not name.startswith("system-"):
            errs.append(
                "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"
            )
        pp = obj.get("preemptionPolicy")
        if pp is not None and pp not in ("PreemptLowerPriority", "Never"):
            errs.append(
                f'preemptionPolicy: Unsupported value: "{pp}": supported values: '
                '"Never", "PreemptLowerPriority"'
            )
    return errs


def _shape_errs(obj: dict[str, Any]) -> list[str]:
    """Fields of the wrong JSON type, reported as the API server's decoder does."""
    errs: list[str] = []

    def want(v: Any, typ: type, path: str, tname: str) -> bool:
        if v is not None and not isinstance(v, typ):
            errs.append(f"{path}: Invalid value: {_q(v)}: expected {tname}")
            return False
        return v is not None

    want(obj.get("metadata"), dict, "metadata", "object")
    meta: dict[str, Any] = obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}
    want(meta.get("labels"), dict, "metadata.labels", "object")
    if want(obj.get("spec"), dict, "spec", "object"):
        spec = obj["spec"]
        pod_specs = [("spec", spec)] if obj.get("kind") == "Pod" else []
        if want(spec.get("template"), dict, "spec.template", "object"):
            if want(spec["template"].get("spec"), dict, "spec.template.spec", "object"):
                pod_specs.append(("spec.template.spec", spec["template"]["spec"]))
            want(spec["template"].get("metadata"), dict, "spec.template.metadata", "object")
        for path, ps in pod_specs:
            for key in ("containers", "initContainers", "tolerations", "topologySpreadConstraints"):
                if want(ps.get(key), list, f"{path}.{key}", "array"):
                    for i, item in enumerate(ps[key]):
                        want(item, dict, f"{path}.{key}[{i}]", "object")
            for key in ("affinity", "nodeSelector", "overhead"):
                want(ps.get(key), dict, f"{path}.{key}", "object")
    if obj.get("kind") == "Node":
        want(obj.get("status"), dict, "status", "object")
    return errs


def _fmt_map(m: dict[str, str]) -> str:
    return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(m.items())) + "]"


def format_invalid(kind: str, name: str, errs: list[str]) -> str:
    """kubectl's StandardErrorMessage for an Invalid status."""
    head = f'The {kind} "{name}" is invalid'
    if len(errs) == 1:
        return f"{head}: {errs[0]}"
    return f"{head}: \n" + "\n".join(f"* {e}" for e in errs)
