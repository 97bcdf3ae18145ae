#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Our gRPC transport's own behaviour, beyond interop: HTTP-level refusals (405, 415),
# UNIMPLEMENTED, many streams on one connection and 1,000 connections on one event loop,
# a slow reader held to bounded server memory, keepalive dead-peer detection, graceful
# GOAWAY, and client reconnect with exponential backoff.
#   tests/interop/transport.sh [BUILD]
set -u
cd "$(dirname "$0")/../.." || exit 2
build=$(realpath "${1:-build}")
TAG=$(basename "$build")
. tests/lib/tap.sh
PY=/usr/bin/python3
peer=$build/tools/grpc_peer
tmp=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
"${PKI_FIXTURE:-$build/tools/pki_fixture}" "$tmp/pki" || { nok "pki fixture"; exit 1; }
p=$tmp/pki
CL=(--ca "$p/ca.pem" --cert "$p/controller.pem" --key "$p/controller.key")

# serve NAME ARGS...: start our server, set $port and $srv (pid).
serve() {
	local name=$1
	shift
	"$peer" serve --listen 127.0.0.1:0 --ca "$p/ca.pem" --cert "$p/node-a.pem" \
	    --key "$p/node-a.key" "$@" >"$tmp/$name.out" 2>"$tmp/$name.log" &
	srv=$!
	pids+=("$srv")
	port=
	for _ in $(seq 100); do
		port=$(awk '/^listening/ {print $2}' "$tmp/$name.out")
		[ -n "$port" ] && return 0
		sleep 0.05
	done
	nok "$name: server did not start"
	return 1
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
status_of() { grep '^status' | head -1; }

serve main --keepalive-ms 5000 || exit 1

# HTTP-level answers, with curl (nghttp2 inside) as a plain HTTP/2 client.
# curl_code ARGS...: the HTTP status; on failure, curl's error and the server's last lines.
curl_code() {
	local code
	code=$(curl -sSk --http2 --tlsv1.3 --connect-timeout 5 --max-time 10 \
	    --cert "$p/controller.pem" --key "$p/controller.key" -o /dev/null \
	    -w '%{http_code}' "$@" 2>"$tmp/curl.err")
	if [ "$code" = 000 ]; then
		sed 's/^/#   curl: /' "$tmp/curl.err" >&2
		tail -n 3 "$tmp/main.log" | sed 's/^/#   server: /' >&2
	fi
	echo "$code"
}
# 50 times: an early answer racing the request body once broke curl (see on_frame_send).
codes=$(for _ in $(seq 50); do curl_code -H 'content-type: text/plain' --data-binary x \
    "https://127.0.0.1:$port/pharos.test.Echo/Echo"; done | sort | uniq -c | xargs)
check "non-gRPC content-type -> HTTP 415, 50 of 50 ($codes)" test "$codes" = "50 415"
code=$(curl_code "https://127.0.0.1:$port/pharos.test.Echo/Echo")
check "GET -> HTTP 405 (got $code)" test "$code" = 405
curl -sk --http2 --tlsv1.3 --cert "$p/controller.pem" --key "$p/controller.key" \
    -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @/dev/null \
    -D "$tmp/hdr" -o /dev/null "https://127.0.0.1:$port/pharos.test.Echo/Echo"
check "a request with no message -> grpc-status 12 (cardinality)" grep -qi '^grpc-status: 12' "$tmp/hdr"

st=$("$peer" call --target "127.0.0.1:$port" "${CL[@]}" --method /pharos.test.Echo/Nope \
    --data x --timeout 5 2>/dev/null | status_of)
check "unknown method -> UNIMPLEMENTED ($st)" bash -c "[[ '$st' == 'status 12 unknown method /pharos.test.Echo/Nope' ]]"
st=$("$PY" tests/interop/grpcio_peer.py call --target "127.0.0.1:$port" "${CL[@]}" \
    --expect-id spiffe://alpha/node/node-a --method /pharos.NoSuch/Method --data x \
    --timeout 5 2>/dev/null | status_of)
check "unknown method from grpcio -> UNIMPLEMENTED ($st)" bash -c "[[ '$st' == 'status 12'* ]]"

# Many concurrent streams on one connection; 1,000 connections on one client loop.
out=$("$peer" call --target "127.0.0.1:$port" "${CL[@]}" --method /pharos.test.Echo/Echo \
    --data hello --repeat 5000 --concurrency 100 --connections 1 --bench --timeout 20 2>/dev/null)
check "5,000 calls, 100 concurrent streams on 1 connection, all OK ($out)" \
    bash -c "[[ '$out' == *'calls=5000 ok=5000'* ]]"
out=$("$peer" call --target "127.0.0.1:$port" "${CL[@]}" --method /pharos.test.Echo/Echo \
    --data hello --repeat 3000 --concurrency 1000 --connections 1000 --bench --timeout 60 \
    2>/dev/null)
check "1,000 connections from one process on one loop, 3,000 calls OK ($out)" \
    bash -c "[[ '$out' == *'calls=3000 ok=3000'* && '$out' == *'connections=1000'* ]]"

# A slow reader: grpcio asks for 5,000,000 messages, reads 10 and stops reading for 3 s.
# A fresh server, so its RSS before is not a high-water mark of the tests above.
# (Under ASan, freed memory sits in a 256 MB quarantine; keep it small so RSS means
# what is live.)
kill "$srv"; wait "$srv" 2>/dev/null
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1 serve slow || exit 1
before=$(rss_kb "$srv")
"$PY" tests/interop/grpcio_peer.py call --target "127.0.0.1:$port" "${CL[@]}" \
    --expect-id spiffe://alpha/node/node-a --method /pharos.test.Echo/Stream \
    --data 5000000 --stream --pause-after 10 --pause 3 >"$tmp/slow.out" 2>&1 &
slow=$!
pids+=("$slow")
for _ in $(seq 100); do grep -q paused "$tmp/slow.out" && break; sleep 0.05; done
sleep 2
during=$(rss_kb "$srv")
wait "$slow"
grow=$(( (during - before) / 1024 ))
sent=$(grep -c '^msg' "$tmp/slow.out")
check "slow reader: server RSS ${before} -> ${during} KiB while paused, +${grow} MiB (bound 16; all 5,000,000 queued would be ~60 MiB)" \
    test "$grow" -lt 16
st=$("$peer" call --target "127.0.0.1:$port" "${CL[@]}" --method /pharos.test.Echo/Echo \
    --data after --timeout 5 2>/dev/null | status_of)
check "server still serving after the slow reader" test "$st" = "status 0 "

# Keepalive: a peer that stops answering PINGs is detected and dropped.
kill "$srv"; wait "$srv" 2>/dev/null
serve ka --keepalive-ms 300 || exit 1
"$peer" call --target "127.0.0.1:$port" "${CL[@]}" --method /pharos.test.Echo/Sleep \
    --data 10000 --timeout 20 >/dev/null 2>&1 &
cli=$!
pids+=("$cli")
sleep 0.5
kill -STOP "$cli"
for _ in $(seq 40); do grep -q 'missed a keepalive PING' "$tmp/ka.log" && break; sleep 0.1; done
check "keepalive: a frozen client is detected ($(grep -m1 -o 'missed a keepalive PING for [0-9]* ms' "$tmp/ka.log"))" \
    grep -q 'missed a keepalive PING' "$tmp/ka.log"
kill -9 "$cli" 2>/dev/null

# Graceful shutdown: SIGTERM sends GOAWAY; a running call still completes, then exit 0.
"$peer" call --target "127.0.0.1:$port" "${CL[@]}" --method /pharos.test.Echo/Sleep \
    --data 1000 --timeout 10 >"$tmp/goaway.out" 2>/dev/null &
cli=$!
sleep 0.3
kill -TERM "$srv"
wait "$cli"
wait "$srv"
rc=$?
check "GOAWAY: the running call completes OK ($(cat "$tmp/goaway.out" | status_of))" \
    grep -qx 'status 0 ' "$tmp/goaway.out"
check "GOAWAY: the server exits 0 after it" test "$rc" = 0

# Reconnect: a client started before its server keeps retrying with growing delays.
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$peer" call --target "127.0.0.1:$port" "${CL[@]}" --method /pharos.test.Echo/Echo \
    --data late --timeout 15 --retry --backoff-ms 100 >"$tmp/retry.out" 2>"$tmp/retry.log" &
cli=$!
pids+=("$cli")
sleep 1.5
"$peer" serve --listen "127.0.0.1:$port" --ca "$p/ca.pem" --cert "$p/node-a.pem" \
    --key "$p/node-a.key" >/dev/null 2>&1 &
pids+=("$!")
wait "$cli"
check "reconnect: the call succeeds once the server is up ($(status_of <"$tmp/retry.out"))" \
    grep -qx 'status 0 ' "$tmp/retry.out"
delays=$(grep -o 'reconnect in [0-9]* ms' "$tmp/retry.log" | awk '{print $3}' | tr '\n' ' ')
check "reconnect: backoff delays grow, with jitter ($delays)" "$PY" -c '
import sys
d = [int(x) for x in sys.argv[1:]]
assert len(d) >= 3, d
assert d[-1] > d[0], d
' $delays
