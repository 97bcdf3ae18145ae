/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the fleet loader: YAML tree building, decoding of every record
 * kind (the first byte picks fleet.yaml, a node, a relay or a user) and the semantic
 * validator over the result. Includes fleet.c so its static decoders are fuzzed too.
 */
#include "../../schema/fleet.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "fleet.yaml", "nodes/n-1.yaml", "relays/r-1.yaml",
	    "users/u-1.yaml" };
	struct fleet *f;
	struct diag d;
	struct arena *scratch;
	struct ynode *root = NULL;
	struct dec dc;
	int kind, file;

	if (size < 1)
		return 0;
	kind = data[0] & 3;
	diag_init(&d);
	f = calloc(1, sizeof(*f));
	scratch = arena_new();
	if (f != NULL)
		f->refs = 1;
	if (f == NULL || scratch == NULL || (f->arena = arena_new()) == NULL)
		goto out;
	file = diag_file(&d, names[kind]);
	if (ytree_parse(&root, scratch, &d, (uint32_t)file, (const char *)data + 1, size - 1) != 0 ||
	    root == NULL)
		goto out;
	memset(&dc, 0, sizeof(dc));
	dc.arena = f->arena;
	dc.d = &d;
	scan_secrets(&dc, root);
	switch (kind) {
	case 0:
		f->have_fleet_yaml = true;
		dec_map(&dc, &fleet_kind, &f->root, root);
		break;
	case 1: {
		struct node *n = arena_alloc(f->arena, sizeof(*n));
		n->name = "n-1";
		dec_map(&dc, &node_kind, &n->hdr, root);
		push_ptr((void ***)&f->nodes, &f->nnodes, &f->cap_nodes, n);
		break;
	}
	case 2: {
		struct relay *r = arena_alloc(f->arena, sizeof(*r));
		r->name = "r-1";
		dec_map(&dc, &relay_kind, &r->hdr, root);
		push_ptr((void ***)&f->relays, &f->nrelays, &f->cap_relays, r);
		break;
	}
	default: {
		struct user *u = arena_alloc(f->arena, sizeof(*u));
		u->name = "u-1";
		dec_map(&dc, &user_kind, &u->hdr, root);
		push_ptr((void ***)&f->users, &f->nusers, &f->cap_users, u);
		f->ndevices = u->devices.n;
		break;
	}
	}
	fleet_validate(f, &d);
	diag_sort(&d);
out:
	arena_free(scratch);
	fleet_free(f);
	diag_free(&d);
	return 0;
}
