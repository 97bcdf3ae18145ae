/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cox init: a new state directory (docs/DESIGN.md §7). Everything is built in a hidden
 * folder inside DIR and moved into place at the end (fleet.git, then state.db), so a
 * failure leaves nothing behind and an interrupted run leaves only that hidden folder,
 * which the next `cox init` refuses to overwrite.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <git2.h>
#include <limits.h>
#include <sodium.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cox.h"
#include "diag.h"
#include "err.h"
#include "fleet.h"
#include "fsutil.h"
#include "pki.h"
#include "source.h"
#include "state.h"
#include "version.h"

#define INIT_BRANCH	"main"
#define INIT_REF	"refs/heads/" INIT_BRANCH
#define INIT_MESSAGE	"Initial fleet (cox init)\n"
#define FLEET_ID_MAX	63
#define TREE_DEPTH_MAX	32

struct init {
	char		 dir[PATH_MAX];		/* absolute */
	char		 work[PATH_MAX];	/* DIR/.cox-init-XXXXXX: built here */
	bool		 made_dir, made_work, moved_git, moved_db, chmodded;
	mode_t		 old_mode;		/* of an existing empty DIR */
	char		 fleet_id[FLEET_ID_MAX + 1];
	enum preset	 preset;
	const char	*from;
	const char	*want_id;		/* --fleet-id */
	int		 want_preset;		/* --personal/--enterprise, or -1 */
	char		 seed[GIT_OID_HEXSZ + 1];
	char		 cox[PATH_MAX];		/* this binary, for the hook */
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: cox init [--personal | --enterprise] [--fleet-id ID] [--from PATH] DIR\n\n"
	    "Create a controller state directory:\n"
	    "  DIR/fleet.git   a bare git repository, branch main, seeded with one commit; its\n"
	    "                  pre-receive hook runs `cox validate` on every push to main and\n"
	    "                  refuses an invalid revision (other branches are proposals)\n"
	    "  DIR/state.db    the PKI (root, Fleet and Device CAs, the controller's\n"
	    "                  certificate), the config-signing key, the controller's SSH key,\n"
	    "                  node enrollment and the audit log (SQLite, mode 0600)\n\n"
	    "  --personal      preset of a new fleet (the default)\n"
	    "  --enterprise    preset of a new fleet\n"
	    "  --from PATH     seed fleet.git with every file of the folder PATH (a fleet\n"
	    "                  repository such as fleet.example; .git is left out); it must\n"
	    "                  validate, and its fleet.yaml decides the fleet id and preset\n"
	    "  --fleet-id ID   the fleet id of a new fleet (default: DIR's name, made valid)\n"
	    "  -h, --help      this help\n\n"
	    "DIR must not exist or be empty; it is made mode 0700. Exit status: 0 created,\n"
	    "1 failed (nothing is left behind), 2 usage error.\n");
}

static int
git_fail(const char *what)
{
	const git_error *e = git_error_last();

	err_set("%s: %s", what, e != NULL && e->message != NULL ? e->message : "libgit2 error");
	return ERR_LIB;
}

static int
join(char *buf, size_t bufsz, const char *a, const char *b)
{
	if ((size_t)snprintf(buf, bufsz, "%s/%s", a, b) >= bufsz) {
		err_set("%s/%s: path too long", a, b);
		return ERR_TOOBIG;
	}
	return 0;
}

static int
rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (type == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

static void
rm_tree(const char *path)
{
	if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
		fprintf(stderr, "cox init: warning: could not remove %s: %s\n", path,
		    strerror(errno));
}

/* Remove what this run created; DIR itself only if it made it. */
static void
undo(struct init *in)
{
	char path[PATH_MAX];

	if (in->made_work)
		rm_tree(in->work);
	if (in->moved_git && join(path, sizeof(path), in->dir, STATE_GIT) == 0)
		rm_tree(path);
	if (in->moved_db) {
		if (join(path, sizeof(path), in->dir, STATE_DB "-wal") == 0)
			unlink(path);
		if (join(path, sizeof(path), in->dir, STATE_DB "-shm") == 0)
			unlink(path);
		if (join(path, sizeof(path), in->dir, STATE_DB) == 0)
			unlink(path);
	}
	if (in->made_dir)
		rmdir(in->dir);
	else if (in->chmodded)
		chmod(in->dir, in->old_mode);
}

/* ---- arguments ---- */

static bool
fleet_id_ok(const char *s)
{
	size_t len = strlen(s), i;

	if (len == 0 || len > FLEET_ID_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			continue;
		if (i == 0 || i == len - 1 || (c != '-' && c != '.'))
			return false;
	}
	return true;
}

/* DIR's name made into a fleet id: lower case, other characters '-', trimmed. */
static void
fleet_id_from(char out[FLEET_ID_MAX + 1], const char *name)
{
	size_t n = 0;
	char c;

	for (; *name != '\0' && n < FLEET_ID_MAX; name++) {
		c = *name;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.'))
			c = '-';
		if ((c == '-' || c == '.') && (n == 0 || out[n - 1] == '-' || out[n - 1] == '.'))
			continue;
		out[n++] = c;
	}
	while (n > 0 && (out[n - 1] == '-' || out[n - 1] == '.'))
		n--;
	out[n] = '\0';
	if (n == 0)
		snprintf(out, FLEET_ID_MAX + 1, "fleet");
}

/*
 * Resolve DIR to an absolute path; it must not exist, or be an empty folder. Its parent
 * must exist (like mkdir).
 */
static int
resolve_dir(struct init *in, const char *arg)
{
	char tmp[PATH_MAX], parent[PATH_MAX], *slash, *base;
	struct dirent *e;
	struct stat sb;
	DIR *d;
	size_t n;

	if (strlen(arg) >= sizeof(tmp)) {
		err_set("%s: path too long", arg);
		return ERR_TOOBIG;
	}
	if (lstat(arg, &sb) == 0) {
		if (!S_ISDIR(sb.st_mode)) {
			err_set("%s exists and is not a folder", arg);
			return ERR_INVAL;
		}
		if ((d = opendir(arg)) == NULL) {
			err_setsys("%s", arg);
			return ERR_SYS;
		}
		while ((e = readdir(d)) != NULL)
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
				break;
		closedir(d);
		if (e != NULL) {
			err_set("%s exists and is not empty; cox init wants a new or empty folder",
			    arg);
			return ERR_INVAL;
		}
		if (realpath(arg, in->dir) == NULL) {
			err_setsys("%s", arg);
			return ERR_SYS;
		}
		if (strcmp(in->dir, "/") == 0) {
			err_set("/: not a place for a state directory");
			return ERR_INVAL;
		}
		return 0;
	}
	if (errno != ENOENT) {
		err_setsys("%s", arg);
		return ERR_SYS;
	}
	snprintf(tmp, sizeof(tmp), "%s", arg);
	for (n = strlen(tmp); n > 1 && tmp[n - 1] == '/'; n--)
		tmp[n - 1] = '\0';
	if ((slash = strrchr(tmp, '/')) != NULL) {
		*slash = '\0';
		base = slash + 1;
		if (realpath(tmp[0] != '\0' ? tmp : "/", parent) == NULL) {
			err_setsys("%s", tmp[0] != '\0' ? tmp : "/");
			return ERR_SYS;
		}
	} else {
		base = tmp;
		if (realpath(".", parent) == NULL) {
			err_setsys(".");
			return ERR_SYS;
		}
	}
	if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || *base == '\0') {
		err_set("%s: not a folder name", arg);
		return ERR_INVAL;
	}
	return join(in->dir, sizeof(in->dir), strcmp(parent, "/") == 0 ? "" : parent, base);
}

/* ---- the seed ---- */

static int
tb_insert(git_treebuilder *tb, const char *name, const git_oid *oid, git_filemode_t mode)
{
	if (git_treebuilder_insert(NULL, tb, name, oid, mode) != 0)
		return git_fail(name);
	return 0;
}

/* The tree of folder `path` (every entry but .git); *empty if it holds no file. */
static int
tree_from_dir(git_oid *out, bool *empty, git_repository *repo, const char *path, int depth)
{
	git_treebuilder *tb = NULL;
	struct dirent **names = NULL;
	char full[PATH_MAX], link[PATH_MAX];
	struct stat sb;
	git_oid oid;
	bool sub_empty;
	ssize_t ll;
	int i, n, rc = 0;

	*empty = true;
	if (depth > TREE_DEPTH_MAX) {
		err_set("%s: folders nested deeper than %d", path, TREE_DEPTH_MAX);
		return ERR_INVAL;
	}
	if ((n = scandir(path, &names, NULL, alphasort)) < 0) {
		err_setsys("%s", path);
		return ERR_SYS;
	}
	if (git_treebuilder_new(&tb, repo, NULL) != 0) {
		rc = git_fail("treebuilder");
		goto out;
	}
	for (i = 0; i < n && rc == 0; i++) {
		const char *name = names[i]->d_name;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strcmp(name, ".git") == 0)
			continue;
		if ((rc = join(full, sizeof(full), path, name)) != 0)
			break;
		if (lstat(full, &sb) != 0) {
			err_setsys("%s", full);
			rc = ERR_SYS;
		} else if (S_ISDIR(sb.st_mode)) {
			/* git keeps no empty folders */
			if ((rc = tree_from_dir(&oid, &sub_empty, repo, full, depth + 1)) == 0 &&
			    !sub_empty) {
				rc = tb_insert(tb, name, &oid, GIT_FILEMODE_TREE);
				*empty = false;
			}
		} else if (S_ISREG(sb.st_mode)) {
			if (git_blob_create_from_disk(&oid, repo, full) != 0)
				rc = git_fail(full);
			else
				rc = tb_insert(tb, name, &oid, (sb.st_mode & 0111) ?
				    GIT_FILEMODE_BLOB_EXECUTABLE : GIT_FILEMODE_BLOB);
			*empty = false;
		} else if (S_ISLNK(sb.st_mode)) {
			/* kept as a link, as git would; the fleet loader never follows one */
			if ((ll = readlink(full, link, sizeof(link))) < 0 ||
			    (size_t)ll >= sizeof(link)) {
				err_setsys("%s", full);
				rc = ERR_SYS;
			} else if (git_blob_create_from_buffer(&oid, repo, link, (size_t)ll) != 0) {
				rc = git_fail(full);
			} else {
				rc = tb_insert(tb, name, &oid, GIT_FILEMODE_LINK);
			}
			*empty = false;
		} else {
			err_set("%s: not a file, folder or symbolic link", full);
			rc = ERR_INVAL;
		}
	}
	if (rc == 0 && git_treebuilder_write(out, tb) != 0)
		rc = git_fail(path);
out:
	git_treebuilder_free(tb);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

static const char template_fleet[] =
    "# The fleet: what is fleet-wide lives here; nodes/<name>.yaml, users/<name>.yaml and\n"
    "# relays/<name>.yaml hold one record each (see README.md). Check a change with\n"
    "# `cox validate .`; a push to main is validated by the controller and refused if\n"
    "# invalid. Other branches are proposals: nothing on them is applied.\n"
    "version: 1\n"
    "\n"
    "fleet:\n"
    "  id: %s                  # the SPIFFE trust domain: fixed once nodes are enrolled\n"
    "  preset: %s\n"
    "\n"
    "network:\n"
    "  tunnel_pool: \"" FLEET_DEFAULT_POOL "\"   # device addresses; the first host is every "
    "node's gateway\n"
    "%s";

static const char template_enterprise[] =
    "\n"
    "# VLESS + REALITY: pick a decoy site you do not mind being associated with (probes\n"
    "# see its pages); until then the default gives a warning.\n"
    "# xray:\n"
    "#   decoy: \"www.example.com:443\"\n";

static const char template_readme[] =
    "# Fleet repository\n"
    "\n"
    "Made by `cox init`. One file per record:\n"
    "\n"
    "    fleet.yaml            the fleet: identity, preset, network, access policy\n"
    "    nodes/<name>.yaml     one VPN node per file\n"
    "    users/<name>.yaml     one user per file, with that user's devices\n"
    "    relays/<name>.yaml    one remote relay per file (optional)\n"
    "\n"
    "A node, e.g. `nodes/ams-1.yaml`:\n"
    "\n"
    "    region: eu-ams\n"
    "    ssh: \"root@192.0.2.10\"\n"
    "    entry_pool: [\"192.0.2.10\"]\n"
    "\n"
    "A user, e.g. `users/alice.yaml`:\n"
    "\n"
    "    email: alice@example.com\n"
    "    role: admin\n"
    "    devices:\n"
    "      - name: laptop\n"
    "        public_key: \"<the device's WireGuard public key>\"\n"
    "\n"
    "No private key, password or token ever goes here: `cox validate` refuses them.\n";

static int
tree_template(git_oid *out, git_repository *repo, const struct init *in)
{
	git_treebuilder *tb = NULL;
	char fleet[2048];
	git_oid oid;
	int n, rc = 0;

	n = snprintf(fleet, sizeof(fleet), template_fleet, in->fleet_id,
	    in->preset == PRESET_ENTERPRISE ? "enterprise" : "personal",
	    in->preset == PRESET_ENTERPRISE ? template_enterprise : "");
	if (n < 0 || (size_t)n >= sizeof(fleet)) {
		err_set("fleet.yaml template too long");
		return ERR_TOOBIG;
	}
	if (git_treebuilder_new(&tb, repo, NULL) != 0)
		return git_fail("treebuilder");
	if (git_blob_create_from_buffer(&oid, repo, fleet, (size_t)n) != 0)
		rc = git_fail("fleet.yaml");
	else if ((rc = tb_insert(tb, "fleet.yaml", &oid, GIT_FILEMODE_BLOB)) == 0) {
		if (git_blob_create_from_buffer(&oid, repo, template_readme,
		    sizeof(template_readme) - 1) != 0)
			rc = git_fail("README.md");
		else if ((rc = tb_insert(tb, "README.md", &oid, GIT_FILEMODE_BLOB)) == 0 &&
		    git_treebuilder_write(out, tb) != 0)
			rc = git_fail("tree");
	}
	git_treebuilder_free(tb);
	return rc;
}

/* Single-quoted for sh: ' becomes '\''. */
static int
sh_quote(char *buf, size_t bufsz, const char *s)
{
	size_t n = 0;

	if (bufsz < 3)
		return ERR_TOOBIG;
	buf[n++] = '\'';
	for (; *s != '\0'; s++) {
		if (*s == '\'') {
			if (n + 5 >= bufsz)
				return ERR_TOOBIG;
			memcpy(buf + n, "'\\''", 4);
			n += 4;
		} else {
			if (n + 2 >= bufsz)
				return ERR_TOOBIG;
			buf[n++] = *s;
		}
	}
	buf[n++] = '\'';
	buf[n] = '\0';
	return 0;
}

static const char hook_script[] =
    "#!/bin/sh\n"
    "# Installed by cox init (docs/DESIGN.md §7). A push to the applied branch is accepted\n"
    "# only if `cox validate` passes on the pushed revision; other branches are proposals\n"
    "# and are accepted as they are. The applied branch cannot be deleted.\n"
    "cox=%s\n"
    "branch=" INIT_REF "\n"
    "status=0\n"
    "while read -r old new ref; do\n"
    "\t[ \"$ref\" = \"$branch\" ] || continue\n"
    "\tcase $new in\n"
    "\t*[!0]*) ;;\n"
    "\t*)\n"
    "\t\techo \"cox: refusing to delete $branch: it is the applied branch\" >&2\n"
    "\t\tstatus=1\n"
    "\t\tcontinue\n"
    "\t\t;;\n"
    "\tesac\n"
    "\tif ! \"$cox\" validate -q --repo \"$GIT_DIR\" --rev \"$new\"; then\n"
    "\t\techo \"cox: refusing $new for $branch: it does not validate\" >&2\n"
    "\t\tstatus=1\n"
    "\tfi\n"
    "done\n"
    "exit $status\n";

static int
write_hook(const struct init *in, const char *gitdir)
{
	char quoted[PATH_MAX * 4 + 3], path[PATH_MAX], *script;
	size_t len;
	int rc;

	if (sh_quote(quoted, sizeof(quoted), in->cox) != 0) {
		err_set("%s: path too long for the hook", in->cox);
		return ERR_TOOBIG;
	}
	if ((rc = join(path, sizeof(path), gitdir, "hooks")) != 0)
		return rc;
	if (mkdir(path, 0755) != 0 && errno != EEXIST) {
		err_setsys("%s", path);
		return ERR_SYS;
	}
	if ((rc = join(path, sizeof(path), gitdir, "hooks/pre-receive")) != 0)
		return rc;
	len = sizeof(hook_script) + strlen(quoted);
	if ((script = malloc(len)) == NULL) {
		err_set("out of memory");
		return ERR_NOMEM;
	}
	snprintf(script, len, hook_script, quoted);
	rc = fs_write_atomic(path, script, strlen(script), 0755);
	free(script);
	return rc;
}

/* Load and validate a fleet source; on errors print them to stderr and return 1. */
static int
check_fleet(struct source *src, struct init *in, bool take_identity)
{
	struct fleet *fleet = NULL;
	struct diag d;
	int rc;

	diag_init(&d);
	if ((rc = fleet_load(&fleet, src, &d)) != 0) {
		diag_free(&d);
		return rc;
	}
	fleet_validate(fleet, &d);
	if (d.nerr > 0) {
		diag_print(&d, stderr, DIAG_TEXT, NULL, NULL, NULL);
		err_set("the fleet does not validate: %zu error%s", d.nerr, d.nerr == 1 ? "" : "s");
		rc = 1;
	} else if (take_identity) {
		if (fleet->fleet.id.v == NULL || !fleet_id_ok(fleet->fleet.id.v)) {
			err_set("the fleet has no valid fleet.id");
			rc = 1;
		} else {
			snprintf(in->fleet_id, sizeof(in->fleet_id), "%s", fleet->fleet.id.v);
			in->preset = fleet->preset;
		}
	}
	fleet_free(fleet);
	diag_free(&d);
	return rc;
}

static int
make_repo(struct init *in)
{
	git_repository_init_options opts;
	git_repository *repo = NULL;
	git_signature *sig = NULL;
	git_tree *tree = NULL;
	struct source *src = NULL;
	char gitdir[PATH_MAX];
	git_oid tree_oid, commit_oid;
	bool empty = false;
	int rc;

	if ((rc = join(gitdir, sizeof(gitdir), in->work, STATE_GIT)) != 0)
		return rc;
	if (git_repository_init_options_init(&opts, GIT_REPOSITORY_INIT_OPTIONS_VERSION) != 0)
		return git_fail("git init options");
	opts.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_NO_REINIT |
	    GIT_REPOSITORY_INIT_MKDIR;
	opts.initial_head = INIT_BRANCH;
	if (git_repository_init_ext(&repo, gitdir, &opts) != 0)
		return git_fail(gitdir);
	if (in->from != NULL) {
		rc = tree_from_dir(&tree_oid, &empty, repo, in->from, 0);
		if (rc == 0 && empty) {
			err_set("%s: no files to seed the fleet with", in->from);
			rc = ERR_INVAL;
		}
	} else {
		rc = tree_template(&tree_oid, repo, in);
	}
	if (rc != 0)
		goto out;
	if (git_tree_lookup(&tree, repo, &tree_oid) != 0 ||
	    git_signature_now(&sig, "cox", "cox@localhost") != 0 ||
	    git_commit_create(&commit_oid, repo, INIT_REF, sig, sig, NULL, INIT_MESSAGE, tree, 0,
	    NULL) != 0) {
		rc = git_fail("the initial commit");
		goto out;
	}
	git_oid_tostr(in->seed, sizeof(in->seed), &commit_oid);
	if ((rc = write_hook(in, gitdir)) != 0)
		goto out;
	/* what the hook will check on every push, checked on the seed too */
	if ((rc = source_open_git(&src, gitdir, INIT_REF)) == 0)
		rc = check_fleet(src, in, false);
out:
	source_free(src);
	git_signature_free(sig);
	git_tree_free(tree);
	git_repository_free(repo);
	return rc;
}

/* ---- state.db: PKI, keys ---- */

static int
put_pem(struct state *st, const char *name, char *pem, bool secret)
{
	size_t len = strlen(pem);
	int rc = state_secret_put(st, name, pem, len);

	if (secret)
		sodium_memzero(pem, len);
	return rc;
}

/* a followed by b, as one malloc'd string */
static char *
concat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s;

	if ((s = malloc(la + lb + 1)) == NULL)
		return NULL;
	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	return s;
}

static int
make_pki(struct state *st, const char *fleet_id)
{
	X509 *root = NULL, *fca = NULL, *dca = NULL, *leaf = NULL;
	EVP_PKEY *root_key = NULL, *fca_key = NULL, *dca_key = NULL, *ckey = NULL;
	X509_REQ *csr = NULL;
	char *pem = NULL, *pem2 = NULL, *chain = NULL;
	struct spiffe id;
	int rc;

	memset(&id, 0, sizeof(id));
	id.role = PKI_ROLE_CONTROLLER;
	snprintf(id.trust_domain, sizeof(id.trust_domain), "%s", fleet_id);
	if ((rc = pki_root_new(&root, &root_key, fleet_id)) != 0 ||
	    (rc = pki_ca_new(&fca, &fca_key, PKI_CA_FLEET, fleet_id, root, root_key)) != 0 ||
	    (rc = pki_ca_new(&dca, &dca_key, PKI_CA_DEVICE, fleet_id, root, root_key)) != 0 ||
	    (rc = pki_key_new(&ckey)) != 0 || (rc = pki_csr_new(&csr, ckey, &id)) != 0 ||
	    (rc = pki_issue(&leaf, fca, fca_key, csr, &id, 0, 0)) != 0)
		goto out;
#define PUT_CERT(name, x) do { \
		if ((rc = pki_cert_pem(&pem, (x))) != 0 || \
		    (rc = put_pem(st, (name), pem, false)) != 0) \
			goto out; \
		free(pem); \
		pem = NULL; \
	} while (0)
#define PUT_KEY(name, k) do { \
		if ((rc = pki_key_pem(&pem, (k))) != 0) \
			goto out; \
		rc = put_pem(st, (name), pem, true); \
		free(pem); \
		pem = NULL; \
		if (rc != 0) \
			goto out; \
	} while (0)
	PUT_CERT("root.pem", root);
	PUT_KEY("root.key", root_key);
	PUT_CERT("fleet-ca.pem", fca);
	PUT_KEY("fleet-ca.key", fca_key);
	PUT_CERT("device-ca.pem", dca);
	PUT_KEY("device-ca.key", dca_key);
	PUT_KEY("controller.key", ckey);
#undef PUT_CERT
#undef PUT_KEY
	/* controller.pem is the chain a TLS client presents: leaf, then the Fleet CA */
	if ((rc = pki_cert_pem(&pem, leaf)) != 0 || (rc = pki_cert_pem(&pem2, fca)) != 0)
		goto out;
	if ((chain = concat(pem, pem2)) == NULL) {
		err_set("out of memory");
		rc = ERR_NOMEM;
		goto out;
	}
	rc = put_pem(st, "controller.pem", chain, false);
out:
	if (pem != NULL)
		sodium_memzero(pem, strlen(pem));
	free(pem);
	free(pem2);
	free(chain);
	X509_free(root);
	X509_free(fca);
	X509_free(dca);
	X509_free(leaf);
	X509_REQ_free(csr);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(fca_key);
	EVP_PKEY_free(dca_key);
	EVP_PKEY_free(ckey);
	return rc;
}

static int
make_sign_key(struct state *st)
{
	uint8_t pk[crypto_sign_PUBLICKEYBYTES], *sk;
	int rc;

	if ((sk = sodium_malloc(crypto_sign_SECRETKEYBYTES)) == NULL) {
		err_set("out of memory");
		return ERR_NOMEM;
	}
	crypto_sign_keypair(pk, sk);
	rc = state_secret_put(st, "sign.key", sk, crypto_sign_SECRETKEYBYTES);
	sodium_free(sk);
	return rc;
}

/* Overwrite a file with zeros before unlinking it: best effort on a journaling fs. */
static void
shred(const char *path)
{
	static const char zero[512];
	struct stat sb;
	off_t left;
	int fd;

	if ((fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
		if (fstat(fd, &sb) == 0)
			for (left = sb.st_size; left > 0; ) {
				size_t n = left > (off_t)sizeof(zero) ? sizeof(zero) : (size_t)left;
				ssize_t w = write(fd, zero, n);
				if (w <= 0)
					break;
				left -= w;
			}
		fsync(fd);
		close(fd);
	}
	unlink(path);
}

/*
 * The controller's SSH key (Ed25519, OpenSSH format) from ssh-keygen, in a private
 * temporary folder that is wiped and removed; the key lives only in state.db.
 */
static int
make_ssh_key(struct state *st, const struct init *in)
{
	char tdir[PATH_MAX], key[PATH_MAX], pub[PATH_MAX], comment[128];
	char *argv[] = { "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key,
	    NULL };
	posix_spawn_file_actions_t fa;
	char *text = NULL;
	size_t len = 0;
	pid_t pid;
	int rc, status, e;

	snprintf(comment, sizeof(comment), "cox@%s", in->fleet_id);
	if ((rc = join(tdir, sizeof(tdir), in->work, ".ssh-XXXXXX")) != 0)
		return rc;
	if (mkdtemp(tdir) == NULL) {
		err_setsys("%s", tdir);
		return ERR_SYS;
	}
	if ((rc = join(key, sizeof(key), tdir, "key")) != 0 ||
	    (rc = join(pub, sizeof(pub), tdir, "key.pub")) != 0)
		goto out;
	if ((e = posix_spawn_file_actions_init(&fa)) != 0) {
		errno = e;
		err_setsys("ssh-keygen");
		rc = ERR_SYS;
		goto out;
	}
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	e = posix_spawnp(&pid, "ssh-keygen", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (e != 0) {
		errno = e;
		err_setsys("cannot run ssh-keygen (is openssh-client installed?)");
		rc = ERR_SYS;
		goto out;
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			err_setsys("waiting for ssh-keygen");
			rc = ERR_SYS;
			goto out;
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		err_set("ssh-keygen failed (%s %d)", WIFEXITED(status) ? "exit" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		rc = ERR_SYS;
		goto out;
	}
	if ((rc = fs_read_file(&text, &len, key, 64 * 1024)) != 0)
		goto out;
	rc = state_secret_put(st, "ssh.key", text, len);
	sodium_memzero(text, len);
	free(text);
	text = NULL;
	if (rc != 0 || (rc = fs_read_file(&text, &len, pub, 64 * 1024)) != 0)
		goto out;
	if (strncmp(text, "ssh-ed25519 ", 12) != 0) {
		err_set("ssh-keygen wrote no ssh-ed25519 public key");
		rc = ERR_LIB;
		goto out;
	}
	rc = state_secret_put(st, "ssh.pub", text, len);
out:
	free(text);
	shred(key);
	unlink(pub);
	rmdir(tdir);
	return rc;
}

static int
make_state(struct init *in)
{
	struct state *st = NULL;
	char detail[128];
	int rc;

	if ((rc = state_open(&st, in->work, STATE_CREATE)) != 0)
		return rc;
	if ((rc = state_begin(st)) != 0)
		goto out;
	snprintf(detail, sizeof(detail), "preset=%s seed=%s",
	    in->preset == PRESET_ENTERPRISE ? "enterprise" : "personal", in->seed);
	if ((rc = state_meta_set(st, "fleet_id", in->fleet_id)) != 0 ||
	    (rc = state_meta_set(st, "preset", in->preset == PRESET_ENTERPRISE ?
	    "enterprise" : "personal")) != 0 ||
	    (rc = state_meta_set(st, "branch", INIT_BRANCH)) != 0 ||
	    (rc = make_pki(st, in->fleet_id)) != 0 || (rc = make_sign_key(st)) != 0 ||
	    (rc = make_ssh_key(st, in)) != 0 ||
	    (rc = audit_append(st, "cox", "fleet.init", in->fleet_id, detail)) != 0) {
		state_rollback(st);
		goto out;
	}
	rc = state_commit(st);
out:
	state_close(st);
	return rc;
}

/* Move work/name to dir/name (if it exists in work); *moved says one was moved. */
static int
move_in(struct init *in, const char *name, bool *moved)
{
	char from[PATH_MAX], to[PATH_MAX];
	struct stat sb;
	int rc;

	if ((rc = join(from, sizeof(from), in->work, name)) != 0 ||
	    (rc = join(to, sizeof(to), in->dir, name)) != 0)
		return rc;
	if (lstat(from, &sb) != 0 && errno == ENOENT)
		return 0;
	if (rename(from, to) != 0) {
		err_setsys("%s", to);
		return ERR_SYS;
	}
	*moved = true;
	return 0;
}

static int
fsync_dir(const char *path)
{
	int fd, rc = 0;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(fd) != 0) {
		err_setsys("%s: fsync", path);
		rc = ERR_SYS;
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

static int
build(struct init *in)
{
	struct source *src = NULL;
	int rc;

	if (in->from != NULL) {
		char from[PATH_MAX];
		size_t n;

		/* the state directory holds secrets: never inside a fleet repository's folder */
		if (realpath(in->from, from) == NULL) {
			err_setsys("%s", in->from);
			return ERR_SYS;
		}
		n = strlen(from);
		if (strncmp(in->dir, from, n) == 0 && (in->dir[n] == '/' || n == 1)) {
			err_set("%s is inside %s: the state directory holds the fleet's keys and "
			    "must not live in a fleet repository's folder", in->dir, from);
			return ERR_INVAL;
		}
		/* paths in the errors as the user gave them */
		if ((rc = source_open_dir(&src, in->from)) != 0)
			return rc;
		rc = check_fleet(src, in, true);
		source_free(src);
		if (rc != 0)
			return rc;
		if (in->want_id != NULL && strcmp(in->want_id, in->fleet_id) != 0) {
			err_set("--fleet-id %s, but %s/fleet.yaml says fleet.id %s", in->want_id,
			    in->from, in->fleet_id);
			return ERR_INVAL;
		}
		if (in->want_preset != -1 && (enum preset)in->want_preset != in->preset) {
			err_set("--%s, but %s/fleet.yaml says preset %s",
			    in->want_preset == PRESET_ENTERPRISE ? "enterprise" : "personal",
			    in->from, in->preset == PRESET_ENTERPRISE ? "enterprise" : "personal");
			return ERR_INVAL;
		}
	}
	if (mkdir(in->dir, 0700) == 0)
		in->made_dir = true;
	else if (errno != EEXIST) {
		err_setsys("%s", in->dir);
		return ERR_SYS;
	} else {
		struct stat sb;

		if (stat(in->dir, &sb) != 0 || chmod(in->dir, 0700) != 0) {
			err_setsys("%s", in->dir);
			return ERR_SYS;
		}
		in->old_mode = sb.st_mode & 07777;
		in->chmodded = true;
	}
	if ((rc = join(in->work, sizeof(in->work), in->dir, ".cox-init-XXXXXX")) != 0)
		return rc;
	if (mkdtemp(in->work) == NULL) {
		err_setsys("%s", in->work);
		return ERR_SYS;
	}
	in->made_work = true;
	if ((rc = make_repo(in)) != 0 || (rc = make_state(in)) != 0)
		return rc;
	/* the state directory is complete once state.db is in it */
	if ((rc = move_in(in, STATE_GIT, &in->moved_git)) != 0 ||
	    (rc = move_in(in, STATE_DB "-wal", &in->moved_db)) != 0 ||
	    (rc = move_in(in, STATE_DB "-shm", &in->moved_db)) != 0 ||
	    (rc = move_in(in, STATE_DB, &in->moved_db)) != 0)
		return rc;
	if (rmdir(in->work) != 0) {
		err_setsys("%s", in->work);
		return ERR_SYS;
	}
	in->made_work = false;
	return fsync_dir(in->dir);
}

int
cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "personal", no_argument, NULL, 'p' },
		{ "enterprise", no_argument, NULL, 'e' },
		{ "from", required_argument, NULL, 'f' },
		{ "fleet-id", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct init *in;
	const char *preset_name;
	int ch, rc = COX_USAGE;
	ssize_t n;

	if ((in = calloc(1, sizeof(*in))) == NULL) {
		fprintf(stderr, "cox init: out of memory\n");
		return COX_FAIL;
	}
	in->want_preset = -1;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
		case 'e':
			if (in->want_preset != -1 &&
			    in->want_preset != (ch == 'e' ? PRESET_ENTERPRISE : PRESET_PERSONAL)) {
				fprintf(stderr, "cox init: --personal and --enterprise "
				    "exclude each other\n");
				goto out;
			}
			in->want_preset = ch == 'e' ? PRESET_ENTERPRISE : PRESET_PERSONAL;
			break;
		case 'f':
			in->from = optarg;
			break;
		case 'i':
			in->want_id = optarg;
			break;
		case 'h':
			usage(stdout);
			rc = COX_OK;
			goto out;
		case 'V':
			printf("cox %s\n", PHAROS_VERSION);
			rc = COX_OK;
			goto out;
		default:
			usage(stderr);
			goto out;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "cox init: %s\n", optind < argc ? "one DIR only" :
		    "DIR is required");
		usage(stderr);
		goto out;
	}
	if (in->from != NULL && in->from[0] == '\0') {
		fprintf(stderr, "cox init: --from wants a folder\n");
		goto out;
	}
	if (in->want_id != NULL && !fleet_id_ok(in->want_id)) {
		fprintf(stderr, "cox init: --fleet-id '%s': lowercase letters, digits, '.' and "
		    "'-', starting and ending with a letter or digit, at most %d characters\n",
		    in->want_id, FLEET_ID_MAX);
		goto out;
	}
	rc = COX_FAIL;
	in->preset = in->want_preset == PRESET_ENTERPRISE ? PRESET_ENTERPRISE : PRESET_PERSONAL;
	if ((n = readlink("/proc/self/exe", in->cox, sizeof(in->cox) - 1)) <= 0 ||
	    in->cox[0] != '/') {
		fprintf(stderr, "cox init: cannot find this program's path in /proc/self/exe\n");
		goto out;
	}
	in->cox[n] = '\0';
	if (resolve_dir(in, argv[optind]) != 0) {
		fprintf(stderr, "cox init: %s\n", err_last());
		goto out;
	}
	if (in->want_id != NULL)
		snprintf(in->fleet_id, sizeof(in->fleet_id), "%s", in->want_id);
	else
		fleet_id_from(in->fleet_id, strrchr(in->dir, '/') + 1);
	git_libgit2_init();
	if (build(in) != 0) {
		fprintf(stderr, "cox init: %s\n", err_last());
		undo(in);
		git_libgit2_shutdown();
		goto out;
	}
	git_libgit2_shutdown();
	preset_name = in->preset == PRESET_ENTERPRISE ? "enterprise" : "personal";
	printf("cox init: fleet '%s' (%s) in %s\n"
	    "  %s/%s   bare repository, branch %s, commit %.12s\n"
	    "  %s/%s    PKI, signing and SSH keys, audit log (mode 0600)\n\n"
	    "Next steps:\n"
	    "  git clone %s/%s fleet\n"
	    "      edit, commit and git push; a push to %s is validated, an invalid one refused\n"
	    "  cox ssh-key %s\n"
	    "      the controller's SSH public key, for your nodes' authorized_keys\n"
	    "  cox nodes add %s NAME --csr NODE.csr --out OUTDIR\n"
	    "      enroll a node of nodes/NAME.yaml from its `buoy csr` request\n"
	    "  cox run %s\n",
	    in->fleet_id, preset_name, in->dir, in->dir, STATE_GIT, INIT_BRANCH, in->seed,
	    in->dir, STATE_DB, in->dir, STATE_GIT, INIT_BRANCH, in->dir, in->dir, in->dir);
	rc = COX_OK;
out:
	free(in);
	return rc;
}
