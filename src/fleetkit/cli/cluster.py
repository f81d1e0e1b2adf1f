"""``fleetkit cluster serve``: a simulated Kubernetes cluster that real kubectl talks to."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys

from fleetkit.cli._options import ArgumentParser
from fleetkit.errors import UsageError

__all__ = ["main"]

GC_THRESHOLD = 50_000

EPILOG = """\
serves: core/v1 (namespaces nodes pods events services configmaps secrets serviceaccounts ...),
apps/v1 (deployments replicasets statefulsets daemonsets), batch/v1, policy/v1,
scheduling.k8s.io/v1, coordination.k8s.io/v1; discovery, OpenAPI v3, Table output, watch,
patch (json, merge, strategic, server-side apply), dryRun=All, strict field validation.
simulated: Deployment and ReplicaSet controllers, the scheduler (fleetkit schedule's engine),
a kubelet that starts bound pods at once. See docs/cluster.md for every known difference.

The kubeconfig (plain HTTP on loopback; TLS with a generated CA otherwise) is written to
--kubeconfig-out. Stop with Ctrl-C; --state FILE is saved atomically every few seconds.

example:
  fleetkit cluster serve --nodes nodes.yaml --listen 127.0.0.1:6443 &
  KUBECONFIG=./fleetkit-cluster.kubeconfig kubectl get nodes
  fleetkit cluster schedule -f tests/fixtures/cluster/nodes.yaml -f tests/fixtures/cluster/nginx.yaml
  fleetkit cluster serve --nodes tests/fixtures/cluster/nodes.yaml --listen 127.0.0.1:0
"""


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="fleetkit cluster",
        description="Run a simulated Kubernetes cluster (API server, controllers, scheduler) in one process.",
        epilog=EPILOG,
    )
    p.add_argument(
        "action",
        choices=("serve", "schedule"),
        help="serve: run the API server; schedule: what `fleetkit schedule -f FILE... --then "
        "STEP... -o json` runs (the same code path), printing only the pods (-o json|yaml)",
    )
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        default=[],
        metavar="FILE",
        help="schedule: manifests (existing objects first, then the rest applied in order)",
    )
    p.add_argument(
        "--then",
        action="append",
        default=[],
        metavar="STEP",
        help="schedule: a what-if step, a kubectl command (scale, apply -f, taint, label, "
        "cordon, uncordon, drain, delete node)",
    )
    p.add_argument(
        "-o", "--output", choices=("json", "yaml"), default="json", help="schedule: output format"
    )
    p.add_argument(
        "--nodes",
        action="append",
        default=[],
        metavar="FILE",
        help="Nodes (and any other objects) to start with; repeatable",
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1:6443",
        metavar="HOST:PORT",
        help="address to serve on (port 0: any free port; default 127.0.0.1:6443)",
    )
    p.add_argument(
        "--state",
        metavar="FILE",
        help="load the state from FILE if it exists and save it there (atomically)",
    )
    p.add_argument(
        "--kubeconfig-out",
        default="./fleetkit-cluster.kubeconfig",
        metavar="FILE",
        help="where to write the kubeconfig (default ./fleetkit-cluster.kubeconfig)",
    )
    p.add_argument(
        "--config", metavar="FILE", help="a KubeSchedulerConfiguration (v1) for the scheduler"
    )
    p.add_argument(
        "--from-kubeconfig",
        metavar="CONTEXT",
        help="start from a live cluster's nodes, pods and workloads (read-only); 'current' for the current context",
    )
    p.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="the kubeconfig --from-kubeconfig reads (default: as kubectl, $KUBECONFIG or ~/.kube/config)",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a generated CA even on loopback (always on elsewhere)",
    )
    p.add_argument(
        "--seed", type=int, default=1, help="seed for tie-breaking and generated names (default 1)"
    )
    return p


def main(command: str, argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    # the cluster holds millions of long-lived dicts: collect the young generation less often
    # (the default 700 allocations makes collections a tenth of the run at 100,000 pods)
    gc.set_threshold(GC_THRESHOLD, 20, 100)
    from fleetkit.cluster import ServeOptions, serve
    from fleetkit.scheduler import load_config

    if args.seed < 0:
        raise UsageError("--seed must be >= 0")
    if args.action == "schedule":
        return _schedule(args)
    opts = ServeOptions(
        listen=args.listen,
        nodes=args.nodes,
        state_file=args.state,
        kubeconfig_out=args.kubeconfig_out,
        config=load_config(args.config) if args.config else None,
        seed=args.seed,
        tls=args.tls,
        from_kubeconfig=args.from_kubeconfig,
        kubeconfig=args.kubeconfig,
    )

    def ready(url: str) -> None:
        print(
            f"fleetkit cluster: serving {url}; kubeconfig: {opts.kubeconfig_out}",
            file=sys.stderr,
            flush=True,
        )

    asyncio.run(serve(opts, ready))
    return 0


def _schedule(args: argparse.Namespace) -> int:
    import json

    import yaml

    from fleetkit.cluster.offline import run
    from fleetkit.scheduler import load_config

    if not args.filename:
        raise UsageError(
            "schedule needs -f FILE",
            hint="fleetkit cluster schedule -f cluster.yaml -f deploy.yaml",
        )
    out = run(
        [],
        args.filename,
        args.then,
        load_config(args.config) if args.config else None,
        args.seed,
    )
    if args.output == "yaml":
        sys.stdout.write(yaml.safe_dump(out, sort_keys=False))
    else:
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    return 0
