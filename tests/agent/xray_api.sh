#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# buoy's Xray API client (agent/xray.c through build/tools/xray_tool) against a recording
# HandlerService on python3-grpcio (tests/agent/xray_recorder.py; Debian 12 has no xray):
# AlterInbound over cleartext h2c, the recorded request bytes decoded field by field (tag,
# operation type, email, id, flow, level omitted), Xray's "already exists" / "not found"
# answers coming back as status 2 with the message, resync counting "already exists" as
# success, bad input refused before anything is sent, a dead API giving up at the deadline;
# then `config` output parsed as JSON and `keypair` output shaped like `xray x25519`.
#   tests/agent/xray_api.sh [BUILD]
set -u
cd "$(dirname "$0")/../.." || exit 2
build=$(realpath "${1:-build}")
TAG=$(basename "$build")
# shellcheck source=tests/lib/tap.sh
. tests/lib/tap.sh
PY=/usr/bin/python3
tool=$build/tools/xray_tool
tmp=$(mktemp -d)
OUT=$tmp/out
ERR=$tmp/err
rec=$tmp/record
pid=

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

U1=0b8e6f1a-4c2d-4e5f-9a7b-1c2d3e4f5a6b
U2=6f9619ff-8b86-d011-b42d-00c04fc964ff
VISION=xtls-rprx-vision

: >"$rec"
"$PY" tests/agent/xray_recorder.py "$rec" >"$tmp/srv.out" 2>"$tmp/srv.err" &
pid=$!
port=
for _ in $(seq 100); do
	port=$(awk '/^listening/ {print $2}' "$tmp/srv.out")
	[ -n "$port" ] && break
	sleep 0.1
done
if [ -z "$port" ]; then
	nok "recorder started"
	sed 's/^/#   /' "$tmp/srv.err"
	exit 1
fi
ok "recorder listening on 127.0.0.1:$port (h2c)"
api=127.0.0.1:$port

# status_is NAME WANT-LINE: the tool's last output line.
status_is() {
	local got
	got=$(tail -1 "$OUT")
	if [ "$got" = "$2" ]; then ok "$1"; else nok "$1: got '$got', want '$2'"; sed 's/^/#   /' "$ERR" | head -10; fi
}
# line N: the Nth recorded request, decoded to JSON.
decoded() { "$PY" tests/agent/xray_recorder.py decode "$(sed -n "${1}p" "$rec")"; }
# field_is NAME N KEY WANT: a key of the Nth request's decoding.
field_is() {
	local got
	got=$(decoded "$2" | "$PY" -c "import json,sys; print(json.dumps(json.load(sys.stdin).get('$3')))")
	if [ "$got" = "$4" ]; then ok "$1"; else nok "$1: $3 is $got, want $4"; fi
}

expect_rc "add a@x" 0 "$tool" add "$api" vless-in "$U1" a@x "$VISION"
status_is "add a@x: status 0" "status 0"
check "one request recorded" test "$(wc -l <"$rec")" = 1
field_is "add: tag vless-in" 1 tag '"vless-in"'
field_is "add: TypedMessage type AddUserOperation" 1 type '"xray.app.proxyman.command.AddUserOperation"'
field_is "add: account type xray.proxy.vless.Account" 1 account_type '"xray.proxy.vless.Account"'
field_is "add: email" 1 email '"a@x"'
field_is "add: id" 1 id "\"$U1\""
field_is "add: flow" 1 flow "\"$VISION\""
field_is "add: level 0 (omitted, as Go encodes it)" 1 level 0
field_is "add: field numbers request 1,2 / user 2,3 / account 1,2" 1 fields \
    '{"account": [1, 2], "request": [1, 2], "user": [2, 3]}'
check "add: bytes on the wire = xray_tool encode" test "$(sed -n 1p "$rec")" = \
    "$("$tool" encode add vless-in "$U1" a@x "$VISION")"

expect_rc "add A@X again" 0 "$tool" add "$api" vless-in "$U2" A@X ""
status_is "add A@X again: UNKNOWN, Xray's message" "status 2 User A@X already exists."
field_is "add with empty flow: flow omitted" 2 flow '""'
field_is "add with empty flow: account has field 1 only" 2 fields \
    '{"account": [1], "request": [1, 2], "user": [2, 3]}'

expect_rc "remove A@x" 0 "$tool" remove "$api" vless-in A@x
status_is "remove A@x (case-insensitive): status 0" "status 0"
field_is "remove: tag vless-in" 3 tag '"vless-in"'
field_is "remove: type RemoveUserOperation" 3 type '"xray.app.proxyman.command.RemoveUserOperation"'
field_is "remove: email" 3 email '"A@x"'
expect_rc "remove A@x again" 0 "$tool" remove "$api" vless-in A@x
status_is "remove again: UNKNOWN not found" "status 2 User A@x not found."

expect_rc "add b@x" 0 "$tool" add "$api" vless-in "$U2" b@x "$VISION"
status_is "add b@x: status 0" "status 0"
n=$(wc -l <"$rec")
expect_rc "resync a@x b@x (b exists)" 0 "$tool" resync "$api" vless-in "$VISION" "$U1,a@x" "$U2,b@x"
status_is "resync: already-exists counts as success" "status 0"
check "resync: one request per user" test "$(wc -l <"$rec")" = $((n + 2))
expect_rc "resync with nothing" 0 "$tool" resync "$api" vless-in "$VISION"
status_is "resync with nothing: status 0" "status 0"
expect_rc "remove a@x after resync" 0 "$tool" remove "$api" vless-in a@x
status_is "resync re-added a@x" "status 0"

n=$(wc -l <"$rec")
expect_rc "add with a bad uuid: refused locally" 1 "$tool" add "$api" vless-in not-a-uuid c@x ""
check "bad uuid: message says why" grep -q 'is not a UUID' "$ERR"
expect_rc "add with a bad flow: refused locally" 1 "$tool" add "$api" vless-in "$U1" c@x xtls-rprx-direct
expect_rc "remove with no email: refused locally" 1 "$tool" remove "$api" vless-in ""
check "nothing sent for refused input" test "$(wc -l <"$rec")" = "$n"

kill -TERM "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
pid=
start=$(date +%s%N)
expect_rc "add with the API down" 0 "$tool" add "$api" vless-in "$U1" a@x ""
ms=$((($(date +%s%N) - start) / 1000000))
status_is "API down: DEADLINE_EXCEEDED" "status 4 deadline exceeded (never connected)"
check "API down: gave up after ~5 s ($ms ms)" test "$ms" -ge 4500 -a "$ms" -lt 9000

expect_rc "config" 0 "$tool" config 8443 www.example.com:443 www.example.com,example.com \
    ,0123456789abcdef "$VISION" AAIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eH2A "$U1,a@x" "$U2,b@x"
check "config: JSON with the inbound as asked" "$PY" -c '
import json, sys
c = json.load(open(sys.argv[1]))
i = c["inbounds"][0]
r = i["streamSettings"]["realitySettings"]
assert c["api"] == {"tag": "api", "listen": "127.0.0.1:10085", "services": ["HandlerService"]}
assert (i["tag"], i["port"], i["protocol"]) == ("vless-in", 8443, "vless")
assert i["settings"]["decryption"] == "none"
assert [u["email"] for u in i["settings"]["clients"]] == ["a@x", "b@x"]
assert r["shortIds"] == ["", "0123456789abcdef"] and r["serverNames"] == ["www.example.com", "example.com"]
assert c["outbounds"] == [{"protocol": "freedom", "tag": "direct"}]
' "$OUT"
expect_rc "config with an odd short id" 1 "$tool" config 443 d:443 d abc "" \
    AAIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eH2A
check "odd short id: message says why" grep -q 'short id "abc"' "$ERR"
expect_rc "keypair" 0 "$tool" keypair
check "keypair: PrivateKey and Password, 43 base64url characters each" \
    bash -c "grep -Eq '^PrivateKey: [A-Za-z0-9_-]{43}\$' '$OUT' && grep -Eq '^Password: [A-Za-z0-9_-]{43}\$' '$OUT'"
