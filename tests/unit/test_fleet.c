/* SPDX-License-Identifier: Apache-2.0 */
/* The fleet loader end to end on fleet.example, plus presets and helpers. */
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "fleet.h"
#include "source.h"
#include "t.h"

static struct fleet *
load(const char *path, struct diag *d, struct source **src)
{
	struct fleet *f = NULL;

	diag_init(d);
	if (source_open_dir(src, path) != 0)
		return NULL;
	if (fleet_load(&f, *src, d) != 0)
		return NULL;
	fleet_validate(f, d);
	return f;
}

int
main(void)
{
	struct diag d;
	struct source *src = NULL;
	struct fleet *f = load("fleet.example", &d, &src);
	struct awg_params p;
	struct node *n;
	struct user *u;
	int64_t v;

	T_OK(f != NULL, "fleet: fleet.example loads");
	if (f == NULL)
		T_DONE();
	T_OK(d.nerr == 0, "fleet: fleet.example has no errors");
	T_STREQ(f->fleet.id.v, "example-corp", "fleet: id");
	T_OK(f->preset == PRESET_ENTERPRISE, "fleet: preset enterprise");
	T_OK(f->eff.xray && f->eff.hops == 2 && f->eff.review_required, "fleet: enterprise defaults");
	T_OK(f->eff.audit_s == 400 * 86400LL, "fleet: explicit audit retention 400d wins");
	T_OK(f->eff.sweep_s == 30, "fleet: enterprise sweep default 30s");
	T_OK(f->nnodes == 4 && f->nusers == 4 && f->ndevices == 6 && f->nrelays == 1,
	    "fleet: record counts");
	T_OK(f->fleet.id.at.line == 9 && f->fleet.id.at.col == 7, "fleet: id position 9:7");
	T_OK((n = fleet_find_node(f, "fra-1")) != NULL && n->roles_mask == ROLE_EXIT,
	    "fleet: fra-1 is exit-only");
	T_OK((n = fleet_find_node(f, "ams-1")) != NULL, "fleet: ams-1 exists");
	if (n != NULL) {
		fleet_node_awg(f, n, &p);
		T_OK(p.jc == (f->awg.jc.set ? f->awg.jc.v : 3), "fleet: node inherits the fleet's jc");
	}
	fleet_node_awg(f, NULL, &p);
	T_OK(p.h_lo[0] == 1402839710u, "fleet: fleet-wide h1");
	T_OK((u = fleet_find_user(f, "alice")) != NULL && u->admin, "fleet: alice is an admin");
	T_OK(fleet_parse_duration("30d", &v) == 0 && v == 30 * 86400, "fleet: 30d");
	T_OK(fleet_parse_duration("90s", &v) == 0 && v == 90, "fleet: 90s");
	T_OK(fleet_parse_duration("0", &v) == 0 && v == 0, "fleet: 0");
	T_OK(fleet_parse_duration("10", &v) != 0, "fleet: a bare number is not a duration");
	T_OK(fleet_parse_duration("5w", &v) != 0, "fleet: weeks are not a unit");
	T_OK(fleet_parse_duration("99999999999999999d", &v) != 0, "fleet: overflow refused");
	fleet_free(f);
	source_free(src);
	diag_free(&d);
	T_DONE();
}
