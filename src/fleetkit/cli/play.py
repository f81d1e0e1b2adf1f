"""``fleetkit play`` and ``fleetkit inventory``: ansible-playbook / ansible-inventory."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from fleetkit.cli._options import ArgumentParser
from fleetkit.errors import PlaybookError, UsageError

__all__ = ["main"]

PLAY_EPILOG = """exit codes:
  0  every host ok
  2  a host failed (or bad flags / a bad inventory source: error + hint on stderr)
  4  a host was unreachable (or a playbook that does not parse: error with file:line)
  1  other errors (e.g. the playbook or an -e @FILE does not exist)
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


def _play(argv: list[str]) -> int:
    p = ArgumentParser(
        prog="fleetkit play",
        description="Run an Ansible playbook with ansible-core 2.19's semantics and output.",
        epilog=PLAY_EPILOG,
    )
    p.add_argument("playbook", help="playbook YAML file")
    p.add_argument(
        "-i",
        "--inventory",
        action="append",
        default=[],
        help="inventory file, directory or 'h1,h2,' (repeatable)",
    )
    p.add_argument("-l", "--limit", help="further limit hosts with a pattern (or @file)")
    p.add_argument(
        "-e",
        "--extra-vars",
        action="append",
        default=[],
        help="key=value, JSON/YAML, or @file (repeatable)",
    )
    p.add_argument("-f", "--forks", type=int, default=5, help="parallel hosts (default 5)")
    p.add_argument("-t", "--tags", action="append", default=[], help="only these tags")
    p.add_argument("--skip-tags", action="append", default=[], help="skip these tags")
    p.add_argument("-C", "--check", action="store_true", help="check mode (no changes)")
    p.add_argument(
        "-o",
        "--output",
        choices=("default", "json"),
        default="default",
        help="screen output (default) or one JSON event per line",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more output (-vvv)")
    p.add_argument("--seed", type=int, help="seed for order: shuffle")
    p.add_argument("--list-hosts", action="store_true", help="print matching hosts and exit")
    p.add_argument("--syntax-check", action="store_true", help="only parse the playbook")
    args = p.parse_args(argv)
    if args.forks < 1:
        raise UsageError("forks must be at least 1", hint="use -f 1 or more")

    from fleetkit.playbook.callbacks import DefaultCallback, JsonCallback
    from fleetkit.playbook.events import Callback
    from fleetkit.playbook.inventory import load_inventory
    from fleetkit.playbook.options import RunOptions
    from fleetkit.playbook.patterns import apply_order, match_hosts
    from fleetkit.playbook.playbook import load_playbook
    from fleetkit.playbook.runner import PlaybookRunner

    sources = args.inventory or [os.environ.get("ANSIBLE_INVENTORY", "/etc/ansible/hosts")]
    plays = load_playbook(args.playbook)
    if args.syntax_check:
        print(f"\nplaybook: {args.playbook}")
        return 0
    inv = load_inventory(sources)
    for w in inv.warnings:
        print(f"[WARNING]: {w}", file=sys.stderr)

    def split_tags(values: list[str]) -> list[str]:
        return [t.strip() for v in values for t in v.split(",") if t.strip()]

    if args.list_hosts:
        print(f"\nplaybook: {args.playbook}")
        for i, play in enumerate(plays, 1):
            hosts = apply_order(match_hosts(inv, play.hosts), play.order, args.seed)
            if args.limit:
                allowed = set(match_hosts(inv, args.limit))
                hosts = [h for h in hosts if h in allowed]
            print(f"\n  play #{i} ({play.hosts}): {play.name}\tTAGS: []")
            print(f"    pattern: {[play.hosts] if isinstance(play.hosts, str) else play.hosts}")
            print(f"    hosts ({len(hosts)}):")
            for h in hosts:
                print(f"      {h}")
        return 0
    opts = RunOptions(
        limit=args.limit,
        extra_vars=_extra_vars(args.extra_vars),
        forks=args.forks,
        tags=split_tags(args.tags),
        skip_tags=split_tags(args.skip_tags),
        check=args.check,
        verbosity=args.verbose,
        seed=args.seed,
        playbook_path=args.playbook,
    )
    callback: Callback
    if args.output == "json":
        callback = JsonCallback(sys.stdout)
    else:
        callback = DefaultCallback(sys.stdout, sys.stderr, verbosity=args.verbose, check=args.check)
    try:
        summary = PlaybookRunner(inv, plays, opts, callback).run()
    except KeyboardInterrupt:
        # ansible-playbook: this line on stderr and exit 99
        sys.stdout.flush()
        print("[ERROR]: User interrupted execution", file=sys.stderr)
        return 99
    return summary.exit_code


def _inventory(argv: list[str]) -> int:
    p = ArgumentParser(
        prog="fleetkit inventory",
        description="Show an inventory as ansible-inventory does.",
        epilog=INVENTORY_EPILOG,
    )
    p.add_argument(
        "-i",
        "--inventory",
        action="append",
        default=[],
        help="inventory file, directory or 'h1,h2,' (repeatable)",
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="all groups and hosts as JSON")
    mode.add_argument(
        "--graph", nargs="?", const="all", metavar="GROUP", help="a tree of groups and hosts"
    )
    mode.add_argument("--host", metavar="HOST", help="one host's variables as JSON")
    p.add_argument("--vars", action="store_true", help="(accepted for compatibility)")
    p.add_argument("-l", "--limit", help="limit to hosts matching a pattern")
    args = p.parse_args(argv)

    from fleetkit.playbook.inventory import load_inventory
    from fleetkit.playbook.inventory_view import (
        dumps,
        inventory_graph,
        inventory_host,
        inventory_list,
    )

    sources = args.inventory or [os.environ.get("ANSIBLE_INVENTORY", "/etc/ansible/hosts")]
    inv = load_inventory(sources)
    for w in inv.warnings:
        print(f"[WARNING]: {w}", file=sys.stderr)
    if args.list:
        print(dumps(inventory_list(inv)))
    elif args.host:
        print(dumps(inventory_host(inv, args.host)))
    else:
        print(inventory_graph(inv, args.graph))
    _ = json
    return 0


def main(command: str, argv: list[str]) -> int:
    if command == "inventory":
        return _inventory(argv)
    return _play(argv)
