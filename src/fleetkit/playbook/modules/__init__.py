"""Modules: what to do on a host. Each module is ``run(ctx, args) -> result dict`` with
ansible's parameter names and returned keys; ``SPECS`` validates parameters with ansible's
messages ("Unsupported parameters for (x) module: ...", "missing required arguments: ...")."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetkit.playbook.connection import Become, Connection
from fleetkit.playbook.errors import ModuleError

__all__ = ["ModuleContext", "Module", "get_module", "validate", "Param"]


@dataclass(slots=True)
class ModuleContext:
    host: str
    conn: Connection
    check: bool = False
    become: Become | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    verbosity: int = 0
    evaluate: Callable[[str], Any] | None = None
    remote_python: str = "python3"
    task_name: str = ""
    env: dict[str, str] | None = None


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
    missing = [n for n, p in spec.items() if p.required and out.get(n) is None]
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
    return out


def get_module(name: str) -> Module:
    from fleetkit.playbook.modules import (
        command,
        copy,
        debug,
        facts,
        include_vars,
        inventory_tasks,
        package,
        reboot,
        uri,
        wait_for,
    )

    table: dict[str, Module] = {}
    for mod in (
        command,
        copy,
        debug,
        facts,
        include_vars,
        inventory_tasks,
        package,
        reboot,
        uri,
        wait_for,
    ):
        for m in mod.MODULES:
            table[m.name] = m
    try:
        return table[name]
    except KeyError:
        raise ModuleError(f"couldn't resolve module/action '{name}'") from None
