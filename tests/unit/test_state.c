/* SPDX-License-Identifier: Apache-2.0 */
/*
 * state.db: migrations, reopening, the round trips of every table, a read-only second
 * connection, and the audit chain against tampering done straight through SQLite; then
 * a state directory from cox init and the controller's credentials from it (ctlpki).
 */
#include <sys/stat.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cox.h"
#include "ctlpki.h"
#include "err.h"
#include "pki.h"
#include "state.h"
#include "t.h"
#include "tls.h"

static char dir[] = "/tmp/test_state.XXXXXX";

static void
rm_dir(void)
{
	DIR *d;
	struct dirent *e;
	char path[512];

	if ((d = opendir(dir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static int
sql(struct state *st, const char *stmt)
{
	char *msg = NULL;
	int rc = sqlite3_exec(state_sqlite(st), stmt, NULL, NULL, &msg);

	if (rc != SQLITE_OK)
		printf("#   sqlite: %s: %s\n", stmt, msg ? msg : "?");
	sqlite3_free(msg);
	return rc;
}

static int
file_mode(const char *name)
{
	char path[512];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (stat(path, &sb) != 0)
		return -1;
	return (int)(sb.st_mode & 0777);
}

static int
count_addr(void *arg, const uint8_t key[32], const char *v4, const char *v6)
{
	int *n = arg;

	if (key[0] == 7 && strcmp(v4, "10.64.0.9") == 0 && v6 == NULL)
		n[1]++;
	if (key[0] == 8 && strcmp(v4, "10.64.0.10") == 0 && v6 != NULL &&
	    strcmp(v6, "fd00::a") == 0)
		n[1]++;
	n[0]++;
	return 0;
}

static int
stop_addr(void *arg, const uint8_t key[32], const char *v4, const char *v6)
{
	(void)arg;
	(void)key;
	(void)v4;
	(void)v6;
	return 42;
}

static void
test_tables(void)
{
	struct state *st = NULL, *ro = NULL;
	struct state_node n, got, *list = NULL;
	uint8_t secret[64], *val = NULL, key[32];
	size_t len = 0, nn = 0;
	char *s = NULL;
	int counts[2] = { 0, 0 };
	int rc, v = -1;

	T_OK(state_open(&st, dir, 0) == ERR_NOTFOUND, "open without STATE_CREATE: not found");
	T_OK(strstr(err_last(), "not a cox state directory") != NULL, "  ... says so: %s",
	    err_last());
	T_OK(state_open(&st, dir, STATE_CREATE) == 0, "create: %s", err_last());
	if (st == NULL)
		return;
	T_OK(file_mode(STATE_DB) == 0600, "state.db is 0600 (%o)", file_mode(STATE_DB));
	{
		sqlite3_stmt *q = NULL;
		sqlite3_prepare_v2(state_sqlite(st), "PRAGMA user_version", -1, &q, NULL);
		if (q != NULL && sqlite3_step(q) == SQLITE_ROW)
			v = sqlite3_column_int(q, 0);
		sqlite3_finalize(q);
		sqlite3_prepare_v2(state_sqlite(st), "PRAGMA journal_mode", -1, &q, NULL);
		T_OK(q != NULL && sqlite3_step(q) == SQLITE_ROW &&
		    strcmp((const char *)sqlite3_column_text(q, 0), "wal") == 0,
		    "journal mode WAL");
		sqlite3_finalize(q);
	}
	T_OK(v >= 1, "migrations ran: user_version %d", v);
	T_STREQ(state_dir(st), dir, "state_dir");

	/* meta */
	T_OK(state_meta_get(st, "fleet_id", &s) == 1 && s == NULL, "meta: absent is 1");
	T_OK(state_meta_set(st, "fleet_id", "alpha") == 0, "meta: set");
	T_OK(state_meta_set(st, "branch", "main") == 0, "meta: set another");
	T_OK(state_meta_set(st, "fleet_id", "beta") == 0, "meta: overwrite");
	T_OK(state_meta_get(st, "fleet_id", &s) == 0, "meta: get");
	T_STREQ(s, "beta", "meta: the latest value");
	free(s);
	s = NULL;

	/* secrets, with bytes that are not text */
	randombytes_buf(secret, sizeof(secret));
	secret[10] = 0;
	T_OK(state_secret_get(st, "sign.key", &val, &len) == 1 && val == NULL, "secret: absent");
	T_OK(state_secret_put(st, "sign.key", secret, sizeof(secret)) == 0, "secret: put");
	T_OK(state_secret_get(st, "sign.key", &val, &len) == 0 && len == 64 && val != NULL &&
	    memcmp(val, secret, 64) == 0 && val[64] == 0, "secret: binary round trip");
	if (val != NULL)
		sodium_memzero(val, len);
	free(val);
	val = NULL;
	T_OK(state_secret_put(st, "ssh.pub", "ssh-ed25519 AAAA x\n", 19) == 0 &&
	    state_secret_get(st, "ssh.pub", &val, &len) == 0 && len == 19 &&
	    strcmp((char *)val, "ssh-ed25519 AAAA x\n") == 0, "secret: text, NUL-terminated");
	free(val);
	val = NULL;

	/* nodes */
	memset(&n, 0, sizeof(n));
	snprintf(n.name, sizeof(n.name), "ams-1");
	n.cert_pem = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n";
	n.control = "10.0.0.1:8444";
	snprintf(n.applied_rev, sizeof(n.applied_rev), "%040d", 1);
	n.applied_serial = UINT64_MAX - 1;	/* above INT64_MAX: must round-trip */
	memset(n.config_hash, 0xab, 32);
	memset(n.content_hash, 0xcd, 32);
	n.have_applied = true;
	n.sent_serial = 17;
	snprintf(n.attempted_rev, sizeof(n.attempted_rev), "%040d", 2);
	n.last_error = "push: deadline exceeded";
	n.last_seen_unix = 1700000000;
	n.reachable = true;
	memset(n.awg_pub, 0x11, 32);
	n.have_awg_pub = true;
	n.enrolled_unix = 1690000000;
	T_OK(state_node_put(st, &n) == 0, "node: put: %s", err_last());
	T_OK(state_node_get(st, "nope", &got) == 1, "node: absent is 1");
	T_OK(state_node_get(st, "ams-1", &got) == 0, "node: get");
	T_STREQ(got.cert_pem, n.cert_pem, "node: cert_pem");
	T_STREQ(got.control, n.control, "node: control");
	T_STREQ(got.applied_rev, n.applied_rev, "node: applied_rev");
	T_STREQ(got.attempted_rev, n.attempted_rev, "node: attempted_rev");
	T_STREQ(got.last_error, n.last_error, "node: last_error");
	T_OK(got.applied_serial == n.applied_serial && got.sent_serial == 17, "node: serials");
	T_OK(got.have_applied && memcmp(got.config_hash, n.config_hash, 32) == 0 &&
	    memcmp(got.content_hash, n.content_hash, 32) == 0, "node: hashes");
	T_OK(got.last_seen_unix == 1700000000 && got.reachable && got.enrolled_unix == 1690000000,
	    "node: times and reachable");
	T_OK(got.have_awg_pub && got.awg_pub[5] == 0x11 && !got.have_reality_pub, "node: keys");
	state_node_clear(&got);
	T_OK(got.cert_pem == NULL && got.control == NULL && got.last_error == NULL,
	    "node: clear frees and NULLs");
	/* replace with a node that is not enrolled */
	n.cert_pem = NULL;
	n.control = NULL;
	n.last_error = NULL;
	n.have_applied = false;
	T_OK(state_node_put(st, &n) == 0 && state_node_get(st, "ams-1", &got) == 0 &&
	    got.cert_pem == NULL && got.last_error == NULL && !got.have_applied,
	    "node: put replaces every field");
	state_node_clear(&got);
	snprintf(n.name, sizeof(n.name), "a-first");
	T_OK(state_node_put(st, &n) == 0, "node: a second one");
	T_OK(state_node_list(st, &list, &nn) == 0 && nn == 2 &&
	    strcmp(list[0].name, "a-first") == 0 && strcmp(list[1].name, "ams-1") == 0,
	    "node: list sorted by name");
	state_node_list_free(list, nn);
	T_OK(state_node_delete(st, "a-first") == 0 && state_node_get(st, "a-first", &got) == 1,
	    "node: delete");
	memset(n.name, 'x', sizeof(n.name));
	T_OK(state_node_put(st, &n) == ERR_INVAL, "node: an unterminated name is refused");

	/* device addresses */
	memset(key, 7, 32);
	T_OK(state_addr_put(st, key, "10.64.0.9", NULL) == 0, "addr: put v4 only");
	memset(key, 8, 32);
	T_OK(state_addr_put(st, key, "10.64.0.11", NULL) == 0, "addr: put");
	T_OK(state_addr_put(st, key, "10.64.0.10", "fd00::a") == 0, "addr: replace, with v6");
	T_OK(state_addr_each(st, count_addr, counts) == 0 && counts[0] == 2 && counts[1] == 2,
	    "addr: each sees both, as written (%d, %d)", counts[0], counts[1]);
	T_OK(state_addr_each(st, stop_addr, NULL) == 42, "addr: a callback's non-zero stops");
	T_OK(state_addr_put(st, key, "", NULL) == ERR_INVAL, "addr: no v4 is refused");

	/* transactions */
	T_OK(state_begin(st) == 0 && state_meta_set(st, "x", "1") == 0, "tx: begin, write");
	T_OK(state_begin(st) == ERR_INVAL, "tx: no nesting");
	state_rollback(st);
	T_OK(state_meta_get(st, "x", &s) == 1, "tx: rollback drops the write");
	T_OK(state_begin(st) == 0 && state_meta_set(st, "x", "2") == 0 &&
	    audit_append(st, "cox", "test.tx", "x", "inside a caller's transaction") == 0 &&
	    state_commit(st) == 0, "tx: commit (audit_append joins the transaction)");
	T_OK(state_commit(st) == ERR_INVAL, "tx: commit without begin");

	/* a read-only connection while this one is open (cox status during cox run) */
	T_OK(state_open(&ro, dir, STATE_READONLY) == 0, "read-only open alongside: %s",
	    err_last());
	if (ro != NULL) {
		T_OK(state_meta_get(ro, "x", &s) == 0 && strcmp(s, "2") == 0,
		    "read-only: sees committed data");
		free(s);
		s = NULL;
		T_OK(state_meta_set(ro, "x", "3") < 0 && strstr(err_last(), "readonly") != NULL,
		    "read-only: writes refused: %s", err_last());
		T_OK(state_begin(st) == 0 && state_meta_set(st, "x", "4") == 0,
		    "read-only: the writer starts a transaction");
		T_OK(state_meta_get(ro, "x", &s) == 0 && strcmp(s, "2") == 0,
		    "read-only: reads while the writer holds its lock (WAL)");
		free(s);
		s = NULL;
		T_OK(state_commit(st) == 0, "read-only: the writer commits");
		state_close(ro);
	}
	state_close(st);
	st = NULL;
	T_OK(file_mode(STATE_DB) == 0600, "still 0600 after use");

	/* reopen keeps everything; migrations do not run again */
	T_OK(state_open(&st, dir, 0) == 0, "reopen: %s", err_last());
	if (st == NULL)
		return;
	T_OK(state_meta_get(st, "fleet_id", &s) == 0 && strcmp(s, "beta") == 0,
	    "reopen: meta kept");
	free(s);
	s = NULL;
	T_OK(state_secret_get(st, "sign.key", &val, &len) == 0 && len == 64 &&
	    memcmp(val, secret, 64) == 0, "reopen: secret kept");
	free(val);
	T_OK(state_node_get(st, "ams-1", &got) == 0 && got.applied_serial == UINT64_MAX - 1,
	    "reopen: node kept");
	state_node_clear(&got);
	state_close(st);
	st = NULL;
	T_OK(state_open(&ro, dir, STATE_READONLY) == 0 && state_meta_get(ro, "x", &s) == 0 &&
	    strcmp(s, "4") == 0, "read-only open with no writer: %s", err_last());
	free(s);
	s = NULL;
	state_close(ro);
	if (state_open(&st, dir, 0) != 0)
		return;
	/* a database from a newer cox is refused, not guessed at */
	rc = sql(st, "PRAGMA user_version = 999");
	state_close(st);
	st = NULL;
	T_OK(rc == SQLITE_OK && state_open(&st, dir, 0) == ERR_INVAL &&
	    strstr(err_last(), "newer") != NULL, "a newer schema is refused: %s", err_last());
	T_OK(state_open(&st, dir, STATE_READONLY) == ERR_INVAL, "  ... read-only too");
	sodium_memzero(secret, sizeof(secret));
}

/* A fresh database with `n` audit entries. */
static struct state *
audit_fixture(int n)
{
	struct state *st = NULL;
	char obj[32];
	int i;

	rm_dir();
	if (mkdtemp(strcpy(dir, "/tmp/test_state.XXXXXX")) == NULL ||
	    state_open(&st, dir, STATE_CREATE) != 0)
		return NULL;
	for (i = 1; i <= n; i++) {
		snprintf(obj, sizeof(obj), "obj-%d", i);
		if (audit_append(st, i % 2 ? "cox" : "git:alice", "test.action", obj,
		    i == 3 ? "" : "some detail") != 0) {
			state_close(st);
			return NULL;
		}
	}
	return st;
}

static void
expect_broken(struct state *st, int64_t want_seq, const char *what)
{
	struct audit_result r;
	int rc = audit_verify(st, &r);

	T_OK(rc == 1 && r.first_bad == want_seq, "%s: broken at %lld (rc %d, at %lld)", what,
	    (long long)want_seq, rc, (long long)r.first_bad);
	printf("#   why: %s\n", r.why);
}

static void
test_audit(void)
{
	struct state *st;
	struct audit_result r;
	struct audit_entry *v = NULL;
	size_t n = 0;

	if ((st = audit_fixture(0)) == NULL) {
		T_OK(0, "audit: fixture: %s", err_last());
		return;
	}
	T_OK(audit_verify(st, &r) == 0 && r.entries == 0 && r.first_bad == 0,
	    "audit: an empty log is intact");
	state_close(st);

	if ((st = audit_fixture(6)) == NULL) {
		T_OK(0, "audit: fixture: %s", err_last());
		return;
	}
	T_OK(audit_verify(st, &r) == 0 && r.entries == 6, "audit: 6 entries intact (%lld)",
	    (long long)r.entries);
	T_OK(audit_list(st, 0, &v, &n) == 0 && n == 6 && v[0].seq == 1 && v[5].seq == 6 &&
	    strcmp(v[1].actor, "git:alice") == 0 && strcmp(v[2].detail, "") == 0 &&
	    strcmp(v[5].object, "obj-6") == 0, "audit: list all, oldest first");
	audit_list_free(v, n);
	T_OK(audit_list(st, 2, &v, &n) == 0 && n == 2 && v[0].seq == 5 && v[1].seq == 6,
	    "audit: --limit 2 gives the 2 newest, oldest first");
	audit_list_free(v, n);
	T_OK(audit_append(st, NULL, "x", "y", NULL) == ERR_INVAL, "audit: no actor is refused");
	state_close(st);

	/* a changed detail */
	st = audit_fixture(6);
	T_OK(st != NULL && sql(st, "UPDATE audit SET detail = 'forged' WHERE seq = 4") == 0,
	    "tamper: UPDATE detail of entry 4");
	if (st != NULL) {
		expect_broken(st, 4, "changed detail");
		state_close(st);
	}
	/* a changed time */
	st = audit_fixture(6);
	if (st != NULL &&
	    sql(st, "UPDATE audit SET time_unix = time_unix - 86400 WHERE seq = 2") == 0)
		expect_broken(st, 2, "changed time");
	state_close(st);
	/* a removed middle entry */
	st = audit_fixture(6);
	T_OK(st != NULL && sql(st, "DELETE FROM audit WHERE seq = 3") == 0,
	    "tamper: DELETE entry 3");
	if (st != NULL) {
		expect_broken(st, 3, "deleted middle entry");
		state_close(st);
	}
	/* a removed first entry */
	st = audit_fixture(6);
	if (st != NULL && sql(st, "DELETE FROM audit WHERE seq = 1") == 0)
		expect_broken(st, 1, "deleted first entry");
	state_close(st);
	/* removed last entries */
	st = audit_fixture(6);
	if (st != NULL && sql(st, "DELETE FROM audit WHERE seq >= 5") == 0)
		expect_broken(st, 5, "deleted last two entries");
	state_close(st);
	/* two entries swapped (their seq exchanged) */
	st = audit_fixture(6);
	T_OK(st != NULL && sql(st, "UPDATE audit SET seq = -seq WHERE seq IN (2, 5);"
	    "UPDATE audit SET seq = CASE seq WHEN -2 THEN 5 ELSE 2 END WHERE seq < 0") == 0,
	    "tamper: swap the seq of entries 2 and 5");
	if (st != NULL) {
		expect_broken(st, 2, "swapped entries");
		state_close(st);
	}
	/* removed and renumbered, so there is no gap: the chain still breaks */
	st = audit_fixture(6);
	if (st != NULL && sql(st, "DELETE FROM audit WHERE seq = 3;"
	    "UPDATE audit SET seq = seq - 1 WHERE seq > 3") == 0)
		expect_broken(st, 3, "deleted and renumbered");
	state_close(st);
	/* an entry added behind cox's back, with a correct-looking seq */
	st = audit_fixture(6);
	if (st != NULL && sql(st, "INSERT INTO audit SELECT 7, time_unix, actor, action, object, "
	    "detail, hash FROM audit WHERE seq = 6") == 0)
		expect_broken(st, 7, "inserted entry");
	/* appending again after tampering still works, and stays broken */
	if (st != NULL) {
		T_OK(sql(st, "DELETE FROM audit WHERE seq = 7") == 0 &&
		    audit_append(st, "cox", "after", "x", "") == 0 && audit_verify(st, &r) == 0 &&
		    r.entries == 7, "undoing the insert and appending: intact again");
	}
	state_close(st);
	rm_dir();
}

static int
rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

/* cox init, in this process (its output to /dev/null): the exit status. */
static int
run_init(char *argv[])
{
	int argc = 0, saved, devnull, rc;

	while (argv[argc] != NULL)
		argc++;
	fflush(stdout);
	saved = dup(1);
	devnull = open("/dev/null", O_WRONLY);
	dup2(devnull, 1);
	rc = cmd_init(argc, argv);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	close(devnull);
	return rc;
}

static void
test_ctlpki(void)
{
	char root[] = "/tmp/test_ctlpki.XXXXXX", sd[256], fleet[CTLPKI_FLEET_MAX];
	char serial[CTLPKI_SERIAL_MAX], *leaf = NULL, *chain = NULL, *csr_pem = NULL, *pub = NULL;
	char b64[64];
	struct state *st = NULL;
	SSL_CTX *ctx = NULL;
	struct spiffe id;
	EVP_PKEY *key = NULL;
	X509_REQ *csr = NULL;
	uint8_t *sk = sodium_malloc(64), pk[32], sig[64];
	time_t na = 0;

	if (mkdtemp(root) == NULL || sk == NULL) {
		T_OK(0, "ctlpki: setup");
		return;
	}
	snprintf(sd, sizeof(sd), "%s/sd", root);
	{
		char *argv[] = { "init", "--fleet-id", "gamma", sd, NULL };
		T_OK(run_init(argv) == COX_OK, "cox init in-process: %s", err_last());
	}
	T_OK(state_open(&st, sd, STATE_READONLY) == 0, "open the new state dir read-only");
	if (st == NULL)
		goto out;
	T_OK(ctlpki_load(st, &ctx, sk, pk, fleet) == 0 && ctx != NULL, "ctlpki_load: %s",
	    err_last());
	T_STREQ(fleet, "gamma", "ctlpki_load: the fleet id");
	if (ctx != NULL) {
		T_OK(tls_ctx_spiffe(&id, ctx) == 0 && id.role == PKI_ROLE_CONTROLLER &&
		    strcmp(id.trust_domain, "gamma") == 0, "ctlpki_load: a controller's context");
	}
	T_OK(crypto_sign_detached(sig, NULL, (const uint8_t *)"m", 1, sk) == 0 &&
	    crypto_sign_verify_detached(sig, (const uint8_t *)"m", 1, pk) == 0,
	    "ctlpki_load: sign_sk and sign_pk are a pair");
	sodium_bin2base64(b64, sizeof(b64), pk, 32, sodium_base64_VARIANT_ORIGINAL);
	strcat(b64, "\n");
	T_OK(ctlpki_controller_pub(st, &pub) == 0 && strcmp(pub, b64) == 0,
	    "controller.pub is base64 of sign_pk");
	/* a node CSR made the way buoy makes it */
	memset(&id, 0, sizeof(id));
	T_OK(pki_spiffe_parse(&id, "spiffe://gamma/node/n1") == 0 && pki_key_new(&key) == 0 &&
	    pki_csr_new(&csr, key, &id) == 0 && pki_csr_pem(&csr_pem, csr) == 0, "a node CSR");
	if (csr_pem != NULL) {
		T_OK(ctlpki_issue_node(st, "gamma", "n1", csr_pem, strlen(csr_pem), &leaf, &chain,
		    serial, &na) == 0 && leaf != NULL && chain != NULL &&
		    strncmp(chain, leaf, strlen(leaf)) == 0 && na > time(NULL) + 360 * 86400,
		    "issue_node: leaf, chain starting with it, a year: %s", err_last());
		free(leaf);
		free(chain);
		leaf = chain = NULL;
		T_OK(ctlpki_issue_node(st, "gamma", "n2", csr_pem, strlen(csr_pem), &leaf, &chain,
		    serial, &na) == ERR_INVAL && leaf == NULL &&
		    strstr(err_last(), "expected spiffe://gamma/node/n2") != NULL,
		    "issue_node: a CSR for another node is refused: %s", err_last());
		T_OK(ctlpki_issue_node(st, "gamma", "N2", csr_pem, strlen(csr_pem), &leaf, &chain,
		    serial, &na) < 0, "issue_node: a name SPIFFE refuses");
		T_OK(ctlpki_issue_node(st, "gamma", "n1", "junk", 4, &leaf, &chain, serial,
		    &na) < 0, "issue_node: junk instead of a CSR");
	}
	{
		struct audit_result r;
		T_OK(audit_verify(st, &r) == 0 && r.entries == 1, "cox init wrote one audit entry");
	}
	{
		char *argv[] = { "init", sd, NULL };
		T_OK(run_init(argv) == COX_FAIL, "cox init refuses a non-empty folder");
	}
out:
	sodium_free(sk);
	SSL_CTX_free(ctx);
	X509_REQ_free(csr);
	EVP_PKEY_free(key);
	free(csr_pem);
	free(pub);
	state_close(st);
	nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
	if (sodium_init() < 0 || mkdtemp(dir) == NULL) {
		printf("not ok - setup\n");
		return 1;
	}
	test_tables();
	test_audit();
	rm_dir();
	test_ctlpki();
	T_DONE();
}
