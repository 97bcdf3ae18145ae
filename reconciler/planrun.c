/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plan_run(): two revisions of a fleet repository, loaded, validated and built, and the
 * plan between them (plan.h). Shared by `cox plan` and the admin API's review and history
 * pages, so a pull request comment and the review page say the same thing.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "desired.h"
#include "diag.h"
#include "err.h"
#include "fleet.h"
#include "ipam.h"
#include "plan.h"
#include "source.h"

struct side {
	struct source	*src;
	struct fleet	*fleet;
	struct diag	 d;
	struct desired	*ds;
};

struct plan_run {
	struct side	 b, h;
	struct ipam	*ip, *ip2;
	struct plan	*plan;
};

static void
side_free(struct side *s)
{
	desired_free(s->ds);
	fleet_free(s->fleet);
	diag_free(&s->d);
	source_free(s->src);
}

/* Load and validate one revision. 0, or an ERR_* code with the reason in errs. */
static int
load(struct side *s, const char *gitdir, const char *rev, const char *which, FILE *errs)
{
	int rc;

	diag_init(&s->d);
	if ((rc = source_open_git(&s->src, gitdir, rev)) != 0 ||
	    (rc = fleet_load(&s->fleet, s->src, &s->d)) != 0) {
		if (errs != NULL)
			fprintf(errs, "%s %s: %s\n", which, rev, err_last());
		return rc == ERR_SYS ? rc : ERR_INVAL;
	}
	fleet_validate(s->fleet, &s->d);
	if (s->d.nerr > 0) {
		if (errs != NULL) {
			diag_print(&s->d, errs, DIAG_TEXT, NULL, NULL, NULL);
			if (strcmp(rev, source_revision(s->src)) != 0)
				fprintf(errs, "%s %s (%s) is invalid: %zu error%s\n", which, rev,
				    source_revision(s->src), s->d.nerr, s->d.nerr == 1 ? "" : "s");
			else
				fprintf(errs, "%s %s is invalid: %zu error%s\n", which, rev,
				    s->d.nerr, s->d.nerr == 1 ? "" : "s");
		}
		return ERR_INVAL;
	}
	return 0;
}

static bool
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int
plan_run(struct plan_run **out, const char *gitdir, const char *base, const char *head,
    FILE *errs)
{
	struct plan_run *r;
	int rc;

	*out = NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		err_setsys("plan");
		return ERR_SYS;
	}
	if ((rc = load(&r->b, gitdir, base, "base", errs)) != 0 ||
	    (rc = load(&r->h, gitdir, head, "head", errs)) != 0)
		goto fail;
	/* Base first, then head on the same addresses, unless the pools themselves changed. */
	if ((rc = ipam_new(&r->ip, r->b.fleet->eff.tunnel_pool,
	    r->b.fleet->network.tunnel_pool6.v)) != 0 ||
	    (rc = desired_build(&r->b.ds, r->b.fleet, r->ip, NULL, NULL)) != 0) {
		if (errs != NULL)
			fprintf(errs, "base %s: %s\n", base, err_last());
		goto fail;
	}
	if (!same(r->b.fleet->eff.tunnel_pool, r->h.fleet->eff.tunnel_pool) ||
	    !same(r->b.fleet->network.tunnel_pool6.v, r->h.fleet->network.tunnel_pool6.v)) {
		if ((rc = ipam_new(&r->ip2, r->h.fleet->eff.tunnel_pool,
		    r->h.fleet->network.tunnel_pool6.v)) != 0) {
			if (errs != NULL)
				fprintf(errs, "head %s: %s\n", head, err_last());
			goto fail;
		}
	}
	if ((rc = desired_build_from(&r->h.ds, r->b.ds, r->h.fleet,
	    r->ip2 != NULL ? r->ip2 : r->ip, NULL, NULL)) != 0) {
		if (errs != NULL)
			fprintf(errs, "head %s: %s\n", head, err_last());
		goto fail;
	}
	if ((rc = plan_diff(&r->plan, r->b.ds, r->h.ds, r->b.fleet, r->h.fleet)) != 0) {
		if (errs != NULL)
			fprintf(errs, "%s\n", err_last());
		goto fail;
	}
	plan_set_revisions(r->plan, source_revision(r->b.src), source_revision(r->h.src));
	*out = r;
	return 0;
fail:
	plan_run_free(r);
	return rc;
}

const struct plan *
plan_run_plan(const struct plan_run *r)
{
	return r->plan;
}

const char *
plan_run_base(const struct plan_run *r)
{
	return source_revision(r->b.src);
}

const char *
plan_run_head(const struct plan_run *r)
{
	return source_revision(r->h.src);
}

void
plan_run_free(struct plan_run *r)
{
	if (r == NULL)
		return;
	plan_free(r->plan);
	side_free(&r->h);
	side_free(&r->b);
	ipam_free(r->ip);
	ipam_free(r->ip2);
	free(r);
}
