/* SPDX-License-Identifier: Apache-2.0 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "fsutil.h"

int
fs_write_prepare(struct fs_pending *pw, const char *path, const void *data, size_t len,
    int mode)
{
	const char *bytes = data;
	char *tmp = NULL, *dir = NULL, *dst = NULL;
	const char *base;
	size_t off = 0, plen, dlen;
	ssize_t w;
	int fd = -1, created = 0, rc = ERR_SYS;

	memset(pw, 0, sizeof(*pw));
	if (path == NULL || *path == '\0' || (data == NULL && len > 0) || (mode & ~07777) != 0) {
		err_set("fs_write_atomic: bad arguments");
		return ERR_INVAL;
	}
	plen = strlen(path);
	base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	dlen = (size_t)(base - path);	/* the directory, with its trailing '/' */
	if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
		err_set("%s: not a file name", path);
		return ERR_INVAL;
	}
	if ((dir = strdup(dlen ? path : ".")) == NULL || (tmp = malloc(plen + 16)) == NULL ||
	    (dst = strdup(path)) == NULL) {
		err_set("out of memory");
		rc = ERR_NOMEM;
		goto out;
	}
	if (dlen > 1)
		dir[dlen - 1] = '\0';	/* "a/b/x" -> "a/b" */
	else if (dlen == 1)
		dir[1] = '\0';		/* "/x" -> "/" */
	/* in the same directory, for rename; hidden, so a reader globbing the folder skips it */
	snprintf(tmp, plen + 16, "%.*s.%s.XXXXXX", (int)dlen, path, base);

	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		err_setsys("%s: creating a temporary file", path);
		goto out;
	}
	created = 1;
	if (fchmod(fd, (mode_t)mode) == -1) {
		err_setsys("%s: chmod", tmp);
		goto out;
	}
	while (off < len) {
		if ((w = write(fd, bytes + off, len - off)) == -1) {
			if (errno == EINTR)
				continue;
			err_setsys("%s: write", tmp);
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) == -1) {
		err_setsys("%s: fsync", tmp);
		goto out;
	}
	w = close(fd);
	fd = -1;
	if (w == -1) {
		err_setsys("%s: close", tmp);
		goto out;
	}
	pw->tmp = tmp;
	pw->dir = dir;
	pw->path = dst;
	return 0;
out:
	if (fd != -1)
		close(fd);
	if (created)
		unlink(tmp);
	free(tmp);
	free(dir);
	free(dst);
	return rc;
}

int
fs_write_commit(struct fs_pending *pw)
{
	int dfd, rc = 0;

	if (pw->tmp == NULL) {
		err_set("fs_write_commit: nothing prepared");
		return ERR_INVAL;
	}
	if (rename(pw->tmp, pw->path) == -1) {
		err_setsys("%s: rename", pw->path);
		fs_write_abort(pw);
		return ERR_SYS;
	}
	/* the rename itself is durable only once the directory is */
	if ((dfd = open(pw->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 || fsync(dfd) == -1) {
		err_setsys("%s: fsync", pw->dir);
		rc = ERR_SYS;
	}
	if (dfd != -1)
		close(dfd);
	free(pw->tmp);
	free(pw->dir);
	free(pw->path);
	memset(pw, 0, sizeof(*pw));
	return rc;
}

void
fs_write_abort(struct fs_pending *pw)
{
	if (pw == NULL || pw->tmp == NULL)
		return;
	unlink(pw->tmp);
	free(pw->tmp);
	free(pw->dir);
	free(pw->path);
	memset(pw, 0, sizeof(*pw));
}

int
fs_write_atomic(const char *path, const void *data, size_t len, int mode)
{
	struct fs_pending pw;
	int rc;

	if ((rc = fs_write_prepare(&pw, path, data, len, mode)) != 0)
		return rc;
	return fs_write_commit(&pw);
}

int
fs_read_file(char **out, size_t *len, const char *path, size_t max)
{
	struct stat st;
	char *buf;
	size_t off = 0;
	ssize_t r;
	int fd;

	*out = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		err_setsys("%s", path);
		return errno == ENOENT ? ERR_NOTFOUND : ERR_SYS;
	}
	if (fstat(fd, &st) == -1) {
		err_setsys("%s", path);
		close(fd);
		return ERR_SYS;
	}
	if ((size_t)st.st_size > max) {
		err_set("%s: %lld bytes, over the %zu-byte limit", path, (long long)st.st_size, max);
		close(fd);
		return ERR_TOOBIG;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return ERR_NOMEM;
	}
	while (off < (size_t)st.st_size) {
		r = read(fd, buf + off, (size_t)st.st_size - off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	close(fd);
	if (off != (size_t)st.st_size) {
		err_set("%s: short read", path);
		free(buf);
		return ERR_SYS;
	}
	buf[off] = '\0';
	*out = buf;
	*len = off;
	return 0;
}
