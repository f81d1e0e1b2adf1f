"""Modules: what to do on a host. Each module is ``run(ctx, args) -> result dict`` with
ansible's parameter names and returned keys; ``SPECS`` validates parameters with ansible's
messages ("Unsupported parameters for (x) module: ...", "missing required arguments: ...")."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fleetkit.playbook.connection import Become, Connection
from fleetkit.playbook.errors import ModuleError

__all__ = [
    "ModuleContext",
    "Module",
    "get_module",
    "resolve",
    "unresolved_message",
    "validate",
    "Param",
]


@dataclass(slots=True)
class ModuleContext:
    host: str
    conn: Connection
    check: bool = False
    become: Become | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    verbosity: int = 0
    evaluate: Callable[[str], Any] | None = None
    condition: Callable[[Any], bool] | None = None  # a conditional's result (assert: that)
    template: Callable[[Any], Any] | None = None  # render a value with the task's variables
    remote_python: str = "python3"
    interpreter: str | None = None  # the configured interpreter (None: discovery)
    task_name: str = ""
    env: dict[str, str] | None = None
    diff: bool = False
    no_log: bool = False
    action: str = ""  # the module name as the task wrote it (ansible's _ansible_module_name)
    # the task's module_defaults for a module the action runs: (module name, args) -> args
    module_defaults: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None
    # ansible.cfg / ANSIBLE_* values of the run (RunOptions.config): what actions read
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Param:
    type: str = "str"
    default: Any = None
    required: bool = False
    choices: tuple[Any, ...] | None = None
    aliases: tuple[str, ...] = ()
    elements: str | None = None


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    run: Callable[[ModuleContext, dict[str, Any]], dict[str, Any]]
    params: Mapping[str, Param] | None  # None: free keys (set_fact)
    check_mode: bool = True
    controller: bool = False  # runs on the controller (action plugin)
    run_once: bool = False
    # ansible's AnsibleModule(required_one_of=..., mutually_exclusive=...): groups of names
    required_one_of: tuple[tuple[str, ...], ...] = ()
    mutually_exclusive: tuple[tuple[str, ...], ...] = ()


def _bool(v: Any, name: str) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("yes", "on", "1", "true", "y", "t"):
        return True
    if s in ("no", "off", "0", "false", "n", "f", ""):
        return False
    raise ModuleError(
        f"argument '{name}' is of type {type(v).__name__} and we were unable to convert to "
        f"bool: The value '{v}' is not a valid boolean."
    )


def _convert(value: Any, p: Param, name: str) -> Any:
    if value is None:
        return None
    t = p.type
    try:
        if t == "str":
            if isinstance(value, (dict, list)):
                raise ModuleError(
                    f"argument '{name}' is of type {type(value).__name__} and we "
                    "were unable to convert to str"
                )
            return value if isinstance(value, str) else str(value)
        if t == "bool":
            return _bool(value, name)
        if t == "int":
            return int(value)
        if t == "float":
            return float(value)
        if t == "list":
            if isinstance(value, list):
                items = value
            elif isinstance(value, str):
                items = [x.strip() for x in value.split(",")] if value else []
            else:
                items = [value]
            if p.elements == "int":
                return [int(x) for x in items]
            if p.elements == "str":
                return [str(x) for x in items]
            return items
        if t == "dict":
            if isinstance(value, dict):
                return value
            raise ModuleError(
                f"argument '{name}' is of type {type(value).__name__} and we "
                "were unable to convert to dict"
            )
        if t == "raw":
            return value
    except (TypeError, ValueError):
        raise ModuleError(
            f"argument '{name}' is of type {type(value).__name__} and we were unable to convert "
            f"to {t}: {value!r}"
        ) from None
    return value


def validate(module: Module, args: dict[str, Any]) -> dict[str, Any]:
    if module.params is None:
        return dict(args)
    spec = module.params
    alias_map = {a: n for n, p in spec.items() for a in p.aliases}
    out: dict[str, Any] = {}
    unknown = []
    for k, v in args.items():
        if k.startswith("_ansible_"):
            continue
        name = k if k in spec else alias_map.get(k)
        if name is None:
            unknown.append(k)
            continue
        out[name] = v
    if unknown:
        supported = sorted(set(spec) | set(alias_map))
        supported = [
            s for s in supported if s != "_raw_params" or module.name in ("command", "shell", "raw")
        ]
        raise ModuleError(
            f"Unsupported parameters for (ansible.legacy.{module.name}) module: "
            f"{', '.join(sorted(unknown))}. "
            f"Supported parameters include: {', '.join(supported)}."
        )
    # ansible's checks count the names given (a null value counts), in its order
    given = set(out)
    exclusive = [g for g in module.mutually_exclusive if len(given.intersection(g)) > 1]
    if exclusive:
        groups = ", ".join("|".join(g) for g in exclusive)
        raise ModuleError(f"parameters are mutually exclusive: {groups}")
    missing = sorted(n for n, p in spec.items() if p.required and n not in out)
    if missing:
        raise ModuleError(f"missing required arguments: {', '.join(missing)}")
    for n, p in spec.items():
        v = _convert(out.get(n), p, n)
        if v is None:
            v = p.default
        if p.choices is not None and v is not None:
            values = v if isinstance(v, list) else [v]
            for x in values:
                if x not in p.choices:
                    raise ModuleError(
                        f"value of {n} must be one of: {', '.join(str(c) for c in p.choices)}, "
                        f"got: {x}"
                    )
        out[n] = v
    for group in module.required_one_of:
        if not given.intersection(group):
            raise ModuleError(f"one of the following is required: {', '.join(group)}")
    return out


# fleetkit's own implementations: ansible's controller-side actions, and the modules whose
# native code gives ansible's result for the same arguments (differential tests in
# tests/playbook/test_agent_modules.py); every other name runs ansible's own module
_NATIVE = frozenset(
    {
        "command",
        "shell",
        "raw",
        "debug",
        "fail",
        "assert",
        "set_fact",
        "pause",
        "reboot",
        "include_vars",
        "validate_argument_spec",
        "async_status",
        "add_host",
        "group_by",
    }
)
_BUILTIN_PREFIXES = ("ansible.builtin.", "ansible.legacy.")


def _short(name: str) -> str:
    for prefix in _BUILTIN_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def unresolved_message(name: str) -> str:
    """ansible's message for a module or action name that does not resolve."""
    return (
        f"couldn't resolve module/action '{name}'. This often indicates a misspelling, "
        "missing collection, or incorrect module path."
    )


def resolve(name: str, collections: Sequence[str] = ()) -> str | None:
    """The FQCN a task's module/action name runs as (``file`` -> ``ansible.builtin.file``), or
    None when neither fleetkit's actions nor ansible-core/the installed collections have it.
    A short name is looked up first in the play's or role's ``collections:`` list, in order."""
    from fleetkit.playbook.modules import _finder

    if "." not in name:
        for coll in collections:
            if coll in ("ansible.builtin", "ansible.legacy"):
                found = _resolve_one(name)
            else:
                found = _finder.resolve(f"{coll}.{name}")
            if found is not None:
                return found
    return _resolve_one(name)


def _resolve_one(name: str) -> str | None:
    from fleetkit.playbook import actions
    from fleetkit.playbook.actions.ansible_actions import find_action_plugin
    from fleetkit.playbook.modules import _finder

    if find_action_plugin(name) is not None:
        # an action plugin of a directory (ansible.legacy) or a collection
        return name if "." in name else f"ansible.legacy.{name}"
    short = _short(name)
    if name == short or name.startswith(_BUILTIN_PREFIXES):
        if short in _NATIVE or short in actions.ACTIONS or short in ("meta",):
            return f"ansible.builtin.{short}"
    return _finder.resolve(name)


def get_module(name: str) -> Module:
    """The :class:`Module` that runs a task's action (native, controller action or ansible's)."""
    from fleetkit.playbook import actions
    from fleetkit.playbook.actions.ansible_actions import (
        ANSIBLE_CORE_ACTIONS,
        action_plugin_module,
        core_action_plugin,
        find_action_plugin,
    )
    from fleetkit.playbook.modules import (
        async_status,
        command,
        debug,
        include_vars,
        inventory_tasks,
        reboot,
        upstream,
    )

    plugin = find_action_plugin(name)
    if plugin is not None:
        return action_plugin_module(name, plugin)
    core = core_action_plugin(name)
    if core is not None:
        short = name.rsplit(".", 1)[-1]
        return action_plugin_module(name, core, run_once=ANSIBLE_CORE_ACTIONS[short])
    short = _short(name)
    builtin = name == short or name.startswith(_BUILTIN_PREFIXES)
    if builtin and short in _NATIVE:
        natives: tuple[Module, ...] = (
            *command.MODULES,
            *debug.MODULES,
            *reboot.MODULES,
            *include_vars.MODULES,
            *async_status.MODULES,
            *inventory_tasks.MODULES,
        )
        for m in natives:
            if m.name == short:
                return m
    if builtin and short in actions.ACTIONS:
        return _shows_diff(actions.ACTIONS[short])
    found = upstream.upstream_module(name)
    if found is None:
        raise ModuleError(unresolved_message(name))
    return _shows_diff(found)


def _shows_diff(module: Module) -> Module:
    """Mark results of diff-mode runs, so the callback prints their ``diff`` as ansible does."""
    inner = module.run

    def run(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
        result = inner(ctx, args)
        if ctx.diff and result.get("diff"):
            result["_ansible_show_diff"] = True
        return result

    return replace(module, run=run)
