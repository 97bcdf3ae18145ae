#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# A fleet hosted on a git forge: fleet.git gets a remote "upstream"; cox run fetches it on
# an interval and treats a new commit there exactly like a push (validated, refused when
# invalid). The "forge" is a bare repository reached through libgit2's local transport.
# Also the CLI contract of cox run / cox status (usage errors, --help).
#   tests/reconciler/upstream.sh [BUILD]
set -u
cd "$(dirname "$0")/../.." || exit 2
build=$(realpath "${1:-build}")
TAG=$(basename "$build")
. tests/lib/tap.sh
cox=$build/cox
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$tmp"; }
trap cleanup EXIT
OUT=$tmp/out
ERR=$tmp/err

expect_rc "cox run without DIR: usage error" 2 "$cox" run
expect_rc "cox run --poll 0: usage error" 2 "$cox" run --poll 0 "$tmp"
expect_rc "cox run --help" 0 "$cox" run --help
check "cox run --help documents --fetch-interval" grep -q -- "--fetch-interval" "$OUT"
expect_rc "cox status without DIR: usage error" 2 "$cox" status
expect_rc "cox status of a missing state dir: error" 2 "$cox" status "$tmp/nope"
expect_rc "cox run of a missing state dir: fails" 1 "$cox" run "$tmp/nope"

"$cox" init --enterprise "$tmp/s" --from fleet.example >/dev/null 2>&1 || { nok "cox init"; exit 1; }
expect_rc "cox status before cox ever ran: not in sync (exit 1)" 1 "$cox" status "$tmp/s"
git clone -q --bare "$tmp/s/fleet.git" "$tmp/forge.git"
git -C "$tmp/s/fleet.git" remote add upstream "$tmp/forge.git"
"$cox" run "$tmp/s" --admin 127.0.0.1:0 --fetch-interval 0.3 --poll 1 >"$tmp/cox.log" 2>&1 &
pid=$!
wait_log() { # PATTERN
	for _ in $(seq 100); do grep -q "$1" "$tmp/cox.log" && return 0; sleep 0.05; done
	return 1
}
check "cox run fetches the upstream remote" wait_log "upstream: fetching $tmp/forge.git"

git clone -q "$tmp/forge.git" "$tmp/clone"
git -C "$tmp/clone" config user.name "Forge User"
git -C "$tmp/clone" config user.email forge@example.com
cat >>"$tmp/clone/users/dave.yaml" <<EOT
  - name: forge-device
    public_key: "$(head -c 32 /dev/urandom | base64)"
EOT
git -C "$tmp/clone" commit -qam "dave: a device, merged on the forge"
git -C "$tmp/clone" push -q origin main
rev=$(git -C "$tmp/clone" rev-parse HEAD)
check "a commit on the forge is fetched and applied (${rev:0:12})" \
    wait_log "revision applied rev=${rev:0:12}"
check "fleet.git's main follows the forge" \
    test "$(git -C "$tmp/s/fleet.git" rev-parse main)" = "$rev"

printf 'network:\n  tunnel_pool: "not a prefix"\n' >>"$tmp/clone/fleet.yaml"
git -C "$tmp/clone" commit -qam "broken on the forge (no hook there)"
git -C "$tmp/clone" push -q origin main
bad=$(git -C "$tmp/clone" rev-parse HEAD)
check "an invalid forge commit is refused (${bad:0:12})" wait_log "revision refused rev=${bad:0:12}"
"$cox" status "$tmp/s" >"$OUT" 2>&1
check "cox status names the refused revision and keeps ${rev:0:12}" \
    bash -c "grep -q 'applied ${rev:0:12}' $OUT && grep -q 'INVALID revision ${bad:0:12}' $OUT"
check "cox status shows the error at its line" grep -q "fleet.yaml:[0-9]*:[0-9]*: error" "$OUT"
"$cox" audit "$tmp/s" >"$OUT" 2>&1
check "audit: revision.applied and revision.refused" \
    bash -c "grep -q revision.applied $OUT && grep -q revision.refused $OUT"
kill "$pid"
wait "$pid" 2>/dev/null
rc=$?
pid=
check "SIGTERM: cox run exits 0" test "$rc" = 0
check "the audit log is intact" "$cox" audit verify "$tmp/s"
