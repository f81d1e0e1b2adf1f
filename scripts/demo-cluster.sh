#!/usr/bin/env bash
# The blog's kubectl session against `fleetkit cluster serve`, verbatim: get nodes, apply a
# Deployment with pod anti-affinity, get po -o wide, scale to 6, get po (3 Pending), describe.
# Then safe node maintenance: a PodDisruptionBudget stops the drain that would strand a replica.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fx="$here/tests/fixtures/cluster"
command -v kubectl >/dev/null || { echo "demo-cluster: kubectl is not installed; skipping"; exit 0; }
work="$(mktemp -d)"
fleetkit cluster serve --nodes "$fx/nodes.yaml" --listen 127.0.0.1:0 \
  --kubeconfig-out "$work/kubeconfig" 2>"$work/serve.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q serving "$work/serve.log" && break; sleep 0.1; done
export KUBECONFIG="$work/kubeconfig"
cp "$fx/nginx.yaml" "$fx/pdb.yaml" "$work/"
cd "$work"
run() { echo "\$ $*"; "$@"; echo; }
run kubectl get nodes
run kubectl apply -f nginx.yaml
kubectl rollout status deploy/nginx --timeout=60s >/dev/null
run kubectl get po -o wide
run kubectl scale deploy nginx --replicas 6
kubectl wait --for=jsonpath='{.status.updatedReplicas}'=6 deploy/nginx --timeout=60s >/dev/null
kubectl wait --for=condition=PodScheduled=False pod --field-selector=status.phase=Pending --timeout=60s >/dev/null
run kubectl get po
pod=$(kubectl get po --field-selector=status.phase=Pending -o name | sed -n 1p)
echo "\$ kubectl describe $pod | sed -n '/^Events:/,\$p'"
kubectl describe "$pod" | sed -n '/^Events:/,$p'
echo
echo "== safe maintenance: 3 replicas, one per node, a PDB of minAvailable 3 =="
run kubectl scale deploy nginx --replicas 3
kubectl wait --for=jsonpath='{.status.replicas}'=3 deploy/nginx --timeout=60s >/dev/null
run kubectl apply -f pdb.yaml
kubectl wait --for=jsonpath='{.status.currentHealthy}'=3 pdb/nginx --timeout=60s >/dev/null
run kubectl cordon demo-worker
echo "\$ kubectl drain demo-worker --ignore-daemonsets --timeout=3s"
out=$(kubectl drain demo-worker --ignore-daemonsets --timeout=3s 2>&1 || true)
echo "$out" | grep "disruption budget" | sed -n 1p
echo "(the drain stops: evicting nginx from demo-worker would leave it Pending)"
run kubectl uncordon demo-worker
echo "== the rolling OS update with fleetkit.k8s.drain_check before each drain (serial: 1) =="
run kubectl delete pdb nginx   # without the budget, kubectl drain would strand a replica
echo "\$ fleetkit play -i inventory.ini rolling.yml -e kubeconfig=\$KUBECONFIG"
rc=0
fleetkit play -i "$fx/maintenance/inventory.ini" "$fx/maintenance/rolling.yml" \
  -e "kubeconfig=$KUBECONFIG" || rc=$?
echo "(exit $rc: the rollout stopped at demo-worker, before its drain; no node was cordoned)"
kubectl get nodes
