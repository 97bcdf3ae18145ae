/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Xray (VLESS + REALITY) for buoy: the server config file, the HandlerService client
 * (AlterInbound add / remove user over cleartext h2c gRPC) and the REALITY X25519 key.
 * docs: ../shared/reference/protocols.md §4.
 *
 * Users live in two places. The config file lists every user (buoy rewrites it with the
 * running view, deltas included, at each change: xray_sup.c), so a restarted Xray starts
 * with them; users added later through the API are not persisted by Xray, so after a
 * restart xray_api_resync() adds the full current list again, counting "already exists"
 * as success. A change of the flow (Reality.flow) or of
 * a user's uuid cannot be made live per user except by remove + add, which
 * xray_users_diff() yields for a uuid change; a flow change means: rewrite the config and
 * restart Xray.
 *
 * NodeConfig.idle is not looked at here: whether Xray runs at all is the caller's call.
 */
#ifndef PHAROS_XRAY_H
#define PHAROS_XRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pharos/v1/node.pb-c.h"

struct event_base;

#define XRAY_INBOUND_TAG	"vless-in"
#define XRAY_FLOW_VISION	"xtls-rprx-vision"
#define XRAY_API_LISTEN		"127.0.0.1:10085"
#define XRAY_DEFAULT_PORT	443
/* An X25519 key in unpadded base64url: 43 characters and the NUL. */
#define XRAY_KEY_B64_SIZE	44
#define XRAY_API_TIMEOUT_MS	5000

/* ---- input checks (ERR_INVAL with err_set() saying what and why) ---- */

/* Canonical text UUID: 8-4-4-4-12 hex digits, either case. */
int	xray_check_uuid(const char *uuid);
/* "" or "xtls-rprx-vision". */
int	xray_check_flow(const char *flow);
/* 0-16 hex digits, even length ("" allowed). */
int	xray_check_short_id(const char *sid);
/* Xray's user key: non-empty, at most 255 bytes, no control characters. */
int	xray_check_email(const char *email);

/* ---- config file ---- */

/*
 * Everything xray_config_json() checks but the key: cfg has an xray section, its port,
 * target, server names, short ids and flow make sense, and cfg's users have uuids and
 * emails that are unique case-insensitively. ERR_INVAL names the offending item.
 */
int	xray_check_config(const Pharos__V1__NodeConfig *cfg);

/*
 * The Xray server config for cfg (which must have cfg->xray): log level warning, the
 * API (HandlerService) on api_listen (NULL: XRAY_API_LISTEN), the inbound "vless-in" on
 * 0.0.0.0:cfg->xray->port (0: 443) with every cfg->vless_users entry, REALITY with the
 * given private key (unpadded base64url of 32 bytes), one freedom outbound "direct".
 * Keys sorted, two-space indent, a final newline: the same input gives the same bytes.
 * Everything is validated first (flow, uuids, emails unique case-insensitively,
 * short ids, server names, target, port, key); ERR_INVAL names the offending item.
 * *out holds the private key: release it with xray_config_free().
 */
int	xray_config_json(char **out, const Pharos__V1__NodeConfig *cfg,
	    const char *reality_private_key_b64url, const char *api_listen);
/* Wipe and free what xray_config_json() made; NULL is a no-op. */
void	xray_config_free(char *json);
/* xray_config_json() written atomically to path with mode 0600. */
int	xray_write_config(const char *path, const Pharos__V1__NodeConfig *cfg,
	    const char *reality_private_key_b64url, const char *api_listen);

/* ---- REALITY key ---- */

/*
 * A fresh X25519 key pair as `xray x25519` makes it (clamped private scalar), both
 * halves unpadded base64url. The public half is the share link's pbk / "Password".
 */
int	xray_reality_keypair(char priv_b64url[XRAY_KEY_B64_SIZE],
	    char pub_b64url[XRAY_KEY_B64_SIZE]);
/* The public key (raw, for NodeStatus.reality_public_key) of a base64url private key. */
int	xray_reality_public(uint8_t pub[32], const char *priv_b64url);

/* ---- users diff ---- */

/*
 * From the users applied so far (old) to the wanted ones (new), matched by email
 * case-insensitively as Xray does: add = in new only, or in both with another uuid
 * (then it is in remove too: remove first, then add); remove = in old only. The arrays
 * borrow the users (add from new, remove from old), in their input order. ERR_INVAL
 * when new repeats an email; old is what was applied and trusted as it is.
 */
struct xray_diff {
	const Pharos__V1__VlessUser	**add;
	size_t				  nadd;
	const Pharos__V1__VlessUser	**remove;
	size_t				  nremove;
};

int	xray_users_diff(struct xray_diff *out, Pharos__V1__VlessUser *const *old, size_t nold,
	    Pharos__V1__VlessUser *const *new_users, size_t nnew);
void	xray_diff_free(struct xray_diff *);

/* ---- HandlerService wire format (pure; exposed for the tests) ---- */

/*
 * AlterInboundRequest bytes for AddUserOperation{User{level 0, email, Account{id,
 * flow}}} and RemoveUserOperation{email}, encoded like Go's protobuf (fields in number
 * order, proto3 defaults such as level 0 or an empty flow omitted). *out is malloc'd.
 */
int	xray_encode_add_user(uint8_t **out, size_t *len, const char *tag, const char *uuid,
	    const char *email, const char *flow);
int	xray_encode_remove_user(uint8_t **out, size_t *len, const char *tag, const char *email);

/* ---- HandlerService client ---- */

struct xray_api;

/*
 * status is a gRPC status (0 OK); message is Xray's error text or NULL. Xray reports
 * its own refusals as UNKNOWN: see xray_status_exists() / xray_status_not_found().
 */
typedef void (*xray_done_fn)(void *arg, int status, const char *message);

/*
 * A client of Xray's API at host:port over cleartext h2c (the API listens on loopback
 * only). It connects at once and reconnects with backoff; calls wait up to
 * XRAY_API_TIMEOUT_MS for a connection. NULL on failure.
 */
struct xray_api *xray_api_new(struct event_base *, const char *host, const char *port);
/* Every outstanding call's done callback runs with CANCELLED; not from a callback. */
void	xray_api_free(struct xray_api *);
/* True once the channel is connected (Xray's API answers TCP and HTTP/2). */
bool	xray_api_ready(const struct xray_api *);

/*
 * AlterInbound on inbound `tag`. 0: done(arg, ...) runs exactly once, later, from the
 * loop; <0 (bad input: ERR_INVAL, or ERR_NOMEM): it never runs.
 */
int	xray_api_add_user(struct xray_api *, const char *tag, const char *uuid,
	    const char *email, const char *flow, xray_done_fn done, void *arg);
int	xray_api_remove_user(struct xray_api *, const char *tag, const char *email,
	    xray_done_fn done, void *arg);
/*
 * Add every user again (after an Xray restart), one AlterInbound each, all at once. An
 * "already exists" answer counts as success (the user came from the config file).
 * done runs once after the last answer, with OK or the first other failure. Same return
 * contract as xray_api_add_user(); nothing to add is fine (done still runs later, from
 * the loop, and even if the xray_api is freed before: keep arg valid until it has run).
 */
int	xray_api_resync(struct xray_api *, const char *tag, Pharos__V1__VlessUser *const *users,
	    size_t nusers, const char *flow, xray_done_fn done, void *arg);

/* Xray's "User x already exists." / "User x not found." answers. */
bool	xray_status_exists(int status, const char *message);
bool	xray_status_not_found(int status, const char *message);

#endif
