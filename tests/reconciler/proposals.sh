#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Proposals and review through the admin API (docs/DESIGN.md §11), over real HTTP against a
# real enterprise state directory and the git CLI: in the enterprise preset an edit opens a
# proposals/<id> branch and main does not move; the review shows the diff and the plan; the
# author cannot approve their own; another admin approves one head (a later commit needs a
# new approval); merging re-plans against the current head (a push to main meanwhile is kept,
# the merge commit's first parent is that head); a conflicting or invalid merge is refused
# (409, 422); a branch pushed from outside is listed, reviewed and merged the same way;
# closing; live "proposal" events; the plan of a commit in history; the audit log; and with
# review not required, edits commit to main unless ?propose=1.
#   tests/reconciler/proposals.sh [BUILD]     (BUILD defaults to build)
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
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=tester GIT_AUTHOR_EMAIL=tester@example.com
export GIT_COMMITTER_NAME=tester GIT_COMMITTER_EMAIL=tester@example.com
S=$tmp/s
PASS='correct horse battery staple'

/usr/bin/python3 bench/gen_fleet.py "$tmp/seed" -q --nodes 3 --devices 4 --devices-per-user 2 \
    --relays 0 || { nok "gen_fleet"; exit 1; }
printf 'email: "alice@example.com"\nfull_name: "Alice Admin"\nrole: admin\n' \
    >"$tmp/seed/users/alice.yaml"
printf 'email: "carol@example.com"\nfull_name: "Carol Admin"\nrole: admin\n' \
    >"$tmp/seed/users/carol.yaml"
printf 'email: "bob@example.com"\nfull_name: "Bob"\ndevices: []\n' >"$tmp/seed/users/bob.yaml"
"$cox" init --enterprise "$S" --from "$tmp/seed" >"$tmp/init.log" 2>&1 ||
    { nok "cox init --enterprise"; sed 's/^/#   /' "$tmp/init.log"; exit 1; }
git clone -q "$S/fleet.git" "$tmp/w" || { nok "clone"; exit 1; }
"$cox" admin passwd "$S" alice <<<"$PASS" >/dev/null || { nok "admin passwd alice"; exit 1; }
"$cox" admin passwd "$S" carol <<<"$PASS" >/dev/null || { nok "admin passwd carol"; exit 1; }
"$cox" tokens create "$S" --name writer --scope write --ttl 1d >"$tmp/tok.write" 2>/dev/null

"$cox" run "$S" --admin 127.0.0.1:0 --poll 1 >"$tmp/cox.log" 2>&1 &
pid=$!
admin_wait_port "$pid" "$tmp/cox.log"
port=$ADMIN_PORT
check "cox run serves the admin API (port $port)" test -n "$port"
[ -n "$port" ] || { sed 's/^/#   /' "$tmp/cox.log" | tail; exit 1; }

/usr/bin/python3 - "$port" "$PASS" "$(grep -o 'pht_[A-Za-z0-9_-]*' "$tmp/tok.write")" \
    "$S/fleet.git" "$tmp/w" <<'EOF'
import http.client, json, socket, subprocess, sys, threading, time, urllib.parse

port, pw, tok_write, gitdir, work = sys.argv[1:]
port = int(port)

def ok(cond, name):
    print(("ok - " if cond else "not ok - ") + name, flush=True)
    return cond

def req(method, path, body=None, headers=None, cookie=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    h = dict(headers or {})
    if cookie:
        h["Cookie"] = cookie
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    try:
        j = json.loads(text)
    except ValueError:
        j = None
    return r.status, j, r.headers

def git(*args):
    return subprocess.check_output(["git", "--git-dir", gitdir] + list(args),
                                   stderr=subprocess.DEVNULL).decode().strip()

def wgit(*args):
    r = subprocess.run(["git", "-C", work] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if r.returncode != 0:
        print("# git %s: %s" % (" ".join(args), r.stdout.decode().replace("\n", "\n#   ")))
        raise SystemExit(1)
    return r.stdout.decode().strip()

def login(user):
    st, j, h = req("POST", "/api/v1/login", {"user": user, "password": pw})
    assert st == 200, (st, j)
    return h["Set-Cookie"].split(";")[0], j["csrf"]

def q(branch):
    return urllib.parse.quote(branch, safe="")

def wait_main_applied(rev, secs=20):
    """Until reads answer from rev (the loop applied it)."""
    end = time.time() + secs
    while time.time() < end:
        st, j, _ = req("GET", "/api/v1/status", cookie=A)
        if st == 200 and j["revision"] == rev:
            return True
        time.sleep(0.05)
    return False

A, Acsrf = login("alice")
C, Ccsrf = login("carol")
AW = {"X-CSRF-Token": Acsrf}
CW = {"X-CSRF-Token": Ccsrf}
TW = {"Authorization": "Bearer " + tok_write}
main0 = git("rev-parse", "main")
ok(wait_main_applied(main0), "reads answer from main's head")

# ---- an edit in the enterprise preset opens a proposal; main does not move ----
st, j, _ = req("POST", "/api/v1/users/bob/devices", {"name": "laptop",
               "public_key": "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE="},
               cookie=A, headers=dict(AW, **{"If-Match": main0}))
ok(st == 200 and j.get("proposal") is True and j["branch"].startswith("proposals/"),
   "enterprise: an edit goes to a new proposals/<id> branch (%s)" % (j or {}).get("branch"))
B1 = j["branch"]
h1 = j["revision"]
ok(git("rev-parse", "main") == main0, "... main does not move")
ok(git("rev-parse", B1) == h1, "... the branch holds the commit")
ok(git("log", "-1", "--format=%an <%ae>", B1) == "Alice Admin <alice@example.com>",
   "... authored by the admin")

st, j, _ = req("GET", "/api/v1/proposals", cookie=A)
mine = [p for p in (j or {}).get("proposals", []) if p["branch"] == B1]
ok(st == 200 and j["review_required"] is True and len(mine) == 1, "the proposal is listed")
p = mine[0] if mine else {}
ok(p.get("ahead") == 1 and p.get("head") == h1 and p.get("base") == main0 and
   p.get("authors") == ["alice@example.com"] and p.get("state") == "open",
   "... one commit ahead of main, its author, its base")
ok(p.get("approved") is False and p.get("can_approve") is False and p.get("can_merge") is False,
   "... not approved; its author may neither approve nor merge it")

st, j, h = req("GET", "/api/v1/proposal?branch=" + q(B1), cookie=C)
ok(st == 200 and h.get("ETag") == '"%s"' % h1, "the review page's data carries the head as ETag")
ok("+  - name: \"laptop\"" in j.get("diff", "") or "laptop" in j.get("diff", ""),
   "... the diff shows the new device")
m = j.get("merge", {})
ok(m.get("status") == "clean" and m.get("onto") == main0, "... it merges cleanly onto main")
ok(m.get("changes", 0) >= 1 and "nodes:" in m.get("plan", "") and
   isinstance(m.get("plan_json"), dict),
   "... and its plan (text and JSON) says which nodes change (%s)" %
   (m.get("plan", "").strip().splitlines() or ["?"])[-1])
ok(j.get("can_approve") is True and j.get("can_merge") is False,
   "... another admin may approve it, not yet merge it")

# ---- approval rules ----
st, j, _ = req("POST", "/api/v1/proposal/approve?branch=" + q(B1), cookie=A,
               headers=dict(AW, **{"If-Match": h1}))
ok(st == 403 and j["error"] == "own_proposal", "the author cannot approve their own: 403")
st, j, _ = req("POST", "/api/v1/proposal/merge?branch=" + q(B1), cookie=A,
               headers=dict(AW, **{"If-Match": h1}))
ok(st == 403 and j["error"] == "not_approved", "nobody merges it unapproved: 403")
st, j, _ = req("POST", "/api/v1/proposal/approve?branch=" + q(B1), headers=dict(TW,
               **{"If-Match": h1}))
ok(st == 403, "a token cannot approve: 403")
st, j, _ = req("POST", "/api/v1/proposal/approve?branch=" + q(B1), cookie=C, headers=CW)
ok(st == 428, "approving without If-Match: 428")
st, j, _ = req("POST", "/api/v1/proposal/approve?branch=" + q(B1), cookie=C,
               headers=dict(CW, **{"If-Match": main0}))
ok(st == 409 and j["error"] == "proposal_changed" and j["head"] == h1,
   "approving a head you did not review: 409 with the current head")

# a second commit on the proposal: ?proposal=BRANCH, based on what the proposal holds
LAPTOP = {"name": "laptop", "public_key": "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE="}
st, j, _ = req("PUT", "/api/v1/users/bob?proposal=" + q(B1), {"email": "bob@example.com",
               "full_name": "Bob B."}, cookie=A, headers=dict(AW, **{"If-Match": main0}))
ok(st == 409 and "laptop" in (j or {}).get("current_yaml", ""),
   "an edit to a proposal based on main, of a record the proposal changed: 409 with its value")
st, j, _ = req("PUT", "/api/v1/users/bob?proposal=" + q(B1), {"email": "bob@example.com",
               "full_name": "Bob B.", "devices": [LAPTOP]}, cookie=A,
               headers=dict(AW, **{"If-Match": h1}))
ok(st == 200 and j["branch"] == B1, "?proposal=BRANCH adds an edit to that proposal (%s)" % st)
h2 = git("rev-parse", B1)
st, j, _ = req("POST", "/api/v1/users/bob/devices?proposal=" + q(B1), {"name": "tablet",
               "public_key": "dGFibGV0dGFibGV0dGFibGV0dGFibGV0dGFibGV0dGE="}, cookie=A,
               headers=dict(AW, **{"If-Match": h2}))
ok(st == 409 and git("rev-parse", B1) == h2,
   "a device edit onto a proposal is built from main, so based on the proposal's head: 409 (no overwrite)")
ok(h2 != h1 and git("rev-list", "--count", "main.." + B1) == "2", "... now two commits ahead")
st, j, _ = req("POST", "/api/v1/proposal/approve?branch=" + q(B1), cookie=C,
               headers=dict(CW, **{"If-Match": h2}))
ok(st == 200 and j["approved"] is True and j["approvals"][0]["user"] == "carol",
   "another admin approves the head they reviewed")

# ---- main moves meanwhile (a push); merging re-plans against the new head ----
with open(work + "/users/dave.yaml", "w") as f:
    f.write('email: "dave@example.com"\nfull_name: "Dave"\ndevices: []\n')
wgit("pull", "-q", "origin", "main")
wgit("add", "-A"); wgit("commit", "-qm", "dave, pushed with git")
wgit("push", "-q", "origin", "HEAD:main")
main1 = git("rev-parse", "main")
st, j, _ = req("POST", "/api/v1/proposal/merge?branch=" + q(B1), cookie=C,
               headers=dict(CW, **{"If-Match": h1}))
ok(st == 409 and j["error"] == "proposal_changed", "merging a head other than the one read: 409")
st, j, h = req("POST", "/api/v1/proposal/merge?branch=" + q(B1), cookie=A,
               headers=dict(AW, **{"If-Match": h2}))
ok(st == 200 and j["branch"] == "main" and j["merged"] == B1 and j["onto"] == main1,
   "once approved, the author merges it onto main's current head (not the base it started from)")
mrev = j.get("revision", "")
ok(git("rev-parse", "main") == mrev, "... main is the merge commit")
ok(git("rev-parse", mrev + "^1") == main1 and git("rev-parse", mrev + "^2") == h2,
   "... whose parents are main's head and the proposal's head")
ok(git("cat-file", "-e", "main:users/dave.yaml") == "" and
   "laptop" in git("show", "main:users/bob.yaml") and "Bob B." in git("show", "main:users/bob.yaml"),
   "... keeping the push and both proposal commits")
msg = git("log", "-1", "--format=%B", "main")
ok("Approved by: carol" in msg and B1 in msg, "... its message names the proposal and the approver")
ok("nodes:" in j.get("plan", "") and j.get("changes", 0) >= 1, "... and the reply carries the plan")
ok(subprocess.run(["git", "--git-dir", gitdir, "rev-parse", "--verify", "-q", B1],
                  capture_output=True).returncode != 0, "... the proposals/ branch is deleted")
ok(wait_main_applied(mrev), "the reconciler applies the merge like a push")
st, j, _ = req("GET", "/api/v1/history/%s/plan" % mrev, cookie=A)
ok(st == 200 and j["parent"] == main1 and j["plan"]["status"] == "clean" and
   j["plan"]["changes"] >= 1, "history: a commit's plan against its first parent")

# ---- two proposals edit the same line: the second merge conflicts ----
def propose(user, body, cookie, hdr, base):
    st, j, _ = req("PUT", "/api/v1/users/" + user, body, cookie=cookie,
                   headers=dict(hdr, **{"If-Match": base}))
    assert st == 200, (st, j)
    return j["branch"], j["revision"]

P2, h = propose("bob", {"email": "bob@example.com", "full_name": "Bob Two"}, A, AW, mrev)
P3, h3 = propose("bob", {"email": "bob@example.com", "full_name": "Bob Three"}, A, AW, mrev)
for b, hh in ((P2, h), (P3, h3)):
    st, _, _ = req("POST", "/api/v1/proposal/approve?branch=" + q(b), cookie=C,
                   headers=dict(CW, **{"If-Match": hh}))
st, j, _ = req("POST", "/api/v1/proposal/merge?branch=" + q(P2), cookie=C,
               headers=dict(CW, **{"If-Match": h}))
ok(st == 200, "two proposals of the same record: the first merges")
st, j, _ = req("GET", "/api/v1/proposal?branch=" + q(P3), cookie=C)
ok(st == 200 and j["merge"]["status"] == "conflict" and j["merge"]["conflicts"] == ["users/bob.yaml"],
   "... the second's review says it conflicts, and where")
st, j, _ = req("POST", "/api/v1/proposal/merge?branch=" + q(P3), cookie=C,
               headers=dict(CW, **{"If-Match": h3}))
ok(st == 409 and j["error"] == "merge_conflict" and j["conflicts"] == ["users/bob.yaml"],
   "... and merging it is refused: 409 with the file")

# ---- valid alone, invalid merged: 422 ----
key = "cXV4cXV4cXV4cXV4cXV4cXV4cXV4cXV4cXV4cXV4cXU="
main2 = git("rev-parse", "main")
P4, h4 = propose("bob", {"email": "bob@example.com", "full_name": "Bob Two", "devices":
                 [{"name": "laptop", "public_key": "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE="},
                  {"name": "desk", "public_key": key}]}, A, AW, main2)
req("POST", "/api/v1/proposal/approve?branch=" + q(P4), cookie=C, headers=dict(CW, **{"If-Match": h4}))
wgit("pull", "-q", "origin", "main")
with open(work + "/users/erin.yaml", "w") as f:
    f.write('email: "erin@example.com"\ndevices:\n  - name: pc\n    public_key: "%s"\n' % key)
wgit("add", "-A"); wgit("commit", "-qm", "erin, with the same key"); wgit("push", "-q", "origin", "HEAD:main")
st, j, _ = req("GET", "/api/v1/proposal?branch=" + q(P4), cookie=C)
ok(st == 200 and j["merge"]["status"] == "invalid" and "public key" in j["merge"]["errors"],
   "a proposal valid alone but not on the new head: the review shows the errors")
st, j, _ = req("POST", "/api/v1/proposal/merge?branch=" + q(P4), cookie=C,
               headers=dict(CW, **{"If-Match": h4}))
ok(st == 422 and "public key" in j.get("errors", ""), "... and merging it is refused: 422")

# ---- close ----
st, j, _ = req("DELETE", "/api/v1/proposal?branch=" + q(P4), cookie=A,
               headers=dict(AW, **{"If-Match": h4}))
ok(st == 200 and subprocess.run(["git", "--git-dir", gitdir, "rev-parse", "--verify", "-q", P4],
   capture_output=True).returncode != 0, "closing a proposal deletes its branch")

# ---- a branch pushed from outside, live ----
events = []
T0 = [None]
def follow():
    """Every proposal event's arrival time, until one comes after the push started."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(("GET /api/v1/events HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n\r\n" % C).encode())
    buf = b""
    end = time.time() + 20
    try:
        while time.time() < end:
            d = s.recv(4096)
            if not d:
                break
            buf += d
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.startswith(b"event: proposal"):
                    events.append(time.time())
                    if T0[0] is not None and events[-1] >= T0[0]:
                        return
    except OSError:
        pass
    finally:
        s.close()
t = threading.Thread(target=follow); t.start()
time.sleep(0.5)
wgit("pull", "-q", "origin", "main")
wgit("checkout", "-q", "-b", "feature/frank")
with open(work + "/users/frank.yaml", "w") as f:
    f.write('email: "frank@example.com"\nfull_name: "Frank"\ndevices: []\n')
wgit("add", "-A"); wgit("commit", "-qm", "Frank joins, from a forge PR")
t0 = T0[0] = time.time()
wgit("push", "-q", "origin", "feature/frank")
t.join()
ok(events and events[-1] >= t0 and events[-1] - t0 < 1.0,
   "a branch pushed from outside raises a live proposal event (%.0f ms after the push began)" %
   (((events[-1] - t0) * 1000) if events else -1))
st, j, _ = req("GET", "/api/v1/proposals", cookie=C)
f = [p for p in j["proposals"] if p["branch"] == "feature/frank"]
ok(len(f) == 1 and f[0]["ours"] is False and f[0]["authors"] == ["tester@example.com"],
   "... and is listed like a proposal, with its author")
fh = f[0]["head"] if f else ""
st, j, _ = req("GET", "/api/v1/proposal?branch=feature%2Ffrank", cookie=C)
ok(st == 200 and j["merge"]["status"] == "clean" and "frank" in j["diff"], "... reviewed with its diff and plan")
st, j, _ = req("POST", "/api/v1/proposal/approve?branch=feature%2Ffrank", cookie=C,
               headers=dict(CW, **{"If-Match": fh}))
ok(st == 200, "... approved")
st, j, _ = req("POST", "/api/v1/proposal/merge?branch=feature%2Ffrank", headers=dict(TW,
               **{"If-Match": fh}))
ok(st == 200 and git("cat-file", "-t", "main:users/frank.yaml") == "blob",
   "... and merged (here by a write token)")
st, j, _ = req("DELETE", "/api/v1/proposal?branch=feature%2Ffrank", cookie=A,
               headers=dict(AW, **{"If-Match": fh}))
ok(st in (403, 409), "a forge's branch is not closed here")
st, j, _ = req("GET", "/api/v1/proposals", cookie=C)
f = [p for p in j["proposals"] if p["branch"] == "feature/frank"]
ok(len(f) == 1 and f[0]["state"] == "merged", "... it stays, listed as merged")

# ---- audit ----
st, j, _ = req("GET", "/api/v1/audit?limit=200", cookie=A)
acts = [e.get("action") for e in (j or {}).get("entries", [])]
ok(all(a in acts for a in ("proposal.approve", "proposal.merge", "proposal.close")),
   "approvals, merges and closings are in the audit log")

# ---- review not required: edits commit, ?propose=1 proposes, self-merge allowed ----
wgit("checkout", "-q", "main"); wgit("pull", "-q", "origin", "main")
fy = open(work + "/fleet.yaml").read()
import re
fy2 = re.sub(r"(\nreview:\s*\n\s+required:\s*)\w+", r"\1false", fy)
open(work + "/fleet.yaml", "w").write(fy2 if fy2 != fy else fy + "\nreview:\n  required: false\n")
wgit("commit", "-qam", "no review"); wgit("push", "-q", "origin", "HEAD:main")
main3 = git("rev-parse", "main")
ok(wait_main_applied(main3), "review turned off with a push")
st, j, _ = req("PUT", "/api/v1/users/bob", {"email": "bob@example.com", "full_name": "Bob Direct"},
               cookie=A, headers=dict(AW, **{"If-Match": main3}))
ok(st == 200 and j["proposal"] is False and j["branch"] == "main" and git("rev-parse", "main") == j["revision"],
   "without review an edit is a commit on main")
r4 = j["revision"]
st, j, _ = req("PUT", "/api/v1/users/bob?propose=1", {"email": "bob@example.com", "full_name": "Bob P"},
               cookie=A, headers=dict(AW, **{"If-Match": r4}))
ok(st == 200 and j["proposal"] is True and git("rev-parse", "main") == r4, "... ?propose=1 still proposes")
P5, h5 = j["branch"], j["revision"]
st, j, _ = req("POST", "/api/v1/proposal/merge?branch=" + q(P5), cookie=A,
               headers=dict(AW, **{"If-Match": h5}))
ok(st == 200, "... and its author may merge it unapproved")
EOF
rc=$?
check "proposals: the client ran to the end" test "$rc" = 0
check "cox is still running" kill -0 "$pid"
if grep -qE 'ERROR: AddressSanitizer|runtime error:' "$tmp/cox.log"; then
	nok "no sanitizer reports"; grep -E -A5 'AddressSanitizer|runtime error' "$tmp/cox.log" | head -30 | sed 's/^/#   /'
else
	ok "no sanitizer reports"
fi
