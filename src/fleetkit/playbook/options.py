"""What a run was asked to do (ansible-playbook's command line + ansible.cfg) and how it ended.

The CLI fills :class:`RunOptions` from flags, ``ansible.cfg`` and ``ANSIBLE_*`` (flags win);
the engine only reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetkit.playbook.events import Stats

__all__ = ["RunOptions", "RunSummary"]


@dataclass
class RunOptions:
    """Options for one ``fleetkit play`` run; the defaults are ansible-playbook's."""

    limit: str | None = None
    extra_vars: dict[str, Any] = field(default_factory=dict)
    forks: int = 5
    tags: list[str] = field(default_factory=list)
    skip_tags: list[str] = field(default_factory=list)
    check: bool = False
    diff: bool = False
    verbosity: int = 0
    seed: int | None = None
    playbook_path: str = ""
    # privilege escalation (-b, --become-user, --become-method, -K)
    become: bool = False
    become_user: str | None = None
    become_method: str = "sudo"
    become_password: str | None = None
    # connection (-u, -c, --private-key, -T, --ssh-common-args, --ssh-extra-args)
    remote_user: str | None = None
    connection: str | None = None
    private_key_file: str | None = None
    timeout_s: int | None = None
    ssh_common_args: str | None = None
    ssh_extra_args: str | None = None
    # execution (--start-at-task, --step, --force-handlers, --flush-cache, -M)
    start_at_task: str | None = None
    step: bool = False
    force_handlers: bool = False
    flush_cache: bool = False
    module_paths: list[str] = field(default_factory=list)
    # ansible.cfg / ANSIBLE_* values the engine reads (config.py fills them)
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunSummary:
    """How a run ended: ansible-playbook's exit code, the recap stats and the bad hosts."""

    exit_code: int
    stats: Stats
    failed: set[str]
    unreachable: set[str]
