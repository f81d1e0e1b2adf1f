"""``ansible-playbook --list-hosts / --list-tasks / --list-tags`` for loaded plays.

Hosts come from :func:`~fleetkit.playbook.patterns.select_play_hosts` (the run's own selection);
tasks are filtered by ``--tags`` / ``--skip-tags`` with :func:`tags_selected`, as ansible's
``filter_tagged_tasks`` does; ``--list-tags`` alone selects every task (``never`` included).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fleetkit.playbook.inventory import Inventory
from fleetkit.playbook.patterns import select_play_hosts
from fleetkit.playbook.playbook import Block, IncludeRole, IncludeTasks, Node, Play, Task

__all__ = ["ListRequest", "tags_selected", "render_listing"]


@dataclass(frozen=True, slots=True)
class ListRequest:
    """What to list and the run's selection flags (``limit`` already read from ``@file``)."""

    hosts: bool = False
    tasks: bool = False
    tags: bool = False
    limit: Sequence[str] | None = None
    only_tags: Sequence[str] = ()
    skip_tags: Sequence[str] = ()


def tags_selected(tags: Iterable[str], only: Sequence[str], skip: Sequence[str]) -> bool:
    """Whether a task with ``tags`` runs under ``--tags only --skip-tags skip`` (ansible's rules)."""
    tagset = set(tags) or {"untagged"}
    untagged = tagset == {"untagged"}
    want = set(only) or {"all"}
    if "always" in tagset or ("all" in want and "never" not in tagset):
        run = True
    elif tagset & want:
        run = True
    else:
        run = "tagged" in want and not untagged and "never" not in tagset
    if run and skip:
        skipset = set(skip)
        if "all" in skipset:
            run = "always" in tagset and "always" not in skipset
        elif tagset & skipset:
            run = False
        elif "tagged" in skipset and not untagged:
            run = False
    return run


def _task_label(node: Task | IncludeTasks | IncludeRole) -> str:
    if isinstance(node, Task):
        if node.name:
            return f"{node.role.name} : {node.name}" if node.role else node.name
        if node.mod_key and node.mod_key not in ("action", "local_action"):
            return node.mod_key
        return node.action
    if node.name:
        return f"{node.role.name} : {node.name}" if node.role else node.name
    return "include_role" if isinstance(node, IncludeRole) else "include_tasks"


def _walk(nodes: Iterable[Node]) -> Iterable[Task | IncludeTasks | IncludeRole]:
    for node in nodes:
        if isinstance(node, Block):
            # ansible-playbook lists a block's ``block`` part only (not rescue/always)
            yield from _walk(node.block)
        else:
            yield node


def render_listing(
    inv: Inventory, books: Sequence[tuple[str, Sequence[Play]]], req: ListRequest
) -> str:
    """The text ansible-playbook prints for the list flags (one section per playbook)."""
    only = list(req.only_tags)
    if req.tags and not only and not req.skip_tags:
        only = ["never", "all"]
    out: list[str] = []
    for path, plays in books:
        out.append(f"\nplaybook: {path}")
        for idx, play in enumerate(plays, 1):
            hosts = play.hosts if isinstance(play.hosts, list) else [play.hosts]
            play_tags = sorted(set(play.tags))
            msg = f"\n  play #{idx} ({','.join(hosts)}): {play.name}\tTAGS: [{','.join(play_tags)}]"
            if req.hosts:
                limit = list(req.limit) if req.limit else None
                selected = select_play_hosts(inv, play.hosts, limit, "inventory")
                msg += f"\n    pattern: {hosts!r}\n    hosts ({len(selected)}):"
                for h in selected:
                    msg += f"\n      {h}"
            out.append(msg)
            if not (req.tasks or req.tags):
                continue
            text = "    tasks:\n" if req.tasks else ""
            seen: set[str] = set()
            for node in _walk(play.tasks):
                if not tags_selected(node.tags, only, req.skip_tags):
                    continue
                seen.update(node.tags)
                if req.tasks:
                    cur = ", ".join(sorted(set(play.tags) | set(node.tags)))
                    text += f"      {_task_label(node)}\tTAGS: [{cur}]\n"
            if req.tags:
                text += f"      TASK TAGS: [{', '.join(sorted(set(play.tags) | seen))}]\n"
            out.append(text.rstrip("\n"))
    return "\n".join(out)
