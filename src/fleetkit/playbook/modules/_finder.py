"""Find ansible's modules and the module_utils they import, from the installed packages.

A module name (short, ``ansible.builtin.x``, ``ansible.legacy.x`` or a collection FQCN) resolves
to one source file: a ``library`` path, ansible-core's ``ansible/modules``, or a collection's
``plugins/modules``, following ``plugin_routing`` redirects (ansible's builtin runtime file and
each collection's ``meta/runtime.yml``). For a Python module the closure of its
``ansible.module_utils.*`` and ``ansible_collections.*.plugins.module_utils.*`` imports is found
by reading the import statements (the way AnsiballZ does), so the set of files to ship to a host
is known without importing any of them on the controller.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml

__all__ = [
    "ModuleSource",
    "find",
    "resolve",
    "set_library_paths",
    "set_playbook_dirs",
    "reset_caches",
    "ansible_version",
]

# modules that always ride along: the runner ansible's wrapper uses and the JSON profiles it loads
_ALWAYS = (
    "ansible.module_utils.basic",
    "ansible.module_utils._internal._ansiballz._loader",
    "ansible.module_utils._internal._json._profiles._module_legacy_c2m",
    "ansible.module_utils._internal._json._profiles._module_legacy_m2c",
)
_ANSIBLE_INIT = b"from pkgutil import extend_path\n__path__=extend_path(__path__,__name__)\n"
_EMPTY_PKG = b""

_lock = threading.Lock()
_library_paths: list[str] = []
_playbook_collections: list[str] = []


def reset_caches() -> None:
    """Forget what was found (after ANSIBLE_COLLECTIONS_PATH or ANSIBLE_LIBRARY changed)."""
    for cached in (_find, resolve, _collection_roots, _collection_dir, _collection_routing):
        cached.cache_clear()


def add_library_path(path: str) -> None:
    """Add one extra module directory (``library/`` beside a playbook or in a role)."""
    path = os.path.abspath(path)
    with _lock:
        if path in _library_paths:
            return
        _library_paths.append(path)
    _find.cache_clear()
    resolve.cache_clear()


def set_playbook_dirs(dirs: list[str]) -> None:
    """The playbooks' directories: their ``collections/`` come first in the collection search
    path (ansible's playbook-adjacent collections)."""
    with _lock:
        _playbook_collections[:] = [os.path.join(os.path.abspath(d), "collections") for d in dirs]
    reset_caches()


def set_library_paths(paths: list[str]) -> None:
    """Set the extra module directories (``-M``, ``library`` beside the playbook or a role)."""
    with _lock:
        _library_paths[:] = [os.path.abspath(p) for p in paths if p]
    _find.cache_clear()
    resolve.cache_clear()


@lru_cache(maxsize=1)
def _ansible_dir() -> str | None:
    spec = importlib.util.find_spec("ansible")
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(list(spec.submodule_search_locations)[0])


@lru_cache(maxsize=1)
def ansible_version() -> str:
    """The installed ansible-core version (read from its release file, not imported)."""
    base = _ansible_dir()
    if base is None:
        return "0"
    try:
        tree = ast.parse(_read(os.path.join(base, "release.py")))
    except OSError:
        return "0"
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
    return "0"


@lru_cache(maxsize=1)
def _collection_roots() -> tuple[str, ...]:
    """Directories that hold an ``ansible_collections`` package, in ansible's search order."""
    roots: list[str] = []
    env = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS")
    paths = list(_playbook_collections)
    paths += env.split(os.pathsep) if env else []
    paths += [os.path.expanduser("~/.ansible/collections"), "/usr/share/ansible/collections"]
    for p in paths:
        d = os.path.join(os.path.expanduser(p), "ansible_collections")
        if os.path.isdir(d):
            roots.append(os.path.dirname(d))
    try:
        spec = importlib.util.find_spec("ansible_collections")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            root = os.path.dirname(str(loc))
            if root not in roots:
                roots.append(root)
    return tuple(roots)


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


@lru_cache(maxsize=1)
def _builtin_routing() -> dict[str, Any]:
    base = _ansible_dir()
    if base is None:
        return {}
    path = os.path.join(base, "config", "ansible_builtin_runtime.yml")
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError:
        return {}
    routing = data.get("plugin_routing") if isinstance(data, dict) else None
    return routing if isinstance(routing, dict) else {}


@lru_cache(maxsize=256)
def _collection_dir(ns: str, coll: str) -> str | None:
    for root in _collection_roots():
        d = os.path.join(root, "ansible_collections", ns, coll)
        if os.path.isdir(d):
            return d
    return None


@lru_cache(maxsize=256)
def _collection_routing(ns: str, coll: str) -> dict[str, Any]:
    d = _collection_dir(ns, coll)
    if d is None:
        return {}
    path = os.path.join(d, "meta", "runtime.yml")
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError):
        return {}
    routing = data.get("plugin_routing") if isinstance(data, dict) else None
    return routing if isinstance(routing, dict) else {}


def _routing_entry(routing: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    table = routing.get(kind)
    entry = table.get(name) if isinstance(table, dict) else None
    return entry if isinstance(entry, dict) else {}


def _module_file(directory: str, name: str) -> str | None:
    for ext in (".py", ""):
        path = os.path.join(directory, name + ext)
        if os.path.isfile(path):
            return path
    if os.path.isdir(directory):
        for fn in os.listdir(directory):
            stem, ext = os.path.splitext(fn)
            if stem == name and ext not in (".pyc", ".ps1", ".yml", ".yaml", ".md", ".txt"):
                return os.path.join(directory, fn)
    return None


def _split_fqcn(name: str) -> tuple[str, str, str] | None:
    parts = name.split(".")
    if len(parts) < 3:
        return None
    return parts[0], parts[1], ".".join(parts[2:])


def _locate(name: str, depth: int = 0) -> tuple[str, str, str] | None:
    """(fqcn, file path, python module name in the payload) for a module name, or None."""
    if depth > 10:
        return None
    short = name
    for prefix in ("ansible.builtin.", "ansible.legacy."):
        if name.startswith(prefix):
            short = name[len(prefix) :]
            break
    if short != name or "." not in name:
        legacy = not name.startswith("ansible.builtin.")
        if legacy:
            with _lock:
                libs = list(_library_paths)
            env_lib = os.environ.get("ANSIBLE_LIBRARY")
            if env_lib:
                libs += [os.path.expanduser(p) for p in env_lib.split(os.pathsep)]
            for d in libs:
                path = _module_file(d, short)
                if path is not None:
                    return f"ansible.legacy.{short}", path, f"ansible.legacy.{short}"
        base = _ansible_dir()
        if base is not None:
            path = _module_file(os.path.join(base, "modules"), short)
            if path is not None:
                return f"ansible.builtin.{short}", path, f"ansible.modules.{short}"
        redirect = _routing_entry(_builtin_routing(), "modules", short).get("redirect")
        if isinstance(redirect, str):
            return _locate(redirect, depth + 1)
        return None
    split = _split_fqcn(name)
    if split is None:
        return None
    ns, coll, mod = split
    routing = _collection_routing(ns, coll)
    redirect = _routing_entry(routing, "modules", mod).get("redirect")
    if isinstance(redirect, str):
        return _locate(redirect, depth + 1)
    cdir = _collection_dir(ns, coll)
    if cdir is None:
        return None
    sub = mod.split(".")
    path = _module_file(os.path.join(cdir, "plugins", "modules", *sub[:-1]), sub[-1])
    if path is None:
        return None
    pyname = f"ansible_collections.{ns}.{coll}.plugins.modules.{mod}"
    return name, path, pyname


@lru_cache(maxsize=1024)
def resolve(name: str) -> str | None:
    """The FQCN a module name runs as (``file`` -> ``ansible.builtin.file``), or None."""
    found = _locate(name)
    return found[0] if found else None


@dataclass(frozen=True, slots=True)
class ModuleSource:
    """One module ready to ship: its files (payload path -> content hash) and how it runs."""

    fqcn: str
    path: str
    pyname: str  # the module's import name inside the payload
    style: str  # new | want_json | old | binary
    files: tuple[tuple[str, str], ...]  # (payload-relative path, sha256)
    bundle: str  # hash of ``files``: the payload's identity on the host
    blobs: dict[str, bytes]  # sha256 -> content

    def blob(self, sha: str) -> bytes:
        """The content for one hash."""
        return self.blobs[sha]


def _style(data: bytes) -> str:
    if data.startswith(b"\x7fELF") or b"\0" in data[:1024]:
        return "binary"
    if (
        b"from ansible.module_utils." in data
        or b"import ansible.module_utils." in data
        or b"from ansible_collections." in data
        or b"import ansible_collections." in data
    ):
        return "new"
    if b"WANT_JSON" in data:
        return "want_json"
    if data.startswith(b"#!") and b"python" not in data.split(b"\n", 1)[0]:
        return "want_json" if b"WANT_JSON" in data else "old"
    return "old"


@lru_cache(maxsize=4096)
def _source_of(dotted: str, package: bool = False) -> str | None:
    """The file for a dotted module name under module_utils, or None."""
    parts = dotted.split(".")
    if parts[:2] == ["ansible", "module_utils"]:
        base = _ansible_dir()
        if base is None:
            return None
        d = os.path.join(base, "module_utils", *parts[2:])
    elif parts[0] == "ansible_collections" and len(parts) >= 5:
        cd = _collection_dir(parts[1], parts[2])
        if cd is None:
            return None
        d = os.path.join(cd, *parts[3:])
    else:
        return None
    init = os.path.join(d, "__init__.py")
    if os.path.isfile(init):
        return init
    if not package and os.path.isfile(d + ".py"):
        return d + ".py"
    return None


def _utils_floor(mod: list[str]) -> int:
    if mod[:2] == ["ansible", "module_utils"]:
        return 2
    if (
        len(mod) >= 5
        and mod[0] == "ansible_collections"
        and mod[3:5] == ["plugins", "module_utils"]
    ):
        return 5
    return 0


# the fields that hold statements: an import is a statement, so only these need walking
_BLOCKS = frozenset({"body", "orelse", "finalbody", "handlers", "cases"})


def _statements(tree: ast.AST) -> Iterator[ast.AST]:
    """The statements of a tree in ``ast.walk``'s order, without walking any expression."""
    todo: deque[ast.AST] = deque([tree])
    while todo:
        node = todo.popleft()
        yield node
        for field in node._fields:
            if field in _BLOCKS:
                block = getattr(node, field)
                if isinstance(block, list):
                    todo.extend(block)


@lru_cache(maxsize=4096)
def _imports(data: bytes, dotted: str, is_pkg: bool) -> tuple[str, ...]:
    """The module_utils modules one source file imports (those that exist, plus redirects)."""
    try:
        tree = ast.parse(data)
    except SyntaxError:
        return ()
    package = dotted.split(".") if is_pkg else dotted.split(".")[:-1]
    out: list[str] = []
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                mod = alias.name.split(".")
                floor = _utils_floor(mod)
                if floor and len(mod) > floor:
                    out.append(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                mod = base + (node.module.split(".") if node.module else [])
            else:
                mod = node.module.split(".") if node.module else []
            floor = _utils_floor(mod)
            if not floor:
                continue
            for a in node.names:
                sub = ".".join(mod + [a.name])
                if a.name != "*" and _source_of(sub) is not None:
                    out.append(sub)
            if len(mod) > floor:
                out.append(".".join(mod))
    return tuple(dict.fromkeys(out))


class _Closure:
    """The module_utils files one module needs, found by reading import statements."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}  # payload path -> content
        self.seen: set[str] = set()

    def add_package_inits(self, parts: list[str]) -> None:
        for i in range(1, len(parts)):
            pkg = parts[:i]
            rel = "/".join(pkg) + "/__init__.py"
            if rel in self.files:
                continue
            if pkg == ["ansible"] or pkg == ["ansible", "module_utils"]:
                self.files[rel] = _ANSIBLE_INIT
            elif pkg[0] == "ansible_collections" and len(pkg) <= 3:
                self.files[rel] = _EMPTY_PKG
            else:
                path = _source_of(".".join(pkg), package=True)
                if path is None:
                    self.files[rel] = _EMPTY_PKG
                else:
                    self.add_module(".".join(pkg))

    def add_module(self, dotted: str) -> None:
        """Add one module_utils module and, recursively, what it imports."""
        if dotted in self.seen:
            return
        self.seen.add(dotted)
        parts = dotted.split(".")
        path = _source_of(dotted)
        if path is None:
            self.add_redirect(parts)
            return
        is_pkg = path.endswith("__init__.py")
        rel = "/".join(parts) + ("/__init__.py" if is_pkg else ".py")
        data = _read_cached(path)
        self.files[rel] = data
        self.add_package_inits(parts)
        for dep in _imports(data, dotted, is_pkg):
            self.add_module(dep)

    def add_redirect(self, parts: list[str]) -> None:
        if parts[:2] == ["ansible", "module_utils"]:
            routing = _builtin_routing()
            key = ".".join(parts[2:])
        elif len(parts) >= 6 and parts[0] == "ansible_collections":
            routing = _collection_routing(parts[1], parts[2])
            key = ".".join(parts[5:])
        else:
            return
        target = _routing_entry(routing, "module_utils", key).get("redirect")
        if not isinstance(target, str):
            return
        if not target.startswith("ansible_collections"):
            ns, coll, rest = target.split(".", 2)
            target = f"ansible_collections.{ns}.{coll}.plugins.module_utils.{rest}"
        dotted = ".".join(parts)
        self.files["/".join(parts) + ".py"] = (
            f"import sys\nimport {target} as mod\n\nsys.modules[{dotted!r}] = mod\n"
        ).encode()
        self.add_package_inits(parts)
        self.add_module(target)


@lru_cache(maxsize=4096)
def _read_cached(path: str) -> bytes:
    return _read(path)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_finding: dict[str, threading.Lock] = {}


def find(name: str) -> ModuleSource | None:
    """The module a name runs, with its payload files; None when the name does not resolve."""
    # one thread reads and walks the payload; the others (every fork's first task of a play
    # starts together) wait for it instead of doing the same work at the same time
    with _lock:
        lock = _finding.setdefault(name, threading.Lock())
    with lock:
        return _find(name)


@lru_cache(maxsize=512)
def _find(name: str) -> ModuleSource | None:
    found = _locate(name)
    if found is None:
        return None
    fqcn, path, pyname = found
    data = _read(path)
    style = _style(data)
    files: dict[str, bytes] = {}
    if style == "new":
        closure = _Closure()
        for dotted in _ALWAYS:
            closure.add_module(dotted)
        for dep in _imports(data, pyname, False):
            closure.add_module(dep)
        parts = pyname.split(".")
        closure.add_package_inits(parts)
        if parts[0] == "ansible_collections":
            for i in range(4, len(parts)):
                closure.files.setdefault("/".join(parts[:i]) + "/__init__.py", _EMPTY_PKG)
        if parts[:2] == ["ansible", "legacy"] or parts[:2] == ["ansible", "modules"]:
            closure.files["/".join(parts[:2]) + "/__init__.py"] = _EMPTY_PKG
        files = closure.files
        files["/".join(parts) + ".py"] = data
    else:
        files[os.path.basename(path)] = data
    blobs: dict[str, bytes] = {}
    entries: list[tuple[str, str]] = []
    for rel in sorted(files):
        sha = _digest(files[rel])
        blobs[sha] = files[rel]
        entries.append((rel, sha))
    bundle = _digest("\n".join(f"{r} {s}" for r, s in entries).encode())[:32]
    return ModuleSource(fqcn, path, pyname, style, tuple(entries), bundle, blobs)
