#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Unary gRPC over mTLS on loopback: our server (lib/grpc via build/tools/grpc_peer) and a
# python3-grpcio server (gRPC C core; tests/interop/grpcio_peer.py), driven by the same
# client in one run; throughput, p50/p99 latency and each server's peak RSS. Then 1,000
# connections from one client process on one event loop.
#
#   bench/grpc.sh            (BUILD=build RUNS=3 CALLS=20000 CONC=64 CONNS=4)
#
# The server runs on CPU 0 and the client on CPU 1 (taskset), so they do not fight over
# a core. Each configuration runs RUNS times; medians are reported.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
RUNS=${RUNS:-3}
CALLS=${CALLS:-20000}
CONC=${CONC:-64}
CONNS=${CONNS:-4}
PY=/usr/bin/python3
peer=$BUILD/tools/grpc_peer
tmp=$(mktemp -d)
srv=
trap '[ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -rf "$tmp"' EXIT
"$BUILD/tools/pki_fixture" "$tmp/pki"
p=$tmp/pki
CL=(--ca "$p/ca.pem" --cert "$p/controller.pem" --key "$p/controller.key")

start() { # our|grpcio
	: >"$tmp/srv.out"
	if [ "$1" = our ]; then
		taskset -c 0 "$peer" serve --listen 127.0.0.1:0 --ca "$p/ca.pem" \
		    --cert "$p/node-a.pem" --key "$p/node-a.key" >"$tmp/srv.out" 2>/dev/null &
	else
		taskset -c 0 "$PY" tests/interop/grpcio_peer.py serve --listen 127.0.0.1:0 \
		    --ca "$p/ca.pem" --cert "$p/node-a.pem" --key "$p/node-a.key" \
		    >"$tmp/srv.out" 2>/dev/null &
	fi
	srv=$!
	for _ in $(seq 200); do
		port=$(awk '/^listening/ {print $2}' "$tmp/srv.out")
		[ -n "$port" ] && return
		sleep 0.05
	done
	echo "server did not start" >&2
	exit 1
}
stop() { # prints the server's peak RSS in KiB
	local hwm
	hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$srv/status")
	kill "$srv"
	wait "$srv" 2>/dev/null || true
	srv=
	echo "$hwm"
}
. bench/stats.sh

run() { # NAME SERVER: RUNS runs; appends "name rps p50 p99 rss" to results
	local name=$1 kind=$2 i out rss
	: >"$tmp/$name"
	for i in $(seq "$RUNS"); do
		start "$kind"
		# Warm up the server (imports, thread pool, allocator) before measuring.
		taskset -c 1 "$peer" call --target "127.0.0.1:$port" "${CL[@]}" \
		    --method /pharos.test.Echo/Echo --data warm --repeat 2000 --concurrency "$CONC" \
		    --connections "$CONNS" --bench --timeout 30 >/dev/null 2>&1
		out=$(taskset -c 1 "$peer" call --target "127.0.0.1:$port" "${CL[@]}" \
		    --method /pharos.test.Echo/Echo --data-file "$tmp/req" --repeat "$CALLS" \
		    --concurrency "$CONC" --connections "$CONNS" --bench --timeout 30 2>/dev/null)
		rss=$(stop)
		echo "  $name run $i: $out server_peak_rss_kib=$rss"
		case $out in *"ok=$CALLS "*) ;; *) echo "  $name: calls failed" >&2; exit 1 ;; esac
		echo "$out rss=$rss" | sed 's/[a-z_0-9]*=//g' >>"$tmp/$name"
	done
	# fields: bench calls ok secs rps p50 p99 connections rss
	rps=$(awk '{print $5}' "$tmp/$name" | median)
	p50=$(awk '{print $6}' "$tmp/$name" | median)
	p99=$(awk '{print $7}' "$tmp/$name" | median)
	rss=$(awk '{print $9}' "$tmp/$name" | median)
	printf '%-34s %10.0f %10.3f %10.3f %12.1f\n' "$name" "$rps" "$p50" "$p99" "$(echo "$rss/1024" | bc -l)" >>"$tmp/table"
	eval "${kind}_rps=$rps ${kind}_rss=$rss"
}

head -c 100 /dev/zero | tr '\0' 'x' >"$tmp/req"	# a 100-byte request, echoed back
echo "unary Echo of 100 bytes over mTLS (TLS 1.3, h2); $CALLS calls, $CONC in flight over $CONNS connections; $RUNS runs each"
: >"$tmp/table"
run "our server  <- our client" our
run "grpcio server <- our client" grpcio
echo
printf '%-34s %10s %10s %10s %12s\n' "" "calls/s" "p50 ms" "p99 ms" "peak RSS MiB"
cat "$tmp/table"
echo
awk -v a="$our_rps" -v b="$grpcio_rps" -v r1="$our_rss" -v r2="$grpcio_rss" 'BEGIN {
	printf "throughput ours/grpcio = %.2fx (target >= 2x): %s\n", a / b, ((a / b >= 2) ? "PASS" : "FAIL")
	printf "server RSS ours/grpcio = %.2f (target <= 0.25): %s\n", r1 / r2, ((r1 / r2 <= 0.25) ? "PASS" : "FAIL")
}'

echo
echo "1,000 client connections from one process, one event loop (our client -> our server)"
start our
taskset -c 1 "$peer" call --target "127.0.0.1:$port" "${CL[@]}" \
    --method /pharos.test.Echo/Echo --data hello --repeat 10000 --concurrency 1000 \
    --connections 1000 --bench --timeout 60 >"$tmp/conns.out" 2>/dev/null &
cli=$!
# The most sockets the server held at once, sampled while the client runs.
conns=0
while kill -0 "$cli" 2>/dev/null; do
	n=$(find /proc/"$srv"/fd -lname 'socket:*' 2>/dev/null | wc -l)
	[ "$n" -gt "$conns" ] && conns=$n
	sleep 0.02
done
wait "$cli"
out=$(cat "$tmp/conns.out")
rss=$(stop)
echo "  $out server_sockets_max=$conns server_peak_rss_kib=$rss"
case $out in *"ok=10000 "*"connections=1000"*) echo "  1,000 connections held and used: PASS" ;; *) echo "  FAIL" ;; esac
