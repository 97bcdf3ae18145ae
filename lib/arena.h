/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A bump allocator: many small allocations that share one lifetime (a parsed file, a loaded
 * fleet) are freed together. arena_alloc() returns 16-byte aligned, zeroed memory or NULL.
 * arena_reset() keeps the first chunk for reuse, so parsing thousands of small files does
 * not go back to malloc for each one.
 */
#ifndef PHAROS_ARENA_H
#define PHAROS_ARENA_H

#include <stddef.h>

struct arena;

struct arena	*arena_new(void);
void		 arena_free(struct arena *);
void		 arena_reset(struct arena *);
void		*arena_alloc(struct arena *, size_t);
/* n elements of size each, overflow-checked. */
void		*arena_calloc(struct arena *, size_t n, size_t size);
/* A NUL-terminated copy of s[0..len). */
char		*arena_strndup(struct arena *, const char *s, size_t len);
char		*arena_strdup(struct arena *, const char *s);
char		*arena_printf(struct arena *, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
/* Bytes obtained from malloc by this arena, for accounting. */
size_t		 arena_size(const struct arena *);

#endif
