/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What changes on every node between two desired states (desired.h): client peers and
 * VLESS users added, removed or changed, interface and REALITY settings, cascade links and
 * routes, nodes added and removed, and warnings for dangerous plans. `cox plan` prints it
 * for a pull request; the reconciler and the admin API call plan_diff() on the desired
 * states they hold. Nodes whose content hash is unchanged are not decoded; client blocks
 * shared between nodes are compared once per (base, head) pair (docs/DESIGN.md §8).
 */
#ifndef PHAROS_PLAN_H
#define PHAROS_PLAN_H

#include <stddef.h>
#include <stdio.h>

struct desired;
struct fleet;
struct plan;

enum plan_format { PLAN_TEXT, PLAN_MARKDOWN, PLAN_JSON };

/*
 * Compare base with head. base (with bf) may be NULL: every node is added. bf and hf are
 * the fleets the desired states were built from; they name devices ("user/device") and
 * must outlive the plan, as must base and head.
 */
int	 plan_diff(struct plan **out, const struct desired *base, const struct desired *head,
	    const struct fleet *bf, const struct fleet *hf);
void	 plan_free(struct plan *);
/* Shown in the heading and the JSON (e.g. commit ids); copied. Either may be NULL. */
void	 plan_set_revisions(struct plan *, const char *base, const char *head);
/* Nodes in base or head; of those, added, removed or changed; warnings. */
size_t	 plan_nodes(const struct plan *);
size_t	 plan_changes(const struct plan *);
size_t	 plan_warnings(const struct plan *);
/* The whole plan; the summary line is "N nodes: A change, U unchanged". 0 or ERR_SYS. */
int	 plan_print(FILE *, const struct plan *, enum plan_format);
int	 plan_parse_format(const char *s, enum plan_format *out);

#endif
