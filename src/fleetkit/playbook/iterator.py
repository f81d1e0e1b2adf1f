"""PlayIterator: where each host of a batch is in the play (ansible's PlayIterator/HostState).

ONE walker serves every strategy: :meth:`PlayIterator.walk` is a generator per host that
yields the next :class:`Step` (a task, a ``meta``, an ``include_tasks``/``include_role`` to
expand) and is resumed with what the strategy did with it. Blocks push a :class:`Frame` on
the host's state: a failure marks the innermost frame, which ends the section for that host
and sends it to the block's ``rescue`` then ``always``. Every step carries a position key
(tuples ordered as the play reads); the linear strategy runs the lowest position of all
hosts in lockstep, the free strategies run each host's next step as soon as it can.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from fleetkit.playbook.errors import PlaybookError
from fleetkit.playbook.playbook import (
    Block,
    Handler,
    IncludeRole,
    IncludeTasks,
    Node,
    Play,
    RoleRef,
    Task,
    flat_handlers,
)

__all__ = ["Frame", "HostState", "Step", "PlayIterator", "Walker", "tag_ok", "meta_action"]

Key = tuple[int, ...]


class Frame:
    """One section of a block being run for a host: whether the host failed in it, whether a
    rescue section catches a failure here (``rescue``), and whether anything of the block
    (rescue or always) still runs for the host if it fails here (``pending``)."""

    __slots__ = ("failed", "pending", "rescue")

    def __init__(self, rescue: bool, pending: bool = False) -> None:
        self.failed = False
        self.rescue = rescue
        self.pending = pending or rescue


@dataclass(slots=True)
class HostState:
    """One host's place in the play: its open block sections and whether it ended."""

    host: str
    frames: list[Frame] = field(default_factory=list)
    ended: bool = False
    # handler indexes notified and not yet run
    notified: set[int] = field(default_factory=set)
    # notification names saved until the next flush (ansible resolves them then, so the
    # last handler loaded by that time wins)
    notifications: list[str] = field(default_factory=list)
    # the host is running handlers: a notification reaches its handlers at once
    flushing: bool = False
    # how many times meta: clear_host_errors ran (a block's pending failure is forgotten)
    cleared: int = 0
    # --start-at-task: the uid of the task this host starts at (tasks before it are skipped)
    skip_until: int | None = None
    # meta: end_role: the role whose remaining tasks this host skips
    ended_role: RoleRef | None = None
    # the roles whose tasks the host is in (outermost first): leaving one completes it
    open_roles: list[RoleRef] = field(default_factory=list)


@dataclass(slots=True)
class Step:
    """What a host does next: kind is task, meta, include or include_role."""

    kind: str
    node: Task | IncludeTasks | IncludeRole
    key: Key
    handler: bool = False
    # a handler run for a failed host too (force_handlers)
    forced: bool = False


Walker = Generator[Step, Any, None]


def meta_action(task: Task) -> str:
    """The ``meta:`` action of a task (``flush_handlers``, ``end_play`` ...)."""
    return str(task.args.get("_raw_params") or task.args.get("free_form") or "")


def tag_ok(tags: list[str], want: list[str], skip: list[str]) -> bool:
    """Whether a task with ``tags`` runs under ``--tags want --skip-tags skip``."""
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


def find_start_task(play: Play, pattern: str) -> int | None:
    """``--start-at-task``: the uid of the first task (in play order, not in rescue sections)
    whose name is ``pattern`` or matches it as a shell pattern."""

    def scan(nodes: list[Node]) -> int | None:
        for n in nodes:
            if isinstance(n, Block):
                found = scan(n.block) or scan(n.always)
                if found is not None:
                    return found
                continue
            if isinstance(n, Task):
                name = n.name or ""
                full = name or n.action
            elif isinstance(n, IncludeTasks):
                name = n.name or ""
                full = name or "include_tasks"
            else:
                name = n.name or ""
                full = name or "include_role"
            if (name and fnmatch.fnmatch(name, pattern)) or full == pattern:
                return n.uid
            if fnmatch.fnmatch(full, pattern):
                return n.uid
        return None

    return scan(play.tasks)


# a handler's name as notifications see it (templated; None: unusable)
NameOf = Callable[[Handler], "str | None"]


def _plain_name(h: Handler) -> str | None:
    return h.name


def _no_debug(_msg: str) -> None:
    return None


def _no_notify(_handler: Task, _host: str) -> None:
    return None


def _no_verbose(_msg: str, _level: int) -> None:
    return None


def handlers_for(handlers: list[Handler], name: str, name_of: NameOf = _plain_name) -> list[int]:
    """The handlers a notification reaches, as ansible 2.19 searches them: the blocks of
    handlers from the last loaded, each block's handlers in order; the first handler with
    that name (also as "role : name"), then every listener (one per name; a role's handler
    also listens as "role : topic")."""
    groups: list[list[int]] = []
    for i, h in enumerate(handlers):
        if groups and handlers[groups[-1][0]].hblock == h.hblock:
            groups[-1].append(i)
        else:
            groups.append([i])
    order = [i for g in reversed(groups) for i in g]
    out: list[int] = []
    for i in order:
        h = handlers[i]
        hname = name_of(h) if h.name else None
        if not hname:
            continue
        names = {hname}
        if h.role is not None:
            names |= {f"{h.role.name} : {hname}", f"{_short(h.role.name)} : {hname}"}
        if name in names:
            out.append(i)
            break
    seen: set[str] = set()
    for i in order:
        h = handlers[i]
        topics = set(h.listen)
        if h.role is not None:
            for topic in h.listen:
                topics |= {f"{h.role.name} : {topic}", f"{_short(h.role.name)} : {topic}"}
        if name in topics:
            if h.name and h.name in seen:
                continue
            seen.add(h.name or "")
            out.append(i)
    return out


def _never(_host: str) -> bool:
    return False


def _short(role: str) -> str:
    """A role's name without its collection (``ns.coll.role`` -> ``role``)."""
    return role.rsplit(".", 1)[-1]


_FACT_KEYWORDS = ("gather_subset", "gather_timeout", "fact_path")


def facts_task(play: Play) -> Task:
    """The implicit ``Gathering Facts`` task of a play (import_playbook's ``when`` on it)."""
    # the play's gather_subset / gather_timeout / fact_path are the setup module's arguments
    args = {k: play.keywords[k] for k in _FACT_KEYWORDS if play.keywords.get(k) is not None}
    t = Task(action="gather_facts", args=args, name="Gathering Facts", implicit=True)
    # as ansible's setup task, in a block of the play: the play's keywords, but never run_once
    t.kw = {k: v for k, v in play.kw.items() if k != "run_once"}
    t.when = list(play.included_when)
    t.path, t.line, t.col = play.path, play.line, 3
    return t


class PlayIterator:
    """The per-host states of one batch of a play and the walker over its tasks."""

    def __init__(
        self,
        play: Play,
        hosts: list[str],
        failed: set[str],
        unreachable: set[str],
        tags: list[str],
        skip_tags: list[str],
        gather_facts: bool,
        force_handlers: bool = False,
        start_at: int | None = None,
    ) -> None:
        self.play = play
        self.hosts = hosts
        self.states = {h: HostState(h, skip_until=start_at) for h in hosts}
        self.failed = failed
        self.unreachable = unreachable
        self.tags = tags
        self.skip_tags = skip_tags
        self.gather_facts = gather_facts
        self.force_handlers = force_handlers
        # one implicit facts task for every host (the linear strategy groups hosts by node)
        self._facts_task = facts_task(play) if gather_facts else None
        # ``gathering = smart``: hosts whose cached facts say they were gathered skip it
        self.facts_gathered: Callable[[str], bool] = _never
        # hosts whose failure counted during this batch (max_fail_percentage, batch stop)
        self.failed_here: set[str] = set()
        self.stop = False
        self.break_play = False
        self.end_play = False
        # how notifications see a handler's name (the strategy templates it)
        self.name_of: NameOf = _plain_name
        # role identity -> hosts a task of it ran for / that completed it (ansible's
        # _had_task_run and _completed: allow_duplicates: false skips a completed role)
        self.role_ran: dict[str, set[str]] = {}
        self.role_done: dict[str, set[str]] = {}
        # ansible's debug lines (ANSIBLE_DEBUG) of what the iterator decides
        self.debug: Callable[[str], None] = _no_debug
        # ansible's Display.v..vvvvvv lines (``NOTIFIED HANDLER`` ... at -vv)
        self.verbose: Callable[[str, int], None] = _no_verbose
        # a handler newly notified for a host (the callbacks' v2_playbook_on_notify)
        self.on_notify: Callable[[Task, str], None] = _no_notify

    # -- host state ------------------------------------------------------------------------

    def alive(self, host: str) -> bool:
        """Whether ``host`` still runs tasks in its current section."""
        if host in self.failed or host in self.unreachable:
            return False
        st = self.states[host]
        if st.ended:
            return False
        return not any(f.failed for f in st.frames)

    def runnable(self, host: str, step: Step) -> bool:
        """Whether ``host`` still runs ``step`` (alive, or a forced handler)."""
        if self.alive(host):
            return True
        return step.forced and self._forceable(self.states[host])

    def fail_host(self, host: str, count: bool = True) -> None:
        """Mark host failed in its innermost section (or the play). ``failed_here`` is what
        ansible's max_fail_percentage and batch checks count during the batch: a host whose
        failure leaves nothing of its blocks to run (no rescue, no always) counts at once; one
        caught by a rescue or always section does not count when that block ends (count=False).
        """
        frames = self.states[host].frames
        if count and not any(f.pending for f in frames):
            self.failed_here.add(host)
        if frames:
            frames[-1].failed = True
        else:
            self.failed.add(host)

    def in_rescue_frame(self, host: str) -> bool:
        """Whether a failure of ``host`` now is caught by a rescue section: the host is in the
        body of a block with one, at any depth (ansible's ``is_any_block_rescuing``)."""
        return any(f.rescue for f in self.states[host].frames)

    def notify(self, host: str, names: list[str], strict: bool = True) -> list[str]:
        """Notify handlers by name or ``listen`` topic for ``host``; a name that reaches no
        handler is ansible's error (``strict``, error_on_missing_handler) or is returned
        for the caller's warning."""
        st = self.states[host]
        missing: list[str] = []
        for want in names:
            found = handlers_for(self.play.handlers, want, self.name_of)
            if not found:
                msg = (
                    f"The requested handler '{want}' was not found in either the "
                    "main handlers list nor in the listening handlers list"
                )
                if strict:
                    raise PlaybookError(msg)
                missing.append(msg)
                continue
            if st.flushing:
                for i in found:
                    self._notify_handler(st, i)
            else:
                if want not in st.notifications:
                    st.notifications.append(want)
                self.verbose(f"Notification for handler {want} has been saved.", 2)
        return missing

    def resolve_notifications(self, host: str) -> None:
        """At a flush: the notifications saved for ``host`` reach the handlers loaded by now
        (ansible's flush_handlers, before its ``META:`` line)."""
        st = self.states[host]
        for want in st.notifications:
            for i in handlers_for(self.play.handlers, want, self.name_of):
                self._notify_handler(st, i)
        st.notifications.clear()

    def _notify_handler(self, st: HostState, i: int) -> None:
        if i in st.notified:
            return
        st.notified.add(i)
        h = self.play.handlers[i]
        name = self.name_of(h) or h.name or ""
        if h.role is not None:
            name = f"{h.role.name} : {name}"
        self.verbose(f"NOTIFIED HANDLER {name} for {st.host}", 2)
        if isinstance(h, Task):
            self.on_notify(h, st.host)

    def note_role_ran(self, host: str, role: RoleRef) -> None:
        """A task of ``role`` ran (ok or failed) for ``host``."""
        self.role_ran.setdefault(role.identity, set()).add(host)

    def _enter_role(self, st: HostState, role: RoleRef | None) -> None:
        """Before a node of ``role``: the open roles it is not inside are complete for the
        host (ansible's implicit role_complete after each role's tasks)."""
        # (each import or inclusion of a role is its own instance; the roles it runs inside
        # are known by identity)
        outer = {p.identity for p in role.chain} if role is not None else set()
        while st.open_roles and not (
            st.open_roles[-1] is role or st.open_roles[-1].identity in outer
        ):
            self._complete_role(st, st.open_roles.pop())
        if role is not None and not any(r is role for r in st.open_roles):
            st.open_roles.append(role)

    def _complete_role(self, st: HostState, role: RoleRef) -> None:
        if st.host in self.role_ran.get(role.identity, ()):
            self.role_done.setdefault(role.identity, set()).add(st.host)

    def _role_skipped(self, st: HostState, role: RoleRef | None) -> bool:
        return (
            role is not None
            and not role.allow_duplicates
            and st.host in self.role_done.get(role.identity, ())
        )

    def _halted(self) -> bool:
        return self.stop or self.end_play

    # -- the walker ------------------------------------------------------------------------

    def walk(self, host: str) -> Walker:
        """The steps of ``host`` through the play: facts, then each section (pre_tasks, tasks,
        post_tasks) followed by a flush of its notified handlers."""
        st = self.states[host]
        if self._facts_task is not None and not self.facts_gathered(host):
            yield Step("task", self._facts_task, (0,))
        sections = self.play.sections or [self.play.tasks]
        for k, section in enumerate(sections):
            if self._halted() or not self.alive(host):
                return
            yield from self._nodes(st, section, (1, k))
            self._enter_role(st, None)
            if not self._halted():
                # force_handlers: the flush is the section's ``always`` in ansible
                yield from self._implicit_flush(st, (1, k, len(section)), self.force_handlers)

    def _nodes(self, st: HostState, nodes: list[Node], prefix: Key) -> Walker:
        for i, node in enumerate(nodes):
            if self._halted() or not self.alive(st.host):
                return
            key = (*prefix, i)
            if st.skip_until is not None and not isinstance(node, Block):
                if node.uid != st.skip_until:
                    continue
                st.skip_until = None
            if st.ended_role is not None and not isinstance(node, Block):
                if node.role is st.ended_role:
                    continue
                st.ended_role = None
            if not isinstance(node, Block):
                self._enter_role(st, node.role)
                if self._role_skipped(st, node.role):
                    continue
            if isinstance(node, Task):
                if node.action == "meta":
                    what = meta_action(node)
                    if what != "flush_handlers" and not self._tags(node.tags):
                        continue
                    ran = yield Step("meta", node, key)
                    if what == "flush_handlers" and ran is not False and not self._halted():
                        yield from self._handlers(st, (*key, 0))
                elif self._tags(node.tags):
                    yield Step("task", node, key)
            elif isinstance(node, Block):
                yield from self._block(st, node, key)
            elif isinstance(node, IncludeTasks):
                if not self._tags(node.tags):
                    continue
                got = yield Step("include", node, key)
                for idx, included in got or ():
                    yield from self._nodes(st, included, (*key, idx))
            else:
                if not self._tags(node.tags):
                    continue
                got = yield Step("include_role", node, key)
                for idx, included in got or ():
                    yield from self._nodes(st, included, (*key, idx))

    def _block(self, st: HostState, block: Block, key: Key) -> Walker:
        body = Frame(rescue=bool(block.rescue), pending=bool(block.always))
        yield from self._section(st, body, block.block, (*key, 0))
        pending = False
        if block.rescue:
            if body.failed:
                rf = Frame(rescue=False, pending=bool(block.always))
                yield from self._section(st, rf, block.rescue, (*key, 1))
                pending = rf.failed
        else:
            pending = body.failed
        if block.always and not self.stop and st.host not in self.unreachable and not st.ended:
            af = Frame(rescue=False)
            mark = st.cleared
            yield from self._section(st, af, block.always, (*key, 2))
            # meta: clear_host_errors in the always section forgets the block's failure
            pending = af.failed if st.cleared != mark else (pending or af.failed)
        if pending:
            self.fail_host(st.host, count=False)

    def _section(self, st: HostState, frame: Frame, nodes: list[Node], key: Key) -> Walker:
        st.frames.append(frame)
        try:
            yield from self._nodes(st, nodes, key)
        finally:
            st.frames.pop()

    def _implicit_flush(self, st: HostState, prefix: Key, forced: bool) -> Walker:
        """The flush after a section: ansible's implicit ``meta: flush_handlers`` (tagged
        always and with the play's tags), skipped when no host has a notification."""
        if not self._tags(["always", *self.play.tags]):
            return
        if not any(s.notifications or s.notified for s in self.states.values()):
            self.debug(f"No handler notifications for {st.host}, skipping.")
            return
        self.resolve_notifications(st.host)
        self.debug(f"META: triggered running handlers for {st.host}")
        yield from self._handlers(st, prefix, forced)

    def _handlers(self, st: HostState, prefix: Key, forced: bool = False) -> Walker:
        # ansible 2.19: tags do not select handlers (a notified handler runs whatever its tags)
        self.resolve_notifications(st.host)
        st.flushing = True
        try:
            # (include_role during the flush may add handlers: the list can grow)
            for i, handler in enumerate(self.play.handlers):
                if self._halted():
                    return
                if i in st.notified and self._handler_runs(st, forced):
                    st.notified.discard(i)
                    yield from self._handler(st, handler, (*prefix, i), forced)
        finally:
            st.flushing = False

    def _handler(self, st: HostState, handler: Handler, key: Key, forced: bool) -> Walker:
        if not isinstance(handler, IncludeTasks):
            if handler.action != "meta":
                yield Step("task", handler, key, handler=True, forced=forced)
                return
            if meta_action(handler) == "flush_handlers":
                raise PlaybookError("flush_handlers cannot be used as a handler")
            yield Step("meta", handler, key, handler=True, forced=forced)
            return
        # a handler's include_tasks: every task it loads is notified for the hosts that
        # included it and runs at once, in order, before the next handler (ansible 2.19)
        got = yield Step("include", handler, key, handler=True, forced=forced)
        for idx, included in got or ():
            flat: list[Handler] = []
            flat_handlers(included, flat)
            for j, node in enumerate(flat):
                if self._halted() or not self._handler_runs(st, forced):
                    return
                yield from self._handler(st, node, (*key, idx, j), forced)

    def _handler_runs(self, st: HostState, forced: bool) -> bool:
        return self.alive(st.host) or (forced and self._forceable(st))

    def _forceable(self, st: HostState) -> bool:
        return st.host not in self.unreachable and not st.ended and not st.frames

    def _tags(self, tags: list[str]) -> bool:
        return tag_ok(tags, self.tags, self.skip_tags)
