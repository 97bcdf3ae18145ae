/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Edits as git commits (the admin API's writes; docs/DESIGN.md §10). An edit replaces,
 * creates or deletes one record file, based on the revision the editor read. It is refused
 * with a conflict if and only if that file differs between the base and the branch head
 * (git blob ids); otherwise it becomes exactly one commit on top of the head, authored by the
 * admin, validated like a push (the pre-receive rules) before the branch moves, and the
 * branch moves only from the head it was built on (compare-and-swap: a concurrent push or
 * edit makes it start over, never lose an update).
 *
 * Blocking work (libgit2, validation of the whole fleet): call it off the event loop.
 */
#ifndef PHAROS_EDIT_H
#define PHAROS_EDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fleet;
struct git_repository;

struct edit {
	const char	*path;		/* "users/alice.yaml" */
	const char	*content;	/* the new bytes; NULL deletes the file */
	size_t		 len;
	const char	*base;		/* the revision the editor read (If-Match) */
	const char	*branch;	/* "main", or "proposals/<id>" (created from base's head) */
	const char	*onto;		/* for a new proposal branch: the branch it starts from */
	const char	*author_name, *author_email;
	const char	*message;	/* the commit message */
	bool		 must_exist;	/* update/delete: 404 if the file is not at head */
	bool		 must_not_exist;	/* create: a conflict if it is */
	/*
	 * In/out, may be NULL: the last fleet this caller validated. Validation reuses its
	 * unchanged records (fleet_load_reuse) and leaves the new one here.
	 */
	struct fleet	**cache;
	/*
	 * May be NULL: gitdir opened by the caller with edit_repo_open() and kept between its
	 * edits, so libgit2's object cache still holds the trees the last edit parsed. One
	 * thread at a time.
	 */
	struct edit_repo *repo;
};

/*
 * A repository opened for edits. An edit's new objects (the record, the trees on its path,
 * the commit) are written to memory first (libgit2's mempack) and validated from there
 * while a second thread writes the record and trees to disk as loose objects; the commit
 * follows once both are done and the branch moves after it, so a ref never names an
 * object that is not on disk, and a refused edit never writes its commit. <0 with
 * git_error_last().
 */
struct edit_repo;
int	 edit_repo_open(struct edit_repo **out, const char *gitdir);
void	 edit_repo_free(struct edit_repo *);

enum edit_status {
	EDIT_OK,		/* committed: rev is the new head */
	EDIT_CONFLICT,		/* the record changed since base: head, current, changed_* */
	EDIT_NOT_FOUND,		/* must_exist and the file is not at head */
	EDIT_INVALID,		/* the result would not validate: errors */
	EDIT_BAD_BASE,		/* base is not a commit of this repository */
	EDIT_ERROR,		/* I/O or library failure: errors */
};

struct edit_result {
	enum edit_status status;
	char		 rev[41];	/* EDIT_OK: the new commit */
	char		 head[41];	/* the branch head the edit was checked against */
	char		*current;	/* EDIT_CONFLICT: the file at head (NULL: deleted) */
	size_t		 current_len;
	char		 changed_rev[41];	/* the commit that last changed it after base */
	char		*changed_by;	/* its author, "Name <email>" */
	char		*errors;	/* EDIT_INVALID / EDIT_ERROR: text, one per line */
	unsigned	 attempts;	/* compare-and-swap rounds */
};

int	 edit_apply(const char *gitdir, const struct edit *, struct edit_result *);
void	 edit_result_free(struct edit_result *);

/*
 * The file at rev (*out malloc'd, NUL-terminated), 1 if it is not there, <0 on error.
 */
int	 edit_read(const char *gitdir, const char *rev, const char *path, char **out,
	    size_t *len);

/*
 * The unified diff between two revisions (from NULL: the empty tree), malloc'd; NULL on
 * error. On the caller's repository handle: fine on the event loop for one commit.
 */
char	*edit_diff(struct git_repository *, const char *from, const char *to);

/*
 * Proposals: every branch but the applied one — proposals/<id> made by the admin API, or
 * any branch pushed from outside (a forge's pull request). Cheap: refs and a revwalk each.
 */
#define PROPOSAL_PREFIX		"proposals/"
#define PROPOSAL_AUTHORS_MAX	16

struct proposal {
	char		*branch;	/* "proposals/1a2b3c4d5e" or "feature/x" */
	char		 head[41];
	char		 base[41];	/* the merge base with the applied branch */
	size_t		 ahead, behind;	/* commits on the branch / on the applied branch since */
	char		*title;		/* the subject of its oldest commit after base */
	int64_t		 time_unix;	/* its newest commit */
	char		*authors[PROPOSAL_AUTHORS_MAX];	/* distinct emails, oldest first */
	size_t		 nauthors;
};

/* One branch (1 if there is no such branch), or every branch but `into`, by newest first. */
int	 edit_proposal(struct git_repository *, const char *into, const char *branch,
	    struct proposal *out);
int	 edit_proposals(struct git_repository *, const char *into, struct proposal **out,
	    size_t *n);
void	 edit_proposal_clear(struct proposal *);
void	 edit_proposals_free(struct proposal *, size_t n);

/*
 * Merging a proposal into the applied branch: a merge commit (always, so the history says
 * who approved what) of the applied branch's head and the proposal's, built with libgit2's
 * three-way merge, validated and planned against that head (plan_run) — so what is merged is
 * what the current head becomes, not what the branch was based on. With dry_run nothing
 * moves (the review page). Otherwise the applied branch moves only from the head the merge
 * was built on (compare-and-swap; a concurrent push makes it merge and plan again) and a
 * proposals/ branch is deleted.
 */
struct merge {
	const char	*branch, *into;
	const char	*expect;	/* the proposal head the reviewer saw (If-Match) */
	const char	*author_name, *author_email;
	const char	*message;
	bool		 dry_run;
};

enum merge_status {
	MERGE_OK,		/* rev: the merge commit (dry run: a commit no ref points at) */
	MERGE_NOT_FOUND,	/* no such branch */
	MERGE_STALE,		/* the branch head is not expect: head says what it is */
	MERGE_NOTHING,		/* the branch has nothing the applied branch lacks */
	MERGE_CONFLICT,		/* both sides changed the same lines: conflicts lists the files */
	MERGE_INVALID,		/* the merged fleet would not validate: errors */
	MERGE_ERROR,		/* errors */
};

struct merge_result {
	enum merge_status status;
	char		 rev[41];
	char		 head[41];	/* the proposal head */
	char		 into_head[41];	/* the applied head it was merged onto */
	char		*conflicts;	/* paths, one per line */
	char		*errors;
	char		*plan_text, *plan_json;	/* into_head -> rev */
	size_t		 changes;	/* nodes the merge changes */
	unsigned	 attempts;
};

int	 edit_merge(const char *gitdir, const struct merge *, struct merge_result *);
/*
 * Only the plan from one revision to another, into r's plan_text, plan_json and changes:
 * 0 (MERGE_OK), 1 a revision is missing or invalid (MERGE_INVALID, errors), <0 (MERGE_ERROR).
 */
int	 edit_plan(const char *gitdir, const char *from, const char *to, struct merge_result *);
void	 merge_result_free(struct merge_result *);

#endif
