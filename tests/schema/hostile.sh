#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Hostile fleet files: each gets a clear error at the right place, exit 1, bounded memory
# and time, and no crash. Memory is the child's peak RSS (tests/lib/maxrss.py).
#   tests/schema/hostile.sh [BUILD]     (BUILD defaults to build)
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
# ASan's shadow memory inflates RSS; the plain build is held to the real bound.
case $TAG in asan*) limit_kb=$((1024 * 1024)) ;; *) limit_kb=$((128 * 1024)) ;; esac

fleet() { # DIR: a minimal valid personal fleet to break
	mkdir -p "$1/nodes" "$1/users"
	printf 'version: 1\nfleet:\n  id: home\n  preset: personal\n' >"$1/fleet.yaml"
	printf 'region: eu-ams\nssh: "root@192.0.2.1"\nentry_pool: ["192.0.2.1"]\n' >"$1/nodes/home-1.yaml"
	printf 'email: "me@example.org"\nrole: admin\n' >"$1/users/me.yaml"
}

# hostile NAME DIR WANT_REGEX [cox args...]: exit 1, WANT on stdout, RSS and time bounded.
hostile() {
	local name=$1 dir=$2 want=$3 rc kb secs
	shift 3
	/usr/bin/python3 tests/lib/maxrss.py --timeout 60 -- "$cox" validate -q "$@" ${dir:+"$dir"} \
	    >"$OUT" 2>"$ERR"
	read -r rc kb secs < <(tail -n 1 "$ERR")
	if [ "$rc" != 1 ]; then
		nok "$name: exit $rc, want 1"
		head -5 "$OUT" "$ERR" | sed 's/^/#   /'
	elif ! grep -qE "$want" "$OUT"; then
		nok "$name: no line matching /$want/"
		head -5 "$OUT" | sed 's/^/#   /'
	elif [ "$kb" -gt "$limit_kb" ]; then
		nok "$name: peak RSS ${kb} KiB over ${limit_kb} KiB"
	else
		ok "$name (${kb} KiB, ${secs}s)"
	fi
}

d=$tmp/big; fleet "$d"
{ cat "$d/users/me.yaml"; head -c $((100 * 1024 * 1024)) /dev/zero | tr '\0' '#'; } >"$d/users/big.yaml"
hostile "100 MB file refused unread" "$d" '^'"$d"'/users/big\.yaml:1:1: error: file is 104857[0-9]+ bytes; the limit is 16 MiB$'

git init -q -b main "$tmp/bigrepo" && cp -r "$d/." "$tmp/bigrepo/" &&
    git -C "$tmp/bigrepo" add -A && git -C "$tmp/bigrepo" -c user.name=t -c user.email=t@e commit -qm big
hostile "100 MB git blob refused unread" "" '^users/big\.yaml:1:1: error: file is 104857[0-9]+ bytes' \
    --repo "$tmp/bigrepo" --rev main
rm -rf "$d" "$tmp/bigrepo"

d=$tmp/laughs; fleet "$d"
{
	printf 'email: "me@example.org"\nrole: admin\nfull_name: &a0 "lol"\n'
	for i in $(seq 1 30); do
		printf 'k%d: &a%d [' "$i" "$i"
		for j in 1 2 3 4 5 6 7 8 9; do printf '*a%d, ' $((i - 1)); done
		printf '*a%d]\n' $((i - 1))
	done
} >"$d/users/me.yaml"
hostile "billion laughs: anchors refused, nothing expanded" "$d" 'users/me\.yaml:3:12: error: anchors \(&a0\) are not allowed'

d=$tmp/deep; fleet "$d"
{ printf 'email: "me@example.org"\nx: '; head -c 1000000 /dev/zero | tr '\0' '['; } >"$d/users/me.yaml"
hostile "1,000,000 levels of nesting stop at 64" "$d" 'users/me\.yaml:2:[0-9]+: error: nesting deeper than 64 levels'

d=$tmp/scalar; fleet "$d"
{ printf 'email: "me@example.org"\nfull_name: "'; head -c $((15 * 1024 * 1024)) /dev/zero | tr '\0' 'x'; printf '"\n'; } >"$d/users/me.yaml"
hostile "15 MB scalar refused" "$d" 'users/me\.yaml:2:12: error: value is 15728640 bytes; the limit is 65536'

d=$tmp/keys; fleet "$d"
/usr/bin/python3 -c '
import sys
with open(sys.argv[1], "w") as f:
    f.write("email: \"me@example.org\"\n")
    for i in range(200000):
        f.write("k%d: %d\n" % (i, i))
' "$d/users/me.yaml"
hostile "200,000 unknown keys: bounded report" "$d" "users/me\.yaml:1:1: error: 199000 more problems in this file are not shown"
check "200,000 unknown keys: the first 1000 in order, then stop" bash -c \
    "grep -q \"me.yaml:1001:1: error: unknown key 'k999'\" '$OUT' && [ \$(grep -c me.yaml '$OUT') = 1001 ]"

d=$tmp/dups; fleet "$d"
{ printf 'email: "me@example.org"\n'; for i in $(seq 1 50000); do echo "role: user"; done; } >"$d/users/me.yaml"
hostile "50,000 duplicate keys: each names the first" "$d" "users/me\.yaml:1001:1: error: duplicate key 'role' \(first defined at line 2\)"

d=$tmp/many; fleet "$d"
/usr/bin/python3 -c '
import sys
with open(sys.argv[1], "w") as f:
    f.write("email: \"me@example.org\"\nx: [" + "1," * 600000 + "1]\n")
' "$d/users/me.yaml"
hostile "600,000 values in one file stop at 500,000" "$d" "users/me\.yaml:2:[0-9]+: error: more than 500000 keys and values in one file"

d=$tmp/binary; fleet "$d"
head -c 1048576 /dev/urandom >"$d/nodes/home-1.yaml"
hostile "1 MiB of random bytes" "$d" 'nodes/home-1\.yaml:[0-9]+:[0-9]+: error: '

d=$tmp/nul; fleet "$d"
printf 'email: "me@example.org"\nfull_name: "a\\0b"\n' >"$d/users/me.yaml"
hostile "an escaped NUL in a value" "$d" 'users/me\.yaml:2:12: error: full_name: contains a NUL character'

d=$tmp/crlf; fleet "$d"
printf 'email: "me@example.org"\r\nrole: admin\r\nrole: user\r\n' >"$d/users/me.yaml"
hostile "CRLF line ends keep line numbers" "$d" "users/me\.yaml:3:1: error: duplicate key 'role' \(first defined at line 2\)"

d=$tmp/link; fleet "$d"
ln -s /etc/passwd "$d/users/root.yaml"
hostile "a symlink is not followed" "$d" 'users/root\.yaml:1:1: error: not a regular file'

d=$tmp/bom; fleet "$d"
printf '\xef\xbb\xbfemail: "me@example.org"\nrole: admin\n' >"$d/users/me.yaml"
"$cox" validate -q "$d" >"$OUT" 2>"$ERR"
check "a UTF-8 byte-order mark is accepted" test $? = 0
