"""Roles: finding, loading and expanding them (``roles:``, ``import_role``, ``include_role``).

Contract with the engine: ``expand_include_role`` is called by the iterator when it reaches an
:class:`~fleetkit.playbook.playbook.IncludeRole` node for a host, with the node's arguments
already templated for that host. Every task a role brings carries ``task.role`` (a
:class:`RoleRef`: defaults, vars, params for the precedence layers, role_name/role_path).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleetkit.playbook import plugins
from fleetkit.playbook.errors import IncludeNotFound, PlaybookError, PlaybookSyntaxError
from fleetkit.playbook.playbook import (
    ROLE_KEYWORDS,
    ROLE_META_KEYWORDS,
    Handler,
    IncludeRole,
    LoadContext,
    Node,
    Play,
    RoleRef,
    Task,
    _bool,
    _err,
    _Loader,
    add_library_dir,
    flat_handlers,
)
from fleetkit.playbook.yamlsrc import load_yaml_file, source_of

if TYPE_CHECKING:
    pass

__all__ = [
    "IncludedRole",
    "expand_include_role",
    "find_role",
    "play_role",
    "import_role",
    "collection_paths",
    "collection_playbook",
    "find_file",
    "search_paths",
]

_EXTS = ("", ".yml", ".yaml", ".json")


@dataclass(slots=True)
class IncludedRole:
    """What an ``include_role`` brings in: the role, its task nodes and its handlers."""

    role: RoleRef
    tasks: list[Node] = field(default_factory=list)
    handlers: list[Handler] = field(default_factory=list)


def collection_paths() -> list[str]:
    """Directories that may hold ``ansible_collections/`` (as ansible's COLLECTIONS_PATHS)."""
    env = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS")
    if env:
        paths = [os.path.expanduser(p) for p in env.split(os.pathsep) if p]
    else:
        paths = [os.path.expanduser("~/.ansible/collections"), "/usr/share/ansible/collections"]
    # collections installed as Python packages (ansible's own site-packages ansible_collections)
    paths += [p for p in sys.path if p and os.path.isdir(os.path.join(p, "ansible_collections"))]
    return paths


def _collection_dir(ns: str, coll: str, extra: list[str]) -> str | None:
    for base in [*extra, *collection_paths()]:
        root = base if os.path.basename(base) == "ansible_collections" else None
        root = root or os.path.join(base, "ansible_collections")
        cand = os.path.join(root, ns, coll)
        if os.path.isdir(cand):
            return cand
    return None


def collection_playbook(target: str) -> str | None:
    """``ns.coll.playbook`` -> its file under ``ansible_collections/ns/coll/playbooks/``."""
    parts = target.split(".")
    if len(parts) < 3 or "/" in target or target.endswith((".yml", ".yaml")):
        return None
    cdir = _collection_dir(parts[0], parts[1], [])
    if cdir is None:
        return None
    stem = os.path.join(cdir, "playbooks", *parts[2:])
    for ext in (".yml", ".yaml"):
        if os.path.isfile(stem + ext):
            return stem + ext
    return None


def search_paths(kind: str, role: RoleRef | None, basedir: str, task_dir: str = "") -> list[str]:
    """Where ansible looks for a relative ``files``/``templates``/``vars`` name of a task:
    the role (and its parents), the task file's directory, then the playbook directory."""
    dirs: list[str] = []
    if role is not None:
        dirs += [os.path.join(role.path, kind), role.path, os.path.join(role.path, "tasks", kind)]
        dirs.append(os.path.join(role.path, "tasks"))
    if task_dir:
        dirs += [os.path.join(task_dir, kind), task_dir]
    dirs += [os.path.join(basedir, kind), basedir]
    out: list[str] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def find_file(
    name: str, kind: str, role: RoleRef | None, basedir: str, task_dir: str = ""
) -> str | None:
    """The file a module's relative ``src`` names (``kind`` = files or templates), or None."""
    if os.path.isabs(name):
        return name if os.path.exists(name) else None
    for d in search_paths(kind, role, basedir, task_dir):
        cand = os.path.join(d, name)
        if os.path.exists(cand):
            return cand
    return None


def find_role(
    name: str, ctx: LoadContext, obj: object, role_basedir: str | None = None
) -> tuple[str, str]:
    """Resolve a role name to (name, directory) along ansible's search order."""
    parts = name.split(".")
    if len(parts) == 3 and all(p.isidentifier() for p in parts):
        cdir = _collection_dir(parts[0], parts[1], [os.path.join(ctx.basedir, "collections")])
        if cdir is not None and os.path.isdir(os.path.join(cdir, "roles", parts[2])):
            return name, os.path.join(cdir, "roles", parts[2])
    searches = [os.path.join(ctx.basedir, "roles"), *ctx.roles_path]
    if role_basedir:
        searches.append(role_basedir)
    searches.append(ctx.basedir)
    for base in searches:
        cand = os.path.normpath(os.path.join(base, name))
        if os.path.exists(cand):
            # a relative roles path (ANSIBLE_ROLES_PATH=./roles) is relative to the cwd
            return name, os.path.abspath(cand)
    cand = os.path.abspath(os.path.expanduser(name))
    if os.path.exists(cand):
        return os.path.basename(name.rstrip("/")), cand
    raise IncludeNotFound(
        f"the role '{name}' was not found in {':'.join(searches)}", source=source_of(obj)
    )


def _role_file(path: str, subdir: str, main: str, allow_dir: bool) -> list[str]:
    """Files of a role part (``tasks/main.yml`` ...): ansible's main, main.yml ... or main/."""
    base = os.path.join(path, subdir)
    for ext in _EXTS:
        cand = os.path.join(base, main + ext)
        if os.path.isfile(cand):
            return [cand]
    cand = os.path.join(base, main)
    if allow_dir and os.path.isdir(cand):
        found: list[str] = []
        for root, dirs, files in os.walk(cand):
            dirs.sort()
            for f in sorted(files):
                if f.endswith((".yml", ".yaml", ".json")) or "." not in f:
                    found.append(os.path.join(root, f))
        return found
    return []


def _load_vars(path: str, subdir: str, main: str, required: bool, obj: object) -> dict[str, Any]:
    files = _role_file(path, subdir, main, allow_dir=True)
    if not files and required:
        raise _err(f"Could not find specified file in role: {subdir}/{main}", obj)
    out: dict[str, Any] = {}
    for f in files:
        data = load_yaml_file(f)
        if data is None:
            continue
        if not isinstance(data, dict):
            raise PlaybookSyntaxError(
                f"The vars/defaults file {f} must be a mapping, got {type(data).__name__}",
                source=f,
            )
        out.update(data)
    return out


def _split_entry(entry: Any, obj: object) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A ``roles:`` / dependency entry -> (role name, keywords, role params)."""
    if isinstance(entry, str):
        return entry, {}, {}
    if not isinstance(entry, dict):
        raise _err("A malformed role declaration was encountered.", obj)
    name = entry.get("role", entry.get("name"))
    if not name or not isinstance(name, str):
        raise _err("role definitions must contain a role name", entry)
    kws = {k: v for k, v in entry.items() if k in ROLE_KEYWORDS and k not in ("role", "name")}
    params = {k: v for k, v in entry.items() if k not in ROLE_KEYWORDS}
    return name, kws, params


@dataclass(slots=True)
class _Spec:
    name: str
    params: dict[str, Any]
    keywords: dict[str, Any]
    tasks_from: str = "main"
    vars_from: str = "main"
    defaults_from: str = "main"
    handlers_from: str = "main"
    parents: tuple[str, ...] = ()
    parent_role_paths: tuple[str, ...] = ()
    parent_paths: tuple[str, ...] = ()
    public: bool = True
    validate: bool = True
    dedup: bool = True
    role_basedir: str | None = None
    allow_duplicates: bool | None = None
    # the roles it runs inside (ansible's dep chain, outermost first)
    chain: tuple[RoleRef, ...] = ()
    # import_role: the task's vars its static names are templated with (and play/extra vars)
    template_vars: dict[str, Any] = field(default_factory=dict)


def _load(
    loader: _Loader,
    spec: _Spec,
    parent: dict[str, Any],
    obj: object,
    handler: bool,
    collect: list[Handler],
    loaded: list[RoleRef] | None = None,
) -> list[Node]:
    ctx = loader.ctx
    assert ctx is not None
    name, path = find_role(
        ctx.template(spec.name, obj, spec.template_vars), ctx, obj, spec.role_basedir
    )
    add_library_dir(os.path.join(path, "library"))  # the role's own modules
    meta_files = _role_file(path, "meta", "main", allow_dir=False)
    meta: dict[str, Any] = {}
    if meta_files:
        data = load_yaml_file(meta_files[0])
        if data is not None and not isinstance(data, dict):
            raise _err("the role's meta/main.yml must be a mapping", obj)
        meta = dict(data or {})
        bad = [k for k in meta if k not in ROLE_META_KEYWORDS]
        if bad:
            raise _err(f"'{bad[0]}' is not a valid attribute for a RoleMetadata", data)
    allow_dup = spec.allow_duplicates
    if allow_dup is None:
        allow_dup = _bool(meta.get("allow_duplicates", False), "allow_duplicates", meta)
    # ansible's role identity: path, params, from-files, and the entry's when/tags/vars
    key = json.dumps(
        [
            path,
            spec.params,
            spec.tasks_from,
            spec.vars_from,
            spec.defaults_from,
            spec.handlers_from,
            spec.keywords.get("when"),
            spec.keywords.get("tags"),
            spec.keywords.get("vars"),
        ],
        sort_keys=True,
        default=str,
    )
    if spec.dedup and not allow_dup and key in ctx.seen:
        if loaded is not None and key in ctx.loaded:
            loaded.append(ctx.loaded[key])
        return []
    ctx.seen.add(key)
    # a role entry's vars: act as block vars of the role's tasks (above vars/main.yml, not
    # exported to the play)
    kws = dict(spec.keywords)
    defaults = _load_vars(path, "defaults", spec.defaults_from, spec.defaults_from != "main", obj)
    role_vars = _load_vars(path, "vars", spec.vars_from, spec.vars_from != "main", obj)
    ref = RoleRef(
        name=name,
        path=path,
        defaults=defaults,
        vars=role_vars,
        params=dict(spec.params),
        parents=spec.parents,
        parent_role_paths=spec.parent_role_paths,
        public=spec.public,
        dependency=bool(spec.parent_paths) and not spec.parents,
        chain=spec.chain,
        inherited_params=_merged(p.params for p in spec.chain),
        identity=key,
        # include_role/import_role: their own option (default yes), else the role's meta
        allow_duplicates=allow_dup if spec.allow_duplicates is not None or spec.dedup else True,
    )
    # a role's filter_plugins/, test_plugins/, lookup_plugins/ (ansible adds them on load)
    plugins.add_plugin_dirs(path)
    inh = loader._inherit(kws, parent)
    from fleetkit.playbook.playbook import _check_unhonoured

    _check_unhonoured(kws, ctx)
    nodes: list[Node] = []
    # dependencies first; they inherit this role's keywords
    deps = meta.get("dependencies") or []
    if not isinstance(deps, list):
        raise _err("dependencies must be a list", meta)
    dep_refs: list[RoleRef] = []
    for dep in deps:
        dname, dkws, dparams = _split_entry(dep, meta)
        dspec = _Spec(
            name=dname,
            params=dparams,
            keywords=dkws,
            # ansible leaves ansible_parent_role_names undefined in a dependency
            parent_paths=(path, *spec.parent_paths),
            public=spec.public,
            role_basedir=os.path.dirname(path),
            chain=(*spec.chain, ref),
        )
        nodes.extend(_load(loader, dspec, inh, meta, handler, collect, dep_refs))
    # ansible: role vars are the chain's, then the dependencies' exports, then its own;
    # defaults the dependencies', then the chain's, then its own
    ref = dataclasses.replace(
        ref,
        deps=tuple(dep_refs),
        inherited_vars={
            **_merged(p.vars for p in spec.chain),
            **_merged(d.export_vars() for d in dep_refs),
        },
        inherited_defaults={
            **_merged(d.export_defaults() for d in dep_refs),
            **_merged(p.defaults for p in spec.chain),
        },
    )
    ctx.loaded[key] = ref
    if loaded is not None:
        loaded.append(ref)
    ctx.roles.append(ref)
    inh = dict(inh, _role=ref)
    tasks_files = _role_file(path, "tasks", spec.tasks_from, allow_dir=False)
    if not tasks_files and spec.tasks_from != "main":
        raise _err(f"Could not find specified file in role: tasks/{spec.tasks_from}", obj)
    if spec.validate:
        nodes.extend(_validation_task(path, name, spec, meta, ref, inh, obj))
    if tasks_files:
        nodes.extend(loader.load_file(tasks_files[0], path, inh, obj, handler))
    handler_files = _role_file(path, "handlers", spec.handlers_from, allow_dir=False)
    if not handler_files and spec.handlers_from != "main":
        raise _err(f"Could not find specified file in role: handlers/{spec.handlers_from}", obj)
    if handler_files:
        hnodes = loader.load_file(handler_files[0], path, inh, obj, handler=True)
        flat_handlers(hnodes, collect)
    return nodes


def _merged(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Variable layers combined as ansible's combine_vars (replace), later ones winning."""
    out: dict[str, Any] = {}
    for part in parts:
        out.update(part)
    return out


def _validation_task(
    path: str,
    name: str,
    spec: _Spec,
    meta: dict[str, Any],
    ref: RoleRef,
    inh: dict[str, Any],
    obj: object,
) -> list[Node]:
    specs: Any = None
    for ext in (".yml", ".yaml"):
        f = os.path.join(path, "meta", "argument_specs" + ext)
        if os.path.isfile(f):
            specs = (load_yaml_file(f) or {}).get("argument_specs") or {}
            break
    if specs is None:
        specs = meta.get("argument_specs") or {}
    if not isinstance(specs, dict):
        raise _err("argument_specs must be a mapping", obj)
    entry = specs.get(spec.tasks_from)
    if not entry:
        return []
    task_name = f"Validating arguments against arg spec '{spec.tasks_from}'"
    if "short_description" in entry:
        task_name += " - " + str(entry["short_description"])
    task = Task(
        action="validate_argument_spec",
        args={
            "argument_spec": entry.get("options") or {},
            "provided_arguments": dict(spec.params),
            "validate_args_context": {
                "type": "role",
                "name": name,
                "argument_spec_name": spec.tasks_from,
                "path": path,
            },
        },
        name=task_name,
        kw={k: v for k, v in inh.items() if k not in ("when", "tags", "vars") and k[0] != "_"},
        when=list(inh.get("when", [])),
        tags=[*inh.get("tags", []), "always"],
        vars=dict(inh.get("vars", {})),
        role=ref,
    )
    task.path = os.path.join(path, "meta")
    return [task]


def play_role(loader: _Loader, entry: Any, parent: dict[str, Any], obj: object) -> list[Node]:
    """Load one ``roles:`` entry of a play (dependencies first, once per play)."""
    ctx = loader.ctx
    assert ctx is not None
    name, kws, params = _split_entry(entry, obj)
    spec = _Spec(name=name, params=params, keywords=kws)
    nodes = _load(
        loader, spec, parent, entry if isinstance(entry, dict) else obj, False, ctx.handlers
    )
    ctx.direct.append(ctx.template(name, obj).rstrip("/").rsplit("/", 1)[-1])
    return nodes


def _from_args(
    spec: _Spec, args: Mapping[str, Any], obj: object, ctx: LoadContext | None = None
) -> None:
    for k in ("tasks_from", "vars_from", "defaults_from", "handlers_from"):
        if args.get(k):
            value = str(args[k])
            if ctx is not None:
                value = ctx.template(value, obj, spec.template_vars)
            setattr(spec, k, value)

    def flag(key: str) -> bool:
        value = args[key]
        if ctx is not None and isinstance(value, str):
            value = ctx.template(value, obj, spec.template_vars)  # import_role: at parse time
        return _bool(value, key, obj)

    if "rolespec_validate" in args:
        spec.validate = flag("rolespec_validate")
    if "allow_duplicates" in args:
        spec.allow_duplicates = flag("allow_duplicates")


def import_role(
    loader: _Loader,
    name: str,
    args: Mapping[str, Any],
    inh: dict[str, Any],
    ds: object,
    handler: bool,
) -> list[Node]:
    """Load an ``import_role`` task statically: the task's keywords go to every role task."""
    ctx = loader.ctx
    assert ctx is not None
    current: RoleRef | None = inh.get("_role")
    spec = _Spec(
        name=name,
        params={},
        keywords={},
        parents=((current.name, *current.parents) if current else ()),
        parent_role_paths=((current.path, *current.parent_role_paths) if current else ()),
        public=bool(args.get("public", True)),
        dedup=False,
        role_basedir=os.path.dirname(current.path) if current else None,
        chain=(*current.chain, current) if current else (),
        template_vars=dict(inh.get("vars") or {}),
    )
    _from_args(spec, args, ds, ctx)
    nodes = _load(loader, spec, inh, ds, handler, ctx.imported_handlers)
    ctx.imported.append(ctx.template(name, ds, spec.template_vars).rstrip("/").rsplit("/", 1)[-1])
    return nodes


def expand_include_role(node: IncludeRole, args: Mapping[str, Any], play: Play) -> IncludedRole:
    """Load the role an ``include_role`` names (args templated for one host)."""
    name = args.get("name", args.get("role"))
    if not name:
        raise PlaybookError("'name' is a required field for include_role.")
    ctx = LoadContext(basedir=play.basedir, roles_path=list(play.roles_path))
    loader = _Loader(ctx)
    current = node.role
    spec = _Spec(
        name=str(name),
        params={},
        keywords={},
        parents=((current.name, *current.parents) if current else ()),
        parent_role_paths=((current.path, *current.parent_role_paths) if current else ()),
        public=_bool(args.get("public", False), "public", None),
        dedup=False,
        role_basedir=os.path.dirname(current.path) if current else None,
        chain=(*current.chain, current) if current else (),
    )
    _from_args(spec, args, None)
    # a role file that does not parse ends the run as ansible's parser error (play_runner)
    nodes = _load(loader, spec, dict(node.parent), None, False, ctx.handlers)
    ref = ctx.roles[-1]
    # roles its tasks import joined the play's handlers while it loaded, before its own
    handlers = [*ctx.imported_handlers, *ctx.handlers]
    return IncludedRole(role=ref, tasks=nodes, handlers=handlers)
