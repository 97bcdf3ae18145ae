#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# gRPC interop: our C gRPC stack (build/tools/grpc_peer) against a real gRPC
# implementation (python3-grpcio 1.51, the gRPC C core; tests/interop/grpcio_peer.py), in
# both directions, over mutual TLS 1.3 with the fleet PKI's URI-SAN-only certificates
# (build/tools/pki_fixture). Server side: node-a's certificate, --allow controller; client
# side: the controller's certificate, checking the server is node-a (--expect-id).
#   tests/interop/run.sh [BUILD]          (BUILD defaults to build)
# Cases, each way: unary Echo of 5 bytes and of 1 MiB; Stream of 1000 messages in order;
# deadline exceeded (Sleep 2000 ms, timeout 0.3 s -> 4, and promptly); Fail with code 9
# and a non-ASCII message (details byte for byte); the 4 MiB message limit (4194304 bytes
# of message pass, 4194305 -> 8 RESOURCE_EXHAUSTED), on the receiving and on the sending
# side; a wrong identity refused; the server still serving afterwards and exiting 0 on
# SIGTERM with nothing from the sanitizers.
#
# Overrides (commands, split on blanks; "py" means the python peer):
#   PEER_SERVER   "our" server   (default BUILD/tools/grpc_peer)
#   PEER_CLIENT   "our" client   (default BUILD/tools/grpc_peer)
#   PKI_FIXTURE   certificate maker, called with OUTDIR (default BUILD/tools/pki_fixture;
#                 tests/interop/openssl_fixture.sh makes the same files with openssl)
# e.g. the suite's self-test with grpcio on both sides:
#   PEER_SERVER=py PEER_CLIENT=py PKI_FIXTURE=tests/interop/openssl_fixture.sh \
#       tests/interop/run.sh
#
# Output protocol shared by both peers: "listening PORT" once a server is bound; a client
# prints "msg LEN SHA256HEX" per response message, then "status CODE[ DETAILS]" last, and
# exits 0 whenever it got a status. --size N sends N bytes of "x".
set -u
cd "$(dirname "$0")/../.." || exit 2
build=$(realpath "${1:-build}")
TAG=$(basename "$build")
# shellcheck source=tests/lib/tap.sh
. tests/lib/tap.sh
PY=/usr/bin/python3
tmp=$(mktemp -d)
pids=()

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${pids[@]}"; do
		stop_wait "$p"
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_wait PID: wait up to 5 s for PID (a server this script started) to exit, then
# SIGKILL its process group (setsid below made it the group's leader, so a wrapper's
# children go too); sets stop_rc to its exit code, or "killed".
stop_wait() {
	for _ in $(seq 50); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$1" 2>/dev/null; then
		kill -KILL -- "-$1" 2>/dev/null
		wait "$1" 2>/dev/null
		stop_rc=killed
	else
		wait "$1" 2>/dev/null
		stop_rc=$?
	fi
}

pypeer=("$PY" tests/interop/grpcio_peer.py)
cmd_of() { # VAR "COMMAND WORDS" -> array VAR
	if [ "$2" = py ]; then
		eval "$1=(\"\${pypeer[@]}\")"
	else
		read -ra "$1" <<<"$2"
	fi
}
srv_ours=() cli_ours=() fixture=()
cmd_of srv_ours "${PEER_SERVER:-$build/tools/grpc_peer}"
cmd_of cli_ours "${PEER_CLIENT:-$build/tools/grpc_peer}"
cmd_of fixture "${PKI_FIXTURE:-$build/tools/pki_fixture}"
have() { [ -x "$1" ] || command -v "$1" >/dev/null 2>&1; }
label() { if [ "$1" = "$PY" ]; then echo grpcio; else basename "$1"; fi; }
sname=$(label "${srv_ours[0]}")
cname=$(label "${cli_ours[0]}")
echo "# server under test: ${srv_ours[*]}"
echo "# client under test: ${cli_ours[*]}"
echo "# certificates: ${fixture[*]}"

A="grpcio->$sname"	# grpcio client, our server
B="$cname->grpcio"	# our client, grpcio server
CASES_A=("Echo 5 bytes" "Echo 1 MiB" "Stream 1000 in order" "deadline exceeded"
	"Fail 9 non-ASCII details" "Echo 4194304 bytes OK" "Echo 4194305 bytes -> 8"
	"Size 4194305 -> 8" "node-b as client refused" "still serving" "clean exit on SIGTERM")
CASES_B=("Echo 5 bytes" "Echo 1 MiB" "Stream 1000 in order" "deadline exceeded"
	"Fail 9 non-ASCII details" "Size 4194304 OK" "Size 4194305 -> 8 (server send limit)"
	"Size 4194305 -> 8 (client receive limit)" "wrong --expect-id refused" "still serving")
skip_all() { # PREFIX REASON CASE...
	local p=$1 why=$2 c
	shift 2
	for c in "$@"; do echo "skip - ${TAG:+[$TAG] }$p: $c: $why"; done
}

# Preconditions; a missing piece skips what needs it, loudly.
why=
"$PY" -c 'import grpc' 2>/dev/null || why="python3-grpcio missing under $PY"
have "${fixture[0]}" || why=${why:-"${fixture[0]} missing"}
if [ -z "$why" ] && ! "${fixture[@]}" "$tmp/pki" >"$tmp/fixture.log" 2>&1; then
	nok "certificates: ${fixture[*]} failed"
	sed 's/^/#   /' "$tmp/fixture.log" | head -20
	exit 1
fi
if [ -n "$why" ]; then
	skip_all "$A" "$why" "${CASES_A[@]}"
	skip_all "$B" "$why" "${CASES_B[@]}"
	exit 0
fi
pki=$tmp/pki
for f in ca.pem crl.pem controller.pem controller.key node-a.pem node-a.key; do
	[ -s "$pki/$f" ] || { nok "certificates: $f not written"; exit 1; }
done
node_id=$(openssl x509 -in "$pki/node-a.pem" -noout -ext subjectAltName |
	sed -n 's/.*URI:\(spiffe:[^, ]*\).*/\1/p')
[ -n "$node_id" ] || { nok "certificates: node-a.pem has no URI SAN"; exit 1; }
# Some other id of the same fleet, for the refusal cases.
other_id=${node_id%/node/*}/node/node-b
if [ -s "$pki/node-b.pem" ]; then
	badcert=(--cert "$pki/node-b.pem" --key "$pki/node-b.key")
else
	badcert=(--cert "$pki/node-a.pem" --key "$pki/node-a.key")
fi
echo "# node-a is $node_id"

server_args=(--ca "$pki/ca.pem" --cert "$pki/node-a.pem" --key "$pki/node-a.key"
	--crl "$pki/crl.pem" --allow controller)
client_tls=(--ca "$pki/ca.pem" --cert "$pki/controller.pem" --key "$pki/controller.key")

# start_server NAME CMD...: start CMD serve in the background, wait (bounded) for its
# "listening PORT"; sets srv_pid and srv_port (empty if it never said so).
start_server() {
	local name=$1
	shift
	setsid "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null &
	srv_pid=$!
	pids+=("$srv_pid")
	srv_port=
	for _ in $(seq 200); do
		srv_port=$(sed -n 's/^listening \([0-9][0-9]*\)$/\1/p' "$tmp/$name.out" | head -1)
		[ -n "$srv_port" ] && return 0
		kill -0 "$srv_pid" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}

# expect_msgs data STRING | x N | stream N: the "msg" lines a correct client prints.
expect_msgs() {
	"$PY" - "$@" <<-'EOF'
		import hashlib, os, sys
		kind, arg = sys.argv[1], sys.argv[2]
		if kind == "data":
		    msgs = [os.fsencode(arg)]
		elif kind == "x":
		    msgs = [b"x" * int(arg)]
		else:
		    msgs = [str(i).encode() for i in range(int(arg))]
		for m in msgs:
		    print("msg %d %s" % (len(m), hashlib.sha256(m).hexdigest()))
	EOF
}

# call CLIENT-ARRAY-NAME PORT ARGS...: one client call, output in $tmp/out, $tmp/err;
# sets took_ms and call_rc.
call() {
	local -n cl=$1
	local port=$2 t0
	shift 2
	t0=$(date +%s%N)
	timeout 60 "${cl[@]}" call --target "127.0.0.1:$port" "$@" >"$tmp/out" 2>"$tmp/err"
	call_rc=$?
	took_ms=$((($(date +%s%N) - t0) / 1000000))
}

# verify NAME WANT-CODE [WANT-DETAILS|-] [WANT-MSGS-FILE|-|none]: judge the last call.
# WANT-DETAILS "-": any; WANT-MSGS "-": any, "none": no message lines at all.
verify() {
	local name=$1 code=$2 details=${3:--} msgs=${4:--} last got why=
	last=$(tail -n 1 "$tmp/out")
	got=$(sed -n 's/^status \([0-9][0-9]*\).*/\1/p' <<<"$last")
	grep '^msg ' "$tmp/out" >"$tmp/got_msgs"
	if [ "$call_rc" != 0 ]; then
		why="client exited $call_rc"
	elif [ -z "$got" ]; then
		why="no status line at the end"
	elif [ "$got" != "$code" ]; then
		why="status $got, want $code"
	elif [ "$details" != - ] && [ "$last" != "status $code $details" ]; then
		why="details differ"
	elif [ "$msgs" = none ] && [ -s "$tmp/got_msgs" ]; then
		why="$(wc -l <"$tmp/got_msgs") messages, want none"
	elif [ "$msgs" != - ] && [ "$msgs" != none ] && ! cmp -s "$msgs" "$tmp/got_msgs"; then
		why="messages differ ($(wc -l <"$tmp/got_msgs") got, $(wc -l <"$msgs") wanted)"
	fi
	if [ -z "$why" ]; then
		ok "$name"
		return 0
	fi
	nok "$name: $why"
	if [ "$msgs" != - ] && [ "$msgs" != none ]; then
		diff "$msgs" "$tmp/got_msgs" | head -6 | sed 's/^/#   diff: /'
	fi
	[ "$details" != - ] && printf '#   want: status %s %s\n' "$code" "$details"
	tail -n 3 "$tmp/out" | cut -c1-300 | sed 's/^/#   out: /'
	grep -v -e '^\s*$' -e 'No match found for server name' "$tmp/err" | tail -n 8 | cut -c1-300 | sed 's/^/#   err: /'
	return 1
}

nonascii="Überprüfung fehlgeschlagen ✗"
expect_msgs data hello >"$tmp/m_hello"
expect_msgs x 1048576 >"$tmp/m_1m"
expect_msgs stream 1000 >"$tmp/m_stream"
expect_msgs x 4194304 >"$tmp/m_4m"
expect_msgs data "done" >"$tmp/m_done"
M=/pharos.test.Echo

# The unary, streaming, deadline and error cases, the same both ways.
common() { # PREFIX CLIENT-ARRAY-NAME PORT
	local p=$1 cl=$2 port=$3
	call "$cl" "$port" "${client_tls[@]}" --expect-id "$node_id" --method $M/Echo --data hello
	verify "$p: Echo 5 bytes" 0 - "$tmp/m_hello"
	call "$cl" "$port" "${client_tls[@]}" --expect-id "$node_id" --method $M/Echo --size 1048576
	verify "$p: Echo 1 MiB" 0 - "$tmp/m_1m"
	call "$cl" "$port" "${client_tls[@]}" --expect-id "$node_id" --method $M/Stream --data 1000 \
	    --stream
	verify "$p: Stream 1000 in order" 0 - "$tmp/m_stream"
	call "$cl" "$port" "${client_tls[@]}" --expect-id "$node_id" --method $M/Sleep --data 2000 \
	    --timeout 0.3
	if verify "$p: deadline exceeded" 4 - none && [ "$took_ms" -ge 1500 ]; then
		nok "$p: deadline exceeded: took $took_ms ms for a 300 ms deadline"
	fi
	call "$cl" "$port" "${client_tls[@]}" --expect-id "$node_id" --method $M/Fail \
	    --data "9:$nonascii"
	verify "$p: Fail 9 non-ASCII details" 9 "$nonascii" none
}

# --- grpcio client -> our server ---
if ! have "${srv_ours[0]}"; then
	skip_all "$A" "${srv_ours[0]} missing" "${CASES_A[@]}"
elif ! start_server srv_a "${srv_ours[@]}" serve --listen 127.0.0.1:0 "${server_args[@]}"; then
	nok "$A: server did not say 'listening PORT' within 20 s"
	sed 's/^/#   /' "$tmp/srv_a.out" "$tmp/srv_a.err" | head -20
else
	pa=$srv_port pid_a=$srv_pid
	common "$A" pypeer "$pa"
	call pypeer "$pa" "${client_tls[@]}" --expect-id "$node_id" --method $M/Echo --size 4194304
	verify "$A: Echo 4194304 bytes OK" 0 - "$tmp/m_4m"
	call pypeer "$pa" "${client_tls[@]}" --expect-id "$node_id" --method $M/Echo --size 4194305
	verify "$A: Echo 4194305 bytes -> 8" 8 - none
	call pypeer "$pa" "${client_tls[@]}" --expect-id "$node_id" --method $M/Size --data 4194305
	verify "$A: Size 4194305 -> 8" 8 - none
	# Any identity but the controller is refused: in the handshake or as a gRPC status.
	call pypeer "$pa" --ca "$pki/ca.pem" "${badcert[@]}" --expect-id "$node_id" \
	    --method $M/Echo --data hello
	if [ "$call_rc" = 0 ] && grep -qE '^status (7|14|16)( |$)' "$tmp/out" &&
	    ! grep -q '^msg ' "$tmp/out"; then
		ok "$A: node-b as client refused"
	else
		nok "$A: node-b as client refused: rc $call_rc, $(tail -n 1 "$tmp/out")"
	fi
	call pypeer "$pa" "${client_tls[@]}" --expect-id "$node_id" --method $M/Sleep --data 1
	verify "$A: still serving" 0 - "$tmp/m_done"
	kill -TERM "$pid_a" 2>/dev/null
	stop_wait "$pid_a"
	if [ "$stop_rc" = 0 ] && ! grep -qE 'ERROR: (Address|Leak|Undefined|Thread)Sanitizer|runtime error:' \
	    "$tmp/srv_a.err"; then
		ok "$A: clean exit on SIGTERM"
	else
		nok "$A: clean exit on SIGTERM: exit $stop_rc"
		grep -v -e '^\s*$' -e 'No match found for server name' "$tmp/srv_a.err" | tail -n 20 | cut -c1-300 | sed 's/^/#   /'
	fi
fi

# --- our client -> grpcio server ---
if ! have "${cli_ours[0]}"; then
	skip_all "$B" "${cli_ours[0]} missing" "${CASES_B[@]}"
elif ! start_server srv_b "${pypeer[@]}" serve --listen 127.0.0.1:0 "${server_args[@]}"; then
	nok "$B: grpcio server did not start"
	sed 's/^/#   /' "$tmp/srv_b.out" "$tmp/srv_b.err" | head -20
else
	pb=$srv_port
	common "$B" cli_ours "$pb"
	call cli_ours "$pb" "${client_tls[@]}" --expect-id "$node_id" --method $M/Size --data 4194304
	verify "$B: Size 4194304 OK" 0 - "$tmp/m_4m"
	call cli_ours "$pb" "${client_tls[@]}" --expect-id "$node_id" --method $M/Size --data 4194305
	verify "$B: Size 4194305 -> 8 (server send limit)" 8 - none
	# A grpcio server that does not limit what it sends: our client's limit must hold.
	if start_server srv_b2 "${pypeer[@]}" serve --listen 127.0.0.1:0 --max-send -1 \
	    "${server_args[@]}"; then
		call cli_ours "$srv_port" "${client_tls[@]}" --expect-id "$node_id" --method $M/Size \
		    --data 4194305
		verify "$B: Size 4194305 -> 8 (client receive limit)" 8 - none
	else
		nok "$B: Size 4194305 -> 8 (client receive limit): grpcio server did not start"
	fi
	call cli_ours "$pb" "${client_tls[@]}" --expect-id "$other_id" --method $M/Echo --data hello
	if [ "$call_rc" = 0 ] && grep -qE '^status [0-9]+' "$tmp/out" &&
	    ! grep -qE '^status 0( |$)' "$tmp/out" && ! grep -q '^msg ' "$tmp/out"; then
		ok "$B: wrong --expect-id refused"
	else
		nok "$B: wrong --expect-id refused: rc $call_rc, $(tail -n 1 "$tmp/out")"
	fi
	call cli_ours "$pb" "${client_tls[@]}" --expect-id "$node_id" --method $M/Sleep --data 1
	verify "$B: still serving" 0 - "$tmp/m_done"
fi
exit 0
