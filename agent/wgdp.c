/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>

#include <malloc.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "fsutil.h"
#include "keys.h"
#include "wgdp.h"
#include "wgproc.h"

int
wgdp_load_key(uint8_t priv[32], const char *dir)
{
	char path[1100], *text = NULL;
	size_t len;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, WG_KEY_FILE);
	if (fs_read_file(&text, &len, path, 256) == 0)
		while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
			text[--len] = '\0';
	rc = text != NULL ? uapi_key_from_base64(priv, text) : ERR_NOTFOUND;
	if (text != NULL) {
		sodium_memzero(text, len);
		free(text);
	}
	if (rc != 0) {
		err_set("%s: no WireGuard key (run buoy keygen)", path);
		return ERR_NOTFOUND;
	}
	return 0;
}

int
wgdp_desired(struct wg_desired *d, const uint8_t priv[32], bool awg,
    const Pharos__V1__NodeConfig *cfg, const struct peerset *peers)
{
	size_t i;

	memset(d, 0, sizeof(*d));
	memcpy(d->private_key, priv, 32);
	d->listen_port = cfg->amneziawg != NULL ? (int)cfg->amneziawg->listen_port : 0;
	if (awg && cfg->amneziawg != NULL && cfg->amneziawg->obfuscation != NULL) {
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
			if (is[i] != NULL && is[i][0] != '\0' && (d->i[i] = strdup(is[i])) == NULL) {
				err_set("out of memory");
				return ERR_NOMEM;
			}
	}
	d->peers = peers;	/* borrowed: sorted, unique and canonical already */
	return 0;
}

void
wgdp_status(struct dp_status *st, const struct wg_device *dev, const char *detail)
{
	time_t now = time(NULL);
	size_t i;

	memset(st, 0, sizeof(*st));
	st->peer_count = (uint32_t)dev->npeers;
	for (i = 0; i < dev->npeers; i++) {
		const struct wg_peer *p = &dev->peers[i];
		int64_t t = p->last_handshake_sec * 1000000000 + p->last_handshake_nsec;
		if (p->last_handshake_sec > 0 && now - p->last_handshake_sec < WGDP_ACTIVE_WINDOW_S)
			st->peers_active++;
		if (t > st->latest_handshake_nanos)
			st->latest_handshake_nanos = t;
		st->rx_bytes += p->rx_bytes;
		st->tx_bytes += p->tx_bytes;
	}
	st->health = detail[0] ? PHAROS__V1__HEALTH_STATE__HEALTH_STATE_DEGRADED :
	    PHAROS__V1__HEALTH_STATE__HEALTH_STATE_UP;
	snprintf(st->detail, sizeof(st->detail), "%s", detail);
}

#define TRIM_AFTER_PEERS	1000

void
wgdp_after_read(size_t npeers)
{
	if (npeers >= TRIM_AFTER_PEERS)
		malloc_trim(0);
}

void
wgdp_emit(struct dataplane *dp, int kind, const uint8_t *key, const char *endpoint,
    int64_t handshake_nanos, const char *detail)
{
	if (dp->on_event != NULL)
		dp->on_event(dp->event_arg, kind, key, endpoint, handshake_nanos, detail);
}

static int
key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

static int
peer_ptr_cmp(const void *a, const void *b)
{
	const struct wg_peer *const *pa = a, *const *pb = b;

	return memcmp((*pa)->public_key, (*pb)->public_key, 32);
}

/*
 * Only the peers that are up are remembered (sorted keys): on a node with thousands of
 * configured devices, a few are connected at a time.
 */
void
wgdp_scan(struct wgdp_hs *hs, const struct wg_device *dev, struct dataplane *dp)
{
	const struct wg_peer **byk;
	uint8_t *up;
	time_t t = time(NULL);
	size_t i, j = 0, n = 0;

	if ((byk = calloc(dev->npeers + 1, sizeof(*byk))) == NULL)
		return;
	for (i = 0; i < dev->npeers; i++)
		byk[i] = &dev->peers[i];
	qsort(byk, dev->npeers, sizeof(*byk), peer_ptr_cmp);
	for (i = 0; i < dev->npeers; i++)
		if (byk[i]->last_handshake_sec > 0 &&
		    t - byk[i]->last_handshake_sec < WGDP_ACTIVE_WINDOW_S)
			n++;
	if ((up = malloc(32 * (n + 1))) == NULL) {
		free(byk);
		return;
	}
	n = 0;
	for (i = 0; i < dev->npeers; i++) {
		const struct wg_peer *p = byk[i];
		bool now = p->last_handshake_sec > 0 && t - p->last_handshake_sec <
		    WGDP_ACTIVE_WINDOW_S, was;

		while (j < hs->n && key_cmp(hs->up + 32 * j, p->public_key) < 0)
			j++;
		was = j < hs->n && key_cmp(hs->up + 32 * j, p->public_key) == 0;
		if (now)
			memcpy(up + 32 * n++, p->public_key, 32);
		if (was == now)
			continue;
		wgdp_emit(dp, now ? PHAROS__V1__EVENT_KIND__EVENT_KIND_HANDSHAKE_UP :
		    PHAROS__V1__EVENT_KIND__EVENT_KIND_HANDSHAKE_DOWN, p->public_key, p->endpoint,
		    p->last_handshake_sec * 1000000000 + p->last_handshake_nsec, NULL);
	}
	free(byk);
	free(hs->up);
	hs->up = up;
	hs->n = n;
	hs->peers = dev->npeers;
}

bool
wgdp_scan_due(struct wgdp_hs *hs)
{
	size_t every = hs->peers / WGDP_SCAN_PEERS;

	if (every > WGDP_SCAN_MAX_S * 1000 / WGDP_CHECK_MS)
		every = WGDP_SCAN_MAX_S * 1000 / WGDP_CHECK_MS;
	if (++hs->skipped < every)
		return false;
	hs->skipped = 0;
	return true;
}

void
wgdp_hs_free(struct wgdp_hs *hs)
{
	free(hs->up);
	memset(hs, 0, sizeof(*hs));
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

int
wgdp_netcfg(char **netkey, const char *ifname, const Pharos__V1__NodeConfig *cfg,
    bool force)
{
	const Pharos__V1__AwgInterface *ai = cfg->amneziawg;
	bool exit_role = has_role(cfg, PHAROS__V1__ROLE__ROLE_EXIT);
	char *key = NULL;
	size_t klen = 0, i;
	FILE *kf;
	int rc;

	/* Addresses, MTU and role as one string; unchanged means nothing to fork. */
	if ((kf = open_memstream(&key, &klen)) == NULL) {
		err_set("out of memory");
		return ERR_NOMEM;
	}
	fprintf(kf, "%d %u", exit_role, ai != NULL ? ai->mtu : 0);
	for (i = 0; ai != NULL && i < ai->n_addresses; i++)
		fprintf(kf, " %s", ai->addresses[i]);
	if (fclose(kf) != 0 || key == NULL) {
		free(key);
		err_set("out of memory");
		return ERR_NOMEM;
	}
	if (!force && *netkey != NULL && strcmp(*netkey, key) == 0) {
		free(key);
		return 0;
	}
	rc = netcfg_apply(ifname, ai != NULL ? (const char *const *)ai->addresses : NULL,
	    ai != NULL ? ai->n_addresses : 0, ai != NULL ? (int)ai->mtu : 0, true);
	if (rc == 0 && exit_role)
		rc = netcfg_forwarding(true);
	if (rc == 0)
		rc = netcfg_masquerade("pharos", ifname, exit_role);
	if (rc != 0) {
		free(key);
		return rc;
	}
	free(*netkey);
	*netkey = key;
	return 0;
}
