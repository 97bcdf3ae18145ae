#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# An instant UAPI data plane, for measuring what a client costs apart from wireguard-go:
# it serves SOCK, answers every get with an empty device and every set, once its body
# ends (the blank line), with errno=0, at once; while a file DIR/keep exists, a set's body
# is kept in DIR/set.N (N counts sets from 1; written after the answer). Not a WireGuard:
# it keeps no state, so every set meets an empty device. Runs until killed.
# With PACE_US > 0 a set takes PACE_US microseconds per public_key line, the same every
# time: the body is read no faster than that (a client meets a full socket as it does with
# wireguard-go, ~55 us a new peer here) and the answer comes when its time is up. A data
# plane with wireguard-go's pace but none of its ~10 % variance.
#   bench/uapi_sink.py SOCK DIR [PACE_US]
import os, socket, sys, threading, time

sock_path, out = sys.argv[1], sys.argv[2]
pace = (float(sys.argv[3]) if len(sys.argv) > 3 else 0.0) / 1e6
count = 0
lock = threading.Lock()


def serve(c):
    global count
    buf = bytearray()
    peers = 0
    t0 = None
    try:
        while True:
            d = c.recv(1 << 14 if pace else 1 << 16)
            if not d:
                return
            before = len(buf)
            buf += d
            if pace and buf.startswith(b"set=1\n"):
                # A key line split between two reads is counted once, when it is whole.
                peers += buf.count(b"public_key=", max(0, before - 10))
                if t0 is None:
                    t0 = time.monotonic()
                wait = t0 + peers * pace - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            if not buf.endswith(b"\n\n"):
                continue
            if buf.startswith(b"get=1\n"):
                c.sendall(b"errno=0\n\n")
            elif buf.startswith(b"set=1\n"):
                with lock:
                    count += 1
                    n = count
                c.sendall(b"errno=0\n\n")
                if os.path.exists(out + "/keep"):
                    with open("%s/set.%d" % (out, n), "wb") as f:
                        f.write(buf)
            else:
                c.sendall(b"errno=22\n\n")
            buf = bytearray()
            peers = 0
            t0 = None
    finally:
        c.close()


if os.path.exists(sock_path):
    os.unlink(sock_path)
os.makedirs(os.path.dirname(sock_path), exist_ok=True)
s = socket.socket(socket.AF_UNIX)
s.bind(sock_path)
s.listen(16)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
