"""``fleetkit pull|push|copy|sync|inspect|delete|catalog|login|logout|tags|manifest``.

The registry client's commands; ``copy``/``sync``/``inspect`` speak skopeo's transports.

Results go to stdout (text or ``-o json``); progress, ``--trace`` and retries to stderr.
Exit codes: 0 success, 1 failure (registry error, network, verification, destination),
2 usage (bad flags, invalid reference or location), 130 interrupted.
"""

from __future__ import annotations

import getpass
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any

from fleetkit.cli._options import ArgumentParser, stderr_is_tty
from fleetkit.errors import FleetkitError, UsageError


def _import_aiohttp_without_eager_tls() -> None:
    """Import aiohttp without the two TLS contexts it builds at import time.

    Building them loads the system CA store twice (tens of ms, the larger part of this
    command's start-up). The client's transport never uses them: it passes its own context to
    every https request, created on first use. So, in this process only, they are made empty.
    """
    if "aiohttp.connector" in sys.modules:
        return
    import ssl

    real_default = ssl.create_default_context
    real_paths = ssl.SSLContext.set_default_verify_paths

    def bare(*_args: object, **_kwargs: object) -> ssl.SSLContext:
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

    def no_paths(self: ssl.SSLContext) -> None:
        return None

    ssl.create_default_context = bare
    ssl.SSLContext.set_default_verify_paths = no_paths  # type: ignore[method-assign]
    try:
        import aiohttp.connector  # noqa: F401
    finally:
        ssl.create_default_context = real_default
        ssl.SSLContext.set_default_verify_paths = real_paths  # type: ignore[method-assign]


_import_aiohttp_without_eager_tls()

from fleetkit.registry.client import (  # noqa: E402
    Credential,
    Event,
    RetryPolicy,
    get_manifest,
    list_tags,
    login,
    logout,
    pull,
    push,
)
from fleetkit.registry.client.commands import catalog, delete, normalize_registry  # noqa: E402
from fleetkit.registry.client.copy import copy  # noqa: E402
from fleetkit.registry.client.events import printable, short_id  # noqa: E402
from fleetkit.registry.client.inspect import inspect, render  # noqa: E402
from fleetkit.registry.client.sync import sync  # noqa: E402

__all__ = ["main"]


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise UsageError(
        f"invalid boolean {text!r}", hint="use --tls-verify=true or --tls-verify=false"
    )


_TRANSPORTS_HELP = """transports (skopeo's):
  docker://[REGISTRY/]REPO[:TAG|@DIGEST]   a registry
  oci:DIR[:TAG]                            an OCI image layout
  oci-archive:FILE[:TAG]                   a tar of an OCI image layout
  docker-archive:FILE[:REF]                docker save / docker load's tar
  dir:DIR                                  skopeo's directory (manifest.json, blobs by hex)
"""


def _common(
    p: ArgumentParser, *, creds: bool = True, output: bool = True, tls: bool = True
) -> None:
    if tls:
        p.add_argument(
            "--tls-verify",
            type=_bool,
            default=True,
            metavar="BOOL",
            help="require HTTPS with a verified certificate (default true; localhost and "
            "127.0.0.0/8 always use plain HTTP, as docker does)",
        )
    if creds:
        p.add_argument("-u", "--username", help="username (instead of the stored credentials)")
        p.add_argument(
            "--password-stdin", action="store_true", help="read the password from standard input"
        )
    p.add_argument(
        "--retry-times", type=int, default=5, metavar="N", help="attempts per request (default 5)"
    )
    p.add_argument(
        "--trace",
        action="store_true",
        help="print each HTTP request and response head to stderr (secrets redacted)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    if output:
        p.add_argument("-o", "--output", choices=("text", "json"), default="text")


def _parser(command: str) -> ArgumentParser:
    if command == "pull":
        p = ArgumentParser(
            prog="fleetkit pull",
            description="Pull an image into an OCI layout or a docker-archive, resumably and "
            "verified. Blobs are streamed to disk and checked against their digests; a broken "
            "download is resumed with Range (also by the next run).",
            epilog="destinations:\n  oci:DIR[:TAG]              OCI image layout (shared, "
            "deduplicated)\n  docker-archive:FILE[:REF]  tar for docker load / podman load\n\n"
            "example:\n  fleetkit pull 127.0.0.1:5000/nginx/ingress:v1.0.0 oci:images:ingress",
        )
        p.add_argument("image", metavar="IMAGE", help="[registry[:port]/]repo[:tag][@digest]")
        p.add_argument("dest", metavar="DEST", help="oci:DIR[:TAG] or docker-archive:FILE[:REF]")
        p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="default: this machine")
        p.add_argument(
            "--all-platforms", action="store_true", help="pull every manifest of an index"
        )
        p.add_argument(
            "--max-concurrent-downloads", type=int, default=3, metavar="N", help="default 3"
        )
        _common(p)
    elif command == "push":
        p = ArgumentParser(
            prog="fleetkit push",
            description="Push an image from an OCI layout or a docker-archive. Blobs the "
            "registry has are skipped; --mount-from tries a cross-repository mount first.",
            epilog="example:\n  fleetkit push oci:images:ingress 127.0.0.1:5000/nginx/ingress:v1.0.0",
        )
        p.add_argument(
            "source", metavar="SOURCE", help="oci:DIR[:TAG] or docker-archive:FILE[:REF]"
        )
        p.add_argument("image", metavar="IMAGE", help="[registry[:port]/]repo[:tag]")
        p.add_argument(
            "--mount-from",
            action="append",
            default=[],
            metavar="REPO",
            help="repository on the same registry to mount blobs from (repeatable)",
        )
        p.add_argument(
            "--chunk-size", type=int, metavar="BYTES", help="upload in chunks (default monolithic)"
        )
        p.add_argument("--max-concurrent-uploads", type=int, default=3, metavar="N")
        _common(p)
    elif command == "login":
        p = ArgumentParser(
            prog="fleetkit login",
            description="Check credentials against a registry and store them as docker does "
            "($DOCKER_CONFIG/config.json, or the configured credential helper).",
            epilog="example:\n  echo secret | fleetkit login 127.0.0.1:5000 -u alice --password-stdin\n"
            "  fleetkit login 127.0.0.1:5000 -u alice",
        )
        p.add_argument("registry", metavar="REGISTRY")
        p.add_argument("-p", "--password", help="password (insecure: prefer --password-stdin)")
        _common(p, output=False)
    elif command == "logout":
        p = ArgumentParser(
            prog="fleetkit logout",
            description="Remove stored credentials for a registry.",
            epilog="example:\n  fleetkit logout 127.0.0.1:5000",
        )
        p.add_argument("registry", metavar="REGISTRY")
        p.add_argument("-q", "--quiet", action="store_true")
    elif command == "tags":
        p = ArgumentParser(
            prog="fleetkit tags",
            description="List a repository's tags (all pages).",
            epilog="example:\n  fleetkit tags 127.0.0.1:5000/nginx/ingress",
        )
        p.add_argument("repository", metavar="REPOSITORY", help="[registry[:port]/]repo")
        _common(p)
    elif command == "manifest":
        p = ArgumentParser(
            prog="fleetkit manifest",
            description="Print an image's manifest exactly as the registry serves it "
            "(digest verified), or with -o json its descriptor.",
            epilog="example:\n  fleetkit manifest 127.0.0.1:5000/nginx/ingress:v1.0.0 -o json",
        )
        p.add_argument("image", metavar="IMAGE")
        p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="choose from an index")
        p.add_argument(
            "--descriptor",
            action="store_true",
            help="print the manifest's descriptor (mediaType, digest, size) as JSON instead",
        )
        _common(p)
    elif command == "copy":
        p = ArgumentParser(
            prog="fleetkit copy",
            description="Copy an image between any two of skopeo's transports. Manifests are "
            "copied byte for byte (digests survive); every blob is verified. Registry to "
            "registry on one host mounts blobs instead of copying them.",
            epilog=_TRANSPORTS_HELP + "\nexample:\n  fleetkit copy docker://127.0.0.1:5000/"
            "nginx/ingress:v1.0.0 oci-archive:ingress.tar:v1.0.0",
        )
        p.add_argument("source", metavar="SRC", help="TRANSPORT:DETAILS")
        p.add_argument("destination", metavar="DST", help="TRANSPORT:DETAILS")
        p.add_argument("-a", "--all", action="store_true", help="copy every image of an index")
        p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="default: this machine")
        p.add_argument(
            "--preserve-digests",
            action="store_true",
            help="fail rather than copy when a digest could not be kept (docker-archive)",
        )
        p.add_argument("--src-tls-verify", type=_bool, default=True, metavar="BOOL")
        p.add_argument("--dest-tls-verify", type=_bool, default=True, metavar="BOOL")
        p.add_argument("--src-creds", metavar="USER:PASSWORD", help="for the source registry")
        p.add_argument("--dest-creds", metavar="USER:PASSWORD", help="for the destination")
        _common(p, creds=False, tls=False)
    elif command == "sync":
        p = ArgumentParser(
            prog="fleetkit sync",
            description="Copy every image a YAML file names (skopeo sync's format: registries, "
            "repositories, tags or tag regexes) to a registry or a directory -- what an "
            "air-gapped site needs. Images land at DEST/NAME:TAG (NAME: the repository's last "
            "component; with --scoped registry/repository).",
            epilog="YAML:\n  127.0.0.1:5000:\n    images:\n      nginx/ingress: [v1.0.0]\n"
            "      busybox: []                  # every tag\n    images-by-tag-regex:\n"
            "      alpine: ^3\\.1[89]$\n    tls-verify: false\n\n"
            "example:\n  fleetkit sync --src yaml sync.yaml dir:/srv/mirror",
        )
        p.add_argument("--src", choices=("yaml",), default="yaml", help="source kind (yaml)")
        p.add_argument("config", metavar="YAML")
        p.add_argument(
            "destination",
            metavar="DEST",
            help="docker://REGISTRY[/PREFIX] or dir:DIR (or, with --dest, as skopeo spells it)",
        )
        p.add_argument(
            "--dest",
            choices=("docker", "dir"),
            help="skopeo's spelling: DEST is then REGISTRY[/PREFIX] or DIR",
        )
        p.add_argument("-a", "--all", action="store_true", help="copy every image of an index")
        p.add_argument("--scoped", action="store_true", help="prefix names with the registry")
        p.add_argument("--dry-run", action="store_true", help="list what would be copied")
        p.add_argument("--dest-tls-verify", type=_bool, default=True, metavar="BOOL")
        p.add_argument("--dest-creds", metavar="USER:PASSWORD", help="for the destination")
        _common(p, creds=False, tls=False)
    elif command == "inspect":
        p = ArgumentParser(
            prog="fleetkit inspect",
            description="Describe an image as skopeo inspect does (Name, Digest, RepoTags, "
            "Created, Architecture, Os, Labels, Env, Layers), or print its raw "
            "manifest (--raw) or config (--config).",
            epilog=_TRANSPORTS_HELP + "\nexample:\n  fleetkit inspect "
            "docker://127.0.0.1:5000/nginx/ingress:v1.0.0 --config",
        )
        p.add_argument("image", metavar="IMAGE", help="TRANSPORT:DETAILS")
        p.add_argument("--raw", action="store_true", help="the manifest (or index) as stored")
        p.add_argument("--config", action="store_true", help="the image's config")
        p.add_argument("-n", "--no-tags", action="store_true", help="do not list RepoTags")
        p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="default: this machine")
        _common(p, output=False)
    elif command == "delete":
        p = ArgumentParser(
            prog="fleetkit delete",
            description="Delete a manifest from a registry. A tag is resolved to its digest "
            "first, so every tag pointing at that manifest goes (as skopeo delete does); "
            "blobs are freed by the registry's gc.",
            epilog="example:\n  fleetkit delete docker://127.0.0.1:5000/nginx/ingress:v1.0.0",
        )
        p.add_argument("image", metavar="IMAGE", help="[docker://]registry/repo[:tag|@digest]")
        _common(p)
    elif command == "catalog":
        p = ArgumentParser(
            prog="fleetkit catalog",
            description="List a registry's repositories (GET /v2/_catalog, every page).",
            epilog="example:\n  fleetkit catalog 127.0.0.1:5000",
        )
        p.add_argument("registry", metavar="REGISTRY")
        _common(p)
    else:  # pragma: no cover - the dispatcher only routes the six commands
        raise UsageError(f"unknown command {command!r}")
    return p


def _credential(args: Any) -> Credential | None:
    username = getattr(args, "username", None)
    password = getattr(args, "password", None)
    if getattr(args, "password_stdin", False):
        if password:
            raise UsageError(
                "--password and --password-stdin are mutually exclusive",
                hint="use --password-stdin only",
            )
        if not username:
            raise UsageError("--password-stdin needs --username", hint="add -u USER")
        password = sys.stdin.read().rstrip("\r\n")
    if username and password is None:
        raise UsageError("--username needs a password", hint="pass it with --password-stdin")
    if username:
        return Credential(username=username, password=password or "")
    return None


def _trace_sink(args: Any) -> Any:
    if not getattr(args, "trace", False):
        return None

    def sink(text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    return sink


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


@dataclass
class _Row:
    digest: str
    size: int
    offset: int = 0
    status: str = "Waiting"
    started: float = 0.0
    start_offset: int = 0


@dataclass
class Progress:
    """Renders :class:`Event` s: bars on a TTY, one line per blob otherwise, nothing with -q.

    On a TTY every line fits the terminal's width (``width``, else measured at each redraw),
    so a redraw in place never wraps and smears; notes (retries) are printed above the bars.
    """

    stream: IO[str]
    mode: str  # "tty" | "lines" | "quiet"
    verb: str = "Download"
    rows: dict[str, _Row] = field(default_factory=dict)
    drawn: int = 0
    last_draw: float = 0.0
    width: int = 0  # 0: the terminal's width

    def note(self, message: str) -> None:
        """A line that is not about one blob (a retry of the ping or of a manifest)."""
        if self.mode == "quiet":
            return
        line = f"fleetkit: {printable(message)}"
        if self.mode == "lines":
            self.stream.write(line + "\n")
            self.stream.flush()
            return
        up = f"\x1b[{self.drawn}A" if self.drawn else ""
        self.stream.write(f"{up}\x1b[2K{_fit(line, self._columns() - 1)}\n")
        self.drawn = 0  # the bars are drawn again below the note
        self.draw()

    def __call__(self, ev: Event) -> None:
        if self.mode == "quiet" or not ev.digest or ev.kind == "resolved":
            return
        row = self.rows.get(ev.digest)
        if row is None:
            row = self.rows[ev.digest] = _Row(ev.digest, ev.size)
        row.offset = ev.offset
        sid = short_id(ev.digest)
        line: str | None = None
        if ev.kind == "start":
            row.status, row.started, row.start_offset = (
                f"{self.verb}ing",
                time.monotonic(),
                ev.offset,
            )
            if ev.offset:
                row.status = f"Resuming at {_human(ev.offset)}"
                line = f"{sid}: resuming {self.verb.lower()} at {_human(ev.offset)} of {_human(ev.size)}"
        elif ev.kind == "done":
            row.status = f"{self.verb} complete"
            extra = f", resumed at {_human(row.start_offset)}" if row.start_offset else ""
            line = f"{sid}: {self.verb} complete ({_human(ev.size)}{extra})"
        elif ev.kind == "exists":
            row.status = "Already exists"
            line = f"{sid}: Already exists"
        elif ev.kind == "mounted":
            row.status = f"Mounted from {printable(ev.message)}"
            line = f"{sid}: Mounted from {printable(ev.message)}"
        elif ev.kind == "retry":
            row.status = f"Retrying: {printable(ev.message)}"
            line = f"{sid}: {printable(ev.message)}"
        elif ev.kind == "failed":
            row.status = "Failed"
            line = f"{sid}: failed: {printable(ev.message)}"
        if self.mode == "lines":
            if line:
                self.stream.write(line + "\n")
                self.stream.flush()
            return
        now = time.monotonic()
        if ev.kind != "progress" or now - self.last_draw > 0.1:
            self.draw(now)

    def _columns(self) -> int:
        return self.width or shutil.get_terminal_size((80, 24)).columns

    def _bar(self, row: _Row, now: float, columns: int = 0) -> str:
        """One row, at most ``columns - 1`` characters (the last column would wrap)."""
        room = (columns or self._columns()) - 1
        sid = short_id(row.digest)
        if row.status == "Waiting" or not (
            row.status.endswith("ing") or row.status.startswith("Resuming")
        ):
            return _fit(f"{sid}: {row.status}", room)
        elapsed = max(now - row.started, 1e-6)
        rate = (row.offset - row.start_offset) / elapsed
        eta = f"{(row.size - row.offset) / rate:.0f}s" if rate > 0 else "?"
        head = f"{sid}: {row.status.split(':')[0]} "
        sizes = f" {_human(row.offset)}/{_human(row.size)}"
        speed = f" {_human(rate)}/s ETA {eta}"
        for tail in (sizes + speed, sizes, ""):
            width = min(30, room - len(head) - len(tail) - 2)
            if width >= 10:
                break
        else:
            return _fit(head + sizes, room)
        frac = row.offset / row.size if row.size else 1.0
        filled = min(width, int(frac * width))
        bar = "=" * max(0, filled - 1) + (">" if filled else "") + " " * (width - filled)
        return _fit(f"{head}[{bar}]{tail}", room)

    def draw(self, now: float | None = None) -> None:
        if self.mode != "tty":
            return
        now = time.monotonic() if now is None else now
        self.last_draw = now
        columns = self._columns()
        out = []
        if self.drawn:
            out.append(f"\x1b[{self.drawn}A")
        for row in self.rows.values():
            out.append("\x1b[2K" + self._bar(row, now, columns) + "\n")
        self.drawn = len(self.rows)
        self.stream.write("".join(out))
        self.stream.flush()


def _fit(line: str, room: int) -> str:
    return line if len(line) <= room else line[: max(0, room - 3)] + "..."


def _progress(args: Any, verb: str) -> Progress:
    if getattr(args, "quiet", False):
        mode = "quiet"
    elif stderr_is_tty() and not getattr(args, "trace", False):
        mode = "tty"
    else:
        mode = "lines"
    return Progress(sys.stderr, mode, verb)


def _retry(args: Any) -> RetryPolicy:
    if args.retry_times < 1:
        raise UsageError("--retry-times must be at least 1", hint="the default is 5")
    return RetryPolicy(attempts=args.retry_times)


def _remote(
    args: Any, verb: str, progress: Progress | None = None, credential: bool = True
) -> dict[str, Any]:
    """The one setup every verb that talks to a registry takes from its flags: TLS
    verification, credential (flags, else the stored one), retries, trace, retry notices."""
    options: dict[str, Any] = {
        "tls_verify": args.tls_verify,
        "retry": _retry(args),
        "trace": _trace_sink(args),
        "notify": (progress or _progress(args, verb)).note,
    }
    if credential:
        options["credential"] = _credential(args)
    return options


def _emit(args: Any, doc: Any, text: str) -> None:
    if getattr(args, "output", "text") == "json":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif text:
        sys.stdout.write(text + "\n")


def _pull(args: Any) -> int:
    progress = _progress(args, "Download")
    try:
        result = pull(
            args.image,
            args.dest,
            platform=args.platform,
            all_platforms=args.all_platforms,
            max_concurrent_downloads=args.max_concurrent_downloads,
            events=progress,
            **_remote(args, "Download", progress),
        )
    finally:
        progress.draw()
    fetched = [b for b in result.blobs if b.status != "exists"]
    if fetched:
        status = (
            f"Downloaded newer image for {result.reference} ({len(fetched)} blob(s), "
            f"{_human(result.bytes_downloaded)}) to {result.destination}"
        )
    else:
        status = f"Image is up to date for {result.reference} in {result.destination}"
    text = f"Digest: {result.digest}\nStatus: {status}"
    if result.index_digest:
        text = f"Index: {result.index_digest}\n" + text
    _emit(args, result.to_json(), text)
    return 0


def _push(args: Any) -> int:
    progress = _progress(args, "Push")
    try:
        result = push(
            args.source,
            args.image,
            mount_from=tuple(args.mount_from),
            chunk_size=args.chunk_size,
            max_concurrent_uploads=args.max_concurrent_uploads,
            events=progress,
            **_remote(args, "Push", progress),
        )
    finally:
        progress.draw()
    tag = result.reference.rpartition(":")[2] if "@" not in result.reference else result.reference
    _emit(args, result.to_json(), f"{tag}: digest: {result.digest} size: {result.size}")
    return 0


def _login(args: Any) -> int:
    username = args.username
    if not username:
        if args.password_stdin or not sys.stdin.isatty():
            raise UsageError(
                "login needs --username", hint="fleetkit login REGISTRY -u USER --password-stdin"
            )
        username = input("Username: ")
    if args.password_stdin:
        if args.password:
            raise UsageError(
                "--password and --password-stdin are mutually exclusive",
                hint="use --password-stdin only",
            )
        password = sys.stdin.read().rstrip("\r\n")
    elif args.password is not None:
        password = args.password
        print(
            "WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
            file=sys.stderr,
        )
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
    else:
        raise UsageError("login needs a password", hint="pipe it to --password-stdin")
    if not password:
        raise UsageError("empty password", hint="pipe the password to --password-stdin")
    result = login(
        args.registry,
        Credential(username=username, password=password),
        **_remote(args, "Login", credential=False),
    )
    if not args.quiet:
        print(f"Credentials stored in {result.config}", file=sys.stderr)
    print("Login Succeeded")
    return 0


def _logout(args: Any) -> int:
    registry = normalize_registry(args.registry)
    if logout(args.registry):
        print(f"Removing login credentials for {registry}")
    else:
        print(f"Not logged in to {registry}", file=sys.stderr)
    return 0


def _tags(args: Any) -> int:
    tags = list_tags(
        args.repository,
        **_remote(args, "List"),
    )
    # tag names come from the network: escaped for the terminal (JSON escapes them itself)
    _emit(args, {"name": args.repository, "tags": tags}, "\n".join(printable(t) for t in tags))
    return 0


def _manifest(args: Any) -> int:
    manifest = get_manifest(
        args.image,
        platform=args.platform,
        **_remote(args, "Get"),
    )
    if args.descriptor:
        sys.stdout.write(
            json.dumps({**manifest.descriptor.to_json(), "reference": args.image}, indent=2) + "\n"
        )
    elif args.output == "json":  # the manifest itself, pretty-printed (as crane | jq does)
        sys.stdout.write(json.dumps(manifest.doc, indent=2) + "\n")
    elif sys.stdout.isatty():
        # on a terminal the registry's bytes are text to display: escapes cannot act
        text = manifest.raw.decode("utf-8", "backslashreplace")
        sys.stdout.write(printable(text, keep="\n\t").rstrip("\n") + "\n")
        sys.stdout.flush()
    else:  # piped: exactly the bytes the digest covers
        sys.stdout.buffer.write(manifest.raw)
        if not manifest.raw.endswith(b"\n"):
            sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()
    return 0


def _creds(text: str | None, flag: str) -> Credential | None:
    if text is None:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise UsageError(f"{flag} expects USER:PASSWORD", hint=f"e.g. {flag} alice:s3cret")
    return Credential(username=user, password=password)


def _docker_ref(text: str) -> str:
    return text[len("docker://") :] if text.startswith("docker://") else text


def _copy(args: Any) -> int:
    progress = _progress(args, "Copy")
    try:
        result = copy(
            args.source,
            args.destination,
            all_platforms=args.all,
            platform=args.platform,
            preserve_digests=args.preserve_digests,
            src_tls_verify=args.src_tls_verify,
            dest_tls_verify=args.dest_tls_verify,
            src_credential=_creds(args.src_creds, "--src-creds"),
            dest_credential=_creds(args.dest_creds, "--dest-creds"),
            retry=_retry(args),
            events=progress,
            trace=_trace_sink(args),
            notify=progress.note,
        )
    finally:
        progress.draw()
    mounted = f", {result.mounted} mounted" if result.mounted else ""
    text = (
        f"Copied {result.source} to {result.destination}\nDigest: {result.digest} "
        f"({result.manifests} manifest(s), {result.blobs} blob(s){mounted})"
    )
    _emit(args, result.to_json(), "" if args.quiet else text)
    return 0


def _sync(args: Any) -> int:
    progress = _progress(args, "Copy")

    def started(source: str, target: str) -> None:
        progress.note(f"copying {source} to {target}")

    destination = args.destination
    if args.dest == "docker" and not destination.startswith("docker://"):
        destination = f"docker://{destination}"
    elif args.dest == "dir" and not destination.startswith("dir:"):
        destination = f"dir:{destination}"
    result = sync(
        args.config,
        destination,
        scoped=args.scoped,
        all_platforms=args.all,
        dry_run=args.dry_run,
        dest_tls_verify=args.dest_tls_verify,
        dest_credential=_creds(args.dest_creds, "--dest-creds"),
        retry=_retry(args),
        trace=_trace_sink(args),
        notify=progress.note,
        on_copy=started,
    )
    lines = [f"{'would copy' if args.dry_run else 'copied'} {s} -> {d}" for s, d in result.planned]
    lines.append(f"{len(result.planned)} image(s)")
    _emit(args, result.to_json(), "\n".join(printable(line) for line in lines))
    return 0


def _inspect(args: Any) -> int:
    result = inspect(
        args.image,
        platform=args.platform,
        no_tags=args.no_tags,
        **_remote(args, "Get"),
    )
    if args.raw:  # exactly the stored bytes (skopeo inspect --raw / --config --raw)
        raw = result.raw_config if args.config else result.raw_manifest
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
        return 0
    if args.config:
        sys.stdout.write(render(json.loads(result.raw_config)) + "\n")
        return 0
    sys.stdout.write(render(result.info) + "\n")
    return 0


def _delete(args: Any) -> int:
    digest = delete(
        _docker_ref(args.image),
        **_remote(args, "Delete"),
    )
    _emit(args, {"name": args.image, "digest": digest}, f"Deleted {digest}")
    return 0


def _catalog(args: Any) -> int:
    names = catalog(
        args.registry,
        **_remote(args, "List"),
    )
    _emit(args, {"repositories": names}, "\n".join(printable(n) for n in names))
    return 0


_HANDLERS = {
    "copy": _copy,
    "sync": _sync,
    "inspect": _inspect,
    "delete": _delete,
    "catalog": _catalog,
    "pull": _pull,
    "push": _push,
    "login": _login,
    "logout": _logout,
    "tags": _tags,
    "manifest": _manifest,
}


def main(command: str, argv: list[str]) -> int:
    parser = _parser(command)
    if any(a in ("-h", "--help") for a in argv):
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    try:
        return _HANDLERS[command](args)
    except FleetkitError as exc:
        # errors quote registries, headers and archive members: one line each, no escapes
        exc.message = printable(exc.message)
        exc.hint = printable(exc.hint) if exc.hint else exc.hint
        raise
