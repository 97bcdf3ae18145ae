/* SPDX-License-Identifier: Apache-2.0 */
/*
 * state.db: SQLite through its C API, one connection per process, WAL so the CLI reads
 * while `cox run` writes. Every statement is prepared once per connection and cached;
 * SQLite's error is translated once, in db_fail(). The schema is a list of numbered
 * migrations (PRAGMA user_version), each applied in its own transaction.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "state.h"

#define BUSY_MS		5000
#define AUDIT_FIELD_MAX	(1024 * 1024)	/* one actor/action/object/detail */
#define SECRET_MAX	(1024 * 1024)

/*
 * The schema, one migration per element; element i takes user_version i to i + 1. Never
 * edit a released migration: add one.
 */
static const char *const migrations[] = {
	/* 1: the first schema */
	"CREATE TABLE meta ("
	"  key	TEXT PRIMARY KEY NOT NULL,"
	"  value	TEXT NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE secrets ("
	"  name	TEXT PRIMARY KEY NOT NULL,"
	"  value	BLOB NOT NULL,"
	"  updated_unix	INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE nodes ("
	"  name		TEXT PRIMARY KEY NOT NULL,"
	"  cert_pem	TEXT,"
	"  control	TEXT,"
	"  applied_rev	TEXT NOT NULL DEFAULT '',"
	"  applied_serial	INTEGER NOT NULL DEFAULT 0,"
	"  config_hash	BLOB,"
	"  content_hash	BLOB,"
	"  have_applied	INTEGER NOT NULL DEFAULT 0,"
	"  sent_serial	INTEGER NOT NULL DEFAULT 0,"
	"  attempted_rev	TEXT NOT NULL DEFAULT '',"
	"  last_error	TEXT,"
	"  last_seen_unix	INTEGER NOT NULL DEFAULT 0,"
	"  reachable	INTEGER NOT NULL DEFAULT 0,"
	"  awg_pub	BLOB,"
	"  reality_pub	BLOB,"
	"  enrolled_unix	INTEGER NOT NULL DEFAULT 0"
	") WITHOUT ROWID;"
	"CREATE TABLE addrs ("
	"  key	BLOB PRIMARY KEY NOT NULL CHECK (length(key) = 32),"
	"  v4	TEXT NOT NULL,"
	"  v6	TEXT"
	");"
	"CREATE INDEX addrs_v4 ON addrs (v4);"
	"CREATE TABLE audit ("
	"  seq		INTEGER PRIMARY KEY,"
	"  time_unix	INTEGER NOT NULL,"
	"  actor	TEXT NOT NULL,"
	"  action	TEXT NOT NULL,"
	"  object	TEXT NOT NULL,"
	"  detail	TEXT NOT NULL,"
	"  hash		BLOB NOT NULL"
	");"
	/* The last entry's seq and hash, so a log cut short at the end is noticed too. */
	"CREATE TABLE audit_head ("
	"  id	INTEGER PRIMARY KEY CHECK (id = 1),"
	"  seq	INTEGER NOT NULL,"
	"  hash	BLOB NOT NULL"
	");",
	/* 2: admin authentication (reconciler/auth.c, docs/DESIGN.md §10) */
	"CREATE TABLE auth_passwords ("
	"  username	TEXT PRIMARY KEY NOT NULL,"
	"  hash		TEXT NOT NULL,"		/* crypto_pwhash_str() (Argon2id) */
	"  updated_unix	INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE auth_sessions ("
	"  id_hash	BLOB PRIMARY KEY NOT NULL CHECK (length(id_hash) = 32),"	/* SHA-256 */
	"  username	TEXT NOT NULL,"
	"  client_ip	TEXT NOT NULL,"
	"  created_unix	INTEGER NOT NULL,"
	"  last_used_unix	INTEGER NOT NULL,"
	"  expires_unix	INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE INDEX auth_sessions_user ON auth_sessions (username, last_used_unix);"
	"CREATE TABLE auth_tokens ("
	"  id		INTEGER PRIMARY KEY,"
	"  name		TEXT NOT NULL,"
	"  hash		BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),"		/* SHA-256 */
	"  scope	INTEGER NOT NULL CHECK (scope BETWEEN 1 AND 3),"
	"  created_by	TEXT NOT NULL,"
	"  created_unix	INTEGER NOT NULL,"
	"  expires_unix	INTEGER NOT NULL,"
	"  last_used_unix	INTEGER NOT NULL DEFAULT 0,"
	"  revoked_unix	INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE UNIQUE INDEX auth_tokens_live_name ON auth_tokens (name) WHERE revoked_unix = 0;"
	/* failed logins, keyed "user:<name>" or "ip:<address or /64>" */
	"CREATE TABLE auth_failures ("
	"  key		TEXT NOT NULL,"
	"  time_unix	INTEGER NOT NULL"
	");"
	"CREATE INDEX auth_failures_key ON auth_failures (key, time_unix);",
	/* 3: approvals of proposals, each of one head of a branch (docs/DESIGN.md §11) */
	"CREATE TABLE approvals ("
	"  branch	TEXT NOT NULL,"
	"  rev		TEXT NOT NULL,"
	"  username	TEXT NOT NULL,"
	"  time_unix	INTEGER NOT NULL,"
	"  PRIMARY KEY (branch, rev, username)"
	") WITHOUT ROWID;",
};
#define NMIGRATIONS	((int)(sizeof(migrations) / sizeof(migrations[0])))

enum q {
	Q_META_GET, Q_META_SET,
	Q_SECRET_GET, Q_SECRET_PUT,
	Q_NODE_GET, Q_NODE_PUT, Q_NODE_DEL, Q_NODE_LIST,
	Q_ADDR_EACH, Q_ADDR_PUT,
	Q_HEAD_GET, Q_HEAD_SET, Q_AUDIT_INSERT, Q_AUDIT_LIST, Q_AUDIT_ALL,
	Q_N
};

#define NODE_COLS "name, cert_pem, control, applied_rev, applied_serial, config_hash, " \
	"content_hash, have_applied, sent_serial, attempted_rev, last_error, last_seen_unix, " \
	"reachable, awg_pub, reality_pub, enrolled_unix"
#define AUDIT_COLS "seq, time_unix, actor, action, object, detail, hash"

static const char *const sqls[Q_N] = {
	[Q_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[Q_META_SET] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
	[Q_SECRET_GET] = "SELECT value FROM secrets WHERE name = ?1",
	[Q_SECRET_PUT] = "INSERT OR REPLACE INTO secrets (name, value, updated_unix) "
	    "VALUES (?1, ?2, ?3)",
	[Q_NODE_GET] = "SELECT " NODE_COLS " FROM nodes WHERE name = ?1",
	[Q_NODE_PUT] = "INSERT OR REPLACE INTO nodes (" NODE_COLS ") VALUES "
	    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
	[Q_NODE_DEL] = "DELETE FROM nodes WHERE name = ?1",
	[Q_NODE_LIST] = "SELECT " NODE_COLS " FROM nodes ORDER BY name",
	[Q_ADDR_EACH] = "SELECT key, v4, v6 FROM addrs ORDER BY v4, key",
	[Q_ADDR_PUT] = "INSERT OR REPLACE INTO addrs (key, v4, v6) VALUES (?1, ?2, ?3)",
	[Q_HEAD_GET] = "SELECT seq, hash FROM audit_head WHERE id = 1",
	[Q_HEAD_SET] = "INSERT OR REPLACE INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2)",
	[Q_AUDIT_INSERT] = "INSERT INTO audit (" AUDIT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[Q_AUDIT_LIST] = "SELECT " AUDIT_COLS " FROM (SELECT " AUDIT_COLS " FROM audit "
	    "ORDER BY seq DESC LIMIT ?1) ORDER BY seq",
	[Q_AUDIT_ALL] = "SELECT " AUDIT_COLS " FROM audit ORDER BY seq",
};

struct state {
	sqlite3		*db;
	char		*dir;
	int		 flags;
	bool		 in_tx;
	sqlite3_stmt	*q[Q_N];
};

/* The one translation of SQLite's error: "state.db: <what>: <sqlite's message>". */
static int
db_fail(struct state *st, const char *what)
{
	err_set("%s/%s: %s: %s", st->dir, STATE_DB, what, sqlite3_errmsg(st->db));
	return ERR_LIB;
}

static int
nomem(void)
{
	err_set("out of memory");
	return ERR_NOMEM;
}

/* The cached statement for id, reset and unbound, or NULL (err_last()). */
static sqlite3_stmt *
q(struct state *st, enum q id)
{
	if (st->q[id] == NULL) {
		if (sqlite3_prepare_v3(st->db, sqls[id], -1, SQLITE_PREPARE_PERSISTENT, &st->q[id],
		    NULL) != SQLITE_OK) {
			db_fail(st, "preparing a statement");
			st->q[id] = NULL;
			return NULL;
		}
	}
	return st->q[id];
}

/* After a statement ran: reset it and drop bindings (they may point at a secret). */
static void
done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

static int
exec(struct state *st, const char *sql, const char *what)
{
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(st, what);
	return 0;
}

static int
user_version(struct state *st, int *out)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
		return db_fail(st, "reading the schema version");
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		rc = db_fail(st, "reading the schema version");
		sqlite3_finalize(s);
		return rc;
	}
	*out = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return 0;
}

/* Apply every migration past the database's version, each in its own transaction. */
static int
migrate(struct state *st)
{
	char sql[64];
	int v, rc;

	for (;;) {
		if ((rc = exec(st, "BEGIN IMMEDIATE", "starting a migration")) != 0)
			return rc;
		/* read inside the transaction: another process may have migrated meanwhile */
		if ((rc = user_version(st, &v)) != 0)
			goto fail;
		if (v > NMIGRATIONS) {
			err_set("%s/%s: schema version %d is newer than this cox knows (%d); "
			    "use a newer cox", st->dir, STATE_DB, v, NMIGRATIONS);
			rc = ERR_INVAL;
			goto fail;
		}
		if (v == NMIGRATIONS)
			return exec(st, "COMMIT", "ending a migration");
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if (sqlite3_exec(st->db, migrations[v], NULL, NULL, NULL) != SQLITE_OK ||
		    sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
			snprintf(sql, sizeof(sql), "migration %d", v + 1);
			rc = db_fail(st, sql);
			goto fail;
		}
		if ((rc = exec(st, "COMMIT", "committing a migration")) != 0)
			goto fail;
	}
fail:
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* A pragma whose one-row answer must be `want` (journal_mode). */
static int
pragma_expect(struct state *st, const char *sql, const char *want)
{
	sqlite3_stmt *s = NULL;
	const char *got;
	int rc = 0;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return db_fail(st, sql);
	if (sqlite3_step(s) != SQLITE_ROW) {
		rc = db_fail(st, sql);
	} else if ((got = (const char *)sqlite3_column_text(s, 0)) == NULL ||
	    strcmp(got, want) != 0) {
		err_set("%s/%s: %s: got '%s', want '%s'", st->dir, STATE_DB, sql,
		    got ? got : "", want);
		rc = ERR_LIB;
	}
	sqlite3_finalize(s);
	return rc;
}

/*
 * The file exists and is 0600 before SQLite opens it: SQLite gives the -wal and -shm
 * files the database file's mode, whatever the umask.
 */
static int
create_file(const char *path)
{
	struct stat st;
	int fd;

	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) == -1) {
		err_setsys("%s", path);
		return ERR_SYS;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (st.st_size == 0 && fchmod(fd, 0600) == -1)) {
		if (S_ISREG(st.st_mode))
			err_setsys("%s", path);
		else
			err_set("%s: not a regular file", path);
		close(fd);
		return ERR_SYS;
	}
	close(fd);
	return 0;
}

int
state_open(struct state **out, const char *dir, int flags)
{
	struct state *st;
	struct stat sb;
	char *path = NULL;
	size_t plen;
	int oflags, rc, v;

	*out = NULL;
	if ((flags & STATE_CREATE) && (flags & STATE_READONLY)) {
		err_set("state_open: STATE_CREATE and STATE_READONLY together");
		return ERR_INVAL;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL || (st->dir = strdup(dir)) == NULL) {
		free(st);
		return nomem();
	}
	st->flags = flags;
	plen = strlen(dir) + sizeof(STATE_DB) + 1;
	if ((path = malloc(plen)) == NULL) {
		rc = nomem();
		goto fail;
	}
	snprintf(path, plen, "%s/%s", dir, STATE_DB);
	if (flags & STATE_CREATE) {
		if ((rc = create_file(path)) != 0)
			goto fail;
	} else if (stat(path, &sb) == -1) {
		if (errno == ENOENT) {
			err_set("%s: not a cox state directory (no %s; see cox init)", dir,
			    STATE_DB);
			rc = ERR_NOTFOUND;
		} else {
			err_setsys("%s", path);
			rc = ERR_SYS;
		}
		goto fail;
	}
	oflags = (flags & STATE_READONLY) ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
	oflags |= SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW;
	if (sqlite3_open_v2(path, &st->db, oflags, NULL) != SQLITE_OK) {
		if (st->db == NULL) {
			rc = nomem();
			goto fail;
		}
		rc = db_fail(st, "open");
		goto fail;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, BUSY_MS);
	if ((rc = exec(st, "PRAGMA foreign_keys = ON; PRAGMA trusted_schema = OFF; "
	    "PRAGMA secure_delete = ON", "settings")) != 0)
		goto fail;
	if (!(flags & STATE_READONLY)) {
		if ((rc = pragma_expect(st, "PRAGMA journal_mode = WAL", "wal")) != 0 ||
		    (rc = exec(st, "PRAGMA synchronous = NORMAL", "settings")) != 0 ||
		    (rc = migrate(st)) != 0)
			goto fail;
	} else {
		if ((rc = user_version(st, &v)) != 0)
			goto fail;
		if (v != NMIGRATIONS) {
			err_set("%s/%s: schema version %d, this cox knows %d; %s", dir, STATE_DB, v,
			    NMIGRATIONS, v < NMIGRATIONS ?
			    "open it read-write once (cox run) to migrate it" : "use a newer cox");
			rc = ERR_INVAL;
			goto fail;
		}
	}
	free(path);
	*out = st;
	return 0;
fail:
	free(path);
	state_close(st);
	return rc;
}

void
state_close(struct state *st)
{
	int i;

	if (st == NULL)
		return;
	if (st->in_tx)
		state_rollback(st);
	for (i = 0; i < Q_N; i++)
		sqlite3_finalize(st->q[i]);
	sqlite3_close(st->db);
	free(st->dir);
	free(st);
}

struct sqlite3 *
state_sqlite(struct state *st)
{
	return st->db;
}

const char *
state_dir(const struct state *st)
{
	return st->dir;
}

int
state_begin(struct state *st)
{
	int rc;

	if (st->in_tx) {
		err_set("state_begin: a transaction is open already");
		return ERR_INVAL;
	}
	if ((rc = exec(st, "BEGIN IMMEDIATE", "begin")) == 0)
		st->in_tx = true;
	return rc;
}

int
state_commit(struct state *st)
{
	int rc;

	if (!st->in_tx) {
		err_set("state_commit: no transaction is open");
		return ERR_INVAL;
	}
	if ((rc = exec(st, "COMMIT", "commit")) != 0) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		st->in_tx = false;
		return rc;
	}
	st->in_tx = false;
	return 0;
}

void
state_rollback(struct state *st)
{
	if (!st->in_tx)
		return;
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	st->in_tx = false;
}

/* ---- column helpers ---- */

/* A text column as a malloc'd string; NULL column -> *out NULL. */
static int
col_strdup(sqlite3_stmt *s, int i, char **out)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	int n = sqlite3_column_bytes(s, i);

	*out = NULL;
	if (t == NULL)
		return sqlite3_column_type(s, i) == SQLITE_NULL ? 0 : nomem();
	if ((*out = malloc((size_t)n + 1)) == NULL)
		return nomem();
	memcpy(*out, t, (size_t)n);
	(*out)[n] = '\0';
	return 0;
}

/* A text column into a fixed buffer; too long (or NULL when required) is corruption. */
static int
col_copy(struct state *st, sqlite3_stmt *s, int i, char *buf, size_t bufsz, const char *what)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	size_t n = (size_t)sqlite3_column_bytes(s, i);

	if (t == NULL)
		n = 0;
	if (n >= bufsz) {
		err_set("%s/%s: %s is %zu bytes, at most %zu expected", st->dir, STATE_DB, what, n,
		    bufsz - 1);
		return ERR_INVAL;
	}
	if (n > 0)
		memcpy(buf, t, n);
	buf[n] = '\0';
	return 0;
}

/* A 32-byte blob column: true if present and exactly 32 bytes. */
static bool
col_key(sqlite3_stmt *s, int i, uint8_t out[32])
{
	const void *b = sqlite3_column_blob(s, i);

	if (b == NULL || sqlite3_column_bytes(s, i) != 32)
		return false;
	memcpy(out, b, 32);
	return true;
}

/* ---- meta ---- */

int
state_meta_get(struct state *st, const char *key, char **val)
{
	sqlite3_stmt *s;
	int rc;

	*val = NULL;
	if ((s = q(st, Q_META_GET)) == NULL)
		return ERR_LIB;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((rc = col_strdup(s, 0, val)) == 0 && *val == NULL &&
		    (*val = strdup("")) == NULL)
			rc = nomem();
	} else if (rc == SQLITE_DONE) {
		rc = 1;
	} else {
		rc = db_fail(st, "reading a setting");
	}
	done(s);
	return rc;
}

int
state_meta_set(struct state *st, const char *key, const char *val)
{
	sqlite3_stmt *s;
	int rc = 0;

	if ((s = q(st, Q_META_SET)) == NULL)
		return ERR_LIB;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, val, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = db_fail(st, "writing a setting");
	done(s);
	return rc;
}

/* ---- secrets ---- */

int
state_secret_get(struct state *st, const char *name, uint8_t **val, size_t *len)
{
	sqlite3_stmt *s;
	const void *b;
	size_t n;
	int rc;

	*val = NULL;
	*len = 0;
	if ((s = q(st, Q_SECRET_GET)) == NULL)
		return ERR_LIB;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		b = sqlite3_column_blob(s, 0);
		n = (size_t)sqlite3_column_bytes(s, 0);
		if ((*val = malloc(n + 1)) == NULL) {
			rc = nomem();
		} else {
			if (n > 0)
				memcpy(*val, b, n);
			(*val)[n] = '\0';
			*len = n;
			rc = 0;
		}
	} else if (rc == SQLITE_DONE) {
		rc = 1;
	} else {
		rc = db_fail(st, "reading a secret");
	}
	done(s);
	return rc;
}

int
state_secret_put(struct state *st, const char *name, const void *val, size_t len)
{
	sqlite3_stmt *s;
	int rc = 0;

	if (len > SECRET_MAX) {
		err_set("secret %s: %zu bytes, at most %d", name, len, SECRET_MAX);
		return ERR_TOOBIG;
	}
	if ((s = q(st, Q_SECRET_PUT)) == NULL)
		return ERR_LIB;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	/* SQLITE_STATIC: SQLite reads the caller's buffer, no unwiped copy of its own */
	sqlite3_bind_blob(s, 2, len > 0 ? val : "", (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)time(NULL));
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = db_fail(st, "writing a secret");
	done(s);
	return rc;
}

/* ---- nodes ---- */

static int
node_from_row(struct state *st, sqlite3_stmt *s, struct state_node *n)
{
	int rc;

	memset(n, 0, sizeof(*n));
	if ((rc = col_copy(st, s, 0, n->name, sizeof(n->name), "a node name")) != 0 ||
	    (rc = col_strdup(s, 1, &n->cert_pem)) != 0 ||
	    (rc = col_strdup(s, 2, &n->control)) != 0 ||
	    (rc = col_copy(st, s, 3, n->applied_rev, sizeof(n->applied_rev),
	    "applied_rev")) != 0 ||
	    (rc = col_copy(st, s, 9, n->attempted_rev, sizeof(n->attempted_rev),
	    "attempted_rev")) != 0 ||
	    (rc = col_strdup(s, 10, &n->last_error)) != 0) {
		state_node_clear(n);
		return rc;
	}
	n->applied_serial = (uint64_t)sqlite3_column_int64(s, 4);
	n->have_applied = sqlite3_column_int(s, 7) != 0;
	if (n->have_applied &&
	    (!col_key(s, 5, n->config_hash) || !col_key(s, 6, n->content_hash))) {
		err_set("%s/%s: node %s: applied config hashes are not 32 bytes", st->dir,
		    STATE_DB, n->name);
		state_node_clear(n);
		return ERR_INVAL;
	}
	n->sent_serial = (uint64_t)sqlite3_column_int64(s, 8);
	n->last_seen_unix = sqlite3_column_int64(s, 11);
	n->reachable = sqlite3_column_int(s, 12) != 0;
	n->have_awg_pub = col_key(s, 13, n->awg_pub);
	n->have_reality_pub = col_key(s, 14, n->reality_pub);
	n->enrolled_unix = sqlite3_column_int64(s, 15);
	return 0;
}

int
state_node_get(struct state *st, const char *name, struct state_node *out)
{
	sqlite3_stmt *s;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((s = q(st, Q_NODE_GET)) == NULL)
		return ERR_LIB;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		rc = node_from_row(st, s, out);
	else if (rc == SQLITE_DONE)
		rc = 1;
	else
		rc = db_fail(st, "reading a node");
	done(s);
	return rc;
}

static void
bind_text_or_null(sqlite3_stmt *s, int i, const char *v)
{
	if (v != NULL)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

static void
bind_key_if(sqlite3_stmt *s, int i, const uint8_t *k, bool have)
{
	if (have)
		sqlite3_bind_blob(s, i, k, 32, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

int
state_node_put(struct state *st, const struct state_node *n)
{
	sqlite3_stmt *s;
	int rc = 0;

	if (memchr(n->name, '\0', sizeof(n->name)) == NULL || n->name[0] == '\0' ||
	    memchr(n->applied_rev, '\0', sizeof(n->applied_rev)) == NULL ||
	    memchr(n->attempted_rev, '\0', sizeof(n->attempted_rev)) == NULL) {
		err_set("state_node_put: a name or revision is not a terminated string");
		return ERR_INVAL;
	}
	if ((s = q(st, Q_NODE_PUT)) == NULL)
		return ERR_LIB;
	sqlite3_bind_text(s, 1, n->name, -1, SQLITE_STATIC);
	bind_text_or_null(s, 2, n->cert_pem);
	bind_text_or_null(s, 3, n->control);
	sqlite3_bind_text(s, 4, n->applied_rev, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)n->applied_serial);
	bind_key_if(s, 6, n->config_hash, n->have_applied);
	bind_key_if(s, 7, n->content_hash, n->have_applied);
	sqlite3_bind_int(s, 8, n->have_applied);
	sqlite3_bind_int64(s, 9, (sqlite3_int64)n->sent_serial);
	sqlite3_bind_text(s, 10, n->attempted_rev, -1, SQLITE_STATIC);
	bind_text_or_null(s, 11, n->last_error);
	sqlite3_bind_int64(s, 12, n->last_seen_unix);
	sqlite3_bind_int(s, 13, n->reachable);
	bind_key_if(s, 14, n->awg_pub, n->have_awg_pub);
	bind_key_if(s, 15, n->reality_pub, n->have_reality_pub);
	sqlite3_bind_int64(s, 16, n->enrolled_unix);
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = db_fail(st, "writing a node");
	done(s);
	return rc;
}

int
state_node_delete(struct state *st, const char *name)
{
	sqlite3_stmt *s;
	int rc = 0;

	if ((s = q(st, Q_NODE_DEL)) == NULL)
		return ERR_LIB;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = db_fail(st, "deleting a node");
	done(s);
	return rc;
}

int
state_node_list(struct state *st, struct state_node **out, size_t *n)
{
	struct state_node *v = NULL, *nv;
	size_t len = 0, cap = 0;
	sqlite3_stmt *s;
	int rc;

	*out = NULL;
	*n = 0;
	if ((s = q(st, Q_NODE_LIST)) == NULL)
		return ERR_LIB;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			if (ncap > SIZE_MAX / sizeof(*v) ||
			    (nv = realloc(v, ncap * sizeof(*v))) == NULL) {
				rc = nomem();
				goto fail;
			}
			v = nv;
			cap = ncap;
		}
		if ((rc = node_from_row(st, s, &v[len])) != 0)
			goto fail;
		len++;
	}
	if (rc != SQLITE_DONE) {
		rc = db_fail(st, "listing nodes");
		goto fail;
	}
	done(s);
	*out = v;
	*n = len;
	return 0;
fail:
	done(s);
	state_node_list_free(v, len);
	return rc;
}

void
state_node_clear(struct state_node *n)
{
	if (n == NULL)
		return;
	free(n->cert_pem);
	free(n->control);
	free(n->last_error);
	n->cert_pem = n->control = n->last_error = NULL;
}

void
state_node_list_free(struct state_node *v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		state_node_clear(&v[i]);
	free(v);
}

/* ---- device addresses ---- */

int
state_addr_each(struct state *st, state_addr_fn fn, void *arg)
{
	sqlite3_stmt *s;
	uint8_t key[32];
	const char *v4, *v6;
	int rc;

	if ((s = q(st, Q_ADDR_EACH)) == NULL)
		return ERR_LIB;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		v4 = (const char *)sqlite3_column_text(s, 1);
		v6 = (const char *)sqlite3_column_text(s, 2);
		if (!col_key(s, 0, key) || v4 == NULL)
			continue;	/* the CHECK keeps these out; never trust a file */
		if ((rc = fn(arg, key, v4, v6)) != 0) {
			done(s);
			return rc;
		}
	}
	if (rc != SQLITE_DONE)
		rc = db_fail(st, "listing device addresses");
	else
		rc = 0;
	done(s);
	return rc;
}

int
state_addr_put(struct state *st, const uint8_t key[32], const char *v4, const char *v6)
{
	sqlite3_stmt *s;
	int rc = 0;

	if (v4 == NULL || *v4 == '\0') {
		err_set("state_addr_put: no IPv4 address");
		return ERR_INVAL;
	}
	if ((s = q(st, Q_ADDR_PUT)) == NULL)
		return ERR_LIB;
	sqlite3_bind_blob(s, 1, key, 32, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, v4, -1, SQLITE_STATIC);
	bind_text_or_null(s, 3, v6 != NULL && *v6 != '\0' ? v6 : NULL);
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = db_fail(st, "writing a device address");
	done(s);
	return rc;
}

/* ---- audit log ---- */

static void
put_be64(uint8_t b[8], uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		b[i] = (uint8_t)v;
		v >>= 8;
	}
}

static void
hash_field(crypto_hash_sha256_state *h, const void *p, size_t len)
{
	uint8_t b[4];

	b[0] = (uint8_t)(len >> 24);
	b[1] = (uint8_t)(len >> 16);
	b[2] = (uint8_t)(len >> 8);
	b[3] = (uint8_t)len;
	crypto_hash_sha256_update(h, b, 4);
	crypto_hash_sha256_update(h, p, len);
}

/* The chain (state.h): fields are a 4-byte big-endian length and the bytes. */
static void
audit_hash(uint8_t out[32], const uint8_t prev[32], int64_t seq, int64_t t,
    const char *const f[4], const size_t flen[4])
{
	crypto_hash_sha256_state h;
	uint8_t b[8];
	int i;

	crypto_hash_sha256_init(&h);
	crypto_hash_sha256_update(&h, prev, 32);
	put_be64(b, (uint64_t)seq);
	crypto_hash_sha256_update(&h, b, 8);
	put_be64(b, (uint64_t)t);
	crypto_hash_sha256_update(&h, b, 8);
	for (i = 0; i < 4; i++)
		hash_field(&h, f[i], flen[i]);
	crypto_hash_sha256_final(&h, out);
}

/* The head record: 0 and (seq, hash), or 1 when the log is empty. */
static int
head_get(struct state *st, int64_t *seq, uint8_t hash[32])
{
	sqlite3_stmt *s;
	int rc;

	*seq = 0;
	memset(hash, 0, 32);
	if ((s = q(st, Q_HEAD_GET)) == NULL)
		return ERR_LIB;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*seq = sqlite3_column_int64(s, 0);
		if (!col_key(s, 1, hash)) {
			err_set("%s/%s: the audit log's head hash is not 32 bytes", st->dir,
			    STATE_DB);
			rc = ERR_INVAL;
		} else {
			rc = 0;
		}
	} else if (rc == SQLITE_DONE) {
		rc = 1;
	} else {
		rc = db_fail(st, "reading the audit log's head");
	}
	done(s);
	return rc;
}

int
audit_append(struct state *st, const char *actor, const char *action, const char *object,
    const char *detail)
{
	const char *f[4] = { actor, action, object, detail ? detail : "" };
	size_t flen[4];
	uint8_t prev[32], hash[32];
	int64_t seq, now = (int64_t)time(NULL);
	sqlite3_stmt *s;
	bool own = !st->in_tx;
	int i, rc;

	for (i = 0; i < 4; i++) {
		if (f[i] == NULL) {
			err_set("audit_append: actor, action and object are required");
			return ERR_INVAL;
		}
		if ((flen[i] = strlen(f[i])) > AUDIT_FIELD_MAX) {
			err_set("audit_append: a field of %zu bytes (at most %d)", flen[i],
			    AUDIT_FIELD_MAX);
			return ERR_TOOBIG;
		}
	}
	if (own && (rc = state_begin(st)) != 0)
		return rc;
	if ((rc = head_get(st, &seq, prev)) < 0)
		goto out;
	seq++;
	audit_hash(hash, prev, seq, now, f, flen);
	if ((s = q(st, Q_AUDIT_INSERT)) == NULL) {
		rc = ERR_LIB;
		goto out;
	}
	sqlite3_bind_int64(s, 1, seq);
	sqlite3_bind_int64(s, 2, now);
	for (i = 0; i < 4; i++)
		sqlite3_bind_text(s, 3 + i, f[i], (int)flen[i], SQLITE_STATIC);
	sqlite3_bind_blob(s, 7, hash, 32, SQLITE_STATIC);
	rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_fail(st, "appending to the audit log");
	done(s);
	if (rc != 0)
		goto out;
	if ((s = q(st, Q_HEAD_SET)) == NULL) {
		rc = ERR_LIB;
		goto out;
	}
	sqlite3_bind_int64(s, 1, seq);
	sqlite3_bind_blob(s, 2, hash, 32, SQLITE_STATIC);
	rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_fail(st, "writing the audit log's head");
	done(s);
out:
	if (own) {
		if (rc == 0)
			rc = state_commit(st);
		else
			state_rollback(st);
	}
	return rc;
}

static int
audit_from_row(sqlite3_stmt *s, struct audit_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->seq = sqlite3_column_int64(s, 0);
	e->time_unix = sqlite3_column_int64(s, 1);
	if (col_strdup(s, 2, &e->actor) != 0 || col_strdup(s, 3, &e->action) != 0 ||
	    col_strdup(s, 4, &e->object) != 0 || col_strdup(s, 5, &e->detail) != 0)
		return ERR_NOMEM;
	(void)col_key(s, 6, e->hash);
	return 0;
}

static void
audit_entry_clear(struct audit_entry *e)
{
	free(e->actor);
	free(e->action);
	free(e->object);
	free(e->detail);
}

int
audit_list(struct state *st, int64_t limit, struct audit_entry **out, size_t *n)
{
	struct audit_entry *v = NULL, *nv;
	size_t len = 0, cap = 0;
	sqlite3_stmt *s;
	int rc;

	*out = NULL;
	*n = 0;
	if ((s = q(st, Q_AUDIT_LIST)) == NULL)
		return ERR_LIB;
	sqlite3_bind_int64(s, 1, limit > 0 ? limit : -1);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			if (ncap > SIZE_MAX / sizeof(*v) ||
			    (nv = realloc(v, ncap * sizeof(*v))) == NULL) {
				rc = nomem();
				goto fail;
			}
			v = nv;
			cap = ncap;
		}
		if (audit_from_row(s, &v[len]) != 0) {
			audit_entry_clear(&v[len]);
			rc = nomem();
			goto fail;
		}
		len++;
	}
	if (rc != SQLITE_DONE) {
		rc = db_fail(st, "reading the audit log");
		goto fail;
	}
	done(s);
	*out = v;
	*n = len;
	return 0;
fail:
	done(s);
	audit_list_free(v, len);
	return rc;
}

void
audit_list_free(struct audit_entry *v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		audit_entry_clear(&v[i]);
	free(v);
}

static int
broken(struct audit_result *r, int64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
broken(struct audit_result *r, int64_t seq, const char *fmt, ...)
{
	va_list ap;

	r->first_bad = seq;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	return 1;
}

/*
 * Walk the log in seq order recomputing the chain. The first entry that is missing, does
 * not hash to its stored hash (changed, or moved from another position: its seq and its
 * predecessor are part of the hash) or disagrees with the head record is first_bad.
 */
int
audit_verify(struct state *st, struct audit_result *r)
{
	uint8_t prev[32], hash[32], head_hash[32];
	const char *f[4];
	size_t flen[4];
	int64_t seq, expect = 1, head_seq;
	const void *stored;
	sqlite3_stmt *s;
	int i, rc, have_head;

	memset(r, 0, sizeof(*r));
	memset(prev, 0, sizeof(prev));
	if ((have_head = head_get(st, &head_seq, head_hash)) < 0)
		return have_head;
	if ((s = q(st, Q_AUDIT_ALL)) == NULL)
		return ERR_LIB;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		seq = sqlite3_column_int64(s, 0);
		if (seq != expect) {
			if (expect == 1 && seq == 2)
				rc = broken(r, 1, "entry 1 is missing (the log starts at entry 2)");
			else if (expect == 1 && seq > 2)
				rc = broken(r, 1, "entries 1 to %lld are missing (the log "
				    "starts at entry %lld)", (long long)seq - 1, (long long)seq);
			else if (seq == expect + 1)
				rc = broken(r, expect, "entry %lld is missing (entry %lld follows "
				    "entry %lld)", (long long)expect, (long long)seq,
				    (long long)expect - 1);
			else if (seq > expect)
				rc = broken(r, expect, "entries %lld to %lld are missing "
				    "(entry %lld follows entry %lld)", (long long)expect, (long long)seq - 1,
				    (long long)seq, (long long)expect - 1);
			else
				rc = broken(r, seq, "entry %lld is out of order", (long long)seq);
			done(s);
			return rc;
		}
		for (i = 0; i < 4; i++) {
			f[i] = (const char *)sqlite3_column_text(s, 2 + i);
			flen[i] = (size_t)sqlite3_column_bytes(s, 2 + i);
			if (f[i] == NULL) {
				f[i] = "";
				flen[i] = 0;
			}
		}
		audit_hash(hash, prev, seq, sqlite3_column_int64(s, 1), f, flen);
		stored = sqlite3_column_blob(s, 6);
		if (stored == NULL || sqlite3_column_bytes(s, 6) != 32 ||
		    sodium_memcmp(stored, hash, 32) != 0) {
			done(s);
			return broken(r, seq, "entry %lld does not match its hash (it was changed, "
			    "or moved from another position)", (long long)seq);
		}
		memcpy(prev, hash, 32);
		r->entries++;
		expect++;
	}
	if (rc != SQLITE_DONE) {
		rc = db_fail(st, "reading the audit log");
		done(s);
		return rc;
	}
	done(s);
	if (have_head == 1) {
		if (r->entries > 0)
			return broken(r, 1, "the audit log's head record is missing");
		return 0;
	}
	if (head_seq > r->entries) {
		if (head_seq == r->entries + 1)
			return broken(r, head_seq, "entry %lld, the last one, is missing",
			    (long long)head_seq);
		return broken(r, r->entries + 1, "entries %lld to %lld, the last ones, are missing",
		    (long long)r->entries + 1, (long long)head_seq);
	}
	if (head_seq < r->entries)
		return broken(r, head_seq + 1, "entry %lld was added without going through cox "
		    "(the head record ends at entry %lld)", (long long)head_seq + 1,
		    (long long)head_seq);
	if (r->entries > 0 && sodium_memcmp(head_hash, prev, 32) != 0)
		return broken(r, head_seq, "entry %lld does not match the head record",
		    (long long)head_seq);
	return 0;
}
