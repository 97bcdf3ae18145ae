#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The UAPI client and wgproc/netcfg against real wireguard-go: two network namespaces
# joined by a veth pair (10.199.0.1/24 - 10.199.0.2/24), wireguard-go started in each
# through wgproc (uapi_tool start), configured by diff (uapi_tool apply) with keys from
# `wg genkey`, addressed by netcfg_apply; then a real handshake and ping over the tunnel,
# an idempotent second apply, removing and re-adding the peer, `wg show` agreeing with
# uapi_tool get, the nft masquerade table and a start/stop cycle.
#   tests/agent/uapi_netns.sh [BUILD]
set -u
cd "$(dirname "$0")/../.." || exit 2
build=$(realpath "${1:-build}")
TAG=$(basename "$build")
. tests/lib/tap.sh
if [ "$(id -u)" != 0 ] || [ ! -c /dev/net/tun ] || ! command -v wireguard-go >/dev/null ||
    ! command -v wg >/dev/null; then
	echo "skip - uapi netns: needs root and /dev/net/tun (and wireguard-go, wg)"
	exit 0
fi
tool=$build/tools/uapi_tool
tmp=$(mktemp -d)
OUT=$tmp/out
ERR=$tmp/err
# Names unique per run: /var/run/wireguard is shared by every namespace.
id=$$
nsa=pht-a$id nsb=pht-b$id
ifa=phta$id ifb=phtb$id ifc=phtc$id
rundir=/var/run/wireguard
socka=$rundir/$ifa.sock sockb=$rundir/$ifb.sock
pids=()

cleanup() {
	local p i
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do
		for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
		kill -9 "$p" 2>/dev/null
	done
	ip netns exec "$nsa" nft delete table inet pharos 2>/dev/null
	ip netns del "$nsa" 2>/dev/null
	ip netns del "$nsb" 2>/dev/null
	rm -f "$socka" "$sockb" "$rundir/$ifc.sock"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ina() { ip netns exec "$nsa" "$@"; }
inb() { ip netns exec "$nsb" "$@"; }

ip netns add "$nsa" && ip netns add "$nsb" &&
    ip link add "va$id" type veth peer name "vb$id" &&
    ip link set "va$id" netns "$nsa" && ip link set "vb$id" netns "$nsb" &&
    ip -n "$nsa" addr add 10.199.0.1/24 dev "va$id" && ip -n "$nsa" link set "va$id" up &&
    ip -n "$nsb" addr add 10.199.0.2/24 dev "vb$id" && ip -n "$nsb" link set "vb$id" up &&
    ip -n "$nsa" link set lo up && ip -n "$nsb" link set lo up ||
    { nok "namespaces and veth"; exit 1; }
ok "namespaces $nsa, $nsb and a veth pair"

pa=$(ina "$tool" start wireguard-go "$ifa" "$tmp/a.log" "$socka" 2>"$ERR") &&
    pids+=("$pa") && ok "wgproc start wireguard-go in $nsa (pid $pa)" ||
    { nok "wgproc start in $nsa"; sed 's/^/#   /' "$ERR" "$tmp/a.log"; exit 1; }
pb=$(inb "$tool" start wireguard-go "$ifb" "$tmp/b.log" "$sockb" 2>"$ERR") &&
    pids+=("$pb") && ok "wgproc start wireguard-go in $nsb (pid $pb)" ||
    { nok "wgproc start in $nsb"; sed 's/^/#   /' "$ERR" "$tmp/b.log"; exit 1; }
check "the TUN is in $nsa" ip -n "$nsa" link show "$ifa" >/dev/null

ka=$(wg genkey) kb=$(wg genkey)
pka=$(echo "$ka" | wg pubkey) pkb=$(echo "$kb" | wg pubkey)
cat >"$tmp/a.conf" <<EOF
# side a
private_key=$ka
listen_port=51820
peer=$pkb allowed=10.200.0.2/32 endpoint=10.199.0.2:51821
EOF
cat >"$tmp/b.conf" <<EOF
private_key=$kb
listen_port=51821
peer=$pka allowed=10.200.0.1/32,10.201.0.0/16 endpoint=10.199.0.1:51820 keepalive=0
EOF
grep -v '^peer=' "$tmp/a.conf" >"$tmp/a-nopeer.conf"

expect_rc "apply a" 0 "$tool" apply "$socka" "$tmp/a.conf"
hexb=$(echo "$pkb" | base64 -d | od -An -tx1 | tr -d ' \n')
printf 'private_key=(hidden)\nlisten_port=51820\npublic_key=%s\nendpoint=10.199.0.2:51821\nallowed_ip=10.200.0.2/32\n' \
    "$hexb" >"$tmp/want"
check "apply a: the body sent is the whole config" cmp -s "$OUT" "$tmp/want"
expect_rc "apply b" 0 "$tool" apply "$sockb" "$tmp/b.conf"
expect_rc "netcfg a: address, MTU, up" 0 ina "$tool" netcfg "$ifa" 1400 up 10.200.0.1/24
expect_rc "netcfg b: address, MTU, up" 0 inb "$tool" netcfg "$ifb" 1400 up 10.200.0.2/24
check "netcfg a: ip shows 10.200.0.1/24, mtu 1400, UP" \
    bash -c "ip -n $nsa addr show dev $ifa | grep -q 'inet 10.200.0.1/24' &&
    ip -n $nsa link show dev $ifa | grep -q 'mtu 1400' &&
    ip -n $nsa link show dev $ifa | grep -q '[<,]UP[,>]'"
expect_rc "netcfg a again: nothing to do" 0 ina "$tool" netcfg "$ifa" 1400 up 10.200.0.1/24
check "netcfg a again: no command run" test ! -s "$ERR"
expect_rc "netcfg a: readdress" 0 ina "$tool" netcfg "$ifa" 1400 up 10.200.0.1/24 fd00:200::1/64
check "netcfg a: one v4 and the v6 address" \
    bash -c "[ \$(ip -n $nsa -4 addr show dev $ifa | grep -c inet) = 1 ] &&
    ip -n $nsa -6 addr show dev $ifa | grep -q 'fd00:200::1/64'"
expect_rc "netcfg a: back to v4 only" 0 ina "$tool" netcfg "$ifa" 1400 up 10.200.0.1/24
check "netcfg a: v6 address removed" \
    bash -c "! ip -n $nsa -6 addr show dev $ifa | grep -q 'fd00:200::1'"

# reach NS ADDR SECS: one probe over the tunnel. ping if installed (iputils-ping is not in
# scripts/deps); else a TCP connect, where "refused" is the RST coming back: reachable.
reach() {
	if command -v ping >/dev/null; then
		ip netns exec "$1" ping -c1 -W"$3" "$2" >/dev/null 2>&1
		return
	fi
	ip netns exec "$1" /usr/bin/python3 -c '
import socket, sys
try:
    socket.create_connection((sys.argv[1], 9), timeout=float(sys.argv[2])).close()
except ConnectionRefusedError:
    pass
except OSError:
    sys.exit(1)' "$2" "$3" 2>/dev/null
}
ping_ok() { # bounded: three tries
	local i
	for i in 1 2 3; do reach "$nsa" 10.200.0.2 2 && return 0; done
	return 1
}
check "ping a -> b over the tunnel" ping_ok
"$tool" get "$socka" >"$tmp/get-a" 2>"$ERR"
check "a: a real handshake (handshake time set)" \
    bash -c "grep '^peer=' '$tmp/get-a' | grep -q 'handshake=[1-9]'"
check "a: rx and tx bytes counted" \
    bash -c "grep '^peer=' '$tmp/get-a' | grep -q 'rx=[1-9][0-9]* tx=[1-9]'"

expect_rc "apply a again" 0 "$tool" apply "$socka" "$tmp/a.conf"
check "apply a again: empty body" test ! -s "$OUT"
expect_rc "apply b again" 0 "$tool" apply "$sockb" "$tmp/b.conf"
check "apply b again: empty body" test ! -s "$OUT"

agree() { # SOCK NS IF: uapi_tool get and wg show dump describe the same device
	local sock=$1 ns=$2 ifn=$3
	"$tool" get "$sock" >"$tmp/g" || return 1
	ip netns exec "$ns" wg show "$ifn" dump >"$tmp/d" || return 1
	[ "$(sed -n 's/^public_key=//p' "$tmp/g")" = "$(awk 'NR==1 {print $2}' "$tmp/d")" ] ||
	    return 1
	[ "$(sed -n 's/^listen_port=//p' "$tmp/g")" = "$(awk 'NR==1 {print $3}' "$tmp/d")" ] ||
	    return 1
	sed -n 's/^peer=\([^ ]*\) endpoint=\([^ ]*\) keepalive=\([^ ]*\) allowed=\([^ ]*\).*/\1 \2 \3 \4/p' \
	    "$tmp/g" | sed 's/ 0 / off /; s/ -$/ (none)/' | sort >"$tmp/g2"
	awk 'NR>1 {print $1, $3, $8, $4}' "$tmp/d" | sort >"$tmp/d2"
	cmp -s "$tmp/g2" "$tmp/d2" || { diff "$tmp/g2" "$tmp/d2" | sed 's/^/#   /'; return 1; }
}
check "wg show in $nsa agrees with uapi_tool get" agree "$socka" "$nsa" "$ifa"
check "wg show in $nsb agrees with uapi_tool get" agree "$sockb" "$nsb" "$ifb"

expect_rc "apply a without the peer" 0 "$tool" apply "$socka" "$tmp/a-nopeer.conf"
printf 'public_key=%s\nremove=true\n' "$hexb" >"$tmp/want"
check "apply a without the peer: just the removal" cmp -s "$OUT" "$tmp/want"
check "ping fails without the peer" eval '! reach "$nsa" 10.200.0.2 1'
check "b's peer untouched by a's change" \
    bash -c "'$tool' get '$sockb' | grep -q '^peer=$pka'"
expect_rc "apply a with the peer again" 0 "$tool" apply "$socka" "$tmp/a.conf"
check "apply a with the peer again: adds only the peer" \
    bash -c "! grep -q -e '^private_key' -e '^listen_port' '$OUT' && grep -q '^public_key=$hexb' '$OUT'"
check "ping works again" ping_ok
check "wg show in $nsa still agrees" agree "$socka" "$nsa" "$ifa"

sed 's/allowed=10.200.0.2\/32/allowed=10.200.0.2\/32,10.202.0.0\/24/' "$tmp/a.conf" >"$tmp/a2.conf"
expect_rc "apply a with one more allowed IP" 0 "$tool" apply "$socka" "$tmp/a2.conf"
check "allowed IPs changed: update_only + replace_allowed_ips" \
    bash -c "grep -qx update_only=true '$OUT' && grep -qx replace_allowed_ips=true '$OUT' &&
    grep -qx allowed_ip=10.202.0.0/24 '$OUT'"
check "ping survives an allowed-IP change (session kept)" ping_ok

expect_rc "forwarding on in $nsa" 0 ina "$tool" forwarding on
check "forwarding on: ip_forward = 1 in $nsa" \
    bash -c "[ \$(ip netns exec $nsa cat /proc/sys/net/ipv4/ip_forward) = 1 ]"
if command -v nft >/dev/null; then
	expect_rc "masquerade on" 0 ina "$tool" masq pharos "$ifa" on
	expect_rc "masquerade on again (idempotent)" 0 ina "$tool" masq pharos "$ifa" on
	check "nft: one masquerade rule for $ifa" \
	    bash -c "[ \$(ip netns exec $nsa nft list table inet pharos | grep -c 'iifname \"$ifa\".*masquerade') = 1 ]"
	expect_rc "masquerade off" 0 ina "$tool" masq pharos "$ifa" off
	check "nft: table gone" bash -c "! ip netns exec $nsa nft list table inet pharos >/dev/null 2>&1"
else
	echo "skip - masquerade: nft not installed"
fi

expect_rc "wgproc start, wait, stop cycle" 0 ina "$tool" cycle wireguard-go "$ifc" "$tmp/c.log" "$rundir/$ifc.sock"
check "cycle: the interface is gone" bash -c "! ip -n $nsa link show $ifc >/dev/null 2>&1"
expect_rc "get on a missing socket fails" 1 "$tool" get "$rundir/$ifc.sock"
expect_rc "start of a missing implementation fails" 1 ina "$tool" start /nonexistent/wg-go x0 "$tmp/x.log" /nonexistent.sock
