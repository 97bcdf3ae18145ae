#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# cox validate from the outside: exit codes, output formats, working trees and git
# revisions (with the real git CLI), and the other binaries' --help/--version.
#   tests/cli/validate.sh [BUILD]     (BUILD defaults to build)
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

expect_rc "fleet.example is valid" 0 "$cox" validate fleet.example
check "valid: a summary on stderr" grep -q "valid: 4 nodes, 1 relay, 4 users, 6 devices" "$ERR"
check "valid: nothing on stdout" test ! -s "$OUT"
expect_rc "fleet.yaml path form" 0 "$cox" validate fleet.example/fleet.yaml
expect_rc "--quiet prints nothing" 0 "$cox" validate -q fleet.example
check "--quiet: stderr empty" test ! -s "$ERR"

# A syntax error appended to fleet.yaml is reported at its exact line and column.
cp -r fleet.example "$tmp/f1"
lines=$(wc -l <"$tmp/f1/fleet.yaml")
printf 'key: value: other\n' >>"$tmp/f1/fleet.yaml"
expect_rc "appended syntax error: exit 1" 1 "$cox" validate "$tmp/f1"
want="$tmp/f1/fleet.yaml:$((lines + 1)):11: error: mapping values are not allowed in this context"
check "appended syntax error: line $((lines + 1)) column 11" grep -qxF "$want" "$OUT"
check "appended syntax error: the only line" test "$(wc -l <"$OUT")" = 1
cp fleet.example/fleet.yaml "$tmp/f1/fleet.yaml"
printf 'extra: [unclosed, list\n' >>"$tmp/f1/fleet.yaml"
expect_rc "appended unclosed list: exit 1" 1 "$cox" validate "$tmp/f1"
check "appended unclosed list: at the bracket, line $((lines + 1)) column 8" \
    grep -qF "$tmp/f1/fleet.yaml:$((lines + 1)):8: error: parsing a flow sequence" "$OUT"

cp -r fleet.example "$tmp/f2"
printf 'fleet:\n  id: again\n' >>"$tmp/f2/fleet.yaml"
expect_rc "duplicate top-level key: exit 1" 1 "$cox" validate "$tmp/f2"
check "duplicate top-level key: named with the first line" \
    grep -qE "fleet.yaml:$((lines + 1)):1: error: duplicate key 'fleet' \(first defined at line [0-9]+\)" "$OUT"

# Errors from several files come out sorted by path, line, column.
cp -r fleet.example "$tmp/f3"
printf 'regoin: x\n' >>"$tmp/f3/nodes/waw-1.yaml"
printf 'rol: admin\n' >>"$tmp/f3/users/alice.yaml"
printf 'x: 1\n' >>"$tmp/f3/nodes/ams-1.yaml"
expect_rc "three broken files: exit 1" 1 "$cox" validate "$tmp/f3"
check "three broken files: three lines, sorted" bash -c \
    "[ \$(wc -l <'$OUT') = 3 ] && sort -t: -k1,1 -k2,2n -k3,3n '$OUT' | cmp -s - '$OUT'"
check "did-you-mean hint" grep -q "unknown key 'regoin' (did you mean 'region'?)" "$OUT"

# JSON and GitHub formats.
expect_rc "--format json on an invalid fleet" 1 "$cox" validate --format json "$tmp/f3"
check "json: parses, valid false, 3 errors, positions" /usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["valid"] is False and d["errors"] == 3, d
assert all({"file", "line", "column", "severity", "message"} <= set(x) for x in d["diagnostics"])
assert d["fleet"]["nodes"] == 4
' "$OUT"
expect_rc "--format json on a valid fleet" 0 "$cox" validate --format json fleet.example
check "json: valid true" /usr/bin/python3 -c '
import json, sys; d = json.load(open(sys.argv[1])); assert d["valid"] and d["diagnostics"] == []' "$OUT"
expect_rc "--format github" 1 "$cox" validate --format github "$tmp/f3"
check "github: ::error file=,line=,col=::" grep -qE '^::error file=[^,]+/nodes/waw-1\.yaml,line=[0-9]+,col=1::unknown key' "$OUT"
printf 'full_name: "50%%, really:\\nyes"\n' >>"$tmp/f3/users/bob.yaml"
"$cox" validate --format github "$tmp/f3" >"$OUT" 2>/dev/null
check "github: properties and data escaped" bash -c "! grep -q '50%, really' '$OUT'"

# Usage and I/O errors exit 2.
expect_rc "no such path: exit 2" 2 "$cox" validate "$tmp/nope"
check "no such path: says so" grep -q "No such file or directory" "$ERR"
mkdir "$tmp/empty"
expect_rc "folder without fleet.yaml: exit 2" 2 "$cox" validate "$tmp/empty"
check "folder without fleet.yaml: says so" grep -q "no fleet.yaml here" "$ERR"
expect_rc "bad --format: exit 2" 2 "$cox" validate --format xml fleet.example
expect_rc "unknown option: exit 2" 2 "$cox" validate --frobnicate fleet.example
expect_rc "PATH and --repo together: exit 2" 2 "$cox" validate --repo . fleet.example
expect_rc "--rev without --repo: exit 2" 2 "$cox" validate --rev HEAD fleet.example
expect_rc "two paths: exit 2" 2 "$cox" validate fleet.example fleet.example
expect_rc "unknown command: exit 2" 2 "$cox" frobnicate
expect_rc "no command: exit 2" 2 "$cox"

# Straight from git objects, with the real git CLI: no checkout involved.
git init -q -b main "$tmp/repo"
cp -r fleet.example/. "$tmp/repo/"
git -C "$tmp/repo" add -A
git -C "$tmp/repo" -c user.name=t -c user.email=t@e commit -qm good
good=$(git -C "$tmp/repo" rev-parse HEAD)
printf 'x: [\n' >>"$tmp/repo/users/carol.yaml"
git -C "$tmp/repo" -c user.name=t -c user.email=t@e commit -qam bad
git clone -q --bare "$tmp/repo" "$tmp/bare.git"
rm -rf "$tmp/repo/nodes"		# the work tree no longer matters
expect_rc "--repo --rev good commit: exit 0" 0 "$cox" validate --repo "$tmp/repo" --rev "$good"
check "--repo: summary names the commit" grep -q "@$good: valid" "$ERR"
expect_rc "--repo HEAD (broken commit): exit 1" 1 "$cox" validate --repo "$tmp/repo"
check "--repo: path relative to the repository" grep -qE '^users/carol\.yaml:[0-9]+:[0-9]+: error' "$OUT"
expect_rc "bare repo, branch name: exit 1" 1 "$cox" validate --repo "$tmp/bare.git" --rev main
expect_rc "bare repo, main~1: exit 0" 0 "$cox" validate --repo "$tmp/bare.git" --rev main~1
expect_rc "unknown revision: exit 2" 2 "$cox" validate --repo "$tmp/bare.git" --rev nosuch
check "unknown revision: libgit2's message" grep -q "nosuch" "$ERR"
expect_rc "not a repository: exit 2" 2 "$cox" validate --repo "$tmp/empty"
git -C "$tmp/repo" -c user.name=t -c user.email=t@e rm -q -r --cached fleet.yaml
git -C "$tmp/repo" -c user.name=t -c user.email=t@e commit -qm "no fleet.yaml"
expect_rc "revision without fleet.yaml: exit 2" 2 "$cox" validate --repo "$tmp/repo"

# Every binary answers --help and --version.
for b in cox buoy beacon; do
	expect_rc "$b --help" 0 "$build/$b" --help
	check "$b --help: usage line" grep -q "^usage: $b" "$OUT"
	expect_rc "$b --version" 0 "$build/$b" --version
	check "$b --version: name and version" grep -qE "^$b [0-9a-g]" "$OUT"
done
expect_rc "cox validate --help" 0 "$cox" validate --help
check "cox validate --help: exit statuses documented" grep -q "Exit status" "$OUT"
