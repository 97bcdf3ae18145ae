#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Control-plane scale: 1,000 buoys on loopback in the `--dataplane none` benchmark mode
# (each records the configs it is sent and configures no interface — a mode for this
# benchmark only), one cox, a 100,000-device fleet (bench/gen_fleet.py --sites 5: one
# access rule per site of 5 nodes). Measures:
#   - the initial push: from `cox run` starting until every node has its config;
#   - one device added with git push: from push returning until converged;
#   - cox's peak RSS (VmHWM).
#   bench/scale.sh        (BUILD=build NODES=1000 DEVICES=100000 ADDS=5)
#   COX_WRAP="heaptrack -o FILE" bench/scale.sh   runs cox under a profiler (the RSS
#   figures are then the wrapper's, not cox's)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(realpath "${BUILD:-build}")
NODES=${NODES:-1000}
DEVICES=${DEVICES:-100000}
ADDS=${ADDS:-5}
BASE=${BASE:-21000}
tmp=$(mktemp -d /tmp/pharos-scale.XXXXXX)
S=$tmp/state
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	[ -z "${KEEP:-}" ] && rm -rf "$tmp"
	return 0
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true
echo "scale: generating $NODES nodes / $DEVICES devices" >&2
/usr/bin/python3 bench/gen_fleet.py "$tmp/fleet" -q --nodes "$NODES" --devices "$DEVICES" \
    --sites 5 --control-base "$BASE"
"$BUILD/cox" init --enterprise "$S" --from "$tmp/fleet" >"$tmp/init.log" 2>&1 ||
    { cat "$tmp/init.log"; exit 1; }
fleet=$(awk '/^fleet:/ {f = 1} f && $1 == "id:" {print $2; exit}' "$tmp/fleet/fleet.yaml")
echo "scale: enrolling and starting $NODES buoys" >&2
mkdir -p "$tmp/n"
i=0
t=$(date +%s)
for f in "$tmp"/fleet/nodes/*.yaml; do
	name=$(basename "$f" .yaml)
	port=$(awk '$1 == "control:" {split($2, a, ":"); print a[2]}' "$f")
	d=$tmp/n/$name
	"$BUILD/buoy" keygen --state-dir "$d" >/dev/null
	"$BUILD/buoy" csr --state-dir "$d" --fleet "$fleet" --name "$name" >"$d.csr"
	"$BUILD/cox" nodes add "$S" "$name" --csr "$d.csr" --out "$d" >/dev/null
	"$BUILD/buoy" run --state-dir "$d" --listen "127.0.0.1:$port" --dataplane none \
	    >"$d.log" 2>&1 &
	pids+=($!)
	i=$((i + 1))
done
echo "scale: $i buoys up in $(( $(date +%s) - t )) s" >&2
sleep 2
t0=$(date +%s%N)
${COX_WRAP:-} "$BUILD/cox" run "$S" --poll 30 >"$tmp/cox.log" 2>&1 &
cox=$!
pids+=($cox)
at=
for _ in $(seq 6000); do
	at=$(grep -o 'revision converged rev=[0-9a-f]* nodes=[0-9]* ms=[0-9.]* at_unix_ns=[0-9]*' \
	    "$tmp/cox.log" | head -1 | sed 's/.*at_unix_ns=//' || true)
	[ -n "$at" ] && break
	sleep 0.02
done
[ -n "$at" ] || { echo "initial push did not converge" >&2; tail "$tmp/cox.log" >&2; exit 1; }
initial=$(( (at - t0) / 1000000 ))
peers=$(grep -c 'push=ok' "$tmp/cox.log" || true)
load=$(grep -o 'revision applied rev=[0-9a-f]* nodes=[0-9]* devices=[0-9]* load_ms=[0-9.]*' \
    "$tmp/cox.log" | head -1 | sed 's/.*load_ms=//')
git clone -q "$S/fleet.git" "$tmp/clone"
git -C "$tmp/clone" config user.name bench
git -C "$tmp/clone" config user.email bench@example.com
user=$(cd "$tmp/clone/users" && set -- *.yaml && echo "$1")
: >"$tmp/lat"
for k in $(seq "$ADDS"); do
	key=$(head -c 32 /dev/urandom | base64)
	printf '  - name: scale-%d\n    public_key: "%s"\n' "$k" "$key" >>"$tmp/clone/users/$user"
	git -C "$tmp/clone" commit -qam "scale: device $k"
	rev=$(git -C "$tmp/clone" rev-parse HEAD)
	t1s=$(date +%s%N)
	git -C "$tmp/clone" push -q origin main 2>>"$tmp/push.log"
	t1=$(date +%s%N)
	at=
	for _ in $(seq 3000); do
		at=$(grep -o "revision converged rev=${rev:0:12} nodes=[0-9]* ms=[0-9.]* at_unix_ns=[0-9]*" \
		    "$tmp/cox.log" | tail -1 | sed 's/.*at_unix_ns=//' || true)
		[ -n "$at" ] && break
		sleep 0.01
	done
	[ -n "$at" ] || { echo "device $k did not converge" >&2; tail "$tmp/cox.log" >&2; exit 1; }
	echo "$(( (at - t1) / 1000 )) $(( (at - t1s) / 1000 ))" >>"$tmp/lat"
done
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$cox/status")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$cox/status")
/usr/bin/python3 - "$tmp/lat" <<PY
import statistics, sys
rows = [tuple(int(x) / 1000 for x in l.split()) for l in open(sys.argv[1])]
print("control-plane scale: $NODES buoys (--dataplane none, loopback), $DEVICES devices")
print("  initial push, cox start -> every node configured: $initial ms "
      "($peers ApplyConfigs; revision load+compile ${load} ms)")
print("  one device added, git push returned -> converged: p50 %.0f ms, max %.0f ms "
      "(from push start: p50 %.0f ms) over $ADDS pushes" % (
      statistics.median(r[0] for r in rows), max(r[0] for r in rows),
      statistics.median(r[1] for r in rows)))
print("  cox peak RSS: %.1f MiB = %.1f MB (now %.1f MiB; target <= 200 MB = 2e8 bytes)" % (
      $hwm / 1024, $hwm * 1024 / 1e6, $rss / 1024))
print("  anchors: Flux polls every 60 s by default; Argo CD every ~180 s")
PY
