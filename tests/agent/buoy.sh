#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# buoy's control plane from outside: buoy run on a state dir made from the fleet PKI,
# called by python3-grpcio as the controller (tests/agent/buoy_grpc.py), refusing a bad
# state dir clearly, and exiting cleanly on SIGTERM. The refusal of every identity other
# than its fleet's controller is tests/interop/matrix.sh BUILD buoy.
#   tests/agent/buoy.sh [BUILD]
set -u
cd "$(dirname "$0")/../.." || exit 2
build=$(realpath "${1:-build}")
TAG=$(basename "$build")
. tests/lib/tap.sh
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
OUT=$tmp/out
ERR=$tmp/err
"$build/tools/pki_fixture" "$tmp/pki" || { nok "pki_fixture"; exit 1; }
s=$tmp/state
mkdir -p "$s"
cp "$tmp/pki/ca.pem" "$tmp/pki/crl.pem" "$s/"
cp "$tmp/pki/node-a.pem" "$s/node.pem"
install -m 0600 "$tmp/pki/node-a.key" "$s/node.key"

expect_rc "buoy run without --state-dir: exit 2" 2 "$build/buoy" run
expect_rc "buoy run on an empty dir: exit 1" 1 "$build/buoy" run --state-dir "$tmp" --listen 127.0.0.1:0 --dataplane none
check "empty dir: says which identity it could not load" grep -q "cannot load the node's identity" "$ERR"
mkdir -p "$tmp/ctl"
cp "$tmp/pki/ca.pem" "$tmp/ctl/"
cp "$tmp/pki/controller.pem" "$tmp/ctl/node.pem"
install -m 0600 "$tmp/pki/controller.key" "$tmp/ctl/node.key"
expect_rc "a controller certificate is not a node's: exit 1" 1 "$build/buoy" run --state-dir "$tmp/ctl" --listen 127.0.0.1:0 --dataplane none
check "controller certificate: says so" grep -q "is not a node certificate" "$ERR"

"$build/buoy" run --state-dir "$s" --listen 127.0.0.1:0 --dataplane none 2>"$tmp/buoy.log" &
pid=$!
port=
for _ in $(seq 100); do
	port=$(grep -o 'listen=127.0.0.1:[0-9]*' "$tmp/buoy.log" | cut -d: -f2)
	[ -n "$port" ] && break
	sleep 0.05
done
check "buoy run serves (port ${port:-none})" test -n "$port"
/usr/bin/python3 tests/agent/buoy_grpc.py "127.0.0.1:$port" "$tmp/pki" | sed "s/^\(not \)\{0,1\}ok - /&[$TAG] grpcio -> buoy: /"
# A controller watching events must not keep buoy from stopping.
"$build/tools/ctl_push" watch --target "127.0.0.1:$port" --ca "$tmp/pki/ca.pem" \
    --cert "$tmp/pki/controller.pem" --key "$tmp/pki/controller.key" --timeout 30 \
    >"$tmp/watch.out" 2>&1 &
wpid=$!
sleep 0.5
kill -TERM "$pid"
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -9 "$pid" 2>/dev/null && echo "not ok - [$TAG] buoy did not stop within 5 s of SIGTERM"
wait "$pid"
rc=$?
pid=
check "SIGTERM: clean exit 0, with a WatchEvents stream open" test "$rc" = 0
wait "$wpid"
check "the watcher was told: UNAVAILABLE, shutting down" grep -q 'status 14 node agent shutting down' "$tmp/watch.out"
check "SIGTERM: logged" grep -q "buoy: stopped" "$tmp/buoy.log"
