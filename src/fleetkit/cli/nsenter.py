"""``fleetkit nsenter`` (util-linux nsenter) and ``fleetkit ns`` (helpers inside a target's netns).

``nsenter`` is on a start-up-time budget: it parses its own arguments (getopt_long semantics,
as util-linux does) and imports nothing heavy unless a container or pod must be resolved.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["main"]

NSENTER_HELP = """\
Usage:
 fleetkit nsenter [options] [<program> [<argument>...]]

Run a program with namespaces of other processes (util-linux nsenter semantics).

Options:
 -a, --all              enter all namespaces
 -t, --target <pid>     target process to get namespaces from
     --container <id|name>  target a container (Docker, containerd, CRI-O, Podman)
     --pod <[ns/]name>  target a pod's sandbox (or --pod-container's container)
     --pod-container <name>  the container within --pod
 -m, --mount[=<file>]   enter mount namespace
 -u, --uts[=<file>]     enter UTS namespace (hostname etc)
 -i, --ipc[=<file>]     enter System V IPC namespace
 -n, --net[=<file>]     enter network namespace
 -p, --pid[=<file>]     enter pid namespace
 -C, --cgroup[=<file>]  enter cgroup namespace
 -U, --user[=<file>]    enter user namespace
 -T, --time[=<file>]    enter time namespace
 -S, --setuid <uid>     set uid in entered namespace
 -G, --setgid <gid>     set gid in entered namespace
     --preserve-credentials do not touch uids or gids
 -r, --root[=<dir>]     set the root directory
 -w, --wd[=<dir>]       set the working directory
 -W, --wdns <dir>       set the working directory in namespace
 -F, --no-fork          do not fork before exec'ing <program>
 -Z, --follow-context   accepted; no-op (no SELinux)

 -h, --help             display this help
 -V, --version          display version

Exit status: the program's; 1 for nsenter's own errors (bad options included), 126 when the
program cannot be executed, 127 when it does not exist.

example:
  fleetkit nsenter -t 1294 -n ip addr
  fleetkit nsenter --pod default/web -n -- ss -tuanp
"""


def _nsenter(argv: list[str]) -> int:
    from fleetkit.netns.plan import PlanError, parse

    try:
        plan = parse(argv)
    except PlanError as exc:
        from fleetkit.netns.errors import NsenterUsage

        raise NsenterUsage(
            str(exc), hint="Try 'fleetkit nsenter --help' for more information."
        ) from None
    if plan.help:
        sys.stdout.write(NSENTER_HELP)
        return 0
    if plan.version:
        from fleetkit import __version__

        print(f"fleetkit nsenter {__version__} (util-linux 2.38 compatible)")
        return 0
    if plan.container is not None or plan.pod is not None:
        if plan.target is not None:
            from fleetkit.netns.errors import NsenterUsage

            raise NsenterUsage(
                "--target, --container and --pod are mutually exclusive",
                hint="name the target once",
            )
        from fleetkit.netns.target import Resolver

        resolver = Resolver()
        if plan.pod is not None:
            found = resolver.pod(plan.pod, plan.pod_container)
        else:
            assert plan.container is not None
            found = resolver.container(plan.container)
        if found.pid is None:
            from fleetkit.netns.errors import NoSuchProcess

            raise NoSuchProcess(
                f"container {found.id[:12]} is not running",
                hint="start it, or pick a running container from 'fleetkit ns ps'",
            )
        plan.target = found.pid
    elif plan.pod_container is not None:
        from fleetkit.netns.errors import NsenterUsage

        raise NsenterUsage("--pod-container needs --pod", hint="add --pod NAMESPACE/NAME")

    from fleetkit.netns.exec import enter_and_exec

    return enter_and_exec(plan)


def main(command: str, argv: list[str]) -> int:
    if command == "nsenter":
        return _nsenter(argv)
    return _ns(argv)


# --- fleetkit ns ------------------------------------------------------------------------

NS_HELP = """\
Network helpers that run inside a target's network namespace with no external binary.
TARGET is one of: -t PID | --container ID|NAME | --pod [NAMESPACE/]NAME [-c CONTAINER].

subcommands:
  ps        list containers and pods this node's runtimes know (pod, container, pid, runtime)
  dig       DNS lookup with the target's resolv.conf (dig syntax; each search suffix shown)
  capture   tcpdump: its flags and output, -w/-r pcap (pcapng too), -i any as LINUX_SLL2
  connect   TCP connect to HOST:PORT, with timing
  http      HTTP GET a URL, with status and timing
  ip        links and addresses (as 'ip addr'), routes ('ip route'), from rtnetlink
  sockets   TCP/UDP sockets as 'ss -tuanp' lists them

Run 'fleetkit ns SUBCOMMAND --help' for each one's options.

On another node (flags before or after the subcommand; fleetkit is shipped there once, Python 3
is all the node needs; capture -w FILE lands here):
  --ssh USER@HOST [--ssh-key FILE] [--ssh-option OPT]... [--ssh-cache DIR]   that host
  --kubeconfig FILE [--context C] --pod NS/NAME   the pod's node, from the API, reached as
                      --ssh-user (default root) at its InternalIP
  --inventory FILE    map node names to SSH hosts with fleetkit play's inventory (ansible_host,
                      ansible_user, ansible_port, ansible_ssh_private_key_file, ...); repeatable
  --node NAME         run on that node (an inventory host, or an API node): -t PID, ps, ...
  --selector SEL [--namespace NS | --all-namespaces]   every pod the label selector picks
                      (kubectl's -l/-n/-A), on whichever nodes: capture merges them in time
                      order; dig, ip, sockets, http print each pod's lines prefixed 'NS/NAME: '
Several --pod also run at once. Long spellings only: -i, -l, -n and -A are tcpdump's (and
ss's, curl's) flags here, never kubectl's or ansible's.

example:
  fleetkit ns dig -t 1294 +short @10.96.0.10 web.default.svc.cluster.local
  fleetkit ns capture --inventory hosts.ini --selector app=web -nn -c 20 port 80
"""


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns without importing shutil (and bz2, lzma: ~2 ms)."""
    import os

    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


def _formatter() -> Any:
    """argparse's raw-description help formatter, told the width instead of asking shutil.

    argparse builds a formatter for every add_argument (to check the metavar), and a formatter
    without a width imports shutil to measure the terminal.
    """
    import argparse

    class Formatter(argparse.RawDescriptionHelpFormatter):
        def __init__(
            self,
            prog: str,
            indent_increment: int = 2,
            max_help_position: int = 24,
            width: int | None = None,
        ) -> None:
            if width is None:
                width = _terminal_columns() - 2
            super().__init__(prog, indent_increment, max_help_position, width)

    return Formatter


def _port(text: str) -> int:
    import argparse

    if not text.isdigit() or not 0 < int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r} (1..65535)")
    return int(text)


def _positive_int(text: str) -> int:
    import argparse

    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"invalid count {text!r} (a positive integer)")
    return int(text)


def _seconds(text: str) -> float:
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value < 1e9):
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (seconds > 0)")
    return value


def _parser(
    name: str, description: str, example: str, pod_c: bool = True, short_t: bool = True
) -> Any:
    from fleetkit.cli._options import ArgumentParser

    parser = ArgumentParser(
        prog=f"fleetkit ns {name}",
        description=description,
        epilog=f"example:\n  {example}",
        formatter_class=_formatter(),
    )
    group = parser.add_argument_group("target (one of)")
    target_flags = ("-t", "--target") if short_t else ("--target",)
    group.add_argument(*target_flags, type=int, metavar="PID", help="a process ID (also -t PID)")
    group.add_argument("--container", metavar="ID|NAME", help="a container ID (or prefix) or name")
    group.add_argument("--pod", metavar="[NS/]NAME", help="a pod (its sandbox's namespace)")
    flags = ("-c", "--pod-container") if pod_c else ("--pod-container",)
    group.add_argument(
        *flags, dest="pod_container", metavar="NAME", help="the container within --pod"
    )
    group.add_argument(
        "--node-root",
        default="/",
        metavar="DIR",
        help="read /proc and runtime state below DIR (default /)",
    )
    _remote_group(parser)
    return parser


def _remote_group(parser: Any) -> None:
    """The remote flags in --help (``_split_remote`` takes them out before parsing)."""
    remote = parser.add_argument_group(
        "on other nodes (see 'fleetkit ns --help'; long spellings only)"
    )
    for flag, metavar, text in _REMOTE_HELP:
        remote.add_argument(flag, metavar=metavar, help=text, dest=f"_remote{flag}")
    remote.add_argument(
        "--all-namespaces", action="store_true", help="--selector in every namespace"
    )


def _resolve(args: Any, required: bool = True) -> int | None:
    import os

    from fleetkit.netns.errors import NoSuchProcess
    from fleetkit.netns.namespaces import check_pid

    given = [x for x in (args.target, args.container, args.pod) if x is not None]
    if len(given) > 1:
        from fleetkit.errors import UsageError

        raise UsageError(
            "-t, --container and --pod are mutually exclusive", hint="name the target once"
        )
    if args.pod_container is not None and args.pod is None:
        from fleetkit.errors import UsageError

        raise UsageError("--pod-container needs --pod", hint="add --pod NAMESPACE/NAME")
    if not given:
        if required:
            from fleetkit.errors import UsageError

            raise UsageError(
                "no target given",
                hint="add -t PID, --container ID|NAME or --pod NS/NAME ('fleetkit ns ps' lists them)",
            )
        return None
    if args.target is not None:
        return check_pid(args.target, os.path.join(args.node_root, "proc"))
    from fleetkit.netns.target import Resolver

    resolver = Resolver(args.node_root)
    found = (
        resolver.pod(args.pod, args.pod_container)
        if args.pod
        else resolver.container(args.container)
    )
    if found.pid is None:
        raise NoSuchProcess(
            f"container {found.id[:12]} ({found.name}) is not running",
            hint="start it, or pick a running container from 'fleetkit ns ps'",
        )
    return found.pid


def _emit_json(data: Any) -> None:
    import json

    print(json.dumps(data, indent=2))


def _ns_ps(argv: list[str]) -> int:
    from fleetkit.cli._options import ArgumentParser
    from fleetkit.netns.target import Resolver

    parser = ArgumentParser(
        formatter_class=_formatter(),
        prog="fleetkit ns ps",
        description="List the containers and pods this node's runtimes know, without their CLIs.",
        epilog="example:\n  fleetkit ns ps -o json",
    )
    parser.add_argument("-a", "--all", action="store_true", help="include stopped containers")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.add_argument("--node-root", default="/", metavar="DIR", help="read state below DIR")
    _remote_group(parser)
    args = parser.parse_args(argv)
    found = [c for c in Resolver(args.node_root).containers() if args.all or c.pid is not None]
    if args.output == "json":
        _emit_json([c.as_dict() for c in found])
        return 0
    rows = [("POD", "CONTAINER", "NAME", "ID", "PID", "RUNTIME")]
    for c in found:
        rows.append(
            (
                c.pod or "-",
                "(sandbox)" if c.sandbox else (c.container_name or "-"),
                c.name or "-",
                c.id[:12],
                str(c.pid) if c.pid else "-",
                c.runtime,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _ns_dig(argv: list[str]) -> int:
    parser = _parser(
        "dig",
        "DNS lookup from inside the target's network namespace. Servers, search list and ndots\n"
        "come from the target's /etc/resolv.conf (via /proc/PID/root) unless @SERVER is given.\n"
        "Unlike dig, the search list is applied by default (as the target's resolver does);\n"
        "+nosearch turns it off. Each name tried is listed with its status (';; search:');\n"
        "+showsearch prints each one's full answer, as dig +showsearch does.",
        "fleetkit ns dig -t 1294 +short @10.96.0.10 web.default.svc.cluster.local",
    )
    parser.add_argument("-p", "--port", type=_port, default=53, help="server port (default 53)")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    parser.add_argument("query", nargs="*", metavar="[@SERVER] NAME [TYPE] [+short] [+tcp]")
    args = parser.parse_args(argv)
    from fleetkit.errors import UsageError

    server = name = None
    rdtype = "A"
    short = tcp = showsearch = False
    search = True
    timeout_s: float | None = None
    for word in args.query:
        if word.startswith("@"):
            server = word[1:]
        elif word in ("+short", "+noshort"):
            short = word == "+short"
        elif word in ("+tcp", "+vc", "+notcp", "+novc"):
            tcp = word in ("+tcp", "+vc")
        elif word in ("+search", "+nosearch"):
            search = word == "+search"
        elif word in ("+showsearch", "+noshowsearch"):
            showsearch = word == "+showsearch"
            search = search or showsearch
        elif word.startswith("+time="):
            timeout_s = float(word.split("=", 1)[1])
        elif word.startswith("+"):
            raise UsageError(
                f"unsupported dig option {word!r}",
                hint="supported: +short +tcp +search +nosearch +showsearch +time=N",
            )
        elif name is None:
            name = word
        elif word.upper() in _DNS_TYPES or word.upper().startswith("TYPE"):
            rdtype = word.upper()
        else:
            raise UsageError(
                f"unexpected argument {word!r}",
                hint="usage: fleetkit ns dig TARGET [@SERVER] NAME [TYPE] [+short] [+tcp]",
            )
    if name is None:
        raise UsageError(
            "no name to look up", hint="e.g. fleetkit ns dig -t PID +short kubernetes.default"
        )
    pid = _resolve(args)
    from fleetkit.netns.dns import dig

    result = dig(
        pid,
        name,
        rdtype,
        server=server,
        port=args.port,
        tcp=tcp,
        search=search,
        timeout_s=timeout_s,
    )
    if args.output == "json":
        _emit_json(result.as_dict())
    elif short:
        for line in result.short():
            print(line)
    else:
        if showsearch:  # as dig +showsearch: each name's full answer before the last one
            for _name, step in result.steps[:-1]:
                sys.stdout.write(result.full_text(step))
        sys.stdout.write(result.full_text())
    return 0


_DNS_TYPES = {
    "A",
    "AAAA",
    "ANY",
    "CAA",
    "CNAME",
    "DNSKEY",
    "DS",
    "MX",
    "NS",
    "NAPTR",
    "PTR",
    "SOA",
    "SRV",
    "TXT",
    "HTTPS",
    "SVCB",
}


def _tcpdump_argv(argv: list[str]) -> list[str]:
    """``-t PID`` (a number right after -t) stays fleetkit's target; other -t are tcpdump's."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            out.extend(argv[i:])
            break
        if word == "-t" and i + 1 < len(argv) and argv[i + 1].isdigit():
            out += ["--target", argv[i + 1]]
            i += 2
            continue
        out.append(word)
        i += 1
    return out


def _snaplen(text: str) -> int:
    import argparse

    if not text.isdigit() or int(text) > 262144:
        raise argparse.ArgumentTypeError(f"invalid snaplen {text!r} (0..262144)")
    return int(text) or 262144  # tcpdump: 0 means the default, 262144


def _capture_parser() -> Any:
    parser = _parser(
        "capture",
        "Capture packets in the target's network namespace, with tcpdump's flags and output.\n"
        "FILTER is a pcap-filter(7) expression, compiled by libpcap exactly as tcpdump compiles\n"
        "it and run in the kernel. Lines are printed as tcpdump 4.99 prints them (-n, -v[vv], -e,\n"
        "-q, -x/-X/-A, -t...), or a pcap is written with -w; -r reads pcap and pcapng files.\n"
        "-t PID (a number after -t) names the target; -t alone is tcpdump's no-time-stamp flag.",
        'fleetkit ns capture -t 1294 -i eth0 -nn -s 0 port 80 and "tcp[tcpflags] & tcp-syn != 0"',
        pod_c=False,
        short_t=False,
    )
    parser.add_argument(
        "-i",
        "--interface",
        metavar="IFACE",
        help="interface, or 'any' (LINUX_SLL2 headers; default: first up non-loopback)",
    )
    parser.add_argument(
        "-c", "--count", type=_positive_int, metavar="N", help="exit after N packets"
    )
    parser.add_argument(
        "-w", "--write", metavar="FILE", help="write a pcap file ('-': standard output)"
    )
    parser.add_argument(
        "-r", "--read", metavar="FILE", help="print the packets of a pcap or pcapng file"
    )
    parser.add_argument(
        "-d",
        "--dump-program",
        action="store_true",
        help="print the compiled BPF (as tcpdump -ddd) and exit",
    )
    parser.add_argument("-D", "--list-interfaces", action="store_true", help="list interfaces")
    parser.add_argument(
        "-B",
        "--buffer-size",
        type=_positive_int,
        default=8192,
        metavar="KIB",
        help="kernel ring buffer in KiB, as tcpdump -B (default 8192; tcpdump's is 2048)",
    )
    parser.add_argument(
        "-s",
        "--snapshot-length",
        type=_snaplen,
        default=262144,
        metavar="N",
        help="bytes per packet",
    )
    printing = parser.add_argument_group("printing (as tcpdump)")
    printing.add_argument(
        "-n", action="count", default=0, help="accepted: fleetkit never looks names up"
    )
    printing.add_argument("-v", action="count", default=0, help="more protocol detail (-vv, -vvv)")
    printing.add_argument("-q", action="count", default=0, help="less protocol detail")
    printing.add_argument("-e", action="store_true", help="print the link-level header")
    printing.add_argument("-x", action="count", default=0, help="hex dump (-xx: with link header)")
    printing.add_argument(
        "-X", action="count", default=0, help="hex and ASCII dump (-XX: with link header)"
    )
    printing.add_argument("-A", action="count", default=0, help="ASCII dump (-AA: with header)")
    printing.add_argument(
        "-t",
        dest="tstamp",
        action="count",
        default=0,
        help="-t none, -tt epoch, -ttt delta, -tttt date, -ttttt since first",
    )
    printing.add_argument("-S", action="store_true", help="absolute TCP sequence numbers")
    printing.add_argument("-l", action="store_true", help="line-buffered output")
    printing.add_argument(
        "-U", action="store_true", help="accepted: pcap output is flushed per ring block"
    )
    printing.add_argument(
        "--immediate-mode", action="store_true", help="accepted: packets are delivered at once"
    )
    printing.add_argument("-Z", metavar="USER", help="drop privileges to USER once capturing")
    files = parser.add_argument_group("file rotation (with -w, as tcpdump)")
    files.add_argument(
        "-C", type=_positive_int, metavar="MB", help="a new file after MB million bytes"
    )
    files.add_argument(
        "-G", type=_positive_int, metavar="SECONDS", help="a new file every SECONDS (strftime FILE)"
    )
    files.add_argument(
        "-W", type=_positive_int, metavar="N", help="with -C: N names, reused; with -G: N files"
    )
    parser.add_argument("--duration", type=_seconds, metavar="SECONDS", help="stop after SECONDS")
    parser.add_argument("filter", nargs="*", metavar="FILTER")
    return parser


def _print_options(args: Any) -> Any:
    from fleetkit.netns.dissect import PrintOptions

    return PrintOptions(
        numeric=True,  # fleetkit never looks names up (tcpdump -n); -n/-nn are accepted
        verbose=args.v,
        quiet=args.q,
        ether=args.e,
        hex=args.x,
        hex_ascii=args.X,
        ascii=args.A,
        tstamp=min(args.tstamp, 5),
        absolute_seq=args.S,
    )


def _capture_many(targets: list[tuple[str, Any]], base: list[str]) -> int:
    """Several pods' captures at once (locally or on their nodes), merged in time order."""
    rest: list[str] = []
    write_path: str | None = None
    count: int | None = None
    i = 0
    while i < len(base):
        word = base[i]
        if word == "--":
            rest.extend(base[i:])
            break
        if word in ("-w", "--write", "-c", "--count") and i + 1 < len(base):
            if word in ("-w", "--write"):
                write_path = base[i + 1]
            else:
                count = _positive_int(base[i + 1])
            i += 2
            continue
        if word.startswith("--write="):
            write_path = word.split("=", 1)[1]
        else:
            rest.append(word)
        i += 1
    args = _capture_parser().parse_args(_tcpdump_argv(rest))
    if args.read is not None or args.dump_program or args.list_interfaces:
        from fleetkit.errors import UsageError

        raise UsageError("several --pod only capture", hint="name one pod for -r, -d or -D")
    from fleetkit.netns.merge import capture_many

    argvs = {
        pod: _child_argv("capture", pod, remote, [*rest, "-w", "-"]) for pod, remote in targets
    }

    def text(line: str) -> None:
        sys.stdout.write(line)
        if args.l:
            sys.stdout.flush()

    return capture_many(
        list(argvs), argvs.__getitem__, write_path, sys.stdout.buffer, text, _print_options(args),
        count,
    )  # fmt: skip


def _ns_capture(argv: list[str]) -> int:
    parser = _capture_parser()
    args = parser.parse_args(_tcpdump_argv(argv))
    from fleetkit.errors import UsageError

    expression = " ".join(args.filter)
    options = _print_options(args)
    if args.dump_program:
        from fleetkit.netns.capture import compile_filter

        # -i any: the program for LINUX_SLL2 (tcpdump 4.99 captures any cooked)
        program = compile_filter(
            expression, args.snapshot_length, 276 if args.interface == "any" else 1
        )
        print(len(program))
        for code, jt, jf, k in program:
            print(f"{code} {jt} {jf} {k}")
        return 0
    if args.read is not None:
        return _capture_read(args.read, expression, options, args.count, args.l)
    pid = _resolve(args)
    if args.list_interfaces:
        from fleetkit.netns.capture import list_interfaces

        sys.stdout.write(list_interfaces(pid))
        return 0
    import signal

    from fleetkit.netns.capture import capture

    stopping: list[bool] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(True)

    if args.buffer_size <= 0:
        raise UsageError(
            f"invalid buffer size {args.buffer_size}", hint="-B takes a size in KiB, e.g. -B 8192"
        )
    if args.write is not None and args.write != "-":
        import os

        target_dir = os.path.dirname(os.path.abspath(args.write))
        if os.path.isdir(args.write):
            raise UsageError(
                f"cannot write {args.write}: Is a directory",
                hint="-w takes a file name, e.g. -w out.pcap",
            )
        if not os.path.isdir(target_dir) or not os.access(target_dir, os.W_OK):
            raise UsageError(
                f"cannot write {args.write}: {target_dir} is not a writable directory",
                hint="choose a path in an existing, writable directory",
            )
    rotation = None
    if args.C is not None or args.G is not None or args.W is not None:
        if args.write is None or args.write == "-":
            raise UsageError("-C, -G and -W need -w FILE", hint="e.g. -w /tmp/trace.pcap -C 100")
        if args.W is not None and args.C is None and args.G is None:
            raise UsageError("-W needs -C or -G", hint="e.g. -C 100 -W 5 (a ring of 5 files)")
        from fleetkit.netns.capture import Rotation

        rotation = Rotation(
            None if args.C is None else args.C * 1_000_000,
            None if args.G is None else float(args.G),
            args.W,
        )
    write = sys.stdout.write

    def out(text: str) -> None:
        write(text)  # flushed when the kernel queue is empty (with -l: per packet)

    def log(line: str) -> None:
        sys.stderr.write(f"fleetkit: {line}\n")
        sys.stderr.flush()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    reader_gone = _reader_gone()
    stats = capture(
        pid,
        args.interface,
        expression,
        args.count,
        args.write,
        out,
        log,
        duration_s=args.duration,
        stop=lambda: bool(stopping) or reader_gone(),
        flush=sys.stdout.flush,
        buffer_bytes=args.buffer_size * 1024,
        options=options,
        snaplen=args.snapshot_length,
        user=args.Z,
        line_buffered=args.l,
        stdout=sys.stdout.buffer,
        rotation=rotation,
    )
    sys.stderr.write(
        f"{stats.captured} packets captured\n{stats.received} packets received by filter\n"
        f"{stats.dropped} packets dropped by kernel\n"
    )
    return 0


def _reader_gone() -> Any:
    """A check that standard output's reader went away (a pipe or socket whose other end
    closed: ``| head``, or the ssh session of a remote capture ended), so an idle capture stops
    too, not only one whose next write fails."""
    import os
    import select
    import stat

    try:
        mode = os.fstat(1).st_mode
    except OSError:
        return lambda: False
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return lambda: False
    watch = select.poll()
    watch.register(1, 0)  # POLLERR / POLLHUP are always reported
    return lambda: bool(watch.poll(0))


def _capture_read(
    path: str, expression: str, options: Any, count: int | None, line_buffered: bool
) -> int:
    """``-r FILE [FILTER]``: the file's packets (pcap or pcapng), filtered as tcpdump does."""
    from fleetkit.netns import _syscalls
    from fleetkit.netns.capture import Savefile, compile_filter
    from fleetkit.netns.dissect import Printer, linktype_banner
    from fleetkit.netns.errors import HelperError

    try:
        stream = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise HelperError(f"{path}: {exc.strerror}", hint="check the path") from None
    with stream:
        savefile = Savefile(stream)
        filtered = (
            _syscalls.offline_filter(
                compile_filter(expression, savefile.snaplen, savefile.linktype)
            )
            if expression
            else None
        )
        sys.stderr.write(
            f"reading from file {path}, link-type {linktype_banner(savefile.linktype)}, "
            f"snapshot length {savefile.snaplen}\n"
        )
        printer = Printer(options, savefile.linktype)
        write = sys.stdout.write
        try:
            # the file in large chunks, each one's lines formatted into one string
            for text in savefile.lines(printer, filtered, count):
                write(text)
                if line_buffered:
                    sys.stdout.flush()
        except OSError as exc:
            raise HelperError(f"{path}: {exc.strerror}", hint="check the file") from None
    return 0


def _ns_connect(argv: list[str]) -> int:
    parser = _parser(
        "connect",
        "TCP connect from inside the target's network namespace, with timing.",
        "fleetkit ns connect -t 1294 10.96.0.10:53",
    )
    parser.add_argument("hostport", metavar="HOST:PORT")
    parser.add_argument("--timeout", type=_seconds, default=5.0, metavar="SECONDS")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    from fleetkit.netns.probe import connect, split_hostport

    host, port = split_hostport(args.hostport)
    pid = _resolve(args)
    result = connect(pid, host, port, args.timeout)
    if args.output == "json":
        _emit_json(result.as_dict())
    else:
        print(
            f"connected to {result.address} from {result.local} in {result.connect_s * 1000:.3f} ms"
        )
    return 0


def _ns_http(argv: list[str]) -> int:
    parser = _parser(
        "http",
        "HTTP GET from inside the target's network namespace: status line and timing.",
        "fleetkit ns http -t 1294 http://10.0.0.80/healthz",
    )
    parser.add_argument("url", metavar="URL")
    parser.add_argument("--timeout", type=_seconds, default=10.0, metavar="SECONDS")
    parser.add_argument("-i", "--include", action="store_true", help="print the response headers")
    parser.add_argument("-b", "--body", action="store_true", help="print the response body")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    from fleetkit.netns.probe import http_get

    pid = _resolve(args)
    result = http_get(pid, args.url, args.timeout)
    if args.output == "json":
        _emit_json(result.as_dict())
        return 0 if result.status < 400 else 22
    print(f"{result.version} {result.status} {result.reason}")
    if args.include:
        for key, value in result.headers:
            print(f"{key}: {value}")
    print(
        f"# {result.size_bytes} bytes, connect {result.connect_s * 1000:.3f} ms, "
        f"total {result.total_s * 1000:.3f} ms",
        file=sys.stderr,
    )
    if args.body:
        sys.stdout.flush()
        sys.stdout.buffer.write(result.body)
    return 0 if result.status < 400 else 22


def _ns_ip(argv: list[str]) -> int:
    parser = _parser(
        "ip",
        "Links, addresses and routes of the target's network namespace, as ip prints them.",
        "fleetkit ns ip -t 1294 route",
    )
    parser.add_argument(
        "object", nargs="?", choices=("addr", "address", "route", "link"), default="addr"
    )
    parser.add_argument("-6", dest="v6", action="store_true", help="IPv6 routes")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    import socket

    from fleetkit.netns.links import dump, render_addr, render_route

    pid = _resolve(args)
    snap = dump(pid)
    if args.output == "json":
        _emit_json(snap.as_dict())
    elif args.object == "route":
        sys.stdout.write(render_route(snap, socket.AF_INET6 if args.v6 else socket.AF_INET))
    elif args.object == "link":
        snap.addresses.clear()
        sys.stdout.write(render_addr(snap))
    else:
        sys.stdout.write(render_addr(snap))
    return 0


def _ns_sockets(argv: list[str]) -> int:
    parser = _parser(
        "sockets",
        "TCP and UDP sockets of the target's network namespace, as 'ss -tuanp' lists them.",
        "fleetkit ns sockets -t 1294",
    )
    parser.add_argument(
        "-l", "--listening", action="store_true", help="only listening/unconnected sockets"
    )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    from fleetkit.netns.sockets import list_sockets, render

    pid = _resolve(args)
    found = list_sockets(pid)
    if args.listening:
        found = [s for s in found if s.state in ("LISTEN", "UNCONN")]
    if args.output == "json":
        _emit_json([s.as_dict() for s in found])
    else:
        sys.stdout.write(render(found))
    return 0


_SUBCOMMANDS = {
    "ps": _ns_ps,
    "dig": _ns_dig,
    "capture": _ns_capture,
    "connect": _ns_connect,
    "http": _ns_http,
    "ip": _ns_ip,
    "sockets": _ns_sockets,
}


_REMOTE_HELP = (
    ("--ssh", "USER@HOST", "run on that host over ssh"),
    ("--ssh-key", "FILE", "ssh -i FILE"),
    ("--ssh-option", "OPT", "ssh -o OPT (repeatable)"),
    ("--ssh-cache", "DIR", "where fleetkit is kept on the node"),
    ("--ssh-user", "USER", "user for API-found nodes (default root)"),
    ("--kubeconfig", "FILE", "find --pod's node from the Kubernetes API"),
    ("--context", "NAME", "the kubeconfig context"),
    ("--inventory", "FILE", "node names -> SSH hosts, as fleetkit play's -i (repeatable)"),
    ("--node", "NAME", "run on that node (inventory host or API node)"),
    ("--selector", "SEL", "every pod a label selector picks (kubectl -l)"),
    ("--namespace", "NS", "the namespace of --selector / --pod NAME (kubectl -n)"),
)

_REMOTE_FLAGS = (
    "--ssh",
    "--ssh-key",
    "--ssh-option",
    "--ssh-cache",
    "--ssh-user",
    "--kubeconfig",
    "--context",
    "--inventory",
    "--node",
    "--selector",
    "--namespace",
)


class _Where:
    """Where the helper runs: the remote flags of ``fleetkit ns`` (any position)."""

    def __init__(self) -> None:
        self.ssh: str | None = None
        self.key: str | None = None
        self.cache: str | None = None
        self.ssh_user = "root"
        self.options: list[str] = []
        self.kubeconfig: str | None = None
        self.context: str | None = None
        self.inventory: list[str] = []
        self.node: str | None = None
        self.selector: str | None = None
        self.namespace: str | None = None
        self.all_namespaces = False

    def api(self) -> bool:
        """Whether the Kubernetes API places the pods (or names the node)."""
        return bool(self.kubeconfig or self.selector or self.inventory or self.context)

    def any(self) -> bool:
        """Whether any remote flag was given."""
        return bool(self.ssh or self.api() or self.node or self.namespace or self.all_namespaces)


def _split_remote(argv: list[str]) -> tuple[_Where, list[str]]:
    """The remote flags (``--ssh``, ``--kubeconfig``, ``--inventory``, ``--selector``...) out of
    ARGV, before or after the subcommand; the rest, in order."""
    from fleetkit.errors import UsageError

    where = _Where()
    rest: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        name, eq, value = word.partition("=")
        if word == "--all-namespaces":
            where.all_namespaces = True
        elif name in _REMOTE_FLAGS:
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"{name} needs a value", hint="e.g. --ssh root@node1")
                value = argv[i + 1]
                i += 1
            if name == "--ssh":
                where.ssh = value
            elif name == "--ssh-key":
                where.key = value
            elif name == "--ssh-cache":
                import shlex

                if not value or shlex.quote(value) != value:
                    raise UsageError(
                        f"--ssh-cache {value!r}: only letters, digits and _ . / - please",
                        hint="e.g. --ssh-cache /var/tmp/fleetkit",
                    )
                where.cache = value
            elif name == "--ssh-user":
                where.ssh_user = value
            elif name == "--ssh-option":
                where.options.append(value)
            elif name == "--inventory":
                where.inventory.append(value)
            else:
                setattr(where, name[2:], value)
        elif word == "--":
            rest.extend(argv[i:])
            break
        else:
            rest.append(word)
        i += 1
    return where, rest


def _split_pods(argv: list[str]) -> tuple[list[str], list[str]]:
    """The ``--pod`` values out of a subcommand's ARGV; the rest."""
    pods: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            rest.extend(argv[i:])
            break
        if word == "--pod" and i + 1 < len(argv):
            pods.append(argv[i + 1])
            i += 2
            continue
        if word.startswith("--pod="):
            pods.append(word.split("=", 1)[1])
        else:
            rest.append(word)
        i += 1
    return pods, rest


def _inventory_remote(inventory: Any, node: str, addresses: tuple[str, ...], where: _Where) -> Any:
    """The inventory host for NODE (by name, else by an ansible_host equal to its address)."""
    import dataclasses

    from fleetkit.errors import UsageError
    from fleetkit.netns.remote import remote_from_host_vars

    name = node if node in inventory.hosts else None
    if name is None and addresses:
        for candidate in sorted(inventory.hosts):
            hv = inventory.host_vars(candidate)
            if str(hv.get("ansible_host", hv.get("ansible_ssh_host", candidate))) in addresses:
                name = candidate
                break
    if name is None:
        raise UsageError(
            f"node {node} is not in the inventory ({', '.join(where.inventory)})",
            hint="add it as a host named after the node, or whose ansible_host is its address",
        )
    remote = remote_from_host_vars(name, inventory.host_vars(name), where.cache)
    return dataclasses.replace(
        remote,
        key=remote.key or where.key,
        options=(*remote.options, *where.options),
    )


def _targets(where: _Where, pods: list[str]) -> list[tuple[str | None, Any]]:
    """(pod, Remote or None) for each place the helper runs."""
    import dataclasses

    from fleetkit.errors import UsageError
    from fleetkit.netns.remote import Remote

    if where.ssh and (where.api() or where.node):
        raise UsageError(
            "--ssh names the node; --kubeconfig, --inventory, --selector and --node find it",
            hint="give --ssh USER@HOST, or let the API and the inventory find the node",
        )
    if where.all_namespaces and not where.selector:
        raise UsageError(
            "--all-namespaces needs --selector", hint="e.g. --selector app=web --all-namespaces"
        )
    if where.namespace:
        pods = [p if "/" in p else f"{where.namespace}/{p}" for p in pods]
    inventory = None
    if where.inventory:
        from fleetkit.playbook.inventory import load_inventory

        inventory = load_inventory(where.inventory, unparsed_is_failed=True)

    def plain(address: str) -> Any:
        return Remote(
            f"{where.ssh_user}@{address}",
            where.key,
            tuple(where.options),
            *(() if where.cache is None else (where.cache,)),
        )

    if where.ssh:
        remote = dataclasses.replace(plain(""), destination=where.ssh)
        return [(p, remote) for p in pods] or [(None, remote)]
    if where.node:
        if where.selector:
            raise UsageError("--node and --selector both pick nodes", hint="give one of them")
        if inventory is not None:
            remote = _inventory_remote(inventory, where.node, (), where)
        elif where.kubeconfig or where.context:
            from fleetkit.netns.kube import KubeAPI

            addresses = KubeAPI(where.kubeconfig, where.context).node_addresses(where.node)
            if not addresses:
                raise UsageError(
                    f"node {where.node} has no address in its status",
                    hint="map node names to hosts with --inventory FILE",
                )
            remote = plain(addresses[0])
        else:
            raise UsageError(
                "--node needs --inventory or --kubeconfig",
                hint="--inventory maps node names to hosts as fleetkit play's inventory does",
            )
        return [(p, remote) for p in pods] or [(None, remote)]
    if not where.api():
        return [(p, None) for p in pods] or [(None, None)]
    from fleetkit.netns.kube import locate_pod, select_pods

    if where.selector is not None:
        if pods:
            raise UsageError("--selector and --pod both name pods", hint="give one of them")

        def warn(text: str) -> None:
            sys.stderr.write(f"fleetkit: {text}\n")

        placements = select_pods(
            where.selector,
            where.namespace,
            where.all_namespaces,
            where.kubeconfig,
            where.context,
            warn,
        )
    elif pods:
        placements = [locate_pod(p, where.kubeconfig, where.context) for p in pods]
    else:
        raise UsageError(
            "--kubeconfig and --inventory need --pod NAMESPACE/NAME, --selector or --node",
            hint="e.g. fleetkit ns capture --kubeconfig ~/.kube/config --pod shop/web",
        )
    out: list[tuple[str | None, Any]] = []
    for placement in placements:
        if inventory is not None:
            remote = _inventory_remote(inventory, placement.node, placement.addresses, where)
        else:
            remote = plain(placement.address)
        sys.stderr.write(
            f"fleetkit: pod {placement.pod} runs on {placement.node} ({placement.address})\n"
        )
        out.append((placement.pod, remote))
    return out


def _with_pod(pod: str | None, argv: list[str]) -> list[str]:
    """ARGV with ``--pod POD`` before any ``--``."""
    cut = argv.index("--") if "--" in argv else len(argv)
    return [*argv[:cut], *([] if pod is None else ["--pod", pod]), *argv[cut:]]


_APP: list[bytes] = []  # fleetkit's zip application, built once per run


def _child_argv(sub: str, pod: str | None, remote: Any, argv: list[str]) -> list[str]:
    """The command line of one pod's helper: here, or over ssh on its node."""
    args = _with_pod(pod, argv)
    if remote is None:
        return [sys.executable, "-m", "fleetkit", "ns", sub, *args]
    from fleetkit.netns.remote import build_zipapp, remote_command

    if not _APP:
        _APP.append(build_zipapp())
    return remote_command(remote, ["ns", sub, *args], _APP[0])


def _wants_json(argv: list[str]) -> bool:
    for i, word in enumerate(argv):
        if word == "--":
            break
        if word in ("-o", "--output") and argv[i + 1 : i + 2] == ["json"]:
            return True
        if word in ("-ojson", "--output=json"):
            return True
    return False


def _run_many(sub: str, targets: list[tuple[str | None, Any]], argv: list[str]) -> int:
    """One helper per pod, all at once; their output in pod order, each line prefixed with the
    pod's name (or, with ``-o json``, one object keyed by pod); the worst exit status."""
    from fleetkit.netns.merge import run_many

    labels = [pod or "-" for pod, _ in targets]
    argvs = [_child_argv(sub, pod, remote, argv) for pod, remote in targets]
    return run_many(labels, argvs, sys.stdout.buffer, sys.stderr.buffer, _wants_json(argv))


def _remote_write(sub: str, argv: list[str]) -> tuple[list[str], str | None]:
    """``capture -w FILE`` runs as ``-w -`` on the node; FILE is written here."""
    if sub != "capture":
        return argv, None
    out = list(argv)
    for i, word in enumerate(out):
        if word == "--":
            break
        if word in ("-w", "--write") and i + 1 < len(out) and out[i + 1] != "-":
            path = out[i + 1]
            out[i + 1] = "-"
            return out, path
        if word.startswith("--write=") and word != "--write=-":
            out[i] = "--write=-"
            return out, word.split("=", 1)[1]
    return out, None


def _ns(argv: list[str]) -> int:
    where, argv = _split_remote(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(NS_HELP)
        return 0 if argv else 2
    handler = _SUBCOMMANDS.get(argv[0])
    if handler is None:
        from fleetkit.errors import UsageError

        raise UsageError(
            f"unknown subcommand {argv[0]!r}", hint=f"one of: {', '.join(_SUBCOMMANDS)}"
        )
    sub = argv[0]
    if "-h" in argv[1:] or "--help" in argv[1:]:
        return handler(argv[1:])
    pods, rest = _split_pods(argv[1:])
    if not where.any() and len(pods) <= 1:
        return handler(argv[1:])
    if sub == "ps" and (pods or where.selector):
        from fleetkit.errors import UsageError

        raise UsageError("ns ps lists a node's pods", hint="name the node: --node NAME or --ssh")
    targets = _targets(where, pods)
    if len(targets) == 1:
        pod, remote = targets[0]
        args = _with_pod(pod, rest)
        if remote is None:
            return handler(args)
        from fleetkit.netns.remote import run_remote

        args, write_path = _remote_write(sub, args)
        return run_remote(remote, ["ns", sub, *args], write_path)
    if sub == "capture":
        return _capture_many([(p or "-", r) for p, r in targets], rest)
    return _run_many(sub, targets, rest)
