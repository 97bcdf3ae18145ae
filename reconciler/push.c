/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One node, as the controller drives it (docs/DESIGN.md §9.3). Every node has its own
 * outbound mTLS channel and its own state machine, so a slow or dead node never delays
 * another:
 *
 *   IDLE ──want──▶ CHECK (GetStatus: what does it run?) ──in sync──▶ SYNCED
 *                    │ differs                                      ▲
 *                    ▼                                               │ ok
 *                  PUSH (signed ApplyConfig, serial written first) ──┘
 *                    │ failed
 *                    ▼
 *                  RETRY (1 s × 2ⁿ, ≤ 60 s, ±20 % jitter) ──timer──▶ CHECK
 *
 * A newer revision pre-empts a retry or an in-flight push of an older one. Status polls
 * (every poll period) keep `reachable` (3 missed polls = unreachable) and notice a node
 * that runs something we did not confirm; the sweep compares the data plane's peers
 * with the desired ones and re-pushes on drift. WatchEvents streams keep last-seen fresh.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <sodium.h>

#include "clock.h"
#include "ctl.h"
#include "desired.h"
#include "err.h"
#include "grpc.h"
#include "log.h"
#include "pharos/v1/node.pb-c.h"

#define RPC(m)		"/pharos.v1.NodeControl/" m
#define PUSH_TIMEOUT_MS	60000
#define RETRY_MAX_MS	60000
#define MISSED_MAX	3

static void	kick(struct cnode *);

/* Shutting down, or this node is being freed: callbacks must not start anything. */
static bool
gone(const struct cnode *n)
{
	return n->dead || n->ctl->stopping;
}

static const char *
short_rev(const char *rev)
{
	static char buf[4][13];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%.12s", rev[0] != '\0' ? rev : "-");
	return buf[i];
}

void
cnode_mark_dirty(struct cnode *n)
{
	if (!n->dirty) {
		n->dirty = true;
		n->next_dirty = n->ctl->dirty;
		n->ctl->dirty = n;
	}
	ctl_flush_later(n->ctl);
}

static void
set_error(struct cnode *n, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n->db.last_error != NULL && strcmp(n->db.last_error, buf) == 0)
		return;
	free(n->db.last_error);
	n->db.last_error = strdup(buf);
	cnode_mark_dirty(n);
}

static void
clear_error(struct cnode *n)
{
	if (n->db.last_error == NULL)
		return;
	free(n->db.last_error);
	n->db.last_error = NULL;
	cnode_mark_dirty(n);
}

static void
seen(struct cnode *n)
{
	int64_t now = clock_unix_nanos() / 1000000000;

	n->missed = 0;
	if (!n->db.reachable) {
		n->db.reachable = true;
		log_info("node=%s reachable", n->name);
		cnode_mark_dirty(n);
	}
	if (now != n->db.last_seen_unix) {
		n->db.last_seen_unix = now;
		cnode_mark_dirty(n);
	}
}

/* The node runs the desired content if it reports the hash of a config we saw it confirm. */
static bool
in_sync(const struct cnode *n)
{
	return n->want != NULL && n->have_report && n->db.have_applied && !n->force &&
	    sodium_memcmp(n->rep_hash, n->db.config_hash, 32) == 0 &&
	    memcmp(n->db.content_hash, n->want->content_hash, 32) == 0;
}

static void
retry_later(struct cnode *n)
{
	uint64_t ms = 1000;
	struct timeval tv;
	unsigned i;

	for (i = 1; i < n->fails && ms < RETRY_MAX_MS; i++)
		ms *= 2;
	if (ms > RETRY_MAX_MS)
		ms = RETRY_MAX_MS;
	ms = ms * (80 + randombytes_uniform(41)) / 100;	/* ±20 % */
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	n->phase = CN_RETRY;
	evtimer_add(n->ev_retry, &tv);
	log_info("node=%s retry_in_ms=%llu attempt=%u", n->name, (unsigned long long)ms,
	    n->fails + 1);
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct cnode *n = arg;

	(void)fd;
	(void)what;
	n->need_check = true;
	n->phase = CN_CHECK;
	kick(n);
}

/* ---- GetStatus ---- */

static void
take_status(struct cnode *n, const Pharos__V1__NodeStatus *s)
{
	n->have_report = true;
	memset(n->rep_hash, 0, 32);
	if (s->config_hash.len == 32)
		memcpy(n->rep_hash, s->config_hash.data, 32);
	n->rep_serial = s->serial > s->delta_serial ? s->serial : s->delta_serial;
	snprintf(n->rep_rev, sizeof(n->rep_rev), "%s", s->revision != NULL ? s->revision : "");
	if (s->awg_public_key.len == 32 && (!n->db.have_awg_pub ||
	    memcmp(n->db.awg_pub, s->awg_public_key.data, 32) != 0)) {
		memcpy(n->db.awg_pub, s->awg_public_key.data, 32);
		n->db.have_awg_pub = true;
		n->ctl->replan = true;	/* cascade links of other nodes carry this key */
		cnode_mark_dirty(n);
	}
	if (s->reality_public_key.len == 32 && (!n->db.have_reality_pub ||
	    memcmp(n->db.reality_pub, s->reality_public_key.data, 32) != 0)) {
		memcpy(n->db.reality_pub, s->reality_public_key.data, 32);
		n->db.have_reality_pub = true;
		cnode_mark_dirty(n);
	}
	seen(n);
}

struct status_ctx {
	struct cnode	*n;
	bool		 poll;
	bool		 got;
};

static void
status_msg(void *arg, const uint8_t *msg, size_t len)
{
	struct status_ctx *sc = arg;
	Pharos__V1__NodeStatus *s = pharos__v1__node_status__unpack(NULL, len, msg);

	if (s == NULL)
		return;
	take_status(sc->n, s);
	sc->got = true;
	pharos__v1__node_status__free_unpacked(s, NULL);
}

static void
status_done(void *arg, int status, const char *message)
{
	struct status_ctx *sc = arg;
	struct cnode *n = sc->n;
	bool poll = sc->poll, got = sc->got;

	free(sc);
	if (poll)
		n->poll_call = NULL;
	else
		n->status_call = NULL;
	if (gone(n))
		return;
	if (status != GRPC_OK || !got) {
		if (++n->missed >= MISSED_MAX && n->db.reachable) {
			n->db.reachable = false;
			log_warnx("node=%s unreachable missed_polls=%d error=\"%s: %s\"", n->name,
			    n->missed, grpc_status_name(status), message != NULL ? message : "");
			cnode_mark_dirty(n);
		}
		if (status != GRPC_OK)
			set_error(n, "GetStatus: %s: %s", grpc_status_name(status),
			    message != NULL ? message : "");
		if (!poll && n->phase == CN_CHECK) {
			n->fails++;
			retry_later(n);
		}
		return;
	}
	if (!poll) {
		n->need_check = false;
		kick(n);
	} else if (n->phase == CN_SYNCED && !in_sync(n)) {
		log_info("node=%s drift reported_serial=%llu reported_rev=%s: re-applying",
		    n->name, (unsigned long long)n->rep_serial, short_rev(n->rep_rev));
		n->phase = CN_CHECK;
		kick(n);
	}
}

static int
start_status(struct cnode *n, bool poll)
{
	struct status_ctx *sc = calloc(1, sizeof(*sc));
	unsigned timeout = 5000;
	struct grpc_ccall *c;

	if (sc == NULL)
		return -1;
	sc->n = n;
	sc->poll = poll;
	/*
	 * A poll fails at once when the channel is not connected (that is a missed poll) and
	 * may take at most a poll period; the check before a push waits for the connection.
	 * An empty GetStatusRequest is zero bytes.
	 */
	if (poll)
		timeout = n->ctl->poll_ms < 1000 ? 1000 : n->ctl->poll_ms;
	c = grpc_channel_call(n->ch, RPC("GetStatus"), NULL, 0, timeout,
	    poll ? 0 : GRPC_CALL_WAIT_FOR_READY, status_msg, status_done, sc);
	if (c == NULL) {
		free(sc);
		return -1;
	}
	if (poll)
		n->poll_call = c;
	else
		n->status_call = c;
	return 0;
}

/* ---- the push budget ---- */

/*
 * The push budget. Every ApplyConfig in flight holds its whole request in the gRPC
 * layer's buffers until it is sent: 1,000 nodes of ~150 KB each pushed at once is
 * 150 MB. A push starts only while the requests in flight total at most ctl.push_budget
 * bytes (`cox run --push-budget`, 16 MiB by default; one push always may, however big);
 * the others wait their turn in order (CN_WAIT) and start as earlier ones finish. A slow
 * node holds only its own share until its answer or its deadline, so one slow node never
 * holds up the rest.
 */

static void
budget_take(struct cnode *n, size_t len)
{
	n->push_len = len;
	n->ctl->push_bytes += len;
}

static void
budget_wait(struct cnode *n)
{
	if (!n->waiting) {
		TAILQ_INSERT_TAIL(&n->ctl->push_wait, n, wait_link);
		n->waiting = true;
	}
	n->phase = CN_WAIT;
}

static void
budget_unwait(struct cnode *n)
{
	if (n->waiting) {
		TAILQ_REMOVE(&n->ctl->push_wait, n, wait_link);
		n->waiting = false;
	}
}

static bool
budget_room(const struct ctl *c, size_t len)
{
	return c->push_bytes == 0 || c->push_bytes + len <= c->push_budget;
}

/* A push ended (answered, failed, cancelled): its share goes back... */
static void
budget_give(struct cnode *n)
{
	n->ctl->push_bytes -= n->push_len;
	n->push_len = 0;
}

/* ... and to the waiting ones, in order, as far as it goes. */
static void
budget_wake(struct ctl *c)
{
	struct cnode *w;

	while ((w = TAILQ_FIRST(&c->push_wait)) != NULL &&
	    budget_room(c, w->want != NULL ? w->want->len : 0)) {
		budget_unwait(w);
		w->may_push = true;
		kick(w);
	}
}

/* ---- ApplyConfig ---- */

struct push_ctx {
	struct cnode	*n;
	bool		 got;
	Pharos__V1__ApplyConfigResponse *resp;
};

static void
push_msg(void *arg, const uint8_t *msg, size_t len)
{
	struct push_ctx *pc = arg;

	if (pc->resp == NULL)
		pc->resp = pharos__v1__apply_config_response__unpack(NULL, len, msg);
}

static void	push_finish(struct cnode *, Pharos__V1__ApplyConfigResponse *, int,
		    const char *);

/* The answer is logged before the next waiting push starts. */
static void
push_done(void *arg, int status, const char *message)
{
	struct push_ctx *pc = arg;
	struct cnode *n = pc->n;
	struct ctl *c = n->ctl;
	Pharos__V1__ApplyConfigResponse *r = pc->resp;

	free(pc);
	n->push_ctx = NULL;
	n->push_call = NULL;
	budget_give(n);
	push_finish(n, r, status, message);
	budget_wake(c);
}

static void
push_finish(struct cnode *n, Pharos__V1__ApplyConfigResponse *r, int status,
    const char *message)
{
	double ms = (double)(clock_mono_nanos() - n->push_started) / 1e6;

	if (gone(n)) {
		if (r != NULL)
			pharos__v1__apply_config_response__free_unpacked(r, NULL);
		return;
	}
	if (status == GRPC_OK && r == NULL) {
		status = GRPC_INTERNAL;
		message = "no ApplyConfigResponse";
	}
	if (status != GRPC_OK) {
		n->fails++;
		n->ctl->pushes_failed++;
		set_error(n, "ApplyConfig rev %s: %s: %s", short_rev(n->push_rev),
		    grpc_status_name(status), message != NULL ? message : "");
		log_warnx("node=%s push=failed rev=%s serial=%llu status=%s error=\"%s\"",
		    n->name, short_rev(n->push_rev), (unsigned long long)n->push_serial,
		    grpc_status_name(status), message != NULL ? message : "");
		ctl_audit(n->ctl, "push.failed", n->name, "rev=%s serial=%llu status=%s: %s",
		    n->push_rev, (unsigned long long)n->push_serial, grpc_status_name(status),
		    message != NULL ? message : "");
		n->need_check = true;	/* a stale serial, or a node that was rebuilt */
		if (status == GRPC_FAILED_PRECONDITION && n->fails == 1) {
			n->phase = CN_CHECK;
			kick(n);
		} else
			retry_later(n);
		return;
	}
	n->fails = 0;
	n->force = false;
	n->ctl->pushes_ok++;
	n->have_report = true;
	memcpy(n->rep_hash, n->push_hash, 32);
	n->rep_serial = n->push_serial;
	memcpy(n->rep_rev, n->push_rev, sizeof(n->rep_rev));
	memcpy(n->db.applied_rev, n->push_rev, sizeof(n->db.applied_rev));
	n->db.applied_serial = n->push_serial;
	memcpy(n->db.config_hash, n->push_hash, 32);
	memcpy(n->db.content_hash, n->push_content, 32);
	n->db.have_applied = true;
	clear_error(n);
	seen(n);
	cnode_mark_dirty(n);
	log_info("node=%s push=ok rev=%s serial=%llu result=%s peers=+%u/-%u/~%u ms=%.1f",
	    n->name, short_rev(n->push_rev), (unsigned long long)n->push_serial,
	    r->result == PHAROS__V1__APPLY_RESULT__APPLY_RESULT_UNCHANGED ? "unchanged" :
	    r->result == PHAROS__V1__APPLY_RESULT__APPLY_RESULT_PARTIAL ? "partial" : "applied",
	    r->peers_added, r->peers_removed, r->peers_changed, ms);
	ctl_audit(n->ctl, "push.ok", n->name, "rev=%s serial=%llu peers=+%u/-%u/~%u",
	    n->push_rev, (unsigned long long)n->push_serial, r->peers_added, r->peers_removed,
	    r->peers_changed);
	if (r->result == PHAROS__V1__APPLY_RESULT__APPLY_RESULT_PARTIAL)
		set_error(n, "partially applied: %s", r->detail != NULL ? r->detail : "");
	pharos__v1__apply_config_response__free_unpacked(r, NULL);
	n->phase = CN_SYNCED;
	kick(n);	/* a newer revision may have arrived meanwhile */
}

static void
start_push(struct cnode *n)
{
	struct ctl *c = n->ctl;
	Pharos__V1__ApplyConfigRequest req;
	uint8_t *cfg = NULL, *buf = NULL, sig[crypto_sign_BYTES];
	size_t cfglen, len;
	uint64_t serial;
	struct push_ctx *pc = NULL;

	pharos__v1__apply_config_request__init(&req);
	serial = n->db.sent_serial > n->rep_serial ? n->db.sent_serial : n->rep_serial;
	serial++;
	if (desired_stamp(n->want, n->want_rev, serial, clock_unix_nanos() / 1000000000,
	    &cfg, &cfglen) != 0)
		goto fail;
	/* The serial is on disk before it is on the wire: never two configs with one serial. */
	n->db.sent_serial = serial;
	memcpy(n->db.attempted_rev, n->want_rev, sizeof(n->db.attempted_rev));
	if (state_node_put(c->st, &n->db) != 0)
		goto fail;
	crypto_sign_detached(sig, NULL, cfg, cfglen, c->sign_sk);
	req.config.data = cfg;
	req.config.len = cfglen;
	req.signature.data = sig;
	req.signature.len = sizeof(sig);
	req.key_id = c->key_id;
	len = pharos__v1__apply_config_request__get_packed_size(&req);
	if ((buf = malloc(len + 1)) == NULL || (pc = calloc(1, sizeof(*pc))) == NULL)
		goto fail;
	pharos__v1__apply_config_request__pack(&req, buf);
	crypto_hash_sha256(n->push_hash, cfg, cfglen);
	memcpy(n->push_content, n->want->content_hash, 32);
	memcpy(n->push_rev, n->want_rev, sizeof(n->push_rev));
	n->push_serial = serial;
	n->push_started = clock_mono_nanos();
	pc->n = n;
	n->push_ctx = pc;
	n->phase = CN_PUSH;
	n->push_call = grpc_channel_call(n->ch, RPC("ApplyConfig"), buf, len, PUSH_TIMEOUT_MS,
	    GRPC_CALL_WAIT_FOR_READY, push_msg, push_done, pc);
	if (n->push_call == NULL) {
		free(pc);
		n->push_ctx = NULL;
		goto fail;
	}
	budget_take(n, len);
	log_debug("node=%s push=start rev=%s serial=%llu bytes=%zu", n->name,
	    short_rev(n->want_rev), (unsigned long long)serial, cfglen);
	free(cfg);
	free(buf);
	return;
fail:
	log_warnx("node=%s push=not-started error=\"%s\"", n->name, err_last());
	set_error(n, "push not started: %s", err_last());
	free(cfg);
	free(buf);
	n->fails++;
	retry_later(n);
}

/* Decide the next step; safe to call at any time. */
static void
kick(struct cnode *n)
{
	bool may = n->may_push;

	n->may_push = false;
	if (gone(n) || n->want == NULL) {
		budget_unwait(n);
		if (!gone(n))
			n->phase = CN_IDLE;
		return;
	}
	if (n->push_call != NULL || n->status_call != NULL)
		return;			/* its completion calls kick() again */
	if (n->phase == CN_RETRY && evtimer_pending(n->ev_retry, NULL))
		return;
	if (!n->have_report || n->need_check) {
		budget_unwait(n);
		n->phase = CN_CHECK;
		if (start_status(n, false) != 0) {
			n->fails++;
			retry_later(n);
		}
		return;
	}
	if (in_sync(n)) {
		budget_unwait(n);
		n->fails = 0;
		if (n->phase != CN_SYNCED || strcmp(n->db.applied_rev, n->want_rev) != 0) {
			/* Same content at a newer revision: confirmed without a push. */
			if (strcmp(n->db.applied_rev, n->want_rev) != 0) {
				memcpy(n->db.applied_rev, n->want_rev, sizeof(n->db.applied_rev));
				memcpy(n->db.attempted_rev, n->want_rev,
				    sizeof(n->db.attempted_rev));
				cnode_mark_dirty(n);
			}
			log_debug("node=%s in-sync rev=%s", n->name, short_rev(n->want_rev));
		}
		clear_error(n);
		n->phase = CN_SYNCED;
		ctl_node_synced(n->ctl);
		return;
	}
	if (!may && (!TAILQ_EMPTY(&n->ctl->push_wait) || !budget_room(n->ctl, n->want->len))) {
		budget_wait(n);
		return;
	}
	start_push(n);
}

/* ---- WatchEvents ---- */

static void
watch_msg(void *arg, const uint8_t *msg, size_t len)
{
	struct cnode *n = arg;
	Pharos__V1__Event *e = pharos__v1__event__unpack(NULL, len, msg);

	if (e == NULL)
		return;
	n->ev_seq = e->seq;
	seen(n);
	switch (e->kind) {
	case PHAROS__V1__EVENT_KIND__EVENT_KIND_HANDSHAKE_UP:
	case PHAROS__V1__EVENT_KIND__EVENT_KIND_HANDSHAKE_DOWN:
		if (e->handshake != NULL && e->handshake->public_key.len == 32) {
			char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];

			sodium_bin2base64(b64, sizeof(b64), e->handshake->public_key.data, 32,
			    sodium_base64_VARIANT_ORIGINAL);
			log_info("node=%s event=handshake-%s peer=%.8s endpoint=%s", n->name,
			    e->kind == PHAROS__V1__EVENT_KIND__EVENT_KIND_HANDSHAKE_UP ? "up" :
			    "down", b64, e->handshake->endpoint != NULL &&
			    e->handshake->endpoint[0] != '\0' ? e->handshake->endpoint : "-");
		}
		break;
	case PHAROS__V1__EVENT_KIND__EVENT_KIND_DATA_PLANE_ERROR:
		if (e->data_plane_error != NULL) {
			log_warnx("node=%s event=data-plane-error op=\"%s\" error=\"%s\"", n->name,
			    e->data_plane_error->operation, e->data_plane_error->message);
			set_error(n, "data plane: %s: %s", e->data_plane_error->operation,
			    e->data_plane_error->message);
		}
		break;
	case PHAROS__V1__EVENT_KIND__EVENT_KIND_BACKEND_RESTARTED:
		if (e->backend_restarted != NULL)
			log_warnx("node=%s event=backend-restarted reason=\"%s\"", n->name,
			    e->backend_restarted->reason);
		break;
	case PHAROS__V1__EVENT_KIND__EVENT_KIND_CONFIG_APPLIED:
		if (e->config_applied != NULL && e->config_applied->config_hash.len == 32 &&
		    n->push_call == NULL && memcmp(e->config_applied->config_hash.data,
		    n->db.config_hash, 32) != 0) {
			/* Someone else's config (or a replay from disk we did not expect). */
			n->need_check = true;
			if (n->phase == CN_SYNCED)
				kick(n);
		}
		break;
	case PHAROS__V1__EVENT_KIND__EVENT_KIND_EVENTS_LOST:
		n->need_check = true;
		if (n->phase == CN_SYNCED)
			kick(n);
		break;
	default:
		break;
	}
	pharos__v1__event__free_unpacked(e, NULL);
}

static void	start_watch(struct cnode *);

static void
watch_done(void *arg, int status, const char *message)
{
	struct cnode *n = arg;
	struct timeval tv = { 1, 0 };

	n->watch_call = NULL;
	if (gone(n))
		return;
	log_debug("node=%s watch ended status=%s message=\"%s\"", n->name,
	    grpc_status_name(status), message != NULL ? message : "");
	evtimer_add(n->ev_watch, &tv);
}

static void
on_watch_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	start_watch(arg);
}

static void
start_watch(struct cnode *n)
{
	Pharos__V1__WatchEventsRequest req;
	uint8_t buf[64];
	size_t len;

	if (n->watch_call != NULL || n->ch == NULL)
		return;
	pharos__v1__watch_events_request__init(&req);
	req.since_seq = n->ev_seq;
	len = pharos__v1__watch_events_request__pack(&req, buf);
	n->watch_call = grpc_channel_call(n->ch, RPC("WatchEvents"), buf, len, 0,
	    GRPC_CALL_WAIT_FOR_READY, watch_msg, watch_done, n);
	if (n->watch_call == NULL) {
		struct timeval tv = { 1, 0 };

		evtimer_add(n->ev_watch, &tv);
	}
}

/* ---- sweep: the data plane's peers against the desired ones ---- */

static int
cmp_key(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

static void
hs_msg(void *arg, const uint8_t *msg, size_t len)
{
	struct cnode *n = arg;
	Pharos__V1__HandshakesResponse *hr;
	Pharos__V1__NodeConfig *cfg = NULL;
	uint8_t *have = NULL, *want = NULL, *content = NULL;
	size_t i, nh = 0, nw = 0, clen;
	bool drift = false;

	if (n->want == NULL || n->phase != CN_SYNCED)
		return;
	if ((hr = pharos__v1__handshakes_response__unpack(NULL, len, msg)) == NULL)
		return;
	if (desired_content(n->want, &content, &clen) != 0 ||
	    (cfg = pharos__v1__node_config__unpack(NULL, clen, content)) == NULL)
		goto out;
	have = malloc((hr->n_peers + 1) * 32);
	want = malloc((cfg->n_peers + 1) * 32);
	if (have == NULL || want == NULL)
		goto out;
	for (i = 0; i < hr->n_peers; i++)
		if (hr->peers[i]->public_key.len == 32 && (hr->peers[i]->link == NULL ||
		    hr->peers[i]->link[0] == '\0'))
			memcpy(have + 32 * nh++, hr->peers[i]->public_key.data, 32);
	for (i = 0; i < cfg->n_peers; i++)
		if (cfg->peers[i]->public_key.len == 32)
			memcpy(want + 32 * nw++, cfg->peers[i]->public_key.data, 32);
	qsort(have, nh, 32, cmp_key);
	qsort(want, nw, 32, cmp_key);
	drift = nh != nw || (nh > 0 && memcmp(have, want, nh * 32) != 0);
	if (drift) {
		log_warnx("node=%s drift data_plane_peers=%zu desired_peers=%zu: re-applying",
		    n->name, nh, nw);
		set_error(n, "drift: the data plane had %zu peers, %zu desired (re-applied)",
		    nh, nw);
		ctl_audit(n->ctl, "drift.detected", n->name, "data_plane_peers=%zu desired=%zu",
		    nh, nw);
		n->force = true;
		n->phase = CN_CHECK;
	}
out:
	free(have);
	free(want);
	free(content);
	if (cfg != NULL)
		pharos__v1__node_config__free_unpacked(cfg, NULL);
	pharos__v1__handshakes_response__free_unpacked(hr, NULL);
}

static void
hs_done(void *arg, int status, const char *message)
{
	struct cnode *n = arg;

	(void)message;
	n->hs_call = NULL;
	if (gone(n) || status == GRPC_CANCELLED)
		return;
	if (n->force)
		kick(n);
}

void
cnode_sweep(struct cnode *n)
{
	Pharos__V1__GetHandshakesRequest req;
	uint8_t buf[16];
	size_t len;

	if (n->phase != CN_SYNCED || n->hs_call != NULL || n->ch == NULL)
		return;
	pharos__v1__get_handshakes_request__init(&req);
	len = pharos__v1__get_handshakes_request__pack(&req, buf);
	n->hs_call = grpc_channel_call(n->ch, RPC("GetHandshakes"), buf, len, 10000, 0,
	    hs_msg, hs_done, n);
	/* Also ask what it runs: a config we did not confirm is drift too. */
	if (n->poll_call == NULL)
		start_status(n, true);
}

/* ---- lifecycle ---- */

static void
on_channel_state(struct grpc_channel *ch, enum grpc_channel_state st, void *arg)
{
	struct cnode *n = arg;

	(void)ch;
	if (st == GRPC_CH_READY) {
		log_info("node=%s connected addr=%s:%s", n->name, n->host, n->port);
		start_watch(n);
	}
}

struct cnode *
cnode_new(struct ctl *c, const char *name)
{
	struct cnode *n = calloc(1, sizeof(*n));
	int rc;

	if (n == NULL)
		return NULL;
	n->ctl = c;
	snprintf(n->name, sizeof(n->name), "%s", name);
	n->policy.kind = TLS_ALLOW_EXACT;
	n->policy.self = c->self;
	snprintf(n->policy.expect.trust_domain, sizeof(n->policy.expect.trust_domain), "%s",
	    c->self.trust_domain);
	n->policy.expect.role = PKI_ROLE_NODE;
	snprintf(n->policy.expect.name, sizeof(n->policy.expect.name), "%s", name);
	rc = state_node_get(c->st, name, &n->db);
	if (rc < 0) {
		free(n);
		return NULL;
	}
	if (rc == 1) {
		memset(&n->db, 0, sizeof(n->db));
		snprintf(n->db.name, sizeof(n->db.name), "%s", name);
	}
	n->db.reachable = false;	/* until it answers this process */
	n->ev_retry = evtimer_new(c->base, on_retry, n);
	n->ev_watch = evtimer_new(c->base, on_watch_timer, n);
	if (n->ev_retry == NULL || n->ev_watch == NULL) {
		cnode_free(n);
		return NULL;
	}
	return n;
}

void
cnode_set_target(struct cnode *n, const char *host, const char *port)
{
	struct grpc_channel_opts o = {
		.ssl = n->ctl->tls,
		.authorize = tls_authorize_cb,
		.authorize_arg = &n->policy,
		.keepalive_ms = 20000,
		.keepalive_timeout_ms = 10000,
		.backoff_initial_ms = 500,
		.backoff_max_ms = 30000,
		.on_state = on_channel_state,
		.state_arg = n,
	};

	if (n->ch != NULL && strcmp(host, n->host) == 0 && strcmp(port, n->port) == 0)
		return;
	if (n->ch != NULL) {
		/* Calls end with CANCELLED; their callbacks must not restart anything. */
		if (n->watch_call != NULL)
			grpc_ccall_cancel(n->watch_call);
		n->watch_call = NULL;
		n->dead = true;		/* the cancelled calls' callbacks start nothing */
		grpc_channel_free(n->ch);
		n->dead = false;
		n->ch = NULL;
		n->push_call = n->status_call = n->hs_call = n->poll_call = NULL;
		if (n->phase == CN_PUSH || n->phase == CN_CHECK)
			n->phase = CN_CHECK;
	}
	snprintf(n->host, sizeof(n->host), "%s", host);
	snprintf(n->port, sizeof(n->port), "%s", port);
	n->ch = grpc_channel_new(n->ctl->base, n->host, n->port, &o);
	if (n->ch == NULL)
		log_warnx("node=%s cannot create a channel to %s:%s: %s", n->name, host, port,
		    err_last());
	n->have_report = false;
	n->need_check = true;
}

void
cnode_want(struct cnode *n, const struct desired_node *want, const char *rev)
{
	bool newer = strcmp(rev, n->want_rev) != 0;

	n->want = want;
	snprintf(n->want_rev, sizeof(n->want_rev), "%s", rev);
	if (want == NULL)
		return;
	if (newer && n->phase == CN_RETRY) {
		/* A newer revision pre-empts the backoff of an older one. */
		evtimer_del(n->ev_retry);
		n->fails = 0;
		n->phase = CN_CHECK;
	}
	if (n->push_call != NULL && memcmp(n->push_content, want->content_hash, 32) != 0) {
		/* In flight for an older revision: abandon it; the next serial supersedes it. */
		grpc_ccall_cancel(n->push_call);	/* quiet: push_done does not run */
		n->push_call = NULL;
		free(n->push_ctx);
		n->push_ctx = NULL;
		budget_give(n);
		budget_wake(n->ctl);
		n->need_check = true;
	}
	kick(n);
}

void
cnode_tick(struct cnode *n, int64_t now)
{
	if (n->ch == NULL || n->want == NULL)
		return;
	if (now - n->last_poll >= (int64_t)n->ctl->poll_ms * 1000000) {
		n->last_poll = now;
		if (n->poll_call == NULL && n->status_call == NULL && n->push_call == NULL)
			start_status(n, true);
	}
	if (n->ctl->sweep_ms > 0 &&
	    now - n->last_sweep >= (int64_t)n->ctl->sweep_ms * 1000000) {
		n->last_sweep = now;
		cnode_sweep(n);
	}
}

void
cnode_free(struct cnode *n)
{
	if (n == NULL)
		return;
	/* grpc_channel_free() runs the outstanding calls' done callbacks (CANCELLED). */
	n->dead = true;
	n->want = NULL;
	budget_unwait(n);
	if (n->ch != NULL)
		grpc_channel_free(n->ch);
	if (n->ev_retry != NULL)
		event_free(n->ev_retry);
	if (n->ev_watch != NULL)
		event_free(n->ev_watch);
	state_node_clear(&n->db);
	free(n);
}
