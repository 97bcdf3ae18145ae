#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# buoy's kernel data plane (--dataplane wgtool): an existing interface driven through the
# wg tool, end to end. No kernel module is needed: wg(8) drives wireguard-go through its
# UAPI socket exactly as it drives a kernel interface, so this test starts wireguard-go
# itself (buoy never creates an interface in this mode) and pushes signed configs with
# the test controller (tests/tools/ctl_push). A client namespace is the peer:
#   no interface -> a clear refusal naming `ip link add`; the device as a peer -> real
#   handshake and ping; the same config, or a new serial with the same peers -> no change
#   (no syncconf, the session untouched); the peer removed -> ping fails; back -> ping;
#   AddPeer/RemovePeer live; the private key in no file but wg.key; the interface
#   recreated -> the running config again; RestartService; SIGTERM leaves the tunnel up.
#   tests/agent/wgtool_netns.sh [BUILD]   (root, /dev/net/tun, wg and wireguard-go; skips
#                                          loudly otherwise)
set -u
cd "$(dirname "$0")/../.." || exit 2
build=$(realpath "${1:-build}")
TAG=$(basename "$build")	# read by tests/lib/tap.sh
export TAG
# shellcheck source=tests/lib/tap.sh
. tests/lib/tap.sh
if [ "$(id -u)" != 0 ] || [ ! -c /dev/net/tun ] || ! command -v wireguard-go >/dev/null ||
    ! command -v wg >/dev/null; then
	echo "skip - wgtool netns: needs root, /dev/net/tun, wg and wireguard-go"
	exit 0
fi
tmp=$(mktemp -d)
id=$$
NS_N=pht-tn$id NS_C=pht-tc$id IF_N=pwn$id IF_C=pwc$id
buoy_pid=
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
	[ -n "$buoy_pid" ] && kill -9 "$buoy_pid" 2>/dev/null
	for ns in "$NS_N" "$NS_C"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	rm -f "/var/run/wireguard/$IF_N.sock" "/var/run/wireguard/$IF_C.sock"
	[ -n "${KEEP:-}" ] && cp "$tmp/buoy.log" /tmp/wgtool-netns.log
	[ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if ! ip netns add "$NS_N" || ! ip netns add "$NS_C"; then nok "namespaces"; exit 1; fi
ip link add "v$id" netns "$NS_N" type veth peer name "w$id" netns "$NS_C"
ip -n "$NS_N" addr add 10.197.0.1/24 dev "v$id"
ip -n "$NS_C" addr add 10.197.0.2/24 dev "w$id"
ip -n "$NS_N" link set "v$id" up && ip -n "$NS_N" link set lo up
ip -n "$NS_C" link set "w$id" up && ip -n "$NS_C" link set lo up

ctl=$build/tools/ctl_push
"$build/tools/pki_fixture" "$tmp/pki" || { nok "pki_fixture"; exit 1; }
p=$tmp/pki
s=$tmp/state
"$build/buoy" keygen --state-dir "$s" >"$tmp/keygen.out"
node_pub=$(awk '{print $2}' "$tmp/keygen.out")
cp "$p/ca.pem" "$p/crl.pem" "$s/"
cp "$p/node-a.pem" "$s/node.pem"
install -m 0600 "$p/node-a.key" "$s/node.key"
"$ctl" keygen "$tmp/sign.key" "$s/controller.pub"

: >"$tmp/buoy.log"
start_buoy() {
	local seen
	seen=$(wc -l <"$tmp/buoy.log")
	ip netns exec "$NS_N" "$build/buoy" run --state-dir "$s" --listen 10.197.0.1:0 \
	    --dataplane wgtool --interface "$IF_N" 2>>"$tmp/buoy.log" &
	buoy_pid=$!
	port=
	for _ in $(seq 100); do
		port=$(tail -n +"$((seen + 1))" "$tmp/buoy.log" | grep -o 'listen=10.197.0.1:[0-9]*' | cut -d: -f2)
		[ -n "$port" ] && return 0
		sleep 0.05
	done
	nok "buoy did not start"; tail -5 "$tmp/buoy.log" | sed 's/^/#   /'
	exit 1
}
# The node's interface, made the way an operator would: wireguard-go here, since the
# kernel module may be missing; buoy only ever configures it.
start_wg_node() {
	ip netns exec "$NS_N" env WG_PROCESS_FOREGROUND=1 wireguard-go -f "$IF_N" \
	    >>"$tmp/wg-node.log" 2>&1 &
	for _ in $(seq 100); do
		ip -n "$NS_N" link show "$IF_N" >/dev/null 2>&1 &&
		    [ -S "/var/run/wireguard/$IF_N.sock" ] && return 0
		sleep 0.05
	done
	return 1
}
push() { # SERIAL [--peer ...]
	local serial=$1
	shift
	ip netns exec "$NS_C" "$ctl" apply "${CONN[@]}" --expect-id spiffe://alpha/node/node-a \
	    --sign-key "$tmp/sign.key" --fleet alpha --node node-a --revision "r$serial" \
	    --serial "$serial" --listen-port 51820 --address 10.65.0.1/24 --mtu 1420 "$@"
}
delta() { # add-peer|remove-peer BASE SERIAL args...
	local cmd=$1 b=$2 n=$3
	shift 3
	ip netns exec "$NS_C" "$ctl" "$cmd" "${CONN[@]}" --sign-key "$tmp/sign.key" --fleet alpha \
	    --node node-a --revision "d$n" --base-serial "$b" --serial "$n" "$@"
}
pings() { ip netns exec "$NS_C" ping -c 1 -W 1 10.65.0.1 >/dev/null 2>&1; }
ping_within() {
	local end=$((SECONDS + $1))
	while [ $SECONDS -le "$end" ]; do pings && return 0; done
	return 1
}
hs() { ip netns exec "$NS_N" wg show "$IF_N" latest-handshakes | awk -v k="$client_pub" '$1 == k {print $2}'; }
has() { [[ "$1" == *"$2"* ]]; }
one() { echo "$1" | tr '\n' ' ' | cut -c1-"${2:-60}"; }	# for a test name

# The client: wireguard-go as a device, configured with the real wg tool.
(umask 077 && wg genkey >"$tmp/client.key")
client_pub=$(wg pubkey <"$tmp/client.key")
ip netns exec "$NS_C" env WG_PROCESS_FOREGROUND=1 wireguard-go -f "$IF_C" >"$tmp/client.log" 2>&1 &
for _ in $(seq 100); do [ -S "/var/run/wireguard/$IF_C.sock" ] && break; sleep 0.05; done
ip netns exec "$NS_C" wg set "$IF_C" private-key "$tmp/client.key" peer "$node_pub" \
    endpoint 10.197.0.1:51820 allowed-ips 10.65.0.0/24 persistent-keepalive 1
ip -n "$NS_C" addr add 10.65.0.2/24 dev "$IF_C"
ip -n "$NS_C" link set "$IF_C" mtu 1420 up

# No interface yet: buoy refuses, names the command, and creates nothing.
start_buoy
CONN=(--target "10.197.0.1:$port" --ca "$p/ca.pem" --cert "$p/controller.pem" --key "$p/controller.key")
out=$(push 1 --peer "$client_pub=10.65.0.2/32")
check "no interface: refused, UNAVAILABLE ($(one "$out"))" has "$out" "status 14"
check "no interface: the message names \`ip link add $IF_N type wireguard\`" \
    has "$out" "ip link add $IF_N type wireguard"
check "no interface: buoy created none" bash -c "! ip -n $NS_N link show $IF_N >/dev/null 2>&1 && ! grep -q 'started wireguard-go' '$tmp/buoy.log'"

start_wg_node || { nok "wireguard-go on the node"; exit 1; }
ip netns exec "$NS_C" "$ctl" watch "${CONN[@]}" --timeout 60 >"$tmp/events1" 2>/dev/null &
watch1=$!
sleep 0.3
out=$(push 1 --peer "$client_pub=10.65.0.2/32")
check "interface there: applied ($(one "$out" 50))" \
    has "$out" "applied result=1 serial=1 peers=+1/-0/~0"
check "logged as a wg syncconf" grep -q "wg syncconf interface=$IF_N peers=+1/-0/~0" "$tmp/buoy.log"
check "handshake and ping through the tunnel" ping_within 5
check "addresses and MTU set on the interface" \
    bash -c "ip -n $NS_N addr show $IF_N | grep -q 'inet 10.65.0.1/24' && ip -n $NS_N link show $IF_N | grep -q 'mtu 1420'"
st=$(ip netns exec "$NS_C" "$ctl" status "${CONN[@]}")
check "GetStatus: revision r1, 1 peer ($(one "$st" 40))" has "$st" "revision=r1 serial=1 peers=1"
for _ in $(seq 30); do grep -q "kind=1 key=$client_pub" "$tmp/events1" && break; sleep 0.1; done
check "WatchEvents: HANDSHAKE_UP for the device (from wg show dump)" grep -q "kind=1 key=$client_pub" "$tmp/events1"
hsl=$(ip netns exec "$NS_C" "$ctl" handshakes "${CONN[@]}" | grep "^peer $client_pub")
check "GetHandshakes: the device with a handshake and bytes ($(echo "$hsl" | cut -c58-))" \
    bash -c "[[ '$hsl' == *'handshake=1'* && '$hsl' != *'rx=0 '* ]]"
kill "$watch1" 2>/dev/null

# Idempotent: the same bytes, then a new serial with the same peers.
hs_before=$(hs)
out=$(push 1 --peer "$client_pub=10.65.0.2/32")
check "the same config again: unchanged" has "$out" "applied result=2"
n_sync=$(grep -c "syncconf interface=$IF_N" "$tmp/buoy.log")
out=$(push 2 --peer "$client_pub=10.65.0.2/32")
check "a new serial, the same peers: applied with no change ($(one "$out" 50))" \
    has "$out" "applied result=1 serial=2 peers=+0/-0/~0"
check "no change: no second syncconf" test "$(grep -c "syncconf interface=$IF_N" "$tmp/buoy.log")" = "$n_sync"
check "no change: the session untouched (handshake time $hs_before)" test "$(hs)" = "$hs_before"
out=$(push 3 --peer "$client_pub=10.65.0.2/32,10.65.1.0/24")
check "allowed IPs changed: one peer changed" has "$out" "peers=+0/-0/~1"
check "allowed IPs changed: on the interface" \
    bash -c "ip netns exec $NS_N wg show $IF_N allowed-ips | grep -q '10.65.1.0/24'"

out=$(push 4)
check "peer removed: applied ($(one "$out" 50))" has "$out" "peers=+0/-1/~0"
check "peer removed: ping fails" bash -c "! ip netns exec $NS_C ping -c 2 -W 1 10.65.0.1 >/dev/null 2>&1"
out=$(push 5 --peer "$client_pub=10.65.0.2/32")
check "peer back: ping works again (after the client's re-handshake)" ping_within 25

other=$(wg genkey | wg pubkey)
hs_before=$(hs)
out=$(delta add-peer 5 6 --peer "$other=10.65.0.9/32@10.197.0.7:51820")
check "AddPeer live: applied ($(one "$out"))" has "$out" "peers serial=6 count=2"
check "AddPeer live: the peer with its endpoint on the interface" \
    bash -c "ip netns exec $NS_N wg show $IF_N endpoints | grep -q '$other	10.197.0.7:51820'"
out=$(delta remove-peer 6 7 --remove "$other")
check "RemovePeer live: applied ($(one "$out"))" has "$out" "peers serial=7 count=1"
check "RemovePeer live: the peer is gone" \
    bash -c "! ip netns exec $NS_N wg show $IF_N peers | grep -q '$other'"
check "live deltas: the client still passes traffic" pings
check "live deltas: no re-handshake of the client" test "$(hs)" = "$hs_before"

priv=$(cat "$s/wg.key")
check "the private key is in no file of the state dir but wg.key" \
    bash -c "[ \"\$(grep -rlF -e '$priv' '$s')\" = '$s/wg.key' ]"
check "nor in any file written since, under /tmp, /var/tmp, /run, /dev/shm" \
    bash -c "! find /tmp /var/tmp /run /dev/shm -xdev -type f -newer '$tmp/keygen.out' \
	-size -4M ! -path '$s/wg.key' -exec grep -lF -e '$priv' {} + 2>/dev/null | grep -q ."

# The interface goes away and comes back (an operator recreating it): buoy applies the
# running config to the new one by itself.
ip netns exec "$NS_C" "$ctl" watch "${CONN[@]}" --timeout 60 >"$tmp/events2" 2>/dev/null &
watch2=$!
sleep 0.3
wgpid=$(ip netns pids "$NS_N" | while read -r q; do
	[ "$(cat /proc/"$q"/comm 2>/dev/null)" = wireguard-go ] && echo "$q"; done | head -1)
kill "$wgpid"
for _ in $(seq 40); do grep -q "interface=$IF_N is gone" "$tmp/buoy.log" && break; sleep 0.1; done
check "interface gone: reported" grep -q "interface=$IF_N is gone" "$tmp/buoy.log"
st=$(ip netns exec "$NS_C" "$ctl" status "${CONN[@]}")
check "interface gone: GetStatus still answers ($(one "$st" 40))" has "$st" "revision=d7 serial=7 peers=0"
start_wg_node || nok "wireguard-go on the node again"
for _ in $(seq 40); do grep -q "interface $IF_N appeared.*the running config applied" "$tmp/buoy.log" && break; sleep 0.1; done
check "interface back: the running config applied to it" grep -q "interface $IF_N appeared.*the running config applied" "$tmp/buoy.log"
sleep 0.3
check "WatchEvents: DATA_PLANE_ERROR, then BACKEND_RESTARTED" \
    bash -c "grep -q 'kind=4' '$tmp/events2' && grep -q 'kind=5' '$tmp/events2'"
kill "$watch2" 2>/dev/null
check "interface back: traffic resumes (after the client's re-handshake)" ping_within 25

out=$(ip netns exec "$NS_C" "$ctl" restart "${CONN[@]}" --reason "test restart")
check "RestartService: OK ($(one "$out" 30))" has "$out" "status 0"
check "RestartService: everything applied again" \
    bash -c "grep -q 'RestartService: test restart' '$tmp/buoy.log' && [ \$(grep -c 'syncconf interface=$IF_N' '$tmp/buoy.log') -ge 2 ]"
check "RestartService: traffic still passes" ping_within 3
kill -TERM "$buoy_pid"; wait "$buoy_pid"
check "buoy SIGTERM: exit 0" test $? = 0
buoy_pid=
check "and the tunnel outlives the agent" ping_within 3
