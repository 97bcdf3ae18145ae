/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where a fleet's files come from: a working tree on disk, or a revision in a git
 * repository read straight from its objects with libgit2 (no checkout, so the pre-receive
 * hook can validate a pushed revision before any ref moves). Only fleet.yaml and the
 * entries of nodes/, relays/ and users/ are listed, sorted by path.
 */
#ifndef PHAROS_SOURCE_H
#define PHAROS_SOURCE_H

#include <stddef.h>

enum source_kind {
	SRC_FILE,	/* a regular file: read it */
	SRC_DIR,	/* a folder inside nodes/ relays/ users/: not read */
	SRC_OTHER,	/* a symlink, submodule or device: not read */
};

struct source_entry {
	char			*rel;		/* "nodes/ams-1.yaml" */
	enum source_kind	 kind;
	size_t			 size;
};

struct source;

/* The bytes of one file; release with source_buf_release(). */
struct source_buf {
	const char	*data;
	size_t		 len;
	void		*owner;		/* private */
	int		 owner_kind;	/* private */
};

/* path: a folder holding fleet.yaml, or the fleet.yaml file itself. */
int	 source_open_dir(struct source **out, const char *path);
/* gitdir: a bare repository or a work tree; rev: anything git rev-parse takes. */
int	 source_open_git(struct source **out, const char *gitdir, const char *rev);
/*
 * The same from a repository the caller has open (and keeps open longer than the source):
 * the trees read stay in that repository's object cache for its next use.
 */
struct git_repository;
int	 source_open_repo(struct source **out, struct git_repository *repo, const char *gitdir,
	    const char *rev);
void	 source_free(struct source *);
size_t	 source_count(const struct source *);
const struct source_entry *source_entry(const struct source *, size_t i);
/* The path to show the user: the folder given on the command line joined with rel. */
const char *source_display(const struct source *, size_t i, char *buf, size_t bufsz);
/*
 * The git object id of entry i (20 bytes, valid while the source lives), or NULL for a
 * folder source. Equal ids mean equal bytes: the fleet loader reuses what it decoded.
 */
const unsigned char *source_blob_id(const struct source *, size_t i);
/* The resolved commit id for a git source ("" for a folder). */
const char *source_revision(const struct source *);
/*
 * A reader is what a thread reads files through: a folder needs nothing, a git source
 * gives each reader its own repository handle (libgit2 objects are not shared between
 * threads).
 */
struct source_reader;
int	 source_reader_open(struct source_reader **out, struct source *);
void	 source_reader_free(struct source_reader *);
/* ERR_TOOBIG with out->len set when the file is over YTREE_MAX_FILE (nothing read). */
int	 source_read(struct source_reader *, size_t i, struct source_buf *out);
void	 source_buf_release(struct source_buf *);

#endif
