#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# scripts/netns-forward (how `make demo` shows cox's admin UI on this machine): an HTTP
# server listening on 127.0.0.1 inside a namespace of our own is reached from outside it
# through the forwarder, byte for byte (a 3 MiB file), by several clients at once, and
# nothing else of the namespace is reachable. Needs root (namespaces, setns).
#   tests/scripts/netns_forward.sh
set -u
cd "$(dirname "$0")/../.." || exit 2
TAG=
. tests/lib/tap.sh
N=4
if [ "$(id -u)" != 0 ]; then
	echo "# SKIPPING netns-forward: needs root for network namespaces" >&2
	for i in $(seq $N); do echo "skip - netns-forward: needs root"; done
	exit 0
fi
ns=pht-fwd-$$
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	ip netns del "$ns" 2>/dev/null
	rm -rf "$tmp"
	return 0
}
trap cleanup EXIT
ip netns add "$ns" && ip -n "$ns" link set lo up || { nok "netns-forward: make a namespace"; exit 1; }
mkdir "$tmp/www"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$tmp/www/big"
echo hello >"$tmp/www/small"
ip netns exec "$ns" /usr/bin/python3 -m http.server --bind 127.0.0.1 --directory "$tmp/www" \
    18440 >"$tmp/http.log" 2>&1 &
pids+=($!)
scripts/netns-forward --ready-file "$tmp/ready" 127.0.0.1:0 "$ns" 127.0.0.1:18440 \
    2>"$tmp/fwd.err" &
pids+=($!)
for _ in $(seq 100); do
	[ -s "$tmp/ready" ] && ip netns exec "$ns" bash -c ': </dev/tcp/127.0.0.1/18440' 2>/dev/null &&
	    break
	sleep 0.05
done
addr=$(cat "$tmp/ready" 2>/dev/null)
check "netns-forward says where it listens ($addr)" test -n "$addr"
check "a 3 MiB file arrives byte for byte through it" \
    bash -c "curl -sf --max-time 20 http://$addr/big | cmp -s - '$tmp/www/big'"
for i in 1 2 3 4 5 6; do
	curl -sf --max-time 20 "http://$addr/small" >"$tmp/c$i" &
done
for _ in $(seq 100); do
	n=$(cat "$tmp"/c? 2>/dev/null | grep -c hello)
	[ "$n" = 6 ] && break
	sleep 0.05
done
check "six clients at once are all served" test "$(cat "$tmp"/c? | grep -c hello)" = 6
check "the namespace's own port is not reachable from outside it" \
    bash -c "! curl -sf --max-time 2 http://127.0.0.1:18440/small"
