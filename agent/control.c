/* SPDX-License-Identifier: Apache-2.0 */
/*
 * buoy's NodeControl service: status, signed configs and peer deltas to the WireGuard
 * data plane (dataplane.h) and to Xray (xray_sup.h), handshakes, restarts and the event
 * stream.
 */
#include <event2/event.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "config.h"
#include "control.h"
#include "dataplane.h"
#include "grpc.h"
#include "uapi.h"
#include "log.h"
#include "pharos/v1/node.pb-c.h"
#include "err.h"
#include "version.h"
#include "xray_sup.h"

static uint64_t
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

/* Pack a protobuf-c message and reply with it. */
static void
reply_msg(struct grpc_call *call, const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);

	if (buf == NULL) {
		grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	protobuf_c_message_pack(m, buf);
	grpc_call_reply(call, buf, len);
	free(buf);
}

static void
xray_health(Pharos__V1__BackendHealth *h, struct xray_sup_status *xst)
{
	h->backend = PHAROS__V1__BACKEND__BACKEND_XRAY;
	h->state = (Pharos__V1__HealthState)xst->health;
	h->detail = xst->detail;
	h->restarts = xst->restarts;
}

static void
get_status(struct grpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	struct control *ctl = arg;
	Pharos__V1__GetStatusRequest *r;
	Pharos__V1__NodeStatus st = PHAROS__V1__NODE_STATUS__INIT;

	/* An empty request is valid; fields from newer controllers are ignored. */
	if ((r = pharos__v1__get_status_request__unpack(NULL, len, req)) == NULL) {
		grpc_call_finish(call, GRPC_INVALID_ARGUMENT, "malformed GetStatusRequest");
		return;
	}
	pharos__v1__get_status_request__free_unpacked(r, NULL);
	st.fleet_id = ctl->self.trust_domain;
	st.node = ctl->self.name;
	st.uptime_seconds = mono_s() - ctl->started;
	st.agent_version = (char *)(uintptr_t)PHAROS_VERSION;
	st.now_unix_nanos = clock_unix_nanos();
	st.next_event_seq = ctl->next_seq;
	if (ctl->nc->cfg != NULL) {
		st.revision = ctl->nc->ndeltas > 0 ?
		    ctl->nc->deltas[ctl->nc->ndeltas - 1]->revision : ctl->nc->cfg->revision;
		st.serial = ctl->nc->serial;
		st.delta_serial = ctl->nc->delta_serial;
		st.config_hash.data = ctl->nc->hash;
		st.config_hash.len = 32;
		st.applied_unix_nanos = ctl->nc->applied_nanos;
	}
	{
		struct dp_status ds;
		struct xray_sup_status xst;
		Pharos__V1__BackendHealth bh = PHAROS__V1__BACKEND_HEALTH__INIT;
		Pharos__V1__BackendHealth xh = PHAROS__V1__BACKEND_HEALTH__INIT;
		Pharos__V1__BackendHealth *bhp[2] = { &bh, &xh };

		ctl->dp->status(ctl->dp, &ds);
		st.peer_count = ds.peer_count;
		st.peers_active = ds.peers_active;
		st.latest_handshake_unix_nanos = ds.latest_handshake_nanos;
		st.rx_bytes = ds.rx_bytes;
		st.tx_bytes = ds.tx_bytes;
		bh.backend = PHAROS__V1__BACKEND__BACKEND_AMNEZIAWG;
		bh.state = (Pharos__V1__HealthState)ds.health;
		bh.detail = ds.detail;
		xray_sup_status(ctl->xs, &xst);
		xray_health(&xh, &xst);
		st.vless_user_count = xst.users;
		if (xst.have_key) {
			st.reality_public_key.data = xst.reality_public;
			st.reality_public_key.len = 32;
		}
		st.backends = bhp;
		st.n_backends = 2;
		reply_msg(call, &st.base);
	}
}

/* ---- WatchEvents: the event bus ---- */

struct watcher {
	struct control		*ctl;
	struct grpc_call	*call;
	struct event		*tick;
	struct timeval		 period;
	unsigned		 kinds;		/* bit per EventKind; 0 = all */
	uint64_t		 lost;		/* dropped for a full queue, not yet reported */
	uint64_t		 lost_first;
	struct watcher		*next;
};

static void
watcher_unlink(struct watcher *w)
{
	struct watcher **pp;

	for (pp = &w->ctl->watchers; *pp != NULL; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	event_free(w->tick);
	free(w);
}

static void
watcher_cancel(struct grpc_call *call, void *arg)
{
	(void)call;
	watcher_unlink(arg);
}

static int
send_packed(struct watcher *w, const uint8_t *buf, size_t len)
{
	return grpc_call_send(w->call, buf, len);
}

/* Tell a watcher how many events it missed (queue full or ring overrun). */
static void
send_lost(struct watcher *w, uint64_t first, uint64_t count)
{
	Pharos__V1__Event ev = PHAROS__V1__EVENT__INIT;
	Pharos__V1__EventsLostEvent lost = PHAROS__V1__EVENTS_LOST_EVENT__INIT;
	uint8_t buf[96];

	ev.seq = w->ctl->next_seq++;
	ev.time_unix_nanos = clock_unix_nanos();
	ev.kind = PHAROS__V1__EVENT_KIND__EVENT_KIND_EVENTS_LOST;
	ev.detail_case = PHAROS__V1__EVENT__DETAIL_EVENTS_LOST;
	lost.first_seq = first;
	lost.count = count;
	ev.events_lost = &lost;
	if (send_packed(w, buf, pharos__v1__event__pack(&ev, buf)) == 0)
		w->lost = 0;
}

static void
deliver(struct watcher *w, const uint8_t *buf, size_t len, uint64_t seq, int kind)
{
	if (w->kinds != 0 && kind < 32 && !(w->kinds & (1U << kind)))
		return;
	if (w->lost > 0)
		send_lost(w, w->lost_first, w->lost);
	if (w->lost > 0 || send_packed(w, buf, len) != 0) {
		/* The controller is not reading: count, and say so when it is. */
		if (w->lost++ == 0)
			w->lost_first = seq;
	}
}

/* Stamp, keep in the ring, and send to every watcher. */
static void
control_emit(struct control *ctl, Pharos__V1__Event *ev)
{
	size_t len, slot;
	uint8_t *buf;
	struct watcher *w, *next;

	ev->seq = ctl->next_seq++;
	ev->time_unix_nanos = clock_unix_nanos();
	len = pharos__v1__event__get_packed_size(ev);
	if ((buf = malloc(len ? len : 1)) == NULL)
		return;
	pharos__v1__event__pack(ev, buf);
	slot = ev->seq % EVENT_RING;
	free(ctl->ring[slot].buf);
	ctl->ring[slot].buf = buf;
	ctl->ring[slot].len = len;
	ctl->ring[slot].seq = ev->seq;
	ctl->ring[slot].kind = (int)ev->kind;
	for (w = ctl->watchers; w != NULL; w = next) {
		next = w->next;
		deliver(w, buf, len, ev->seq, (int)ev->kind);
	}
}

static void
backend_event(struct control *ctl, Pharos__V1__Backend backend, int kind, const uint8_t *key,
    const char *endpoint, int64_t handshake_nanos, const char *detail)
{
	Pharos__V1__Event ev = PHAROS__V1__EVENT__INIT;
	Pharos__V1__HandshakeEvent hs = PHAROS__V1__HANDSHAKE_EVENT__INIT;
	Pharos__V1__DataPlaneErrorEvent de = PHAROS__V1__DATA_PLANE_ERROR_EVENT__INIT;
	Pharos__V1__BackendRestartedEvent br = PHAROS__V1__BACKEND_RESTARTED_EVENT__INIT;
	uint8_t k[32];

	ev.kind = (Pharos__V1__EventKind)kind;
	switch (kind) {
	case PHAROS__V1__EVENT_KIND__EVENT_KIND_HANDSHAKE_UP:
	case PHAROS__V1__EVENT_KIND__EVENT_KIND_HANDSHAKE_DOWN:
		memcpy(k, key, 32);
		hs.public_key.data = k;
		hs.public_key.len = 32;
		hs.endpoint = (char *)(uintptr_t)(endpoint != NULL ? endpoint : "");
		hs.handshake_unix_nanos = handshake_nanos;
		ev.detail_case = PHAROS__V1__EVENT__DETAIL_HANDSHAKE;
		ev.handshake = &hs;
		break;
	case PHAROS__V1__EVENT_KIND__EVENT_KIND_BACKEND_RESTARTED:
		br.backend = backend;
		br.reason = (char *)(uintptr_t)(detail != NULL ? detail : "");
		br.state = PHAROS__V1__HEALTH_STATE__HEALTH_STATE_UP;
		ev.detail_case = PHAROS__V1__EVENT__DETAIL_BACKEND_RESTARTED;
		ev.backend_restarted = &br;
		break;
	default:
		de.backend = backend;
		de.message = (char *)(uintptr_t)(detail != NULL ? detail : "");
		ev.detail_case = PHAROS__V1__EVENT__DETAIL_DATA_PLANE_ERROR;
		ev.data_plane_error = &de;
		break;
	}
	control_emit(ctl, &ev);
}

void
control_dp_event(void *arg, int kind, const uint8_t *key, const char *endpoint,
    int64_t handshake_nanos, const char *detail)
{
	backend_event(arg, PHAROS__V1__BACKEND__BACKEND_AMNEZIAWG, kind, key, endpoint,
	    handshake_nanos, detail);
}

void
control_xray_event(void *arg, int kind, const uint8_t *key, const char *endpoint,
    int64_t handshake_nanos, const char *detail)
{
	backend_event(arg, PHAROS__V1__BACKEND__BACKEND_XRAY, kind, key, endpoint,
	    handshake_nanos, detail);
}

static void
emit_applied(struct control *ctl, bool from_disk, bool partial)
{
	Pharos__V1__Event ev = PHAROS__V1__EVENT__INIT;
	Pharos__V1__ConfigAppliedEvent ca = PHAROS__V1__CONFIG_APPLIED_EVENT__INIT;

	ev.kind = PHAROS__V1__EVENT_KIND__EVENT_KIND_CONFIG_APPLIED;
	ev.detail_case = PHAROS__V1__EVENT__DETAIL_CONFIG_APPLIED;
	ca.revision = ctl->nc->cfg->revision;
	ca.serial = ctl->nc->serial;
	ca.config_hash.data = ctl->nc->hash;
	ca.config_hash.len = 32;
	ca.result = partial ? PHAROS__V1__APPLY_RESULT__APPLY_RESULT_PARTIAL :
	    PHAROS__V1__APPLY_RESULT__APPLY_RESULT_APPLIED;
	ca.from_disk = from_disk;
	ev.config_applied = &ca;
	control_emit(ctl, &ev);
}

static void
heartbeat(evutil_socket_t fd, short what, void *arg)
{
	struct watcher *w = arg;
	Pharos__V1__Event ev = PHAROS__V1__EVENT__INIT;
	Pharos__V1__HeartbeatEvent hb = PHAROS__V1__HEARTBEAT_EVENT__INIT;
	struct dp_status ds;
	uint8_t buf[128];
	size_t len;

	(void)fd;
	(void)what;
	w->ctl->dp->status(w->ctl->dp, &ds);
	ev.seq = w->ctl->next_seq++;
	ev.time_unix_nanos = clock_unix_nanos();
	ev.kind = PHAROS__V1__EVENT_KIND__EVENT_KIND_HEARTBEAT;
	ev.detail_case = PHAROS__V1__EVENT__DETAIL_HEARTBEAT;
	hb.serial = w->ctl->nc->serial;
	hb.peer_count = ds.peer_count;
	hb.peers_active = ds.peers_active;
	ev.heartbeat = &hb;
	len = pharos__v1__event__pack(&ev, buf);
	/* A full queue means the controller is not reading: skip this beat. */
	if (grpc_call_send(w->call, buf, len) != 0)
		log_debug("buoy: heartbeat skipped peer=%s", grpc_call_peer_addr(w->call));
	evtimer_add(w->tick, &w->period);
}

static void
watch_events(struct grpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	struct control *ctl = arg;
	Pharos__V1__WatchEventsRequest *r;
	struct watcher *w;
	uint64_t since, oldest = 0, s;
	unsigned secs;
	size_t i;

	if ((r = pharos__v1__watch_events_request__unpack(NULL, len, req)) == NULL) {
		grpc_call_finish(call, GRPC_INVALID_ARGUMENT, "malformed WatchEventsRequest");
		return;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL ||
	    (w->tick = evtimer_new(ctl->base, heartbeat, w)) == NULL) {
		free(w);
		pharos__v1__watch_events_request__free_unpacked(r, NULL);
		grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	secs = r->heartbeat_seconds ? r->heartbeat_seconds : 15;
	since = r->since_seq;
	for (i = 0; i < r->n_kinds; i++)
		if (r->kinds[i] < 32)
			w->kinds |= 1U << r->kinds[i];
	if (w->kinds != 0)
		w->kinds |= 1U << PHAROS__V1__EVENT_KIND__EVENT_KIND_HEARTBEAT |
		    1U << PHAROS__V1__EVENT_KIND__EVENT_KIND_EVENTS_LOST;
	pharos__v1__watch_events_request__free_unpacked(r, NULL);
	w->ctl = ctl;
	w->call = call;
	w->period.tv_sec = secs;
	grpc_call_set_cancel_cb(call, watcher_cancel, w);
	w->next = ctl->watchers;
	ctl->watchers = w;
	/* Resume: what the ring still holds after since_seq, and what it no longer does. */
	if (since > 0) {
		for (s = since + 1; s < ctl->next_seq; s++) {
			size_t slot = s % EVENT_RING;
			if (ctl->ring[slot].buf != NULL && ctl->ring[slot].seq == s) {
				if (oldest == 0)
					oldest = s;
			}
		}
		if (oldest != since + 1 && since + 1 < ctl->next_seq)
			send_lost(w, since + 1, (oldest ? oldest : ctl->next_seq) - since - 1);
		for (s = oldest ? oldest : ctl->next_seq; s < ctl->next_seq; s++) {
			size_t slot = s % EVENT_RING;
			if (ctl->ring[slot].buf != NULL && ctl->ring[slot].seq == s)
				deliver(w, ctl->ring[slot].buf, ctl->ring[slot].len, s,
				    ctl->ring[slot].kind);
		}
	}
	heartbeat(-1, 0, w);		/* the first beat at once: the stream is live */
}

void
control_shutdown(struct control *ctl)
{
	struct watcher *w;

	/* Event streams never end by themselves: end them, so shutdown can drain. */
	while ((w = ctl->watchers) != NULL) {
		ctl->watchers = w->next;
		grpc_call_finish(w->call, GRPC_UNAVAILABLE, "node agent shutting down");
		event_free(w->tick);
		free(w);
	}
}

void
control_free(struct control *ctl)
{
	size_t i;

	for (i = 0; i < EVENT_RING; i++)
		free(ctl->ring[i].buf);
}

static void
get_handshakes(struct grpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	struct control *ctl = arg;
	Pharos__V1__GetHandshakesRequest *r;
	Pharos__V1__HandshakesResponse resp = PHAROS__V1__HANDSHAKES_RESPONSE__INIT;
	Pharos__V1__PeerHandshake *ph = NULL, **pp = NULL;
	struct wg_device *dev = NULL;
	size_t i, j, n = 0;

	if ((r = pharos__v1__get_handshakes_request__unpack(NULL, len, req)) == NULL) {
		grpc_call_finish(call, GRPC_INVALID_ARGUMENT, "malformed GetHandshakesRequest");
		return;
	}
	if (ctl->dp->peers(ctl->dp, &dev) != 0) {
		pharos__v1__get_handshakes_request__free_unpacked(r, NULL);
		grpc_call_finish(call, GRPC_UNAVAILABLE, err_last());
		return;
	}
	if (dev != NULL && dev->npeers > 0 &&
	    ((ph = calloc(dev->npeers, sizeof(*ph))) == NULL ||
	    (pp = calloc(dev->npeers, sizeof(*pp))) == NULL)) {
		free(ph);
		wg_device_free(dev);
		pharos__v1__get_handshakes_request__free_unpacked(r, NULL);
		grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	for (i = 0; dev != NULL && i < dev->npeers; i++) {
		const struct wg_peer *p = &dev->peers[i];
		if (r->n_public_keys > 0) {
			for (j = 0; j < r->n_public_keys; j++)
				if (r->public_keys[j].len == 32 &&
				    memcmp(r->public_keys[j].data, p->public_key, 32) == 0)
					break;
			if (j == r->n_public_keys)
				continue;
		}
		pharos__v1__peer_handshake__init(&ph[n]);
		ph[n].public_key.data = (uint8_t *)(uintptr_t)p->public_key;
		ph[n].public_key.len = 32;
		ph[n].endpoint = (char *)(uintptr_t)p->endpoint;
		ph[n].last_handshake_unix_nanos = p->last_handshake_sec * 1000000000 +
		    p->last_handshake_nsec;
		ph[n].rx_bytes = p->rx_bytes;
		ph[n].tx_bytes = p->tx_bytes;
		pp[n] = &ph[n];
		n++;
	}
	resp.peers = pp;
	resp.n_peers = n;
	resp.now_unix_nanos = clock_unix_nanos();
	reply_msg(call, &resp.base);
	free(pp);
	free(ph);
	wg_device_free(dev);
	pharos__v1__get_handshakes_request__free_unpacked(r, NULL);
}

static void
trim_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	malloc_trim(0);
}

/*
 * A big apply leaves megabytes of freed buffers in the heap (the request, the old config,
 * the data plane's diff): give their pages back once the call is over and the gRPC layer
 * has freed the request too, i.e. from the next turn of the loop.
 */
static void
trim_soon(struct control *ctl)
{
	struct timeval now = { 0, 0 };

	if (event_base_once(ctl->base, -1, EV_TIMEOUT, trim_cb, NULL, &now) != 0)
		malloc_trim(0);
}

/* The request written beside config.signed while the data plane takes it. */
struct persist {
	struct node_config	*nc;
	const uint8_t		*req;
	size_t			 len;
	struct fs_pending	 pw;
	int			 rc;
};

static void
persist_busy(void *arg)
{
	struct persist *p = arg;

	if ((p->rc = config_prepare(p->nc, p->req, p->len, &p->pw)) != 0)
		log_warnx("buoy: preparing %s: %s; written after the apply", CONFIG_FILE,
		    err_last());
}

/* Called on the signature check's thread once the signature holds. */
static void
prefetch_start(void *arg)
{
	struct dataplane *dp = arg;

	dp->prefetch(dp, true);
}

/*
 * Verify, apply to the data plane, then persist: the persisted config is always one the
 * data plane took. The slow part of persisting (writing and fsyncing a temporary file)
 * overlaps with the data plane's work; the rename into place waits for its answer. A
 * refused request changes nothing.
 */
static void
apply_config(struct grpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	struct control *ctl = arg;
	struct config_check cc;
	struct dp_result res;
	struct xray_sup_status xst;
	Pharos__V1__ApplyConfigResponse resp = PHAROS__V1__APPLY_CONFIG_RESPONSE__INIT;
	Pharos__V1__BackendHealth xh = PHAROS__V1__BACKEND_HEALTH__INIT, *xhp = &xh;
	char why[256] = "", xwhy[256] = "";
	uint32_t uadd = 0, urm = 0;
	bool partial = false;
	int64_t t0 = clock_mono_nanos(), t_check;
	struct persist pst = { ctl->nc, req, len, { NULL, NULL, NULL }, 0 };

	/*
	 * Once the signature holds, the data plane reads the live device while the rest of
	 * the request is checked (a dump of 10,000 peers takes wireguard-go 25-80 ms).
	 */
	config_check(ctl->nc, req, len, &cc, ctl->dp->prefetch != NULL ? prefetch_start : NULL,
	    ctl->dp);
	t_check = clock_mono_nanos() - t0;
	if (cc.verdict != CONFIG_NEW && ctl->dp->prefetch != NULL)
		ctl->dp->prefetch(ctl->dp, false);
	if (cc.verdict == CONFIG_REFUSED) {
		log_warnx("buoy: ApplyConfig refused peer=%s reason=\"%s\"",
		    grpc_call_peer_addr(call), cc.why);
		grpc_call_finish(call, cc.grpc_status, cc.why);
		return;
	}
	memset(&res, 0, sizeof(res));
	if (cc.verdict == CONFIG_NEW) {
		if (ctl->dp->apply(ctl->dp, cc.cfg, cc.peers, persist_busy, &pst, &res, why,
		    sizeof(why)) != 0) {
			log_warnx("buoy: ApplyConfig revision=%.12s serial=%llu failed: %s",
			    cc.cfg->revision, (unsigned long long)cc.cfg->serial, why);
			fs_write_abort(&pst.pw);
			config_check_free(&cc);
			grpc_call_finish(call, GRPC_UNAVAILABLE, why);
			return;
		}
		if (config_commit(ctl->nc, req, len, &pst.pw, &cc) != 0) {
			log_warnx("buoy: applied but cannot persist: %s", err_last());
			fs_write_abort(&pst.pw);
			config_check_free(&cc);
			grpc_call_finish(call, GRPC_INTERNAL, err_last());
			return;
		}
		/*
		 * Xray after the commit: its user changes complete later, and a failure here
		 * (no key, no start) is retried by its supervisor, so the config stands and
		 * the answer says PARTIAL.
		 */
		partial = xray_sup_apply(ctl->xs, config_view(ctl->nc, NULL), &uadd, &urm, xwhy,
		    sizeof(xwhy)) != 0;
		emit_applied(ctl, false, partial);
		log_info("buoy: applied revision=%.12s serial=%llu peers=+%u/-%u/~%u users=+%u/-%u "
		    "in %.3f ms (check %.3f ms, data plane set %.3f ms)", ctl->nc->cfg->revision,
		    (unsigned long long)ctl->nc->cfg->serial, res.peers_added, res.peers_removed,
		    res.peers_changed, uadd, urm, (double)(clock_mono_nanos() - t0) / 1e6,
		    (double)t_check / 1e6, (double)res.set_nanos / 1e6);
	}
	resp.result = cc.verdict != CONFIG_NEW ? PHAROS__V1__APPLY_RESULT__APPLY_RESULT_UNCHANGED :
	    partial ? PHAROS__V1__APPLY_RESULT__APPLY_RESULT_PARTIAL :
	    PHAROS__V1__APPLY_RESULT__APPLY_RESULT_APPLIED;
	resp.revision = ctl->nc->cfg->revision;
	resp.serial = ctl->nc->cfg->serial;
	resp.config_hash.data = ctl->nc->hash;
	resp.config_hash.len = 32;
	resp.peers_added = res.peers_added;
	resp.peers_removed = res.peers_removed;
	resp.peers_changed = res.peers_changed;
	resp.users_added = uadd;
	resp.users_removed = urm;
	if (partial) {
		xray_sup_status(ctl->xs, &xst);
		xray_health(&xh, &xst);
		resp.backends = &xhp;
		resp.n_backends = 1;
		resp.detail = xwhy;
	}
	resp.apply_nanos = clock_mono_nanos() - t0;
	reply_msg(call, &resp.base);
	if (cc.verdict == CONFIG_NEW)
		trim_soon(ctl);
}

void
control_boot(struct control *ctl)
{
	struct config_check cc;
	struct dp_result res;
	const Pharos__V1__NodeConfig *cfg;
	const struct peerset *peers;
	char why[256] = "", xwhy[256] = "";
	uint32_t uadd, urm;
	bool partial;
	int rc;

	if ((rc = config_load(ctl->nc, &cc)) == ERR_NOTFOUND) {
		log_info("buoy: no persisted config; waiting for the controller");
		return;
	}
	if (rc != 0)
		return;		/* logged: tampered, truncated or not ours */
	/* The config, then its signed deltas, then one data-plane apply of the result. */
	config_commit(ctl->nc, NULL, 0, NULL, &cc);
	config_deltas_load(ctl->nc, NULL, NULL);
	/* Xray does not depend on the tunnels: it comes up even if they do not. */
	partial = xray_sup_apply(ctl->xs, config_view(ctl->nc, NULL), &uadd, &urm, xwhy,
	    sizeof(xwhy)) != 0;
	cfg = config_view(ctl->nc, &peers);
	if (ctl->dp->apply(ctl->dp, cfg, peers, NULL, NULL, &res, why, sizeof(why)) != 0) {
		log_warnx("buoy: re-applying the persisted config failed: %s", why);
		return;
	}
	emit_applied(ctl, true, partial);
	log_info("buoy: re-applied the persisted config revision=%.12s serial=%llu peers=%zu "
	    "users=%zu", ctl->nc->cfg->revision, (unsigned long long)ctl->nc->serial,
	    peers->n, config_view(ctl->nc, NULL)->n_vless_users);
}

/* AddPeer / RemovePeer: a signed PeerDelta on top of what runs. */
static void
peer_delta(struct grpc_call *call, const uint8_t *req, size_t len, struct control *ctl,
    bool add)
{
	struct delta_check dc;
	struct dp_result res;
	Pharos__V1__PeerResponse resp = PHAROS__V1__PEER_RESPONSE__INIT;
	char why[256] = "", detail[320] = "applied";
	uint32_t uadd = 0, urm = 0;
	bool users;

	config_delta_check(ctl->nc, req, len, add, &dc);
	if (dc.verdict == DELTA_REFUSED) {
		log_warnx("buoy: %s refused peer=%s reason=\"%s\"", add ? "AddPeer" : "RemovePeer",
		    grpc_call_peer_addr(call), dc.why);
		grpc_call_finish(call, dc.grpc_status, dc.why);
		return;
	}
	memset(&res, 0, sizeof(res));
	if (dc.verdict == DELTA_NEW) {
		if (ctl->dp->apply_delta(ctl->dp, dc.delta, &res, why, sizeof(why)) != 0) {
			config_delta_check_free(&dc);
			grpc_call_finish(call, GRPC_UNAVAILABLE, why);
			return;
		}
		users = dc.delta->n_add_users > 0 || dc.delta->n_remove_users > 0;
		if (config_delta_commit(ctl->nc, req, len, &dc) != 0) {
			log_warnx("buoy: delta applied but cannot persist: %s", err_last());
			config_delta_check_free(&dc);
			grpc_call_finish(call, GRPC_INTERNAL, err_last());
			return;
		}
		/* VLESS users: live through Xray's API, as for a full config. */
		if (users && xray_sup_apply(ctl->xs, config_view(ctl->nc, NULL), &uadd, &urm, why,
		    sizeof(why)) != 0)
			snprintf(detail, sizeof(detail), "applied; %s", why);
		else if (users)
			snprintf(detail, sizeof(detail), "applied; users +%u/-%u", uadd, urm);
		log_debug("buoy: %s serial=%llu +%u/-%u users=+%u/-%u", add ? "AddPeer" :
		    "RemovePeer", (unsigned long long)ctl->nc->serial, res.peers_added,
		    res.peers_removed, uadd, urm);
	}
	resp.serial = ctl->nc->serial;
	resp.peer_count = (uint32_t)ctl->nc->peers->n;
	resp.peers_changed = res.peers_added + res.peers_removed;
	resp.detail = dc.verdict == DELTA_SAME ? (char *)(uintptr_t)"already applied" : detail;
	reply_msg(call, &resp.base);
}

static void
add_peer(struct grpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	peer_delta(call, req, len, arg, true);
}

static void
remove_peer(struct grpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	peer_delta(call, req, len, arg, false);
}

/*
 * RestartService: the WireGuard backend (BACKEND_AMNEZIAWG), Xray (BACKEND_XRAY), or
 * both (BACKEND_UNSPECIFIED; Xray only if it runs here). Answered once they are back.
 */
static void
restart_service(struct grpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	struct control *ctl = arg;
	Pharos__V1__RestartServiceRequest *r;
	Pharos__V1__RestartServiceResponse resp = PHAROS__V1__RESTART_SERVICE_RESPONSE__INIT;
	Pharos__V1__BackendHealth bh = PHAROS__V1__BACKEND_HEALTH__INIT;
	Pharos__V1__BackendHealth xh = PHAROS__V1__BACKEND_HEALTH__INIT;
	Pharos__V1__BackendHealth *bhp[2];
	struct dp_status ds;
	struct xray_sup_status xst;
	char why[256] = "", reason[160];
	int64_t t0 = clock_mono_nanos();
	bool wg, xray;

	if ((r = pharos__v1__restart_service_request__unpack(NULL, len, req)) == NULL) {
		grpc_call_finish(call, GRPC_INVALID_ARGUMENT, "malformed RestartServiceRequest");
		return;
	}
	snprintf(reason, sizeof(reason), "RestartService: %s", r->reason[0] ? r->reason :
	    "no reason given");
	wg = r->backend != PHAROS__V1__BACKEND__BACKEND_XRAY;
	xray = r->backend != PHAROS__V1__BACKEND__BACKEND_AMNEZIAWG;
	if (r->backend == PHAROS__V1__BACKEND__BACKEND_UNSPECIFIED) {
		xray_sup_status(ctl->xs, &xst);
		xray = xst.health != PHAROS__V1__HEALTH_STATE__HEALTH_STATE_DISABLED;
	}
	pharos__v1__restart_service_request__free_unpacked(r, NULL);
	if (wg && ctl->dp->restart == NULL) {
		grpc_call_finish(call, GRPC_FAILED_PRECONDITION, "this data plane cannot restart");
		return;
	}
	if (wg && ctl->dp->restart(ctl->dp, reason, why, sizeof(why)) != 0) {
		grpc_call_finish(call, GRPC_FAILED_PRECONDITION, why);
		return;
	}
	if (xray && xray_sup_restart(ctl->xs, reason, why, sizeof(why)) != 0) {
		grpc_call_finish(call, GRPC_FAILED_PRECONDITION, why);
		return;
	}
	if (wg) {
		ctl->dp->status(ctl->dp, &ds);
		bh.backend = PHAROS__V1__BACKEND__BACKEND_AMNEZIAWG;
		bh.state = (Pharos__V1__HealthState)ds.health;
		bh.detail = ds.detail;
		bhp[resp.n_backends++] = &bh;
	}
	if (xray) {
		xray_sup_status(ctl->xs, &xst);
		xray_health(&xh, &xst);
		bhp[resp.n_backends++] = &xh;
	}
	resp.backends = bhp;
	resp.restart_nanos = clock_mono_nanos() - t0;
	reply_msg(call, &resp.base);
}

#define SVC "/pharos.v1.NodeControl/"

const struct grpc_method *
control_methods(struct control *ctl, size_t *n)
{
	static struct grpc_method m[] = {
		{ SVC "GetStatus", false, get_status, NULL },
		{ SVC "WatchEvents", true, watch_events, NULL },
		{ SVC "ApplyConfig", false, apply_config, NULL },
		{ SVC "AddPeer", false, add_peer, NULL },
		{ SVC "RemovePeer", false, remove_peer, NULL },
		{ SVC "GetHandshakes", false, get_handshakes, NULL },
		{ SVC "RestartService", false, restart_service, NULL },
	};

	m[0].arg = ctl;
	m[1].arg = ctl;
	m[2].arg = ctl;
	m[3].arg = ctl;
	m[4].arg = ctl;
	m[5].arg = ctl;
	m[6].arg = ctl;
	*n = sizeof(m) / sizeof(m[0]);
	return m;
}
