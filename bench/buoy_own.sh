#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# What each client costs apart from the data plane: buoy's ApplyConfig of N peers (default
# 10,000) against `wg syncconf` of the same peers, both onto a UAPI sink (bench/uapi_sink.py:
# a socket that answers every get with an empty device and takes every set, beside a tun
# link of the same name with no process behind it, in a namespace of its own).
# With wireguard-go behind the socket, each client's time is its own part plus wireguard-go's
# work on the body it sent; that work is ~98 % of the whole and varies ~12 % from one fresh
# process to the next (bench/buoy.sh), which hides a difference of a few ms. Here the own
# parts are measured alone, with the instruments bench/buoy.sh uses: buoy's call on an open
# channel (ctl_push --time-call), wg's run timed inside the namespace. The runs alternate
# which goes first. Then one set body of each is kept and compared: the same peers and
# allowed IPs in the same order (buoy's leaves out wg's replace_allowed_ips lines: new peers
# have none to replace), so wireguard-go gets the same work from both, or less from buoy.
# PACE_US=0 (default): the sink answers a set at once; each figure is the client's whole
# own work. PACE_US=55: the sink takes 55 us per new peer, every time (wireguard-go's pace
# here, without its variance), so what a client does while the data plane works (buoy
# writes and fsyncs config.signed then) is hidden as it is with wireguard-go, and each
# figure is the sink's fixed time plus what the client adds to it.
# OLD=PATH/buoy adds a third arm: another buoy build (before/after a change). KEEP=1 leaves
# the work folder (logs, figures) behind.
#   bench/buoy_own.sh   (root, /dev/net/tun; BUILD=build PEERS=10000 RUNS=101 PACE_US=0 OLD=)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PEERS=${PEERS:-10000}
RUNS=${RUNS:-101}
OLD=${OLD:-}
PACE_US=${PACE_US:-0}
[ "$(id -u)" = 0 ] && [ -c /dev/net/tun ] || { echo "bench/buoy_own.sh needs root and /dev/net/tun (a namespace and a tun link)" >&2; exit 2; }
tmp=$(mktemp -d)
NS=phs$$ IF=phs$$
SOCK=/var/run/wireguard/$IF.sock
pids=()
cleanup() {
	for q in "${pids[@]}"; do kill -9 "$q" 2>/dev/null; done
	ip netns del "$NS" 2>/dev/null
	rm -f "$SOCK"
	rm -rf "$tmp"
}
trap cleanup EXIT
[ -z "${KEEP:-}" ] || trap 'echo "kept $tmp" >&2; for q in "${pids[@]}"; do kill -9 "$q" 2>/dev/null; done; ip netns del "$NS"; rm -f "$SOCK"' EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" tuntap add dev "$IF" mode tun
mkdir -p "$tmp/sets"
bench/uapi_sink.py "$SOCK" "$tmp/sets" "$PACE_US" &
pids+=($!)
disown $!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
ctl=$BUILD/tools/ctl_push
"$BUILD/tools/pki_fixture" "$tmp/pki"
p=$tmp/pki
"$ctl" keygen "$tmp/sign.key" "$tmp/controller.pub"
# start NAME BINARY: a buoy on the sink's interface; sets $port_NAME
start() {
	local s=$tmp/$1 port
	mkdir -p "$s"
	"$2" keygen --state-dir "$s" >/dev/null
	cp "$p/ca.pem" "$s/"
	cp "$p/node-a.pem" "$s/node.pem"
	install -m 0600 "$p/node-a.key" "$s/node.key"
	cp "$tmp/controller.pub" "$s/"
	ip netns exec "$NS" "$2" run --state-dir "$s" --listen 127.0.0.1:0 --interface "$IF" \
	    --xray none 2>"$s/log" &
	pids+=($!)
	disown $!
	for _ in $(seq 100); do
		port=$(grep -o 'listen=127.0.0.1:[0-9]*' "$s/log" | cut -d: -f2) && [ -n "$port" ] && break
		sleep 0.05
	done
	eval "port_$1=$port"
}
arms=(buoy)
start buoy "$BUILD/buoy"
if [ -n "$OLD" ]; then arms+=(old); start old "$OLD"; fi
arms+=(wg)

bench/peers.py "$PEERS" "$tmp"
serial=0
run() { # ARM [FILE]: one figure appended to FILE (default $tmp/ARM.ms)
	local port to=${2:-$tmp/$1.ms}
	case $1 in
	wg)
		ip netns exec "$NS" bash -c 's=$EPOCHREALTIME; wg syncconf "$1" "$2" || exit 1
		    e=$EPOCHREALTIME; echo "($e - $s) * 1000" | bc -l' _ "$IF" "$tmp/wg.conf" \
		    >>"$to" ;;
	*)
		eval "port=\$port_$1"
		out=$(ip netns exec "$NS" "$ctl" apply --target "127.0.0.1:$port" --ca "$p/ca.pem" \
		    --cert "$p/controller.pem" --key "$p/controller.key" --sign-key "$tmp/sign.key" \
		    --fleet alpha --node node-a --revision "r$serial" --serial "$serial" \
		    --listen-port 51820 --address 10.99.0.1/16 --timeout 60 \
		    --peers-file "$tmp/peers" --time-call)
		case $out in *"status 0"*) ;; *) echo "$1 apply: $out" >&2; exit 1 ;; esac
		echo "$out" | sed -n 's/^call_ms=//p' >>"$to" ;;
	esac
}
. bench/stats.sh
for a in "${arms[@]}"; do : >"$tmp/$a.ms"; done
for a in "${arms[@]}"; do serial=$((serial + 1)); run "$a"; : >"$tmp/$a.ms"; done	# warm-up
for i in $(seq "$RUNS"); do
	serial=$((serial + 1))
	order=("${arms[@]}")
	[ $((i % 2)) = 0 ] && order=($(printf '%s\n' "${arms[@]}" | tac))
	for a in "${order[@]}"; do run "$a"; done
	[ $((i % 10)) = 0 ] && echo "  $i of $RUNS runs" >&2
done
# The bodies: one more set from buoy, then from wg, kept (the sink writes each after its
# answer, numbered in order).
kept() { # COUNT: wait until the sink has written COUNT bodies, at most 5 s
	for _ in $(seq 100); do
		[ "$(ls "$tmp/sets" | grep -c '^set\.')" -ge "$1" ] && return 0
		sleep 0.05
	done
	echo "bench/buoy_own.sh: the sink kept no set body" >&2
	exit 1
}
touch "$tmp/sets/keep"
serial=$((serial + 1)); run buoy /dev/null; kept 1
run wg /dev/null; kept 2
rm "$tmp/sets/keep"
b=$(ls "$tmp/sets" | grep '^set\.' | sort -t. -k2 -n | head -1)
w=$(ls "$tmp/sets" | grep '^set\.' | sort -t. -k2 -n | tail -1)
/usr/bin/python3 - "$tmp/sets/$b" "$tmp/sets/$w" "$PEERS" <<'PY'
import sys
b = open(sys.argv[1]).read().split("\n")
w = open(sys.argv[2]).read().split("\n")
n = int(sys.argv[3])
def peers(lines):
    return [l for l in lines if l.startswith(("public_key=", "allowed_ip="))]
wr = sum(1 for l in w if l == "replace_allowed_ips=true")
same = peers(b) == peers(w)
print("set bodies: buoy %d lines (%d bytes), wg %d lines (%d bytes), of them %d replace_allowed_ips=true; "
      "peers and allowed IPs in the same order: %s" % (len(b), len("\n".join(b)), len(w), len("\n".join(w)),
      wr, "yes" if same else "NO"))
print("  buoy's other lines: %s" % sorted(set(l.split("=")[0] for l in b if l and not l.startswith(("public_key=", "allowed_ip=")))))
print("  wg's other lines:   %s" % sorted(set(l.split("=")[0] for l in w if l and not l.startswith(("public_key=", "allowed_ip=")))))
if not same or len(peers(b)) != 2 * n:
    sys.exit("bench/buoy_own.sh: the two bodies do not carry the same peers in the same order")
PY
echo
if [ "$PACE_US" = 0 ]; then dp="an instant data plane"; else dp="a data plane taking $PACE_US us a peer"; fi
echo "Applying $PEERS peers onto $dp, $RUNS runs each, alternating:"
for a in "${arms[@]}"; do
	case $a in
	buoy) what="buoy ApplyConfig (the call on an open channel)" ;;
	old) what="buoy ApplyConfig, OLD=$OLD" ;;
	wg) what="wg syncconf (its whole run)" ;;
	esac
	printf '  %-52s median %6.2f ms (95 %% interval %s)\n' "$what" "$(median <"$tmp/$a.ms")" \
	    "$(interval %.2f <"$tmp/$a.ms")"
done
paste "$tmp/buoy.ms" "$tmp/wg.ms" | awk '{print $1 / $2}' >"$tmp/ratio"
printf '  buoy / wg: median of the per-run ratios %.3fx (95 %% interval %s); buoy the faster in %d of %d runs\n' \
    "$(median <"$tmp/ratio")" "$(interval %.3f <"$tmp/ratio")" "$(awk '$1 < 1' "$tmp/ratio" | wc -l)" "$RUNS"
if [ -n "$OLD" ]; then
	paste "$tmp/buoy.ms" "$tmp/old.ms" | awk '{print $1 / $2}' >"$tmp/ratio.old"
	printf '  buoy / OLD: median of the per-run ratios %.3fx (95 %% interval %s)\n' \
	    "$(median <"$tmp/ratio.old")" "$(interval %.3f <"$tmp/ratio.old")"
fi
