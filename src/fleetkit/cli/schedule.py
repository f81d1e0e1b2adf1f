"""``fleetkit schedule``: place pods as kube-scheduler v1.32's default profile would."""

from __future__ import annotations

import sys

from fleetkit.cli._options import ArgumentParser
from fleetkit.errors import UsageError

__all__ = ["main"]

EPILOG = """\
inputs: Node, Namespace, PriorityClass, Service, PodDisruptionBudget, Pod (bound when
spec.nodeName is set), Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, kind: List;
YAML (multi-document) or JSON; or --kubeconfig for a live cluster's snapshot.

steps (--then, applied in order; Pending pods are retried first, then new pods):
  scale deploy/NAME --replicas=N [-n NS]   (also rs/, sts/, job/)
  apply -f FILE
  cordon NODE | uncordon NODE | drain NODE
  delete node NAME... | delete nodes -l SELECTOR

limits: each input file at most 64 MiB; YAML aliases within go-yaml's budget (as kubectl);
integer fields within the API's int32/int64 ranges; at most --max-pods pods at once.

exit codes: 0 done (also when pods stay Pending), 2 bad flags or invalid input, 1 other errors.

example:
  fleetkit schedule -f cluster.yaml -f deploy.yaml --then "scale deploy/nginx --replicas=6"
  fleetkit schedule -f cluster.yaml -f deploy.yaml -o html > cluster.html
"""


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="fleetkit schedule",
        description="Place pods as kube-scheduler v1.32 (default profile) would, offline.",
        epilog=EPILOG,
    )
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        default=[],
        metavar="FILE|DIR",
        help="manifests: cluster (nodes, running pods) and workloads; repeatable",
    )
    p.add_argument("--config", metavar="FILE", help="a KubeSchedulerConfiguration (v1)")
    p.add_argument(
        "--then",
        action="append",
        default=[],
        metavar="STEP",
        help="a what-if step applied after the initial placement; repeatable",
    )
    p.add_argument(
        "--seed", type=int, default=1, help="seed for tie-breaking and generated names (default 1)"
    )
    p.add_argument(
        "-o",
        "--output",
        choices=("wide", "json", "yaml", "html"),
        default="wide",
        help="wide (kubectl's table), json/yaml (a v1 List), html (one static page: nodes by "
        "zone, pods by workload, Pending pods with reasons; as GET /ui on fleetkit cluster serve)",
    )
    p.add_argument(
        "--explain",
        nargs="?",
        const="",
        default=None,
        metavar="POD",
        help="show every node's filter result and scores (for POD, or every new pod)",
    )
    p.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="snapshot a live cluster read-only (nodes, pods, namespaces, classes, workloads)",
    )
    p.add_argument("--context", metavar="NAME", help="kubeconfig context (default: current)")
    p.add_argument(
        "--max-pods",
        type=int,
        default=None,
        metavar="N",
        help="refuse a simulation that would hold more than N pods (default 100000, "
        "kube's documented maximum per cluster is 150000)",
    )
    return p


def main(command: str, argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not args.filename and not (args.kubeconfig or args.context):
        raise UsageError(
            "no input: give -f FILE|DIR or --kubeconfig",
            hint="run 'fleetkit schedule --help' for usage",
        )
    from fleetkit.scheduler import MAX_PODS, default_config, load_config, simulate
    from fleetkit.scheduler.report import (
        dump,
        explain_entries,
        pod_list,
        render_explain,
        render_table,
    )

    max_pods = MAX_PODS if args.max_pods is None else args.max_pods
    if max_pods < 1:
        raise UsageError(f"invalid --max-pods {max_pods}", hint="give a positive pod count")
    config = load_config(args.config) if args.config else default_config()
    explain = args.explain is not None
    if explain and args.output == "html":
        raise UsageError("--explain has no html form", hint="use -o wide, json or yaml")
    live = None
    if args.kubeconfig or args.context:
        from fleetkit.scheduler.snapshot import snapshot

        live = snapshot(args.kubeconfig, args.context)
    sim = simulate(
        args.filename,
        config=config,
        steps=args.then,
        seed=args.seed,
        explain=explain,
        live=live,
        max_pods=max_pods,
    )
    for w in sim.warnings:
        print(w, file=sys.stderr)
    target = args.explain or None
    if explain:
        if target and not explain_entries(sim, target):
            raise UsageError(
                f'pods "{target}" not found among the new pods',
                hint="--explain takes a new pod's name, name prefix or NAMESPACE/NAME",
            )
        if args.output in ("json", "yaml"):
            sys.stdout.write(dump({"pods": explain_entries(sim, target)}, args.output))
        else:
            sys.stdout.write(render_explain(sim, target))
        return 0
    if args.output in ("json", "yaml"):
        sys.stdout.write(dump(pod_list(sim), args.output))
    elif args.output == "html":
        from fleetkit.cluster import render_objects

        nodes = [info.node.raw for info in sim.cluster.infos]
        sys.stdout.write(render_objects(nodes, pod_list(sim)["items"], "fleetkit schedule"))
    else:
        sys.stdout.write(render_table(sim))
    return 0
