/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cox tokens: API tokens for the admin API (docs/DESIGN.md §10) — create (shown once),
 * list, revoke. Creation and revocation are recorded in the audit log, never the token.
 */
#include <getopt.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "cliutil.h"
#include "cox.h"
#include "err.h"
#include "fleet.h"
#include "state.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: cox tokens create DIR --name NAME --scope read|write|admin [--ttl DURATION]\n"
	    "       cox tokens list DIR [--json]\n"
	    "       cox tokens revoke DIR NAME|ID\n\n"
	    "API tokens authenticate scripts to the admin API (Authorization: Bearer TOKEN).\n\n"
	    "create  make a token and print it, once, on standard output: only its SHA-256 is\n"
	    "        kept (in DIR/state.db), so store it now. NAME: a letter, then up to 63 of\n"
	    "        a-z 0-9 . _ -, unique among unrevoked tokens. Scopes are ordered\n"
	    "        read < write < admin; a token grants its own and every lower one.\n"
	    "        --ttl: how long it is valid, as 90s, 30m, 12h or 30d (default 30d, at\n"
	    "        most 366d)\n"
	    "list    every token, revoked and expired ones too: id, name, scope, status,\n"
	    "        created, expires, last used, created by (--json: one JSON object)\n"
	    "revoke  revoke the unrevoked token NAME, or the token with id ID\n\n"
	    "Exit status: 0 done, 1 failed (no such token, a name in use), 2 usage error.\n");
}

static int
open_state(struct state **st, const char *dir, int flags, const char *cmd)
{
	if (state_open(st, dir, flags) != 0) {
		fprintf(stderr, "cox tokens %s: %s\n", cmd, err_last());
		return -1;
	}
	return 0;
}

static int
tokens_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "scope", required_argument, NULL, 's' },
		{ "ttl", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char token[AUTH_TOKEN_SIZE], by[160], user[128], detail[256], t[CLI_TIME_MAX];
	const char *name = NULL, *scope_s = NULL, *ttl_s = "30d";
	struct auth_token info;
	enum auth_scope scope;
	struct state *st = NULL;
	int64_t ttl = 0;
	int ch, rc = COX_FAIL;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'n': name = optarg; break;
		case 's': scope_s = optarg; break;
		case 't': ttl_s = optarg; break;
		case 'h': usage(stdout); return COX_OK;
		default: usage(stderr); return COX_USAGE;
		}
	}
	if (optind + 1 != argc || name == NULL || scope_s == NULL) {
		fprintf(stderr, "cox tokens create: DIR, --name and --scope are required\n");
		usage(stderr);
		return COX_USAGE;
	}
	if (auth_scope_parse(scope_s, &scope) != 0) {
		fprintf(stderr, "cox tokens create: --scope: %s\n", err_last());
		return COX_USAGE;
	}
	if (fleet_parse_duration(ttl_s, &ttl) != 0 || ttl < 1 || ttl > AUTH_TOKEN_TTL_MAX) {
		fprintf(stderr, "cox tokens create: --ttl wants a duration like 90s, 30m, 12h or "
		    "30d, at most %dd\n", AUTH_TOKEN_TTL_MAX / 86400);
		return COX_USAGE;
	}
	if (open_state(&st, argv[optind], 0, "create") != 0)
		return COX_FAIL;
	snprintf(by, sizeof(by), "unix:%s", cli_user(user, sizeof(user)));
	if (state_begin(st) != 0 ||
	    auth_token_create(st, name, scope, ttl, by, (int64_t)time(NULL), token, &info) != 0)
		goto fail;
	snprintf(detail, sizeof(detail), "id=%lld scope=%s expires=%s user=%s",
	    (long long)info.id, auth_scope_name(scope), cli_time(t, info.expires_unix, "?"), user);
	if (audit_append(st, "cox", "token.created", name, detail) != 0 || state_commit(st) != 0)
		goto fail;
	printf("%s\n", token);
	fflush(stdout);
	fprintf(stderr, "cox tokens create: token %s (id %lld, scope %s) valid until %s.\n"
	    "Store it now: it is shown only this once and cannot be recovered.\n", name,
	    (long long)info.id, auth_scope_name(scope), t);
	rc = ferror(stdout) ? COX_FAIL : COX_OK;
	goto out;
fail:
	fprintf(stderr, "cox tokens create: %s\n", err_last());
	state_rollback(st);
out:
	sodium_memzero(token, sizeof(token));
	state_close(st);
	return rc;
}

static const char *
status_of(const struct auth_token *t, int64_t now)
{
	if (t->revoked_unix != 0)
		return "revoked";
	return now >= t->expires_unix ? "expired" : "active";
}

static json_t *
jtime(int64_t t)
{
	char buf[CLI_TIME_MAX];

	return t == 0 ? json_null() : json_string(cli_time(buf, t, ""));
}

static json_t *
token_json(const struct auth_token *t, int64_t now)
{
	char by[sizeof(t->created_by)];
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "id", json_integer(t->id));
	json_object_set_new(o, "name", json_string(t->name));
	json_object_set_new(o, "scope", json_string(auth_scope_name(t->scope)));
	json_object_set_new(o, "status", json_string(status_of(t, now)));
	json_object_set_new(o, "created", jtime(t->created_unix));
	json_object_set_new(o, "expires", jtime(t->expires_unix));
	json_object_set_new(o, "last_used", jtime(t->last_used_unix));
	json_object_set_new(o, "revoked", jtime(t->revoked_unix));
	json_object_set_new(o, "created_by",
	    json_string(cli_clean(by, sizeof(by), t->created_by)));
	return o;
}

static int
tokens_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char c[CLI_TIME_MAX], e[CLI_TIME_MAX], u[CLI_TIME_MAX], by[128];
	struct auth_token *v = NULL;
	struct state *st = NULL;
	int64_t now = (int64_t)time(NULL);
	json_t *root, *arr, *o;
	size_t n = 0, i;
	bool json = false;
	int ch, rc = COX_FAIL;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'j': json = true; break;
		case 'h': usage(stdout); return COX_OK;
		default: usage(stderr); return COX_USAGE;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "cox tokens list: DIR is required (and only DIR)\n");
		return COX_USAGE;
	}
	if (open_state(&st, argv[optind], STATE_READONLY, "list") != 0)
		return COX_FAIL;
	if (auth_token_list(st, &v, &n) != 0) {
		fprintf(stderr, "cox tokens list: %s\n", err_last());
		goto out;
	}
	if (json) {
		root = json_object();
		arr = json_array();
		if (root == NULL || arr == NULL) {
			json_decref(root);
			json_decref(arr);
			fprintf(stderr, "cox tokens list: out of memory\n");
			goto out;
		}
		json_object_set_new(root, "tokens", arr);
		for (i = 0; i < n; i++) {
			if ((o = token_json(&v[i], now)) == NULL) {
				json_decref(root);
				fprintf(stderr, "cox tokens list: out of memory\n");
				goto out;
			}
			json_array_append_new(arr, o);
		}
		if (json_dumpf(root, stdout, JSON_INDENT(2)) == 0)
			putchar('\n');
		json_decref(root);
	} else if (n == 0) {
		printf("no tokens (cox tokens create DIR --name NAME --scope SCOPE)\n");
	} else {
		printf("%-4s %-20s %-6s %-8s %-20s %-20s %-20s %s\n", "ID", "NAME", "SCOPE",
		    "STATUS", "CREATED", "EXPIRES", "LAST USED", "CREATED BY");
		for (i = 0; i < n; i++)
			printf("%-4lld %-20s %-6s %-8s %-20s %-20s %-20s %s\n", (long long)v[i].id,
			    v[i].name, auth_scope_name(v[i].scope), status_of(&v[i], now),
			    cli_time(c, v[i].created_unix, "-"), cli_time(e, v[i].expires_unix, "-"),
			    cli_time(u, v[i].last_used_unix, "never"),
			    cli_clean(by, sizeof(by), v[i].created_by));
	}
	fflush(stdout);
	rc = ferror(stdout) ? COX_FAIL : COX_OK;
out:
	free(v);
	state_close(st);
	return rc;
}

static int
tokens_revoke(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char user[128], detail[256], what[AUTH_TOKEN_NAME_MAX];
	struct auth_token info;
	struct state *st = NULL;
	int ch, r, rc = COX_FAIL;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'h': usage(stdout); return COX_OK;
		default: usage(stderr); return COX_USAGE;
		}
	}
	if (optind + 2 != argc) {
		fprintf(stderr, "cox tokens revoke: DIR and NAME (or ID) are required\n");
		usage(stderr);
		return COX_USAGE;
	}
	if (open_state(&st, argv[optind], 0, "revoke") != 0)
		return COX_FAIL;
	if (state_begin(st) != 0 || (r = auth_token_revoke(st, argv[optind + 1],
	    (int64_t)time(NULL), &info)) < 0)
		goto fail;
	if (r == AUTH_DENIED) {
		fprintf(stderr, "cox tokens revoke: no unrevoked token named or numbered '%s' "
		    "(see cox tokens list)\n", cli_clean(what, sizeof(what), argv[optind + 1]));
		state_rollback(st);
		goto out;
	}
	snprintf(detail, sizeof(detail), "id=%lld scope=%s user=%s", (long long)info.id,
	    auth_scope_name(info.scope), cli_user(user, sizeof(user)));
	if (audit_append(st, "cox", "token.revoked", info.name, detail) != 0 ||
	    state_commit(st) != 0)
		goto fail;
	printf("cox tokens revoke: revoked %s (id %lld)\n", info.name, (long long)info.id);
	rc = COX_OK;
	goto out;
fail:
	fprintf(stderr, "cox tokens revoke: %s\n", err_last());
	state_rollback(st);
out:
	state_close(st);
	return rc;
}

int
cmd_tokens(int argc, char **argv)
{
	static const struct cli_sub subs[] = {
		{ "create", tokens_create },
		{ "list", tokens_list },
		{ "revoke", tokens_revoke },
		{ NULL, NULL },
	};

	return cli_dispatch("tokens", argc, argv, subs, "create, list or revoke", usage);
}
