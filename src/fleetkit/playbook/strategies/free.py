"""The free strategy: each host runs its next task as soon as a fork is free.

The driver keeps at most ``forks`` tasks in flight and feeds each result back to its host's
walker as it completes, so a fast host never waits for a slow one.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from fleetkit.playbook.errors import PlaybookError
from fleetkit.playbook.events import TaskResult
from fleetkit.playbook.iterator import PlayIterator, Step, Walker
from fleetkit.playbook.playbook import IncludeRole, IncludeTasks, Task
from fleetkit.playbook.strategies import StrategyBase

__all__ = ["FreeStrategy"]


class FreeStrategy(StrategyBase):
    """ansible's free strategy."""

    # how many hosts may have started at once (None: all; host_pinned: forks)
    pinned = False

    def run(self, it: PlayIterator) -> None:
        """Run the batch, each host at its own pace."""
        self.ex.retries.ordered = False
        forks = max(1, self.ctx.opts.forks)
        hosts = [h for h in it.hosts if it.alive(h)]
        order = {h: i for i, h in enumerate(hosts)}
        walkers: dict[str, Walker] = {}
        nxt: dict[str, Task] = {}
        waiting = list(hosts)

        def start_hosts() -> None:
            while waiting and (not self.pinned or len(walkers) < forks):
                h = waiting.pop(0)
                walkers[h] = it.walk(h)
                self._advance(it, walkers, nxt, h, None, first=True)

        start_hosts()
        inflight: dict[Future[TaskResult], str] = {}
        completed: list[Future[TaskResult]] = []
        owner: dict[Future[TaskResult], str] = {}

        def reap(block: bool) -> None:
            if not inflight:
                return
            done, _ = wait(
                list(inflight), timeout=None if block else 0, return_when=FIRST_COMPLETED
            )
            for fut in sorted(done, key=lambda f: order[inflight[f]]):
                owner[fut] = inflight.pop(fut)
                completed.append(fut)

        while nxt or inflight or completed:
            # one pass over the hosts: each unblocked host queues its next task, waiting for a
            # free fork when all are busy (results are handled after the pass, as ansible does)
            for h in hosts:
                if h in nxt:
                    while len(inflight) >= forks:
                        reap(block=True)
                    task = nxt.pop(h)
                    task_h, module = self.for_host(task, h)
                    if module.run_once:
                        raise PlaybookError(
                            f"The '{task.action}' module bypasses the host loop, which is "
                            "currently not supported in the free strategy and would instead "
                            "execute for every host in the inventory list.",
                            hint=f"{task.path}:{task.line}",
                        )
                    fut = self.ctx.pool.submit(self.ex.execute, h, task_h, module, None)
                    inflight[fut] = h
            reap(block=not completed)
            for fut in completed:
                h = owner.pop(fut)
                self.process(it, fut.result())
                self._advance(it, walkers, nxt, h, None)
            completed.clear()
            start_hosts()
        for gen in walkers.values():
            gen.close()

    def _advance(
        self,
        it: PlayIterator,
        walkers: dict[str, Walker],
        nxt: dict[str, Task],
        host: str,
        value: Any,
        first: bool = False,
    ) -> None:
        """Move ``host``'s walker to its next task (meta and includes are done on the way)."""
        gen = walkers.get(host)
        if gen is None:
            return
        try:
            step = next(gen) if first else gen.send(value)
            while True:
                sent = self._inline(it, step, host)
                if sent is _TASK:
                    assert isinstance(step.node, Task)
                    self.cb.task_start(step.node, self.ex.task_name(step.node, host), step.handler)
                    self.cb.runner_start(host, step.node)
                    nxt[host] = step.node
                    return
                step = gen.send(sent)
        except StopIteration:
            # (host_pinned: the host's slot frees up when its walker ends)
            walkers.pop(host, None)

    def _inline(self, it: PlayIterator, step: Step, host: str) -> Any:
        node = step.node
        if not it.runnable(host, step):
            return None
        if step.kind == "meta":
            assert isinstance(node, Task)
            return self.meta(it, node, [host], step.handler).get(host)
        if step.kind == "include":
            assert isinstance(node, IncludeTasks)
            files = self.include_files(it, node, [host])
            return [(i, nodes) for i, (_fname, nodes, fhosts) in enumerate(files) if fhosts]
        if step.kind == "include_role":
            assert isinstance(node, IncludeRole)
            return self.include_roles(it, node, [host]).get(host)
        return _TASK


_TASK = object()
