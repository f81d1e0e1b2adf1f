"""Playbook YAML -> plays, blocks and tasks (dataclasses), with file:line errors.

Block keywords (``when``, ``vars``, ``tags``, ``become``, ``ignore_errors`` ...) are pushed
down to the tasks they contain, as ansible's inheritance resolves them; ``import_tasks`` is
inlined at load time; ``include_tasks`` stays a node resolved at run time.
"""

from __future__ import annotations

import itertools
import os
import shlex
from dataclasses import dataclass, field
from typing import Any

from fleetkit.playbook.errors import PlaybookError, PlaybookSyntaxError
from fleetkit.playbook.yamlsrc import Located, load_yaml_file, source_of

__all__ = [
    "Task",
    "Block",
    "IncludeTasks",
    "Play",
    "Node",
    "load_playbook",
    "load_task_file",
    "MODULE_NAMES",
    "normalize_action",
    "RoleRef",
    "IncludeRole",
]

MODULE_NAMES = frozenset(
    {
        "command",
        "shell",
        "raw",
        "debug",
        "fail",
        "assert",
        "set_fact",
        "pause",
        "copy",
        "uri",
        "wait_for",
        "reboot",
        "package",
        "apt",
        "dnf",
        "yum",
        "setup",
        "ping",
        "meta",
        "include_tasks",
        "import_tasks",
        "gather_facts",
        "file",
    }
)
FREE_FORM = frozenset({"command", "shell", "raw"})
_FREE_FORM_KEYS = frozenset(
    {"chdir", "creates", "removes", "executable", "stdin", "stdin_add_newline", "strip_empty_ends"}
)
TASK_KEYWORDS = frozenset(
    {
        "name",
        "action",
        "args",
        "local_action",
        "when",
        "register",
        "until",
        "retries",
        "delay",
        "loop",
        "loop_control",
        "vars",
        "become",
        "become_user",
        "become_method",
        "become_flags",
        "become_exe",
        "delegate_to",
        "delegate_facts",
        "run_once",
        "no_log",
        "notify",
        "tags",
        "ignore_errors",
        "ignore_unreachable",
        "failed_when",
        "changed_when",
        "check_mode",
        "diff",
        "any_errors_fatal",
        "environment",
        "connection",
        "listen",
        "timeout",
        "async",
        "poll",
        "throttle",
        "debugger",
        "collections",
        "module_defaults",
        "port",
        "remote_user",
    }
)
BLOCK_KEYWORDS = frozenset(
    {
        "name",
        "block",
        "rescue",
        "always",
        "when",
        "vars",
        "become",
        "become_user",
        "become_method",
        "become_flags",
        "delegate_to",
        "run_once",
        "no_log",
        "tags",
        "ignore_errors",
        "ignore_unreachable",
        "check_mode",
        "diff",
        "any_errors_fatal",
        "environment",
        "connection",
        "timeout",
        "throttle",
        "debugger",
        "collections",
        "module_defaults",
        "port",
        "remote_user",
        "notify",
    }
)
PLAY_KEYWORDS = frozenset(
    {
        "name",
        "hosts",
        "gather_facts",
        "vars",
        "vars_files",
        "vars_prompt",
        "serial",
        "order",
        "strategy",
        "max_fail_percentage",
        "any_errors_fatal",
        "become",
        "become_user",
        "become_method",
        "become_flags",
        "connection",
        "tasks",
        "pre_tasks",
        "post_tasks",
        "handlers",
        "tags",
        "ignore_errors",
        "ignore_unreachable",
        "roles",
        "remote_user",
        "port",
        "environment",
        "check_mode",
        "diff",
        "no_log",
        "force_handlers",
        "gather_subset",
        "gather_timeout",
        "run_once",
        "throttle",
        "timeout",
        "collections",
        "module_defaults",
        "debugger",
        "fact_path",
    }
)
_INHERITED = (
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "delegate_to",
    "run_once",
    "no_log",
    "ignore_errors",
    "ignore_unreachable",
    "check_mode",
    "any_errors_fatal",
    "environment",
    "connection",
    "timeout",
    "remote_user",
    "port",
    "diff",
)

_ids = itertools.count(1)


def normalize_action(name: str) -> str:
    for prefix in ("ansible.builtin.", "ansible.legacy.", "ansible.posix.", "ansible.netcommon."):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


@dataclass(slots=True, frozen=True)
class RoleRef:
    """The role a task came from: its variables for the precedence layers and magic vars."""

    name: str
    path: str
    defaults: dict[str, Any] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    # names of the roles that pulled this one in (ansible_parent_role_names), nearest first
    parents: tuple[str, ...] = ()
    # include_role public: / import_role: the role's vars and defaults stay visible after it
    public: bool = False


@dataclass(slots=True)
class Task:
    action: str
    args: dict[str, Any]
    name: str | None = None
    kw: dict[str, Any] = field(default_factory=dict)
    when: list[Any] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    line: int = 0
    col: int = 0
    uid: int = field(default_factory=lambda: next(_ids))
    handler: bool = False
    listen: list[str] = field(default_factory=list)
    in_rescue_block: bool = False
    src: Located | None = None
    mod_key: str = ""
    role: RoleRef | None = None

    def display_name(self) -> str:
        return self.name if self.name else self.action


@dataclass(slots=True)
class IncludeTasks:
    file: str
    base: str
    name: str | None = None
    kw: dict[str, Any] = field(default_factory=dict)
    when: list[Any] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    line: int = 0
    col: int = 0
    uid: int = field(default_factory=lambda: next(_ids))
    parent: dict[str, Any] = field(default_factory=dict)
    role: RoleRef | None = None


@dataclass(slots=True)
class IncludeRole:
    """An ``include_role`` task: expanded at run time by ``roles.expand_include_role``."""

    role_name: str
    args: dict[str, Any]
    base: str
    name: str | None = None
    kw: dict[str, Any] = field(default_factory=dict)
    when: list[Any] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    line: int = 0
    col: int = 0
    uid: int = field(default_factory=lambda: next(_ids))
    parent: dict[str, Any] = field(default_factory=dict)
    role: RoleRef | None = None


@dataclass(slots=True)
class Block:
    block: list[Node]
    rescue: list[Node] = field(default_factory=list)
    always: list[Node] = field(default_factory=list)
    name: str | None = None
    uid: int = field(default_factory=lambda: next(_ids))


Node = Task | Block | IncludeTasks | IncludeRole


@dataclass(slots=True)
class Play:
    name: str
    hosts: str | list[str]
    tasks: list[Node]
    handlers: list[Task]
    gather_facts: bool = True
    vars: dict[str, Any] = field(default_factory=dict)
    vars_files: list[Any] = field(default_factory=list)
    serial: list[Any] = field(default_factory=list)
    order: str = "inventory"
    strategy: str = "linear"
    max_fail_percentage: float | None = None
    any_errors_fatal: bool = False
    kw: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    path: str = ""
    line: int = 0
    basedir: str = ""
    # the play's own keywords as written (templated by the engine: hosts, serial, strategy...)
    keywords: dict[str, Any] = field(default_factory=dict)
    # pre_tasks, tasks, post_tasks apart: handlers are flushed after each section
    sections: list[list[Node]] = field(default_factory=list)


def _err(msg: str, obj: object, hint: str | None = None) -> PlaybookSyntaxError:
    return PlaybookSyntaxError(msg, hint=hint, source=source_of(obj))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def _tags(value: Any, obj: object) -> list[str]:
    out: list[str] = []
    for v in _as_list(value):
        if isinstance(v, (str, int, float)):
            out.extend(s.strip() for s in str(v).split(",") if s.strip())
        else:
            raise _err("tags must be a string or a list of strings", obj)
    return out


def split_kv(text: str) -> tuple[dict[str, Any], list[str]]:
    """Parse ``k=v k2='v 2' free words`` as ansible's parse_kv does (roughly)."""
    kv: dict[str, Any] = {}
    rest: list[str] = []
    for tok in split_args(text):
        if "=" in tok and not tok.startswith(("=", "'", '"')):
            k, v = tok.split("=", 1)
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                v = v[1:-1]
            kv[k] = v
        else:
            rest.append(tok)
    return kv, rest


def split_args(text: str) -> list[str]:
    """Split on whitespace outside quotes and outside Jinja2 ``{{ }}``/``{% %}``/``{# #}``.

    Quotes stay in the tokens (``msg="a b"`` is one token), as ansible's split_args keeps them.
    """
    tokens: list[str] = []
    cur: list[str] = []
    quote = ""
    depth = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        pair = text[i : i + 2]
        if quote:
            cur.append(ch)
            if ch == "\\" and i + 1 < n:
                cur.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif pair in ("{{", "{%", "{#"):
            depth += 1
            cur.append(pair)
            i += 2
            continue
        elif pair in ("}}", "%}", "#}") and depth:
            depth -= 1
            cur.append(pair)
            i += 2
            continue
        elif ch in "'\"" and not depth:
            quote = ch
            cur.append(ch)
        elif ch.isspace() and not depth:
            if cur:
                tokens.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
        i += 1
    if cur:
        tokens.append("".join(cur))
    return tokens


def _module_args(action: str, value: Any, obj: object) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, (str, int, float, bool)):
        text = str(value)
        if action in FREE_FORM:
            try:
                tokens = shlex.split(text, posix=False)
            except ValueError:
                return {"_raw_params": text}
            args: dict[str, Any] = {}
            rest_tokens: list[str] = []
            for tok in tokens:
                k, eq, v = tok.partition("=")
                if eq and k in _FREE_FORM_KEYS and not rest_tokens:
                    args[k] = v.strip("'\"")
                else:
                    rest_tokens.append(tok)
            # keep the original spacing of the command itself
            raw = text
            for k in args:
                raw = raw.replace(next(t for t in tokens if t.startswith(k + "=")), "", 1)
            args["_raw_params"] = raw.strip()
            return args
        if action in ("include_tasks", "import_tasks"):
            return {"_raw_params": text}
        kv, rest = split_kv(text)
        if rest:
            kv["_raw_params"] = " ".join(rest)
        return kv
    raise _err(f"invalid arguments for {action}: expected a mapping or a string", obj)


class _Loader:
    def __init__(self) -> None:
        self.stack: list[str] = []

    def tasks(
        self, items: Any, parent: dict[str, Any], obj: object, base: str, handler: bool = False
    ) -> list[Node]:
        if items is None:
            return []
        if not isinstance(items, list):
            raise _err("a list of tasks was expected", obj)
        out: list[Node] = []
        for item in items:
            if not isinstance(item, dict):
                raise _err(
                    f"a task must be a mapping, got {type(item).__name__}: {item!r}",
                    obj if not isinstance(item, Located) else item,
                )
            out.extend(self.node(item, parent, base, handler))
        return out

    def _inherit(self, ds: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
        merged = dict(parent)
        merged["when"] = list(parent.get("when", [])) + _as_list(ds.get("when"))
        merged["tags"] = list(parent.get("tags", [])) + _tags(ds.get("tags"), ds)
        merged["vars"] = {**parent.get("vars", {}), **(ds.get("vars") or {})}
        for k in _INHERITED:
            if k in ds:
                merged[k] = ds[k]
        return merged

    def node(
        self, ds: dict[str, Any], parent: dict[str, Any], base: str, handler: bool
    ) -> list[Node]:
        if "vars" in ds and ds["vars"] is not None and not isinstance(ds["vars"], dict):
            raise _err("vars must be a mapping", ds)
        if "block" in ds:
            unknown = [k for k in ds if k not in BLOCK_KEYWORDS]
            if unknown:
                raise _err(f"'{unknown[0]}' is not a valid attribute for a Block", ds)
            inh = self._inherit(ds, parent)
            rescue = self.tasks(ds.get("rescue"), inh, ds, base, handler)
            always = self.tasks(ds.get("always"), inh, ds, base, handler)
            if rescue:
                inh_block = dict(inh, _rescued=True)
            else:
                inh_block = inh
            body = self.tasks(ds.get("block"), inh_block, ds, base, handler)
            return [Block(block=body, rescue=rescue, always=always, name=ds.get("name"))]
        for bad in ("rescue", "always"):
            if bad in ds:
                raise _err(f"'{bad}' is not a valid attribute for a Task (use it in a block)", ds)
        action, args = self._action(ds)
        inh = self._inherit(ds, parent)
        if action == "import_tasks":
            fname = str(args.get("_raw_params") or args.get("file") or "")
            if not fname:
                raise _err("import_tasks requires a file name", ds)
            return self.load_file(fname, base, inh, ds, handler)
        if action == "include_tasks":
            fname = str(args.get("_raw_params") or args.get("file") or "")
            if not fname:
                raise _err("include_tasks requires a file name", ds)
            inc = IncludeTasks(
                file=fname,
                base=base,
                name=ds.get("name"),
                when=inh["when"],
                tags=inh["tags"],
                vars=inh["vars"],
                parent={k: v for k, v in inh.items() if k not in ("when", "tags", "vars")},
            )
            if isinstance(ds, Located):
                inc.path, inc.line, inc.col = ds.path, ds.line, ds.col
            inc.kw = {k: ds[k] for k in ds if k in ("loop", "loop_control", "run_once")}
            return [inc]
        kw: dict[str, Any] = {
            k: v for k, v in inh.items() if k not in ("when", "tags", "vars", "_rescued")
        }
        for k in (
            "register",
            "until",
            "retries",
            "delay",
            "loop",
            "loop_control",
            "failed_when",
            "changed_when",
            "notify",
            "delegate_facts",
            "async",
            "poll",
            "throttle",
        ):
            if k in ds:
                kw[k] = ds[k]
        for k, v in ds.items():
            if isinstance(k, str) and k.startswith("with_"):
                kw["loop"] = v
                kw["_with"] = k[5:]
        name = ds.get("name")
        if name is not None and not isinstance(name, str):
            name = str(name)
        task = Task(
            action=action,
            args=args,
            name=name,
            kw=kw,
            when=inh["when"],
            tags=inh["tags"],
            vars=inh["vars"],
            handler=handler,
            in_rescue_block=bool(inh.get("_rescued")),
        )
        if isinstance(ds, Located):
            task.path, task.line, task.col = ds.path, ds.line, ds.col
            task.src = ds
            task.mod_key = next(
                (k for k in ds if isinstance(k, str) and normalize_action(k) == action), ""
            )
        if handler:
            task.listen = [str(x) for x in _as_list(ds.get("listen"))]
        return [task]

    def _action(self, ds: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        found: list[str] = []
        for k in ds:
            if not isinstance(k, str):
                raise _err(f"invalid task key {k!r}", ds)
            if k in TASK_KEYWORDS or k.startswith("with_"):
                continue
            found.append(k)
        if "action" in ds or "local_action" in ds:
            key = "action" if "action" in ds else "local_action"
            if found:
                raise _err(f"conflicting action statements: {key}, {found[0]}", ds)
            value = ds[key]
            if isinstance(value, dict):
                value = dict(value)
                mod = str(value.pop("module", ""))
                args = value
            else:
                mod, _, rest = str(value).partition(" ")
                args = _module_args(normalize_action(mod), rest, ds)
            if key == "local_action":
                ds = dict(ds)
            action = normalize_action(mod)
            if action not in MODULE_NAMES:
                raise self._unknown(mod, ds)
            args.update(ds.get("args") or {})
            return action, args
        if not found:
            raise _err(
                "no module/action detected in task.",
                ds,
                hint="every task needs exactly one module, e.g. 'command: /bin/true'",
            )
        if len(found) > 1:
            known = [f for f in found if normalize_action(f) in MODULE_NAMES]
            if len(known) > 1:
                raise _err(f"conflicting action statements: {known[0]}, {known[1]}", ds)
            unknown = [f for f in found if normalize_action(f) not in MODULE_NAMES]
            if known:
                raise _err(f"'{unknown[0]}' is not a valid attribute for a Task", ds)
            raise self._unknown(found[0], ds)
        mod = found[0]
        action = normalize_action(mod)
        if action not in MODULE_NAMES:
            raise self._unknown(mod, ds)
        args = _module_args(action, ds[mod], ds)
        extra = ds.get("args")
        if extra is not None:
            if not isinstance(extra, dict):
                raise _err("args must be a mapping", ds)
            args.update(extra)
        return action, args

    def _unknown(self, mod: str, ds: object) -> PlaybookSyntaxError:
        return _err(
            f"couldn't resolve module/action '{mod}'. This often indicates a misspelling, "
            "missing collection, or incorrect module path.",
            ds,
            hint="fleetkit play supports: " + ", ".join(sorted(MODULE_NAMES - {"file"})),
        )

    def load_file(
        self, fname: str, base: str, inherit: dict[str, Any], obj: object, handler: bool = False
    ) -> list[Node]:
        path = fname if os.path.isabs(fname) else os.path.join(base, fname)
        if not os.path.exists(path) and os.path.exists(os.path.join(base, "tasks", fname)):
            path = os.path.join(base, "tasks", fname)
        if not os.path.exists(path):
            raise _err(
                f"Could not find or access '{fname}'",
                obj,
                hint="task files are resolved relative to the playbook's directory",
            )
        path = os.path.abspath(path)
        if path in self.stack:
            raise _err(f"recursive import of {fname}", obj)
        self.stack.append(path)
        try:
            data = load_yaml_file(path)
            if data is None:
                return []
            return self.tasks(data, inherit, obj, os.path.dirname(path), handler)
        finally:
            self.stack.pop()


def _bool(value: Any, what: str, obj: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("yes", "true", "on", "1", "y"):
        return True
    if isinstance(value, str) and value.lower() in ("no", "false", "off", "0", "n"):
        return False
    if isinstance(value, int):
        return bool(value)
    if isinstance(value, str) and "{{" in value:
        return True
    raise _err(f"{what} must be a boolean, got {value!r}", obj)


def _play(ds: Any, base: str) -> Play:
    if not isinstance(ds, dict):
        raise _err("a play must be a mapping", ds)
    if "import_playbook" in ds:
        raise _err("import_playbook is not supported by fleetkit play", ds)
    unknown = [k for k in ds if k not in PLAY_KEYWORDS]
    if unknown:
        raise _err(f"'{unknown[0]}' is not a valid attribute for a Play", ds)
    if "hosts" not in ds or ds["hosts"] in (None, ""):
        raise _err("the field 'hosts' is required but was not set", ds)
    if ds.get("roles"):
        raise _err("roles are not supported by fleetkit play", ds)
    hosts = ds["hosts"]
    if isinstance(hosts, list):
        hosts = [str(h) for h in hosts]
    else:
        hosts = str(hosts)
    if ds.get("vars") is not None and not isinstance(ds.get("vars"), dict):
        raise _err("vars must be a mapping", ds)
    loader = _Loader()
    parent: dict[str, Any] = {"when": [], "tags": _tags(ds.get("tags"), ds), "vars": {}}
    for k in _INHERITED:
        if k in ds:
            parent[k] = ds[k]
    tasks: list[Node] = []
    sections: list[list[Node]] = []
    for key in ("pre_tasks", "tasks", "post_tasks"):
        section = loader.tasks(ds.get(key), parent, ds, base)
        tasks.extend(section)
        if section:
            sections.append(section)
    handlers_nodes = loader.tasks(ds.get("handlers"), parent, ds, base, handler=True)
    handlers: list[Task] = []

    def flat(nodes: list[Node]) -> None:
        for n in nodes:
            if isinstance(n, Task):
                handlers.append(n)
            elif isinstance(n, Block):
                flat(n.block)
                flat(n.rescue)
                flat(n.always)

    flat(handlers_nodes)
    serial_raw = ds.get("serial")
    serial = [] if serial_raw is None else _as_list(serial_raw)
    for s in serial:
        if not isinstance(s, (int, str)) or isinstance(s, bool):
            raise _err(f"serial must be an integer, a percentage or a list of them, got {s!r}", ds)
    order = str(ds.get("order") or "inventory")
    mfp = ds.get("max_fail_percentage")
    if isinstance(mfp, str) and "{{" in mfp:
        mfp = None  # templated by the engine from keywords
    if mfp is not None:
        try:
            mfp = float(str(mfp).rstrip("%"))
        except ValueError:
            raise _err(f"max_fail_percentage must be a number, got {mfp!r}", ds) from None
    name = ds.get("name")
    if name is None:
        name = ",".join(hosts) if isinstance(hosts, list) else hosts
    vars_files = _as_list(ds.get("vars_files"))
    play = Play(
        name=str(name),
        hosts=hosts,
        tasks=tasks,
        handlers=handlers,
        gather_facts=_bool(ds.get("gather_facts", True), "gather_facts", ds),
        vars=dict(ds.get("vars") or {}),
        vars_files=vars_files,
        serial=serial,
        order=order,
        strategy=normalize_action(str(ds.get("strategy") or "linear")),
        max_fail_percentage=mfp,
        any_errors_fatal=_bool(ds.get("any_errors_fatal", False), "any_errors_fatal", ds),
        kw={k: ds[k] for k in _INHERITED if k in ds},
        tags=parent["tags"],
        basedir=base,
        keywords={
            k: ds[k] for k in ds if k not in ("tasks", "pre_tasks", "post_tasks", "handlers")
        },
        sections=sections,
    )
    if play.strategy not in ("linear", "free", "host_pinned") and "{{" not in play.strategy:
        raise _err(
            f"Invalid play strategy specified: {play.strategy}",
            ds,
            hint="fleetkit supports the linear, free and host_pinned strategies",
        )
    if isinstance(ds, Located):
        play.path, play.line = ds.path, ds.line
    return play


def load_playbook(path: str) -> list[Play]:
    if not os.path.exists(path):
        # ansible-playbook: "the playbook: X could not be found", exit 1
        raise PlaybookError(
            f"the playbook: {path} could not be found",
            hint="check the path (relative to the current directory)",
        )
    data = load_yaml_file(path)
    if data is None:
        raise PlaybookSyntaxError("empty playbook, nothing to do", source=os.path.abspath(path))
    if not isinstance(data, list):
        raise PlaybookSyntaxError(
            "A playbook must be a list of plays", source=source_of(data) or os.path.abspath(path)
        )
    base = os.path.dirname(os.path.abspath(path))
    return [_play(ds, base) for ds in data]


def load_task_file(fname: str, base: str, inherit: dict[str, Any], obj: object) -> list[Node]:
    return _Loader().load_file(fname, base, inherit, obj)
