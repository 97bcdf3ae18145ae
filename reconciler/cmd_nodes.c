/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cox nodes: the fleet's nodes (from the applied branch) joined with what state.db knows
 * about them, and manual enrollment: a node's CSR in, the files its buoy state dir needs
 * out (docs/DESIGN.md §7).
 */
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <git2.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cliutil.h"
#include "cox.h"
#include "ctlpki.h"
#include "err.h"
#include "fleet.h"
#include "fsutil.h"
#include "source.h"
#include "state.h"

#define CSR_MAX		(64 * 1024)

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: cox nodes list DIR [--json]\n"
	    "       cox nodes add DIR NAME --csr FILE --out OUTDIR [--control HOST:PORT]\n"
	    "       cox nodes remove DIR NAME\n\n"
	    "list    the nodes of the applied branch's head, with what the controller knows:\n"
	    "        enrolled, reachable, the revision each last applied, last seen, last error\n"
	    "add     enroll node NAME (nodes/NAME.yaml must be on the applied branch) from its\n"
	    "        certificate request (`buoy csr --fleet FLEET --name NAME`; FILE - reads\n"
	    "        standard input): the Fleet CA signs it, and OUTDIR (made 0700 if needed)\n"
	    "        gets what buoy's state dir needs next to its own node.key: ca.pem,\n"
	    "        node.pem and controller.pub. Enrolling again replaces the certificate.\n"
	    "        --control: where cox dials this node's buoy, overriding the fleet's\n"
	    "        `control` / ssh host (kept in state.db; e.g. a private address)\n"
	    "remove  forget a node's enrollment\n\n"
	    "Every change is recorded in the audit log. Exit status: 0 done, 1 failed,\n"
	    "2 usage error.\n");
}

static int
open_state(struct state **st, const char *dir, int flags)
{
	if (state_open(st, dir, flags) != 0) {
		fprintf(stderr, "cox nodes: %s\n", err_last());
		return -1;
	}
	return 0;
}

static void
roles_text(char *buf, size_t bufsz, const struct node *n)
{
	snprintf(buf, bufsz, "%s%s%s%s", (n->roles_mask & ROLE_ENTRY) ? "entry" : "",
	    (n->roles_mask & ROLE_ENTRY) && (n->roles_mask & ROLE_EXIT) ? "," : "",
	    (n->roles_mask & ROLE_EXIT) ? "exit" : "", n->idle.v ? ",idle" : "");
}

struct row {
	const char		*name;
	const struct node	*fn;	/* in the fleet; NULL: only in state.db */
	const struct state_node	*sn;	/* in state.db; NULL: never enrolled */
};

static int
row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct row *)a)->name, ((const struct row *)b)->name);
}

static json_t *
row_json(const struct row *r)
{
	json_t *o = json_object(), *roles = json_array();
	const struct state_node *sn = r->sn;

	if (o == NULL || roles == NULL) {
		json_decref(o);
		json_decref(roles);
		return NULL;
	}
	if (r->fn != NULL) {
		if (r->fn->roles_mask & ROLE_ENTRY)
			json_array_append_new(roles, json_string("entry"));
		if (r->fn->roles_mask & ROLE_EXIT)
			json_array_append_new(roles, json_string("exit"));
	}
	json_object_set_new(o, "name", json_string(r->name));
	json_object_set_new(o, "in_fleet", json_boolean(r->fn != NULL));
	json_object_set_new(o, "roles", roles);
	json_object_set_new(o, "region", r->fn && r->fn->region.v ?
	    json_string(r->fn->region.v) : json_null());
	json_object_set_new(o, "idle", json_boolean(r->fn != NULL && r->fn->idle.v));
	json_object_set_new(o, "enrolled", json_boolean(sn != NULL && sn->cert_pem != NULL));
	json_object_set_new(o, "enrolled_unix", json_integer(sn ? sn->enrolled_unix : 0));
	json_object_set_new(o, "reachable", json_boolean(sn != NULL && sn->reachable));
	json_object_set_new(o, "applied_rev", sn && sn->have_applied ?
	    json_string(sn->applied_rev) : json_null());
	json_object_set_new(o, "applied_serial", json_integer(sn && sn->have_applied ?
	    (json_int_t)sn->applied_serial : 0));
	json_object_set_new(o, "last_seen_unix", json_integer(sn ? sn->last_seen_unix : 0));
	/* jansson refuses invalid UTF-8: a node's error text is shown cleaned */
	if (sn != NULL && sn->last_error != NULL) {
		char clean[512];
		json_t *e = json_string(sn->last_error);
		if (e == NULL)
			e = json_string(cli_clean(clean, sizeof(clean), sn->last_error));
		json_object_set_new(o, "last_error", e != NULL ? e : json_string("?"));
	} else {
		json_object_set_new(o, "last_error", json_null());
	}
	return o;
}

static int
nodes_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct state *st = NULL;
	struct state_node *sv = NULL;
	struct fleet *fleet = NULL;
	struct source *src = NULL;
	struct row *rows = NULL;
	size_t nsv = 0, nrows = 0, i, j;
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
		fprintf(stderr, "cox nodes list: DIR is required (and only DIR)\n");
		return COX_USAGE;
	}
	if (open_state(&st, argv[optind], STATE_READONLY) != 0)
		return COX_FAIL;
	if (cli_load_applied(&fleet, &src, st) != 0 || state_node_list(st, &sv, &nsv) != 0) {
		fprintf(stderr, "cox nodes list: %s\n", err_last());
		goto out;
	}
	if ((rows = calloc(fleet->nnodes + nsv + 1, sizeof(*rows))) == NULL) {
		fprintf(stderr, "cox nodes list: out of memory\n");
		goto out;
	}
	for (i = 0; i < fleet->nnodes; i++) {
		rows[nrows].name = fleet->nodes[i]->name;
		rows[nrows].fn = fleet->nodes[i];
		for (j = 0; j < nsv; j++)
			if (strcmp(sv[j].name, fleet->nodes[i]->name) == 0)
				rows[nrows].sn = &sv[j];
		nrows++;
	}
	for (j = 0; j < nsv; j++) {
		if (fleet_find_node(fleet, sv[j].name) != NULL)
			continue;
		rows[nrows].name = sv[j].name;
		rows[nrows].sn = &sv[j];
		nrows++;
	}
	qsort(rows, nrows, sizeof(*rows), row_cmp);
	if (json) {
		json_t *root = json_object(), *arr = json_array(), *o;

		if (root == NULL || arr == NULL) {
			json_decref(root);
			json_decref(arr);
			fprintf(stderr, "cox nodes list: out of memory\n");
			goto out;
		}
		json_object_set_new(root, "revision", json_string(source_revision(src)));
		for (i = 0; i < nrows; i++) {
			if ((o = row_json(&rows[i])) == NULL) {
				json_decref(root);
				json_decref(arr);
				fprintf(stderr, "cox nodes list: out of memory\n");
				goto out;
			}
			json_array_append_new(arr, o);
		}
		json_object_set_new(root, "nodes", arr);
		if (json_dumpf(root, stdout, JSON_INDENT(2) | JSON_SORT_KEYS) != 0) {
			json_decref(root);
			goto out;
		}
		putchar('\n');
		json_decref(root);
	} else {
		printf("%-20s %-16s %-12s %-8s %-9s %-12s %-20s %s\n", "NAME", "ROLES", "REGION",
		    "ENROLLED", "REACHABLE", "APPLIED", "LAST SEEN", "LAST ERROR");
		for (i = 0; i < nrows; i++) {
			const struct state_node *sn = rows[i].sn;
			char roles[32], t[CLI_TIME_MAX], err[256], region[64];

			if (rows[i].fn != NULL)
				roles_text(roles, sizeof(roles), rows[i].fn);
			else
				snprintf(roles, sizeof(roles), "(not in fleet)");
			cli_clean(region, sizeof(region), rows[i].fn && rows[i].fn->region.v ?
			    rows[i].fn->region.v : "-");
			printf("%-20s %-16s %-12s %-8s %-9s %-12.12s %-20s %s\n", rows[i].name,
			    roles, region, sn && sn->cert_pem ? "yes" : "no",
			    sn && sn->reachable ? "yes" : "no",
			    sn && sn->have_applied ? sn->applied_rev : "-",
			    cli_time(t, sn ? sn->last_seen_unix : 0, "never"),
			    sn && sn->last_error ? cli_clean(err, sizeof(err), sn->last_error) :
			    "-");
		}
	}
	fflush(stdout);
	rc = ferror(stdout) ? COX_FAIL : COX_OK;
out:
	free(rows);
	state_node_list_free(sv, nsv);
	fleet_free(fleet);
	source_free(src);
	state_close(st);
	return rc;
}

/* A CSR from a file, or standard input for "-". */
static int
read_csr(char **out, size_t *len, const char *path)
{
	size_t cap = CSR_MAX + 1, n = 0, r;
	char *buf;

	if (strcmp(path, "-") != 0)
		return fs_read_file(out, len, path, CSR_MAX);
	if ((buf = malloc(cap + 1)) == NULL) {
		err_set("out of memory");
		return ERR_NOMEM;
	}
	while ((r = fread(buf + n, 1, cap - n, stdin)) > 0)
		n += r;
	if (ferror(stdin) || n > CSR_MAX) {
		err_set("standard input: %s", n > CSR_MAX ? "over 64 KiB, not a CSR" :
		    "read error");
		free(buf);
		return ERR_INVAL;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

static int
write_out(const char *dir, const char *name, const char *text)
{
	char path[4096];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
		err_set("%s/%s: path too long", dir, name);
		return ERR_TOOBIG;
	}
	return fs_write_atomic(path, text, strlen(text), 0600);
}

/*
 * Is nodes/NAME.yaml on the applied branch? One tree lookup, not a fleet load: enrolling
 * 1,000 nodes of a 100,000-device fleet must not read it 1,000 times. *rev gets the head.
 */
static int
node_in_branch(struct state *st, const char *name, char rev[STATE_REV_MAX], bool *found)
{
	char gitdir[4096], spec[512], *branch = NULL;
	git_repository *repo = NULL;
	git_object *obj = NULL;
	git_oid head;
	int rc;

	*found = false;
	rev[0] = '\0';
	if ((rc = state_meta_get(st, "branch", &branch)) < 0)
		return rc;
	snprintf(spec, sizeof(spec), "refs/heads/%s", branch != NULL ? branch : "main");
	free(branch);
	snprintf(gitdir, sizeof(gitdir), "%s/%s", state_dir(st), STATE_GIT);
	if (git_repository_open_bare(&repo, gitdir) != 0 ||
	    git_reference_name_to_id(&head, repo, spec) != 0) {
		const git_error *e = git_error_last();

		err_set("%s: %s", gitdir, e != NULL ? e->message : "cannot read the branch");
		git_repository_free(repo);
		return -1;
	}
	git_oid_tostr(rev, STATE_REV_MAX, &head);
	snprintf(spec + strlen(spec), sizeof(spec) - strlen(spec), ":nodes/%s.yaml", name);
	if (strchr(name, '/') == NULL && git_revparse_single(&obj, repo, spec) == 0 &&
	    git_object_type(obj) == GIT_OBJECT_BLOB)
		*found = true;
	git_object_free(obj);
	git_repository_free(repo);
	return 0;
}

static bool
control_ok(const char *s)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	if (colon == NULL || colon == s || strlen(s) > 255 || strpbrk(s, " \t\n/@") != NULL)
		return false;
	port = strtol(colon + 1, &end, 10);
	return *end == '\0' && port > 0 && port < 65536;
}

static int
nodes_add(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "csr", required_argument, NULL, 'c' },
		{ "out", required_argument, NULL, 'o' },
		{ "control", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *csr_path = NULL, *outdir = NULL, *name, *control = NULL;
	char head[STATE_REV_MAX];
	bool found;
	char *fleet_id = NULL, *csr = NULL, *leaf = NULL, *chain = NULL, *bundle = NULL;
	char *pub = NULL, serial[CTLPKI_SERIAL_MAX], old[CTLPKI_SERIAL_MAX], t[CLI_TIME_MAX];
	char detail[512], user[64];
	struct state *st = NULL;
	struct state_node sn;
	struct stat sb;
	time_t not_after = 0, old_na;
	size_t csr_len = 0;
	int ch, rc = COX_FAIL, had;

	memset(&sn, 0, sizeof(sn));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': csr_path = optarg; break;
		case 'o': outdir = optarg; break;
		case 'C': control = optarg; break;
		case 'h': usage(stdout); return COX_OK;
		default: usage(stderr); return COX_USAGE;
		}
	}
	if (control != NULL && !control_ok(control)) {
		fprintf(stderr, "cox nodes add: --control must be HOST:PORT or [IPv6]:PORT\n");
		return COX_USAGE;
	}
	if (optind + 2 != argc || csr_path == NULL || outdir == NULL) {
		fprintf(stderr, "cox nodes add: DIR, NAME, --csr FILE and --out OUTDIR are "
		    "required\n");
		usage(stderr);
		return COX_USAGE;
	}
	name = argv[optind + 1];
	if (open_state(&st, argv[optind], 0) != 0)
		return COX_FAIL;
	if (state_meta_get(st, "fleet_id", &fleet_id) != 0) {
		fprintf(stderr, "cox nodes add: %s: no fleet id in %s\n", argv[optind], STATE_DB);
		goto out;
	}
	if (node_in_branch(st, name, head, &found) != 0) {
		fprintf(stderr, "cox nodes add: %s\n", err_last());
		goto out;
	}
	if (!found) {
		char clean[128];
		fprintf(stderr, "cox nodes add: node '%s' is not in the fleet: there is no "
		    "nodes/%s.yaml at the head of the applied branch (%.12s); add it and push "
		    "first\n", cli_clean(clean, sizeof(clean), name), clean, head);
		goto out;
	}
	if (read_csr(&csr, &csr_len, csr_path) != 0 ||
	    ctlpki_issue_node(st, fleet_id, name, csr, csr_len, &leaf, &chain, serial,
	    &not_after) != 0) {
		fprintf(stderr, "cox nodes add: %s: %s\n", csr_path, err_last());
		goto out;
	}
	if (ctlpki_ca_bundle(st, &bundle) != 0 || ctlpki_controller_pub(st, &pub) != 0) {
		fprintf(stderr, "cox nodes add: %s\n", err_last());
		goto out;
	}
	if (mkdir(outdir, 0700) != 0 && (errno != EEXIST || stat(outdir, &sb) != 0 ||
	    !S_ISDIR(sb.st_mode))) {
		if (errno == EEXIST)
			fprintf(stderr, "cox nodes add: %s exists and is not a folder\n", outdir);
		else
			fprintf(stderr, "cox nodes add: %s: %s\n", outdir, strerror(errno));
		goto out;
	}
	/* One transaction: the node's row and its audit entry, committed after the files. */
	if (state_begin(st) != 0 || (had = state_node_get(st, name, &sn)) < 0)
		goto fail;
	old[0] = '\0';
	if (had == 0 && sn.cert_pem != NULL && ctlpki_cert_info(sn.cert_pem, old, &old_na) != 0)
		snprintf(old, sizeof(old), "?");
	if (had == 1)
		snprintf(sn.name, sizeof(sn.name), "%s", name);
	if (control != NULL) {
		free(sn.control);
		if ((sn.control = strdup(control)) == NULL)
			goto fail;
	}
	free(sn.cert_pem);
	sn.cert_pem = leaf;
	leaf = NULL;	/* owned by sn now */
	sn.enrolled_unix = (int64_t)time(NULL);
	snprintf(detail, sizeof(detail), "serial=%s not_after=%s user=%s%s%s%s%s", serial,
	    cli_time(t, (int64_t)not_after, "?"), cli_user(user, sizeof(user)),
	    old[0] ? " replaces=" : "", old, control != NULL ? " control=" : "",
	    control != NULL ? control : "");
	if (state_node_put(st, &sn) != 0 ||
	    audit_append(st, "cox", "node.enrolled", name, detail) != 0 ||
	    write_out(outdir, "ca.pem", bundle) != 0 || write_out(outdir, "node.pem", chain) != 0 ||
	    write_out(outdir, "controller.pub", pub) != 0 || state_commit(st) != 0)
		goto fail;
	printf("cox nodes add: enrolled %s as spiffe://%s/node/%s (serial %s, valid until %s)%s\n"
	    "  %s/ca.pem, node.pem, controller.pub: copy them into the node's buoy state dir,\n"
	    "  next to the node.key its CSR was made with\n", name, fleet_id, name, serial,
	    cli_time(t, (int64_t)not_after, "?"), old[0] ? "; the previous certificate is "
	    "replaced" : "", outdir);
	rc = COX_OK;
	goto out;
fail:
	fprintf(stderr, "cox nodes add: %s\n", err_last());
	state_rollback(st);
out:
	state_node_clear(&sn);
	free(fleet_id);
	free(csr);
	free(leaf);
	free(chain);
	free(bundle);
	free(pub);
	state_close(st);
	return rc;
}

static int
nodes_remove(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct state *st = NULL;
	struct state_node sn;
	char serial[CTLPKI_SERIAL_MAX], detail[256], user[64], clean[128];
	time_t na;
	int ch, rc = COX_FAIL, had;

	memset(&sn, 0, sizeof(sn));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'h': usage(stdout); return COX_OK;
		default: usage(stderr); return COX_USAGE;
		}
	}
	if (optind + 2 != argc) {
		fprintf(stderr, "cox nodes remove: DIR and NAME are required\n");
		return COX_USAGE;
	}
	if (open_state(&st, argv[optind], 0) != 0)
		return COX_FAIL;
	if (state_begin(st) != 0 || (had = state_node_get(st, argv[optind + 1], &sn)) < 0)
		goto fail;
	if (had == 1) {
		fprintf(stderr, "cox nodes remove: node '%s' is not known to the controller\n",
		    cli_clean(clean, sizeof(clean), argv[optind + 1]));
		state_rollback(st);
		goto out;
	}
	if (sn.cert_pem == NULL || ctlpki_cert_info(sn.cert_pem, serial, &na) != 0)
		snprintf(serial, sizeof(serial), "none");
	snprintf(detail, sizeof(detail), "serial=%s user=%s", serial, cli_user(user, sizeof(user)));
	if (state_node_delete(st, sn.name) != 0 ||
	    audit_append(st, "cox", "node.removed", sn.name, detail) != 0 || state_commit(st) != 0)
		goto fail;
	printf("cox nodes remove: forgot %s (certificate serial %s)\n", sn.name, serial);
	rc = COX_OK;
	goto out;
fail:
	fprintf(stderr, "cox nodes remove: %s\n", err_last());
	state_rollback(st);
out:
	state_node_clear(&sn);
	state_close(st);
	return rc;
}

int
cmd_nodes(int argc, char **argv)
{
	static const struct cli_sub subs[] = {
		{ "list", nodes_list },
		{ "add", nodes_add },
		{ "remove", nodes_remove },
		{ NULL, NULL },
	};

	return cli_dispatch("nodes", argc, argv, subs, "list, add or remove", usage);
}
