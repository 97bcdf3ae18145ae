#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The controller's state directory from the outside: cox init (files, modes, the seed
# commit), pushes through the pre-receive hook with the real git CLI, cox nodes add
# checked by a real buoy (dialled and sent a signed config with the controller's own
# credentials from state.db), cox audit against tampering with the sqlite3 CLI, and
# cox ssh-key.
#   tests/cli/state.sh [BUILD]     (BUILD defaults to build)
set -u
cd "$(dirname "$0")/../.." || exit 2
top=$(pwd)
build=$(realpath "${1:-build}")
cox=$build/cox
buoy=$build/buoy
ctl=$build/tools/ctl_push
TAG=$(basename "$build")
. tests/lib/tap.sh
tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
OUT=$tmp/out
ERR=$tmp/err
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=tester GIT_AUTHOR_EMAIL=tester@example.com
export GIT_COMMITTER_NAME=tester GIT_COMMITTER_EMAIL=tester@example.com
sd=$tmp/sd
db=$sd/state.db

# ---- cox init ----

expect_rc "init --from fleet.example" 0 "$cox" init --from fleet.example "$sd"
check "init: prints the clone URL" grep -qF "git clone $sd/fleet.git" "$OUT"
check "init: prints the next steps" grep -qF "cox nodes add $sd NAME" "$OUT"
check "DIR is 0700" test "$(stat -c %a "$sd")" = 700
check "state.db is 0600" test "$(stat -c %a "$db")" = 600
check "DIR holds fleet.git and state.db only" test "$(ls -A "$sd" | tr '\n' ' ')" = "fleet.git state.db "
check "fleet.git is bare with HEAD at main" test \
    "$(git --git-dir="$sd/fleet.git" rev-parse --is-bare-repository) $(git --git-dir="$sd/fleet.git" symbolic-ref HEAD)" = "true refs/heads/main"
check "pre-receive hook is 0755" test "$(stat -c %a "$sd/fleet.git/hooks/pre-receive")" = 755
check "the hook runs this cox" grep -qF "cox='$cox'" "$sd/fleet.git/hooks/pre-receive"
check "one seed commit by cox" test "$(git --git-dir="$sd/fleet.git" log --format='%an <%ae>|%cn|%s' main)" = \
    "cox <cox@localhost>|cox|Initial fleet (cox init)"
check "state.db: fleet id, preset, branch" test \
    "$(sqlite3 "$db" "SELECT group_concat(key || '=' || value, ' ') FROM (SELECT * FROM meta ORDER BY key)")" = \
    "branch=main fleet_id=example-corp preset=enterprise"
check "state.db: the PKI, signing and SSH keys" test \
    "$(sqlite3 "$db" "SELECT group_concat(name, ' ') FROM (SELECT name FROM secrets ORDER BY name)")" = \
    "controller.key controller.pem device-ca.key device-ca.pem fleet-ca.key fleet-ca.pem root.key root.pem sign.key ssh.key ssh.pub"
check "state.db: sign.key is 64 raw bytes" test "$(sqlite3 "$db" "SELECT length(value) FROM secrets WHERE name = 'sign.key'")" = 64
sqlite3 "$db" "SELECT value FROM secrets WHERE name = 'controller.pem'" >"$tmp/controller.pem"
check "controller.pem is spiffe://example-corp/controller" bash -c \
    "openssl x509 -in '$tmp/controller.pem' -noout -ext subjectAltName | grep -q 'URI:spiffe://example-corp/controller'"

git clone -q "$sd/fleet.git" "$tmp/clone" 2>"$ERR"
check "git clone of fleet.git has fleet.example's files" diff -r --exclude=.git fleet.example "$tmp/clone"
expect_rc "the clone validates" 0 "$cox" validate -q "$tmp/clone"

# ---- pushes through the pre-receive hook ----

cd "$tmp/clone" || exit 1
sed -i 's/rotate: "15m"/rotate: "20m"/' fleet.yaml
git commit -qam "rotate every 20 minutes"
expect_rc "push a valid change to main: accepted" 0 git push -q origin main
check "main moved to the pushed commit" test "$(git rev-parse HEAD)" = "$(git --git-dir="$sd/fleet.git" rev-parse main)"
good=$(git rev-parse HEAD)
lines=$(wc -l <fleet.yaml)
printf 'key: value: other\n' >>fleet.yaml
git commit -qam "broken"
expect_rc "push an invalid change to main: refused" 1 git push origin main
check "refused: git shows path:line:col" grep -qF "remote: fleet.yaml:$((lines + 1)):11: error: mapping values are not allowed in this context" "$ERR"
check "refused: the hook says why" grep -q "remote: cox: refusing [0-9a-f]* for refs/heads/main: it does not validate" "$ERR"
check "refused: main is unchanged" test "$(git --git-dir="$sd/fleet.git" rev-parse main)" = "$good"
expect_rc "the same change to proposals/x: accepted" 0 git push -q origin HEAD:refs/heads/proposals/x
check "proposals/x holds it" test "$(git --git-dir="$sd/fleet.git" rev-parse proposals/x)" = "$(git rev-parse HEAD)"
expect_rc "deleting main: refused" 1 git push origin :main
check "main still there" test "$(git --git-dir="$sd/fleet.git" rev-parse main)" = "$good"
git reset -q --hard "$good"
printf 'x: 1\n' >>nodes/ams-1.yaml
mkdir -p users && printf 'email: eve@example.com\nrol: admin\n' >users/eve.yaml
git add -A && git commit -qm "two broken files"
expect_rc "two broken files: refused" 1 git push origin main
check "both errors shown, sorted" bash -c "grep -o 'remote: [a-z0-9/.-]*yaml:[0-9]*:[0-9]*' '$ERR' | cut -d' ' -f2 | tr '\n' ' ' | grep -q '^nodes/ams-1.yaml:[0-9]*:1 users/eve.yaml:2:1 \$'"
git reset -q --hard "$good"
cd "$top" || exit 1

# ---- cox init: refusals and the template ----

ls -A "$sd" >"$tmp/before"
expect_rc "init into a non-empty folder: exit 1" 1 "$cox" init "$sd"
check "non-empty: says so" grep -q "exists and is not empty" "$ERR"
check "non-empty: nothing changed" bash -c "ls -A '$sd' | cmp -s - '$tmp/before'"
cp -r fleet.example "$tmp/bad"
printf 'key: value: other\n' >>"$tmp/bad/fleet.yaml"
expect_rc "init --from an invalid fleet: exit 1" 1 "$cox" init --from "$tmp/bad" "$tmp/sd-bad"
check "invalid --from: the error at path:line:col" grep -qF "$tmp/bad/fleet.yaml:$((lines + 1)):11: error: mapping values" "$ERR"
check "invalid --from: nothing made" test ! -e "$tmp/sd-bad"
expect_rc "init into a folder inside --from: exit 1" 1 "$cox" init --from "$tmp/clone" "$tmp/clone/state"
check "  ... says why, makes nothing" bash -c "grep -q 'must not live in a fleet repository' '$ERR' && test ! -e '$tmp/clone/state'"
mkdir "$tmp/empty"
chmod 0755 "$tmp/empty"
PATH=/nonexistent expect_rc "init failing half-way (no ssh-keygen): exit 1" 1 "$cox" init "$tmp/empty"
check "failing half-way: the empty folder is left empty, mode restored" test \
    "$(ls -A "$tmp/empty" | wc -l) $(stat -c %a "$tmp/empty")" = "0 755"
PATH=/nonexistent expect_rc "init failing half-way into a new folder: exit 1" 1 "$cox" init "$tmp/new"
check "failing half-way: the new folder is gone" test ! -e "$tmp/new"
expect_rc "init --personal without --from" 0 "$cox" init --personal "$tmp/My Fleet_1"
expect_rc "  ... its main validates" 0 "$cox" validate -q --repo "$tmp/My Fleet_1/fleet.git" --rev main
check "  ... fleet id from the folder's name, preset personal" bash -c \
    "git --git-dir='$tmp/My Fleet_1/fleet.git' show main:fleet.yaml | grep -q '^  id: my-fleet-1 ' &&
     git --git-dir='$tmp/My Fleet_1/fleet.git' show main:fleet.yaml | grep -q '^  preset: personal'"
expect_rc "init --enterprise --fleet-id into an empty folder" 0 "$cox" init --enterprise --fleet-id acme.example "$tmp/empty"
check "  ... the folder became 0700" test "$(stat -c %a "$tmp/empty")" = 700
expect_rc "  ... its main validates" 0 "$cox" validate -q --repo "$tmp/empty/fleet.git" --rev main
expect_rc "init --fleet-id with an invalid id: exit 2" 2 "$cox" init --fleet-id Bad_Id "$tmp/x1"
expect_rc "init --personal --from an enterprise fleet: exit 1" 1 "$cox" init --personal --from fleet.example "$tmp/x2"
check "  ... names the conflict" grep -q "says preset enterprise" "$ERR"
expect_rc "init without DIR: exit 2" 2 "$cox" init
expect_rc "init with two DIRs: exit 2" 2 "$cox" init "$tmp/a" "$tmp/b"

# ---- cox nodes add: a real buoy takes the result ----

n1=$tmp/node-ams-1
"$buoy" keygen --state-dir "$n1" >/dev/null
"$buoy" csr --state-dir "$n1" --fleet example-corp --name ams-1 >"$tmp/ams-1.csr"
expect_rc "nodes add ams-1 from buoy's CSR" 0 "$cox" nodes add "$sd" ams-1 --csr "$tmp/ams-1.csr" --out "$n1"
check "nodes add: ca.pem, node.pem, controller.pub, 0600" test \
    "$(stat -c '%a %n' "$n1/ca.pem" "$n1/node.pem" "$n1/controller.pub" | sed "s|$n1/||" | tr '\n' ' ')" = \
    "600 ca.pem 600 node.pem 600 controller.pub "
check "node.pem is spiffe://example-corp/node/ams-1" bash -c \
    "openssl x509 -in '$n1/node.pem' -noout -ext subjectAltName | grep -q 'URI:spiffe://example-corp/node/ams-1'"
check "node.pem verifies against ca.pem" bash -c "openssl verify -CAfile '$n1/ca.pem' '$n1/node.pem' >/dev/null"
check "node.pem's key is node.key's" test \
    "$(openssl x509 -in "$n1/node.pem" -noout -pubkey)" = "$(openssl pkey -in "$n1/node.key" -pubout)"
expect_rc "nodes list" 0 "$cox" nodes list "$sd"
check "nodes list: ams-1 enrolled, fra-1 not" bash -c \
    "grep -qE '^ams-1 +entry +eu-ams +yes ' '$OUT' && grep -qE '^fra-1 +exit +eu-fra +no ' '$OUT'"
expect_rc "nodes list --json" 0 "$cox" nodes list --json "$sd"
check "nodes list --json: four nodes, ams-1 enrolled" /usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
n = {x["name"]: x for x in d["nodes"]}
assert sorted(n) == ["ams-1", "ams-2", "fra-1", "waw-1"], n
assert n["ams-1"]["enrolled"] and not n["fra-1"]["enrolled"] and n["fra-1"]["roles"] == ["exit"]
assert len(d["revision"]) == 40
' "$OUT"

: >"$tmp/buoy.log"
"$buoy" run --state-dir "$n1" --listen 127.0.0.1:0 --dataplane none 2>>"$tmp/buoy.log" &
pid=$!
port=
for _ in $(seq 100); do
	port=$(grep -o 'listen=127.0.0.1:[0-9]*' "$tmp/buoy.log" | cut -d: -f2)
	[ -n "$port" ] && break
	sleep 0.05
done
check "buoy run serves with the enrolled files (port ${port:-none})" test -n "$port"
check "buoy: serving as spiffe://example-corp/node/ams-1" grep -q "serving NodeControl node=spiffe://example-corp/node/ams-1" "$tmp/buoy.log"
check "buoy: the controller key is pinned" bash -c "! grep -q 'no pinned controller key' '$tmp/buoy.log'"
if [ -x "$ctl" ] && [ -n "$port" ]; then
	# The controller's own credentials, straight from state.db: mTLS and a signed config.
	c=$tmp/ctl
	mkdir -m 0700 "$c"
	sqlite3 "$db" "SELECT value FROM secrets WHERE name = 'controller.key'" >"$c/controller.key"
	cp "$tmp/controller.pem" "$c/controller.pem"
	sqlite3 "$db" "SELECT hex(value) FROM secrets WHERE name = 'sign.key'" |
	    /usr/bin/python3 -c 'import base64, sys; print(base64.b64encode(bytes.fromhex(sys.stdin.read().strip())).decode())' >"$c/sign.key"
	conn=(--target "127.0.0.1:$port" --ca "$n1/ca.pem" --cert "$c/controller.pem" --key "$c/controller.key"
	    --expect-id spiffe://example-corp/node/ams-1 --timeout 10)
	expect_rc "the controller's certificate dials buoy (GetStatus)" 0 "$ctl" status "${conn[@]}"
	expect_rc "a config signed with sign.key is applied" 0 "$ctl" apply "${conn[@]}" --sign-key "$c/sign.key" \
	    --fleet example-corp --node ams-1 --revision "$good" --serial 1
	check "  ... buoy says applied" grep -q "^applied " "$OUT"
else
	nok "ctl_push missing: build it with make unit"
fi
kill -TERM "$pid"
wait "$pid"
pid=

"$buoy" csr --state-dir "$n1" --fleet example-corp --name fra-1 >"$tmp/fra-1.csr"
expect_rc "a CSR for another node's name: exit 1" 1 "$cox" nodes add "$sd" ams-1 --csr "$tmp/fra-1.csr" --out "$tmp/o2"
check "  ... says which id it asked for" grep -q "CSR asks for spiffe://example-corp/node/fra-1, expected spiffe://example-corp/node/ams-1" "$ERR"
check "  ... wrote nothing" test ! -e "$tmp/o2"
"$buoy" csr --state-dir "$n1" --fleet other-fleet --name ams-1 >"$tmp/other.csr"
expect_rc "a CSR for another fleet: exit 1" 1 "$cox" nodes add "$sd" ams-1 --csr "$tmp/other.csr" --out "$tmp/o2"
expect_rc "a node not in the fleet: exit 1" 1 "$cox" nodes add "$sd" ghost --csr "$tmp/ams-1.csr" --out "$tmp/o2"
check "  ... says so" grep -q "node 'ghost' is not in the fleet" "$ERR"
printf 'not a CSR\n' >"$tmp/junk.csr"
expect_rc "junk instead of a CSR: exit 1" 1 "$cox" nodes add "$sd" ams-1 --csr "$tmp/junk.csr" --out "$tmp/o2"
expect_rc "nodes add without --out: exit 2" 2 "$cox" nodes add "$sd" ams-1 --csr "$tmp/ams-1.csr"
old=$(openssl x509 -in "$n1/node.pem" -noout -serial)
expect_rc "re-enroll ams-1 (CSR on stdin)" 0 "$cox" nodes add "$sd" ams-1 --csr - --out "$n1" <"$tmp/ams-1.csr"
check "  ... a new certificate" test "$(openssl x509 -in "$n1/node.pem" -noout -serial)" != "$old"
expect_rc "nodes remove ams-1" 0 "$cox" nodes remove "$sd" ams-1
expect_rc "nodes remove ams-1 again: exit 1" 1 "$cox" nodes remove "$sd" ams-1

# ---- cox audit ----

expect_rc "audit verify" 0 "$cox" audit verify "$sd"
check "audit verify: intact, 4 entries" grep -qx "audit log intact: 4 entries" "$OUT"
expect_rc "audit" 0 "$cox" audit "$sd"
check "audit: init, enroll, re-enroll, remove" test "$(awk '{print $4 "/" $5}' "$OUT" | tr '\n' ' ')" = \
    "fleet.init/example-corp node.enrolled/ams-1 node.enrolled/ams-1 node.removed/ams-1 "
check "audit: the re-enrollment names the replaced serial" grep -q "node.enrolled .* replaces=" "$OUT"
expect_rc "audit --limit 2 --json" 0 "$cox" audit --limit 2 --json "$sd"
check "audit --json: the 2 newest, with hashes" /usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert [e["seq"] for e in d] == [3, 4] and all(len(e["hash"]) == 64 for e in d), d
' "$OUT"
tamper() { # NAME SQL WANT_SEQ
	rm -rf "$tmp/t"
	cp -a "$sd" "$tmp/t"
	sqlite3 "$tmp/t/state.db" "$2"
	expect_rc "tamper ($1): verify exits 1" 1 "$cox" audit verify "$tmp/t"
	check "tamper ($1): broken at entry $3" grep -q "^audit log broken at entry $3: " "$OUT"
}
tamper "changed detail" "UPDATE audit SET detail = 'forged' WHERE seq = 2" 2
tamper "deleted entry" "DELETE FROM audit WHERE seq = 3" 3
tamper "swapped entries" "UPDATE audit SET seq = -seq WHERE seq IN (2, 3); UPDATE audit SET seq = CASE seq WHEN -2 THEN 3 ELSE 2 END WHERE seq < 0" 2
tamper "deleted last entry" "DELETE FROM audit WHERE seq = 4" 4
expect_rc "audit verify without DIR: exit 2" 2 "$cox" audit verify
expect_rc "audit of a folder that is no state dir: exit 1" 1 "$cox" audit "$tmp/clone"
check "  ... says so" grep -q "not a cox state directory" "$ERR"

# ---- cox ssh-key, and no secret in git ----

expect_rc "ssh-key" 0 "$cox" ssh-key "$sd"
check "ssh-key: one ssh-ed25519 line for cox@example-corp" grep -qxE 'ssh-ed25519 [A-Za-z0-9+/]+=* cox@example-corp' "$OUT"
check "ssh-key: ssh-keygen reads it" bash -c "ssh-keygen -l -f '$OUT' | grep -q '(ED25519)'"
check "ssh.key is an OpenSSH private key" bash -c \
    "sqlite3 '$db' \"SELECT value FROM secrets WHERE name = 'ssh.key'\" | grep -q 'BEGIN OPENSSH PRIVATE KEY'"
git -C "$tmp/clone" fetch -q origin
check "no PRIVATE KEY anywhere in fleet.git's history" bash -c \
    "! git --git-dir='$sd/fleet.git' log -p --all | grep -q 'PRIVATE KEY' && ! git -C '$tmp/clone' log -p --all | grep -q 'PRIVATE KEY'"
check "no temporary files left in the state dir" test "$(ls -A "$sd" | tr '\n' ' ')" = "fleet.git state.db "

# ---- --help everywhere ----

for c in init nodes audit ssh-key; do
	expect_rc "cox $c --help: exit 0" 0 "$cox" "$c" --help
	check "cox $c --help: usage on stdout" grep -q "^usage: cox $c" "$OUT"
done
expect_rc "cox nodes add --help: exit 0" 0 "$cox" nodes add --help
expect_rc "cox nodes frobnicate: exit 2" 2 "$cox" nodes frobnicate
check "cox --help lists init, nodes, audit, ssh-key" bash -c \
    "'$cox' --help | grep -q '^  init ' && '$cox' --help | grep -q '^  nodes ' && '$cox' --help | grep -q '^  audit ' && '$cox' --help | grep -q '^  ssh-key '"
