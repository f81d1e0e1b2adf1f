"""``fleetkit registry serve|token-server|htpasswd add|gc``: run and maintain the registry."""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import os
import sys
from argparse import Namespace
from typing import Any

from fleetkit.cli._options import ArgumentParser
from fleetkit.errors import UsageError

__all__ = ["main"]

USAGE = """usage: fleetkit registry {serve,token-server,htpasswd,gc} ...

subcommands:
  serve         run the OCI registry (and, with --auth token, its token service)
  token-server  run only the Docker token service (for another registry, e.g. distribution)
  htpasswd      add, remove or list the users of an htpasswd file (bcrypt)
  gc            delete blobs no manifest references (refuses while a registry serves a
                directory root; on S3 keeps what changed within --grace)

example:
  fleetkit registry serve --root ./registry-data --listen 127.0.0.1:5000
"""


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("fleetkit.registry")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    logging.getLogger("fleetkit.registry.access").setLevel(
        logging.WARNING if quiet else logging.INFO
    )


def _common_token_flags(p: ArgumentParser) -> None:
    p.add_argument("--service", default="fleetkit-registry", help="token audience / service name")
    p.add_argument("--issuer", default="fleetkit-token-issuer", help="token issuer (iss)")
    p.add_argument(
        "--token-key", metavar="FILE", help="P-256 signing key (PEM); generated if missing"
    )
    p.add_argument(
        "--token-cert",
        metavar="FILE",
        help="certificate of --token-key (default: KEY with .crt); generated with the key; "
        "give it to a registry as its rootcertbundle",
    )
    p.add_argument(
        "--token-expiry", type=int, default=300, metavar="SECONDS", help="token lifetime (300)"
    )
    p.add_argument("--htpasswd", metavar="FILE", help="users (bcrypt htpasswd)")
    p.add_argument("--policy", metavar="FILE", help="YAML access policy")
    _login_flags(p)


def _login_flags(p: ArgumentParser) -> None:
    p.add_argument(
        "--login-failures-per-user",
        type=int,
        default=10,
        metavar="N",
        help="failed logins of one user per minute before 429 (default 10)",
    )
    p.add_argument(
        "--login-failures-per-client",
        type=int,
        default=30,
        metavar="N",
        help="failed logins from one address per minute before 429 (default 30)",
    )


def _server_flags(p: ArgumentParser, default_listen: str) -> None:
    p.add_argument(
        "--listen",
        default=default_listen,
        metavar="HOST:PORT",
        help=f"address to listen on (default {default_listen}; port 0 picks a free one)",
    )
    p.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", metavar="FILE", help="the private key of --tls-cert (PEM)")
    p.add_argument(
        "--insecure-listen",
        action="store_true",
        help="allow plain HTTP on a non-loopback address",
    )
    p.add_argument("--ready-file", metavar="FILE", help="write the URL here once listening")
    p.add_argument("-q", "--quiet", action="store_true", help="no access log")
    p.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="serve /metrics on this separate listener (loopback unless --insecure-listen); "
        "with --auth htpasswd/token /metrics is served nowhere else",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="close a connection that sends no complete request head for this long (60)",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="cut off a request body that sends nothing for this long (60)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=1024,
        metavar="N",
        help="open connections at most; more get 503 (1024, lowered to fit ulimit -n)",
    )


def _proxy_flags(p: ArgumentParser) -> None:
    g = p.add_argument_group("pull-through cache (proxy.* in --config; flags win)")
    g.add_argument(
        "--proxy-remote",
        metavar="URL",
        help="cache every repository of this upstream registry (distribution's proxy.remoteurl); "
        "pushes are then refused",
    )
    g.add_argument("--proxy-username", metavar="NAME", help="user name at the upstream")
    g.add_argument(
        "--proxy-password",
        metavar="SECRET",
        help="password at the upstream (or env FLEETKIT_PROXY_PASSWORD)",
    )
    g.add_argument(
        "--proxy-ttl",
        metavar="DURATION",
        help="serve a cached tag this long before revalidating it upstream with HEAD "
        "(e.g. 10m; default 0: every time)",
    )


def _proxy_config(args: Namespace, from_file: Any) -> Any:
    """The ``ProxyConfig`` from --config's proxy section with the --proxy-* flags over it."""
    from dataclasses import replace

    from fleetkit.registry.proxy import ProxyConfig, ProxyUpstream, parse_duration

    password = args.proxy_password or os.environ.get("FLEETKIT_PROXY_PASSWORD") or None
    flags = (args.proxy_remote, args.proxy_username, password, args.proxy_ttl)
    config: ProxyConfig | None = from_file
    if all(f is None for f in flags):
        return config
    remote = config.remote if config is not None else None
    if args.proxy_remote is not None:
        remote = ProxyUpstream(args.proxy_remote.rstrip("/"))
    if remote is None:
        raise UsageError(
            "--proxy-username/--proxy-password/--proxy-ttl need an upstream",
            hint="pass --proxy-remote URL (or proxy.remoteurl in --config)",
        )
    changes: dict[str, Any] = {}
    if args.proxy_username is not None:
        changes["username"] = args.proxy_username
    if password is not None:
        changes["password"] = password
    if args.proxy_ttl is not None:
        changes["ttl_s"] = parse_duration(args.proxy_ttl)
    remote = replace(remote, **changes)
    return ProxyConfig(remote=remote, projects=config.projects if config is not None else {})


def _serve(argv: list[str], token_only: bool) -> int:
    from fleetkit.registry.server.app import ServerConfig, create_app, create_token_app, serve

    if token_only:
        p = ArgumentParser(
            prog="fleetkit registry token-server",
            description="Run the Docker token service alone (GET and OAuth2 POST /service/token).",
            epilog="example:\n  fleetkit registry token-server --listen 127.0.0.1:5001 "
            "--htpasswd htpasswd --token-key key.pem",
        )
        _server_flags(p, "127.0.0.1:5001")
        _common_token_flags(p)
    else:
        p = ArgumentParser(
            prog="fleetkit registry serve",
            description="Run an OCI distribution registry (spec v1.1.1 + main) on aiohttp.",
            epilog="auth modes:\n"
            "  none      anyone may pull, push and delete\n"
            "  htpasswd  HTTP Basic against --htpasswd; --policy decides who may do what\n"
            "  token     Docker token auth; the token service is served at /service/token\n"
            "\nexit codes: 0 stopped cleanly, 1 runtime error, 2 bad flags or files\n"
            "\nexample:\n  fleetkit registry serve --root ./registry-data --auth token "
            "--htpasswd htpasswd --ui",
        )
        p.add_argument(
            "--root",
            "--storage",
            dest="root",
            default="./registry-data",
            metavar="ROOT",
            help="storage: a directory (./registry-data), memory:, or "
            "s3://BUCKET[/PREFIX]?endpoint=URL&region=R&secure=false (keys from "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
        )
        p.add_argument(
            "--config",
            metavar="FILE",
            help="a registry.yaml with distribution's keys (storage.s3.*, http.addr, "
            "http.secret, auth.*); flags win over it",
        )
        p.add_argument(
            "--storage-redirect",
            action="store_true",
            help="S3: answer blob GETs with a redirect to a presigned URL",
        )
        _server_flags(p, "127.0.0.1:5000")
        p.add_argument(
            "--auth", choices=["none", "htpasswd", "token"], default="none", help="(default none)"
        )
        p.add_argument("--realm", metavar="URL", help="token realm (default: this server's)")
        p.add_argument(
            "--token-rootcert",
            metavar="FILE",
            help="also trust tokens signed under these certificates (external token service)",
        )
        p.add_argument("--disable-delete", action="store_true", help="DELETE answers 405")
        _proxy_flags(p)
        p.add_argument(
            "--ui",
            action="store_true",
            help="serve a read-only web view at /ui (repositories, tags, manifests, referrers); "
            "it follows --auth",
        )
        _common_token_flags(p)
    s3 = None
    proxy_file = None
    http_secret = os.environ.get("FLEETKIT_HTTP_SECRET") or None
    if not token_only:
        pre = ArgumentParser(add_help=False)
        pre.add_argument("--config")
        known, _ = pre.parse_known_args(argv)
        if known.config:
            from fleetkit.registry.server.config_file import load_config_file

            defaults = load_config_file(known.config)
            s3 = defaults.pop("s3", None)
            proxy_file = defaults.pop("proxy", None)
            http_secret = defaults.pop("http_secret", None) or http_secret
            p.set_defaults(**defaults)
    args = p.parse_args(argv)
    if s3 is not None and args.root != f"s3://{s3.bucket}":
        s3 = None  # --root/--storage on the command line wins over the file's storage
    if args.token_expiry <= 0:
        raise UsageError("--token-expiry must be positive")
    if args.login_failures_per_user < 1 or args.login_failures_per_client < 1:
        raise UsageError("--login-failures-per-user/-client must be at least 1")
    for flag, value in (
        ("--idle-timeout", args.idle_timeout),
        ("--body-timeout", args.body_timeout),
    ):
        if not 0 < value < 86400:
            raise UsageError(f"{flag} must be between 0 and 86400 seconds")
    if args.max_connections < 1:
        raise UsageError("--max-connections must be at least 1")
    config = ServerConfig(
        root=getattr(args, "root", "memory:"),
        listen=args.listen,
        auth=getattr(args, "auth", "token"),
        htpasswd=args.htpasswd,
        policy=args.policy,
        realm=getattr(args, "realm", None),
        service=args.service,
        issuer=args.issuer,
        token_key=args.token_key,
        token_cert=args.token_cert,
        token_rootcert=getattr(args, "token_rootcert", None),
        token_expiry_s=args.token_expiry,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        insecure_listen=args.insecure_listen,
        delete_enabled=not getattr(args, "disable_delete", False),
        ready_file=args.ready_file,
        login_failures_per_user=args.login_failures_per_user,
        login_failures_per_client=args.login_failures_per_client,
        idle_timeout_s=args.idle_timeout,
        body_timeout_s=args.body_timeout,
        max_connections=args.max_connections,
        metrics_listen=args.metrics_listen,
        s3=s3,
        http_secret=http_secret,
        storage_redirect=getattr(args, "storage_redirect", False),
        proxy=None if token_only else _proxy_config(args, proxy_file),
        ui=getattr(args, "ui", False),
    )
    if token_only and not config.token_key:
        raise UsageError(
            "token-server needs --token-key FILE",
            hint="the registry must trust its certificate; it is generated when FILE is missing",
        )
    _setup_logging(args.quiet)
    factory = create_token_app if token_only else create_app
    asyncio.run(serve(config, factory, "token service" if token_only else "registry"))
    return 0


def _htpasswd(argv: list[str]) -> int:
    from fleetkit.registry.auth.users import add_user, list_users, remove_user

    p = ArgumentParser(
        prog="fleetkit registry htpasswd",
        description="Manage an htpasswd file in distribution's format (bcrypt, $2y$): add or "
        "replace a user, remove one, list the users. A running registry reloads the file.",
        epilog="For add, the password is read from stdin (first line) with --password-stdin,\n"
        "else asked on the terminal.\n\nexamples:\n"
        "  fleetkit registry htpasswd list --file htpasswd\n"
        "  fleetkit registry htpasswd remove alice --file htpasswd\n"
        "  fleetkit registry htpasswd add alice --file htpasswd --password-stdin < password.txt",
    )
    p.add_argument("action", choices=["add", "remove", "list"])
    p.add_argument("user", nargs="?", help="the user (add, remove)")
    p.add_argument("--file", default="htpasswd", metavar="FILE")
    p.add_argument("--password-stdin", action="store_true")
    p.add_argument("--cost", type=int, default=10, help="bcrypt cost (default 10)")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text", help="for list")
    args = p.parse_args(argv)
    if args.action == "list":
        if args.user:
            raise UsageError("htpasswd list takes no user", hint="fleetkit registry htpasswd list")
        users = list_users(args.file)
        if args.output == "json":
            print(json.dumps({"file": args.file, "users": users}))
        else:
            # user names come from a file: one line each, no terminal escapes
            for name in users:
                print(name.encode("unicode_escape").decode())
        return 0
    if not args.user:
        raise UsageError(
            f"htpasswd {args.action} needs a user",
            hint=f"fleetkit registry htpasswd {args.action} USER --file FILE",
        )
    if args.action == "remove":
        if not remove_user(args.file, args.user):
            raise UsageError(
                f"no user {args.user!r} in {args.file}",
                hint=f"list the users with: fleetkit registry htpasswd list --file {args.file}",
            )
        print(f"removed user {args.user} from {args.file}")
        return 0
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("passwords do not match")
    else:
        raise UsageError(
            "no password given", hint="pipe it in with --password-stdin, or run on a terminal"
        )
    if not password:
        raise UsageError("empty password")
    replaced = add_user(args.file, args.user, password, args.cost)
    print(f"{'updated' if replaced else 'added'} user {args.user} in {args.file}")
    return 0


def _gc(argv: list[str]) -> int:
    from fleetkit.registry.storage import FilesystemDriver, RegistryStore, open_driver

    p = ArgumentParser(
        prog="fleetkit registry gc",
        description="Mark every blob a stored manifest references and delete the rest.\n"
        "It refuses to run while a registry serves --root (servers hold a shared lock on it):\n"
        "a push in progress has blobs no manifest references yet. --dry-run is always safe.",
        epilog="example:\n  fleetkit registry gc --root ./registry-data --dry-run",
    )
    p.add_argument(
        "--root",
        "--storage",
        dest="root",
        default="./registry-data",
        metavar="ROOT",
        help="a directory (./registry-data) or s3://BUCKET[/PREFIX]?endpoint=URL",
    )
    p.add_argument("--config", metavar="FILE", help="take the storage from this registry.yaml")
    p.add_argument(
        "--grace",
        type=float,
        default=1.0,
        metavar="HOURS",
        help="S3 only (replicas keep serving): keep blobs whose bytes or links changed in the "
        "last HOURS (default 1), as a push in progress may still reference them",
    )
    p.add_argument("--dry-run", action="store_true", help="only report what would be deleted")
    p.add_argument(
        "--upload-max-age",
        type=float,
        default=168.0,
        metavar="HOURS",
        help="also remove upload sessions older than this (default 168 = a week)",
    )
    p.add_argument("-o", "--output", choices=["text", "json"], default="text")
    args = p.parse_args(argv)
    if args.upload_max_age < 0:
        raise UsageError("--upload-max-age must not be negative")
    if args.grace < 0:
        raise UsageError("--grace must not be negative")
    s3 = None
    if args.config:
        from fleetkit.registry.server.config_file import load_config_file

        conf = load_config_file(args.config)
        s3 = conf.get("s3")
        explicit = any(a.split("=", 1)[0] in ("--root", "--storage") for a in argv)
        if not explicit and "root" in conf:
            args.root = conf["root"]
    if s3 is not None or args.root.startswith("s3://"):
        # S3: no lock can keep replicas out, so mark-and-sweep with a grace period
        report = RegistryStore(open_driver(args.root, s3)).gc(
            dry_run=args.dry_run,
            upload_max_age_s=args.upload_max_age * 3600,
            grace_s=args.grace * 3600,
        )
    else:
        if not os.path.isdir(args.root):
            raise UsageError(f"no registry at {args.root}", hint="pass --root DIR of a registry")
        driver = FilesystemDriver(args.root)
        # exclusive unless a dry run: refuses (exit 1) while a registry serves this root
        with driver.lock(exclusive=not args.dry_run):
            report = RegistryStore(driver).gc(
                dry_run=args.dry_run, upload_max_age_s=args.upload_max_age * 3600
            )
    if args.output == "json":
        print(
            json.dumps(
                {
                    "dry_run": report.dry_run,
                    "blobs_marked": report.blobs_marked,
                    "blobs_deleted": report.blobs_deleted,
                    "bytes_freed": report.bytes_freed,
                    "layer_links_deleted": report.layer_links_deleted,
                    "uploads_deleted": report.uploads_deleted,
                }
            )
        )
    else:
        verb = "would delete" if report.dry_run else "deleted"
        for digest in report.blobs_deleted:
            print(f"{verb} blob {digest}")
        for upload in report.uploads_deleted:
            print(f"{verb} upload {upload}")
        print(
            f"{report.blobs_marked} blobs marked, {len(report.blobs_deleted)} blobs {verb} "
            f"({report.bytes_freed} bytes)"
        )
    return 0


def main(command: str, argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    sub, rest = argv[0], argv[1:]
    if sub == "serve":
        return _serve(rest, token_only=False)
    if sub == "token-server":
        return _serve(rest, token_only=True)
    if sub == "htpasswd":
        return _htpasswd(rest)
    if sub == "gc":
        return _gc(rest)
    raise UsageError(f"unknown registry subcommand {sub!r}", hint="run 'fleetkit registry --help'")
