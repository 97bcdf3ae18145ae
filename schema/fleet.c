/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loading: each file is parsed into a ytree (schema/ytree.c) in a scratch arena, decoded
 * through the field tables below into the fleet's own arena, and the scratch arena is
 * reset for the next file. The tables are the one description of the fleet's shape in C;
 * schema/fleet.schema.json describes the same shape for editors and a test keeps them
 * in step.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "err.h"
#include "fleet.h"
#include "source.h"
#include "ytree.h"

enum ftype { FT_STR, FT_DUR, FT_INT, FT_BOOL, FT_STRLIST, FT_OBJ, FT_OBJLIST, FT_HVAL };

#define F_REQUIRED	(1U << 0)

struct kind;

struct field {
	const char		*key;
	enum ftype		 type;
	size_t			 off;
	unsigned		 flags;
	int64_t			 min, max;	/* FT_INT range; FT_STR* max length (0: 256) */
	const struct kind	*sub;		/* FT_OBJ, FT_OBJLIST */
};

struct kind {
	const char		*what;
	const struct field	*fields;
	size_t			 size;		/* element size for FT_OBJLIST */
};

#define END	{ NULL, 0, 0, 0, 0, 0, NULL }

static const struct field awg_fields[] = {
	{ "port", FT_INT, offsetof(struct awg, port), 0, 1, 65535, NULL },
	{ "jc", FT_INT, offsetof(struct awg, jc), 0, 1, 128, NULL },
	{ "jmin", FT_INT, offsetof(struct awg, jmin), 0, 0, 65535, NULL },
	{ "jmax", FT_INT, offsetof(struct awg, jmax), 0, 0, 65535, NULL },
	{ "s1", FT_INT, offsetof(struct awg, s1), 0, 0, 65535, NULL },
	{ "s2", FT_INT, offsetof(struct awg, s2), 0, 0, 65535, NULL },
	{ "s3", FT_INT, offsetof(struct awg, s3), 0, 0, 65535, NULL },
	{ "s4", FT_INT, offsetof(struct awg, s4), 0, 0, 65535, NULL },
	{ "h1", FT_HVAL, offsetof(struct awg, h[0]), 0, 0, 0, NULL },
	{ "h2", FT_HVAL, offsetof(struct awg, h[1]), 0, 0, 0, NULL },
	{ "h3", FT_HVAL, offsetof(struct awg, h[2]), 0, 0, 0, NULL },
	{ "h4", FT_HVAL, offsetof(struct awg, h[3]), 0, 0, 0, NULL },
	{ "i1", FT_STR, offsetof(struct awg, i[0]), 0, 0, 4096, NULL },
	{ "i2", FT_STR, offsetof(struct awg, i[1]), 0, 0, 4096, NULL },
	{ "i3", FT_STR, offsetof(struct awg, i[2]), 0, 0, 4096, NULL },
	{ "i4", FT_STR, offsetof(struct awg, i[3]), 0, 0, 4096, NULL },
	{ "i5", FT_STR, offsetof(struct awg, i[4]), 0, 0, 4096, NULL },
	END
};
static const struct kind awg_kind = { "amneziawg", awg_fields, sizeof(struct awg) };

static const struct field xray_fields[] = {
	{ "port", FT_INT, offsetof(struct xray, port), 0, 1, 65535, NULL },
	{ "decoy", FT_STR, offsetof(struct xray, decoy), 0, 0, 0, NULL },
	{ "server_names", FT_STRLIST, offsetof(struct xray, server_names), 0, 0, 0, NULL },
	{ "short_ids", FT_STRLIST, offsetof(struct xray, short_ids), 0, 0, 0, NULL },
	{ "flow", FT_STR, offsetof(struct xray, flow), 0, 0, 0, NULL },
	END
};
static const struct kind xray_kind = { "xray", xray_fields, sizeof(struct xray) };

static const struct field rule_fields[] = {
	{ "name", FT_STR, offsetof(struct rule, name), F_REQUIRED, 0, 0, NULL },
	{ "users", FT_STRLIST, offsetof(struct rule, users), F_REQUIRED, 0, 0, NULL },
	{ "entry", FT_STRLIST, offsetof(struct rule, entry), F_REQUIRED, 0, 0, NULL },
	{ "exit", FT_STRLIST, offsetof(struct rule, exit), 0, 0, 0, NULL },
	{ "via", FT_STRLIST, offsetof(struct rule, via), 0, 0, 0, NULL },
	{ "hops", FT_INT, offsetof(struct rule, hops), 0, 1, 3, NULL },
	END
};
static const struct kind rule_kind = { "access rule", rule_fields, sizeof(struct rule) };

#define FL(m)	offsetof(struct fleet, m)

static const struct field ident_fields[] = {
	{ "id", FT_STR, FL(fleet.id) - FL(fleet), F_REQUIRED, 0, 0, NULL },
	{ "name", FT_STR, FL(fleet.name) - FL(fleet), 0, 0, 128, NULL },
	{ "preset", FT_STR, FL(fleet.preset) - FL(fleet), F_REQUIRED, 0, 0, NULL },
	END
};
static const struct kind ident_kind = { "fleet", ident_fields, 0 };

static const struct field network_fields[] = {
	{ "tunnel_pool", FT_STR, FL(network.tunnel_pool) - FL(network), 0, 0, 0, NULL },
	{ "tunnel_pool6", FT_STR, FL(network.tunnel_pool6) - FL(network), 0, 0, 0, NULL },
	{ "dns", FT_STRLIST, FL(network.dns) - FL(network), 0, 0, 0, NULL },
	{ "mtu", FT_INT, FL(network.mtu) - FL(network), 0, 1280, 9000, NULL },
	END
};
static const struct kind network_kind = { "network", network_fields, 0 };

static const struct field protocols_fields[] = {
	{ "amneziawg", FT_BOOL, FL(protocols.amneziawg) - FL(protocols), 0, 0, 0, NULL },
	{ "xray", FT_BOOL, FL(protocols.xray) - FL(protocols), 0, 0, 0, NULL },
	END
};
static const struct kind protocols_kind = { "protocols", protocols_fields, 0 };

static const struct field entry_pool_fields[] = {
	{ "rotate", FT_DUR, FL(entry_pool.rotate) - FL(entry_pool), 0, 0, 0, NULL },
	END
};
static const struct kind entry_pool_kind = { "entry_pool", entry_pool_fields, 0 };

static const struct field retention_fields[] = {
	{ "audit", FT_DUR, FL(retention.audit) - FL(retention), 0, 0, 0, NULL },
	{ "metrics", FT_DUR, FL(retention.metrics) - FL(retention), 0, 0, 0, NULL },
	END
};
static const struct kind retention_kind = { "retention", retention_fields, 0 };

static const struct field reconcile_fields[] = {
	{ "sweep", FT_DUR, FL(reconcile.sweep) - FL(reconcile), 0, 0, 0, NULL },
	END
};
static const struct kind reconcile_kind = { "reconcile", reconcile_fields, 0 };

static const struct field review_fields[] = {
	{ "required", FT_BOOL, FL(review.required) - FL(review), 0, 0, 0, NULL },
	END
};
static const struct kind review_kind = { "review", review_fields, 0 };

static const struct field relaycfg_fields[] = {
	{ "embedded", FT_BOOL, FL(relay.embedded) - FL(relay), 0, 0, 0, NULL },
	END
};
static const struct kind relaycfg_kind = { "relay", relaycfg_fields, 0 };

static const struct field fleet_fields[] = {
	{ "version", FT_INT, FL(version) - FL(root), F_REQUIRED, 0, INT32_MAX, NULL },
	{ "fleet", FT_OBJ, FL(fleet) - FL(root), F_REQUIRED, 0, 0, &ident_kind },
	{ "network", FT_OBJ, FL(network) - FL(root), 0, 0, 0, &network_kind },
	{ "protocols", FT_OBJ, FL(protocols) - FL(root), 0, 0, 0, &protocols_kind },
	{ "amneziawg", FT_OBJ, FL(awg) - FL(root), 0, 0, 0, &awg_kind },
	{ "xray", FT_OBJ, FL(xray) - FL(root), 0, 0, 0, &xray_kind },
	{ "entry_pool", FT_OBJ, FL(entry_pool) - FL(root), 0, 0, 0, &entry_pool_kind },
	{ "access", FT_OBJLIST, FL(access) - FL(root), 0, 0, 0, &rule_kind },
	{ "retention", FT_OBJ, FL(retention) - FL(root), 0, 0, 0, &retention_kind },
	{ "reconcile", FT_OBJ, FL(reconcile) - FL(root), 0, 0, 0, &reconcile_kind },
	{ "review", FT_OBJ, FL(review) - FL(root), 0, 0, 0, &review_kind },
	{ "relay", FT_OBJ, FL(relay) - FL(root), 0, 0, 0, &relaycfg_kind },
	{ "account_sync", FT_BOOL, FL(account_sync) - FL(root), 0, 0, 0, NULL },
	END
};
static const struct kind fleet_kind = { "fleet.yaml", fleet_fields, 0 };

#define NO(m)	(offsetof(struct node, m) - offsetof(struct node, hdr))

static const struct field node_fields[] = {
	{ "region", FT_STR, NO(region), F_REQUIRED, 0, 0, NULL },
	{ "ssh", FT_STR, NO(ssh), F_REQUIRED, 0, 0, NULL },
	{ "control", FT_STR, NO(control), 0, 0, 0, NULL },
	{ "roles", FT_STRLIST, NO(roles), 0, 0, 0, NULL },
	{ "entry_pool", FT_STRLIST, NO(entry_pool), 0, 0, 0, NULL },
	{ "mtu", FT_INT, NO(mtu), 0, 1280, 9000, NULL },
	{ "idle", FT_BOOL, NO(idle), 0, 0, 0, NULL },
	{ "amneziawg", FT_OBJ, NO(awg), 0, 0, 0, &awg_kind },
	{ "xray", FT_OBJ, NO(xray), 0, 0, 0, &xray_kind },
	END
};
static const struct kind node_kind = { "node", node_fields, 0 };

#define RE(m)	(offsetof(struct relay, m) - offsetof(struct relay, hdr))

static const struct field relay_fields[] = {
	{ "address", FT_STR, RE(address), F_REQUIRED, 0, 0, NULL },
	{ "ssh", FT_STR, RE(ssh), F_REQUIRED, 0, 0, NULL },
	{ "region", FT_STR, RE(region), 0, 0, 0, NULL },
	END
};
static const struct kind relay_kind = { "relay", relay_fields, 0 };

static const struct field device_fields[] = {
	{ "name", FT_STR, offsetof(struct device, name), F_REQUIRED, 0, 0, NULL },
	{ "public_key", FT_STR, offsetof(struct device, public_key), F_REQUIRED, 0, 0, NULL },
	{ "address", FT_STR, offsetof(struct device, address), 0, 0, 0, NULL },
	END
};
static const struct kind device_kind = { "device", device_fields, sizeof(struct device) };

#define US(m)	(offsetof(struct user, m) - offsetof(struct user, hdr))

static const struct field user_fields[] = {
	{ "email", FT_STR, US(email), F_REQUIRED, 0, 0, NULL },
	{ "role", FT_STR, US(role), 0, 0, 0, NULL },
	{ "full_name", FT_STR, US(full_name), 0, 0, 128, NULL },
	{ "disabled", FT_BOOL, US(disabled), 0, 0, 0, NULL },
	{ "devices", FT_OBJLIST, US(devices), 0, 0, 0, &device_kind },
	END
};
static const struct kind user_kind = { "user", user_fields, 0 };

struct dec {
	struct arena	*arena;		/* where decoded values go (a worker's own) */
	struct diag	*d;
	char		 path[256];	/* key path of the value being decoded */
};

static size_t
levenshtein(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j, prev, cur, tmp;
	size_t row[64];

	if (la >= 64 || lb >= 64)
		return 64;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			cur = row[j];
			tmp = prev + (a[i - 1] != b[j - 1]);
			if (row[j] + 1 < tmp)
				tmp = row[j] + 1;
			if (row[j - 1] + 1 < tmp)
				tmp = row[j - 1] + 1;
			row[j] = tmp;
			prev = cur;
		}
	}
	return row[lb];
}

/* Secret-looking key names: never a known key, always an error (DESIGN.md §2.8). */
static bool
secret_key(const char *k)
{
	char n[64];
	size_t i, j = 0, len;

	for (i = 0; k[i] != '\0' && j + 1 < sizeof(n); i++)
		if (k[i] != '_' && k[i] != '-' && k[i] != ' ')
			n[j++] = (char)tolower((unsigned char)k[i]);
	n[j] = '\0';
	len = j;
	return strstr(n, "privatekey") != NULL || strstr(n, "secret") != NULL ||
	    strstr(n, "passw") != NULL || strstr(n, "passphrase") != NULL ||
	    strstr(n, "presharedkey") != NULL || strcmp(n, "psk") == 0 ||
	    (len >= 5 && strcmp(n + len - 5, "token") == 0);
}

static bool
secret_value(const char *s, size_t len)
{
	const char *p;

	if (len < 12)
		return false;
	if ((p = strstr(s, "-----BEGIN ")) != NULL && strstr(p, "PRIVATE KEY-----") != NULL)
		return true;
	for (p = s; (p = strstr(p, "PrivateKey")) != NULL; p += 10) {
		const char *q = p + 10;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q == '=')
			return true;
	}
	return false;
}

static void
path_push(struct dec *dc, size_t *saved, const char *fmt, const char *key, size_t idx)
{
	size_t n = strlen(dc->path), room = sizeof(dc->path) - n, kl;

	*saved = n;
	if (key == NULL) {
		snprintf(dc->path + n, room, fmt, idx);
		return;
	}
	/* Called for every key of every file: no printf here. */
	kl = strlen(key);
	if (n > 0 && room > 1) {
		dc->path[n++] = '.';
		room--;
	}
	if (kl >= room)
		kl = room - 1;
	memcpy(dc->path + n, key, kl);
	dc->path[n + kl] = '\0';
}

static void
path_pop(struct dec *dc, size_t saved)
{
	dc->path[saved] = '\0';
}

/* Walk a whole tree (also under unknown keys) for secrets; report each once. */
static void
scan_secrets(struct dec *dc, const struct ynode *n)
{
	size_t i, saved;

	if (n == NULL)
		return;
	if (n->type == Y_MAP) {
		for (i = 0; i < n->u.map.n; i++) {
			const struct ypair *p = &n->u.map.v[i];
			path_push(dc, &saved, NULL, p->key->u.str.s, 0);
			if (secret_key(p->key->u.str.s))
				diag_err(dc->d, p->key->at, "%s: looks like a secret; git holds "
				    "public material only (private keys stay on the node or device)",
				    dc->path);
			else
				scan_secrets(dc, p->val);
			path_pop(dc, saved);
		}
	} else if (n->type == Y_SEQ) {
		for (i = 0; i < n->u.seq.n; i++) {
			path_push(dc, &saved, "[%zu]", NULL, i);
			scan_secrets(dc, n->u.seq.v[i]);
			path_pop(dc, saved);
		}
	} else if (n->type == Y_SCALAR && secret_value(n->u.str.s, n->u.str.len)) {
		diag_err(dc->d, n->at, "%s: contains a private key; git holds public material "
		    "only (private keys stay on the node or device)", dc->path);
	}
}

static void
type_error(struct dec *dc, const struct ynode *n, const char *want)
{
	const char *got = ytree_type_name(n);

	if (strcmp(want, "a string") == 0 && n->type == Y_SCALAR)
		diag_err(dc->d, n->at, "%s: expected a string, got a %s (quote it: \"%s\")",
		    dc->path, got, n->u.str.s);
	else
		diag_err(dc->d, n->at, "%s: expected %s, got a %s", dc->path, want, got);
}

static bool
dec_str(struct dec *dc, const struct ynode *n, struct fstr *out, int64_t maxlen)
{
	size_t max = maxlen > 0 ? (size_t)maxlen : 256;

	out->at = n->at;
	if (n->type != Y_SCALAR || ytree_implicit(n) != YI_STR) {
		type_error(dc, n, "a string");
		return false;
	}
	if (n->u.str.len > max) {
		diag_err(dc->d, n->at, "%s: longer than %zu characters", dc->path, max);
		return false;
	}
	if (strlen(n->u.str.s) != n->u.str.len) {
		diag_err(dc->d, n->at, "%s: contains a NUL character", dc->path);
		return false;
	}
	out->v = arena_strndup(dc->arena, n->u.str.s, n->u.str.len);
	return out->v != NULL;
}

static bool
plain_decimal(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '\0' || (s[0] == '0' && s[1] != '\0'))
		return false;
	for (; *s != '\0'; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

static void
dec_int(struct dec *dc, const struct ynode *n, struct fint *out, int64_t min, int64_t max)
{
	long long v;
	char *end;

	out->at = n->at;
	if (n->type != Y_SCALAR || ytree_implicit(n) != YI_INT) {
		type_error(dc, n, "an integer");
		return;
	}
	if (!plain_decimal(n->u.str.s)) {
		diag_err(dc->d, n->at, "%s: write '%s' as a plain decimal number", dc->path,
		    n->u.str.s);
		return;
	}
	errno = 0;
	v = strtoll(n->u.str.s, &end, 10);
	if (errno != 0 || v < min || v > max) {
		diag_err(dc->d, n->at, "%s: %s is out of range (%lld-%lld)", dc->path,
		    n->u.str.s, (long long)min, (long long)max);
		return;
	}
	out->v = v;
	out->set = true;
}

static void
dec_bool(struct dec *dc, const struct ynode *n, struct fbool *out)
{
	const char *s = n->u.str.s;

	out->at = n->at;
	if (n->type != Y_SCALAR || ytree_implicit(n) != YI_BOOL) {
		type_error(dc, n, "true or false");
		return;
	}
	out->v = strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0 ||
	    strcasecmp(s, "on") == 0;
	out->set = true;
}

static void
dec_hval(struct dec *dc, const struct ynode *n, struct awg_h *out)
{
	unsigned long long lo, hi;
	const char *s = n->u.str.s, *dash;
	char *end;

	out->at = n->at;
	if (n->type != Y_SCALAR) {
		type_error(dc, n, "an integer or a range \"lo-hi\"");
		return;
	}
	if (ytree_implicit(n) == YI_INT && plain_decimal(s) && s[0] != '-') {
		errno = 0;
		lo = strtoull(s, &end, 10);
		if (errno != 0 || lo > UINT32_MAX) {
			diag_err(dc->d, n->at, "%s: %s is out of range (0-4294967295)", dc->path, s);
			return;
		}
		out->lo = out->hi = (uint32_t)lo;
		out->set = true;
		return;
	}
	if (ytree_implicit(n) == YI_STR && (dash = strchr(s, '-')) != NULL && dash != s &&
	    isdigit((unsigned char)s[0]) && isdigit((unsigned char)dash[1])) {
		errno = 0;
		lo = strtoull(s, &end, 10);
		if (end == dash && errno == 0) {
			hi = strtoull(dash + 1, &end, 10);
			if (*end == '\0' && errno == 0) {
				if (lo > UINT32_MAX || hi > UINT32_MAX) {
					diag_err(dc->d, n->at, "%s: range '%s' is out of range "
					    "(0-4294967295)", dc->path, s);
					return;
				}
				if (lo > hi) {
					diag_err(dc->d, n->at, "%s: range '%s' is backwards", dc->path, s);
					return;
				}
				out->lo = (uint32_t)lo;
				out->hi = (uint32_t)hi;
				out->set = true;
				return;
			}
		}
	}
	diag_err(dc->d, n->at, "%s: expected an integer or a range \"lo-hi\", got '%s'",
	    dc->path, s);
}

static void dec_map(struct dec *, const struct kind *, void *, const struct ynode *);

static void
dec_strlist(struct dec *dc, const struct ynode *n, struct flist *out, int64_t maxlen)
{
	struct fstr *v;
	size_t i, saved;

	out->at = n->at;
	if (n->type != Y_SEQ) {
		type_error(dc, n, "a list");
		return;
	}
	out->set = true;
	if (n->u.seq.n == 0)
		return;
	if ((v = arena_calloc(dc->arena, n->u.seq.n, sizeof(*v))) == NULL)
		return;
	for (i = 0; i < n->u.seq.n; i++) {
		path_push(dc, &saved, "[%zu]", NULL, i);
		if (dec_str(dc, n->u.seq.v[i], &v[out->n], maxlen))
			out->n++;
		path_pop(dc, saved);
	}
	out->v = v;
}

static void
dec_objlist(struct dec *dc, const struct ynode *n, struct flist *out, const struct kind *k)
{
	char *v;
	size_t i, saved;

	out->at = n->at;
	if (n->type != Y_SEQ) {
		type_error(dc, n, "a list");
		return;
	}
	out->set = true;
	if (n->u.seq.n == 0)
		return;
	if ((v = arena_calloc(dc->arena, n->u.seq.n, k->size)) == NULL)
		return;
	for (i = 0; i < n->u.seq.n; i++) {
		path_push(dc, &saved, "[%zu]", NULL, i);
		dec_map(dc, k, v + out->n * k->size, n->u.seq.v[i]);
		out->n++;
		path_pop(dc, saved);
	}
	out->v = v;
}

static const struct field *
find_field(const struct kind *k, const char *key, size_t len)
{
	const struct field *fd;

	for (fd = k->fields; fd->key != NULL; fd++)
		if (strlen(fd->key) == len && memcmp(fd->key, key, len) == 0)
			return fd;
	return NULL;
}

static void
unknown_key(struct dec *dc, const struct kind *k, const struct ypair *p)
{
	const struct field *fd, *best = NULL;
	size_t dist, bestd = 3;

	if (secret_key(p->key->u.str.s))
		return;		/* scan_secrets() reports it */
	for (fd = k->fields; fd->key != NULL; fd++) {
		dist = levenshtein(p->key->u.str.s, fd->key);
		if (dist < bestd) {
			bestd = dist;
			best = fd;
		}
	}
	if (best != NULL)
		diag_err(dc->d, p->key->at, "%s%sunknown key '%s' (did you mean '%s'?)",
		    dc->path, dc->path[0] ? ": " : "", p->key->u.str.s, best->key);
	else
		diag_err(dc->d, p->key->at, "%s%sunknown key '%s'", dc->path,
		    dc->path[0] ? ": " : "", p->key->u.str.s);
}

static void
dec_map(struct dec *dc, const struct kind *k, void *base, const struct ynode *m)
{
	struct fobj *hdr = base;
	const struct field *fd;
	bool seen[32] = { false };
	size_t i, saved;

	hdr->at = m->at;
	if (m->type != Y_MAP) {
		if (dc->path[0])
			type_error(dc, m, "a mapping");
		else
			diag_err(dc->d, m->at, "expected a mapping of keys (a %s), got a %s",
			    k->what, ytree_type_name(m));
		return;
	}
	hdr->set = true;
	for (i = 0; i < m->u.map.n; i++) {
		const struct ypair *p = &m->u.map.v[i];
		void *dst;

		if ((fd = find_field(k, p->key->u.str.s, p->key->u.str.len)) == NULL) {
			unknown_key(dc, k, p);
			continue;
		}
		seen[fd - k->fields] = true;
		dst = (char *)base + fd->off;
		if (p->val->reported)
			continue;
		path_push(dc, &saved, NULL, fd->key, 0);
		if (p->val->type == Y_NULL && fd->type != FT_OBJ) {
			/* "key:" with nothing after it. */
			if (fd->flags & F_REQUIRED)
				diag_err(dc->d, p->val->at, "%s: a value is required", dc->path);
			else
				diag_err(dc->d, p->val->at, "%s: empty value (remove the key to use "
				    "the default)", dc->path);
			path_pop(dc, saved);
			continue;
		}
		switch (fd->type) {
		case FT_STR:
			dec_str(dc, p->val, dst, fd->max);
			break;
		case FT_DUR:
			/* A duration is a string like "30d", or the bare number 0. */
			if (p->val->type == Y_SCALAR && !p->val->quoted &&
			    strcmp(p->val->u.str.s, "0") == 0) {
				((struct fstr *)dst)->v = "0";
				((struct fstr *)dst)->at = p->val->at;
			} else {
				dec_str(dc, p->val, dst, fd->max);
			}
			break;
		case FT_INT:
			dec_int(dc, p->val, dst, fd->min, fd->max);
			break;
		case FT_BOOL:
			dec_bool(dc, p->val, dst);
			break;
		case FT_HVAL:
			dec_hval(dc, p->val, dst);
			break;
		case FT_STRLIST:
			dec_strlist(dc, p->val, dst, fd->max);
			break;
		case FT_OBJ:
			if (p->val->type == Y_NULL) {
				((struct fobj *)dst)->at = p->val->at;
				break;	/* "network:" alone: all defaults */
			}
			dec_map(dc, fd->sub, dst, p->val);
			break;
		case FT_OBJLIST:
			dec_objlist(dc, p->val, dst, fd->sub);
			break;
		}
		path_pop(dc, saved);
	}
	for (fd = k->fields; fd->key != NULL; fd++)
		if ((fd->flags & F_REQUIRED) && !seen[fd - k->fields])
			diag_err(dc->d, m->at, "%s%smissing required key '%s'", dc->path,
			    dc->path[0] ? ": " : "", fd->key);
}

/* "nodes/ams-1.yaml" -> "ams-1"; NULL if the extension is not .yaml/.yml. */
static char *
record_name(struct arena *a, const char *rel)
{
	const char *base = strchr(rel, '/') + 1, *dot = strrchr(base, '.');

	if (dot == NULL || (strcmp(dot, ".yaml") != 0 && strcmp(dot, ".yml") != 0))
		return NULL;
	return arena_strndup(a, base, (size_t)(dot - base));
}

/* REC_NONE: no record (yet); a file taken from the previous fleet is never REC_NONE. */
enum { REC_NONE, REC_FLEET, REC_NODE, REC_RELAY, REC_USER };

/* What one file decoded to; slots are indexed by file so records keep path order. */
struct slot {
	int	 kind;
	bool	 noisy;		/* the file had a diagnostic: decode it again next time */
	void	*rec;
};

/*
 * Files are parsed on up to LOAD_THREADS threads. Each worker owns its arenas and its
 * diagnostics; nothing is shared but the atomic index of the next file and the slot
 * array, where each worker writes only the slots of the files it took.
 */
#define LOAD_THREADS	2
#define LOAD_MIN_FILES	64	/* below this, threads cost more than they save */

struct worker {
	pthread_t		 th;
	bool			 started;
	struct fleet		*f;
	struct source		*src;
	struct source_reader	*rd;
	struct diag		 d;
	struct arena		*arena, *scratch;
	struct slot		*slots;
	const uint32_t		*files;
	atomic_size_t		*next;
	int			 rc;
};

/* A loader thread's arena, shared by every fleet that holds one of its records. */
struct fleet_arena {
	struct arena	*a;
	unsigned	 refs;		/* atomic */
};

/* What one file of the source decoded to (struct fleet's `files`). */
struct fleet_file {
	const char	*rel;		/* in the fleet's own arena */
	unsigned char	 id[20];	/* blob id */
	uint32_t	 dfile;		/* diag file index */
	bool		 reusable;	/* a regular file that decoded with no diagnostic */
	struct slot	 slot;
};

static int
load_one(struct worker *w, size_t i)
{
	const struct source_entry *e = source_entry(w->src, i);
	struct dec dc = { w->arena, &w->d, "" };
	struct source_buf buf;
	struct ynode *root = NULL;
	struct loc at = loc_make(w->files[i], 0, 0);
	struct diag *d = &w->d;
	char *name = NULL;
	int rc;

	if (w->slots[i].kind != REC_NONE)
		return 0;		/* taken from the previous fleet */
	if (strcmp(e->rel, "fleet.yaml") != 0) {
		if (e->kind == SRC_DIR) {
			diag_warn(d, at, "folder ignored: records are read only from files directly "
			    "inside nodes/, relays/ and users/");
			return 0;
		}
		if ((name = record_name(w->arena, e->rel)) == NULL) {
			diag_warn(d, at, "file ignored: records must be .yaml files");
			return 0;
		}
	}
	if (e->kind != SRC_FILE) {
		diag_err(d, at, "not a regular file (symlinks and submodules are not read)");
		return 0;
	}
	rc = source_read(w->rd, i, &buf);
	if (rc == ERR_TOOBIG) {
		diag_err(d, at, "file is %zu bytes; the limit is %d MiB", buf.len,
		    YTREE_MAX_FILE / (1024 * 1024));
		return 0;
	}
	if (rc != 0)
		return rc;
	arena_reset(w->scratch);
	rc = ytree_parse(&root, w->scratch, d, w->files[i], buf.data, buf.len);
	source_buf_release(&buf);
	if (rc == ERR_NOMEM)
		return rc;
	if (rc != 0)
		return 0;		/* reported; nothing to decode */
	if (root == NULL) {
		diag_err(d, at, "the file is empty");
		return 0;
	}
	scan_secrets(&dc, root);
	if (name == NULL) {
		struct fleet *f = w->f;
		f->have_fleet_yaml = true;
		f->at = at;
		dec_map(&dc, &fleet_kind, &f->root, root);
		w->slots[i].kind = REC_FLEET;
	} else if (strncmp(e->rel, "nodes/", 6) == 0) {
		struct node *n = arena_alloc(w->arena, sizeof(*n));
		if (n == NULL)
			return ERR_NOMEM;
		n->name = name;
		n->at = at;
		dec_map(&dc, &node_kind, &n->hdr, root);
		w->slots[i].kind = REC_NODE;
		w->slots[i].rec = n;
	} else if (strncmp(e->rel, "relays/", 7) == 0) {
		struct relay *r = arena_alloc(w->arena, sizeof(*r));
		if (r == NULL)
			return ERR_NOMEM;
		r->name = name;
		r->at = at;
		dec_map(&dc, &relay_kind, &r->hdr, root);
		w->slots[i].kind = REC_RELAY;
		w->slots[i].rec = r;
	} else {
		struct user *u = arena_alloc(w->arena, sizeof(*u));
		size_t j;
		if (u == NULL)
			return ERR_NOMEM;
		u->name = name;
		u->at = at;
		dec_map(&dc, &user_kind, &u->hdr, root);
		for (j = 0; j < u->devices.n; j++)
			((struct device *)u->devices.v)[j].user = u;
		w->slots[i].kind = REC_USER;
		w->slots[i].rec = u;
	}
	return 0;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	size_t i, n = source_count(w->src);

	while (w->rc == 0 && (i = atomic_fetch_add(w->next, 1)) < n) {
		size_t before = w->d.nerr + w->d.nwarn;

		/* A hostile file cannot flood memory with diagnostics. */
		diag_limit(&w->d, DIAG_MAX_FILE);
		w->rc = load_one(w, i);
		diag_limit_end(&w->d, w->files[i]);
		w->slots[i].noisy = w->d.nerr + w->d.nwarn != before;
	}
	return NULL;
}

static int
push_ptr(void ***v, size_t *n, size_t *cap, void *p)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		void **nv = realloc(*v, ncap * sizeof(*nv));
		if (nv == NULL)
			return ERR_NOMEM;
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = p;
	return 0;
}

static int
collect(struct fleet *f, const struct slot *slots, size_t n)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < n && rc == 0; i++) {
		switch (slots[i].kind) {
		case REC_NODE:
			rc = push_ptr((void ***)&f->nodes, &f->nnodes, &f->cap_nodes, slots[i].rec);
			break;
		case REC_RELAY:
			rc = push_ptr((void ***)&f->relays, &f->nrelays, &f->cap_relays,
			    slots[i].rec);
			break;
		case REC_USER:
			rc = push_ptr((void ***)&f->users, &f->nusers, &f->cap_users, slots[i].rec);
			if (rc == 0)
				f->ndevices += ((struct user *)slots[i].rec)->devices.n;
			break;
		}
	}
	return rc;
}

static int
cmp_node(const void *a, const void *b)
{
	return strcmp((*(struct node *const *)a)->name, (*(struct node *const *)b)->name);
}

static int
cmp_relay(const void *a, const void *b)
{
	return strcmp((*(struct relay *const *)a)->name, (*(struct relay *const *)b)->name);
}

static int
cmp_user(const void *a, const void *b)
{
	return strcmp((*(struct user *const *)a)->name, (*(struct user *const *)b)->name);
}

/* Whether v (n pointers) is in cmp's order already: n compares instead of n log n. */
static bool
sorted(const void *const *v, size_t n, int (*cmp)(const void *, const void *))
{
	size_t i;

	for (i = 1; i < n; i++)
		if (cmp(&v[i - 1], &v[i]) > 0)
			return false;
	return true;
}

static int
add_arena(struct fleet *f, struct fleet_arena *fa)
{
	if (push_ptr((void ***)&f->arenas, &f->narenas, &f->cap_arenas, fa) != 0)
		return ERR_NOMEM;
	__atomic_add_fetch(&fa->refs, 1, __ATOMIC_RELAXED);
	return 0;
}

static void
arena_unref(struct fleet_arena *fa)
{
	if (__atomic_sub_fetch(&fa->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		arena_free(fa->a);
		free(fa);
	}
}

/*
 * Match src's entries with prev's files (both sorted by path): an entry whose blob is
 * unchanged and decoded cleanly gets prev's record in its slot; every entry that was in
 * prev keeps its diagnostics file index, so the reused records' places stay right. d
 * then holds prev's file names at prev's indexes, new ones after.
 */
static int
take_from(struct fleet *f, const struct fleet *prev, struct source *src, struct diag *d,
    struct slot *slots, uint32_t *files)
{
	char display[4096];
	size_t i, j = 0, n = source_count(src);
	uint32_t k;
	int file;

	for (k = 0; k < prev->ndnames; k++)
		if (diag_file(d, prev->dnames[k]) != (int)k)
			return ERR_NOMEM;
	for (i = 0; i < n; i++) {
		const struct source_entry *e = source_entry(src, i);
		const unsigned char *id = source_blob_id(src, i);
		int c = 1;

		while (j < prev->nfiles && (c = strcmp(prev->files[j].rel, e->rel)) < 0)
			j++;
		if (c == 0) {
			const struct fleet_file *pf = &prev->files[j];

			files[i] = pf->dfile;
			if (pf->reusable && e->kind == SRC_FILE && id != NULL &&
			    memcmp(pf->id, id, sizeof(pf->id)) == 0) {
				slots[i] = pf->slot;
				f->reused++;
				if (pf->slot.kind == REC_FLEET) {
					/* the decoded fleet.yaml: everything from its flag up to the
					 * effective values validation fills in */
					memcpy(&f->have_fleet_yaml, &prev->have_fleet_yaml,
					    offsetof(struct fleet, preset) -
					    offsetof(struct fleet, have_fleet_yaml));
				}
			}
			continue;
		}
		if ((file = diag_file(d, source_display(src, i, display, sizeof(display)))) < 0)
			return ERR_NOMEM;
		files[i] = (uint32_t)file;
	}
	for (i = 0; i < prev->narenas; i++)
		if (add_arena(f, prev->arenas[i]) != 0)
			return ERR_NOMEM;
	f->uprev = fleet_uindex_ref(prev->uidx);
	return 0;
}

/* Remember, for the next load, what each file decoded to and the diagnostics' names. */
static int
keep_files(struct fleet *f, struct source *src, const struct diag *d, const struct slot *slots,
    const uint32_t *files)
{
	size_t i, n = source_count(src);
	uint32_t k;

	if ((f->files = arena_calloc(f->arena, n + 1, sizeof(*f->files))) == NULL ||
	    (f->dnames = arena_calloc(f->arena, d->nfiles + 1, sizeof(char *))) == NULL)
		return ERR_NOMEM;
	for (k = 0; k < d->nfiles; k++)
		if ((f->dnames[k] = arena_strdup(f->arena, d->files[k])) == NULL)
			return ERR_NOMEM;
	f->ndnames = d->nfiles;
	for (i = 0; i < n; i++) {
		const struct source_entry *e = source_entry(src, i);
		const unsigned char *id = source_blob_id(src, i);
		struct fleet_file *ff = &f->files[i];

		if ((ff->rel = arena_strdup(f->arena, e->rel)) == NULL)
			return ERR_NOMEM;
		if (id != NULL)
			memcpy(ff->id, id, sizeof(ff->id));
		ff->dfile = files[i];
		ff->slot = slots[i];
		ff->reusable = id != NULL && e->kind == SRC_FILE && slots[i].kind != REC_NONE &&
		    !slots[i].noisy;
	}
	f->nfiles = n;
	return 0;
}

static int
load(struct fleet **out, struct source *src, struct diag *d, const struct fleet *prev)
{
	struct fleet *f;
	struct worker w[LOAD_THREADS];
	struct slot *slots = NULL;
	uint32_t *files = NULL;
	atomic_size_t next = 0;
	char display[4096];
	size_t i, n = source_count(src), nw, todo;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int rc = 0, file;

	*out = NULL;
	memset(w, 0, sizeof(w));
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return ERR_NOMEM;
	f->refs = 1;
	if ((f->arena = arena_new()) == NULL || (slots = calloc(n + 1, sizeof(*slots))) == NULL ||
	    (files = calloc(n + 1, sizeof(*files))) == NULL) {
		rc = ERR_NOMEM;
		goto done;
	}
	/* Register every file first so workers share the indexes without locking. */
	if (prev != NULL) {
		f->generation = prev->generation + 1;
		if ((rc = take_from(f, prev, src, d, slots, files)) != 0)
			goto done;
	} else {
		for (i = 0; i < n; i++) {
			if ((file = diag_file(d, source_display(src, i, display,
			    sizeof(display)))) < 0) {
				rc = ERR_NOMEM;
				goto done;
			}
			files[i] = (uint32_t)file;
		}
	}
	todo = n - f->reused;
	nw = todo >= LOAD_MIN_FILES && cpus > 1 ? LOAD_THREADS : 1;
	for (i = 0; i < nw; i++) {
		w[i].f = f;
		w[i].src = src;
		w[i].slots = slots;
		w[i].files = files;
		w[i].next = &next;
		if ((w[i].arena = arena_new()) == NULL || (w[i].scratch = arena_new()) == NULL) {
			rc = ERR_NOMEM;
			goto done;
		}
		if ((rc = source_reader_open(&w[i].rd, src)) != 0)
			goto done;
	}
	/* Worker 0 is this thread; a worker whose thread cannot start runs here too. */
	for (i = 1; i < nw; i++)
		w[i].started = pthread_create(&w[i].th, NULL, worker_main, &w[i]) == 0;
	worker_main(&w[0]);
	for (i = 1; i < nw; i++) {
		if (w[i].started)
			pthread_join(w[i].th, NULL);
		else
			worker_main(&w[i]);
	}
	for (i = 0; i < nw; i++) {
		if (w[i].rc != 0 && rc == 0)
			rc = w[i].rc;
		if (diag_merge(d, &w[i].d) != 0 && rc == 0)
			rc = ERR_NOMEM;
	}
	if (rc == 0)
		rc = collect(f, slots, n);
	if (rc == 0) {
		/* Sorted by name: lookups are binary searches, and every walk is in name order. */
		/* qsort(NULL, 0, ...) is undefined: an empty list may have no array. */
		if (f->nnodes > 1)
			qsort(f->nodes, f->nnodes, sizeof(*f->nodes), cmp_node);
		if (f->nrelays > 1)
			qsort(f->relays, f->nrelays, sizeof(*f->relays), cmp_relay);
		/* path order is name order unless a name continues with a byte below '.' */
		if (f->nusers > 1 && !sorted((const void *const *)f->users, f->nusers, cmp_user))
			qsort(f->users, f->nusers, sizeof(*f->users), cmp_user);
	}
	if (rc == 0 && source_blob_id(src, 0) != NULL)
		rc = keep_files(f, src, d, slots, files);
done:
	for (i = 0; i < LOAD_THREADS; i++) {
		struct fleet_arena *fa;

		source_reader_free(w[i].rd);
		arena_free(w[i].scratch);
		diag_free(&w[i].d);
		if (w[i].arena == NULL)
			continue;
		/* The decoded records live on in the fleet; an arena nothing used goes now. */
		if (arena_size(w[i].arena) == 0) {
			arena_free(w[i].arena);
			continue;
		}
		if ((fa = calloc(1, sizeof(*fa))) == NULL || (fa->a = w[i].arena, add_arena(f, fa)) != 0) {
			arena_free(w[i].arena);
			free(fa);
			rc = ERR_NOMEM;
		}
	}
	free(slots);
	free(files);
	if (rc != 0) {
		if (rc == ERR_NOMEM)
			err_set("out of memory loading the fleet");
		fleet_free(f);
		return rc;
	}
	*out = f;
	return 0;
}

int
fleet_load(struct fleet **out, struct source *src, struct diag *d)
{
	return load(out, src, d, NULL);
}

int
fleet_load_reuse(struct fleet **out, struct source *src, struct diag *d,
    const struct fleet *prev)
{
	if (prev == NULL || prev->nfiles == 0 || prev->generation + 1 >= FLEET_REUSE_MAX ||
	    source_blob_id(src, 0) == NULL || d->nfiles != 0)
		prev = NULL;
	return load(out, src, d, prev);
}

struct fleet *
fleet_ref(struct fleet *f)
{
	__atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
	return f;
}

void
fleet_free(struct fleet *f)
{
	if (f == NULL || __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	free(f->nodes);
	free(f->relays);
	free(f->users);
	fleet_uindex_unref(f->uidx);
	fleet_uindex_unref(f->uprev);
	while (f->narenas > 0)
		arena_unref(f->arenas[--f->narenas]);
	free(f->arenas);
	arena_free(f->arena);
	free(f);
}

int
fleet_parse_duration(const char *s, int64_t *out)
{
	unsigned long long v;
	char *end;
	int64_t mult;

	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	if (!isdigit((unsigned char)*s))
		return ERR_INVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end[0] == '\0' || end[1] != '\0')
		return ERR_INVAL;
	switch (*end) {
	case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	default: return ERR_INVAL;
	}
	if (v > (unsigned long long)(INT64_MAX / mult) / 1000)
		return ERR_INVAL;
	*out = (int64_t)v * mult;
	return 0;
}

struct node *
fleet_find_node(const struct fleet *f, const char *name)
{
	size_t lo = 0, hi = f->nnodes;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, f->nodes[mid]->name);

		if (c == 0)
			return f->nodes[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

size_t
fleet_user_index(const struct fleet *f, const char *name)
{
	size_t lo = 0, hi = f->nusers;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, f->users[mid]->name);

		if (c == 0)
			return mid;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return SIZE_MAX;
}

struct user *
fleet_find_user(const struct fleet *f, const char *name)
{
	size_t i = fleet_user_index(f, name);

	return i == SIZE_MAX ? NULL : f->users[i];
}
