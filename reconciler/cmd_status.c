/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `cox status DIR [--json]`: what the controller knows, read from state.db (it works
 * while `cox run` holds the database, and after it stopped): the applied and the last
 * attempted revision with its errors, and per node reachability, the revision it runs,
 * the one cox is bringing it to, drift, the last error and when it was last seen.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cox.h"
#include "err.h"
#include "state.h"
#include "version.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: cox status DIR [--json]\n\n"
	    "Show the fleet revision and its validity, and per node: reachable, the applied\n"
	    "revision, the last attempted one, drift, the last error and when it was last seen.\n"
	    "Exit 0 when every node runs the applied revision, 1 otherwise, 2 on errors.\n");
}

static const char *
ago(int64_t unix_s, char *buf, size_t bufsz)
{
	int64_t d = (int64_t)time(NULL) - unix_s;

	if (unix_s == 0)
		return "never";
	if (d < 0)
		d = 0;
	if (d < 120)
		snprintf(buf, bufsz, "%llds ago", (long long)d);
	else if (d < 7200)
		snprintf(buf, bufsz, "%lldm ago", (long long)d / 60);
	else if (d < 172800)
		snprintf(buf, bufsz, "%lldh ago", (long long)d / 3600);
	else
		snprintf(buf, bufsz, "%lldd ago", (long long)d / 86400);
	return buf;
}

static const char *
node_state(const struct state_node *n, const char *applied)
{
	if (n->last_seen_unix == 0)
		return "never seen";
	if (!n->reachable)
		return "unreachable";
	if (!n->have_applied)
		return "pending";
	if (applied != NULL && strcmp(n->applied_rev, applied) != 0)
		return "drift";
	return "in sync";
}

int
cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct state *st = NULL;
	struct state_node *nodes = NULL;
	size_t n = 0, i, behind = 0;
	char *applied = NULL, *attempted = NULL, *errors = NULL, *fleet = NULL;
	bool json = false;
	int ch, rc = COX_USAGE;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
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
	if (optind != argc - 1) {
		usage(stderr);
		return COX_USAGE;
	}
	if (state_open(&st, argv[optind], STATE_READONLY) != 0 ||
	    state_meta_get(st, "applied_rev", &applied) < 0 ||
	    state_meta_get(st, "attempted_rev", &attempted) < 0 ||
	    state_meta_get(st, "attempted_errors", &errors) < 0 ||
	    state_meta_get(st, "fleet_id", &fleet) < 0 ||
	    state_node_list(st, &nodes, &n) != 0) {
		fprintf(stderr, "cox status: %s\n", err_last());
		goto out;
	}
	for (i = 0; i < n; i++)
		if (strcmp(node_state(&nodes[i], applied), "in sync") != 0)
			behind++;
	if (json) {
		json_t *o = json_object(), *arr = json_array();

		json_object_set_new(o, "fleet", json_string(fleet != NULL ? fleet : ""));
		json_object_set_new(o, "applied_revision", applied != NULL ?
		    json_string(applied) : json_null());
		json_object_set_new(o, "attempted_revision", attempted != NULL ?
		    json_string(attempted) : json_null());
		json_object_set_new(o, "valid", json_boolean(errors == NULL || errors[0] == '\0'));
		json_object_set_new(o, "errors", json_string(errors != NULL ? errors : ""));
		for (i = 0; i < n; i++) {
			const struct state_node *sn = &nodes[i];
			json_t *e = json_object();

			json_object_set_new(e, "name", json_string(sn->name));
			json_object_set_new(e, "state", json_string(node_state(sn, applied)));
			json_object_set_new(e, "reachable", json_boolean(sn->reachable));
			json_object_set_new(e, "enrolled", json_boolean(sn->cert_pem != NULL));
			json_object_set_new(e, "applied_revision", sn->have_applied ?
			    json_string(sn->applied_rev) : json_null());
			json_object_set_new(e, "applied_serial", json_integer(
			    (json_int_t)sn->applied_serial));
			json_object_set_new(e, "attempted_revision", sn->attempted_rev[0] ?
			    json_string(sn->attempted_rev) : json_null());
			json_object_set_new(e, "drift", json_boolean(sn->have_applied &&
			    applied != NULL && strcmp(sn->applied_rev, applied) != 0));
			json_object_set_new(e, "last_error", sn->last_error != NULL ?
			    json_string(sn->last_error) : json_null());
			json_object_set_new(e, "last_seen_unix", json_integer(sn->last_seen_unix));
			json_array_append_new(arr, e);
		}
		json_object_set_new(o, "nodes", arr);
		json_dumpf(o, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', stdout);
		json_decref(o);
	} else {
		printf("fleet %s  applied %.12s", fleet != NULL ? fleet : "?",
		    applied != NULL ? applied : "(none yet)");
		if (errors != NULL && errors[0] != '\0')
			printf("  INVALID revision %.12s refused:\n%s", attempted, errors);
		else
			printf("  valid\n");
		printf("%-20s %-12s %-12s %-12s %-10s %s\n", "NODE", "STATE", "APPLIED",
		    "ATTEMPTED", "SEEN", "LAST ERROR");
		for (i = 0; i < n; i++) {
			const struct state_node *sn = &nodes[i];
			char when[32];

			printf("%-20s %-12s %-12.12s %-12.12s %-10s %s\n", sn->name,
			    node_state(sn, applied), sn->have_applied ? sn->applied_rev : "-",
			    sn->attempted_rev[0] ? sn->attempted_rev : "-",
			    ago(sn->last_seen_unix, when, sizeof(when)),
			    sn->last_error != NULL ? sn->last_error : "");
		}
		printf("%zu nodes: %zu in sync, %zu not\n", n, n - behind, behind);
	}
	rc = applied == NULL || behind > 0 || (errors != NULL && errors[0] != '\0') ?
	    COX_FAIL : COX_OK;
out:
	state_node_list_free(nodes, n);
	free(applied);
	free(attempted);
	free(errors);
	free(fleet);
	state_close(st);
	return rc;
}
