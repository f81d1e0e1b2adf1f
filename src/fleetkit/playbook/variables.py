"""Host and task variables in ansible's precedence order, and the magic variables.

ansible's documented precedence, lowest first (the layers :meth:`VariableManager.task_vars`
stacks, highest first): command line values < role defaults < inventory vars (file/script,
group_vars/all, group_vars/*, host vars, host_vars/*: merged by the inventory) < host facts /
cached set_facts < play vars < vars_prompt < vars_files < role vars < block vars < task vars
(blocks push their vars down to their tasks at load time) < include_vars < set_facts /
registered vars < role params < include params < extra vars. Magic variables sit just under
extra vars (they are not meant to be set).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fleetkit.playbook import messages
from fleetkit.playbook.errors import PlaybookError, TemplateError
from fleetkit.playbook.factcache import FactCache, clean_facts
from fleetkit.playbook.inventory import Inventory
from fleetkit.playbook.options import RunOptions
from fleetkit.playbook.playbook import IncludeRole, IncludeTasks, Play, RoleRef, Task
from fleetkit.playbook.templar import OMIT, Templar, VarsView, is_template
from fleetkit.playbook.yamlsrc import load_yaml_file

__all__ = ["VariableManager", "HostVars", "TaskVars", "ANSIBLE_VERSION"]

ANSIBLE_VERSION: dict[str, Any] = {
    "full": "2.19.0",
    "major": 2,
    "minor": 19,
    "revision": 0,
    "string": "2.19.0 (fleetkit)",
}

_EMPTY: Mapping[str, Any] = {}


class HostVars(Mapping[str, Any]):
    """``hostvars``: every inventory host's variables, built lazily on lookup."""

    def __init__(self, vm: VariableManager) -> None:
        self._vm = vm

    def __getitem__(self, host: str) -> Any:
        if host not in self._vm.inv.hosts:
            raise KeyError(host)
        # ansible builds hostvars without a play: play vars and vars_files are not in them
        return self._vm.host_view(host, play_vars=False)

    def __contains__(self, host: object) -> bool:
        return host in self._vm.inv.hosts

    def __iter__(self) -> Iterator[str]:
        return iter(self._vm.inv.hosts)

    def __len__(self) -> int:
        return len(self._vm.inv.hosts)


class TaskVars(Mapping[str, Any]):
    """``vars``: a task's variables as one mapping (templates rendered on lookup)."""

    def __init__(self, view: VarsView) -> None:
        self._view = view

    def __getitem__(self, key: str) -> Any:
        return self._view[key]

    def __contains__(self, key: object) -> bool:
        return key in self._view

    def __iter__(self) -> Iterator[str]:
        return iter(self._view)

    def __len__(self) -> int:
        return len(self._view)


class VariableManager:
    """Builds a host's or a task's variables; stores facts, set_facts and include_vars."""

    def __init__(self, inv: Inventory, opts: RunOptions) -> None:
        self.inv = inv
        self.opts = opts
        # ansible's fact cache (the ``fact_caching`` plugin; memory unless the run sets one)
        self.facts = FactCache()
        # set_fact / register (ansible's non-persistent fact cache)
        self.runtime: dict[str, dict[str, Any]] = {}
        # include_vars results, their own precedence level
        self.included: dict[str, dict[str, Any]] = {}
        self.play_vars: dict[str, Any] = {}
        # vars_files whose names are templates are read per host (cached by facts version)
        self._play: Play | None = None
        self._base_play_vars: dict[str, Any] = {}
        self._templated_vars_files = False
        self._host_play_vars: dict[str, tuple[int, dict[str, Any]]] = {}
        self._facts_version: dict[str, int] = {}
        # the facts layer of each host as ansible injects it (clean_facts), per facts version
        self._clean_facts: dict[str, tuple[int, Any, Mapping[str, Any]]] = {}
        # ansible_role_names: grows as include_role brings roles in
        self.role_names: list[str] = []
        # ansible_play_role_names / role_names: roles: entries, import_role, then include_role
        self.play_role_names: list[str] = []
        # vars_prompt answers (between play vars and vars_files)
        self.prompt_vars: dict[str, Any] = {}
        # public roles (roles:, import_role, include_role public:) expose vars and defaults
        self.public_role_vars: dict[str, Any] = {}
        self.public_role_defaults: dict[str, Any] = {}
        # warnings met while loading play vars (the caller prints them)
        self.warnings: list[str] = []
        self.magic_common: dict[str, Any] = {}
        self.play_all: list[str] = []
        self.batch_hosts: list[str] = []
        self.failed: set[str] = set()
        self.unreachable: set[str] = set()
        self._active_cache: tuple[tuple[int, int], list[str], list[str]] | None = None

    # -- stores ----------------------------------------------------------------------------

    def host_runtime(self, host: str) -> dict[str, Any]:
        """The set_fact/register layer of ``host`` (created on first use)."""
        rt = self.runtime.get(host)
        if rt is None:
            rt = self.runtime[host] = {}
        return rt

    def set_registered(self, host: str, name: str, value: Any) -> None:
        """``register:`` a result for ``host``."""
        self.host_runtime(host)[name] = value

    def set_facts(self, host: str, facts: Mapping[str, Any]) -> None:
        """Gathered (module-returned) facts and cacheable set_facts: into the fact cache."""
        self.facts.update(host, facts)
        self._facts_version[host] = self._facts_version.get(host, 0) + 1

    def set_include_vars(self, host: str, values: Mapping[str, Any]) -> None:
        """``include_vars`` results: host variables at the include_vars level, not facts."""
        self.included.setdefault(host, {}).update(values)

    def note_role(self, role: RoleRef) -> None:
        """An ``include_role`` brought ``role`` in: ``ansible_role_names`` (each name once,
        with its parents), ``ansible_play_role_names``/``role_names`` (each inclusion)."""
        for name in (*role.parents, role.name):
            if name not in self.role_names:
                self.role_names.append(name)
        self.play_role_names.append(role.name)

    def clear_facts(self, host: str) -> None:
        """``meta: clear_facts``, ``--flush-cache``: the fact cache entry of ``host``."""
        self.facts.delete(host)
        self._facts_version[host] = self._facts_version.get(host, 0) + 1

    def _fact_vars(self, host: str) -> Mapping[str, Any]:
        """The facts layer of ``host``: its cached facts as variables of their own, or only
        ``ansible_local`` when ``inject_facts_as_vars`` is off (ANSIBLE_INJECT_FACT_VARS)."""
        facts = self.facts.get(host)
        if not self.opts.config.get("inject_facts_as_vars", True):
            return {"ansible_local": (facts or _EMPTY).get("ansible_local", {})}
        if not facts:
            return _EMPTY
        version = self._facts_version.get(host, 0)
        cached = self._clean_facts.get(host)
        if cached is not None and cached[0] == version and cached[1] is facts:
            return cached[2]
        cleaned, removed = clean_facts(facts)
        for key in removed:
            messages.warning(f"Removed restricted key from module data: {key}")
        self._clean_facts[host] = (version, facts, cleaned)
        return cleaned

    # -- the play --------------------------------------------------------------------------

    def add_public_role(self, role: RoleRef) -> None:
        """A public role's vars and defaults become visible to the whole play."""
        self.public_role_vars.update(role.vars)
        self.public_role_defaults.update(role.defaults)

    def load_play_vars(self, play: Play) -> None:
        """Play ``vars``, ``vars_prompt`` answers, then ``vars_files`` as ansible reads them:
        each entry (or the first existing file of a list entry) beside the playbook or in its
        ``vars/``; a missing file is skipped; an undefined variable in a name skips the item
        with ansible's warning. Names with templates are read again for each host (with its
        inventory variables and facts), as ansible does."""
        pv: dict[str, Any] = dict(play.vars)
        pv.update(self.prompt_vars)
        self._play = play
        self._base_play_vars = dict(pv)
        self._host_play_vars = {}
        self._templated_vars_files = any(
            is_template(c)
            for vf in play.vars_files
            for c in (vf if isinstance(vf, list) else [vf])
            if isinstance(c, str)
        )
        self.play_vars = self._read_vars_files(play, pv, lambda _pv: [], warn=True)
        self.public_role_vars = {}
        self.public_role_defaults = {}
        for role in play.roles:
            if role.public:
                self.add_public_role(role)

    def _read_vars_files(
        self,
        play: Play,
        pv: dict[str, Any],
        lower: Callable[[dict[str, Any]], list[Mapping[str, Any]]],
        warn: bool,
    ) -> dict[str, Any]:
        """``pv`` updated with the play's vars_files; names are templated with extra vars,
        the vars read so far and the ``lower`` layers."""
        for vf in play.vars_files:
            candidates = vf if isinstance(vf, list) else [vf]
            base = Templar(VarsView([self.opts.extra_vars, pv, *lower(pv)]))
            try:
                for cand in candidates:
                    name = base.template(cand)
                    if not isinstance(name, str):
                        raise PlaybookError(
                            f"Invalid `vars_files` value of type {type(name).__name__!r}.",
                            hint="A `vars_files` value should either be a string or list of "
                            "strings.",
                        )
                    if os.path.isabs(name):
                        paths = [name]
                    else:
                        paths = [
                            os.path.join(play.basedir, "vars", name),
                            os.path.join(play.basedir, name),
                        ]
                    path = next((p for p in paths if os.path.isfile(p)), None)
                    if path is None:
                        continue
                    data = load_yaml_file(path) or {}
                    if not isinstance(data, dict):
                        raise PlaybookError(f"Invalid vars_files file {path!r}.")
                    pv.update(data)
                    break
            except TemplateError:
                if warn:
                    self.warnings.append("skipping vars_files item due to an undefined variable")
        return pv

    def play_vars_of(self, host: str) -> Mapping[str, Any]:
        """The play vars and vars_files of ``host`` (vars_files names templated for it)."""
        if not self._templated_vars_files or self._play is None:
            return self.play_vars
        version = self._facts_version.get(host, 0)
        cached = self._host_play_vars.get(host)
        if cached is not None and cached[0] == version:
            return cached[1]

        def lower(_pv: dict[str, Any]) -> list[Mapping[str, Any]]:
            return [
                self.magic(host),
                self._fact_vars(host),
                self.inv.host_vars(host),
                self.public_role_defaults,
            ]

        pv = self._read_vars_files(self._play, dict(self._base_play_vars), lower, warn=False)
        self._host_play_vars[host] = (version, pv)
        return pv

    def start_play(self, play: Play, play_all: list[str]) -> None:
        """Set the play-wide magic variables."""
        self.play_all = play_all
        self._active_cache = None
        inv_file = self.inv.sources[0] if self.inv.sources else None
        self.magic_common = {
            "groups": {g: list(self.inv.hosts_of(g)) for g in self.inv.groups},
            "hostvars": HostVars(self),
            "playbook_dir": play.basedir,
            "ansible_check_mode": self.opts.check,
            "ansible_diff_mode": self.opts.diff,
            "ansible_forks": self.opts.forks,
            "ansible_run_tags": list(self.opts.tags) or ["all"],
            "ansible_skip_tags": list(self.opts.skip_tags),
            "ansible_verbosity": self.opts.verbosity,
            "ansible_play_hosts_all": play_all,
            "ansible_play_name": play.name,
            "ansible_playbook_python": sys.executable,
            "ansible_config_file": self.opts.config.get("config_file"),
            "omit": OMIT,
            "ansible_version": ANSIBLE_VERSION,
        }
        # ansible names the play's roles, tasks or not (a dependency may have none)
        self.role_names = _role_names(play)
        dependent = _role_names(play, dependent=True)
        for r in play.roles:
            if r.name not in self.role_names:
                self.role_names.append(r.name)
            if r.dependency and r.name not in dependent:
                dependent.append(r.name)
        self.play_role_names = list(play.role_names)
        self.magic_common["ansible_role_names"] = self.role_names
        self.magic_common["ansible_dependent_role_names"] = dependent
        self.magic_common["ansible_play_role_names"] = self.play_role_names
        self.magic_common["role_names"] = self.play_role_names
        if isinstance(inv_file, str) and os.path.exists(inv_file):
            path = os.path.abspath(inv_file)
            self.magic_common["inventory_file"] = path
            self.magic_common["inventory_dir"] = os.path.dirname(path)

    def refresh_groups(self) -> None:
        """``groups`` after the inventory changed (add_host, group_by)."""
        if self.magic_common:
            self.magic_common["groups"] = {g: list(self.inv.hosts_of(g)) for g in self.inv.groups}

    def start_batch(self, hosts: list[str]) -> None:
        """The hosts of the batch being run (``ansible_play_batch``)."""
        self.batch_hosts = hosts
        self._active_cache = None

    def _active_hosts(self) -> tuple[list[str], list[str]]:
        """ansible_play_hosts and ansible_play_batch: without the hosts failed or unreachable
        so far (they only grow, so their sizes key the cache)."""
        key = (len(self.failed), len(self.unreachable))
        cached = self._active_cache
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        bad = self.failed | self.unreachable
        play_hosts = [h for h in self.play_all if h not in bad]
        batch = [h for h in self.batch_hosts if h not in bad]
        self._active_cache = (key, play_hosts, batch)
        return play_hosts, batch

    def magic(self, host: str, role: RoleRef | None = None) -> dict[str, Any]:
        """The magic variables of ``host`` (and of the role its task comes from)."""
        m = dict(self.magic_common)
        play_hosts, batch = self._active_hosts()
        m["ansible_play_hosts"] = play_hosts
        m["ansible_play_batch"] = batch
        m["play_hosts"] = batch
        m["inventory_hostname"] = host
        m["inventory_hostname_short"] = host.split(".")[0]
        m["group_names"] = self.inv.group_names(host) if host in self.inv.hosts else []
        inv_host = self.inv.hosts.get(host)
        if inv_host is not None and inv_host.dynamic:
            m["inventory_file"] = m["inventory_dir"] = None  # add_host: from no source
        facts = self.facts.get(host)
        if facts is not None:
            # ansible keeps ``ansible_local`` (the fact_path facts) under its full name
            m["ansible_facts"] = {
                k[8:] if k.startswith("ansible_") and k != "ansible_local" else k: v
                for k, v in facts.items()
            }
        if role is not None:
            # a collection role's role_name is its short name; ansible_role_name the FQCN
            in_coll = "/ansible_collections/" in role.path
            m["role_name"] = role.name.rsplit(".", 1)[-1] if in_coll else role.name
            m["role_path"] = role.path
            m["ansible_role_name"] = role.name
            if role.parents:
                m["ansible_parent_role_names"] = list(role.parents)
                m["ansible_parent_role_paths"] = list(role.parent_role_paths)
        return m

    # -- views -----------------------------------------------------------------------------

    def host_view(self, host: str, play_vars: bool = True) -> VarsView:
        """A host's variables outside any task (hostvars, connection settings)."""
        magic = self.magic(host)
        if not play_vars:
            del magic["hostvars"]  # hostvars[host] has no hostvars of its own in ansible
        layers: list[Mapping[str, Any]] = [
            self.opts.extra_vars,
            magic,
            self.runtime.get(host, _EMPTY),
            self.included.get(host, _EMPTY),
        ]
        if play_vars:
            layers.append(self.play_vars_of(host))
        layers += [self._fact_vars(host), self.inv.host_vars(host)]
        return VarsView(layers)

    def task_vars(
        self,
        host: str,
        task: Task | IncludeTasks | IncludeRole,
        extra: Mapping[str, Any] | None = None,
    ) -> VarsView:
        """The variables a task sees on ``host`` (``extra``: loop variables, highest)."""
        role = task.role
        layers: list[Mapping[str, Any]] = [
            {"ansible_search_path": self._search_path(task)},
            self.opts.extra_vars,
            self.magic(host, role),
        ]
        if extra:
            layers.append(extra)
        if task.include_params:
            layers.append(task.include_params)
        if role is not None:
            # role params: the dep chain's under the role's own
            layers += [m for m in (role.params, role.inherited_params) if m]
        layers += [
            self.runtime.get(host, _EMPTY),
            self.included.get(host, _EMPTY),
            task.vars,
        ]
        if role is not None:
            layers += [m for m in (role.vars, role.inherited_vars) if m]
        if self.public_role_vars:
            layers.append(self.public_role_vars)
        layers += [self.play_vars_of(host), self._fact_vars(host), self.inv.host_vars(host)]
        if role is not None:
            layers += [m for m in (role.defaults, role.inherited_defaults) if m]
        if self.public_role_defaults:
            layers.append(self.public_role_defaults)
        view = VarsView(layers)
        # the ``vars`` magic variable: the task's variables (ansible's copy, without loop vars)
        return view.with_layer({"vars": TaskVars(view)})

    def _search_path(self, task: Task | IncludeTasks | IncludeRole) -> list[str]:
        """``ansible_search_path`` of a task (ansible's get_search_path and the executor):
        its role's directory, the task file's directory, then the playbook's."""
        out: list[str] = []
        if task.role is not None:
            out.append(task.role.path)
        if task.path:
            out.append(os.path.dirname(task.path))
        basedir = self.magic_common.get("playbook_dir")
        if basedir:
            out.append(str(basedir))
        return list(dict.fromkeys(out))


def _role_names(play: Play, dependent: bool = False) -> list[str]:
    """The roles a play's tasks come from, in order of first appearance (``dependent``: only
    those pulled in by another role, ansible_dependent_role_names)."""
    from fleetkit.playbook.playbook import Block

    seen: dict[str, None] = {}

    def scan(nodes: list[Any]) -> None:
        for n in nodes:
            if isinstance(n, Block):
                scan(n.block)
                scan(n.rescue)
                scan(n.always)
            elif n.role is not None:
                if not dependent:
                    for parent in n.role.parents:
                        seen.setdefault(parent, None)
                if not dependent or n.role.dependency:
                    seen.setdefault(n.role.name, None)

    scan(play.tasks)
    return list(seen)
