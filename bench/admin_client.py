#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The admin API benchmark's client (bench/admin.sh runs it once per fleet).

    bench/admin_client.py COX STATEDIR TOKEN LABEL OUT.json
        [--reads 200] [--warm 20] [--edits 50] [--warm-edits 3] [--perf FILE]

(--perf FILE: `perf record -F 199 --call-graph dwarf` of cox during the timed edits.)

Starts `COX run STATEDIR --admin 127.0.0.1:0` itself, with its standard error on a
pipe that a reader thread timestamps line by line (time.monotonic_ns() when the
line arrives; cox writes each log line with one write(2)), and waits until the
head revision is applied.  Then, on one keep-alive HTTP/1.1 connection
(http.client), with `Authorization: Bearer TOKEN`:

  reads  - READS rounds after WARM warm-up rounds; each round times one request
           to each endpoint in turn (interleaved, so every endpoint sees the same
           conditions): the embedded /favicon.svg (no auth: the HTTP floor),
           /api/v1/me (token check + tiny JSON: the API floor), and what the UI
           reads: /api/v1/status, /api/v1/nodes, /api/v1/users (first page,
           default limit), /api/v1/users/NAME (a user with devices),
           /api/v1/history.  A request is timed from before it is written until
           its whole body is read.
  edits  - WARM_EDITS + EDITS times: GET /api/v1/users/NAME (not timed), then
           PUT it back with a new full_name and If-Match: its ETag (the UI's
           body); timed from before the PUT is written to
             commit:  its 200 (the commit exists, the branch moved),
             seen:    cox logging "revision seen ... rev=<that commit>" (the loop
                      saw the ref move through inotify: the reconciler picked it up),
             applied: cox logging "revision applied rev=<that commit>" (loaded,
                      validated and compiled for every node).
           The next edit starts only after the previous one is applied (edits are
           measured one at a time, not queued behind the loader).  The log's own
           millisecond timestamp of "seen" is kept as a cross-check.

Writes OUT.json; prints nothing but progress on stderr.  Kills cox on exit.
"""

import argparse
import datetime
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time


def log(*a):
    print("admin_client:", *a, file=sys.stderr, flush=True)


class Cox:
    """cox run with its stderr read by a thread that timestamps lines."""

    RX = re.compile(rb"^(\S+) cox \w+: (?:revision (seen|applied|re-planned) .*?rev=([0-9a-f]{12})"
                    rb"|admin: UI and API on http://127\.0\.0\.1:(\d+)/)")

    def __init__(self, cox, state, logpath):
        self.cv = threading.Condition()
        self.events = {}          # (kind, rev12) -> (monotonic ns at arrival, log wall ms)
        self.port = None
        self.logf = open(logpath, "wb")
        self.p = subprocess.Popen([cox, "run", state, "--admin", "127.0.0.1:0", "--poll", "30"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        with open(os.path.join(os.path.dirname(os.path.abspath(logpath)), "cox.pid"), "w") as f:
            f.write("%d\n" % self.p.pid)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        fd = self.p.stderr.fileno()
        buf = b""
        while True:
            chunk = os.read(fd, 65536)
            now = time.monotonic_ns()
            if not chunk:
                break
            self.logf.write(chunk)
            buf += chunk
            *lines, buf = buf.split(b"\n")
            hits = []
            for line in lines:
                m = self.RX.match(line)
                if m:
                    hits.append(m)
            if not hits:
                continue
            with self.cv:
                for m in hits:
                    if m.group(4):
                        self.port = int(m.group(4))
                    else:
                        ts = datetime.datetime.strptime(m.group(1).decode(),
                                                        "%Y-%m-%dT%H:%M:%S.%fZ")
                        wall_ms = (ts.replace(tzinfo=datetime.timezone.utc).timestamp()
                                   * 1000.0)
                        kind = m.group(2).decode()
                        if kind == "re-planned":
                            kind = "applied"
                        self.events.setdefault((kind, m.group(3).decode()), (now, wall_ms))
                self.cv.notify_all()
        self.logf.flush()

    def wait(self, pred, timeout):
        end = time.monotonic() + timeout
        with self.cv:
            while True:
                v = pred()
                if v is not None:
                    return v
                left = end - time.monotonic()
                if left <= 0 or self.p.poll() is not None:
                    return None
                self.cv.wait(min(left, 0.5))

    def event(self, kind, rev, timeout):
        return self.wait(lambda: self.events.get((kind, rev[:12])), timeout)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.t.join(5)
        self.logf.close()


class Client:
    def __init__(self, port, token):
        self.port = port
        self.auth = {"Authorization": "Bearer " + token}
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.c.connect()
        self.sock = self.c.sock
        self.reconnects = 0

    def req(self, method, path, body=None, headers=None, auth=True):
        h = dict(self.auth) if auth else {}
        if headers:
            h.update(headers)
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            h["Content-Type"] = "application/json"
        t0 = time.monotonic_ns()
        self.c.request(method, path, body=data, headers=h)
        r = self.c.getresponse()
        b = r.read()
        t1 = time.monotonic_ns()
        if self.c.sock is not self.sock:   # http.client re-opened it: should not happen
            self.reconnects += 1
            self.sock = self.c.sock
        return r.status, r.getheader("ETag"), b, t0, t1


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(xs):
    return {"n": len(xs), "p50": pct(xs, 50), "p90": pct(xs, 90), "p99": pct(xs, 99),
            "min": min(xs), "max": max(xs)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cox")
    ap.add_argument("state")
    ap.add_argument("token")
    ap.add_argument("label")
    ap.add_argument("out")
    ap.add_argument("--reads", type=int, default=200)
    ap.add_argument("--warm", type=int, default=20)
    ap.add_argument("--edits", type=int, default=50)
    ap.add_argument("--warm-edits", type=int, default=3)
    ap.add_argument("--perf", default=None, help="perf record -g cox during the timed edits")
    a = ap.parse_args()

    res = {"label": a.label, "warm": a.warm}
    cox = Cox(a.cox, a.state, a.out + ".cox.log")
    perf = None
    try:
        if cox.wait(lambda: cox.port, 30) is None:
            sys.exit("cox did not start its admin server (see %s.cox.log)" % a.out)
        cl = Client(cox.port, a.token)
        st, etag, body, _, _ = cl.req("GET", "/api/v1/status")
        if st != 200:
            sys.exit("GET /api/v1/status: %d %s" % (st, body[:200]))
        head = json.loads(body)["head"]
        t0 = time.monotonic()
        if cox.event("applied", head, 300) is None:
            sys.exit("the head revision %s was not applied" % head[:12])
        log("%s: head %s applied (waited %.1f s)" % (a.label, head[:12], time.monotonic() - t0))
        time.sleep(1)

        st, _, body, _, _ = cl.req("GET", "/api/v1/users")
        users = json.loads(body)
        name = next(u["name"] for u in users["users"] if u["devices"] > 0)
        res["user"] = name
        res["users_total"] = users["total"]
        eps = [("/favicon.svg", False), ("/api/v1/me", True), ("/api/v1/status", True),
               ("/api/v1/nodes", True), ("/api/v1/users", True),
               ("/api/v1/users/" + name, True), ("/api/v1/history", True)]
        times = {p: [] for p, _ in eps}
        sizes = {}
        log("%s: reads, %d warm-up + %d rounds of %d endpoints" % (a.label, a.warm, a.reads,
                                                                   len(eps)))
        for i in range(a.warm + a.reads):
            for p, auth in eps:
                st, _, body, t0, t1 = cl.req("GET", p, auth=auth)
                if st != 200:
                    sys.exit("GET %s: %d %s" % (p, st, body[:200]))
                sizes[p] = len(body)
                if i >= a.warm:
                    times[p].append((t1 - t0) / 1e6)
        res["reads"] = [dict(summary(times[p]), path=p, bytes=sizes[p], samples=times[p])
                       for p, _ in eps]
        res["read_reconnects"] = cl.reconnects

        log("%s: edits, %d warm-up + %d timed" % (a.label, a.warm_edits, a.edits))
        rows = []
        prev = head
        for e in range(a.warm_edits + a.edits):
            if e == a.warm_edits and a.perf:
                perf = subprocess.Popen(["perf", "record", "-F", "199", "--call-graph",
                                         "dwarf,16384", "-q", "-o", a.perf,
                                         "-p", str(cox.p.pid)], stdout=subprocess.DEVNULL)
                time.sleep(1)
            if cox.event("applied", prev, 120) is None:
                sys.exit("revision %s was not applied" % prev[:12])
            time.sleep(0.1)
            st, etag, body, _, _ = cl.req("GET", "/api/v1/users/" + name)
            if st != 200 or not etag:
                sys.exit("GET user: %d" % st)
            rec = json.loads(body)
            put = {"email": rec["email"], "full_name": "Bench Edit %d" % e,
                   "role": rec["role"], "disabled": rec["disabled"],
                   "devices": [{"name": d["name"], "public_key": d["public_key"],
                                "address": d["address"]} for d in rec["devices"]]}
            if not put["disabled"]:
                del put["disabled"]
            wall0 = time.time_ns() / 1e6
            st, _, body, t0, t1 = cl.req("PUT", "/api/v1/users/" + name, body=put,
                                         headers={"If-Match": etag})
            if st != 200:
                sys.exit("PUT user: %d %s" % (st, body[:300]))
            rev = json.loads(body)["revision"]
            seen = cox.event("seen", rev, 30)
            applied = cox.event("applied", rev, 120)
            if seen is None or applied is None:
                sys.exit("edit %d: rev %s not %s" % (e, rev[:12],
                                                      "seen" if seen is None else "applied"))
            rows.append({"commit": (t1 - t0) / 1e6, "seen": (seen[0] - t0) / 1e6,
                         "applied": (applied[0] - t0) / 1e6,
                         "seen_logclock": seen[1] - wall0, "warm": e < a.warm_edits})
            prev = rev
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
            perf = None
        timed = [r for r in rows if not r["warm"]]
        res["edits"] = {k: summary([r[k] for r in timed])
                        for k in ("commit", "seen", "applied", "seen_logclock")}
        res["edits"]["seen_before_commit"] = sum(r["seen"] < r["commit"] for r in timed)
        res["first_edit"] = rows[0]
        res["edit_rows"] = rows
        res["edit_reconnects"] = cl.reconnects - res["read_reconnects"]
    finally:
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
        cox.stop()
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
