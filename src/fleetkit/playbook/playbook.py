"""Playbook YAML -> plays, blocks and tasks (dataclasses), with file:line errors.

Block keywords (``when``, ``vars``, ``tags``, ``become``, ``ignore_errors`` ...) are pushed
down to the tasks they contain, as ansible's inheritance resolves them; ``import_tasks`` is
inlined at load time; ``include_tasks`` stays a node resolved at run time.
"""

from __future__ import annotations

import itertools
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetkit.playbook.errors import (
    IncludeNotFound,
    PlaybookError,
    PlaybookSyntaxError,
    TemplateError,
)
from fleetkit.playbook.yamlsrc import Located, load_yaml_file, source_of

__all__ = [
    "Task",
    "Block",
    "IncludeTasks",
    "Play",
    "Node",
    "Handler",
    "load_playbook",
    "load_task_file",
    "task_file_path",
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
        "include_role",
        "import_role",
        "include_vars",
        "add_host",
        "group_by",
        "validate_argument_spec",
        "gather_facts",
        "file",
    }
)
FREE_FORM = frozenset({"command", "shell", "raw"})
_FREE_FORM_KEYS = frozenset(
    {"chdir", "creates", "removes", "executable", "stdin", "stdin_add_newline", "strip_empty_ends"}
)
# Every keyword ansible-core 2.19 accepts, per object (its FieldAttribute definitions).
_COMMON = frozenset(
    {
        "any_errors_fatal",
        "become",
        "become_exe",
        "become_flags",
        "become_method",
        "become_user",
        "check_mode",
        "collections",
        "connection",
        "debugger",
        "diff",
        "environment",
        "ignore_errors",
        "ignore_unreachable",
        "module_defaults",
        "name",
        "no_log",
        "port",
        "remote_user",
        "run_once",
        "throttle",
        "timeout",
        "vars",
    }
)
PLAY_KEYWORDS = _COMMON | {
    "fact_path",
    "force_handlers",
    "gather_facts",
    "gather_subset",
    "gather_timeout",
    "handlers",
    "hosts",
    "max_fail_percentage",
    "order",
    "post_tasks",
    "pre_tasks",
    "roles",
    "serial",
    "strategy",
    "tags",
    "tasks",
    "vars_files",
    "vars_prompt",
}
BLOCK_KEYWORDS = _COMMON | {
    "always",
    "block",
    "delegate_facts",
    "delegate_to",
    "notify",
    "rescue",
    "tags",
    "when",
}
TASK_KEYWORDS = _COMMON | {
    "action",
    "args",
    "async",
    "changed_when",
    "delay",
    "delegate_facts",
    "delegate_to",
    "failed_when",
    "local_action",
    "loop",
    "loop_control",
    "notify",
    "poll",
    "register",
    "retries",
    "tags",
    "until",
    "when",
}
HANDLER_KEYWORDS = TASK_KEYWORDS | {"listen"}
# a `roles:` entry; any other key is a role parameter
ROLE_KEYWORDS = (_COMMON - {"name"}) | {
    "delegate_facts",
    "delegate_to",
    "name",
    "role",
    "tags",
    "when",
}
# keywords a dynamic include_tasks / include_role task may carry (ansible's TaskInclude)
INCLUDE_KEYWORDS = frozenset(
    {
        "action",
        "args",
        "collections",
        "debugger",
        "ignore_errors",
        "loop",
        "loop_control",
        "name",
        "no_log",
        "register",
        "run_once",
        "tags",
        "timeout",
        "vars",
        "when",
    }
)
IMPORT_PLAYBOOK_KEYWORDS = (_COMMON - {"collections"}) | {"import_playbook", "tags", "when"}
ROLE_META_KEYWORDS = (_COMMON - {"vars"}) | {
    "allow_duplicates",
    "argument_specs",
    "dependencies",
    "galaxy_info",
    "vars",
}
INCLUDE_ROLE_ARGS = frozenset(
    {
        "name",
        "role",
        "tasks_from",
        "vars_from",
        "defaults_from",
        "handlers_from",
        "public",
        "apply",
        "allow_duplicates",
        "rolespec_validate",
    }
)
# Keywords ansible accepts that fleetkit play cannot honour yet: refused at load time (a
# falsy value is accepted, it changes nothing). --syntax-check accepts them as ansible does.
UNHONOURED = frozenset(
    {
        "debugger",
    }
)
_INHERITED = (
    "collections",
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "become_exe",
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
    "delegate_facts",
    "notify",
    "throttle",
)

_ids = itertools.count(1)


# the free-form modules, whose arguments may start with _ansible_ (ansible's MODULE_REQUIRE_ARGS)
_FREE_FORM = frozenset({"command", "raw", "script", "shell", "win_command", "win_shell"})


def _check_reserved_args(mod: str, action: str, args: dict[str, Any], ds: object) -> None:
    """Refuse an argument named ``_ansible_*`` (reserved for ansible's internal use)."""
    if action in _FREE_FORM:
        return
    for arg in args:
        if str(arg).startswith("_ansible_"):
            err = _err(
                f"Invalid parameter specified beginning with keyword '_ansible_' for action "
                f"'{mod}': '{arg}'. The prefix '_ansible_' is reserved for internal use only.",
                ds,
            )
            err.exit_code = 1  # ansible's AnsibleError, not a parser error
            raise err


def _env_list(value: Any) -> list[Any]:
    """An ``environment`` keyword as its list of entries (dicts or templates)."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _ansible_type(value: Any) -> str:
    """``type(value)`` as ansible 2.19 prints it for a value read from YAML."""
    tagged = {list: "_AnsibleTaggedList", dict: "_AnsibleTaggedDict"}
    for kind, name in tagged.items():
        if isinstance(value, kind):
            return f"<class 'ansible.module_utils._internal._datatag.{name}'>"
    return f"<class '{type(value).__name__}'>"


def _templated_action(name: str) -> bool:
    return "{{" in name and "}}" in name


def normalize_action(name: str) -> str:
    for prefix in ("ansible.builtin.", "ansible.legacy."):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _known_module(action: str, written: str) -> bool:
    """Whether a task's module/action resolves (fleetkit's actions, ansible's modules)."""
    if action in MODULE_NAMES:
        return True
    from fleetkit.playbook.modules import resolve

    if action != normalize_action(written) and resolve(action) is not None:
        return True  # found through the collections keyword
    return resolve(written) is not None


def _in_collections(action: str, collections: list[Any] | None) -> str:
    """A short module name searched in the ``collections:`` keyword's list first, in order,
    as ansible does (ansible.builtin/ansible.legacy where listed; after the list, the builtin
    name): ``filesize`` under ``collections: [community.general]`` is
    community.general.filesize."""
    if not collections or "." in action or _templated_action(action):
        return action
    from fleetkit.playbook.modules import resolve

    found = resolve(action, [str(c) for c in collections])
    if found is None or found.startswith(("ansible.builtin.", "ansible.legacy.")):
        return action  # fleetkit's own dispatch of a builtin name
    return found


def add_library_dir(path: str) -> None:
    """Modules in ``library/`` beside a playbook or in a role resolve from here on (as ansible
    adds them when it loads the playbook or role), and so do the action and connection plugins
    in the ``action_plugins/`` and ``connection_plugins/`` beside it."""
    if os.path.isdir(path):
        from fleetkit.playbook.modules import _finder

        _finder.add_library_path(path)
    # ansible loads action_plugins/ and connection_plugins/ from the same places as library/
    from fleetkit.playbook.actions.ansible_actions import add_action_plugin_dir
    from fleetkit.playbook.connection.plugin import add_connection_plugin_dir

    add_action_plugin_dir(os.path.join(os.path.dirname(path), "action_plugins"))
    add_connection_plugin_dir(os.path.join(os.path.dirname(path), "connection_plugins"))


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
    # their role paths (ansible_parent_role_paths)
    parent_role_paths: tuple[str, ...] = ()
    # include_role public: / import_role: the role's vars and defaults stay visible after it
    public: bool = False
    # pulled in by another role's meta/main.yml dependencies (ansible_dependent_role_names)
    dependency: bool = False
    # ansible's dep chain: the roles this one runs inside (outermost first), and its loaded
    # meta/main.yml dependencies; what they give the role's tasks under its own params,
    # vars and defaults (Role.get_role_params / get_vars / get_default_vars)
    chain: tuple[RoleRef, ...] = ()
    deps: tuple[RoleRef, ...] = ()
    # ansible's role identity (name, path, params, from-files, when, tags, vars) and whether
    # a host that completed an equal role runs it again (include/import_role: their option)
    identity: str = ""
    allow_duplicates: bool = True
    inherited_params: dict[str, Any] = field(default_factory=dict)
    inherited_vars: dict[str, Any] = field(default_factory=dict)
    inherited_defaults: dict[str, Any] = field(default_factory=dict)

    def export_vars(self) -> dict[str, Any]:
        """The role vars it exports (its dependencies' then its own vars/)."""
        out: dict[str, Any] = {}
        for d in self.deps:
            out.update(d.export_vars())
        out.update(self.vars)
        return out

    def export_defaults(self) -> dict[str, Any]:
        """The defaults it brings (its dependencies' then its own defaults/)."""
        out: dict[str, Any] = {}
        for d in self.deps:
            out.update(d.export_defaults())
        out.update(self.defaults)
        return out


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
    written: str = ""  # the module's name as the task wrote it (the default task name)
    # a handler's block (ansible keeps handlers in blocks: a notification searches the blocks
    # from the last loaded, the handlers of one block in order)
    hblock: int = 0
    # ansible's include params: the vars of the include_tasks/include_role it came from
    # (and their loop items), above set_fact and role params
    include_params: dict[str, Any] = field(default_factory=dict)
    implicit: bool = False  # made by the engine (Gathering Facts): no source of its own

    def display_name(self) -> str:
        return self.name if self.name else (self.written or self.action)


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
    # the task as written (positions of its keywords for error origins)
    src: Located | None = None
    # an include_tasks in handlers: notified by its name (or listen); its tasks run as handlers
    handler: bool = False
    listen: list[str] = field(default_factory=list)
    hblock: int = 0
    include_params: dict[str, Any] = field(default_factory=dict)


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
    # the task as written (positions of its keywords for error origins)
    src: Located | None = None
    include_params: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Block:
    block: list[Node]
    rescue: list[Node] = field(default_factory=list)
    always: list[Node] = field(default_factory=list)
    name: str | None = None
    uid: int = field(default_factory=lambda: next(_ids))


Node = Task | Block | IncludeTasks | IncludeRole
# what a play's handler list holds: tasks and include_tasks (whose tasks run as handlers)
Handler = Task | IncludeTasks


@dataclass(slots=True)
class Play:
    name: str
    hosts: str | list[str]
    tasks: list[Node]
    handlers: list[Handler]
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
    # roles loaded statically (roles:, import_role, their dependencies), in load order
    roles: list[RoleRef] = field(default_factory=list)
    # where include_role looks for roles (the loader's roles_path, see load_playbook)
    roles_path: list[str] = field(default_factory=list)
    # ansible_play_role_names: the roles: entries then the import_role'd roles (play.roles)
    role_names: list[str] = field(default_factory=list)
    # import_playbook `when:` conditions (ansible puts them on the fact gathering task too)
    included_when: list[Any] = field(default_factory=list)
    vars_prompt: list[dict[str, Any]] = field(default_factory=list)
    # the play's own keywords as written (templated by the engine: hosts, serial, strategy...)
    keywords: dict[str, Any] = field(default_factory=dict)
    # pre_tasks, tasks, post_tasks apart: handlers are flushed after each section
    sections: list[list[Node]] = field(default_factory=list)


@dataclass(slots=True)
class LoadContext:
    """What loading one play needs besides the YAML: role search paths, collected roles."""

    basedir: str
    roles_path: list[str]
    syntax_only: bool = False
    roles: list[RoleRef] = field(default_factory=list)
    # handlers of the play's ``roles:`` (ansible puts them before the play's own handlers)
    handlers: list[Handler] = field(default_factory=list)
    # handlers of import_role'd roles, in load order (ansible puts them after the play's own)
    imported_handlers: list[Handler] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    # the role loaded for each identity key in ``seen`` (a deduplicated dependency's data)
    loaded: dict[str, RoleRef] = field(default_factory=dict)
    direct: list[str] = field(default_factory=list)
    imported: list[str] = field(default_factory=list)
    # what static names (import_tasks files, role names) are templated with, highest first:
    # extra vars, then the play's vars (ansible templates them at parse time)
    variables: list[dict[str, Any]] = field(default_factory=list)

    def template(self, value: str, obj: object, task_vars: Mapping[str, Any] | None = None) -> str:
        """Template a name ansible resolves at parse time (extra vars, the task's and its
        blocks' vars, play vars)."""
        if "{{" not in value and "{%" not in value:
            return value
        from fleetkit.playbook.templar import Templar, VarsView

        layers: list[Mapping[str, Any]] = list(self.variables)
        if task_vars:
            layers.insert(1, task_vars)
        try:
            return str(Templar(VarsView(layers)).template(value))
        except TemplateError as exc:
            raise _err(
                f"{exc}", obj, hint="only extra vars, the task's vars and play vars exist here"
            ) from None


def _err(msg: str, obj: object, hint: str | None = None, key: Any = None) -> PlaybookSyntaxError:
    source = source_of(obj)
    origin = None
    if isinstance(obj, Located) and obj.path:
        origin = (obj.path, obj.line, obj.col)
    if key is not None and isinstance(obj, Located) and key in obj.pos:
        line, col = obj.pos[key][:2]
        source = f"{obj.path}:{line}:{col}"
        origin = (obj.path, line, col)
    return PlaybookSyntaxError(msg, hint=hint, source=source, origin=origin)


def _module_defaults(ds: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``module_defaults`` of a play, block, role or task, validated (keys as FQCNs)."""
    from fleetkit.playbook.module_defaults import ModuleDefaultsError, normalize

    try:
        return normalize(ds.get("module_defaults"))
    except ModuleDefaultsError as exc:
        raise _err(str(exc), ds, key="module_defaults") from None


def _check_unhonoured(ds: dict[str, Any], ctx: LoadContext | None) -> None:
    if ctx is not None and ctx.syntax_only:
        return
    for k in ds:
        if k not in UNHONOURED or not ds[k]:
            continue
        raise _err(
            f"the keyword '{k}' is not supported by fleetkit play",
            ds,
            hint="remove it or run this playbook with ansible-playbook (see docs/play.md)",
            key=k,
        )


def _check_register(ds: dict[str, Any]) -> None:
    if "register" not in ds:
        return
    reg = ds["register"]
    if not isinstance(reg, str) or not reg.isidentifier():
        raise _err(
            f"Invalid 'register' specified: Invalid variable name '{reg}' of type "
            f"{type(reg).__name__!r}.",
            ds,
            hint="Variable names must be strings starting with a letter or underscore "
            "character, and contain only letters, numbers and underscores.",
            key="register",
        )


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
        if action in FREE_FORM and "\n" in text:
            return _multiline_free_form(text, obj)
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


def _multiline_free_form(text: str, obj: object) -> dict[str, Any]:
    """A multi-line free-form command split as ansible's parse_kv does it (line continuations
    joined, other newlines and spacing kept, ``k=v`` options on any line): ansible's own
    function, imported only for such commands."""
    from ansible.errors import AnsibleParserError
    from ansible.parsing.splitter import parse_kv

    try:
        parsed = parse_kv(text, check_raw=True)
    except AnsibleParserError as exc:
        raise _err(str(exc.message), obj) from None
    return {str(k): str(v) for k, v in parsed.items()}


def _merge_task_args(args: dict[str, Any], ds: dict[str, Any]) -> None:
    """The task's ``args:`` keyword: a mapping under the module's own arguments, or a whole
    template kept as ``_variable_params`` (templated to a mapping when the task runs)."""
    extra = ds.get("args")
    if extra is None:
        return
    if isinstance(extra, str) and is_whole_template(extra):
        args.setdefault("_variable_params", extra)
        return
    if not isinstance(extra, dict):
        raise _err(
            "The value of the task `args` keyword is invalid.",
            ds,
            hint="A mapping or template which resolves to a mapping is required.",
        )
    for k, v in extra.items():
        args.setdefault(k, v)


def is_whole_template(text: str) -> bool:
    """ansible's is_possibly_all_template: the whole string is one ``{{ ... }}``."""
    stripped = text.strip()
    return stripped.startswith("{{") and stripped.endswith("}}")


def _include_params(ds: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
    """An include's params: the enclosing includes' then its own ``vars:``."""
    return {**(parent.get("_include_params") or {}), **(ds.get("vars") or {})}


def _own_kw(ds: dict[str, Any]) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    for k in ("loop", "loop_control", "run_once", "register", "ignore_errors", "no_log"):
        if k in ds:
            kw[k] = ds[k]
    for k, v in ds.items():
        if isinstance(k, str) and k.startswith("with_"):
            kw["loop"] = v
            kw["_with"] = k[5:]
    return kw


class _Loader:
    def __init__(self, ctx: LoadContext | None = None) -> None:
        self.stack: list[str] = []
        self.ctx = ctx

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

    def tag_values(self, ds: dict[str, Any]) -> Any:
        """``tags:`` with templates rendered by the play's vars and extra vars (ansible
        templates tags before it filters on them); a template that cannot render stays."""
        value = ds.get("tags")
        if self.ctx is None or not self.ctx.variables:
            return value
        from fleetkit.playbook.templar import Templar, VarsView, is_template

        templar = Templar(VarsView(list(self.ctx.variables)))
        out: list[Any] = []
        for v in _as_list(value):
            if isinstance(v, str) and is_template(v):
                try:
                    v = templar.template(v)
                except TemplateError:
                    pass
            out.extend(v if isinstance(v, list) else [v])
        return out

    def _inherit(self, ds: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
        merged = dict(parent)
        merged["when"] = list(parent.get("when", [])) + _as_list(ds.get("when"))
        merged["tags"] = list(parent.get("tags", [])) + _tags(self.tag_values(ds), ds)
        if ds.get("vars") is not None and not isinstance(ds.get("vars"), dict):
            raise _err("vars must be a mapping", ds, key="vars")
        merged["vars"] = {**parent.get("vars", {}), **(ds.get("vars") or {})}
        for k in _INHERITED:
            if k in ds:
                merged[k] = ds[k]
        if "environment" in ds and parent.get("environment"):
            # ansible extends the environment (parent entries first, so the task's win)
            merged["environment"] = _env_list(parent["environment"]) + _env_list(ds["environment"])
        if ds.get("module_defaults") is not None:
            # a list keyword that extends its parent's (ansible's extend + prepend)
            own = _module_defaults(ds)
            merged["module_defaults"] = [*parent.get("module_defaults", []), *own]
        return merged

    def _dynamic_parent(
        self, ds: dict[str, Any], args: dict[str, Any], parent: dict[str, Any]
    ) -> dict[str, Any]:
        """What tasks of a dynamic include inherit: the include's ancestors, its vars, apply."""
        apply = args.get("apply") or {}
        if not isinstance(apply, dict):
            raise _err(f"Expected a dict for apply but got {type(apply).__name__} instead", ds)
        unknown = [k for k in apply if k not in BLOCK_KEYWORDS or k in ("block", "rescue")]
        if unknown:
            raise _err(f"'{unknown[0]}' is not a valid attribute for a Block", ds)
        _check_unhonoured(apply, self.ctx)
        inherit = dict(parent)
        inherit.pop("_handler_block", None)
        inherit["vars"] = {**parent.get("vars", {}), **(ds.get("vars") or {})}
        inherit["_include_params"] = _include_params(ds, parent)
        return self._inherit(apply, inherit)

    def _check_include_keys(
        self, ds: dict[str, Any], kind: str, mod_key: str, handler: bool = False
    ) -> None:
        for k in ds:
            if k == mod_key or (isinstance(k, str) and k.startswith("with_")):
                continue
            # ansible's HandlerTaskInclude also takes listen
            if k not in INCLUDE_KEYWORDS and not (handler and k == "listen"):
                raise _err(f"'{k}' is not a valid attribute for a {kind}", ds, key=k)

    def node(
        self, ds: dict[str, Any], parent: dict[str, Any], base: str, handler: bool
    ) -> list[Node]:
        if "vars" in ds and ds["vars"] is not None and not isinstance(ds["vars"], dict):
            raise _err("vars must be a mapping", ds, key="vars")
        if "block" in ds:
            unknown = [k for k in ds if k not in BLOCK_KEYWORDS]
            if unknown:
                raise _err(
                    f"'{unknown[0]}' is not a valid attribute for a Block", ds, key=unknown[0]
                )
            _check_unhonoured(ds, self.ctx)
            if handler and parent.get("_handler_block"):
                # a block at the top of a handler list is an implicit one; nested, an error
                raise _err("Using a block as a handler is not supported.", ds)
            inh = self._inherit(ds, parent)
            if "notify" in ds:
                inh["_notify"] = ds["notify"]
            if handler:
                inh["_handler_block"] = True
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
        colls = ds.get("collections") or parent.get("collections")
        action, args, mod_key, written = self._action(ds, handler, _as_list(colls))
        _check_register(ds)
        if handler and action in ("include_role", "import_role"):
            raise _err(f"Using '{written or action}' as a handler is not supported.", ds)
        if action in ("include_tasks", "include_role"):
            kind = "TaskInclude" if action == "include_tasks" else "IncludeRole"
            self._check_include_keys(ds, kind, mod_key, handler)
        else:
            _check_unhonoured(ds, self.ctx)
        inh = self._inherit(ds, parent)
        inh.pop("_handler_block", None)
        if action in ("import_tasks", "import_role") and (
            "loop" in ds or any(isinstance(k, str) and k.startswith("with_") for k in ds)
        ):
            dynamic = action.replace("import", "include")
            raise _err(
                f"You cannot use loops on '{action}' statements. You should use '{dynamic}' "
                "instead.",
                ds,
            )
        if action in ("import_tasks", "include_tasks"):
            fname = str(args.get("_raw_params") or args.get("file") or "")
            bad_opts = set(args) - {"file", "apply", "_raw_params"}
            if bad_opts or ("apply" in args and action == "import_tasks"):
                opts = ",".join(sorted(bad_opts)) if bad_opts else "apply"
                raise _err(f"Invalid options for {action}: {opts}", ds)
            if not fname:
                raise _err(f"No file specified for {written or action}", ds)
            if action == "import_tasks":
                if self.ctx is not None:
                    fname = self.ctx.template(fname, ds, inh["vars"])
                nodes = self.load_file(fname, base, inh, ds, handler)
                if handler:
                    # the imported handlers join the block of the import (ansible)
                    nodes = [t for n in nodes for t in (n.block if isinstance(n, Block) else [n])]
                return nodes
            inc = IncludeTasks(
                file=fname,
                base=base,
                name=ds.get("name"),
                when=inh["when"],
                tags=inh["tags"],
                vars=inh["vars"],
                parent=self._dynamic_parent(ds, args, parent),
                role=parent.get("_role"),
                handler=handler,
                include_params=_include_params(ds, parent),
            )
            if isinstance(ds, Located):
                inc.path, inc.line, inc.col = ds.path, ds.line, ds.col
                inc.src = ds
            inc.kw = _own_kw(ds)
            if handler:
                inc.listen = [str(x) for x in _as_list(ds.get("listen"))]
            return [inc]
        if action in ("import_role", "include_role"):
            return self._role_task(action, ds, args, parent, inh, base, handler)
        kw: dict[str, Any] = {k: v for k, v in inh.items() if k not in ("when", "tags", "vars")}
        kw = {k: v for k, v in kw.items() if not k.startswith("_")}
        if "_notify" in inh:
            kw["notify"] = inh["_notify"]
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
            role=inh.get("_role"),
            written=written,
            include_params=dict(inh.get("_include_params") or {}),
        )
        if isinstance(ds, Located):
            task.path, task.line, task.col = ds.path, ds.line, ds.col
            task.src = ds
            task.mod_key = mod_key
        if handler:
            task.listen = [str(x) for x in _as_list(ds.get("listen"))]
        if action == "include_vars":
            task.args["_ansible_task_dir"] = os.path.dirname(task.path) if task.path else base
            if task.role is not None:
                task.args["_ansible_role_path"] = task.role.path
        return [task]

    def _role_task(
        self,
        action: str,
        ds: dict[str, Any],
        args: dict[str, Any],
        parent: dict[str, Any],
        inh: dict[str, Any],
        base: str,
        handler: bool,
    ) -> list[Node]:
        from fleetkit.playbook import roles

        bad = sorted(set(args) - INCLUDE_ROLE_ARGS)
        if bad:
            raise _err(f"Invalid options for {action}: {','.join(bad)}", ds)
        role_name = args.get("name", args.get("role"))
        if not role_name:
            raise _err(f"'name' is a required field for {action}.", ds)
        for k in ("tasks_from", "vars_from", "defaults_from", "handlers_from"):
            if k in args and not isinstance(args[k], str):
                raise _err(
                    f"Expected a string for {k} but got {_ansible_type(args[k])} instead", ds
                )
        if action == "import_role":
            if "apply" in args:
                raise _err("Invalid options for import_role: apply", ds)
            if "public" in args:
                public = args["public"]
                if self.ctx is not None and isinstance(public, str):
                    public = self.ctx.template(public, ds, inh["vars"])  # at parse time
                args = dict(args, public=_bool(public, "public", ds))
            if self.ctx is not None:
                return roles.import_role(self, str(role_name), args, inh, ds, handler)
            # a task file include_tasks loads at run time: the play's search paths came down
            # with what its tasks inherit
            self.ctx = LoadContext(
                basedir=str(parent.get("_basedir") or base),
                roles_path=list(parent.get("_roles_path") or default_roles_path()),
            )
            try:
                nodes = roles.import_role(self, str(role_name), args, inh, ds, handler)
                if self.ctx.handlers or self.ctx.imported_handlers:
                    raise _err(
                        "handlers of a role imported by a task file that include_tasks loads "
                        "are not supported by fleetkit play",
                        ds,
                        hint="import the role in the play (roles: or import_role there)",
                    )
                return nodes
            finally:
                self.ctx = None
        node = IncludeRole(
            role_name=str(role_name),
            args=dict(args),
            base=base,
            name=ds.get("name"),
            when=inh["when"],
            tags=inh["tags"],
            vars=inh["vars"],
            parent=self._dynamic_parent(ds, args, parent),
            role=parent.get("_role"),
            include_params=_include_params(ds, parent),
        )
        node.args.pop("apply", None)
        if isinstance(ds, Located):
            node.path, node.line, node.col = ds.path, ds.line, ds.col
            node.src = ds
        node.kw = _own_kw(ds)
        return [node]

    def _action(
        self, ds: dict[str, Any], handler: bool = False, collections: list[Any] | None = None
    ) -> tuple[str, dict[str, Any], str, str]:
        # ansible's ModuleArgsParser: keys of a Task or a Handler are never module names;
        # a key valid on the other kind only is then an invalid attribute
        keywords = HANDLER_KEYWORDS | {"static"}
        found: list[str] = []
        for k in ds:
            if not isinstance(k, str):
                raise _err(f"invalid task key {k!r}", ds)
            if k in keywords or k.startswith("with_"):
                continue
            found.append(k)
        valid = HANDLER_KEYWORDS if handler else TASK_KEYWORDS
        for k in ds:
            if k in keywords and k not in valid:
                kind = "Handler" if handler else "Task"
                raise _err(f"'{k}' is not a valid attribute for a {kind}", ds, key=k)
        if "action" in ds or "local_action" in ds:
            key = "action" if "action" in ds else "local_action"
            if found:
                raise _err(f"conflicting action statements: {key}, {found[0]}", ds)
            value = ds[key]
            if isinstance(value, dict):
                value = dict(value)
                mod = str(value.pop("module", ""))
                args = value
                inner = args.pop("args", None)  # action: {module: x, args: {...}}
                if isinstance(inner, str):
                    inner, _rest = split_kv(inner)
                if isinstance(inner, dict):
                    args.update(inner)
            else:
                mod, _, rest = str(value).partition(" ")
                args = _module_args(normalize_action(mod), rest, ds)
            action = _in_collections(normalize_action(mod), collections)
            # a templated module name is resolved for each host when the task runs
            if not _known_module(action, mod) and not _templated_action(action):
                raise self._unknown(mod, ds)
            _merge_task_args(args, ds)
            _check_reserved_args(mod, action, args, ds)
            return action, args, key, mod
        if not found:
            raise _err(
                "no module/action detected in task.",
                ds,
                hint="every task needs exactly one module, e.g. 'command: /bin/true'",
            )
        if len(found) > 1:
            raise _err(f"conflicting action statements: {found[0]}, {found[1]}", ds)
        mod = found[0]
        action = _in_collections(normalize_action(mod), collections)
        if not _known_module(action, mod):
            raise self._unknown(mod, ds)
        args = _module_args(action, ds[mod], ds)
        _merge_task_args(args, ds)
        _check_reserved_args(mod, action, args, ds)
        return action, args, mod, mod

    def _unknown(self, mod: str, ds: object) -> PlaybookSyntaxError:
        library = self._library_module(mod)
        if library is not None:
            return _err(
                f"the module '{mod}' ({library}) comes from a library/ directory, which "
                "fleetkit play does not load modules from yet",
                ds,
                hint="run the playbook with ansible-playbook, or use a module ansible-core ships",
            )
        return _err(
            f"couldn't resolve module/action '{mod}'. This often indicates a misspelling, "
            "missing collection, or incorrect module path.",
            ds,
            hint="fleetkit play runs ansible-core's modules, the installed collections' and "
            "those in library/ beside the playbook or a role, or given with -M",
        )

    def _library_module(self, mod: str) -> str | None:
        """A module file named ``mod`` in a library/ beside the playbook, the file being loaded
        or one of its roles (where ansible would find it)."""
        dirs = [os.path.dirname(p) for p in self.stack]
        if self.ctx is not None:
            dirs.append(self.ctx.basedir)
            dirs += [r.path for r in self.ctx.roles if getattr(r, "path", None)]
        short = mod.rsplit(".", 1)[-1]
        for d in dirs:
            for up in (d, os.path.dirname(d)):
                for ext in (".py", ".ps1", ""):
                    candidate = os.path.join(up, "library", short + ext)
                    if os.path.isfile(candidate):
                        return candidate
        return None

    def load_file(
        self, fname: str, base: str, inherit: dict[str, Any], obj: object, handler: bool = False
    ) -> list[Node]:
        path = fname if os.path.isabs(fname) else os.path.join(base, fname)
        if not os.path.exists(path) and os.path.exists(os.path.join(base, "tasks", fname)):
            path = os.path.join(base, "tasks", fname)
        role = inherit.get("_role")
        if not os.path.exists(path) and isinstance(role, RoleRef):
            where = task_file_path(fname, base, role, handler, str(inherit.get("_basedir") or ""))
            path = where or path
        if not os.path.exists(path):
            raise IncludeNotFound(
                f"Could not find or access '{fname}'",
                hint="task files are resolved relative to the playbook's directory",
                source=source_of(obj),
                path=os.path.abspath(path),
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


def task_file_path(
    fname: str, base: str, role: RoleRef | None, handler: bool, basedir: str = ""
) -> str | None:
    """The file a role's import_tasks/include_tasks names, searched as ansible's
    path_dwim_relative: the including file's directory, the role's handlers/ (from a
    handler) or tasks/, its tasks/, the role directory, then the playbook's directory; None
    when there is none."""
    if os.path.isabs(fname):
        return fname if os.path.isfile(fname) else None
    kind = "handlers" if handler else "tasks"
    cands = [os.path.join(base, fname)]
    if role is not None:
        cands += [os.path.join(role.path, kind, fname), os.path.join(role.path, "tasks", fname)]
        cands.append(os.path.join(role.path, fname))
    if basedir:
        cands += [os.path.join(basedir, kind, fname), os.path.join(basedir, fname)]
    return next((c for c in cands if os.path.isfile(c)), None)


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


def flat_handlers(nodes: list[Node], out: list[Handler]) -> None:
    """The handlers of a loaded handler list, as ansible keeps them: bare handlers in a row
    make one implicit block, a written block another; the tasks of each block in order (a
    block's rescue and always sections are dropped, as ansible does)."""
    implicit = 0
    for n in nodes:
        if isinstance(n, Block):
            implicit = 0
            bid = next(_ids)
            inner: list[Handler] = []
            flat_handlers(n.block, inner)
            for h in inner:
                h.hblock = bid
            out.extend(inner)
        elif isinstance(n, (Task, IncludeTasks)):
            implicit = implicit or next(_ids)
            n.hblock = implicit
            out.append(n)
        else:  # the loader refuses include_role in handlers
            raise _err("Using 'include_role' as a handler is not supported.", n.src)


def _vars_prompt(value: Any, ds: object) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    allowed = {"name", "prompt", "default", "private", "confirm", "encrypt", "salt_size", "unsafe"}
    allowed |= {"salt"}
    for item in _as_list(value):
        if not isinstance(item, dict):
            raise _err("vars_prompt entries must be mappings", ds, key="vars_prompt")
        if "name" not in item:
            raise _err("Invalid vars_prompt data structure, missing 'name' key", ds)
        unknown = sorted(set(item) - allowed)
        if unknown:
            raise _err(
                f"Invalid vars_prompt data structure, found unsupported key '{unknown[0]}'", ds
            )
        out.append(dict(item))
    return out


def _play(
    ds: Any,
    base: str,
    roles_path: list[str],
    syntax_only: bool = False,
    extra_vars: dict[str, Any] | None = None,
    import_vars: dict[str, Any] | None = None,
) -> Play:
    if not isinstance(ds, dict):
        raise _err("a play must be a mapping", ds)
    if "user" in ds:
        # ansible's Play.preprocess_data: the deprecated 'user' is 'remote_user'
        if "remote_user" in ds:
            raise _err(
                "both 'user' and 'remote_user' are set for this play. The use of 'user' is "
                "deprecated, and should be removed",
                ds,
            )
        ds["remote_user"] = ds.pop("user")
        if isinstance(ds, Located) and "user" in ds.pos:
            ds.pos["remote_user"] = ds.pos.pop("user")
    unknown = [k for k in ds if k not in PLAY_KEYWORDS]
    if unknown:
        raise _err(f"'{unknown[0]}' is not a valid attribute for a Play", ds, key=unknown[0])
    if isinstance(ds.get("hosts"), list) and not ds["hosts"]:
        raise _err("Hosts list cannot be empty. Please check your playbook", ds)
    if "hosts" not in ds or ds["hosts"] in (None, ""):
        raise _err("the field 'hosts' is required but was not set", ds)
    ctx = LoadContext(basedir=base, roles_path=roles_path, syntax_only=syntax_only)
    ctx.variables = [dict(extra_vars or {}), {**(ds.get("vars") or {}), **(import_vars or {})}]
    _check_unhonoured(ds, ctx)
    hosts = ds["hosts"]
    if isinstance(hosts, list):
        hosts = [str(h) for h in hosts]
    else:
        hosts = str(hosts)
    if ds.get("vars") is not None and not isinstance(ds.get("vars"), dict):
        raise _err("vars must be a mapping", ds, key="vars")
    loader = _Loader(ctx)
    parent: dict[str, Any] = {
        "when": [],
        "tags": _tags(loader.tag_values(ds), ds),
        "vars": {},
        "_basedir": base,
        "_roles_path": list(roles_path),
    }
    for k in _INHERITED:
        if k in ds:
            parent[k] = ds[k]
    if ds.get("module_defaults") is not None:
        parent["module_defaults"] = _module_defaults(ds)
    for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
        value = ds.get(section)
        if value is not None and not isinstance(value, list):
            # ansible's Play._load_*: the message names the section and the value
            raise _err(
                f"A malformed block was encountered while loading {section}: {value} should "
                f"be a list or None but is {type(value)}",
                ds,
            )
    pre: list[Node] = loader.tasks(ds.get("pre_tasks"), parent, ds, base)
    main: list[Node] = []
    if ds.get("roles"):
        from fleetkit.playbook import roles

        if not isinstance(ds["roles"], list):
            raise _err("A malformed role declaration was encountered.", ds, key="roles")
        for entry in ds["roles"]:
            if isinstance(entry, str) and "," in entry:
                # an AnsibleError, not a parser error: exit 1
                raise PlaybookError(f"Invalid old style role requirement: {entry}")
            main.extend(roles.play_role(loader, entry, parent, ds))
    main.extend(loader.tasks(ds.get("tasks"), parent, ds, base))
    post: list[Node] = loader.tasks(ds.get("post_tasks"), parent, ds, base)
    # ansible flushes handlers after pre_tasks, after roles + tasks and after post_tasks, even
    # after an empty section (a handler may have notified one defined before it)
    sections: list[list[Node]] = [pre, main, post]
    tasks: list[Node] = pre + main + post
    handlers_nodes = loader.tasks(ds.get("handlers"), parent, ds, base, handler=True)
    # ansible's order: the roles' handlers, the play's own, then those of import_role
    handlers: list[Handler] = list(ctx.handlers)
    flat_handlers(handlers_nodes, handlers)
    handlers.extend(ctx.imported_handlers)
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
        kw={
            **{k: ds[k] for k in _INHERITED if k in ds},
            **{k: parent[k] for k in ("module_defaults",) if k in parent},
        },
        tags=parent["tags"],
        basedir=base,
        roles=list(ctx.roles),
        role_names=ctx.direct + ctx.imported,
        roles_path=list(roles_path),
        vars_prompt=_vars_prompt(ds.get("vars_prompt"), ds),
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


def default_roles_path(configured: list[str] | None = None) -> list[str]:
    """ansible's DEFAULT_ROLES_PATH: ANSIBLE_ROLES_PATH, else ansible.cfg's, else the defaults."""
    env = os.environ.get("ANSIBLE_ROLES_PATH")
    if env:
        return [os.path.expanduser(p) for p in env.split(os.pathsep) if p]
    if configured:
        return [os.path.expanduser(p) for p in configured]
    return [
        os.path.expanduser("~/.ansible/roles"),
        "/usr/share/ansible/roles",
        "/etc/ansible/roles",
    ]


def load_playbook(
    path: str,
    roles_path: list[str] | None = None,
    syntax_only: bool = False,
    extra_vars: dict[str, Any] | None = None,
) -> list[Play]:
    """Load a playbook (and what it imports statically: playbooks, roles, task files).

    ``roles_path`` is ansible.cfg's ``roles_path`` (ANSIBLE_ROLES_PATH overrides it, as in
    ansible); ``syntax_only`` accepts keywords fleetkit cannot run (for --syntax-check);
    ``extra_vars`` (-e) template the names ansible resolves at parse time.
    """
    if not os.path.exists(path):
        # ansible-playbook: "the playbook: X could not be found", exit 1
        raise PlaybookError(
            f"the playbook: {path} could not be found",
            hint="check the path (relative to the current directory)",
        )
    return _load_plays(
        os.path.abspath(path), default_roles_path(roles_path), syntax_only, [], extra_vars or {}
    )


def _load_plays(
    path: str,
    roles_path: list[str],
    syntax_only: bool,
    stack: list[str],
    extra_vars: dict[str, Any],
    import_vars: dict[str, Any] | None = None,
) -> list[Play]:
    if path in stack:
        raise PlaybookSyntaxError(f"recursive import_playbook of {path}", source=stack[-1])
    data = load_yaml_file(path)
    if data is None:
        raise PlaybookSyntaxError("empty playbook, nothing to do", source=path)
    if not isinstance(data, list):
        raise PlaybookSyntaxError(
            "A playbook must be a list of plays", source=source_of(data) or path
        )
    if not data and not stack:
        raise PlaybookSyntaxError(f"A playbook must contain at least one play: {path}")
    base = os.path.dirname(path)
    add_library_dir(os.path.join(base, "library"))  # modules beside the playbook
    plays: list[Play] = []
    for ds in data:
        key = next((k for k in _IMPORT_PLAYBOOK if isinstance(ds, dict) and k in ds), None)
        if key is not None:
            plays.extend(
                _import_playbook(
                    ds,
                    base,
                    roles_path,
                    syntax_only,
                    [*stack, path],
                    extra_vars,
                    key,
                    import_vars,
                )
            )
        else:
            plays.append(_play(ds, base, roles_path, syntax_only, extra_vars, import_vars))
    return plays


# the import_playbook statement, short or FQCN
_IMPORT_PLAYBOOK = (
    "import_playbook",
    "ansible.builtin.import_playbook",
    "ansible.legacy.import_playbook",
)


def _import_playbook(
    ds: dict[str, Any],
    base: str,
    roles_path: list[str],
    syntax_only: bool,
    stack: list[str],
    extra_vars: dict[str, Any],
    key: str = "import_playbook",
    outer_vars: dict[str, Any] | None = None,
) -> list[Play]:
    unknown = [k for k in ds if k not in IMPORT_PLAYBOOK_KEYWORDS and k != key]
    if unknown:
        raise _err(
            f"'{unknown[0]}' is not a valid attribute for a PlaybookInclude", ds, key=unknown[0]
        )
    others = [k for k in ds if k not in (key, "vars", "tags", "when", "name")]
    if others and not syntax_only:
        raise _err(
            f"the keyword '{others[0]}' on import_playbook is not supported by fleetkit play",
            ds,
            key=others[0],
            hint="put it on the imported plays",
        )
    target = ds[key]
    if not isinstance(target, str) or not target:
        raise _err("import_playbook parameters cannot be empty", ds)
    ivars = ds.get("vars") or {}
    if not isinstance(ivars, dict):
        raise _err("vars must be a mapping", ds, key="vars")
    target = LoadContext(
        base, [], variables=[dict(extra_vars), {**(outer_vars or {}), **ivars}]
    ).template(target, ds)
    from fleetkit.playbook import roles

    found = roles.collection_playbook(target)
    if found is None:
        found = target if os.path.isabs(target) else os.path.join(base, target)
    if not os.path.exists(found):
        raise _err(f"Unable to retrieve file contents\nCould not find or access '{found}'", ds)
    itags = _tags(ds.get("tags"), ds)
    iwhen = _as_list(ds.get("when"))
    # the import's vars (and those of imports around it) exist while its plays load
    load_vars = {**(outer_vars or {}), **ivars}
    plays = _load_plays(
        os.path.abspath(found), roles_path, syntax_only, stack, extra_vars, load_vars
    )
    for play in plays:
        merged = {**play.vars, **ivars}
        ptags = merged.pop("tags", None)
        if ptags is not None:
            play.tags.extend(str(ptags).split(","))
        play.vars = merged
        extra_tags = [t for t in itags if t not in play.tags]
        play.tags.extend(extra_tags)
        if iwhen:
            play.included_when = iwhen + play.included_when
        _push_down(play.tasks, extra_tags, iwhen)
        for h in play.handlers:
            h.tags = list(h.tags) + [t for t in extra_tags if t not in h.tags]
    return plays


def _push_down(nodes: list[Node], tags: list[str], when: list[Any]) -> None:
    """Give every task of an imported play the import's tags and conditions (handlers too
    inherit the tags; conditions apply to the task blocks only, as in ansible)."""
    for n in nodes:
        if isinstance(n, Block):
            _push_down(n.block, tags, when)
            _push_down(n.rescue, tags, when)
            _push_down(n.always, tags, when)
            continue
        n.tags = list(n.tags) + [t for t in tags if t not in n.tags]
        n.when = list(when) + list(n.when)
        if isinstance(n, (IncludeTasks, IncludeRole)):
            n.parent = dict(n.parent)
            n.parent["when"] = list(when) + list(n.parent.get("when", []))
            n.parent["tags"] = list(n.parent.get("tags", [])) + tags


def load_task_file(
    fname: str, base: str, inherit: dict[str, Any], obj: object, handler: bool = False
) -> list[Node]:
    """Load a task file for include_tasks (run time), with what its tasks inherit (a handler's
    include loads handlers)."""
    return _Loader().load_file(fname, base, inherit, obj, handler)
