/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The UAPI data plane: wireguard-go (or amneziawg-go) driven over its UAPI socket.
 * apply() makes sure the implementation runs (a kernel interface or an already running
 * one is used as it is), computes the difference between the live device and the
 * config (lib/uapi.c) and sends only that, then the interface's addresses, MTU and link
 * state, and for an exit node forwarding and NAT. A one-second check restarts the
 * implementation if it died and re-applies the running config. The implementation is
 * left running when buoy exits: tunnels outlive the agent.
 */
#include <sys/wait.h>

#include <event2/event.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dataplane.h"
#include "err.h"
#include "log.h"
#include "uapi.h"
#include "wgdp.h"
#include "wgproc.h"

#define SOCKET_WAIT_MS		5000
#define STATUS_TIMEOUT_MS	2000	/* GetStatus and heartbeats wait at most this */

struct uapi_dp {
	struct dataplane		 dp;
	struct event_base		*base;
	char				 ifname[16];
	char				 impl[64];
	char				 sock[128];
	char				 log[1100];
	uint8_t				 priv[32];
	pid_t				 pid;
	bool				 awg;		/* an AmneziaWG implementation */
	unsigned			 restarts;
	bool				 up;
	/* What the interface was last set to: ip/nft run only when this changes. */
	char				*netkey;
	struct wgdp_hs			 hs;		/* handshakes at the last check */
	dp_current_fn			 current;
	void				*current_arg;
	struct event			*check;
	char				 detail[128];
	/* A read of the live device made while the request was checked (prefetch()). */
	struct {
		pthread_t		 th;
		bool			 running;
		int			 rc;
		struct wg_device	*dev;
		char			 why[256];
	}				 pf;
};

/* A connect, not a get: a dump of 10,000 peers can take longer than any short timeout. */
static bool
alive(struct uapi_dp *u)
{
	return uapi_probe(u->sock) == 0;
}

static int
ensure_running(struct uapi_dp *u)
{
	if (alive(u))
		return 0;
	if (u->pid > 0 && waitpid(u->pid, NULL, WNOHANG) == u->pid)
		u->pid = 0;	/* the one that died */
	if (wgproc_start(&u->pid, u->impl, u->ifname, u->log) != 0)
		return ERR_SYS;
	if (wgproc_wait_socket(u->sock, SOCKET_WAIT_MS) != 0) {
		err_set("%s did not open %s within %d ms (see %s)", u->impl, u->sock,
		    SOCKET_WAIT_MS, u->log);
		return ERR_SYS;
	}
	log_info("buoy: started %s interface=%s pid=%d", u->impl, u->ifname, (int)u->pid);
	/* A new interface: its addresses, MTU and link state must be set again. */
	free(u->netkey);
	u->netkey = NULL;
	return 0;
}

static void *
prefetch_run(void *arg)
{
	struct uapi_dp *u = arg;

	if ((u->pf.rc = uapi_get(&u->pf.dev, u->sock)) != 0)
		snprintf(u->pf.why, sizeof(u->pf.why), "%s", err_last());
	return NULL;
}

/* Wait for a prefetch; its device (if it read one) goes to *out, else it is freed. */
static void
prefetch_take(struct uapi_dp *u, struct wg_device **out)
{
	if (out != NULL)
		*out = NULL;
	if (!u->pf.running)
		return;
	pthread_join(u->pf.th, NULL);
	u->pf.running = false;
	if (u->pf.rc == 0 && out != NULL)
		*out = u->pf.dev;
	else
		wg_device_free(u->pf.dev);
	u->pf.dev = NULL;
	if (u->pf.rc != 0)
		log_debug("buoy: prefetching %s: %s; read again", u->sock, u->pf.why);
}

/*
 * Only once the implementation runs (u->up): before that, apply() may have to start it,
 * and a read would only find no socket.
 */
static void
uapi_prefetch(struct dataplane *dp, bool start)
{
	struct uapi_dp *u = dp->ctx;

	prefetch_take(u, NULL);
	if (!start || !u->up)
		return;
	u->pf.running = pthread_create(&u->pf.th, NULL, prefetch_run, u) == 0;
}

/* The body is streamed to the socket as it is made (uapi_set_diff()). */
static int
uapi_apply(struct dataplane *dp, const Pharos__V1__NodeConfig *cfg,
    const struct peerset *peers, void (*busy)(void *), void *busy_arg, struct dp_result *res,
    char *why, size_t whylen)
{
	struct uapi_dp *u = dp->ctx;
	struct wg_desired want;
	struct wg_device *cur = NULL;
	struct uapi_counts c;
	size_t len = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&want, 0, sizeof(want));
	/* A device read while the request was checked also says the implementation runs. */
	prefetch_take(u, &cur);
	if ((cur == NULL && (rc = ensure_running(u)) != 0) ||
	    (rc = wgdp_desired(&want, u->priv, u->awg, cfg, peers)) != 0)
		goto fail;
	if (cur == NULL && (rc = uapi_get(&cur, u->sock)) != 0)
		goto fail;
	if ((rc = uapi_set_diff(u->sock, &c, &len, cur, &want, busy, busy_arg)) != 0)
		goto fail;
	if (c.connected_nanos != 0)
		res->set_nanos = clock_mono_nanos() - c.connected_nanos;
	res->peers_added = (uint32_t)c.added;
	res->peers_removed = (uint32_t)c.removed;
	res->peers_changed = (uint32_t)c.changed;
	if ((rc = wgdp_netcfg(&u->netkey, u->ifname, cfg, !u->up)) != 0)
		goto fail;
	u->up = true;
	u->detail[0] = '\0';
	log_debug("buoy: uapi interface=%s set %zu bytes", u->ifname, len);
	wg_device_free(cur);
	wg_desired_clear(&want);
	return 0;
fail:
	wg_device_free(cur);
	wg_desired_clear(&want);
	snprintf(why, whylen, "%s", err_last());
	snprintf(u->detail, sizeof(u->detail), "%s", err_last());
	u->up = false;
	return rc;
}

/* Only these peers: no get, no diff, other peers untouched. */
static int
uapi_delta(struct dataplane *dp, const Pharos__V1__PeerDelta *d, struct dp_result *res,
    char *why, size_t whylen)
{
	struct uapi_dp *u = dp->ctx;
	char *body = NULL, hex[UAPI_KEY_HEX_LEN + 1];
	size_t len = 0, i, j;
	FILE *f;
	int rc;

	memset(res, 0, sizeof(*res));
	if ((f = open_memstream(&body, &len)) == NULL) {
		snprintf(why, whylen, "out of memory");
		return ERR_NOMEM;
	}
	for (i = 0; i < d->n_add; i++) {
		const Pharos__V1__Peer *p = d->add[i];
		uapi_key_to_hex(hex, p->public_key.data);
		fprintf(f, "public_key=%s\nreplace_allowed_ips=true\n", hex);
		for (j = 0; j < p->n_allowed_ips; j++)
			fprintf(f, "allowed_ip=%s\n", p->allowed_ips[j]);
		if (p->endpoint != NULL && p->endpoint[0] != '\0')
			fprintf(f, "endpoint=%s\n", p->endpoint);
		fprintf(f, "persistent_keepalive_interval=%u\n", p->persistent_keepalive);
	}
	for (i = 0; i < d->n_remove; i++) {
		uapi_key_to_hex(hex, d->remove[i].data);
		fprintf(f, "public_key=%s\nremove=true\n", hex);
	}
	fclose(f);
	/* The supervisor watches liveness every second; a full get here would cost a dump
	 * of every peer on each call. */
	rc = u->up ? 0 : ensure_running(u);
	if (rc == 0)
		rc = uapi_set(u->sock, body, len);
	free(body);
	if (rc != 0) {
		snprintf(why, whylen, "%s", err_last());
		return rc;
	}
	res->peers_added = (uint32_t)d->n_add;
	res->peers_removed = (uint32_t)d->n_remove;
	return 0;
}

static void
uapi_status(struct dataplane *dp, struct dp_status *st)
{
	struct uapi_dp *u = dp->ctx;
	struct wg_device *dev = NULL;

	if (uapi_get_flags(&dev, u->sock, STATUS_TIMEOUT_MS, UAPI_F_NO_ALLOWED_IPS) != 0) {
		memset(st, 0, sizeof(*st));
		st->health = PHAROS__V1__HEALTH_STATE__HEALTH_STATE_DOWN;
		snprintf(st->detail, sizeof(st->detail), "%s: %s", u->ifname, err_last());
		return;
	}
	wgdp_status(st, dev, u->detail);
	wg_device_free(dev);
}

/*
 * RestartService: stop the implementation this agent started (or, if another process
 * owns the interface, nothing can be restarted), then start it again and re-apply the
 * running config — the same path as a crash.
 */
static int
uapi_restart(struct dataplane *dp, const char *reason, char *why, size_t whylen)
{
	struct uapi_dp *u = dp->ctx;
	const struct peerset *peers;
	const Pharos__V1__NodeConfig *cfg = u->current(u->current_arg, &peers);
	struct dp_result res;

	if (u->pid <= 0) {
		snprintf(why, whylen, "%s was not started by this agent; restart it where it runs",
		    u->ifname);
		return ERR_INVAL;
	}
	log_info("buoy: restarting %s interface=%s: %s", u->impl, u->ifname, reason);
	wgproc_stop(u->pid, 2000);
	u->pid = 0;
	u->restarts++;
	if (cfg == NULL) {
		if (ensure_running(u) != 0) {
			snprintf(why, whylen, "%s", err_last());
			return ERR_SYS;
		}
	} else if (uapi_apply(dp, cfg, peers, NULL, NULL, &res, why, whylen) != 0) {
		return ERR_SYS;
	}
	wgdp_emit(&u->dp, PHAROS__V1__EVENT_KIND__EVENT_KIND_BACKEND_RESTARTED, NULL, NULL, 0,
	    reason);
	return 0;
}

static int
uapi_peers(struct dataplane *dp, struct wg_device **out)
{
	struct uapi_dp *u = dp->ctx;

	return uapi_get_flags(out, u->sock, STATUS_TIMEOUT_MS, UAPI_F_NO_ALLOWED_IPS);
}

/*
 * Every second: reap; check liveness (a connect) and, as often as wgdp_scan_due() says,
 * read the device for handshake changes; if the implementation is gone, restart it and
 * re-apply.
 */
static void
check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct uapi_dp *u = arg;
	struct timeval tv = { WGDP_CHECK_MS / 1000, (WGDP_CHECK_MS % 1000) * 1000 };
	struct dp_result res;
	char why[256];
	const Pharos__V1__NodeConfig *cfg;
	const struct peerset *peers;

	(void)fd;
	(void)what;
	/* Reap only our own child: other supervisors (Xray) wait for theirs. */
	if (u->pid > 0 && waitpid(u->pid, NULL, WNOHANG) == u->pid)
		u->pid = 0;
	cfg = u->current(u->current_arg, &peers);
	if (u->up && cfg != NULL) {
		struct wg_device *dev = NULL;
		size_t n = 0;
		if (alive(u)) {
			/* Alive; a slow or failed read is no reason to restart it. */
			if (!wgdp_scan_due(&u->hs)) {
				/* a big device: handshakes are read less often */
			} else if (uapi_get_flags(&dev, u->sock, UAPI_TIMEOUT_MS,
			    UAPI_F_NO_ALLOWED_IPS) == 0) {
				wgdp_scan(&u->hs, dev, &u->dp);
				n = dev->npeers;
			} else {
				log_warnx("buoy: reading %s for handshakes: %s", u->sock, err_last());
			}
			wg_device_free(dev);
			wgdp_after_read(n);
		} else {
			u->restarts++;
			log_warnx("buoy: %s interface=%s is gone; restarting it (restart %u)",
			    u->impl, u->ifname, u->restarts);
			if (uapi_apply(&u->dp, cfg, peers, NULL, NULL, &res, why, sizeof(why)) != 0) {
				log_warnx("buoy: re-applying after the restart failed: %s", why);
				wgdp_emit(&u->dp, PHAROS__V1__EVENT_KIND__EVENT_KIND_DATA_PLANE_ERROR,
				    NULL, NULL, 0, why);
			} else {
				log_info("buoy: %s restarted and the running config re-applied",
				    u->impl);
				wgdp_emit(&u->dp,
				    PHAROS__V1__EVENT_KIND__EVENT_KIND_BACKEND_RESTARTED, NULL, NULL,
				    0, "the process was gone");
			}
		}
	}
	evtimer_add(u->check, &tv);
}

static void
uapi_free(struct dataplane *dp)
{
	struct uapi_dp *u = dp->ctx;

	prefetch_take(u, NULL);
	if (u->check != NULL)
		event_free(u->check);
	free(u->netkey);
	wgdp_hs_free(&u->hs);
	sodium_memzero(u->priv, sizeof(u->priv));
	free(u);
}

struct dataplane *
dp_uapi_new(struct event_base *base, const char *dir, const char *ifname, const char *impl,
    dp_current_fn current, void *arg)
{
	struct uapi_dp *u;
	struct timeval tv = { 1, 0 };
	bool awg = strstr(impl, "amneziawg") != NULL;

	if (strlen(ifname) == 0 || strlen(ifname) > 15) {
		err_set("interface name '%s' must be 1-15 characters", ifname);
		return NULL;
	}
	if ((u = calloc(1, sizeof(*u))) == NULL)
		return NULL;
	u->base = base;
	u->current = current;
	u->current_arg = arg;
	snprintf(u->ifname, sizeof(u->ifname), "%s", ifname);
	snprintf(u->impl, sizeof(u->impl), "%s", impl);
	snprintf(u->sock, sizeof(u->sock), "/var/run/%s/%s.sock",
	    awg ? "amneziawg" : "wireguard", ifname);
	u->awg = awg;
	snprintf(u->log, sizeof(u->log), "%s/%s.log", dir, ifname);
	if (wgdp_load_key(u->priv, dir) != 0) {
		free(u);
		return NULL;
	}
	u->dp.name = "uapi";
	u->dp.apply = uapi_apply;
	u->dp.apply_delta = uapi_delta;
	u->dp.prefetch = uapi_prefetch;
	u->dp.status = uapi_status;
	u->dp.peers = uapi_peers;
	u->dp.restart = uapi_restart;
	u->dp.free = uapi_free;
	u->dp.ctx = u;
	if ((u->check = evtimer_new(base, check_cb, u)) != NULL)
		evtimer_add(u->check, &tv);
	return &u->dp;
}
