#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Admin authentication from the outside (docs/DESIGN.md §10): cox admin passwd on a real
# cox init state directory — only admins of the applied branch's head, changed with the
# real git CLI; the passphrase from a pipe and from a pseudo-terminal without echo — and
# cox tokens create/list/revoke; state.db read with the sqlite3 CLI holds hashes only, the
# audit log records every change and no secret; --help and exit codes.
#   tests/cli/admin.sh [BUILD]     (BUILD defaults to build)
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
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=tester GIT_AUTHOR_EMAIL=tester@example.com
export GIT_COMMITTER_NAME=tester GIT_COMMITTER_EMAIL=tester@example.com
sd=$tmp/sd
db=$sd/state.db
PASS='correct horse battery staple'

# Is the text $1 nowhere in state.db and its WAL (bytes, not rows: freed pages too)?
not_in_db() { ! cat "$sd"/state.db* | grep -aqF -- "$1"; }

# Run a command on a pseudo-terminal, answering the two passphrase prompts; its output
# (what the terminal showed) on stdout, its exit code as ours.
on_tty() { # PASS1 PASS2 CMD...
	/usr/bin/python3 - "$@" <<'EOF'
import os, pty, signal, sys
p1, p2, cmd = sys.argv[1].encode(), sys.argv[2].encode(), sys.argv[3:]
signal.alarm(30)
pid, fd = pty.fork()
if pid == 0:
    os.execv(cmd[0], cmd)
out = b""
def read_until(pat):
    global out
    while pat not in out:
        try:
            d = os.read(fd, 1024)
        except OSError:
            return
        if not d:
            return
        out += d
read_until(b"New passphrase for")
os.write(fd, p1 + b"\n")
read_until(b"Again: ")
os.write(fd, p2 + b"\n")
while True:
    try:
        d = os.read(fd, 1024)
    except OSError:  # EIO: the child closed the terminal
        break
    if not d:
        break
    out += d
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
EOF
}

# ---- --help and usage errors ----

for c in "admin" "admin passwd" "tokens" "tokens create" "tokens list" "tokens revoke"; do
	# shellcheck disable=SC2086
	expect_rc "cox $c --help" 0 "$cox" $c --help
	check "  ... prints the usage" grep -q "^usage: cox ${c%% *}" "$OUT"
done
check "admin --help names the minimum length" bash -c "'$cox' admin --help | grep -q 'At least 10 characters'"
check "cox --help lists admin and tokens" bash -c "'$cox' --help | grep -q '^  admin ' && '$cox' --help | grep -q '^  tokens '"
expect_rc "admin without a subcommand: 2" 2 "$cox" admin
expect_rc "admin frob: 2" 2 "$cox" admin frob
check "  ... names the subcommands" grep -q "unknown subcommand 'frob' (passwd)" "$ERR"
expect_rc "admin passwd without NAME: 2" 2 "$cox" admin passwd "$sd"
expect_rc "admin passwd with 3 arguments: 2" 2 "$cox" admin passwd "$sd" alice bob
expect_rc "tokens without a subcommand: 2" 2 "$cox" tokens
expect_rc "tokens create without --name: 2" 2 "$cox" tokens create "$sd" --scope read
expect_rc "tokens create without --scope: 2" 2 "$cox" tokens create "$sd" --name ci
expect_rc "tokens create --scope root: 2" 2 "$cox" tokens create "$sd" --name ci --scope root
check "  ... lists the scopes" grep -q "read, write or admin" "$ERR"
for ttl in 0 5x 367d -1d; do
	expect_rc "tokens create --ttl $ttl: 2" 2 "$cox" tokens create "$sd" --name ci --scope read --ttl "$ttl"
done
expect_rc "tokens list without DIR: 2" 2 "$cox" tokens list
expect_rc "tokens revoke without NAME: 2" 2 "$cox" tokens revoke "$sd"
expect_rc "admin passwd on a missing DIR: 1" 1 "$cox" admin passwd "$tmp/nope" alice </dev/null
check "  ... says it is not a state directory" grep -q "not a cox state directory" "$ERR"

# ---- cox admin passwd ----

"$cox" init --from fleet.example "$sd" >/dev/null 2>&1 || { nok "cox init"; exit 1; }
expect_rc "passwd alice (admin) from a pipe" 0 "$cox" admin passwd "$sd" alice <<<"$PASS"
check "  ... says so" grep -qx "cox admin passwd: the passphrase of alice is set" "$OUT"
check "state.db: alice's Argon2id hash (64 MiB, 2 passes)" test \
    "$(sqlite3 "$db" "SELECT substr(hash, 1, 31) FROM auth_passwords WHERE username = 'alice'")" = \
    '$argon2id$v=19$m=65536,t=2,p=1$'
check "state.db: the passphrase is nowhere in it" not_in_db "$PASS"
check "fleet.git: not in git either" bash -c "! grep -rqF '$PASS' '$sd/fleet.git'"
expect_rc "passwd bob (role user by default): 1" 1 "$cox" admin passwd "$sd" bob <<<"$PASS"
check "  ... is not an admin" grep -q "bob is not an admin (role: user at [0-9a-f]\{12\})" "$ERR"
expect_rc "passwd carol (role user): 1" 1 "$cox" admin passwd "$sd" carol <<<"$PASS"
expect_rc "passwd nobody: 1" 1 "$cox" admin passwd "$sd" nobody <<<"$PASS"
check "  ... is not a user" grep -q "nobody is not a user of the fleet" "$ERR"
check "no hash for the refused" test "$(sqlite3 "$db" "SELECT group_concat(username) FROM auth_passwords")" = alice
expect_rc "passwd with 9 characters: 1" 1 "$cox" admin passwd "$sd" alice <<<"123456789"
check "  ... says the minimum" grep -q "is 9 characters long; at least 10 are needed" "$ERR"
expect_rc "passwd with nothing on stdin: 1" 1 "$cox" admin passwd "$sd" alice </dev/null
check "  ... says so" grep -q "no passphrase on standard input" "$ERR"
head -c 2000 /dev/zero | tr '\0' x >"$tmp/long"
expect_rc "passwd with 2000 bytes: 1" 1 "$cox" admin passwd "$sd" alice <"$tmp/long"
check "  ... too long" grep -q "longer than 1024 bytes" "$ERR"
hash1=$(sqlite3 "$db" "SELECT hash FROM auth_passwords WHERE username = 'alice'")

on_tty "$PASS 2" "$PASS 2" "$cox" admin passwd "$sd" alice >"$OUT" 2>"$ERR"
check "tty: passwd read twice without echo: exit 0" test $? = 0
check "tty: both prompts shown" bash -c "grep -q 'New passphrase for alice: ' '$OUT' && grep -q 'Again: ' '$OUT'"
check "tty: the passphrase was not echoed" bash -c "! grep -qF '$PASS' '$OUT'"
check "tty: set" grep -q "the passphrase of alice is set" "$OUT"
check "tty: a new hash" test "$(sqlite3 "$db" "SELECT hash FROM auth_passwords WHERE username = 'alice'")" != "$hash1"
hash2=$(sqlite3 "$db" "SELECT hash FROM auth_passwords WHERE username = 'alice'")
on_tty "$PASS" "$PASS typo" "$cox" admin passwd "$sd" alice >"$OUT" 2>"$ERR"
check "tty: passphrases that differ: exit 1" test $? = 1
check "  ... says so" grep -q "the passphrases differ; nothing changed" "$OUT"
check "  ... nothing changed" test "$(sqlite3 "$db" "SELECT hash FROM auth_passwords WHERE username = 'alice'")" = "$hash2"
check "tty: echo is off at the prompt; Ctrl-C there kills it and turns echo back on" /usr/bin/python3 -c '
import os, pty, signal, sys, termios
signal.alarm(30)
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while b"New passphrase" not in out:
    out += os.read(fd, 1024)
assert not termios.tcgetattr(fd)[3] & termios.ECHO
os.write(fd, b"half a passphr\x03")
assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == -signal.SIGINT
assert termios.tcgetattr(fd)[3] & termios.ECHO
' "$cox" admin passwd "$sd" alice
check "  ... nothing changed" test "$(sqlite3 "$db" "SELECT hash FROM auth_passwords WHERE username = 'alice'")" = "$hash2"

# A session in state.db ends with a passphrase change (written as the server would).
sqlite3 "$db" "INSERT INTO auth_sessions VALUES (randomblob(32), 'alice', '127.0.0.1', 1, 1, 9999999999)"
expect_rc "passwd alice with a session open" 0 "$cox" admin passwd "$sd" alice <<<"$PASS"
check "  ... ends it" grep -qx "cox admin passwd: the passphrase of alice is set; 1 session ended" "$OUT"
check "  ... gone from state.db" test "$(sqlite3 "$db" "SELECT count(*) FROM auth_sessions")" = 0

# Only the applied branch's head counts: a proposal does not, a push to main does.
git clone -q "$sd/fleet.git" "$tmp/clone" 2>"$ERR"
cd "$tmp/clone" || exit 1
sed -i 's/^role: admin/role: user/' users/alice.yaml
printf 'email: "erin@example.com"\nrole: admin\n' >users/erin.yaml
git add -A && git commit -qm "alice steps down, erin takes over"
git push -q origin HEAD:refs/heads/proposals/erin 2>"$ERR"
cd - >/dev/null || exit 1
expect_rc "proposal branch: erin is not an admin yet: 1" 1 "$cox" admin passwd "$sd" erin <<<"$PASS"
expect_rc "proposal branch: alice still is" 0 "$cox" admin passwd "$sd" alice <<<"$PASS"
git -C "$tmp/clone" push -q origin HEAD:main 2>"$ERR"
check "the change is on main" test "$(git --git-dir="$sd/fleet.git" rev-parse main)" = "$(git -C "$tmp/clone" rev-parse HEAD)"
expect_rc "main: erin is an admin now" 0 "$cox" admin passwd "$sd" erin <<<"$PASS"
expect_rc "main: alice is not: 1" 1 "$cox" admin passwd "$sd" alice <<<"$PASS"

# The personal template has no users: adding the first admin takes a commit.
p=$tmp/personal
expect_rc "init --personal" 0 "$cox" init --personal "$p"
expect_rc "personal: no user 'me' yet: 1" 1 "$cox" admin passwd "$p" me <<<"$PASS"
git clone -q "$p/fleet.git" "$tmp/pclone" 2>"$ERR"
mkdir -p "$tmp/pclone/users"
printf 'email: "me@example.com"\nrole: admin\n' >"$tmp/pclone/users/me.yaml"
git -C "$tmp/pclone" add -A && git -C "$tmp/pclone" commit -qm "me, the admin"
expect_rc "personal: push users/me.yaml" 0 git -C "$tmp/pclone" push -q origin main
expect_rc "personal: passwd me" 0 "$cox" admin passwd "$p" me <<<"$PASS"

# ---- cox tokens ----

expect_rc "tokens list with none" 0 "$cox" tokens list "$sd"
check "  ... says there are none" grep -q "^no tokens" "$OUT"
expect_rc "tokens create ci --scope write --ttl 30d" 0 "$cox" tokens create "$sd" --name ci --scope write --ttl 30d
tok=$(cat "$OUT")
check "  ... stdout is the token alone: pht_ + 43 base64url" bash -c "[[ '$tok' =~ ^pht_[A-Za-z0-9_-]{43}\$ ]] && test \$(wc -l <'$OUT') = 1"
check "  ... stderr says to store it" grep -q "Store it now: it is shown only this once" "$ERR"
check "  ... and when it expires" grep -q "token ci (id 1, scope write) valid until 20" "$ERR"
check "state.db: the token is not in it" not_in_db "${tok#pht_}"
check "state.db: SHA-256 of its 32 bytes" test "$(sqlite3 "$db" "SELECT lower(hex(hash)) FROM auth_tokens WHERE name = 'ci'")" = \
    "$(/usr/bin/python3 -c 'import base64, hashlib, sys; t = sys.argv[1][4:]; print(hashlib.sha256(base64.urlsafe_b64decode(t + "=")).hexdigest())' "$tok")"
expect_rc "tokens create ci again: 1" 1 "$cox" tokens create "$sd" --name ci --scope read
check "  ... revoke it first" grep -q "a token named ci exists (id 1); revoke it first" "$ERR"
check "  ... and prints no token" test ! -s "$OUT"
expect_rc "tokens create bad name: 1" 1 "$cox" tokens create "$sd" --name "Bad Name" --scope read
check "  ... says what a name is" grep -q "is not a token name" "$ERR"
expect_rc "tokens create ro --scope read (default ttl)" 0 "$cox" tokens create "$sd" --name ro --scope read
expect_rc "tokens list" 0 "$cox" tokens list "$sd"
check "  ... a header and both tokens" bash -c "grep -q '^ID  *NAME  *SCOPE  *STATUS  *CREATED  *EXPIRES  *LAST USED  *CREATED BY' '$OUT' &&
    grep -qE '^1 +ci +write +active +20[0-9-]+T[0-9:]+Z +20[0-9-]+T[0-9:]+Z +never +unix:' '$OUT' &&
    grep -qE '^2 +ro +read +active ' '$OUT'"
check "  ... no token in the listing" bash -c "! grep -qF '${tok#pht_}' '$OUT'"
expect_rc "tokens revoke ci" 0 "$cox" tokens revoke "$sd" ci
check "  ... says so" grep -qx "cox tokens revoke: revoked ci (id 1)" "$OUT"
expect_rc "tokens revoke ci again: 1" 1 "$cox" tokens revoke "$sd" ci
check "  ... no such token" grep -q "no unrevoked token named or numbered 'ci'" "$ERR"
expect_rc "tokens revoke 2 (by id)" 0 "$cox" tokens revoke "$sd" 2
check "  ... revoked ro" grep -qx "cox tokens revoke: revoked ro (id 2)" "$OUT"
expect_rc "tokens create ci: the name is free again" 0 "$cox" tokens create "$sd" --name ci --scope admin --ttl 12h
expect_rc "tokens list --json" 0 "$cox" tokens list "$sd" --json
check "  ... three tokens, two revoked, never used" /usr/bin/python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["tokens"]
assert [(x["id"], x["name"], x["scope"], x["status"]) for x in t] == \
    [(1, "ci", "write", "revoked"), (2, "ro", "read", "revoked"), (3, "ci", "admin", "active")], t
assert all(x["last_used"] is None and x["created_by"].startswith("unix:") for x in t)
assert t[0]["revoked"] is not None and t[2]["revoked"] is None
assert set(t[0]) == {"id", "name", "scope", "status", "created", "expires", "last_used",
    "revoked", "created_by"}, t[0]
' "$OUT"
sqlite3 "$db" "UPDATE auth_tokens SET expires_unix = 1 WHERE id = 3"
expect_rc "tokens list after expiry" 0 "$cox" tokens list "$sd"
check "  ... shows it expired" grep -qE '^3 +ci +admin +expired ' "$OUT"

# ---- the audit log ----

expect_rc "audit --json" 0 "$cox" audit --json "$sd"
check "audit: passwd, token created and revoked, each named" /usr/bin/python3 -c '
import json, sys
a = [(e["action"], e["object"]) for e in json.load(open(sys.argv[1])) if e["action"] != "fleet.init"]
want = [("admin.passwd", "alice")] * 4 + [("admin.passwd", "erin"), ("token.created", "ci"), ("token.created", "ro"),
     ("token.revoked", "ci"), ("token.revoked", "ro"), ("token.created", "ci")]
assert a == want, a
' "$OUT"
check "audit: sessions ended and the unix user in the detail" grep -q '"detail": "sessions_ended=1 user=' "$OUT"
check "audit: no passphrase, no token" bash -c "! grep -qF '$PASS' '$OUT' && ! grep -qF '${tok#pht_}' '$OUT'"
expect_rc "audit verify: intact" 0 "$cox" audit verify "$sd"
