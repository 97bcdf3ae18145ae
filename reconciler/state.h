/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's state directory (BRIEF.md §4): DIR/fleet.git holds intent, DIR/state.db
 * (SQLite, WAL, numbered migrations) holds everything that is not in git — the PKI and the
 * config-signing key, per-node enrollment and observed state, the tunnel addresses given to
 * device keys, the audit log, admin passphrases, sessions and API tokens (auth.h). Every
 * function is safe to call from the one loop thread; the CLI commands (`cox status`,
 * `cox audit`) open the same database read-mostly while `cox run` holds it (WAL readers
 * never block the writer).
 */
#ifndef PHAROS_STATE_H
#define PHAROS_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct state;
struct sqlite3;

#define STATE_DB		"state.db"
#define STATE_GIT		"fleet.git"
#define STATE_REV_MAX		41	/* 40 hex + NUL */

enum { STATE_CREATE = 1 << 0, STATE_READONLY = 1 << 1 };

/* Open DIR/state.db (creating it with STATE_CREATE, mode 0600) and run pending migrations. */
int	 state_open(struct state **out, const char *dir, int flags);
void	 state_close(struct state *);
struct sqlite3 *state_sqlite(struct state *);
const char *state_dir(const struct state *);
/* One transaction around several writes (not nested). */
int	 state_begin(struct state *);
int	 state_commit(struct state *);
void	 state_rollback(struct state *);

/*
 * Settings and fleet-level observed state. Keys in use: "fleet_id", "preset", "branch"
 * (default "main"), "applied_rev" (last revision that validated and was planned),
 * "attempted_rev", "attempted_errors" (text, one diagnostic per line; empty when the
 * attempted revision is the applied one), "attempted_unix".
 * Return 0 and a malloc'd *val, 1 if absent (*val NULL), -1 on error (err_last()).
 */
int	 state_meta_get(struct state *, const char *key, char **val);
int	 state_meta_set(struct state *, const char *key, const char *val);

/*
 * Secrets that never go to git: "root.pem", "root.key", "fleet-ca.pem", "fleet-ca.key",
 * "device-ca.pem", "device-ca.key", "controller.pem", "controller.key" (PEM text),
 * "sign.key" (the 64-byte Ed25519 secret key, raw), "ssh.key", "ssh.pub" (OpenSSH text).
 * get returns 0 with a malloc'd *val (NUL-terminated; *len excludes it), 1 if absent.
 * Callers wipe secret buffers (sodium_memzero) before freeing.
 */
int	 state_secret_get(struct state *, const char *name, uint8_t **val, size_t *len);
int	 state_secret_put(struct state *, const char *name, const void *val, size_t len);

/* One node as the controller knows it: enrollment plus what it last confirmed. */
struct state_node {
	char		 name[64];
	char		*cert_pem;		/* issued node certificate; NULL: not enrolled */
	char		*control;		/* "host:port" override; NULL: from the fleet */
	/* the last config the node confirmed (ApplyConfig answered, or GetStatus matched) */
	char		 applied_rev[STATE_REV_MAX];
	uint64_t	 applied_serial;
	uint8_t		 config_hash[32];	/* SHA-256 of the signed bytes it runs */
	uint8_t		 content_hash[32];	/* SHA-256 of the unstamped content (desired.h) */
	bool		 have_applied;
	/* the highest serial ever sent: the next push uses sent_serial + 1, written first */
	uint64_t	 sent_serial;
	char		 attempted_rev[STATE_REV_MAX];
	char		*last_error;		/* NULL: none */
	int64_t		 last_seen_unix;	/* 0: never */
	bool		 reachable;
	uint8_t		 awg_pub[32];		/* reported in NodeStatus */
	bool		 have_awg_pub;
	uint8_t		 reality_pub[32];
	bool		 have_reality_pub;
	int64_t		 enrolled_unix;
};

/* 0 found, 1 absent, -1 error. */
int	 state_node_get(struct state *, const char *name, struct state_node *out);
/* Insert or replace every field. */
int	 state_node_put(struct state *, const struct state_node *);
int	 state_node_delete(struct state *, const char *name);
/* All nodes, sorted by name. */
int	 state_node_list(struct state *, struct state_node **out, size_t *n);
void	 state_node_clear(struct state_node *);	/* frees the members */
void	 state_node_list_free(struct state_node *, size_t n);

/*
 * Tunnel addresses handed to device keys, so a device keeps its address across restarts
 * and unrelated edits. v6 may be NULL.
 */
typedef int (*state_addr_fn)(void *arg, const uint8_t key[32], const char *v4, const char *v6);
int	 state_addr_each(struct state *, state_addr_fn, void *arg);
int	 state_addr_put(struct state *, const uint8_t key[32], const char *v4, const char *v6);

/*
 * The audit log: append-only, hash-chained. Entry i stores
 *   hash_i = SHA-256(hash_{i-1} || seq || time || actor || action || object || detail)
 * (seq and time 8-byte big-endian; each text field prefixed by its length as 4 bytes
 * big-endian; hash_0 = 32 zero bytes), so changing, removing or
 * reordering any entry breaks every later hash. actor: "cox", "git:<pusher>",
 * "admin:<name>", "token:<name>"; action e.g. "revision.applied", "revision.refused",
 * "push.ok", "push.failed", "node.added", "admin.passwd".
 */
int	 audit_append(struct state *, const char *actor, const char *action,
	    const char *object, const char *detail);

struct audit_entry {
	int64_t		 seq;
	int64_t		 time_unix;
	char		*actor, *action, *object, *detail;
	uint8_t		 hash[32];
};

/* Newest last; at most limit (0 = all) of the most recent entries. */
int	 audit_list(struct state *, int64_t limit, struct audit_entry **out, size_t *n);
void	 audit_list_free(struct audit_entry *, size_t n);

struct audit_result {
	int64_t		entries;	/* checked */
	int64_t		first_bad;	/* seq of the first bad entry; 0 if intact */
	char		why[256];
};

/* 0 intact, 1 broken (see r), -1 error. */
int	 audit_verify(struct state *, struct audit_result *r);

#endif
