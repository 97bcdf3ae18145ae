#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Run a command and print "RC MAXRSS_KB SECONDS" on stderr's last line.

    maxrss.py [--timeout S] -- CMD ...
The child's own stdout and stderr pass through. Exit status is the child's (124 on
timeout, like timeout(1)).
"""
import os
import signal
import sys
import time


def main():
    args = sys.argv[1:]
    timeout = 60.0
    if args[:1] == ["--timeout"]:
        timeout = float(args[1])
        args = args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: maxrss.py [--timeout S] -- CMD ...", file=sys.stderr)
        return 2
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(args[0], args)
        finally:
            os._exit(127)
    deadline = start + timeout
    while True:
        wpid, status, ru = os.wait4(pid, os.WNOHANG)
        if wpid == pid:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, ru = os.wait4(pid, 0)
            print("124 %d %.3f" % (ru.ru_maxrss, time.monotonic() - start), file=sys.stderr)
            return 124
        time.sleep(0.005)
    rc = os.waitstatus_to_exitcode(status)
    if rc < 0:
        rc = 128 - rc
    print("%d %d %.3f" % (rc, ru.ru_maxrss, time.monotonic() - start), file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
