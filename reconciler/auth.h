/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admin authentication (docs/DESIGN.md §10): admin passphrases, browser sessions with a
 * CSRF token, API tokens, and login rate limiting, all in state.db (never in git).
 *
 * Which users are admins is the fleet's business, not ours: the caller passes it in
 * (auth_fleet_admin() says it for a loaded fleet) and, on every request, checks that the
 * user a session or token names is still an admin of the applied revision.
 *
 * Secrets in, secrets out: passphrases, cookies and tokens come in as NUL-terminated
 * strings and go out in caller-owned fixed buffers; only SHA-256 of a cookie or token and
 * the Argon2id string of a passphrase are stored. Callers wipe what they hold with
 * sodium_memzero() and never log it. Every function joins the caller's transaction when
 * one is open (state_begin()), else runs its own.
 *
 * Returns: 0 ok; the positive AUTH_* codes below for the expected refusals; <0 ERR_* on
 * failure (err_last()). `now` is Unix seconds, passed in so tests drive a fake clock.
 */
#ifndef PHAROS_AUTH_H
#define PHAROS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct state;
struct fleet;

enum {
	AUTH_DENIED = 1,	/* wrong passphrase, unknown user, session or token, revoked */
	AUTH_EXPIRED = 2,	/* session (idle or absolute) or token past its expiry */
	AUTH_LIMITED = 3,	/* too many failed logins: *retry_after seconds */
	AUTH_SCOPE = 4,		/* a valid token without the required scope (HTTP 403) */
};

#define AUTH_PASS_MIN		10	/* characters (UTF-8 code points) */
#define AUTH_PASS_MAX		1024	/* bytes */
#define AUTH_USER_MAX		65	/* fleet user names are at most 64 bytes, + NUL */
#define AUTH_SESSION_IDLE_S	(12 * 3600)
#define AUTH_SESSION_MAX_S	(7 * 86400)
#define AUTH_SESSIONS_PER_USER	16	/* the least recently used beyond this are dropped */
#define AUTH_FAIL_MAX		5	/* failed logins per user and per client address ... */
#define AUTH_FAIL_WINDOW_S	300	/* ... in this sliding window */
#define AUTH_TOUCH_S		60	/* last-used times are written at most this often */
#define AUTH_TOKEN_TTL_MAX	(366 * 86400)
#define AUTH_TOKEN_PREFIX	"pht_"
/* base64url (no padding) of 32 random bytes is 43 characters */
#define AUTH_COOKIE_SIZE	44	/* 43 + NUL */
#define AUTH_CSRF_SIZE		44
#define AUTH_TOKEN_SIZE		48	/* "pht_" + 43 + NUL */
#define AUTH_TOKEN_NAME_MAX	65	/* [a-z][a-z0-9._-]{0,63} + NUL */

/*
 * True if the fleet has a user NAME with role admin who is not disabled: the only users
 * auth_login() should be told are admins, and the only ones `cox admin passwd` accepts.
 */
bool	 auth_fleet_admin(const struct fleet *, const char *name);

/*
 * Set USER's passphrase: Argon2id through crypto_pwhash_str() with libsodium's
 * OPSLIMIT_INTERACTIVE / MEMLIMIT_INTERACTIVE (2 passes over 64 MiB, about 0.1 s here),
 * stored as its self-describing string. Drops every session of USER and its failed-login
 * count. ERR_INVAL: shorter than AUTH_PASS_MIN characters, longer than AUTH_PASS_MAX
 * bytes, or not UTF-8 text. *sessions_dropped (may be NULL) gets how many sessions went.
 */
int	 auth_passwd_set(struct state *, const char *user, const char *pass,
	    int *sessions_dropped);
/* 0 and *set: whether USER has a passphrase. */
int	 auth_passwd_exists(struct state *, const char *user, bool *set);

/* A browser session, as auth_login() makes it or auth_session_check() finds it. */
struct auth_session {
	char	 cookie[AUTH_COOKIE_SIZE];	/* the secret: the cookie's value */
	char	 csrf[AUTH_CSRF_SIZE];		/* what state-changing requests must echo */
	char	 user[AUTH_USER_MAX];
	int64_t	 created_unix;
	int64_t	 idle_expires_unix;		/* moves with every use */
	int64_t	 expires_unix;			/* absolute: created + AUTH_SESSION_MAX_S */
};

/*
 * Check USER's passphrase and open a session. is_admin: the caller's answer for USER
 * (auth_fleet_admin() on the applied revision); a non-admin is refused exactly like an
 * unknown user or a wrong passphrase (AUTH_DENIED, after the same Argon2id work, and the
 * failure counts). Refused with AUTH_LIMITED and *retry_after > 0, before any Argon2id,
 * when USER or client_ip (an IPv6 address counts as its /64; NULL is one shared bucket)
 * has AUTH_FAIL_MAX failures within the last AUTH_FAIL_WINDOW_S. A success clears USER's
 * failures (not the address's).
 *
 * Runs Argon2id (about 0.1 s, 64 MiB) outside any transaction of its own: call it off the
 * event loop, one login at a time (memory), with that thread's own struct state.
 */
int	 auth_login(struct state *, const char *user, const char *pass, bool is_admin,
	    const char *client_ip, int64_t now, struct auth_session *out, int64_t *retry_after);

/*
 * Look a cookie up: 0 and *out filled (user, csrf, expiries) and its last use moved to
 * now; AUTH_DENIED if unknown or malformed; AUTH_EXPIRED (and the row deleted) if idle for
 * AUTH_SESSION_IDLE_S or older than AUTH_SESSION_MAX_S. out may be NULL.
 */
int	 auth_session_check(struct state *, const char *cookie, int64_t now,
	    struct auth_session *out);
/*
 * The CSRF token is derived from the cookie — BLAKE2b-256 keyed with the session's 32
 * random bytes — so it is stored nowhere and dies with the session. 0 if csrf is the
 * token of that cookie (constant time), AUTH_DENIED if not. Check the session first.
 */
int	 auth_csrf_check(const char *cookie, const char *csrf);
/* 0 removed, AUTH_DENIED if there was no such session. */
int	 auth_logout(struct state *, const char *cookie);
/* Drop every session of USER (a passphrase change, an admin no longer in the fleet). */
int	 auth_sessions_drop(struct state *, const char *user, int *dropped);

/* API token scopes, ordered: a token grants its scope and every lower one. */
enum auth_scope { AUTH_SCOPE_READ = 1, AUTH_SCOPE_WRITE = 2, AUTH_SCOPE_ADMIN = 3 };

/* "read", "write", "admin" <-> enum; parse returns 0 or ERR_INVAL. */
int	 auth_scope_parse(const char *s, enum auth_scope *out);
const char *auth_scope_name(enum auth_scope);

struct auth_token {
	int64_t		 id;
	char		 name[AUTH_TOKEN_NAME_MAX];
	enum auth_scope	 scope;
	char		 created_by[128];	/* "admin:<user>", "unix:<user>" */
	int64_t		 created_unix, expires_unix;
	int64_t		 last_used_unix;	/* 0: never */
	int64_t		 revoked_unix;		/* 0: not revoked */
};

/*
 * Make a token: "pht_" + base64url of 32 random bytes, written to token_out (the only
 * time it exists in clear; the caller shows it once and wipes it). name: a letter, then
 * up to 63 of [a-z0-9._-]; unique among unrevoked tokens (ERR_INVAL says so). ttl_s in
 * 1..AUTH_TOKEN_TTL_MAX. info (may be NULL) gets the stored record.
 */
int	 auth_token_create(struct state *, const char *name, enum auth_scope scope,
	    int64_t ttl_s, const char *created_by, int64_t now,
	    char token_out[AUTH_TOKEN_SIZE], struct auth_token *info);
/*
 * Authenticate a request's token: 0 if it is known, unrevoked, unexpired and its scope is
 * at least `required`; AUTH_DENIED, AUTH_EXPIRED or AUTH_SCOPE otherwise. A token that
 * authenticates (even if its scope is short) has last_used moved to now. info may be NULL.
 */
int	 auth_token_check(struct state *, const char *token, int64_t now,
	    enum auth_scope required, struct auth_token *info);
/* Every token, revoked ones too, by id; free(*out). */
int	 auth_token_list(struct state *, struct auth_token **out, size_t *n);
/*
 * Revoke the unrevoked token NAME, or, when `what` is all digits, the token with that id.
 * 0 revoked (info, may be NULL, gets it), AUTH_DENIED if there is no such live token.
 */
int	 auth_token_revoke(struct state *, const char *what, int64_t now,
	    struct auth_token *info);

/*
 * Approvals of proposals (docs/DESIGN.md §11): an admin approves one head of a branch; a
 * later commit on the branch needs a new approval. Approving twice is one approval.
 */
int	 auth_approve(struct state *, const char *branch, const char *rev, const char *user,
	    int64_t now);
/* The admins who approved rev of branch, oldest first (*users NULL when none). */
int	 auth_approvals(struct state *, const char *branch, const char *rev, char ***users,
	    size_t *n);
void	 auth_approvals_free(char **users, size_t n);

#endif
