# SPDX-License-Identifier: Apache-2.0
#
# A real fleet on this machine, in network namespaces (sourced by scripts/demo and the
# reconciler's scenario tests). Nothing touches the host's own network: a "hub"
# namespace holds a bridge; cox, every buoy and the client each get a namespace with one
# veth on it (10.250.0.0/24). buoys drive wireguard-go; cox dials them over mTLS.
#
#   nf_init BUILD TAG         names and a work folder; TAG keeps parallel runs apart
#   nf_net                    the hub and the controller namespace
#   nf_state FROM             cox init --enterprise DIR --from FROM
#   nf_node NAME IDX          a node namespace, buoy keys, enrolment, buoy started
#   nf_cox [ARGS]             cox run in the controller namespace
#   nf_client NAME IDX        a client namespace running wireguard-go (no config yet)
#   nf_cleanup                kill everything, delete the namespaces and the folder
# Requires root, /dev/net/tun, wireguard-go, ip, wg.

nf_init() {
	NF_BUILD=$(realpath "$1")
	NF_TAG=$2
	NF_DIR=${NF_DIR:-$(mktemp -d "/tmp/pharos-$NF_TAG.XXXXXX")}
	NF_STATE=$NF_DIR/state
	NF_HUB=pht-$NF_TAG-hub
	NF_CTL=pht-$NF_TAG-cox
	NF_NSES=()
	NF_IFS=()
	NF_PIDS=()
	NF_COX_PID=
	mkdir -p "$NF_DIR/logs"
}

# Safe under `set -e` (bench/converge.sh): a step that finds nothing to do must not stop it
# before the hub is gone (NF_CTL is in NF_NSES too, so its second `ip netns del` fails).
nf_cleanup() {
	local ns p i
	[ -n "${NF_COX_PID:-}" ] && { kill "$NF_COX_PID" 2>/dev/null || true; }
	for p in "${NF_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for ns in "${NF_NSES[@]}" "$NF_CTL" "$NF_HUB"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
	for i in "${NF_IFS[@]}"; do rm -f "/var/run/wireguard/$i.sock"; done
	[ -z "${NF_KEEP:-}" ] && rm -rf "$NF_DIR"
	return 0
}

# _nf_link NS ADDR: a veth from namespace NS to the hub's bridge, ADDR/24 on NS's end.
_nf_link() {
	local ns=$1 addr=$2 n=${#NF_NSES[@]}
	local a=pa$NF_TAG$n b=pb$NF_TAG$n
	ip link add "${a:0:15}" netns "$ns" type veth peer name "${b:0:15}" netns "$NF_HUB" || return 1
	ip -n "$NF_HUB" link set "${b:0:15}" master br0 up
	ip -n "$ns" addr add "$addr/24" dev "${a:0:15}"
	ip -n "$ns" link set "${a:0:15}" up
	ip -n "$ns" link set lo up
}

nf_net() {
	ip netns add "$NF_HUB" || return 1
	ip -n "$NF_HUB" link add br0 type bridge
	ip -n "$NF_HUB" link set br0 up
	ip netns add "$NF_CTL" || return 1
	NF_NSES+=("$NF_CTL")
	_nf_link "$NF_CTL" 10.250.0.1
}

nf_state() { # FROM
	NF_FROM=$1
	"$NF_BUILD/cox" init --enterprise "$NF_STATE" --from "$1" >"$NF_DIR/logs/init.log" 2>&1
}

# nf_node NAME IDX [BUOY ARGS...]: node NAME at 10.250.0.(10+IDX), control port 8444.
nf_node() {
	local name=$1 idx=$2 ns=pht-$NF_TAG-n$2 addr=10.250.0.$((10 + $2)) sd=$NF_DIR/node-$1
	local ifn="pw$NF_TAG$2"
	shift 2
	ifn=${ifn:0:15}
	ip netns add "$ns" || return 1
	NF_NSES+=("$ns")
	NF_IFS+=("$ifn")
	_nf_link "$ns" "$addr" || return 1
	"$NF_BUILD/buoy" keygen --state-dir "$sd" >"$NF_DIR/logs/keygen-$name.log" || return 1
	"$NF_BUILD/buoy" csr --state-dir "$sd" --fleet "$(nf_fleet_id)" --name "$name" \
	    >"$NF_DIR/$name.csr" || return 1
	"$NF_BUILD/cox" nodes add "$NF_STATE" "$name" --csr "$NF_DIR/$name.csr" --out "$sd" \
	    --control "$addr:8444" >"$NF_DIR/logs/enrol-$name.log" 2>&1 || return 1
	nf_start_buoy "$name" "$idx" "$@"
}

nf_start_buoy() { # NAME IDX [ARGS]
	local name=$1 idx=$2 ns=pht-$NF_TAG-n$2 addr=10.250.0.$((10 + $2)) ifn="pw$NF_TAG$2"
	shift 2
	ip netns exec "$ns" "$NF_BUILD/buoy" run --state-dir "$NF_DIR/node-$name" \
	    --listen "$addr:8444" --interface "${ifn:0:15}" "$@" \
	    >>"$NF_DIR/logs/buoy-$name.log" 2>&1 &
	NF_PIDS+=($!)
	eval "NF_BUOY_$idx=$!"
	for _ in $(seq 100); do
		grep -q "listen=$addr:8444" "$NF_DIR/logs/buoy-$name.log" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "buoy $name did not start:" >&2
	tail -5 "$NF_DIR/logs/buoy-$name.log" >&2
	return 1
}

nf_fleet_id() { # the id in the seeded fleet.yaml
	awk '/^fleet:/ {f = 1} f && $1 == "id:" {print $2; exit}' "$NF_FROM/fleet.yaml"
}

nf_cox() { # [ARGS]
	ip netns exec "$NF_CTL" "$NF_BUILD/cox" run "$NF_STATE" "$@" \
	    >>"$NF_DIR/logs/cox.log" 2>&1 &
	NF_COX_PID=$!
	NF_PIDS+=($!)
}

# nf_client NAME IDX: namespace at 10.250.0.(100+IDX) with wireguard-go interface NF_CIF.
nf_client() {
	local ns=pht-$NF_TAG-c$2 ifn="pc$NF_TAG$2"
	ifn=${ifn:0:15}
	ip netns add "$ns" || return 1
	NF_NSES+=("$ns")
	NF_IFS+=("$ifn")
	_nf_link "$ns" "10.250.0.$((100 + $2))" || return 1
	ip netns exec "$ns" env WG_PROCESS_FOREGROUND=1 wireguard-go -f "$ifn" \
	    >"$NF_DIR/logs/client-$1.log" 2>&1 &
	NF_PIDS+=($!)
	for _ in $(seq 100); do [ -S "/var/run/wireguard/$ifn.sock" ] && break; sleep 0.05; done
	NF_CNS=$ns
	NF_CIF=$ifn
}

# nf_wait_converged SECONDS: until `cox status` says every driven node is in sync.
nf_wait_converged() {
	local end=$((SECONDS + $1))
	while [ $SECONDS -le "$end" ]; do
		"$NF_BUILD/cox" status "$NF_STATE" >"$NF_DIR/status.out" 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
