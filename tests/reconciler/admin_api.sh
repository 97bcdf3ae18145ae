#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The admin API of `cox run --admin` from the outside (docs/DESIGN.md §10), over real HTTP
# against a real state directory and the git CLI: login, CSRF and tokens; 428 without
# If-Match; 409 with the current value and who changed it; 422 with validation errors; one
# commit per accepted edit; two concurrent writers x 200 read-modify-write edits of the same
# record with no lost update (commits = accepted edits); a push made with git is served at
# once; malformed requests never take the daemon down; loopback only unless forced.
#   tests/reconciler/admin_api.sh [BUILD]     (BUILD defaults to build)
set -u
cd "$(dirname "$0")/../.." || exit 2
build=$(realpath "${1:-build}")
cox=$build/cox
TAG=$(basename "$build")
. tests/lib/tap.sh
. tests/lib/admin.sh
tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$tmp"
	return 0
}
trap cleanup EXIT
OUT=$tmp/out
ERR=$tmp/err
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=tester GIT_AUTHOR_EMAIL=tester@example.com
export GIT_COMMITTER_NAME=tester GIT_COMMITTER_EMAIL=tester@example.com
S=$tmp/s
PASS='correct horse battery staple'

"$cox" init --personal "$S" >/dev/null 2>&1 || { nok "cox init"; exit 1; }
git clone -q "$S/fleet.git" "$tmp/w"
mkdir -p "$tmp/w/users"
printf 'email: "alice@example.com"\nfull_name: "Alice Admin"\nrole: admin\ndevices: []\n' \
    >"$tmp/w/users/alice.yaml"
printf 'email: "bob@example.com"\nfull_name: "n=0"\ndevices: []\n' >"$tmp/w/users/bob.yaml"
git -C "$tmp/w" add -A && git -C "$tmp/w" commit -qm "alice and bob" &&
    git -C "$tmp/w" push -q origin HEAD:main || { nok "seed push"; exit 1; }
"$cox" admin passwd "$S" alice <<<"$PASS" >/dev/null || { nok "admin passwd"; exit 1; }
"$cox" tokens create "$S" --name reader --scope read --ttl 1d >"$tmp/tok.read" 2>/dev/null
"$cox" tokens create "$S" --name writer --scope write --ttl 1d >"$tmp/tok.write" 2>/dev/null

expect_rc "--admin on a non-loopback address without --admin-allow-remote: 1" 1 \
    "$cox" run "$S" --admin 0.0.0.0:0
check "  ... says why" grep -q "not a loopback address" "$ERR"

"$cox" run "$S" --admin 127.0.0.1:0 --poll 1 >"$tmp/cox.log" 2>&1 &
pid=$!
admin_wait_port "$pid" "$tmp/cox.log"
port=$ADMIN_PORT
check "cox run serves the admin API (port $port)" test -n "$port"
[ -n "$port" ] || exit 1

/usr/bin/python3 - "$port" "$PASS" "$(grep -o 'pht_[A-Za-z0-9_-]*' "$tmp/tok.read")" \
    "$(grep -o 'pht_[A-Za-z0-9_-]*' "$tmp/tok.write")" "$S/fleet.git" "$tmp/w" <<'EOF'
import http.client, json, socket, subprocess, sys, threading, time

port, pw, tok_read, tok_write, gitdir, work = sys.argv[1:]
port = int(port)

def ok(cond, name):
    print(("ok - " if cond else "not ok - ") + name, flush=True)
    return cond

def req(method, path, body=None, headers=None, cookie=None, raw=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = dict(headers or {})
    if cookie:
        h["Cookie"] = cookie
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    try:
        j = json.loads(text)
    except ValueError:
        j = None
    return r.status, j, r.headers

def commits():
    return int(subprocess.check_output(["git", "--git-dir", gitdir, "rev-list", "--count",
                                        "main"]).decode())

# ---- auth ----
st, j, _ = req("GET", "/api/v1/status")
ok(st == 401, "no session, no token: 401")
st, j, _ = req("POST", "/api/v1/login", {"user": "alice", "password": "wrong passphrase!"})
ok(st == 401, "a wrong passphrase: 401")
st, j, _ = req("POST", "/api/v1/login", {"user": "bob", "password": pw})
ok(st == 401, "a user who is not an admin: 401")
st, j, h = req("POST", "/api/v1/login", {"user": "alice", "password": pw})
ok(st == 200 and j.get("csrf"), "alice logs in")
sc = h.get("Set-Cookie", "")
ok("HttpOnly" in sc and "SameSite=Strict" in sc, "the session cookie is HttpOnly, SameSite=Strict")
cookie = sc.split(";")[0]
csrf = j["csrf"]
st, j, h = req("GET", "/api/v1/status", cookie=cookie)
rev = j["revision"]
ok(st == 200 and h.get("ETag") == '"%s"' % rev and len(rev) == 40,
   "a read carries the revision as ETag and field")
ok(req("GET", "/api/v1/users", headers={"Authorization": "Bearer " + tok_read})[0] == 200,
   "a read token reads")
st, j, _ = req("PUT", "/api/v1/users/bob", {"email": "x@example.com"},
               headers={"Authorization": "Bearer " + tok_read, "If-Match": rev})
ok(st == 403, "a read token may not write: 403")
ok(req("GET", "/api/v1/users", headers={"Authorization": "Bearer pht_nope"})[0] == 401,
   "an unknown token: 401")

W = {"X-CSRF-Token": csrf}
st, j, _ = req("PUT", "/api/v1/users/bob", {"email": "bob@example.com"}, cookie=cookie,
               headers={"If-Match": rev})
ok(st == 403 and j["error"] == "csrf", "a session mutation without the CSRF token: 403")
st, j, _ = req("PUT", "/api/v1/users/bob", {"email": "bob@example.com"}, cookie=cookie,
               headers=W)
ok(st == 428, "a mutation without If-Match: 428")
st, j, _ = req("PUT", "/api/v1/users/bob", {"email": "bob@example.com"}, cookie=cookie,
               headers=dict(W, **{"If-Match": "0" * 40}))
ok(st == 412, "If-Match naming no revision: 412")

# ---- one commit per edit, 409, 422 ----
n0 = commits()
st, j, h = req("PUT", "/api/v1/users/bob", {"email": "bob@example.net", "full_name": "n=0",
               "devices": []}, cookie=cookie, headers=dict(W, **{"If-Match": '"%s"' % rev}))
ok(st == 200 and len(j["revision"]) == 40, "an edit with If-Match: 200 and the new revision")
ok(commits() == n0 + 1, "... exactly one commit")
log = subprocess.check_output(["git", "--git-dir", gitdir, "log", "-1",
                               "--format=%an <%ae>|%s", "main"]).decode().strip()
ok(log == "Alice Admin <alice@example.com>|Edit user bob", "... authored by the admin: " + log)
r1 = j["revision"]
st, j, _ = req("PUT", "/api/v1/users/alice", {"email": "alice@example.com", "full_name":
               "Alice A.", "role": "admin", "devices": []}, cookie=cookie,
               headers=dict(W, **{"If-Match": rev}))
ok(st == 200, "an edit of another record based on the older revision: applied on top")
st, j, _ = req("PUT", "/api/v1/users/bob", {"email": "bob2@example.com"}, cookie=cookie,
               headers=dict(W, **{"If-Match": rev}))
ok(st == 409 and j["error"] == "conflict", "an edit of the same record from a stale revision: 409")
ok(j.get("current", {}).get("full_name") == "n=0" and j.get("changed_in") == r1 and
   j.get("changed_by") == "Alice Admin <alice@example.com>" and len(j.get("revision", "")) == 40,
   "... with the current value, the commit and who made it")
st, j, _ = req("GET", "/api/v1/users/bob", cookie=cookie)
cur = j["revision"]
st, j, _ = req("PUT", "/api/v1/users/bob", {"email": "not an address"}, cookie=cookie,
               headers=dict(W, **{"If-Match": cur}))
ok(st == 422 and "users/bob.yaml:1:8: error:" in j.get("errors", ""),
   "an edit that would not validate: 422 with path:line:col errors")
n1 = commits()
st, j, _ = req("POST", "/api/v1/users", {"name": "<b>x</b>", "email": "e@example.com"},
               cookie=cookie, headers=dict(W, **{"If-Match": cur}))
ok(st == 400, "a user name that is not a name: 400")
st, j, _ = req("POST", "/api/v1/users", {"name": "carol", "email": "carol@example.com",
               "devices": [{"name": "phone",
                            "public_key": "RgZc4OAeym2WtRqgHdEj+r62Mq5Q6efVb3kk1bMZ0Q8="}]},
               cookie=cookie, headers=dict(W, **{"If-Match": cur}))
ok(st == 200, "create a user with a device")
st, j, _ = req("POST", "/api/v1/users/carol/devices",
               {"name": "laptop", "public_key": "yy2JCJ9kyCC0cBZc/d8A9p1VNYpOaFPQmY0tO21qy+8="},
               cookie=cookie, headers=dict(W, **{"If-Match": j["revision"]}))
ok(st == 200, "add a device (%d %s)" % (st, j))
st, j, _ = req("DELETE", "/api/v1/users/carol/devices/phone", cookie=cookie,
               headers=dict(W, **{"If-Match": j["revision"]}))
ok(st == 200, "remove a device")
time.sleep(0.3)
st, j, _ = req("GET", "/api/v1/users/carol", cookie=cookie)
ok(st == 200 and [d["name"] for d in j["devices"]] == ["laptop"], "... the user has the laptop only")
ok(commits() == n1 + 3, "three accepted edits, three commits")
st, j, _ = req("GET", "/api/v1/history?limit=5", cookie=cookie)
ok(st == 200 and j["commits"][0]["message"].startswith("Delete device phone of carol"),
   "history lists the newest commit first")

# ---- two writers x 200 read-modify-write edits of the same record ----
N = 200
counts = {"ok": 0, "conflict": 0, "other": 0}
lock = threading.Lock()

def writer(auth):
    done = 0
    while done < N:
        st, j, h = req("GET", "/api/v1/users/bob", headers=auth)
        n = int(j["full_name"].split("=")[1])
        body = {"email": "bob@example.com", "full_name": "n=%d" % (n + 1), "devices": []}
        st, j, _ = req("PUT", "/api/v1/users/bob", body,
                       headers=dict(auth, **{"If-Match": h["ETag"]}))
        with lock:
            if st == 200:
                counts["ok"] += 1
                done += 1
            elif st == 409:
                counts["conflict"] += 1
            else:
                counts["other"] += 1
                if counts["other"] > 5:
                    return

n2 = commits()
t0 = time.time()
ts = [threading.Thread(target=writer, args=({"Authorization": "Bearer " + tok_write},)),
      threading.Thread(target=writer, args=({"Authorization": "Bearer " + tok_write},))]
for t in ts:
    t.start()
for t in ts:
    t.join()
dt = time.time() - t0
added = commits() - n2
final = subprocess.check_output(["git", "--git-dir", gitdir, "show",
                                 "main:users/bob.yaml"]).decode()
ok(counts["other"] == 0, "2 writers x %d edits: no error (%d accepted, %d conflicts, %.1f s)"
   % (N, counts["ok"], counts["conflict"], dt))
ok(counts["ok"] == 2 * N and added == counts["ok"],
   "commits = accepted edits (%d commits, %d accepted)" % (added, counts["ok"]))
ok('full_name: "n=%d"' % (n_final := 2 * N) in final,
   "no lost update: the counter is %d" % n_final)
fsck = subprocess.run(["git", "--git-dir", gitdir, "fsck", "--no-progress"],
                      capture_output=True)
ok(fsck.returncode == 0, "git fsck is clean after the concurrent edits")

# ---- a push made with git is what the API serves ----
subprocess.check_call(["git", "-C", work, "pull", "-q", "origin", "main"])
open(work + "/users/dave.yaml", "w").write('email: "dave@example.com"\ndevices: []\n')
subprocess.check_call(["git", "-C", work, "add", "-A"])
subprocess.check_call(["git", "-C", work, "commit", "-qm", "dave by git"])
subprocess.check_call(["git", "-C", work, "push", "-q", "origin", "HEAD:main"])
seen = False
for _ in range(100):
    if req("GET", "/api/v1/users/dave", cookie=cookie)[0] == 200:
        seen = True
        break
    time.sleep(0.02)
ok(seen, "a user pushed with git is served by the API")

# ---- events ----
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(("GET /api/v1/events HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n\r\n" % cookie).encode())
buf = b""
while b"event: hello" not in buf:
    buf += s.recv(4096)
st, j, _ = req("GET", "/api/v1/users/dave", cookie=cookie)
req("PUT", "/api/v1/users/dave", {"email": "dave2@example.com", "devices": []}, cookie=cookie,
    headers=dict(W, **{"If-Match": j["revision"]}))
t0 = time.time()
while b"event: commit" not in buf and time.time() - t0 < 5:
    buf += s.recv(4096)
ok(b"event: commit" in buf, "an open event stream gets the commit (%.0f ms)" %
   ((time.time() - t0) * 1000))
s.close()

# ---- malformed requests close that request, not the daemon ----
for name, raw in [("not JSON", "{"), ("a JSON array", "[1,2]"), ("a huge string",
                  '{"email":"' + "a" * 600 + '"}'), ("a NUL in a string", '{"email":"a\\u0000b"}'),
                  ("an unknown key", '{"colour":"blue"}'), ("devices not a list", '{"devices":1}')]:
    st, j, _ = req("PUT", "/api/v1/users/bob", cookie=cookie, raw=raw,
                   headers=dict(W, **{"If-Match": cur, "Content-Type": "application/json"}))
    ok(st == 400, "%s: 400" % name)
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(("PUT /api/v1/users/bob HTTP/1.1\r\nHost: x\r\nCookie: %s\r\nX-CSRF-Token: %s\r\n"
           "If-Match: %s\r\nContent-Length: %d\r\n\r\n" % (cookie, csrf, cur, 2 << 20)).encode())
first = s.recv(4096).split(b"\r\n")[0]
s.close()
ok(b" 413 " in first, "a body over 1 MiB is refused before it is read: %s" % first.decode())
for junk in [b"\x00\x01\x02garbage\r\n\r\n", b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
             b"GET /api/v1/users/%00x HTTP/1.1\r\nHost: x\r\n\r\n"]:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(junk)
        s.recv(4096)
        s.close()
    except OSError:
        pass
ok(req("GET", "/api/v1/me", cookie=cookie)[0] == 200, "after junk on the wire the daemon still serves")

st, j, _ = req("POST", "/api/v1/logout", cookie=cookie, headers=W)
ok(st == 200 and req("GET", "/api/v1/status", cookie=cookie)[0] == 401,
   "logout ends the session")
EOF
check "cox is still running" kill -0 "$pid"
kill "$pid" 2>/dev/null
wait "$pid"
rc=$?
pid=
check "SIGTERM: cox run exits 0 (got $rc)" test "$rc" = 0
check "the audit log has the admin's edits" bash -c "'$cox' audit '$S' | grep -q 'admin:alice.*user.update bob'"
check "the audit chain verifies" "$cox" audit verify "$S"
