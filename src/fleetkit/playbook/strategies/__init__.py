"""Strategies: small drivers over the :class:`~fleetkit.playbook.iterator.PlayIterator`.

:class:`StrategyBase` holds what every strategy shares (ansible's StrategyBase): processing a
result (stats, register, facts, notify, failing the host in its block), ``meta`` tasks and
``include_tasks``/``include_role`` expansion. ``linear`` runs every host's lowest step in
lockstep; ``free`` lets each host run ahead; ``host_pinned`` is free with at most ``forks``
hosts started at once.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetkit.playbook.errors import PlaybookError, TemplateError
from fleetkit.playbook.events import Callback, Stats, TaskResult
from fleetkit.playbook.executor import TaskExecutor, first_failed_cond, registered
from fleetkit.playbook.inventory import load_inventory
from fleetkit.playbook.iterator import PlayIterator, meta_action
from fleetkit.playbook.modules import Module, get_module
from fleetkit.playbook.options import RunOptions
from fleetkit.playbook.playbook import IncludeRole, IncludeTasks, Node, Task, load_task_file
from fleetkit.playbook.strategies.batches import exceeds_max_fail, pct_to_int, serial_batches
from fleetkit.playbook.templar import Templar
from fleetkit.playbook.variables import VariableManager

__all__ = [
    "RunContext",
    "Strategy",
    "StrategyBase",
    "get_strategy",
    "serial_batches",
    "pct_to_int",
    "exceeds_max_fail",
    "STRATEGIES",
]

STRATEGIES = ("linear", "free", "host_pinned")
META_ACTIONS = (
    "noop",
    "flush_handlers",
    "refresh_inventory",
    "clear_facts",
    "clear_host_errors",
    "end_batch",
    "end_play",
    "end_host",
    "end_role",
    "reset_connection",
)
# ansible's linear strategy runs these for every host, the others once
_PER_HOST_META = frozenset({"noop", "reset_connection", "end_host", "flush_handlers", "end_role"})
_META_SKIP = {
    "clear_facts": ", not clearing facts and fact cache for {}",
    "clear_host_errors": ", not clearing host error state for {}",
    "end_batch": ", continuing current batch",
    "end_play": ", continuing play",
    "end_host": ", continuing execution for {}",
}

# ansible's ``META:`` line (-vv) after a meta action ran
_META_DONE = {
    "flush_handlers": "triggered running handlers for {host}",
    "refresh_inventory": "inventory successfully refreshed",
    "clear_facts": "facts cleared",
    "clear_host_errors": "cleared host errors",
    "end_batch": "ending batch",
    "end_play": "ending play",
    "end_host": "ending play for {host}",
    "end_role": "ending role {role} for {host}",
    "reset_connection": "reset connection",
}


@dataclass
class RunContext:
    """What the strategies of one run share: options, events, variables, the fork pool."""

    opts: RunOptions
    cb: Callback
    vm: VariableManager
    executor: TaskExecutor
    pool: ThreadPoolExecutor
    stats: Stats = field(default_factory=Stats)
    # hosts any_errors_fatal failed inside a block (failed from the next batch on)
    aef_marked: set[str] = field(default_factory=set)

    @property
    def failed(self) -> set[str]:
        """Hosts failed for the rest of the run."""
        return self.vm.failed

    @property
    def unreachable(self) -> set[str]:
        """Hosts unreachable for the rest of the run."""
        return self.vm.unreachable


class Strategy(Protocol):
    """A strategy runs one batch of a play through its iterator."""

    def run(self, it: PlayIterator) -> None:
        """Run the batch."""


def get_strategy(name: str, ctx: RunContext) -> Strategy:
    """The strategy plugin ``name`` (refused with ansible's message when unknown)."""
    from fleetkit.playbook.strategies.free import FreeStrategy
    from fleetkit.playbook.strategies.host_pinned import HostPinnedStrategy
    from fleetkit.playbook.strategies.linear import LinearStrategy

    if name == "linear":
        return LinearStrategy(ctx)
    if name == "free":
        return FreeStrategy(ctx)
    if name == "host_pinned":
        return HostPinnedStrategy(ctx)
    if name == "debug":
        raise PlaybookError(
            "Invalid play strategy specified: debug",
            hint="the debug strategy is interactive; fleetkit supports linear, free and "
            "host_pinned",
        )
    raise PlaybookError(
        f"Invalid play strategy specified: {name}",
        hint="fleetkit supports the linear, free and host_pinned strategies",
    )


class StrategyBase:
    """What every strategy shares: results, meta tasks and include expansion."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.cb = ctx.cb
        self.vm = ctx.vm
        self.ex = ctx.executor

    def module(self, task: Task) -> Module:
        """The module a task runs."""
        try:
            return get_module(task.action)
        except Exception as exc:
            raise PlaybookError(str(exc)) from None

    # -- results ---------------------------------------------------------------------------

    def process(self, it: PlayIterator, res: TaskResult) -> None:
        """Account a host's result: stats, register, facts, notify, failing the host."""
        stats = self.ctx.stats
        host, task, r = res.host, res.task, res.result
        reg = task.kw.get("register")
        if res.status == "unreachable":
            if res.ignored:
                stats.increment("ok", host)
                stats.increment("ignored", host)
            else:
                self.ctx.unreachable.add(host)
                stats.increment("unreachable", host)
            if reg:
                self.vm.set_registered(host, str(reg), registered(r))
            self.cb.result(res)
            return
        if reg:
            self.vm.set_registered(host, str(reg), registered(r))
        if res.status == "failed":
            if res.ignored:
                stats.increment("ok", host)
                stats.increment("ignored", host)
                if r.get("changed"):
                    stats.increment("changed", host)
            else:
                if it.in_rescue_frame(host):
                    stats.increment("rescued", host)
                    # what the rescue section sees (ansible keeps them as host facts)
                    rt = self.vm.host_runtime(host)
                    rt["ansible_failed_task"] = _task_dict(task)
                    rt["ansible_failed_result"] = registered(r)
                else:
                    stats.increment("failures", host)
                it.fail_host(host)
            self.cb.result(res)
            return
        if res.status == "skipped":
            stats.increment("skipped", host)
            self.cb.result(res)
            return
        stats.increment("ok", host)
        if res.status == "changed":
            stats.increment("changed", host)
        facts = r.get("ansible_facts")
        if isinstance(facts, dict):
            if task.action == "set_fact":
                self.vm.host_runtime(host).update(facts)
            elif task.action == "include_vars":
                self.vm.set_include_vars(host, facts)
            else:
                target = host
                if res.delegated_to and self.ex.kw_bool(task, "delegate_facts", host):
                    target = res.delegated_to
                self.vm.set_facts(target, facts)
        if res.status == "changed":
            notify = task.kw.get("notify")
            if notify:
                names = notify if isinstance(notify, list) else [notify]
                it.notify(host, [str(n) for n in names])
        self.cb.result(res)

    def share_run_once(self, res: TaskResult, other: str) -> None:
        """A run_once result is registered (and set_fact applied) on every host."""
        reg = res.task.kw.get("register")
        if reg:
            self.vm.set_registered(other, str(reg), registered(res.result))
        facts = res.result.get("ansible_facts")
        if isinstance(facts, dict) and res.status not in ("failed", "skipped", "unreachable"):
            if res.task.action == "set_fact":
                self.vm.host_runtime(other).update(facts)
            elif res.task.action == "include_vars":
                self.vm.set_include_vars(other, facts)

    # -- meta ------------------------------------------------------------------------------

    def meta(self, it: PlayIterator, task: Task, hosts: list[str], handler: bool = False) -> None:
        """Run a ``meta:`` task as ansible's strategies do: once per host for the per-host
        actions, else once (for the first host, its ``when`` deciding for all)."""
        what = meta_action(task)
        if what not in META_ACTIONS:
            raise PlaybookError(
                f"invalid meta action requested: {what}",
                hint="meta takes one of " + ", ".join(META_ACTIONS),
            )
        name = task.name or "meta"
        targets = hosts if what in _PER_HOST_META else hosts[:1]
        for h in targets:
            self.cb.task_start(task, name, handler)
            if what in ("noop", "refresh_inventory", "reset_connection") and task.when:
                self.cb.warning(f"{what} task does not support when conditional")
                cond = True
            elif what == "flush_handlers":
                cond = True
            else:
                try:
                    cond = first_failed_cond(Templar(self.vm.task_vars(h, task)), task.when) is None
                except TemplateError as exc:
                    raise PlaybookError(f"meta: {exc}") from None
            if not cond:
                reason = f"{what} conditional evaluated to False" + _META_SKIP.get(what, "")
                skip = {"msg": what, "skipped": True, "skip_reason": reason.format(h)}
                self.cb.verbose(f"META: {skip['skip_reason']}", 2)
                self.cb.result(TaskResult(h, task, skip, "skipped"))
                continue
            self._meta_do(it, task, what, h)
            header = _META_DONE.get(what, what).format(
                host=h, role=task.role.name if task.role else ""
            )
            self.cb.verbose(f"META: {header}", 2)

    def _meta_do(self, it: PlayIterator, task: Task, what: str, host: str) -> None:
        ctx = self.ctx
        if what == "end_play":
            it.end_play = True
        elif what == "end_batch":
            it.stop = True
        elif what == "end_host":
            it.states[host].ended = True
        elif what == "end_role":
            if task.role is None:
                raise PlaybookError(
                    "Cannot execute 'end_role' from outside of a role",
                    hint=f"{task.path}:{task.line}",
                )
            it.states[host].ended_role = task.role
        elif what == "clear_facts":
            for h in it.hosts:
                self.vm.clear_facts(h)
        elif what == "clear_host_errors":
            for h in it.hosts:
                ctx.failed.discard(h)
                ctx.unreachable.discard(h)
                it.failed_here.discard(h)
                for f in it.states[h].frames:
                    f.failed = False
        elif what == "refresh_inventory":
            inv = self.vm.inv
            dirs = list(inv.vars_dirs)
            fresh = load_inventory(list(inv.sources))
            inv.__dict__.update(fresh.__dict__)
            for d in dirs:
                inv.add_vars_dir(d)
            inv.invalidate()
        elif what == "reset_connection":
            self.ex.connections.reset(host)

    # -- includes --------------------------------------------------------------------------

    def include_files(
        self, inc: IncludeTasks, hosts: list[str]
    ) -> list[tuple[str, list[Node], list[str]]]:
        """Evaluate an include_tasks for hosts: banner, skips, 'included:' lines, the tasks."""
        by_file: dict[str, list[str]] = {}
        pseudo = Task(action="include_tasks", args={}, name=inc.name or "include_tasks")
        pseudo.uid, pseudo.path, pseudo.line, pseudo.col = inc.uid, inc.path, inc.line, inc.col
        pseudo.role = inc.role  # "role : include_tasks"
        self.cb.task_start(pseudo, self.ex.task_name(pseudo, hosts[0]) if hosts else "")
        for h in hosts:
            templar = Templar(self.vm.task_vars(h, inc))
            try:
                cond = first_failed_cond(templar, inc.when)
                if cond is not None:
                    self.ctx.stats.increment("skipped", h)
                    skip = {
                        "changed": False,
                        "skipped": True,
                        "false_condition": cond,
                        "skip_reason": "Conditional result was False",
                    }
                    self.cb.result(TaskResult(h, pseudo, skip, "skipped"))
                    continue
                fname = str(templar.template(inc.file))
            except TemplateError as exc:
                raise PlaybookError(f"include_tasks: {exc}") from None
            by_file.setdefault(fname, []).append(h)
        out: list[tuple[str, list[Node], list[str]]] = []
        for fname, fhosts in by_file.items():
            # the loader computed what included tasks inherit (not the include's own
            # keywords, tags or when; its vars and apply: yes)
            inherit = dict(inc.parent)
            nodes = load_task_file(fname, inc.base, inherit, None)
            if inc.role is not None:
                _set_role(nodes, inc)
            path = fname if os.path.isabs(fname) else os.path.join(inc.base, fname)
            self.cb.include(os.path.abspath(path), fhosts)
            for h in fhosts:
                self.ctx.stats.increment("ok", h)
            out.append((fname, nodes, fhosts))
        return out

    def include_roles(
        self, it: PlayIterator, node: IncludeRole, hosts: list[str]
    ) -> dict[str, tuple[int, list[Node]]]:
        """Expand an ``include_role`` for ``hosts``: one expansion per distinct set of templated
        arguments; a host skipped by the ``when`` gets nothing. The role's handlers join the
        play's."""
        from fleetkit.playbook.roles import expand_include_role

        name = node.name or f"include_role : {node.role_name}"
        pseudo = Task(action="include_role", args={}, name=name)
        pseudo.uid, pseudo.path, pseudo.line, pseudo.col = node.uid, node.path, node.line, node.col
        self.cb.task_start(pseudo, pseudo.display_name())
        out: dict[str, tuple[int, list[Node]]] = {}
        expansions: dict[str, tuple[int, list[Node]]] = {}
        included_hosts: dict[str, tuple[str, list[str]]] = {}
        for h in hosts:
            templar = Templar(self.vm.task_vars(h, node))
            try:
                cond = first_failed_cond(templar, node.when)
                if cond is not None:
                    skip = {
                        "changed": False,
                        "skipped": True,
                        "false_condition": cond,
                        "skip_reason": "Conditional result was False",
                    }
                    self.ctx.stats.increment("skipped", h)
                    self.cb.result(TaskResult(h, pseudo, skip, "skipped"))
                    continue
                args = templar.template(node.args)
            except TemplateError as exc:
                raise PlaybookError(f"include_role: {exc}") from None
            sig = repr(sorted(args.items())) if isinstance(args, dict) else repr(args)
            got = expansions.get(sig)
            if got is None:
                included = expand_include_role(node, args, it.play)
                self.vm.note_role(included.role)
                if included.role.public:
                    self.vm.add_public_role(included.role)
                if node.vars:
                    _inherit_vars(included.tasks, node.vars)
                for handler in included.handlers:
                    if not any(handler is x for x in it.play.handlers):
                        it.play.handlers.append(handler)
                got = expansions[sig] = (len(expansions), list(included.tasks))
                role = args.get("name", args.get("role")) if isinstance(args, dict) else None
                included_hosts[sig] = (str(role or node.role_name), [])
            included_hosts[sig][1].append(h)
            out[h] = got
        for role_name, rhosts in included_hosts.values():
            # ansible: "included: <role> for <hosts>", an ok for each host
            for h in rhosts:
                self.ctx.stats.increment("ok", h)
            self.cb.include(role_name, rhosts)
        return out


def _inherit_vars(nodes: list[Node], values: dict[str, Any]) -> None:
    """The include's ``vars:`` under the included tasks' own."""
    from fleetkit.playbook.playbook import Block

    for n in nodes:
        if isinstance(n, Block):
            _inherit_vars(n.block, values)
            _inherit_vars(n.rescue, values)
            _inherit_vars(n.always, values)
        else:
            n.vars = {**values, **n.vars}


def _task_dict(task: Task) -> dict[str, Any]:
    """The failed task as ansible serializes it for ``ansible_failed_task``."""
    return {
        "name": task.name or "",
        "action": task.action,
        "args": dict(task.args),
        "tags": list(task.tags),
        "when": list(task.when),
        "vars": dict(task.vars),
        "register": task.kw.get("register"),
        "ignore_errors": task.kw.get("ignore_errors"),
        "uuid": str(task.uid),
    }


def _set_role(nodes: list[Node], inc: IncludeTasks) -> None:
    from fleetkit.playbook.playbook import Block

    for n in nodes:
        if isinstance(n, Block):
            _set_role(n.block, inc)
            _set_role(n.rescue, inc)
            _set_role(n.always, inc)
        elif n.role is None:
            n.role = inc.role
