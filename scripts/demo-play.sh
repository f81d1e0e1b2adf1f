#!/usr/bin/env bash
# Rolling update with a healthz gate (serial: 1, uri until/retries/delay) against 4 local
# hosts, each with a tiny HTTP server on an ephemeral 127.0.0.1 port; node3 stays 503, so the
# rollout stops there and node4 is never touched.
set -euo pipefail

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
for n in 1 2 3 4; do
  code=200; [ "$n" = 3 ] && code=503
  python3 "$work/healthz.py" "$work/port$n" "$code" & pids+=($!)
  for _ in $(seq 100); do [ -s "$work/port$n" ] && break; sleep 0.05; done
  echo "node$n ansible_connection=local healthz_port=$(cat "$work/port$n")" >> "$work/inventory.ini"
done

cat > "$work/rolling.yml" <<'YAML'
- name: rolling OS update, one kubelet at a time
  hosts: kubelets
  gather_facts: false
  serial: 1
  order: inventory
  tasks:
    - name: apply updates (stand-in for yum name='*' state=latest)
      command: /bin/true
    - name: wait for the kubelet healthz
      uri:
        url: "http://127.0.0.1:{{ healthz_port }}/healthz"
        status_code: 200
      register: result
      until: result.status == 200
      retries: 2
      delay: 1
    - name: healthy
      debug:
        msg: "{{ inventory_hostname }} is healthy"
YAML

echo "+ fleetkit play -i inventory.ini rolling.yml"
set +e
fleetkit play -i "$work/inventory.ini" "$work/rolling.yml"
rc=$?
set -e
echo "exit code: $rc (2 = a host failed; node4 was never touched)"
[ "$rc" = 2 ]
