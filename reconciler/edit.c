/* SPDX-License-Identifier: Apache-2.0 */
/* Edits as git commits, with a per-record conflict check (edit.h; docs/DESIGN.md §10). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <git2.h>

#include "diag.h"
#include "edit.h"
#include "err.h"
#include "fleet.h"
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
	if (git_repository_open_bare(&repo, gitdir) != 0) {
		fail(r, gitdir);
		goto out;
	}
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
