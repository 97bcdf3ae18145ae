/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "arena.h"
#include "err.h"
#include "ytree.h"

/* An open collection while its children are being read. */
struct frame {
	struct ynode	*node;
	void		*items;		/* struct ypair[] or struct ynode *[] */
	size_t		 n, cap;
	struct ynode	*pending_key;	/* map: key read, value not yet */
};

struct builder {
	struct arena	*a;
	struct diag	*d;
	uint32_t	 file;
	struct frame	*stack;
	size_t		 depth;
	struct ynode	*root;
	size_t		 nodes;
	bool		 failed;	/* stop: nothing more can be read from this document */
};

static struct loc
mark_loc(const struct builder *b, yaml_mark_t m)
{
	struct loc at = { b->file, (uint32_t)m.line + 1, (uint32_t)m.column + 1 };
	return at;
}

/* Line and column (in characters) of a byte offset, for libyaml reader errors. */
static struct loc
offset_loc(const struct builder *b, const char *buf, size_t len, size_t off)
{
	struct loc at = { b->file, 1, 1 };
	size_t i;

	for (i = 0; i < off && i < len; i++) {
		if (buf[i] == '\n') {
			at.line++;
			at.col = 1;
		} else if (((unsigned char)buf[i] & 0xc0) != 0x80) {
			at.col++;
		}
	}
	return at;
}

static int
frame_push_item(struct builder *b, struct frame *f, size_t size, const void *item)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 8;
		void *nv = realloc(f->items, cap * size);
		if (nv == NULL)
			return ERR_NOMEM;
		f->items = nv;
		f->cap = cap;
	}
	memcpy((char *)f->items + f->n * size, item, size);
	f->n++;
	(void)b;
	return 0;
}

static int
key_cmp(const void *x, const void *y)
{
	const struct ypair *p = *(const struct ypair *const *)x;
	const struct ypair *q = *(const struct ypair *const *)y;
	size_t n = p->key->u.str.len < q->key->u.str.len ? p->key->u.str.len : q->key->u.str.len;
	int c = memcmp(p->key->u.str.s, q->key->u.str.s, n);

	if (c != 0)
		return c;
	if (p->key->u.str.len != q->key->u.str.len)
		return p->key->u.str.len < q->key->u.str.len ? -1 : 1;
	return p < q ? -1 : p > q;	/* document order */
}

/*
 * Reports every key that repeats an earlier one and drops the later pairs, so each key
 * in the tree is unique. Sorting keeps a hostile 100,000-key map O(n log n).
 */
static int
check_duplicates(struct builder *b, struct ypair *v, size_t *n)
{
	struct ypair **idx;
	bool *drop;
	size_t i, j;

	if (*n < 2)
		return 0;
	if ((idx = malloc(*n * sizeof(*idx))) == NULL)
		return ERR_NOMEM;
	if ((drop = calloc(*n, sizeof(*drop))) == NULL) {
		free(idx);
		return ERR_NOMEM;
	}
	for (i = 0; i < *n; i++)
		idx[i] = &v[i];
	qsort(idx, *n, sizeof(*idx), key_cmp);
	for (i = 1, j = 0; i < *n; i++) {
		struct ypair *first = idx[j], *dup = idx[i];
		/* Equal keys sort together in document order; idx[j] starts the run. */
		if (dup->key->u.str.len != first->key->u.str.len ||
		    memcmp(dup->key->u.str.s, first->key->u.str.s, dup->key->u.str.len) != 0) {
			j = i;
			continue;
		}
		diag_err(b->d, dup->key->at, "duplicate key '%s' (first defined at line %u)",
		    dup->key->u.str.s, first->key->at.line);
		drop[dup - v] = true;
	}
	for (i = j = 0; i < *n; i++)
		if (!drop[i])
			v[j++] = v[i];
	*n = j;
	free(drop);
	free(idx);
	return 0;
}

/* Attach a finished node to its parent (or make it the root). */
static int
attach(struct builder *b, struct ynode *node)
{
	struct frame *f;

	if (b->depth == 0) {
		b->root = node;
		return 0;
	}
	f = &b->stack[b->depth - 1];
	if (f->node->type == Y_SEQ)
		return frame_push_item(b, f, sizeof(node), &node);
	if (f->pending_key == NULL) {
		if (node->type != Y_SCALAR) {
			diag_err(b->d, node->at, "a mapping key must be a plain string, not a %s",
			    ytree_type_name(node));
			/* Keep the structure consistent: this value gets a dummy key. */
			node = arena_alloc(b->a, sizeof(*node));
			if (node == NULL)
				return ERR_NOMEM;
			node->type = Y_SCALAR;
			node->u.str.s = "";
			node->at = f->node->at;
		}
		f->pending_key = node;
		return 0;
	} else {
		struct ypair p = { f->pending_key, node };
		f->pending_key = NULL;
		return frame_push_item(b, f, sizeof(p), &p);
	}
}

static struct ynode *
new_node(struct builder *b, enum ytype t, yaml_mark_t m)
{
	struct ynode *n;

	if (++b->nodes > YTREE_MAX_NODES) {
		if (!b->failed)
			diag_err(b->d, mark_loc(b, m), "more than %d keys and values in one file",
			    YTREE_MAX_NODES);
		b->failed = true;
		return NULL;
	}
	n = arena_alloc(b->a, sizeof(*n));

	if (n != NULL) {
		n->type = t;
		n->at = mark_loc(b, m);
	}
	return n;
}

static int
open_collection(struct builder *b, enum ytype t, yaml_mark_t m)
{
	struct ynode *n;
	struct frame *f;

	if (b->depth >= YTREE_MAX_DEPTH) {
		diag_err(b->d, mark_loc(b, m), "nesting deeper than %d levels", YTREE_MAX_DEPTH);
		b->failed = true;
		return ERR_TOOBIG;
	}
	if ((n = new_node(b, t, m)) == NULL)
		return b->failed ? ERR_TOOBIG : ERR_NOMEM;
	f = &b->stack[b->depth++];
	memset(f, 0, sizeof(*f));
	f->node = n;
	return 0;
}

static int
close_collection(struct builder *b)
{
	struct frame *f = &b->stack[b->depth - 1];
	struct ynode *n = f->node;
	size_t size = n->type == Y_MAP ? sizeof(struct ypair) : sizeof(struct ynode *);
	void *items = NULL;
	int rc;

	if (n->type == Y_MAP && (rc = check_duplicates(b, f->items, &f->n)) != 0)
		return rc;
	if (f->n > 0) {
		if ((items = arena_calloc(b->a, f->n, size)) == NULL)
			return ERR_NOMEM;
		memcpy(items, f->items, f->n * size);
	}
	if (n->type == Y_MAP) {
		n->u.map.v = items;
		n->u.map.n = f->n;
	} else {
		n->u.seq.v = items;
		n->u.seq.n = f->n;
	}
	free(f->items);
	f->items = NULL;
	b->depth--;
	return attach(b, n);
}

static bool
check_tag_anchor(struct builder *b, const yaml_char_t *anchor, const yaml_char_t *tag,
    yaml_mark_t m)
{
	if (anchor != NULL)
		diag_err(b->d, mark_loc(b, m), "anchors (&%s) are not allowed in fleet files",
		    (const char *)anchor);
	if (tag != NULL && strcmp((const char *)tag, YAML_STR_TAG) != 0) {
		diag_err(b->d, mark_loc(b, m), "YAML tags (%s) are not allowed in fleet files",
		    (const char *)tag);
		return false;
	}
	return tag != NULL;	/* an explicit !!str */
}

static int
on_scalar(struct builder *b, const yaml_event_t *ev)
{
	struct ynode *n;
	size_t len = ev->data.scalar.length;
	bool str_tag;

	str_tag = check_tag_anchor(b, ev->data.scalar.anchor, ev->data.scalar.tag,
	    ev->start_mark);
	if (len > YTREE_MAX_SCALAR) {
		diag_err(b->d, mark_loc(b, ev->start_mark), "value is %zu bytes; the limit is %d",
		    len, YTREE_MAX_SCALAR);
		len = 0;
	}
	if ((n = new_node(b, Y_SCALAR, ev->start_mark)) == NULL)
		return b->failed ? ERR_TOOBIG : ERR_NOMEM;
	n->quoted = str_tag || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
	if ((n->u.str.s = arena_strndup(b->a, (const char *)ev->data.scalar.value, len)) == NULL)
		return ERR_NOMEM;
	n->u.str.len = len;
	if (!n->quoted && ytree_implicit(n) == YI_NULL)
		n->type = Y_NULL;
	return attach(b, n);
}

static const char *
parser_problem(const yaml_parser_t *p)
{
	return p->problem != NULL ? p->problem : "YAML syntax error";
}

static void
report_parser_error(struct builder *b, const yaml_parser_t *p, const char *buf, size_t len)
{
	struct loc at;
	const char *hint = "";

	if (p->error == YAML_READER_ERROR) {
		size_t off = p->problem_offset;
		/* libyaml points at the byte that broke a sequence; show where it starts. */
		while (off > 0 && off < len && ((unsigned char)buf[off] & 0xc0) == 0x80)
			off--;
		if (off > 0 && off < len && strstr(parser_problem(p), "trailing") != NULL &&
		    (unsigned char)buf[off - 1] >= 0xc0)
			off--;
		at = offset_loc(b, buf, len, off);
		if (off < len && ((unsigned char)buf[off] >= 0x80 || buf[off] == 0))
			diag_err(b->d, at, "not valid UTF-8 at byte 0x%02x (%s)",
			    (unsigned char)buf[off], parser_problem(p));
		else
			diag_err(b->d, at, "not valid UTF-8 (%s)", parser_problem(p));
		return;
	}
	if (p->error == YAML_MEMORY_ERROR) {
		diag_err(b->d, loc_make(b->file, 0, 0), "out of memory while parsing");
		return;
	}
	at = mark_loc(b, p->problem_mark);
	if (p->problem_mark.index < len && buf[p->problem_mark.index] == '\t')
		hint = " (a tab: YAML indentation must use spaces)";
	if (p->context == NULL || p->context_mark.index == p->problem_mark.index) {
		diag_err(b->d, at, "%s%s", parser_problem(p), hint);
	} else if (p->problem_mark.index >= len) {
		/* Ran off the end: the construct left open is what to fix. */
		diag_err(b->d, mark_loc(b, p->context_mark), "%s: %s before the end of the file",
		    p->context + (strncmp(p->context, "while ", 6) == 0 ? 6 : 0),
		    parser_problem(p));
	} else {
		diag_err(b->d, at, "%s%s (%s started at line %zu, column %zu)", parser_problem(p),
		    hint, p->context + (strncmp(p->context, "while ", 6) == 0 ? 6 : 0),
		    p->context_mark.line + 1, p->context_mark.column + 1);
	}
}

int
ytree_parse(struct ynode **out, struct arena *a, struct diag *d, uint32_t file,
    const char *buf, size_t len)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct builder b;
	struct frame stack[YTREE_MAX_DEPTH];
	int rc = 0, docs = 0;
	bool done = false;

	*out = NULL;
	memset(&b, 0, sizeof(b));
	b.a = a;
	b.d = d;
	b.file = file;
	b.stack = stack;
	if (len > YTREE_MAX_FILE) {
		diag_err(d, loc_make(file, 0, 0), "file is %zu bytes; the limit is %d MiB",
		    len, YTREE_MAX_FILE / (1024 * 1024));
		return ERR_TOOBIG;
	}
	if (!yaml_parser_initialize(&parser)) {
		err_set("libyaml: cannot initialise parser");
		return ERR_NOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	while (!done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			report_parser_error(&b, &parser, buf, len);
			rc = ERR_INVAL;
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1) {
				diag_err(d, mark_loc(&b, ev.start_mark),
				    "only one YAML document per file is allowed");
				done = true;
			}
			break;
		case YAML_ALIAS_EVENT:
			diag_err(d, mark_loc(&b, ev.start_mark),
			    "aliases (*%s) are not allowed in fleet files",
			    (const char *)ev.data.alias.anchor);
			{
				struct ynode *n = new_node(&b, Y_NULL, ev.start_mark);
				if (n != NULL)
					n->reported = true;
				rc = n != NULL ? attach(&b, n) : b.failed ? ERR_TOOBIG : ERR_NOMEM;
			}
			break;
		case YAML_SCALAR_EVENT:
			rc = on_scalar(&b, &ev);
			break;
		case YAML_SEQUENCE_START_EVENT:
			check_tag_anchor(&b, ev.data.sequence_start.anchor,
			    ev.data.sequence_start.tag, ev.start_mark);
			rc = open_collection(&b, Y_SEQ, ev.start_mark);
			break;
		case YAML_MAPPING_START_EVENT:
			check_tag_anchor(&b, ev.data.mapping_start.anchor,
			    ev.data.mapping_start.tag, ev.start_mark);
			rc = open_collection(&b, Y_MAP, ev.start_mark);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			rc = close_collection(&b);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
		if (rc != 0)
			break;
	}
	while (b.depth > 0)
		free(stack[--b.depth].items);
	yaml_parser_delete(&parser);
	if (rc == ERR_NOMEM) {
		diag_err(d, loc_make(file, 0, 0), "out of memory while parsing");
		return rc;
	}
	if (rc != 0)
		return rc;
	*out = b.root;
	return 0;
}

static bool
all_match(const char *s, const char *set)
{
	for (; *s != '\0'; s++)
		if (strchr(set, *s) == NULL)
			return false;
	return true;
}

/* [-+]?digits-and-underscores, starting with a digit: the decimal core of YAML 1.1 ints. */
static bool
is_decimal_like(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	return *s >= '0' && *s <= '9' && all_match(s, "0123456789_");
}

/* PyYAML: [-+]?[1-9][0-9_]*(:[0-5]?[0-9])+ for ints, the same then .[0-9_]* for floats. */
static bool
is_sexagesimal(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	if (!(*s >= '1' && *s <= '9'))
		return false;
	while ((*s >= '0' && *s <= '9') || *s == '_')
		s++;
	if (*s != ':')
		return false;
	while (*s == ':') {
		s++;
		if (!(*s >= '0' && *s <= '9'))
			return false;
		if (s[1] >= '0' && s[1] <= '9') {
			if (*s > '5')
				return false;
			s += 2;
		} else {
			s++;
		}
	}
	if (*s == '\0')
		return true;
	return *s == '.' && all_match(s + 1, "0123456789_");
}

static bool
is_float(const char *s)
{
	const char *dot, *e;

	if (strcmp(s, ".inf") == 0 || strcmp(s, ".Inf") == 0 || strcmp(s, ".INF") == 0 ||
	    strcmp(s, "-.inf") == 0 || strcmp(s, "+.inf") == 0 || strcmp(s, "-.Inf") == 0 ||
	    strcmp(s, "+.Inf") == 0 || strcmp(s, "-.INF") == 0 || strcmp(s, "+.INF") == 0 ||
	    strcmp(s, ".nan") == 0 || strcmp(s, ".NaN") == 0 || strcmp(s, ".NAN") == 0)
		return true;
	if (*s == '-' || *s == '+')
		s++;
	if ((dot = strchr(s, '.')) == NULL)
		return false;
	/* digits . digits [eE][-+]digits, or .digits */
	{
		size_t n = (size_t)(dot - s), i;
		for (i = 0; i < n; i++)
			if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
				return false;
		if (n > 0 && !(s[0] >= '0' && s[0] <= '9'))
			return false;
		if (n == 0 && !(dot[1] >= '0' && dot[1] <= '9'))
			return false;
	}
	e = dot + 1;
	while ((*e >= '0' && *e <= '9') || *e == '_')
		e++;
	if (*e == '\0')
		return true;
	if ((*e == 'e' || *e == 'E') && (e[1] == '-' || e[1] == '+') && e[2] != '\0')
		return all_match(e + 2, "0123456789");
	return false;
}

static bool
is_timestamp(const char *s)
{
	/* YYYY-M[M]-D[D] and anything starting so (PyYAML's timestamp resolver). */
	int i;

	for (i = 0; i < 4; i++)
		if (!(s[i] >= '0' && s[i] <= '9'))
			return false;
	if (s[4] != '-' || !(s[5] >= '0' && s[5] <= '9'))
		return false;
	i = s[6] >= '0' && s[6] <= '9' ? 7 : 6;
	if (s[i] != '-' || !(s[i + 1] >= '0' && s[i + 1] <= '9'))
		return false;
	return true;
}

enum yimplicit
ytree_implicit(const struct ynode *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL", NULL };
	static const char *const bools[] = { "yes", "Yes", "YES", "no", "No", "NO", "true",
	    "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
	    NULL };
	const char *s;
	int i;

	if (n->type == Y_NULL)
		return YI_NULL;
	if (n->type != Y_SCALAR || n->quoted)
		return YI_STR;
	s = n->u.str.s;
	/* Most values are plain words: rule them out by their first character. */
	if (strchr("~nNtTfFyYoO", s[0]) != NULL || s[0] == '\0') {
		for (i = 0; nulls[i] != NULL; i++)
			if (strcmp(s, nulls[i]) == 0)
				return YI_NULL;
		for (i = 0; bools[i] != NULL; i++)
			if (strcmp(s, bools[i]) == 0)
				return YI_BOOL;
	}
	if (strchr("0123456789-+.", s[0]) == NULL)
		return YI_STR;
	for (i = 0; nulls[i] != NULL; i++)
		if (strcmp(s, nulls[i]) == 0)
			return YI_NULL;
	for (i = 0; bools[i] != NULL; i++)
		if (strcmp(s, bools[i]) == 0)
			return YI_BOOL;
	{
		const char *t = s + (*s == '-' || *s == '+');
		if ((t[0] == '0' && (t[1] == 'x' || t[1] == 'b') && t[2] != '\0' &&
		    all_match(t + 2, t[1] == 'x' ? "0123456789abcdefABCDEF_" : "01_")) ||
		    is_decimal_like(s) || is_sexagesimal(s))
			return YI_INT;
	}
	if (is_float(s))
		return YI_FLOAT;
	if (is_timestamp(s))
		return YI_TIMESTAMP;
	return YI_STR;
}

const char *
ytree_type_name(const struct ynode *n)
{
	if (n == NULL)
		return "nothing";
	switch (n->type) {
	case Y_NULL: return "null";
	case Y_MAP: return "mapping";
	case Y_SEQ: return "list";
	case Y_SCALAR: break;
	}
	switch (ytree_implicit(n)) {
	case YI_BOOL: return "boolean";
	case YI_INT: return "number";
	case YI_FLOAT: return "fractional number";
	case YI_TIMESTAMP: return "date";
	case YI_NULL: return "null";
	case YI_STR: break;
	}
	return "string";
}

struct ynode *
ytree_get(const struct ynode *m, const char *k)
{
	size_t i, kl = strlen(k);

	if (m == NULL || m->type != Y_MAP)
		return NULL;
	for (i = 0; i < m->u.map.n; i++)
		if (m->u.map.v[i].key->u.str.len == kl &&
		    memcmp(m->u.map.v[i].key->u.str.s, k, kl) == 0)
			return m->u.map.v[i].val;
	return NULL;
}
