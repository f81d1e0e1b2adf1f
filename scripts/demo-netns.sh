#!/usr/bin/env bash
# Demo: debug a "container" that has no tools, from the host, with fleetkit only.
# Builds two network namespaces joined by a veth pair: "app" (a process with its own
# resolv.conf, standing in for a container) and "infra" (an HTTP service and dnsmasq as the
# cluster DNS). Then: fleetkit ns dig, fleetkit ns capture, fleetkit nsenter ... ip addr.
# Everything it creates is removed on exit.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "demo-netns: needs root (it creates network namespaces); skipping"
  exit 0
fi
for tool in ip dnsmasq; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
    echo "demo-netns: $tool is missing (apt-get install -y iproute2 dnsmasq-base); skipping"
    exit 0
  fi
done
PATH="$PATH:/usr/sbin:/sbin"
PY="$(command -v python3)"

tag="fkdemo$$"
app="${tag}a"; infra="${tag}i"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  ip netns del "$app" 2>/dev/null || true
  ip netns del "$infra" 2>/dev/null || true
  ip link del "${tag}v0" 2>/dev/null || true
  rm -rf "/etc/netns/$app" "$workdir"
  rmdir /etc/netns 2>/dev/null || true
}
workdir="$(mktemp -d)"
trap cleanup EXIT

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B='' N=''; fi
say() { printf '\n%s$ %s%s\n' "$B" "$*" "$N"; }

ip netns add "$app"; ip netns add "$infra"
ip link add "${tag}v0" type veth peer name "${tag}v1"
ip link set "${tag}v0" netns "$app"; ip link set "${tag}v1" netns "$infra"
ip -n "$app" link set "${tag}v0" name eth0; ip -n "$infra" link set "${tag}v1" name eth0
ip -n "$app" addr add 10.88.0.2/24 dev eth0; ip -n "$infra" addr add 10.88.0.10/24 dev eth0
for ns in "$app" "$infra"; do ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up; done
mkdir -p "/etc/netns/$app"
printf 'nameserver 10.88.0.10\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n' \
  > "/etc/netns/$app/resolv.conf"

echo ok > "$workdir/healthz"
ip netns exec "$infra" "$(command -v dnsmasq || echo /usr/sbin/dnsmasq)" --keep-in-foreground \
  --no-resolv --no-hosts --bind-interfaces --listen-address=10.88.0.10 --pid-file= --user=root \
  --address=/web.default.svc.cluster.local/10.88.0.10 2>/dev/null &
pids+=($!)
ip netns exec "$infra" "$PY" -m http.server --bind 10.88.0.10 80 --directory "$workdir" \
  >/dev/null 2>&1 &
pids+=($!)
ip netns exec "$app" sleep 600 &
target=$!
pids+=("$target")

# wait (bounded) until the service and the DNS server answer
for _ in $(seq 100); do
  if fleetkit ns connect -t "$target" 10.88.0.10:80 >/dev/null 2>&1 \
     && fleetkit ns dig -t "$target" +short +time=1 web >/dev/null 2>&1; then break; fi
  sleep 0.1
done

say "fleetkit ns dig -t $target +short web      # the app's resolv.conf: search list + ndots"
fleetkit ns dig -t "$target" +short web

say "fleetkit ns dig -t $target web.default.svc.cluster.local"
fleetkit ns dig -t "$target" web.default.svc.cluster.local

say "fleetkit ns capture -t $target -i eth0 -c 2 port 80 and \"tcp[tcpflags] & tcp-syn != 0\""
fleetkit ns capture -t "$target" -i eth0 -c 2 --duration 20 port 80 and "tcp[tcpflags] & tcp-syn != 0" &
cap=$!
pids+=("$cap")
sleep 1
for _ in 1 2 3; do
  fleetkit ns http -t "$target" http://web/healthz >/dev/null 2>&1 || true
done
wait "$cap" || true

say "fleetkit ns http -t $target -b http://web/healthz      # name resolved as the app would"
fleetkit ns http -t "$target" -b http://web/healthz

say "fleetkit nsenter -t $target -n ip addr"
fleetkit nsenter -t "$target" -n ip addr

say "fleetkit ns sockets -t ${pids[0]}      # dnsmasq's namespace, as ss -tuanp"
fleetkit ns sockets -t "${pids[0]}"

echo
echo "demo-netns: done; removing namespaces"
