#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Start buoy's ApplyConfig and a `wg syncconf` at the same moment; print both times.

  go_together.py FIRST IF CONF -- CTL_PUSH_ARGV...
  go_together.py FIRST IF CONF -- wg IF2

CTL_PUSH_ARGV is a `ctl_push apply ... --time-call --go-on-stdin`: it opens its channel,
says "ready" and waits. Then, FIRST (a or wg) first, it is told to go and
`wg syncconf IF CONF` is started; the two run together. Prints "A_MS WG_MS": buoy's call
as ctl_push times it (call_ms=), and wg's run from just before its spawn to its exit.
With "wg IF2" in place of ctl_push, the first arm is `wg syncconf IF2 CONF`, timed as the
other (an A/A run: how far apart two equal arms land). Exits non-zero, saying why, if
either fails.
"""
import os
import subprocess
import sys
import time


def spawn_wg(ifname, conf):
    t = time.monotonic_ns()
    return t, os.posix_spawnp("wg", ["wg", "syncconf", ifname, conf], os.environ)


def reap(pid, t0, what):
    _, status = os.waitpid(pid, 0)
    t1 = time.monotonic_ns()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("go_together: %s failed (%d)" % (what, os.waitstatus_to_exitcode(status)))
    return (t1 - t0) / 1e6


def main():
    if len(sys.argv) < 6 or sys.argv[4] != "--" or sys.argv[1] not in ("a", "wg"):
        sys.exit(__doc__.strip().split("\n\n")[1])
    first, ifname, conf, arm = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5:]
    aa = len(arm) == 2 and arm[0] == "wg"
    if aa:
        def go_a():
            return spawn_wg(arm[1], conf)
    else:
        p = subprocess.Popen(arm, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        if line != "ready\n":
            p.kill()
            sys.exit("go_together: ctl_push said %r, not ready" % line)

        def go_a():
            p.stdin.write("go\n")
            p.stdin.flush()
            return None, None

    if first == "a":
        ta, pa = go_a()
        t0, pid = spawn_wg(ifname, conf)
    else:
        t0, pid = spawn_wg(ifname, conf)
        ta, pa = go_a()
    if aa:
        # Reap whichever ends first, so neither time takes in the wait for the other.
        times = {}
        for _ in range(2):
            done, status = os.wait()
            times[done] = (time.monotonic_ns(), status)
        for q, name in ((pa, "wg syncconf " + arm[1]), (pid, "wg syncconf " + ifname)):
            if os.waitstatus_to_exitcode(times[q][1]) != 0:
                sys.exit("go_together: %s failed" % name)
        print("%.3f %.3f" % ((times[pa][0] - ta) / 1e6, (times[pid][0] - t0) / 1e6))
        return
    wg_ms = reap(pid, t0, "wg syncconf")
    out, _ = p.communicate(timeout=300)
    call = [l[len("call_ms="):] for l in out.splitlines() if l.startswith("call_ms=")]
    if p.returncode != 0 or "status 0" not in out or not call:
        sys.exit("go_together: buoy apply: %s" % out.strip())
    print("%s %.3f" % (call[0], wg_ms))


if __name__ == "__main__":
    main()
