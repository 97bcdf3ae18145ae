#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# Does the order of new peers in a UAPI set matter to wireguard-go? The same 10,000 peers
# (random keys, one /32 each, addresses handed out in sequence) are set onto a fresh,
# empty wireguard-go interface in three bodies, interleaved in random order per round:
#   key order     - sorted by public key, so the addresses come in random order
#                   (what buoy sent before it ordered new peers by allowed IP);
#   wg order      - file order with replace_allowed_ips=true per peer (what `wg syncconf`
#                   sends for a file written in address order);
#   address order - sorted by allowed IP, no replace_allowed_ips (what buoy sends now).
# Each set is timed from the connect to the "errno=0" answer; medians per body.
#   bench/uapi_order.py [ROUNDS [PEERS]]     (root, /dev/net/tun; defaults 12, 10000)
import os, random, socket, statistics, subprocess, sys, time

NS, IF = "phuo%d" % os.getpid(), "phuo%d" % os.getpid()
SOCK = "/var/run/wireguard/%s.sock" % IF
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 12
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
    sys.exit("bench/uapi_order.py needs root and /dev/net/tun")

keys = [os.urandom(32) for _ in range(n)]
ips = ["10.%d.%d.%d/32" % (100 + i // 65536, (i // 256) % 256, i % 256) for i in range(n)]
priv = os.urandom(32)


def body(order, replace):
    idx = sorted(range(n), key=lambda i: keys[i]) if order == "key" else range(n)
    out = ["set=1", "private_key=" + priv.hex(), "listen_port=51820"]
    for i in idx:
        out.append("public_key=" + keys[i].hex())
        if replace:
            out.append("replace_allowed_ips=true")
        out.append("allowed_ip=" + ips[i])
    return ("\n".join(out) + "\n\n").encode()


bodies = {"key order": body("key", False), "wg order": body("file", True),
          "address order": body("file", False)}
proc = None


def stop():
    if proc is not None:
        proc.kill()
        proc.wait()
    if os.path.exists(SOCK):
        os.unlink(SOCK)


def fresh():
    global proc
    stop()
    proc = subprocess.Popen(["ip", "netns", "exec", NS, "wireguard-go", "-f", IF],
                            env=dict(os.environ, LOG_LEVEL="error"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(250):
        if os.path.exists(SOCK) and subprocess.run(
                ["ip", "-n", NS, "link", "set", IF, "up"], stderr=subprocess.DEVNULL).returncode == 0:
            break
        time.sleep(0.02)
    else:
        sys.exit("wireguard-go did not come up")
    time.sleep(0.8)     # its start settles


def timed_set(b):
    s = socket.socket(socket.AF_UNIX)
    s.connect(SOCK)
    t0 = time.monotonic()
    s.sendall(b)
    r = b""
    while not r.endswith(b"\n\n"):
        d = s.recv(4096)
        if not d:
            break
        r += d
    t1 = time.monotonic()
    s.close()
    if not r.startswith(b"errno=0"):
        sys.exit("set failed: %r" % r[:80])
    return (t1 - t0) * 1000


subprocess.run(["ip", "netns", "add", NS], check=True)
try:
    res = {k: [] for k in bodies}
    for _ in range(rounds):
        order = list(bodies)
        random.shuffle(order)
        for k in order:
            fresh()
            res[k].append(timed_set(bodies[k]))
    base = statistics.median(res["wg order"])
    for k, v in res.items():
        print("%-14s median %7.1f ms (%.3fx wg order), %d sets: %s" % (
            k, statistics.median(v), statistics.median(v) / base, len(v),
            " ".join("%.0f" % x for x in v)))
finally:
    stop()
    subprocess.run(["ip", "netns", "del", NS])
