/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cox plan: what a change to the fleet repository does to every node, for a pull request.
 * Both revisions are read from git objects and validated; addresses come from one ipam,
 * seeded by building the base first, so unchanged devices keep theirs. Exit 0 no change,
 * 1 changes, 2 usage, I/O or an invalid head (BRIEF.md §4).
 */
#include <getopt.h>
#include <git2.h>
#include <stdio.h>
#include <string.h>

#include "cox.h"
#include "desired.h"
#include "diag.h"
#include "err.h"
#include "fleet.h"
#include "ipam.h"
#include "plan.h"
#include "source.h"
#include "version.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: cox plan --repo GITDIR [--base REV] [--head REV] [--format text|markdown|json]\n\n"
	    "Show what changes on every node between two revisions of a fleet repository: client\n"
	    "peers and VLESS users added, removed or changed, interface and REALITY settings,\n"
	    "cascade links and routes, nodes added or removed, and warnings for dangerous plans.\n"
	    "Both revisions are read straight from git objects (no checkout) and validated.\n\n"
	    "  --repo GITDIR     the repository, bare or a clone\n"
	    "  --base REV        the revision the change starts from (default: the merge base of\n"
	    "                    HEAD and main, or origin/main)\n"
	    "  --head REV        the proposed revision (default HEAD)\n"
	    "  --format FMT      text (default), markdown (for a pull request comment) or json\n"
	    "  -h, --help        this help\n\n"
	    "The last line of text output is \"N nodes: A change, U unchanged\".\n"
	    "Exit status: 0 no node changes, 1 some node changes, 2 usage or I/O error, or an\n"
	    "invalid revision (its errors are printed as path:line:col: error: message).\n");
}

static int
git_err(const char *what)
{
	const git_error *e = git_error_last();

	err_set("%s: %s", what, e != NULL && e->message != NULL ? e->message : "git error");
	return ERR_LIB;
}

/* The merge base of head and main (or origin/main), as hex. */
static int
default_base(const char *gitdir, const char *head, char out[GIT_OID_HEXSZ + 1])
{
	static const char *const mains[] = { "main", "origin/main", "refs/remotes/origin/main" };
	git_repository *repo = NULL;
	git_object *h = NULL, *m = NULL;
	git_oid base;
	size_t i;
	int rc = 0;

	git_libgit2_init();
	if (git_repository_open_ext(&repo, gitdir, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0) {
		rc = git_err(gitdir);
		goto out;
	}
	if (git_revparse_single(&h, repo, head) != 0) {
		rc = git_err(head);
		goto out;
	}
	for (i = 0; i < sizeof(mains) / sizeof(mains[0]); i++)
		if (git_revparse_single(&m, repo, mains[i]) == 0)
			break;
	if (m == NULL) {
		err_set("no --base given and no branch main or origin/main to start from");
		rc = ERR_INVAL;
		goto out;
	}
	if (git_merge_base(&base, repo, git_object_id(h), git_object_id(m)) != 0) {
		rc = git_err("merge base of the head and main");
		goto out;
	}
	git_oid_tostr(out, GIT_OID_HEXSZ + 1, &base);
out:
	git_object_free(h);
	git_object_free(m);
	git_repository_free(repo);
	git_libgit2_shutdown();
	return rc;
}

int
cmd_plan(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "base", required_argument, NULL, 'b' },
		{ "head", required_argument, NULL, 'H' },
		{ "format", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *repo = NULL, *base = NULL, *head = "HEAD";
	enum plan_format fmt = PLAN_TEXT;
	char mb[GIT_OID_HEXSZ + 1];
	struct plan_run *pr = NULL;
	const struct plan *p;
	int ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			repo = optarg;
			break;
		case 'b':
			base = optarg;
			break;
		case 'H':
			head = optarg;
			break;
		case 'f':
			if (plan_parse_format(optarg, &fmt) != 0) {
				fprintf(stderr, "cox plan: --format must be text, markdown or json\n");
				return COX_USAGE;
			}
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
	if (optind < argc || repo == NULL) {
		fprintf(stderr, "cox plan: %s\n", repo == NULL ? "--repo GITDIR is required" :
		    "unexpected argument");
		usage(stderr);
		return COX_USAGE;
	}
	if (base == NULL) {
		if (default_base(repo, head, mb) != 0) {
			fprintf(stderr, "cox plan: %s\n", err_last());
			return COX_USAGE;
		}
		base = mb;
	}
	rc = COX_USAGE;
	if (plan_run(&pr, repo, base, head, stderr) != 0)	/* it said why */
		goto out;
	p = plan_run_plan(pr);
	if (plan_print(stdout, p, fmt) != 0 || fflush(stdout) != 0) {
		fprintf(stderr, "cox plan: %s\n", err_last());
		goto out;
	}
	rc = plan_changes(p) > 0 ? COX_FAIL : COX_OK;
out:
	plan_run_free(pr);
	return rc;
}
