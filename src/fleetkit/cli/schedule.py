"""``fleetkit schedule``: place pods as kube-scheduler v1.32's default profile would."""

from __future__ import annotations

import argparse
import gc
import sys

from fleetkit.cli._options import ArgumentParser
from fleetkit.errors import UsageError

__all__ = ["main"]

EPILOG = """\
inputs: Node, Namespace, PriorityClass, Service, PodDisruptionBudget, Pod (bound when
spec.nodeName is set), Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, kind: List;
YAML (multi-document) or JSON; or --kubeconfig for a live cluster's snapshot.

how: the inputs are loaded into the simulated cluster of `fleetkit cluster serve` (its API
rules, controllers, kubelet and scheduler, without HTTP): what already exists (Nodes,
Namespaces, PriorityClasses, Services, PDBs, bound Pods, objects with a uid, ownerReferences or
status) first and all at once, then every other object in input order as kubectl apply would
send it; each object is decoded strictly, with the API server's messages.

steps (--then: kubectl commands, the leading "kubectl" optional; run in order):
  kubectl scale deployment.apps/NAME --replicas=N [-n NS]   (deploy, rs, sts, job; TYPE NAME too)
  kubectl apply -f FILE
  kubectl taint nodes NODE key=value:NoSchedule [key:NoExecute-] [--overwrite]
  kubectl label nodes NODE key=value [key-] [--overwrite]   (also pods, namespaces)
  kubectl cordon NODE | kubectl uncordon NODE
  kubectl drain NODE [--ignore-daemonsets] [--force]         (evictions honour PDBs)
  kubectl delete node NAME... | kubectl delete nodes -l SELECTOR

output: the pods as kubectl get pods -o wide prints them (no AGE: nothing ages offline), the
workloads (READY, UP-TO-DATE, stuck rollouts), FailedScheduling events, node and zone fill,
and a closing "N pods: N Running, M Pending" line. --explain adds, per node that fails a
filter, the placed pods that block it.

limits: each input file at most 64 MiB; YAML aliases within go-yaml's budget (as kubectl);
integer fields within the API's int32/int64 ranges; at most --max-pods pods at once.

exit codes: 0 done (also when pods stay Pending), 2 bad flags or invalid input, 1 other errors.

example:
  fleetkit schedule -f tests/fixtures/cluster/nodes.yaml -f tests/fixtures/cluster/nginx.yaml \\
    --then "kubectl scale deployment.apps/nginx --replicas=6"
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
    # the simulation makes no reference cycles (gc.collect() after 20,000 pods and after each
    # conformance scenario finds nothing unreachable) but millions of long-lived objects, which
    # every young collection walks once more: 0.7 CPU-s of 100,000 pods (41 collections)
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(args)
    finally:
        if enabled:
            gc.enable()


def _run(args: argparse.Namespace) -> int:
    if not args.filename and not (args.kubeconfig or args.context):
        raise UsageError(
            "no input: give -f FILE|DIR or --kubeconfig",
            hint="run 'fleetkit schedule --help' for usage",
        )
    from fleetkit.cluster.offline import simulate
    from fleetkit.cluster.report import explain_entries, pod_list, render_table
    from fleetkit.scheduler import MAX_PODS, default_config, load_config
    from fleetkit.scheduler.report import dump, render_explain_entries, write_dump

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
    out = simulate(
        args.filename,
        steps=args.then,
        config=config,
        seed=args.seed,
        explain=explain,
        live=live,
        max_pods=max_pods,
    )
    from fleetkit.cli import KEEP_UNTIL_EXIT

    KEEP_UNTIL_EXIT.append(out)  # exiting frees nothing
    for w in out.warnings:
        print(w, file=sys.stderr)
    target = args.explain or None
    if explain:
        entries = explain_entries(out, target)
        if target and not entries:
            raise UsageError(
                f'pods "{target}" not found among the new pods',
                hint="--explain takes a new pod's name, name prefix or NAMESPACE/NAME",
            )
        if args.output in ("json", "yaml"):
            sys.stdout.write(dump({"pods": entries}, args.output))
        else:
            sys.stdout.write(render_explain_entries(entries) if entries else "no matching pod\n")
        return 0
    if args.output in ("json", "yaml"):
        write_dump(pod_list(out), args.output, sys.stdout)
    elif args.output == "html":
        from fleetkit.cluster import render_objects

        nodes = out.state.store.list("nodes")
        sys.stdout.write(render_objects(nodes, out.pods(), "fleetkit schedule"))
    else:
        sys.stdout.write(render_table(out))
    return 0
