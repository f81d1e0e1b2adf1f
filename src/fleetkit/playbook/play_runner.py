"""Run a playbook: its plays, each play's batches (``serial``) and the failure rules between them
(ansible's PlaybookExecutor)."""

from __future__ import annotations

import dataclasses
import getpass
import os
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fleetkit.playbook import patterns
from fleetkit.playbook.errors import PlaybookError, PlaybookSyntaxError, TemplateError
from fleetkit.playbook.events import Callback
from fleetkit.playbook.executor import TaskExecutor
from fleetkit.playbook.factcache import load_fact_cache
from fleetkit.playbook.filters import to_bool
from fleetkit.playbook.inventory import Inventory
from fleetkit.playbook.iterator import PlayIterator, find_start_task, tag_ok
from fleetkit.playbook.options import RunOptions, RunSummary
from fleetkit.playbook.playbook import Play, normalize_action
from fleetkit.playbook.plugins import add_plugin_dirs
from fleetkit.playbook.strategies import (
    RunContext,
    Strategy,
    get_strategy,
    handler_namer,
    serial_batches,
)
from fleetkit.playbook.templar import Templar, VarsView, configure, is_template
from fleetkit.playbook.variables import VariableManager

__all__ = ["PlaybookExecutor"]


class PlaybookExecutor:
    """Runs every play of a playbook over an inventory and returns the run's summary."""

    def __init__(
        self, inv: Inventory, plays: list[Play], opts: RunOptions, callback: Callback
    ) -> None:
        self.inv = inv
        self.plays = plays
        self.opts = opts
        self.cb = callback
        self.vm = VariableManager(inv, opts)
        self.executor = TaskExecutor(self.vm, opts, callback)
        # --start-at-task: cleared once a play found the task (later plays run in full)
        self._start_at = opts.start_at_task
        self._prompt_warned = False

    def run(self) -> RunSummary:
        """Run the playbook; the exit code is ansible-playbook's."""
        if self.opts.step:
            raise PlaybookError(
                "--step is not supported by fleetkit play",
                hint="run without --step, or use --start-at-task to resume at a task",
            )
        if self.opts.limit and self.inv.hosts:
            # ansible-playbook checks --limit against the whole inventory before any play
            if not patterns.match_hosts(self.inv, self._limit_pattern()):
                raise PlaybookError(
                    "Specified inventory, host pattern and/or --limit leaves us with no hosts "
                    "to target.",
                    hint="check the --limit pattern against `fleetkit inventory --graph`",
                )
        cfg = self.opts.config
        configure(
            allow_broken_conditionals=bool(cfg.get("allow_broken_conditionals", False)),
            allow_embedded_templates=bool(cfg.get("allow_embedded_templates", True)),
            deprecation_warnings=bool(cfg.get("deprecation_warnings", True)),
            warn=self.cb.warning,
        )
        self._open_fact_cache()
        pool = ThreadPoolExecutor(max_workers=max(1, self.opts.forks), thread_name_prefix="fk-fork")
        ctx = RunContext(self.opts, self.cb, self.vm, self.executor, pool)
        interrupted = False
        try:
            self.cb.playbook_start(self.opts.playbook_path, len(self.plays))
            try:
                for play in self.plays:
                    if self._run_play(ctx, play):
                        break
            except PlaybookSyntaxError as exc:
                if exc.hint is not None:
                    raise  # fleetkit's own refusal: error: + hint:
                # a file loaded at run time (include_tasks, include_role) that does not parse
                # ends the run as ansible's parser error does: [ERROR] with its origin, no recap
                self.cb.error(exc.detail, exc.origin)
                return RunSummary(4, ctx.stats, set(ctx.failed), set(ctx.unreachable))
            self.cb.stats(ctx.stats)
            if self._start_at is not None:
                self.cb.error(
                    f'No matching task "{self._start_at}" found. Note: --start-at-task can '
                    "only follow static includes."
                )
        except KeyboardInterrupt:
            # as a terminal's Ctrl-C reaches ansible's workers: the commands our forks are
            # waiting on get SIGINT too, so the forks end and the run can stop now
            interrupted = True
            _interrupt_children()
            raise
        finally:
            pool.shutdown(wait=not interrupted, cancel_futures=interrupted)
            self.executor.connections.close()
        code = 0
        if ctx.unreachable:
            code = 4
        elif ctx.failed:
            code = 2
        return RunSummary(code, ctx.stats, set(ctx.failed), set(ctx.unreachable))

    def _open_fact_cache(self) -> None:
        """ansible.cfg's fact cache plugin (ansible's VariableManager), emptied for every
        inventory host and localhost on ``--flush-cache``."""
        name = str(self.opts.config.get("fact_caching") or "memory")
        self.vm.facts = load_fact_cache(name, self.cb.warning)
        if self.opts.flush_cache:
            for host in ("localhost", *self.inv.hosts):
                self.vm.clear_facts(host)

    def _limit_pattern(self) -> str | list[str]:
        limit = self.opts.limit or ""
        if limit.startswith("@"):
            try:
                with open(limit[1:], encoding="utf-8") as fh:
                    return [line.strip() for line in fh if line.strip()]
            except OSError as exc:
                raise PlaybookError(f"cannot read limit file {limit[1:]}: {exc}") from None
        return limit

    def _templated(self, play: Play) -> Play:
        """The play with its templated keywords rendered (extra vars and play vars), as
        ansible's play context does before selecting hosts."""
        kw = play.keywords
        cfg = self.opts.config
        defaults: dict[str, Any] = {}
        # ansible.cfg / ANSIBLE_* defaults for what the play does not set
        if "strategy" not in kw and cfg.get("strategy") not in (None, "linear"):
            defaults["strategy"] = normalize_action(str(cfg["strategy"]))
        if "any_errors_fatal" not in kw and cfg.get("any_errors_fatal"):
            defaults["any_errors_fatal"] = to_bool(cfg["any_errors_fatal"])
        if "gather_facts" not in kw and cfg.get("gathering") == "explicit":
            defaults["gather_facts"] = False
        if defaults:
            play = dataclasses.replace(play, **defaults)
        if not any(isinstance(v, str) and is_template(v) for v in _flat(kw)):
            return play
        templar = Templar(VarsView([self.opts.extra_vars, self.vm.play_vars]))
        changes: dict[str, Any] = {}
        try:
            for key in ("hosts", "order", "strategy"):
                raw = kw.get(key)
                if isinstance(raw, str) and is_template(raw):
                    value = templar.template(raw)
                    # hosts: a template may render a list of patterns
                    if isinstance(value, list) and key == "hosts":
                        changes[key] = [str(h) for h in value]
                    else:
                        changes[key] = str(value)
                elif isinstance(raw, list) and key == "hosts":
                    changes[key] = [str(templar.template(h)) for h in raw]
            raw = kw.get("name")
            if isinstance(raw, str) and is_template(raw):
                try:
                    changes["name"] = str(templar.template(raw))
                except TemplateError:
                    pass  # ansible shows the name as written when it cannot be rendered yet
            if "name" not in kw and "hosts" in changes:
                h = changes["hosts"]
                if isinstance(kw.get("hosts"), str) and isinstance(h, list):
                    # ansible names the play after the rendered value (a Python list)
                    changes["name"] = str(h)
                else:
                    changes["name"] = ",".join(h) if isinstance(h, list) else h
            if "serial" in kw and any(isinstance(v, str) and is_template(v) for v in play.serial):
                serial: list[Any] = []
                for v in play.serial:
                    value = templar.template(v)
                    serial.extend(value if isinstance(value, list) else [value])
                changes["serial"] = serial
            for key in ("gather_facts", "any_errors_fatal"):
                raw = kw.get(key)
                if isinstance(raw, str) and is_template(raw):
                    changes[key] = to_bool(templar.template(raw))
            raw = kw.get("max_fail_percentage")
            if isinstance(raw, str) and is_template(raw):
                changes["max_fail_percentage"] = float(str(templar.template(raw)).rstrip("%"))
        except (TemplateError, ValueError) as exc:
            raise PlaybookError(f"{exc}", hint="in a play keyword of play {play.name!r}") from None
        if "strategy" in changes:
            changes["strategy"] = normalize_action(changes["strategy"])
        if "order" in changes and changes["order"] not in patterns.ORDERS:
            raise PlaybookError(
                f"Invalid play order specified: {changes['order']}",
                hint="order is one of " + ", ".join(patterns.ORDERS),
            )
        return dataclasses.replace(play, **changes)

    def _vars_prompt(self, play: Play) -> dict[str, Any]:
        """``vars_prompt``: ask on a terminal; otherwise the default (ansible's warning)."""
        raw = play.keywords.get("vars_prompt")
        if not raw:
            return {}
        templar = Templar(VarsView([self.opts.extra_vars, play.vars]))
        try:
            entries = templar.template(raw)
        except TemplateError as exc:
            raise PlaybookError(f"vars_prompt: {exc}") from None
        if not isinstance(entries, list):
            raise PlaybookError("vars_prompt must be a list of mappings")
        out: dict[str, Any] = {}
        for var in entries:
            if not isinstance(var, dict) or "name" not in var:
                raise PlaybookError("a vars_prompt entry needs a 'name'")
            name = str(var["name"])
            if name in self.opts.extra_vars:
                continue
            if var.get("encrypt"):
                raise PlaybookError(
                    f"vars_prompt {name!r}: encrypt is not supported by fleetkit play",
                    hint="pass the value with -e instead",
                )
            default = var.get("default")
            result: Any = None
            if sys.stdin is not None and sys.stdin.isatty():
                prompt = str(var.get("prompt", name))
                msg = f"{prompt} [{default}]: " if default is not None else f"{prompt}: "
                private = to_bool(var.get("private", True))
                result = getpass.getpass(msg) if private else input(msg)
            elif not self._prompt_warned:
                # ansible's display prints a given warning once per run
                self._prompt_warned = True
                self.cb.warning("Not prompting as we are not in interactive mode")
            if not result and default is not None:
                result = default
            out[name] = str(result)
        return out

    def _force_handlers(self, play: Play) -> bool:
        raw = play.keywords.get("force_handlers")
        if raw is None:
            return self.opts.force_handlers
        try:
            return to_bool(
                Templar(VarsView([self.opts.extra_vars, self.vm.play_vars])).template(raw)
            )
        except TemplateError as exc:
            raise PlaybookError(f"force_handlers: {exc}") from None

    def _run_play(self, ctx: RunContext, play: Play) -> bool:
        """Run one play; True when the playbook must stop."""
        vm = self.vm
        vm.prompt_vars = self._vars_prompt(play)
        vm.warnings = []
        vm.load_play_vars(play)
        for warning in vm.warnings:
            self.cb.warning(warning)
        play = self._templated(play)
        self.inv.add_vars_dir(play.basedir)
        add_plugin_dirs(play.basedir)  # filter_plugins/ etc. next to the playbook
        try:
            hosts = patterns.select_play_hosts(
                self.inv, play.hosts, self._limit_pattern() or None, play.order, self.opts.seed
            )
        except TemplateError as exc:
            raise PlaybookError(str(exc)) from None
        # ansible_play_hosts_all keeps the pattern's order (the play's `order` is not applied)
        in_play = set(hosts)
        play_all = [h for h in patterns.match_hosts(self.inv, play.hosts) if h in in_play]
        vm.start_play(play, play_all)
        if not hosts:
            pattern = play.hosts if isinstance(play.hosts, str) else ",".join(play.hosts)
            if pattern != "all":  # ansible never warns that 'all' matched nothing
                self.cb.warning("Could not match supplied host pattern, ignoring: " + pattern)
            self.cb.play_start(play)
            self.cb.no_hosts_matched()
            return False
        strategy: Strategy | None = None
        if play.strategy == "free" and play.max_fail_percentage is not None:
            self.cb.warning(
                "Using max_fail_percentage with the free strategy is not "
                "supported, as tasks are executed independently on each host"
            )
        gather = play.gather_facts and tag_ok(["always"], self.opts.tags, self.opts.skip_tags)
        start_at: int | None = None
        if self._start_at is not None:
            start_at = find_start_task(play, self._start_at)
            if start_at is None:
                # no match in this play: ansible runs none of it, facts included
                for _batch in serial_batches(hosts, play.serial):
                    self.cb.play_start(play)
                return False
            self._start_at = None
        for batch_hosts in serial_batches(hosts, play.serial):
            # hosts any_errors_fatal failed inside a block whose rescue then caught them stay
            # failed for ansible from the next batch or play on
            ctx.failed.update(ctx.aef_marked - ctx.unreachable)
            ctx.aef_marked.clear()
            alive = [h for h in batch_hosts if h not in ctx.failed and h not in ctx.unreachable]
            before = {h for h in batch_hosts if h not in alive}
            vm.start_batch(alive)
            self.cb.play_start(play)
            if strategy is None:
                # ansible loads the strategy plugin after the play banner
                strategy = get_strategy(play.strategy, ctx)
            it = PlayIterator(
                play,
                batch_hosts,
                ctx.failed,
                ctx.unreachable,
                self.opts.tags,
                self.opts.skip_tags,
                gather,
                force_handlers=self._force_handlers(play),
                start_at=start_at,
            )
            it.name_of = handler_namer(ctx)
            if self.opts.config.get("gathering") == "smart":
                it.facts_gathered = vm.facts.gathered
            it.verbose = self.cb.verbose
            it.on_notify = self.cb.notify
            if self.opts.config.get("debug"):
                it.debug = _ansible_debug
            strategy.run(it)
            if it.break_play:
                return True
            if it.end_play:
                return False
            # ansible stops the playbook when every host of the batch failed *in this batch*;
            # hosts that had already failed earlier still take their slots but do not count.
            newly = [
                h
                for h in batch_hosts
                if h not in before
                and (h in ctx.failed or h in ctx.unreachable or h in ctx.aef_marked)
            ]
            if len(newly) == len(batch_hosts):
                return True
        return False


def _ansible_debug(msg: str) -> None:
    """A line of ansible's debug stream (ANSIBLE_DEBUG), printed by ansible's own Display."""
    from ansible.utils.display import Display

    Display().debug(msg)


def _flat(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _flat(v)
    elif isinstance(value, list):
        for v in value:
            yield from _flat(v)
    else:
        yield value


def _interrupt_children() -> None:
    """Send SIGINT to this process's direct children (the commands being run)."""
    me = os.getpid()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == me:
            try:
                os.kill(int(entry), signal.SIGINT)
            except OSError:
                pass
