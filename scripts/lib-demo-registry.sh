# Sourced by scripts/demo-pull.sh and scripts/demo-proxy.sh (not run by itself): a temp work
# directory removed on exit, `fleetkit registry serve` processes on free loopback ports stopped
# on exit, and a small OCI image built without network.
#   demo_registry NAME ARGS...      start `fleetkit registry serve ARGS` (log in $work/NAME.log);
#                                   its host:port in $url, its PID appended to $pids
#   demo_image DIR PATH:SIZE...     write an OCI layout at DIR (tag v1): one gzip'd tar layer per
#                                   PATH:SIZE (SIZE random bytes at PATH), printing its digest
#   step TEXT                       a section heading
# The caller sets `set -euo pipefail` and names its work directory: demo_init NAME.

demo_init() {
  work=$(mktemp -d "/tmp/fleetkit-$1.XXXXXX")
  pids=()
  trap demo_cleanup EXIT INT TERM
  export DOCKER_CONFIG="$work/docker-config"   # never touch ~/.docker
  PY=python3
  command -v python >/dev/null && PY=python
  if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B='' N=''; fi
}

demo_cleanup() {
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$work"
}

step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }

url=""
demo_registry() {
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

demo_image() {
  "$PY" - "$@" <<'PYEOF'
import gzip, hashlib, io, json, os, sys, tarfile
root, specs = sys.argv[1], sys.argv[2:]
blobs = os.path.join(root, "blobs", "sha256")
os.makedirs(blobs)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(blobs, d), "wb").write(data)
    return {"digest": "sha256:" + d, "size": len(data)}
layers, diffs = [], []
for spec in specs:
    name, size = spec.rsplit(":", 1)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name); info.size = int(size); info.mode = 0o755
        tar.addfile(info, io.BytesIO(os.urandom(int(size))))
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
}
