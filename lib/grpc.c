/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gRPC server and client on nghttp2 + libevent (bufferevent_openssl) + OpenSSL.
 *
 * One struct conn per TLS connection, used by both sides. A client channel without an
 * SSL_CTX runs cleartext h2c with prior knowledge instead (a plain bufferevent, c->ssl
 * NULL): HTTP/2 starts as soon as TCP connects, with no ALPN, peer identity or
 * authorize step. Input: the read callback feeds
 * everything buffered to nghttp2_session_mem_recv(), then flushes. Output: nghttp2's
 * send callback appends to the bufferevent's output buffer and answers WOULDBLOCK above
 * OUT_HIGH bytes, so a peer that does not read stops us producing (TCP backpressure);
 * the write callback flushes again once the buffer drained. Per stream, HTTP/2 flow
 * control does the same: a data provider that finds the window closed is simply not
 * called, and a server call's queue refuses new messages above CALL_QUEUE_MAX until the
 * reader catches up (grpc_call_send() -> ERR_TOOBIG, then the writable callback).
 *
 * Memory per connection is bounded on input too: a message is reassembled only up to
 * the message limit, and all partial messages of a connection together up to
 * CONN_RX_MAX; beyond that the stream is reset with RESOURCE_EXHAUSTED.
 *
 * Re-entrancy: nghttp2 must not be driven from inside its own callbacks, so every
 * flush checks conn->in_h2; application callbacks that run inside nghttp2 callbacks
 * may call the API (submit is allowed there), and the flush happens when control is
 * back in the read callback. A connection is freed only from an event callback at the
 * top of the stack (conn->dead marks it for that).
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "grpc.h"
#include "log.h"
#include "tls.h"

#define OUT_HIGH		(64 * 1024)	/* nghttp2 output buffered before WOULDBLOCK */
#define CALL_QUEUE_MAX		(1024 * 1024)	/* a streaming call's unsent bytes */
#define CALL_QUEUE_LOW		(256 * 1024)	/* writable callback below this */
#define CONN_RX_MAX		(16 * 1024 * 1024)	/* partial messages per connection */
#define STREAM_WINDOW		(1024 * 1024)
#define CONN_WINDOW		(4 * 1024 * 1024)
#define HANDSHAKE_TIMEOUT_S	10

struct grpc_server;
struct grpc_channel;

struct conn {
	struct event_base	*base;
	struct bufferevent	*bev;
	SSL			*ssl;		/* NULL: cleartext h2c (client only) */
	nghttp2_session		*h2;
	struct grpc_server	*srv;		/* server side */
	struct grpc_channel	*ch;		/* client side */
	char			 peer[INET6_ADDRSTRLEN + 8];
	struct spiffe		 peer_id;
	bool			 ready;		/* handshake done, authorized, h2 running */
	bool			 in_h2;		/* inside nghttp2 (recv or send) */
	bool			 dead;		/* free at the next safe point */
	bool			 goaway;	/* no new streams */
	struct event		*keepalive;
	struct event		*reaper;	/* frees a dead connection from the loop */
	uint64_t		 ping_sent;	/* ms; 0: no PING outstanding */
	unsigned		 ka_ms, ka_timeout_ms;
	size_t			 rx_buffered;
	size_t			 max_message;
	LIST_ENTRY(conn)	 link;		/* server's connections */
	TAILQ_HEAD(, grpc_call)	 calls;		/* server streams */
	TAILQ_HEAD(, grpc_ccall) ccalls;	/* client streams */
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct timeval
tv_ms(uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
	return tv;
}

#define MAKE_NV(n, v, vl) { (uint8_t *)(uintptr_t)(n), (uint8_t *)(uintptr_t)(v), \
	    sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NONE }
#define MAKE_NV_CS(n, v) MAKE_NV(n, v, strlen(v))

static void conn_flush(struct conn *);
static void conn_kill(struct conn *, const char *why);
static void conn_free(struct conn *);
static void channel_dial(struct grpc_channel *);
static void lift_handshake_timeout(struct conn *);

/* glibc's <sys/queue.h> lacks the _SAFE iterators. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar) \
	for ((var) = TAILQ_FIRST(head); \
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1); (var) = (tvar))
#endif

/* ======================================================================== */
/* server calls                                                              */
/* ======================================================================== */

struct grpc_server {
	struct event_base		*base;
	struct grpc_server_opts		 o;
	const struct grpc_method	*methods;
	size_t				 nmethods;
	struct evconnlistener		*listener;
	LIST_HEAD(, conn)		 conns;
	size_t				 nconns;
	bool				 shutting_down;
	void				(*shutdown_done)(void *);
	void				*shutdown_arg;
	struct event			*shutdown_ev;
};

struct grpc_call {
	struct conn			*c;
	int32_t				 id;
	const struct grpc_method	*m;
	char				 path[256];
	char				 ctype[64];
	bool				 post, have_ctype, bad_header;
	uint64_t			 deadline;	/* ms, monotonic; 0: none */
	struct event			*deadline_ev;
	struct grpc_reasm		 rx;
	uint8_t				*req;
	size_t				 reqlen;
	int				 nmsgs;
	bool				 rejected;	/* answered already; ignore the rest */
	bool				 http_reject;	/* a plain HTTP 405/415: no early RST */
	bool				 dispatched;
	bool				 app_done;	/* the app finished or was cancelled */
	bool				 headers_sent;
	bool				 finished;	/* status decided; trailers pending */
	bool				 trailers_sent;
	int				 status;
	char				*message;
	struct evbuffer			*out;
	grpc_call_fn			 cancel_cb, writable_cb;
	void				*cancel_arg, *writable_arg;
	bool				 want_writable;
	TAILQ_ENTRY(grpc_call)		 link;
};

static void
call_free(struct grpc_call *call)
{
	if (call->deadline_ev != NULL)
		event_free(call->deadline_ev);
	if (call->out != NULL)
		evbuffer_free(call->out);
	if (call->c != NULL)
		call->c->rx_buffered -= grpc_reasm_buffered(&call->rx);
	grpc_reasm_free(&call->rx);
	free(call->req);
	free(call->message);
	free(call);
}

/* The application loses the call: tell it, once. */
static void
call_cancel_app(struct grpc_call *call)
{
	if (call->dispatched && !call->app_done) {
		call->app_done = true;
		if (call->cancel_cb != NULL)
			call->cancel_cb(call, call->cancel_arg);
	}
	call->app_done = true;
}

static ssize_t
call_read_cb(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
    nghttp2_data_source *src, void *user)
{
	struct grpc_call *call = src->ptr;
	size_t have = evbuffer_get_length(call->out);
	int n;

	(void)user;
	if (have > 0) {
		n = evbuffer_remove(call->out, buf, len);
		if (n < 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		if (evbuffer_get_length(call->out) > 0 || !call->finished)
			return n;
	} else if (!call->finished) {
		return NGHTTP2_ERR_DEFERRED;
	} else {
		n = 0;
	}
	/* Everything sent and the status known: end the data, send trailers. */
	{
		char st[16];
		char *msg = NULL;
		nghttp2_nv nv[2];
		size_t nnv = 1;

		snprintf(st, sizeof(st), "%d", call->status);
		nv[0] = (nghttp2_nv)MAKE_NV("grpc-status", st, strlen(st));
		if (call->message != NULL && (msg = grpc_percent_encode(call->message)) != NULL) {
			nv[1] = (nghttp2_nv)MAKE_NV("grpc-message", msg, strlen(msg));
			nnv = 2;
		}
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		if (nghttp2_submit_trailer(h2, id, nv, nnv) != 0) {
			free(msg);
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		}
		free(msg);
		call->trailers_sent = true;
	}
	return n;
}

static int
submit_headers(struct grpc_call *call)
{
	nghttp2_nv nv[] = {
		MAKE_NV(":status", "200", 3),
		MAKE_NV("content-type", "application/grpc", 16),
	};
	nghttp2_data_provider dp;

	dp.source.ptr = call;
	dp.read_callback = call_read_cb;
	if (nghttp2_submit_response(call->c->h2, call->id, nv, 2, &dp) != 0)
		return ERR_LIB;
	call->headers_sent = true;
	return 0;
}

/* An immediate answer: one HEADERS frame with END_STREAM carrying the status. */
static void
submit_trailers_only(struct grpc_call *call, int status, const char *message)
{
	char st[16];
	char *msg = message != NULL ? grpc_percent_encode(message) : NULL;
	nghttp2_nv nv[4] = {
		MAKE_NV(":status", "200", 3),
		MAKE_NV("content-type", "application/grpc", 16),
	};
	size_t n = 2;

	snprintf(st, sizeof(st), "%d", status);
	nv[n++] = (nghttp2_nv)MAKE_NV("grpc-status", st, strlen(st));
	if (msg != NULL)
		nv[n++] = (nghttp2_nv)MAKE_NV("grpc-message", msg, strlen(msg));
	nghttp2_submit_response(call->c->h2, call->id, nv, n, NULL);
	free(msg);
	call->headers_sent = call->finished = call->trailers_sent = true;
	call->status = status;
}

/* End a call from the library's side (limits, deadline, protocol errors). */
static void
call_fail(struct grpc_call *call, int status, const char *message)
{
	call_cancel_app(call);
	if (call->trailers_sent || call->finished)
		return;
	if (!call->headers_sent) {
		submit_trailers_only(call, status, message);
	} else {
		call->finished = true;
		call->status = status;
		free(call->message);
		call->message = message ? strdup(message) : NULL;
		evbuffer_drain(call->out, evbuffer_get_length(call->out));
		nghttp2_session_resume_data(call->c->h2, call->id);
	}
	if (status != GRPC_OK)
		log_debug("grpc: call %s from %s ended status=%s message=\"%s\"", call->path,
		    call->c->peer, grpc_status_name(status), message ? message : "");
	conn_flush(call->c);
}

int
grpc_call_send(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	int rc;

	if (call->app_done || call->finished)
		return ERR_INVAL;
	if (len > call->c->max_message) {
		err_set("message of %zu bytes is over the %zu-byte limit", len, call->c->max_message);
		return ERR_TOOBIG;
	}
	if (evbuffer_get_length(call->out) > CALL_QUEUE_MAX) {
		call->want_writable = true;
		err_set("peer is not reading: %zu bytes queued", evbuffer_get_length(call->out));
		return ERR_TOOBIG;
	}
	if ((rc = grpc_frame(call->out, msg, len)) != 0)
		return rc;
	if (!call->headers_sent) {
		if ((rc = submit_headers(call)) != 0)
			return rc;
	} else {
		nghttp2_session_resume_data(call->c->h2, call->id);
	}
	conn_flush(call->c);
	return 0;
}

void
grpc_call_finish(struct grpc_call *call, int status, const char *message)
{
	if (call->app_done)
		return;
	call->app_done = true;
	if (call->finished)
		return;
	if (!call->headers_sent && evbuffer_get_length(call->out) == 0) {
		submit_trailers_only(call, status, message);
	} else {
		call->finished = true;
		call->status = status;
		call->message = message != NULL ? strdup(message) : NULL;
		if (!call->headers_sent)
			submit_headers(call);
		else
			nghttp2_session_resume_data(call->c->h2, call->id);
	}
	conn_flush(call->c);
}

int
grpc_call_reply(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	int rc;

	if (len > call->c->max_message) {
		grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "response over the message limit");
		return ERR_TOOBIG;
	}
	if ((rc = grpc_frame(call->out, msg, len)) != 0) {
		grpc_call_finish(call, GRPC_INTERNAL, "out of memory");
		return rc;
	}
	grpc_call_finish(call, GRPC_OK, NULL);
	return 0;
}

void
grpc_call_set_cancel_cb(struct grpc_call *call, grpc_call_fn fn, void *arg)
{
	call->cancel_cb = fn;
	call->cancel_arg = arg;
}

void
grpc_call_set_writable_cb(struct grpc_call *call, grpc_call_fn fn, void *arg)
{
	call->writable_cb = fn;
	call->writable_arg = arg;
}

const struct spiffe *
grpc_call_peer(const struct grpc_call *call)
{
	return &call->c->peer_id;
}

const char *
grpc_call_peer_addr(const struct grpc_call *call)
{
	return call->c->peer;
}

uint64_t
grpc_call_time_left(const struct grpc_call *call)
{
	uint64_t now = now_ms();

	if (call->deadline == 0)
		return UINT64_MAX;
	return call->deadline > now ? call->deadline - now : 0;
}

static void
call_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_call *call = arg;

	(void)fd;
	(void)what;
	call_fail(call, GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
}

static const struct grpc_method *
find_method(const struct grpc_server *srv, const char *path)
{
	size_t i;

	for (i = 0; i < srv->nmethods; i++)
		if (strcmp(srv->methods[i].path, path) == 0)
			return &srv->methods[i];
	return NULL;
}

static int
call_on_msg(void *arg, const uint8_t *msg, size_t len)
{
	struct grpc_call *call = arg;

	if (++call->nmsgs > 1)
		return GRPC_UNIMPLEMENTED;	/* request cardinality violation */
	if (call->rx.heap_msg) {
		/* Reassembled in a buffer of its own: keep it rather than copy 500 KB again. */
		call->req = (uint8_t *)(uintptr_t)msg;
		call->rx.kept = true;
	} else {
		if ((call->req = malloc(len ? len : 1)) == NULL)
			return GRPC_RESOURCE_EXHAUSTED;
		memcpy(call->req, msg, len);
	}
	call->reqlen = len;
	return 0;
}

/* The request is complete (END_STREAM): check it and hand it to the method. */
static void
call_dispatch(struct grpc_call *call)
{
	struct grpc_server *srv = call->c->srv;

	if (call->rejected || call->dispatched)
		return;
	if (!grpc_reasm_idle(&call->rx)) {
		call_fail(call, GRPC_INTERNAL, "request ended inside a message");
		return;
	}
	if (call->nmsgs != 1) {
		call_fail(call, GRPC_UNIMPLEMENTED, "request cardinality violation: expected 1 "
		    "request message");
		return;
	}
	if (srv->shutting_down) {
		call_fail(call, GRPC_UNAVAILABLE, "server shutting down");
		return;
	}
	call->dispatched = true;
	if (call->deadline != 0) {
		uint64_t now = now_ms();
		struct timeval tv = tv_ms(call->deadline > now ? call->deadline - now : 0);
		call->deadline_ev = evtimer_new(call->c->base, call_deadline_cb, call);
		if (call->deadline_ev != NULL)
			evtimer_add(call->deadline_ev, &tv);
	}
	call->m->fn(call, call->req, call->reqlen, call->m->arg);
}

/* Headers are in: route the call or answer it at once. */
static void
call_begin(struct grpc_call *call)
{
	struct conn *c = call->c;

	if (!call->post) {
		nghttp2_nv nv[] = { MAKE_NV(":status", "405", 3) };
		nghttp2_submit_response(c->h2, call->id, nv, 1, NULL);
		call->rejected = call->headers_sent = call->finished = call->trailers_sent = true;
		call->http_reject = true;
		return;
	}
	if (!call->have_ctype || strncmp(call->ctype, "application/grpc", 16) != 0 ||
	    (call->ctype[16] != '\0' && call->ctype[16] != '+' && call->ctype[16] != ';')) {
		nghttp2_nv nv[] = { MAKE_NV(":status", "415", 3),
			MAKE_NV("content-type", "text/plain", 10) };
		log_debug("grpc: 415 for content-type \"%s\" from %s", call->ctype, c->peer);
		nghttp2_submit_response(c->h2, call->id, nv, 2, NULL);
		call->rejected = call->headers_sent = call->finished = call->trailers_sent = true;
		call->http_reject = true;
		return;
	}
	if (call->bad_header) {
		submit_trailers_only(call, GRPC_INTERNAL, "malformed request headers");
		call->rejected = true;
		return;
	}
	if ((call->m = find_method(c->srv, call->path)) == NULL) {
		char msg[320];
		snprintf(msg, sizeof(msg), "unknown method %s", call->path);
		submit_trailers_only(call, GRPC_UNIMPLEMENTED, msg);
		call->rejected = true;
		return;
	}
}

/* ======================================================================== */
/* client calls                                                              */
/* ======================================================================== */

struct grpc_channel {
	struct event_base		*base;
	char				*host, *port, *authority;
	struct grpc_channel_opts	 o;
	enum grpc_channel_state		 state;
	struct conn			*c;
	unsigned			 attempt;
	struct event			*retry;
	TAILQ_HEAD(, grpc_ccall)	 pending;	/* waiting for a connection */
	struct spiffe			 peer_id;
	bool				 freeing;
};

struct grpc_ccall {
	struct grpc_channel	*ch;
	struct conn		*c;
	int32_t			 id;
	char			*path;
	struct evbuffer		*req;
	uint64_t		 deadline;
	struct event		*timer;
	struct event		*later;		/* runs on_done outside the caller */
	unsigned		 flags;
	grpc_msg_fn		 on_msg;
	grpc_done_fn		 on_done;
	void			*arg;
	struct grpc_reasm	 rx;
	int			 http_status;
	bool			 got_status, cancelled, failing;
	int			 status;
	char			*message;
	int			 local_status;	/* set when we ended it (limit, deadline) */
	char			*local_message;
	TAILQ_ENTRY(grpc_ccall)	 link;
};

static void ccall_complete(struct grpc_ccall *, int status, const char *message);

static void
ccall_free(struct grpc_ccall *cc)
{
	if (cc->timer != NULL)
		event_free(cc->timer);
	if (cc->later != NULL)
		event_free(cc->later);
	if (cc->req != NULL)
		evbuffer_free(cc->req);
	grpc_reasm_free(&cc->rx);
	free(cc->path);
	free(cc->message);
	free(cc->local_message);
	free(cc);
}

/* Detach from wherever the call is listed. */
static void
ccall_unlink(struct grpc_ccall *cc)
{
	if (cc->c != NULL) {
		cc->c->rx_buffered -= grpc_reasm_buffered(&cc->rx);
		grpc_reasm_free(&cc->rx);
		TAILQ_REMOVE(&cc->c->ccalls, cc, link);
		if (cc->id > 0)
			nghttp2_session_set_stream_user_data(cc->c->h2, cc->id, NULL);
		cc->c = NULL;
	} else if (cc->ch != NULL) {
		TAILQ_REMOVE(&cc->ch->pending, cc, link);
	}
}

/* Report and free: the call's last act. */
static void
ccall_complete(struct grpc_ccall *cc, int status, const char *message)
{
	grpc_done_fn fn = cc->on_done;
	void *arg = cc->arg;
	char *msg = message != NULL ? strdup(message) : NULL;
	bool quiet = cc->cancelled;

	ccall_unlink(cc);
	ccall_free(cc);
	if (!quiet && fn != NULL)
		fn(arg, status, msg);
	free(msg);
}

static ssize_t
ccall_read_cb(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
    nghttp2_data_source *src, void *user)
{
	struct grpc_ccall *cc = src->ptr;
	int n;

	(void)h2;
	(void)id;
	(void)user;
	n = evbuffer_remove(cc->req, buf, len);
	if (n < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (evbuffer_get_length(cc->req) == 0)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return n;
}

static void
ccall_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_ccall *cc = arg;
	struct conn *c = cc->c;

	(void)fd;
	(void)what;
	if (c != NULL && cc->id > 0) {
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, cc->id, NGHTTP2_CANCEL);
		ccall_complete(cc, GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
		conn_flush(c);
	} else {
		ccall_complete(cc, GRPC_DEADLINE_EXCEEDED, "deadline exceeded (never connected)");
	}
}

static void
ccall_later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_ccall *cc = arg;

	(void)fd;
	(void)what;
	ccall_complete(cc, cc->local_status, cc->local_message);
}

/* Fail a call from outside nghttp2, with the callback deferred to the loop. */
static void
ccall_fail_later(struct grpc_ccall *cc, int status, const char *message)
{
	cc->failing = true;
	cc->local_status = status;
	free(cc->local_message);
	cc->local_message = message ? strdup(message) : NULL;
	if (cc->later == NULL)
		cc->later = event_new(cc->ch->base, -1, 0, ccall_later_cb, cc);
	if (cc->later != NULL)
		event_active(cc->later, 0, 0);
}

static int
ccall_submit(struct conn *c, struct grpc_ccall *cc)
{
	char tmo[16], ua[64];
	const char *auth = cc->ch->authority;
	nghttp2_nv nv[8];
	nghttp2_data_provider dp;
	size_t n = 0;
	int32_t id;

	nv[n++] = (nghttp2_nv)MAKE_NV(":method", "POST", 4);
	if (c->ssl != NULL)
		nv[n++] = (nghttp2_nv)MAKE_NV(":scheme", "https", 5);
	else
		nv[n++] = (nghttp2_nv)MAKE_NV(":scheme", "http", 4);
	nv[n++] = (nghttp2_nv)MAKE_NV_CS(":path", cc->path);
	nv[n++] = (nghttp2_nv)MAKE_NV_CS(":authority", auth);
	if (cc->deadline != 0) {
		uint64_t now = now_ms();
		grpc_timeout_format(tmo, cc->deadline > now ? cc->deadline - now : 1);
		nv[n++] = (nghttp2_nv)MAKE_NV_CS("grpc-timeout", tmo);
	}
	nv[n++] = (nghttp2_nv)MAKE_NV("te", "trailers", 8);
	nv[n++] = (nghttp2_nv)MAKE_NV("content-type", "application/grpc", 16);
	snprintf(ua, sizeof(ua), "grpc-c-pharos/%s", "1");
	nv[n++] = (nghttp2_nv)MAKE_NV_CS("user-agent", ua);
	dp.source.ptr = cc;
	dp.read_callback = ccall_read_cb;
	id = nghttp2_submit_request(c->h2, NULL, nv, n, &dp, cc);
	if (id < 0) {
		err_set("nghttp2_submit_request: %s", nghttp2_strerror(id));
		return ERR_LIB;
	}
	cc->id = id;
	cc->c = c;
	TAILQ_INSERT_TAIL(&c->ccalls, cc, link);
	return 0;
}

struct grpc_ccall *
grpc_channel_call(struct grpc_channel *ch, const char *path, const uint8_t *req, size_t len,
    unsigned timeout_ms, unsigned flags, grpc_msg_fn on_msg, grpc_done_fn on_done, void *arg)
{
	struct grpc_ccall *cc;

	if ((cc = calloc(1, sizeof(*cc))) == NULL)
		return NULL;
	cc->ch = ch;
	cc->flags = flags;
	cc->on_msg = on_msg;
	cc->on_done = on_done;
	cc->arg = arg;
	grpc_reasm_init(&cc->rx, ch->o.max_message);
	if ((cc->path = strdup(path)) == NULL || (cc->req = evbuffer_new()) == NULL ||
	    grpc_frame(cc->req, req, len) != 0) {
		ccall_free(cc);
		return NULL;
	}
	if (timeout_ms > 0) {
		struct timeval tv = tv_ms(timeout_ms);
		cc->deadline = now_ms() + timeout_ms;
		if ((cc->timer = evtimer_new(ch->base, ccall_timer_cb, cc)) == NULL) {
			ccall_free(cc);
			return NULL;
		}
		evtimer_add(cc->timer, &tv);
	}
	if (len > ch->o.max_message) {
		TAILQ_INSERT_TAIL(&ch->pending, cc, link);
		ccall_fail_later(cc, GRPC_RESOURCE_EXHAUSTED, "request over the message limit");
		return cc;
	}
	if (ch->state == GRPC_CH_READY && ch->c != NULL && !ch->c->goaway) {
		if (ccall_submit(ch->c, cc) == 0) {
			conn_flush(ch->c);
			return cc;
		}
	}
	TAILQ_INSERT_TAIL(&ch->pending, cc, link);
	if (!(flags & GRPC_CALL_WAIT_FOR_READY))
		ccall_fail_later(cc, GRPC_UNAVAILABLE, "not connected");
	return cc;
}

void
grpc_ccall_cancel(struct grpc_ccall *cc)
{
	struct conn *c = cc->c;

	cc->cancelled = true;
	if (c != NULL && cc->id > 0)
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, cc->id, NGHTTP2_CANCEL);
	ccall_complete(cc, GRPC_CANCELLED, NULL);
	if (c != NULL)
		conn_flush(c);
}

static int
ccall_on_msg(void *arg, const uint8_t *msg, size_t len)
{
	struct grpc_ccall *cc = arg;

	if (cc->on_msg != NULL && !cc->cancelled)
		cc->on_msg(cc->arg, msg, len);
	return 0;
}

/* ======================================================================== */
/* nghttp2 callbacks (both sides)                                            */
/* ======================================================================== */

static ssize_t
send_cb(nghttp2_session *h2, const uint8_t *data, size_t len, int flags, void *user)
{
	struct conn *c = user;
	struct evbuffer *out = bufferevent_get_output(c->bev);

	(void)h2;
	(void)flags;
	if (evbuffer_get_length(out) >= OUT_HIGH)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (evbuffer_add(out, data, len) != 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return (ssize_t)len;
}

static int
on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
	struct conn *c = user;
	struct grpc_call *call;

	if (c->srv == NULL || frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if ((call = calloc(1, sizeof(*call))) == NULL || (call->out = evbuffer_new()) == NULL) {
		free(call);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	call->c = c;
	call->id = frame->hd.stream_id;
	grpc_reasm_init(&call->rx, c->max_message);
	TAILQ_INSERT_TAIL(&c->calls, call, link);
	nghttp2_session_set_stream_user_data(h2, call->id, call);
	return 0;
}

static bool
header_is(const uint8_t *name, size_t namelen, const char *want)
{
	return namelen == strlen(want) && memcmp(name, want, namelen) == 0;
}

static int
on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
    const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
	struct conn *c = user;

	(void)flags;
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (c->srv != NULL) {
		struct grpc_call *call = nghttp2_session_get_stream_user_data(h2,
		    frame->hd.stream_id);
		if (call == NULL || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
			return 0;
		if (header_is(name, namelen, ":path")) {
			if (valuelen >= sizeof(call->path))
				call->bad_header = true;
			else {
				memcpy(call->path, value, valuelen);
				call->path[valuelen] = '\0';
			}
		} else if (header_is(name, namelen, ":method")) {
			call->post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
		} else if (header_is(name, namelen, "content-type")) {
			size_t n = valuelen < sizeof(call->ctype) - 1 ? valuelen :
			    sizeof(call->ctype) - 1;
			memcpy(call->ctype, value, n);
			call->ctype[n] = '\0';
			call->have_ctype = true;
		} else if (header_is(name, namelen, "grpc-timeout")) {
			uint64_t ms;
			if (grpc_timeout_parse((const char *)value, valuelen, &ms) != 0)
				call->bad_header = true;
			else
				call->deadline = now_ms() + ms;
		} else if (header_is(name, namelen, "grpc-encoding")) {
			if (!(valuelen == 8 && memcmp(value, "identity", 8) == 0))
				call->bad_header = true;
		}
		return 0;
	} else {
		struct grpc_ccall *cc = nghttp2_session_get_stream_user_data(h2,
		    frame->hd.stream_id);
		if (cc == NULL)
			return 0;
		if (header_is(name, namelen, ":status")) {
			cc->http_status = 0;
			for (size_t i = 0; i < valuelen && i < 3; i++)
				cc->http_status = cc->http_status * 10 + (value[i] - '0');
		} else if (header_is(name, namelen, "grpc-status")) {
			int st = 0;
			for (size_t i = 0; i < valuelen && i < 4; i++)
				st = value[i] >= '0' && value[i] <= '9' ? st * 10 + value[i] - '0' : 2;
			cc->status = st;
			cc->got_status = true;
		} else if (header_is(name, namelen, "grpc-message")) {
			free(cc->message);
			cc->message = grpc_percent_decode((const char *)value, valuelen);
		}
	}
	return 0;
}

static int
on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
    void *user)
{
	struct conn *c = user;
	size_t before;
	int rc;

	(void)flags;
	if (c->srv != NULL) {
		struct grpc_call *call = nghttp2_session_get_stream_user_data(h2, id);
		if (call == NULL || call->rejected || call->dispatched)
			return 0;
		before = grpc_reasm_buffered(&call->rx);
		rc = grpc_reasm_feed(&call->rx, data, len, call_on_msg, call);
		c->rx_buffered += grpc_reasm_buffered(&call->rx) - before;
		if (rc == 0 && c->rx_buffered > CONN_RX_MAX)
			rc = GRPC_RESOURCE_EXHAUSTED;
		if (rc != 0) {
			char msg[128];
			if (rc == GRPC_RESOURCE_EXHAUSTED)
				snprintf(msg, sizeof(msg), "request message larger than the limit "
				    "(%zu > %zu)", call->rx.len, call->rx.max);
			else
				snprintf(msg, sizeof(msg), "%s", rc == GRPC_UNIMPLEMENTED &&
				    call->nmsgs > 1 ? "request cardinality violation: expected 1 "
				    "request message" : rc == GRPC_UNIMPLEMENTED ?
				    "compressed messages are not supported" : "malformed message");
			c->rx_buffered -= grpc_reasm_buffered(&call->rx);
			grpc_reasm_free(&call->rx);
			call->rejected = true;
			call_fail(call, rc, msg);
		}
	} else {
		struct grpc_ccall *cc = nghttp2_session_get_stream_user_data(h2, id);
		if (cc == NULL || cc->cancelled)
			return 0;
		before = grpc_reasm_buffered(&cc->rx);
		rc = grpc_reasm_feed(&cc->rx, data, len, ccall_on_msg, cc);
		c->rx_buffered += grpc_reasm_buffered(&cc->rx) - before;
		if (rc == 0 && c->rx_buffered > CONN_RX_MAX)
			rc = GRPC_RESOURCE_EXHAUSTED;
		if (rc != 0) {
			char msg[128];
			if (rc == GRPC_RESOURCE_EXHAUSTED)
				snprintf(msg, sizeof(msg), "response message larger than the limit "
				    "(%zu > %zu)", cc->rx.len, cc->rx.max);
			else
				snprintf(msg, sizeof(msg), "malformed response message");
			nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
			ccall_complete(cc, rc, msg);
		}
	}
	return 0;
}

static int
on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
	struct conn *c = user;

	switch (frame->hd.type) {
	case NGHTTP2_PING:
		if (frame->hd.flags & NGHTTP2_FLAG_ACK)
			c->ping_sent = 0;
		return 0;
	case NGHTTP2_GOAWAY:
		c->goaway = true;
		/* The client dials a fresh connection for new calls; this one drains. */
		if (c->ch != NULL && c->ch->c == c && !c->ch->freeing) {
			c->ch->c = NULL;
			channel_dial(c->ch);
		}
		return 0;
	case NGHTTP2_HEADERS:
	case NGHTTP2_DATA:
		break;
	default:
		return 0;
	}
	if (c->srv != NULL) {
		struct grpc_call *call = nghttp2_session_get_stream_user_data(h2,
		    frame->hd.stream_id);
		if (call == NULL)
			return 0;
		if (frame->hd.type == NGHTTP2_HEADERS &&
		    frame->headers.cat == NGHTTP2_HCAT_REQUEST)
			call_begin(call);
		if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
			call_dispatch(call);
	}
	return 0;
}

static int
on_stream_close(nghttp2_session *h2, int32_t id, uint32_t error_code, void *user)
{
	struct conn *c = user;

	if (c->srv != NULL) {
		struct grpc_call *call = nghttp2_session_get_stream_user_data(h2, id);
		if (call == NULL)
			return 0;
		nghttp2_session_set_stream_user_data(h2, id, NULL);
		TAILQ_REMOVE(&c->calls, call, link);
		call_cancel_app(call);
		call_free(call);
	} else {
		struct grpc_ccall *cc = nghttp2_session_get_stream_user_data(h2, id);
		int status;
		const char *msg;

		if (cc == NULL)
			return 0;
		if (cc->got_status) {
			status = cc->status;
			msg = cc->message;
		} else if (error_code != NGHTTP2_NO_ERROR) {
			status = grpc_status_from_rst(error_code);
			msg = "stream reset by the server";
		} else if (cc->http_status != 200 && cc->http_status != 0) {
			status = grpc_status_from_http(cc->http_status);
			msg = "non-gRPC HTTP response";
		} else {
			status = GRPC_INTERNAL;
			msg = "stream ended without grpc-status";
		}
		if (cc->got_status && cc->http_status != 0 && cc->http_status != 200) {
			status = grpc_status_from_http(cc->http_status);
			msg = "non-200 HTTP status";
		}
		{
			char *m = msg != NULL ? strdup(msg) : NULL;
			ccall_complete(cc, status, m);
			free(m);
		}
	}
	return 0;
}

/*
 * After trailers went out before the client finished sending: RST_STREAM(NO_ERROR), as
 * PROTOCOL-HTTP2 asks. Not after a plain HTTP 405/415: curl 7.88 reports that RST as a
 * stream error when it overtakes the request body (RFC 9113 §8.1 allows either), and the
 * body is bounded by flow control anyway.
 */
static int
on_frame_send(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
	struct grpc_call *call;

	(void)user;
	if (frame->hd.type != NGHTTP2_HEADERS || !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) ||
	    !nghttp2_session_check_server_session(h2) ||
	    nghttp2_session_get_stream_remote_close(h2, frame->hd.stream_id) != 0)
		return 0;
	call = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
	if (call == NULL || !call->http_reject)
		nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
		    NGHTTP2_NO_ERROR);
	return 0;
}

static int
h2_session_new(struct conn *c, bool server, unsigned max_streams)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 16384 },
	};
	int rc;

	if (nghttp2_session_callbacks_new(&cb) != 0)
		return ERR_NOMEM;
	nghttp2_session_callbacks_set_send_callback(cb, send_cb);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	if (nghttp2_option_new(&opt) != 0) {
		nghttp2_session_callbacks_del(cb);
		return ERR_NOMEM;
	}
	nghttp2_option_set_max_reserved_remote_streams(opt, 0);
	rc = server ? nghttp2_session_server_new2(&c->h2, cb, c, opt) :
	    nghttp2_session_client_new2(&c->h2, cb, c, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	if (rc != 0)
		return ERR_NOMEM;
	if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv,
	    server ? 3 : 2) != 0 ||
	    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0)
		return ERR_LIB;
	return 0;
}

/* ======================================================================== */
/* connections                                                               */
/* ======================================================================== */

static void
conn_reaper_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_free(arg);
}

/* Mark dead and free from the loop: safe to call from anywhere. */
static void
conn_kill(struct conn *c, const char *why)
{
	if (c->dead)
		return;
	c->dead = true;
	if (why != NULL)
		log_info("grpc: closing connection peer=%s reason=\"%s\"", c->peer, why);
	if (c->reaper == NULL)
		c->reaper = event_new(c->base, -1, 0, conn_reaper_cb, c);
	if (c->reaper != NULL)
		event_active(c->reaper, 0, 0);
}

static void
conn_flush(struct conn *c)
{
	int rc;

	if (c->in_h2 || c->dead || c->h2 == NULL)
		return;
	c->in_h2 = true;
	rc = nghttp2_session_send(c->h2);
	c->in_h2 = false;
	if (rc != 0) {
		conn_kill(c, nghttp2_strerror(rc));
		return;
	}
	if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		conn_kill(c, NULL);
}

static void
conn_readcb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	ssize_t n;

	if (c->dead || c->h2 == NULL)
		return;
	while ((len = evbuffer_get_length(in)) > 0) {
		unsigned char *data = evbuffer_pullup(in, (ssize_t)(len > 65536 ? 65536 : len));
		size_t chunk = len > 65536 ? 65536 : len;
		c->in_h2 = true;
		n = nghttp2_session_mem_recv(c->h2, data, chunk);
		c->in_h2 = false;
		if (n < 0) {
			conn_kill(c, nghttp2_strerror((int)n));
			return;
		}
		evbuffer_drain(in, (size_t)n);
		if (c->dead)
			return;
	}
	conn_flush(c);
}

static void
conn_writecb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (c->dead || c->h2 == NULL)
		return;
	conn_flush(c);
	/* Wake streaming calls that were refused for a full queue and have room now. */
	if (c->srv != NULL && !c->dead) {
		struct grpc_call *call, *tmp;
		TAILQ_FOREACH_SAFE(call, &c->calls, link, tmp) {
			if (call->want_writable && !call->app_done &&
			    evbuffer_get_length(call->out) < CALL_QUEUE_LOW) {
				call->want_writable = false;
				if (call->writable_cb != NULL)
					call->writable_cb(call, call->writable_arg);
			}
		}
	}
}

static void
keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint64_t now = now_ms();
	struct timeval tv = tv_ms(c->ka_ms);

	(void)fd;
	(void)what;
	if (c->dead)
		return;
	if (c->ping_sent != 0 && now - c->ping_sent > c->ka_timeout_ms) {
		log_warnx("grpc: peer=%s missed a keepalive PING for %llu ms: dead", c->peer,
		    (unsigned long long)(now - c->ping_sent));
		conn_kill(c, NULL);
		return;
	}
	if (c->ping_sent == 0) {
		nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL);
		c->ping_sent = now;
		conn_flush(c);
	}
	/* Check again at the timeout if that comes first. */
	if (c->ka_timeout_ms < c->ka_ms)
		tv = tv_ms(c->ka_timeout_ms);
	evtimer_add(c->keepalive, &tv);
}

static void channel_connected(struct grpc_channel *, struct conn *);
static void channel_lost(struct grpc_channel *, struct conn *);

/*
 * TLS is up: check ALPN and the peer, start HTTP/2. Cleartext (h2c, prior knowledge):
 * TCP is up, and there is nothing to check.
 */
static void
conn_established(struct conn *c)
{
	const unsigned char *alpn = NULL;
	unsigned alpnlen = 0;
	grpc_authorize_fn authz;
	void *authz_arg;
	unsigned max_streams;
	struct timeval tv;

	if (c->ssl != NULL) {
		SSL_get0_alpn_selected(c->ssl, &alpn, &alpnlen);
		if (alpnlen != 2 || memcmp(alpn, "h2", 2) != 0) {
			log_warnx("tls: refused peer=%s reason=\"ALPN did not select h2\"", c->peer);
			conn_kill(c, NULL);
			return;
		}
		if (tls_peer(&c->peer_id, c->ssl) != 0) {
			log_warnx("tls: refused peer=%s reason=\"%s\"", c->peer, err_last());
			conn_kill(c, NULL);
			return;
		}
		authz = c->srv != NULL ? c->srv->o.authorize : c->ch->o.authorize;
		authz_arg = c->srv != NULL ? c->srv->o.authorize_arg : c->ch->o.authorize_arg;
		if (authz != NULL && authz(c->ssl, &c->peer_id, c->peer, authz_arg) != 0) {
			conn_kill(c, NULL);
			return;
		}
	}
	max_streams = c->srv != NULL ? c->srv->o.max_streams : 100;
	if (h2_session_new(c, c->srv != NULL, max_streams) != 0) {
		conn_kill(c, "cannot start HTTP/2");
		return;
	}
	c->ready = true;
	lift_handshake_timeout(c);
	if ((c->keepalive = evtimer_new(c->base, keepalive_cb, c)) != NULL) {
		tv = tv_ms(c->ka_ms);
		evtimer_add(c->keepalive, &tv);
	}
	if (c->ch != NULL)
		channel_connected(c->ch, c);
	conn_flush(c);
	/* Bytes that arrived with the handshake. */
	if (!c->dead && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		conn_readcb(c->bev, c);
}

static void
conn_eventcb(struct bufferevent *bev, short events, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (events & BEV_EVENT_CONNECTED) {
		if (!c->ready)
			conn_established(c);
		return;
	}
	if (events & (BEV_EVENT_ERROR | BEV_EVENT_EOF | BEV_EVENT_TIMEOUT)) {
		if (!c->ready && c->ssl == NULL) {
			/* libevent restores the connect's errno for a deferred callback. */
			int e = EVUTIL_SOCKET_ERROR();
			if (events & BEV_EVENT_TIMEOUT)
				log_warnx("grpc: connect to %s timed out", c->peer);
			else if ((events & BEV_EVENT_ERROR) && e != 0)
				log_warnx("grpc: connect to %s failed: %s", c->peer,
				    evutil_socket_error_to_string(e));
			else
				log_warnx("grpc: connect to %s failed: connection closed", c->peer);
		} else if (!c->ready) {
			/* tls_log_handshake_failure() says it once per connection. */
			if (events & BEV_EVENT_TIMEOUT)
				log_warnx("tls: refused peer=%s reason=\"handshake timed out\"", c->peer);
			else
				tls_log_handshake_failure(c->ssl, c->peer);
			ERR_clear_error();
		} else if ((events & BEV_EVENT_ERROR) && c->ssl != NULL) {
			unsigned long e;
			while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
				log_debug("grpc: peer=%s tls error %s", c->peer,
				    ERR_reason_error_string(e));
		}
		conn_free(c);
	}
}

static struct conn *
conn_new(struct event_base *base, int fd, SSL_CTX *ctx, bool server, const char *peer)
{
	struct conn *c;
	struct timeval hs = { HANDSHAKE_TIMEOUT_S, 0 };

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->base = base;
	TAILQ_INIT(&c->calls);
	TAILQ_INIT(&c->ccalls);
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	if (ctx == NULL) {
		/* Cleartext h2c, client only: the server refuses a NULL context. */
		c->bev = bufferevent_socket_new(base, fd,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (c->bev == NULL) {
			free(c);
			return NULL;
		}
	} else {
		if ((c->ssl = SSL_new(ctx)) == NULL) {
			free(c);
			return NULL;
		}
		tls_set_peer_addr(c->ssl, c->peer);
		c->bev = bufferevent_openssl_socket_new(base, fd, c->ssl,
		    server ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (c->bev == NULL) {
			SSL_free(c->ssl);
			free(c);
			return NULL;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	}
	bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
	/* Bounds the handshake (h2c: the connect); lifted once HTTP/2 runs (keepalive then). */
	bufferevent_set_timeouts(c->bev, &hs, &hs);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return c;
}

static void server_conn_gone(struct grpc_server *, struct conn *);

static void
conn_free(struct conn *c)
{
	struct grpc_call *call;
	struct grpc_ccall *cc;

	/* Tell every call first: the session is still there for them to look at. */
	while ((call = TAILQ_FIRST(&c->calls)) != NULL) {
		TAILQ_REMOVE(&c->calls, call, link);
		if (c->h2 != NULL)
			nghttp2_session_set_stream_user_data(c->h2, call->id, NULL);
		call_cancel_app(call);
		call_free(call);
	}
	while ((cc = TAILQ_FIRST(&c->ccalls)) != NULL) {
		if (cc->cancelled) {
			ccall_unlink(cc);
			ccall_free(cc);
			continue;
		}
		ccall_complete(cc, GRPC_UNAVAILABLE, "connection lost");
	}
	if (c->ch != NULL)
		channel_lost(c->ch, c);
	if (c->srv != NULL)
		server_conn_gone(c->srv, c);
	if (c->keepalive != NULL)
		event_free(c->keepalive);
	if (c->reaper != NULL)
		event_free(c->reaper);
	if (c->h2 != NULL)
		nghttp2_session_del(c->h2);
	/* Say goodbye (close_notify) so the peer sees a clean close, not a truncation. */
	if (c->ready && c->ssl != NULL && !(SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN))
		SSL_shutdown(c->ssl);
	ERR_clear_error();
	if (c->bev != NULL)
		bufferevent_free(c->bev);	/* frees the SSL (if any) and closes the socket */
	free(c);
}

static void
lift_handshake_timeout(struct conn *c)
{
	bufferevent_set_timeouts(c->bev, NULL, NULL);
}

/* ======================================================================== */
/* server                                                                    */
/* ======================================================================== */

static void
server_conn_gone(struct grpc_server *srv, struct conn *c)
{
	LIST_REMOVE(c, link);
	srv->nconns--;
	if (srv->shutting_down && srv->nconns == 0 && srv->shutdown_ev != NULL)
		event_active(srv->shutdown_ev, 0, 0);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct grpc_server *srv = arg;
	char host[INET6_ADDRSTRLEN], serv[8], peer[INET6_ADDRSTRLEN + 8];
	struct conn *c;
	int one = 1;

	(void)l;
	if (getnameinfo(sa, (socklen_t)salen, host, sizeof(host), serv, sizeof(serv),
	    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(peer, sizeof(peer), sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
		    host, serv);
	else
		snprintf(peer, sizeof(peer), "?");
	if (srv->shutting_down || srv->nconns >= srv->o.max_conns) {
		log_warnx("grpc: refused peer=%s reason=\"%s\"", peer,
		    srv->shutting_down ? "shutting down" : "too many connections");
		evutil_closesocket(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((c = conn_new(srv->base, fd, srv->o.ssl, true, peer)) == NULL) {
		log_warnx("grpc: refused peer=%s reason=\"out of memory\"", peer);
		evutil_closesocket(fd);
		return;
	}
	c->srv = srv;
	c->max_message = srv->o.max_message;
	c->ka_ms = srv->o.keepalive_ms;
	c->ka_timeout_ms = srv->o.keepalive_timeout_ms;
	LIST_INSERT_HEAD(&srv->conns, c, link);
	srv->nconns++;
}

struct grpc_server *
grpc_server_new(struct event_base *base, const struct grpc_server_opts *o,
    const struct grpc_method *methods, size_t nmethods)
{
	struct grpc_server *srv;

	if (o->ssl == NULL) {
		err_set("grpc server: no TLS context (cleartext is client-only)");
		return NULL;
	}
	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return NULL;
	srv->base = base;
	srv->o = *o;
	if (srv->o.max_message == 0)
		srv->o.max_message = GRPC_MAX_MESSAGE_DEFAULT;
	if (srv->o.keepalive_ms == 0)
		srv->o.keepalive_ms = 30000;
	if (srv->o.keepalive_timeout_ms == 0)
		srv->o.keepalive_timeout_ms = 20000;
	if (srv->o.max_streams == 0)
		srv->o.max_streams = 128;
	if (srv->o.max_conns == 0)
		srv->o.max_conns = 10000;
	srv->methods = methods;
	srv->nmethods = nmethods;
	LIST_INIT(&srv->conns);
	return srv;
}

int
grpc_server_listen(struct grpc_server *srv, const char *host, const char *port, int *bound)
{
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		err_set("%s:%s: %s", host ? host : "*", port, gai_strerror(rc));
		return ERR_INVAL;
	}
	srv->listener = evconnlistener_new_bind(srv->base, accept_cb, srv,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024,
	    res->ai_addr, (int)res->ai_addrlen);
	freeaddrinfo(res);
	if (srv->listener == NULL) {
		err_setsys("listen on %s:%s", host ? host : "*", port);
		return ERR_SYS;
	}
	if (bound != NULL) {
		getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *)&ss, &sl);
		*bound = ntohs(ss.ss_family == AF_INET6 ?
		    ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
	}
	return 0;
}

static void
shutdown_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_server *srv = arg;

	(void)fd;
	(void)what;
	if (srv->shutdown_done != NULL)
		srv->shutdown_done(srv->shutdown_arg);
}

void
grpc_server_shutdown(struct grpc_server *srv, void (*done)(void *), void *arg)
{
	struct conn *c;

	srv->shutting_down = true;
	srv->shutdown_done = done;
	srv->shutdown_arg = arg;
	if (srv->listener != NULL) {
		evconnlistener_free(srv->listener);
		srv->listener = NULL;
	}
	if (srv->shutdown_ev == NULL)
		srv->shutdown_ev = event_new(srv->base, -1, 0, shutdown_done_cb, srv);
	LIST_FOREACH(c, &srv->conns, link) {
		if (c->h2 == NULL) {
			conn_kill(c, NULL);
			continue;
		}
		/* Graceful: GOAWAY with the last stream id; running calls finish. */
		nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
		    nghttp2_session_get_last_proc_stream_id(c->h2), NGHTTP2_NO_ERROR, NULL, 0);
		conn_flush(c);
	}
	if (srv->nconns == 0 && srv->shutdown_ev != NULL)
		event_active(srv->shutdown_ev, 0, 0);
}

void
grpc_server_free(struct grpc_server *srv)
{
	struct conn *c;

	if (srv == NULL)
		return;
	if (srv->listener != NULL)
		evconnlistener_free(srv->listener);
	srv->shutdown_done = NULL;
	while ((c = LIST_FIRST(&srv->conns)) != NULL)
		conn_free(c);
	if (srv->shutdown_ev != NULL)
		event_free(srv->shutdown_ev);
	free(srv);
}

size_t
grpc_server_conns(const struct grpc_server *srv)
{
	return srv->nconns;
}

/* ======================================================================== */
/* channel (client)                                                          */
/* ======================================================================== */

static void
channel_set_state(struct grpc_channel *ch, enum grpc_channel_state st)
{
	if (ch->state == st)
		return;
	ch->state = st;
	if (ch->o.on_state != NULL && !ch->freeing)
		ch->o.on_state(ch, st, ch->o.state_arg);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	channel_dial(arg);
}

/* gRPC's connection backoff: initial, x1.6 per attempt, capped, +-20 % jitter. */
static void
channel_backoff(struct grpc_channel *ch)
{
	double d = ch->o.backoff_initial_ms;
	uint32_t r;
	unsigned i;
	struct timeval tv;

	for (i = 0; i < ch->attempt && d < ch->o.backoff_max_ms; i++)
		d *= 1.6;
	if (d > ch->o.backoff_max_ms)
		d = ch->o.backoff_max_ms;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint32_t)rand();
	d *= 0.8 + 0.4 * ((double)r / UINT32_MAX);
	ch->attempt++;
	tv = tv_ms((uint64_t)d);
	log_info("grpc: target=%s:%s reconnect in %llu ms (attempt %u)", ch->host, ch->port,
	    (unsigned long long)d, ch->attempt);
	channel_set_state(ch, GRPC_CH_BACKOFF);
	evtimer_add(ch->retry, &tv);
}

static void
channel_dial(struct grpc_channel *ch)
{
	struct addrinfo hints, *res = NULL;
	struct conn *c;
	char peer[300];
	int rc, fd;

	if (ch->c != NULL || ch->freeing)
		return;
	channel_set_state(ch, GRPC_CH_CONNECTING);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	/* Names resolve synchronously: fleet control addresses are normally IP literals. */
	if ((rc = getaddrinfo(ch->host, ch->port, &hints, &res)) != 0) {
		log_warnx("grpc: target=%s:%s resolve failed: %s", ch->host, ch->port,
		    gai_strerror(rc));
		channel_backoff(ch);
		return;
	}
	snprintf(peer, sizeof(peer), strchr(ch->host, ':') ? "[%s]:%s" : "%s:%s", ch->host,
	    ch->port);
	fd = -1;
	if ((c = conn_new(ch->base, fd, ch->o.ssl, false, peer)) == NULL) {
		freeaddrinfo(res);
		channel_backoff(ch);
		return;
	}
	c->ch = ch;
	c->max_message = ch->o.max_message;
	c->ka_ms = ch->o.keepalive_ms;
	c->ka_timeout_ms = ch->o.keepalive_timeout_ms;
	if (c->ssl != NULL)
		SSL_set_tlsext_host_name(c->ssl, ch->authority);
	ch->c = c;
	if (bufferevent_socket_connect(c->bev, res->ai_addr, (int)res->ai_addrlen) != 0) {
		freeaddrinfo(res);
		log_debug("grpc: connect to %s failed", peer);
		conn_kill(c, NULL);
		return;
	}
	freeaddrinfo(res);
	{
		int one = 1;
		setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
}

static void
channel_connected(struct grpc_channel *ch, struct conn *c)
{
	struct grpc_ccall *cc, *tmp;

	ch->attempt = 0;
	ch->peer_id = c->peer_id;
	channel_set_state(ch, GRPC_CH_READY);
	TAILQ_FOREACH_SAFE(cc, &ch->pending, link, tmp) {
		if (cc->failing)
			continue;	/* its failure is already on the way */
		TAILQ_REMOVE(&ch->pending, cc, link);
		if (ccall_submit(c, cc) != 0) {
			TAILQ_INSERT_TAIL(&ch->pending, cc, link);
			ccall_fail_later(cc, GRPC_INTERNAL, err_last());
		}
	}
}

static void
channel_lost(struct grpc_channel *ch, struct conn *c)
{
	if (ch->c != c)
		return;
	ch->c = NULL;
	if (ch->freeing)
		return;
	/* A connection that was up resets the backoff: try again soon. */
	channel_backoff(ch);
}

struct grpc_channel *
grpc_channel_new(struct event_base *base, const char *host, const char *port,
    const struct grpc_channel_opts *o)
{
	struct grpc_channel *ch;

	if ((ch = calloc(1, sizeof(*ch))) == NULL)
		return NULL;
	ch->base = base;
	ch->o = *o;
	if (ch->o.max_message == 0)
		ch->o.max_message = GRPC_MAX_MESSAGE_DEFAULT;
	if (ch->o.keepalive_ms == 0)
		ch->o.keepalive_ms = 30000;
	if (ch->o.keepalive_timeout_ms == 0)
		ch->o.keepalive_timeout_ms = 20000;
	if (ch->o.backoff_initial_ms == 0)
		ch->o.backoff_initial_ms = 1000;
	if (ch->o.backoff_max_ms == 0)
		ch->o.backoff_max_ms = 120000;
	TAILQ_INIT(&ch->pending);
	ch->host = strdup(host);
	ch->port = strdup(port);
	ch->authority = strdup(o->authority != NULL ? o->authority : host);
	ch->retry = evtimer_new(base, retry_cb, ch);
	if (ch->host == NULL || ch->port == NULL || ch->authority == NULL || ch->retry == NULL) {
		grpc_channel_free(ch);
		return NULL;
	}
	ch->o.authority = NULL;
	channel_dial(ch);
	return ch;
}

void
grpc_channel_free(struct grpc_channel *ch)
{
	struct grpc_ccall *cc;

	if (ch == NULL)
		return;
	ch->freeing = true;
	while ((cc = TAILQ_FIRST(&ch->pending)) != NULL)
		ccall_complete(cc, GRPC_CANCELLED, "channel closed");
	if (ch->c != NULL) {
		struct conn *c = ch->c;
		conn_free(c);
	}
	if (ch->retry != NULL)
		event_free(ch->retry);
	free(ch->host);
	free(ch->port);
	free(ch->authority);
	free(ch);
}

enum grpc_channel_state
grpc_channel_state(const struct grpc_channel *ch)
{
	return ch->state;
}

void
grpc_channel_connect_now(struct grpc_channel *ch)
{
	if (ch->c != NULL)
		return;
	evtimer_del(ch->retry);
	channel_dial(ch);
}

const struct spiffe *
grpc_channel_peer(const struct grpc_channel *ch)
{
	return &ch->peer_id;
}
