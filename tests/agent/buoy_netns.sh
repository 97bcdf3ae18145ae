#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# buoy with a real data plane, end to end: buoy in a node namespace drives wireguard-go;
# a client namespace runs wireguard-go as a device; a test controller (tests/tools/
# ctl_push, our gRPC client) pushes signed configs. Real handshakes, real ICMP:
#   the device as a peer -> handshake and ping; the peer removed -> ping fails; back ->
#   ping works; kill -9 buoy -> the tunnel keeps passing traffic; buoy restarted with no
#   controller -> re-applied from disk, ping within 2 s; wireguard-go killed -> buoy
#   restarts it and traffic resumes.
#   tests/agent/buoy_netns.sh [BUILD]       (root and /dev/net/tun; skips loudly otherwise)
set -u
cd "$(dirname "$0")/../.." || exit 2
build=$(realpath "${1:-build}")
TAG=$(basename "$build")
. tests/lib/tap.sh
if [ "$(id -u)" != 0 ] || [ ! -c /dev/net/tun ] || ! command -v wireguard-go >/dev/null; then
	echo "skip - buoy netns: needs root, /dev/net/tun and wireguard-go"
	exit 0
fi
tmp=$(mktemp -d)
id=$$
NS_N=pht-n$id NS_C=pht-c$id IF_N=phn$id IF_C=phc$id
buoy_pid=
cleanup() {
	[ -n "$buoy_pid" ] && kill -9 "$buoy_pid" 2>/dev/null
	for ns in "$NS_N" "$NS_C"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	rm -f "/var/run/wireguard/$IF_N.sock" "/var/run/wireguard/$IF_C.sock"
	[ -n "${KEEP:-}" ] && cp "$tmp/buoy.log" /tmp/buoy-netns.log
	rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$NS_N" && ip netns add "$NS_C" || { nok "namespaces"; exit 1; }
ip link add "v$id" netns "$NS_N" type veth peer name "w$id" netns "$NS_C"
ip -n "$NS_N" addr add 10.198.0.1/24 dev "v$id"
ip -n "$NS_C" addr add 10.198.0.2/24 dev "w$id"
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
	seen=$(wc -l <"$tmp/buoy.log" 2>/dev/null || echo 0)
	ip netns exec "$NS_N" "$build/buoy" run --state-dir "$s" --listen 10.198.0.1:0 \
	    --interface "$IF_N" 2>>"$tmp/buoy.log" &
	buoy_pid=$!
	port=
	for _ in $(seq 100); do
		port=$(tail -n +"$((seen + 1))" "$tmp/buoy.log" | grep -o 'listen=10.198.0.1:[0-9]*' | cut -d: -f2)
		[ -n "$port" ] && return 0
		sleep 0.05
	done
	nok "buoy did not start"; tail -5 "$tmp/buoy.log" | sed 's/^/#   /'
	exit 1
}
push() { # SERIAL [--peer ...]
	local serial=$1
	shift
	ip netns exec "$NS_C" "$ctl" apply --target "10.198.0.1:$port" --ca "$p/ca.pem" \
	    --cert "$p/controller.pem" --key "$p/controller.key" \
	    --expect-id spiffe://alpha/node/node-a --sign-key "$tmp/sign.key" \
	    --fleet alpha --node node-a --revision "r$serial" --serial "$serial" \
	    --listen-port 51820 --address 10.64.0.1/24 --mtu 1420 "$@"
}
pings() { ip netns exec "$NS_C" ping -c 1 -W 1 10.64.0.1 >/dev/null 2>&1; }
# ping_within SECONDS: true as soon as a ping gets through.
ping_within() {
	local end=$((SECONDS + $1))
	while [ $SECONDS -le "$end" ]; do pings && return 0; done
	return 1
}

# The client: wireguard-go as a device, configured with the real wg tool.
(umask 077 && wg genkey >"$tmp/client.key")
client_pub=$(wg pubkey <"$tmp/client.key")
ip netns exec "$NS_C" env WG_PROCESS_FOREGROUND=1 wireguard-go -f "$IF_C" >"$tmp/client.log" 2>&1 &
for _ in $(seq 100); do [ -S "/var/run/wireguard/$IF_C.sock" ] && break; sleep 0.05; done
ip netns exec "$NS_C" wg set "$IF_C" private-key "$tmp/client.key" peer "$node_pub" \
    endpoint 10.198.0.1:51820 allowed-ips 10.64.0.0/24 persistent-keepalive 1
ip -n "$NS_C" addr add 10.64.0.2/24 dev "$IF_C"
ip -n "$NS_C" link set "$IF_C" mtu 1420 up

start_buoy
CONN=(--target "10.198.0.1:$port" --ca "$p/ca.pem" --cert "$p/controller.pem" --key "$p/controller.key")
ip netns exec "$NS_C" "$ctl" watch "${CONN[@]}" --timeout 60 >"$tmp/events1" 2>/dev/null &
watch1=$!
sleep 0.3
out=$(push 1 --peer "$client_pub=10.64.0.2/32")
check "signed config with the device as a peer applied ($(echo $out | cut -c1-50))" \
    bash -c "[[ '$out' == *'applied result=1 serial=1 peers=+1'* ]]"
check "buoy started wireguard-go itself" grep -q "started wireguard-go interface=$IF_N" "$tmp/buoy.log"
check "handshake and ping through the tunnel" ping_within 5
hs=$(ip netns exec "$NS_N" wg show "$IF_N" latest-handshakes | awk '{print $2}')
check "wg show on the node sees the handshake ($hs)" test "${hs:-0}" -gt 0
st=$(ip netns exec "$NS_C" "$ctl" status --target "10.198.0.1:$port" --ca "$p/ca.pem" \
    --cert "$p/controller.pem" --key "$p/controller.key")
check "GetStatus: revision r1, 1 peer ($(echo $st | cut -c1-40))" bash -c "[[ '$st' == *'revision=r1 serial=1 peers=1'* ]]"
for _ in $(seq 30); do grep -q "kind=1 key=$client_pub" "$tmp/events1" && break; sleep 0.1; done
check "WatchEvents: CONFIG_APPLIED (pushed)" grep -q 'kind=3 pushed' "$tmp/events1"
check "WatchEvents: HANDSHAKE_UP for the device" grep -q "kind=1 key=$client_pub" "$tmp/events1"
check "WatchEvents: heartbeats" grep -q 'kind=6' "$tmp/events1"
hsl=$(ip netns exec "$NS_C" "$ctl" handshakes "${CONN[@]}" | grep "^peer $client_pub")
check "GetHandshakes: the device with a handshake and bytes ($(echo $hsl | cut -c58-))" \
    bash -c "[[ '$hsl' == *'handshake=1'* && '$hsl' != *'rx=0 '* ]]"
kill "$watch1" 2>/dev/null
out=$(push 1 --peer "$client_pub=10.64.0.2/32")
check "the same config again: unchanged" bash -c "[[ '$out' == *'applied result=2'* ]]"

out=$(push 2)
check "peer removed: applied ($(echo $out | cut -c1-50))" bash -c "[[ '$out' == *'peers=+0/-1'* ]]"
check "peer removed: ping fails" bash -c "! ip netns exec $NS_C ping -c 2 -W 1 10.64.0.1 >/dev/null 2>&1"
out=$(push 3 --peer "$client_pub=10.64.0.2/32")
# The node forgot the session with the peer; the client starts a new handshake only when
# its own timers say the old one is dead (keepalive timeout 10 s + rekey timeout 5 s).
check "peer back: ping works again (after the client's re-handshake)" ping_within 25
# A peer set on the interface behind buoy's back: the next config is diffed against the
# live device (read while the request is checked), so the stranger goes and only the new
# peer is added; the client's session stays.
stranger=$(wg genkey | wg pubkey)
third=$(wg genkey | wg pubkey)
ip netns exec "$NS_N" wg set "$IF_N" peer "$stranger" allowed-ips 10.64.0.7/32
out=$(push 4 --peer "$client_pub=10.64.0.2/32" --peer "$third=10.64.0.8/32")
check "a peer added behind buoy's back is removed by the next config ($(echo $out | cut -c1-50))" \
    bash -c "[[ '$out' == *'peers=+1/-1/~0'* ]]"
check "and the node has exactly the config's peers" bash -c "[ \"\$(ip netns exec $NS_N wg show $IF_N peers | sort)\" = \"\$(printf '%s\n' '$client_pub' '$third' | sort)\" ]"
check "and the client still passes traffic" pings

# Live deltas: another peer comes and goes; the client's session is not touched.
delta() { # add-peer|remove-peer BASE SERIAL args...
	local cmd=$1 b=$2 n=$3
	shift 3
	ip netns exec "$NS_C" "$ctl" "$cmd" --target "10.198.0.1:$port" --ca "$p/ca.pem" \
	    --cert "$p/controller.pem" --key "$p/controller.key" --sign-key "$tmp/sign.key" \
	    --fleet alpha --node node-a --revision "d$n" --base-serial "$b" --serial "$n" "$@"
}
hs() { ip netns exec "$NS_N" wg show "$IF_N" latest-handshakes | awk -v k="$client_pub" '$1 == k {print $2}'; }
other=$(wg genkey | wg pubkey)
hs_before=$(hs)
out=$(delta add-peer 4 5 --peer "$other=10.64.0.9/32")
check "AddPeer live: applied ($(echo $out))" bash -c "[[ '$out' == *'peers serial=5 count=3'* ]]"
check "AddPeer live: the node has both peers" bash -c "ip netns exec $NS_N wg show $IF_N peers | grep -qx '$other'"
out=$(delta remove-peer 5 6 --remove "$other")
check "RemovePeer live: applied ($(echo $out))" bash -c "[[ '$out' == *'peers serial=6 count=2'* ]]"
check "live deltas: the client still passes traffic" pings
check "live deltas: no re-handshake of the client (handshake time $hs_before unchanged)" test "$(hs)" = "$hs_before"

kill -9 "$buoy_pid"; wait "$buoy_pid" 2>/dev/null; buoy_pid=
check "buoy killed -9: the tunnel keeps passing traffic" ping_within 3
start_buoy
t0=$(date +%s.%N)
ok_restart=0
ping_within 2 && ok_restart=1
t1=$(date +%s.%N)
check "buoy restarted with no controller: config and deltas re-applied from disk" \
    grep -q 're-applied the persisted config revision=r4 serial=6' "$tmp/buoy.log"
check "buoy restarted: ping within 2 s ($(echo "$t1 - $t0" | bc | cut -c1-5) s)" test "$ok_restart" = 1

CONN=(--target "10.198.0.1:$port" --ca "$p/ca.pem" --cert "$p/controller.pem" --key "$p/controller.key")
ip netns exec "$NS_C" "$ctl" watch "${CONN[@]}" --timeout 60 >"$tmp/events2" 2>/dev/null &
watch2=$!
sleep 0.5
wgpid=$(ip netns pids "$NS_N" | while read -r q; do
	[ "$(cat /proc/"$q"/comm 2>/dev/null)" = wireguard-go ] && echo "$q"; done | head -1)
kill -9 "$wgpid"
for _ in $(seq 60); do grep -q "restarted and the running config re-applied" "$tmp/buoy.log" && break; sleep 0.1; done
check "wireguard-go killed: buoy restarts it and re-applies" grep -q "restarted and the running config re-applied" "$tmp/buoy.log"
sleep 0.3
check "WatchEvents: BACKEND_RESTARTED" grep -q 'kind=5' "$tmp/events2"
kill "$watch2" 2>/dev/null
# A controller that reconnects resumes after the last seq it saw: the ring replays.
ip netns exec "$NS_C" "$ctl" watch "${CONN[@]}" --since 1 --count 2 --timeout 5 >"$tmp/events3" 2>/dev/null
check "WatchEvents since_seq=1: missed events replayed ($(grep -v kind=6 "$tmp/events3" | head -1))" \
    grep -q 'kind=5' "$tmp/events3"
# A fresh device has no sessions: again the client re-handshakes on its own timers.
check "wireguard-go killed: traffic resumes (after the client's re-handshake)" ping_within 25
out=$(ip netns exec "$NS_C" "$ctl" restart "${CONN[@]}" --reason "test restart")
check "RestartService: OK ($(echo $out | cut -c1-30))" bash -c "[[ '$out' == *'status 0'* ]]"
check "RestartService: logged with the reason" grep -q 'restarting wireguard-go interface=.*RestartService: test restart' "$tmp/buoy.log"
check "RestartService: traffic resumes (after the client's re-handshake)" ping_within 25
kill -TERM "$buoy_pid"; wait "$buoy_pid"
check "buoy SIGTERM: exit 0" test $? = 0
buoy_pid=
check "and the tunnel outlives the agent" ping_within 3
