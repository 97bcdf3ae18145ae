/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Xray: config file, HandlerService client, REALITY key. See xray.h.
 *
 * The AlterInbound messages are Xray's, not ours, and only three small ones, so they are
 * written by hand with a minimal protobuf writer instead of vendoring Xray's .proto files
 * (field numbers: protocols.md §4, from app/proxyman/command/command.proto,
 * common/protocol/user.proto, common/serial/typed_message.proto,
 * proxy/vless/account.proto).
 */
#include <ctype.h>
#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "err.h"
#include "fsutil.h"
#include "grpc.h"
#include "log.h"
#include "xray.h"

#define ALTER_INBOUND	"/xray.app.proxyman.command.HandlerService/AlterInbound"
#define T_ADD_USER	"xray.app.proxyman.command.AddUserOperation"
#define T_REMOVE_USER	"xray.app.proxyman.command.RemoveUserOperation"
#define T_VLESS_ACCOUNT	"xray.proxy.vless.Account"
#define EMAIL_MAX	255

/* ======================================================================== */
/* checks                                                                    */
/* ======================================================================== */

/* s for an error message if it is short printable ASCII: errors are one log line. */
static const char *
printable(const char *s)
{
	size_t i;

	if (s == NULL)
		return "";
	for (i = 0; s[i] != '\0'; i++)
		if (i >= 64 || (unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return "(unprintable)";
	return s;
}

int
xray_check_uuid(const char *uuid)
{
	size_t i;

	if (uuid == NULL || strlen(uuid) != 36)
		goto bad;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (uuid[i] != '-')
				goto bad;
		} else if (!isxdigit((unsigned char)uuid[i])) {
			goto bad;
		}
	}
	return 0;
bad:
	err_set("\"%s\" is not a UUID (8-4-4-4-12 hex digits)", printable(uuid));
	return ERR_INVAL;
}

int
xray_check_flow(const char *flow)
{
	if (flow != NULL && (flow[0] == '\0' || strcmp(flow, XRAY_FLOW_VISION) == 0))
		return 0;
	err_set("flow \"%s\" is not \"\" or \"" XRAY_FLOW_VISION "\"", printable(flow));
	return ERR_INVAL;
}

int
xray_check_short_id(const char *sid)
{
	size_t i, n = sid != NULL ? strlen(sid) : 1;

	if (n > 16 || n % 2 != 0)
		goto bad;
	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)sid[i]))
			goto bad;
	return 0;
bad:
	err_set("short id \"%s\" is not 0-16 hex digits of even length", printable(sid));
	return ERR_INVAL;
}

int
xray_check_email(const char *email)
{
	size_t i, n = email != NULL ? strlen(email) : 0;

	if (n == 0 || n > EMAIL_MAX) {
		err_set("user email must be 1-%d bytes", EMAIL_MAX);
		return ERR_INVAL;
	}
	for (i = 0; i < n; i++) {
		if ((unsigned char)email[i] < 0x20 || email[i] == 0x7f) {
			err_set("user email has a control character at byte %zu", i);
			return ERR_INVAL;
		}
	}
	return 0;
}

static int
check_user(const Pharos__V1__VlessUser *u)
{
	if (xray_check_email(u->email) != 0)
		return ERR_INVAL;
	if (xray_check_uuid(u->uuid) != 0) {
		err_set("user %s: \"%s\" is not a UUID (8-4-4-4-12 hex digits)", u->email,
		    printable(u->uuid));
		return ERR_INVAL;
	}
	return 0;
}

/* Decodes to exactly 32 bytes of unpadded base64url. */
static int
decode_key(uint8_t key[32], const char *b64)
{
	size_t n = 0;
	const char *end = NULL;

	if (b64 == NULL || strlen(b64) != XRAY_KEY_B64_SIZE - 1 ||
	    sodium_base642bin(key, 32, b64, strlen(b64), NULL, &n, &end,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 || n != 32 || *end != '\0') {
		sodium_memzero(key, 32);
		err_set("REALITY private key is not unpadded base64url of 32 bytes");
		return ERR_INVAL;
	}
	return 0;
}

/* ======================================================================== */
/* config file                                                               */
/* ======================================================================== */

int
xray_check_config(const Pharos__V1__NodeConfig *cfg)
{
	const Pharos__V1__Reality *r;
	size_t i, j;

	if (cfg == NULL || (r = cfg->xray) == NULL) {
		err_set("the config has no xray section");
		return ERR_INVAL;
	}
	if (r->port > 65535) {
		err_set("xray port %u is out of range", r->port);
		return ERR_INVAL;
	}
	if (r->target == NULL || r->target[0] == '\0') {
		err_set("xray target (the REALITY decoy host:port) is empty");
		return ERR_INVAL;
	}
	if (r->n_server_names == 0) {
		err_set("xray server_names is empty");
		return ERR_INVAL;
	}
	for (i = 0; i < r->n_server_names; i++) {
		if (r->server_names[i][0] == '\0') {
			err_set("xray server_names[%zu] is empty", i);
			return ERR_INVAL;
		}
	}
	if (r->n_short_ids == 0) {
		err_set("xray short_ids is empty");
		return ERR_INVAL;
	}
	for (i = 0; i < r->n_short_ids; i++)
		if (xray_check_short_id(r->short_ids[i]) != 0)
			return ERR_INVAL;
	if (xray_check_flow(r->flow) != 0)
		return ERR_INVAL;
	for (i = 0; i < cfg->n_vless_users; i++) {
		if (check_user(cfg->vless_users[i]) != 0)
			return ERR_INVAL;
		for (j = 0; j < i; j++) {
			if (strcasecmp(cfg->vless_users[i]->email, cfg->vless_users[j]->email) == 0) {
				err_set("user email %s appears twice (Xray compares emails "
				    "case-insensitively)", cfg->vless_users[i]->email);
				return ERR_INVAL;
			}
		}
	}
	return 0;
}

/* Attach a leaf to an object or array; a failure is remembered, not checked per call. */
static void
jset(json_t *obj, const char *key, json_t *val, bool *bad)
{
	if (val == NULL || json_object_set_new(obj, key, val) != 0)
		*bad = true;
}

static void
jpush(json_t *arr, json_t *val, bool *bad)
{
	if (val == NULL || json_array_append_new(arr, val) != 0)
		*bad = true;
}

/* Attach a container and return it, or NULL (then it is gone: set_new/append_new steal). */
static json_t *
jchild(json_t *parent, const char *key, json_t *val)
{
	int rc;

	if (val == NULL)
		return NULL;
	rc = key != NULL ? json_object_set_new(parent, key, val) :
	    json_array_append_new(parent, val);
	return rc == 0 ? val : NULL;
}

/* An array of strings; a string that is not UTF-8 sets *bad. */
static json_t *
jstrings(char *const *v, size_t n, bool *bad)
{
	json_t *a = json_array();
	size_t i;

	if (a == NULL) {
		*bad = true;
		return NULL;
	}
	for (i = 0; i < n; i++)
		jpush(a, json_string(v[i]), bad);
	return a;
}

/* Wipe and drop our reference to the private key string. */
static void
drop_key(json_t *key)
{
	const char *v;

	if (key == NULL)
		return;
	if ((v = json_string_value(key)) != NULL)
		sodium_memzero((char *)(uintptr_t)v, strlen(v));
	json_decref(key);
}

int
xray_config_json(char **out, const Pharos__V1__NodeConfig *cfg, const char *priv,
    const char *api_listen)
{
	const Pharos__V1__Reality *r;
	json_t *root, *o, *a, *inb, *set, *clients, *c, *ss, *rs, *key = NULL;
	uint8_t raw[32];
	char *s, *nl;
	size_t i, n;
	bool bad = false;

	*out = NULL;
	if (xray_check_config(cfg) != 0 || decode_key(raw, priv) != 0)
		return ERR_INVAL;
	sodium_memzero(raw, sizeof(raw));
	r = cfg->xray;
	if (api_listen == NULL)
		api_listen = XRAY_API_LISTEN;
	if ((root = json_object()) == NULL)
		goto nomem;

	if ((o = jchild(root, "log", json_object())) == NULL)
		goto nomem;
	jset(o, "loglevel", json_string("warning"), &bad);

	if ((o = jchild(root, "api", json_object())) == NULL)
		goto nomem;
	jset(o, "tag", json_string("api"), &bad);
	jset(o, "listen", json_string(api_listen), &bad);
	jset(o, "services", json_pack("[s]", "HandlerService"), &bad);

	if ((a = jchild(root, "inbounds", json_array())) == NULL ||
	    (inb = jchild(a, NULL, json_object())) == NULL)
		goto nomem;
	jset(inb, "tag", json_string(XRAY_INBOUND_TAG), &bad);
	jset(inb, "listen", json_string("0.0.0.0"), &bad);
	jset(inb, "port", json_integer(r->port != 0 ? r->port : XRAY_DEFAULT_PORT), &bad);
	jset(inb, "protocol", json_string("vless"), &bad);

	if ((set = jchild(inb, "settings", json_object())) == NULL ||
	    (clients = jchild(set, "clients", json_array())) == NULL)
		goto nomem;
	jset(set, "decryption", json_string("none"), &bad);
	for (i = 0; i < cfg->n_vless_users; i++) {
		const Pharos__V1__VlessUser *u = cfg->vless_users[i];
		if ((c = jchild(clients, NULL, json_object())) == NULL)
			goto nomem;
		jset(c, "id", json_string(u->uuid), &bad);
		jset(c, "email", json_string(u->email), &bad);
		jset(c, "flow", json_string(r->flow), &bad);
	}

	if ((ss = jchild(inb, "streamSettings", json_object())) == NULL ||
	    (rs = jchild(ss, "realitySettings", json_object())) == NULL)
		goto nomem;
	jset(ss, "network", json_string("tcp"), &bad);
	jset(ss, "security", json_string("reality"), &bad);
	jset(rs, "target", json_string(r->target), &bad);
	jset(rs, "serverNames", jstrings(r->server_names, r->n_server_names, &bad), &bad);
	jset(rs, "shortIds", jstrings(r->short_ids, r->n_short_ids, &bad), &bad);
	/* An extra reference, to wipe it at the end: jansson frees strings uncleared. */
	if ((key = json_string(priv)) != NULL)
		json_incref(key);
	jset(rs, "privateKey", key, &bad);

	if ((a = jchild(root, "outbounds", json_array())) == NULL ||
	    (o = jchild(a, NULL, json_object())) == NULL)
		goto nomem;
	jset(o, "protocol", json_string("freedom"), &bad);
	jset(o, "tag", json_string("direct"), &bad);
	if (bad) {
		/* All else was checked: a target, name or email that is not UTF-8 (or no memory). */
		err_set("xray config: a target, server name or email is not UTF-8 (or out of "
		    "memory)");
		drop_key(key);
		json_decref(root);
		return ERR_INVAL;
	}
	s = json_dumps(root, JSON_SORT_KEYS | JSON_INDENT(2));
	drop_key(key);
	key = NULL;
	json_decref(root);
	root = NULL;
	if (s == NULL)
		goto nomem;
	n = strlen(s);
	/* A final newline, as a text file has; realloc would leave a copy unwiped. */
	if ((nl = malloc(n + 2)) == NULL) {
		xray_config_free(s);
		goto nomem;
	}
	memcpy(nl, s, n);
	nl[n] = '\n';
	nl[n + 1] = '\0';
	xray_config_free(s);
	*out = nl;
	return 0;
nomem:
	err_set("xray config: out of memory");
	drop_key(key);
	json_decref(root);
	return ERR_NOMEM;
}

void
xray_config_free(char *json)
{
	if (json == NULL)
		return;
	sodium_memzero(json, strlen(json));
	free(json);
}

int
xray_write_config(const char *path, const Pharos__V1__NodeConfig *cfg, const char *priv,
    const char *api_listen)
{
	char *json;
	int rc;

	if ((rc = xray_config_json(&json, cfg, priv, api_listen)) != 0)
		return rc;
	rc = fs_write_atomic(path, json, strlen(json), 0600);
	xray_config_free(json);
	return rc;
}

/* ======================================================================== */
/* REALITY key                                                               */
/* ======================================================================== */

int
xray_reality_keypair(char priv_b64url[XRAY_KEY_B64_SIZE], char pub_b64url[XRAY_KEY_B64_SIZE])
{
	uint8_t sk[32], pk[32];
	int rc = 0;

	if (sodium_init() < 0) {
		err_set("libsodium initialisation failed");
		return ERR_LIB;
	}
	randombytes_buf(sk, sizeof(sk));
	/* Clamped as `xray x25519` prints it; X25519 clamps anyway, so pk is the same. */
	sk[0] &= 248;
	sk[31] &= 127;
	sk[31] |= 64;
	if (crypto_scalarmult_base(pk, sk) != 0) {
		err_set("X25519 public key derivation failed");
		rc = ERR_LIB;
	} else {
		sodium_bin2base64(priv_b64url, XRAY_KEY_B64_SIZE, sk, sizeof(sk),
		    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		sodium_bin2base64(pub_b64url, XRAY_KEY_B64_SIZE, pk, sizeof(pk),
		    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	}
	sodium_memzero(sk, sizeof(sk));
	return rc;
}

int
xray_reality_public(uint8_t pub[32], const char *priv_b64url)
{
	uint8_t sk[32];
	int rc = 0;

	if (sodium_init() < 0) {
		err_set("libsodium initialisation failed");
		return ERR_LIB;
	}
	if (decode_key(sk, priv_b64url) != 0)
		return ERR_INVAL;
	if (crypto_scalarmult_base(pub, sk) != 0) {
		err_set("X25519 public key derivation failed");
		rc = ERR_LIB;
	}
	sodium_memzero(sk, sizeof(sk));
	return rc;
}

/* ======================================================================== */
/* users diff                                                                */
/* ======================================================================== */

static const Pharos__V1__VlessUser *
find_email(Pharos__V1__VlessUser *const *v, size_t n, const char *email)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(v[i]->email, email) == 0)
			return v[i];
	return NULL;
}

int
xray_users_diff(struct xray_diff *out, Pharos__V1__VlessUser *const *old, size_t nold,
    Pharos__V1__VlessUser *const *new_users, size_t nnew)
{
	const Pharos__V1__VlessUser *o;
	size_t i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < nnew; i++) {
		if (check_user(new_users[i]) != 0)
			return ERR_INVAL;
		if (find_email(new_users, i, new_users[i]->email) != NULL) {
			err_set("user email %s appears twice (Xray compares emails "
			    "case-insensitively)", new_users[i]->email);
			return ERR_INVAL;
		}
	}
	/* calloc(n, size) checks the multiplication; +1 so that 0 users is not NULL. */
	out->add = calloc(nnew + 1, sizeof(*out->add));
	out->remove = calloc(nold + nnew + 1, sizeof(*out->remove));
	if (out->add == NULL || out->remove == NULL) {
		xray_diff_free(out);
		err_set("users diff: out of memory");
		return ERR_NOMEM;
	}
	/* Removals first, in old's order: what is gone, then what changed its uuid. */
	for (i = 0; i < nold; i++) {
		const Pharos__V1__VlessUser *nu = find_email(new_users, nnew, old[i]->email);
		if (nu == NULL || strcasecmp(nu->uuid, old[i]->uuid) != 0)
			out->remove[out->nremove++] = old[i];
	}
	for (i = 0; i < nnew; i++) {
		o = find_email(old, nold, new_users[i]->email);
		if (o == NULL || strcasecmp(o->uuid, new_users[i]->uuid) != 0)
			out->add[out->nadd++] = new_users[i];
	}
	return 0;
}

void
xray_diff_free(struct xray_diff *d)
{
	if (d == NULL)
		return;
	free(d->add);
	free(d->remove);
	memset(d, 0, sizeof(*d));
}

/* ======================================================================== */
/* protobuf writer                                                           */
/* ======================================================================== */

struct pb {
	uint8_t	*buf;
	size_t	 len, cap;
	bool	 oom;
};

static void
pb_raw(struct pb *p, const void *data, size_t len)
{
	if (p->oom)
		return;
	if (len > SIZE_MAX - p->len) {
		p->oom = true;
		return;
	}
	if (p->len + len > p->cap) {
		size_t cap = p->cap ? p->cap : 64;
		uint8_t *nb;
		while (cap < p->len + len)
			cap = cap > SIZE_MAX / 2 ? p->len + len : cap * 2;
		if ((nb = realloc(p->buf, cap)) == NULL) {
			p->oom = true;
			return;
		}
		p->buf = nb;
		p->cap = cap;
	}
	if (len > 0)
		memcpy(p->buf + p->len, data, len);
	p->len += len;
}

static void
pb_varint(struct pb *p, uint64_t v)
{
	uint8_t b[10];
	size_t n = 0;

	do {
		b[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v != 0)
			b[n] |= 0x80;
		n++;
	} while (v != 0);
	pb_raw(p, b, n);
}

/* A length-delimited field (wire type 2): string, bytes or embedded message. */
static void
pb_bytes(struct pb *p, unsigned field, const void *data, size_t len)
{
	pb_varint(p, (uint64_t)field << 3 | 2);
	pb_varint(p, len);
	pb_raw(p, data, len);
}

/* proto3: an empty string is the default and is not written. */
static void
pb_string(struct pb *p, unsigned field, const char *s)
{
	if (s != NULL && s[0] != '\0')
		pb_bytes(p, field, s, strlen(s));
}

/* Embed `inner` as field `field` of p, and free inner. */
static void
pb_embed(struct pb *p, unsigned field, struct pb *inner)
{
	if (inner->oom)
		p->oom = true;
	else
		pb_bytes(p, field, inner->buf, inner->len);
	free(inner->buf);
	memset(inner, 0, sizeof(*inner));
}

/* TypedMessage{1: type, 2: value} from a finished inner message. */
static void
pb_typed(struct pb *p, unsigned field, const char *type, struct pb *value)
{
	struct pb tm = { 0 };

	pb_string(&tm, 1, type);
	pb_embed(&tm, 2, value);
	pb_embed(p, field, &tm);
}

static int
pb_finish(uint8_t **out, size_t *len, struct pb *p)
{
	if (p->oom) {
		free(p->buf);
		err_set("AlterInbound request: out of memory");
		return ERR_NOMEM;
	}
	*out = p->buf;
	*len = p->len;
	return 0;
}

/* AlterInboundRequest{1: tag, 2: TypedMessage(type, op)}. */
static int
alter_inbound(uint8_t **out, size_t *len, const char *tag, const char *type, struct pb *op)
{
	struct pb req = { 0 };

	pb_string(&req, 1, tag);
	pb_typed(&req, 2, type, op);
	return pb_finish(out, len, &req);
}

int
xray_encode_add_user(uint8_t **out, size_t *len, const char *tag, const char *uuid,
    const char *email, const char *flow)
{
	struct pb acct = { 0 }, user = { 0 }, op = { 0 };

	*out = NULL;
	*len = 0;
	if (tag == NULL || tag[0] == '\0') {
		err_set("inbound tag is empty");
		return ERR_INVAL;
	}
	if (xray_check_uuid(uuid) != 0 || xray_check_email(email) != 0 ||
	    xray_check_flow(flow) != 0)
		return ERR_INVAL;
	/* vless Account{1: id, 2: flow}; no encryption for an inbound user. */
	pb_string(&acct, 1, uuid);
	pb_string(&acct, 2, flow);
	/* User{1: level (0, omitted), 2: email, 3: TypedMessage account}. */
	pb_string(&user, 2, email);
	pb_typed(&user, 3, T_VLESS_ACCOUNT, &acct);
	/* AddUserOperation{1: user}. */
	pb_embed(&op, 1, &user);
	return alter_inbound(out, len, tag, T_ADD_USER, &op);
}

int
xray_encode_remove_user(uint8_t **out, size_t *len, const char *tag, const char *email)
{
	struct pb op = { 0 };

	*out = NULL;
	*len = 0;
	if (tag == NULL || tag[0] == '\0') {
		err_set("inbound tag is empty");
		return ERR_INVAL;
	}
	if (xray_check_email(email) != 0)
		return ERR_INVAL;
	/* RemoveUserOperation{1: email}. */
	pb_string(&op, 1, email);
	return alter_inbound(out, len, tag, T_REMOVE_USER, &op);
}

/* ======================================================================== */
/* HandlerService client                                                     */
/* ======================================================================== */

struct xray_api {
	struct event_base	*base;
	struct grpc_channel	*ch;
};

struct xray_api *
xray_api_new(struct event_base *base, const char *host, const char *port)
{
	struct grpc_channel_opts o;
	struct xray_api *api;

	if ((api = calloc(1, sizeof(*api))) == NULL) {
		err_set("xray api: out of memory");
		return NULL;
	}
	memset(&o, 0, sizeof(o));
	o.ssl = NULL;			/* Xray's api.listen speaks h2c */
	o.backoff_initial_ms = 500;
	o.backoff_max_ms = 10000;	/* a local process: come back soon after a restart */
	api->base = base;
	if ((api->ch = grpc_channel_new(base, host, port, &o)) == NULL) {
		err_set("xray api %s:%s: cannot create the channel", host, port);
		free(api);
		return NULL;
	}
	return api;
}

void
xray_api_free(struct xray_api *api)
{
	if (api == NULL)
		return;
	grpc_channel_free(api->ch);
	free(api);
}

bool
xray_api_ready(const struct xray_api *api)
{
	return grpc_channel_state(api->ch) == GRPC_CH_READY;
}

static int
api_call(struct xray_api *api, uint8_t *req, size_t len, xray_done_fn done, void *arg)
{
	struct grpc_ccall *cc;

	cc = grpc_channel_call(api->ch, ALTER_INBOUND, req, len, XRAY_API_TIMEOUT_MS,
	    GRPC_CALL_WAIT_FOR_READY, NULL, done, arg);
	free(req);
	if (cc == NULL) {
		err_set("AlterInbound: out of memory");
		return ERR_NOMEM;
	}
	return 0;
}

int
xray_api_add_user(struct xray_api *api, const char *tag, const char *uuid, const char *email,
    const char *flow, xray_done_fn done, void *arg)
{
	uint8_t *req;
	size_t len;
	int rc;

	if ((rc = xray_encode_add_user(&req, &len, tag, uuid, email, flow)) != 0)
		return rc;
	log_debug("xray: AlterInbound add user=%s tag=%s", email, tag);
	return api_call(api, req, len, done, arg);
}

int
xray_api_remove_user(struct xray_api *api, const char *tag, const char *email,
    xray_done_fn done, void *arg)
{
	uint8_t *req;
	size_t len;
	int rc;

	if ((rc = xray_encode_remove_user(&req, &len, tag, email)) != 0)
		return rc;
	log_debug("xray: AlterInbound remove user=%s tag=%s", email, tag);
	return api_call(api, req, len, done, arg);
}

bool
xray_status_exists(int status, const char *message)
{
	return status == GRPC_UNKNOWN && message != NULL && strstr(message, "already exists");
}

bool
xray_status_not_found(int status, const char *message)
{
	return status == GRPC_UNKNOWN && message != NULL && strstr(message, "not found");
}

struct resync {
	size_t		 pending;
	size_t		 added, existed;
	int		 status;
	char		*message;
	xray_done_fn	 done;
	void		*arg;
};

static void
resync_finish(struct resync *rs)
{
	if (rs->status == GRPC_OK)
		log_info("xray: resync users added=%zu existed=%zu", rs->added, rs->existed);
	rs->done(rs->arg, rs->status, rs->message);
	free(rs->message);
	free(rs);
}

static void
resync_one_done(void *arg, int status, const char *message)
{
	struct resync *rs = arg;

	if (status == GRPC_OK) {
		rs->added++;
	} else if (xray_status_exists(status, message)) {
		rs->existed++;
	} else if (rs->status == GRPC_OK) {
		rs->status = status;
		rs->message = message != NULL ? strdup(message) : NULL;
	}
	if (--rs->pending == 0)
		resync_finish(rs);
}

static void
resync_empty_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	resync_finish(arg);
}

int
xray_api_resync(struct xray_api *api, const char *tag, Pharos__V1__VlessUser *const *users,
    size_t nusers, const char *flow, xray_done_fn done, void *arg)
{
	struct resync *rs;
	size_t i;
	int rc = 0;

	for (i = 0; i < nusers; i++)
		if (check_user(users[i]) != 0)
			return ERR_INVAL;
	if (xray_check_flow(flow) != 0)
		return ERR_INVAL;
	if ((rs = calloc(1, sizeof(*rs))) == NULL) {
		err_set("xray resync: out of memory");
		return ERR_NOMEM;
	}
	rs->done = done;
	rs->arg = arg;
	if (nusers == 0) {
		struct timeval now = { 0, 0 };
		if (event_base_once(api->base, -1, EV_TIMEOUT, resync_empty_cb, rs, &now) != 0) {
			free(rs);
			err_set("xray resync: cannot schedule the answer");
			return ERR_NOMEM;
		}
		return 0;
	}
	/* A call's done never runs inside xray_api_add_user(): counting as we go is safe. */
	for (i = 0; i < nusers; i++) {
		rs->pending++;
		if ((rc = xray_api_add_user(api, tag, users[i]->uuid, users[i]->email, flow,
		    resync_one_done, rs)) != 0) {
			rs->pending--;
			break;
		}
	}
	if (rc == 0)
		return 0;
	if (rs->pending == 0) {
		free(rs);
		return rc;
	}
	/* Some calls are running: they report, with this failure as the result. */
	rs->status = GRPC_RESOURCE_EXHAUSTED;
	rs->message = strdup(err_last());
	return 0;
}
