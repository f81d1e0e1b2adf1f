"""``fleetkit.k8s.drain_check``: before a node's maintenance, ask the cluster whether draining it
(``kubectl drain --ignore-daemonsets``) would leave any pod unschedulable or be refused by a
PodDisruptionBudget, and fail with the pods and reasons when it would.

A controller-side action: it reads a kubeconfig as kubectl does (``kubeconfig`` parameter, else
``KUBECONFIG``'s first file, else ``~/.kube/config``; ``context`` or the current one) and calls
the what-if API of ``fleetkit cluster serve`` (``GET /fleetkit/v1/whatif/drain/NODE``), which
answers on a copy of the cluster with the same controllers, eviction rules and scheduler. For a
live cluster, run ``fleetkit cluster serve --from-kubeconfig CONTEXT`` (a read-only import) and
point ``kubeconfig`` at the file it writes: a real kube-apiserver has no what-if API, and the
module says so instead of guessing. It changes nothing, so it runs the same in check mode.

    - name: would draining this node strand pods?
      fleetkit.k8s.drain_check:
        kubeconfig: ./fleetkit-cluster.kubeconfig
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
from typing import Any

import yaml

from fleetkit.playbook.modules import Module, ModuleContext, Param

__all__ = ["MODULES"]

NAME = "fleetkit.k8s.drain_check"
WHATIF_PATH = "/fleetkit/v1/whatif/drain/"
MAX_REPORT_BYTES = 16 * 1024 * 1024


class _Fail(Exception):
    pass


def _fail(msg: str, **extra: Any) -> dict[str, Any]:
    return {"failed": True, "changed": False, "msg": msg, **extra}


def _kubeconfig_path(given: str | None) -> str:
    if given:
        return os.path.expanduser(given)
    env = os.environ.get("KUBECONFIG", "")
    for p in env.split(os.pathsep):
        if p:
            return os.path.expanduser(p)
    return os.path.expanduser("~/.kube/config")


def _named(items: Any, name: str, what: str) -> dict[str, Any]:
    for it in items or []:
        if isinstance(it, dict) and it.get("name") == name:
            body = it.get(what)
            return body if isinstance(body, dict) else {}
    raise _Fail(f'kubeconfig: {what} "{name}" not found')


def _material(conf: dict[str, Any], key: str, base: str, tmp: str) -> str | None:
    """A file path for ``key`` (``key`` itself, relative to the kubeconfig, or ``key-data``)."""
    if conf.get(key):
        return os.path.join(base, os.path.expanduser(str(conf[key])))
    data = conf.get(key + "-data")
    if not data:
        return None
    path = os.path.join(tmp, key)
    with open(path, "wb") as fh:
        fh.write(base64.b64decode(str(data)))
    return path


def _request(kubeconfig: str, context: str | None, path: str, timeout_s: float) -> Any:
    try:
        with open(kubeconfig, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise _Fail(f"kubeconfig {kubeconfig}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise _Fail(f"kubeconfig {kubeconfig}: not YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise _Fail(f"kubeconfig {kubeconfig}: not a kubeconfig")
    ctx_name = context or doc.get("current-context")
    if not ctx_name:
        raise _Fail(f"kubeconfig {kubeconfig}: no current-context; give context")
    ctx = _named(doc.get("contexts"), str(ctx_name), "context")
    cluster = _named(doc.get("clusters"), str(ctx.get("cluster")), "cluster")
    user = _named(doc.get("users"), str(ctx.get("user")), "user") if ctx.get("user") else {}
    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("http://", "https://")):
        raise _Fail(f"kubeconfig {kubeconfig}: cluster {ctx.get('cluster')} has no server URL")
    base = os.path.dirname(os.path.abspath(kubeconfig))
    headers = {"Accept": "application/json", "User-Agent": "fleetkit-drain-check"}
    if user.get("token"):
        headers["Authorization"] = f"Bearer {user['token']}"  # never logged or returned
    with tempfile.TemporaryDirectory(prefix="fleetkit-kubeconfig-") as tmp:
        ssl_ctx: ssl.SSLContext | None = None
        if server.startswith("https://"):
            ssl_ctx = ssl.create_default_context(
                cafile=_material(cluster, "certificate-authority", base, tmp)
            )
            if cluster.get("insecure-skip-tls-verify"):
                ssl_ctx.check_hostname = False
                ssl_ctx.verify_mode = ssl.CERT_NONE
            cert = _material(user, "client-certificate", base, tmp)
            if cert:
                ssl_ctx.load_cert_chain(cert, _material(user, "client-key", base, tmp))
        req = urllib.request.Request(server + path, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout_s, context=ssl_ctx) as resp:
                body = resp.read(MAX_REPORT_BYTES + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                try:
                    status = json.loads(exc.read(65536) or b"{}")
                except ValueError:
                    status = {}
                if status.get("kind") == "Status" and status.get("message"):
                    raise _Fail(str(status["message"])) from exc
                raise _Fail(
                    f"{server} has no what-if API: it is not fleetkit cluster serve. For a live "
                    "cluster run 'fleetkit cluster serve --from-kubeconfig CONTEXT' (a read-only "
                    "copy) and give this module the kubeconfig it writes"
                ) from exc
            raise _Fail(f"{server}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Fail(f"cannot reach {server}: {reason}") from exc
    if len(body) > MAX_REPORT_BYTES:
        raise _Fail(f"{server}: report larger than {MAX_REPORT_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise _Fail(f"{server}: not a JSON report") from exc


def run_drain_check(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    """Fail when draining the node would strand pods or violate a PodDisruptionBudget."""
    node = args.get("node") or ctx.variables.get("inventory_hostname") or ctx.host
    path = WHATIF_PATH + urllib.parse.quote(str(node), safe="")
    try:
        report = _request(
            _kubeconfig_path(args.get("kubeconfig")),
            args.get("context"),
            path,
            float(args.get("timeout") or 30),
        )
    except _Fail as exc:
        return _fail(str(exc))
    if not isinstance(report, dict):
        return _fail("the cluster's what-if report is not an object")
    evicted = report.get("evicted") or []
    refused = report.get("disruptionBudgetViolations") or []
    stranded = report.get("unschedulable") or []
    result: dict[str, Any] = {
        "changed": False,
        "node": node,
        "evicted": evicted,
        "disruption_budget_violations": refused,
        "unschedulable": stranded,
    }
    if report.get("ok"):
        result["msg"] = f"draining {node} evicts {len(evicted)} pod(s); every pod stays schedulable"
        return result
    # a stranded pod is the replacement the pod's controller would create (named in the copy)
    lines = [f"{p['namespace']}/{p['name']} ({p['workload']}): {p['reason']}" for p in stranded]
    lines += [
        f"{p['namespace']}/{p['name']} ({p['workload']}): {p.get('message') or p['reason']}"
        for p in refused
    ]
    what = []
    if stranded:
        what.append(f"leave {len(stranded)} pod(s) unschedulable")
    if refused:
        what.append(f"violate a PodDisruptionBudget for {len(refused)} pod(s)")
    result.update(
        failed=True, msg=f"draining {node} would {' and '.join(what)}: " + "; ".join(lines)
    )
    return result


MODULES = (
    Module(
        NAME,
        run_drain_check,
        {
            "kubeconfig": Param(),
            "context": Param(),
            "node": Param(),
            "timeout": Param("int", default=30),
        },
        check_mode=True,
        controller=True,
    ),
)
