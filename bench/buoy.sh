#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# buoy against wireguard-tools, on the same wireguard-go interface, in one run:
#   - ApplyConfig of N peers (default 10,000) through buoy (gRPC over mTLS, verify, decode,
#     diff against the live device, UAPI set, persist), against `wg syncconf` of the same
#     peers from a file — each onto the empty interface of a fresh wireguard-go (below).
#     buoy's time is the call on an open channel, as cox makes it (its channels stay
#     open); the whole test controller run (process start, building and signing the
#     config, TLS handshake, the call) is measured and reported too, with its own ratio;
#   - each client's own part, apart from wireguard-go's: buoy's is the call less the set
#     (connect to answer, from its log line); wg's is from its execve to its connect for
#     the set, in SPLIT more runs under `strace --seccomp-bpf` (not in the timed ones);
#   - the same applies started together, each onto a fresh wireguard-go of its own, the two
#     sharing one CPU (PAIRED runs, last; why, with the code below), and AA runs of the
#     same with `wg syncconf` on both, a control;
#   - AddPeer latency (signed delta, one new peer per call, sequential);
#   - an incremental ApplyConfig: N + 1 peers onto the N the interface holds, against
#     `wg syncconf` of the same N + 1 (INC runs, on the long-lived process);
#   - buoy's RSS holding N peers (anonymous and file-backed), and its peak;
#   - the idle CPU of buoy and wireguard-go holding N peers (the supervisor's reads).
# The apply runs alternate which of the two goes first; the result is the median of
# each and the median of the per-run ratios.
# Each apply meets a fresh wireguard-go (FRESH=1, the default): buoy's desired config is
# emptied, wireguard-go is killed, buoy restarts it and re-applies the empty config, then
# the apply is timed. wireguard-go 0.0.20220316 keeps memory from every fill and empty of
# 10,000 peers (~+100 MB and ~+15 % apply time per cycle), so on one long-lived process the
# figures drift with the cycle count rather than with the client. FRESH=0 reuses one
# process and empties the interface between applies, as earlier rounds did.
# `wg syncconf` is timed inside the namespace (bash's $EPOCHREALTIME around it), so its
# figure includes its own process start but not `ip netns exec`.
#   bench/buoy.sh   (root, /dev/net/tun; BUILD=build PEERS=10000 RUNS=21 ADDS=500 FRESH=1
#                    SPLIT=7 INC=11 PAIRED=21 AA=11)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PEERS=${PEERS:-10000}
RUNS=${RUNS:-21}
ADDS=${ADDS:-500}
FRESH=${FRESH:-1}
SPLIT=${SPLIT:-7}
INC=${INC:-11}
[ "$(id -u)" = 0 ] && [ -c /dev/net/tun ] || { echo "bench/buoy.sh needs root and /dev/net/tun" >&2; exit 2; }
tmp=$(mktemp -d)
NS=phb$$ IF=phb$$
NSW=${NS}w IFW=${IF}w	# wg's own wireguard-go, for the runs together (below)
pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	for n in "$NS" "$NSW"; do
		for q in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$q" 2>/dev/null; done
		ip netns del "$n" 2>/dev/null
	done
	rm -f "/var/run/wireguard/$IF.sock" "/var/run/wireguard/$IFW.sock"
	rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ctl=$BUILD/tools/ctl_push
"$BUILD/tools/pki_fixture" "$tmp/pki"
p=$tmp/pki
s=$tmp/state
"$BUILD/buoy" keygen --state-dir "$s" >/dev/null
cp "$p/ca.pem" "$s/"
cp "$p/node-a.pem" "$s/node.pem"
install -m 0600 "$p/node-a.key" "$s/node.key"
"$ctl" keygen "$tmp/sign.key" "$s/controller.pub"
# start_buoy CMD...: buoy on $s behind CMD (env, taskset); sets $pid and $port.
: >"$tmp/buoy.log"
start_buoy() {
	local n0
	n0=$(grep -c 'listen=127.0.0.1:' "$tmp/buoy.log" || true)
	ip netns exec "$NS" "$@" "$BUILD/buoy" run --state-dir "$s" --listen 127.0.0.1:0 \
	    --interface "$IF" 2>>"$tmp/buoy.log" &
	pid=$!
	disown "$pid"	# no "Killed" line from bash when cleanup() kills it
	for _ in $(seq 100); do
		[ "$(grep -c 'listen=127.0.0.1:' "$tmp/buoy.log" || true)" -gt "$n0" ] && break
		sleep 0.05
	done
	port=$(grep -o 'listen=127.0.0.1:[0-9]*' "$tmp/buoy.log" | tail -1 | cut -d: -f2)
}
start_buoy env

# N peers: random 32-byte keys, one /32 each (and the same with one more, peers1/wg1.conf).
bench/peers.py "$PEERS" "$tmp" "$s/wg.key"
printf '[Interface]\nPrivateKey = %s\nListenPort = 51820\n' "$(cat "$s/wg.key")" >"$tmp/empty.conf"
serial=0
ctl_apply=("$ctl" apply --ca "$p/ca.pem" --cert "$p/controller.pem"
    --key "$p/controller.key" --sign-key "$tmp/sign.key" --fleet alpha --node node-a
    --listen-port 51820 --address 10.99.0.1/16 --timeout 120)
apply() { # args: extra ctl_push args; the caller bumps $serial (not in a subshell)
	ip netns exec "$NS" "${ctl_apply[@]}" --target "127.0.0.1:$port" --revision "b$serial" \
	    --serial "$serial" "$@"
}
ms() { echo "($2 - $1) / 1000000" | bc -l; }
. bench/stats.sh
# `wg syncconf IF CONF` timed inside the namespace; prints ms.
wg_timed() {
	ip netns exec "$NS" bash -c 's=$EPOCHREALTIME; wg syncconf "$1" "$2" || exit 1
	    e=$EPOCHREALTIME; echo "($e - $s) * 1000" | bc -l' _ "$IF" "$1"
}
count_peers() { ip netns exec "$NS" wg show "${1:-$IF}" peers | wc -l; }
# Wait until wireguard-go is idle (its CPU ticks still for 300 ms, at most 10 s): the
# teardown of the emptied peers (goroutines, Go's GC) must not land inside the next timing.
settle() { # [IF]
	local wpid t0 t1 n
	wpid=$(pgrep -f "wireguard-go.* ${1:-$IF}\$" | head -1)
	[ -n "$wpid" ] || return 0
	t0=$(awk '{print $14 + $15}' "/proc/$wpid/stat")
	for n in $(seq 33); do
		sleep 0.3
		t1=$(awk '{print $14 + $15}' "/proc/$wpid/stat")
		[ "$t1" = "$t0" ] && return 0
		t0=$t1
	done
}
# A fresh wireguard-go holding no peers: empty buoy's desired config (so the restart
# re-applies nothing), kill wireguard-go, wait for buoy's supervisor to restart it and
# re-apply, then settle. With FRESH=0: just empty the interface through $1 and settle.
restarts=0
fresh() {
	local wpid n
	if [ "$FRESH" = 0 ]; then
		if [ "$1" = buoy ]; then serial=$((serial + 1)); apply >/dev/null
		else ip netns exec "$NS" wg syncconf "$IF" "$tmp/empty.conf"; fi
		settle
		return 0
	fi
	serial=$((serial + 1)); apply >/dev/null
	wpid=$(pgrep -f "wireguard-go.* $IF\$" | head -1)
	kill -9 "$wpid"
	restarts=$((restarts + 1))
	for n in $(seq 100); do
		[ "$(grep -c 'restarted and the running config re-applied' "$tmp/buoy.log")" -ge "$restarts" ] && break
		sleep 0.05
	done
	[ "$(count_peers)" = 0 ] || { echo "after the restart: $(count_peers) peers" >&2; exit 1; }
	settle
}

serial=$((serial + 1)); apply >/dev/null	# brings the interface up (empty)
: >"$tmp/set.buoy"; : >"$tmp/own.buoy"; : >"$tmp/check.buoy"
: >"$tmp/buoy.ms"; : >"$tmp/call.ms"; : >"$tmp/wg.ms"; : >"$tmp/inner.ms"
: >"$tmp/ratio"; : >"$tmp/ratio.e2e"
run_buoy() {
	fresh buoy
	serial=$((serial + 1))
	t0=$(date +%s%N)
	out=$(apply --peers-file "$tmp/peers" --time-call)
	t1=$(date +%s%N)
	[ "$(count_peers)" = "$PEERS" ] || { echo "buoy apply: $(count_peers) peers" >&2; exit 1; }
	ms "$t0" "$t1" >>"$tmp/buoy.ms"
	case $out in *"status 0"*) ;; *) echo "buoy apply: $out" >&2; exit 1 ;; esac
	echo "$out" | sed -n 's/^call_ms=//p' >>"$tmp/call.ms"
	line=$(grep -o "applied revision=b$serial serial=$serial peers=+$PEERS/-0/~0 users=+0/-0 in .*" "$tmp/buoy.log")
	echo "$line" | awk '{print $7}' >>"$tmp/inner.ms"
	echo "$line" | sed -n 's/.*data plane set \([0-9.]*\) ms.*/\1/p' >>"$tmp/set.buoy"
	echo "$line" | sed -n 's/.*(check \([0-9.]*\) ms.*/\1/p' >>"$tmp/check.buoy"
	echo "$(tail -1 "$tmp/call.ms") - $(tail -1 "$tmp/set.buoy")" | bc -l >>"$tmp/own.buoy"
}
run_wg() {
	fresh wg
	wg_timed "$tmp/wg.conf" >>"$tmp/wg.ms"
	[ "$(count_peers)" = "$PEERS" ] || { echo "wg syncconf: $(count_peers) peers" >&2; exit 1; }
}
# The order alternates (odd runs buoy first, even runs wg first), so neither is always
# the first to run after the other (with FRESH=0: meets wireguard-go's heap just after the
# other's teardown); each run's ratio is its own pair's.
for i in $(seq "$RUNS"); do
	if [ $((i % 2)) = 1 ]; then run_buoy; run_wg; first=buoy; else run_wg; run_buoy; first=wg; fi
	bl=$(tail -1 "$tmp/buoy.ms"); cl=$(tail -1 "$tmp/call.ms"); wl=$(tail -1 "$tmp/wg.ms")
	echo "$cl / $wl" | bc -l >>"$tmp/ratio"
	echo "$bl / $wl" | bc -l >>"$tmp/ratio.e2e"
	printf '  run %2d (%s first): buoy call %.1f ms (inside buoy %s), whole controller run %.1f ms; wg syncconf %.1f ms; ratio %.3f (whole run %.3f)\n' \
	    "$i" "$first" "$cl" "$(tail -1 "$tmp/inner.ms")" "$bl" "$wl" "$(tail -1 "$tmp/ratio")" \
	    "$(tail -1 "$tmp/ratio.e2e")"
	printf '         buoy: the set (connect to answer) %.1f ms, the rest of the call %.1f ms\n' \
	    "$(tail -1 "$tmp/set.buoy")" "$(tail -1 "$tmp/own.buoy")"
done
b=$(median <"$tmp/buoy.ms"); c=$(median <"$tmp/call.ms"); i=$(median <"$tmp/inner.ms")
w=$(median <"$tmp/wg.ms"); r=$(median <"$tmp/ratio"); re=$(median <"$tmp/ratio.e2e")
faster=$(awk '$1 < 1' "$tmp/ratio" | wc -l)
# wg's own part: SPLIT more runs of `wg syncconf`, each on a fresh wireguard-go, under
# `strace --seccomp-bpf` stopping at execve and connect only. Its own part is from its
# execve to its connect for the set; its exit after the answer counts with the set, and
# bash's fork before the execve is left out, so the figure is a lower bound. These runs
# are not in the timed figures above.
: >"$tmp/own.wg"; : >"$tmp/set.wg"
if command -v strace >/dev/null; then
	for _ in $(seq "$SPLIT"); do
		fresh wg
		ip netns exec "$NS" strace -f --seccomp-bpf -ttt -e trace=execve,connect \
		    -o "$tmp/wg.strace" wg syncconf "$IF" "$tmp/wg.conf"
		/usr/bin/python3 - "$tmp/wg.strace" "$tmp/own.wg" "$tmp/set.wg" <<'PY'
import sys
ex = co = end = None
for l in open(sys.argv[1]):
    f = l.split(None, 2)
    t = float(f[1])
    if f[2].startswith('execve("') and ex is None:
        ex = t
    elif f[2].startswith("connect(") and ".sock" in f[2]:
        co = t
    elif f[2].startswith("+++ exited"):
        end = t
if None in (ex, co, end):
    sys.exit("bench/buoy.sh: no execve/connect/exit in the strace output")
open(sys.argv[2], "a").write("%.3f\n" % ((co - ex) * 1000))
open(sys.argv[3], "a").write("%.3f\n" % ((end - co) * 1000))
PY
	done
else
	echo "bench/buoy.sh: no strace; wg's own part is not measured" >&2
fi
# buoy takes the N peers once more and holds them; RSS while it does.
serial=$((serial + 1)); apply --peers-file "$tmp/peers" >/dev/null
bpid=$(pgrep -f "buoy run --state-dir $s" | head -1)
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$bpid/status")
anon=$(awk '/^RssAnon/ {print $2}' "/proc/$bpid/status")
file=$(awk '/^RssFile/ {print $2}' "/proc/$bpid/status")
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$bpid/status")
# Idle CPU holding N peers (the supervisor's checks, handshake reads), 10 s after 2 s quiet.
wpid=$(pgrep -f "wireguard-go.* $IF\$" | head -1)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sleep 2
b0=$(ticks "$bpid"); w0=$(ticks "$wpid"); sleep 10; b1=$(ticks "$bpid"); w1=$(ticks "$wpid")
add=$(ip netns exec "$NS" "$ctl" add-peer --target "127.0.0.1:$port" --ca "$p/ca.pem" \
    --cert "$p/controller.pem" --key "$p/controller.key" --sign-key "$tmp/sign.key" \
    --fleet alpha --node node-a --revision add --base-serial "$serial" \
    --serial "$((serial + 1))" --bench "$ADDS")
# Incremental: one peer more than the interface holds (N + 1), onto N held; then back to N.
# buoy reads the live device and sends the one new peer; wg syncconf reads it and sends all
# N + 1. Not a fresh wireguard-go: the interface keeps its N peers throughout.
serial=$((serial + ADDS + 1)); apply --peers-file "$tmp/peers" >/dev/null	# back to N
: >"$tmp/inc.buoy"; : >"$tmp/inc.wg"
for _ in $(seq "$INC"); do
	serial=$((serial + 1))
	out=$(apply --peers-file "$tmp/peers1" --time-call)
	case $out in *"peers=+1/-0/~0"*"status 0"*) ;; *) echo "incremental apply: $out" >&2; exit 1 ;; esac
	echo "$out" | sed -n 's/^call_ms=//p' >>"$tmp/inc.buoy"
	serial=$((serial + 1)); apply --peers-file "$tmp/peers" >/dev/null
	wg_timed "$tmp/wg1.conf" >>"$tmp/inc.wg"
	[ "$(count_peers)" = "$((PEERS + 1))" ] || { echo "incremental wg: $(count_peers) peers" >&2; exit 1; }
	ip netns exec "$NS" wg syncconf "$IF" "$tmp/wg.conf"
done
# Together (PAIRED runs, last): buoy's ApplyConfig and `wg syncconf` started at the same
# moment, each onto a fresh wireguard-go of its own: buoy's on $IF, wg's on $IFW in a
# namespace of its own, started here as buoy starts it (the same binary and environment,
# then the same private key, listen port, address and link state). Both wireguard-go
# processes run on one CPU, the clients (buoy, ctl_push, wg) on the other, and both
# wireguard-go run with GOGC=off.
# Why: the runs one after the other (above) vary ~12 % from one to the next, which hides a
# difference of a few ms in ~600 ms. Two causes, and what cancels each:
#   - this machine's speed moves ~10 % from one second to the next and from one vCPU to
#     the other (`openssl speed ecdhx25519`: 27k-35k/s); two processes sharing one CPU
#     through the same second meet the same speed (two such `openssl speed` runs at once
#     on one CPU: ratios 0.995-1.012);
#   - Go's collector: the same body into two fresh wireguard-go at once on one CPU (an
#     A/A run) takes 0.968-1.059x as long in one as in the other with it, 0.985-1.011x with
#     GOGC=off. It is off in both; buoy's body, which has fewer lines (less garbage), loses
#     no advantage it would have had by that.
# The cost: while both run, each has half the CPU, and the first to finish leaves it whole
# to the other, so the times are longer than alone and their ratio lies nearer 1 than the
# ratio of the work (2w/(1+w) for w <= 1). It is below 1 exactly when buoy's apply needs
# the less time.
PAIRED=${PAIRED:-21}
AA=${AA:-11}
wpid_w=
fresh_w() { # a fresh wireguard-go on $IFW in $NSW, on CPU 1, configured as buoy's is
	local n
	if [ -n "$wpid_w" ]; then
		kill -9 "$wpid_w" 2>/dev/null
		for n in $(seq 100); do ip -n "$NSW" link show "$IFW" >/dev/null 2>&1 || break; sleep 0.05; done
	fi
	rm -f "/var/run/wireguard/$IFW.sock"
	ip netns exec "$NSW" env GOGC=off WG_PROCESS_FOREGROUND=1 LOG_LEVEL=error taskset -c 1 \
	    wireguard-go -f "$IFW" >/dev/null 2>&1 &
	wpid_w=$!
	disown "$wpid_w"
	for n in $(seq 100); do [ -S "/var/run/wireguard/$IFW.sock" ] && break; sleep 0.05; done
	ip netns exec "$NSW" wg set "$IFW" private-key "$s/wg.key" listen-port 51820
	ip -n "$NSW" addr add 10.99.0.1/16 dev "$IFW"
	ip -n "$NSW" link set "$IFW" up
	settle "$IFW"
}
: >"$tmp/tg.buoy"; : >"$tmp/tg.buoy.wg"; : >"$tmp/tg.buoy.ratio"
: >"$tmp/tg.aa"; : >"$tmp/tg.aa.wg"; : >"$tmp/tg.aa.ratio"
if [ "$PAIRED" -gt 0 ] && [ "$(nproc)" -lt 2 ]; then
	echo "bench/buoy.sh: SKIPPED the runs together: they need two CPUs, this has $(nproc)" >&2
elif [ "$PAIRED" -gt 0 ]; then
	ip netns add "$NSW"
	ip -n "$NSW" link set lo up
	# buoy again, on CPU 0 and with GOGC=off for the wireguard-go it starts: that starts
	# on CPU 0 too (so with GOMAXPROCS=1, as the one on $IFW, started on CPU 1) and is
	# moved to CPU 1. buoy's check runs inline (one CPU).
	kill -9 "$pid"
	pkill -9 -f "wireguard-go.* $IF\$" || true
	for _ in $(seq 100); do ip -n "$NS" link show "$IF" >/dev/null 2>&1 || break; sleep 0.05; done
	start_buoy env GOGC=off taskset -c 0
	# together KIND I: one run, KIND buoy (buoy's apply and wg's) or aa (wg's on both
	# interfaces: how far apart two equal arms land here); I odd: $IF's arm starts first.
	together() {
		local kind=$1 run=$2 first=wg who=$IFW arm out n a_ms w_ms what="buoy call"
		fresh buoy
		taskset -a -p -c 1 "$(pgrep -f "wireguard-go.* $IF\$" | head -1)" >/dev/null
		fresh_w
		serial=$((serial + 1))
		if [ $((run % 2)) = 1 ]; then first=a who=$IF; fi
		if [ "$kind" = aa ]; then
			arm=(wg "$IF")
			what="wg syncconf on $IF"
		else
			arm=("${ctl_apply[@]}" --target "127.0.0.1:$port" --revision "b$serial"
			    --serial "$serial" --peers-file "$tmp/peers" --time-call --go-on-stdin)
		fi
		out=$(ip netns exec "$NS" taskset -c 0 bench/go_together.py "$first" "$IFW" \
		    "$tmp/wg.conf" -- "${arm[@]}")
		[ "$(count_peers)" = "$PEERS" ] || { echo "together, $IF: $(count_peers) peers" >&2; exit 1; }
		n=$(ip netns exec "$NSW" wg show "$IFW" peers | wc -l)
		[ "$n" = "$PEERS" ] || { echo "together, $IFW: $n peers" >&2; exit 1; }
		read -r a_ms w_ms <<<"$out"
		echo "$a_ms" >>"$tmp/tg.$kind"; echo "$w_ms" >>"$tmp/tg.$kind.wg"
		echo "$a_ms / $w_ms" | bc -l >>"$tmp/tg.$kind.ratio"
		printf '  together, %s %2d (%s first): %s %.1f ms, wg syncconf %.1f ms; ratio %.4f\n' \
		    "$kind" "$run" "$who" "$what" "$a_ms" "$w_ms" "$(tail -1 "$tmp/tg.$kind.ratio")"
	}
	# Interleaved, so the control meets the same stretch of this machine's time.
	for k in $(seq "$((PAIRED > AA ? PAIRED : AA))"); do	# not $i: that is a result
		if [ "$k" -le "$PAIRED" ]; then together buoy "$k"; fi
		if [ "$k" -le "$AA" ]; then together aa "$k"; fi
	done
fi
echo
printf 'ApplyConfig of %d peers, medians of %d runs: buoy %.1f ms (the call on an open channel; %.1f ms inside buoy), wg syncconf %.1f ms; median of the per-run ratios %.3fx (target <= 1.0x), ratio of the medians %.3fx\n' \
    "$PEERS" "$RUNS" "$c" "$i" "$w" "$r" "$(echo "$c / $w" | bc -l)"
echo "buoy's call was the faster in $faster of $RUNS runs"
printf "buoy's own part of the call (the call less the set, connect to answer): median %.1f ms, of which checking the request (verify, decode, hash, peers) %.1f ms; the set: median %.1f ms\n" \
    "$(median <"$tmp/own.buoy")" "$(median <"$tmp/check.buoy")" "$(median <"$tmp/set.buoy")"
[ -s "$tmp/own.wg" ] &&
    printf "wg's own part (execve to the set's connect; %d straced runs, a lower bound): median %.1f ms; the set to exit: median %.1f ms\n" \
    "$SPLIT" "$(median <"$tmp/own.wg")" "$(median <"$tmp/set.wg")"
[ -s "$tmp/tg.buoy.ratio" ] &&
    printf 'Together (started at the same moment, the two wireguard-go on one CPU with GOGC=off), medians of %d runs: buoy %.1f ms, wg syncconf %.1f ms; median of the per-run ratios %.4fx (95 %% interval %s); buoy the faster in %d of %d runs\n' \
    "$PAIRED" "$(median <"$tmp/tg.buoy")" "$(median <"$tmp/tg.buoy.wg")" "$(median <"$tmp/tg.buoy.ratio")" \
    "$(interval %.4f <"$tmp/tg.buoy.ratio")" "$(awk '$1 < 1' "$tmp/tg.buoy.ratio" | wc -l)" "$PAIRED"
[ -s "$tmp/tg.aa.ratio" ] &&
    printf '  the same with wg syncconf on both interfaces (A/A, %d runs): median of the ratios %.4fx (95 %% interval %s)\n' \
    "$AA" "$(median <"$tmp/tg.aa.ratio")" "$(interval %.4f <"$tmp/tg.aa.ratio")"
printf 'The whole test controller run (process start, config built and signed, TLS handshake, the call): %.1f ms; median of the per-run ratios %.3fx, ratio of the medians %.3fx\n' \
    "$b" "$re" "$(echo "$b / $w" | bc -l)"
printf 'Incremental, %d peers onto %d held (one new), medians of %d: buoy ApplyConfig %.1f ms, wg syncconf %.1f ms (%.3fx)\n' \
    "$((PEERS + 1))" "$PEERS" "$INC" "$(median <"$tmp/inc.buoy")" "$(median <"$tmp/inc.wg")" \
    "$(echo "$(median <"$tmp/inc.buoy") / $(median <"$tmp/inc.wg")" | bc -l)"
echo "AddPeer with $PEERS peers present, $ADDS sequential calls: $add (target p50 <= 2 ms)"
echo "buoy RSS holding $PEERS peers: $rss KiB = $((rss * 1024)) bytes (anon $anon KiB, file $file KiB; target <= 10 MB = 10000000 bytes); peak during the applies: $hwm KiB"
echo "idle CPU holding $PEERS peers over 10 s: buoy $((b1 - b0)) ticks, wireguard-go $((w1 - w0)) ticks (100 ticks = one CPU-second)"
