#!/usr/bin/env bash
# demo-proxy: a pull through fleetkit's pull-through cache. Two embedded registries on free
# loopback ports (temp roots): the upstream with token auth (user 'demo') holding a small image
# built here (no network), and a cache in front of it (--proxy-remote) that logs in upstream
# itself. A client pulls anonymously through the cache, then the upstream is stopped and the
# image still pulls from the cache; a push to the cache is refused. Everything it starts or
# writes is removed on exit.
set -euo pipefail
. "$(dirname "$0")/lib-demo-registry.sh"
demo_init demo-proxy

step "the upstream: fleetkit registry serve --auth token (htpasswd user 'demo')"
echo 'demo-password' | fleetkit registry htpasswd add demo --file "$work/htpasswd" --password-stdin --cost 4 >/dev/null
demo_registry upstream --root "$work/upstream" --auth token --htpasswd "$work/htpasswd"
up=$url
echo "upstream at http://$up"

step "build a small 2-layer image and push it upstream as demo/hello:v1"
demo_image "$work/src" bin/hello:400000 srv/data.bin:900000
echo 'demo-password' | fleetkit login "$up" -u demo --password-stdin >/dev/null
fleetkit push -q "oci:$work/src:v1" "$up/demo/hello:v1"
fleetkit logout "$up" >/dev/null   # from here on the client has no upstream credentials

step "the cache: fleetkit registry serve --proxy-remote http://$up --proxy-username demo"
export FLEETKIT_PROXY_PASSWORD=demo-password   # kept off the command line (ps)
demo_registry cache --root "$work/cache" --proxy-remote "http://$up" --proxy-username demo
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
