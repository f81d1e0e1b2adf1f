#!/usr/bin/env bash
# The seed's story: the blog's manifest is rejected (empty topologyKey), the corrected one
# places one nginx per worker, and scaling to 6 leaves 3 Pending with kube's exact message.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seed="$here/tests/fixtures/scheduler/seed"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== 1. the blog's manifest (topologyKey: \"\") =="
set +e
fleetkit schedule -f "$seed/cluster.yaml" -f "$seed/blog-deploy.yaml" 2>"$work/err"
rc=$?
set -e
cat "$work/err"
echo "(exit $rc: rejected as kubectl apply would)"
test "$rc" -eq 2

echo
echo "== 2. the corrected manifest (topologyKey: kubernetes.io/hostname) =="
fleetkit schedule -f "$seed/cluster.yaml" -f "$seed/deploy.yaml"

echo
echo "== 3. what if: kubectl scale deploy nginx --replicas 6 =="
fleetkit schedule -f "$seed/cluster.yaml" -f "$seed/deploy.yaml" \
  --then "kubectl scale deployment.apps/nginx --replicas=6" | tee "$work/out"
pending=$(grep -c '^Warning   FailedScheduling' "$work/out")
echo "($pending pods Pending: 3 workers cannot hold 6 mutually anti-affine pods)"
test "$pending" -eq 3
tail -1 "$work/out" | grep -qx '6 pods: 3 Running, 3 Pending'

echo
echo "== 4. why: --explain names the pods that block each node =="
fleetkit schedule -f "$seed/cluster.yaml" -f "$seed/deploy.yaml" \
  --then "kubectl scale deployment.apps/nginx --replicas=4" --explain | tail -6
