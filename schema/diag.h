/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Diagnostics of a fleet load: every error and warning with the file, line and column it
 * is about. Files are registered once and referred to by index, so a location costs 12
 * bytes. Output is sorted by (file, line, column, message) in one of three formats.
 */
#ifndef PHAROS_DIAG_H
#define PHAROS_DIAG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum diag_sev { DIAG_ERROR, DIAG_WARNING };

enum diag_format { DIAG_TEXT, DIAG_JSON, DIAG_GITHUB };

struct loc {
	uint32_t	file;	/* index from diag_file() */
	uint32_t	line;	/* 1-based; 0 = the file as a whole */
	uint32_t	col;	/* 1-based, in characters */
};

static inline struct loc
loc_make(uint32_t file, uint32_t line, uint32_t col)
{
	struct loc at = { file, line, col };
	return at;
}

struct diag_item {
	struct loc	 at;
	enum diag_sev	 sev;
	char		*msg;
};

struct diag {
	char		**files;
	uint32_t	  nfiles, capfiles;
	struct diag_item *v;
	size_t		  n, cap;
	size_t		  nerr, nwarn;
	size_t		  dropped;	/* beyond DIAG_MAX, counted but not kept */
	size_t		  limit_from, limit, over;	/* diag_limit() window */
};

#define DIAG_MAX	1000000	/* a last resort; the loader caps each file first */
#define DIAG_MAX_FILE	1000

void	 diag_init(struct diag *);
void	 diag_free(struct diag *);
/* Register a display path; returns its index or -1 (out of memory). */
int	 diag_file(struct diag *, const char *path);
void	 diag_add(struct diag *, enum diag_sev, struct loc, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));
#define diag_err(d, at, ...)	diag_add((d), DIAG_ERROR, (at), __VA_ARGS__)
#define diag_warn(d, at, ...)	diag_add((d), DIAG_WARNING, (at), __VA_ARGS__)
/*
 * A per-file budget: between diag_limit() and diag_limit_end() at most `max` diagnostics
 * are kept (the first ones added); the rest are counted, and diag_limit_end() adds one
 * line saying how many more there were. Counts stay complete, so the exit status is right.
 */
void	 diag_limit(struct diag *, size_t max);
void	 diag_limit_end(struct diag *, uint32_t file);
/* Where d is now: diag_since() says whether anything was added, diag_rewind() goes back. */
struct diag_mark {
	size_t		n, nerr, nwarn, dropped, over;
};
void	 diag_save(const struct diag *, struct diag_mark *);
bool	 diag_since(const struct diag *, const struct diag_mark *);
void	 diag_rewind(struct diag *, const struct diag_mark *);
/* Move src's diagnostics (not its files) into dst; src is left empty. */
int	 diag_merge(struct diag *dst, struct diag *src);
void	 diag_sort(struct diag *);
/* Print every diagnostic (sorted first). JSON wraps them with counts and `extra`. */
/* Every diagnostic as text (diag_print DIAG_TEXT), malloc'd; NULL when out of memory. */
char	*diag_text(struct diag *);
int	 diag_print(struct diag *, FILE *, enum diag_format, const char *json_extra_key,
	    long json_extra[], const char *const json_extra_names[]);
int	 diag_parse_format(const char *s, enum diag_format *out);

#endif
