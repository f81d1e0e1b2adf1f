#!/usr/bin/env bash
# Demo: an embedded fleetkit registry with token auth on 127.0.0.1 (temp dir, ephemeral port);
# push a small image built here (no network), then replay a client's first exchange:
#   GET /v2/ -> 401 Bearer challenge, GET the token, GET the manifest with its digest.
set -euo pipefail

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fleetkit-demo-registry.XXXXXX")
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

PY=${PYTHON:-python3}
command -v fleetkit >/dev/null || { echo "demo-registry: fleetkit not on PATH (run via make demo-registry)" >&2; exit 1; }

echo "== 1. a user for the token service"
printf 'demo-password\n' | fleetkit registry htpasswd add demo --file "$WORK/htpasswd" --password-stdin --cost 6

echo "== 2. fleetkit registry serve --auth token (127.0.0.1, ephemeral port, temp root)"
fleetkit registry serve --root "$WORK/data" --listen 127.0.0.1:0 --auth token \
  --htpasswd "$WORK/htpasswd" --ready-file "$WORK/ready" -q 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 200); do
  [ -s "$WORK/ready" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.05
done
[ -s "$WORK/ready" ] || { echo "registry did not start" >&2; cat "$WORK/server.log" >&2; exit 1; }
URL=$(cat "$WORK/ready")
echo "registry at $URL"

echo "== 3. build a one-layer OCI image here and push it as demo/hello:v1 (token flow, stdlib HTTP)"
"$PY" - "$URL" <<'PYEOF'
import base64, gzip, hashlib, io, json, re, sys, tarfile, urllib.parse, urllib.request, urllib.error

url = sys.argv[1]
def sha(b): return "sha256:" + hashlib.sha256(b).hexdigest()
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as tar:
    data = b"hello from a fleetkit demo image\n"
    info = tarfile.TarInfo("hello.txt"); info.size = len(data); info.mtime = 0
    tar.addfile(info, io.BytesIO(data))
layer = gzip.compress(buf.getvalue(), mtime=0)
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": [sha(buf.getvalue())]}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(layer), "size": len(layer)}]}).encode()

def call(method, path, body=None, headers=None, token=None):
    req = urllib.request.Request(url + path if path.startswith("/") else path, data=body, method=method,
                                 headers=dict(headers or {}))
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()

status, headers, _ = call("POST", "/v2/demo/hello/blobs/uploads/")
challenge = headers["WWW-Authenticate"]
params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
q = urllib.parse.urlencode({"service": params["service"], "scope": params["scope"]})
basic = base64.b64encode(b"demo:demo-password").decode()
status, _, body = call("GET", f"{params['realm']}?{q}", headers={"Authorization": "Basic " + basic})
token = json.loads(body)["token"]
for blob in (layer, config):
    status, _, err = call("POST", f"/v2/demo/hello/blobs/uploads/?digest={sha(blob)}", blob,
                          {"Content-Type": "application/octet-stream"}, token)
    assert status == 201, (status, err)
status, headers, err = call("PUT", "/v2/demo/hello/manifests/v1", manifest,
                            {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, token)
assert status == 201, (status, err)
print(f"pushed demo/hello:v1 -> {headers['Docker-Content-Digest']}")
PYEOF

echo
echo "== 4. a client's first exchange"
HAVE_CURL=0; command -v curl >/dev/null && HAVE_CURL=1
show() {  # show METHOD URL [curl args...]: status line, the headers that matter, then the body
  local url=$1; shift
  if [ "$HAVE_CURL" = 1 ]; then
    curl -si --max-time 30 "$@" "$url" | tr -d '\r' | grep -iE '^(HTTP/|www-authenticate|docker-content-digest|content-type|etag)|^\{|^ ' || true
  else
    "$PY" -c 'import sys,urllib.request as u
try:
    r=u.urlopen(u.Request(sys.argv[1],headers=dict(h.split(": ",1) for h in sys.argv[2:])),timeout=30)
except u.HTTPError as e: r=e
print("HTTP", r.status); [print(f"{k}: {v}") for k,v in r.headers.items() if k.lower() in ("www-authenticate","docker-content-digest","content-type","etag")]; print(r.read().decode())' "$url" "${@:2}"
  fi
  echo
}
echo "\$ GET $URL/v2/"
show "$URL/v2/"
SCOPE="repository:demo/hello:pull"
echo "\$ GET $URL/service/token?service=fleetkit-registry&scope=$SCOPE   (Basic demo:...)"
TOKEN_JSON=$("$PY" -c 'import base64,sys,urllib.request as u,urllib.parse as p
q=p.urlencode({"service":"fleetkit-registry","scope":sys.argv[2]})
r=u.Request(sys.argv[1]+"/service/token?"+q,headers={"Authorization":"Basic "+base64.b64encode(b"demo:demo-password").decode()})
print(u.urlopen(r,timeout=30).read().decode())' "$URL" "$SCOPE")
TOKEN=$(printf '%s' "$TOKEN_JSON" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
printf '%s' "$TOKEN_JSON" | "$PY" -c 'import json,sys,base64
d=json.load(sys.stdin); t=d["token"]
claims=json.loads(base64.urlsafe_b64decode(t.split(".")[1]+"=="))
print(json.dumps({"token": t[:32]+"...", "expires_in": d["expires_in"], "issued_at": d["issued_at"]}))
print("claims:", json.dumps({k: claims[k] for k in ("iss","sub","aud","access")}))'
echo
echo "\$ GET $URL/v2/demo/hello/manifests/v1   (Bearer, Accept: OCI manifest)"
show "$URL/v2/demo/hello/manifests/v1" -H "Authorization: Bearer $TOKEN" -H "Accept: application/vnd.oci.image.manifest.v1+json"
echo "demo-registry: done (server stopped, $WORK removed)"
