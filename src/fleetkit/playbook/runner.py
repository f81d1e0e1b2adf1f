"""Run plays: batches, the linear and free strategies, task execution and failure rules.

One thread pool (``forks`` workers) executes host tasks; modules run in-process on the
controller (local hosts) or through one persistent SSH connection per host. Results are
reported in host order per task (linear) or as they come (free).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Generator, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from fleetkit.playbook import patterns
from fleetkit.playbook.connection import Become, CommandNotFound, Connection, Unreachable
from fleetkit.playbook.connection.local import LocalConnection
from fleetkit.playbook.connection.ssh import SSHConnection, cleanup_control_dir
from fleetkit.playbook.errors import ModuleError, PlaybookError, TemplateError
from fleetkit.playbook.events import Callback, Stats, TaskResult
from fleetkit.playbook.filters import to_bool
from fleetkit.playbook.inventory import Inventory
from fleetkit.playbook.modules import Module, ModuleContext, get_module, validate
from fleetkit.playbook.modules.debug import RAW_ARGS
from fleetkit.playbook.options import RunOptions, RunSummary
from fleetkit.playbook.playbook import (
    Block,
    IncludeRole,
    IncludeTasks,
    Node,
    Play,
    Task,
    load_task_file,
)
from fleetkit.playbook.strategy import exceeds_max_fail, serial_batches
from fleetkit.playbook.templar import OMIT, Templar, VarsView
from fleetkit.playbook.yamlsrc import Located, load_yaml_file

__all__ = ["RunOptions", "PlaybookRunner", "RunSummary"]

_RESULT_INTERNAL = ("_fk_error", "_fk_chain", "_fk_action_failed")


class _ArgError(TemplateError):
    def __init__(self, stage: str, key: str, detail: str) -> None:
        self.stage = stage
        self.key = key
        self.detail = detail
        self.full = f"{stage} failed: {detail}"
        super().__init__(self.full)


class _Frame:
    """One section of a block being run: its failed hosts, whether a rescue section catches a
    failure here (``rescue``), and whether anything of the block (rescue or always) still runs
    for a host that fails here (``pending``)."""

    __slots__ = ("failed", "pending", "rescue")

    def __init__(self, rescue: bool, pending: bool = False) -> None:
        self.failed: set[str] = set()
        self.rescue = rescue
        self.pending = pending or rescue


@dataclass
class _Batch:
    play: Play
    hosts: list[str]
    frames: list[_Frame] = field(default_factory=list)
    failed_here: set[str] = field(default_factory=set)
    stop: bool = False
    break_play: bool = False
    notified: dict[str, set[int]] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    end_play: bool = False


class _HostVars(Mapping[str, Any]):
    def __init__(self, runner: PlaybookRunner, play: Play) -> None:
        self._r = runner
        self._play = play

    def __getitem__(self, host: str) -> Any:
        if host not in self._r.inv.hosts:
            raise KeyError(host)
        # ansible builds hostvars without a play: play vars and vars_files are not in them
        return self._r.host_view(host, self._play, play_vars=False)

    def __contains__(self, host: object) -> bool:
        return host in self._r.inv.hosts

    def __iter__(self) -> Iterator[str]:
        return iter(self._r.inv.hosts)

    def __len__(self) -> int:
        return len(self._r.inv.hosts)


def _first_failed_cond(templar: Templar, conds: list[Any]) -> Any:
    for c in conds:
        if not templar.condition(c):
            return c
    return None


class PlaybookRunner:
    def __init__(
        self, inv: Inventory, plays: list[Play], opts: RunOptions, callback: Callback
    ) -> None:
        self.inv = inv
        self.plays = plays
        self.opts = opts
        self.cb = callback
        self.stats = Stats()
        self.failed: set[str] = set()
        self.unreachable: set[str] = set()
        self.runtime: dict[str, dict[str, Any]] = {}
        self.facts: dict[str, dict[str, Any]] = {}
        self._conns: dict[tuple[str, str], Connection] = {}
        self._conn_lock = threading.Lock()
        # Retry lines come from worker threads; ansible (-f 1) prints them just before the
        # host's result, so a host's retries are printed live only while the main thread is
        # waiting on that host, and buffered until then otherwise.
        self._retry_lock = threading.Lock()
        self._aef_marked: set[str] = set()
        self._retry_live: str | None = None
        self._retry_ordered = True
        self._retry_buf: dict[str, list[tuple[Task, str, int, int, dict[str, Any]]]] = {}
        self._play_vars: dict[str, Any] = {}
        self._magic_common: dict[str, Any] = {}
        self._play_all: list[str] = []
        self._batch_hosts: list[str] = []
        self._active_cache: tuple[tuple[int, int], list[str], list[str]] | None = None
        self._groups: dict[str, list[str]] = {}
        self._pool: ThreadPoolExecutor | None = None

    # -- variables -------------------------------------------------------------------------

    def _runtime(self, host: str) -> dict[str, Any]:
        rt = self.runtime.get(host)
        if rt is None:
            rt = self.runtime[host] = {}
        return rt

    def host_view(self, host: str, play: Play | None, play_vars: bool = True) -> VarsView:
        facts = self.facts.get(host, {})
        layers: list[Mapping[str, Any]] = [self.opts.extra_vars, self._magic(host)]
        layers.append(self._runtime(host))
        if play_vars:
            layers.append(self._play_vars)
        layers += [facts, self.inv.host_vars(host)]
        return VarsView(layers)

    def _active_hosts(self) -> tuple[list[str], list[str]]:
        """ansible_play_hosts and ansible_play_batch: without the hosts failed or unreachable
        so far (they only grow, so their sizes key the cache)."""
        key = (len(self.failed), len(self.unreachable))
        cached = self._active_cache
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        bad = self.failed | self.unreachable
        play_hosts = [h for h in self._play_all if h not in bad]
        batch = [h for h in self._batch_hosts if h not in bad]
        self._active_cache = (key, play_hosts, batch)
        return play_hosts, batch

    def _magic(self, host: str) -> dict[str, Any]:
        m = dict(self._magic_common)
        play_hosts, batch = self._active_hosts()
        m["ansible_play_hosts"] = play_hosts
        m["ansible_play_batch"] = batch
        m["play_hosts"] = batch
        m["inventory_hostname"] = host
        m["inventory_hostname_short"] = host.split(".")[0]
        m["group_names"] = self.inv.group_names(host) if host in self.inv.hosts else []
        facts = self.facts.get(host)
        if facts is not None:
            m["ansible_facts"] = {
                k[8:] if k.startswith("ansible_") else k: v for k, v in facts.items()
            }
        return m

    def task_vars(
        self, host: str, task: Task | IncludeTasks, extra: Mapping[str, Any] | None = None
    ) -> VarsView:
        facts = self.facts.get(host, {})
        layers: list[Mapping[str, Any]] = [self.opts.extra_vars, self._magic(host)]
        if extra:
            layers.append(extra)
        layers += [self._runtime(host), task.vars, self._play_vars, facts, self.inv.host_vars(host)]
        return VarsView(layers)

    # -- connections -----------------------------------------------------------------------

    def connection(
        self, host: str, variables: Mapping[str, Any] | None = None, forced: str | None = None
    ) -> Connection:
        hv: Mapping[str, Any] = (
            variables
            if variables is not None
            else (self.host_view(host, None) if host in self.inv.hosts else {})
        )
        kind = forced or str(hv.get("ansible_connection") or "ssh")
        if host in ("localhost", "127.0.0.1") and "ansible_connection" not in hv and not forced:
            kind = "local"
        kind = {
            "smart": "ssh",
            "paramiko": "ssh",
            "paramiko_ssh": "ssh",
            "ansible.builtin.local": "local",
            "ansible.builtin.ssh": "ssh",
        }.get(kind, kind)
        key = (host, kind)
        with self._conn_lock:
            conn = self._conns.get(key)
            if conn is not None:
                return conn
            if kind == "local":
                conn = LocalConnection(host)
            elif kind == "ssh":
                env_hkc = os.environ.get("ANSIBLE_HOST_KEY_CHECKING")
                hkc: Any = hv.get(
                    "ansible_ssh_host_key_checking", hv.get("ansible_host_key_checking")
                )
                if hkc is None:
                    hkc = env_hkc if env_hkc is not None else True
                port = hv.get("ansible_port", hv.get("ansible_ssh_port"))
                conn = SSHConnection(
                    host,
                    str(hv.get("ansible_host", hv.get("ansible_ssh_host", host))),
                    port=int(port) if port not in (None, "") else None,
                    user=hv.get("ansible_user", hv.get("ansible_ssh_user")),
                    key_file=hv.get(
                        "ansible_ssh_private_key_file", hv.get("ansible_private_key_file")
                    ),
                    host_key_checking=to_bool(hkc),
                    connect_timeout_s=int(
                        hv.get("ansible_ssh_timeout", hv.get("ansible_timeout", 10))
                    ),
                    extra_args=" ".join(
                        str(hv.get(k, ""))
                        for k in ("ansible_ssh_common_args", "ansible_ssh_extra_args")
                    ).strip(),
                )
            else:
                raise PlaybookError(
                    f"the connection plugin '{kind}' was not found",
                    hint="fleetkit supports the local and ssh connections",
                )
            self._conns[key] = conn
            return conn

    def close(self) -> None:
        for conn in self._conns.values():
            try:
                conn.close()
            except OSError:
                pass
        self._conns.clear()
        cleanup_control_dir()

    # -- tags ------------------------------------------------------------------------------

    def _tag_ok(self, tags: list[str]) -> bool:
        want, skip = self.opts.tags, self.opts.skip_tags
        tagset = set(tags)
        if want:
            if "all" in want:
                ok = "never" not in tagset or bool(tagset & set(want))
            else:
                ok = bool(tagset & set(want)) or "always" in tagset
                if "tagged" in want and tagset - {"always", "never"}:
                    ok = True
                if "untagged" in want and not tagset:
                    ok = True
        else:
            ok = "never" not in tagset
        if skip and ok:
            if tagset & set(skip):
                ok = False
            if "tagged" in skip and tagset:
                ok = False
            if "untagged" in skip and not tagset:
                ok = False
        return ok

    # -- top level -------------------------------------------------------------------------

    def run(self) -> RunSummary:
        if self.opts.limit and self.inv.hosts:
            # ansible-playbook checks --limit against the whole inventory before any play
            if not patterns.match_hosts(self.inv, self._limit_pattern()):
                raise PlaybookError(
                    "Specified inventory, host pattern and/or --limit leaves us with no hosts "
                    "to target.",
                    hint="check the --limit pattern against `fleetkit inventory --graph`",
                )
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, self.opts.forks), thread_name_prefix="fk-fork"
        )
        try:
            self.cb.playbook_start(self.opts.playbook_path, len(self.plays))
            for play in self.plays:
                if self._run_play(play):
                    break
            self.cb.stats(self.stats)
        finally:
            self._pool.shutdown(wait=True)
            self.close()
        code = 0
        if self.unreachable:
            code = 4
        elif self.failed:
            code = 2
        return RunSummary(code, self.stats, set(self.failed), set(self.unreachable))

    def _play_hosts(self, play: Play) -> list[str]:
        hosts = patterns.match_hosts(self.inv, play.hosts)
        if self.opts.limit:
            allowed = set(patterns.match_hosts(self.inv, self._limit_pattern()))
            hosts = [h for h in hosts if h in allowed]
        return patterns.apply_order(hosts, play.order, self.opts.seed)

    def _limit_pattern(self) -> str | list[str]:
        limit = self.opts.limit or ""
        if limit.startswith("@"):
            try:
                with open(limit[1:], encoding="utf-8") as fh:
                    return [line.strip() for line in fh if line.strip()]
            except OSError as exc:
                raise PlaybookError(f"cannot read limit file {limit[1:]}: {exc}") from None
        return limit

    def _load_play_vars(self, play: Play) -> None:
        pv: dict[str, Any] = dict(play.vars)
        base = Templar(VarsView([self.opts.extra_vars, pv]))
        for vf in play.vars_files:
            candidates = vf if isinstance(vf, list) else [vf]
            loaded = False
            for cand in candidates:
                name = str(base.template(cand))
                path = name if os.path.isabs(name) else os.path.join(play.basedir, name)
                if os.path.exists(path):
                    data = load_yaml_file(path) or {}
                    if not isinstance(data, dict):
                        raise PlaybookError(f"vars file {name} must be a mapping")
                    pv.update(data)
                    loaded = True
                    break
            if not loaded:
                raise PlaybookError(
                    f"vars file {candidates[0]} was not found",
                    hint=f"vars_files are resolved relative to {play.basedir}",
                )
        self._play_vars = pv

    def _run_play(self, play: Play) -> bool:
        """Run one play; True when the playbook must stop."""
        self._load_play_vars(play)
        self.inv.add_vars_dir(play.basedir)
        try:
            hosts = self._play_hosts(play)
        except TemplateError as exc:
            raise PlaybookError(str(exc)) from None
        self._groups = {g: list(self.inv.hosts_of(g)) for g in self.inv.groups}
        # ansible_play_hosts_all keeps the pattern's order (the play's `order` is not applied)
        in_play = set(hosts)
        play_all = [h for h in patterns.match_hosts(self.inv, play.hosts) if h in in_play]
        self._play_all = play_all
        self._active_cache = None
        self._magic_common = {
            "groups": self._groups,
            "hostvars": _HostVars(self, play),
            "playbook_dir": play.basedir,
            "ansible_check_mode": self.opts.check,
            "ansible_verbosity": self.opts.verbosity,
            "ansible_play_hosts_all": play_all,
            "ansible_play_name": play.name,
            "omit": OMIT,
            "ansible_version": {
                "full": "2.19.0",
                "major": 2,
                "minor": 19,
                "revision": 0,
                "string": "2.19.0 (fleetkit)",
            },
        }
        if not hosts:
            self.cb.warning(
                "Could not match supplied host pattern, ignoring: "
                + (play.hosts if isinstance(play.hosts, str) else ",".join(play.hosts))
            )
            self.cb.play_start(play)
            self.cb.no_hosts_matched()
            return False
        if play.strategy == "free" and play.max_fail_percentage is not None:
            self.cb.warning(
                "Using max_fail_percentage with the free strategy is not "
                "supported, as tasks are executed independently on each host"
            )
        for batch_hosts in serial_batches(hosts, play.serial):
            # hosts any_errors_fatal failed inside a block whose rescue then caught them stay
            # failed for ansible from the next batch or play on
            self.failed |= self._aef_marked - self.unreachable
            self._aef_marked.clear()
            batch = _Batch(play, batch_hosts)
            alive = [h for h in batch_hosts if h not in self.failed and h not in self.unreachable]
            before = {h for h in batch_hosts if h not in alive}
            self._batch_hosts = alive
            self._active_cache = None
            self.cb.play_start(play)
            self._retry_ordered = play.strategy != "free"
            if play.strategy == "free":
                self._run_free(batch, alive)
            else:
                self._run_linear(batch, alive)
            if batch.break_play:
                return True
            if batch.end_play:
                return False
            # ansible stops the playbook when every host of the batch failed *in this batch*;
            # hosts that had already failed earlier still take their slots but do not count.
            newly = [
                h
                for h in batch_hosts
                if h not in before
                and (h in self.failed or h in self.unreachable or h in self._aef_marked)
            ]
            if len(newly) == len(batch_hosts):
                return True
        return False

    # -- liveness --------------------------------------------------------------------------

    def _alive(self, batch: _Batch, host: str, frames: list[_Frame]) -> bool:
        if host in self.failed or host in self.unreachable or host in batch.ended:
            return False
        return not any(host in f.failed for f in frames)

    def _fail_host(
        self, batch: _Batch, host: str, frames: list[_Frame], count: bool = True
    ) -> None:
        """Mark host failed in the innermost section (or the play). ``failed_here`` is what
        ansible's max_fail_percentage and batch checks count during the batch: a host whose
        failure leaves nothing of its blocks to run (no rescue, no always) counts at once; one
        caught by a rescue or always section does not count when that block ends (count=False).
        """
        if count and not any(f.pending for f in frames):
            batch.failed_here.add(host)
        if frames:
            frames[-1].failed.add(host)
        else:
            self.failed.add(host)

    # -- linear ----------------------------------------------------------------------------

    def _run_linear(self, batch: _Batch, hosts: list[str]) -> None:
        play = batch.play
        if play.gather_facts and hosts and self._tag_ok(["always"]):
            self._linear_task(batch, self._facts_task(play), hosts, batch.frames)
        if not batch.stop:
            self._linear_nodes(batch, play.tasks, hosts, batch.frames)
        if not batch.stop:
            self._flush_handlers(batch, batch.frames)

    def _facts_task(self, play: Play) -> Task:
        t = Task(action="gather_facts", args={}, name="Gathering Facts")
        t.path, t.line, t.col = play.path, play.line, 3
        return t

    def _linear_nodes(
        self, batch: _Batch, nodes: list[Node], hosts: list[str], frames: list[_Frame]
    ) -> None:
        for node in nodes:
            if batch.stop or batch.end_play:
                return
            live = [h for h in hosts if self._alive(batch, h, frames)]
            if not live:
                return
            if isinstance(node, Task):
                if node.action == "meta":
                    self._meta(batch, node, live, frames)
                else:
                    self._linear_task(batch, node, live, frames)
            elif isinstance(node, Block):
                self._block(batch, node, live, frames, self._linear_nodes)
            elif isinstance(node, IncludeTasks):
                self._include(batch, node, live, frames, self._linear_nodes)
            else:
                raise PlaybookError(f"include_role is not supported yet ({node.role_name})")

    def _block(
        self, batch: _Batch, block: Block, hosts: list[str], frames: list[_Frame], runner: Any
    ) -> None:
        body = _Frame(rescue=bool(block.rescue), pending=bool(block.always))
        runner(batch, block.block, hosts, [*frames, body])
        pending: set[str] = set()
        if block.rescue:
            rescued = [h for h in hosts if h in body.failed]
            if rescued:
                rf = _Frame(rescue=False, pending=bool(block.always))
                runner(batch, block.rescue, rescued, [*frames, rf])
                pending |= rf.failed
        else:
            pending |= body.failed
        if block.always and not batch.stop:
            af = _Frame(rescue=False)
            runner(
                batch,
                block.always,
                [h for h in hosts if h not in self.unreachable and h not in batch.ended],
                [*frames, af],
            )
            pending |= af.failed
        for h in hosts:
            if h in pending:
                self._fail_host(batch, h, frames, count=False)

    def _include(
        self,
        batch: _Batch,
        inc: IncludeTasks,
        hosts: list[str],
        frames: list[_Frame],
        runner: Any,
    ) -> None:
        for _fname, nodes, fhosts in self._include_files(inc, hosts):
            runner(batch, nodes, fhosts, frames)

    def _include_files(
        self, inc: IncludeTasks, hosts: list[str]
    ) -> list[tuple[str, list[Node], list[str]]]:
        """Evaluate an include_tasks for hosts: banner, skips, 'included:' lines, the tasks."""
        if not self._tag_ok(inc.tags):
            return []
        by_file: dict[str, list[str]] = {}
        pseudo = Task(action="include_tasks", args={}, name=inc.name or "include_tasks")
        pseudo.uid, pseudo.path, pseudo.line, pseudo.col = inc.uid, inc.path, inc.line, inc.col
        self.cb.task_start(pseudo, pseudo.display_name())
        for h in hosts:
            tv = self.task_vars(h, inc)
            templar = Templar(tv)
            try:
                cond = _first_failed_cond(templar, inc.when)
                if cond is not None:
                    self.stats.increment("skipped", h)
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
            inherit = dict(inc.parent)
            inherit["when"] = []
            inherit["tags"] = list(inc.tags)
            inherit["vars"] = dict(inc.vars)
            nodes = load_task_file(fname, inc.base, inherit, None)
            path = fname if os.path.isabs(fname) else os.path.join(inc.base, fname)
            self.cb.include(os.path.abspath(path), fhosts)
            for h in fhosts:
                self.stats.increment("ok", h)
            out.append((fname, nodes, fhosts))
        return out

    def _meta(self, batch: _Batch, task: Task, hosts: list[str], frames: list[_Frame]) -> None:
        what = str(task.args.get("_raw_params") or task.args.get("free_form") or "")
        if not self._tag_ok(task.tags) and what != "flush_handlers":
            return
        name = task.name or "meta"
        self.cb.task_start(task, name)
        if what == "flush_handlers":
            # ansible announces the flush once per host still in the batch
            for _ in hosts[1:]:
                self.cb.task_start(task, name)
            self._flush_handlers(batch, frames)
        elif what == "end_play":
            batch.end_play = True
        elif what == "end_host":
            for h in hosts:
                if all(Templar(self.task_vars(h, task)).condition(c) for c in task.when):
                    batch.ended.add(h)
        elif what in (
            "noop",
            "clear_facts",
            "clear_host_errors",
            "refresh_inventory",
            "reset_connection",
            "end_batch",
            "",
        ):
            if what == "end_batch":
                batch.stop = True
            if what == "clear_facts":
                for h in hosts:
                    self.facts.pop(h, None)
        else:
            raise PlaybookError(f"invalid meta action requested: {what}")

    def _flush_handlers(self, batch: _Batch, frames: list[_Frame]) -> None:
        for i, handler in enumerate(batch.play.handlers):
            hosts = [
                h
                for h in batch.hosts
                if i in batch.notified.get(h, ()) and self._alive(batch, h, frames)
            ]
            if not hosts:
                continue
            for h in hosts:
                batch.notified[h].discard(i)
            self._linear_task(batch, handler, hosts, frames, handler=True)

    def _linear_task(
        self,
        batch: _Batch,
        task: Task,
        hosts: list[str],
        frames: list[_Frame],
        handler: bool = False,
    ) -> None:
        if not self._tag_ok(task.tags) and task.action != "gather_facts":
            return
        play = batch.play
        try:
            module = get_module(task.action)
        except ModuleError as exc:
            raise PlaybookError(str(exc)) from None
        run_once = module.run_once or self._kw_bool(task, "run_once", hosts[0])
        targets = hosts[:1] if run_once else hosts
        self.cb.task_start(task, self._task_name(task, targets[0]), handler)
        assert self._pool is not None
        futures: list[tuple[str, Future[TaskResult]]] = [
            (h, self._pool.submit(self._execute, h, task, module, None)) for h in targets
        ]
        results: list[TaskResult] = []
        for h, fut in futures:
            res = self._await_host(h, fut)
            results.append(res)
            self._process(batch, res, frames)
            if run_once:
                for other in hosts[1:]:
                    self._share_run_once(res, other)
        failed_now = [r.host for r in results if r.status == "failed" and not r.ignored]
        # ansible's any_errors_fatal looks at unreachable results even when ignore_unreachable
        unreach_now = [r.host for r in results if r.status == "unreachable"]
        aef = (
            play.any_errors_fatal or self._kw_bool(task, "any_errors_fatal", hosts[0]) or run_once
        ) and not self._kw_bool(task, "ignore_errors", hosts[0])
        if aef and (failed_now or unreach_now) and not frames:
            for h in batch.hosts:
                if h not in self.failed and h not in self.unreachable:
                    self.failed.add(h)
                    batch.failed_here.add(h)
        elif aef and (failed_now or unreach_now):
            # inside a block ansible marks the other hosts failed *in the block*: they go on to
            # its rescue/always sections (or out of the play when there are none), and count as
            # failed from the next batch or play on even when a rescue caught them
            for h in hosts:
                if h not in failed_now and h not in self.unreachable:
                    frames[-1].failed.add(h)
                    self._aef_marked.add(h)
                    if not any(f.pending for f in frames):
                        batch.failed_here.add(h)
        if play.max_fail_percentage is not None and results:
            if exceeds_max_fail(len(batch.failed_here), len(batch.hosts), play.max_fail_percentage):
                for h in batch.hosts:
                    if h not in self.unreachable:
                        self.failed.add(h)
                        batch.failed_here.add(h)
                self.cb.no_hosts_remaining()
                batch.break_play = True
                batch.stop = True
                self.cb.no_hosts_remaining()

    def _emit_retry(
        self, host: str, task: Task, attempt: int, total: int, result: dict[str, Any]
    ) -> None:
        name = self._task_name(task, host)
        with self._retry_lock:
            if self._retry_live == host or not self._retry_ordered:
                self.cb.retry(host, task, name, attempt, total, dict(result))
            else:
                self._retry_buf.setdefault(host, []).append(
                    (task, name, attempt, total, dict(result))
                )

    def _await_host(self, host: str, fut: Future[TaskResult]) -> TaskResult:
        with self._retry_lock:
            for task, name, attempt, total, result in self._retry_buf.pop(host, []):
                self.cb.retry(host, task, name, attempt, total, result)
            self._retry_live = host
        try:
            return fut.result()
        finally:
            with self._retry_lock:
                self._retry_live = None
                for task, name, attempt, total, result in self._retry_buf.pop(host, []):
                    self.cb.retry(host, task, name, attempt, total, result)

    def _share_run_once(self, res: TaskResult, other: str) -> None:
        reg = res.task.kw.get("register")
        if reg:
            self._runtime(other)[str(reg)] = self._registered(res.result)
        facts = res.result.get("ansible_facts")
        if isinstance(facts, dict) and res.task.action == "set_fact":
            self._runtime(other).update(facts)

    def _kw_bool(self, task: Task, key: str, host: str) -> bool:
        v = task.kw.get(key)
        if v is None:
            return False
        if isinstance(v, bool):
            return v
        try:
            return to_bool(Templar(self.task_vars(host, task)).template(v))
        except TemplateError:
            return False

    def _task_name(self, task: Task, host: str) -> str:
        name = task.display_name()
        if "{{" in name:
            try:
                name = str(Templar(self.task_vars(host, task)).template(name))
            except TemplateError:
                pass
        return name.strip()

    # -- free ------------------------------------------------------------------------------
    # Each host walks its tasks as a generator that yields the next task to run; the driver
    # keeps at most ``forks`` of them in flight and feeds results back as they complete, so
    # a fast host never waits for a slow one (ansible's free strategy).

    def _run_free(self, batch: _Batch, hosts: list[str]) -> None:
        assert self._pool is not None
        play = batch.play
        walkers: dict[str, Generator[Task, TaskResult, None]] = {}
        nxt: dict[str, Task] = {}

        def walk(host: str) -> Generator[Task, TaskResult, None]:
            frames: list[_Frame] = []
            if play.gather_facts:
                yield from self._gen_task(batch, self._facts_task(play), host, frames)
            yield from self._gen_nodes(batch, play.tasks, [host], frames)
            yield from self._gen_handlers(batch, host, frames)

        for h in hosts:
            gen = walk(h)
            try:
                nxt[h] = next(gen)
                walkers[h] = gen
            except StopIteration:
                pass
        inflight: dict[Future[TaskResult], str] = {}
        completed: list[Future[TaskResult]] = []
        order = {h: i for i, h in enumerate(hosts)}
        forks = max(1, self.opts.forks)

        def reap(block: bool) -> None:
            if not inflight:
                return
            done, _ = wait(
                list(inflight), timeout=None if block else 0, return_when=FIRST_COMPLETED
            )
            for fut in sorted(done, key=lambda f: order[inflight[f]]):
                inflight.pop(fut)
                completed.append(fut)

        owner: dict[Future[TaskResult], str] = {}
        while nxt or inflight or completed:
            # one pass over the hosts: each unblocked host queues its next task, waiting for a
            # free fork when all are busy (results are handled after the pass, as ansible does)
            for h in hosts:
                if h in nxt:
                    while len(inflight) >= forks:
                        reap(block=True)
                    task = nxt.pop(h)
                    fut = self._pool.submit(self._execute, h, task, get_module(task.action), None)
                    inflight[fut] = h
                    owner[fut] = h
            reap(block=not completed)
            for fut in completed:
                h = owner.pop(fut)
                try:
                    nxt[h] = walkers[h].send(fut.result())
                except StopIteration:
                    walkers.pop(h, None)
            completed.clear()

    def _gen_task(
        self, batch: _Batch, task: Task, host: str, frames: list[_Frame], handler: bool = False
    ) -> Generator[Task, TaskResult, None]:
        if not self._tag_ok(task.tags) and task.action != "gather_facts":
            return
        self.cb.task_start(task, self._task_name(task, host), handler)
        res = yield task
        self._process(batch, res, frames)

    def _gen_nodes(
        self, batch: _Batch, nodes: list[Node], hosts: list[str], frames: list[_Frame]
    ) -> Generator[Task, TaskResult, None]:
        host = hosts[0] if hosts else ""
        for node in nodes:
            if not hosts or not self._alive(batch, host, frames) or batch.end_play:
                return
            if isinstance(node, Task):
                if node.action == "meta":
                    self._meta(batch, node, [host], frames)
                else:
                    yield from self._gen_task(batch, node, host, frames)
            elif isinstance(node, Block):
                yield from self._gen_block(batch, node, host, frames)
            elif isinstance(node, IncludeRole):
                raise PlaybookError(f"include_role is not supported yet ({node.role_name})")
            else:
                files = self._include_files(node, [host])
                for fname, nodes2, fhosts in files:
                    if fhosts:
                        yield from self._gen_nodes(batch, nodes2, fhosts, frames)
                    _ = fname

    def _gen_block(
        self, batch: _Batch, block: Block, host: str, frames: list[_Frame]
    ) -> Generator[Task, TaskResult, None]:
        body = _Frame(rescue=bool(block.rescue), pending=bool(block.always))
        yield from self._gen_nodes(batch, block.block, [host], [*frames, body])
        pending = False
        if block.rescue:
            if host in body.failed:
                rf = _Frame(rescue=False, pending=bool(block.always))
                yield from self._gen_nodes(batch, block.rescue, [host], [*frames, rf])
                pending = host in rf.failed
        else:
            pending = host in body.failed
        if block.always and host not in self.unreachable and host not in batch.ended:
            af = _Frame(rescue=False)
            yield from self._gen_nodes(batch, block.always, [host], [*frames, af])
            pending = pending or host in af.failed
        if pending:
            self._fail_host(batch, host, frames, count=False)

    def _gen_handlers(
        self, batch: _Batch, host: str, frames: list[_Frame]
    ) -> Generator[Task, TaskResult, None]:
        for i, handler in enumerate(batch.play.handlers):
            if i in batch.notified.get(host, ()) and self._alive(batch, host, frames):
                batch.notified[host].discard(i)
                yield from self._gen_task(batch, handler, host, frames, handler=True)

    # -- results ---------------------------------------------------------------------------

    def _registered(self, result: dict[str, Any]) -> dict[str, Any]:
        return {
            k: v
            for k, v in result.items()
            if not k.startswith("_ansible_") and k not in _RESULT_INTERNAL
        }

    def _process(self, batch: _Batch, res: TaskResult, frames: list[_Frame]) -> None:
        host, task, r = res.host, res.task, res.result
        reg = task.kw.get("register")
        if res.status == "unreachable":
            if res.ignored:
                self.stats.increment("ok", host)
                self.stats.increment("ignored", host)
            else:
                self.unreachable.add(host)
                self.stats.increment("unreachable", host)
            if reg:
                self._runtime(host)[str(reg)] = self._registered(r)
            self.cb.result(res)
            return
        if reg:
            self._runtime(host)[str(reg)] = self._registered(r)
        if res.status == "failed":
            if res.ignored:
                self.stats.increment("ok", host)
                self.stats.increment("ignored", host)
                if r.get("changed"):
                    self.stats.increment("changed", host)
            else:
                if frames and frames[-1].rescue:
                    self.stats.increment("rescued", host)
                else:
                    self.stats.increment("failures", host)
                self._fail_host(batch, host, frames)
            self.cb.result(res)
            return
        if res.status == "skipped":
            self.stats.increment("skipped", host)
            self.cb.result(res)
            return
        self.stats.increment("ok", host)
        if res.status == "changed":
            self.stats.increment("changed", host)
        facts = r.get("ansible_facts")
        if isinstance(facts, dict):
            if task.action in ("set_fact",):
                self._runtime(host).update(facts)
            else:
                self.facts.setdefault(host, {}).update(facts)
        if res.status == "changed":
            notify = task.kw.get("notify")
            if notify:
                names = notify if isinstance(notify, list) else [notify]
                wanted = {str(n) for n in names}
                pending = batch.notified.setdefault(host, set())
                for i, handler in enumerate(batch.play.handlers):
                    if wanted & {handler.name or "", *handler.listen}:
                        pending.add(i)
        self.cb.result(res)

    # -- execution (worker threads) --------------------------------------------------------

    def _execute(
        self, host: str, task: Task, module: Module, extra: Mapping[str, Any] | None
    ) -> TaskResult:
        tv = self.task_vars(host, task, extra)
        templar = Templar(tv)
        delegate = None
        try:
            if task.kw.get("delegate_to"):
                delegate = str(templar.template(task.kw["delegate_to"]))
            loop = task.kw.get("loop")
            if loop is not None:
                return self._execute_loop(host, task, module, tv, templar, delegate)
            cond = _first_failed_cond(templar, task.when)
        except TemplateError as exc:
            return self._template_failure(
                host, task, "Error while evaluating conditional", exc, module
            )
        if cond is not None:
            r = {
                "changed": False,
                "skipped": True,
                "skip_reason": "Conditional result was False",
                "false_condition": cond,
            }
            return TaskResult(
                host, task, r, "skipped", delegated_to=delegate, controller=module.controller
            )
        result = self._run_with_retries(host, task, module, tv, templar, delegate)
        return self._classify(host, task, module, result, delegate, tv)

    def _template_failure(
        self, host: str, task: Task, what: str, exc: Exception, module: Module
    ) -> TaskResult:
        msg = f"Task failed: {what}: {exc}"
        chain = [("Task failed.", task.path, task.line, task.col)]
        if task.src is not None and "when" in task.src.pos:
            _kl, _kc, vl, vc = task.src.pos["when"]
            chain.append((f"{what}: {exc}", task.path, vl, vc))
        r = {"failed": True, "msg": msg, "_fk_error": msg, "_fk_chain": chain}
        return TaskResult(
            host, task, r, "failed", ignored=self._ignore(task, host), controller=module.controller
        )

    def _ignore(self, task: Task, host: str) -> bool:
        return self._kw_bool(task, "ignore_errors", host)

    def _classify(
        self,
        host: str,
        task: Task,
        module: Module,
        result: dict[str, Any],
        delegate: str | None,
        tv: VarsView,
    ) -> TaskResult:
        if result.get("unreachable"):
            ignored = self._kw_bool(task, "ignore_unreachable", host)
            return TaskResult(
                host,
                task,
                result,
                "unreachable",
                ignored=ignored,
                delegated_to=delegate,
                controller=module.controller,
            )
        if task.kw.get("no_log"):
            if self._kw_bool(task, "no_log", host):
                result["_ansible_no_log"] = True
        if result.get("failed"):
            return TaskResult(
                host,
                task,
                result,
                "failed",
                ignored=self._ignore(task, host),
                delegated_to=delegate,
                controller=module.controller,
            )
        if result.get("skipped"):
            return TaskResult(
                host, task, result, "skipped", delegated_to=delegate, controller=module.controller
            )
        status = "changed" if result.get("changed") else "ok"
        return TaskResult(
            host, task, result, status, delegated_to=delegate, controller=module.controller
        )

    def _run_with_retries(
        self,
        host: str,
        task: Task,
        module: Module,
        tv: VarsView,
        templar: Templar,
        delegate: str | None,
        loop_vars: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        until = task.kw.get("until")
        retries_raw = task.kw.get("retries")
        delay_raw = task.kw.get("delay")
        try:
            retries = (
                int(templar.template(retries_raw))
                if retries_raw is not None
                else (3 if until is not None else 0)
            )
            delay = float(templar.template(delay_raw)) if delay_raw is not None else 5.0
        except (TemplateError, TypeError, ValueError) as exc:
            return {"failed": True, "changed": False, "msg": f"invalid retries/delay: {exc}"}
        total = max(retries, 0) + 1
        if until is None and retries_raw is None:
            total = 1
        reg = task.kw.get("register")
        result: dict[str, Any] = {}
        for attempt in range(1, total + 1):
            result = self._run_once(host, task, module, tv, templar, delegate)
            if result.get("unreachable"):
                return result
            result = self._apply_when_rules(task, result, tv, reg)
            if total > 1:
                result["attempts"] = attempt
                check_view = tv.with_layer({str(reg): result}) if reg else tv
                if until is not None:
                    try:
                        done = (
                            Templar(check_view).condition(until)
                            if not isinstance(until, list)
                            else all(Templar(check_view).condition(u) for u in until)
                        )
                    except TemplateError as exc:
                        result["failed"] = True
                        result["msg"] = f"The conditional check '{until}' failed: {exc}"
                        return result
                else:
                    done = not result.get("failed")
                if done:
                    return result
                if attempt < total:
                    self._emit_retry(host, task, attempt, total, result)
                    if delay > 0:
                        time.sleep(delay)
        if total > 1:
            result["attempts"] = total - 1
            result["failed"] = True
        return result

    def _apply_when_rules(
        self, task: Task, result: dict[str, Any], tv: VarsView, reg: Any
    ) -> dict[str, Any]:
        cw = task.kw.get("changed_when")
        fw = task.kw.get("failed_when")
        if (cw is None and fw is None) or result.get("_fk_error"):
            return result
        view = tv.with_layer({str(reg): result}) if reg else tv
        t = Templar(view)
        try:
            if cw is not None:
                conds = cw if isinstance(cw, list) else [cw]
                result["changed"] = all(t.condition(c) for c in conds)
                view = tv.with_layer({str(reg): result}) if reg else tv
                t = Templar(view)
            if fw is not None:
                conds = fw if isinstance(fw, list) else [fw]
                failed = all(t.condition(c) for c in conds)
                if failed and not result.get("failed"):
                    # the module succeeded: ansible reports it as the action's failure
                    result["_fk_action_failed"] = True
                result["failed_when_result"] = failed
                result["failed"] = failed
        except TemplateError as exc:
            result["failed"] = True
            result["msg"] = f"Task failed: Error while evaluating conditional: {exc}"
            result["_fk_error"] = result["msg"]
        return result

    def _module_args(self, task: Task, templar: Templar) -> dict[str, Any]:
        raw_keys = RAW_ARGS.get(task.action, ())
        args: dict[str, Any] = {}
        for k, v in task.args.items():
            if k in raw_keys:
                args[k] = v
                continue
            try:
                value = templar.template(v)
            except TemplateError as exc:
                raise _ArgError(
                    f"Finalization of task args for 'ansible.builtin.{task.action}'",
                    k,
                    f"Error while resolving value for '{k}': {exc}",
                ) from None
            if value == OMIT:
                continue
            args[k] = value
        return args

    def _environment(self, task: Task, templar: Templar) -> dict[str, str] | None:
        raw = task.kw.get("environment")
        if not raw:
            return None
        items = raw if isinstance(raw, list) else [raw]
        env: dict[str, str] = {}
        for item in items:
            value = templar.template(item)
            if not isinstance(value, dict):
                raise ModuleError("environment must be a dictionary")
            env.update({str(k): str(v) for k, v in value.items()})
        return env

    def _become(self, task: Task, play: Play | None, tv: VarsView) -> Become | None:
        become = task.kw.get("become")
        if become is None:
            become = tv.get("ansible_become")
        if not become or not to_bool(Templar(tv).template(become)):
            return None
        user = task.kw.get("become_user") or tv.get("ansible_become_user") or "root"
        method = task.kw.get("become_method") or tv.get("ansible_become_method") or "sudo"
        return Become(user=str(Templar(tv).template(user)), method=str(method))

    def _run_once(
        self,
        host: str,
        task: Task,
        module: Module,
        tv: VarsView,
        templar: Templar,
        delegate: str | None,
    ) -> dict[str, Any]:
        try:
            args = self._module_args(task, templar)
        except _ArgError as exc:
            msg = f"Task failed: {exc.full}"
            chain = [("Task failed.", task.path, task.line, task.col)]
            src = task.src
            if src is not None and task.mod_key in src.pos:
                kl, kc, vl, vc = src.pos[task.mod_key]
                chain.append((f"{exc.stage} failed.", task.path, kl, kc))
                value = src.get(task.mod_key)
                if isinstance(value, Located) and exc.key in value.pos:
                    _a, _b, vl, vc = value.pos[exc.key]
                chain.append((exc.detail, task.path, vl, vc))
            return {"failed": True, "msg": msg, "_fk_error": msg, "_fk_chain": chain}
        try:
            params = validate(module, args)
        except ModuleError as exc:
            return {"failed": True, "changed": False, "msg": str(exc)}
        check = self.opts.check
        cm = task.kw.get("check_mode")
        if cm is not None:
            check = to_bool(templar.template(cm))
        conn_host = delegate or host
        forced = task.kw.get("connection")
        try:
            if delegate is not None and delegate != host:
                dv: Mapping[str, Any] = (
                    self.host_view(delegate, None) if delegate in self.inv.hosts else {}
                )
                conn = self.connection(delegate, dv, forced)
            else:
                conn = self.connection(conn_host, tv, forced)
        except PlaybookError as exc:
            return {"failed": True, "changed": False, "msg": str(exc)}
        if check and not module.check_mode:
            return {
                "changed": False,
                "skipped": True,
                "msg": "This module does not support check mode",
            }
        try:
            env = self._environment(task, templar)
        except (ModuleError, TemplateError) as exc:
            return {"failed": True, "changed": False, "msg": str(exc)}
        ctx = ModuleContext(
            host=host,
            conn=conn,
            check=check,
            become=self._become(task, None, tv),
            variables=tv,
            verbosity=self.opts.verbosity,
            evaluate=templar.evaluate,
            remote_python=str(tv.get("ansible_python_interpreter") or "python3")
            if not conn.local
            else "python3",
            task_name=task.display_name(),
            env=env,
            diff=(
                self._kw_bool(task, "diff", host)
                if task.kw.get("diff") is not None
                else self.opts.diff
            ),
            no_log=self._kw_bool(task, "no_log", host) if task.kw.get("no_log") else False,
        )
        try:
            result = module.run(ctx, params)
        except Unreachable as exc:
            return {"unreachable": True, "changed": False, "msg": f"Task failed: {exc}"}
        except CommandNotFound as exc:
            return {"failed": True, "changed": False, "msg": str(exc)}
        except ModuleError as exc:
            return {"failed": True, "changed": False, "msg": str(exc)}
        except TemplateError as exc:
            msg = f"Task failed: {exc}"
            return {"failed": True, "changed": False, "msg": msg, "_fk_error": msg}
        except OSError as exc:
            return {"failed": True, "changed": False, "msg": f"{type(exc).__name__}: {exc}"}
        except Exception as exc:  # noqa: BLE001 - a crashing module fails its host, as ansible
            return {
                "failed": True,
                "changed": False,
                "msg": f"MODULE FAILURE: {type(exc).__name__}: {exc}",
            }
        result.setdefault("changed", False)
        return result

    def _execute_loop(
        self,
        host: str,
        task: Task,
        module: Module,
        tv: VarsView,
        templar: Templar,
        delegate: str | None,
    ) -> TaskResult:
        loop = task.kw.get("loop")
        items = templar.template(loop)
        if isinstance(items, str):
            items = [items] if task.kw.get("_with") != "items" else [items]
        if isinstance(items, dict):
            raise TemplateError(
                "Invalid data passed to 'loop', it requires a list, got this "
                f"instead: {items}. Hint: If you passed a list/dict of just one "
                "element, try adding wantlist=True to your lookup invocation "
                "or use q/query instead of lookup."
            )
        if task.kw.get("_with") == "items":
            flat: list[Any] = []
            for it in items or []:
                flat.extend(it if isinstance(it, list) else [it])
            items = flat
        lc = task.kw.get("loop_control") or {}
        loop_var = str(lc.get("loop_var", "item"))
        index_var = lc.get("index_var")
        label_tpl = lc.get("label")
        results: list[dict[str, Any]] = []
        statuses: list[tuple[str, dict[str, Any]]] = []
        pause = float(lc.get("pause") or 0)
        for i, item in enumerate(items or []):
            layer: dict[str, Any] = {loop_var: item, "ansible_loop_var": loop_var}
            if index_var:
                layer[str(index_var)] = i
            view = tv.with_layer(layer)
            t = Templar(view)
            cond = _first_failed_cond(t, task.when)
            if cond is not None:
                r: dict[str, Any] = {
                    "changed": False,
                    "skipped": True,
                    "skip_reason": "Conditional result was False",
                    "false_condition": cond,
                    loop_var: item,
                    "ansible_loop_var": loop_var,
                }
                if label_tpl is not None:
                    r["_ansible_item_label"] = t.template(label_tpl)
                results.append(r)
                statuses.append(("skipped", r))
                continue
            r = self._run_with_retries(host, task, module, view, t, delegate)
            r[loop_var] = item
            r["ansible_loop_var"] = loop_var
            if index_var:
                r[str(index_var)] = i
            if label_tpl is not None:
                r["_ansible_item_label"] = t.template(label_tpl)
            results.append(r)
            st = (
                "unreachable"
                if r.get("unreachable")
                else "failed"
                if r.get("failed")
                else "skipped"
                if r.get("skipped")
                else ("changed" if r.get("changed") else "ok")
            )
            statuses.append((st, r))
            if pause and i < len(items) - 1:
                time.sleep(pause)
        agg: dict[str, Any] = {
            "results": results,
            "changed": any(r.get("changed") for r in results),
        }
        if results and all(r.get("skipped") for r in results):
            agg["skipped"] = True
            agg["msg"] = "All items skipped"
            return TaskResult(
                host,
                task,
                agg,
                "skipped",
                items=statuses,
                delegated_to=delegate,
                controller=module.controller,
            )
        if not results:
            agg["skipped"] = True
            agg["skipped_reason"] = "No items in the list"
            return TaskResult(
                host, task, agg, "skipped", delegated_to=delegate, controller=module.controller
            )
        if any(r.get("failed") for r in results):
            agg["failed"] = True
            agg["msg"] = "One or more items failed"
        else:
            agg["msg"] = "All items completed"
        if any(r.get("unreachable") for r in results):
            # ansible tries every item, prints each as failed, then the host as UNREACHABLE
            agg["unreachable"] = True
            agg["results"] = [
                {**r, "exception": "(traceback unavailable)"} if r.get("unreachable") else r
                for r in results
            ]
            return TaskResult(
                host,
                task,
                agg,
                "unreachable",
                ignored=self._kw_bool(task, "ignore_unreachable", host),
                items=statuses,
                delegated_to=delegate,
                controller=module.controller,
            )
        facts: dict[str, Any] = {}
        for r in results:
            f = r.get("ansible_facts")
            if isinstance(f, dict):
                facts.update(f)
        if facts:
            agg["ansible_facts"] = facts
        if agg.get("failed"):
            return TaskResult(
                host,
                task,
                agg,
                "failed",
                ignored=self._ignore(task, host),
                items=statuses,
                delegated_to=delegate,
                controller=module.controller,
            )
        return TaskResult(
            host,
            task,
            agg,
            "changed" if agg["changed"] else "ok",
            items=statuses,
            delegated_to=delegate,
            controller=module.controller,
        )
