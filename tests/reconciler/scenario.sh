#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# cox end to end, on a real fleet in network namespaces (tests/lib/netfleet.sh): the four
# nodes of fleet.example run buoy + wireguard-go, cox drives them, a client namespace runs
# wireguard-go as a device; the fleet changes through the real git CLI.
#   - initial convergence under a one-byte push budget (one push in flight at a time);
#     a device added with git push -> the entry node gets the peer,
#     a real handshake and ping
#   - an invalid revision written straight to the ref (no hook) -> nothing pushed, status
#     shows the errors; a valid push afterwards is applied
#   - kill -9 cox right after a push, restart -> converges, no lost or duplicate peer
#   - a restart with nothing new re-pushes nothing
#   - a peer removed behind buoy's back (wg set) -> the sweep puts it back
#   - a node killed -> unreachable after 3 missed polls; back -> reachable
#   - cox stopped -> the tunnel keeps passing traffic
#   tests/reconciler/scenario.sh [BUILD]    (root, /dev/net/tun, wireguard-go; skips loudly)
set -u
cd "$(dirname "$0")/../.." || exit 2
build=$(realpath "${1:-build}")
TAG=$(basename "$build")
. tests/lib/tap.sh
. tests/lib/netfleet.sh
if [ "$(id -u)" != 0 ] || [ ! -c /dev/net/tun ] || ! command -v wireguard-go >/dev/null; then
	echo "skip - reconciler scenarios: need root, /dev/net/tun and wireguard-go"
	exit 0
fi
nf_init "$build" "s$$"
trap nf_cleanup EXIT
cox=$build/cox
S=$NF_STATE
log=$NF_DIR/logs/cox.log

nf_net || { nok "namespaces"; exit 1; }
check "cox init --from fleet.example" nf_state fleet.example
for i in 1 2 3 4; do
	name=$(sed -n "${i}p" <<<"ams-1
ams-2
fra-1
waw-1")
	nf_node "$name" "$i" || { nok "node $name"; exit 1; }
done
ok "four buoys enrolled with cox nodes add and running"
# The first run pushes under a one-byte budget: one ApplyConfig in flight at a time.
nf_cox --poll 0.5 --sweep 1 --push-budget 1 --log-level debug
check "initial convergence: every node in sync within 30 s" nf_wait_converged 30
one_at_a_time() {
	awk '/push=start/ { if (++n > max) max = n; s++ } /push=(ok|failed)/ { n-- }
	    END { printf "# %d pushes started, at most %d in flight\n", s, max
	    exit !(s >= 4 && max == 1) }' "$log"
}
check "--push-budget 1: the four initial pushes went one at a time" one_at_a_time
check "cox status: 4 nodes in sync" grep -q "4 nodes: 4 in sync, 0 not" "$NF_DIR/status.out"
check "cox listens on nothing but its loopback admin port" bash -c "! ip netns exec $NF_CTL ss -Hltn | awk '{print \$4}' | grep -qv '^127\.0\.0\.1:8440\$'"

# --- a device added with git push ---
git clone -q "$S/fleet.git" "$NF_DIR/clone" || { nok "git clone"; exit 1; }
git -C "$NF_DIR/clone" config user.name "Test Admin"
git -C "$NF_DIR/clone" config user.email "admin@example.com"
(umask 077 && wg genkey >"$NF_DIR/dev.key")
dev_pub=$(wg pubkey <"$NF_DIR/dev.key")
cat >>"$NF_DIR/clone/users/alice.yaml" <<EOT
  - name: scenario
    public_key: "$dev_pub"
    address: "10.80.0.200"
EOT
git -C "$NF_DIR/clone" commit -qam "alice: add device scenario"
check "git push of a new device accepted" git -C "$NF_DIR/clone" push -q origin main
rev=$(git -C "$NF_DIR/clone" rev-parse HEAD)
check "converged on the pushed revision" nf_wait_converged 10
check "status: applied ${rev:0:12}" grep -q "applied ${rev:0:12}" "$NF_DIR/status.out"
ams1_if=pw${NF_TAG}1
ams1_if=${ams1_if:0:15}
ns1=pht-$NF_TAG-n1
check "ams-1's interface has the device as a peer" \
    bash -c "ip netns exec $ns1 wg show $ams1_if peers | grep -qxF '$dev_pub'"
ams1_pub=$(awk '{print $2}' "$NF_DIR/logs/keygen-ams-1.log")
nf_client scenario 1
ip netns exec "$NF_CNS" wg set "$NF_CIF" private-key "$NF_DIR/dev.key" peer "$ams1_pub" \
    endpoint 10.250.0.11:443 allowed-ips 10.80.0.0/16 persistent-keepalive 1
ip -n "$NF_CNS" addr add 10.80.0.200/16 dev "$NF_CIF"
ip -n "$NF_CNS" link set "$NF_CIF" up
ping_within() { # SECONDS
	local end=$((SECONDS + $1))
	while [ $SECONDS -le "$end" ]; do
		ip netns exec "$NF_CNS" ping -c 1 -W 1 10.80.0.1 >/dev/null 2>&1 && return 0
	done
	return 1
}
check "a real handshake and ping through ams-1" ping_within 10
check "cox logged the handshake event" bash -c "for i in \$(seq 50); do grep -q 'node=ams-1 event=handshake-up' $log && exit 0; sleep 0.1; done; exit 1"

# --- an invalid revision written straight to the ref ---
pushes_before=$(grep -c 'push=ok' "$log")
git -C "$NF_DIR/clone" checkout -q -b broken
printf 'network:\n  mtu: "big"\n' >>"$NF_DIR/clone/fleet.yaml"
git -C "$NF_DIR/clone" commit -qam "broken fleet.yaml"
git -C "$NF_DIR/clone" push -q origin broken:proposals/broken
bad=$(git -C "$NF_DIR/clone" rev-parse HEAD)
git -C "$S/fleet.git" update-ref refs/heads/main "$bad"
for _ in $(seq 100); do grep -q "revision refused rev=${bad:0:12}" "$log" && break; sleep 0.05; done
check "the invalid revision is refused" grep -q "revision refused rev=${bad:0:12}" "$log"
"$cox" status "$S" >"$NF_DIR/st.out" 2>&1
rc=$?
check "cox status exits 1 and shows the errors with path:line:col" \
    bash -c "[ $rc = 1 ] && grep -q 'INVALID revision ${bad:0:12}' $NF_DIR/st.out && grep -q 'fleet.yaml:[0-9]*:[0-9]*: error' $NF_DIR/st.out"
check "cox status --json: valid false" bash -c "'$cox' status '$S' --json | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d[\"valid\"] is False and d[\"applied_revision\"] == \"$rev\" else 1)'"
sleep 1
check "nothing was pushed for it" test "$(grep -c 'push=ok' "$log")" = "$pushes_before"
check "ams-1 still runs ${rev:0:12} with the device" \
    bash -c "ip netns exec $ns1 wg show $ams1_if peers | grep -qxF '$dev_pub'"
git -C "$NF_DIR/clone" checkout -q main
git -C "$S/fleet.git" update-ref refs/heads/main "$rev"

# --- kill -9 cox right after a push; restart ---
dev2_pub=$(wg genkey | wg pubkey)
cat >>"$NF_DIR/clone/users/bob.yaml" <<EOT
  - name: tablet
    public_key: "$dev2_pub"
EOT
git -C "$NF_DIR/clone" commit -qam "bob: add a tablet"
# ams-1's buoy is frozen, so cox's ApplyConfig to it is in flight when cox is killed;
# the frozen buoy then takes the request cox never hears the answer to.
kill -STOP "$NF_BUOY_1"
git -C "$NF_DIR/clone" push -q origin main
rev2=$(git -C "$NF_DIR/clone" rev-parse HEAD)
for _ in $(seq 100); do grep -q "revision applied rev=${rev2:0:12}" "$log" && break; sleep 0.05; done
sleep 0.3
check "the push to ams-1 is in flight (not confirmed) when cox is killed" \
    bash -c "! grep -q 'node=ams-1 push=ok rev=${rev2:0:12}' $log"
kill -9 "$NF_COX_PID"
wait "$NF_COX_PID" 2>/dev/null
kill -CONT "$NF_BUOY_1"
echo "--- restart after kill -9 ---" >>"$log"
nf_cox --poll 0.5 --sweep 1
check "after kill -9 and restart: converged on ${rev2:0:12}" nf_wait_converged 20
check "status: applied ${rev2:0:12}" grep -q "applied ${rev2:0:12}" "$NF_DIR/status.out"
peers=$(ip netns exec "$ns1" wg show "$ams1_if" peers)
check "ams-1 has bob's tablet once and the scenario device once" \
    bash -c "[ \$(grep -cxF '$dev2_pub' <<<'$peers') = 1 ] && [ \$(grep -cxF '$dev_pub' <<<'$peers') = 1 ]"
n_ams1=$(grep -c . <<<"$peers")
check "ams-1 has no duplicate peers ($n_ams1 peers)" test "$(sort -u <<<"$peers" | grep -c .)" = "$n_ams1"

# --- a restart with nothing new pushes nothing ---
kill "$NF_COX_PID"
wait "$NF_COX_PID" 2>/dev/null
echo "--- restart, nothing new ---" >>"$log"
mark=$(wc -l <"$log")
nf_cox --poll 0.5 --sweep 1
nf_wait_converged 20
sleep 1
check "restart with nothing new: in sync, no push" \
    bash -c "tail -n +$mark $log | grep -q 'revision converged' && ! tail -n +$mark $log | grep -q 'push=ok'"

# --- drift: a peer removed behind buoy's back ---
ip netns exec "$ns1" wg set "$ams1_if" peer "$dev_pub" remove
fixed() {
	for _ in $(seq 100); do
		ip netns exec "$ns1" wg show "$ams1_if" peers | grep -qxF "$dev_pub" && return 0
		sleep 0.1
	done
	return 1
}
check "drift: the sweep puts the removed peer back" fixed
check "drift: logged" grep -q "node=ams-1 drift" "$log"
check "ping works again after the drift fix" ping_within 25

# --- a node killed: unreachable; back: reachable ---
kill -9 "$NF_BUOY_4"
unreach() {
	for _ in $(seq 100); do
		"$cox" status "$S" | grep -q '^waw-1 *unreachable' && return 0
		sleep 0.1
	done
	return 1
}
check "waw-1 killed: unreachable after 3 missed polls" unreach
nf_start_buoy waw-1 4
check "waw-1 back: the fleet converges again" nf_wait_converged 20

# --- cox stopped: tunnels keep passing traffic ---
kill "$NF_COX_PID"
wait "$NF_COX_PID" 2>/dev/null
NF_COX_PID=
check "cox stopped cleanly" grep -q "signal 15: stopping" "$log"
check "with cox stopped the tunnel still passes traffic" ping_within 5
check "audit log intact after all that" "$cox" audit verify "$S"
[ -n "${KEEP:-}" ] && cp "$log" /tmp/scenario-cox.log
exit 0
