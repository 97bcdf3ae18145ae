/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "none" data plane: accepts every config and configures nothing (control-plane
 * benchmarks only). It remembers the peers' public keys, so GetHandshakes lists what a
 * real interface would hold and the controller's drift sweep sees no drift.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane.h"
#include "err.h"
#include "uapi.h"

struct none {
	uint8_t		*keys;		/* sorted, 32 bytes each */
	size_t		 n, cap;
};

static int
cmp_key(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

static bool
has_key(const struct none *n, const uint8_t *k)
{
	return n->n > 0 && bsearch(k, n->keys, n->n, 32, cmp_key) != NULL;
}

static int
reserve(struct none *n, size_t want)
{
	uint8_t *p;

	if (want <= n->cap)
		return 0;
	if ((p = realloc(n->keys, want * 32)) == NULL) {
		err_set("out of memory");
		return -1;
	}
	n->keys = p;
	n->cap = want;
	return 0;
}

static int
none_apply(struct dataplane *dp, const Pharos__V1__NodeConfig *cfg,
    const struct peerset *peers, void (*busy)(void *), void *busy_arg, struct dp_result *res,
    char *why, size_t whylen)
{
	struct none *n = dp->ctx;
	uint8_t *old = n->keys;
	size_t oldn = n->n, i, k = 0;

	memset(res, 0, sizeof(*res));
	n->keys = NULL;
	n->n = n->cap = 0;
	(void)cfg;
	if (busy != NULL)
		busy(busy_arg);
	if (reserve(n, (peers != NULL ? peers->n : 0) + 1) != 0) {
		n->keys = old;
		n->n = n->cap = oldn;
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	for (i = 0; peers != NULL && i < peers->n; i++)
		memcpy(n->keys + 32 * k++, peers->v[i].key, 32);	/* sorted already */
	n->n = k;
	for (i = 0; i < k; i++)
		if (oldn == 0 || bsearch(n->keys + 32 * i, old, oldn, 32, cmp_key) == NULL)
			res->peers_added++;
	res->peers_removed = (uint32_t)(oldn + res->peers_added - k);
	free(old);
	return 0;
}

static int
none_delta(struct dataplane *dp, const Pharos__V1__PeerDelta *d, struct dp_result *res,
    char *why, size_t whylen)
{
	struct none *n = dp->ctx;
	size_t i, j, k;

	memset(res, 0, sizeof(*res));
	if (reserve(n, n->n + d->n_add + 1) != 0) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	for (i = 0; i < d->n_add; i++)
		if (d->add[i]->public_key.len == 32 && !has_key(n, d->add[i]->public_key.data)) {
			memcpy(n->keys + 32 * n->n++, d->add[i]->public_key.data, 32);
			qsort(n->keys, n->n, 32, cmp_key);
			res->peers_added++;
		}
	for (i = 0; i < d->n_remove; i++) {
		uint8_t *at;

		if (d->remove[i].len != 32 || n->n == 0 ||
		    (at = bsearch(d->remove[i].data, n->keys, n->n, 32, cmp_key)) == NULL)
			continue;
		j = (size_t)(at - n->keys) / 32;
		for (k = j; k + 1 < n->n; k++)
			memcpy(n->keys + 32 * k, n->keys + 32 * (k + 1), 32);
		n->n--;
		res->peers_removed++;
	}
	return 0;
}

static void
none_status(struct dataplane *dp, struct dp_status *st)
{
	struct none *n = dp->ctx;

	memset(st, 0, sizeof(*st));
	st->peer_count = (uint32_t)n->n;
	st->health = PHAROS__V1__HEALTH_STATE__HEALTH_STATE_DEGRADED;
	strcpy(st->detail, "data plane 'none': config recorded, nothing configured");
}

/* The recorded peers, never with a handshake. */
static int
none_peers(struct dataplane *dp, struct wg_device **out)
{
	struct none *n = dp->ctx;
	struct wg_device *dev;
	size_t i;

	*out = NULL;
	if (n->n == 0)
		return 0;
	if ((dev = calloc(1, sizeof(*dev))) == NULL ||
	    (dev->peers = calloc(n->n, sizeof(*dev->peers))) == NULL) {
		free(dev);
		err_set("out of memory");
		return -1;
	}
	for (i = 0; i < n->n; i++)
		memcpy(dev->peers[i].public_key, n->keys + 32 * i, 32);
	dev->npeers = n->n;
	*out = dev;
	return 0;
}

static void
none_free(struct dataplane *dp)
{
	struct none *n = dp->ctx;

	if (n != NULL)
		free(n->keys);
	free(dp->ctx);
	free(dp);
}

struct dataplane *
dp_none_new(void)
{
	struct dataplane *dp = calloc(1, sizeof(*dp));

	if (dp == NULL || (dp->ctx = calloc(1, sizeof(struct none))) == NULL) {
		free(dp);
		return NULL;
	}
	dp->name = "none";
	dp->apply = none_apply;
	dp->apply_delta = none_delta;
	dp->status = none_status;
	dp->peers = none_peers;
	dp->free = none_free;
	return dp;
}
