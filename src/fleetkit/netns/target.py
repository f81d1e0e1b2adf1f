"""Resolve a target (PID, container ID or name, pod) to a process, without any runtime CLI.

Sources, all read below a configurable ``root`` so tests can point them at fixture trees:

- Docker Engine API over ``/run/docker.sock`` (``GET /containers/json``, ``/containers/ID/json``)
  and Docker's state files ``/var/lib/docker/containers/ID/config.v2.json``;
- containerd task state ``/run/containerd/io.containerd.runtime.v2.task/NS/ID/{init.pid,
  config.json}`` with the CRI annotations (``io.kubernetes.cri.sandbox-name`` ...);
- containers/storage (Podman, CRI-O): ``/var/lib/containers/storage/overlay-containers/
  containers.json`` and ``.../ID/userdata/{config.json,pidfile}`` under the static and run roots;
- a ``/proc/*/cgroup`` scan for 64-hex container IDs and pod UIDs (cgroup v1 and v2, systemd
  ``kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope`` and cgroupfs
  ``/kubepods/burstable/pod<uid>/<id>`` layouts).

Sources are merged by container ID; a PID from state files is trusted only when ``/proc/PID``
exists, else the cgroup scan fills it in.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fleetkit.netns.errors import (
    ROOT_HINT,
    AmbiguousTarget,
    NoSuchProcess,
    PermissionDenied,
    UnknownTarget,
)
from fleetkit.netns.namespaces import check_pid

__all__ = ["Container", "Resolver", "check_pid"]


@dataclass(frozen=True, slots=True)
class Container:
    runtime: str  # docker | containerd | cri-o | podman | cgroup
    id: str
    name: str = ""
    pid: int | None = None
    pod_namespace: str | None = None
    pod_name: str | None = None
    pod_uid: str | None = None
    container_name: str | None = None  # Kubernetes container name
    sandbox: bool = False  # the pod's pause/infra container
    sandbox_id: str | None = None
    sources: tuple[str, ...] = field(default_factory=tuple)

    @property
    def pod(self) -> str | None:
        if self.pod_name is None:
            return None
        return f"{self.pod_namespace or 'default'}/{self.pod_name}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "id": self.id,
            "name": self.name,
            "pid": self.pid,
            "pod": self.pod,
            "pod_uid": self.pod_uid,
            "container": self.container_name,
            "sandbox": self.sandbox,
            "sources": list(self.sources),
        }


_HEX64 = re.compile(r"(?<![0-9a-f])([0-9a-f]{64})(?![0-9a-f])")
_POD_UID = re.compile(
    r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})"
)
_CGROUP_RUNTIME = (
    ("cri-containerd-", "containerd"),
    ("/containerd/", "containerd"),
    ("crio-", "cri-o"),
    ("libpod-", "podman"),
    ("docker-", "docker"),
    ("/docker/", "docker"),
)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


class Resolver:
    """Everything this node's runtimes say about their containers, read below ``root``."""

    def __init__(self, root: str | Path = "/", docker_socket: str | None = None) -> None:
        self.root = Path(root)
        self.proc = str(self.root / "proc")
        self.docker_socket = docker_socket
        self._cache: list[Container] | None = None

    def _p(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def _alive(self, pid: int | None) -> bool:
        return pid is not None and os.path.isdir(f"{self.proc}/{pid}")

    # --- sources -------------------------------------------------------------------------

    def docker_api(self) -> Iterator[Container]:
        sockets = [self.docker_socket] if self.docker_socket else []
        sockets += [str(self._p("/run/docker.sock")), str(self._p("/var/run/docker.sock"))]
        for sock in sockets:
            if sock and os.path.exists(sock):
                try:
                    yield from _docker_api_list(sock)
                except OSError:
                    continue
                return

    def docker_state(self) -> Iterator[Container]:
        base = self._p("/var/lib/docker/containers")
        for cfg in sorted(base.glob("*/config.v2.json")):
            data = _read_json(cfg)
            if not isinstance(data, dict):
                continue
            state = data.get("State") or {}
            labels = (data.get("Config") or {}).get("Labels") or {}
            running = bool(state.get("Running"))
            pid = int(state.get("Pid") or 0) if running else 0
            yield _docker_container(
                str(data.get("ID") or cfg.parent.name),
                str(data.get("Name") or "").lstrip("/"),
                pid or None,
                labels,
                str(cfg),
            )

    def containerd(self) -> Iterator[Container]:
        for base in (
            "/run/containerd/io.containerd.runtime.v2.task",
            "/run/k3s/containerd/io.containerd.runtime.v2.task",
        ):
            for task in sorted(self._p(base).glob("*/*")):
                if not task.is_dir():
                    continue
                spec = _read_json(task / "config.json")
                ann: dict[str, str] = (
                    (spec or {}).get("annotations") or {} if isinstance(spec, dict) else {}
                )
                kind = ann.get("io.kubernetes.cri.container-type")
                yield Container(
                    runtime="containerd",
                    id=task.name,
                    name=ann.get("nerdctl/name", ""),
                    pid=_read_pid(task / "init.pid"),
                    pod_namespace=ann.get("io.kubernetes.cri.sandbox-namespace"),
                    pod_name=ann.get("io.kubernetes.cri.sandbox-name"),
                    pod_uid=ann.get("io.kubernetes.cri.sandbox-uid"),
                    container_name=ann.get("io.kubernetes.cri.container-name"),
                    sandbox=kind == "sandbox",
                    sandbox_id=ann.get("io.kubernetes.cri.sandbox-id"),
                    sources=(str(task),),
                )

    def containers_storage(self) -> Iterator[Container]:
        static = self._p("/var/lib/containers/storage")
        run = self._p("/run/containers/storage")
        for layer_dir in sorted(
            {p.parent.name for p in static.glob("*-containers/containers.json")}
        ):
            index = _read_json(static / layer_dir / "containers.json")
            if not isinstance(index, list):
                continue
            for entry in index:
                if not isinstance(entry, dict) or "id" not in entry:
                    continue
                cid = str(entry["id"])
                try:
                    meta = json.loads(entry.get("metadata") or "{}")
                except ValueError:
                    meta = {}
                ann: dict[str, str] = {}
                pid = None
                for userdata in (
                    run / layer_dir / cid / "userdata",
                    static / layer_dir / cid / "userdata",
                ):
                    spec = _read_json(userdata / "config.json")
                    if isinstance(spec, dict) and not ann:
                        ann = spec.get("annotations") or {}
                    pid = pid or _read_pid(userdata / "pidfile")
                names = entry.get("names") or []
                crio = "pod-name" in meta or "io.kubernetes.cri-o.ContainerType" in ann
                kind = ann.get("io.kubernetes.cri-o.ContainerType")
                yield Container(
                    runtime="cri-o" if crio else "podman",
                    id=cid,
                    name=str(names[0]) if names else str(meta.get("name") or cid),
                    pid=pid,
                    pod_namespace=ann.get("io.kubernetes.pod.namespace"),
                    pod_name=ann.get("io.kubernetes.pod.name") or meta.get("pod-name"),
                    pod_uid=ann.get("io.kubernetes.pod.uid"),
                    container_name=ann.get("io.kubernetes.container.name"),
                    sandbox=kind == "sandbox",
                    sandbox_id=ann.get("io.kubernetes.cri-o.SandboxID") or meta.get("pod-id"),
                    sources=(str(static / layer_dir / "containers.json"),),
                )

    def cgroup_scan(self) -> Iterator[Container]:
        """One entry per container ID seen in /proc/*/cgroup: its lowest PID."""
        found: dict[str, tuple[int, str, str | None]] = {}
        try:
            entries = os.listdir(self.proc)
        except OSError:
            return
        for entry in entries:
            if not entry.isdigit():
                continue
            try:
                text = Path(self.proc, entry, "cgroup").read_text()
            except OSError:
                continue
            pid = int(entry)
            for line in text.splitlines():
                path = line.split(":", 2)[-1]
                match = _HEX64.search(path)
                if not match:
                    continue
                cid = match.group(1)
                runtime = next((rt for key, rt in _CGROUP_RUNTIME if key in path), "cgroup")
                uid_match = _POD_UID.search(path)
                uid = uid_match.group(1).replace("_", "-") if uid_match else None
                if "/kubepods" in path and runtime == "docker" and "/docker/" not in path:
                    runtime = "docker"
                known = found.get(cid)
                if known is None or pid < known[0]:
                    found[cid] = (pid, runtime, uid)
                break
        for cid, (pid, runtime, uid) in sorted(found.items()):
            yield Container(
                runtime=runtime,
                id=cid,
                pid=pid,
                pod_uid=uid,
                sources=(f"{self.proc}/{pid}/cgroup",),
            )

    # --- merged view ---------------------------------------------------------------------

    def containers(self) -> list[Container]:
        if self._cache is not None:
            return self._cache
        merged: dict[str, Container] = {}
        try:
            state = [
                *self.docker_api(),
                *self.docker_state(),
                *self.containerd(),
                *self.containers_storage(),
            ]
            scanned = list(self.cgroup_scan())
        except PermissionError as exc:
            # the runtimes keep their state root-only (docker: /var/lib/docker is 0710)
            where = exc.filename or "the container runtimes' state"
            raise PermissionDenied(
                f"cannot read {where}: {exc.strerror or 'Permission denied'}", hint=ROOT_HINT
            ) from None
        for c in state:
            old = merged.get(c.id)
            if old is None:
                merged[c.id] = c
            else:  # API beats state files: keep the first, fill gaps
                merged[c.id] = replace(
                    old,
                    pid=old.pid if self._alive(old.pid) else c.pid,
                    sources=old.sources + c.sources,
                )
        for c in scanned:
            old = merged.get(c.id)
            if old is None:
                merged[c.id] = c
            elif not self._alive(old.pid):
                merged[c.id] = replace(
                    old,
                    pid=c.pid,
                    pod_uid=old.pod_uid or c.pod_uid,
                    sources=old.sources + c.sources,
                )
            elif old.pod_uid is None and c.pod_uid:
                merged[c.id] = replace(old, pod_uid=c.pod_uid)
        # containers inherit pod identity from their sandbox (older containerd, CRI-O)
        by_id = dict(merged)
        for cid, c in list(merged.items()):
            sb = by_id.get(c.sandbox_id or "")
            if c.pod_name is None and sb is not None and sb.pod_name is not None:
                merged[cid] = replace(
                    c,
                    pod_namespace=sb.pod_namespace,
                    pod_name=sb.pod_name,
                    pod_uid=c.pod_uid or sb.pod_uid,
                )
        # pod identity by uid, for containers only the cgroup scan knows
        pods = {c.pod_uid: c for c in merged.values() if c.pod_uid and c.pod_name}
        for cid, c in list(merged.items()):
            if c.pod_name is None and c.pod_uid in pods:
                p = pods[c.pod_uid]
                merged[cid] = replace(c, pod_namespace=p.pod_namespace, pod_name=p.pod_name)
        result = [c if self._alive(c.pid) else replace(c, pid=None) for c in merged.values()]
        result.sort(key=lambda c: (c.pod or "~", c.sandbox is False, c.name, c.id))
        self._cache = result
        return result

    def container(self, ref: str) -> Container:
        """A container by exact ID, exact name (runtime or Kubernetes), or unique ID prefix."""
        every = self.containers()
        hits = [c for c in every if c.id == ref]
        if not hits:
            hits = [c for c in every if not c.sandbox and ref in (c.name, c.container_name)]
        if not hits and len(ref) >= 3 and all(ch in "0123456789abcdef" for ch in ref):
            hits = [c for c in every if c.id.startswith(ref)]
        if not hits:
            raise UnknownTarget(
                f"no container matches {ref!r}",
                hint="list what this node runs with 'fleetkit ns ps'",
            )
        if len(hits) > 1:
            listing = ", ".join(f"{c.id[:12]} ({c.pod or c.runtime})" for c in hits[:5])
            raise AmbiguousTarget(
                f"container name {ref!r} matches {len(hits)} containers: {listing}",
                hint="use the container ID, or --pod NAMESPACE/NAME with a container name",
            )
        return hits[0]

    def pod(self, ref: str, container: str | None = None) -> Container:
        """The pod's sandbox (or the named container in it)."""
        namespace, _, name = ref.rpartition("/")
        namespace = namespace or "default"
        members = [
            c
            for c in self.containers()
            if c.pod_name == name and (c.pod_namespace or "default") == namespace
        ]
        if not members:
            known = sorted({c.pod for c in self.containers() if c.pod})
            hint = (
                f"pods on this node: {', '.join(known[:6])}"
                if known
                else "no pods found on this node; see 'fleetkit ns ps'"
            )
            raise UnknownTarget(f"unknown pod {namespace}/{name}", hint=hint)
        if container is not None:
            picked = [
                c for c in members if not c.sandbox and container in (c.container_name, c.name)
            ]
            if not picked:
                names = sorted({c.container_name or c.name for c in members if not c.sandbox})
                raise UnknownTarget(
                    f"pod {namespace}/{name} has no container {container!r}",
                    hint=f"containers in the pod: {', '.join(names) or '(none)'}",
                )
            members = picked
        live = [c for c in members if c.pid is not None]
        live.sort(key=lambda c: not c.sandbox)
        if not live:
            raise NoSuchProcess(
                f"pod {namespace}/{name} has no running process",
                hint="the pod may be terminating or not started; see 'fleetkit ns ps'",
            )
        return live[0]


def _docker_container(
    cid: str, name: str, pid: int | None, labels: dict[str, str], source: str
) -> Container:
    kind = labels.get("io.kubernetes.docker.type")
    return Container(
        runtime="docker",
        id=cid,
        name=name,
        pid=pid,
        pod_namespace=labels.get("io.kubernetes.pod.namespace"),
        pod_name=labels.get("io.kubernetes.pod.name"),
        pod_uid=labels.get("io.kubernetes.pod.uid"),
        container_name=labels.get("io.kubernetes.container.name") if kind != "podsandbox" else None,
        sandbox=kind == "podsandbox",
        sandbox_id=labels.get("io.kubernetes.sandbox.id"),
        sources=(source,),
    )


def _docker_api_list(sock: str) -> Iterator[Container]:
    """Running containers from the Docker Engine API over its unix socket."""
    listing = _unix_get_json(sock, "/containers/json")
    for item in listing if isinstance(listing, list) else []:
        cid = str(item.get("Id", ""))
        detail = _unix_get_json(sock, f"/containers/{cid}/json")
        state = detail.get("State") or {} if isinstance(detail, dict) else {}
        names = item.get("Names") or [""]
        yield _docker_container(
            cid,
            str(names[0]).lstrip("/"),
            int(state.get("Pid") or 0) or None,
            item.get("Labels") or {},
            f"unix://{sock}",
        )


def _unix_get_json(sock: str, path: str, timeout_s: float = 3.0) -> Any:
    import http.client
    import socket

    class _Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout_s)
            s.connect(sock)
            self.sock = s

    conn = _Conn("localhost", timeout=timeout_s)
    try:
        conn.request("GET", path, headers={"Host": "docker"})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise OSError(f"docker API {path}: HTTP {resp.status}")
        return json.loads(body)
    except (http.client.HTTPException, ValueError) as exc:
        raise OSError(str(exc)) from exc
    finally:
        conn.close()
