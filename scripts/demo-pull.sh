#!/usr/bin/env bash
# demo-pull: the client side of `docker pull`, against fleetkit's own registry with token auth.
# Starts `fleetkit registry serve --auth token` on a free loopback port (temp root), builds a
# small 3-layer image as an OCI layout (no network), logs in, pushes it, then pulls it with
# --trace so the exchange is visible: 401 + Bearer challenge, token, manifest with its digest,
# parallel blob GETs. Everything it starts or writes is removed on exit.
set -euo pipefail
. "$(dirname "$0")/lib-demo-registry.sh"
demo_init demo-pull

step "start fleetkit registry serve --auth token (htpasswd user 'demo')"
echo 'demo-password' | fleetkit registry htpasswd add demo --file "$work/htpasswd" --password-stdin --cost 4 >/dev/null
demo_registry registry --root "$work/data" --auth token --htpasswd "$work/htpasswd" -q
host=$url
echo "registry at http://$host"

step "build a small 3-layer image as an OCI layout"
demo_image "$work/src" bin/hello:300000 etc/motd:120000 srv/data.bin:500000

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
