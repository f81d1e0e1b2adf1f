"""Inventory as ansible-core builds it: INI and YAML sources, host_vars/ and group_vars/.

Hosts and groups keep insertion order; ``all`` lists its own hosts, then ``ungrouped``, then
each top-level group in the order the source declared it, walking children breadth-first, as
ansible's ``Group.get_hosts`` does.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import string
import subprocess
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from fleetkit.playbook.errors import InventoryError, PlaybookSyntaxError
from fleetkit.playbook.yamlsrc import load_yaml_text

__all__ = ["Host", "Group", "Inventory", "load_inventory", "expand_hostname_range"]

_VARS_EXTS = ("", ".yml", ".yaml", ".json")
_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$")


@dataclass(slots=True)
class Host:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    implicit: bool = False
    dynamic: bool = False  # added by add_host: no inventory_file/inventory_dir


@dataclass(slots=True)
class Group:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)


def expand_hostname_range(pattern: str) -> list[str]:
    """``web[01:03]`` -> web01 web02 web03; ``[a:c]`` alpha ranges; ``[1:9:2]`` steps."""
    m = re.search(r"\[([^\[\]]*:[^\[\]]*)\]", pattern)
    if not m:
        return [pattern]
    head, tail = pattern[: m.start()], pattern[m.end() :]
    parts = m.group(1).split(":")
    if len(parts) not in (2, 3):
        raise InventoryError(f"invalid range in host pattern {pattern!r}")
    beg, end = parts[0], parts[1]
    step = int(parts[2]) if len(parts) == 3 and parts[2] else 1
    if not beg:
        beg = "0"
    if not end:
        raise InventoryError(f"host range must specify an end value: {pattern!r}")
    if beg[0] == "0" and len(beg) > 1:
        if len(beg) != len(end):
            raise InventoryError(f"host range must specify equal-length begin and end: {pattern!r}")
    items: list[str]
    if beg.isdigit() and end.isdigit():
        width = len(beg) if beg.startswith("0") and len(beg) > 1 else 0
        items = [str(i).zfill(width) for i in range(int(beg), int(end) + 1, step)]
    elif beg in string.ascii_letters and end in string.ascii_letters and len(beg) == len(end) == 1:
        letters = string.ascii_letters
        i0, i1 = letters.index(beg), letters.index(end)
        if i0 > i1:
            raise InventoryError(f"host range must be begin <= end: {pattern!r}")
        items = list(letters[i0 : i1 + 1 : step])
    else:
        raise InventoryError(f"invalid host range {pattern!r}")
    out: list[str] = []
    for item in items:
        out.extend(expand_hostname_range(head + item + tail))
    return out


def _parse_ini_value(value: str) -> Any:
    """An INI value as ansible types it: a Python literal, else the string (quietly: no
    SyntaxWarning), then coerced to the variable types ansible supports."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return value
    return _coerce_ini_value(parsed)


def _coerce_ini_value(value: Any) -> Any:
    """ansible's INI coercion: tuples and sets become lists, bytes text, ``...`` and complex
    numbers their string form; dict values recursively."""
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_coerce_ini_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _coerce_ini_value(v) for k, v in value.items()}
    if value is ...:
        return "..."
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    return value


def _split_host_port(token: str) -> tuple[str, int | None]:
    if token.count(":") == 1 and not token.endswith("]"):
        name, port = token.split(":")
        if port.isdigit():
            return name, int(port)
    return token, None


class Inventory:
    """The inventory data: ordered hosts and groups, plus vars directories."""

    def __init__(self) -> None:
        self.hosts: dict[str, Host] = {}
        self.groups: dict[str, Group] = {}
        self.vars_dirs: list[str] = []
        self.sources: list[str] = []
        self.warnings: list[str] = []
        self._file_vars: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._hostvars_cache: dict[str, dict[str, Any]] = {}
        self._depth_cache: dict[str, int] | None = None
        self._hosts_of_cache: dict[str, list[str]] = {}
        # add_host/group_by changes, applied again after meta: refresh_inventory (as ansible)
        self.dynamic: list[tuple[str, str, tuple[str, ...], dict[str, Any]]] = []
        self.add_group("all")
        self.add_group("ungrouped")
        self.add_child("all", "ungrouped")

    # -- building --------------------------------------------------------------------------

    def add_group(self, name: str) -> Group:
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = Group(name)
        return group

    def add_host(self, name: str, group: str | None = None) -> Host:
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = Host(name)
        if group is not None:
            g = self.add_group(group)
            if name not in g.hosts:
                g.hosts.append(name)
            if group not in host.groups:
                host.groups.append(group)
        return host

    def add_child(self, parent: str, child: str) -> None:
        p = self.add_group(parent)
        c = self.add_group(child)
        if parent == child:
            raise InventoryError(f"group {parent!r} cannot be its own child")
        if child in self._ancestors(parent):
            raise InventoryError(
                f"Adding group '{child}' as child to '{parent}' creates a recursive dependency loop."
            )
        if child not in p.children:
            p.children.append(child)
        if parent not in c.parents:
            c.parents.append(parent)

    def _ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.groups[name].parents)
        while todo:
            g = todo.pop()
            if g not in seen:
                seen.add(g)
                todo.extend(self.groups[g].parents)
        return seen

    def reconcile(self) -> None:
        for group in list(self.groups.values()):
            if group.name != "all" and not group.parents:
                self.add_child("all", group.name)
        ungrouped = self.groups["ungrouped"]
        for host in self.hosts.values():
            others = [g for g in host.groups if g not in ("all", "ungrouped")]
            if "ungrouped" in host.groups and others:
                ungrouped.hosts.remove(host.name)
                host.groups.remove("ungrouped")
            elif not host.implicit and not others and "ungrouped" not in host.groups:
                self.add_host(host.name, "ungrouped")
        for name in self.groups:
            if name in self.hosts:
                warning = f"Found both group and host with same name: {name}"
                if warning not in self.warnings:
                    self.warnings.append(warning)
        self.invalidate()

    # -- changes while a playbook runs (add_host, group_by) --------------------------------

    def add_dynamic_host(self, name: str, groups: Iterable[str], host_vars: dict[str, Any]) -> bool:
        """Apply an ``add_host`` result as ansible's inventory manager does: add the host (to
        ``all``), merge its variables, put it in ``groups``; True when anything changed."""
        groups = tuple(groups)
        self.dynamic.append(("host", name, groups, dict(host_vars)))
        changed = False
        host = self.hosts.get(name)
        if host is None or host.implicit:
            # an implicit localhost is not in ansible's inventory: add_host creates a real one
            self.hosts.pop(name, None)
            host = self.add_host(name, "all")
            host.dynamic = True
            changed = True
        merged = {**host.vars, **host_vars}
        if merged != host.vars:
            host.vars = merged
            changed = True
        for group in groups:
            if group not in self.groups:
                self.add_group(group)
                changed = True
            if name not in self.groups[group].hosts:
                self.add_host(name, group)
                changed = True
        if changed:
            self.reconcile()
        return changed

    def add_dynamic_group(self, host: str, group: str, parents: Iterable[str]) -> bool:
        """Apply a ``group_by`` result for ``host``: create the group and its parents, put the
        host in it; True when anything changed (a new group alone does not count, as ansible)."""
        if host not in self.hosts:
            raise InventoryError(f"{host} cannot be matched in inventory")
        parents = list(parents)
        self.dynamic.append(("group", host, (group, *parents), {}))
        changed = False
        self.add_group(group)
        for parent in parents:
            if parent not in self.groups:
                self.add_group(parent)
                changed = True
        for parent in parents:
            if group not in self.groups[parent].children:
                self.add_child(parent, group)
                changed = True
        if host not in self.groups[group].hosts:
            self.add_host(host, group)
            changed = True
        if changed:
            self.reconcile()
        return changed

    def invalidate(self) -> None:
        self._hostvars_cache.clear()
        self._depth_cache = None
        self._hosts_of_cache.clear()

    def replay_dynamic(
        self, changes: list[tuple[str, str, tuple[str, ...], dict[str, Any]]]
    ) -> None:
        """Apply add_host/group_by changes again (after the sources were read anew); a
        grouping for a host the sources no longer have is dropped."""
        for kind, name, names, host_vars in changes:
            if kind == "host":
                self.add_dynamic_host(name, names, host_vars)
            elif name in self.hosts:
                self.add_dynamic_group(name, names[0], names[1:])

    # -- queries ---------------------------------------------------------------------------

    def descendants(self, name: str) -> list[str]:
        """The group and its descendants, breadth-first in declaration order."""
        ordered = [name]
        seen = {name}
        level = [name]
        while level:
            nxt: list[str] = []
            for g in level:
                for c in self.groups[g].children:
                    if c not in seen:
                        seen.add(c)
                        ordered.append(c)
                        nxt.append(c)
            level = nxt
        return ordered

    def hosts_of(self, group: str) -> list[str]:
        cached = self._hosts_of_cache.get(group)
        if cached is not None:
            return cached
        out: list[str] = []
        seen: set[str] = set()
        for g in self.descendants(group):
            for h in self.groups[g].hosts:
                if h not in seen:
                    seen.add(h)
                    if group == "all" and self.hosts[h].implicit:
                        continue
                    out.append(h)
        self._hosts_of_cache[group] = out
        return out

    def all_groups_of(self, host: str) -> list[str]:
        """Every group the host belongs to, directly or through children (with ``all``)."""
        out: list[str] = []
        todo = list(self.hosts[host].groups)
        while todo:
            g = todo.pop(0)
            if g not in out:
                out.append(g)
                todo.extend(self.groups[g].parents)
        if "all" not in out:
            out.append("all")
        return out

    def depth(self, group: str) -> int:
        if self._depth_cache is None:
            depths: dict[str, int] = {"all": 0}
            level = ["all"]
            d = 0
            while level:
                d += 1
                nxt = []
                for g in level:
                    for c in self.groups[g].children:
                        if depths.get(c, -1) < d:
                            depths[c] = d
                            nxt.append(c)
                level = nxt
                if d > len(self.groups) + 1:
                    break
            self._depth_cache = depths
        return self._depth_cache.get(group, 0)

    def group_names(self, host: str) -> list[str]:
        """``group_names``: sorted, without ``all`` (and ``ungrouped`` kept, as ansible does)."""
        return sorted(g for g in self.all_groups_of(host) if g != "all")

    def get_host(self, name: str) -> Host | None:
        host = self.hosts.get(name)
        if host is None and name in ("localhost", "127.0.0.1", "::1"):
            host = Host(name, implicit=True)
            # as ansible's implicit localhost: local, with the controller's own interpreter
            # (over any interpreter_python setting)
            host.vars = {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
            }
            self.hosts[name] = host
            self.invalidate()
        return host

    def _files_vars(self, kind: str, name: str) -> list[dict[str, Any]]:
        out = []
        for d in self.vars_dirs:
            v = self._load_vars_for(d, kind, name)
            if v:
                out.append(v)
        return out

    def _load_vars_for(self, base: str, kind: str, name: str) -> dict[str, Any]:
        key = (base, kind, name)
        cached = self._file_vars.get(key)
        if cached is not None:
            return cached
        result: dict[str, Any] = {}
        root = os.path.join(base, kind)
        if os.path.isdir(root):
            for ext in _VARS_EXTS:
                p = os.path.join(root, name + ext)
                if os.path.isfile(p):
                    result.update(_load_vars_file(p))
                elif ext == "" and os.path.isdir(p):
                    for fn in sorted(os.listdir(p)):
                        fp = os.path.join(p, fn)
                        if os.path.isfile(fp) and fn.endswith((".yml", ".yaml", ".json")):
                            result.update(_load_vars_file(fp))
        self._file_vars[key] = result
        return result

    def host_vars(self, name: str) -> dict[str, Any]:
        """Inventory-level variables for a host, merged in ansible's precedence order."""
        cached = self._hostvars_cache.get(name)
        if cached is not None:
            return cached
        host = self.get_host(name)
        if host is None:
            raise InventoryError(f"unknown host {name!r}")
        groups = sorted(self.all_groups_of(name), key=lambda g: (self.depth(g), g))
        merged: dict[str, Any] = {}
        for g in groups:
            if g in self.groups:
                merged.update(self.groups[g].vars)
        for v in self._files_vars("group_vars", "all"):
            merged.update(v)
        for g in groups:
            if g != "all":
                for v in self._files_vars("group_vars", g):
                    merged.update(v)
        merged.update(host.vars)
        for v in self._files_vars("host_vars", name):
            merged.update(v)
        self._hostvars_cache[name] = merged
        return merged

    def group_vars(self, name: str) -> dict[str, Any]:
        """A group's own variables: the source's, then its group_vars/ files."""
        merged = dict(self.groups[name].vars)
        for v in self._files_vars("group_vars", name):
            merged.update(v)
        return merged

    def direct_host_vars(self, name: str) -> dict[str, Any]:
        """A host's own variables (``--export``): the source's, then its host_vars/ files."""
        merged = dict(self.hosts[name].vars)
        for v in self._files_vars("host_vars", name):
            merged.update(v)
        return merged

    def add_vars_dir(self, path: str) -> None:
        path = os.path.abspath(path)
        if path not in self.vars_dirs:
            self.vars_dirs.append(path)
            self.invalidate()


def _inventory_yaml(text: str, path: str) -> Any:
    """Parse inventory-side YAML; a syntax error is a bad inventory source (exit 2), not 4."""
    try:
        return load_yaml_text(text, path)
    except PlaybookSyntaxError as exc:
        raise InventoryError(exc.message, hint=exc.hint) from None


def _load_vars_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"cannot read {path}: {exc}") from None
    data = load_yaml_text(text, path) if text.strip() else {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InventoryError(f"{path}: vars file must be a mapping, got {type(data).__name__}")
    return dict(data)


# -- INI ---------------------------------------------------------------------------------------


def _parse_ini(inv: Inventory, path: str, text: str) -> None:
    section = "ungrouped"
    state = "hosts"
    pending_children: list[tuple[str, str, int]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        where = f"{path}:{lineno}"
        if line.startswith("["):
            m = _SECTION.match(line)
            if not m:
                raise InventoryError(f"invalid section entry: {line!r}", source=where)
            section, kind = m.group(1), m.group(2) or "hosts"
            if kind not in ("hosts", "vars", "children"):
                raise InventoryError(
                    f"section [{line[1:-1]}] has unknown type: {kind}", source=where
                )
            state = kind
            if state != "vars":
                inv.add_group(section)
            continue
        if state == "hosts":
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError as exc:
                raise InventoryError(f"cannot parse host line: {exc}", source=where) from None
            if not tokens:
                continue
            name, port = _split_host_port(tokens[0])
            if tokens[0].endswith(":") and port is None:
                raise InventoryError(
                    f"Invalid host pattern '{tokens[0]}' supplied, ending in ':' is not allowed, "
                    "this character is reserved to provide a port.",
                    source=where,
                )
            if name == "---":
                raise InventoryError(
                    f"Invalid host pattern '{tokens[0]}' supplied, '---' is normally a sign this "
                    "is a YAML file.",
                    source=where,
                )
            hvars: dict[str, Any] = {}
            for tok in tokens[1:]:
                if "=" not in tok:
                    raise InventoryError(
                        f"expected key=value host variable assignment, got: {tok}", source=where
                    )
                k, v = tok.split("=", 1)
                hvars[k] = _parse_ini_value(v)
            if port is not None:
                hvars["ansible_port"] = port
            for hn in expand_hostname_range(name):
                host = inv.add_host(hn, section)
                host.vars.update(hvars)
        elif state == "vars":
            if "=" not in line:
                raise InventoryError(f"expected key=value, got: {line}", source=where)
            k, v = line.split("=", 1)
            inv.add_group(section).vars[k.strip()] = _parse_ini_value(v.strip())
        else:
            child = line.split()[0]
            pending_children.append((section, child, lineno))
            inv.add_group(child)
    for parent, child, lineno in pending_children:
        try:
            inv.add_child(parent, child)
        except InventoryError as exc:
            raise InventoryError(exc.message, source=f"{path}:{lineno}") from None


# -- YAML --------------------------------------------------------------------------------------


def _parse_yaml_group(inv: Inventory, name: Any, data: Any, path: str) -> None:
    """One YAML group; as ansible, a child joins its parent once it has been parsed."""
    if not isinstance(name, str):
        raise InventoryError(
            f"Unable to add group {name}: Invalid group name supplied, expected a string but "
            f"got {type(name)} for {name}",
            source=path,
        )
    inv.add_group(name)
    if data is None:
        return
    if not isinstance(data, dict):
        raise InventoryError(
            f"Invalid {name!r} entry: expected a mapping, got {type(data).__name__}", source=path
        )
    for key, value in data.items():
        if key == "vars":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise InventoryError(f"vars for group {name} must be a mapping", source=path)
            inv.groups[name].vars.update(value)
        elif key == "hosts":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise InventoryError(f"hosts for group {name} must be a mapping", source=path)
            for hpat, hv in value.items():
                if not isinstance(hpat, str):
                    raise InventoryError(
                        f"Host pattern {hpat} must be a string. Enclose integers/floats in "
                        "quotation marks.",
                        source=path,
                    )
                hname, port = _split_host_port(hpat)
                for hn in expand_hostname_range(hname):
                    host = inv.add_host(hn, name)
                    if isinstance(hv, dict):
                        host.vars.update(hv)
                    if port is not None:
                        host.vars["ansible_port"] = port
        elif key == "children":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise InventoryError(f"children for group {name} must be a mapping", source=path)
            for child, cdata in value.items():
                _parse_yaml_group(inv, child, cdata, path)
                inv.add_child(name, child)
        else:
            inv.warnings.append(f"Skipping unexpected key ({key}) in group ({name})")


def _parse_yaml(inv: Inventory, path: str, text: str) -> None:
    data = _inventory_yaml(text, path)
    if data is None:
        return
    if not isinstance(data, dict):
        raise InventoryError("YAML inventory must be a mapping of groups", source=path)
    for gname, gdata in data.items():
        _parse_yaml_group(inv, gname, gdata, path)


# -- sources and plugins ------------------------------------------------------------------------

DEFAULT_PLUGINS = ("host_list", "script", "auto", "yaml", "ini", "toml")
DEFAULT_IGNORE_EXTS = (
    ".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry",
)  # fmt: skip


class _NotMine(Exception):
    """A plugin that does not take this source (ansible tries the next enabled one)."""


class _Refused(InventoryError):
    """A source fleetkit cannot read though ansible could (a plugin it does not implement)."""


@dataclass(frozen=True, slots=True)
class _Options:
    plugins: tuple[str, ...]
    ignored: re.Pattern[str]
    any_unparsed_is_failed: bool = False


def _ignored_re(exts: Iterable[str], patterns: Iterable[str]) -> re.Pattern[str]:
    parts = [r"^\.", "^host_vars$", "^group_vars$", "^vars_plugins$"]
    parts += [p for p in patterns if p]
    parts += [re.escape(e) + "$" for e in exts if e]
    return re.compile("|".join(parts))


def _run_script(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False)
    except OSError:
        raise InventoryError(
            f"Failed to execute inventory script command {shlex.join(cmd)!r}."
        ) from None
    err = proc.stderr.decode(errors="replace").strip()
    hint = f"Standard error from inventory script:\n{err}" if err else None
    if proc.returncode != 0:
        raise InventoryError(
            f"Inventory script returned non-zero exit code {proc.returncode}.", hint=hint
        )
    try:
        return proc.stdout.decode()
    except UnicodeDecodeError:
        raise InventoryError(
            "Inventory script result contained characters that cannot be interpreted as UTF-8.",
            hint=hint,
        ) from None


def _script_json(cmd: list[str], what: str) -> Any:
    text = _run_script(cmd)
    try:
        return json.loads(text)
    except ValueError:
        raise InventoryError(f"{what} could not be parsed as JSON.") from None


def _parse_script(inv: Inventory, path: str) -> None:
    """ansible's script plugin: ``--list``; ``--host`` per host only without ``_meta.hostvars``."""
    data = _script_json([path, "--list"], "Inventory script result")
    if not isinstance(data, dict):
        raise InventoryError("Inventory script result could not be parsed as JSON.", source=path)
    meta: Any = None
    hosts: list[str] = []
    pending: list[tuple[str, str]] = []
    for group, gdata in data.items():
        if group == "_meta":
            meta = gdata.get("hostvars") if isinstance(gdata, dict) else None
            if not isinstance(meta, dict):
                raise InventoryError(
                    f"Value contains '_meta.hostvars' which is {type(meta).__name__!r} "
                    "instead of 'dict'.",
                    source=path,
                )
            continue
        inv.add_group(group)
        if not isinstance(gdata, dict):
            gdata = {"hosts": gdata}
        elif not any(k in gdata for k in ("hosts", "vars", "children")):
            gdata = {"hosts": [group], "vars": gdata}
        if "hosts" in gdata:
            if not isinstance(gdata["hosts"], list):
                raise InventoryError(
                    f"Value contains '{group}.hosts' which is "
                    f"{type(gdata['hosts']).__name__!r} instead of 'list'.",
                    source=path,
                )
            for h in gdata["hosts"]:
                inv.add_host(str(h), group)
                if h not in hosts:
                    hosts.append(str(h))
        if "vars" in gdata:
            if not isinstance(gdata["vars"], dict):
                raise InventoryError(
                    f"Value contains '{group}.vars' which is "
                    f"{type(gdata['vars']).__name__!r} instead of 'dict'.",
                    source=path,
                )
            inv.groups[group].vars.update(gdata["vars"])
        for child in gdata.get("children") or []:
            inv.add_group(str(child))
            pending.append((group, str(child)))
    for parent, child in pending:
        inv.add_child(parent, child)
    for h in hosts:
        if meta is None:
            got = _script_json([path, "--host", h], f"Inventory script result for host {h!r}")
        else:
            got = meta.get(h, {})
        if isinstance(got, dict):
            inv.hosts[h].vars.update(got)


def _read_text(path: str) -> str:
    """An inventory file's text (a wholly vaulted file decrypted, as ansible's loader does)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"cannot read inventory {path}: {exc}") from None
    if text.startswith("$ANSIBLE_VAULT"):
        from fleetkit.playbook.vault import decrypt

        try:
            return decrypt(text).decode("utf-8")
        except UnicodeDecodeError:
            raise InventoryError(f"vaulted inventory {path} is not UTF-8 text") from None
    return text


def _try_plugin(inv: Inventory, name: str, source: str) -> None:
    """Parse ``source`` with one plugin or raise :class:`_NotMine` (its verify_file said no)."""
    exists = os.path.exists(source)
    ext = os.path.splitext(source)[1]
    if name == "host_list":
        if exists or "," not in source:
            raise _NotMine
        for h in (s.strip() for s in source.split(",")):
            if h:
                hname, port = _split_host_port(h)
                host = inv.add_host(hname, "ungrouped")
                if port is not None:
                    host.vars["ansible_port"] = port
        return
    if not exists or not os.path.isfile(source):
        raise _NotMine
    path = os.path.abspath(source)
    if name == "script":
        if not os.access(source, os.X_OK):
            raise _NotMine
        _parse_script(inv, path)
    elif name == "auto":
        if ext not in (".yml", ".yaml"):
            raise _NotMine
        data = _inventory_yaml(_read_text(source), path)
        plugin = data.get("plugin") if isinstance(data, dict) else None
        if not plugin:
            raise _NotMine
        raise _Refused(
            f"inventory config '{path}' specifies unknown plugin '{plugin}'",
            hint="fleetkit implements the ini, yaml, script and host_list inventory sources",
        )
    elif name == "yaml":
        text = _read_text(source)
        if ext == ".json":
            try:
                data = json.loads(text)
            except ValueError as exc:
                raise InventoryError(f"invalid JSON inventory: {exc}", source=path) from None
            _parse_yaml(inv, path, yaml.safe_dump(data))
            return
        if ext not in ("", ".yml", ".yaml") or (ext == "" and not _looks_yaml(text)):
            raise _NotMine
        _parse_yaml(inv, path, text)
    elif name == "ini":
        if ext == ".toml":
            raise _NotMine
        _parse_ini(inv, path, _read_text(source))
    elif name == "toml":
        if ext != ".toml":
            raise _NotMine
        raise _Refused(
            f"{path}: the toml inventory plugin is not implemented by fleetkit",
            hint="convert the inventory to INI or YAML",
        )
    else:
        raise _Refused(
            f"inventory plugin {name!r} is not implemented by fleetkit",
            hint="enable only host_list, script, auto, yaml, ini in [inventory] enable_plugins",
        )


def _load_source(inv: Inventory, source: str, opts: _Options, top: bool = True) -> bool:
    """Parse one source (a directory: each entry); True when a plugin parsed it. A source no
    plugin parses is a warning, as ansible (``any_unparsed_is_failed`` makes it an error)."""
    failures: list[tuple[str, InventoryError]] = []
    if os.path.isdir(source):
        parsed = False
        for fn in sorted(os.listdir(source)):
            if not opts.ignored.search(fn):
                parsed = _load_source(inv, os.path.join(source, fn), opts, top=False) or parsed
        if top:
            inv.add_vars_dir(source)
        if parsed:
            return True
        return _unparsed(inv, source, failures, opts)
    for name in opts.plugins:
        try:
            _try_plugin(inv, name, source)
        except _NotMine:
            continue
        except _Refused:
            raise
        except InventoryError as exc:
            # as ansible: a plugin that fails hands the source to the next enabled one
            failures.append((name, exc))
            continue
        if top and os.path.exists(source):
            inv.add_vars_dir(os.path.dirname(os.path.abspath(source)))
        return True
    return _unparsed(inv, source, failures, opts)


def _unparsed(
    inv: Inventory, source: str, failures: list[tuple[str, InventoryError]], opts: _Options
) -> bool:
    """ansible's warnings (or error) for a source no plugin parsed; False."""
    shown = source if "," in source else os.path.abspath(source)
    if source != "/etc/ansible/hosts" or os.path.exists(source):
        for name, failure in failures:
            inv.warnings.append(
                f"Failed to parse inventory with '{name}' plugin: {failure.message}"
            )
        if opts.any_unparsed_is_failed:
            raise InventoryError(
                f"Completely failed to parse inventory source {shown}",
                hint=failures[0][1].message if failures else None,
            )
        inv.warnings.append(f"Unable to parse {shown} as an inventory source")
    return False


def _looks_yaml(text: str) -> bool:
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        return s.endswith(":") and not s.startswith("[") and "=" not in s
    return False


def load_inventory(
    sources: Iterable[str],
    enabled: Iterable[str] | None = None,
    ignore_extensions: Iterable[str] | None = None,
    ignore_patterns: Iterable[str] = (),
    *,
    unparsed_is_failed: bool = False,
    any_unparsed_is_failed: bool = False,
    unparsed_warning: bool = True,
) -> Inventory:
    """Build the inventory from ``-i`` sources with the enabled plugins, in ansible's order.

    A source no plugin parses is a warning; when no source parsed at all, only the implicit
    localhost is available (ansible's ``INVENTORY_*UNPARSED*`` settings make these errors)."""
    plugins = tuple(
        n.removeprefix("ansible.builtin.")
        for n in (DEFAULT_PLUGINS if enabled is None else enabled)
    )
    opts = _Options(
        plugins,
        _ignored_re(DEFAULT_IGNORE_EXTS if ignore_extensions is None else ignore_extensions,
                    ignore_patterns),
        any_unparsed_is_failed,
    )  # fmt: skip
    inv = Inventory()
    parsed = False
    for src in sources:
        if not src:
            continue
        inv.sources.append(src)
        parsed = _load_source(inv, src, opts) or parsed
    if not parsed:
        if unparsed_is_failed:
            raise InventoryError(
                "No inventory was parsed, please check your configuration and options."
            )
        if unparsed_warning:
            inv.warnings.append("No inventory was parsed, only implicit localhost is available")
    else:
        inv.reconcile()
    return inv
