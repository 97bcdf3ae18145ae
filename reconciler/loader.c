/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading a revision is blocking work (git objects, YAML, validation, compiling every
 * node's config: ~0.5 s for 100,000 devices), so it runs on one worker thread and the
 * result comes back to the loop through an event (BRIEF decision 10). Only the newest
 * requested revision is kept: a burst of pushes is read once. The worker owns the
 * address pool; new assignments travel back in the result for the loop to persist.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <git2.h>

#include "clock.h"
#include "ctl.h"
#include "desired.h"
#include "diag.h"
#include "err.h"
#include "fleet.h"
#include "ipam.h"
#include "log.h"
#include "source.h"

struct key_lookup {
	const struct node_key	*keys;
	size_t			 n;
};

static bool
lookup_key(void *arg, const char *node, uint8_t out[32])
{
	const struct key_lookup *kl = arg;
	size_t lo = 0, hi = kl->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(node, kl->keys[mid].name);

		if (c == 0) {
			memcpy(out, kl->keys[mid].key, 32);
			return true;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

static int
seed_one(void *arg, const uint8_t key[32], const char *v4, const char *v6)
{
	return ipam_seed(arg, key, v4, v6);
}

/* The pool comes from the revision; a new pool means a fresh pool seeded from state.db. */
static int
pool_for(struct loader *l, const struct fleet *f)
{
	const char *pool4 = f->eff.tunnel_pool != NULL ? f->eff.tunnel_pool : FLEET_DEFAULT_POOL;
	const char *pool6 = f->network.tunnel_pool6.v;
	char want[128];
	struct state *st = NULL;
	int rc;

	snprintf(want, sizeof(want), "%s %s", pool4, pool6 != NULL ? pool6 : "-");
	if (l->ipam != NULL && strcmp(want, l->ipam_pool) == 0)
		return 0;
	ipam_free(l->ipam);
	l->ipam = NULL;
	if (ipam_new(&l->ipam, pool4, pool6) != 0)
		return -1;
	/* Our own connection: SQLite connections are not shared between threads here. */
	if (state_open(&st, l->statedir, STATE_READONLY) != 0)
		goto fail;
	rc = state_addr_each(st, seed_one, l->ipam);
	state_close(st);
	if (rc != 0)
		goto fail;
	ipam_clear_new(l->ipam);
	snprintf(l->ipam_pool, sizeof(l->ipam_pool), "%s", want);
	return 0;
fail:
	ipam_free(l->ipam);
	l->ipam = NULL;
	return -1;
}

static int
collect_addr(void *arg, const uint8_t key[32], const char *v4, const char *v6)
{
	struct load_result *r = arg;
	struct load_addr *a;

	if ((r->naddrs & (r->naddrs - 1)) == 0) {
		size_t cap = r->naddrs == 0 ? 16 : r->naddrs * 2;
		void *p = realloc(r->addrs, cap * sizeof(*r->addrs));

		if (p == NULL)
			return -1;
		r->addrs = p;
	}
	a = &r->addrs[r->naddrs++];
	memcpy(a->key, key, 32);
	snprintf(a->v4, sizeof(a->v4), "%s", v4 != NULL ? v4 : "");
	snprintf(a->v6, sizeof(a->v6), "%s", v6 != NULL ? v6 : "");
	return 0;
}

static void
commit_author(const char *gitdir, const char *rev, char *out, size_t outsz)
{
	git_repository *repo = NULL;
	git_oid oid;
	git_commit *c = NULL;
	const git_signature *sig;

	snprintf(out, outsz, "unknown");
	if (git_repository_open_bare(&repo, gitdir) != 0)
		return;
	if (git_oid_fromstr(&oid, rev) == 0 && git_commit_lookup(&c, repo, &oid) == 0 &&
	    (sig = git_commit_author(c)) != NULL)
		snprintf(out, outsz, "%s <%s>", sig->name, sig->email);
	git_commit_free(c);
	git_repository_free(repo);
}

static struct load_result *
load(struct loader *l, const char *rev, struct node_key *keys, size_t nkeys)
{
	struct load_result *r = calloc(1, sizeof(*r));
	struct key_lookup kl = { keys, nkeys };
	struct diag d;
	int64_t t0 = clock_mono_nanos();

	if (r == NULL)
		return NULL;
	snprintf(r->rev, sizeof(r->rev), "%s", rev);
	commit_author(l->gitdir, rev, r->author, sizeof(r->author));
	diag_init(&d);
	/* Files unchanged since the last revision read keep their decoded records. */
	if (source_open_git(&r->src, l->gitdir, rev) != 0 ||
	    fleet_load_reuse(&r->fleet, r->src, &d, l->prev) != 0) {
		r->io_error = true;
		if (asprintf(&r->errors, "%s: %s\n", rev, err_last()) < 0)
			r->errors = NULL;
		r->nerr = 1;
		goto out;
	}
	r->read_ns = clock_mono_nanos() - t0;
	r->reused = r->fleet->reused;
	fleet_free(l->prev);
	l->prev = fleet_ref(r->fleet);
	fleet_validate(r->fleet, &d);
	r->validate_ns = clock_mono_nanos() - t0 - r->read_ns;
	if (d.nerr > 0) {
		r->nerr = d.nerr;
		r->errors = diag_text(&d);
		goto out;
	}
	/* Configs that come out as the last build's share its bytes. */
	if (pool_for(l, r->fleet) != 0 ||
	    desired_build_from(&r->desired, l->prev_ds, r->fleet, l->ipam, lookup_key,
	    &kl) != 0) {
		r->io_error = true;
		if (asprintf(&r->errors, "%s: building node configs: %s\n", rev, err_last()) < 0)
			r->errors = NULL;
		r->nerr = 1;
		/* The pool may hold half a revision's assignments: start over next time. */
		ipam_free(l->ipam);
		l->ipam = NULL;
		goto out;
	}
	r->build_ns = clock_mono_nanos() - t0 - r->read_ns - r->validate_ns;
	desired_free(l->prev_ds);
	l->prev_ds = desired_ref(r->desired);
	if (ipam_each_new(l->ipam, collect_addr, r) != 0) {
		ipam_free(l->ipam);	/* same: re-seed from what is persisted */
		l->ipam = NULL;
	} else
		ipam_clear_new(l->ipam);
out:
	diag_free(&d);
	r->load_ns = clock_mono_nanos() - t0;
	return r;
}

static void *
worker(void *arg)
{
	struct loader *l = arg;

	pthread_mutex_lock(&l->mu);
	for (;;) {
		char rev[STATE_REV_MAX];
		struct node_key *keys;
		size_t nkeys;
		struct load_result *r;

		while (!l->quit && (!l->have_job || l->done != NULL))
			pthread_cond_wait(&l->cv, &l->mu);
		if (l->quit)
			break;
		memcpy(rev, l->job_rev, sizeof(rev));
		keys = l->job_keys;
		nkeys = l->job_nkeys;
		l->job_keys = NULL;
		l->have_job = false;
		l->busy = true;
		pthread_mutex_unlock(&l->mu);

		r = load(l, rev, keys, nkeys);
		free(keys);
		malloc_trim(0);		/* the parse arenas of this thread */

		pthread_mutex_lock(&l->mu);
		l->busy = false;
		l->done = r;
		if (r == NULL)
			log_warnx("loader: out of memory reading rev=%s", rev);
		else
			event_active(l->ev_done, EV_READ, 0);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

int
loader_start(struct loader *l, struct ctl *c)
{
	snprintf(l->statedir, sizeof(l->statedir), "%s", c->dir);
	snprintf(l->gitdir, sizeof(l->gitdir), "%s", c->gitdir);
	if (pthread_mutex_init(&l->mu, NULL) != 0 || pthread_cond_init(&l->cv, NULL) != 0) {
		err_set("loader: cannot initialise its lock");
		return -1;
	}
	if ((errno = pthread_create(&l->th, NULL, worker, l)) != 0) {
		err_setsys("loader: cannot start its thread");
		return -1;
	}
	l->started = true;
	return 0;
}

void
loader_submit(struct loader *l, const char *rev, const struct node_key *keys, size_t n)
{
	struct node_key *copy = NULL;

	if (n > 0 && (copy = malloc(n * sizeof(*copy))) != NULL)
		memcpy(copy, keys, n * sizeof(*copy));
	pthread_mutex_lock(&l->mu);
	free(l->job_keys);
	l->job_keys = copy;
	l->job_nkeys = copy != NULL ? n : 0;
	snprintf(l->job_rev, sizeof(l->job_rev), "%s", rev);
	l->have_job = true;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

bool
loader_idle(struct loader *l)
{
	bool idle;

	pthread_mutex_lock(&l->mu);
	idle = !l->have_job && !l->busy && l->done == NULL;
	pthread_mutex_unlock(&l->mu);
	return idle;
}

struct load_result *
loader_take(struct loader *l)
{
	struct load_result *r;

	pthread_mutex_lock(&l->mu);
	r = l->done;
	l->done = NULL;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
	return r;
}

void
loader_stop(struct loader *l)
{
	if (!l->started)
		return;
	pthread_mutex_lock(&l->mu);
	l->quit = true;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->th, NULL);
	load_result_free(l->done);
	l->done = NULL;
	free(l->job_keys);
	l->job_keys = NULL;
	ipam_free(l->ipam);
	l->ipam = NULL;
	fleet_free(l->prev);
	l->prev = NULL;
	desired_free(l->prev_ds);
	l->prev_ds = NULL;
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	l->started = false;
}

void
load_result_free(struct load_result *r)
{
	if (r == NULL)
		return;
	desired_free(r->desired);
	fleet_free(r->fleet);
	source_free(r->src);
	free(r->errors);
	free(r->addrs);
	free(r);
}
