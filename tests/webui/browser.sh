#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The admin web UI in a real headless Chromium (issue 6): a personal cox state directory
# with one admin (alice, committed with the git CLI, passphrase set with cox admin passwd),
# `cox run --admin 127.0.0.1:0`, and tests/webui/browser.mjs driving the pages with
# playwright-core: login, a user and a device added and seen in history, a conflict between
# two sessions, a git push seen live, markup in a name shown as text, CSRF refused. Then
# review: a second state directory in the enterprise preset (review required) with two
# admins (alice, bob) and its own `cox run`: an edit is proposed, not committed; its author
# sees the diff and the plan but cannot approve; the other admin approves and merges; the
# author's open proposals page follows live; a branch pushed with git is listed and reviewed;
# a stale approval is refused and reported; the author closes a proposal.
#   tests/webui/browser.sh [BUILD]     (BUILD defaults to build)
# Needs /usr/bin/chromium (Debian package chromium) and node_modules/playwright-core
# (npm ci at the repository root); without them every test prints a "skip" line.
set -u
cd "$(dirname "$0")/../.." || exit 2
build=$(realpath "${1:-build}")
cox=$build/cox
TAG=$(basename "$build")
. tests/lib/tap.sh
. tests/lib/admin.sh

TESTS=(
	"log in"
	"add a user and a device; the commit is in history"
	"two sessions edit one user: the stale one sees the conflict and the current value"
	"a push with git shows on the open dashboard and users page without a reload"
	"without the event stream a page polls: a push still shows, within the polling interval"
	"markup in a full name is shown as text"
	"a mutation without the CSRF token is refused with 403"
	"review: an edit in the enterprise preset is proposed, main's history does not move"
	"review: a branch pushed with git (a slash in its name, markup in its title) is listed live and reviewed"
	"review: the author sees the diff and the plan and cannot approve their own proposal"
	"review: another admin approves and merges; the author's open proposals page follows live"
	"review: the merged change is on the users page, and history shows the merge's plan"
	"review: approving a proposal that changed since it was loaded says so and shows it as it is now"
	"review: the author opens a new proposal from the edit's link and closes it"
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
pid2=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	[ -n "$pid2" ] && kill "$pid2" 2>/dev/null && wait "$pid2" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$tmp"
	return 0
}
trap cleanup EXIT
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=tester GIT_AUTHOR_EMAIL=tester@example.com
export GIT_COMMITTER_NAME=tester GIT_COMMITTER_EMAIL=tester@example.com
sd=$tmp/sd
ed=$tmp/ed
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

# The enterprise preset requires review: two admins (alice, bob) and a user to edit (carol).
setup_enterprise() {
	"$cox" init --enterprise "$ed" >"$tmp/init-e.log" 2>&1 || return 1
	git clone -q "$ed/fleet.git" "$tmp/eclone" 2>>"$tmp/init-e.log" || return 1
	mkdir -p "$tmp/eclone/users"
	printf 'email: "alice@example.com"\nfull_name: "Alice Admin"\nrole: admin\n' \
	    >"$tmp/eclone/users/alice.yaml"
	printf 'email: "bob@example.com"\nfull_name: "Bob Admin"\nrole: admin\n' \
	    >"$tmp/eclone/users/bob.yaml"
	printf 'email: "carol@example.com"\nfull_name: "Carol Before"\nrole: user\n' \
	    >"$tmp/eclone/users/carol.yaml"
	git -C "$tmp/eclone" add -A && git -C "$tmp/eclone" commit -qm "two admins and a user" &&
	    git -C "$tmp/eclone" push -q origin main 2>>"$tmp/init-e.log" || return 1
	"$cox" admin passwd "$ed" alice <<<"$PASS" >>"$tmp/init-e.log" 2>&1 &&
	    "$cox" admin passwd "$ed" bob <<<"$PASS" >>"$tmp/init-e.log" 2>&1
}
setup_enterprise || { nok "webui: set up an enterprise state directory with two admins"
	sed 's/^/#   /' "$tmp/init-e.log"; exit 1; }

# start_cox DIR LOG: cox run on DIR in the background ($!); wait_url PID LOG: its URL in $url
start_cox() {
	"$cox" run "$1" --admin 127.0.0.1:0 >"$2" 2>&1 &
}
wait_url() {
	url=
	admin_wait_port "$1" "$2" || return 1
	url=http://127.0.0.1:$ADMIN_PORT/
}
start_cox "$sd" "$tmp/cox.log"
pid=$!
start_cox "$ed" "$tmp/cox-e.log"
pid2=$!
no_url() {
	nok "webui: cox run --admin 127.0.0.1:0 says where it listens ($1)"
	sed 's/^/#   /' "$tmp/$1" | tail -20
	exit 1
}
wait_url "$pid" "$tmp/cox.log" || no_url cox.log
url1=$url
wait_url "$pid2" "$tmp/cox-e.log" || no_url cox-e.log
url2=$url

COX_URL=$url1 COX_USER=alice COX_PASS=$PASS COX_REPO=$sd/fleet.git COX_TMP=$tmp TAG=$TAG \
    COX_URL_REVIEW=$url2 COX_REPO_REVIEW=$ed/fleet.git COX_USER2=bob \
    timeout 300 node tests/webui/browser.mjs
rc=$?
if [ "$rc" != 0 ]; then
	echo "# browser.mjs exited $rc; cox's logs:"
	sed 's/^/#   /' "$tmp/cox.log" | tail -30
	echo "# (enterprise)"
	sed 's/^/#   /' "$tmp/cox-e.log" | tail -30
fi
for l in "$tmp/cox.log" "$tmp/cox-e.log"; do
	if grep -qE 'ERROR: AddressSanitizer|runtime error:' "$l"; then
		nok "webui: a sanitizer report in $(basename "$l")"
		grep -E -A5 'AddressSanitizer|runtime error' "$l" | head -30 | sed 's/^/#   /'
		rc=1
	fi
done
exit "$rc"
