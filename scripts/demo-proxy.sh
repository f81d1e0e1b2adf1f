#!/usr/bin/env bash
# demo-proxy: a pull through fleetkit's pull-through cache. Two embedded registries on free
# loopback ports (temp roots): the upstream with token auth (user 'demo') holding a small image
# built here (no network), and a cache in front of it (--proxy-remote) that logs in upstream
# itself. A client pulls anonymously through the cache, then the upstream is stopped and the
# image still pulls from the cache; a push to the cache is refused. Everything it starts or
# writes is removed on exit.
set -euo pipefail

work=$(mktemp -d /tmp/fleetkit-demo-proxy.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
export DOCKER_CONFIG="$work/docker-config"   # never touch ~/.docker
PY=python3
command -v python >/dev/null && PY=python

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B='' N=''; fi
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }

url=""
start() {  # start NAME ARGS...: run `fleetkit registry serve ARGS`; its host:port in $url
  local name=$1; shift
  fleetkit registry serve --listen 127.0.0.1:0 --ready-file "$work/$name.ready" "$@" \
    >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 200); do
    [ -s "$work/$name.ready" ] && break
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/$name.log" >&2; exit 1; }
    sleep 0.05
  done
  [ -s "$work/$name.ready" ] || { echo "$name did not become ready" >&2; exit 1; }
  url=$(cat "$work/$name.ready"); url=${url#http://}; url=${url%/}
}

step "the upstream: fleetkit registry serve --auth token (htpasswd user 'demo')"
echo 'demo-password' | fleetkit registry htpasswd add demo --file "$work/htpasswd" --password-stdin --cost 4 >/dev/null
start upstream --root "$work/upstream" --auth token --htpasswd "$work/htpasswd"
up=$url
echo "upstream at http://$up"

step "build a small 2-layer image and push it upstream as demo/hello:v1"
"$PY" - "$work/src" <<'PYEOF'
import gzip, hashlib, io, json, os, sys, tarfile
root = sys.argv[1]
blobs = os.path.join(root, "blobs", "sha256")
os.makedirs(blobs)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(blobs, d), "wb").write(data)
    return {"digest": "sha256:" + d, "size": len(data)}
layers, diffs = [], []
for name, size in [("bin/hello", 400_000), ("srv/data.bin", 900_000)]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name); info.size = size; info.mode = 0o755
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    diffs.append("sha256:" + hashlib.sha256(raw.getvalue()).hexdigest())
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                   **put(gzip.compress(raw.getvalue(), mtime=0))})
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
                       "layers": layers}).encode()
top = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **put(manifest),
       "annotations": {"org.opencontainers.image.ref.name": "v1"}}
open(os.path.join(root, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
open(os.path.join(root, "index.json"), "w").write(json.dumps({"schemaVersion": 2, "manifests": [top]}))
print("manifest", top["digest"])
PYEOF
echo 'demo-password' | fleetkit login "$up" -u demo --password-stdin >/dev/null
fleetkit push -q "oci:$work/src:v1" "$up/demo/hello:v1"
fleetkit logout "$up" >/dev/null   # from here on the client has no upstream credentials

step "the cache: fleetkit registry serve --proxy-remote http://$up --proxy-username demo"
export FLEETKIT_PROXY_PASSWORD=demo-password   # kept off the command line (ps)
start cache --root "$work/cache" --proxy-remote "http://$up" --proxy-username demo
unset FLEETKIT_PROXY_PASSWORD
cache=$url
echo "cache at http://$cache (anonymous clients; it logs in upstream as 'demo')"

step "fleetkit pull $cache/demo/hello:v1 (cold: the cache fetches from upstream while it streams)"
seen=$(wc -l <"$work/upstream.log")
fleetkit pull "$cache/demo/hello:v1" "oci:$work/cold:v1"
echo "-- what the cache asked the upstream (upstream's access log):"
tail -n +"$((seen + 1))" "$work/upstream.log" | grep -oE '"(GET|HEAD) /(v2|service)[^ ]*' | sed 's/?.*scope=/ ... scope=/' | sed 's/^"/   /'

step "a push to the cache is refused (distribution's UNSUPPORTED)"
if fleetkit push -q "oci:$work/src:v1" "$cache/demo/other:v1" 2>"$work/push.err"; then
  echo "unexpected: the push succeeded" >&2; exit 1
fi
cat "$work/push.err"
step "stop the upstream, pull again into a fresh layout: served from the cache"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
fleetkit pull "$cache/demo/hello:v1" "oci:$work/warm:v1"
grep -o 'upstream did not answer.*' "$work/cache.log" | head -1 | cut -c1-110
cmp "$work/cold/index.json" "$work/warm/index.json" && echo "same index.json, same manifest digest"

echo
echo "demo-proxy: OK"
