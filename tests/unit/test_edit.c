/* SPDX-License-Identifier: Apache-2.0 */
/*
 * edit_apply() (reconciler/edit.c) on a bare repository made with the git CLI from
 * fleet.example: the conflict rule per record, one commit per accepted edit with the admin
 * as author, validation before the branch moves, and two threads editing at once without a
 * lost update (the branch's history is checked with `git log`).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <git2.h>

#include "edit.h"
#include "fleet.h"
#include "t.h"

static char gitdir[600];

static char *
run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
run(const char *fmt, ...)
{
	char cmd[2048], *out = NULL;
	size_t len = 0, n;
	char buf[4096];
	va_list ap;
	FILE *p, *m;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if ((p = popen(cmd, "r")) == NULL || (m = open_memstream(&out, &len)) == NULL)
		return NULL;
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
		fwrite(buf, 1, n, m);
	fclose(m);
	if (pclose(p) != 0) {
		free(out);
		return NULL;
	}
	while (len > 0 && out[len - 1] == '\n')
		out[--len] = '\0';
	return out;
}

static void
head(char out[41])
{
	char *h = run("git --git-dir='%s' rev-parse main", gitdir);

	snprintf(out, 41, "%s", h != NULL ? h : "");
	free(h);
}

static int
commits(void)
{
	char *n = run("git --git-dir='%s' rev-list --count main", gitdir);
	int v = n != NULL ? atoi(n) : -1;

	free(n);
	return v;
}

static const char user_fmt[] =
    "email: \"%s@example.com\"\nrole: user\ndevices:\n  - name: phone\n"
    "    public_key: \"%s\"\n";

static int
put_user(const char *name, const char *base, const char *key, bool create,
    struct edit_result *r)
{
	char path[128], body[512], msg[128];
	struct edit e;

	snprintf(path, sizeof(path), "users/%s.yaml", name);
	snprintf(body, sizeof(body), user_fmt, name, key);
	snprintf(msg, sizeof(msg), "%s user %s\n", create ? "Add" : "Edit", name);
	memset(&e, 0, sizeof(e));
	e.path = path;
	e.content = body;
	e.len = strlen(body);
	e.base = base;
	e.branch = "main";
	e.author_name = "Alice Moreau";
	e.author_email = "alice@example.com";
	e.message = msg;
	e.must_not_exist = create;
	return edit_apply(gitdir, &e, r);
}

/* A distinct valid key per (thread, i): base64 of 32 bytes. */
static void
key_for(int t, int i, char out[45])
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	int k;

	for (k = 0; k < 42; k++)
		out[k] = al[(t * 31 + i * 7 + k * 13 + (k == 0 ? i / 64 : 0)) % 64];
	out[0] = al[t % 64];
	out[1] = al[i % 64];
	out[2] = al[(i / 64) % 64];
	out[42] = 'A';		/* the last character carries 4 bits: a multiple of 16 */
	out[43] = '=';
	out[44] = '\0';
}

struct writer {
	int		 t, n, ok, conflicts, errors;
	char		 user[32];
};

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	int i;

	for (i = 0; i < w->n; i++) {
		struct edit_result r;
		char base[41], key[45];

		head(base);
		key_for(w->t, i, key);
		if (put_user(w->user, base, key, false, &r) != 0)
			w->errors++;
		else if (r.status == EDIT_OK)
			w->ok++;
		else if (r.status == EDIT_CONFLICT)
			w->conflicts++;
		else
			w->errors++;
		edit_result_free(&r);
	}
	return NULL;
}

int
main(void)
{
	char dir[] = "/tmp/pharos-edit.XXXXXX", base0[41], h1[41], h2[41], *s;
	struct edit_result r;
	struct edit e;
	int before, rc;

	if (mkdtemp(dir) == NULL)
		return 1;
	/* Keep libgit2 up for the whole test, as cox does: a full shutdown while another
	 * thread still holds its per-thread error state would leak that state. */
	git_libgit2_init();
	snprintf(gitdir, sizeof(gitdir), "%s/fleet.git", dir);
	s = run("cd '%s' && mkdir w && cp -r \"$OLDPWD\"/fleet.example/. w/ && cd w && "
	    "git init -q -b main && git add -A && git -c user.name=t -c user.email=t@x "
	    "commit -q -m base && git clone -q --bare . ../fleet.git && echo ok", dir);
	T_STREQ(s, "ok", "edit: a bare fleet repository");
	free(s);
	head(base0);

	/* An edit based on the head: one commit, authored by the admin. */
	before = commits();
	rc = put_user("carol", base0, "RgZc4OAeym2WtRqgHdEj+r62Mq5Q6efVb3kk1bMZ0Q0=", false, &r);
	T_OK(rc == 0 && r.status == EDIT_OK && strlen(r.rev) == 40, "edit: accepted (%d: %s)",
	    r.status, r.errors != NULL ? r.errors : "");
	head(h1);
	T_STREQ(h1, r.rev, "edit: the branch points at the new commit");
	T_OK(commits() == before + 1, "edit: exactly one commit");
	s = run("git --git-dir='%s' log -1 --format='%%an <%%ae>|%%s' main", gitdir);
	T_STREQ(s, "Alice Moreau <alice@example.com>|Edit user carol", "edit: author and message");
	free(s);
	edit_result_free(&r);

	/* Based on the old revision, another record: applied on top of the head. */
	rc = put_user("dave", base0, "yy2JCJ9kyCC0cBZc/d8A9p1VNYpOaFPQmY0tO21qy+0=", false, &r);
	T_OK(rc == 0 && r.status == EDIT_OK, "edit: a stale base, another record: accepted");
	s = run("git --git-dir='%s' rev-parse main~1", gitdir);
	T_STREQ(s, h1, "edit: ... on top of the head (nothing lost)");
	free(s);
	head(h2);
	edit_result_free(&r);

	/* Based on the old revision, the same record: 409 with the current value and who. */
	rc = put_user("carol", base0, "RgZc4OAeym2WtRqgHdEj+r62Mq5Q6efVb3kk1bMZ0QA=", false, &r);
	T_OK(rc == 0 && r.status == EDIT_CONFLICT, "edit: a stale base, the same record: conflict");
	T_OK(r.current != NULL && strstr(r.current, "bMZ0Q0=") != NULL,
	    "edit: the conflict carries the current value");
	T_STREQ(r.changed_rev, h1, "edit: ... the commit that changed it");
	T_STREQ(r.changed_by, "Alice Moreau <alice@example.com>", "edit: ... and its author");
	T_STREQ(r.head, h2, "edit: ... and the current revision");
	edit_result_free(&r);
	head(h1);
	T_STREQ(h1, h2, "edit: a conflict commits nothing");

	/* An edit that would make the fleet invalid: refused with path:line:col errors. */
	memset(&e, 0, sizeof(e));
	e.path = "users/dave.yaml";
	e.content = "email: \"not an address\"\ndevices: []\n";
	e.len = strlen(e.content);
	e.base = h2;
	e.branch = "main";
	e.author_name = "A";
	e.author_email = "a@example.com";
	e.message = "bad\n";
	rc = edit_apply(gitdir, &e, &r);
	T_OK(rc == 0 && r.status == EDIT_INVALID && r.errors != NULL &&
	    strstr(r.errors, "users/dave.yaml:1:8: error:") != NULL,
	    "edit: an invalid result is refused with its errors (%s)", r.errors ? r.errors : "");
	edit_result_free(&r);
	head(h1);
	T_STREQ(h1, h2, "edit: ... and the branch did not move");

	/* Create over an existing record; delete a missing one; an unknown base. */
	rc = put_user("bob", h2, "RgZc4OAeym2WtRqgHdEj+r62Mq5Q6efVb3kk1bMZ0QQ=", true, &r);
	T_OK(rc == 0 && r.status == EDIT_CONFLICT && r.current != NULL,
	    "edit: creating a record that exists is a conflict");
	edit_result_free(&r);
	e.path = "users/nobody.yaml";
	e.content = NULL;
	e.must_exist = true;
	rc = edit_apply(gitdir, &e, &r);
	T_OK(rc == 0 && r.status == EDIT_NOT_FOUND, "edit: deleting a missing record: not found");
	edit_result_free(&r);
	e.base = "0123456789012345678901234567890123456789";
	rc = edit_apply(gitdir, &e, &r);
	T_OK(rc == 0 && r.status == EDIT_BAD_BASE, "edit: an unknown base revision");
	edit_result_free(&r);

	/* Delete: one commit without the file. */
	e.path = "users/dave.yaml";
	e.base = h2;
	e.message = "Delete user dave\n";
	rc = edit_apply(gitdir, &e, &r);
	T_OK(rc == 0 && r.status == EDIT_OK, "edit: a delete is accepted");
	s = run("git --git-dir='%s' cat-file -e main:users/dave.yaml 2>/dev/null || echo gone",
	    gitdir);
	T_STREQ(s, "gone", "edit: ... and the file is gone");
	free(s);
	edit_result_free(&r);

	/* Two writers at once, each on its own record, each reading the head first. */
	{
		struct writer w[2] = { { .t = 1, .n = 40 }, { .t = 2, .n = 40 } };
		pthread_t th[2];
		int i, total = 0;

		before = commits();
		snprintf(w[0].user, sizeof(w[0].user), "alice");
		snprintf(w[1].user, sizeof(w[1].user), "bob");
		for (i = 0; i < 2; i++)
			pthread_create(&th[i], NULL, writer_main, &w[i]);
		for (i = 0; i < 2; i++) {
			pthread_join(th[i], NULL);
			total += w[i].ok;
		}
		T_OK(w[0].errors == 0 && w[1].errors == 0, "edit: concurrent writers: no error");
		T_OK(w[0].conflicts == 0 && w[1].conflicts == 0,
		    "edit: concurrent writers on different records: no conflict");
		T_OK(total == 80 && commits() == before + total,
		    "edit: concurrent writers: commits = accepted edits (%d, %d)", total,
		    commits() - before);
		s = run("git --git-dir='%s' show main:users/alice.yaml | grep -c public_key", gitdir);
		T_STREQ(s, "1", "edit: concurrent writers: the records are whole");
		free(s);
		s = run("git --git-dir='%s' fsck --no-progress 2>&1 && echo clean", gitdir);
		T_OK(s != NULL && strstr(s, "clean") != NULL, "edit: git fsck is clean");
		free(s);
	}
	s = run("rm -rf '%s' && echo ok", dir);
	free(s);
	git_libgit2_shutdown();
	T_DONE();
}
