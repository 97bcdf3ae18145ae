#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Xray run by buoy, against a stand-in xray (tests/agent/fake_xray; Debian 12 has no xray)
# that parses the config it is started with and serves the HandlerService recorder on the
# config's API address, recording every AlterInbound. buoy runs with the 'none' WireGuard
# data plane: this test is about Xray alone and needs no root.
#   before any config: Xray DISABLED, no REALITY key; an xray section with two users ->
#   reality.key (0600) made, xray.json (0600) with that key and the users, Xray started
#   as `run -c xray.json`; GetStatus: the users, a 32-byte REALITY public key matching
#   reality.key, Xray UP; AddPeer/RemovePeer with users -> AlterInbound add/remove live,
#   xray.json rewritten, no restart; a new config changing users -> removal, then
#   addition; kill -9 -> restarted, BACKEND_RESTARTED, every user added again;
#   RestartService(XRAY) -> the same; a failing user change -> one DATA_PLANE_ERROR,
#   DEGRADED, retried; new inbound settings -> restarted with them; buoy SIGTERM -> Xray
#   stays, a new buoy adopts it; no xray section -> Xray stopped, DISABLED. If a real xray
#   is installed, `xray run -test` checks the generated config (else: skip, loudly).
#   tests/agent/xray_buoy.sh [BUILD]
set -u
cd "$(dirname "$0")/../.." || exit 2
build=$(realpath "${1:-build}")
TAG=$(basename "$build")	# read by tests/lib/tap.sh
export TAG
# shellcheck source=tests/lib/tap.sh
. tests/lib/tap.sh
PY=/usr/bin/python3
tmp=$(mktemp -d)
OUT=$tmp/out
ERR=$tmp/err
rec=$tmp/record
s=$tmp/state
p=$tmp/pki
ctl=$build/tools/ctl_push
fake=$PWD/tests/agent/fake_xray
buoy_pid=
pids=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
	[ -n "$buoy_pid" ] && kill -9 "$buoy_pid" 2>/dev/null
	[ -f "$s/xray.pid" ] && pids+=("$(cat "$s/xray.pid")")
	for q in "${pids[@]}"; do kill -9 "$q" 2>/dev/null; done
	[ -n "${KEEP:-}" ] && cp "$tmp/buoy.log" /tmp/xray-buoy.log
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

U1=0b8e6f1a-4c2d-4e5f-9a7b-1c2d3e4f5a6b
U2=6f9619ff-8b86-d011-b42d-00c04fc964ff
U3=11111111-2222-3333-4444-555555555555
U4=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
U5=99999999-8888-7777-6666-555555555555

"$build/tools/pki_fixture" "$p" >/dev/null || { nok "pki_fixture"; exit 1; }
"$build/buoy" keygen --state-dir "$s" >/dev/null
cp "$p/ca.pem" "$s/"
cp "$p/node-a.pem" "$s/node.pem"
install -m 0600 "$p/node-a.key" "$s/node.key"
"$ctl" keygen "$tmp/sign.key" "$s/controller.pub"
api=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
: >"$rec"
: >"$tmp/buoy.log"

expect_rc "--xray naming no binary: exit 2" 2 "$build/buoy" run --state-dir "$s" \
    --listen 127.0.0.1:0 --dataplane none --xray "$tmp/no-such-xray"
check "--xray naming no binary: says so" grep -q "no-such-xray" "$ERR"

start_buoy() {
	local seen
	seen=$(wc -l <"$tmp/buoy.log")
	FAKE_XRAY_RECORD=$rec FAKE_XRAY_FAIL=bad@x "$build/buoy" run --state-dir "$s" \
	    --listen 127.0.0.1:0 --dataplane none --xray "$fake" --xray-api "127.0.0.1:$api" \
	    2>>"$tmp/buoy.log" &
	buoy_pid=$!
	port=
	for _ in $(seq 100); do
		port=$(tail -n +"$((seen + 1))" "$tmp/buoy.log" | grep -o 'listen=127.0.0.1:[0-9]*' | cut -d: -f2)
		[ -n "$port" ] && break
		sleep 0.05
	done
	if [ -z "$port" ]; then
		nok "buoy did not start"; tail -5 "$tmp/buoy.log" | sed 's/^/#   /'
		exit 1
	fi
	CONN=(--target "127.0.0.1:$port" --ca "$p/ca.pem" --cert "$p/controller.pem" --key "$p/controller.key")
}
SIGN=(--sign-key "$tmp/sign.key" --fleet alpha --node node-a)
push() { # SERIAL args...
	local n=$1
	shift
	"$ctl" apply "${CONN[@]}" "${SIGN[@]}" --revision "r$n" --serial "$n" "$@"
}
delta() { # add-peer|remove-peer BASE SERIAL args...
	local cmd=$1 b=$2 n=$3
	shift 3
	"$ctl" "$cmd" "${CONN[@]}" "${SIGN[@]}" --revision "d$n" --base-serial "$b" --serial "$n" "$@"
}
status() { "$ctl" status "${CONN[@]}"; }
# within SECONDS CMD...: true as soon as CMD is.
within() {
	local end=$((SECONDS + $1))
	shift
	while [ $SECONDS -le "$end" ]; do "$@" && return 0; sleep 0.1; done
	return 1
}
has() { [[ "$1" == *"$2"* ]]; }
one() { echo "$1" | tr '\n' ' ' | cut -c1-"${2:-60}"; }	# for a test name
xpid() { cat "$s/xray.pid" 2>/dev/null; }
recorded() { grep -q -- "$1" "$rec"; }
xray_state() { status | grep '^backend 2 ' | grep -o 'state=[0-9]*'; }
state_is() { [ "$(xray_state)" = "state=$1" ]; }
clients() { "$PY" -c 'import json, sys; c = json.load(open(sys.argv[1])); print(" ".join(u["email"] for u in c["inbounds"][0]["settings"]["clients"]))' "$s/xray.json"; }

start_buoy
st=$(status)
check "before any config: Xray DISABLED, no REALITY key ($(one "$st" 200 | grep -o 'backend 2.*'))" \
    bash -c "[[ '$(echo "$st" | grep '^backend 2')' == *'state=4'* && '$st' == *'reality=-'* ]]"
check "before any config: no reality.key, no xray.json" test ! -e "$s/reality.key" -a ! -e "$s/xray.json"
"$ctl" watch "${CONN[@]}" --timeout 120 >"$tmp/events" 2>/dev/null &
watch_pid=$!
pids+=("$watch_pid")
sleep 0.3

out=$(push 1 --xray-port 8443 --user "$U1=a@x" --user "$U2=b@x")
check "an xray section with two users: applied, users +2 ($(one "$out" 200 | grep -o 'users=[^ ]*'))" \
    has "$out" "applied result=1 serial=1"
check "users=+2/-0 in the answer" has "$out" "users=+2/-0"
within 5 grep -q "fake_xray: pid=" "$s/xray.log"
pid1=$(xpid)
pids+=("$pid1")
check "Xray started (pid $pid1) as \`run -c $s/xray.json\`" \
    bash -c "tr '\\0' ' ' </proc/$pid1/cmdline | grep -q 'fake_xray run -c $s/xray.json'"
check "reality.key made, mode 0600" test "$(stat -c %a "$s/reality.key")" = 600
check "reality.key: 43 characters of base64url" grep -Eqx '[A-Za-z0-9_-]{43}' "$s/reality.key"
check "xray.json written, mode 0600" test "$(stat -c %a "$s/xray.json")" = 600
check "xray.json: the REALITY private key from reality.key, port 8443, the API, both users" "$PY" -c '
import json, sys
c = json.load(open(sys.argv[1]))
key = open(sys.argv[2]).read().strip()
i = c["inbounds"][0]
assert i["streamSettings"]["realitySettings"]["privateKey"] == key
assert i["port"] == 8443 and c["api"]["listen"] == "127.0.0.1:" + sys.argv[3]
assert [(u["id"], u["email"]) for u in i["settings"]["clients"]] == [(sys.argv[4], "a@x"), (sys.argv[5], "b@x")]
' "$s/xray.json" "$s/reality.key" "$api" "$U1" "$U2"
check "the fake read both users from the file" grep -q "pid=$pid1 config=$s/xray.json users=2" "$s/xray.log"
pub=$("$build/tools/xray_tool" public "$(cat "$s/reality.key")" | awk '{print $2}')
within 5 state_is 1
st=$(status)
check "GetStatus: 2 VLESS users, Xray UP ($(echo "$st" | grep '^backend 2' | cut -c1-40))" \
    bash -c "[[ '$st' == *'users=2 '* && '$(echo "$st" | grep '^backend 2')' == *'state=1'* ]]"
check "GetStatus: reality_public_key is 32 bytes matching reality.key ($pub)" \
    has "$st" "reality=$pub"
check "the private key appears in no answer or log" \
    bash -c "! grep -qF -e '$(cat "$s/reality.key")' '$tmp/buoy.log' '$tmp/events' '$s/xray.log'"
check "no AlterInbound at the first start (the users came from the file)" test ! -s "$rec"

out=$(delta add-peer 1 2 --user "$U3=c@x")
check "AddPeer with a user: applied ($(one "$out" 90))" has "$out" "users +1/-0"
check "AddPeer: AlterInbound add c@x, live (same pid)" within 5 recorded "add c@x $U3 xtls-rprx-vision pid=$pid1"
check "AddPeer: xray.json lists a@x b@x c@x" test "$(clients)" = "a@x b@x c@x"
out=$(delta remove-peer 2 3 --remove-user a@x)
check "RemovePeer with a user: applied ($(one "$out" 90))" has "$out" "users +0/-1"
check "RemovePeer: AlterInbound remove a@x, live" within 5 recorded "remove a@x pid=$pid1"
check "RemovePeer: xray.json lists b@x c@x" test "$(clients)" = "b@x c@x"
within 5 bash -c "[[ \"\$('$ctl' status ${CONN[*]})\" == *'users=2 '* ]]"

out=$(push 4 --xray-port 8443 --user "$U2=b@x" --user "$U4=d@x")
check "a new config, c@x out and d@x in: users +1/-1 ($(one "$out" 200 | grep -o 'users=[^ ]*'))" \
    has "$out" "users=+1/-1"
check "new config: remove c@x, then add d@x" within 5 bash -c "recorded() { grep -q -- \"\$1\" '$rec'; };
    recorded 'add d@x $U4 xtls-rprx-vision pid=$pid1' && [ \$(grep -n 'remove c@x' '$rec' | cut -d: -f1) -lt \$(grep -n 'add d@x' '$rec' | cut -d: -f1) ]"
check "new config, same inbound settings: Xray not restarted" test "$(xpid)" = "$pid1"

n=$(wc -l <"$rec")
kill -9 "$pid1"
check "kill -9: buoy starts Xray again" within 5 bash -c "[ -n \"\$(cat '$s/xray.pid')\" ] && [ \"\$(cat '$s/xray.pid')\" != '$pid1' ]"
pid2=$(xpid)
pids+=("$pid2")
check "kill -9: every user added again through the API (b@x, d@x to pid $pid2)" within 5 bash -c "
    tail -n +$((n + 1)) '$rec' | grep -q 'add b@x $U2 xtls-rprx-vision pid=$pid2' &&
    tail -n +$((n + 1)) '$rec' | grep -q 'add d@x $U4 xtls-rprx-vision pid=$pid2'"
check "kill -9: BACKEND_RESTARTED for Xray" within 3 grep -q 'kind=5 backend=2 xray killed by signal 9' "$tmp/events"
check "kill -9: GetStatus counts the restart, Xray UP again" within 5 bash -c "[[ \"\$('$ctl' status ${CONN[*]} | grep '^backend 2')\" == *'state=1 restarts=1'* ]]"

n=$(wc -l <"$rec")
out=$("$ctl" restart "${CONN[@]}" --backend xray --reason "test restart")
check "RestartService(XRAY): OK ($(one "$out"))" has "$out" "status 0"
pid3=$(xpid)
pids+=("$pid3")
check "RestartService(XRAY): a new process ($pid2 -> $pid3)" test "$pid3" != "$pid2"
check "RestartService(XRAY): every user added again" within 5 bash -c "
    tail -n +$((n + 1)) '$rec' | grep -q 'add b@x .* pid=$pid3' && tail -n +$((n + 1)) '$rec' | grep -q 'add d@x .* pid=$pid3'"
check "RestartService(XRAY): logged with the reason" grep -q 'xray: restarting pid=.*RestartService: test restart' "$tmp/buoy.log"

out=$(delta add-peer 4 5 --user "$U5=bad@x")
check "a user Xray refuses: the delta is still applied ($(one "$out" 90))" has "$out" "peers serial=5"
check "refused user: DATA_PLANE_ERROR for Xray with its message" \
    within 5 grep -q 'kind=4 backend=2 AlterInbound add user bad@x: boom' "$tmp/events"
check "refused user: Xray DEGRADED in GetStatus" within 3 state_is 2
check "refused user: retried every second" within 5 bash -c "[ \$(grep -c 'add bad@x' '$rec') -ge 3 ]"
check "refused user: one event, not one per retry" test "$(grep -c 'kind=4 backend=2 AlterInbound add user bad@x' "$tmp/events")" = 1
delta remove-peer 5 6 --remove-user bad@x >/dev/null
check "the refused user removed: Xray UP again" within 5 state_is 1

out=$(push 7 --xray-port 9443 --user "$U2=b@x" --user "$U4=d@x")
check "new inbound settings (port 9443): applied" has "$out" "applied result=1 serial=7"
pid4=$(xpid)
pids+=("$pid4")
check "new inbound settings: Xray restarted ($pid3 -> $pid4) with them" \
    bash -c "[ '$pid4' != '$pid3' ] && grep -q '\"port\": 9443' '$s/xray.json'"
check "new inbound settings: BACKEND_RESTARTED says why" within 3 grep -q 'kind=5 backend=2 the inbound.s settings changed' "$tmp/events"

if command -v xray >/dev/null; then
	check "real xray: \`xray run -test\` accepts the generated config" \
	    bash -c "xray run -test -c '$s/xray.json' >'$tmp/xray-test.out' 2>&1"
else
	echo "skip - real xray: not installed, so \`xray run -test\` of the generated config was not run"
fi
check "fake_xray -test accepts the generated config too" \
    bash -c "'$fake' run -test -c '$s/xray.json' | grep -qx 'Configuration OK.'"

kill "$watch_pid" 2>/dev/null
kill -TERM "$buoy_pid"; wait "$buoy_pid"
check "buoy SIGTERM: exit 0" test $? = 0
buoy_pid=
check "buoy stopped: Xray keeps running (pid $pid4)" kill -0 "$pid4"
starts=$(grep -c 'xray: started pid' "$tmp/buoy.log")
start_buoy
check "a new buoy adopts the running Xray" within 5 grep -q "xray: adopted the running xray pid=$pid4 users=2" "$tmp/buoy.log"
check "adopted: no second Xray started" test "$(grep -c 'xray: started pid' "$tmp/buoy.log")" = "$starts"
check "adopted: GetStatus shows it UP with 2 users" within 5 bash -c "[[ \"\$('$ctl' status ${CONN[*]})\" == *'users=2 '* ]] && [[ \"\$('$ctl' status ${CONN[*]} | grep '^backend 2')\" == *'state=1'* ]]"

out=$(push 8)
check "a config without an xray section: applied ($(one "$out" 40))" has "$out" "applied result=1 serial=8"
check "no xray section: Xray stopped" within 5 bash -c "! kill -0 $pid4 2>/dev/null"
st=$(status | grep '^backend 2')
check "no xray section: DISABLED, saying why ($(one "$st" 80))" has "$st" "state=4 restarts=0 detail=the config has no xray section"
check "no xray section: xray.pid removed, reality.key kept" test ! -e "$s/xray.pid" -a -e "$s/reality.key"
kill -TERM "$buoy_pid"; wait "$buoy_pid"
buoy_pid=
