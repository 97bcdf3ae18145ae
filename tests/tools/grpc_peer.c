/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A gRPC peer on lib/grpc for interop tests and benchmarks; same command line as
 * tests/interop/grpcio_peer.py, so either side can be swapped for the other.
 *
 *   grpc_peer serve --listen HOST:PORT --ca CA --cert CERT --key KEY [--crl CRL]
 *       [--allow any|controller] [--keepalive-ms N]
 *     Serves pharos.test.Echo: Echo (unary, returns the request), Fail ("CODE:message"
 *     -> that status), Sleep (ASCII ms, then "done"), Stream (ASCII N -> N messages
 *     "0".."N-1"), Size (ASCII N -> N bytes of 'x'). Prints "listening PORT"; SIGTERM
 *     shuts down gracefully (GOAWAY, running calls finish).
 *
 *   grpc_peer call --target HOST:PORT --ca CA --cert CERT --key KEY --method PATH
 *       [--data S | --size N | --data-file F] [--timeout SECONDS] [--stream]
 *       [--expect-id SPIFFE] [--authority NAME] [--repeat N] [--concurrency C]
 *       [--connections K] [--bench] [--quiet] [--retry] [--backoff-ms MS]
 *     Prints "msg LEN SHA256HEX" per response message and "status CODE DETAILS".
 *     --repeat N calls, C at a time, spread over K channels (K connections held on one
 *     event loop); --bench prints "bench calls=N ok=N secs=S rps=R p50_ms=A p99_ms=B
 *     connections=K" (latency per call, from start to status). Without --retry a
 *     connection that fails before ever being ready ends the run with status 14.
 *     Exit 0 once a status was obtained (whatever it is), 1 on other failures, 2 usage.
 */
#include <event2/event.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "grpc.h"
#include "log.h"
#include "tls.h"

static struct event_base *base;
static struct tls_policy policy;

/* ---- server ---- */

static void
h_echo(struct grpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	(void)arg;
	grpc_call_reply(call, req, len);
}

static void
h_fail(struct grpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	char buf[4096];
	const char *colon;

	(void)arg;
	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;
	memcpy(buf, req, len);
	buf[len] = '\0';
	colon = strchr(buf, ':');
	grpc_call_finish(call, atoi(buf), colon != NULL ? colon + 1 : "");
}

struct sleeper {
	struct grpc_call	*call;
	struct event		*ev;
};

static void
sleep_done(evutil_socket_t fd, short what, void *arg)
{
	struct sleeper *s = arg;

	(void)fd;
	(void)what;
	grpc_call_reply(s->call, (const uint8_t *)"done", 4);
	event_free(s->ev);
	free(s);
}

static void
sleep_cancel(struct grpc_call *call, void *arg)
{
	struct sleeper *s = arg;

	(void)call;
	event_free(s->ev);
	free(s);
}

static void
h_sleep(struct grpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	char buf[32];
	struct sleeper *s;
	struct timeval tv;
	long ms;

	(void)arg;
	snprintf(buf, sizeof(buf), "%.*s", (int)(len < 31 ? len : 31), (const char *)req);
	ms = atol(buf);
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->ev = evtimer_new(base, sleep_done, s)) == NULL) {
		free(s);
		grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	s->call = call;
	grpc_call_set_cancel_cb(call, sleep_cancel, s);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(s->ev, &tv);
}

struct streamer {
	long	next, n;
};

static void
stream_more(struct grpc_call *call, void *arg)
{
	struct streamer *st = arg;
	char buf[32];

	while (st->next < st->n) {
		int len = snprintf(buf, sizeof(buf), "%ld", st->next);
		if (grpc_call_send(call, (const uint8_t *)buf, (size_t)len) != 0)
			return;		/* queue full: the writable callback resumes */
		st->next++;
	}
	grpc_call_finish(call, GRPC_OK, NULL);
	free(st);
}

static void
stream_cancel(struct grpc_call *call, void *arg)
{
	(void)call;
	free(arg);
}

static void
h_stream(struct grpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	char buf[32];
	struct streamer *st;

	(void)arg;
	snprintf(buf, sizeof(buf), "%.*s", (int)(len < 31 ? len : 31), (const char *)req);
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	st->n = atol(buf);
	grpc_call_set_cancel_cb(call, stream_cancel, st);
	grpc_call_set_writable_cb(call, stream_more, st);
	stream_more(call, st);
}

static void
h_size(struct grpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	char buf[32];
	size_t n;
	uint8_t *out;

	(void)arg;
	snprintf(buf, sizeof(buf), "%.*s", (int)(len < 31 ? len : 31), (const char *)req);
	n = (size_t)atol(buf);
	if ((out = malloc(n ? n : 1)) == NULL) {
		grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	memset(out, 'x', n);
	grpc_call_reply(call, out, n);
	free(out);
}

static const struct grpc_method methods[] = {
	{ "/pharos.test.Echo/Echo", false, h_echo, NULL },
	{ "/pharos.test.Echo/Fail", false, h_fail, NULL },
	{ "/pharos.test.Echo/Sleep", false, h_sleep, NULL },
	{ "/pharos.test.Echo/Stream", true, h_stream, NULL },
	{ "/pharos.test.Echo/Size", false, h_size, NULL },
};

static struct grpc_server *server;

static void
shutdown_done(void *arg)
{
	(void)arg;
	event_base_loopexit(base, NULL);
}

static void
on_term(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	log_info("grpc_peer: shutting down");
	grpc_server_shutdown(server, shutdown_done, NULL);
}

static int
split_hostport(const char *s, char *host, size_t hostsz, char *port, size_t portsz)
{
	const char *colon = strrchr(s, ':');

	if (colon == NULL)
		return -1;
	if (s[0] == '[' && colon > s && colon[-1] == ']')
		snprintf(host, hostsz, "%.*s", (int)(colon - s - 2), s + 1);
	else
		snprintf(host, hostsz, "%.*s", (int)(colon - s), s);
	snprintf(port, portsz, "%s", colon + 1);
	return 0;
}

/* ---- client ---- */

static int calls_left, calls_running, concurrency = 1, nchans = 1, next_chan, ready_chans;
static bool got_status, quiet, bench;
static struct grpc_channel **chans;
static double *lat;
static size_t nlat, calls_ok;
static struct timespec t_start;
static const char *method;
static uint8_t *reqdata;
static size_t reqlen;
static unsigned timeout_ms;
static bool connected_once, retry;

static void
on_msg(void *arg, const uint8_t *msg, size_t len)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	char hex[65];
	int i;

	(void)arg;
	if (quiet)
		return;
	EVP_Digest(msg, len, md, &mdlen, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	printf("msg %zu %s\n", len, hex);
}

static void start_call(void);

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
on_done(void *arg, int status, const char *message)
{
	double *started = arg;

	got_status = true;
	if (bench) {
		lat[nlat++] = now_s() - *started;
		calls_ok += status == GRPC_OK;
	}
	free(started);
	if ((!quiet && !bench) || status != GRPC_OK)
		printf("status %d %s\n", status, message ? message : "");
	calls_running--;
	if (calls_left > 0)
		start_call();
	else if (calls_running == 0)
		event_base_loopexit(base, NULL);
}

static void
start_call(void)
{
	double *started = malloc(sizeof(*started));

	calls_left--;
	calls_running++;
	*started = now_s();
	if (grpc_channel_call(chans[next_chan++ % nchans], method, reqdata, reqlen, timeout_ms,
	    GRPC_CALL_WAIT_FOR_READY, on_msg, on_done, started) == NULL) {
		fprintf(stderr, "grpc_peer: cannot start a call\n");
		exit(1);
	}
}

static void
on_state(struct grpc_channel *ch, enum grpc_channel_state st, void *arg)
{
	(void)ch;
	(void)arg;
	if (st == GRPC_CH_READY && !connected_once && ++ready_chans == nchans) {
		connected_once = true;
		clock_gettime(CLOCK_MONOTONIC, &t_start);
		if (bench)
			fprintf(stderr, "grpc_peer: %d connections ready\n", nchans);
		/* Calls start once every connection is up, so latency is the calls' own. */
		for (int i = 0; i < concurrency && calls_left > 0; i++)
			start_call();
	}
	if (st == GRPC_CH_BACKOFF && !connected_once && !retry) {
		/* A test tool reports the refusal instead of retrying for ever. */
		printf("status %d could not connect or was refused\n", GRPC_UNAVAILABLE);
		got_status = true;
		event_base_loopexit(base, NULL);
	}
}

static int
dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void
print_bench(void)
{
	struct timespec t;
	double secs;

	clock_gettime(CLOCK_MONOTONIC, &t);
	secs = (double)(t.tv_sec - t_start.tv_sec) + (double)(t.tv_nsec - t_start.tv_nsec) / 1e9;
	qsort(lat, nlat, sizeof(*lat), dcmp);
	printf("bench calls=%zu ok=%zu secs=%.3f rps=%.0f p50_ms=%.3f p99_ms=%.3f "
	    "connections=%d\n", nlat, calls_ok, secs, secs > 0 ? (double)nlat / secs : 0,
	    nlat ? lat[nlat / 2] * 1000 : 0, nlat ? lat[(nlat * 99) / 100] * 1000 : 0, nchans);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: grpc_peer serve --listen HOST:PORT --ca CA --cert CERT --key KEY [--crl CRL]\n"
	    "                 [--allow any|controller] [--keepalive-ms N]\n"
	    "       grpc_peer call --target HOST:PORT --ca CA --cert CERT --key KEY --method PATH\n"
	    "                 [--data S | --size N | --data-file F] [--timeout S] [--stream]\n"
	    "                 [--expect-id SPIFFE] [--authority NAME] [--repeat N]\n"
	    "                 [--concurrency C] [--connections K] [--bench] [--quiet]\n"
	    "                 [--retry] [--backoff-ms MS]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "target", required_argument, NULL, 't' },
		{ "ca", required_argument, NULL, 'C' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "crl", required_argument, NULL, 'r' },
		{ "allow", required_argument, NULL, 'a' },
		{ "method", required_argument, NULL, 'm' },
		{ "data", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 's' },
		{ "data-file", required_argument, NULL, 'f' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "stream", no_argument, NULL, 'S' },
		{ "expect-id", required_argument, NULL, 'e' },
		{ "authority", required_argument, NULL, 'A' },
		{ "keepalive-ms", required_argument, NULL, 'K' },
		{ "repeat", required_argument, NULL, 'n' },
		{ "concurrency", required_argument, NULL, 'p' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "connections", required_argument, NULL, 'N' },
		{ "bench", no_argument, NULL, 'B' },
		{ "retry", no_argument, NULL, 'R' },
		{ "backoff-ms", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen = NULL, *target = NULL, *ca = NULL, *cert = NULL, *key = NULL;
	const char *crl = NULL, *allow = "any", *expect = NULL, *authority = NULL;
	struct tls_config tc;
	SSL_CTX *ctx;
	char host[256], port[16];
	unsigned keepalive = 0, backoff_ms = 0;
	int ch, repeat = 1;
	bool serve;

	if (argc < 2)
		usage();
	serve = strcmp(argv[1], "serve") == 0;
	if (!serve && strcmp(argv[1], "call") != 0)
		usage();
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'l': listen = optarg; break;
		case 't': target = optarg; break;
		case 'C': ca = optarg; break;
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'r': crl = optarg; break;
		case 'a': allow = optarg; break;
		case 'm': method = optarg; break;
		case 'd':
			reqdata = (uint8_t *)strdup(optarg);
			reqlen = strlen(optarg);
			break;
		case 's':
			reqlen = (size_t)atol(optarg);
			reqdata = malloc(reqlen ? reqlen : 1);
			memset(reqdata, 'x', reqlen);
			break;
		case 'f': {
			FILE *fp = fopen(optarg, "rb");
			long n;
			if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0) {
				perror(optarg);
				return 1;
			}
			rewind(fp);
			reqlen = (size_t)n;
			reqdata = malloc(reqlen ? reqlen : 1);
			if (fread(reqdata, 1, reqlen, fp) != reqlen) {
				perror(optarg);
				return 1;
			}
			fclose(fp);
			break;
		}
		case 'T': timeout_ms = (unsigned)(atof(optarg) * 1000); break;
		case 'S': break;	/* responses are printed as they come either way */
		case 'e': expect = optarg; break;
		case 'A': authority = optarg; break;
		case 'K': keepalive = (unsigned)atoi(optarg); break;
		case 'n': repeat = atoi(optarg); break;
		case 'p': concurrency = atoi(optarg); break;
		case 'q': quiet = true; break;
		case 'N': nchans = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
		case 'B': bench = quiet = true; break;
		case 'R': retry = true; break;
		case 'b': backoff_ms = (unsigned)atoi(optarg); break;
		default: usage();
		}
	}
	if (ca == NULL || cert == NULL || key == NULL || (serve ? listen == NULL :
	    target == NULL || method == NULL))
		usage();
	log_init("grpc_peer", LOG_INFO);
	signal(SIGPIPE, SIG_IGN);
	if (tls_config_load(&tc, ca, cert, key, crl) != 0 ||
	    (ctx = tls_ctx_new(serve ? TLS_SERVER : TLS_CLIENT, &tc)) == NULL) {
		fprintf(stderr, "grpc_peer: %s\n", err_last());
		return 1;
	}
	memset(&policy, 0, sizeof(policy));
	if (tls_ctx_spiffe(&policy.self, ctx) != 0) {
		fprintf(stderr, "grpc_peer: own certificate: %s\n", err_last());
		return 1;
	}
	policy.kind = TLS_ALLOW_ANY_FLEET;
	if (serve && strcmp(allow, "controller") == 0)
		policy.kind = TLS_ALLOW_CONTROLLER;
	if (!serve && expect != NULL) {
		policy.kind = TLS_ALLOW_EXACT;
		if (pki_spiffe_parse(&policy.expect, expect) != 0) {
			fprintf(stderr, "grpc_peer: --expect-id: %s\n", err_last());
			return 2;
		}
	}
	base = event_base_new();
	if (split_hostport(serve ? listen : target, host, sizeof(host), port, sizeof(port)) != 0)
		usage();
	if (serve) {
		/* --keepalive-ms also bounds the wait for the PING's ACK, for tests. */
		struct grpc_server_opts so = { .ssl = ctx, .authorize = tls_authorize_cb,
		    .authorize_arg = &policy,
		    .keepalive_ms = keepalive, .keepalive_timeout_ms = keepalive };
		struct event *term;
		int bound = 0;

		server = grpc_server_new(base, &so, methods, sizeof(methods) / sizeof(methods[0]));
		if (server == NULL || grpc_server_listen(server, host, port, &bound) != 0) {
			fprintf(stderr, "grpc_peer: %s\n", err_last());
			return 1;
		}
		term = evsignal_new(base, SIGTERM, on_term, NULL);
		evsignal_add(term, NULL);
		printf("listening %d\n", bound);
		fflush(stdout);
		event_base_dispatch(base);
		event_free(term);
		grpc_server_free(server);
	} else {
		struct grpc_channel_opts co = { .ssl = ctx, .authorize = tls_authorize_cb,
		    .authorize_arg = &policy,
		    .authority = authority, .on_state = on_state, .keepalive_ms = keepalive,
		    .backoff_initial_ms = backoff_ms };
		int i;

		if (reqdata == NULL) {
			reqdata = (uint8_t *)strdup("");
			reqlen = 0;
		}
		chans = calloc((size_t)nchans, sizeof(*chans));
		lat = calloc((size_t)repeat + 1, sizeof(*lat));
		for (i = 0; i < nchans; i++)
			if (chans == NULL || (chans[i] = grpc_channel_new(base, host, port, &co)) == NULL) {
				fprintf(stderr, "grpc_peer: cannot create channel %d\n", i);
				return 1;
			}
		calls_left = repeat;
		event_base_dispatch(base);
		if (bench)
			print_bench();
		for (i = 0; i < nchans; i++)
			grpc_channel_free(chans[i]);
		free(chans);
		free(lat);
	}
	fflush(stdout);
	free(reqdata);
	SSL_CTX_free(ctx);
	tls_config_free(&tc);
	event_base_free(base);
	return serve || got_status ? 0 : 1;
}
