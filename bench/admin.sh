#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The admin API (`cox run --admin`, docs/DESIGN.md §11) on a 1,000-node, 100,000-device
# fleet and on a small one (issue 6 item 7). Per fleet: bench/gen_fleet.py (seed 1; every
# node's control address on loopback ports where nothing listens, so nodes are unreachable
# without DNS look-ups; review.required off, so an edit is a commit on main), `cox init
# --enterprise --from`, a write-scope API token, then
# bench/admin_client.py starts `cox run` and measures, on one keep-alive connection:
#   - reads: p50/p90/p99 of the UI's reads, interleaved with an embedded static asset (the
#     HTTP floor) and /api/v1/me (the API floor: token check + a tiny JSON);
#   - edits: PUT /api/v1/users/NAME (a new full_name) -> 200 (committed) -> cox logs
#     "revision seen" for that commit (the reconciler picked it up) -> "revision applied".
# Prints a markdown table.
#   bench/admin.sh   (BUILD=build READS=200 WARM=20 EDITS=50 BIG_NODES=1000
#                     BIG_DEVICES=100000 SMALL_NODES=10 SMALL_DEVICES=100 CONTROL_BASE=3000;
#                     PERF=1 also records `perf record -g` of cox during the big fleet's
#                     timed edits into bench-admin-perf.data; KEEP=1 keeps the temp folder)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(realpath "${BUILD:-build}")
READS=${READS:-200}
WARM=${WARM:-20}
EDITS=${EDITS:-50}
BIG_NODES=${BIG_NODES:-1000}
BIG_DEVICES=${BIG_DEVICES:-100000}
SMALL_NODES=${SMALL_NODES:-10}
SMALL_DEVICES=${SMALL_DEVICES:-100}
CONTROL_BASE=${CONTROL_BASE:-3000}
tmp=$(mktemp -d /tmp/pharos-adminbench.XXXXXX)
cleanup() {
	# admin_client.py kills the cox it started; this is for an interrupted run.
	local f
	for f in "$tmp"/*/cox.pid; do
		[ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
	done
	[ -z "${KEEP:-}" ] && rm -rf "$tmp"
	return 0
}
trap cleanup EXIT
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1

run_fleet() {	# LABEL NODES DEVICES [PERFFILE]
	local label=$1 nodes=$2 devices=$3 perf=${4:-} d=$tmp/$1 tok
	echo "admin: $label: generating $nodes nodes / $devices devices" >&2
	/usr/bin/python3 bench/gen_fleet.py "$d/fleet" -q --nodes "$nodes" --devices "$devices" \
	    --control-base "$CONTROL_BASE"
	# Edits are measured as commits to main: review off (with it on, each edit would open
	# a proposal branch instead, which the reconciler does not apply).
	sed -i '/^review:/,/^[a-z]/ s/^  required: true/  required: false/' "$d/fleet/fleet.yaml"
	grep -q '^  required: false' "$d/fleet/fleet.yaml" || { echo "admin: review still on" >&2; exit 1; }
	"$BUILD/cox" init --enterprise "$d/state" --from "$d/fleet" >"$d/init.log" 2>&1 ||
	    { cat "$d/init.log" >&2; exit 1; }
	tok=$("$BUILD/cox" tokens create "$d/state" --name bench --scope write --ttl 1d \
	    2>/dev/null)
	/usr/bin/python3 bench/admin_client.py "$BUILD/cox" "$d/state" "$tok" "$label" \
	    "$d/result.json" --reads "$READS" --warm "$WARM" --edits "$EDITS" \
	    ${perf:+--perf "$perf"}
}

run_fleet big "$BIG_NODES" "$BIG_DEVICES" ${PERF:+"$PWD/bench-admin-perf.data"}
run_fleet small "$SMALL_NODES" "$SMALL_DEVICES"

echo "admin: $(date -u +%F) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')," \
    "load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs" >&2
/usr/bin/python3 - "$tmp/big/result.json" "$tmp/small/result.json" \
    "$BIG_NODES" "$BIG_DEVICES" "$SMALL_NODES" "$SMALL_DEVICES" <<'PY'
import json, sys
big, small = (json.load(open(p)) for p in sys.argv[1:3])
bn, bd, sn, sd = (int(x) for x in sys.argv[3:7])
bl = "%s nodes / %s devices" % (format(bn, ","), format(bd, ","))
sl = "%s nodes / %s devices" % (format(sn, ","), format(sd, ","))
print("### Reads: %d requests per endpoint after %d warm-up rounds, interleaved, one "
      "keep-alive HTTP/1.1 connection" % (big["reads"][0]["n"], big["warm"]))
print()
print("| GET | %s: bytes | p50 ms | p90 ms | p99 ms | max ms | %s: p50 ms | target: p50 ≤ 20 ms "
      "(%s) |" % (bl, sl, format(bd, ",") + " devices"))
print("|---|---|---|---|---|---|---|---|")
sm = {r["path"].replace(small["user"], "NAME"): r for r in small["reads"]}
for r in big["reads"]:
    p = r["path"].replace(big["user"], "NAME")
    note = ("HTTP floor (embedded asset, no auth)" if p == "/favicon.svg" else
            "API floor (token check, tiny JSON)" if p == "/api/v1/me" else
            "met" if r["p50"] <= 20 else "**not met**")
    print("| `%s` | %s | **%.2f** | %.2f | %.2f | %.2f | %.2f | %s |" % (
        p, format(r["bytes"], ","), r["p50"], r["p90"], r["p99"], r["max"], sm[p]["p50"], note))
print()
print("### Edits: PUT /api/v1/users/NAME (a new full_name), one at a time, %d timed per fleet "
      "after %d warm-up" % (big["edits"]["commit"]["n"],
                             sum(1 for r in big["edit_rows"] if r["warm"])))
print()
print("| fleet | PUT → 200 (committed) p50 / p90 / max ms | PUT → `revision seen` p50 / p90 / "
      "max ms | same, cox's log clock, p50 ms | PUT → `revision applied` p50 ms | first edit "
      "(no cache) → 200 / seen ms | target: ≤ 50 ms |")
print("|---|---|---|---|---|---|---|")
for lab, r in ((bl, big), (sl, small)):
    e = r["edits"]
    worst = max(e["commit"]["p50"], e["seen"]["p50"])
    print("| %s | **%.1f** / %.1f / %.1f | **%.1f** / %.1f / %.1f | %.0f | %.0f | %.0f / %.0f "
          "| %s |" % (lab, e["commit"]["p50"], e["commit"]["p90"], e["commit"]["max"],
                      e["seen"]["p50"], e["seen"]["p90"], e["seen"]["max"],
                      e["seen_logclock"]["p50"], e["applied"]["p50"],
                      r["first_edit"]["commit"], r["first_edit"]["seen"],
                      "met" if worst <= 50 else "**not met**"))
print()
for r in (big, small):
    print("%s: `revision seen` logged before the 200 arrived in %d of %d edits; connection "
          "re-opened %d times" % (r["label"], r["edits"]["seen_before_commit"],
                                  r["edits"]["commit"]["n"],
                                  r["read_reconnects"] + r["edit_reconnects"]))
PY
