#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Push -> converged latency on a real fleet: 10 buoys driving wireguard-go in network
# namespaces (tests/lib/netfleet.sh), cox dialing them over mTLS. Each of PUSHES rounds
# adds one device with the real git CLI and times, from `git push` returning, until cox
# logs "revision converged" for that commit: every node has either answered ApplyConfig
# for it or was confirmed (GetStatus-checked earlier, content unchanged) at it. Also
# times from the push starting (that includes the pre-receive hook's `cox validate`).
# Anchors: Flux polls its source every 1 min by default, Argo CD every ~3 min.
#   bench/converge.sh     (root, /dev/net/tun; BUILD=build NODES=10 PUSHES=50)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
NODES=${NODES:-10}
PUSHES=${PUSHES:-50}
[ "$(id -u)" = 0 ] && [ -c /dev/net/tun ] || { echo "bench/converge.sh needs root and /dev/net/tun" >&2; exit 2; }
. tests/lib/netfleet.sh
nf_init "$BUILD" "b$$"
trap nf_cleanup EXIT
/usr/bin/python3 bench/gen_fleet.py "$NF_DIR/fleet" -q --nodes "$NODES" --devices 200 --relays 0
nf_net
nf_state "$NF_DIR/fleet" || { cat "$NF_DIR/logs/init.log"; exit 1; }
i=0
for f in "$NF_DIR"/fleet/nodes/*.yaml; do
	i=$((i + 1))
	nf_node "$(basename "$f" .yaml)" "$i"
done
nf_cox --poll 5
nf_wait_converged 60 || { echo "initial convergence failed" >&2; tail "$NF_DIR/logs/cox.log" >&2; exit 1; }
git clone -q "$NF_STATE/fleet.git" "$NF_DIR/clone"
git -C "$NF_DIR/clone" config user.name bench
git -C "$NF_DIR/clone" config user.email bench@example.com
user=$(cd "$NF_DIR/clone/users" && set -- *.yaml && echo "$1")
: >"$NF_DIR/lat"
for k in $(seq "$PUSHES"); do
	printf '  - name: bench-%d\n    public_key: "%s"\n' "$k" "$(wg genkey | wg pubkey)" \
	    >>"$NF_DIR/clone/users/$user"
	git -C "$NF_DIR/clone" commit -qam "bench: device $k"
	rev=$(git -C "$NF_DIR/clone" rev-parse HEAD)
	t0=$(date +%s%N)
	git -C "$NF_DIR/clone" push -q origin main 2>>"$NF_DIR/logs/push.log"
	t1=$(date +%s%N)
	at=
	for _ in $(seq 2000); do
		at=$(grep -o "revision converged rev=${rev:0:12} nodes=[0-9]* ms=[0-9.]* at_unix_ns=[0-9]*" \
		    "$NF_DIR/logs/cox.log" | tail -1 | sed 's/.*at_unix_ns=//' || true)
		[ -n "$at" ] && break
		sleep 0.005
	done
	[ -n "$at" ] || { echo "push $k did not converge" >&2; exit 1; }
	echo "$(( (at - t1) / 1000 )) $(( (at - t0) / 1000 ))" >>"$NF_DIR/lat"
done
nodes=$(grep -o "revision converged rev=${rev:0:12} nodes=[0-9]*" "$NF_DIR/logs/cox.log" | tail -1 | sed 's/.*nodes=//')
pushed=$(grep -c "push=ok rev=${rev:0:12}" "$NF_DIR/logs/cox.log" || true)
/usr/bin/python3 - "$NF_DIR/lat" "$PUSHES" "$nodes" "$pushed" <<'PY'
import statistics, sys
rows = [tuple(int(x) / 1000 for x in l.split()) for l in open(sys.argv[1])]
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
after = [r[0] for r in rows]
start = [r[1] for r in rows]
print(f"push -> converged, {sys.argv[2]} pushes, {sys.argv[3]} buoys on wireguard-go "
      f"({sys.argv[4]} of them re-configured per push):")
print(f"  from git push returning: p50 {statistics.median(after):7.1f} ms   "
      f"p99 {pct(after, 99):7.1f} ms   max {max(after):7.1f} ms")
print(f"  from git push starting:  p50 {statistics.median(start):7.1f} ms   "
      f"p99 {pct(start, 99):7.1f} ms   max {max(start):7.1f} ms")
print("  anchors: Flux polls every 60,000 ms by default; Argo CD every ~180,000 ms")
PY
