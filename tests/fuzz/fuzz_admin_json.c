/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the admin API's request bodies (reconciler/admin.c): JSON through
 * jansson, then admin_user_yaml() — the checks of a user record and its YAML emission. What
 * is emitted must parse back as YAML (ytree) with no syntax error: no body may smuggle
 * structure into the file it becomes.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "admin.h"
#include "arena.h"
#include "diag.h"
#include "ytree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	char *yaml = NULL;
	size_t len = 0;
	const char *why = NULL;

	if (j == NULL)
		return 0;
	if (admin_user_yaml(j, "alice", &yaml, &len, &why) == 0) {
		struct arena *a = arena_new();
		struct diag d;
		struct ynode *root = NULL;

		diag_init(&d);
		if (a != NULL && (ytree_parse(&root, a, &d, (uint32_t)diag_file(&d, "u.yaml"), yaml,
		    len) != 0 || d.nerr != 0))
			abort();	/* we wrote YAML that does not read back */
		diag_free(&d);
		arena_free(a);
		free(yaml);
	} else if (why == NULL)
		abort();		/* a refusal always says why */
	json_decref(j);
	return 0;
}
