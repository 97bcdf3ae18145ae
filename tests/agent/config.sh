#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Signed config on buoy (data plane "none", so no root needed): only a NodeConfig signed
# with the pinned controller key, for this node, newer than what runs, is applied; it is
# persisted atomically and re-applied after kill -9 before any controller contact; a
# tampered or truncated persisted file is refused with a clear log line.
#   tests/agent/config.sh [BUILD]
set -u
cd "$(dirname "$0")/../.." || exit 2
build=$(realpath "${1:-build}")
TAG=$(basename "$build")
. tests/lib/tap.sh
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
ctl=$build/tools/ctl_push
"$build/tools/pki_fixture" "$tmp/pki" || { nok "pki_fixture"; exit 1; }
p=$tmp/pki
s=$tmp/state
mkdir -p "$s"
cp "$p/ca.pem" "$p/crl.pem" "$s/"
cp "$p/node-a.pem" "$s/node.pem"
install -m 0600 "$p/node-a.key" "$s/node.key"
: >"$tmp/buoy.log"
"$ctl" keygen "$tmp/sign.key" "$tmp/sign.pub"
"$ctl" keygen "$tmp/other.key" "$tmp/other.pub"
cp "$tmp/sign.pub" "$s/controller.pub"

start() {
	local seen
	seen=$(wc -l <"$tmp/buoy.log" 2>/dev/null || echo 0)
	"$build/buoy" run --state-dir "$s" --listen 127.0.0.1:0 --dataplane none 2>>"$tmp/buoy.log" &
	pid=$!
	port=
	for _ in $(seq 100); do
		port=$(tail -n +"$((seen + 1))" "$tmp/buoy.log" | grep -o 'listen=127.0.0.1:[0-9]*' | cut -d: -f2)
		[ -n "$port" ] && return 0
		sleep 0.05
	done
	nok "buoy did not start"
	exit 1
}
CONN() { echo --target "127.0.0.1:$port" --ca "$p/ca.pem" --cert "$p/controller.pem" --key "$p/controller.key" --expect-id spiffe://alpha/node/node-a; }
K1=$(head -c 32 /dev/urandom | base64)
K2=$(head -c 32 /dev/urandom | base64)
apply() { # SERIAL [extra args]
	local serial=$1
	shift
	"$ctl" apply $(CONN) --sign-key "$tmp/sign.key" --fleet alpha --node node-a \
	    --revision "rev$serial" --serial "$serial" --listen-port 51820 \
	    --address 10.64.0.1/16 "$@"
}
start
out=$(apply 1 --peer "$K1=10.64.0.2/32")
check "serial 1 applied ($(echo $out))" bash -c "[[ '$out' == *'applied result=1 serial=1 peers=+1'* && '$out' == *'status 0'* ]]"
check "persisted, mode 0600" test "$(stat -c %a "$s/config.signed")" = 600
out=$(apply 1 --peer "$K1=10.64.0.2/32")
check "the same config again: UNCHANGED ($(echo $out))" bash -c "[[ '$out' == *'applied result=2 serial=1'* ]]"
out=$(apply 1 --peer "$K2=10.64.0.3/32")
check "a different config with the same serial: refused ($(echo $out | cut -c1-90))" bash -c "[[ '$out' == 'status 9 '*'not newer'* ]]"
out=$(apply 2 --peer "$K1=10.64.0.2/32" --peer "$K2=10.64.0.3/32" --tamper)
check "tampered bytes: refused, PERMISSION_DENIED ($(echo $out | cut -c1-80))" bash -c "[[ '$out' == 'status 7 signature does not verify'* ]]"
# The signature is checked while the bytes are decoded: bytes that neither verify nor
# decode are refused for the signature, signed bytes that do not decode as malformed.
out=$(apply 2 --peer "$K1=10.64.0.2/32" --junk --tamper)
check "unsigned junk: refused for the signature first ($(echo $out | cut -c1-60))" bash -c "[[ '$out' == 'status 7 signature does not verify'* ]]"
out=$(apply 2 --peer "$K1=10.64.0.2/32" --junk)
check "signed junk: refused, not a NodeConfig ($(echo $out | cut -c1-60))" bash -c "[[ '$out' == 'status 3 signed config is not a NodeConfig'* ]]"
out=$("$ctl" apply $(CONN) --sign-key "$tmp/other.key" --fleet alpha --node node-a --revision x --serial 9)
check "signed by another key: refused" bash -c "[[ '$out' == 'status 7 signature does not verify'* ]]"
out=$("$ctl" apply $(CONN) --sign-key "$tmp/sign.key" --fleet alpha --node node-b --revision x --serial 9)
check "a config for node-b: refused ($(echo $out | cut -c1-70))" bash -c "[[ '$out' == 'status 7 config is for alpha/node-b'* ]]"
out=$(apply 2 --peer "$K1=10.64.0.2/32" --peer "$K2=10.64.0.3/32")
check "serial 2 applied ($(echo $out | cut -c1-60))" bash -c "[[ '$out' == *'applied result=1 serial=2 peers=+1'* ]]"
hash=$(echo "$out" | grep -o 'hash=[0-9a-f]*')
out=$(apply 1 --peer "$K1=10.64.0.2/32")
check "an older serial afterwards: refused" bash -c "[[ '$out' == 'status 9 '* ]]"
st=$("$ctl" status $(CONN))
check "GetStatus reports revision, serial, peers and hash ($(echo $st | cut -c1-60))" \
    bash -c "[[ '$st' == *'node revision=rev2 serial=2 peers=2 $hash'* ]]"

kill -9 "$pid"; wait "$pid" 2>/dev/null
start
check "after kill -9: re-applied from disk before any controller contact" \
    grep -q 're-applied the persisted config revision=rev2 serial=2 peers=2' "$tmp/buoy.log"
st=$("$ctl" status $(CONN))
check "after kill -9: the same revision and hash" bash -c "[[ '$st' == *'revision=rev2 serial=2 peers=2 $hash'* ]]"

kill -9 "$pid"; wait "$pid" 2>/dev/null
cp "$s/config.signed" "$tmp/good.signed"
/usr/bin/python3 -c '
import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[len(b) // 3] ^= 0x40
open(sys.argv[1], "wb").write(b)' "$s/config.signed"
start
check "tampered persisted config: refused with a clear log line" \
    grep -q 'refusing the persisted config .*config.signed: signature does not verify' "$tmp/buoy.log"
st=$("$ctl" status $(CONN))
check "tampered persisted config: nothing applied ($(echo $st | cut -c1-40))" bash -c "[[ '$st' == *'node revision= serial=0 peers=0'* ]]"
kill -9 "$pid"; wait "$pid" 2>/dev/null
head -c 40 "$tmp/good.signed" >"$s/config.signed"
start
check "truncated persisted config: refused" bash -c "tail -n 3 '$tmp/buoy.log' | grep -q 'refusing the persisted config'"
out=$(apply 3 --peer "$K1=10.64.0.2/32")
check "and a fresh signed config is still taken" bash -c "[[ '$out' == *'applied result=1 serial=3'* ]]"
# Signed peer deltas on top of the config (serial 3, one peer K1).
delta() { # add-peer|remove-peer BASE SERIAL [args]
	local cmd=$1 b=$2 n=$3
	shift 3
	"$ctl" "$cmd" $(CONN) --sign-key "${SIGN:-$tmp/sign.key}" --fleet alpha --node node-a \
	    --revision "d$n" --base-serial "$b" --serial "$n" "$@"
}
out=$(delta add-peer 3 4 --peer "$K2=10.64.0.3/32")
check "AddPeer 3 -> 4 ($(echo $out))" bash -c "[[ '$out' == *'peers serial=4 count=2 changed=1'* ]]"
out=$(delta add-peer 3 4 --peer "$K2=10.64.0.3/32")
check "the same AddPeer again: already applied" bash -c "[[ '$out' == *'serial=4 count=2 changed=0'* ]]"
out=$(delta add-peer 2 5 --peer "$K2=10.64.0.3/32")
check "a delta on the wrong base: refused ($(echo $out | cut -c1-70))" bash -c "[[ '$out' == 'status 9 delta is based on serial 2; this node runs 4'* ]]"
out=$(SIGN=$tmp/other.key delta add-peer 4 5 --peer "$K2=10.64.0.3/32")
check "a delta signed by another key: refused" bash -c "[[ '$out' == 'status 7 signature does not verify'* ]]"
out=$(delta remove-peer 4 5 --remove "$K1")
check "RemovePeer 4 -> 5 ($(echo $out))" bash -c "[[ '$out' == *'peers serial=5 count=1 changed=1'* ]]"
out=$(delta remove-peer 5 6 --peer "$K1=10.64.0.2/32")
check "RemovePeer carrying an addition: refused" bash -c "[[ '$out' == 'status 3 RemovePeer carries additions'* ]]"
st=$("$ctl" status $(CONN))
check "GetStatus: serial 5, 1 peer ($(echo $st | cut -c1-40))" bash -c "[[ '$st' == *'revision=d5 serial=5 peers=1'* ]]"
kill -9 "$pid"; wait "$pid" 2>/dev/null
start
check "after kill -9: the config and 2 deltas replayed" grep -q 'replayed 2 signed peer deltas; serial 5' "$tmp/buoy.log"
st=$("$ctl" status $(CONN))
check "after kill -9: serial 5, 1 peer" bash -c "[[ '$st' == *'serial=5 peers=1'* ]]"
out=$(apply 6 --peer "$K1=10.64.0.2/32" --peer "$K2=10.64.0.3/32")
check "a new config after deltas: applied, the delta chain restarts" bash -c "[[ '$out' == *'applied result=1 serial=6'* ]] && [ ! -e '$s/deltas.signed' ]"

kill -TERM "$pid"; wait "$pid"
check "SIGTERM: exit 0" test $? = 0
pid=
ls -a "$s" | grep -q '^\.config' && nok "no temporary files left in the state dir" || ok "no temporary files left in the state dir"
