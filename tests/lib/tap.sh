# SPDX-License-Identifier: Apache-2.0
# Shared helpers for shell suites: ok/not ok lines that tests/run counts.
TAG=${TAG:-}
ok() { echo "ok - ${TAG:+[$TAG] }$*"; }
nok() { echo "not ok - ${TAG:+[$TAG] }$*"; }
# check NAME CMD...: ok if CMD succeeds.
check() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else nok "$name"; fi
}
# expect_rc NAME WANT CMD...: run CMD (output to $OUT/$ERR), compare the exit code.
expect_rc() {
	local name=$1 want=$2 rc
	shift 2
	"$@" >"$OUT" 2>"$ERR"
	rc=$?
	if [ "$rc" = "$want" ]; then
		ok "$name"
	else
		nok "$name: exit $rc, want $want"
		sed 's/^/#   /' "$OUT" "$ERR" | head -20
	fi
}
