#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A stand-in for Xray's HandlerService (no xray binary in Debian 12), on python3-grpcio.

  xray_recorder.py RECORD_FILE

Serves /xray.app.proxyman.command.HandlerService/AlterInbound over cleartext h2c (an
insecure port, as Xray's api.listen) on 127.0.0.1, prints "listening PORT", and appends
each raw request as one line of hex to RECORD_FILE. Like Xray's VLESS validator it keeps
the users by email, compared case-insensitively: a second add of an email fails with
UNKNOWN "User x already exists.", removing an unknown one with "User x not found.". The
answer is the empty AlterInboundResponse. Also decodes requests for the test script:

  xray_recorder.py decode HEX   -> JSON {tag, type, email, id, flow, level}
"""
import concurrent.futures
import json
import signal
import sys
import threading

import grpc

ADD = "xray.app.proxyman.command.AddUserOperation"
REMOVE = "xray.app.proxyman.command.RemoveUserOperation"
ACCOUNT = "xray.proxy.vless.Account"


def varint(b, i):
    v = shift = 0
    while True:
        if i >= len(b):
            raise ValueError("truncated varint")
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i
        if shift > 63:
            raise ValueError("varint too long")


def fields(b):
    """Protobuf wire decoding: {field number: [values]} (varints as int, length-delimited
    as bytes). Anything but wire types 0 and 2 is an error: Xray's messages use no other."""
    out, i = {}, 0
    while i < len(b):
        key, i = varint(b, i)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise ValueError("field number 0")
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 2:
            n, i = varint(b, i)
            if i + n > len(b):
                raise ValueError("truncated field %d" % num)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


def one(f, num, default=b""):
    v = f.get(num, [default])
    if len(v) != 1:
        raise ValueError("field %d repeated" % num)
    return v[0]


def decode(raw):
    req = fields(raw)
    op = fields(one(req, 2))
    d = {"tag": one(req, 1).decode(), "type": one(op, 1).decode()}
    value = fields(one(op, 2))
    if d["type"] == ADD:
        user = fields(one(value, 1))
        d["level"] = one(user, 1, 0)
        d["email"] = one(user, 2).decode()
        acct = fields(one(user, 3))
        d["account_type"] = one(acct, 1).decode()
        a = fields(one(acct, 2))
        d["id"] = one(a, 1).decode()
        d["flow"] = one(a, 2).decode()
        d["fields"] = {"request": sorted(req), "user": sorted(user), "account": sorted(a)}
    elif d["type"] == REMOVE:
        d["email"] = one(value, 1).decode()
    return d


def serve(address, record, users=None, fail_emails=()):
    """Serve HandlerService/AlterInbound on address ("127.0.0.1:0" picks a port) until
    the returned server is stopped; return (server, port). record(raw, decoded) is called
    for each request (decoded None if it does not decode). users: {email.lower(): decoded
    add} to start with, as Xray starts with its config file's clients. Adding an email
    in fail_emails fails with UNKNOWN "boom"."""
    users = {} if users is None else users
    fail = {e.lower() for e in fail_emails}
    lock = threading.Lock()

    def alter_inbound(raw, context):
        with lock:
            try:
                d = decode(raw)
            except (ValueError, UnicodeDecodeError) as e:
                record(raw, None)
                context.abort(grpc.StatusCode.INTERNAL, "bad request: %s" % e)
            record(raw, d)
            email = d.get("email", "")
            if d["type"] == ADD:
                if email.lower() in fail:
                    context.abort(grpc.StatusCode.UNKNOWN, "boom")
                if email.lower() in users:
                    context.abort(grpc.StatusCode.UNKNOWN, "User %s already exists." % email)
                users[email.lower()] = d
            elif d["type"] == REMOVE:
                if not email:
                    context.abort(grpc.StatusCode.UNKNOWN, "Email must not be empty.")
                if email.lower() not in users:
                    context.abort(grpc.StatusCode.UNKNOWN, "User %s not found." % email)
                del users[email.lower()]
            else:
                context.abort(grpc.StatusCode.UNKNOWN, "unknown operation %s" % d["type"])
        return b""

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "xray.app.proxyman.command.HandlerService",
        {"AlterInbound": grpc.unary_unary_rpc_method_handler(alter_inbound)}),))
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError("cannot listen on %s" % address)
    server.start()
    return server, port


def wait_for_signal():
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "decode":
        print(json.dumps(decode(bytes.fromhex(sys.argv[2])), sort_keys=True))
        return 0
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = open(sys.argv[1], "a", encoding="ascii")

    def record(raw, _decoded):
        out.write(raw.hex() + "\n")
        out.flush()

    server, port = serve("127.0.0.1:0", record)
    print("listening %d" % port, flush=True)
    wait_for_signal()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
