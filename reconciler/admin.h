/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin UI and API (`cox run --admin`, docs/DESIGN.md §10): evhttp on the controller's
 * loop, loopback only unless forced. Reads come from the newest fleet the controller holds
 * and carry its revision (ETag). Writes are git commits made on one committer thread
 * (edit.h), so the loop never waits for git or validation; each accepted write is one commit
 * and the reconciler sees it like any push. Open pages get every change over Server-Sent
 * Events (/api/v1/events).
 */
#ifndef PHAROS_ADMIN_H
#define PHAROS_ADMIN_H

#include <stdbool.h>

struct ctl;
struct admin;
struct load_result;

int	 admin_start(struct admin **out, struct ctl *, const char *addr, bool allow_remote);
void	 admin_stop(struct admin *);
/* The loop applied (or refused) a revision: newer reads, and an event for open pages. */
void	 admin_revision(struct admin *, const struct load_result *);
/* Once a second: node state changes become an event. */
void	 admin_tick(struct admin *);

/* JSON request parsing, shared with the fuzz target: 0 ok, else a 400 message in *why. */
struct json_t;
int	 admin_user_yaml(const struct json_t *user, const char *name, char **yaml,
	    size_t *len, const char **why);

#endif
