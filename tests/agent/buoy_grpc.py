#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A real gRPC implementation (python3-grpcio) as the controller, against a running buoy.

    buoy_grpc.py TARGET PKI_DIR
Calls pharos.v1.NodeControl/GetStatus with the controller's certificate and an empty
request, decodes the NodeStatus wire format field by field (no generated code: the test
must not share our C's idea of the schema), then opens WatchEvents and reads the first
heartbeat. Prints ok/not ok lines.
"""
import os
import sys
import time

import grpc


def fields(buf):
    """Decode one protobuf message level: {field number: [values]}."""
    out, i = {}, 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


def varint(buf, i):
    shift = v = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def main():
    target, pki = sys.argv[1], sys.argv[2]
    rd = lambda n: open(os.path.join(pki, n), "rb").read()
    creds = grpc.ssl_channel_credentials(rd("ca.pem"), rd("controller.key"), rd("controller.pem"))
    # Our leaves carry only a SPIFFE URI SAN: grpcio matches a bracketed override
    # against it (see tests/interop/grpcio_peer.py).
    opts = [("grpc.ssl_target_name_override", "[spiffe://alpha/node/node-a]"),
            ("grpc.default_authority", target.rsplit(":", 1)[0])]
    failed = 0

    def check(cond, name):
        nonlocal failed
        print(("ok - " if cond else "not ok - ") + name)
        failed += not cond

    with grpc.secure_channel(target, creds, options=opts) as ch:
        resp = ch.unary_unary("/pharos.v1.NodeControl/GetStatus")(b"", timeout=5)
        f = fields(resp)
        check(f.get(1) == [b"alpha"], "GetStatus: fleet_id is alpha (%r)" % f.get(1))
        check(f.get(2) == [b"node-a"], "GetStatus: node is node-a (%r)" % f.get(2))
        ver = f.get(16, [b""])[0].decode()
        check(ver != "", "GetStatus: agent_version set (%s)" % ver)
        now = f.get(19, [0])[0]
        check(abs(now / 1e9 - time.time()) < 60, "GetStatus: now_unix_nanos is the node's clock")
        # A field from a newer controller in the request is ignored, not refused.
        resp = ch.unary_unary("/pharos.v1.NodeControl/GetStatus")(b"\xb8\x3e\x07", timeout=5)
        check(fields(resp).get(2) == [b"node-a"], "GetStatus: unknown request field ignored")
        try:
            ch.unary_unary("/pharos.v1.NodeControl/ApplyConfig")(b"", timeout=5)
            check(False, "ApplyConfig without a pinned controller key is refused")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.FAILED_PRECONDITION and "key" in e.details(),
                  "ApplyConfig without a pinned controller key is refused (%s)" % e.details())
        it = ch.unary_stream("/pharos.v1.NodeControl/WatchEvents")(b"\x18\x01", timeout=10)
        ev = fields(next(it))
        check(ev.get(3) == [6] and 14 in ev and ev.get(1, [0])[0] >= 1,
              "WatchEvents: first event is a HEARTBEAT with seq >= 1 (%r)" % ev)
        ev2 = fields(next(it))
        check(ev2.get(1, [0])[0] > ev.get(1, [0])[0], "WatchEvents: seq increases")
        it.cancel()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
