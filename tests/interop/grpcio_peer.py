#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# A real gRPC implementation (python3-grpcio, the gRPC C core) on the other end of our C
# gRPC stack, for tests/interop/run.sh. Raw bytes on generic handlers: no protoc needed.
# The CLI matches build/tools/grpc_peer so the suite can swap either side.
#
#   grpcio_peer.py serve --listen HOST:PORT --ca CA --cert CHAIN --key KEY
#                        [--no-client-auth] [--allow any|controller] [--crl CRL]
#                        [--max-send BYTES]
#       mTLS server of pharos.test.Echo; prints "listening PORT" once bound, serves until
#       SIGTERM/SIGINT. Logs "peer ID method M" on stderr per call (ID = the client
#       certificate's URI SAN).
#   grpcio_peer.py call --target HOST:PORT --ca CA --cert CHAIN --key KEY --method /S/M
#                       [--data STRING | --size N | --data-file F] [--timeout S]
#                       [--stream] [--authority NAME] [--expect-id SPIFFE]
#       Prints one "msg LEN SHA256HEX" line per response message, then
#       "status CODE DETAILS" (DETAILS omitted when empty). Exit 0 whenever a status was
#       obtained, OK or not; 2 on a usage or file error.
#
# Methods of pharos.test.Echo (proto/pharos/v1/test.proto, raw bytes):
#   Echo    returns the request            Fail    "CODE:message" -> that status
#   Sleep   ASCII ms, then b"done"         Stream  ASCII N -> b"0" .. b"N-1"
#   Size    ASCII N -> b"x" * N
# --size N sends N bytes of b"x" (the same bytes Size N returns).
#
# Message limits, set explicitly: the server receives and sends at most 4 MiB (4194304
# bytes of serialized message, the 5-byte length prefix not counted: 4194304 passes,
# 4194305 is RESOURCE_EXHAUSTED "Received/Sent message larger than max (4194305 vs.
# 4194304)"); --max-send -1 lifts the server's send limit so that a client's own receive
# limit is what gets tested. The client receives at most 4 MiB and sends without limit,
# so that the server's receive limit is what gets tested.
#
# Host name check: grpcio always verifies the server certificate against the target host
# (or grpc.ssl_target_name_override) and has no switch to turn that off. Our leaves carry
# only a SPIFFE URI SAN, no DNS SAN, and a URI SAN also turns off the CN fallback, so
# neither "127.0.0.1", "localhost" nor "spiffe://f/node/n" matches: grpc core splits the
# override as host:port and compares only the host "spiffe". Found empirically with grpcio
# 1.51.1: the bracketed form "[spiffe://f/node/n]" survives the split whole and is then
# compared (case-insensitively, like a DNS name) with every SAN entry, URI ones included;
# a different id is still refused. --expect-id ID passes "[ID]" for you; --authority
# NAME passes NAME as is (e.g. a DNS SAN). The HTTP/2 :authority then stays the target
# host (grpc.default_authority), because "[spiffe://...]" is not a valid authority.
import argparse
import concurrent.futures
import hashlib
import os
import signal
import sys
import threading
import time

try:
    import grpc
except ImportError:  # the pyenv python on PATH does not see Debian's python3-grpcio
    sys.stderr.write("grpcio_peer: python3-grpcio missing; run with /usr/bin/python3\n")
    sys.exit(2)

MAX_MSG = 4 * 1024 * 1024
SERVICE = "pharos.test.Echo"
CODES = {c.value[0]: c for c in grpc.StatusCode}


def out(line):
    """One line on stdout as UTF-8 whatever the locale, flushed."""
    sys.stdout.buffer.write(line.encode("utf-8", "surrogateescape") + b"\n")
    sys.stdout.buffer.flush()


def err(line):
    sys.stderr.buffer.write(line.encode("utf-8", "backslashreplace") + b"\n")
    sys.stderr.buffer.flush()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def peer_uris(context):
    """The client's URI SANs (or its subject) from the auth context."""
    ac = context.auth_context() or {}
    pems = ac.get("x509_pem_cert") or []
    if not pems:
        return ["(no client certificate)"]
    try:
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(pems[0])
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
        except x509.ExtensionNotFound:
            uris = []
        return uris or ["subject=" + cert.subject.rfc4514_string()]
    except ImportError:
        cns = ac.get("x509_common_name") or [b"?"]
        return ["subject CN=" + cns[0].decode("utf-8", "replace")]


def ascii_int(req, context, what):
    try:
        n = int(req.decode("ascii"))
        if n < 0:
            raise ValueError
        return n
    except (UnicodeDecodeError, ValueError):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "%s: want ASCII digits" % what)


class Server:
    def __init__(self, args):
        self.allow = args.allow

    def authorize(self, context, method):
        ids = peer_uris(context)
        err("peer %s method %s" % (",".join(ids), method))
        if self.allow == "controller" and not any(
            i.startswith("spiffe://") and i.endswith("/controller") for i in ids
        ):
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          "peer %s is not the controller" % ",".join(ids))

    def echo(self, req, context):
        self.authorize(context, "Echo")
        return req

    def fail(self, req, context):
        self.authorize(context, "Fail")
        text = req.decode("utf-8", "replace")
        code, _, msg = text.partition(":")
        try:
            status = CODES[int(code)]
        except (ValueError, KeyError):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Fail: want CODE:message")
        if status == grpc.StatusCode.OK:
            context.set_details(msg)
            return b""
        context.abort(status, msg)

    def sleep(self, req, context):
        self.authorize(context, "Sleep")
        end = time.monotonic() + ascii_int(req, context, "Sleep") / 1000.0
        while context.is_active():  # give the thread back once the caller is gone
            left = end - time.monotonic()
            if left <= 0:
                return b"done"
            time.sleep(min(left, 0.05))
        return b""

    def stream(self, req, context):
        self.authorize(context, "Stream")
        for i in range(ascii_int(req, context, "Stream")):
            yield str(i).encode("ascii")

    def size(self, req, context):
        self.authorize(context, "Size")
        return b"x" * ascii_int(req, context, "Size")


def serve(args):
    if args.crl:
        err("grpcio_peer: warning: grpcio (python) cannot check a CRL; --crl ignored")
    impl = Server(args)
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(impl.echo),
        "Fail": grpc.unary_unary_rpc_method_handler(impl.fail),
        "Sleep": grpc.unary_unary_rpc_method_handler(impl.sleep),
        "Stream": grpc.unary_stream_rpc_method_handler(impl.stream),
        "Size": grpc.unary_unary_rpc_method_handler(impl.size),
    }
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=16),
        options=[
            ("grpc.max_receive_message_length", MAX_MSG),
            ("grpc.max_send_message_length", args.max_send),
            ("grpc.so_reuseport", 0),
        ],
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    creds = grpc.ssl_server_credentials(
        [(read(args.key), read(args.cert))],
        root_certificates=read(args.ca),
        require_client_auth=not args.no_client_auth,
    )
    port = server.add_secure_port(args.listen, creds)
    if port == 0:
        err("grpcio_peer: cannot listen on %s" % args.listen)
        return 1
    server.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    out("listening %d" % port)
    while not done.wait(1):
        pass
    server.stop(grace=0.5).wait(2)
    return 0


def call(args):
    if args.data is not None:
        payload = os.fsencode(args.data)  # the exact bytes of argv, UTF-8 or not
    elif args.size is not None:
        payload = b"x" * args.size
    elif args.data_file is not None:
        payload = read(args.data_file)
    else:
        payload = b""
    # grpcio checks the server certificate against this name. For a SPIFFE id it must be
    # bracketed: grpc core splits the name as host:port, and only "[...]" keeps a host
    # containing ':' whole; the whole string is then matched against every SAN entry.
    name = args.authority
    if args.expect_id:
        name = "[%s]" % args.expect_id
    options = [
        ("grpc.max_receive_message_length", MAX_MSG),
        ("grpc.max_send_message_length", -1),  # let the server's limit be what is tested
        ("grpc.enable_retries", 0),
    ]
    if name:
        options.append(("grpc.ssl_target_name_override", name))
        if "/" in name or name.startswith("["):  # a SPIFFE id is no HTTP/2 :authority
            # grpc checks each call's :authority against the certificate too, unless it is
            # the target's bare host (port and IPv6 brackets dropped), which the override
            # already covered.
            options.append(("grpc.default_authority", args.target.rsplit(":", 1)[0].strip("[]")))
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca), private_key=read(args.key),
        certificate_chain=read(args.cert))
    with grpc.secure_channel(args.target, creds, options=options) as ch:
        kw = {"timeout": args.timeout} if args.timeout is not None else {}
        if args.stream:
            it = ch.unary_stream(args.method)(payload, **kw)
            try:
                n = 0
                for m in it:
                    out("msg %d %s" % (len(m), hashlib.sha256(m).hexdigest()))
                    n += 1
                    if args.pause_after is not None and n == args.pause_after:
                        # A slow reader: stop reading so flow control pushes back on the
                        # server, then give up on the stream.
                        out("paused")
                        time.sleep(args.pause)
                        it.cancel()
                        break
            except grpc.RpcError:
                pass
            code, details = it.code(), it.details()
        else:
            try:
                m, c = ch.unary_unary(args.method).with_call(payload, **kw)
                out("msg %d %s" % (len(m), hashlib.sha256(m).hexdigest()))
                code, details = c.code(), c.details()
            except grpc.RpcError as e:
                code, details = e.code(), e.details()
    details = details or ""
    if isinstance(details, bytes):
        details = details.decode("utf-8", "replace")
    out("status %d%s" % (code.value[0], " " + details if details else ""))
    return 0


def main(argv):
    p = argparse.ArgumentParser(prog="grpcio_peer.py", description="grpcio interop peer")
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--listen", required=True)
    s.add_argument("--no-client-auth", action="store_true")
    s.add_argument("--allow", choices=("any", "controller"), default="any")
    s.add_argument("--crl")
    s.add_argument("--max-send", type=int, default=MAX_MSG)
    c = sub.add_parser("call")
    c.add_argument("--target", required=True)
    c.add_argument("--method", required=True)
    g = c.add_mutually_exclusive_group()
    g.add_argument("--data")
    g.add_argument("--size", type=int)
    g.add_argument("--data-file")
    c.add_argument("--timeout", type=float)
    c.add_argument("--stream", action="store_true")
    c.add_argument("--pause-after", type=int, help="stream: stop reading after N messages")
    c.add_argument("--pause", type=float, default=3.0, help="seconds to stay paused")
    c.add_argument("--authority")
    c.add_argument("--expect-id")
    for q in (s, c):
        q.add_argument("--ca", required=True)
        q.add_argument("--cert", required=True)
        q.add_argument("--key", required=True)
    args = p.parse_args(argv)  # exits 2 on a usage error
    if args.mode == "call" and args.size is not None and args.size < 0:
        p.error("--size must be >= 0")
    try:
        return serve(args) if args.mode == "serve" else call(args)
    except OSError as e:
        err("grpcio_peer: %s" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
