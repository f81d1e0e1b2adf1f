"""What-if steps (``fleetkit schedule --then``) in kubectl's own grammar.

A step is a kubectl command line, with or without the leading ``kubectl``::

    kubectl scale deployment.apps/nginx --replicas=6      (also: scale deploy nginx --replicas 6)
    kubectl apply -f FILE
    kubectl taint nodes NODE key=value:NoSchedule [key:NoExecute-] [--overwrite]
    kubectl label nodes NODE key=value [key-] [--overwrite]
    kubectl cordon NODE | kubectl uncordon NODE
    kubectl drain NODE [--ignore-daemonsets] [--force] [--delete-emptydir-data]
    kubectl delete node NAME... | kubectl delete nodes -l SELECTOR

Flags kubectl has but that change nothing offline are accepted only where listed; any other
flag is refused with kubectl's ``unknown flag`` message.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from fleetkit.errors import UsageError

__all__ = ["Step", "parse_step", "STEP_HINT", "resource_kind"]

INT32_MAX = 2**31 - 1
STEP_HINT = (
    'steps are kubectl commands: "kubectl scale deployment.apps/NAME --replicas=N", '
    '"kubectl apply -f FILE", "kubectl taint nodes NODE key=value:NoSchedule", '
    '"kubectl label nodes NODE key=value", "kubectl cordon NODE", "kubectl uncordon NODE", '
    '"kubectl drain NODE --ignore-daemonsets", "kubectl delete node NAME"'
)
# resource names kubectl resolves (short names, singular, plural), with their API group
_RESOURCES = {
    "Deployment": ("apps", ("deploy", "deployment", "deployments")),
    "ReplicaSet": ("apps", ("rs", "replicaset", "replicasets")),
    "StatefulSet": ("apps", ("sts", "statefulset", "statefulsets")),
    "Job": ("batch", ("job", "jobs")),
    "Node": ("", ("no", "node", "nodes")),
    "Pod": ("", ("po", "pod", "pods")),
    "Namespace": ("", ("ns", "namespace", "namespaces")),
}
# flags each verb takes without a value (kubectl's; those that change nothing offline included)
_BOOL_FLAGS = {
    "scale": set(),
    "apply": {"--server-side", "--force-conflicts"},
    "taint": {"--overwrite", "--all"},
    "label": {"--overwrite", "--all"},
    "cordon": set(),
    "uncordon": set(),
    "drain": {"--ignore-daemonsets", "--force", "--delete-emptydir-data", "--disable-eviction"},
    "delete": {"--wait", "--now"},
}
_VALUE_FLAGS = {"-n", "--namespace", "-f", "--filename", "-l", "--selector", "--replicas"}


@dataclass(slots=True)
class Step:
    """One parsed ``--then`` step."""

    text: str
    verb: str
    kind: str = ""
    name: str = ""
    names: list[str] = field(default_factory=list)
    namespace: str = "default"
    replicas: int = 0
    files: list[str] = field(default_factory=list)
    selector: str = ""
    changes: list[str] = field(default_factory=list)  # taint/label arguments, in order
    flags: set[str] = field(default_factory=set)


def resource_kind(word: str) -> str | None:
    """kubectl's resource argument (``deploy``, ``deployments.apps``, ``deployment.v1.apps``)."""
    base, _, group = word.lower().partition(".")
    if group.startswith("v1."):
        group = group[3:]
    elif group == "v1":
        group = ""
    for kind, (g, names) in _RESOURCES.items():
        if base in names and (not group or group == g):
            return kind
    return None


def _fail(text: str, message: str) -> UsageError:
    return UsageError(f"--then {text!r}: {message}", hint=STEP_HINT)


def _replicas(text: str, value: str) -> int:
    try:
        n = int(value)
    except ValueError as exc:
        raise _fail(
            text,
            f'invalid argument "{value}" for "--replicas" flag: strconv.ParseInt: parsing '
            f'"{value}": invalid syntax',
        ) from exc
    if n > INT32_MAX:
        raise UsageError(
            f"--then {text!r}: invalid --replicas {value!r}: value out of range",
            hint=f"replicas is an int32 field: at most {INT32_MAX}",
        )
    if n < 0:
        raise _fail(
            text,
            "The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0",
        )
    return n


def parse_step(text: str) -> Step:
    """A ``--then`` step; kubectl's messages for what kubectl itself would refuse."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"--then {text!r}: {exc}") from exc
    if words and words[0] == "kubectl":
        words = words[1:]
    if not words:
        raise UsageError("--then: empty step", hint=STEP_HINT)
    verb, rest = words[0], words[1:]
    if verb not in _BOOL_FLAGS:
        raise _fail(text, f'unknown command "{verb}" for "kubectl"')
    step = Step(text, verb)
    pos: list[str] = []
    i = 0
    while i < len(rest):
        w = rest[i]
        if not w.startswith("-") or w == "-" or (verb in ("taint", "label") and w.endswith("-")):
            pos.append(w)
            i += 1
            continue
        flag, eq, value = w.partition("=")
        if flag in _VALUE_FLAGS:
            if not eq:
                i += 1
                if i >= len(rest):
                    raise _fail(text, f"flag needs an argument: {flag}")
                value = rest[i]
            if flag == "--replicas" and verb == "scale":
                step.replicas = _replicas(text, value)
                step.flags.add("--replicas")
            elif flag in ("-n", "--namespace"):
                step.namespace = value
            elif flag in ("-f", "--filename") and verb == "apply":
                step.files.append(value)
            elif flag in ("-l", "--selector") and verb in ("delete", "taint", "label"):
                step.selector = value
            else:
                raise _fail(text, f"unknown flag: {flag}")
        elif flag in _BOOL_FLAGS[verb] and (not eq or value in ("true", "false")):
            if value != "false":
                step.flags.add(flag)
        else:
            raise _fail(text, f"unknown flag: {flag}")
        i += 1
    if verb == "scale":
        if len(pos) == 1 and "/" in pos[0]:
            res, step.name = pos[0].split("/", 1)
        elif len(pos) == 2:
            res, step.name = pos
        else:
            raise _fail(text, "scale needs TYPE/NAME or TYPE NAME")
        kind = resource_kind(res)
        if kind not in ("Deployment", "ReplicaSet", "StatefulSet", "Job"):
            raise _fail(text, f'the server doesn\'t have a resource type "{res}"')
        step.kind = kind
        if "--replicas" not in step.flags:
            raise _fail(text, "The --replicas=COUNT flag is required")
    elif verb == "apply":
        if not step.files or pos:
            raise _fail(text, "must specify one of -f and -k")
    elif verb in ("cordon", "uncordon", "drain"):
        if len(pos) != 1:
            raise _fail(text, "USAGE: " + verb + " NODE [flags]")
        step.kind, step.name = "Node", pos[0]
    elif verb in ("taint", "label"):
        if not pos:
            raise _fail(text, "You must provide one or more resources by argument or filename.")
        res, _, name = pos[0].partition("/")
        kind = resource_kind(res)
        if kind != "Node" and not (verb == "label" and kind in ("Pod", "Namespace")):
            raise _fail(text, f'{verb} of "{res}" is not supported here: nodes only')
        step.kind = kind
        args = pos[1:]
        if not name and not step.selector and "--all" not in step.flags:
            if not args:
                raise _fail(text, "You must provide one or more resources by argument or filename.")
            name, args = args[0], args[1:]
        step.name = name
        if not args:
            raise _fail(text, f"at least one {verb} update is required")
        step.changes = args
    elif verb == "delete":
        kind = resource_kind(pos[0]) if pos else None
        if kind != "Node":
            raise _fail(text, "only nodes can be deleted in a step")
        step.kind = "Node"
        step.names = pos[1:]
        if not step.names and not step.selector:
            raise _fail(text, "resource(s) were provided, but no name was specified")
    return step
