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

/*
 * Both revisions of a repository read from git objects (no checkout), validated and built
 * on one ipam seeded by the base (unchanged devices keep their addresses), and their plan:
 * what `cox plan` and the admin API's review pages show (planrun.c). Blocking: seconds on
 * a 100,000-device fleet. Errors — a revision that does not resolve, or an invalid one with
 * its path:line:col diagnostics — go to errs (may be NULL); returns 0, or ERR_INVAL when a
 * revision is missing or invalid (*out NULL), or another ERR_* code.
 */
struct plan_run;
int	 plan_run(struct plan_run **out, const char *gitdir, const char *base, const char *head,
	    FILE *errs);
const struct plan *plan_run_plan(const struct plan_run *);
/* The commit ids the revisions resolved to. */
const char *plan_run_base(const struct plan_run *);
const char *plan_run_head(const struct plan_run *);
void	 plan_run_free(struct plan_run *);

#endif
