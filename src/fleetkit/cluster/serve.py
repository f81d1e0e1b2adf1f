"""``fleetkit cluster serve``: load nodes (or a saved state), start the control plane and the API
server, write a kubeconfig, persist state atomically while running."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from fleetkit.cluster.api.resources import RESOURCES, by_kind
from fleetkit.cluster.runtime import ControlPlane
from fleetkit.cluster.state import ApiError, ClusterState, key_of
from fleetkit.cluster.store import WatchEvent
from fleetkit.errors import ClusterError, UsageError
from fleetkit.scheduler import SchedulerConfig

__all__ = [
    "ServeOptions",
    "build",
    "serve",
    "load_manifests",
    "kubeconfig_text",
    "save_state",
    "load_state",
]

Obj = dict[str, Any]
SAVE_EVERY_S = 2.0
WARM_EVERY_S = 0.2  # how often idle time renders Table rows ahead of `kubectl get`
WARM_BATCH = 500  # rows rendered between yields to the HTTP server
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it
_ORDER = ["Namespace", "PriorityClass", "Node", "Service", "PodDisruptionBudget"]


@dataclass(slots=True)
class ServeOptions:
    """Flags of ``fleetkit cluster serve``."""

    listen: str = "127.0.0.1:6443"
    nodes: list[str] = field(default_factory=list)
    state_file: str | None = None
    kubeconfig_out: str = "./fleetkit-cluster.kubeconfig"
    config: SchedulerConfig | None = None
    seed: int = 1
    tls: bool = False
    from_kubeconfig: str | None = None  # a context name, or "current"
    kubeconfig: str | None = (
        None  # where to read it (default: as kubectl, KUBECONFIG or ~/.kube/config)
    )


def load_manifests(paths: list[str]) -> list[Obj]:
    """Objects from YAML/JSON files (multi-document, ``kind: List`` expanded)."""
    out: list[Obj] = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                docs = list(yaml.load_all(fh, Loader=_LOADER))
        except OSError as exc:
            raise UsageError(f"{path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise UsageError(f"{path}: not YAML: {exc}") from exc
        for d in docs:
            if not d:
                continue
            if not isinstance(d, dict):
                raise UsageError(f"{path}: expected Kubernetes objects")
            if str(d.get("kind", "")).endswith("List") and isinstance(d.get("items"), list):
                out += [i for i in d["items"] if isinstance(i, dict)]
            else:
                out.append(d)
    return out


def _create_all(cp: ControlPlane, objs: list[Obj], source: str, validation: str = "Strict") -> None:
    """Create every object, then let the controllers run: like informers that sync before the
    controllers start, whatever order the file lists its objects in (adoption by selector and
    owner references, no duplicate replicas)."""
    st = cp.state
    ordered = sorted(
        objs,
        key=lambda o: _ORDER.index(str(o.get("kind"))) if o.get("kind") in _ORDER else len(_ORDER),
    )
    for o in ordered:
        res = by_kind(str(o.get("apiVersion") or ""), str(o.get("kind") or ""))
        if res is None:
            raise UsageError(
                f"{source}: no resource for {o.get('apiVersion')}/{o.get('kind')}",
                hint="see docs/cluster.md for the served kinds",
            )
        try:
            obj, _ = st.decode(res, o, validation)
            meta = obj.get("metadata") or {}
            if res.kind == "Pod" and (obj.get("spec") or {}).get("nodeName"):
                obj.setdefault("status", {}).setdefault("phase", "Running")
            existing = st.store.get(
                key_of(res),
                str(meta.get("namespace") or ("default" if res.namespaced else "")),
                str(meta.get("name")),
            )
            if existing is not None and res.kind == "Namespace":
                continue
            st.create(res, obj, keep_uid=True)
        except ApiError as exc:
            raise UsageError(f"{source}: {exc.message}") from exc


def save_state(state: ClusterState, path: str) -> None:
    """Every stored object as one JSON document, written atomically (rename)."""
    objs = [o for r in RESOURCES for o in state.store.list(key_of(r))]
    data = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "List",
            "metadata": {"resourceVersion": str(state.store.rv)},
            "items": objs,
        }
    ).encode()
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fleetkit-state-", dir=d)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load_state(state: ClusterState, path: str) -> None:
    """Restore objects saved by :func:`save_state` as they were (uids, timestamps, status)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise UsageError(f"--state {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise UsageError(f"--state {path}: not a saved state: {exc}") from exc
    for o in data.get("items") or []:
        res = by_kind(str(o.get("apiVersion") or ""), str(o.get("kind") or ""))
        if res is None:
            continue
        meta = o["metadata"]
        ns = str(meta.get("namespace") or "")
        if state.store.get(key_of(res), ns, meta["name"]) is not None:
            state.store.update(key_of(res), o)
        else:
            state.store.create(key_of(res), o)


def build(
    opts: ServeOptions, listener: Callable[[WatchEvent], None] | None = None
) -> tuple[ClusterState, ControlPlane]:
    """The state and control plane, loaded from --state and --nodes and settled
    (``listener`` sees every store event from the start)."""
    state = ClusterState(seed=opts.seed)
    if listener is not None:
        state.store.listeners.append(listener)
    if opts.state_file and os.path.exists(opts.state_file):
        load_state(state, opts.state_file)
    cp = ControlPlane(state, opts.config, opts.seed)
    cp.paused = True
    if opts.from_kubeconfig is not None:
        from fleetkit.cluster.importer import import_objects

        # a live cluster may carry fields newer than our schemas: imported, not validated
        _create_all(
            cp,
            import_objects(opts.from_kubeconfig, opts.kubeconfig),
            f"--from-kubeconfig {opts.from_kubeconfig}",
            "Ignore",
        )
    for path in opts.nodes:
        _create_all(cp, load_manifests([path]), path)
    cp.paused = False
    cp.settle()
    return state, cp


def kubeconfig_text(server: str, ca_pem: str | None = None) -> str:
    cluster: Obj = {"server": server}
    if ca_pem:
        import base64

        cluster["certificate-authority-data"] = base64.b64encode(ca_pem.encode()).decode()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fleetkit", "cluster": cluster}],
        "contexts": [
            {
                "name": "fleetkit",
                "context": {"cluster": "fleetkit", "user": "fleetkit", "namespace": "default"},
            }
        ],
        "current-context": "fleetkit",
        # no authentication: over HTTPS a (meaningless) token stops kubectl asking for a password
        "users": [{"name": "fleetkit", "user": {"token": "fleetkit-no-auth"} if ca_pem else {}}],
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    try:
        return host.strip("[]") or "127.0.0.1", int(port)
    except ValueError as exc:
        raise UsageError(f"--listen {listen!r}: expected HOST:PORT") from exc


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


async def _warm_rows(state: ClusterState, cp: ControlPlane) -> None:
    """Render the Table rows of new and changed pods and nodes while the control plane is idle,
    so that ``kubectl get pods -A`` finds them cached (only AGE is rendered per request)."""
    from fleetkit.cluster.api import tables

    dirty: dict[str, dict[tuple[str, str], None]] = {"pods": {}, "nodes": {}}

    def note(ev: WatchEvent) -> None:
        keys = dirty.get(ev.resource)
        if keys is not None:
            meta = ev.obj["metadata"]
            key = (str(meta.get("namespace") or ""), str(meta["name"]))
            if ev.type == "DELETED":
                keys.pop(key, None)
            else:
                keys[key] = None

    for res, keys in dirty.items():
        for o in state.store.iter(res):
            keys[(str(o["metadata"].get("namespace") or ""), str(o["metadata"]["name"]))] = None
    state.store.listeners.append(note)
    try:
        while True:
            await asyncio.sleep(WARM_EVERY_S)
            for res, keys in dirty.items():
                while keys and cp.idle():
                    batch = list(itertools.islice(keys, WARM_BATCH))
                    for k in batch:
                        del keys[k]
                    found = (state.store.get(res, *k) for k in batch)
                    objs = [obj for obj in found if obj is not None]
                    tables.warm(res, objs, "Metadata")
                    await asyncio.sleep(0)
    finally:
        state.store.listeners.remove(note)


async def serve(opts: ServeOptions, ready: Callable[[str], None] | None = None) -> None:
    """Run until SIGINT/SIGTERM; ``ready(server_url)`` once listening."""
    host, port = _split_listen(opts.listen)
    # the HTTP server's modules only here: `fleetkit schedule` builds the same cluster offline
    from aiohttp import web

    from fleetkit.cluster.api.server import make_app

    state, cp = build(opts)
    ssl_ctx = None
    ca_pem = None
    scheme = "http"
    if opts.tls or not _loopback(host):
        from fleetkit.cluster.tls import server_context

        ssl_ctx, ca_pem = server_context(
            host, os.path.dirname(os.path.abspath(opts.kubeconfig_out))
        )
        scheme = "https"
    app = make_app(state, f"{host}:{port}", cp)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_ctx)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ClusterError(
            f"cannot listen on {opts.listen}: {exc.strerror}",
            hint="pick another port with --listen 127.0.0.1:PORT",
        ) from exc
    sockets = getattr(site._server, "sockets", None) or []
    if sockets:
        port = sockets[0].getsockname()[1]
    url = f"{scheme}://{host if ':' not in host else f'[{host}]'}:{port}"
    tmp = opts.kubeconfig_out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(kubeconfig_text(url, ca_pem))
    os.replace(tmp, opts.kubeconfig_out)
    loop_task = asyncio.create_task(cp.run())
    warm_task = asyncio.create_task(_warm_rows(state, cp))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready(url)
    saved_rv = state.store.rv
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAVE_EVERY_S)
            if opts.state_file and state.store.rv != saved_rv:
                saved_rv = state.store.rv
                await asyncio.to_thread(save_state, state, opts.state_file)
    finally:
        loop_task.cancel()
        warm_task.cancel()
        state.store.close_all()
        if opts.state_file:
            save_state(state, opts.state_file)
        await runner.cleanup()
