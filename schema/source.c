/* SPDX-License-Identifier: Apache-2.0 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "source.h"
#include "ytree.h"

static const char *const subdirs[] = { "nodes", "relays", "users", NULL };

struct source_reader {
	struct source		*src;
	git_repository		*repo;
	git_odb			*odb;
};

struct source {
	char			*root;
	char			*gitdir;		/* folder prefix for display; "" for "." */
	struct source_entry	*v;
	size_t			 n, cap;
	/* git */
	git_repository		*repo;
	git_tree		*tree;
	git_oid			*oids;		/* parallel to v, for git sources */
	bool			 borrowed;	/* repo is the caller's (source_open_repo) */
	char			 rev[GIT_OID_HEXSZ + 1];
};

enum { BUF_MALLOC = 1, BUF_BLOB = 2, BUF_ODB = 3 };

/* Room for want entries. */
static int
reserve(struct source *s, size_t want)
{
	size_t cap = s->cap ? s->cap : 64;
	struct source_entry *nv;

	if (want <= s->cap)
		return 0;
	while (cap < want)
		cap *= 2;
	if ((nv = realloc(s->v, cap * sizeof(*nv))) == NULL)
		return ERR_NOMEM;
	s->v = nv;
	if (s->repo != NULL) {
		git_oid *no = realloc(s->oids, cap * sizeof(*no));
		if (no == NULL)
			return ERR_NOMEM;
		s->oids = no;
	}
	s->cap = cap;
	return 0;
}

static int
add_entry(struct source *s, const char *rel, enum source_kind kind, size_t size)
{
	if (s->n == s->cap && reserve(s, s->n + 1) != 0)
		return ERR_NOMEM;
	if ((s->v[s->n].rel = strdup(rel)) == NULL)
		return ERR_NOMEM;
	s->v[s->n].kind = kind;
	s->v[s->n].size = size;
	s->n++;
	return 0;
}

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct source_entry *)a)->rel, ((const struct source_entry *)b)->rel);
}

static int
sort_git_entries(struct source *s)
{
	struct { struct source_entry e; git_oid oid; } *tmp;
	size_t i;

	if (s->n < 2)
		return 0;
	/* usually in order already: git sorts a folder's names bytewise, as we do */
	for (i = 1; i < s->n; i++)
		if (strcmp(s->v[i - 1].rel, s->v[i].rel) > 0)
			break;
	if (i == s->n)
		return 0;
	if ((tmp = malloc(s->n * sizeof(*tmp))) == NULL)
		return ERR_NOMEM;
	for (i = 0; i < s->n; i++) {
		tmp[i].e = s->v[i];
		tmp[i].oid = s->oids[i];
	}
	qsort(tmp, s->n, sizeof(*tmp), entry_cmp);
	for (i = 0; i < s->n; i++) {
		s->v[i] = tmp[i].e;
		s->oids[i] = tmp[i].oid;
	}
	free(tmp);
	return 0;
}

void
source_free(struct source *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n; i++)
		free(s->v[i].rel);
	free(s->v);
	free(s->oids);
	free(s->root);
	free(s->gitdir);
	git_tree_free(s->tree);
	if (s->repo != NULL && !s->borrowed) {
		git_repository_free(s->repo);
		git_libgit2_shutdown();
	}
	free(s);
}

static int
scan_dir(struct source *s, const char *dir, const char *sub)
{
	char path[4096], rel[4096];
	struct dirent **names;
	int i, n, rc = 0;

	if (snprintf(path, sizeof(path), "%s/%s", dir, sub) >= (int)sizeof(path)) {
		err_set("%s/%s: path too long", dir, sub);
		return ERR_INVAL;
	}
	if ((n = scandir(path, &names, NULL, alphasort)) < 0) {
		if (errno == ENOENT)
			return 0;
		err_setsys("%s", path);
		return ERR_SYS;
	}
	for (i = 0; i < n; i++) {
		struct stat st;
		const char *name = names[i]->d_name;
		enum source_kind kind = SRC_OTHER;

		if (rc != 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			goto next;
		snprintf(rel, sizeof(rel), "%s/%s", sub, name);
		/* d_type saves an lstat() per file; some file systems do not fill it in. */
		if (names[i]->d_type == DT_REG) {
			kind = SRC_FILE;
		} else if (names[i]->d_type == DT_DIR) {
			kind = SRC_DIR;
		} else if (names[i]->d_type == DT_UNKNOWN) {
			if (snprintf(path, sizeof(path), "%s/%s", dir, rel) >= (int)sizeof(path) ||
			    lstat(path, &st) != 0) {
				err_setsys("%s", path);
				rc = ERR_SYS;
				goto next;
			}
			if (S_ISREG(st.st_mode))
				kind = SRC_FILE;
			else if (S_ISDIR(st.st_mode))
				kind = SRC_DIR;
		}
		rc = add_entry(s, rel, kind, 0);
next:
		free(names[i]);
	}
	free(names);
	return rc;
}

int
source_open_dir(struct source **out, const char *path)
{
	struct source *s;
	struct stat st;
	char *dir;
	size_t i;
	int rc;

	*out = NULL;
	if (stat(path, &st) != 0) {
		err_setsys("%s", path);
		return ERR_SYS;
	}
	if (S_ISDIR(st.st_mode)) {
		dir = strdup(path);
	} else {
		/* The fleet.yaml file itself: the fleet is the folder it is in. */
		const char *slash = strrchr(path, '/');
		const char *base = slash ? slash + 1 : path;
		if (strcmp(base, "fleet.yaml") != 0) {
			err_set("%s: not a folder or a fleet.yaml file", path);
			return ERR_INVAL;
		}
		dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
	}
	if (dir == NULL || (s = calloc(1, sizeof(*s))) == NULL) {
		free(dir);
		return ERR_NOMEM;
	}
	/* Strip trailing slashes; "." shows files as plain relative paths. */
	for (i = strlen(dir); i > 1 && dir[i - 1] == '/'; i--)
		dir[i - 1] = '\0';
	s->root = strcmp(dir, ".") == 0 ? strdup("") : strdup(dir);
	if (s->root == NULL) {
		free(dir);
		source_free(s);
		return ERR_NOMEM;
	}
	{
		char fy[4096];
		snprintf(fy, sizeof(fy), "%s/fleet.yaml", dir);
		if (stat(fy, &st) != 0) {
			if (errno == ENOENT)
				err_set("%s: no fleet.yaml here (is this a fleet repository?)", dir);
			else
				err_setsys("%s", fy);
			free(dir);
			source_free(s);
			return errno == ENOENT ? ERR_NOTFOUND : ERR_SYS;
		}
		if ((rc = add_entry(s, "fleet.yaml", S_ISREG(st.st_mode) ? SRC_FILE : SRC_OTHER,
		    (size_t)st.st_size)) != 0) {
			free(dir);
			source_free(s);
			return rc;
		}
	}
	for (i = 0; subdirs[i] != NULL; i++) {
		if ((rc = scan_dir(s, dir, subdirs[i])) != 0) {
			free(dir);
			source_free(s);
			return rc;
		}
	}
	free(dir);
	/* scandir() already sorted each folder (C locale); sort only if that did not hold. */
	for (i = 1; i < s->n; i++)
		if (strcmp(s->v[i - 1].rel, s->v[i].rel) > 0)
			break;
	if (i < s->n)
		qsort(s->v, s->n, sizeof(*s->v), entry_cmp);
	*out = s;
	return 0;
}

static int
git_fail(const char *what)
{
	const git_error *e = git_error_last();

	err_set("%s: %s", what, e != NULL && e->message != NULL ? e->message : "libgit2 error");
	return ERR_LIB;
}

/*
 * Inside a pre-receive hook the pushed objects are not in the repository yet: git keeps
 * them in a quarantine folder it names in GIT_QUARANTINE_PATH until the hook accepts the
 * push. libgit2 does not read git's environment, so that folder is added as an
 * alternate object store; that is how `cox validate --repo "$GIT_DIR" --rev NEW` sees
 * the pushed revision. Outside hooks the variable is unset and this does nothing.
 */
static int
add_quarantine(git_repository *repo)
{
	const char *q = getenv("GIT_QUARANTINE_PATH");
	git_odb *odb = NULL;
	int rc = 0;

	if (q == NULL || *q == '\0')
		return 0;
	if (git_repository_odb(&odb, repo) != 0 || git_odb_add_disk_alternate(odb, q) != 0)
		rc = git_fail(q);
	git_odb_free(odb);
	return rc;
}

/* List rev's fleet files from s->repo. */
static int
list_git(struct source *s, const char *gitdir, const char *rev)
{
	git_object *obj = NULL;
	const git_tree_entry *te;
	size_t i, j;
	int rc;

	if (git_revparse_single(&obj, s->repo, rev) != 0) {
		rc = git_fail(rev);
		goto fail;
	}
	if (git_object_peel((git_object **)&s->tree, obj, GIT_OBJECT_TREE) != 0) {
		rc = git_fail(rev);
		goto fail;
	}
	{
		git_object *commit = NULL;
		if (git_object_peel(&commit, obj, GIT_OBJECT_COMMIT) == 0)
			git_oid_tostr(s->rev, sizeof(s->rev), git_object_id(commit));
		else
			git_oid_tostr(s->rev, sizeof(s->rev), git_object_id(obj));
		git_object_free(commit);
	}
	git_object_free(obj);
	obj = NULL;
	if ((te = git_tree_entry_byname(s->tree, "fleet.yaml")) == NULL) {
		err_set("%s: revision %s has no fleet.yaml (is this a fleet repository?)", gitdir, rev);
		rc = ERR_NOTFOUND;
		goto fail;
	}
	if ((rc = add_entry(s, "fleet.yaml",
	    git_tree_entry_type(te) == GIT_OBJECT_BLOB &&
	    git_tree_entry_filemode(te) != GIT_FILEMODE_LINK ? SRC_FILE : SRC_OTHER, 0)) != 0)
		goto fail;
	git_oid_cpy(&s->oids[s->n - 1], git_tree_entry_id(te));
	for (i = 0; subdirs[i] != NULL; i++) {
		git_tree *sub = NULL;
		char rel[4096];
		const char *name;
		size_t dlen, nlen;

		te = git_tree_entry_byname(s->tree, subdirs[i]);
		if (te == NULL || git_tree_entry_type(te) != GIT_OBJECT_TREE)
			continue;
		if (git_tree_lookup(&sub, s->repo, git_tree_entry_id(te)) != 0) {
			rc = git_fail(subdirs[i]);
			goto fail;
		}
		if ((rc = reserve(s, s->n + git_tree_entrycount(sub))) != 0) {
			git_tree_free(sub);
			goto fail;
		}
		dlen = strlen(subdirs[i]);
		memcpy(rel, subdirs[i], dlen);
		rel[dlen] = '/';
		for (j = 0; j < git_tree_entrycount(sub); j++) {
			const git_tree_entry *e = git_tree_entry_byindex(sub, j);
			enum source_kind kind = SRC_OTHER;

			if (git_tree_entry_type(e) == GIT_OBJECT_TREE)
				kind = SRC_DIR;
			else if (git_tree_entry_type(e) == GIT_OBJECT_BLOB &&
			    git_tree_entry_filemode(e) != GIT_FILEMODE_LINK)
				kind = SRC_FILE;
			name = git_tree_entry_name(e);
			if ((nlen = strlen(name)) >= sizeof(rel) - dlen - 1)
				nlen = sizeof(rel) - dlen - 2;	/* git allows no such name anyway */
			memcpy(rel + dlen + 1, name, nlen);
			rel[dlen + 1 + nlen] = '\0';
			if ((rc = add_entry(s, rel, kind, 0)) != 0) {
				git_tree_free(sub);
				goto fail;
			}
			git_oid_cpy(&s->oids[s->n - 1], git_tree_entry_id(e));
		}
		git_tree_free(sub);
	}
	/* Tree entries are already in git's order; sort by path like a folder listing. */
	rc = sort_git_entries(s);
fail:
	git_object_free(obj);
	return rc;
}

static struct source *
source_new(const char *gitdir)
{
	struct source *s;

	if ((s = calloc(1, sizeof(*s))) == NULL || (s->root = strdup("")) == NULL ||
	    (s->gitdir = strdup(gitdir)) == NULL) {
		if (s != NULL)
			free(s->root);
		free(s);
		return NULL;
	}
	return s;
}

int
source_open_git(struct source **out, const char *gitdir, const char *rev)
{
	struct source *s;
	int rc;

	*out = NULL;
	if ((s = source_new(gitdir)) == NULL)
		return ERR_NOMEM;
	git_libgit2_init();
	if (git_repository_open_ext(&s->repo, gitdir, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0) {
		rc = git_fail(gitdir);
		git_libgit2_shutdown();
		free(s->root);
		free(s->gitdir);
		free(s);
		return rc;
	}
	if ((rc = add_quarantine(s->repo)) != 0 || (rc = list_git(s, gitdir, rev)) != 0) {
		source_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

int
source_open_repo(struct source **out, git_repository *repo, const char *gitdir, const char *rev)
{
	struct source *s;
	int rc;

	*out = NULL;
	if ((s = source_new(gitdir)) == NULL)
		return ERR_NOMEM;
	s->repo = repo;
	s->borrowed = true;
	if ((rc = list_git(s, gitdir, rev)) != 0) {
		source_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

size_t
source_count(const struct source *s)
{
	return s->n;
}

const struct source_entry *
source_entry(const struct source *s, size_t i)
{
	return &s->v[i];
}

const char *
source_display(const struct source *s, size_t i, char *buf, size_t bufsz)
{
	if (s->root[0] == '\0')
		snprintf(buf, bufsz, "%s", s->v[i].rel);
	else
		snprintf(buf, bufsz, "%s/%s", s->root, s->v[i].rel);
	return buf;
}

const unsigned char *
source_blob_id(const struct source *s, size_t i)
{
	return s->repo != NULL && i < s->n ? s->oids[i].id : NULL;
}

const char *
source_revision(const struct source *s)
{
	return s->rev;
}

static int
read_fd(int fd, const char *path, struct source_buf *out)
{
	struct stat st;
	char *buf;
	size_t len, off = 0;
	ssize_t r;

	if (fstat(fd, &st) != 0) {
		err_setsys("%s", path);
		return ERR_SYS;
	}
	if (st.st_size > YTREE_MAX_FILE) {
		/* Do not read a 100 MB file into memory just to refuse it. */
		out->data = NULL;
		out->len = (size_t)st.st_size;
		return ERR_TOOBIG;
	}
	len = (size_t)st.st_size;
	if ((buf = malloc(len + 1)) == NULL)
		return ERR_NOMEM;
	while (off < len) {
		r = read(fd, buf + off, len - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err_setsys("%s", path);
			free(buf);
			return ERR_SYS;
		}
		if (r == 0)
			break;
		off += (size_t)r;
	}
	buf[off] = '\0';
	out->data = buf;
	out->len = off;
	out->owner = buf;
	out->owner_kind = BUF_MALLOC;
	return 0;
}

int
source_reader_open(struct source_reader **out, struct source *s)
{
	struct source_reader *r;

	*out = NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return ERR_NOMEM;
	r->src = s;
	if (s->borrowed) {
		/* the caller's repository, maybe with objects only in memory (edit.c's
		 * mempack): read through its object database, which is thread-safe */
		if (git_repository_odb(&r->odb, s->repo) != 0) {
			int rc = git_fail(s->gitdir);

			free(r);
			return rc;
		}
	} else if (s->repo != NULL) {
		git_libgit2_init();
		int rc;

		if (git_repository_open_ext(&r->repo, s->gitdir, GIT_REPOSITORY_OPEN_NO_SEARCH,
		    NULL) != 0 || git_repository_odb(&r->odb, r->repo) != 0) {
			rc = git_fail(s->gitdir);
			source_reader_free(r);
			return rc;
		}
		if ((rc = add_quarantine(r->repo)) != 0) {
			source_reader_free(r);
			return rc;
		}
	}
	*out = r;
	return 0;
}

void
source_reader_free(struct source_reader *r)
{
	if (r == NULL)
		return;
	git_odb_free(r->odb);
	if (r->repo != NULL) {
		git_repository_free(r->repo);
		git_libgit2_shutdown();
	}
	free(r);
}

int
source_read(struct source_reader *r, size_t i, struct source_buf *out)
{
	struct source *s = r->src;

	memset(out, 0, sizeof(*out));
	if (s->repo == NULL) {
		char path[4096];
		int fd, rc;

		if (s->root[0] == '\0')
			snprintf(path, sizeof(path), "%s", s->v[i].rel);
		else
			snprintf(path, sizeof(path), "%s/%s", s->root, s->v[i].rel);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
			err_setsys("%s", path);
			return ERR_SYS;
		}
		rc = read_fd(fd, path, out);
		close(fd);
		return rc;
	} else {
		git_blob *blob = NULL;
		git_object_t type;
		size_t len;

		/* Look at the size first: a 100 MB blob is refused without loading it. */
		if (git_odb_read_header(&len, &type, r->odb, &s->oids[i]) != 0)
			return git_fail(s->v[i].rel);
		if (len > YTREE_MAX_FILE) {
			out->len = len;
			return ERR_TOOBIG;
		}
		if (r->repo == NULL) {
			git_odb_object *obj = NULL;

			if (git_odb_read(&obj, r->odb, &s->oids[i]) != 0)
				return git_fail(s->v[i].rel);
			out->len = git_odb_object_size(obj);
			out->data = git_odb_object_data(obj);
			out->owner = obj;
			out->owner_kind = BUF_ODB;
			return 0;
		}
		if (git_blob_lookup(&blob, r->repo, &s->oids[i]) != 0)
			return git_fail(s->v[i].rel);
		out->len = (size_t)git_blob_rawsize(blob);
		out->data = git_blob_rawcontent(blob);
		out->owner = blob;
		out->owner_kind = BUF_BLOB;
		return 0;
	}
}

void
source_buf_release(struct source_buf *b)
{
	if (b->owner_kind == BUF_MALLOC)
		free(b->owner);
	else if (b->owner_kind == BUF_BLOB)
		git_blob_free(b->owner);
	else if (b->owner_kind == BUF_ODB)
		git_odb_object_free(b->owner);
	memset(b, 0, sizeof(*b));
}
