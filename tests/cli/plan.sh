#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# cox plan from the outside, on a repository built from fleet.example with the real git CLI:
# exit codes, the summary line, per-node peers, warnings, the three formats, usage errors.
#   tests/cli/plan.sh [BUILD]     (BUILD defaults to build)
set -u
cd "$(dirname "$0")/../.." || exit 2
build=$(realpath "${1:-build}")
cox=$build/cox
TAG=$(basename "$build")
. tests/lib/tap.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
OUT=$tmp/out
ERR=$tmp/err
repo=$tmp/repo
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
commit() { git -C "$repo" -c user.name=t -c user.email=t@e commit -qam "$1"; git -C "$repo" rev-parse HEAD; }

git init -q -b main "$repo"
cp -r fleet.example/. "$repo/"
git -C "$repo" add -A
base=$(commit base)

# A comment is not a change: content hashes are equal.
sed -i 's/^# Example Corp.s VPN fleet/# The VPN fleet of Example Corp/' "$repo/fleet.yaml"
comment=$(commit "comment only")
expect_rc "comment-only change: exit 0" 0 "$cox" plan --repo "$repo" --base "$base" --head "$comment"
check "comment-only change: summary" grep -qx "4 nodes: 0 change, 4 unchanged" "$OUT"
check "comment-only change: the summary is the last line" bash -c "tail -1 '$OUT' | grep -q unchanged"
expect_rc "same revision twice: exit 0" 0 "$cox" plan --repo "$repo" --base "$comment" --head "$comment"

# A device for bob: staff enters on region eu-ams, so ams-1 (ams-2 is idle) and nothing else.
key="2x0QtCwaoYzcHnpQa0aE8QJSuYK8hQd4eHj1Zzqr6Uw="
printf '  - name: tablet\n    public_key: "%s"\n' "$key" >>"$repo/users/bob.yaml"
added=$(commit "bob's tablet")
expect_rc "a device added: exit 1" 1 "$cox" plan --repo "$repo" --base "$comment" --head "$added"
check "a device added: summary" grep -qx "4 nodes: 1 change, 3 unchanged" "$OUT"
check "a device added: ams-1 changes" grep -q "^~ ams-1 (entry): peers 5 -> 6" "$OUT"
check "a device added: + peer with fingerprint and name" \
    grep -qE "^    \+ peer 2x0QtCwa… bob/tablet: 10\.80\.[0-9]+\.[0-9]+/32 fd42:80::[0-9a-f:]+/128$" "$OUT"
check "a device added: + vless user" grep -qx "    + vless bob/tablet" "$OUT"
check "a device added: fra-1, waw-1 and ams-2 unchanged" \
    bash -c "! grep -qE '^[~+-] (fra-1|waw-1|ams-2) ' '$OUT'"
check "a device added: no warning" bash -c "! grep -q '^warning' '$OUT'"
# Addresses are stable: the head build reuses the base's, so no other peer moves.
check "a device added: no other peer changes" bash -c "[ \$(grep -c '^    [-~] peer' '$OUT') = 0 ]"

# Markdown: a heading, the summary, a table.
expect_rc "--format markdown: exit 1" 1 "$cox" plan --repo "$repo" --base "$comment" --head "$added" \
    --format markdown
check "markdown: heading" grep -qE '^### PharosVPN plan: `[0-9a-f]{12}` → `[0-9a-f]{12}`$' "$OUT"
check "markdown: bold summary" grep -qx '\*\*4 nodes: 1 change, 3 unchanged\*\*' "$OUT"
check "markdown: a node section" grep -q '^#### ~ `ams-1` (entry)' "$OUT"
check "markdown: a table row with the fingerprint" grep -qF '| + | peer | `2x0QtCwa…` bob/tablet |' "$OUT"

# JSON: parses and has the documented structure.
expect_rc "--format json: exit 1" 1 "$cox" plan --repo "$repo" --base "$comment" --head "$added" \
    --format json
check "json: json.tool parses it" /usr/bin/python3 -m json.tool "$OUT" /dev/null
check "json: structure" /usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["nodes"] == 4 and d["changed"] == 1 and d["unchanged"] == 3, d
assert d["summary"] == "4 nodes: 1 change, 3 unchanged"
assert len(d["base"]) == 40 and len(d["head"]) == 40 and d["warnings"] == []
[n] = d["changes"]
assert n["node"] == "ams-1" and n["status"] == "changed" and n["roles"] == ["entry"], n
assert n["peers"] == {"base": 5, "head": 6, "added": 1, "removed": 0, "changed": 0}, n
assert n["vless_users"]["added"] == 1 and n["omitted"] == 0
peer = [i for i in n["items"] if i["kind"] == "peer"]
assert peer[0]["op"] == "+" and peer[0]["key"] == sys.argv[2], peer
' "$OUT" "$key"

# Carol disabled: waw-1 loses its only peer, which is a warning in every format.
printf 'disabled: true\n' >>"$repo/users/carol.yaml"
nocarol=$(commit "carol on leave")
expect_rc "carol disabled: exit 1" 1 "$cox" plan --repo "$repo" --base "$added" --head "$nocarol"
check "carol disabled: warning" grep -qx "warning: node waw-1 loses all its 1 peer" "$OUT"
check "carol disabled: ams-1 loses her peer" grep -q "^    - peer 6TaEsYKf… carol/laptop" "$OUT"
expect_rc "carol disabled, markdown" 1 "$cox" plan --repo "$repo" --base "$added" --head "$nocarol" \
    --format markdown
check "markdown: warning as a blockquote with ⚠" grep -q "^> ⚠.*node waw-1 loses all its 1 peer" "$OUT"
expect_rc "carol disabled, json" 1 "$cox" plan --repo "$repo" --base "$added" --head "$nocarol" \
    --format json
check "json: the warning" /usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["warnings"] == ["node waw-1 loses all its 1 peer"], d["warnings"]' "$OUT"

# ams-1 idle: the exit behind it loses every entry.
printf 'idle: true\n' >>"$repo/nodes/ams-1.yaml"
idle=$(commit "ams-1 idle")
expect_rc "ams-1 idle: exit 1" 1 "$cox" plan --repo "$repo" --base "$nocarol" --head "$idle"
check "ams-1 idle: fra-1 loses its links" grep -q "^    - link ams-1.fra-1: accept ams-1" "$OUT"
check "ams-1 idle: warning for the exit" grep -qx "warning: exit node fra-1: no entry links to it any more" "$OUT"
check "ams-1 idle: warning for its peers" grep -q "^warning: node ams-1 loses all its 5 peers (it becomes idle)" "$OUT"

# A node removed while it serves peers.
sed -i 's/^idle: true$/idle: false/' "$repo/nodes/ams-1.yaml" "$repo/nodes/ams-2.yaml"
both=$(commit "ams-1 and ams-2 both serve")
expect_rc "two entries get the same peers: exit 1" 1 "$cox" plan --repo "$repo" --base "$idle" --head "$both"
check "the same client changes are listed once" \
    grep -qx "    = peers and VLESS users: the same changes as ams-1" "$OUT"
check "and once only" bash -c "[ \$(grep -c '^    + peer OO8nJYz2' '$OUT') = 1 ]"
git -C "$repo" rm -q nodes/ams-2.yaml
removed=$(commit "ams-2 gone")
expect_rc "ams-2 removed: exit 1" 1 "$cox" plan --repo "$repo" --base "$both" --head "$removed"
check "ams-2 removed: listed" grep -q "^- ams-2 (entry, exit): removed; had 5 peers" "$OUT"
check "ams-2 removed: warning" grep -qx "warning: node ams-2 is removed while it has 5 peers" "$OUT"
check "ams-2 removed: fra-1 loses that link" grep -q "^    - link ams-2.fra-1: accept ams-2" "$OUT"

# A setting: waw-1's AmneziaWG port, on waw-1 only.
sed -i 's/^  port: 51820 .*/  port: 51822/' "$repo/nodes/waw-1.yaml"
port=$(commit "waw-1 port")
expect_rc "a port changed: exit 1" 1 "$cox" plan --repo "$repo" --base "$removed" --head "$port"
check "a port changed: the setting" grep -qx "    ~ setting amneziawg.listen_port: 51820 -> 51822" "$OUT"
check "a port changed: one node" grep -qx "3 nodes: 1 change, 2 unchanged" "$OUT"

# An invalid head: exit 2 and its errors as path:line:col.
printf 'x: [\n' >>"$repo/users/bob.yaml"
bad=$(commit "broken")
expect_rc "invalid head: exit 2" 2 "$cox" plan --repo "$repo" --base "$removed" --head "$bad"
check "invalid head: path:line:col: error" grep -qE '^users/bob\.yaml:[0-9]+:[0-9]+: error: ' "$ERR"
check "invalid head: says so" grep -q "is invalid: 1 error" "$ERR"
check "invalid head: no plan on stdout" test ! -s "$OUT"

# --base defaults to the merge base with main; a bare clone works the same.
git -C "$repo" checkout -q -b proposal "$added"
printf '  - name: spare\n    public_key: "lVotelmBYPq6XlergrNt55jKkNIameuAlkjoOLUPb2A="\n' \
    >>"$repo/users/alice.yaml"
commit "alice's spare" >/dev/null
git -C "$repo" branch -q -f main "$added"
expect_rc "default --base (merge base with main): exit 1" 1 "$cox" plan --repo "$repo"
check "default --base: only alice's spare" bash -c "grep -q '+ peer lVotelmB… alice/spare' '$OUT' && \
    [ \$(grep -c '^    + peer' '$OUT') = 1 ]"
git clone -q --bare "$repo" "$tmp/bare.git"
expect_rc "bare clone, explicit revisions" 1 "$cox" plan --repo "$tmp/bare.git" --base main --head proposal
check "bare clone: same summary" grep -qx "4 nodes: 1 change, 3 unchanged" "$OUT"

# Usage errors exit 2.
expect_rc "no --repo: exit 2" 2 "$cox" plan --base "$base" --head "$added"
expect_rc "bad --format: exit 2" 2 "$cox" plan --repo "$repo" --base "$base" --format yaml
expect_rc "unknown option: exit 2" 2 "$cox" plan --repo "$repo" --frobnicate
expect_rc "extra argument: exit 2" 2 "$cox" plan --repo "$repo" --base "$base" extra
expect_rc "unknown revision: exit 2" 2 "$cox" plan --repo "$repo" --base nosuch --head "$added"
check "unknown revision: named" grep -q "nosuch" "$ERR"
expect_rc "not a repository: exit 2" 2 "$cox" plan --repo "$tmp/nowhere" --base a --head b
expect_rc "cox plan --help" 0 "$cox" plan --help
check "cox plan --help: exit statuses documented" grep -q "Exit status" "$OUT"
expect_rc "cox --help lists plan" 0 "$cox" --help
check "cox --help: plan" grep -qE "^  plan +" "$OUT"
