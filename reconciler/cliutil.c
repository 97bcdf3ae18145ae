/* SPDX-License-Identifier: Apache-2.0 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cliutil.h"
#include "cox.h"
#include "diag.h"
#include "err.h"
#include "fleet.h"
#include "source.h"
#include "state.h"
#include "version.h"

const char *
cli_time(char buf[CLI_TIME_MAX], int64_t t, const char *zero)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, CLI_TIME_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, CLI_TIME_MAX, "%s", t == 0 ? zero : "?");
	return buf;
}

const char *
cli_clean(char *dst, size_t dstsz, const char *src)
{
	size_t n = 0;
	unsigned char c;

	if (dstsz == 0)
		return dst;
	for (; src != NULL && *src != '\0' && n + 1 < dstsz; src++) {
		c = (unsigned char)*src;
		dst[n++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	dst[n] = '\0';
	return dst;
}

const char *
cli_user(char *buf, size_t bufsz)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];

	if (getpwuid_r(getuid(), &pw, tmp, sizeof(tmp), &res) == 0 && res != NULL)
		snprintf(buf, bufsz, "%s", pw.pw_name);
	else
		snprintf(buf, bufsz, "uid:%u", (unsigned)getuid());
	return buf;
}

int
cli_load_applied(struct fleet **f, struct source **src, struct state *st)
{
	char gitdir[4096], rev[300], *branch = NULL;
	struct diag d;
	int rc;

	*f = NULL;
	*src = NULL;
	if ((rc = state_meta_get(st, "branch", &branch)) < 0)
		return rc;
	snprintf(rev, sizeof(rev), "refs/heads/%s", branch != NULL ? branch : "main");
	free(branch);
	if ((size_t)snprintf(gitdir, sizeof(gitdir), "%s/%s", state_dir(st), STATE_GIT) >=
	    sizeof(gitdir)) {
		err_set("%s: path too long", state_dir(st));
		return ERR_TOOBIG;
	}
	if ((rc = source_open_git(src, gitdir, rev)) != 0)
		return rc;
	diag_init(&d);
	if ((rc = fleet_load(f, *src, &d)) == 0)
		fleet_validate(*f, &d);
	diag_free(&d);
	if (rc != 0) {
		source_free(*src);
		*src = NULL;
	}
	return rc;
}

int
cli_dispatch(const char *group, int argc, char **argv, const struct cli_sub *subs,
    const char *names, void (*usage)(FILE *))
{
	const struct cli_sub *s;

	if (argc < 2) {
		usage(stderr);
		return COX_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return COX_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("cox %s\n", PHAROS_VERSION);
		return COX_OK;
	}
	for (s = subs; s->name != NULL; s++)
		if (strcmp(argv[1], s->name) == 0)
			return s->run(argc - 1, argv + 1);
	fprintf(stderr, "cox %s: unknown subcommand '%s' (%s)\n", group, argv[1], names);
	usage(stderr);
	return COX_USAGE;
}
