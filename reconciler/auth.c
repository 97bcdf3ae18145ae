/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admin authentication on state.db (auth.h, docs/DESIGN.md §10). Statements are prepared
 * per call: logins and token checks are a few per request, and keeping them out of
 * state.c's cache keeps that file about the controller's own state.
 *
 * Cookies and tokens are 32 random bytes; the database holds their SHA-256 and looks
 * them up by it. An index lookup is not constant time, but what it could leak is a prefix
 * of the hash of a 256-bit secret the attacker does not have — nothing to build on. The
 * CSRF token, the one secret compared directly, is compared with sodium_memcmp().
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "err.h"
#include "fleet.h"
#include "state.h"

#define RAW_LEN		32
#define B64_VARIANT	sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define B64_LEN		43	/* base64url of RAW_LEN bytes, no padding */
#define KEY_MAX		96	/* "user:<64>" or "ip:<address>/64" */
#define CSRF_CONTEXT	"pharos admin csrf v1"

/*
 * An Argon2id string with the parameters auth_passwd_set() uses, of a random passphrase
 * nobody kept: verified against when the user has no passphrase (or is not an admin), so
 * a refusal takes as long as a wrong passphrase and does not tell which users exist.
 */
static const char dummy_hash[crypto_pwhash_STRBYTES] =
    "$argon2id$v=19$m=65536,t=2,p=1$ZFmJiEg249/oy9GlvzKYlA$"
    "PBoFUtyaNUzwTLgvDLpJCrKA3Llnc8xmWiRppvmdFXg";

#define TOKEN_COLS "id, name, scope, created_by, created_unix, expires_unix, last_used_unix, " \
	"revoked_unix"

static int
db_fail(struct state *st, const char *what)
{
	err_set("%s/%s: %s: %s", state_dir(st), STATE_DB, what,
	    sqlite3_errmsg(state_sqlite(st)));
	return ERR_LIB;
}

static int
prep(struct state *st, const char *sql, sqlite3_stmt **s)
{
	if (sqlite3_prepare_v2(state_sqlite(st), sql, -1, s, NULL) != SQLITE_OK) {
		*s = NULL;
		return db_fail(st, "preparing a statement");
	}
	return 0;
}

/* Step a statement that returns no row, then finalize it. */
static int
step_done(struct state *st, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_fail(st, what);

	sqlite3_finalize(s);
	return rc;
}

/* Join the caller's transaction, or open one (BEGIN IMMEDIATE) and say so in *own. */
static int
tx_begin(struct state *st, bool *own)
{
	*own = sqlite3_get_autocommit(state_sqlite(st)) != 0;
	return *own ? state_begin(st) : 0;
}

/* End our own transaction: commit if rc >= 0, else roll back. Returns rc or the error. */
static int
tx_end(struct state *st, bool own, int rc)
{
	int c;

	if (!own)
		return rc;
	if (rc < 0) {
		state_rollback(st);
		return rc;
	}
	return (c = state_commit(st)) != 0 ? c : rc;
}

/* A fleet user name's shape (docs/DESIGN.md §2.2), loosely: 1..64 printable bytes. */
static bool
user_ok(const char *user)
{
	size_t n = user != NULL ? strlen(user) : 0;

	if (n == 0 || n >= AUTH_USER_MAX)
		return false;
	for (; *user != '\0'; user++)
		if ((unsigned char)*user <= 0x20 || *user == 0x7f)
			return false;
	return true;
}

/* Code points in UTF-8 text, or -1 if s is not well-formed UTF-8. */
static long
utf8_count(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	long n = 0;
	int more;
	uint32_t cp, min;

	while (p < end) {
		if (*p < 0x80) {
			p++;
			n++;
			continue;
		} else if ((*p & 0xe0) == 0xc0) {
			more = 1, cp = *p & 0x1f, min = 0x80;
		} else if ((*p & 0xf0) == 0xe0) {
			more = 2, cp = *p & 0x0f, min = 0x800;
		} else if ((*p & 0xf8) == 0xf0) {
			more = 3, cp = *p & 0x07, min = 0x10000;
		} else {
			return -1;
		}
		if (end - p <= more)
			return -1;
		for (p++; more > 0; more--, p++) {
			if ((*p & 0xc0) != 0x80)
				return -1;
			cp = cp << 6 | (*p & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return -1;
		n++;
	}
	return n;
}

/* base64url of exactly RAW_LEN bytes: 0, or -1 for anything else. */
static int
decode_secret(const char *s, uint8_t raw[RAW_LEN])
{
	const char *end = NULL;
	size_t len = 0;

	if (s == NULL || strnlen(s, B64_LEN + 1) != B64_LEN ||
	    sodium_base642bin(raw, RAW_LEN, s, B64_LEN, NULL, &len, &end, B64_VARIANT) != 0 ||
	    len != RAW_LEN || end != s + B64_LEN) {
		sodium_memzero(raw, RAW_LEN);
		return -1;
	}
	return 0;
}

static void
csrf_of(char out[AUTH_CSRF_SIZE], const uint8_t raw[RAW_LEN])
{
	uint8_t mac[32];

	crypto_generichash(mac, sizeof(mac), (const unsigned char *)CSRF_CONTEXT,
	    sizeof(CSRF_CONTEXT) - 1, raw, RAW_LEN);
	sodium_bin2base64(out, AUTH_CSRF_SIZE, mac, sizeof(mac), B64_VARIANT);
	sodium_memzero(mac, sizeof(mac));
}

bool
auth_fleet_admin(const struct fleet *f, const char *name)
{
	const struct user *u = f != NULL && name != NULL ? fleet_find_user(f, name) : NULL;

	return u != NULL && u->admin && !u->disabled.v;
}

/* ---- passphrases ---- */

/* 0 and hash filled, 1 if USER has none. */
static int
passwd_get(struct state *st, const char *user, char hash[crypto_pwhash_STRBYTES])
{
	sqlite3_stmt *s;
	const unsigned char *t;
	int rc;

	memset(hash, 0, crypto_pwhash_STRBYTES);
	if ((rc = prep(st, "SELECT hash FROM auth_passwords WHERE username = ?1", &s)) != 0)
		return rc;
	sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		t = sqlite3_column_text(s, 0);
		if (t == NULL || (size_t)sqlite3_column_bytes(s, 0) >= crypto_pwhash_STRBYTES) {
			err_set("%s/%s: the passphrase hash of %s is not an Argon2id string",
			    state_dir(st), STATE_DB, user);
			rc = ERR_INVAL;
		} else {
			memcpy(hash, t, (size_t)sqlite3_column_bytes(s, 0));
			rc = 0;
		}
	} else {
		rc = rc == SQLITE_DONE ? 1 : db_fail(st, "reading a passphrase hash");
	}
	sqlite3_finalize(s);
	return rc;
}

int
auth_passwd_exists(struct state *st, const char *user, bool *set)
{
	char hash[crypto_pwhash_STRBYTES];
	int rc;

	*set = false;
	if ((rc = passwd_get(st, user, hash)) < 0)
		return rc;
	*set = rc == 0;
	return 0;
}

static int
failures_clear(struct state *st, const char *key)
{
	sqlite3_stmt *s;
	int rc;

	if ((rc = prep(st, "DELETE FROM auth_failures WHERE key = ?1", &s)) != 0)
		return rc;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	return step_done(st, s, "clearing failed logins");
}

int
auth_sessions_drop(struct state *st, const char *user, int *dropped)
{
	sqlite3_stmt *s;
	int rc;

	if (dropped != NULL)
		*dropped = 0;
	if ((rc = prep(st, "DELETE FROM auth_sessions WHERE username = ?1", &s)) != 0)
		return rc;
	sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	if ((rc = step_done(st, s, "dropping sessions")) == 0 && dropped != NULL)
		*dropped = sqlite3_changes(state_sqlite(st));
	return rc;
}

int
auth_passwd_set(struct state *st, const char *user, const char *pass, int *sessions_dropped)
{
	char hash[crypto_pwhash_STRBYTES], key[KEY_MAX];
	sqlite3_stmt *s;
	size_t len;
	long chars;
	bool own;
	int rc;

	if (sessions_dropped != NULL)
		*sessions_dropped = 0;
	if (!user_ok(user)) {
		err_set("'%s' is not a user name", user != NULL ? user : "");
		return ERR_INVAL;
	}
	len = pass != NULL ? strnlen(pass, AUTH_PASS_MAX + 1) : 0;
	if (len > AUTH_PASS_MAX) {
		err_set("the passphrase is longer than %d bytes", AUTH_PASS_MAX);
		return ERR_INVAL;
	}
	if ((chars = utf8_count(pass != NULL ? pass : "", len)) < 0) {
		err_set("the passphrase is not UTF-8 text");
		return ERR_INVAL;
	}
	if (chars < AUTH_PASS_MIN) {
		err_set("the passphrase is %ld character%s long; at least %d are needed", chars,
		    chars == 1 ? "" : "s", AUTH_PASS_MIN);
		return ERR_INVAL;
	}
	if (crypto_pwhash_str_alg(hash, pass, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13) != 0) {
		err_set("Argon2id failed (out of memory?)");
		return ERR_NOMEM;
	}
	snprintf(key, sizeof(key), "user:%s", user);
	if ((rc = tx_begin(st, &own)) != 0)
		goto out;
	if ((rc = prep(st, "INSERT OR REPLACE INTO auth_passwords (username, hash, "
	    "updated_unix) VALUES (?1, ?2, strftime('%s', 'now'))", &s)) == 0) {
		sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, hash, -1, SQLITE_STATIC);
		rc = step_done(st, s, "writing a passphrase hash");
	}
	/* whoever held a session with the old passphrase must sign in with the new one */
	if (rc == 0)
		rc = auth_sessions_drop(st, user, sessions_dropped);
	if (rc == 0)
		rc = failures_clear(st, key);
	rc = tx_end(st, own, rc);
out:
	sodium_memzero(hash, sizeof(hash));
	return rc;
}

/* ---- login rate limiting ---- */

/* "ip:192.0.2.1", "ip:2001:db8:1:2::/64" (an IPv6 host has its whole /64), "ip:?". */
static void
ip_key(char out[KEY_MAX], const char *ip)
{
	struct in6_addr a6;
	struct in_addr a4;
	char txt[INET6_ADDRSTRLEN];

	if (ip == NULL || *ip == '\0') {
		snprintf(out, KEY_MAX, "ip:?");
	} else if (inet_pton(AF_INET6, ip, &a6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&a6) &&
		    inet_ntop(AF_INET, a6.s6_addr + 12, txt, sizeof(txt)) != NULL) {
			snprintf(out, KEY_MAX, "ip:%s", txt);
			return;
		}
		memset(a6.s6_addr + 8, 0, 8);
		if (inet_ntop(AF_INET6, &a6, txt, sizeof(txt)) != NULL)
			snprintf(out, KEY_MAX, "ip:%s/64", txt);
		else
			snprintf(out, KEY_MAX, "ip:?");
	} else if (inet_pton(AF_INET, ip, &a4) == 1 &&
	    inet_ntop(AF_INET, &a4, txt, sizeof(txt)) != NULL) {
		snprintf(out, KEY_MAX, "ip:%s", txt);
	} else {
		snprintf(out, KEY_MAX, "ip:%.64s", ip);	/* whatever the server calls it */
	}
}

/*
 * 0 with *retry 0 if key may try again; else *retry = seconds until the oldest of its last
 * AUTH_FAIL_MAX failures leaves the window. One indexed read, no write, no Argon2id.
 */
static int
fail_retry(struct state *st, const char *key, int64_t now, int64_t *retry)
{
	sqlite3_stmt *s;
	int64_t t;
	int rc;

	*retry = 0;
	if ((rc = prep(st, "SELECT time_unix FROM auth_failures WHERE key = ?1 AND "
	    "time_unix > ?2 ORDER BY time_unix DESC LIMIT 1 OFFSET ?3", &s)) != 0)
		return rc;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now - AUTH_FAIL_WINDOW_S);
	sqlite3_bind_int(s, 3, AUTH_FAIL_MAX - 1);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		t = sqlite3_column_int64(s, 0);
		*retry = t + AUTH_FAIL_WINDOW_S - now;
		if (*retry < 1)
			*retry = 1;
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? 0 : db_fail(st, "reading failed logins");
	}
	sqlite3_finalize(s);
	return rc;
}

/* Count a failure against both keys; drop failures that left the window. */
static int
fail_record(struct state *st, const char *ukey, const char *ikey, int64_t now)
{
	sqlite3_stmt *s;
	int rc, i;

	if ((rc = prep(st, "DELETE FROM auth_failures WHERE time_unix <= ?1", &s)) != 0)
		return rc;
	sqlite3_bind_int64(s, 1, now - AUTH_FAIL_WINDOW_S);
	if ((rc = step_done(st, s, "pruning failed logins")) != 0)
		return rc;
	for (i = 0; i < 2; i++) {
		if ((rc = prep(st, "INSERT INTO auth_failures (key, time_unix) VALUES (?1, ?2)",
		    &s)) != 0)
			return rc;
		sqlite3_bind_text(s, 1, i == 0 ? ukey : ikey, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, now);
		if ((rc = step_done(st, s, "recording a failed login")) != 0)
			return rc;
	}
	return 0;
}

/* ---- sessions ---- */

static int
session_create(struct state *st, const char *user, const char *ip, int64_t now,
    struct auth_session *out)
{
	uint8_t raw[RAW_LEN], id[32];
	sqlite3_stmt *s;
	int rc;

	randombytes_buf(raw, sizeof(raw));
	crypto_hash_sha256(id, raw, sizeof(raw));
	if ((rc = prep(st, "INSERT INTO auth_sessions (id_hash, username, client_ip, "
	    "created_unix, last_used_unix, expires_unix) VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
	    &s)) != 0)
		goto out;
	sqlite3_bind_blob(s, 1, id, sizeof(id), SQLITE_STATIC);
	sqlite3_bind_text(s, 2, user, -1, SQLITE_STATIC);
	/* for display only; whatever the server passed, at most 64 bytes of it */
	sqlite3_bind_text(s, 3, ip != NULL ? ip : "", ip != NULL ? (int)strnlen(ip, 64) : 0,
	    SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, now);
	sqlite3_bind_int64(s, 5, now + AUTH_SESSION_MAX_S);
	if ((rc = step_done(st, s, "creating a session")) != 0)
		goto out;
	/* everybody's dead sessions, and this user's least recently used beyond the cap */
	if ((rc = prep(st, "DELETE FROM auth_sessions WHERE last_used_unix <= ?1 OR "
	    "expires_unix <= ?2", &s)) != 0)
		goto out;
	sqlite3_bind_int64(s, 1, now - AUTH_SESSION_IDLE_S);
	sqlite3_bind_int64(s, 2, now);
	if ((rc = step_done(st, s, "pruning sessions")) != 0)
		goto out;
	if ((rc = prep(st, "DELETE FROM auth_sessions WHERE username = ?1 AND id_hash != ?2 "
	    "AND id_hash NOT IN (SELECT id_hash FROM auth_sessions WHERE username = ?1 AND "
	    "id_hash != ?2 ORDER BY last_used_unix DESC, created_unix DESC LIMIT ?3)", &s)) != 0)
		goto out;
	sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, id, sizeof(id), SQLITE_STATIC);
	sqlite3_bind_int(s, 3, AUTH_SESSIONS_PER_USER - 1);
	if ((rc = step_done(st, s, "capping sessions")) != 0)
		goto out;
	sodium_bin2base64(out->cookie, sizeof(out->cookie), raw, sizeof(raw), B64_VARIANT);
	csrf_of(out->csrf, raw);
	snprintf(out->user, sizeof(out->user), "%s", user);
	out->created_unix = now;
	out->idle_expires_unix = now + AUTH_SESSION_IDLE_S;
	out->expires_unix = now + AUTH_SESSION_MAX_S;
out:
	sodium_memzero(raw, sizeof(raw));
	return rc;
}

int
auth_login(struct state *st, const char *user, const char *pass, bool is_admin,
    const char *client_ip, int64_t now, struct auth_session *out, int64_t *retry_after)
{
	char ukey[KEY_MAX], ikey[KEY_MAX], hash[crypto_pwhash_STRBYTES];
	char again[crypto_pwhash_STRBYTES];
	int64_t r1, r2;
	size_t len;
	bool ok, own, have;
	int rc;

	memset(out, 0, sizeof(*out));
	*retry_after = 0;
	if (pass == NULL) {
		err_set("auth_login: no passphrase");
		return ERR_INVAL;
	}
	if (!user_ok(user))
		is_admin = false;	/* no such user can exist; refuse it like any other */
	snprintf(ukey, sizeof(ukey), "user:%.64s", user != NULL ? user : "");
	ip_key(ikey, client_ip);
	if ((rc = fail_retry(st, ukey, now, &r1)) != 0 ||
	    (rc = fail_retry(st, ikey, now, &r2)) != 0)
		return rc;
	if (r1 > 0 || r2 > 0) {
		*retry_after = r1 > r2 ? r1 : r2;
		return AUTH_LIMITED;
	}
	if ((rc = is_admin ? passwd_get(st, user, hash) : 1) < 0)
		return rc;
	have = rc == 0;
	/* the same Argon2id work whether or not the user exists, has a passphrase, is admin */
	len = strnlen(pass, AUTH_PASS_MAX + 1);
	ok = crypto_pwhash_str_verify(have ? hash : dummy_hash,
	    len <= AUTH_PASS_MAX ? pass : "", len <= AUTH_PASS_MAX ? len : 0) == 0 &&
	    have && len <= AUTH_PASS_MAX;
	if ((rc = tx_begin(st, &own)) != 0)
		return rc;
	if (ok) {
		/* a passphrase changed while Argon2id ran must not let this session outlive it */
		if ((rc = passwd_get(st, user, again)) == 0 && strcmp(again, hash) != 0)
			rc = AUTH_DENIED;
		else if (rc == 1)
			rc = AUTH_DENIED;
	}
	if (!ok) {
		if ((rc = fail_record(st, ukey, ikey, now)) == 0)
			rc = AUTH_DENIED;
	} else if (rc == 0 && (rc = failures_clear(st, ukey)) == 0) {
		rc = session_create(st, user, client_ip, now, out);
	}
	rc = tx_end(st, own, rc);
	if (rc != 0)
		sodium_memzero(out, sizeof(*out));
	return rc;
}

int
auth_session_check(struct state *st, const char *cookie, int64_t now,
    struct auth_session *out)
{
	uint8_t raw[RAW_LEN], id[32];
	int64_t created, last, expires;
	const unsigned char *user;
	sqlite3_stmt *s;
	int rc;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (decode_secret(cookie, raw) != 0)
		return AUTH_DENIED;
	crypto_hash_sha256(id, raw, sizeof(raw));
	if ((rc = prep(st, "SELECT username, created_unix, last_used_unix, expires_unix FROM "
	    "auth_sessions WHERE id_hash = ?1", &s)) != 0)
		goto out;
	sqlite3_bind_blob(s, 1, id, sizeof(id), SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		rc = rc == SQLITE_DONE ? AUTH_DENIED : db_fail(st, "reading a session");
		sqlite3_finalize(s);
		goto out;
	}
	user = sqlite3_column_text(s, 0);
	created = sqlite3_column_int64(s, 1);
	last = sqlite3_column_int64(s, 2);
	expires = sqlite3_column_int64(s, 3);
	if (out != NULL) {
		snprintf(out->user, sizeof(out->user), "%s", user != NULL ? (const char *)user : "");
		memcpy(out->cookie, cookie, B64_LEN + 1);
		csrf_of(out->csrf, raw);
		out->created_unix = created;
		out->expires_unix = expires;
	}
	sqlite3_finalize(s);
	if (now >= expires || now - last >= AUTH_SESSION_IDLE_S) {
		rc = prep(st, "DELETE FROM auth_sessions WHERE id_hash = ?1", &s);
		if (rc == 0) {
			sqlite3_bind_blob(s, 1, id, sizeof(id), SQLITE_STATIC);
			rc = step_done(st, s, "deleting an expired session");
		}
		if (rc == 0)
			rc = AUTH_EXPIRED;
		goto out;
	}
	if (now - last >= AUTH_TOUCH_S) {
		if ((rc = prep(st, "UPDATE auth_sessions SET last_used_unix = ?2 WHERE "
		    "id_hash = ?1", &s)) != 0)
			goto out;
		sqlite3_bind_blob(s, 1, id, sizeof(id), SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, now);
		if ((rc = step_done(st, s, "touching a session")) != 0)
			goto out;
		last = now;
	}
	if (out != NULL)
		out->idle_expires_unix = last + AUTH_SESSION_IDLE_S;
	rc = 0;
out:
	if (rc != 0 && out != NULL)
		sodium_memzero(out, sizeof(*out));
	sodium_memzero(raw, sizeof(raw));
	return rc;
}

int
auth_csrf_check(const char *cookie, const char *csrf)
{
	uint8_t raw[RAW_LEN];
	char want[AUTH_CSRF_SIZE];
	int rc = AUTH_DENIED;

	if (csrf == NULL || strnlen(csrf, B64_LEN + 1) != B64_LEN ||
	    decode_secret(cookie, raw) != 0)
		return AUTH_DENIED;
	csrf_of(want, raw);
	if (sodium_memcmp(want, csrf, B64_LEN) == 0)
		rc = 0;
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(want, sizeof(want));
	return rc;
}

int
auth_logout(struct state *st, const char *cookie)
{
	uint8_t raw[RAW_LEN], id[32];
	sqlite3_stmt *s;
	int rc;

	if (decode_secret(cookie, raw) != 0)
		return AUTH_DENIED;
	crypto_hash_sha256(id, raw, sizeof(raw));
	sodium_memzero(raw, sizeof(raw));
	if ((rc = prep(st, "DELETE FROM auth_sessions WHERE id_hash = ?1", &s)) != 0)
		return rc;
	sqlite3_bind_blob(s, 1, id, sizeof(id), SQLITE_STATIC);
	if ((rc = step_done(st, s, "deleting a session")) != 0)
		return rc;
	return sqlite3_changes(state_sqlite(st)) > 0 ? 0 : AUTH_DENIED;
}

/* ---- API tokens ---- */

static const char *const scope_names[] = { NULL, "read", "write", "admin" };

int
auth_scope_parse(const char *s, enum auth_scope *out)
{
	int i;

	for (i = AUTH_SCOPE_READ; i <= AUTH_SCOPE_ADMIN; i++)
		if (s != NULL && strcmp(s, scope_names[i]) == 0) {
			*out = (enum auth_scope)i;
			return 0;
		}
	err_set("'%s' is not a scope (read, write or admin)", s != NULL ? s : "");
	return ERR_INVAL;
}

const char *
auth_scope_name(enum auth_scope sc)
{
	return sc >= AUTH_SCOPE_READ && sc <= AUTH_SCOPE_ADMIN ? scope_names[sc] : "?";
}

static bool
token_name_ok(const char *name)
{
	size_t n = name != NULL ? strlen(name) : 0;

	if (n == 0 || n >= AUTH_TOKEN_NAME_MAX || name[0] < 'a' || name[0] > 'z')
		return false;
	for (; *name != '\0'; name++)
		if (!((*name >= 'a' && *name <= 'z') || (*name >= '0' && *name <= '9') ||
		    *name == '.' || *name == '_' || *name == '-'))
			return false;
	return true;
}

static void
token_from_row(sqlite3_stmt *s, struct auth_token *t)
{
	const unsigned char *name = sqlite3_column_text(s, 1), *by = sqlite3_column_text(s, 3);

	memset(t, 0, sizeof(*t));
	t->id = sqlite3_column_int64(s, 0);
	snprintf(t->name, sizeof(t->name), "%s", name != NULL ? (const char *)name : "");
	t->scope = (enum auth_scope)sqlite3_column_int(s, 2);
	snprintf(t->created_by, sizeof(t->created_by), "%s", by != NULL ? (const char *)by : "");
	t->created_unix = sqlite3_column_int64(s, 4);
	t->expires_unix = sqlite3_column_int64(s, 5);
	t->last_used_unix = sqlite3_column_int64(s, 6);
	t->revoked_unix = sqlite3_column_int64(s, 7);
}

int
auth_token_create(struct state *st, const char *name, enum auth_scope scope, int64_t ttl_s,
    const char *created_by, int64_t now, char token_out[AUTH_TOKEN_SIZE],
    struct auth_token *info)
{
	uint8_t raw[RAW_LEN], hash[32];
	sqlite3_stmt *s;
	int64_t id;
	bool own;
	int rc;

	memset(token_out, 0, AUTH_TOKEN_SIZE);
	if (!token_name_ok(name)) {
		err_set("'%s' is not a token name (a letter, then up to %d of a-z 0-9 . _ -)",
		    name != NULL ? name : "", AUTH_TOKEN_NAME_MAX - 2);
		return ERR_INVAL;
	}
	if (scope < AUTH_SCOPE_READ || scope > AUTH_SCOPE_ADMIN) {
		err_set("token %s: no such scope", name);
		return ERR_INVAL;
	}
	if (ttl_s < 1 || ttl_s > AUTH_TOKEN_TTL_MAX) {
		err_set("token %s: the lifetime must be 1 s to %d days", name,
		    AUTH_TOKEN_TTL_MAX / 86400);
		return ERR_INVAL;
	}
	if (created_by == NULL || strlen(created_by) >= sizeof(info->created_by)) {
		err_set("token %s: created_by missing or too long", name);
		return ERR_INVAL;
	}
	if ((rc = tx_begin(st, &own)) != 0)
		return rc;
	if ((rc = prep(st, "SELECT id FROM auth_tokens WHERE name = ?1 AND revoked_unix = 0",
	    &s)) != 0)
		goto out;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		err_set("a token named %s exists (id %lld); revoke it first", name,
		    (long long)sqlite3_column_int64(s, 0));
		rc = ERR_INVAL;
	} else {
		rc = rc == SQLITE_DONE ? 0 : db_fail(st, "reading tokens");
	}
	sqlite3_finalize(s);
	if (rc != 0)
		goto out;
	randombytes_buf(raw, sizeof(raw));
	crypto_hash_sha256(hash, raw, sizeof(raw));
	if ((rc = prep(st, "INSERT INTO auth_tokens (name, hash, scope, created_by, "
	    "created_unix, expires_unix) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", &s)) != 0)
		goto out;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, hash, sizeof(hash), SQLITE_STATIC);
	sqlite3_bind_int(s, 3, (int)scope);
	sqlite3_bind_text(s, 4, created_by, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, now);
	sqlite3_bind_int64(s, 6, now + ttl_s);
	if ((rc = step_done(st, s, "creating a token")) != 0)
		goto out;
	id = sqlite3_last_insert_rowid(state_sqlite(st));
	memcpy(token_out, AUTH_TOKEN_PREFIX, sizeof(AUTH_TOKEN_PREFIX) - 1);
	sodium_bin2base64(token_out + sizeof(AUTH_TOKEN_PREFIX) - 1,
	    AUTH_TOKEN_SIZE - (sizeof(AUTH_TOKEN_PREFIX) - 1), raw, sizeof(raw), B64_VARIANT);
	if (info != NULL) {
		memset(info, 0, sizeof(*info));
		info->id = id;
		snprintf(info->name, sizeof(info->name), "%s", name);
		info->scope = scope;
		snprintf(info->created_by, sizeof(info->created_by), "%s", created_by);
		info->created_unix = now;
		info->expires_unix = now + ttl_s;
	}
out:
	sodium_memzero(raw, sizeof(raw));
	rc = tx_end(st, own, rc);
	if (rc != 0)
		sodium_memzero(token_out, AUTH_TOKEN_SIZE);
	return rc;
}

int
auth_token_check(struct state *st, const char *token, int64_t now, enum auth_scope required,
    struct auth_token *info)
{
	uint8_t raw[RAW_LEN], hash[32];
	struct auth_token t;
	sqlite3_stmt *s;
	const size_t plen = sizeof(AUTH_TOKEN_PREFIX) - 1;
	int rc;

	if (info != NULL)
		memset(info, 0, sizeof(*info));
	if (token == NULL || strncmp(token, AUTH_TOKEN_PREFIX, plen) != 0 ||
	    decode_secret(token + plen, raw) != 0)
		return AUTH_DENIED;
	crypto_hash_sha256(hash, raw, sizeof(raw));
	sodium_memzero(raw, sizeof(raw));
	if ((rc = prep(st, "SELECT " TOKEN_COLS " FROM auth_tokens WHERE hash = ?1", &s)) != 0)
		return rc;
	sqlite3_bind_blob(s, 1, hash, sizeof(hash), SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		rc = rc == SQLITE_DONE ? AUTH_DENIED : db_fail(st, "reading a token");
		sqlite3_finalize(s);
		return rc;
	}
	token_from_row(s, &t);
	sqlite3_finalize(s);
	if (info != NULL)
		*info = t;
	if (t.revoked_unix != 0)
		return AUTH_DENIED;
	if (now >= t.expires_unix)
		return AUTH_EXPIRED;
	if (t.last_used_unix == 0 || now - t.last_used_unix >= AUTH_TOUCH_S) {
		if ((rc = prep(st, "UPDATE auth_tokens SET last_used_unix = ?2 WHERE id = ?1",
		    &s)) != 0)
			return rc;
		sqlite3_bind_int64(s, 1, t.id);
		sqlite3_bind_int64(s, 2, now);
		if ((rc = step_done(st, s, "touching a token")) != 0)
			return rc;
		if (info != NULL)
			info->last_used_unix = now;
	}
	return t.scope >= required ? 0 : AUTH_SCOPE;
}

int
auth_token_list(struct state *st, struct auth_token **out, size_t *n)
{
	struct auth_token *v = NULL, *nv;
	size_t len = 0, cap = 0;
	sqlite3_stmt *s;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = prep(st, "SELECT " TOKEN_COLS " FROM auth_tokens ORDER BY id", &s)) != 0)
		return rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				err_set("out of memory");
				sqlite3_finalize(s);
				free(v);
				return ERR_NOMEM;
			}
			v = nv;
		}
		token_from_row(s, &v[len++]);
	}
	if (rc != SQLITE_DONE) {
		rc = db_fail(st, "listing tokens");
		sqlite3_finalize(s);
		free(v);
		return rc;
	}
	sqlite3_finalize(s);
	*out = v;
	*n = len;
	return 0;
}

int
auth_token_revoke(struct state *st, const char *what, int64_t now, struct auth_token *info)
{
	struct auth_token t;
	sqlite3_stmt *s;
	const char *p;
	bool own, byid = what != NULL && *what != '\0';
	int rc;

	if (info != NULL)
		memset(info, 0, sizeof(*info));
	for (p = what; byid && *p != '\0'; p++)
		byid = *p >= '0' && *p <= '9' && p - what < 18;
	if (what == NULL || (!byid && !token_name_ok(what)))
		return AUTH_DENIED;
	if ((rc = tx_begin(st, &own)) != 0)
		return rc;
	rc = prep(st, byid ?
	    "SELECT " TOKEN_COLS " FROM auth_tokens WHERE id = ?1 AND revoked_unix = 0" :
	    "SELECT " TOKEN_COLS " FROM auth_tokens WHERE name = ?1 AND revoked_unix = 0", &s);
	if (rc != 0)
		goto out;
	if (byid)
		sqlite3_bind_int64(s, 1, strtoll(what, NULL, 10));
	else
		sqlite3_bind_text(s, 1, what, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		token_from_row(s, &t);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? AUTH_DENIED : db_fail(st, "reading a token");
	}
	sqlite3_finalize(s);
	if (rc != 0)
		goto out;
	if ((rc = prep(st, "UPDATE auth_tokens SET revoked_unix = ?2 WHERE id = ?1", &s)) != 0)
		goto out;
	t.revoked_unix = now > 0 ? now : 1;
	sqlite3_bind_int64(s, 1, t.id);
	sqlite3_bind_int64(s, 2, t.revoked_unix);
	if ((rc = step_done(st, s, "revoking a token")) == 0 && info != NULL)
		*info = t;
out:
	return tx_end(st, own, rc);
}

/* ---- approvals of proposals ---- */

int
auth_approve(struct state *st, const char *branch, const char *rev, const char *user,
    int64_t now)
{
	sqlite3_stmt *s;
	int rc;

	if ((rc = prep(st, "INSERT OR IGNORE INTO approvals (branch, rev, username, time_unix) "
	    "VALUES (?1, ?2, ?3, ?4)", &s)) != 0)
		return rc;
	sqlite3_bind_text(s, 1, branch, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, rev, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, now);
	return step_done(st, s, "recording an approval");
}

void
auth_approvals_free(char **users, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(users[i]);
	free(users);
}

int
auth_approvals(struct state *st, const char *branch, const char *rev, char ***users, size_t *n)
{
	sqlite3_stmt *s;
	char **v = NULL, **nv;
	size_t cnt = 0;
	int rc;

	*users = NULL;
	*n = 0;
	if ((rc = prep(st, "SELECT username FROM approvals WHERE branch = ?1 AND rev = ?2 "
	    "ORDER BY time_unix, username", &s)) != 0)
		return rc;
	sqlite3_bind_text(s, 1, branch, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, rev, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *u = (const char *)sqlite3_column_text(s, 0);

		if ((nv = realloc(v, (cnt + 1) * sizeof(*v))) == NULL ||
		    (nv[cnt] = strdup(u != NULL ? u : "")) == NULL) {
			if (nv != NULL)
				v = nv;
			rc = SQLITE_NOMEM;
			break;
		}
		v = nv;
		cnt++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		auth_approvals_free(v, cnt);
		err_set("reading approvals: %s", rc == SQLITE_NOMEM ? "out of memory" :
		    sqlite3_errmsg(state_sqlite(st)));
		return ERR_LIB;
	}
	*users = v;
	*n = cnt;
	return 0;
}
