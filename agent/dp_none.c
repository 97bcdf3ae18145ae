/* SPDX-License-Identifier: Apache-2.0 */
/* The "none" data plane: accepts every config, configures nothing (benchmarks only). */
#include <stdlib.h>
#include <string.h>

#include "dataplane.h"

struct none {
	uint32_t	peers;
};

static int
none_apply(struct dataplane *dp, const Pharos__V1__NodeConfig *cfg, struct dp_result *res,
    char *why, size_t whylen)
{
	struct none *n = dp->ctx;

	(void)why;
	(void)whylen;
	memset(res, 0, sizeof(*res));
	if (cfg->n_peers > n->peers)
		res->peers_added = (uint32_t)cfg->n_peers - n->peers;
	else
		res->peers_removed = n->peers - (uint32_t)cfg->n_peers;
	n->peers = (uint32_t)cfg->n_peers;
	return 0;
}

static int
none_delta(struct dataplane *dp, const Pharos__V1__PeerDelta *d, struct dp_result *res,
    char *why, size_t whylen)
{
	struct none *n = dp->ctx;

	(void)why;
	(void)whylen;
	memset(res, 0, sizeof(*res));
	res->peers_added = (uint32_t)d->n_add;
	res->peers_removed = (uint32_t)d->n_remove;
	n->peers += (uint32_t)d->n_add;
	n->peers -= (uint32_t)d->n_remove < n->peers ? (uint32_t)d->n_remove : n->peers;
	return 0;
}

static void
none_status(struct dataplane *dp, struct dp_status *st)
{
	struct none *n = dp->ctx;

	memset(st, 0, sizeof(*st));
	st->peer_count = n->peers;
	st->health = PHAROS__V1__HEALTH_STATE__HEALTH_STATE_DEGRADED;
	strcpy(st->detail, "data plane 'none': config recorded, nothing configured");
}

static int
none_peers(struct dataplane *dp, struct wg_device **out)
{
	(void)dp;
	*out = NULL;
	return 0;
}

static void
none_free(struct dataplane *dp)
{
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
