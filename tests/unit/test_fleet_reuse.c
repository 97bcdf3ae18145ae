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
/* a key the steps move between users; MOVED_RE finds its line */
#define MOVED	"MOVEDkeyMOVEDkeyMOVEDkeyMOVEDkeyMOVEDkey000="
#define MOVED_RE "MOVEDkey"

static const struct step {
	const char	*what;
	const char	*sh;
	int		 reuse;		/* at least this many files reused */
	int		 checked;	/* the user rules read at most this many users (0: any) */
} steps[] = {
	{ "a device added", "printf '  - name: t1\\n    public_key: %s\\n' " KEY
	    " >>users/alice.yaml", 8, 0 },
	{ "a user added", "printf 'email: \"e@example.com\"\\ndevices:\\n  - name: p\\n"
	    "    public_key: %s\\n' " KEY " >users/erin.yaml", 9, 0 },
	{ "a user removed", "git rm -q users/bob.yaml", 8, 0 },
	{ "a file broken", "printf 'devices: [\\n' >>users/carol.yaml", 8, 0 },
	{ "an unrelated commit", "echo x >>README.md", 8, 0 },
	{ "the file fixed", "git checkout -q HEAD~2 -- users/carol.yaml", 8, 0 },
	{ "a warning (unknown key)", "printf 'colour: blue\\n' >>nodes/ams-2.yaml", 8, 0 },
	{ "fleet.yaml changed", "printf '# note\\n' >>fleet.yaml", 8, 0 },
	{ "a file renamed", "git mv users/dave.yaml users/dave2.yaml", 8, 0 },
	{ "an error in fleet.yaml", "printf 'bogus: 1\\n' >>fleet.yaml", 8, 0 },
	{ "fleet.yaml fixed", "git checkout -q HEAD~2 -- fleet.yaml", 8, 0 },
	{ "a folder in users/", "mkdir users/sub && cp users/alice.yaml users/sub/", 8, 0 },
	/*
	 * The user rules from the previous validation's index (schema/validate.c): a
	 * one-user change reads that user only, a problem (or a fleet that had one) gets the
	 * full check, and the diagnostics are the full load's either way.
	 */
	{ "another device", "printf '  - name: t2\\n    public_key: %s\\n' " KEY
	    " >>users/erin.yaml", 8, 1 },
	{ "a key another user has", "printf '  - name: dup\\n    public_key: \"%s\"\\n' "
	    "\"$(grep -m1 public_key users/alice.yaml | cut -d'\"' -f2)\" >>users/erin.yaml",
	    8, 0 },
	{ "the duplicate key removed", "git checkout -q HEAD~1 -- users/erin.yaml", 8, 0 },
	{ "an address", "printf '    address: \"10.80.1.21\"\\n' >>users/alice.yaml", 8, 1 },
	{ "the address on another user too", "printf '    address: \"10.80.1.21\"\\n' "
	    ">>users/erin.yaml", 8, 0 },
	{ "the duplicate address removed", "git checkout -q HEAD~1 -- users/erin.yaml", 8, 0 },
	{ "a device with a known key", "printf '  - name: mv\\n    public_key: \"" MOVED
	    "\"\\n' >>users/erin.yaml", 8, 1 },
	{ "the key moved to another user", "sed -i '/name: mv$/d; /" MOVED_RE "/d' "
	    "users/erin.yaml && printf '  - name: mv\\n    public_key: \"" MOVED "\"\\n' "
	    ">>users/alice.yaml", 7, 2 },
	{ "and back", "git checkout -q HEAD~1 -- users/erin.yaml users/alice.yaml", 7, 2 },
	{ "a user's .yml twin", "cp users/erin.yaml users/erin.yml", 8, 0 },
	{ "the twin removed", "git rm -q users/erin.yml", 8, 0 },
	{ "no admin left", "sed -i 's/^role: admin/role: user/' users/alice.yaml", 8, 1 },
	{ "the admin back", "git checkout -q HEAD~1 -- users/alice.yaml", 8, 1 },
	{ "a user removed again", "git rm -q users/erin.yaml", 8, 1 },
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
compare(const char *what, struct one *full, struct one *inc, int reuse, int checked)
{
	T_STREQ(inc->diags, full->diags, "reuse: %s: the same diagnostics", what);
	T_OK(inc->f->nnodes == full->f->nnodes && inc->f->nusers == full->f->nusers &&
	    inc->f->nrelays == full->f->nrelays && inc->f->ndevices == full->f->ndevices &&
	    inc->nerr == full->nerr, "reuse: %s: the same records (%zu users, %zu devices)",
	    what, inc->f->nusers, inc->f->ndevices);
	T_OK(same_configs(inc->ds, full->ds), "reuse: %s: the same node configs", what);
	T_OK((int)inc->f->reused >= reuse, "reuse: %s: %zu files reused (want >= %d)", what,
	    inc->f->reused, reuse);
	if (checked > 0)
		T_OK((int)inc->f->users_checked <= checked && full->f->users_checked ==
		    full->f->nusers, "reuse: %s: the user rules read %zu of %zu users (want <= %d)",
		    what, inc->f->users_checked, inc->f->nusers, checked);
}

/*
 * Random edits of many users, each load compared with a full one: keys and addresses
 * added, removed, moved between users and duplicated (then reverted), so the uniqueness
 * index's probing and deletion see collisions and chains. Seeded: the same run every time.
 */
#define RUSERS	400

struct ruser {
	char	key[2][48];
	int	addr;		/* 0 or the last octets of 10.80.x.y */
	bool	on;
};

static void
fresh_key(char *out)
{
	unsigned char k[32];

	randombytes_buf(k, sizeof(k));
	sodium_bin2base64(out, 48, k, sizeof(k), sodium_base64_VARIANT_ORIGINAL);
}

static int
write_user(const char *dir, int i, const struct ruser *u)
{
	char path[700];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/users/r%03d.yaml", dir, i);
	if (!u->on)
		return unlink(path) == 0 ? 0 : -1;
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	fprintf(fp, "devices:\n  - name: a\n    public_key: \"%s\"\n  - name: b\n"
	    "    public_key: \"%s\"\n", u->key[0], u->key[1]);
	if (u->addr != 0)
		fprintf(fp, "    address: \"10.80.%d.%d\"\n", 2 + u->addr / 200,
		    2 + u->addr % 200);
	return fclose(fp);
}

static void
random_chain(const char *dir, const char *git, struct one *prev)
{
	static struct ruser u[RUSERS];
	int i, step, incremental = 0, invalid = 0;
	unsigned seed = 20261122;

	for (i = 0; i < RUSERS; i++) {
		fresh_key(u[i].key[0]);
		fresh_key(u[i].key[1]);
		u[i].addr = i % 3 == 0 ? i + 1 : 0;
		u[i].on = true;
		if (write_user(dir, i, &u[i]) != 0) {
			T_OK(0, "reuse: random: writing users");
			return;
		}
	}
	for (step = 0; step < 120; step++) {
		int a = rand_r(&seed) % RUSERS, b = rand_r(&seed) % RUSERS, op = rand_r(&seed) % 10;
		bool revert = false;
		struct one full, inc;
		char what[64];

		if (op < 4) {		/* a user's keys (and maybe address) replaced */
			fresh_key(u[a].key[rand_r(&seed) % 2]);
			if (op == 0)
				u[a].addr = u[a].addr != 0 ? 0 : a + 1;
			u[a].on = true;
			write_user(dir, a, &u[a]);
		} else if (op < 6) {	/* a user removed or back */
			u[a].on = !u[a].on;
			write_user(dir, a, &u[a]);
		} else if (op < 8 && a != b && u[a].on && u[b].on) {
			/* a key (or the address) moved from b to a in one commit */
			if (op == 6 || u[b].addr == 0) {
				memcpy(u[a].key[0], u[b].key[0], sizeof(u[a].key[0]));
				fresh_key(u[b].key[0]);
			} else {
				u[a].addr = u[b].addr;
				u[b].addr = 0;
			}
			write_user(dir, a, &u[a]);
			write_user(dir, b, &u[b]);
		} else if (a != b && u[a].on && u[b].on) {
			/* a's key or address duplicated onto b, then taken back */
			struct ruser dup = u[b];

			if (op == 8 || u[a].addr == 0)
				memcpy(dup.key[1], u[a].key[0], sizeof(dup.key[1]));
			else
				dup.addr = u[a].addr;
			write_user(dir, b, &dup);
			revert = true;
		}
		snprintf(what, sizeof(what), "random step %d (op %d)", step, op);
		if (sh(dir, "true") != 0 || load_one(&full, git, NULL) != 0 ||
		    load_one(&inc, git, prev->f) != 0) {
			T_OK(0, "reuse: %s", what);
			return;
		}
		one_free(prev);
		T_STREQ(inc.diags, full.diags, "reuse: %s: the same diagnostics", what);
		T_OK(inc.nerr == full.nerr && inc.f->ndevices == full.f->ndevices &&
		    same_configs(inc.ds, full.ds), "reuse: %s: the same records and configs", what);
		if (strstr(full.diags, "is also used by") != NULL)
			invalid++;
		if (inc.f->users_checked < inc.f->nusers)
			incremental++;
		one_free(&full);
		*prev = inc;
		if (revert)
			write_user(dir, b, &u[b]);
	}
	T_OK(incremental >= 60 && invalid >= 5, "reuse: random: %d of 120 loads checked only "
	    "the changed users, %d had a duplicate", incremental, invalid);
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
		compare(steps[i].what, &full, &inc, steps[i].reuse, steps[i].checked);
		if (getenv("REUSE_VERBOSE") != NULL)
			fprintf(stderr, "%s: checked %zu\n%s", steps[i].what, inc.f->users_checked,
			    inc.diags);
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
	random_chain(dir, git, &prev);
	one_free(&prev);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	T_OK(system(cmd) == 0, "reuse: cleaned up");
	T_DONE();
}
