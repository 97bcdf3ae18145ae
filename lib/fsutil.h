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
/* Read a whole file of at most max bytes; *out is malloc'd and NUL-terminated. */
int	fs_read_file(char **out, size_t *len, const char *path, size_t max);

#endif
