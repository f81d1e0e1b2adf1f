"""``fleetkit play`` and ``fleetkit inventory``: ansible-playbook / ansible-inventory."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from fleetkit.cli._options import ArgumentParser
from fleetkit.errors import PlaybookError, UsageError
from fleetkit.playbook.config import Config
from fleetkit.playbook.inventory import Inventory
from fleetkit.playbook.options import RunOptions

__all__ = ["main"]

PLAY_EPILOG = """exit codes:
  0  every host ok
  2  a host failed (or bad flags / a bad inventory source: error + hint on stderr)
  4  a host was unreachable (or a playbook that does not parse: error with file:line)
  1  other errors (e.g. the playbook or an -e @FILE does not exist, a vault secret that
     does not decrypt, a setting fleetkit cannot honour)
  5  an ansible.cfg / ANSIBLE_* value of the wrong type, as ansible's option errors
  99 interrupted (Ctrl-C), as ansible-playbook

example:
  fleetkit play -i inventory.ini site.yml --limit 'web:!web3' -e version=1.2 -f 20
"""

INVENTORY_EPILOG = """example:
  fleetkit inventory -i inventory.ini --graph
"""


def _extra_vars(values: list[str]) -> dict[str, Any]:
    from fleetkit.playbook.playbook import split_kv
    from fleetkit.playbook.yamlsrc import load_yaml_file, load_yaml_text

    out: dict[str, Any] = {}
    for v in values:
        v = v.strip()
        if v.startswith("@"):
            if not os.path.exists(v[1:]):
                # ansible-playbook: "Could not find or access" is a runtime error (exit 1),
                # unlike a file that does not parse (exit 4)
                raise PlaybookError(
                    f"could not find or access extra vars file {v[1:]!r}",
                    hint="check the path after @ (relative to the current directory)",
                )
            data = load_yaml_file(v[1:])
        elif v.startswith(("{", "[")):
            data = load_yaml_text(v, "<extra vars>")
        else:
            kv, rest = split_kv(v)
            if rest:
                raise UsageError(
                    f"invalid extra vars {v!r}",
                    hint="use -e key=value, -e '{\"k\": 1}' or -e @vars.yml",
                )
            data = kv
        if not isinstance(data, dict):
            raise UsageError(f"extra vars must be a mapping: {v!r}")
        out.update(data)
    return out


def _play_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="fleetkit play",
        description="Runs Ansible playbooks, executing the defined tasks on the targeted hosts "
        "(ansible-core 2.19's semantics and output).",
        epilog=PLAY_EPILOG,
    )
    p.add_argument("playbook", nargs="+", help="Playbook(s)")
    p.add_argument("--flush-cache", action="store_true", help="clear the fact cache for every host")
    p.add_argument(
        "--force-handlers",
        action="store_true",
        default=None,
        help="run handlers even if a task fails",
    )
    p.add_argument(
        "--list-hosts",
        action="store_true",
        help="outputs a list of matching hosts; does not execute anything else",
    )
    p.add_argument("--list-tags", action="store_true", help="list all available tags")
    p.add_argument(
        "--list-tasks", action="store_true", help="list all tasks that would be executed"
    )
    p.add_argument(
        "--skip-tags",
        action="append",
        default=[],
        help="only run plays and tasks whose tags do not match these values (repeatable)",
    )
    p.add_argument("--start-at-task", help="start the playbook at the task matching this name")
    p.add_argument(
        "--step", action="store_true", help="one-step-at-a-time: confirm each task before running"
    )
    p.add_argument(
        "--syntax-check",
        action="store_true",
        help="perform a syntax check on the playbook, but do not execute it",
    )
    p.add_argument(
        "--vault-id",
        action="append",
        default=[],
        dest="vault_ids",
        help="the vault identity to use, LABEL@SOURCE (repeatable)",
    )
    vp = p.add_mutually_exclusive_group()
    vp.add_argument(
        "--vault-password-file",
        "--vault-pass-file",
        action="append",
        default=[],
        dest="vault_password_files",
        help="vault password file (or script)",
    )
    vp.add_argument(
        "-J",
        "--ask-vault-password",
        "--ask-vault-pass",
        action="store_true",
        dest="ask_vault_pass",
        default=None,
        help="ask for vault password",
    )
    p.add_argument(
        "-C",
        "--check",
        action="store_true",
        help="don't make any changes; instead, try to predict some of the changes",
    )
    p.add_argument(
        "-D",
        "--diff",
        action="store_true",
        help="when changing (small) files and templates, show the differences",
    )
    p.add_argument(
        "-M",
        "--module-path",
        action="append",
        default=[],
        help="prepend colon-separated path(s) to module library (repeatable)",
    )
    p.add_argument(
        "-e",
        "--extra-vars",
        action="append",
        default=[],
        help="set additional variables as key=value or YAML/JSON, if filename "
        "prepend with @ (repeatable)",
    )
    p.add_argument(
        "-f",
        "--forks",
        type=int,
        default=None,
        help="specify number of parallel processes to use (default=5)",
    )
    p.add_argument(
        "-i",
        "--inventory",
        "--inventory-file",
        action="append",
        default=[],
        help="specify inventory host path or comma separated host list (repeatable)",
    )
    p.add_argument("-l", "--limit", help="further limit selected hosts to an additional pattern")
    p.add_argument(
        "-t",
        "--tags",
        action="append",
        default=[],
        help="only run plays and tasks tagged with these values (repeatable)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more output; up to -vvvvv")
    p.add_argument(
        "-o",
        "--output",
        choices=("default", "json"),
        default="default",
        help="screen output (default) or one JSON event per line (fleetkit)",
    )
    p.add_argument("--seed", type=int, help="seed for order: shuffle (fleetkit)")
    c = p.add_argument_group("Connection Options", "control as whom and how to connect to hosts")
    c.add_argument(
        "--private-key",
        "--key-file",
        dest="private_key_file",
        help="use this file to authenticate the connection",
    )
    c.add_argument(
        "--scp-extra-args", help="refused: fleetkit copies files through its agent, not scp"
    )
    c.add_argument(
        "--sftp-extra-args", help="refused: fleetkit copies files through its agent, not sftp"
    )
    c.add_argument(
        "--ssh-common-args", help="specify common arguments to pass to ssh (e.g. ProxyCommand)"
    )
    c.add_argument("--ssh-extra-args", help="specify extra arguments to pass to ssh only")
    c.add_argument("-T", "--timeout", type=int, help="override the connection timeout in seconds")
    c.add_argument("-c", "--connection", help="connection type to use (default=ssh)")
    c.add_argument("-u", "--user", dest="remote_user", help="connect as this user")
    c.add_argument(
        "-k",
        "--ask-pass",
        action="store_true",
        help="refused: fleetkit authenticates ssh with keys only",
    )
    b = p.add_argument_group(
        "Privilege Escalation Options", "control how and which user you become as on target hosts"
    )
    b.add_argument("--become-method", help="privilege escalation method to use (default=sudo)")
    b.add_argument("--become-user", help="run operations as this user (default=root)")
    b.add_argument(
        "-b",
        "--become",
        action="store_true",
        default=None,
        help="run operations with become (does not imply password prompting)",
    )
    kp = b.add_mutually_exclusive_group()
    kp.add_argument(
        "-K",
        "--ask-become-pass",
        action="store_true",
        default=None,
        help="ask for privilege escalation password",
    )
    kp.add_argument("--become-password-file", "--become-pass-file", help="Become password file")
    return p


def _read_limit(limit: str | None) -> list[str] | None:
    """``-l`` as a list of patterns; ``@file`` is read here, once, one pattern a line."""
    if not limit:
        return None
    if limit.startswith("@"):
        try:
            with open(limit[1:], encoding="utf-8") as fh:
                return [line.strip() for line in fh if line.strip()]
        except OSError as exc:
            raise PlaybookError(f"cannot read limit file {limit[1:]}: {exc}") from None
    return [limit]


def _split_tags(values: list[str]) -> list[str]:
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


def _refuse_unhonoured(args: argparse.Namespace) -> None:
    if args.scp_extra_args is not None or args.sftp_extra_args is not None:
        raise UsageError(
            "--scp-extra-args/--sftp-extra-args are not supported: fleetkit does not use scp or "
            "sftp (files go through its per-host agent)",
            hint="drop the flag, or put ssh options in --ssh-common-args",
        )
    if args.ask_pass:
        raise UsageError(
            "-k/--ask-pass is not supported: fleetkit authenticates ssh with keys",
            hint="use --private-key or an ssh agent",
        )


def _become_password(args: argparse.Namespace, ask: bool) -> str | None:
    if args.become_password_file:
        try:
            with open(args.become_password_file, encoding="utf-8") as fh:
                return fh.read().strip("\r\n")
        except OSError as exc:
            raise PlaybookError(
                f"Error reading become password file {args.become_password_file}: {exc}"
            ) from None
    if ask:
        import getpass

        return getpass.getpass("BECOME password: ")
    return None


def _setup_vault(args: argparse.Namespace, cfg: Config) -> None:
    from fleetkit.playbook.vault import load_secrets, set_secrets

    files = list(args.vault_password_files)
    if cfg["vault_password_file"]:
        files.append(cfg["vault_password_file"])
    ids = [i for i in cfg["vault_identity_list"] if i] + list(args.vault_ids)
    ask = cfg["ask_vault_pass"] if args.ask_vault_pass is None else args.ask_vault_pass
    secrets, warnings = load_secrets(ids, files, bool(ask))
    for w in warnings:
        print(f"[WARNING]: {w}", file=sys.stderr)
    set_secrets(secrets)


def run_options(
    args: argparse.Namespace,
    cfg: Config,
    forks: int,
    limit: list[str] | None,
    only_tags: list[str],
    skip_tags: list[str],
) -> RunOptions:
    """RunOptions from parsed flags and config: a flag given wins over ansible.cfg/ANSIBLE_*."""
    become = cfg["become"] if args.become is None else args.become
    ask_become = cfg["become_ask_pass"] if args.ask_become_pass is None else args.ask_become_pass
    return RunOptions(
        limit=",".join(limit) if limit else None,
        extra_vars=_extra_vars(args.extra_vars),
        forks=forks,
        tags=only_tags,
        skip_tags=skip_tags,
        check=args.check,
        diff=args.diff,
        verbosity=args.verbose,
        seed=args.seed,
        playbook_path=args.playbook[0],
        become=bool(become),
        become_user=args.become_user or cfg["become_user"],
        become_method=args.become_method or cfg["become_method"],
        become_password=_become_password(args, bool(ask_become)),
        remote_user=args.remote_user or cfg["remote_user"],
        connection=args.connection or (None if cfg.is_default("transport") else cfg["transport"]),
        private_key_file=args.private_key_file or cfg["private_key_file"],
        timeout_s=args.timeout if args.timeout is not None else cfg["timeout"],
        ssh_common_args=args.ssh_common_args,
        ssh_extra_args=args.ssh_extra_args,
        start_at_task=args.start_at_task,
        step=args.step,
        force_handlers=bool(
            cfg["force_handlers"] if args.force_handlers is None else args.force_handlers
        ),
        flush_cache=args.flush_cache,
        module_paths=[p for m in args.module_path for p in m.split(os.pathsep) if p]
        + list(cfg["library"]),
        config=dict(cfg.values, config_file=cfg.path),
    )


_VALUE_FLAGS = ("--ssh-common-args", "--ssh-extra-args", "--scp-extra-args", "--sftp-extra-args")


def _join_ssh_values(argv: list[str]) -> list[str]:
    """``--ssh-extra-args '-o X=1'``: bind the value so ``-o`` is not read as ``--output``."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in _VALUE_FLAGS and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _cli_args(args: argparse.Namespace) -> dict[str, object]:
    """ansible's ``context.CLIARGS`` for callback plugins that read it."""
    return {
        "args": tuple(args.playbook),
        "check": bool(args.check),
        "diff": bool(args.diff),
        "verbosity": args.verbose,
        "forks": args.forks,
        "subset": args.limit,
        "tags": tuple(args.tags or ("all",)),
        "skip_tags": tuple(args.skip_tags or ()),
        "start_at_task": args.start_at_task,
        "step": args.step,
        "syntax": False,
        "listhosts": False,
        "listtasks": False,
        "listtags": False,
    }


def _play(argv: list[str]) -> int:
    args = _play_parser().parse_args(_join_ssh_values(argv))
    _refuse_unhonoured(args)

    from fleetkit.playbook.callbacks import JsonCallback, build_callback
    from fleetkit.playbook.config import check_supported, load_config
    from fleetkit.playbook.events import Callback
    from fleetkit.playbook.listing import ListRequest, render_listing
    from fleetkit.playbook.patterns import match_hosts
    from fleetkit.playbook.playbook import load_playbook
    from fleetkit.playbook.runner import PlaybookRunner

    cfg = load_config()
    for w in cfg.warnings:
        print(f"[WARNING]: {w}", file=sys.stderr)
    if args.verbose and args.output != "json":
        # ansible-playbook's -v line about its configuration file
        print(
            f"Using {cfg.path} as config file"
            if cfg.path
            else "No config file found; using defaults"
        )
    check_supported(cfg)
    forks = cfg["forks"] if args.forks is None else args.forks
    if forks < 1:
        raise UsageError("forks must be at least 1", hint="use -f 1 or more")
    _setup_vault(args, cfg)
    for path in args.playbook:
        if os.path.exists(path) and not os.path.isfile(path):
            raise PlaybookError(f"the playbook: {path} does not appear to be a file")
    listing = args.list_hosts or args.list_tasks or args.list_tags
    if len(args.playbook) > 1 and not (listing or args.syntax_check):
        raise UsageError(
            "fleetkit play runs one playbook per invocation",
            hint="run each playbook in turn, or import them from one playbook",
        )
    from fleetkit.playbook.actions.ansible_actions import set_action_plugin_paths
    from fleetkit.playbook.connection.plugin import set_connection_plugin_paths
    from fleetkit.playbook.modules import _finder

    # -M and ansible.cfg's library: module directories before the playbook's own library/
    _finder.set_library_paths(
        [p for m in args.module_path for p in m.split(os.pathsep) if p] + list(cfg["library"])
    )
    # collections/ beside the playbooks come first (ansible's playbook-adjacent collections)
    _finder.set_playbook_dirs([os.path.dirname(os.path.abspath(p)) for p in args.playbook])
    # ansible.cfg's / ANSIBLE_*'s plugin directories (those beside the playbook come on load)
    set_action_plugin_paths(list(cfg["action_plugins"]))
    set_connection_plugin_paths(list(cfg["connection_plugins"]))
    roles_path = None if cfg.is_default("roles_path") else list(cfg["roles_path"])
    parse_vars = _extra_vars(args.extra_vars)
    books = [
        (path, load_playbook(path, roles_path, args.syntax_check, parse_vars))
        for path in args.playbook
    ]
    if args.syntax_check:
        for path, _ in books:
            print(f"\nplaybook: {path}")
        return 0
    inv = _load_inventory(args.inventory or cfg["inventory"], cfg, for_play=True)
    limit = _read_limit(args.limit)
    only_tags, skip_tags = _split_tags(args.tags), _split_tags(args.skip_tags)
    if listing:
        if limit and inv.hosts and not match_hosts(inv, limit):
            raise PlaybookError(
                "Specified inventory, host pattern and/or --limit leaves us with no hosts "
                "to target.",
                hint="check the --limit pattern against `fleetkit inventory --graph`",
            )
        req = ListRequest(
            hosts=args.list_hosts,
            tasks=args.list_tasks,
            tags=args.list_tags,
            limit=limit,
            only_tags=only_tags,
            skip_tags=skip_tags,
        )
        print(render_listing(inv, books, req))
        return 0
    opts = run_options(args, cfg, forks, limit, only_tags, skip_tags)
    callback: Callback
    if args.output == "json":
        callback = JsonCallback(sys.stdout)
    else:
        callback = build_callback(cfg, books[0][0], args.verbose, args.check, _cli_args(args))
    try:
        summary = PlaybookRunner(inv, books[0][1], opts, callback).run()
    except KeyboardInterrupt:
        # ansible-playbook: this line on stderr and exit 99, now: a fork may still be starting a
        # command the interrupt could not reach yet, and waiting for it would hold the exit
        sys.stdout.flush()
        print("[ERROR]: User interrupted execution", file=sys.stderr)
        sys.stderr.flush()
        os._exit(99)
    return summary.exit_code


def _inventory(argv: list[str]) -> int:
    p = ArgumentParser(
        prog="fleetkit inventory",
        description="Show an inventory as ansible-inventory does.",
        epilog=INVENTORY_EPILOG,
    )
    p.add_argument("pattern", nargs="?", help="group for --graph (default all)")
    p.add_argument(
        "-i",
        "--inventory",
        "--inventory-file",
        action="append",
        default=[],
        help="specify inventory host path or comma separated host list (repeatable)",
    )
    p.add_argument("-l", "--limit", help="further limit selected hosts to an additional pattern")
    p.add_argument(
        "--vault-id",
        action="append",
        default=[],
        dest="vault_ids",
        help="the vault identity to use, LABEL@SOURCE (repeatable)",
    )
    vp = p.add_mutually_exclusive_group()
    vp.add_argument(
        "--vault-password-file",
        "--vault-pass-file",
        action="append",
        default=[],
        dest="vault_password_files",
        help="vault password file (or script)",
    )
    vp.add_argument(
        "-J",
        "--ask-vault-password",
        "--ask-vault-pass",
        action="store_true",
        dest="ask_vault_pass",
        default=None,
        help="ask for vault password",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="(accepted)")
    a = p.add_argument_group("Actions", "One of following must be used on invocation, ONLY ONE!")
    mode = a.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="Output all hosts info")
    mode.add_argument("--host", metavar="HOST", help="Output specific host info")
    mode.add_argument("--graph", action="store_true", help="create inventory graph")
    f = p.add_argument_group("Output Options", "options that change the output")
    f.add_argument(
        "--export",
        action="store_true",
        help="with --list: each host's own vars, group vars in the groups",
    )
    f.add_argument("--vars", action="store_true", help="Add vars to graph display")
    f.add_argument("-y", "--yaml", action="store_true", help="Use YAML format instead of JSON")
    f.add_argument("--toml", action="store_true", help="refused: fleetkit has no TOML output")
    f.add_argument("--output", help="refused: print to stdout and redirect instead")
    args = p.parse_args(argv)
    if args.toml:
        raise UsageError(
            "--toml is not supported by fleetkit inventory", hint="use --yaml or the JSON default"
        )
    if args.output:
        raise UsageError(
            "--output is not supported by fleetkit inventory", hint="redirect stdout instead"
        )
    if args.pattern and not args.graph:
        raise UsageError(
            f"unexpected argument {args.pattern!r}", hint="a GROUP argument goes with --graph"
        )

    from fleetkit.playbook.config import check_supported, load_config
    from fleetkit.playbook.inventory_view import (
        dumps,
        dumps_yaml,
        inventory_graph,
        inventory_host,
        inventory_list,
        inventory_yaml,
    )

    cfg = load_config()
    for w in cfg.warnings:
        print(f"[WARNING]: {w}", file=sys.stderr)
    check_supported(cfg, run=False)
    _setup_vault(args, cfg)
    inv = _load_inventory(args.inventory or cfg["inventory"], cfg, for_play=False)
    render = dumps_yaml if args.yaml else dumps
    limit = _read_limit(args.limit)
    if args.list:
        data = (inventory_yaml if args.yaml else inventory_list)(inv, limit, args.export)
        print(render(data))
    elif args.host:
        print(render(inventory_host(inv, args.host)))
    else:
        print(inventory_graph(inv, args.pattern or "all", show_vars=args.vars))
    return 0


def _load_inventory(sources: list[str], cfg: Config, *, for_play: bool) -> Inventory:
    """Load the inventory as ansible.cfg says and print its warnings to stderr; ``for_play``
    (ansible-playbook, not ansible-inventory): the implicit-localhost warnings, as
    ``localhost_warning`` allows."""
    from fleetkit.playbook.inventory import load_inventory

    inv = load_inventory(
        sources,
        enabled=cfg["enable_plugins"],
        ignore_extensions=cfg["inventory_ignore_extensions"],
        ignore_patterns=cfg["inventory_ignore_patterns"],
        unparsed_is_failed=cfg["unparsed_is_failed"],
        any_unparsed_is_failed=cfg["any_unparsed_is_failed"],
        unparsed_warning=cfg["inventory_unparsed_warning"],
    )
    quiet = for_play and not cfg["localhost_warning"]
    for w in inv.warnings:
        if quiet and w.startswith("provided hosts list is empty"):
            continue
        print(f"[WARNING]: {w}", file=sys.stderr)
    if (
        for_play
        and cfg["localhost_warning"]
        and not any(not h.implicit for h in inv.hosts.values())
    ):
        print(
            "[WARNING]: provided hosts list is empty, only localhost is available. Note that "
            "the implicit localhost does not match 'all'",
            file=sys.stderr,
        )
    return inv


def main(command: str, argv: list[str]) -> int:
    if command == "inventory":
        return _inventory(argv)
    return _play(argv)
