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

struct fleet;

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
};

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

#endif
