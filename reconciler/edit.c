/* SPDX-License-Identifier: Apache-2.0 */
/* Edits as git commits, with a per-record conflict check (edit.h; docs/DESIGN.md §10). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <git2.h>

#include "diag.h"
#include "edit.h"
#include "err.h"
#include "fleet.h"
#include "plan.h"
#include "source.h"

#define EDIT_ROUNDS	16	/* compare-and-swap attempts before giving up */

static int
fail(struct edit_result *r, const char *what)
{
	const git_error *e = git_error_last();

	free(r->errors);
	if (asprintf(&r->errors, "%s: %s\n", what, e != NULL && e->message != NULL ?
	    e->message : err_last()) < 0)
		r->errors = NULL;
	r->status = EDIT_ERROR;
	return -1;
}

/* The blob id of path in commit c's tree; false if there is none. */
static bool
blob_at(git_commit *c, const char *path, git_oid *out)
{
	git_tree *t = NULL;
	git_tree_entry *e = NULL;
	bool ok = false;

	if (c != NULL && git_commit_tree(&t, c) == 0 && git_tree_entry_bypath(&e, t, path) == 0 &&
	    git_tree_entry_type(e) == GIT_OBJECT_BLOB) {
		git_oid_cpy(out, git_tree_entry_id(e));
		ok = true;
	}
	git_tree_entry_free(e);
	git_tree_free(t);
	return ok;
}

static bool
same_blob(bool ha, const git_oid *a, bool hb, const git_oid *b)
{
	return ha == hb && (!ha || git_oid_equal(a, b));
}

/* Copy the blob's bytes, NUL-terminated. */
static int
blob_text(git_repository *repo, const git_oid *id, char **out, size_t *len)
{
	git_blob *b = NULL;
	size_t n;

	if (git_blob_lookup(&b, repo, id) != 0)
		return -1;
	n = (size_t)git_blob_rawsize(b);
	if ((*out = malloc(n + 1)) == NULL) {
		git_blob_free(b);
		return -1;
	}
	memcpy(*out, git_blob_rawcontent(b), n);
	(*out)[n] = '\0';
	*len = n;
	git_blob_free(b);
	return 0;
}

/* The newest commit in (base, head] that changed path, and its author. */
static void
who_changed(git_repository *repo, const git_oid *base, const git_oid *head, const char *path,
    struct edit_result *r)
{
	git_revwalk *w = NULL;
	git_oid id;
	unsigned seen = 0;

	if (git_revwalk_new(&w, repo) != 0 || git_revwalk_push(w, head) != 0)
		goto out;
	git_revwalk_sorting(w, GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME);
	git_revwalk_hide(w, base);
	while (git_revwalk_next(&id, w) == 0 && seen++ < 100000) {
		git_commit *c = NULL, *p = NULL;
		git_oid a, b;
		bool ha, hb, changed;

		if (git_commit_lookup(&c, repo, &id) != 0)
			break;
		ha = blob_at(c, path, &a);
		hb = git_commit_parentcount(c) > 0 && git_commit_parent(&p, c, 0) == 0 &&
		    blob_at(p, path, &b);
		changed = !same_blob(ha, &a, hb, &b);
		if (changed) {
			const git_signature *s = git_commit_author(c);

			git_oid_tostr(r->changed_rev, sizeof(r->changed_rev), &id);
			if (s != NULL && asprintf(&r->changed_by, "%s <%s>", s->name, s->email) < 0)
				r->changed_by = NULL;
		}
		git_commit_free(p);
		git_commit_free(c);
		if (changed)
			break;
	}
out:
	git_revwalk_free(w);
}

/* The pre-receive rules on a commit that no ref points at yet. 0 valid, 1 invalid, <0. */
static int
validate(const char *gitdir, const git_oid *id, struct fleet **cache, struct edit_result *r)
{
	char hex[GIT_OID_HEXSZ + 1];
	struct source *src = NULL;
	struct fleet *f = NULL;
	struct diag d;
	int rc;

	git_oid_tostr(hex, sizeof(hex), id);
	diag_init(&d);
	if ((rc = source_open_git(&src, gitdir, hex)) != 0 ||
	    (rc = fleet_load_reuse(&f, src, &d, cache != NULL ? *cache : NULL)) != 0) {
		free(r->errors);
		if (asprintf(&r->errors, "%s\n", err_last()) < 0)
			r->errors = NULL;
		r->status = EDIT_ERROR;
		rc = -1;
		goto out;
	}
	fleet_validate(f, &d);
	rc = 0;
	if (d.nerr > 0) {
		free(r->errors);
		r->errors = diag_text(&d);
		r->status = EDIT_INVALID;
		rc = 1;
	}
	if (cache != NULL) {
		fleet_free(*cache);
		*cache = f;
		f = NULL;
	}
out:
	fleet_free(f);
	source_free(src);
	diag_free(&d);
	return rc;
}

/* One round: check, build, validate, move the branch. 0 done, 1 the branch moved: again. */
static int
round_once(git_repository *repo, const char *gitdir, const struct edit *e, struct edit_result *r)
{
	char ref[512];
	git_commit *base = NULL, *head = NULL;
	const git_commit *parents[1];
	git_tree *head_tree = NULL, *new_tree = NULL;
	git_signature *author = NULL, *committer = NULL;
	git_oid base_id, head_id, at_base, at_head, blob, tree_id, commit_id;
	bool hb, hh, fresh = false;
	int rc = -1, vr;

	snprintf(ref, sizeof(ref), "refs/heads/%s", e->branch);
	if (git_reference_name_to_id(&head_id, repo, ref) != 0) {
		char onto[512];

		/* A new proposal branch starts from the branch it proposes to change. */
		if (e->onto == NULL) {
			rc = fail(r, ref);
			goto out;
		}
		snprintf(onto, sizeof(onto), "refs/heads/%s", e->onto);
		if (git_reference_name_to_id(&head_id, repo, onto) != 0) {
			rc = fail(r, onto);
			goto out;
		}
		fresh = true;
	}
	git_oid_tostr(r->head, sizeof(r->head), &head_id);
	if (git_commit_lookup(&head, repo, &head_id) != 0 || git_commit_tree(&head_tree, head) != 0) {
		rc = fail(r, "the branch head");
		goto out;
	}
	if (git_oid_fromstr(&base_id, e->base) != 0 || git_commit_lookup(&base, repo, &base_id) != 0) {
		r->status = EDIT_BAD_BASE;
		rc = 0;
		goto out;
	}
	hb = blob_at(base, e->path, &at_base);
	hh = blob_at(head, e->path, &at_head);
	if (!same_blob(hb, &at_base, hh, &at_head)) {
		r->status = EDIT_CONFLICT;
		if (hh && blob_text(repo, &at_head, &r->current, &r->current_len) != 0) {
			rc = fail(r, e->path);
			goto out;
		}
		who_changed(repo, &base_id, &head_id, e->path, r);
		rc = 0;
		goto out;
	}
	if (e->must_exist && !hh) {
		r->status = EDIT_NOT_FOUND;
		rc = 0;
		goto out;
	}
	if (e->must_not_exist && hh) {
		r->status = EDIT_CONFLICT;
		if (blob_text(repo, &at_head, &r->current, &r->current_len) != 0) {
			rc = fail(r, e->path);
			goto out;
		}
		rc = 0;
		goto out;
	}
	{
		git_tree_update up;

		memset(&up, 0, sizeof(up));
		up.path = e->path;
		if (e->content != NULL) {
			if (git_blob_create_from_buffer(&blob, repo, e->content, e->len) != 0) {
				rc = fail(r, "writing the record");
				goto out;
			}
			up.action = GIT_TREE_UPDATE_UPSERT;
			git_oid_cpy(&up.id, &blob);
			up.filemode = GIT_FILEMODE_BLOB;
		} else {
			if (!hh) {	/* nothing to delete: nothing to commit */
				r->status = EDIT_NOT_FOUND;
				rc = 0;
				goto out;
			}
			up.action = GIT_TREE_UPDATE_REMOVE;
		}
		if (git_tree_create_updated(&tree_id, repo, head_tree, 1, &up) != 0 ||
		    git_tree_lookup(&new_tree, repo, &tree_id) != 0) {
			rc = fail(r, "building the tree");
			goto out;
		}
	}
	parents[0] = head;
	if (git_signature_now(&author, e->author_name, e->author_email) != 0 ||
	    git_signature_now(&committer, e->author_name, e->author_email) != 0 ||
	    git_commit_create(&commit_id, repo, NULL, author, committer, NULL, e->message,
	    new_tree, 1, parents) != 0) {
		rc = fail(r, "creating the commit");
		goto out;
	}
	if ((vr = validate(gitdir, &commit_id, e->cache, r)) != 0) {
		rc = vr < 0 ? -1 : 0;
		goto out;
	}
	{
		git_reference *nref = NULL;
		int gr;

		/* Move the branch only from the head this commit is built on. */
		if (fresh)
			gr = git_reference_create(&nref, repo, ref, &commit_id, 0, e->message);
		else
			gr = git_reference_create_matching(&nref, repo, ref, &commit_id, 1, &head_id,
			    e->message);
		git_reference_free(nref);
		if (gr == GIT_EMODIFIED || gr == GIT_ELOCKED || gr == GIT_EEXISTS) {
			rc = 1;
			goto out;
		}
		if (gr != 0) {
			rc = fail(r, ref);
			goto out;
		}
	}
	git_oid_tostr(r->rev, sizeof(r->rev), &commit_id);
	r->status = EDIT_OK;
	rc = 0;
out:
	git_signature_free(author);
	git_signature_free(committer);
	git_tree_free(new_tree);
	git_tree_free(head_tree);
	git_commit_free(head);
	git_commit_free(base);
	return rc;
}

int
edit_apply(const char *gitdir, const struct edit *e, struct edit_result *r)
{
	git_repository *repo = NULL;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	git_libgit2_init();
	if (e->repo == NULL && git_repository_open_bare(&repo, gitdir) != 0) {
		fail(r, gitdir);
		goto out;
	}
	if (e->repo != NULL)
		repo = e->repo;
	for (r->attempts = 1; r->attempts <= EDIT_ROUNDS; r->attempts++) {
		free(r->current);
		free(r->changed_by);
		r->current = r->changed_by = NULL;
		r->changed_rev[0] = '\0';
		if ((rc = round_once(repo, gitdir, e, r)) <= 0)
			break;
	}
	if (rc > 0) {
		err_set("the branch kept moving");
		fail(r, e->branch);
		rc = -1;
	}
out:
	if (repo != e->repo)
		git_repository_free(repo);
	git_libgit2_shutdown();
	return rc;
}

void
edit_result_free(struct edit_result *r)
{
	free(r->current);
	free(r->changed_by);
	free(r->errors);
	memset(r, 0, sizeof(*r));
}

int
edit_read(const char *gitdir, const char *rev, const char *path, char **out, size_t *len)
{
	git_repository *repo = NULL;
	git_object *obj = NULL;
	git_commit *c = NULL;
	git_oid id;
	int rc = -1;

	*out = NULL;
	*len = 0;
	git_libgit2_init();
	if (git_repository_open_bare(&repo, gitdir) != 0 ||
	    git_revparse_single(&obj, repo, rev) != 0 ||
	    git_object_peel((git_object **)&c, obj, GIT_OBJECT_COMMIT) != 0) {
		err_set("%s: %s", rev, git_error_last() != NULL ? git_error_last()->message : "?");
		goto out;
	}
	if (!blob_at(c, path, &id)) {
		rc = 1;
		goto out;
	}
	rc = blob_text(repo, &id, out, len) == 0 ? 0 : -1;
out:
	git_commit_free(c);
	git_object_free(obj);
	git_repository_free(repo);
	git_libgit2_shutdown();
	return rc;
}

/* ---- diffs ---- */

static int
rev_tree(git_repository *repo, const char *rev, git_tree **out)
{
	git_object *o = NULL;
	int rc;

	*out = NULL;
	if (rev == NULL)
		return 0;
	rc = git_revparse_single(&o, repo, rev) == 0 &&
	    git_object_peel((git_object **)out, o, GIT_OBJECT_TREE) == 0 ? 0 : -1;
	git_object_free(o);
	return rc;
}

char *
edit_diff(git_repository *repo, const char *from, const char *to)
{
	git_tree *a = NULL, *b = NULL;
	git_diff *diff = NULL;
	git_buf buf = GIT_BUF_INIT;
	char *out = NULL;

	if (rev_tree(repo, from, &a) == 0 && rev_tree(repo, to, &b) == 0 &&
	    git_diff_tree_to_tree(&diff, repo, a, b, NULL) == 0 &&
	    git_diff_to_buf(&buf, diff, GIT_DIFF_FORMAT_PATCH) == 0)
		out = strndup(buf.ptr != NULL ? buf.ptr : "", buf.size);
	git_buf_dispose(&buf);
	git_diff_free(diff);
	git_tree_free(a);
	git_tree_free(b);
	return out;
}

/* ---- proposals ---- */

void
edit_proposal_clear(struct proposal *p)
{
	size_t i;

	free(p->branch);
	free(p->title);
	for (i = 0; i < p->nauthors; i++)
		free(p->authors[i]);
	memset(p, 0, sizeof(*p));
}

void
edit_proposals_free(struct proposal *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		edit_proposal_clear(&v[i]);
	free(v);
}

/* Fill p for the branch whose head is head_id. */
static int
proposal_fill(git_repository *repo, const char *into, const char *branch,
    const git_oid *head_id, struct proposal *p)
{
	char ref[512];
	git_oid into_id, base_id, id;
	git_revwalk *w = NULL;
	unsigned seen = 0;
	int rc = -1;

	memset(p, 0, sizeof(*p));
	if ((p->branch = strdup(branch)) == NULL)
		return -1;
	git_oid_tostr(p->head, sizeof(p->head), head_id);
	snprintf(ref, sizeof(ref), "refs/heads/%s", into);
	if (git_reference_name_to_id(&into_id, repo, ref) != 0 ||
	    git_merge_base(&base_id, repo, head_id, &into_id) != 0) {
		/* unrelated histories: everything on the branch is new */
		git_oid_cpy(&base_id, head_id);
		p->base[0] = '\0';
	} else {
		git_oid_tostr(p->base, sizeof(p->base), &base_id);
		if (git_graph_ahead_behind(&p->ahead, &p->behind, repo, head_id, &into_id) != 0)
			goto out;
	}
	if (git_revwalk_new(&w, repo) != 0 || git_revwalk_push(w, head_id) != 0)
		goto out;
	git_revwalk_sorting(w, GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME | GIT_SORT_REVERSE);
	if (p->base[0] != '\0')
		git_revwalk_hide(w, &base_id);
	while (git_revwalk_next(&id, w) == 0 && seen++ < 10000) {
		git_commit *c = NULL;
		const git_signature *s;
		size_t i;

		if (git_commit_lookup(&c, repo, &id) != 0)
			goto out;
		if (p->title == NULL && (p->title = strdup(git_commit_summary(c) != NULL ?
		    git_commit_summary(c) : "")) == NULL) {
			git_commit_free(c);
			goto out;
		}
		if (git_commit_time(c) > p->time_unix)
			p->time_unix = git_commit_time(c);
		s = git_commit_author(c);
		for (i = 0; s != NULL && s->email != NULL && i < p->nauthors; i++)
			if (strcasecmp(p->authors[i], s->email) == 0)
				break;
		if (s != NULL && s->email != NULL && i == p->nauthors &&
		    p->nauthors < PROPOSAL_AUTHORS_MAX &&
		    (p->authors[p->nauthors] = strdup(s->email)) != NULL)
			p->nauthors++;
		git_commit_free(c);
	}
	if (p->title == NULL && (p->title = strdup("")) == NULL)
		goto out;
	rc = 0;
out:
	git_revwalk_free(w);
	if (rc != 0)
		edit_proposal_clear(p);
	return rc;
}

int
edit_proposal(git_repository *repo, const char *into, const char *branch, struct proposal *out)
{
	char ref[512];
	git_oid id;

	memset(out, 0, sizeof(*out));
	if (strcmp(branch, into) == 0 || strstr(branch, "..") != NULL ||
	    snprintf(ref, sizeof(ref), "refs/heads/%s", branch) >= (int)sizeof(ref) ||
	    git_reference_name_to_id(&id, repo, ref) != 0)
		return 1;
	return proposal_fill(repo, into, branch, &id, out);
}

static int
proposal_cmp(const void *a, const void *b)
{
	const struct proposal *x = a, *y = b;

	if (x->time_unix != y->time_unix)
		return x->time_unix > y->time_unix ? -1 : 1;
	return strcmp(x->branch, y->branch);
}

int
edit_proposals(git_repository *repo, const char *into, struct proposal **out, size_t *n)
{
	git_branch_iterator *it = NULL;
	git_reference *ref;
	git_branch_t type;
	struct proposal *v = NULL, *nv;
	size_t cap = 0;
	int rc = -1;

	*out = NULL;
	*n = 0;
	if (git_branch_iterator_new(&it, repo, GIT_BRANCH_LOCAL) != 0)
		return -1;
	while (git_branch_next(&ref, &type, it) == 0) {
		const char *name = NULL;
		const git_oid *id = git_reference_target(ref);

		if (git_branch_name(&name, ref) != 0 || id == NULL || strcmp(name, into) == 0) {
			git_reference_free(ref);
			continue;
		}
		if (*n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				git_reference_free(ref);
				goto out;
			}
			v = nv;
		}
		if (proposal_fill(repo, into, name, id, &v[*n]) != 0) {
			git_reference_free(ref);
			goto out;
		}
		(*n)++;
		git_reference_free(ref);
	}
	if (*n > 1)
		qsort(v, *n, sizeof(*v), proposal_cmp);
	*out = v;
	v = NULL;
	rc = 0;
out:
	if (rc != 0) {
		edit_proposals_free(v, *n);
		*n = 0;
	}
	git_branch_iterator_free(it);
	return rc;
}

/* ---- merging ---- */

static int
merge_fail(struct merge_result *r, const char *what)
{
	const git_error *e = git_error_last();

	free(r->errors);
	if (asprintf(&r->errors, "%s: %s\n", what, e != NULL && e->message != NULL ?
	    e->message : err_last()) < 0)
		r->errors = NULL;
	r->status = MERGE_ERROR;
	return -1;
}

/* The conflicting paths of a merge index, one per line. */
static char *
conflict_paths(git_index *idx)
{
	git_index_conflict_iterator *it = NULL;
	const git_index_entry *anc, *ours, *theirs;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	if ((f = open_memstream(&out, &len)) == NULL)
		return NULL;
	if (git_index_conflict_iterator_new(&it, idx) == 0) {
		while (git_index_conflict_next(&anc, &ours, &theirs, it) == 0)
			fprintf(f, "%s\n", ours != NULL ? ours->path : theirs != NULL ?
			    theirs->path : anc != NULL ? anc->path : "?");
		git_index_conflict_iterator_free(it);
	}
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

int
edit_plan(const char *gitdir, const char *from, const char *to, struct merge_result *r)
{
	struct plan_run *pr = NULL;
	char *errs = NULL, *txt = NULL, *js = NULL;
	size_t elen = 0, tlen = 0, jlen = 0;
	FILE *ef, *tf = NULL, *jf = NULL;
	int rc = -1, pc;

	if ((ef = open_memstream(&errs, &elen)) == NULL)
		return merge_fail(r, "planning");
	pc = plan_run(&pr, gitdir, from, to, ef);
	fclose(ef);
	if (pc == ERR_INVAL) {
		free(r->errors);
		r->errors = errs;
		r->status = MERGE_INVALID;
		return 1;
	}
	if (pc != 0) {
		free(r->errors);
		r->errors = errs;
		r->status = MERGE_ERROR;
		return -1;
	}
	free(errs);
	if ((tf = open_memstream(&txt, &tlen)) == NULL || (jf = open_memstream(&js, &jlen)) == NULL ||
	    plan_print(tf, plan_run_plan(pr), PLAN_TEXT) != 0 ||
	    plan_print(jf, plan_run_plan(pr), PLAN_JSON) != 0) {
		merge_fail(r, "printing the plan");
		goto out;
	}
	r->changes = plan_changes(plan_run_plan(pr));
	r->status = MERGE_OK;
	rc = 0;
out:
	if (tf != NULL)
		fclose(tf);
	if (jf != NULL)
		fclose(jf);
	if (rc == 0) {
		r->plan_text = txt;
		r->plan_json = js;
	} else {
		free(txt);
		free(js);
	}
	plan_run_free(pr);
	return rc;
}

/* One round: merge, plan, move. 0 done, 1 the applied branch moved: again. */
static int
merge_once(git_repository *repo, const char *gitdir, const struct merge *m,
    struct merge_result *r)
{
	char ref[512], bref[512];
	git_commit *ours = NULL, *theirs = NULL;
	const git_commit *parents[2];
	git_index *idx = NULL;
	git_tree *tree = NULL;
	git_signature *sig = NULL;
	git_merge_options mo;
	git_oid into_id, head_id, base_id, tree_id, commit_id;
	git_reference *nref = NULL;
	int rc = -1, gr;

	snprintf(ref, sizeof(ref), "refs/heads/%s", m->into);
	if (snprintf(bref, sizeof(bref), "refs/heads/%s", m->branch) >= (int)sizeof(bref) ||
	    strcmp(m->branch, m->into) == 0 ||
	    git_reference_name_to_id(&head_id, repo, bref) != 0) {
		r->status = MERGE_NOT_FOUND;
		return 0;
	}
	git_oid_tostr(r->head, sizeof(r->head), &head_id);
	if (m->expect != NULL && strcmp(m->expect, r->head) != 0) {
		r->status = MERGE_STALE;
		return 0;
	}
	if (git_reference_name_to_id(&into_id, repo, ref) != 0)
		return merge_fail(r, ref);
	git_oid_tostr(r->into_head, sizeof(r->into_head), &into_id);
	if (git_merge_base(&base_id, repo, &head_id, &into_id) == 0 &&
	    git_oid_equal(&base_id, &head_id)) {
		r->status = MERGE_NOTHING;
		return 0;
	}
	git_merge_options_init(&mo, GIT_MERGE_OPTIONS_VERSION);
	if (git_commit_lookup(&ours, repo, &into_id) != 0 ||
	    git_commit_lookup(&theirs, repo, &head_id) != 0) {
		rc = merge_fail(r, "the heads");
		goto out;
	}
	if (git_merge_commits(&idx, repo, ours, theirs, &mo) != 0) {
		rc = merge_fail(r, "merging");
		goto out;
	}
	if (git_index_has_conflicts(idx)) {
		free(r->conflicts);
		r->conflicts = conflict_paths(idx);
		r->status = MERGE_CONFLICT;
		rc = 0;
		goto out;
	}
	parents[0] = ours;
	parents[1] = theirs;
	if (git_index_write_tree_to(&tree_id, idx, repo) != 0 ||
	    git_tree_lookup(&tree, repo, &tree_id) != 0 ||
	    git_signature_now(&sig, m->author_name, m->author_email) != 0 ||
	    git_commit_create(&commit_id, repo, NULL, sig, sig, NULL, m->message, tree, 2,
	    parents) != 0) {
		rc = merge_fail(r, "creating the merge commit");
		goto out;
	}
	git_oid_tostr(r->rev, sizeof(r->rev), &commit_id);
	free(r->plan_text);
	free(r->plan_json);
	r->plan_text = r->plan_json = NULL;
	if ((rc = edit_plan(gitdir, r->into_head, r->rev, r)) != 0) {
		rc = rc > 0 ? 0 : -1;
		goto out;
	}
	if (!m->dry_run) {
		gr = git_reference_create_matching(&nref, repo, ref, &commit_id, 1, &into_id,
		    m->message);
		git_reference_free(nref);
		nref = NULL;
		if (gr == GIT_EMODIFIED || gr == GIT_ELOCKED) {
			rc = 1;
			goto out;
		}
		if (gr != 0) {
			rc = merge_fail(r, ref);
			goto out;
		}
		/* The proposal is merged; ours are deleted if they did not move meanwhile. */
		if (strncmp(m->branch, PROPOSAL_PREFIX, strlen(PROPOSAL_PREFIX)) == 0 &&
		    git_reference_lookup(&nref, repo, bref) == 0 &&
		    git_reference_target(nref) != NULL &&
		    git_oid_equal(git_reference_target(nref), &head_id))
			git_reference_delete(nref);
		git_reference_free(nref);
	}
	r->status = MERGE_OK;
	rc = 0;
out:
	git_signature_free(sig);
	git_tree_free(tree);
	git_index_free(idx);
	git_commit_free(theirs);
	git_commit_free(ours);
	return rc;
}

int
edit_merge(const char *gitdir, const struct merge *m, struct merge_result *r)
{
	git_repository *repo = NULL;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	git_libgit2_init();
	if (git_repository_open_bare(&repo, gitdir) != 0) {
		merge_fail(r, gitdir);
		goto out;
	}
	for (r->attempts = 1; r->attempts <= EDIT_ROUNDS; r->attempts++)
		if ((rc = merge_once(repo, gitdir, m, r)) <= 0)
			break;
	if (rc > 0) {
		err_set("the branch kept moving");
		merge_fail(r, m->into);
		rc = -1;
	}
out:
	git_repository_free(repo);
	git_libgit2_shutdown();
	return rc;
}

void
merge_result_free(struct merge_result *r)
{
	free(r->conflicts);
	free(r->errors);
	free(r->plan_text);
	free(r->plan_json);
	memset(r, 0, sizeof(*r));
}
