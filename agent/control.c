/* SPDX-License-Identifier: Apache-2.0 */
/*
 * buoy's NodeControl service. GetStatus and WatchEvents (heartbeats) answer today;
 * the config-changing methods arrive with the data plane and answer UNIMPLEMENTED with
 * a message saying so, rather than "unknown method".
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "control.h"
#include "dataplane.h"
#include "grpc.h"
#include "log.h"
#include "pharos/v1/node.pb-c.h"
#include "err.h"
#include "version.h"

static int64_t
unix_nanos(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

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
	st.now_unix_nanos = unix_nanos();
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
		Pharos__V1__BackendHealth bh = PHAROS__V1__BACKEND_HEALTH__INIT;
		Pharos__V1__BackendHealth *bhp = &bh;

		ctl->dp->status(ctl->dp, &ds);
		st.peer_count = ds.peer_count;
		st.peers_active = ds.peers_active;
		st.latest_handshake_unix_nanos = ds.latest_handshake_nanos;
		st.rx_bytes = ds.rx_bytes;
		st.tx_bytes = ds.tx_bytes;
		bh.backend = PHAROS__V1__BACKEND__BACKEND_AMNEZIAWG;
		bh.state = (Pharos__V1__HealthState)ds.health;
		bh.detail = ds.detail;
		st.backends = &bhp;
		st.n_backends = 1;
		reply_msg(call, &st.base);
	}
}

/* ---- WatchEvents: heartbeats until the controller goes away ---- */

struct watcher {
	struct control		*ctl;
	struct grpc_call	*call;
	struct event		*tick;
	struct timeval		 period;
};

static void
watcher_free(struct watcher *w)
{
	event_free(w->tick);
	free(w);
}

static void
watcher_cancel(struct grpc_call *call, void *arg)
{
	(void)call;
	watcher_free(arg);
}

static void
heartbeat(evutil_socket_t fd, short what, void *arg)
{
	struct watcher *w = arg;
	Pharos__V1__Event ev = PHAROS__V1__EVENT__INIT;
	Pharos__V1__HeartbeatEvent hb = PHAROS__V1__HEARTBEAT_EVENT__INIT;
	uint8_t buf[128];
	size_t len;

	(void)fd;
	(void)what;
	ev.seq = w->ctl->next_seq++;
	ev.time_unix_nanos = unix_nanos();
	ev.kind = PHAROS__V1__EVENT_KIND__EVENT_KIND_HEARTBEAT;
	ev.detail_case = PHAROS__V1__EVENT__DETAIL_HEARTBEAT;
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
	unsigned secs;

	if ((r = pharos__v1__watch_events_request__unpack(NULL, len, req)) == NULL) {
		grpc_call_finish(call, GRPC_INVALID_ARGUMENT, "malformed WatchEventsRequest");
		return;
	}
	secs = r->heartbeat_seconds ? r->heartbeat_seconds : 15;
	pharos__v1__watch_events_request__free_unpacked(r, NULL);
	if ((w = calloc(1, sizeof(*w))) == NULL ||
	    (w->tick = evtimer_new(ctl->base, heartbeat, w)) == NULL) {
		free(w);
		grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	w->ctl = ctl;
	w->call = call;
	w->period.tv_sec = secs;
	grpc_call_set_cancel_cb(call, watcher_cancel, w);
	heartbeat(-1, 0, w);		/* the first beat at once: the stream is live */
}

static int64_t
mono_nanos(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Verify, apply to the data plane, then persist: the persisted config is always one the
 * data plane took. A refused request changes nothing.
 */
static void
apply_config(struct grpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	struct control *ctl = arg;
	struct config_check cc;
	struct dp_result res;
	Pharos__V1__ApplyConfigResponse resp = PHAROS__V1__APPLY_CONFIG_RESPONSE__INIT;
	char why[256] = "";
	int64_t t0 = mono_nanos();

	config_check(ctl->nc, req, len, &cc);
	if (cc.verdict == CONFIG_REFUSED) {
		log_warnx("buoy: ApplyConfig refused peer=%s reason=\"%s\"",
		    grpc_call_peer_addr(call), cc.why);
		grpc_call_finish(call, cc.grpc_status, cc.why);
		return;
	}
	memset(&res, 0, sizeof(res));
	if (cc.verdict == CONFIG_NEW) {
		if (ctl->dp->apply(ctl->dp, cc.cfg, &res, why, sizeof(why)) != 0) {
			log_warnx("buoy: ApplyConfig revision=%.12s serial=%llu failed: %s",
			    cc.cfg->revision, (unsigned long long)cc.cfg->serial, why);
			config_check_free(&cc);
			grpc_call_finish(call, GRPC_UNAVAILABLE, why);
			return;
		}
		if (config_commit(ctl->nc, req, len, &cc) != 0) {
			log_warnx("buoy: applied but cannot persist: %s", err_last());
			config_check_free(&cc);
			grpc_call_finish(call, GRPC_INTERNAL, err_last());
			return;
		}
		log_info("buoy: applied revision=%.12s serial=%llu peers=+%u/-%u/~%u in %.3f ms",
		    ctl->nc->cfg->revision, (unsigned long long)ctl->nc->cfg->serial,
		    res.peers_added, res.peers_removed, res.peers_changed,
		    (double)(mono_nanos() - t0) / 1e6);
	}
	resp.result = cc.verdict == CONFIG_NEW ? PHAROS__V1__APPLY_RESULT__APPLY_RESULT_APPLIED :
	    PHAROS__V1__APPLY_RESULT__APPLY_RESULT_UNCHANGED;
	resp.revision = ctl->nc->cfg->revision;
	resp.serial = ctl->nc->cfg->serial;
	resp.config_hash.data = ctl->nc->hash;
	resp.config_hash.len = 32;
	resp.peers_added = res.peers_added;
	resp.peers_removed = res.peers_removed;
	resp.peers_changed = res.peers_changed;
	resp.apply_nanos = mono_nanos() - t0;
	reply_msg(call, &resp.base);
}

void
control_boot(struct control *ctl)
{
	struct config_check cc;
	struct dp_result res;
	char why[256] = "";
	int rc;

	if ((rc = config_load(ctl->nc, &cc)) == ERR_NOTFOUND) {
		log_info("buoy: no persisted config; waiting for the controller");
		return;
	}
	if (rc != 0)
		return;		/* logged: tampered, truncated or not ours */
	/* The config, then its signed deltas, then one data-plane apply of the result. */
	config_commit(ctl->nc, NULL, 0, &cc);
	config_deltas_load(ctl->nc, NULL, NULL);
	if (ctl->dp->apply(ctl->dp, config_view(ctl->nc), &res, why, sizeof(why)) != 0) {
		log_warnx("buoy: re-applying the persisted config failed: %s", why);
		return;
	}
	log_info("buoy: re-applied the persisted config revision=%.12s serial=%llu peers=%zu",
	    ctl->nc->cfg->revision, (unsigned long long)ctl->nc->serial,
	    config_view(ctl->nc)->n_peers);
}

/* AddPeer / RemovePeer: a signed PeerDelta on top of what runs. */
static void
peer_delta(struct grpc_call *call, const uint8_t *req, size_t len, struct control *ctl,
    bool add)
{
	struct delta_check dc;
	struct dp_result res;
	Pharos__V1__PeerResponse resp = PHAROS__V1__PEER_RESPONSE__INIT;
	char why[256] = "";

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
		if (config_delta_commit(ctl->nc, req, len, &dc) != 0) {
			log_warnx("buoy: delta applied but cannot persist: %s", err_last());
			config_delta_check_free(&dc);
			grpc_call_finish(call, GRPC_INTERNAL, err_last());
			return;
		}
		log_debug("buoy: %s serial=%llu +%u/-%u", add ? "AddPeer" : "RemovePeer",
		    (unsigned long long)ctl->nc->serial, res.peers_added, res.peers_removed);
	}
	resp.serial = ctl->nc->serial;
	resp.peer_count = (uint32_t)config_view(ctl->nc)->n_peers;
	resp.peers_changed = res.peers_added + res.peers_removed;
	resp.detail = dc.verdict == DELTA_SAME ? "already applied" : "applied";
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

static void
not_yet(struct grpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	(void)req;
	(void)len;
	grpc_call_finish(call, GRPC_UNIMPLEMENTED, arg);
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
		{ SVC "GetHandshakes", false, not_yet, "GetHandshakes: not implemented yet" },
		{ SVC "RestartService", false, not_yet, "RestartService: not implemented yet" },
	};

	m[0].arg = ctl;
	m[1].arg = ctl;
	m[2].arg = ctl;
	m[3].arg = ctl;
	m[4].arg = ctl;
	*n = sizeof(m) / sizeof(m[0]);
	return m;
}
