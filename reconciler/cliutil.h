/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by the cox subcommands' output. */
#ifndef PHAROS_CLIUTIL_H
#define PHAROS_CLIUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct fleet;
struct source;
struct state;

#define CLI_TIME_MAX	32

/* "2024-01-02T03:04:05Z" (UTC), or `zero` when t is 0. */
const char *cli_time(char buf[CLI_TIME_MAX], int64_t t, const char *zero);
/*
 * src made safe for a terminal line: control characters and DEL become '?', so a value
 * that came from a node or a push cannot move the cursor or forge a line. Truncates.
 */
const char *cli_clean(char *dst, size_t dstsz, const char *src);
/* The name of the user running this command, for audit details ("uid:N" if unknown). */
const char *cli_user(char *buf, size_t bufsz);
/*
 * The fleet at the head of the applied branch (state meta "branch", default main) of the
 * state directory's fleet.git, validated for the effective values (admin roles, defaults).
 * Both are the caller's: fleet_free(), then source_free().
 */
int	 cli_load_applied(struct fleet **f, struct source **src, struct state *st);

/*
 * `cox GROUP SUB ...`: argv[0] is GROUP; runs the subcommand named by argv[1] with
 * (argc - 1, argv + 1), or answers --help/-h/help and --version, or says which subcommands
 * there are (`names`, e.g. "list, add or remove") and prints usage. subs ends with a NULL
 * name. Returns the COX_* status.
 */
struct cli_sub {
	const char	*name;
	int		(*run)(int argc, char **argv);
};
int	 cli_dispatch(const char *group, int argc, char **argv, const struct cli_sub *subs,
	    const char *names, void (*usage)(FILE *));

#endif
