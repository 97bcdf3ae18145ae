/* SPDX-License-Identifier: Apache-2.0 */
/* cox audit: list the audit log, or verify its hash chain (docs/DESIGN.md §7). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cliutil.h"
#include "cox.h"
#include "err.h"
#include "state.h"
#include "version.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: cox audit DIR [--limit N] [--json]\n"
	    "       cox audit verify DIR\n\n"
	    "The controller's audit log: every change it made or refused, oldest first, each\n"
	    "entry chained to the one before by SHA-256 so a changed, removed or reordered\n"
	    "entry is detected.\n\n"
	    "  --limit N   only the N most recent entries\n"
	    "  --json      one JSON array, with each entry's hash\n"
	    "  verify      recompute the chain: prints \"audit log intact: N entries\" (exit 0)\n"
	    "              or \"audit log broken at entry S: why\" (exit 1)\n\n"
	    "Exit status: 0 done (intact), 1 broken or failed, 2 usage error.\n"
	    "(A state directory literally named \"verify\": write ./verify.)\n");
}

/* A JSON string of text that may not be UTF-8 (an actor from a push, say). */
static json_t *
jstr(const char *s)
{
	char clean[4096];
	json_t *j = json_string(s != NULL ? s : "");

	if (j == NULL)
		j = json_string(cli_clean(clean, sizeof(clean), s));
	return j;
}

static int
audit_show(struct state *st, long long limit, bool json)
{
	struct audit_entry *v = NULL;
	char t[CLI_TIME_MAX], a[128], b[128], c[256], d[1024], hex[65];
	size_t n = 0, i;
	json_t *arr, *o;
	int rc = COX_OK;

	if (audit_list(st, limit, &v, &n) != 0) {
		fprintf(stderr, "cox audit: %s\n", err_last());
		return COX_FAIL;
	}
	if (json) {
		if ((arr = json_array()) == NULL) {
			audit_list_free(v, n);
			return COX_FAIL;
		}
		for (i = 0; i < n; i++) {
			if ((o = json_object()) == NULL) {
				rc = COX_FAIL;
				break;
			}
			for (size_t k = 0; k < 32; k++)
				snprintf(hex + 2 * k, 3, "%02x", v[i].hash[k]);
			json_object_set_new(o, "seq", json_integer(v[i].seq));
			json_object_set_new(o, "time_unix", json_integer(v[i].time_unix));
			json_object_set_new(o, "time",
			    json_string(cli_time(t, v[i].time_unix, "")));
			json_object_set_new(o, "actor", jstr(v[i].actor));
			json_object_set_new(o, "action", jstr(v[i].action));
			json_object_set_new(o, "object", jstr(v[i].object));
			json_object_set_new(o, "detail", jstr(v[i].detail));
			json_object_set_new(o, "hash", json_string(hex));
			json_array_append_new(arr, o);
		}
		if (rc == COX_OK && json_dumpf(arr, stdout, JSON_INDENT(2)) == 0)
			putchar('\n');
		json_decref(arr);
	} else {
		for (i = 0; i < n; i++)
			printf("%6lld  %s  %-16s %-18s %-20s %s\n", (long long)v[i].seq,
			    cli_time(t, v[i].time_unix, "?"), cli_clean(a, sizeof(a), v[i].actor),
			    cli_clean(b, sizeof(b), v[i].action),
			    cli_clean(c, sizeof(c), v[i].object),
			    cli_clean(d, sizeof(d), v[i].detail));
	}
	audit_list_free(v, n);
	fflush(stdout);
	return rc == COX_OK && ferror(stdout) ? COX_FAIL : rc;
}

int
cmd_audit(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "limit", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct audit_result r;
	struct state *st = NULL;
	long long limit = 0;
	bool json = false, verify = false;
	char *end;
	int ch, rc;

	if (argc >= 2 && strcmp(argv[1], "verify") == 0) {
		verify = true;
		argc--;
		argv++;
	}
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			errno = 0;
			limit = strtoll(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || limit < 1) {
				fprintf(stderr, "cox audit: --limit wants a positive number\n");
				return COX_USAGE;
			}
			break;
		case 'j':
			json = true;
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
	if (optind + 1 != argc || (verify && (json || limit != 0))) {
		fprintf(stderr, "cox audit: %s\n", verify ? "verify takes DIR only" :
		    "DIR is required (and only DIR)");
		usage(stderr);
		return COX_USAGE;
	}
	if (state_open(&st, argv[optind], STATE_READONLY) != 0) {
		fprintf(stderr, "cox audit: %s\n", err_last());
		return verify ? COX_USAGE : COX_FAIL;
	}
	if (!verify) {
		rc = audit_show(st, limit, json);
		state_close(st);
		return rc;
	}
	if ((rc = audit_verify(st, &r)) < 0) {
		fprintf(stderr, "cox audit verify: %s\n", err_last());
		rc = COX_USAGE;
	} else if (rc == 0) {
		printf("audit log intact: %lld entr%s\n", (long long)r.entries,
		    r.entries == 1 ? "y" : "ies");
		rc = COX_OK;
	} else {
		printf("audit log broken at entry %lld: %s\n", (long long)r.first_bad, r.why);
		rc = COX_FAIL;
	}
	state_close(st);
	return rc;
}
