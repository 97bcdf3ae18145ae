/* SPDX-License-Identifier: Apache-2.0 */
/* Files written so a crash never leaves a half-written one, and bounded reads. */
#ifndef PHAROS_FSUTIL_H
#define PHAROS_FSUTIL_H

#include <stddef.h>

/*
 * Write data atomically: a hidden temporary file in the same folder, fsync, rename over
 * path, fsync the folder. The file gets exactly `mode`, whatever the umask. On failure
 * nothing is left behind and path is untouched.
 */
int	fs_write_atomic(const char *path, const void *data, size_t len, int mode);
/*
 * fs_write_atomic() in two steps, so the slow part (write and fsync of the temporary
 * file) can overlap with other work while path still holds the old contents: prepare,
 * then commit (rename, fsync of the folder) or abort (the temporary file removed).
 * A crash in between leaves path as it was and a hidden ".NAME.XXXXXX" behind.
 */
struct fs_pending {
	char	*tmp, *dir, *path;	/* tmp NULL: nothing pending */
};
int	fs_write_prepare(struct fs_pending *, const char *path, const void *data, size_t len,
	    int mode);
int	fs_write_commit(struct fs_pending *);
void	fs_write_abort(struct fs_pending *);	/* NULL-safe; nothing pending is fine */
/* Read a whole file of at most max bytes; *out is malloc'd and NUL-terminated. */
int	fs_read_file(char **out, size_t *len, const char *path, size_t max);

#endif
