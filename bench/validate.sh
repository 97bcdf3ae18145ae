#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Benchmark `cox validate` against the Python baseline on a generated
# 1,000-node / 100,000-device enterprise fleet (docs/DESIGN.md §2).
#
#   bench/validate.sh
#
# Measures, in one run and on the same fleet:
#   cox-tree   $COX validate DIR                     (working tree)
#   cox-git    $COX validate --repo GITDIR --rev HEAD (git objects; packed repo)
#   baseline   /usr/bin/python3 bench/baseline_validate.py DIR
#              (PyYAML CSafeLoader + jsonschema Draft202012Validator)
# and checks the targets: cox median wall <= 0.5 s, peak RSS <= 150 MiB and
# >= 10x faster than the baseline, for both cox modes.  Exits 1 if a target
# is missed or a command fails (e.g. cox refuses the generated fleet).
#
# Environment:
#   COX=build/cox      the validator (a path, or a command name on PATH)
#   COX_RUNS=10        timed runs of each cox mode (after 1 warm-up run)
#   BASE_RUNS=3        timed runs of the baseline (0 skips it and the 10x check)
#   NODES=1000 DEVICES=100000 DEVICES_PER_USER=5 SEED=1   fleet size
#   SCHEMA_DIR=        JSON Schema dir for the baseline (default: schema/)
#   TMPDIR=/tmp        where the temporary fleets go (removed on exit)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
PY=/usr/bin/python3

COX=${COX:-$root/build/cox}
COX_RUNS=${COX_RUNS:-10}
BASE_RUNS=${BASE_RUNS:-3}
NODES=${NODES:-1000}
DEVICES=${DEVICES:-100000}
DEVICES_PER_USER=${DEVICES_PER_USER:-5}
SEED=${SEED:-1}
SCHEMA_DIR=${SCHEMA_DIR:-}

if [[ $COX == */* ]]; then
    [[ -x $COX && -f $COX ]] || { echo "validate.sh: $COX: no such executable (build it, or set COX=)" >&2; exit 2; }
    COX=$(cd "$(dirname "$COX")" && pwd)/$(basename "$COX")
else
    COX=$(command -v "$COX") || { echo "validate.sh: $COX: command not found" >&2; exit 2; }
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pharos-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

fleet=$tmp/fleet
gitfleet=$tmp/fleet-git
results=$tmp/results.jsonl
gen=("$PY" "$here/gen_fleet.py" --nodes "$NODES" --devices "$DEVICES"
     --devices-per-user "$DEVICES_PER_USER" --seed "$SEED")

echo "== generating the fleet (nodes $NODES, devices $DEVICES, seed $SEED)"
t0=$(date +%s.%N)
"${gen[@]}" "$fleet"
t1=$(date +%s.%N)
"${gen[@]}" -q --git "$gitfleet"
t2=$(date +%s.%N)
files=$(find "$fleet" -type f | wc -l)
bytes=$(find "$fleet" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
packbytes=$(find "$gitfleet/.git/objects" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
awk -v f="$files" -v b="$bytes" -v p="$packbytes" -v t0="$t0" -v t1="$t1" -v t2="$t2" 'BEGIN {
    printf "fleet: %d files, %.0f bytes (%.1f MiB); git objects %.0f bytes; generated in %.2f s (+%.2f s with --git)\n",
        f, b, b / 1048576, p, t1 - t0, t2 - t1 }'
echo "cox: $COX"
echo

status=0
run() { "$PY" "$here/run.py" --out "$results" "$@" || status=1; }

echo "== cox validate DIR ($COX_RUNS runs)"
run --runs "$COX_RUNS" --warmup 1 --name cox-tree -- "$COX" validate "$fleet"
echo "== cox validate --repo DIR --rev HEAD ($COX_RUNS runs)"
run --runs "$COX_RUNS" --warmup 1 --name cox-git -- "$COX" validate --repo "$gitfleet" --rev HEAD
speedup=()
if (( BASE_RUNS > 0 )); then
    echo "== baseline: PyYAML CSafeLoader + jsonschema ($BASE_RUNS runs)"
    base=("$PY" "$here/baseline_validate.py" -q)
    [[ -n $SCHEMA_DIR ]] && base+=(--schema-dir "$SCHEMA_DIR")
    run --runs "$BASE_RUNS" --name baseline -- "${base[@]}" "$fleet"
    speedup=(--min-speedup cox-tree=10 --min-speedup cox-git=10)
fi

echo
echo "== results: $files files, $bytes bytes; $(nproc) CPUs"
"$PY" "$here/run.py" --report "$results" --ratio-base baseline \
    --max-median cox-tree=0.5 --max-median cox-git=0.5 \
    --max-rss cox-tree=150 --max-rss cox-git=150 \
    "${speedup[@]}" || status=1
exit "$status"
