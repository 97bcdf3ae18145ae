#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# N peers with random keys and one /32 each, addresses in sequence from 10.100.0.0, for
# the buoy benches: DIR/peers (KEY=CIDR lines, for ctl_push --peers-file) and DIR/wg.conf
# (the same peers as wg(8) config under an [Interface] with KEYFILE's private key, or a
# random one, and ListenPort 51820); DIR/peers1 and DIR/wg1.conf hold the same and one
# peer more (an incremental apply).
#   bench/peers.py N DIR [KEYFILE]
import base64, os, sys

n, d = int(sys.argv[1]), sys.argv[2]
key = (open(sys.argv[3]).read().strip() if len(sys.argv) > 3
       else base64.b64encode(os.urandom(32)).decode())
peers, conf = [], ["[Interface]\nPrivateKey = %s\nListenPort = 51820\n" % key]
for i in range(n + 1):
    k = base64.b64encode(os.urandom(32)).decode()
    ip = "10.%d.%d.%d/32" % (100 + i // 65536, (i // 256) % 256, i % 256)
    peers.append("%s=%s\n" % (k, ip))
    conf.append("[Peer]\nPublicKey = %s\nAllowedIPs = %s\n" % (k, ip))
for name, lines in (("peers", peers), ("wg.conf", conf)):
    stem, dot, ext = name.partition(".")
    with open("%s/%s" % (d, name), "w") as f:
        f.writelines(lines[:-1])
    with open("%s/%s1%s%s" % (d, stem, dot, ext), "w") as f:
        f.writelines(lines)
