#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The admin web UI in a real headless Chromium (issue 6): a personal cox state directory
# with one admin (alice, committed with the git CLI, passphrase set with cox admin passwd),
# `cox run --admin 127.0.0.1:0`, and tests/webui/browser.mjs driving the pages with
# playwright-core: login, a user and a device added and seen in history, a conflict between
# two sessions, a git push seen live, markup in a name shown as text, CSRF refused.
#   tests/webui/browser.sh [BUILD]     (BUILD defaults to build)
# Needs /usr/bin/chromium (Debian package chromium) and node_modules/playwright-core
# (npm ci at the repository root); without them every test prints a "skip" line.
set -u
cd "$(dirname "$0")/../.." || exit 2
build=$(realpath "${1:-build}")
cox=$build/cox
TAG=$(basename "$build")
. tests/lib/tap.sh

TESTS=(
	"log in"
	"add a user and a device; the commit is in history"
	"two sessions edit one user: the stale one sees the conflict and the current value"
	"a push with git shows on the open dashboard and users page without a reload"
	"markup in a full name is shown as text"
	"a mutation without the CSRF token is refused with 403"
	"no script errors or CSP violations in the pages"
)
skip_all() {
	local t
	echo "#" >&2
	echo "# SKIPPING THE BROWSER TESTS: $1" >&2
	echo "#" >&2
	for t in "${TESTS[@]}"; do
		echo "skip - ${TAG:+[$TAG] }webui: $t: $1"
	done
	exit 0
}
[ -x /usr/bin/chromium ] || skip_all "no /usr/bin/chromium (apt-get install chromium)"
[ -f node_modules/playwright-core/package.json ] ||
	skip_all "no node_modules/playwright-core (npm ci at the repository root)"
command -v node >/dev/null || skip_all "no node"
[ -x "$cox" ] || { nok "webui: $cox is not built"; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=tester GIT_AUTHOR_EMAIL=tester@example.com
export GIT_COMMITTER_NAME=tester GIT_COMMITTER_EMAIL=tester@example.com
sd=$tmp/sd
PASS='correct horse battery staple'

setup() {
	"$cox" init --personal "$sd" >"$tmp/init.log" 2>&1 || return 1
	git clone -q "$sd/fleet.git" "$tmp/clone" 2>>"$tmp/init.log" || return 1
	mkdir -p "$tmp/clone/users"
	printf 'email: "alice@example.com"\nfull_name: "Alice Admin"\nrole: admin\n' \
	    >"$tmp/clone/users/alice.yaml"
	git -C "$tmp/clone" add -A && git -C "$tmp/clone" commit -qm "alice, the admin" &&
	    git -C "$tmp/clone" push -q origin main 2>>"$tmp/init.log" || return 1
	"$cox" admin passwd "$sd" alice <<<"$PASS" >>"$tmp/init.log" 2>&1
}
setup || { nok "webui: set up a state directory with an admin"; sed 's/^/#   /' "$tmp/init.log"; exit 1; }

"$cox" run "$sd" --admin 127.0.0.1:0 >"$tmp/cox.log" 2>&1 &
pid=$!
url=
for _ in $(seq 100); do
	url=$(sed -n 's|.*admin: UI and API on \(http://127\.0\.0\.1:[0-9]*/\).*|\1|p' "$tmp/cox.log" 2>/dev/null | head -1)
	[ -n "$url" ] && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$url" ]; then
	nok "webui: cox run --admin 127.0.0.1:0 says where it listens"
	sed 's/^/#   /' "$tmp/cox.log" | tail -20
	exit 1
fi

COX_URL=$url COX_USER=alice COX_PASS=$PASS COX_REPO=$sd/fleet.git COX_TMP=$tmp TAG=$TAG \
    timeout 300 node tests/webui/browser.mjs
rc=$?
if [ "$rc" != 0 ]; then
	echo "# browser.mjs exited $rc; cox's log:"
	sed 's/^/#   /' "$tmp/cox.log" | tail -30
fi
exit "$rc"
