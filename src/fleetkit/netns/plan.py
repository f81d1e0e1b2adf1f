"""Parse ``nsenter`` arguments into a :class:`Plan`: what to enter, in which order. Pure.

Parsing follows util-linux's getopt_long string ``+ahVt:m::u::i::n::p::C::U::T::S:G:r::w::W:FZ``:
options stop at the first non-option (``+``), optional arguments must be attached (``-n/path``,
``--net=/path``), long options may be abbreviated to any unique prefix. fleetkit adds
``--container``, ``--pod`` and ``--pod-container`` to name a target without its PID.
"""

from __future__ import annotations

from fleetkit.netns.namespaces import KINDS

__all__ = ["Plan", "PlanError", "parse"]

# short flag -> 0 (no argument), 1 (required), 2 (optional, attached only)
_SHORT = {"a": 0, "h": 0, "V": 0, "t": 1, "S": 1, "G": 1, "r": 2, "w": 2, "W": 1, "F": 0, "Z": 0}
_SHORT.update({kind[2]: 2 for kind in KINDS})
_LONG = {
    "all": ("a", 0),
    "help": ("h", 0),
    "version": ("V", 0),
    "target": ("t", 1),
    "setuid": ("S", 1),
    "setgid": ("G", 1),
    "preserve-credentials": ("preserve-credentials", 0),
    "root": ("r", 2),
    "wd": ("w", 2),
    "wdns": ("W", 1),
    "no-fork": ("F", 0),
    "follow-context": ("Z", 0),
    "container": ("container", 1),
    "pod": ("pod", 1),
    "pod-container": ("pod-container", 1),
}
_LONG.update({kind[3]: (kind[2], 2) for kind in KINDS})


class PlanError(Exception):
    """A bad command line; the message is util-linux's wording."""


class Plan:
    """Everything nsenter decided from its arguments, before touching the system."""

    __slots__ = (
        "target",
        "container",
        "pod",
        "pod_container",
        "namespaces",
        "all",
        "uid",
        "gid",
        "preserve_credentials",
        "root",
        "root_from_target",
        "wd",
        "wd_from_target",
        "wdns",
        "fork",
        "argv",
        "help",
        "version",
    )

    def __init__(self) -> None:
        self.target: int | None = None
        self.container: str | None = None
        self.pod: str | None = None
        self.pod_container: str | None = None
        # ns name -> explicit file, or None to take it from the target; insertion order irrelevant
        self.namespaces: dict[str, str | None] = {}
        self.all = False
        self.uid: int | None = None
        self.gid: int | None = None
        self.preserve_credentials = False
        self.root: str | None = None
        self.root_from_target = False
        self.wd: str | None = None
        self.wd_from_target = False
        self.wdns: str | None = None
        self.fork: bool | None = None  # None: fork only when a pid namespace is entered
        self.argv: list[str] = []
        self.help = False
        self.version = False

    def ordered(self) -> list[tuple[str, int, str | None]]:
        """Enabled namespaces in util-linux's order: (name, CLONE_NEW*, explicit file or None)."""
        return [(k[0], k[1], self.namespaces[k[0]]) for k in KINDS if k[0] in self.namespaces]

    def needs_target(self) -> bool:
        return (
            any(path is None for path in self.namespaces.values())
            or self.all
            or self.root_from_target
            or self.wd_from_target
        )


def _number(value: str, what: str) -> int:
    try:
        number = int(value, 10)
    except ValueError:
        raise PlanError(f"failed to parse {what}: '{value}'") from None
    if number < 0:
        raise PlanError(f"failed to parse {what}: '{value}'")
    return number


def _apply(plan: Plan, key: str, value: str | None, seen: set[str]) -> None:
    seen.add(key)
    if key in ("w", "W") and {"w", "W"} <= seen:
        raise PlanError("mutually exclusive arguments: --wdns --wd")
    if key == "a":
        plan.all = True
    elif key == "h":
        plan.help = True
    elif key == "V":
        plan.version = True
    elif key == "t":
        assert value is not None
        plan.target = _number(value, "pid")
        if plan.target == 0:
            raise PlanError(f"failed to parse pid: '{value}'")
    elif key == "S":
        assert value is not None
        plan.uid = _number(value, "uid")
    elif key == "G":
        assert value is not None
        plan.gid = _number(value, "gid")
    elif key == "preserve-credentials":
        plan.preserve_credentials = True
    elif key == "r":
        plan.root, plan.root_from_target = (value, False) if value else (None, True)
    elif key == "w":
        value = value[1:] if value and value.startswith("=") else value
        plan.wd, plan.wd_from_target = (value, False) if value else (None, True)
    elif key == "W":
        plan.wdns = value[1:] if value and value.startswith("=") else value
    elif key == "F":
        plan.fork = False
    elif key == "Z":
        pass  # SELinux: nothing to follow where SELinux is disabled
    elif key == "container":
        plan.container = value
    elif key == "pod":
        plan.pod = value
    elif key == "pod-container":
        plan.pod_container = value
    else:
        for name, _nstype, short, _long in KINDS:
            if key == short:
                value = value[1:] if value and value.startswith("=") else value
                plan.namespaces[name] = value or None
                return
        raise AssertionError(key)


def parse(argv: list[str]) -> Plan:
    """Parse nsenter's arguments; raises :class:`PlanError` with util-linux's wording."""
    plan = Plan()
    seen: set[str] = set()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break  # '+': stop at the first non-option
        i += 1
        if arg.startswith("--"):
            name, eq, attached = arg[2:].partition("=")
            matches = [n for n in _LONG if n == name] or [n for n in _LONG if n.startswith(name)]
            if len(matches) != 1:
                if matches:
                    raise PlanError(f"option '{arg}' is ambiguous")
                raise PlanError(f"unrecognized option '{arg}'")
            key, kind = _LONG[matches[0]]
            value: str | None = attached if eq else None
            if kind == 0 and eq:
                raise PlanError(f"option '--{matches[0]}' doesn't allow an argument")
            if kind == 1 and not eq:
                if i >= len(argv):
                    raise PlanError(f"option '--{matches[0]}' requires an argument")
                value = argv[i]
                i += 1
            _apply(plan, key, value, seen)
            continue
        j = 1
        while j < len(arg):
            flag = arg[j]
            j += 1
            kind = _SHORT.get(flag, -1)
            if kind < 0:
                raise PlanError(f"invalid option -- '{flag}'")
            if kind == 0:
                _apply(plan, flag, None, seen)
                continue
            rest = arg[j:]
            if kind == 2:
                _apply(plan, flag, rest or None, seen)
            elif rest:
                _apply(plan, flag, rest, seen)
            elif i < len(argv):
                _apply(plan, flag, argv[i], seen)
                i += 1
            else:
                raise PlanError(f"option requires an argument -- '{flag}'")
            break
    plan.argv = argv[i:]
    return plan
