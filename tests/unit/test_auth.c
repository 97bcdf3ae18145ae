/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admin authentication (reconciler/auth.c) on a fresh state.db with a fake clock:
 * passphrases (Argon2id), login rate limiting, sessions and their expiries, CSRF tokens,
 * API tokens and their scopes; and, read straight from SQLite, that only hashes are stored.
 */
#include <dirent.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "clock.h"
#include "diag.h"
#include "err.h"
#include "fleet.h"
#include "source.h"
#include "state.h"
#include "t.h"

#define T0	1700000000	/* the fake clock's start */
#define PASS	"correct horse battery"

static char dir[] = "/tmp/test_auth.XXXXXX";

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

/* The one integer a query answers, or -1. */
static int64_t
sql_int(struct state *st, const char *stmt)
{
	sqlite3_stmt *q = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(state_sqlite(st), stmt, -1, &q, NULL) == SQLITE_OK &&
	    sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return v;
}

/* Does any text or blob of any auth table contain needle (the secret, as given out)? */
static bool
stored_anywhere(struct state *st, const void *needle, size_t len)
{
	static const char *const tables[] = { "auth_passwords", "auth_sessions", "auth_tokens",
	    "auth_failures", "secrets", "meta", "audit" };
	char q[128];
	sqlite3_stmt *s;
	bool found = false;
	size_t i;
	int c;

	for (i = 0; i < sizeof(tables) / sizeof(tables[0]) && !found; i++) {
		snprintf(q, sizeof(q), "SELECT * FROM %s", tables[i]);
		if (sqlite3_prepare_v2(state_sqlite(st), q, -1, &s, NULL) != SQLITE_OK)
			return true;	/* be loud: the check could not run */
		while (!found && sqlite3_step(s) == SQLITE_ROW)
			for (c = 0; c < sqlite3_column_count(s); c++) {
				const unsigned char *b = sqlite3_column_blob(s, c);
				size_t n = (size_t)sqlite3_column_bytes(s, c);

				if (b != NULL && n >= len && memmem(b, n, needle, len) != NULL)
					found = true;
			}
		sqlite3_finalize(s);
	}
	return found;
}

/* Is the row's blob column SHA-256 of the base64url secret s? */
static bool
stored_as_sha256(struct state *st, const char *table, const char *col, const char *s)
{
	uint8_t raw[32], h[32];
	size_t len = 0;
	char q[256], hex[65];

	if (sodium_base642bin(raw, sizeof(raw), s, strlen(s), NULL, &len, NULL,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 || len != 32)
		return false;
	crypto_hash_sha256(h, raw, sizeof(raw));
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	snprintf(q, sizeof(q), "SELECT count(*) FROM %s WHERE %s = x'%s'", table, col, hex);
	return sql_int(st, q) == 1;
}

static void
test_passwd(struct state *st)
{
	sqlite3_stmt *q = NULL;
	bool set = true;
	int dropped = -1;

	T_OK(auth_passwd_exists(st, "alice", &set) == 0 && !set, "passwd: none yet");
	T_OK(auth_passwd_set(st, "alice", "short", NULL) == ERR_INVAL, "passwd: 5 chars refused");
	T_OK(strstr(err_last(), "at least 10") != NULL, "  ... says the minimum: %s", err_last());
	/* ten characters in UTF-8 are more than ten bytes; nine are not enough however long */
	T_OK(auth_passwd_set(st, "alice", "ééééééééé", NULL) == ERR_INVAL,
	    "passwd: 9 characters (18 bytes) refused");
	T_OK(auth_passwd_set(st, "alice", "\xff\xfe" "abcdefghijkl", NULL) == ERR_INVAL,
	    "passwd: not UTF-8 refused");
	T_OK(auth_passwd_set(st, "Bad Name", PASS, NULL) == ERR_INVAL, "passwd: bad user name");
	T_OK(auth_passwd_set(st, "alice", PASS, &dropped) == 0, "passwd: set (%s)", err_last());
	T_OK(dropped == 0, "passwd: no session to drop");
	T_OK(auth_passwd_exists(st, "alice", &set) == 0 && set, "passwd: exists");
	sqlite3_prepare_v2(state_sqlite(st), "SELECT hash FROM auth_passwords WHERE "
	    "username = 'alice'", -1, &q, NULL);
	if (q != NULL && sqlite3_step(q) == SQLITE_ROW) {
		const char *h = (const char *)sqlite3_column_text(q, 0);

		T_OK(strncmp(h, "$argon2id$v=19$m=65536,t=2,p=1$", 31) == 0,
		    "passwd: stored as Argon2id, 64 MiB, 2 passes: %.32s", h);
		T_OK(crypto_pwhash_str_verify(h, PASS, strlen(PASS)) == 0,
		    "passwd: the stored string verifies the passphrase");
	} else {
		T_OK(0, "passwd: a row for alice");
	}
	sqlite3_finalize(q);
	T_OK(!stored_anywhere(st, PASS, strlen(PASS)), "passwd: the passphrase is nowhere in state.db");
	T_OK(auth_passwd_set(st, "bob", "bobs passphrase", NULL) == 0, "passwd: bob too");
}

static void
test_login(struct state *st)
{
	struct auth_session s, s2;
	int64_t retry = -1, t0, dt;
	char ip[64];
	int i, rc;

	rc = auth_login(st, "alice", PASS, true, "192.0.2.1", T0, &s, &retry);
	T_OK(rc == 0, "login: right passphrase (%d %s)", rc, err_last());
	T_OK(strlen(s.cookie) == 43 && strlen(s.csrf) == 43, "login: 43-char cookie and csrf");
	T_STREQ(s.user, "alice", "login: the user");
	T_OK(s.expires_unix == T0 + 7 * 86400 && s.idle_expires_unix == T0 + 12 * 3600,
	    "login: 7 d absolute, 12 h idle");
	T_OK(stored_as_sha256(st, "auth_sessions", "id_hash", s.cookie),
	    "login: the session is stored as SHA-256 of the cookie");
	T_OK(!stored_anywhere(st, s.cookie, strlen(s.cookie)) &&
	    !stored_anywhere(st, s.csrf, strlen(s.csrf)),
	    "login: neither cookie nor csrf token is stored");
	T_OK(auth_login(st, "alice", PASS, true, "192.0.2.1", T0, &s2, &retry) == 0 &&
	    strcmp(s.cookie, s2.cookie) != 0 && strcmp(s.csrf, s2.csrf) != 0,
	    "login: a second session, another cookie and csrf");

	T_OK(auth_login(st, "alice", "wrong passphrase", true, "192.0.2.1", T0, &s2, &retry) ==
	    AUTH_DENIED, "login: wrong passphrase denied");
	T_OK(s2.cookie[0] == '\0', "  ... and no cookie given out");
	T_OK(auth_login(st, "alice", PASS, false, "192.0.2.1", T0, &s2, &retry) == AUTH_DENIED,
	    "login: not an admin (the caller says) denied, right passphrase or not");
	T_OK(auth_login(st, "mallory", PASS, true, "192.0.2.1", T0, &s2, &retry) == AUTH_DENIED,
	    "login: a user without a passphrase denied");
	T_OK(sql_int(st, "SELECT count(*) FROM auth_failures") == 6,
	    "login: three failures, each counted for the user and for the address");

	/* ---- per user: 5 failures from 5 addresses lock alice out from everywhere ---- */
	sql(st, "DELETE FROM auth_failures");
	for (i = 0; i < 5; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", i + 1);
		auth_login(st, "alice", "guess guess guess", true, ip, T0 + 100 + i, &s2, &retry);
	}
	t0 = clock_mono_nanos();
	for (i = 0; i < 20; i++)
		rc = auth_login(st, "alice", PASS, true, "203.0.113.9", T0 + 110, &s2, &retry);
	dt = clock_mono_nanos() - t0;
	T_OK(rc == AUTH_LIMITED, "rate: 5 failures for alice, then refused (%d)", rc);
	T_OK(retry == 290, "rate: retry after 290 s (the first failure leaves at +300): %lld",
	    (long long)retry);
	T_OK(dt < 500000000LL, "rate: 20 refusals in %lld ms, no Argon2id (64 MiB each) run",
	    (long long)(dt / 1000000));
	T_OK(s2.cookie[0] == '\0', "rate: no cookie");
	T_OK(sql_int(st, "SELECT count(*) FROM auth_failures WHERE key = 'user:alice'") == 5,
	    "rate: refusals are not failures (the lock does not extend itself)");
	T_OK(auth_login(st, "alice", PASS, true, "203.0.113.9", T0 + 399, &s2, &retry) ==
	    AUTH_LIMITED && retry == 1, "rate: still refused at +299 s, retry 1");
	T_OK(auth_login(st, "alice", PASS, true, "203.0.113.9", T0 + 400, &s2, &retry) == 0,
	    "rate: the window passed: the right passphrase works");
	T_OK(sql_int(st, "SELECT count(*) FROM auth_failures WHERE key = 'user:alice'") == 0,
	    "rate: a success clears the user's failures");
	T_OK(sql_int(st, "SELECT count(*) FROM auth_failures WHERE key = 'ip:198.51.100.1'") == 1,
	    "rate: ... not the addresses'");

	/* ---- per address: an IPv6 /64 is one address ---- */
	sql(st, "DELETE FROM auth_failures");
	for (i = 0; i < 5; i++) {
		char user[16];

		snprintf(ip, sizeof(ip), "2001:db8:0:1::%x", i + 10);
		snprintf(user, sizeof(user), "user%d", i);
		auth_login(st, user, "guess guess guess", true, ip, T0 + 1000, &s2, &retry);
	}
	T_OK(auth_login(st, "alice", PASS, true, "2001:db8:0:1:ffff::1", T0 + 1001, &s2,
	    &retry) == AUTH_LIMITED && retry == 299,
	    "rate: 5 users tried from one /64: its addresses are refused, retry 299");
	T_OK(sql_int(st, "SELECT count(*) FROM auth_failures WHERE key = 'ip:2001:db8:0:1::/64'")
	    == 5, "rate: keyed by the /64");
	T_OK(auth_login(st, "alice", PASS, true, "2001:db8:0:2::1", T0 + 1001, &s2, &retry) == 0,
	    "rate: another /64 is not");
	auth_login(st, "bob", "guess guess guess", true, "::ffff:192.0.2.77", T0 + 1001, &s2,
	    &retry);
	T_OK(sql_int(st, "SELECT count(*) FROM auth_failures WHERE key = 'ip:192.0.2.77'") == 1,
	    "rate: a v4-mapped address is its IPv4 address");
	sql(st, "DELETE FROM auth_failures");
}

static void
test_sessions(struct state *st)
{
	struct auth_session s, a, b, c;
	int64_t retry, now;
	char bad[AUTH_COOKIE_SIZE];
	int dropped = -1, rc;

	sql(st, "DELETE FROM auth_sessions");
	T_OK(auth_login(st, "alice", PASS, true, "192.0.2.1", T0, &s, &retry) == 0, "session: login");
	T_OK(auth_session_check(st, s.cookie, T0 + 30, &c) == 0, "session: valid");
	T_STREQ(c.user, "alice", "session: names alice");
	T_STREQ(c.csrf, s.csrf, "session: the same csrf token as at login");
	T_OK(sql_int(st, "SELECT max(last_used_unix) FROM auth_sessions") == T0,
	    "session: a use within a minute is not written");
	T_OK(auth_session_check(st, s.cookie, T0 + 60, NULL) == 0, "session: valid at +60 s");
	T_OK(sql_int(st, "SELECT max(last_used_unix) FROM auth_sessions") == T0 + 60,
	    "session: last use moved to +60 s");

	/* idle: used every 11 h it lives; then 12 h of silence ends it */
	for (now = T0 + 60; now + 11 * 3600 < T0 + 7 * 86400; ) {
		now += 11 * 3600;
		if ((rc = auth_session_check(st, s.cookie, now, &c)) != 0)
			break;
	}
	T_OK(rc == 0, "session: used every 11 h for almost 7 days");
	T_OK(c.idle_expires_unix == now + 12 * 3600, "session: idle expiry follows the last use");
	T_OK(auth_session_check(st, s.cookie, T0 + 7 * 86400, NULL) == AUTH_EXPIRED,
	    "session: absolute expiry at 7 days, however busy");
	T_OK(auth_session_check(st, s.cookie, T0 + 7 * 86400, NULL) == AUTH_DENIED,
	    "session: and then it is gone");

	T_OK(auth_login(st, "alice", PASS, true, "192.0.2.1", T0, &s, &retry) == 0, "session: login");
	T_OK(auth_session_check(st, s.cookie, T0 + 12 * 3600 - 1, NULL) == 0,
	    "session: valid at 12 h - 1 s of silence");
	T_OK(auth_session_check(st, s.cookie, T0 + 24 * 3600 - 1, NULL) == AUTH_EXPIRED,
	    "session: idle expiry after 12 h of silence");

	/* malformed cookies */
	T_OK(auth_session_check(st, "", T0, NULL) == AUTH_DENIED, "session: empty cookie");
	T_OK(auth_session_check(st, NULL, T0, NULL) == AUTH_DENIED, "session: NULL cookie");
	memset(bad, '!', 43);
	bad[43] = '\0';
	T_OK(auth_session_check(st, bad, T0, NULL) == AUTH_DENIED,
	    "session: 43 bytes that are not base64url");
	T_OK(auth_login(st, "alice", PASS, true, "192.0.2.1", T0, &a, &retry) == 0 &&
	    auth_login(st, "bob", "bobs passphrase", true, "192.0.2.2", T0, &b, &retry) == 0,
	    "session: alice and bob sign in");
	memcpy(bad, a.cookie, sizeof(bad));
	bad[10] = bad[10] == 'A' ? 'B' : 'A';
	T_OK(auth_session_check(st, bad, T0, NULL) == AUTH_DENIED, "session: one character off");

	/* CSRF */
	T_OK(auth_csrf_check(a.cookie, a.csrf) == 0, "csrf: the session's token");
	T_OK(auth_csrf_check(a.cookie, b.csrf) == AUTH_DENIED, "csrf: another session's token");
	T_OK(auth_csrf_check(b.cookie, a.csrf) == AUTH_DENIED, "csrf: ... either way");
	memcpy(bad, a.csrf, sizeof(bad));
	bad[42] = bad[42] == 'A' ? 'B' : 'A';
	T_OK(auth_csrf_check(a.cookie, bad) == AUTH_DENIED, "csrf: one character off");
	T_OK(auth_csrf_check(a.cookie, "") == AUTH_DENIED && auth_csrf_check(a.cookie, NULL) ==
	    AUTH_DENIED, "csrf: missing");
	T_OK(auth_csrf_check(a.cookie, a.cookie) == AUTH_DENIED, "csrf: the cookie is not the token");

	/* logout */
	T_OK(auth_logout(st, a.cookie) == 0, "logout");
	T_OK(auth_session_check(st, a.cookie, T0, NULL) == AUTH_DENIED, "logout: the cookie is dead");
	T_OK(auth_logout(st, a.cookie) == AUTH_DENIED, "logout: twice is AUTH_DENIED");
	T_OK(auth_session_check(st, b.cookie, T0, NULL) == 0, "logout: bob's session lives");

	/* a passphrase change drops every session of that user, and only of that user */
	T_OK(auth_login(st, "alice", PASS, true, "192.0.2.1", T0, &a, &retry) == 0 &&
	    auth_login(st, "alice", PASS, true, "192.0.2.3", T0, &c, &retry) == 0,
	    "passwd change: alice has two sessions");
	T_OK(auth_passwd_set(st, "alice", "a new passphrase", &dropped) == 0 && dropped >= 2,
	    "passwd change: set, %d sessions dropped", dropped);
	T_OK(auth_session_check(st, a.cookie, T0, NULL) == AUTH_DENIED &&
	    auth_session_check(st, c.cookie, T0, NULL) == AUTH_DENIED,
	    "passwd change: both of alice's sessions are dead");
	T_OK(auth_session_check(st, b.cookie, T0, NULL) == 0, "passwd change: bob's lives");
	T_OK(auth_login(st, "alice", PASS, true, "192.0.2.1", T0, &a, &retry) == AUTH_DENIED,
	    "passwd change: the old passphrase is refused");
	T_OK(auth_login(st, "alice", "a new passphrase", true, "192.0.2.1", T0, &a, &retry) == 0,
	    "passwd change: the new one works");
	T_OK(auth_sessions_drop(st, "bob", &dropped) == 0 && dropped == 1 &&
	    auth_session_check(st, b.cookie, T0, NULL) == AUTH_DENIED, "sessions_drop: bob's");

	/* at most AUTH_SESSIONS_PER_USER each: the least recently used go */
	sql(st, "DELETE FROM auth_sessions");
	sql(st, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20) "
	    "INSERT INTO auth_sessions SELECT randomblob(32), 'alice', '', 1700000000, "
	    "1700000000 + i, 1700000000 + 86400 FROM n");
	sql(st, "INSERT INTO auth_sessions VALUES (randomblob(32), 'bob', '', 1700000000, "
	    "1700000000, 1700086400)");
	T_OK(auth_login(st, "alice", "a new passphrase", true, "192.0.2.1", T0 + 100, &a, &retry) ==
	    0, "cap: login with 20 sessions open");
	T_OK(sql_int(st, "SELECT count(*) FROM auth_sessions WHERE username = 'alice'") ==
	    AUTH_SESSIONS_PER_USER, "cap: alice has %d sessions", AUTH_SESSIONS_PER_USER);
	T_OK(sql_int(st, "SELECT min(last_used_unix) FROM auth_sessions WHERE username = 'alice'")
	    == T0 + 6, "cap: the 5 least recently used went");
	T_OK(auth_session_check(st, a.cookie, T0 + 100, NULL) == 0, "cap: the new one is kept");
	T_OK(sql_int(st, "SELECT count(*) FROM auth_sessions WHERE username = 'bob'") == 1,
	    "cap: bob's untouched");
	sodium_memzero(&a, sizeof(a));
	sodium_memzero(&b, sizeof(b));
	sodium_memzero(&c, sizeof(c));
	sodium_memzero(&s, sizeof(s));
}

static void
test_tokens(struct state *st)
{
	char tok[AUTH_TOKEN_SIZE], tok2[AUTH_TOKEN_SIZE], bad[AUTH_TOKEN_SIZE];
	struct auth_token info, *list = NULL;
	enum auth_scope sc;
	size_t n = 0;
	int rc;

	T_OK(auth_scope_parse("read", &sc) == 0 && sc == AUTH_SCOPE_READ &&
	    auth_scope_parse("admin", &sc) == 0 && sc == AUTH_SCOPE_ADMIN &&
	    auth_scope_parse("root", &sc) == ERR_INVAL, "scope: parse");
	T_OK(AUTH_SCOPE_READ < AUTH_SCOPE_WRITE && AUTH_SCOPE_WRITE < AUTH_SCOPE_ADMIN,
	    "scope: read < write < admin");
	T_STREQ(auth_scope_name(AUTH_SCOPE_WRITE), "write", "scope: name");

	rc = auth_token_create(st, "ci", AUTH_SCOPE_WRITE, 30 * 86400, "unix:tester", T0, tok,
	    &info);
	T_OK(rc == 0, "token: create (%s)", err_last());
	T_OK(strncmp(tok, "pht_", 4) == 0 && strlen(tok) == 47, "token: pht_ + 43 chars: %.4s…",
	    tok);
	T_OK(info.id > 0 && info.scope == AUTH_SCOPE_WRITE && info.expires_unix == T0 + 30 * 86400 &&
	    strcmp(info.created_by, "unix:tester") == 0, "token: the record");
	T_OK(stored_as_sha256(st, "auth_tokens", "hash", tok + 4),
	    "token: stored as SHA-256 of its 32 bytes");
	T_OK(!stored_anywhere(st, tok, strlen(tok)) && !stored_anywhere(st, tok + 4, 43),
	    "token: not stored in clear");

	T_OK(auth_token_check(st, tok, T0 + 10, AUTH_SCOPE_READ, &info) == 0, "token: read ok");
	T_OK(info.last_used_unix == T0 + 10 && sql_int(st, "SELECT last_used_unix FROM "
	    "auth_tokens WHERE name = 'ci'") == T0 + 10, "token: the first use is written");
	T_OK(auth_token_check(st, tok, T0 + 50, AUTH_SCOPE_READ, &info) == 0 &&
	    info.last_used_unix == T0 + 10, "token: a use within a minute of the last is not");
	T_OK(auth_token_check(st, tok, T0 + 100, AUTH_SCOPE_WRITE, &info) == 0, "token: write ok");
	T_OK(sql_int(st, "SELECT last_used_unix FROM auth_tokens WHERE name = 'ci'") == T0 + 100 &&
	    info.last_used_unix == T0 + 100, "token: last_used written");
	T_OK(auth_token_check(st, tok, T0 + 200, AUTH_SCOPE_ADMIN, &info) == AUTH_SCOPE,
	    "token: admin refused (AUTH_SCOPE)");
	T_OK(sql_int(st, "SELECT last_used_unix FROM auth_tokens WHERE name = 'ci'") == T0 + 200,
	    "token: ... but it authenticated: last_used moved");
	memcpy(bad, tok, sizeof(bad));
	bad[20] = bad[20] == 'A' ? 'B' : 'A';
	T_OK(auth_token_check(st, bad, T0, AUTH_SCOPE_READ, NULL) == AUTH_DENIED,
	    "token: one character off");
	T_OK(auth_token_check(st, tok + 4, T0, AUTH_SCOPE_READ, NULL) == AUTH_DENIED,
	    "token: without its prefix");
	T_OK(auth_token_check(st, "pht_", T0, AUTH_SCOPE_READ, NULL) == AUTH_DENIED &&
	    auth_token_check(st, NULL, T0, AUTH_SCOPE_READ, NULL) == AUTH_DENIED, "token: empty");
	T_OK(auth_token_check(st, tok, T0 + 30 * 86400 - 1, AUTH_SCOPE_READ, NULL) == 0,
	    "token: valid a second before its expiry");
	T_OK(auth_token_check(st, tok, T0 + 30 * 86400, AUTH_SCOPE_READ, NULL) == AUTH_EXPIRED,
	    "token: expired after its ttl");

	T_OK(auth_token_create(st, "ci", AUTH_SCOPE_READ, 60, "unix:tester", T0, tok2, NULL) ==
	    ERR_INVAL && strstr(err_last(), "revoke it first") != NULL,
	    "token: a second live 'ci' refused: %s", err_last());
	T_OK(tok2[0] == '\0', "  ... and no token given out");
	T_OK(auth_token_create(st, "1ci", AUTH_SCOPE_READ, 60, "x", T0, tok2, NULL) == ERR_INVAL &&
	    auth_token_create(st, "Ci", AUTH_SCOPE_READ, 60, "x", T0, tok2, NULL) == ERR_INVAL &&
	    auth_token_create(st, "", AUTH_SCOPE_READ, 60, "x", T0, tok2, NULL) == ERR_INVAL,
	    "token: bad names refused");
	T_OK(auth_token_create(st, "x", AUTH_SCOPE_READ, 0, "x", T0, tok2, NULL) == ERR_INVAL &&
	    auth_token_create(st, "x", AUTH_SCOPE_READ, 367 * 86400LL, "x", T0, tok2, NULL) ==
	    ERR_INVAL, "token: ttl 0 and over 366 days refused");
	T_OK(auth_token_create(st, "x", (enum auth_scope)7, 60, "x", T0, tok2, NULL) == ERR_INVAL,
	    "token: unknown scope refused");

	/* joins the caller's transaction: rolled back with it */
	T_OK(state_begin(st) == 0 && auth_token_create(st, "tx", AUTH_SCOPE_READ, 60, "x", T0,
	    tok2, NULL) == 0, "token: created inside the caller's transaction");
	state_rollback(st);
	T_OK(sql_int(st, "SELECT count(*) FROM auth_tokens WHERE name = 'tx'") == 0 &&
	    auth_token_check(st, tok2, T0, AUTH_SCOPE_READ, NULL) == AUTH_DENIED,
	    "token: ... and gone with its rollback");

	T_OK(auth_token_revoke(st, "ci", T0 + 300, &info) == 0 && info.revoked_unix == T0 + 300,
	    "revoke: by name");
	T_OK(auth_token_check(st, tok, T0 + 301, AUTH_SCOPE_READ, &info) == AUTH_DENIED &&
	    strcmp(info.name, "ci") == 0, "revoke: the token is refused (and named for the log)");
	T_OK(auth_token_revoke(st, "ci", T0 + 300, NULL) == AUTH_DENIED, "revoke: twice: AUTH_DENIED");
	T_OK(auth_token_create(st, "ci", AUTH_SCOPE_ADMIN, 3600, "admin:alice", T0, tok2, &info) ==
	    0, "revoke: the name is free again");
	{
		char id[32];

		snprintf(id, sizeof(id), "%lld", (long long)info.id);
		T_OK(auth_token_check(st, tok2, T0, AUTH_SCOPE_ADMIN, NULL) == 0,
		    "token: admin scope grants admin");
		T_OK(auth_token_revoke(st, id, T0 + 5, NULL) == 0 &&
		    auth_token_check(st, tok2, T0 + 6, AUTH_SCOPE_READ, NULL) == AUTH_DENIED,
		    "revoke: by id %s", id);
	}
	T_OK(auth_token_revoke(st, "nope", T0, NULL) == AUTH_DENIED &&
	    auth_token_revoke(st, "999", T0, NULL) == AUTH_DENIED, "revoke: unknown name or id");

	T_OK(auth_token_list(st, &list, &n) == 0 && n == 2, "list: both tokens (%zu)", n);
	if (n == 2) {
		T_OK(strcmp(list[0].name, "ci") == 0 && list[0].revoked_unix == T0 + 300 &&
		    list[0].scope == AUTH_SCOPE_WRITE && list[0].last_used_unix == T0 + 30 * 86400 - 1,
		    "list: the first, revoked, with its last use");
		T_OK(list[1].id > list[0].id && list[1].scope == AUTH_SCOPE_ADMIN &&
		    strcmp(list[1].created_by, "admin:alice") == 0, "list: the second");
	}
	free(list);
	sodium_memzero(tok, sizeof(tok));
	sodium_memzero(tok2, sizeof(tok2));
}

static void
test_fleet_admin(void)
{
	struct source *src = NULL;
	struct fleet *f = NULL;
	struct diag d;

	diag_init(&d);
	if (source_open_dir(&src, "fleet.example") != 0 || fleet_load(&f, src, &d) != 0) {
		T_OK(0, "fleet.example loads: %s", err_last());
		goto out;
	}
	fleet_validate(f, &d);
	T_OK(auth_fleet_admin(f, "alice"), "fleet: alice is an admin");
	T_OK(!auth_fleet_admin(f, "bob") && !auth_fleet_admin(f, "carol"),
	    "fleet: bob (default role) and carol (role user) are not");
	T_OK(!auth_fleet_admin(f, "nobody") && !auth_fleet_admin(NULL, "alice"),
	    "fleet: an unknown user, no fleet");
	fleet_find_user(f, "alice")->disabled.v = true;
	T_OK(!auth_fleet_admin(f, "alice"), "fleet: a disabled admin is not");
out:
	fleet_free(f);
	source_free(src);
	diag_free(&d);
}

/* A state.db from before the auth tables gets them on a read-write open. */
static void
test_migration(void)
{
	struct state *st = NULL;

	if (state_open(&st, dir, 0) != 0) {
		T_OK(0, "migration: reopen: %s", err_last());
		return;
	}
	sql(st, "DROP TABLE auth_passwords; DROP TABLE auth_sessions; DROP TABLE auth_tokens; "
	    "DROP TABLE auth_failures; DROP TABLE approvals; PRAGMA user_version = 1");
	state_close(st);
	st = NULL;
	T_OK(state_open(&st, dir, STATE_READONLY) == ERR_INVAL, "migration: a v1 database is "
	    "refused read-only");
	T_OK(state_open(&st, dir, 0) == 0, "migration: opened read-write (%s)", err_last());
	T_OK(st != NULL && sql_int(st, "PRAGMA user_version") >= 2 &&
	    sql_int(st, "SELECT count(*) FROM auth_tokens") == 0, "migration: the auth tables exist");
	state_close(st);
}

int
main(void)
{
	struct state *st = NULL;

	if (sodium_init() < 0 || mkdtemp(dir) == NULL) {
		printf("not ok - setup\n");
		return 1;
	}
	if (state_open(&st, dir, STATE_CREATE) != 0) {
		printf("not ok - state_open: %s\n", err_last());
		rm_dir();
		return 1;
	}
	test_passwd(st);
	test_login(st);
	test_sessions(st);
	test_tokens(st);
	state_close(st);
	test_migration();
	test_fleet_admin();
	rm_dir();
	T_DONE();
}
