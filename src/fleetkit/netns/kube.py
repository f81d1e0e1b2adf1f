"""Which node a pod runs on, and that node's address, from the Kubernetes API (``--kubeconfig``).

Two GETs (the pod, then its node), or for ``--selector`` one LIST (``labelSelector``, parsed by
the server as kubectl's ``-l`` is) and one GET per node, with the kubeconfig's server, CA,
bearer token, basic auth or client certificate; each response read bounded. The node is then reached over SSH
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetkit.errors import UsageError
from fleetkit.netns.errors import HelperError

__all__ = ["KubeAPI", "PodPlacement", "locate_pod", "select_pods"]

MAX_KUBECONFIG_BYTES = 4 << 20
MAX_OBJECT_BYTES = 4 << 20  # one pod or node object


@dataclass(frozen=True, slots=True)
class PodPlacement:
    """Where a pod runs: its node's name and the address to reach that node at."""

    namespace: str
    name: str
    node: str
    address: str
    addresses: tuple[str, ...] = ()  # every address of the node, InternalIP first

    @property
    def pod(self) -> str:
        """``NAMESPACE/NAME``."""
        return f"{self.namespace}/{self.name}"


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


class KubeAPI:
    """GETs against the API server of a kubeconfig's context (server, CA, token/basic/cert)."""

    def __init__(
        self, kubeconfig: str | None, context: str | None = None, timeout_s: float = 15.0
    ) -> None:
        import yaml

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
        user = (
            _named(conf.get("users"), str(ctx.get("user")), "user", path) if ctx.get("user") else {}
        )
        self.namespace = str(ctx.get("namespace") or "default")  # as kubectl's default
        self.server = str(cluster.get("server") or "").rstrip("/")
        if not self.server.startswith(("https://", "http://")):
            raise UsageError(f"{path}: cluster has no http(s) server", hint="check the kubeconfig")
        self.timeout_s = timeout_s
        self.headers = {"Accept": "application/json", "User-Agent": "fleetkit-ns"}
        if user.get("token"):
            self.headers["Authorization"] = f"Bearer {user['token']}"
        elif user.get("username"):
            pair = f"{user['username']}:{user.get('password', '')}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        base = Path(path).resolve().parent
        self.ssl: ssl.SSLContext | None = None
        if self.server.startswith("https://"):
            with tempfile.TemporaryDirectory() as tmp:  # inline -data material, read at once
                try:
                    self.ssl = ssl.create_default_context(
                        cafile=_material(cluster, "certificate-authority", base, tmp)
                    )
                    if cluster.get("insecure-skip-tls-verify"):
                        self.ssl.check_hostname = False
                        self.ssl.verify_mode = ssl.CERT_NONE
                    cert = _material(user, "client-certificate", base, tmp)
                    if cert:
                        self.ssl.load_cert_chain(cert, _material(user, "client-key", base, tmp))
                except (OSError, ValueError) as exc:
                    raise UsageError(
                        f"{path}: unusable TLS material: {getattr(exc, 'reason', None) or exc}",
                        hint="check certificate-authority(-data), client-certificate and "
                        "client-key",
                    ) from None

    def get(self, api_path: str) -> dict[str, Any]:
        """One GET of a JSON object, read bounded; HelperError with the server's message."""
        url = self.server + api_path
        request = urllib.request.Request(url, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s, context=self.ssl) as r:
                body = r.read(MAX_OBJECT_BYTES + 1)
        except urllib.error.HTTPError as exc:
            message = _status_message(exc)
            raise HelperError(
                f"GET {url}: {exc.code} {exc.reason}" + (f": {message}" if message else ""),
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

    def node_addresses(self, node: str) -> list[str]:
        """The node's addresses, InternalIP first, then ExternalIP, then Hostname."""
        node_obj = self.get(f"/api/v1/nodes/{urllib.parse.quote(node, '')}")
        status = node_obj.get("status")
        addresses = status.get("addresses") if isinstance(status, dict) else None
        by_type: dict[str, list[str]] = {}
        for entry in addresses if isinstance(addresses, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("address"), str):
                by_type.setdefault(str(entry.get("type")), []).append(entry["address"])
        return [
            a for kind in ("InternalIP", "ExternalIP", "Hostname") for a in by_type.get(kind, [])
        ]


def _status_message(exc: urllib.error.HTTPError) -> str:
    """The ``message`` of a Kubernetes Status body, if the error carries one."""
    try:
        body = json.loads(exc.read(MAX_OBJECT_BYTES))
    except (ValueError, RecursionError, OSError):
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""


def _placement(api: KubeAPI, namespace: str, name: str, node: str) -> PodPlacement:
    addresses = api.node_addresses(node)
    if not addresses:
        raise HelperError(
            f"node {node} has no address in its status",
            hint="name the node's host with --ssh USER@HOST or --inventory FILE",
        )
    return PodPlacement(namespace, name, node, addresses[0], tuple(addresses))


def locate_pod(
    pod: str, kubeconfig: str | None, context: str | None = None, timeout_s: float = 15.0
) -> PodPlacement:
    """GET the pod (``[NAMESPACE/]NAME``), then its node; HelperError when it has none."""
    api = KubeAPI(kubeconfig, context, timeout_s)
    namespace, _, name = pod.rpartition("/")
    namespace = namespace or api.namespace
    quoted = urllib.parse.quote
    pod_obj = api.get(f"/api/v1/namespaces/{quoted(namespace, '')}/pods/{quoted(name, '')}")
    spec = pod_obj.get("spec")
    node = spec.get("nodeName") if isinstance(spec, dict) else None
    if not isinstance(node, str) or not node:
        raise HelperError(
            f"pod {namespace}/{name} is not placed on a node yet",
            hint="wait until it is scheduled (kubectl get pod -o wide)",
        )
    return _placement(api, namespace, name, node)


def select_pods(
    selector: str,
    namespace: str | None,
    all_namespaces: bool,
    kubeconfig: str | None,
    context: str | None = None,
    warn: Callable[[str], None] | None = None,
    timeout_s: float = 15.0,
) -> list[PodPlacement]:
    """The pods a label selector picks (kubectl's ``-l``, ``-n``/``-A``), each with its node.

    The selector goes to the API server as ``labelSelector``, which parses it (a bad one is
    the server's 400 message, as kubectl shows it). Pods not placed on a node yet, or finished
    (Succeeded/Failed), are named through ``warn`` and left out; none left is an error.
    """
    api = KubeAPI(kubeconfig, context, timeout_s)
    query = urllib.parse.urlencode({"labelSelector": selector})
    if all_namespaces:
        listing = api.get(f"/api/v1/pods?{query}")
    else:
        ns = urllib.parse.quote(namespace or api.namespace, "")
        listing = api.get(f"/api/v1/namespaces/{ns}/pods?{query}")
    items = listing.get("items")
    found: list[tuple[str, str, str]] = []
    for item in items if isinstance(items, list) else []:
        meta = item.get("metadata") if isinstance(item, dict) else None
        spec = item.get("spec") if isinstance(item, dict) else None
        status = item.get("status") if isinstance(item, dict) else None
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
            continue
        pod = f"{meta.get('namespace') or namespace or api.namespace}/{meta['name']}"
        node = spec.get("nodeName") if isinstance(spec, dict) else None
        phase = status.get("phase") if isinstance(status, dict) else None
        if not isinstance(node, str) or not node:
            if warn is not None:
                warn(f"pod {pod} is not placed on a node yet; left out")
            continue
        if phase in ("Succeeded", "Failed"):
            if warn is not None:
                warn(f"pod {pod} has finished ({phase}); left out")
            continue
        ns_name, _, name = pod.partition("/")
        found.append((ns_name, name, node))
    if not found:
        where = "any namespace" if all_namespaces else f"namespace {namespace or api.namespace}"
        raise HelperError(
            f"no running pod matches --selector {selector!r} in {where}",
            hint="check the labels (kubectl get pods --show-labels), -n/--namespace or -A",
        )
    nodes = {node: api.node_addresses(node) for node in sorted({n for _, _, n in found})}
    placements = []
    for ns_name, name, node in sorted(found):
        if not nodes[node]:
            raise HelperError(
                f"node {node} has no address in its status",
                hint="map node names to hosts with --inventory FILE",
            )
        placements.append(PodPlacement(ns_name, name, node, nodes[node][0], tuple(nodes[node])))
    return placements
