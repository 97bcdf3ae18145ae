/* SPDX-License-Identifier: Apache-2.0 */
/* Edits as git commits, with a per-record conflict check (edit.h; docs/DESIGN.md §10). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <git2.h>
#include <git2/sys/mempack.h>
#include <git2/sys/odb_backend.h>
#include <pthread.h>

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

/*
 * root with path set to blob (or removed when blob is NULL): the new tree's id. A path one
 * folder deep ("users/alice.yaml", the records) is rebuilt with two tree builders, which
 * copy the 20,000-entry users/ tree of a big fleet once; git_tree_create_updated() takes
 * twice as long on it (docs/BENCHMARKS.md, the admin API). Anything else goes to it.
 */
static int
tree_set(git_repository *repo, git_tree *root, const char *path, const git_oid *blob,
    git_oid *out)
{
	const char *slash = strchr(path, '/');
	const git_tree_entry *te;
	git_treebuilder *rb = NULL, *sb = NULL;
	git_tree *sub = NULL;
	git_oid sub_id;
	char dir[256];
	int rc = -1;

	if (slash == NULL || strchr(slash + 1, '/') != NULL ||
	    (size_t)(slash - path) >= sizeof(dir)) {
		git_tree_update up;

		memset(&up, 0, sizeof(up));
		up.path = path;
		up.action = blob != NULL ? GIT_TREE_UPDATE_UPSERT : GIT_TREE_UPDATE_REMOVE;
		if (blob != NULL)
			git_oid_cpy(&up.id, blob);
		up.filemode = GIT_FILEMODE_BLOB;
		return git_tree_create_updated(out, repo, root, 1, &up);
	}
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	te = git_tree_entry_byname(root, dir);
	if (te != NULL && git_tree_entry_type(te) == GIT_OBJECT_TREE &&
	    git_tree_lookup(&sub, repo, git_tree_entry_id(te)) != 0)
		goto out;
	if (git_treebuilder_new(&sb, repo, sub) != 0 || git_treebuilder_new(&rb, repo, root) != 0)
		goto out;
	if (blob != NULL ? git_treebuilder_insert(NULL, sb, slash + 1, blob,
	    GIT_FILEMODE_BLOB) != 0 : git_treebuilder_remove(sb, slash + 1) != 0)
		goto out;
	/* git has no empty folders: the last record out takes its folder with it */
	if (git_treebuilder_entrycount(sb) == 0)
		rc = te != NULL ? git_treebuilder_remove(rb, dir) : 0;
	else if ((rc = git_treebuilder_write(&sub_id, sb)) == 0)
		rc = git_treebuilder_insert(NULL, rb, dir, &sub_id, GIT_FILEMODE_TREE);
	if (rc == 0)
		rc = git_treebuilder_write(out, rb);
out:
	git_treebuilder_free(sb);
	git_treebuilder_free(rb);
	git_tree_free(sub);
	return rc;
}

struct edit_repo {
	git_repository	*repo;		/* the refs (and what is on disk) */
	git_repository	*mem;		/* the objects: the same, plus mempack, where writes go */
	git_odb_backend	*pack;		/* mem's mempack, emptied after every round */
	git_odb_backend	*loose;		/* the loose objects, written to by the writer thread */
};

void
edit_repo_free(struct edit_repo *er)
{
	if (er == NULL)
		return;
	if (er->loose != NULL)
		er->loose->free(er->loose);
	git_repository_free(er->mem);
	git_repository_free(er->repo);
	free(er);
}

int
edit_repo_open(struct edit_repo **out, const char *gitdir)
{
	struct edit_repo *er;
	git_odb *odb = NULL;
	char dir[4096];
	int rc = -1;

	*out = NULL;
	if ((er = calloc(1, sizeof(*er))) == NULL)
		return -1;
	if (git_repository_open_bare(&er->repo, gitdir) != 0)
		goto out;
	snprintf(dir, sizeof(dir), "%sobjects", git_repository_path(er->repo));
	if (git_odb_open(&odb, dir) != 0 || git_mempack_new(&er->pack) != 0)
		goto out;
	/* ahead of the loose objects (priority 1) and the packs (2): every write lands here */
	if (git_odb_add_backend(odb, er->pack, 1000) != 0) {
		er->pack->free(er->pack);
		er->pack = NULL;
		goto out;
	}
	/* zlib level -1: libgit2's loose default (Z_BEST_SPEED) */
	if (git_repository_wrap_odb(&er->mem, odb) != 0 ||
	    git_odb_backend_loose(&er->loose, dir, -1, 0, 0, 0) != 0)
		goto out;
	rc = 0;
out:
	git_odb_free(odb);
	if (rc != 0) {
		edit_repo_free(er);
		er = NULL;
	}
	*out = er;
	return rc;
}

/* The objects of one edit, read out of the mempack, for the writer thread. */
#define EDIT_MAX_OBJECTS	16

struct persist {
	git_odb_backend	*loose;
	git_odb_object	*obj[EDIT_MAX_OBJECTS];
	size_t		 n;
	int		 rc;
	char		 err[256];
};

/* Straight to the loose backend: the id is known, so it is not hashed again. */
static int
persist_one(git_odb_backend *loose, git_odb_object *o, char *err, size_t errsz)
{
	const git_oid *id = git_odb_object_id(o);

	if (loose->exists(loose, id) ||
	    loose->write(loose, id, git_odb_object_data(o), git_odb_object_size(o),
	    git_odb_object_type(o)) == 0)
		return 0;
	snprintf(err, errsz, "writing an object: %s", git_error_last() != NULL &&
	    git_error_last()->message != NULL ? git_error_last()->message : "libgit2 error");
	return -1;
}

static void *
persist_main(void *arg)
{
	struct persist *p = arg;
	size_t i;

	for (i = 0; i < p->n && p->rc == 0; i++)
		p->rc = persist_one(p->loose, p->obj[i], p->err, sizeof(p->err));
	return NULL;
}

/*
 * Gather the trees on path and its blob (the objects the edit wrote, all in the mempack)
 * for persist_main. 0, or <0 with git_error_last().
 */
static int
persist_gather(struct edit_repo *er, const git_oid *tree_id, const char *path,
    const git_oid *blob, struct persist *p)
{
	git_odb *odb = NULL;
	git_tree *t = NULL;
	git_oid ids[EDIT_MAX_OBJECTS];
	const char *c = path, *slash;
	size_t n = 0, i;
	int rc = -1;

	ids[n++] = *tree_id;
	if (blob != NULL)
		ids[n++] = *blob;
	if (git_tree_lookup(&t, er->mem, tree_id) != 0)
		goto out;
	/* the folders on the path, each a new tree (and a slot left for the commit) */
	while ((slash = strchr(c, '/')) != NULL) {
		char name[256];
		const git_tree_entry *te;
		git_tree *sub = NULL;

		if (n + 1 >= EDIT_MAX_OBJECTS || (size_t)(slash - c) >= sizeof(name)) {
			git_error_set_str(GIT_ERROR_INVALID, "the record's path is too deep");
			goto out;
		}
		memcpy(name, c, (size_t)(slash - c));
		name[slash - c] = '\0';
		if ((te = git_tree_entry_byname(t, name)) == NULL ||
		    git_tree_entry_type(te) != GIT_OBJECT_TREE)
			break;	/* the folder went with its last record */
		ids[n++] = *git_tree_entry_id(te);
		if (git_tree_lookup(&sub, er->mem, git_tree_entry_id(te)) != 0)
			goto out;
		git_tree_free(t);
		t = sub;
		c = slash + 1;
	}
	if (git_repository_odb(&odb, er->mem) != 0)
		goto out;
	/* An object that was already on disk is not in the mempack: read from disk, rewritten
	 * as the same file (libgit2 skips what exists). */
	for (i = 0; i < n; i++)
		if (git_odb_read(&p->obj[p->n++], odb, &ids[i]) != 0)
			goto out;
	p->loose = er->loose;
	rc = 0;
out:
	git_odb_free(odb);
	git_tree_free(t);
	return rc;
}

static void
persist_free(struct persist *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		git_odb_object_free(p->obj[i]);
	p->n = 0;
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
validate(git_repository *repo, const char *gitdir, const git_oid *id, struct fleet **cache,
    struct edit_result *r)
{
	char hex[GIT_OID_HEXSZ + 1];
	struct source *src = NULL;
	struct fleet *f = NULL;
	struct diag d;
	int rc;

	git_oid_tostr(hex, sizeof(hex), id);
	diag_init(&d);
	if ((rc = source_open_repo(&src, repo, gitdir, hex)) != 0 ||
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
round_once(struct edit_repo *er, const char *gitdir, const struct edit *e, struct edit_result *r)
{
	git_repository *repo = er->mem;
	struct persist p;
	pthread_t writer;
	bool writing = false;
	char ref[512];
	git_commit *base = NULL, *head = NULL;
	const git_commit *parents[1];
	git_tree *head_tree = NULL, *new_tree = NULL;
	git_signature *author = NULL, *committer = NULL;
	git_oid base_id, head_id, at_base, at_head, blob, tree_id, commit_id;
	bool hb, hh, fresh = false;
	int rc = -1, vr;

	memset(&p, 0, sizeof(p));
	snprintf(ref, sizeof(ref), "refs/heads/%s", e->branch);
	if (git_reference_name_to_id(&head_id, er->repo, ref) != 0) {
		char onto[512];

		/* A new proposal branch starts from the branch it proposes to change. */
		if (e->onto == NULL) {
			rc = fail(r, ref);
			goto out;
		}
		snprintf(onto, sizeof(onto), "refs/heads/%s", e->onto);
		if (git_reference_name_to_id(&head_id, er->repo, onto) != 0) {
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
	if (e->content != NULL &&
	    git_blob_create_from_buffer(&blob, repo, e->content, e->len) != 0) {
		rc = fail(r, "writing the record");
		goto out;
	}
	if (e->content == NULL && !hh) {	/* nothing to delete: nothing to commit */
		r->status = EDIT_NOT_FOUND;
		rc = 0;
		goto out;
	}
	if (tree_set(repo, head_tree, e->path, e->content != NULL ? &blob : NULL,
	    &tree_id) != 0 || git_tree_lookup(&new_tree, repo, &tree_id) != 0) {
		rc = fail(r, "building the tree");
		goto out;
	}
	/* The trees and the blob to disk on a second thread while this one goes on. */
	if (persist_gather(er, &tree_id, e->path, e->content != NULL ? &blob : NULL, &p) != 0) {
		rc = fail(r, "reading the new objects");
		goto out;
	}
	if (pthread_create(&writer, NULL, persist_main, &p) == 0)
		writing = true;
	else
		persist_main(&p);
	parents[0] = head;
	if (git_signature_now(&author, e->author_name, e->author_email) != 0 ||
	    git_signature_now(&committer, e->author_name, e->author_email) != 0 ||
	    git_commit_create(&commit_id, repo, NULL, author, committer, NULL, e->message,
	    new_tree, 1, parents) != 0) {
		rc = fail(r, "creating the commit");
		goto out;
	}
	/* validated from memory, then the commit joins the rest on disk */
	vr = validate(repo, gitdir, &commit_id, e->cache, r);
	if (writing) {
		pthread_join(writer, NULL);
		writing = false;
	}
	if (vr != 0) {
		rc = vr < 0 ? -1 : 0;
		goto out;
	}
	if (p.rc == 0) {	/* persist_gather left a slot */
		git_odb *odb = NULL;

		if (git_repository_odb(&odb, repo) != 0 ||
		    git_odb_read(&p.obj[p.n], odb, &commit_id) != 0) {
			git_odb_free(odb);
			rc = fail(r, "reading the new commit");
			goto out;
		}
		git_odb_free(odb);
		p.rc = persist_one(er->loose, p.obj[p.n++], p.err, sizeof(p.err));
	}
	if (p.rc != 0) {
		git_error_clear();
		err_set("%s", p.err);
		rc = fail(r, gitdir);
		goto out;
	}
	{
		git_reference *nref = NULL;
		int gr;

		/* Move the branch only from the head this commit is built on. */
		if (fresh)
			gr = git_reference_create(&nref, er->repo, ref, &commit_id, 0, e->message);
		else
			gr = git_reference_create_matching(&nref, er->repo, ref, &commit_id, 1,
			    &head_id, e->message);
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
	if (writing)
		pthread_join(writer, NULL);
	persist_free(&p);
	/* what was kept is on disk now; a refused commit goes with the rest */
	git_mempack_reset(er->pack);
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
	struct edit_repo *repo = NULL;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	git_libgit2_init();
	if (e->repo == NULL && edit_repo_open(&repo, gitdir) != 0) {
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
		edit_repo_free(repo);
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
