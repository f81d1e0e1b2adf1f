#!/usr/bin/env bash
# The README's rolling update, unchanged (docs/examples/rolling/: serial: 1, order: sorted, roles
# os_update + kubelet_health), against 4 local hosts whose kubelet healthz is a tiny HTTP server
# on an ephemeral 127.0.0.1 port. The inventory sets the roles' defaults so that no package is
# upgraded and nothing reboots; node3 stays 503, so the rollout stops there and node4 is never
# touched.
set -euo pipefail

example="$(cd "$(dirname "$0")/.." && pwd)/docs/examples/rolling"
work=$(mktemp -d /tmp/fk-demo-play.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/healthz.py" <<'PY'
import http.server, sys
status = int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        body = b"ok" if status == 200 else b"unhealthy"
        self.send_response(status); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(srv.server_address[1]))
srv.serve_forever()
PY

echo "[kubelets]" > "$work/inventory.ini"
for n in 4 2 1 3; do
  code=200; [ "$n" = 3 ] && code=503
  python3 "$work/healthz.py" "$work/port$n" "$code" & pids+=($!)
  for _ in $(seq 100); do [ -s "$work/port$n" ] && break; sleep 0.05; done
  echo "node$n ansible_connection=local kubelet_health_url=http://127.0.0.1:$(cat "$work/port$n")/healthz" \
    >> "$work/inventory.ini"
done
cat >> "$work/inventory.ini" <<'INI'

[kubelets:vars]
# role defaults: leave this machine's packages alone, poll healthz 3 times, 1 s apart
os_update_enabled=false
os_update_reboot=false
kubelet_health_retries=2
kubelet_health_delay=1
INI

echo "+ fleetkit play -i inventory.ini docs/examples/rolling/rolling.yml"
set +e
fleetkit play -i "$work/inventory.ini" "$example/rolling.yml"
rc=$?
set -e
echo "exit code: $rc (2 = a host failed; node4 was never touched)"
[ "$rc" = 2 ]
