/* SPDX-License-Identifier: Apache-2.0 */
/* The YAML tree builder: positions, limits and what it refuses. */
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "diag.h"
#include "t.h"
#include "ytree.h"

static struct arena *a;
static struct diag d;

static struct ynode *
parse(const char *text)
{
	struct ynode *root = NULL;

	arena_reset(a);
	diag_free(&d);
	diag_init(&d);
	diag_file(&d, "t.yaml");
	if (ytree_parse(&root, a, &d, 0, text, strlen(text)) != 0)
		return NULL;
	return root;
}

static int
has_error(const char *needle, unsigned line, unsigned col)
{
	size_t i;

	for (i = 0; i < d.n; i++)
		if (strstr(d.v[i].msg, needle) != NULL && d.v[i].at.line == line &&
		    d.v[i].at.col == col)
			return 1;
	return 0;
}

static void
test_positions(void)
{
	struct ynode *r = parse("a: 1\nlist:\n  - x\n  - \"y\"\nmap: {k: v}\n");
	struct ynode *list, *map;

	T_OK(r != NULL && r->type == Y_MAP && r->u.map.n == 3, "ytree: a mapping of three keys");
	if (r == NULL)
		return;
	T_OK(r->u.map.v[0].key->at.line == 1 && r->u.map.v[0].key->at.col == 1,
	    "ytree: key position 1:1");
	T_OK(r->u.map.v[0].val->at.line == 1 && r->u.map.v[0].val->at.col == 4,
	    "ytree: value position 1:4");
	list = ytree_get(r, "list");
	T_OK(list != NULL && list->type == Y_SEQ && list->u.seq.n == 2, "ytree: a list of two");
	T_OK(list != NULL && list->u.seq.v[1]->at.line == 4 && list->u.seq.v[1]->at.col == 5,
	    "ytree: list item position 4:5");
	T_OK(list != NULL && list->u.seq.v[1]->quoted && !list->u.seq.v[0]->quoted,
	    "ytree: quoted style is kept");
	map = ytree_get(r, "map");
	T_OK(map != NULL && map->type == Y_MAP && ytree_get(map, "k") != NULL,
	    "ytree: flow mapping");
	T_OK(d.nerr == 0, "ytree: no diagnostics for good YAML");
}

static void
test_unicode_columns(void)
{
	struct ynode *r = parse("name: \"Zoë\"\nbad: [x\n");

	T_OK(r == NULL && d.nerr == 1, "ytree: unterminated flow list is an error");
	r = parse("name: \"Zoë Ünal\"\nx: y: z\n");
	T_OK(r == NULL && has_error("mapping values are not allowed", 2, 5),
	    "ytree: syntax error at line 2 column 5");
	r = parse("n: \"ÆØÅ\" \nk: [1, 2, 3,, ]\n");
	T_OK(r == NULL && d.nerr == 1 && d.v[0].at.line == 2, "ytree: error line after UTF-8");
}

static void
test_refusals(void)
{
	struct ynode *r;
	char *deep, *big;
	size_t i;

	r = parse("a: 1\nb: 2\na: 3\n");
	T_OK(r != NULL && has_error("duplicate key 'a' (first defined at line 1)", 3, 1),
	    "ytree: duplicate key reported at the second");
	T_OK(r != NULL && r->u.map.n == 2, "ytree: the duplicate is dropped");
	r = parse("a: 1\na: 2\na: 3\n");
	T_OK(d.nerr == 2 && has_error("first defined at line 1", 3, 1),
	    "ytree: a third copy names the first");
	r = parse("x: &a [1]\ny: *a\n");
	T_OK(has_error("anchors (&a)", 1, 4) && has_error("aliases (*a)", 2, 4),
	    "ytree: anchors and aliases refused");
	r = parse("x: !!binary aGVsbG8=\n");
	T_OK(has_error("tags", 1, 4), "ytree: tags refused");
	r = parse("x: !!str 123\n");
	T_OK(d.nerr == 0 && r != NULL && ytree_get(r, "x")->quoted, "ytree: !!str means a string");
	r = parse("a: 1\n---\nb: 2\n");
	T_OK(has_error("one YAML document", 2, 1), "ytree: a second document refused");
	r = parse("a:\n\t- x\n");
	T_OK(r == NULL && d.nerr == 1 && strstr(d.v[0].msg, "tab") != NULL, "ytree: tab hint");
	r = parse("a: \"\xff\"\n");
	T_OK(r == NULL && has_error("UTF-8", 1, 5), "ytree: invalid UTF-8 at 1:5");
	r = parse("[1, 2]: x\n");
	T_OK(has_error("mapping key must be a plain string", 1, 1), "ytree: complex key refused");

	deep = malloc(200 * 2 + 1);
	for (i = 0; i < 200; i++)
		deep[i] = '[';
	for (i = 0; i < 200; i++)
		deep[200 + i] = ']';
	deep[400] = '\0';
	r = parse(deep);
	T_OK(r == NULL && has_error("nesting deeper than 64", 1, 65), "ytree: nesting limit");
	free(deep);

	big = malloc(YTREE_MAX_SCALAR + 64);
	memcpy(big, "k: ", 3);
	memset(big + 3, 'x', YTREE_MAX_SCALAR + 10);
	strcpy(big + 3 + YTREE_MAX_SCALAR + 10, "\n");
	r = parse(big);
	T_OK(has_error("the limit is 65536", 1, 4), "ytree: scalar size limit");
	free(big);
}

static void
test_implicit(void)
{
	static const struct {
		const char *text;
		enum yimplicit want;
	} cases[] = {
		{ "x", YI_STR }, { "no", YI_BOOL }, { "On", YI_BOOL }, { "~", YI_NULL },
		{ "null", YI_NULL }, { "443", YI_INT }, { "-7", YI_INT }, { "0x1f", YI_INT },
		{ "0b101", YI_INT }, { "1_000", YI_INT }, { "10:30", YI_INT }, { "1.5", YI_FLOAT },
		{ ".inf", YI_FLOAT }, { "1e5", YI_STR }, { "1.0e+5", YI_FLOAT },
		{ "192.0.2.1", YI_STR }, { "10.64.0.0/16", YI_STR }, { "2024-01-31", YI_TIMESTAMP },
		{ "1.2.3", YI_STR }, { "eu-ams", YI_STR }, { "nodes", YI_STR },
		{ "2001:db8::1", YI_STR }, { "1:2:3", YI_INT }, { "60:61", YI_STR },
	};
	size_t i;
	char buf[64];

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ynode *r;
		snprintf(buf, sizeof(buf), "k: %s\n", cases[i].text);
		r = parse(buf);
		T_OK(r != NULL && ytree_implicit(ytree_get(r, "k") ? ytree_get(r, "k") :
		    r->u.map.v[0].val) == cases[i].want, "ytree: '%s' types like YAML 1.1",
		    cases[i].text);
	}
}

int
main(void)
{
	a = arena_new();
	diag_init(&d);
	test_positions();
	test_unicode_columns();
	test_refusals();
	test_implicit();
	diag_free(&d);
	arena_free(a);
	T_DONE();
}
