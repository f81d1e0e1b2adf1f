"""Strategies: small drivers over the :class:`~fleetkit.playbook.iterator.PlayIterator`.

:class:`StrategyBase` holds what every strategy shares (ansible's StrategyBase): processing a
result (stats, register, facts, notify, failing the host in its block), ``meta`` tasks and
``include_tasks``/``include_role`` expansion. ``linear`` runs every host's lowest step in
lockstep; ``free`` lets each host run ahead; ``host_pinned`` is free with at most ``forks``
hosts started at once.
"""

from __future__ import annotations

import dataclasses
import linecache
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetkit.playbook import patterns
from fleetkit.playbook.errors import (
    IncludeNotFound,
    PlaybookError,
    TemplateError,
    TemplateUndefined,
)
from fleetkit.playbook.events import Callback, Stats, TaskResult
from fleetkit.playbook.executor import TaskExecutor, first_failed_cond, registered
from fleetkit.playbook.inventory import load_inventory
from fleetkit.playbook.iterator import NameOf, PlayIterator, meta_action
from fleetkit.playbook.loops import item_vars, loop_control, loop_items
from fleetkit.playbook.modules import Module, get_module, resolve
from fleetkit.playbook.options import RunOptions
from fleetkit.playbook.playbook import (
    MODULE_NAMES,
    Handler,
    IncludeRole,
    IncludeTasks,
    Node,
    Task,
    load_task_file,
    normalize_action,
    task_file_path,
)
from fleetkit.playbook.strategies.batches import exceeds_max_fail, pct_to_int, serial_batches
from fleetkit.playbook.strategies.inventory_changes import apply_inventory_changes
from fleetkit.playbook.templar import OMIT, Templar, VarsView, is_template
from fleetkit.playbook.trust import mark_unsafe
from fleetkit.playbook.variables import VariableManager
from fleetkit.playbook.yamlsrc import Located

__all__ = [
    "handler_namer",
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
# actions the loader turns into other nodes: a templated module name cannot become one
_NOT_TEMPLATABLE = frozenset(
    {"meta", "include_tasks", "import_tasks", "include_role", "import_role", "import_playbook"}
)
# ansible's linear strategy runs these for every host, the others once
_PER_HOST_META = frozenset({"noop", "reset_connection", "end_host", "flush_handlers", "end_role"})
_META_SKIP = {
    "clear_facts": ", not clearing facts and fact cache for {}",
    "clear_host_errors": ", not clearing host error state for {}",
    "end_batch": ", continuing current batch",
    "end_play": ", continuing play",
    "end_host": ", continuing execution for {}",
    "flush_handlers": ", not running handlers for {}",
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
    # warnings ansible shows once per run
    warned: set[str] = field(default_factory=set)

    @property
    def failed(self) -> set[str]:
        """Hosts failed for the rest of the run."""
        return self.vm.failed

    @property
    def unreachable(self) -> set[str]:
        """Hosts unreachable for the rest of the run."""
        return self.vm.unreachable


def handler_namer(ctx: RunContext) -> NameOf:
    """How notifications see handler names in a play (ansible's search): a templated name is
    rendered once with the play's variables (no host's); one that cannot be rendered makes
    the handler unusable by name, with ansible's warning when it has no listen topics."""
    cache: dict[int, str] = {}

    def name_of(h: Handler) -> str | None:
        if h.name is None or not is_template(h.name):
            return h.name
        if h.uid in cache:
            return cache[h.uid]
        role = h.role
        layers: list[Mapping[str, Any]] = [ctx.opts.extra_vars, h.vars]
        if role is not None:
            layers += [role.params, role.vars]
        layers.append(ctx.vm.play_vars)
        if role is not None:
            layers.append(role.defaults)
        try:
            name = str(Templar(VarsView(layers)).template(h.name))
        except TemplateError as exc:
            warning = (
                f"Handler '{h.name}' is unusable because it has no listen topics and the name "
                "could not be templated (host-specific variables are not supported in handler "
                f"names). The error: {exc}"
            )
            if not h.listen and warning not in ctx.warned:
                ctx.warned.add(warning)
                ctx.cb.warning(warning)
            return None
        cache[h.uid] = name
        return name

    return name_of


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
        # hosts the last include failed (any_errors_fatal looks at them)
        self.include_failures: list[str] = []

    def module(self, task: Task) -> Module:
        """The module a task runs."""
        try:
            return get_module(task.action)
        except Exception as exc:
            raise PlaybookError(str(exc)) from None

    def for_host(self, task: Task, host: str) -> tuple[Task, Module]:
        """The task and module ``host`` runs: a templated module name (``action: {module:
        '{{ m }}'}``) is rendered with the host's variables, as ansible's executor does."""
        if not is_template(task.action):
            return task, self.module(task)
        try:
            name = str(Templar(self.vm.task_vars(host, task)).template(task.action))
        except TemplateError as exc:
            raise PlaybookError(f"{task.action}: {exc}") from None
        action = normalize_action(name)
        if (action not in MODULE_NAMES and resolve(name) is None) or action in _NOT_TEMPLATABLE:
            raise PlaybookError(
                f"couldn't resolve module/action '{name}'. This often indicates a misspelling, "
                "missing collection, or incorrect module path.",
                hint=f"{task.path}:{task.line}" if task.path else None,
            )
        resolved = dataclasses.replace(task, action=action)
        return resolved, self.module(resolved)

    # -- results ---------------------------------------------------------------------------

    def process(self, it: PlayIterator, res: TaskResult) -> None:
        """Account a host's result: stats, register, facts, notify, failing the host."""
        stats = self.ctx.stats
        host, task, r = res.host, res.task, res.result
        if task.role is not None and res.status in ("ok", "changed", "failed"):
            it.note_role_ran(host, task.role)
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
        if res.status in ("ok", "changed"):
            res = self._inventory_changes(res)
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
                    # the task's own (untemplated) keywords: never templated again
                    rt["ansible_failed_task"] = mark_unsafe(_task_dict(task))
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
        self._custom_stats(it, res)
        facts = r.get("ansible_facts")
        # a debug result's ansible_facts is a variable shown, never facts (ansible's rule)
        if isinstance(facts, dict) and task.action != "debug":
            if task.action == "set_fact":
                self.vm.host_runtime(host).update(facts)
                if r.get("_ansible_facts_cacheable"):
                    # cacheable: a real fact as well (what a fact cache keeps), as ansible's
                    self.vm.set_facts(host, facts)
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
                strict = self.ctx.opts.config.get("error_on_missing_handler", True)
                names = self._notify_names(res, notify)
                for warning in it.notify(host, names, bool(strict)):
                    self.cb.warning(warning)
        self.cb.result(res)

    def _custom_stats(self, it: PlayIterator, res: TaskResult) -> None:
        """set_stats data (``ansible_stats`` of a result or of each loop item) into the run's
        custom stats, per host (a run_once task's for every host of the batch) or for the run."""
        for item in [i for _s, i in res.items] if res.items else [res.result]:
            st = item.get("ansible_stats") if isinstance(item, dict) else None
            if not isinstance(st, dict) or not isinstance(st.get("data"), dict) or not st["data"]:
                continue
            hosts: list[str | None] = [res.host]
            if not st.get("per_host", True):
                hosts = [None]
            elif self.ex.kw_bool(res.task, "run_once", res.host):
                hosts = [h for h in it.hosts if h not in self.ctx.unreachable]
            for h in hosts:
                for key, value in st["data"].items():
                    self.ctx.stats.update_custom(
                        str(key), value, h, bool(st.get("aggregate", False))
                    )

    def _notify_names(self, res: TaskResult, notify: Any) -> list[str]:
        """The task's ``notify:`` templated with the host's variables (a template may give a
        list of names), as ansible's executor post-validates it."""
        templar = Templar(self.vm.task_vars(res.host, res.task))
        out: list[str] = []
        for raw in notify if isinstance(notify, list) else [notify]:
            value = raw
            if isinstance(raw, str) and is_template(raw):
                try:
                    value = templar.template(raw)
                except TemplateError as exc:
                    raise PlaybookError(f"notify: {exc}") from None
            out.extend(str(v) for v in (value if isinstance(value, list) else [value]))
        return out

    def _inventory_changes(self, res: TaskResult) -> TaskResult:
        """add_host/group_by results change the in-memory inventory (and their ``changed``)."""

        def evaluate(item: dict[str, Any], conditions: Any) -> bool:
            layer: dict[str, Any] = {}
            for key in ("ansible_loop_var", "ansible_index_var"):
                name = item.get(key)
                if isinstance(name, str):
                    layer[name] = item.get(name)
            reg = res.task.kw.get("register")
            if reg:
                layer[str(reg)] = item
            templar = Templar(self.vm.task_vars(res.host, res.task).with_layer(layer))
            conds = conditions if isinstance(conditions, list) else [conditions]
            try:
                return all(templar.condition(c) for c in conds)
            except TemplateError as exc:
                raise PlaybookError(f"Error while evaluating conditional: {exc}") from None

        new, warnings = apply_inventory_changes(self.vm.inv, res, evaluate)
        if new is not res:
            self.vm.refresh_groups()
        for warning in warnings:
            if warning not in self.ctx.warned:
                self.ctx.warned.add(warning)
                self.cb.warning(warning)
        return new

    def share_run_once(self, res: TaskResult, other: str) -> None:
        """A run_once result is registered (and set_fact applied) on every host; an action
        that bypasses the host loop (add_host, pause) registers only on the host it ran for."""
        if not self.ex.kw_bool(res.task, "run_once", res.host):
            return
        reg = res.task.kw.get("register")
        if reg:
            self.vm.set_registered(other, str(reg), registered(res.result))
        facts = res.result.get("ansible_facts")
        if isinstance(facts, dict) and res.status not in ("failed", "skipped", "unreachable"):
            if res.task.action == "set_fact":
                self.vm.host_runtime(other).update(facts)
                if res.result.get("_ansible_facts_cacheable"):
                    self.vm.set_facts(other, facts)
            elif res.task.action == "include_vars":
                self.vm.set_include_vars(other, facts)

    # -- meta ------------------------------------------------------------------------------

    def meta(
        self, it: PlayIterator, task: Task, hosts: list[str], handler: bool = False
    ) -> dict[str, bool]:
        """Run a ``meta:`` task as ansible's strategies do: once per host for the per-host
        actions, else once (for the first host, its ``when`` deciding for all). Returns
        whether it ran for each host (a skipped flush_handlers runs no handlers)."""
        ran: dict[str, bool] = {}
        what = meta_action(task)
        if what not in META_ACTIONS:
            raise PlaybookError(
                f"invalid meta action requested: {what}",
                hint="meta takes one of " + ", ".join(META_ACTIONS),
            )
        # the banner shows the untemplated name, with the role prefix (Task.get_name())
        name = task.display_name().strip()
        if task.role is not None:
            name = f"{task.role.name} : {name}"
        targets = hosts if what in _PER_HOST_META else hosts[:1]
        for h in targets:
            self.cb.task_start(task, name, handler)
            if what in ("noop", "refresh_inventory", "reset_connection") and task.when:
                self.cb.warning(f"{what} task does not support when conditional")
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
                ran[h] = False
                continue
            ran[h] = True
            self._meta_do(it, task, what, h)
            header = _META_DONE.get(what, what).format(
                host=h, role=task.role.name if task.role else ""
            )
            self.cb.verbose(f"META: {header}", 2)
        return ran

    def _meta_do(self, it: PlayIterator, task: Task, what: str, host: str) -> None:
        ctx = self.ctx
        if what == "flush_handlers":
            it.resolve_notifications(host)
        elif what == "end_play":
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
                it.states[h].cleared += 1
        elif what == "refresh_inventory":
            inv = self.vm.inv
            dirs = list(inv.vars_dirs)
            dynamic = list(inv.dynamic)
            fresh = load_inventory(list(inv.sources))
            inv.__dict__.update(fresh.__dict__)
            for d in dirs:
                inv.add_vars_dir(d)
            inv.replay_dynamic(dynamic)
            inv.invalidate()
            self.vm.refresh_groups()
            # hosts gone from the inventory leave the play at once (ansible re-reads the
            # play's hosts: a host it no longer finds gets no further task, always included)
            for h in it.hosts:
                if h not in inv.hosts:
                    it.states[h].ended = True
            # ansible_play_hosts: the play's pattern over the new inventory (a new host is
            # listed, though it runs nothing in this play); the batch only loses hosts
            self.vm.play_all = patterns.match_hosts(inv, it.play.hosts)
            self.vm.start_batch([h for h in self.vm.batch_hosts if h in inv.hosts])
        elif what == "reset_connection":
            self.ex.connections.reset(host)

    # -- includes --------------------------------------------------------------------------

    def _include_pseudo(self, node: IncludeTasks | IncludeRole, action: str, name: str) -> Task:
        """The task an include shows as: banner, results, register, ignore_errors."""
        pseudo = Task(action=action, args={}, name=name)
        pseudo.uid, pseudo.path, pseudo.line, pseudo.col = node.uid, node.path, node.line, node.col
        pseudo.src = node.src
        pseudo.kw = {k: v for k, v in node.kw.items() if k in ("register", "ignore_errors")}
        return pseudo

    def _expansions(
        self,
        it: PlayIterator,
        host: str,
        pseudo: Task,
        node: IncludeTasks | IncludeRole,
        what: Any,
    ) -> list[tuple[dict[str, Any], Any]]:
        """What an include brings ``host``: one (item vars, templated ``what``) per loop item
        (one without a loop); skipped items and a skipped include are reported here, and a
        ``when`` that cannot be evaluated fails the host (ignore_errors applies)."""
        tv = self.vm.task_vars(host, node)
        templar = Templar(tv)
        out: list[tuple[dict[str, Any], Any]] = []
        try:
            if "loop" not in node.kw:
                try:
                    cond = first_failed_cond(templar, node.when)
                except TemplateError as exc:
                    failure = self._cond_failure(host, pseudo, node, exc)
                    if not failure.ignored:
                        self.include_failures.append(host)
                    self.process(it, failure)
                    return out
                if cond is not None:
                    skip = {
                        "changed": False,
                        "skipped": True,
                        "false_condition": cond,
                        "skip_reason": "Conditional result was False",
                    }
                    # (process: the include's register gets the skip, as in ansible)
                    self.process(it, TaskResult(host, pseudo, skip, "skipped"))
                    return out
                value = templar.template(what)
                ok = _include_result(pseudo, value)
                self.cb.result(TaskResult(host, pseudo, ok, "ok", include=True))
                return [({}, value)]
            lc = loop_control(node.kw, templar)
            try:
                items = loop_items(node.kw, templar, tv, pseudo.action)
            except TemplateUndefined:
                # ansible keeps an undefined loop's error until the condition is known: an
                # include its `when` skips is skipped (registered so), loop or not
                cond = first_failed_cond(templar, node.when)
                if cond is None:
                    raise
                skip = {
                    "changed": False,
                    "skipped": True,
                    "false_condition": cond,
                    "skip_reason": "Conditional result was False",
                }
                self.process(it, TaskResult(host, pseudo, skip, "skipped"))
                return out
            no_log = self.ex.kw_bool(node, "no_log", host)
            skipped: list[tuple[str, dict[str, Any]]] = []
            ordered: list[tuple[str, dict[str, Any]]] = []
            for i in range(len(items)):
                special = item_vars(lc, items, i)
                t = Templar(tv.with_layer(special))
                if lc.label is not None:
                    special["_ansible_item_label"] = t.template(lc.label)
                if no_log:
                    special["_ansible_no_log"] = True
                cond = first_failed_cond(t, node.when)
                if cond is not None:
                    r = {
                        "changed": False,
                        "skipped": True,
                        "skip_reason": "Conditional result was False",
                        "false_condition": cond,
                        **special,
                    }
                    skipped.append(("skipped", r))
                    ordered.append(("skipped", r))
                else:
                    value = t.template(what)
                    out.append((special, value))
                    ordered.append(("ok", {**_include_result(pseudo, value), **special}))
                if lc.pause_s and i < len(items) - 1:
                    time.sleep(lc.pause_s)
        except TemplateError as exc:
            raise PlaybookError(f"{pseudo.action}: {exc}") from None
        if not items or not out:
            res: dict[str, Any] = {"changed": False, "skipped": True}
            if items:
                res.update(results=[r for _s, r in skipped], msg="All items skipped")
            else:
                res.update(results=[], skipped_reason="No items in the list")
            self.ctx.stats.increment("skipped", host)
            self.cb.result(TaskResult(host, pseudo, res, "skipped", items=skipped))
        else:
            # the items' results (the default callback shows the skipped items' lines only)
            res = {
                "changed": False,
                "msg": "All items completed",
                "results": [r for _s, r in ordered],
            }
            self.cb.result(TaskResult(host, pseudo, res, "ok", items=ordered, include=True))
        return out

    def _include_failed(
        self,
        it: PlayIterator,
        pseudo: Task,
        node: IncludeTasks | IncludeRole,
        hosts: list[str],
        result: dict[str, Any],
        origin: tuple[str, int, int] | None = None,
    ) -> None:
        """An included file or role that cannot be found fails its hosts (``ignore_errors``
        does not apply), as ansible's strategies do; a looped include shows no line for it."""
        self.cb.error(str(result["reason"]), origin)
        for h in hosts:
            self.include_failures.append(h)
            self.ctx.stats.increment("failures", h)
            if "loop" not in node.kw:
                shown = {**result, "_fk_no_error_block": True}
                self.cb.result(TaskResult(h, pseudo, shown, "failed"))
            it.fail_host(h)

    def _cond_failure(
        self, host: str, pseudo: Task, node: IncludeTasks | IncludeRole, exc: Exception
    ) -> TaskResult:
        what = "Error while evaluating conditional"
        msg = f"Task failed: {what}: {exc}"
        chain = [("Task failed.", pseudo.path, pseudo.line, pseudo.col)]
        if node.src is not None and "when" in node.src.pos:
            _kl, _kc, vl, vc = node.src.pos["when"]
            if isinstance(node.src["when"], list) and len(node.src["when"]) == 1:
                # ansible points at the list's one item: after "- " (or "[")
                text = linecache.getline(pseudo.path, vl)
                lead = text[vc - 1 : vc] if 0 < vc <= len(text) else ""
                vc += {"-": 2, "[": 1}.get(lead, 0)
            chain.append((f"{what}: {exc}", pseudo.path, vl, vc))
        r = {"failed": True, "changed": False, "msg": msg, "_fk_error": msg, "_fk_chain": chain}
        ignored = self.ex.kw_bool(node, "ignore_errors", host)
        return TaskResult(host, pseudo, r, "failed", ignored=ignored, controller=True)

    def include_files(
        self, it: PlayIterator, inc: IncludeTasks, hosts: list[str]
    ) -> list[tuple[str, list[Node], list[str]]]:
        """Evaluate an include_tasks for hosts: banner, skips, 'included:' lines and the tasks
        of each included file (one per file and loop item, as ansible's IncludedFile); a
        handler's include loads handlers."""
        self.include_failures = []
        pseudo = self._include_pseudo(inc, "include_tasks", inc.name or "include_tasks")
        pseudo.role = inc.role  # "role : include_tasks"
        name = self.ex.task_name(pseudo, hosts[0]) if hosts else ""
        self.cb.task_start(pseudo, name, inc.handler)
        groups: list[_Included] = []
        for h in hosts:
            self.cb.runner_start(h, pseudo)
        for h in hosts:
            for special, fname in self._expansions(it, h, pseudo, inc, inc.file):
                _add_host(groups, (str(fname), repr(special)), special, str(fname), h)
        out: list[tuple[str, list[Node], list[str]]] = []
        for g in groups:
            fname = str(g.what)
            # the loader computed what included tasks inherit (not the include's own
            # keywords, tags or when; its vars and apply: yes); the item's vars come on top
            inherit = dict(inc.parent)
            if g.special:
                inherit["vars"] = {**inherit.get("vars", {}), **g.special}
                # the item's vars are include params too (ansible's IncludedFile vars)
                inherit["_include_params"] = {**inherit.get("_include_params", {}), **g.special}
            fname = _include_path(inc, fname)
            try:
                nodes = load_task_file(fname, inc.base, inherit, None, inc.handler)
            except IncludeNotFound as exc:
                reason = (
                    f"Could not find or access '{exc.path}' on the Ansible Controller: Unable "
                    f"to retrieve file contents.\nCould not find or access '{exc.path}' on the "
                    "Ansible Controller.\nIf you are using a module and expect the file to "
                    "exist on the remote, see the remote_src option: [Errno 2] No such file or "
                    f"directory: '{exc.path}'"
                )
                failed = {"changed": False, "include": fname, "reason": reason}
                self._include_failed(it, pseudo, inc, g.hosts, failed)
                continue
            if inc.role is not None:
                _set_role(nodes, inc)
            path = fname if os.path.isabs(fname) else os.path.join(inc.base, fname)
            self.cb.include(os.path.abspath(path), g.hosts, g.special or None)
            for h in g.hosts:
                self.ctx.stats.increment("ok", h)
            out.append((fname, nodes, g.hosts))
        return out

    def include_roles(
        self, it: PlayIterator, node: IncludeRole, hosts: list[str]
    ) -> dict[str, list[tuple[int, list[Node]]]]:
        """Expand an ``include_role`` for ``hosts``: one expansion per distinct set of templated
        arguments and loop item; a host skipped by the ``when`` gets nothing. The role's
        handlers join the play's."""
        from fleetkit.playbook.roles import expand_include_role

        name = node.name or f"include_role : {node.role_name}"
        self.include_failures = []
        pseudo = self._include_pseudo(node, "include_role", name)
        self.cb.task_start(pseudo, pseudo.display_name())
        groups: list[_Included] = []
        for h in hosts:
            self.cb.runner_start(h, pseudo)
        for h in hosts:
            for special, args in self._expansions(it, h, pseudo, node, node.args):
                sig = repr(sorted(args.items())) if isinstance(args, dict) else repr(args)
                _add_host(groups, (sig, repr(special)), special, args, h)
        out: dict[str, list[tuple[int, list[Node]]]] = {}
        for idx, g in enumerate(groups):
            args = g.what
            if isinstance(args, dict):
                # an option templated to omit is not given (ansible drops omitted args)
                args = {k: v for k, v in args.items() if v != OMIT}
            try:
                included = expand_include_role(node, args, it.play)
            except IncludeNotFound as exc:
                failed = {"changed": False, "reason": exc.detail}
                # ansible points at the role's name among the include_role arguments
                origin = None
                src = node.src
                for key, value in (src or {}).items():
                    named = isinstance(value, Located) and "name" in value.pos
                    if str(key).endswith("include_role") and named:
                        _kl, _kc, vl, vc = value.pos["name"]
                        origin = (pseudo.path, vl, vc)
                self._include_failed(it, pseudo, node, g.hosts, failed, origin)
                continue
            self.vm.note_role(included.role)
            if included.role.public:
                self.vm.add_public_role(included.role)
            if node.vars or g.special:
                _inherit_vars(included.tasks, {**node.vars, **g.special}, g.special)
            for handler in included.handlers:
                if not any(handler is x for x in it.play.handlers):
                    it.play.handlers.append(handler)
            for h in g.hosts:
                out.setdefault(h, []).append((idx, list(included.tasks)))
            role = args.get("name", args.get("role")) if isinstance(args, dict) else None
            # ansible: "included: <role> for <hosts>", an ok for each host
            for h in g.hosts:
                self.ctx.stats.increment("ok", h)
            self.cb.include(str(role or node.role_name), g.hosts, g.special or None)
        return out


@dataclass(slots=True)
class _Included:
    """One included file or role: what it is (templated), its item's vars and its hosts."""

    key: tuple[str, str]
    special: dict[str, Any]
    what: Any
    hosts: list[str]


def _include_result(pseudo: Task, value: Any) -> dict[str, Any]:
    """An include's result as ansible's TaskExecutor returns it: the file and its arguments
    (include_tasks), the role's arguments (include_role)."""
    if pseudo.action == "include_role":
        return {"include_args": dict(value) if isinstance(value, dict) else {}}
    return {"include": str(value), "include_args": {}}


def _add_host(
    groups: list[_Included], key: tuple[str, str], special: dict[str, Any], what: Any, host: str
) -> None:
    """Add ``host`` to the first equal include it is not in yet (ansible's IncludedFile
    grouping: a host including the same thing twice gets a second include after the first)."""
    for g in groups:
        if g.key == key and host not in g.hosts:
            g.hosts.append(host)
            return
    groups.append(_Included(key, special, what, [host]))


def _inherit_vars(nodes: list[Node], values: dict[str, Any], params: dict[str, Any]) -> None:
    """The include's ``vars:`` under the included tasks' own; its loop item's vars are
    include params too."""
    from fleetkit.playbook.playbook import Block

    for n in nodes:
        if isinstance(n, Block):
            _inherit_vars(n.block, values, params)
            _inherit_vars(n.rescue, values, params)
            _inherit_vars(n.always, values, params)
        else:
            n.vars = {**values, **n.vars}
            if params:
                n.include_params = {**params, **n.include_params}


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


def _include_path(inc: IncludeTasks, fname: str) -> str:
    """Where a role's include_tasks finds a relative file (``fname`` as given when nowhere)."""
    if inc.role is None:
        return fname
    basedir = str(inc.parent.get("_basedir") or "")
    return task_file_path(fname, inc.base, inc.role, inc.handler, basedir) or fname


def _set_role(nodes: list[Node], inc: IncludeTasks) -> None:
    from fleetkit.playbook.playbook import Block

    for n in nodes:
        if isinstance(n, Block):
            _set_role(n.block, inc)
            _set_role(n.rescue, inc)
            _set_role(n.always, inc)
        elif n.role is None:
            n.role = inc.role
