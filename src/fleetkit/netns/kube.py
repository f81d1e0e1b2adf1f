"""Which node a pod runs on, and that node's address, from the Kubernetes API (``--kubeconfig``).

Two GETs (the pod, then its node), with the kubeconfig's server, CA, bearer token, basic auth
or client certificate; each response read bounded. The node is then reached over SSH
(:mod:`fleetkit.netns.remote`) at its InternalIP (else ExternalIP, else Hostname).

The kubeconfig handling follows ``fleetkit schedule --kubeconfig`` (scheduler/snapshot.py),
which subsystems may not import from one another; both could move to one shared module.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetkit.errors import UsageError
from fleetkit.netns.errors import HelperError

__all__ = ["PodPlacement", "locate_pod"]

MAX_KUBECONFIG_BYTES = 4 << 20
MAX_OBJECT_BYTES = 4 << 20  # one pod or node object


@dataclass(frozen=True, slots=True)
class PodPlacement:
    """Where a pod runs: its node's name and the address to reach that node at."""

    namespace: str
    name: str
    node: str
    address: str


def _named(items: Any, name: str, what: str, path: str) -> dict[str, Any]:
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and item.get("name") == name:
                found = item.get(what) or {}
                if isinstance(found, dict):
                    return found
    raise UsageError(f'{path}: {what} "{name}" not found in kubeconfig', hint="check --context")


def _material(conf: dict[str, Any], key: str, base: Path, tmp: str) -> str | None:
    if conf.get(key + "-data"):
        target = os.path.join(tmp, key)
        Path(target).write_bytes(base64.b64decode(str(conf[key + "-data"])))
        return target
    if conf.get(key):
        path = Path(str(conf[key]))
        return str(path if path.is_absolute() else base / path)
    return None


def locate_pod(
    pod: str, kubeconfig: str | None, context: str | None = None, timeout_s: float = 15.0
) -> PodPlacement:
    """GET the pod (``[NAMESPACE/]NAME``), then its node; HelperError when it has none."""
    import yaml

    namespace, _, name = pod.rpartition("/")
    namespace = namespace or "default"
    path = (
        kubeconfig
        or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
        or str(Path.home() / ".kube" / "config")
    )
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_KUBECONFIG_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read kubeconfig {path}: {exc.strerror}") from None
    if len(raw) > MAX_KUBECONFIG_BYTES:
        raise UsageError(f"{path}: larger than {MAX_KUBECONFIG_BYTES >> 20} MiB")
    try:
        conf = yaml.safe_load(raw.decode("utf-8", "replace"))
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not YAML: {exc}", hint="check --kubeconfig") from None
    if not isinstance(conf, dict):
        raise UsageError(f"{path}: a kubeconfig must be a mapping", hint="check --kubeconfig")
    ctx_name = context or conf.get("current-context")
    if not ctx_name:
        raise UsageError(f"{path}: no current-context", hint="pass --context NAME")
    ctx = _named(conf.get("contexts"), str(ctx_name), "context", path)
    cluster = _named(conf.get("clusters"), str(ctx.get("cluster")), "cluster", path)
    user = _named(conf.get("users"), str(ctx.get("user")), "user", path) if ctx.get("user") else {}
    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise UsageError(f"{path}: cluster has no http(s) server", hint="check the kubeconfig")
    headers = {"Accept": "application/json", "User-Agent": "fleetkit-ns"}
    if user.get("token"):
        headers["Authorization"] = f"Bearer {user['token']}"
    elif user.get("username"):
        pair = f"{user['username']}:{user.get('password', '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    base = Path(path).resolve().parent
    with tempfile.TemporaryDirectory() as tmp:
        context_ssl: ssl.SSLContext | None = None
        if server.startswith("https://"):
            try:
                context_ssl = ssl.create_default_context(
                    cafile=_material(cluster, "certificate-authority", base, tmp)
                )
                if cluster.get("insecure-skip-tls-verify"):
                    context_ssl.check_hostname = False
                    context_ssl.verify_mode = ssl.CERT_NONE
                cert = _material(user, "client-certificate", base, tmp)
                if cert:
                    context_ssl.load_cert_chain(cert, _material(user, "client-key", base, tmp))
            except (OSError, ValueError) as exc:
                raise UsageError(
                    f"{path}: unusable TLS material: {getattr(exc, 'reason', None) or exc}",
                    hint="check certificate-authority(-data), client-certificate and client-key",
                ) from None

        def get(api_path: str) -> dict[str, Any]:
            url = server + api_path
            request = urllib.request.Request(url, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=timeout_s, context=context_ssl) as r:
                    body = r.read(MAX_OBJECT_BYTES + 1)
            except urllib.error.HTTPError as exc:
                raise HelperError(
                    f"GET {url}: {exc.code} {exc.reason}",
                    hint="the pod must exist and the kubeconfig's user may get pods and nodes",
                ) from None
            except (urllib.error.URLError, OSError) as exc:
                raise HelperError(
                    f"GET {url}: {getattr(exc, 'reason', exc)}",
                    hint="check the kubeconfig server address and that the cluster is reachable",
                ) from None
            if len(body) > MAX_OBJECT_BYTES:
                raise HelperError(f"GET {url}: larger than {MAX_OBJECT_BYTES >> 20} MiB")
            try:
                obj = json.loads(body)
            except (ValueError, RecursionError):
                raise HelperError(f"GET {url}: not a JSON object") from None
            if not isinstance(obj, dict):
                raise HelperError(f"GET {url}: not a JSON object")
            return obj

        quoted = urllib.parse.quote
        pod_obj = get(f"/api/v1/namespaces/{quoted(namespace, '')}/pods/{quoted(name, '')}")
        spec = pod_obj.get("spec")
        node = spec.get("nodeName") if isinstance(spec, dict) else None
        if not isinstance(node, str) or not node:
            raise HelperError(
                f"pod {namespace}/{name} is not placed on a node yet",
                hint="wait until it is scheduled (kubectl get pod -o wide)",
            )
        node_obj = get(f"/api/v1/nodes/{quoted(node, '')}")
    status = node_obj.get("status")
    addresses = status.get("addresses") if isinstance(status, dict) else None
    by_type: dict[str, str] = {}
    for entry in addresses if isinstance(addresses, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("address"), str):
            by_type.setdefault(str(entry.get("type")), entry["address"])
    for kind in ("InternalIP", "ExternalIP", "Hostname"):
        if kind in by_type:
            return PodPlacement(namespace, name, node, by_type[kind])
    raise HelperError(
        f"node {node} has no address in its status",
        hint="name the node's host with --ssh USER@HOST",
    )
