/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fleet_load_reuse() (schema/fleet.c) against fleet_load() on a real git history made with
 * the git CLI: for every revision of a chain of edits (devices added, files added, removed,
 * renamed, broken and fixed, fleet.yaml changed, a warning) the reusing load must give the
 * same diagnostics, the same records and the same node configs as a load from scratch,
 * across the FLEET_REUSE_MAX boundary, with each older fleet freed first (ASan checks the
 * sharing).
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "desired.h"
#include "diag.h"
#include "fleet.h"
#include "ipam.h"
#include "source.h"
#include "t.h"

#define KEY	"\"$(head -c 32 /dev/urandom | base64)\""

static const struct step {
	const char	*what;
	const char	*sh;
	int		 reuse;		/* at least this many files reused */
} steps[] = {
	{ "a device added", "printf '  - name: t1\\n    public_key: %s\\n' " KEY
	    " >>users/alice.yaml", 8 },
	{ "a user added", "printf 'email: \"e@example.com\"\\ndevices:\\n  - name: p\\n"
	    "    public_key: %s\\n' " KEY " >users/erin.yaml", 9 },
	{ "a user removed", "git rm -q users/bob.yaml", 8 },
	{ "a file broken", "printf 'devices: [\\n' >>users/carol.yaml", 8 },
	{ "an unrelated commit", "echo x >>README.md", 8 },
	{ "the file fixed", "git checkout -q HEAD~2 -- users/carol.yaml", 8 },
	{ "a warning (unknown key)", "printf 'colour: blue\\n' >>nodes/ams-2.yaml", 8 },
	{ "fleet.yaml changed", "printf '# note\\n' >>fleet.yaml", 8 },
	{ "a file renamed", "git mv users/dave.yaml users/dave2.yaml", 8 },
	{ "an error in fleet.yaml", "printf 'bogus: 1\\n' >>fleet.yaml", 8 },
	{ "fleet.yaml fixed", "git checkout -q HEAD~2 -- fleet.yaml", 8 },
	{ "a folder in users/", "mkdir users/sub && cp users/alice.yaml users/sub/", 8 },
};

static int
sh(const char *dir, const char *cmd)
{
	char *full;
	int rc;

	if (asprintf(&full, "cd '%s' && { %s; } && git add -A && git -c user.name=t "
	    "-c user.email=t@example.com commit -q --allow-empty -m step", dir, cmd) < 0)
		return -1;
	rc = system(full);
	free(full);
	return rc;
}

struct one {
	struct source	*src;
	struct fleet	*f;
	char		*diags;
	struct desired	*ds;
	size_t		 nerr;
};

static int
load_one(struct one *o, const char *git, const struct fleet *prev)
{
	struct diag d;
	struct ipam *ip = NULL;
	int rc;

	memset(o, 0, sizeof(*o));
	diag_init(&d);
	if ((rc = source_open_git(&o->src, git, "HEAD")) == 0)
		rc = prev != NULL ? fleet_load_reuse(&o->f, o->src, &d, prev) :
		    fleet_load(&o->f, o->src, &d);
	if (rc == 0) {
		fleet_validate(o->f, &d);
		o->nerr = d.nerr;
		if (d.nerr == 0 && (ipam_new(&ip, o->f->eff.tunnel_pool,
		    o->f->network.tunnel_pool6.v) != 0 ||
		    desired_build(&o->ds, o->f, ip, NULL, NULL) != 0))
			rc = -1;
		ipam_free(ip);
		o->diags = diag_text(&d);
	}
	diag_free(&d);
	return rc;
}

static void
one_free(struct one *o)
{
	desired_free(o->ds);
	fleet_free(o->f);
	source_free(o->src);
	free(o->diags);
}

static bool
same_configs(const struct desired *a, const struct desired *b)
{
	size_t i;

	if (a == NULL || b == NULL)
		return a == b;
	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (strcmp(a->nodes[i].name, b->nodes[i].name) != 0 ||
		    memcmp(a->nodes[i].content_hash, b->nodes[i].content_hash, 32) != 0)
			return false;
	return true;
}

static void
compare(const char *what, struct one *full, struct one *inc, int reuse)
{
	T_STREQ(inc->diags, full->diags, "reuse: %s: the same diagnostics", what);
	T_OK(inc->f->nnodes == full->f->nnodes && inc->f->nusers == full->f->nusers &&
	    inc->f->nrelays == full->f->nrelays && inc->f->ndevices == full->f->ndevices &&
	    inc->nerr == full->nerr, "reuse: %s: the same records (%zu users, %zu devices)",
	    what, inc->f->nusers, inc->f->ndevices);
	T_OK(same_configs(inc->ds, full->ds), "reuse: %s: the same node configs", what);
	T_OK((int)inc->f->reused >= reuse, "reuse: %s: %zu files reused (want >= %d)", what,
	    inc->f->reused, reuse);
}

int
main(void)
{
	char dir[] = "/tmp/pharos-reuse.XXXXXX", git[600], cmd[1400];
	struct one prev, full, inc;
	size_t i;
	int k, full_loads = 0;

	if (sodium_init() < 0 || mkdtemp(dir) == NULL)
		return 1;
	snprintf(git, sizeof(git), "%s/.git", dir);
	snprintf(cmd, sizeof(cmd), "cp -r fleet.example/. '%s/' && cd '%s' && git init -q -b main "
	    "&& git add -A && git -c user.name=t -c user.email=t@example.com commit -q -m base",
	    dir, dir);
	T_OK(system(cmd) == 0, "reuse: a git repository of fleet.example");
	T_OK(load_one(&prev, git, NULL) == 0 && prev.f->reused == 0 && prev.nerr == 0,
	    "reuse: the first load is a full one");
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		T_OK(sh(dir, steps[i].sh) == 0, "reuse: step: %s", steps[i].what);
		T_OK(load_one(&full, git, NULL) == 0 && load_one(&inc, git, prev.f) == 0,
		    "reuse: %s: both loads", steps[i].what);
		if (full.f == NULL || inc.f == NULL)
			T_DONE();
		/* The older fleet goes first: the new one must not need it. */
		one_free(&prev);
		compare(steps[i].what, &full, &inc, steps[i].reuse);
		one_free(&full);
		prev = inc;
	}
	/* Past FLEET_REUSE_MAX loads in a chain, a full load drops the old records. */
	for (k = 0; k < FLEET_REUSE_MAX + 2; k++) {
		char what[64];

		snprintf(what, sizeof(what), "chain load %d", k);
		snprintf(cmd, sizeof(cmd), "printf '  - name: c%d\\n    public_key: %%s\\n' " KEY
		    " >>users/carol.yaml", k);
		if (sh(dir, cmd) != 0 || load_one(&full, git, NULL) != 0 ||
		    load_one(&inc, git, prev.f) != 0) {
			T_OK(0, "reuse: %s", what);
			T_DONE();
		}
		one_free(&prev);
		if (inc.f->reused == 0)
			full_loads++;
		T_STREQ(inc.diags, full.diags, "reuse: %s: the same diagnostics", what);
		T_OK(same_configs(inc.ds, full.ds) && inc.f->ndevices == full.f->ndevices,
		    "reuse: %s: the same node configs", what);
		one_free(&full);
		prev = inc;
	}
	T_OK(full_loads == 1, "reuse: one full load in %d chained loads (got %d)",
	    FLEET_REUSE_MAX + 2, full_loads);
	one_free(&prev);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	T_OK(system(cmd) == 0, "reuse: cleaned up");
	T_DONE();
}
