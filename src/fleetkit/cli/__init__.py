"""The ``fleetkit`` command: dispatch to one module per subsystem, imported lazily.

Each subsystem CLI module exposes ``main(command: str, argv: list[str]) -> int`` and may raise
:class:`fleetkit.errors.FleetkitError`; this module turns those into ``error:``/``hint:`` lines
and the documented exit code. Any other exception is a bug: the last-resort handler prints
``error: internal error (please report): TYPE: TEXT`` (exit 1), and the traceback only under
``fleetkit --debug COMMAND`` (or ``FLEETKIT_DEBUG=1``). Imports stay lazy so ``fleetkit
nsenter`` starts fast.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import sys
from types import ModuleType

__all__ = ["main", "COMMANDS", "KEEP_UNTIL_EXIT"]

# what a command built and leaves to the end of the process: the ``fleetkit`` process exits
# without freeing it (one simulated cluster is millions of objects: freeing them one by one
# took ``fleetkit schedule`` 2 s of CPU after its output was written); an in-process caller
# (``main(argv)``, the tests) gets the usual return and the list emptied
KEEP_UNTIL_EXIT: list[object] = []  # (no typing import: `fleetkit nsenter` starts fast)

# command -> (module, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "registry": ("fleetkit.cli.registry", "run an OCI registry and Docker token service"),
    "pull": ("fleetkit.cli.client", "pull an image to oci:DIR or docker-archive:FILE"),
    "push": ("fleetkit.cli.client", "push an image from oci:DIR or docker-archive:FILE"),
    "copy": ("fleetkit.cli.client", "copy an image between registries, layouts and archives"),
    "sync": ("fleetkit.cli.client", "mirror the images a YAML file names (skopeo sync)"),
    "inspect": ("fleetkit.cli.client", "describe an image as skopeo inspect does"),
    "delete": ("fleetkit.cli.client", "delete a manifest from a registry"),
    "catalog": ("fleetkit.cli.client", "list a registry's repositories"),
    "login": ("fleetkit.cli.client", "store registry credentials as docker does"),
    "logout": ("fleetkit.cli.client", "remove stored registry credentials"),
    "tags": ("fleetkit.cli.client", "list a repository's tags"),
    "manifest": ("fleetkit.cli.client", "print an image's manifest"),
    "schedule": ("fleetkit.cli.schedule", "place pods as kube-scheduler v1.32 would"),
    "cluster": ("fleetkit.cli.cluster", "run a simulated Kubernetes cluster that kubectl talks to"),
    "play": ("fleetkit.cli.play", "run an Ansible-style playbook"),
    "inventory": ("fleetkit.cli.play", "show an inventory as ansible-inventory does"),
    "nsenter": ("fleetkit.cli.nsenter", "run a program in another process's namespaces"),
    "ns": ("fleetkit.cli.nsenter", "network helpers inside a target's namespaces"),
}

USAGE = """usage: fleetkit [--version] [--debug] COMMAND [ARGS...]

commands:
{commands}

Run 'fleetkit COMMAND --help' for a command's options. --debug (or FLEETKIT_DEBUG=1) shows the
traceback of an internal error.

example:
  fleetkit schedule -f cluster.yaml -f deploy.yaml --then "scale deploy/nginx --replicas=6"
"""


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = [f"  {name.ljust(width)}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("FLEETKIT_DEBUG", "") not in ("", "0")
    while args and args[0] == "--debug":
        debug = True
        args.pop(0)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        from fleetkit import __version__

        print(f"fleetkit {__version__}")
        return 0
    command = args[0]
    entry = COMMANDS.get(command)
    if entry is None:
        print(f"error: unknown command {command!r}", file=sys.stderr)
        print("hint: run 'fleetkit --help' for the list of commands", file=sys.stderr)
        return 2
    from fleetkit.errors import FleetkitError

    try:
        module = _import_command(entry[0])
        rc: int = module.main(command, args[1:])
        if KEEP_UNTIL_EXIT and argv is None:
            _exit_now(rc)
        return rc
    except FleetkitError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141
    except Exception as exc:  # the last resort: a bug, never a traceback by default
        return _internal_error(exc, command, debug)
    finally:
        KEEP_UNTIL_EXIT.clear()


def _exit_now(rc: int) -> None:
    """End the process as ``sys.exit(rc)`` would, without tearing its heap down."""
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(rc)


def _import_command(name: str) -> ModuleType:
    """Import a subsystem's CLI module with the cyclic GC paused, then freeze what it built.

    Imports allocate thousands of long-lived objects (modules, classes, functions, aiohttp's
    attrs classes), and every burst of allocations triggers collections that walk them all
    again: about a quarter of the CPU of importing ``fleetkit pull``'s modules. Startup is
    one thread before the first request, so on busy cores that CPU is wall time. What the
    imports built lives until exit anyway; ``gc.freeze()`` keeps later collections off it.
    """
    gc.disable()
    try:
        return importlib.import_module(name)
    finally:
        gc.freeze()
        gc.enable()


def _internal_error(exc: Exception, command: str, debug: bool) -> int:
    import traceback

    text = str(exc)
    text = text if len(text) <= 200 else text[:197] + "..."
    what = type(exc).__name__ + (f": {text}" if text else "")
    what = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in what)
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"error: internal error (please report): {what}", file=sys.stderr)
    if not debug:
        print(
            f"hint: run again with 'fleetkit --debug {command} ...' to see the traceback",
            file=sys.stderr,
        )
    return 1
