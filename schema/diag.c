/* SPDX-License-Identifier: Apache-2.0 */
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

void
diag_init(struct diag *d)
{
	memset(d, 0, sizeof(*d));
}

void
diag_free(struct diag *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		free(d->v[i].msg);
	for (i = 0; i < d->nfiles; i++)
		free(d->files[i]);
	free(d->v);
	free(d->files);
	memset(d, 0, sizeof(*d));
}

int
diag_file(struct diag *d, const char *path)
{
	char *copy;

	if (d->nfiles == d->capfiles) {
		uint32_t cap = d->capfiles ? d->capfiles * 2 : 64;
		char **nv = realloc(d->files, cap * sizeof(*nv));
		if (nv == NULL)
			return -1;
		d->files = nv;
		d->capfiles = cap;
	}
	if ((copy = strdup(path)) == NULL)
		return -1;
	d->files[d->nfiles] = copy;
	return (int)d->nfiles++;
}

void
diag_add(struct diag *d, enum diag_sev sev, struct loc at, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int n;

	if (sev == DIAG_ERROR)
		d->nerr++;
	else
		d->nwarn++;
	if (d->limit != 0 && d->n - d->limit_from >= d->limit) {
		d->over++;
		return;
	}
	if (d->n >= DIAG_MAX) {
		d->dropped++;
		return;
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 32;
		struct diag_item *nv = realloc(d->v, cap * sizeof(*nv));
		if (nv == NULL) {
			d->dropped++;
			return;
		}
		d->v = nv;
		d->cap = cap;
	}
	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0) {
		d->dropped++;
		return;
	}
	d->v[d->n].at = at;
	d->v[d->n].sev = sev;
	d->v[d->n].msg = msg;
	d->n++;
}

void
diag_save(const struct diag *d, struct diag_mark *m)
{
	m->n = d->n;
	m->nerr = d->nerr;
	m->nwarn = d->nwarn;
	m->dropped = d->dropped;
	m->over = d->over;
}

bool
diag_since(const struct diag *d, const struct diag_mark *m)
{
	return d->nerr != m->nerr || d->nwarn != m->nwarn;
}

void
diag_rewind(struct diag *d, const struct diag_mark *m)
{
	while (d->n > m->n)
		free(d->v[--d->n].msg);
	d->nerr = m->nerr;
	d->nwarn = m->nwarn;
	d->dropped = m->dropped;
	d->over = m->over;
}

int
diag_merge(struct diag *dst, struct diag *src)
{
	size_t i;

	if (dst->n + src->n > dst->cap) {
		size_t cap = dst->n + src->n;
		struct diag_item *nv = realloc(dst->v, cap * sizeof(*nv));
		if (nv == NULL)
			return -1;
		dst->v = nv;
		dst->cap = cap;
	}
	for (i = 0; i < src->n; i++)
		dst->v[dst->n++] = src->v[i];
	dst->nerr += src->nerr;
	dst->nwarn += src->nwarn;
	dst->dropped += src->dropped;
	src->n = src->nerr = src->nwarn = src->dropped = 0;
	return 0;
}

static const struct diag *sort_ctx;

void
diag_limit(struct diag *d, size_t max)
{
	d->limit_from = d->n;
	d->limit = max;
	d->over = 0;
}

void
diag_limit_end(struct diag *d, uint32_t file)
{
	size_t over = d->over;

	d->limit = 0;
	d->over = 0;
	if (over == 0)
		return;
	/* The ones not kept were counted already: add the note without counting it. */
	diag_add(d, DIAG_ERROR, loc_make(file, 0, 0), "%zu more problems in this file are not "
	    "shown", over);
	d->nerr--;
}

static int
item_cmp(const void *a, const void *b)
{
	const struct diag_item *x = a, *y = b;
	int c;

	if (x->at.file != y->at.file && sort_ctx->files != NULL &&
	    (c = strcmp(sort_ctx->files[x->at.file], sort_ctx->files[y->at.file])) != 0)
		return c;
	if (x->at.file != y->at.file)
		return x->at.file < y->at.file ? -1 : 1;
	if (x->at.line != y->at.line)
		return x->at.line < y->at.line ? -1 : 1;
	if (x->at.col != y->at.col)
		return x->at.col < y->at.col ? -1 : 1;
	if (x->sev != y->sev)
		return x->sev < y->sev ? -1 : 1;
	return strcmp(x->msg, y->msg);
}

void
diag_sort(struct diag *d)
{
	if (d->n < 2)
		return;
	sort_ctx = d;
	qsort(d->v, d->n, sizeof(*d->v), item_cmp);
	sort_ctx = NULL;
}

static const char *
sev_name(enum diag_sev s)
{
	return s == DIAG_ERROR ? "error" : "warning";
}

/* GitHub workflow-command escaping: data escapes % CR LF, properties also : and ,. */
static void
gh_escape(FILE *f, const char *s, int property)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '%': fputs("%25", f); break;
		case '\r': fputs("%0D", f); break;
		case '\n': fputs("%0A", f); break;
		case ':': property ? fputs("%3A", f) : fputc(':', f); break;
		case ',': property ? fputs("%2C", f) : fputc(',', f); break;
		default: fputc(*s, f);
		}
	}
}

int
diag_print(struct diag *d, FILE *f, enum diag_format fmt, const char *json_extra_key,
    long json_extra[], const char *const json_extra_names[])
{
	size_t i;

	diag_sort(d);
	if (fmt == DIAG_JSON) {
		json_t *root = json_object(), *arr = json_array(), *extra;
		char *text;

		if (root == NULL || arr == NULL)
			return -1;
		json_object_set_new(root, "valid", json_boolean(d->nerr == 0));
		json_object_set_new(root, "errors", json_integer((json_int_t)d->nerr));
		json_object_set_new(root, "warnings", json_integer((json_int_t)d->nwarn));
		if (json_extra_key != NULL && (extra = json_object()) != NULL) {
			for (i = 0; json_extra_names[i] != NULL; i++)
				json_object_set_new(extra, json_extra_names[i],
				    json_integer(json_extra[i]));
			json_object_set_new(root, json_extra_key, extra);
		}
		for (i = 0; i < d->n; i++) {
			const struct diag_item *it = &d->v[i];
			json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:s, s:s}",
			    "file", d->files[it->at.file], "line", (json_int_t)it->at.line,
			    "column", (json_int_t)it->at.col, "severity", sev_name(it->sev),
			    "message", it->msg));
		}
		json_object_set_new(root, "diagnostics", arr);
		if (d->dropped)
			json_object_set_new(root, "dropped", json_integer((json_int_t)d->dropped));
		text = json_dumps(root, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		json_decref(root);
		if (text == NULL)
			return -1;
		fprintf(f, "%s\n", text);
		free(text);
		return 0;
	}
	for (i = 0; i < d->n; i++) {
		const struct diag_item *it = &d->v[i];
		if (fmt == DIAG_GITHUB) {
			fprintf(f, "::%s file=", sev_name(it->sev));
			gh_escape(f, d->files[it->at.file], 1);
			fprintf(f, ",line=%u,col=%u::", it->at.line ? it->at.line : 1,
			    it->at.col ? it->at.col : 1);
			gh_escape(f, it->msg, 0);
			fputc('\n', f);
		} else {
			fprintf(f, "%s:%u:%u: %s: %s\n", d->files[it->at.file],
			    it->at.line ? it->at.line : 1, it->at.col ? it->at.col : 1,
			    sev_name(it->sev), it->msg);
		}
	}
	if (d->dropped && fmt == DIAG_TEXT)
		fprintf(f, "(%zu more diagnostics not shown)\n", d->dropped);
	return 0;
}

int
diag_parse_format(const char *s, enum diag_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = DIAG_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = DIAG_JSON;
	else if (strcmp(s, "github") == 0)
		*out = DIAG_GITHUB;
	else
		return -1;
	return 0;
}

char *
diag_text(struct diag *d)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return NULL;
	diag_print(d, f, DIAG_TEXT, NULL, NULL, NULL);
	fclose(f);
	return buf;
}
