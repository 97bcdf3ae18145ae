#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Table-driven golden tests for cox validate. Each fixture in tests/schema/{good,bad}/ is a
# whole fleet repository in one file (see tests/schema/fixture.py):
#   good/NAME.yaml  must validate: exit 0 and no "error:" line;
#   bad/NAME.yaml   must print exactly bad/NAME.expected and exit 1.
#
#   tests/schema/golden.sh [--update] [COX]     (COX defaults to build/cox)
# --update rewrites the .expected files from the current output: review the diff.
set -u
cd "$(dirname "$0")/../.." || exit 2
update=0
if [ "${1:-}" = --update ]; then update=1; shift; fi
cox=$(realpath "${1:-build/cox}")
tag=${GOLDEN_TAG:-$(basename "$(dirname "$cox")")}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for f in tests/schema/good/*.yaml tests/schema/bad/*.yaml; do
	name=${f#tests/schema/}
	d=$tmp/${name%.yaml}
	mkdir -p "$d"
	if ! /usr/bin/python3 tests/schema/fixture.py split "$f" "$d" 2>"$tmp/err"; then
		echo "not ok - golden[$tag] $name: bad fixture: $(cat "$tmp/err")"
		continue
	fi
	(cd "$d" && "$cox" validate -q .) >"$tmp/out" 2>"$tmp/err"
	rc=$?
	case $name in
	good/*)
		if [ $rc -eq 0 ] && ! grep -q ': error: ' "$tmp/out" && [ ! -s "$tmp/err" ]; then
			echo "ok - golden[$tag] $name"
		else
			echo "not ok - golden[$tag] $name: exit $rc"
			sed 's/^/#   /' "$tmp/out" "$tmp/err"
		fi
		;;
	bad/*)
		exp=${f%.yaml}.expected
		if [ $update = 1 ]; then
			cp "$tmp/out" "$exp"
		fi
		if [ $rc -eq 1 ] && [ -f "$exp" ] && cmp -s "$exp" "$tmp/out" && [ ! -s "$tmp/err" ]; then
			echo "ok - golden[$tag] $name"
		else
			echo "not ok - golden[$tag] $name: exit $rc"
			if [ -f "$exp" ]; then
				diff -u "$exp" "$tmp/out" | sed 's/^/#   /'
			else
				echo "#   missing $exp"
			fi
			sed 's/^/#   /' "$tmp/err"
		fi
		;;
	esac
done
