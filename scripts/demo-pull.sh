#!/usr/bin/env bash
# demo-pull: the client side of `docker pull`, against fleetkit's own registry with token auth.
# Starts `fleetkit registry serve --auth token` on a free loopback port (temp root), builds a
# small 3-layer image as an OCI layout (no network), logs in, pushes it, then pulls it with
# --trace so the exchange is visible: 401 + Bearer challenge, token, manifest with its digest,
# parallel blob GETs. Everything it starts or writes is removed on exit.
set -euo pipefail

work=$(mktemp -d /tmp/fleetkit-demo-pull.XXXXXX)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
export DOCKER_CONFIG="$work/docker-config"   # never touch ~/.docker
PY=python3
command -v python >/dev/null && PY=python

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B='' N=''; fi
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }

step "start fleetkit registry serve --auth token (htpasswd user 'demo')"
echo 'demo-password' | fleetkit registry htpasswd add demo --file "$work/htpasswd" --password-stdin --cost 4 >/dev/null
fleetkit registry serve --root "$work/data" --listen 127.0.0.1:0 --ready-file "$work/ready" \
  --auth token --htpasswd "$work/htpasswd" -q &
server_pid=$!
for _ in $(seq 1 200); do
  [ -s "$work/ready" ] && break
  kill -0 "$server_pid" 2>/dev/null || { echo "registry failed to start" >&2; exit 1; }
  sleep 0.05
done
[ -s "$work/ready" ] || { echo "registry did not become ready" >&2; exit 1; }
url=$(cat "$work/ready")
host=${url#http://}
host=${host%/}
echo "registry at $url"

step "build a small 3-layer image as an OCI layout"
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
for i, (name, size) in enumerate([("bin/hello", 300_000), ("etc/motd", 120_000), ("srv/data.bin", 500_000)]):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name); info.size = size; info.mode = 0o755
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    diffs.append("sha256:" + hashlib.sha256(raw.getvalue()).hexdigest())
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                   **put(gzip.compress(raw.getvalue(), mtime=0))})
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/hello"]},
                     "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
                       "layers": layers}).encode()
top = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **put(manifest),
       "annotations": {"org.opencontainers.image.ref.name": "v1"}}
open(os.path.join(root, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
open(os.path.join(root, "index.json"), "w").write(json.dumps({"schemaVersion": 2, "manifests": [top]}))
print("wrote", root, "manifest", top["digest"])
PYEOF

step "fleetkit login $host -u demo --password-stdin"
echo 'demo-password' | fleetkit login "$host" -u demo --password-stdin

step "fleetkit push oci:src:v1 $host/demo/hello:v1"
fleetkit push "oci:$work/src:v1" "$host/demo/hello:v1"

step "fleetkit pull --trace $host/demo/hello:v1 oci:out:v1   (Date/Server/Content-Length lines elided)"
fleetkit pull --trace "$host/demo/hello:v1" "oci:$work/out:v1" 2>&1 |
  grep -Ev '< (Date|Server|Content-Length|Docker-Distribution-API-Version|Etag|Cache-Control|Accept-Ranges):'

step "pull again: every blob is already there"
fleetkit pull "$host/demo/hello:v1" "oci:$work/out:v1"

step "fleetkit pull ... docker-archive: (loadable by docker load / podman load)"
fleetkit pull -q "$host/demo/hello:v1" "docker-archive:$work/hello.tar"
tar -tf "$work/hello.tar" | grep -E '^(manifest.json|index.json|oci-layout|repositories)$'

step "fleetkit tags / fleetkit manifest -o json"
fleetkit tags "$host/demo/hello"
fleetkit manifest -o json "$host/demo/hello:v1"

step "fleetkit logout $host"
fleetkit logout "$host"
echo
echo "demo-pull: OK"
