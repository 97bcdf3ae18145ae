/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

#define ARENA_CHUNK	(64 * 1024)
#define ARENA_ALIGN	16

struct chunk {
	struct chunk	*next;
	size_t		 size;		/* usable bytes after the header */
	size_t		 used;
	_Alignas(ARENA_ALIGN) unsigned char data[];
};

struct arena {
	struct chunk	*head;
	size_t		 total;
};

struct arena *
arena_new(void)
{
	return calloc(1, sizeof(struct arena));
}

static void
chunks_free(struct chunk *c)
{
	while (c != NULL) {
		struct chunk *next = c->next;
		free(c);
		c = next;
	}
}

void
arena_free(struct arena *a)
{
	if (a == NULL)
		return;
	chunks_free(a->head);
	free(a);
}

void
arena_reset(struct arena *a)
{
	struct chunk *c = a->head, *keep = NULL, *next;

	/* Keep one standard-sized chunk: the one the next small file fits in. */
	for (; c != NULL; c = next) {
		next = c->next;
		if (keep == NULL && c->size == ARENA_CHUNK) {
			keep = c;
			continue;
		}
		free(c);
	}
	a->head = keep;
	a->total = 0;
	if (keep != NULL) {
		keep->next = NULL;
		keep->used = 0;
		a->total = sizeof(*keep) + keep->size;
	}
}

void *
arena_alloc(struct arena *a, size_t n)
{
	struct chunk *c = a->head;
	size_t need, csize;
	void *p;

	if (n > SIZE_MAX - ARENA_ALIGN)
		return NULL;
	need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (c == NULL || c->size - c->used < need) {
		csize = need > ARENA_CHUNK / 4 ? need : ARENA_CHUNK;
		if ((c = malloc(sizeof(*c) + csize)) == NULL)
			return NULL;
		c->size = csize;
		c->used = 0;
		if (csize == ARENA_CHUNK || a->head == NULL) {
			c->next = a->head;
			a->head = c;
		} else {
			/* A big block goes behind the current chunk so its free space is not lost. */
			c->next = a->head->next;
			a->head->next = c;
		}
		a->total += sizeof(*c) + csize;
	}
	p = c->data + c->used;
	c->used += need;
	memset(p, 0, n);
	return p;
}

void *
arena_calloc(struct arena *a, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	return arena_alloc(a, n * size);
}

char *
arena_strndup(struct arena *a, const char *s, size_t len)
{
	char *p;

	if (len == SIZE_MAX || (p = arena_alloc(a, len + 1)) == NULL)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *
arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (p = arena_alloc(a, (size_t)n + 1)) == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

size_t
arena_size(const struct arena *a)
{
	return a->total;
}
