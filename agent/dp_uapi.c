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

#include <errno.h>
#include <malloc.h>
#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataplane.h"
#include "err.h"
#include "fsutil.h"
#include "keys.h"
#include "log.h"
#include "uapi.h"
#include "wgproc.h"

#define CHECK_INTERVAL_MS	1000
#define SOCKET_WAIT_MS		5000
#define ACTIVE_WINDOW_S		180	/* WireGuard's REJECT_AFTER_TIME */

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
	/* Peers seen with a recent handshake at the last check, sorted by key. */
	struct hs_seen {
		uint8_t	key[32];
		bool	active;
	}				*seen;
	size_t				 nseen;
	const Pharos__V1__NodeConfig	*(*current)(void *);
	void				*current_arg;
	struct event			*check;
	char				 detail[128];
};

static bool
alive(struct uapi_dp *u)
{
	struct wg_device *dev = NULL;

	if (uapi_get_timeout(&dev, u->sock, 300) != 0)
		return false;
	wg_device_free(dev);
	return true;
}

static int
ensure_running(struct uapi_dp *u)
{
	if (alive(u))
		return 0;
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

static bool
has_role(const Pharos__V1__NodeConfig *cfg, Pharos__V1__Role r)
{
	size_t i;

	for (i = 0; i < cfg->n_roles; i++)
		if (cfg->roles[i] == r)
			return true;
	return false;
}

static int
build_desired(struct uapi_dp *u, const Pharos__V1__NodeConfig *cfg, struct wg_desired *d)
{
	size_t i, j;

	memset(d, 0, sizeof(*d));
	memcpy(d->private_key, u->priv, 32);
	d->listen_port = cfg->amneziawg != NULL ? (int)cfg->amneziawg->listen_port : 0;
	/* Obfuscation keys go only to an AmneziaWG implementation; WireGuard refuses them. */
	if (u->awg && cfg->amneziawg != NULL && cfg->amneziawg->obfuscation != NULL) {
		const Pharos__V1__AwgObfuscation *o = cfg->amneziawg->obfuscation;
		const char *h[4] = { o->h1, o->h2, o->h3, o->h4 };
		const char *is[5] = { o->i1, o->i2, o->i3, o->i4, o->i5 };

		d->awg = true;
		d->jc = (int)o->jc;
		d->jmin = (int)o->jmin;
		d->jmax = (int)o->jmax;
		d->s1 = (int)o->s1;
		d->s2 = (int)o->s2;
		d->s3 = (int)o->s3;
		d->s4 = (int)o->s4;
		for (i = 0; i < 4; i++)
			snprintf(d->h[i], sizeof(d->h[i]), "%s", h[i] != NULL ? h[i] : "");
		for (i = 0; i < 5; i++)
			if (is[i] != NULL && is[i][0] != '\0' && (d->i[i] = strdup(is[i])) == NULL)
				return ERR_NOMEM;
	}
	if (cfg->n_peers > 0 && (d->peers = calloc(cfg->n_peers, sizeof(*d->peers))) == NULL)
		return ERR_NOMEM;
	for (i = 0; i < cfg->n_peers; i++) {
		const Pharos__V1__Peer *p = cfg->peers[i];
		struct wg_peer *w = &d->peers[d->npeers++];
		if (p->public_key.len != 32) {
			err_set("peer %zu: public key is %zu bytes", i, p->public_key.len);
			return ERR_INVAL;
		}
		memcpy(w->public_key, p->public_key.data, 32);
		snprintf(w->endpoint, sizeof(w->endpoint), "%s", p->endpoint ? p->endpoint : "");
		w->keepalive = (int)p->persistent_keepalive;
		for (j = 0; j < p->n_allowed_ips; j++)
			if (wg_peer_add_allowed_ip(w, p->allowed_ips[j]) != 0)
				return ERR_INVAL;
	}
	return 0;
}

/* Count what the diff does to peers, for the response and the log. */
static void
count(const struct wg_device *cur, const struct wg_desired *want, struct dp_result *res)
{
	size_t i, j;

	memset(res, 0, sizeof(*res));
	for (i = 0; i < want->npeers; i++) {
		for (j = 0; j < cur->npeers; j++)
			if (memcmp(want->peers[i].public_key, cur->peers[j].public_key, 32) == 0)
				break;
		if (j == cur->npeers)
			res->peers_added++;
	}
	for (j = 0; j < cur->npeers; j++) {
		for (i = 0; i < want->npeers; i++)
			if (memcmp(want->peers[i].public_key, cur->peers[j].public_key, 32) == 0)
				break;
		if (i == want->npeers)
			res->peers_removed++;
	}
}

static int
uapi_apply(struct dataplane *dp, const Pharos__V1__NodeConfig *cfg, struct dp_result *res,
    char *why, size_t whylen)
{
	struct uapi_dp *u = dp->ctx;
	struct wg_desired want;
	struct wg_device *cur = NULL;
	const Pharos__V1__AwgInterface *ai = cfg->amneziawg;
	char *body = NULL;
	size_t len = 0;
	int rc;
	bool exit_role = has_role(cfg, PHAROS__V1__ROLE__ROLE_EXIT);

	memset(res, 0, sizeof(*res));
	if ((rc = ensure_running(u)) != 0 || (rc = build_desired(u, cfg, &want)) != 0)
		goto fail;
	if ((rc = uapi_get(&cur, u->sock)) != 0)
		goto fail_want;
	count(cur, &want, res);
	if ((rc = uapi_diff(&body, &len, cur, &want)) != 0)
		goto fail_want;
	if (len > 0 && (rc = uapi_set(u->sock, body, len)) != 0)
		goto fail_want;
	{
		/* Addresses, MTU and role as one string; unchanged means nothing to fork. */
		char *key = NULL;
		size_t klen = 0, i;
		FILE *kf = open_memstream(&key, &klen);

		if (kf == NULL) {
			rc = ERR_NOMEM;
			goto fail_want;
		}
		fprintf(kf, "%d %u", exit_role, ai != NULL ? ai->mtu : 0);
		for (i = 0; ai != NULL && i < ai->n_addresses; i++)
			fprintf(kf, " %s", ai->addresses[i]);
		fclose(kf);
		if (u->netkey == NULL || strcmp(u->netkey, key) != 0 || !u->up) {
			rc = netcfg_apply(u->ifname, ai != NULL ?
			    (const char *const *)ai->addresses : NULL,
			    ai != NULL ? ai->n_addresses : 0, ai != NULL ? (int)ai->mtu : 0, true);
			if (rc == 0 && exit_role)
				rc = netcfg_forwarding(true);
			if (rc == 0)
				rc = netcfg_masquerade("pharos", u->ifname, exit_role);
			if (rc != 0) {
				free(key);
				goto fail_want;
			}
			free(u->netkey);
			u->netkey = key;
		} else {
			free(key);
		}
	}
	u->up = true;
	u->detail[0] = '\0';
	log_debug("buoy: uapi interface=%s set %zu bytes", u->ifname, len);
	uapi_body_free(body, len);
	wg_device_free(cur);
	wg_desired_clear(&want);
	/* A big apply leaves megabytes of freed buffers: give them back to the system. */
	malloc_trim(0);
	return 0;
fail_want:
	uapi_body_free(body, len);
	wg_device_free(cur);
	wg_desired_clear(&want);
fail:
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
	time_t now = time(NULL);
	size_t i;

	memset(st, 0, sizeof(*st));
	if (uapi_get_timeout(&dev, u->sock, 300) != 0) {
		st->health = PHAROS__V1__HEALTH_STATE__HEALTH_STATE_DOWN;
		snprintf(st->detail, sizeof(st->detail), "%s: %s", u->ifname, err_last());
		return;
	}
	st->peer_count = (uint32_t)dev->npeers;
	for (i = 0; i < dev->npeers; i++) {
		const struct wg_peer *p = &dev->peers[i];
		int64_t t = p->last_handshake_sec * 1000000000 + p->last_handshake_nsec;
		if (p->last_handshake_sec > 0 && now - p->last_handshake_sec < ACTIVE_WINDOW_S)
			st->peers_active++;
		if (t > st->latest_handshake_nanos)
			st->latest_handshake_nanos = t;
		st->rx_bytes += p->rx_bytes;
		st->tx_bytes += p->tx_bytes;
	}
	wg_device_free(dev);
	st->health = u->detail[0] ? PHAROS__V1__HEALTH_STATE__HEALTH_STATE_DEGRADED :
	    PHAROS__V1__HEALTH_STATE__HEALTH_STATE_UP;
	snprintf(st->detail, sizeof(st->detail), "%s", u->detail);
}

static int
seen_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

static void
emit(struct uapi_dp *u, int kind, const uint8_t *key, const char *ep, int64_t hs,
    const char *detail)
{
	if (u->dp.on_event != NULL)
		u->dp.on_event(u->dp.event_arg, kind, key, ep, hs, detail);
}

/*
 * A peer is "up" while its last handshake is younger than 180 s. Compare with the last
 * check (both sorted by key) and report the changes.
 */
static void
scan_handshakes(struct uapi_dp *u, const struct wg_device *dev)
{
	struct hs_seen *now;
	time_t t = time(NULL);
	size_t i, j = 0;

	if ((now = calloc(dev->npeers + 1, sizeof(*now))) == NULL)
		return;
	for (i = 0; i < dev->npeers; i++) {
		memcpy(now[i].key, dev->peers[i].public_key, 32);
		now[i].active = dev->peers[i].last_handshake_sec > 0 &&
		    t - dev->peers[i].last_handshake_sec < ACTIVE_WINDOW_S;
	}
	qsort(now, dev->npeers, sizeof(*now), seen_cmp);
	for (i = 0; i < dev->npeers; i++) {
		const struct wg_peer *p = NULL;
		bool was = false;
		size_t k;

		while (j < u->nseen && memcmp(u->seen[j].key, now[i].key, 32) < 0)
			j++;
		if (j < u->nseen && memcmp(u->seen[j].key, now[i].key, 32) == 0)
			was = u->seen[j].active;
		if (was == now[i].active)
			continue;
		for (k = 0; k < dev->npeers; k++)
			if (memcmp(dev->peers[k].public_key, now[i].key, 32) == 0) {
				p = &dev->peers[k];
				break;
			}
		emit(u, now[i].active ? PHAROS__V1__EVENT_KIND__EVENT_KIND_HANDSHAKE_UP :
		    PHAROS__V1__EVENT_KIND__EVENT_KIND_HANDSHAKE_DOWN, now[i].key,
		    p != NULL ? p->endpoint : "", p != NULL ? p->last_handshake_sec * 1000000000 +
		    p->last_handshake_nsec : 0, NULL);
	}
	free(u->seen);
	u->seen = now;
	u->nseen = dev->npeers;
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
	const Pharos__V1__NodeConfig *cfg = u->current(u->current_arg);
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
	} else if (uapi_apply(dp, cfg, &res, why, whylen) != 0) {
		return ERR_SYS;
	}
	emit(u, PHAROS__V1__EVENT_KIND__EVENT_KIND_BACKEND_RESTARTED, NULL, NULL, 0, reason);
	return 0;
}

static int
uapi_peers(struct dataplane *dp, struct wg_device **out)
{
	struct uapi_dp *u = dp->ctx;

	return uapi_get_timeout(out, u->sock, 1000);
}

/*
 * Every second: reap; read the device once, for liveness and handshake changes; if the
 * implementation is gone, restart it and re-apply.
 */
static void
check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct uapi_dp *u = arg;
	struct timeval tv = { CHECK_INTERVAL_MS / 1000, (CHECK_INTERVAL_MS % 1000) * 1000 };
	struct dp_result res;
	char why[256];

	const Pharos__V1__NodeConfig *cfg;

	(void)fd;
	(void)what;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	cfg = u->current(u->current_arg);
	if (u->up && cfg != NULL) {
		struct wg_device *dev = NULL;
		if (uapi_get_timeout(&dev, u->sock, 300) == 0) {
			scan_handshakes(u, dev);
			wg_device_free(dev);
		} else {
			u->restarts++;
			log_warnx("buoy: %s interface=%s is gone; restarting it (restart %u)",
			    u->impl, u->ifname, u->restarts);
			if (uapi_apply(&u->dp, cfg, &res, why, sizeof(why)) != 0) {
				log_warnx("buoy: re-applying after the restart failed: %s", why);
				emit(u, PHAROS__V1__EVENT_KIND__EVENT_KIND_DATA_PLANE_ERROR, NULL, NULL,
				    0, why);
			} else {
				log_info("buoy: %s restarted and the running config re-applied",
				    u->impl);
				emit(u, PHAROS__V1__EVENT_KIND__EVENT_KIND_BACKEND_RESTARTED, NULL,
				    NULL, 0, "the process was gone");
			}
		}
	}
	evtimer_add(u->check, &tv);
}

static void
uapi_free(struct dataplane *dp)
{
	struct uapi_dp *u = dp->ctx;

	if (u->check != NULL)
		event_free(u->check);
	free(u->netkey);
	free(u->seen);
	sodium_memzero(u->priv, sizeof(u->priv));
	free(u);
}

struct dataplane *
dp_uapi_new(struct event_base *base, const char *dir, const char *ifname, const char *impl,
    const Pharos__V1__NodeConfig *(*current)(void *), void *arg)
{
	struct uapi_dp *u;
	struct timeval tv = { 1, 0 };
	char path[1100], *text = NULL;
	size_t len;
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
	snprintf(path, sizeof(path), "%s/%s", dir, WG_KEY_FILE);
	if (fs_read_file(&text, &len, path, 256) == 0)
		while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
			text[--len] = '\0';
	if (text == NULL || uapi_key_from_base64(u->priv, text) != 0) {
		err_set("%s: no WireGuard key (run buoy keygen)", path);
		if (text != NULL)
			sodium_memzero(text, len);
		free(text);
		free(u);
		return NULL;
	}
	sodium_memzero(text, len);
	free(text);
	u->dp.name = "uapi";
	u->dp.apply = uapi_apply;
	u->dp.apply_delta = uapi_delta;
	u->dp.status = uapi_status;
	u->dp.peers = uapi_peers;
	u->dp.restart = uapi_restart;
	u->dp.free = uapi_free;
	u->dp.ctx = u;
	if ((u->check = evtimer_new(base, check_cb, u)) != NULL)
		evtimer_add(u->check, &tv);
	return &u->dp;
}
