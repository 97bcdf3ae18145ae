/* SPDX-License-Identifier: Apache-2.0 */
/* plan_diff() and plan_print() on desired states of fleet.example (reconciler/plan.c). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "desired.h"
#include "diag.h"
#include "fleet.h"
#include "ipam.h"
#include "plan.h"
#include "source.h"
#include "t.h"

/* The plan printed in fmt, malloc'd. */
static char *
render(const struct plan *p, enum plan_format fmt)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return NULL;
	if (plan_print(f, p, fmt) != 0) {
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	return buf;
}

int
main(void)
{
	struct diag d;
	struct source *src = NULL;
	struct fleet *f = NULL;
	struct ipam *ip = NULL;
	struct desired *a = NULL, *b = NULL;
	struct plan *p = NULL;
	struct user *dave;
	char *out;

	if (sodium_init() < 0)
		return 1;
	diag_init(&d);
	T_OK(source_open_dir(&src, "fleet.example") == 0 && fleet_load(&f, src, &d) == 0,
	    "plan: fleet.example loads");
	if (f == NULL)
		T_DONE();
	fleet_validate(f, &d);
	T_OK(ipam_new(&ip, f->eff.tunnel_pool, f->network.tunnel_pool6.v) == 0 &&
	    desired_build(&a, f, ip, NULL, NULL) == 0, "plan: base builds");

	/* The same state twice: nothing changes. */
	T_OK(plan_diff(&p, a, a, f, f) == 0 && plan_changes(p) == 0 && plan_nodes(p) == 4 &&
	    plan_warnings(p) == 0, "plan: a state against itself has no change");
	out = p != NULL ? render(p, PLAN_TEXT) : NULL;
	T_OK(out != NULL && strcmp(out, "4 nodes: 0 change, 4 unchanged\n") == 0,
	    "plan: text of no change is the summary line");
	free(out);
	plan_free(p);

	/* From nothing: every node is added. */
	T_OK(plan_diff(&p, NULL, a, NULL, f) == 0 && plan_changes(p) == 4, "plan: from nothing, four added");
	out = p != NULL ? render(p, PLAN_TEXT) : NULL;
	T_OK(out != NULL && strstr(out, "+ ams-1 (entry): added; 5 peers, 5 VLESS users") != NULL &&
	    strstr(out, "    + peer RgZc4OAe\xe2\x80\xa6 alice/laptop: 10.80.") != NULL &&
	    strstr(out, "    + link ams-1.fra-1: dial fra-1 at 203.0.113.30:") != NULL,
	    "plan: added nodes list their peers and links");
	free(out);
	plan_free(p);

	/* Dave comes back from leave: his tablet on ams-1, nowhere else. */
	dave = fleet_find_user(f, "dave");
	dave->disabled.v = false;
	T_OK(desired_build(&b, f, ip, NULL, NULL) == 0, "plan: head builds on the same ipam");
	T_OK(plan_diff(&p, a, b, f, f) == 0 && plan_changes(p) == 1 && plan_warnings(p) == 0,
	    "plan: one node changes");
	out = p != NULL ? render(p, PLAN_TEXT) : NULL;
	T_OK(out != NULL && strstr(out, "~ ams-1 (entry): peers 5 -> 6 (+1 -0 ~0)") != NULL &&
	    strstr(out, "    + peer TuNkhl1p\xe2\x80\xa6 dave/tablet: ") != NULL &&
	    strstr(out, "    + vless dave/tablet\n") != NULL &&
	    strstr(out, "4 nodes: 1 change, 3 unchanged\n") != NULL, "plan: text names dave's tablet");
	free(out);
	out = p != NULL ? render(p, PLAN_JSON) : NULL;
	T_OK(out != NULL && strstr(out, "\"summary\": \"4 nodes: 1 change, 3 unchanged\"") != NULL &&
	    strstr(out, "\"key\": \"TuNkhl1p1BxaTImgKsC5v2Nq3QtcuvAgDFkgD9wWTcQ=\"") != NULL,
	    "plan: json carries the full key");
	free(out);
	plan_free(p);

	/* And the other way: dave leaves again. */
	T_OK(plan_diff(&p, b, a, f, f) == 0 && plan_changes(p) == 1, "plan: reverse");
	out = p != NULL ? render(p, PLAN_MARKDOWN) : NULL;
	T_OK(out != NULL && strstr(out, "| - | peer | `TuNkhl1p\xe2\x80\xa6` dave/tablet |") != NULL,
	    "plan: markdown row for the removed peer");
	free(out);
	plan_free(p);

	desired_free(a);
	desired_free(b);
	ipam_free(ip);
	fleet_free(f);
	source_free(src);
	diag_free(&d);
	T_DONE();
}
