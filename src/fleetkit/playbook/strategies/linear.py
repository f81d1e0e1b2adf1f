"""The linear strategy: every host runs the same task before any host moves on.

The driver keeps each host's next step from the iterator and runs the lowest position in the
play for all hosts at it (ansible's lockstep); results are reported in host order.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from fleetkit.playbook.events import TaskResult
from fleetkit.playbook.iterator import PlayIterator, Step, Walker
from fleetkit.playbook.playbook import IncludeRole, IncludeTasks, Task
from fleetkit.playbook.strategies import StrategyBase, exceeds_max_fail

__all__ = ["LinearStrategy"]


class LinearStrategy(StrategyBase):
    """ansible's linear strategy."""

    def run(self, it: PlayIterator) -> None:
        """Run the batch in lockstep."""
        self.ex.retries.ordered = True
        walkers: dict[str, Walker] = {}
        pending: dict[str, Step] = {}
        stalled: dict[str, Any] = {}  # unreachable hosts: what their walker gets on resuming
        cursor: tuple[int, ...] | None = None
        for h in it.hosts:
            if not it.alive(h):
                continue
            gen = it.walk(h)
            walkers[h] = gen
            self._advance(it, walkers, pending, h, None, first=True)
        while pending:
            if it.stop or it.end_play:
                break
            for h in [h for h in stalled if h not in it.unreachable]:
                self._advance(it, walkers, pending, h, stalled.pop(h))  # errors cleared
            for h in list(pending):
                if h in stalled:
                    continue
                # a host failed (any_errors_fatal, max_fail) while it waited: its walker
                # leaves the section it was in (to a rescue/always or out of the play)
                while h in pending and not it.runnable(h, pending[h]):
                    self._advance(it, walkers, pending, h, None)
            live = {h: s for h, s in pending.items() if h not in stalled}
            if not live:
                break
            # ansible's lockstep cursor only moves forward: a host back from clear_host_errors
            # behind it runs once the others are through (then the cursor wraps around)
            ahead = [s.key for s in live.values() if cursor is None or s.key > cursor]
            key = min(ahead) if ahead else min(s.key for s in live.values())
            cursor = key
            first = next(h for h in it.hosts if h in live and live[h].key == key)
            step = live[first]
            # hosts at the same place run the same node (per-host expansions may differ)
            group = [h for h in it.hosts if h in live and live[h].node is step.node]
            sent = self._run_step(it, step, group)
            for h in group:
                if h in it.unreachable:
                    # as ansible's iterator, an unreachable host keeps its place in the play:
                    # meta: clear_host_errors lets it go on from there
                    stalled[h] = sent.get(h)
                    continue
                self._advance(it, walkers, pending, h, sent.get(h))
        for gen in walkers.values():
            gen.close()

    def _advance(
        self,
        it: PlayIterator,
        walkers: dict[str, Walker],
        pending: dict[str, Step],
        host: str,
        value: Any,
        first: bool = False,
    ) -> None:
        gen = walkers.get(host)
        if gen is None:
            pending.pop(host, None)
            return
        try:
            pending[host] = next(gen) if first else gen.send(value)
        except StopIteration:
            pending.pop(host, None)
            walkers.pop(host, None)

    def _run_step(self, it: PlayIterator, step: Step, hosts: list[str]) -> dict[str, Any]:
        node = step.node
        if step.kind == "meta":
            assert isinstance(node, Task)
            return dict(self.meta(it, node, hosts, step.handler))
        if step.kind in ("include", "include_role"):
            assert isinstance(node, (IncludeTasks, IncludeRole))
            # run_once on an include: only the first host processes it (and gets its tasks)
            if self.ex.kw_bool(node, "run_once", hosts[0]):
                hosts = hosts[:1]
        if step.kind == "include":
            assert isinstance(node, IncludeTasks)
            sent: dict[str, Any] = {}
            for idx, (_fname, nodes, fhosts) in enumerate(self.include_files(it, node, hosts)):
                for h in fhosts:
                    sent.setdefault(h, []).append((idx, nodes))
            self._include_fatal(it, node, hosts)
            return sent
        if step.kind == "include_role":
            assert isinstance(node, IncludeRole)
            got = self.include_roles(it, node, hosts)
            self._include_fatal(it, node, hosts)
            return got
        assert isinstance(node, Task)
        self.run_task(it, node, hosts, step.handler)
        return {}

    def _include_fatal(
        self, it: PlayIterator, node: IncludeTasks | IncludeRole, hosts: list[str]
    ) -> None:
        failed = list(self.include_failures)
        if failed:
            self._fatal(it, node, hosts, failed, [], False, True)

    def run_task(self, it: PlayIterator, task: Task, hosts: list[str], handler: bool) -> None:
        """Run ``task`` on ``hosts`` and apply any_errors_fatal and max_fail_percentage."""
        ctx = self.ctx
        _first, module = self.for_host(task, hosts[0])
        run_once = module.run_once or self.ex.kw_bool(task, "run_once", hosts[0])
        targets = hosts[:1] if run_once else hosts
        self.cb.task_start(task, self.ex.task_name(task, targets[0]), handler)
        for h in targets:
            self.cb.runner_start(h, task)
        futures: list[tuple[str, Future[TaskResult]]] = [
            (h, ctx.pool.submit(self.ex.execute, h, *self.for_host(task, h), None)) for h in targets
        ]
        results: list[TaskResult] = []
        for h, fut in futures:
            res = self.ex.retries.await_host(h, fut)
            results.append(res)
            self.process(it, res)
            if run_once:
                # ansible gives a run_once result to every host of the batch not unreachable
                # (not only those at this task: an include may have reached one host)
                for other in it.hosts:
                    if other != res.host and other not in ctx.unreachable:
                        self.share_run_once(res, other)
        failed_now = [r.host for r in results if r.status == "failed" and not r.ignored]
        # ansible's any_errors_fatal looks at unreachable results even when ignore_unreachable
        unreach_now = [r.host for r in results if r.status == "unreachable"]
        self._fatal(it, task, hosts, failed_now, unreach_now, run_once, bool(results))

    def _fatal(
        self,
        it: PlayIterator,
        task: Task | IncludeTasks | IncludeRole,
        hosts: list[str],
        failed_now: list[str],
        unreach_now: list[str],
        run_once: bool,
        any_results: bool,
    ) -> None:
        """any_errors_fatal and max_fail_percentage after a task's (or include's) results."""
        play = it.play
        ctx = self.ctx
        aef = (
            play.any_errors_fatal or self.ex.kw_bool(task, "any_errors_fatal", hosts[0]) or run_once
        ) and not self.ex.kw_bool(task, "ignore_errors", hosts[0])
        in_block = bool(it.states[hosts[0]].frames)
        if aef and (failed_now or unreach_now) and not in_block:
            for h in it.hosts:
                if h not in ctx.failed and h not in ctx.unreachable:
                    ctx.failed.add(h)
                    it.failed_here.add(h)
        elif aef and (failed_now or unreach_now):
            # inside a block ansible marks the other hosts failed *in the block*: they go on to
            # its rescue/always sections (or out of the play when there are none), and count as
            # failed from the next batch or play on even when a rescue caught them
            for h in hosts:
                if h not in failed_now and h not in ctx.unreachable:
                    frames = it.states[h].frames
                    frames[-1].failed = True
                    ctx.aef_marked.add(h)
                    if not any(f.pending for f in frames):
                        it.failed_here.add(h)
        if play.max_fail_percentage is not None and any_results:
            if exceeds_max_fail(len(it.failed_here), len(it.hosts), play.max_fail_percentage):
                for h in it.hosts:
                    if h not in ctx.unreachable:
                        ctx.failed.add(h)
                        it.failed_here.add(h)
                self.cb.no_hosts_remaining()
                it.break_play = True
                it.stop = True
                self.cb.no_hosts_remaining()
