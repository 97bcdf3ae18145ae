#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The certificate matrix: a node-role server (grpc_peer serve --allow controller, the
# policy buoy uses) must admit its own fleet's controller and refuse everything else,
# each refusal with one clear "tls: refused" log line naming the reason.
#   tests/interop/matrix.sh [BUILD] [peer|buoy]
# With "buoy" the server is the real node agent (buoy run --state-dir) and the calls
# are NodeControl/GetStatus; with "peer" (default) it is tests/tools/grpc_peer.
set -u
cd "$(dirname "$0")/../.." || exit 2
build=$(realpath "${1:-build}")
mode=${2:-peer}
TAG=$(basename "$build")${2:+-$2}
. tests/lib/tap.sh
tmp=$(mktemp -d)
srv_pid=
cleanup() {
	[ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null
	[ -n "${KEEP:-}" ] && cp "$tmp/server.log" "$tmp/client.log" /tmp/; rm -rf "$tmp"
}
trap cleanup EXIT
peer=$build/tools/grpc_peer
if ! "$build/tools/pki_fixture" "$tmp/pki"; then
	nok "pki_fixture"
	exit 1
fi
p=$tmp/pki

# Our server: node-a's certificate, admitting only spiffe://alpha/controller.
method=/pharos.test.Echo/Echo
data=hello
if [ "$mode" = buoy ]; then
	method=/pharos.v1.NodeControl/GetStatus
	data=
	mkdir -p "$tmp/state"
	cp "$p/ca.pem" "$tmp/state/ca.pem"
	cp "$p/crl.pem" "$tmp/state/crl.pem"
	cp "$p/node-a.pem" "$tmp/state/node.pem"
	install -m 0600 "$p/node-a.key" "$tmp/state/node.key"
fi
start_server() { # EXTRA ARGS...
	touch "$tmp/server.log"
	: >"$tmp/server.out"
	local seen
	seen=$(wc -l <"$tmp/server.log")
	if [ "$mode" = buoy ]; then
		"$build/buoy" run --state-dir "$tmp/state" --listen 127.0.0.1:0 --dataplane none \
		    >"$tmp/server.out" 2>>"$tmp/server.log" &
	else
		"$peer" serve --listen 127.0.0.1:0 --ca "$p/ca.pem" --cert "$p/node-a.pem" \
		    --key "$p/node-a.key" --crl "$p/crl.pem" --allow controller "$@" \
		    >"$tmp/server.out" 2>>"$tmp/server.log" &
	fi
	srv_pid=$!
	for _ in $(seq 1 100); do
		port=$(awk '/^listening/ {print $2}' "$tmp/server.out")
		# buoy logs its port; only this server's lines count.
		[ -z "$port" ] && port=$(tail -n +"$((seen + 1))" "$tmp/server.log" |
		    grep -o 'listen=127.0.0.1:[0-9]*' | cut -d: -f2)
		[ -n "$port" ] && return 0
		sleep 0.05
	done
	nok "server did not start"
	cat "$tmp/server.log" | sed 's/^/#   /'
	exit 1
}
start_server

# call NAME CERT: a client presenting NAME.pem/NAME.key; prints its status line.
call() {
	timeout 20 "$peer" call --target "127.0.0.1:$port" --ca "${3:-$p/ca.pem}" \
	    --cert "$p/$1.pem" --key "$p/$1.key" --method "$method" \
	    --data "$data" --timeout 5 2>"$tmp/client.log" | grep '^status' | head -1
}
# refused NAME WHAT REGEX [CA]: the call fails and the server logs WHY.
refused() {
	local name=$1 what=$2 re=$3 st n
	n=$(wc -l <"$tmp/server.log")
	st=$(call "$name" x "${4:-}")
	sleep 0.2
	if [[ $st == "status 0 "* ]]; then
		nok "$what: admitted (status 0)"
	elif ! tail -n +"$((n + 1))" "$tmp/server.log" | grep 'tls: refused' | grep -qE "$re"; then
		nok "$what: no 'tls: refused' line matching /$re/"
		tail -n 5 "$tmp/server.log" | sed 's/^/#   /'
	else
		ok "$what refused: $(tail -n +"$((n + 1))" "$tmp/server.log" | grep -m1 'tls: refused' | sed 's/.*tls: refused/tls: refused/')"
	fi
}

st=$(call controller)
check "own fleet's controller admitted (status 0)" test "$st" = "status 0 "

refused other-ca "a certificate from another CA" 'unable to get (local )?issuer|unknown ca|verify'
refused expired "an expired certificate" 'expired'
refused notyet "a certificate not yet valid" 'not yet valid'
refused revoked "a revoked certificate" 'revoked'
refused node-b "a node identity presenting itself as controller" 'spiffe://alpha/node/node-b.*controller|not the controller'
refused other-fleet "another fleet's controller" 'beta|unable to get|unknown ca|verify'

# Raw TLS clients: openssl s_client against the same server.
sclient() { # NAME ARGS...
	local name=$1
	shift
	timeout 10 openssl s_client -connect "127.0.0.1:$port" -CAfile "$p/ca.pem" "$@" \
	    </dev/null >"$tmp/sclient.$name" 2>&1
	sleep 0.2
}
raw_refused() { # NAME WHAT REGEX ARGS...
	local name=$1 what=$2 re=$3 n
	shift 3
	n=$(wc -l <"$tmp/server.log")
	sclient "$name" "$@"
	if tail -n +"$((n + 1))" "$tmp/server.log" | grep 'tls: refused' | grep -qE "$re"; then
		ok "$what refused: $(tail -n +"$((n + 1))" "$tmp/server.log" | grep -m1 'tls: refused' | sed 's/.*tls: refused/tls: refused/')"
	else
		nok "$what: no 'tls: refused' line matching /$re/"
		tail -n 5 "$tmp/server.log" | sed 's/^/#   /'
	fi
}
raw_refused nocert "no client certificate" 'no client certificate|peer did not return a certificate' \
    -alpn h2 -tls1_3
raw_refused tls12 "a TLS 1.2-only client" 'protocol|version|TLS 1.3' \
    -alpn h2 -tls1_2 -cert "$p/controller.pem" -key "$p/controller.key"
raw_refused noalpn "a client without ALPN" 'ALPN|h2' \
    -tls1_3 -cert "$p/controller.pem" -key "$p/controller.key"

# The controller side: a client that expects node-a refuses a server that is not node-a.
kill "$srv_pid"; wait "$srv_pid" 2>/dev/null; srv_pid=
start_server
st=$(timeout 20 "$peer" call --target "127.0.0.1:$port" --ca "$p/ca.pem" \
    --cert "$p/controller.pem" --key "$p/controller.key" --method "$method" \
    --data "$data" --timeout 5 --expect-id spiffe://alpha/node/node-b 2>"$tmp/client.log" |
    grep '^status' | head -1)
if [[ $st != "status 0 "* ]] && grep -q 'tls: refused' "$tmp/client.log"; then
	ok "controller dialing node-b refuses node-a: $(grep -m1 'tls: refused' "$tmp/client.log" | sed 's/.*tls: refused/tls: refused/')"
else
	nok "controller dialing node-b accepted node-a ($st)"
	sed 's/^/#   /' "$tmp/client.log" | tail -5
fi
st=$(timeout 20 "$peer" call --target "127.0.0.1:$port" --ca "$p/ca.pem" \
    --cert "$p/controller.pem" --key "$p/controller.key" --method "$method" \
    --data "$data" --timeout 5 --expect-id spiffe://alpha/node/node-a 2>/dev/null | grep '^status' | head -1)
check "controller dialing node-a reaches node-a (status 0)" test "$st" = "status 0 "
