/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cox validate: every error of a fleet repository, sorted, as path:line:col lines (or
 * JSON, or GitHub annotations). Exit 0 valid, 1 invalid, 2 usage or I/O error.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cox.h"
#include "diag.h"
#include "err.h"
#include "fleet.h"
#include "source.h"
#include "version.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: cox validate [--format text|json|github] [-q] [PATH]\n"
	    "       cox validate [--format text|json|github] [-q] --repo GITDIR [--rev REV]\n\n"
	    "Check a fleet repository: YAML syntax, the fleet's shape, and the semantic rules\n"
	    "(unique names, references, addresses, AmneziaWG and REALITY parameters, cascade\n"
	    "MTU). Every problem is printed, sorted, as path:line:col: error|warning: message.\n\n"
	    "  PATH              a folder holding fleet.yaml, or the fleet.yaml file (default .)\n"
	    "  --repo GITDIR     read a revision straight from a git repository (no checkout)\n"
	    "  --rev REV         the revision to read with --repo (default HEAD)\n"
	    "  --format FMT      text (default), json, or github (workflow annotations)\n"
	    "  -q, --quiet       no summary line on standard error\n"
	    "  -h, --help        this help\n\n"
	    "Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage or I/O error.\n");
}

int
cmd_validate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "repo", required_argument, NULL, 'r' },
		{ "rev", required_argument, NULL, 'R' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	enum diag_format fmt = DIAG_TEXT;
	const char *repo = NULL, *rev = NULL, *path = ".";
	struct source *src = NULL;
	struct fleet *fleet = NULL;
	struct diag d;
	bool quiet = false;
	int ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "f:qh", opts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			if (diag_parse_format(optarg, &fmt) != 0) {
				fprintf(stderr, "cox validate: --format must be text, json or github\n");
				return COX_USAGE;
			}
			break;
		case 'r':
			repo = optarg;
			break;
		case 'R':
			rev = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			usage(stdout);
			return COX_OK;
		case 'V':
			printf("cox %s\n", PHAROS_VERSION);
			return COX_OK;
		default:
			usage(stderr);
			return COX_USAGE;
		}
	}
	if (optind < argc)
		path = argv[optind++];
	if (optind < argc || (repo != NULL && optind > 1 && argc > 1 && path != NULL &&
	    strcmp(path, ".") != 0) || (rev != NULL && repo == NULL)) {
		fprintf(stderr, "cox validate: give either PATH or --repo GITDIR [--rev REV]\n");
		usage(stderr);
		return COX_USAGE;
	}
	if (repo != NULL)
		rc = source_open_git(&src, repo, rev != NULL ? rev : "HEAD");
	else
		rc = source_open_dir(&src, path);
	if (rc != 0) {
		fprintf(stderr, "cox validate: %s\n", err_last());
		return COX_USAGE;
	}
	diag_init(&d);
	if ((rc = fleet_load(&fleet, src, &d)) != 0) {
		fprintf(stderr, "cox validate: %s\n", err_last());
		diag_free(&d);
		source_free(src);
		return COX_USAGE;
	}
	fleet_validate(fleet, &d);
	{
		long counts[] = { (long)fleet->nnodes, (long)fleet->nrelays, (long)fleet->nusers,
		    (long)fleet->ndevices };
		static const char *const names[] = { "nodes", "relays", "users", "devices", NULL };
		diag_print(&d, stdout, fmt, "fleet", counts, names);
	}
	if (!quiet && fmt != DIAG_JSON) {
		const char *what = repo != NULL ? repo : path;
		if (d.nerr > 0)
			fprintf(stderr, "cox validate: %s%s%s: invalid: %zu error%s, %zu warning%s\n",
			    what, repo ? "@" : "", repo ? source_revision(src) : "", d.nerr,
			    d.nerr == 1 ? "" : "s", d.nwarn, d.nwarn == 1 ? "" : "s");
		else
			fprintf(stderr, "cox validate: %s%s%s: valid: %zu node%s, %zu relay%s, "
			    "%zu user%s, %zu device%s, %zu warning%s\n", what, repo ? "@" : "",
			    repo ? source_revision(src) : "", fleet->nnodes,
			    fleet->nnodes == 1 ? "" : "s", fleet->nrelays,
			    fleet->nrelays == 1 ? "" : "s", fleet->nusers,
			    fleet->nusers == 1 ? "" : "s", fleet->ndevices,
			    fleet->ndevices == 1 ? "" : "s", d.nwarn, d.nwarn == 1 ? "" : "s");
	}
	rc = d.nerr > 0 ? COX_FAIL : COX_OK;
	fleet_free(fleet);
	diag_free(&d);
	source_free(src);
	fflush(stdout);
	if (ferror(stdout))
		return COX_USAGE;
	return rc;
}
