/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gRPC over HTTP/2 over TLS 1.3 (grpc/grpc PROTOCOL-HTTP2), on nghttp2 + libevent +
 * OpenSSL: a server and a client ("channel"), unary and server-streaming calls, raw
 * message bytes (callers use protobuf-c). One event_base runs everything; callbacks
 * never block and are never called re-entrantly from an API function of the same
 * connection. A channel may also speak cleartext h2c (grpc_channel_opts.ssl NULL), for
 * loopback services such as the Xray API; the server is TLS only.
 *
 * Lifetimes. A server call (struct grpc_call) is handed to the method's handler and
 * stays valid until the handler calls grpc_call_finish() or the call's cancel callback
 * runs (peer reset, connection lost, deadline passed), whichever is first; after that
 * the handle must not be used. A client call (struct grpc_ccall) is valid until its
 * done callback has run or grpc_ccall_cancel() was called. A channel must not be freed
 * from inside one of its own callbacks.
 */
#ifndef PHAROS_GRPC_H
#define PHAROS_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "pki.h"

struct event_base;
struct evbuffer;

enum grpc_status {
	GRPC_OK = 0,
	GRPC_CANCELLED = 1,
	GRPC_UNKNOWN = 2,
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_DEADLINE_EXCEEDED = 4,
	GRPC_NOT_FOUND = 5,
	GRPC_ALREADY_EXISTS = 6,
	GRPC_PERMISSION_DENIED = 7,
	GRPC_RESOURCE_EXHAUSTED = 8,
	GRPC_FAILED_PRECONDITION = 9,
	GRPC_ABORTED = 10,
	GRPC_OUT_OF_RANGE = 11,
	GRPC_UNIMPLEMENTED = 12,
	GRPC_INTERNAL = 13,
	GRPC_UNAVAILABLE = 14,
	GRPC_DATA_LOSS = 15,
	GRPC_UNAUTHENTICATED = 16,
};

#define GRPC_MAX_MESSAGE_DEFAULT	(4 * 1024 * 1024)

/* ---- wire helpers (grpc_wire.c): pure functions, fuzzed ---- */

/*
 * Reassembly of length-prefixed messages from DATA payloads that split them anywhere.
 * feed() calls on_msg once per complete message. It returns 0, GRPC_RESOURCE_EXHAUSTED
 * when a prefix announces more than max (nothing of it is buffered), GRPC_UNIMPLEMENTED
 * for a compressed message (we negotiate identity only), GRPC_INTERNAL for a bad flag
 * byte, or whatever non-zero on_msg returned (which stops feeding).
 * A message that arrived in pieces is handed over in a malloc'd buffer of its own
 * (heap_msg true during on_msg); on_msg may keep it, setting `kept`, and free() it later.
 * Otherwise msg points into the DATA payload and is gone when on_msg returns.
 */
struct grpc_reasm {
	uint8_t		 hdr[5];
	size_t		 hdr_have;
	uint8_t		*buf;
	size_t		 len, have;
	size_t		 max;
	bool		 in_msg;
	bool		 heap_msg, kept;
};

typedef int (*grpc_reasm_fn)(void *arg, const uint8_t *msg, size_t len);

void	 grpc_reasm_init(struct grpc_reasm *, size_t max);
int	 grpc_reasm_feed(struct grpc_reasm *, const uint8_t *data, size_t len,
	    grpc_reasm_fn on_msg, void *arg);
/* True when no partial message is pending (a stream may end here). */
bool	 grpc_reasm_idle(const struct grpc_reasm *);
void	 grpc_reasm_free(struct grpc_reasm *);
/* Bytes currently buffered for a partial message. */
size_t	 grpc_reasm_buffered(const struct grpc_reasm *);

/* Append the 5-byte prefix and msg to out. */
int	 grpc_frame(struct evbuffer *out, const uint8_t *msg, size_t len);

/*
 * grpc-message encoding: bytes 0x20-0x7E except '%' raw, every other byte %XX. The
 * decoder never fails: a bad escape passes through as text. Both return a malloc'd string.
 */
char	*grpc_percent_encode(const char *s);
char	*grpc_percent_decode(const char *s, size_t len);

/* grpc-timeout: "<1-8 digits><H|M|S|m|u|n>" <-> milliseconds (rounded up, >= 1). */
int	 grpc_timeout_parse(const char *s, size_t len, uint64_t *ms);
void	 grpc_timeout_format(char buf[16], uint64_t ms);

const char *grpc_status_name(int status);
/* PROTOCOL-HTTP2's mappings for a response without grpc-status, and for RST_STREAM. */
int	 grpc_status_from_http(int http_status);
int	 grpc_status_from_rst(uint32_t h2_error);

/* ---- server (grpc.c) ---- */

struct grpc_server;
struct grpc_call;

typedef void (*grpc_handler_fn)(struct grpc_call *, const uint8_t *req, size_t len, void *arg);

struct grpc_method {
	const char	*path;		/* "/pharos.v1.NodeControl/GetStatus" */
	bool		 streaming;	/* server-streaming: any number of grpc_call_send() */
	grpc_handler_fn	 fn;
	void		*arg;
};

/*
 * Called once the TLS handshake is done and ALPN gave h2; 0 admits the connection.
 * The peer's verified SPIFFE id is in *peer_id. A refusal must log its reason.
 */
typedef int (*grpc_authorize_fn)(SSL *, const struct spiffe *peer_id, const char *peer_addr,
    void *arg);

struct grpc_server_opts {
	SSL_CTX			*ssl;		/* required: grpc_server_new() refuses NULL */
	grpc_authorize_fn	 authorize;	/* NULL: any verified peer */
	void			*authorize_arg;
	size_t			 max_message;	/* 0: GRPC_MAX_MESSAGE_DEFAULT */
	unsigned		 keepalive_ms;	/* PING interval; 0: 30 s */
	unsigned		 keepalive_timeout_ms;	/* no PING ACK in time: dead; 0: 20 s */
	unsigned		 max_streams;	/* concurrent streams per connection; 0: 128 */
	size_t			 max_conns;	/* 0: 10,000 */
};

/* NULL on failure (no TLS context: err_last() says so; otherwise out of memory). */
struct grpc_server *grpc_server_new(struct event_base *, const struct grpc_server_opts *,
	    const struct grpc_method *methods, size_t nmethods);
/* Listen on host:port (port "0" picks one); *bound gets the port. */
int	 grpc_server_listen(struct grpc_server *, const char *host, const char *port, int *bound);
/*
 * Graceful shutdown: stop accepting, send GOAWAY to every connection, let running calls
 * finish; done(arg) runs when the last connection has closed (or at once if none).
 */
void	 grpc_server_shutdown(struct grpc_server *, void (*done)(void *), void *arg);
void	 grpc_server_free(struct grpc_server *);
size_t	 grpc_server_conns(const struct grpc_server *);

typedef void (*grpc_call_fn)(struct grpc_call *, void *arg);

/* Unary: the one response message and status OK. */
int	 grpc_call_reply(struct grpc_call *, const uint8_t *msg, size_t len);
/*
 * Streaming: queue one message. ERR_TOOBIG when the call's queue is over its bound
 * (1 MiB): the peer is not reading; wait for the writable callback.
 */
int	 grpc_call_send(struct grpc_call *, const uint8_t *msg, size_t len);
/* End the call with a status; message may be NULL. The handle is invalid afterwards. */
void	 grpc_call_finish(struct grpc_call *, int status, const char *message);
void	 grpc_call_set_cancel_cb(struct grpc_call *, grpc_call_fn, void *arg);
void	 grpc_call_set_writable_cb(struct grpc_call *, grpc_call_fn, void *arg);
const struct spiffe *grpc_call_peer(const struct grpc_call *);
const char *grpc_call_peer_addr(const struct grpc_call *);
/* Milliseconds left before the client's deadline, or UINT64_MAX if it set none. */
uint64_t grpc_call_time_left(const struct grpc_call *);

/* ---- client (grpc.c) ---- */

struct grpc_channel;
struct grpc_ccall;

enum grpc_channel_state { GRPC_CH_IDLE, GRPC_CH_CONNECTING, GRPC_CH_READY, GRPC_CH_BACKOFF };

/*
 * ssl NULL selects cleartext h2c with prior knowledge (no Upgrade): the connection preface
 * goes out as soon as TCP connects, requests carry ":scheme http", and authorize is never
 * called (there is no peer identity: grpc_channel_peer() stays empty). Only for a trusted
 * path such as loopback.
 */
struct grpc_channel_opts {
	SSL_CTX			*ssl;		/* NULL: cleartext h2c */
	grpc_authorize_fn	 authorize;	/* e.g. only the node identity meant; TLS only */
	void			*authorize_arg;
	const char		*authority;	/* :authority and SNI; NULL: host */
	size_t			 max_message;
	unsigned		 keepalive_ms;
	unsigned		 keepalive_timeout_ms;
	unsigned		 backoff_initial_ms;	/* 0: 1000 */
	unsigned		 backoff_max_ms;	/* 0: 120000 */
	void			(*on_state)(struct grpc_channel *, enum grpc_channel_state, void *);
	void			*state_arg;
};

/* A channel connects at once and reconnects with exponential backoff and jitter. */
struct grpc_channel *grpc_channel_new(struct event_base *, const char *host, const char *port,
	    const struct grpc_channel_opts *);
/* Every outstanding call's done callback runs with CANCELLED before this returns. */
void	 grpc_channel_free(struct grpc_channel *);
enum grpc_channel_state grpc_channel_state(const struct grpc_channel *);
/* Try now instead of waiting out the backoff. */
void	 grpc_channel_connect_now(struct grpc_channel *);
const struct spiffe *grpc_channel_peer(const struct grpc_channel *);

typedef void (*grpc_msg_fn)(void *arg, const uint8_t *msg, size_t len);
typedef void (*grpc_done_fn)(void *arg, int status, const char *message);

#define GRPC_CALL_WAIT_FOR_READY	(1U << 0)	/* queue until connected (or deadline) */

/*
 * Start a call: one request message; on_msg for each response message (unary: one),
 * then on_done exactly once. timeout_ms 0 means none. Without WAIT_FOR_READY a call on
 * a channel that is not ready fails with UNAVAILABLE. on_done never runs inside this
 * function.
 */
struct grpc_ccall *grpc_channel_call(struct grpc_channel *, const char *path,
	    const uint8_t *req, size_t len, unsigned timeout_ms, unsigned flags,
	    grpc_msg_fn on_msg, grpc_done_fn on_done, void *arg);
/* Cancel: RST_STREAM(CANCEL) to the server; no further callbacks. */
void	 grpc_ccall_cancel(struct grpc_ccall *);

#endif
