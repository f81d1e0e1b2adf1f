"""Read-only snapshot of a live cluster through its API server (``--kubeconfig/--context``):
nodes, pods, namespaces, priority classes, services and controllers, as plain GET lists."""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from fleetkit.errors import SchedulerError, UsageError
from fleetkit.scheduler.decode import load_yaml_documents, read_input

__all__ = ["snapshot", "RESOURCES"]

RESOURCES = [
    ("/api/v1/namespaces", "Namespace"),
    ("/apis/scheduling.k8s.io/v1/priorityclasses", "PriorityClass"),
    ("/api/v1/nodes", "Node"),
    ("/api/v1/services", "Service"),
    ("/api/v1/pods", "Pod"),
    ("/apis/apps/v1/deployments", "Deployment"),
    ("/apis/apps/v1/replicasets", "ReplicaSet"),
    ("/apis/apps/v1/statefulsets", "StatefulSet"),
    ("/apis/apps/v1/daemonsets", "DaemonSet"),
    ("/apis/batch/v1/jobs", "Job"),
]


def _named(items: list[dict[str, Any]], name: str, what: str, path: str) -> dict[str, Any]:
    if not isinstance(items, list):
        raise UsageError(f"{path}: {what}s must be a list", hint="check the kubeconfig")
    for it in items:
        if isinstance(it, dict) and it.get("name") == name:
            found = it.get(what) or {}
            if not isinstance(found, dict):
                raise UsageError(f'{path}: {what} "{name}" must be a mapping')
            return dict(found)
    raise UsageError(f'{path}: {what} "{name}" not found in kubeconfig', hint="check --context")


def _file_or_data(conf: dict[str, Any], key: str, base: Path, tmp: str) -> str | None:
    if conf.get(key + "-data"):
        target = os.path.join(tmp, key)
        Path(target).write_bytes(base64.b64decode(conf[key + "-data"]))
        return target
    if conf.get(key):
        p = Path(str(conf[key]))
        return str(p if p.is_absolute() else base / p)
    return None


MAX_LIST_BYTES = 512 << 20  # one list response of the live cluster (pods of ~50k-pod clusters)


def snapshot(
    kubeconfig: str | None, context: str | None, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    path = (
        kubeconfig
        or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
        or str(Path.home() / ".kube" / "config")
    )
    docs = load_yaml_documents(read_input(path, "kubeconfig", flag="--kubeconfig"), path)
    conf = (docs[0][0] if docs else None) or {}
    if not isinstance(conf, dict):
        raise UsageError(f"{path}: a kubeconfig must be a mapping", hint="check --kubeconfig")
    ctx_name = context or conf.get("current-context")
    if not ctx_name:
        raise UsageError(f"{path}: no current-context", hint="pass --context NAME")
    ctx = _named(conf.get("contexts") or [], str(ctx_name), "context", path)
    cluster = _named(conf.get("clusters") or [], str(ctx.get("cluster")), "cluster", path)
    user = (
        _named(conf.get("users") or [], str(ctx.get("user")), "user", path)
        if ctx.get("user")
        else {}
    )
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise UsageError(f"{path}: cluster has no server")
    base = Path(path).resolve().parent
    headers = {"Accept": "application/json", "User-Agent": "fleetkit-schedule"}
    if user.get("token"):
        headers["Authorization"] = f"Bearer {user['token']}"
    elif user.get("username"):
        raw = f"{user['username']}:{user.get('password', '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    objs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        ctxssl: ssl.SSLContext | None = None
        if server.startswith("https://"):
            try:
                ctxssl = ssl.create_default_context(
                    cafile=_file_or_data(cluster, "certificate-authority", base, tmp)
                )
                if cluster.get("insecure-skip-tls-verify"):
                    ctxssl.check_hostname = False
                    ctxssl.verify_mode = ssl.CERT_NONE
                cert = _file_or_data(user, "client-certificate", base, tmp)
                key = _file_or_data(user, "client-key", base, tmp)
                if cert:
                    ctxssl.load_cert_chain(cert, key)
            except (OSError, ValueError) as exc:  # ssl.SSLError, binascii.Error, missing file
                raise UsageError(
                    f"{path}: unusable TLS material: {getattr(exc, 'reason', None) or exc}",
                    hint="check certificate-authority(-data), client-certificate and client-key",
                ) from exc
        for api_path, kind in RESOURCES:
            req = urllib.request.Request(server + api_path, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=timeout_s, context=ctxssl) as resp:
                    raw = resp.read(MAX_LIST_BYTES + 1)
                if len(raw) > MAX_LIST_BYTES:
                    raise SchedulerError(
                        f"GET {server}{api_path}: the list is larger than "
                        f"{MAX_LIST_BYTES >> 20} MiB",
                        hint="snapshot a smaller cluster, or export the objects to files "
                        "(kubectl get ... -o yaml) and pass them with -f",
                    )
                body = json.loads(raw)
            except urllib.error.HTTPError as exc:
                if exc.code == 404 and kind not in ("Node", "Pod"):
                    continue
                raise SchedulerError(
                    f"GET {server}{api_path}: {exc.code} {exc.reason}",
                    hint="the snapshot needs read access (list) to nodes, pods and workloads",
                ) from exc
            except (urllib.error.URLError, OSError, ValueError, RecursionError) as exc:
                raise SchedulerError(
                    f"GET {server}{api_path}: {getattr(exc, 'reason', exc)}",
                    hint="check the kubeconfig server address and that the cluster is reachable",
                ) from exc
            items = body.get("items") if isinstance(body, dict) else 0
            if not isinstance(items, list | None) or not all(
                isinstance(i, dict) for i in items or []
            ):
                raise SchedulerError(f"GET {server}{api_path}: not a {kind}List")
            for item in items or []:
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", body.get("apiVersion", "v1"))
                objs.append(item)
    return objs
