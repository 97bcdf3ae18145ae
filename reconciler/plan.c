/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-node differences between two desired states (plan.h) and their three renderings
 * (docs/DESIGN.md §8). Only nodes whose content hash differs are decoded; the shared client
 * blocks are compared once per (base, head) pair, so a device added to a fleet where every
 * entry node admits everyone costs one block diff, not one per node.
 */
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pharos/v1/node.pb-c.h"
#include "desired.h"
#include "err.h"
#include "fleet.h"
#include "plan.h"

#define PLAN_MAX_ITEMS	200	/* items kept per node and per client diff; the rest counted */
#define PLAN_MAX_WARN	10	/* warnings of one kind printed one by one; more are grouped */
#define ELLIPSIS	"\xe2\x80\xa6"

struct item {
	char		 op;		/* '+', '-', '~' */
	const char	*kind;		/* "peer", "vless", "setting", "link", "route" */
	char		*what, *detail;
	char		*key;		/* peers: the whole base64 key */
};

struct items {
	struct item	*v;
	size_t		 n, cap, omitted;
};

/* The difference of one (base, head) pair of client blocks, shared by every node with it. */
struct pair {
	const uint8_t	*b, *h;
	size_t		 bl, hl;
	const char	*first;		/* the first node (by name) it is printed for */
	struct items	 it;
	size_t		 padd, pdel, pchg, uadd, udel;
};

struct pnode {
	const char	*name;
	char		 status;	/* '+' added, '-' removed, '~' changed, '=' unchanged */
	unsigned	 roles;
	bool		 idle;
	uint32_t	 bpeers, hpeers, busers, husers;
	bool		 blinks, hlinks;	/* an entry's traffic exits here (exit_links()) */
	struct pair	*clients;
	struct items	 own;
};

struct nref {
	uint8_t		 key[32];
	const char	*user, *dev;
};

struct names {
	const struct fleet	*f;
	struct nref		*v;
	size_t			 n;
	bool			 built;
};

enum { W_REMOVED, W_LOSES, W_EXIT, W_KINDS };

struct warning {
	int		 kind;
	const char	*node;
	char		*msg;
};

struct plan {
	struct pnode	*nodes;
	size_t		 n, changed;
	struct warning	*warn;
	size_t		 nwarn, capwarn;
	char		*base_rev, *head_rev;
	struct pair	**pairs;
	size_t		 npairs, cappairs;
	struct names	 bn, hn;
	bool		 oom;
};

/* ---- small helpers ---- */

static char *
xprintf(struct plan *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *
xprintf(struct plan *p, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0) {
		s = NULL;
		p->oom = true;
	}
	va_end(ap);
	return s;
}

/* A list of strings joined by sep; "(none)" when empty. */
static char *
join(struct plan *p, char *const *v, size_t n, const char *sep)
{
	size_t len = 1, i, sl = strlen(sep);
	char *s, *q;

	if (n == 0)
		return xprintf(p, "(none)");
	for (i = 0; i < n; i++)
		len += strlen(v[i]) + sl;
	if ((s = q = malloc(len)) == NULL) {
		p->oom = true;
		return NULL;
	}
	for (i = 0; i < n; i++) {
		size_t l = strlen(v[i]);
		if (i > 0) {
			memcpy(q, sep, sl);
			q += sl;
		}
		memcpy(q, v[i], l);
		q += l;
	}
	*q = '\0';
	return s;
}

static void
b64(const uint8_t *key, size_t len, char out[64])
{
	if (len == 0 || len > 40) {
		snprintf(out, 64, "(none)");
		return;
	}
	sodium_bin2base64(out, 64, key, len, sodium_base64_VARIANT_ORIGINAL);
}

/* A key as people compare them: the first 8 characters of its base64 and an ellipsis. */
static void
fingerprint(const uint8_t *key, size_t len, char out[16])
{
	char full[64];

	b64(key, len, full);
	if (strlen(full) > 8)
		memcpy(full + 8, ELLIPSIS, sizeof(ELLIPSIS));
	memcpy(out, full, strlen(full) + 1 < 16 ? strlen(full) + 1 : 16);
	out[15] = '\0';
}

static void
add(struct plan *p, struct items *it, char op, const char *kind, char *what, char *detail,
    char *key)
{
	if (it->n >= PLAN_MAX_ITEMS || what == NULL) {
		it->omitted += what != NULL;
		goto drop;
	}
	if (it->n == it->cap) {
		size_t cap = it->cap ? it->cap * 2 : 16;
		struct item *v = reallocarray(it->v, cap, sizeof(*v));
		if (v == NULL) {
			p->oom = true;
			goto drop;
		}
		it->v = v;
		it->cap = cap;
	}
	it->v[it->n++] = (struct item){ op, kind, what, detail, key };
	return;
drop:
	free(what);
	free(detail);
	free(key);
}

static void
items_free(struct items *it)
{
	size_t i;

	for (i = 0; i < it->n; i++) {
		free(it->v[i].what);
		free(it->v[i].detail);
		free(it->v[i].key);
	}
	free(it->v);
	memset(it, 0, sizeof(*it));
}

static void
warn(struct plan *p, int kind, const char *node, char *msg)
{
	if (msg == NULL)
		return;
	if (p->nwarn == p->capwarn) {
		size_t cap = p->capwarn ? p->capwarn * 2 : 8;
		struct warning *v = reallocarray(p->warn, cap, sizeof(*v));
		if (v == NULL) {
			free(msg);
			p->oom = true;
			return;
		}
		p->warn = v;
		p->capwarn = cap;
	}
	p->warn[p->nwarn++] = (struct warning){ kind, node, msg };
}

static const char *
roles_text(unsigned roles)
{
	return (roles & ROLE_ENTRY) && (roles & ROLE_EXIT) ? "entry, exit" :
	    (roles & ROLE_ENTRY) ? "entry" : (roles & ROLE_EXIT) ? "exit" : "no role";
}

/* ---- device names ---- */

static int
nref_cmp(const void *x, const void *y)
{
	return memcmp(((const struct nref *)x)->key, ((const struct nref *)y)->key, 32);
}

static void
names_build(struct plan *p, struct names *nm)
{
	const struct fleet *f = nm->f;
	size_t i, j, n = 0, len;

	nm->built = true;
	if (f == NULL)
		return;
	for (i = 0; i < f->nusers; i++)
		n += f->users[i]->devices.n;
	if (n == 0)
		return;
	if ((nm->v = calloc(n, sizeof(*nm->v))) == NULL) {
		p->oom = true;
		return;
	}
	for (i = 0; i < f->nusers; i++) {
		const struct device *dv = f->users[i]->devices.v;
		for (j = 0; j < f->users[i]->devices.n; j++) {
			struct nref *r = &nm->v[nm->n];
			const char *k = dv[j].public_key.v;
			if (k == NULL || sodium_base642bin(r->key, 32, k, strlen(k), NULL, &len, NULL,
			    sodium_base64_VARIANT_ORIGINAL) != 0 || len != 32)
				continue;
			r->user = f->users[i]->name;
			r->dev = dv[j].name.v != NULL ? dv[j].name.v : "?";
			nm->n++;
		}
	}
	qsort(nm->v, nm->n, sizeof(*nm->v), nref_cmp);
}

/* "user/device" for a key, from head's fleet first, else base's; NULL if neither knows it. */
static const struct nref *
name_of(struct plan *p, const uint8_t *key, size_t len)
{
	struct names *order[2] = { &p->hn, &p->bn };
	struct nref want, *r;
	int i;

	if (len != 32)
		return NULL;
	memcpy(want.key, key, 32);
	for (i = 0; i < 2; i++) {
		if (!order[i]->built)
			names_build(p, order[i]);
		if (order[i]->n > 0 && (r = bsearch(&want, order[i]->v, order[i]->n,
		    sizeof(*r), nref_cmp)) != NULL)
			return r;
	}
	return NULL;
}

/* ---- client blocks ---- */

static int
peer_cmp(const void *x, const void *y)
{
	const Pharos__V1__Peer *a = *(Pharos__V1__Peer *const *)x;
	const Pharos__V1__Peer *b = *(Pharos__V1__Peer *const *)y;
	size_t n = a->public_key.len < b->public_key.len ? a->public_key.len : b->public_key.len;
	int r = n > 0 ? memcmp(a->public_key.data, b->public_key.data, n) : 0;

	if (r != 0)
		return r;
	return a->public_key.len < b->public_key.len ? -1 : a->public_key.len > b->public_key.len;
}

static int
vless_cmp(const void *x, const void *y)
{
	return strcmp((*(Pharos__V1__VlessUser *const *)x)->email,
	    (*(Pharos__V1__VlessUser *const *)y)->email);
}

static Pharos__V1__NodeConfig *
unpack(const uint8_t *b, size_t len)
{
	static const uint8_t none[1];

	return pharos__v1__node_config__unpack(NULL, len, len > 0 ? b : none);
}

/* A node's own part (its config without peers and VLESS users), decoded. */
static Pharos__V1__NodeConfig *
unpack_own(const struct desired_node *dn)
{
	Pharos__V1__NodeConfig *c;
	uint8_t *buf;
	size_t len;

	if (desired_own(dn, &buf, &len) != 0)
		return NULL;
	c = unpack(buf, len);
	free(buf);
	return c;
}

static bool
strv_eq(char *const *a, size_t na, char *const *b, size_t nb)
{
	size_t i;

	if (na != nb)
		return false;
	for (i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

static char *
peer_what(struct plan *p, const Pharos__V1__Peer *pe)
{
	const struct nref *r = name_of(p, pe->public_key.data, pe->public_key.len);
	char fp[16];

	fingerprint(pe->public_key.data, pe->public_key.len, fp);
	return r != NULL ? xprintf(p, "%s %s/%s", fp, r->user, r->dev) : xprintf(p, "%s", fp);
}

static char *
peer_key(struct plan *p, const Pharos__V1__Peer *pe)
{
	char full[64];

	b64(pe->public_key.data, pe->public_key.len, full);
	return xprintf(p, "%s", full);
}

/* "alice/laptop" of "alice/laptop@fleet". */
static char *
vless_what(struct plan *p, const char *email)
{
	const char *at = strrchr(email, '@');

	return xprintf(p, "%.*s", at != NULL ? (int)(at - email) : (int)strlen(email), email);
}

/* Past the cap an item is only counted: do not format it. */
#define ROOM(it)	((it)->n < PLAN_MAX_ITEMS || ((it)->omitted++, false))

static int
pair_diff(struct plan *p, struct pair *pr)
{
	Pharos__V1__NodeConfig *b = NULL, *h = NULL;
	Pharos__V1__Peer **bp = NULL, **hp = NULL;
	Pharos__V1__VlessUser **bu = NULL, **hu = NULL;
	size_t i = 0, j = 0;
	int rc = 0;

	if (pr->bl == pr->hl && (pr->bl == 0 || memcmp(pr->b, pr->h, pr->bl) == 0))
		return 0;
	if ((b = unpack(pr->b, pr->bl)) == NULL || (h = unpack(pr->h, pr->hl)) == NULL) {
		err_set("plan: a desired config does not decode");
		rc = ERR_INVAL;
		goto out;
	}
	/* Sorted already by desired.c; sorted again so any producer's order works. */
	if ((b->n_peers > 0 && (bp = calloc(b->n_peers, sizeof(*bp))) == NULL) ||
	    (h->n_peers > 0 && (hp = calloc(h->n_peers, sizeof(*hp))) == NULL) ||
	    (b->n_vless_users > 0 && (bu = calloc(b->n_vless_users, sizeof(*bu))) == NULL) ||
	    (h->n_vless_users > 0 && (hu = calloc(h->n_vless_users, sizeof(*hu))) == NULL)) {
		p->oom = true;
		rc = ERR_NOMEM;
		goto out;
	}
	if (b->n_peers > 0) {
		memcpy(bp, b->peers, b->n_peers * sizeof(*bp));
		qsort(bp, b->n_peers, sizeof(*bp), peer_cmp);
	}
	if (h->n_peers > 0) {
		memcpy(hp, h->peers, h->n_peers * sizeof(*hp));
		qsort(hp, h->n_peers, sizeof(*hp), peer_cmp);
	}
	while (i < b->n_peers || j < h->n_peers) {
		int c = i == b->n_peers ? 1 : j == h->n_peers ? -1 : peer_cmp(&bp[i], &hp[j]);
		if (c < 0) {
			pr->pdel++;
			if (ROOM(&pr->it))
				add(p, &pr->it, '-', "peer", peer_what(p, bp[i]),
				    join(p, bp[i]->allowed_ips, bp[i]->n_allowed_ips, " "),
				    peer_key(p, bp[i]));
			i++;
		} else if (c > 0) {
			pr->padd++;
			if (ROOM(&pr->it))
				add(p, &pr->it, '+', "peer", peer_what(p, hp[j]),
				    join(p, hp[j]->allowed_ips, hp[j]->n_allowed_ips, " "),
				    peer_key(p, hp[j]));
			j++;
		} else {
			const Pharos__V1__Peer *x = bp[i], *y = hp[j];
			if ((!strv_eq(x->allowed_ips, x->n_allowed_ips, y->allowed_ips,
			    y->n_allowed_ips) || strcmp(x->endpoint, y->endpoint) != 0 ||
			    x->persistent_keepalive != y->persistent_keepalive) &&
			    (pr->pchg++, ROOM(&pr->it))) {
				char *from = join(p, x->allowed_ips, x->n_allowed_ips, " ");
				char *to = join(p, y->allowed_ips, y->n_allowed_ips, " ");
				add(p, &pr->it, '~', "peer", peer_what(p, y), xprintf(p, "%s -> %s",
				    from ? from : "", to ? to : ""), peer_key(p, y));
				free(from);
				free(to);
			}
			i++;
			j++;
		}
	}
	if (b->n_vless_users > 0) {
		memcpy(bu, b->vless_users, b->n_vless_users * sizeof(*bu));
		qsort(bu, b->n_vless_users, sizeof(*bu), vless_cmp);
	}
	if (h->n_vless_users > 0) {
		memcpy(hu, h->vless_users, h->n_vless_users * sizeof(*hu));
		qsort(hu, h->n_vless_users, sizeof(*hu), vless_cmp);
	}
	for (i = j = 0; i < b->n_vless_users || j < h->n_vless_users;) {
		int c = i == b->n_vless_users ? 1 : j == h->n_vless_users ? -1 :
		    strcmp(bu[i]->email, hu[j]->email);
		if (c < 0) {
			pr->udel++;
			if (ROOM(&pr->it))
				add(p, &pr->it, '-', "vless", vless_what(p, bu[i]->email), NULL,
				    NULL);
			i++;
		} else if (c > 0) {
			pr->uadd++;
			if (ROOM(&pr->it))
				add(p, &pr->it, '+', "vless", vless_what(p, hu[j]->email), NULL,
				    NULL);
			j++;
		} else {
			if (strcmp(bu[i]->uuid, hu[j]->uuid) != 0 &&
			    (pr->udel++, pr->uadd++, ROOM(&pr->it))) {
				add(p, &pr->it, '~', "vless", vless_what(p, hu[j]->email),
				    xprintf(p, "new id %s", hu[j]->uuid), NULL);
			}
			i++;
			j++;
		}
	}
out:
	free(bp);
	free(hp);
	free(bu);
	free(hu);
	if (b != NULL)
		pharos__v1__node_config__free_unpacked(b, NULL);
	if (h != NULL)
		pharos__v1__node_config__free_unpacked(h, NULL);
	return rc;
}

static struct pair *
get_pair(struct plan *p, const struct desired_node *b, const struct desired_node *h, int *rc)
{
	const uint8_t *bb = b != NULL ? b->clients : NULL, *hb = h != NULL ? h->clients : NULL;
	size_t bl = b != NULL ? b->clients_len : 0, hl = h != NULL ? h->clients_len : 0, i;
	struct pair *pr;

	*rc = 0;
	for (i = 0; i < p->npairs; i++)
		if (p->pairs[i]->b == bb && p->pairs[i]->h == hb && p->pairs[i]->bl == bl &&
		    p->pairs[i]->hl == hl)
			return p->pairs[i];
	if (p->npairs == p->cappairs) {
		size_t cap = p->cappairs ? p->cappairs * 2 : 8;
		struct pair **v = reallocarray(p->pairs, cap, sizeof(*v));
		if (v == NULL) {
			*rc = ERR_NOMEM;
			return NULL;
		}
		p->pairs = v;
		p->cappairs = cap;
	}
	if ((pr = calloc(1, sizeof(*pr))) == NULL) {
		*rc = ERR_NOMEM;
		return NULL;
	}
	pr->b = bb;
	pr->h = hb;
	pr->bl = bl;
	pr->hl = hl;
	p->pairs[p->npairs++] = pr;
	*rc = pair_diff(p, pr);
	return pr;
}

/* ---- the node's own part ---- */

static void
set_u(struct plan *p, struct items *it, const char *name, uint32_t a, uint32_t b)
{
	if (a != b)
		add(p, it, '~', "setting", xprintf(p, "%s", name), xprintf(p, "%u -> %u", a, b),
		    NULL);
}

static void
set_s(struct plan *p, struct items *it, const char *name, const char *a, const char *b)
{
	if (strcmp(a, b) != 0)
		add(p, it, '~', "setting", xprintf(p, "%s", name), xprintf(p, "\"%s\" -> \"%s\"",
		    a, b), NULL);
}

static void
set_l(struct plan *p, struct items *it, const char *name, char *const *a, size_t na,
    char *const *b, size_t nb)
{
	char *x, *y;

	if (strv_eq(a, na, b, nb))
		return;
	x = join(p, a, na, ", ");
	y = join(p, b, nb, ", ");
	add(p, it, '~', "setting", xprintf(p, "%s", name), xprintf(p, "[%s] -> [%s]",
	    x ? x : "", y ? y : ""), NULL);
	free(x);
	free(y);
}

static void
obf_diff(struct plan *p, struct items *it, const char *pfx, const Pharos__V1__AwgObfuscation *a,
    const Pharos__V1__AwgObfuscation *b)
{
	Pharos__V1__AwgObfuscation none;
	const char *sa[9], *sb[9];
	static const char *const sn[9] = { "h1", "h2", "h3", "h4", "i1", "i2", "i3", "i4", "i5" };
	char name[64];
	int i;

	pharos__v1__awg_obfuscation__init(&none);
	if (a == NULL)
		a = &none;
	if (b == NULL)
		b = &none;
#define U(f) do { snprintf(name, sizeof(name), "%s.%s", pfx, #f); set_u(p, it, name, a->f, b->f); } while (0)
	U(jc); U(jmin); U(jmax); U(s1); U(s2); U(s3); U(s4);
#undef U
	sa[0] = a->h1; sa[1] = a->h2; sa[2] = a->h3; sa[3] = a->h4;
	sa[4] = a->i1; sa[5] = a->i2; sa[6] = a->i3; sa[7] = a->i4; sa[8] = a->i5;
	sb[0] = b->h1; sb[1] = b->h2; sb[2] = b->h3; sb[3] = b->h4;
	sb[4] = b->i1; sb[5] = b->i2; sb[6] = b->i3; sb[7] = b->i4; sb[8] = b->i5;
	for (i = 0; i < 9; i++) {
		snprintf(name, sizeof(name), "%s.%s", pfx, sn[i]);
		set_s(p, it, name, sa[i], sb[i]);
	}
}

static char *
roles_of(struct plan *p, const Pharos__V1__NodeConfig *c)
{
	unsigned m = 0;
	size_t i;

	for (i = 0; i < c->n_roles; i++)
		m |= c->roles[i] == PHAROS__V1__ROLE__ROLE_ENTRY ? ROLE_ENTRY :
		    c->roles[i] == PHAROS__V1__ROLE__ROLE_EXIT ? ROLE_EXIT : 0;
	return xprintf(p, "%s", roles_text(m));
}

static void
settings_diff(struct plan *p, struct items *it, const Pharos__V1__NodeConfig *b,
    const Pharos__V1__NodeConfig *h)
{
	char *x, *y;

	set_s(p, it, "fleet_id", b->fleet_id, h->fleet_id);
	x = roles_of(p, b);
	y = roles_of(p, h);
	if (x != NULL && y != NULL)
		set_s(p, it, "roles", x, y);
	free(x);
	free(y);
	if (b->idle != h->idle)
		add(p, it, '~', "setting", xprintf(p, "idle"), xprintf(p, "%s -> %s",
		    b->idle ? "true" : "false", h->idle ? "true" : "false"), NULL);
	set_l(p, it, "entry_pool", b->entry_pool, b->n_entry_pool, h->entry_pool, h->n_entry_pool);
	set_l(p, it, "dns", b->dns, b->n_dns, h->dns, h->n_dns);
	if ((b->amneziawg == NULL) != (h->amneziawg == NULL)) {
		add(p, it, b->amneziawg == NULL ? '+' : '-', "setting", xprintf(p, "amneziawg"),
		    NULL, NULL);
	} else if (b->amneziawg != NULL) {
		const Pharos__V1__AwgInterface *a = b->amneziawg, *c = h->amneziawg;
		set_u(p, it, "amneziawg.listen_port", a->listen_port, c->listen_port);
		set_u(p, it, "amneziawg.mtu", a->mtu, c->mtu);
		set_l(p, it, "amneziawg.addresses", a->addresses, a->n_addresses, c->addresses,
		    c->n_addresses);
		obf_diff(p, it, "amneziawg", a->obfuscation, c->obfuscation);
	}
	if ((b->xray == NULL) != (h->xray == NULL)) {
		add(p, it, b->xray == NULL ? '+' : '-', "setting", xprintf(p, "xray"), NULL, NULL);
	} else if (b->xray != NULL) {
		const Pharos__V1__Reality *a = b->xray, *c = h->xray;
		set_u(p, it, "xray.port", a->port, c->port);
		set_s(p, it, "xray.target", a->target, c->target);
		set_l(p, it, "xray.server_names", a->server_names, a->n_server_names,
		    c->server_names, c->n_server_names);
		set_l(p, it, "xray.short_ids", a->short_ids, a->n_short_ids, c->short_ids,
		    c->n_short_ids);
		set_s(p, it, "xray.flow", a->flow, c->flow);
	}
}

static int
link_cmp(const void *x, const void *y)
{
	return strcmp((*(Pharos__V1__CascadeLink *const *)x)->name,
	    (*(Pharos__V1__CascadeLink *const *)y)->name);
}

/* "dial fra-1 at 1.2.3.4:5, inside ams-1.waw-1, mtu 1308" / "accept ams-1 on port 5, ..." */
static char *
link_describe(struct plan *p, const Pharos__V1__CascadeLink *l)
{
	bool dial = l->direction == PHAROS__V1__LINK_DIRECTION__LINK_DIRECTION_DIAL;
	char port[16];

	snprintf(port, sizeof(port), "%u", l->listen_port);
	return xprintf(p, "%s %s %s %s%s%s, mtu %u", dial ? "dial" : "accept", l->peer_node,
	    dial ? "at" : "on port", dial ? l->endpoint : port, l->carried_by[0] ? ", inside " :
	    "", l->carried_by, l->mtu);
}

static bool
obf_eq(const Pharos__V1__AwgObfuscation *a, const Pharos__V1__AwgObfuscation *b)
{
	uint8_t *x, *y;
	size_t lx, ly;
	bool eq;

	if (a == NULL || b == NULL)
		return a == b;
	lx = pharos__v1__awg_obfuscation__get_packed_size(a);
	ly = pharos__v1__awg_obfuscation__get_packed_size(b);
	if (lx != ly)
		return false;
	if ((x = malloc(lx + 1)) == NULL || (y = malloc(ly + 1)) == NULL) {
		free(x);
		return false;
	}
	pharos__v1__awg_obfuscation__pack(a, x);
	pharos__v1__awg_obfuscation__pack(b, y);
	eq = memcmp(x, y, lx) == 0;
	free(x);
	free(y);
	return eq;
}

static void
link_changes(struct plan *p, struct items *it, const Pharos__V1__CascadeLink *a,
    const Pharos__V1__CascadeLink *b)
{
	char buf[1024] = "", fa[16], fb[16];
	size_t n = 0;

#define APPEND(...) do { if (n < sizeof(buf)) n += (size_t)snprintf(buf + n, sizeof(buf) - n, \
		"%s", n ? "; " : ""); if (n < sizeof(buf)) n += (size_t)snprintf(buf + n, \
		sizeof(buf) - n, __VA_ARGS__); } while (0)
	if (a->direction != b->direction || strcmp(a->peer_node, b->peer_node) != 0) {
		char *x = link_describe(p, a), *y = link_describe(p, b);
		APPEND("%s -> %s", x ? x : "", y ? y : "");
		free(x);
		free(y);
	} else {
		if (strcmp(a->endpoint, b->endpoint) != 0)
			APPEND("endpoint %s -> %s", a->endpoint[0] ? a->endpoint : "(none)",
			    b->endpoint[0] ? b->endpoint : "(none)");
		if (a->listen_port != b->listen_port)
			APPEND("port %u -> %u", a->listen_port, b->listen_port);
		if (a->mtu != b->mtu)
			APPEND("mtu %u -> %u", a->mtu, b->mtu);
		if (strcmp(a->carried_by, b->carried_by) != 0)
			APPEND("carried by %s -> %s", a->carried_by[0] ? a->carried_by : "(underlay)",
			    b->carried_by[0] ? b->carried_by : "(underlay)");
	}
	if (!strv_eq(a->addresses, a->n_addresses, b->addresses, b->n_addresses))
		APPEND("inner addresses changed");
	if (!strv_eq(a->allowed_ips, a->n_allowed_ips, b->allowed_ips, b->n_allowed_ips))
		APPEND("allowed ips changed");
	if (a->persistent_keepalive != b->persistent_keepalive)
		APPEND("keepalive %u -> %u", a->persistent_keepalive, b->persistent_keepalive);
	if (a->peer_public_key.len != b->peer_public_key.len ||
	    (a->peer_public_key.len > 0 && memcmp(a->peer_public_key.data,
	    b->peer_public_key.data, a->peer_public_key.len) != 0)) {
		fingerprint(a->peer_public_key.data, a->peer_public_key.len, fa);
		fingerprint(b->peer_public_key.data, b->peer_public_key.len, fb);
		APPEND("peer key %s -> %s", fa, fb);
	}
	if (!obf_eq(a->obfuscation, b->obfuscation))
		APPEND("obfuscation changed");
#undef APPEND
	if (n > 0)
		add(p, it, '~', "link", xprintf(p, "%s", b->name), xprintf(p, "%s", buf), NULL);
}

static void
links_diff(struct plan *p, struct items *it, const Pharos__V1__NodeConfig *b,
    const Pharos__V1__NodeConfig *h)
{
	Pharos__V1__CascadeLink **x = NULL, **y = NULL;
	size_t i = 0, j = 0, nb = b != NULL ? b->n_links : 0, nh = h->n_links;

	if ((nb > 0 && (x = calloc(nb, sizeof(*x))) == NULL) ||
	    (nh > 0 && (y = calloc(nh, sizeof(*y))) == NULL)) {
		free(x);
		p->oom = true;
		return;
	}
	if (nb > 0) {
		memcpy(x, b->links, nb * sizeof(*x));
		qsort(x, nb, sizeof(*x), link_cmp);
	}
	if (nh > 0) {
		memcpy(y, h->links, nh * sizeof(*y));
		qsort(y, nh, sizeof(*y), link_cmp);
	}
	while (i < nb || j < nh) {
		int c = i == nb ? 1 : j == nh ? -1 : strcmp(x[i]->name, y[j]->name);
		if (c < 0) {
			add(p, it, '-', "link", xprintf(p, "%s", x[i]->name), link_describe(p, x[i]),
			    NULL);
			i++;
		} else if (c > 0) {
			add(p, it, '+', "link", xprintf(p, "%s", y[j]->name), link_describe(p, y[j]),
			    NULL);
			j++;
		} else {
			link_changes(p, it, x[i], y[j]);
			i++;
			j++;
		}
	}
	free(x);
	free(y);
}

struct rbytes {
	uint8_t				*b;
	size_t				 len;
	const Pharos__V1__CascadeRoute	*r;
};

static int
rbytes_cmp(const void *x, const void *y)
{
	const struct rbytes *a = x, *b = y;
	size_t n = a->len < b->len ? a->len : b->len;
	int r = n > 0 ? memcmp(a->b, b->b, n) : 0;

	if (r != 0)
		return r;
	return a->len < b->len ? -1 : a->len > b->len;
}

static struct rbytes *
route_bytes(struct plan *p, const Pharos__V1__NodeConfig *c, size_t *n)
{
	struct rbytes *v;
	size_t i;

	*n = c != NULL ? c->n_routes : 0;
	if (*n == 0)
		return NULL;
	if ((v = calloc(*n, sizeof(*v))) == NULL) {
		p->oom = true;
		*n = 0;
		return NULL;
	}
	for (i = 0; i < *n; i++) {
		v[i].r = c->routes[i];
		v[i].len = pharos__v1__cascade_route__get_packed_size(c->routes[i]);
		if ((v[i].b = malloc(v[i].len + 1)) == NULL) {
			p->oom = true;
			v[i].len = 0;
			continue;
		}
		pharos__v1__cascade_route__pack(c->routes[i], v[i].b);
	}
	return v;
}

/* "10.80.0.0/16 fd42:80::/64 -> ams-1.fra-1 (exit fra-1)" */
static char *
route_text(struct plan *p, const Pharos__V1__CascadeRoute *r)
{
	char *src = r->n_sources <= 4 ? join(p, r->sources, r->n_sources, " ") :
	    xprintf(p, "%zu sources", r->n_sources);
	char *dst = r->n_destinations == 0 ? NULL : r->n_destinations <= 2 ?
	    join(p, r->destinations, r->n_destinations, " ") :
	    xprintf(p, "%zu destinations", r->n_destinations);
	char *s;

	s = xprintf(p, "%s%s%s -> %s%s (exit %s)", src ? src : "", dst ? " to " : "",
	    dst ? dst : "", r->via_link[0] ? r->via_link : "internet", r->via_link[0] ? "" :
	    " with NAT", r->exit_node);
	free(src);
	free(dst);
	return s;
}

/* Two routes of the same rule into the same link (or out) to the same exit and places. */
static bool
route_same_path(const Pharos__V1__CascadeRoute *a, const Pharos__V1__CascadeRoute *b)
{
	return strcmp(a->rule, b->rule) == 0 && strcmp(a->via_link, b->via_link) == 0 &&
	    strcmp(a->exit_node, b->exit_node) == 0 &&
	    strv_eq(a->destinations, a->n_destinations, b->destinations, b->n_destinations);
}

static int
str_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* "sources 2 -> 4 (+2 -0)" */
static char *
sources_change(struct plan *p, const Pharos__V1__CascadeRoute *a, const Pharos__V1__CascadeRoute *b)
{
	char **x = NULL, **y = NULL, *s;
	size_t i = 0, j = 0, plus = 0, minus = 0;

	if ((a->n_sources > 0 && (x = calloc(a->n_sources, sizeof(*x))) == NULL) ||
	    (b->n_sources > 0 && (y = calloc(b->n_sources, sizeof(*y))) == NULL)) {
		free(x);
		p->oom = true;
		return NULL;
	}
	if (a->n_sources > 0) {
		memcpy(x, a->sources, a->n_sources * sizeof(*x));
		qsort(x, a->n_sources, sizeof(*x), str_cmp);
	}
	if (b->n_sources > 0) {
		memcpy(y, b->sources, b->n_sources * sizeof(*y));
		qsort(y, b->n_sources, sizeof(*y), str_cmp);
	}
	while (i < a->n_sources || j < b->n_sources) {
		int c = i == a->n_sources ? 1 : j == b->n_sources ? -1 : strcmp(x[i], y[j]);
		if (c < 0)
			minus++, i++;
		else if (c > 0)
			plus++, j++;
		else
			i++, j++;
	}
	free(x);
	free(y);
	if (plus == 0 && minus == 0)
		s = xprintf(p, "sources reordered");
	else
		s = xprintf(p, "sources %zu -> %zu (+%zu -%zu)", a->n_sources, b->n_sources, plus,
		    minus);
	return s;
}

/*
 * Routes have no name: compare them as a multiset of encodings. A route that went away and
 * one that came with the same rule, link, exit and destinations is one changed route (its
 * sources changed); the same routes in another order is a priority change.
 */
static void
routes_diff(struct plan *p, struct items *it, const Pharos__V1__NodeConfig *b,
    const Pharos__V1__NodeConfig *h)
{
	struct rbytes *x, *y, *xs = NULL, *ys = NULL;
	size_t nb, nh, i = 0, j = 0, k, nx = 0, ny = 0;
	bool moved = false;

	x = route_bytes(p, b, &nb);
	y = route_bytes(p, h, &nh);
	if ((nb > 0 && (xs = calloc(nb, sizeof(*xs))) == NULL) ||
	    (nh > 0 && (ys = calloc(nh, sizeof(*ys))) == NULL)) {
		p->oom = true;
		goto out;
	}
	if (nb > 0)
		memcpy(xs, x, nb * sizeof(*xs));
	if (nh > 0)
		memcpy(ys, y, nh * sizeof(*ys));
	if (nb > 0)
		qsort(xs, nb, sizeof(*xs), rbytes_cmp);
	if (nh > 0)
		qsort(ys, nh, sizeof(*ys), rbytes_cmp);
	/* Keep only what is on one side: xs[0..nx) went, ys[0..ny) came. */
	while (i < nb || j < nh) {
		int c = i == nb ? 1 : j == nh ? -1 : rbytes_cmp(&xs[i], &ys[j]);
		if (c < 0)
			xs[nx++] = xs[i++];
		else if (c > 0)
			ys[ny++] = ys[j++];
		else
			i++, j++;
	}
	moved = nx > 0 || ny > 0;
	for (j = 0; j < ny; j++) {
		for (i = 0; i < nx; i++)
			if (xs[i].r != NULL && route_same_path(xs[i].r, ys[j].r))
				break;
		if (i < nx) {
			char *ch = sources_change(p, xs[i].r, ys[j].r);
			add(p, it, '~', "route", xprintf(p, "%s", ys[j].r->rule), xprintf(p,
			    "-> %s%s (exit %s): %s", ys[j].r->via_link[0] ? ys[j].r->via_link :
			    "internet", ys[j].r->via_link[0] ? "" : " with NAT", ys[j].r->exit_node,
			    ch ? ch : ""), NULL);
			free(ch);
			xs[i].r = NULL;
		} else {
			add(p, it, '+', "route", xprintf(p, "%s", ys[j].r->rule),
			    route_text(p, ys[j].r), NULL);
		}
	}
	for (i = 0; i < nx; i++)
		if (xs[i].r != NULL)
			add(p, it, '-', "route", xprintf(p, "%s", xs[i].r->rule),
			    route_text(p, xs[i].r), NULL);
	for (k = 0; !moved && k < nb && k < nh; k++)
		if (rbytes_cmp(&x[k], &y[k]) != 0) {
			add(p, it, '~', "route", xprintf(p, "priority order"),
			    xprintf(p, "the same routes, reordered"), NULL);
			break;
		}
out:
	for (k = 0; k < nb; k++)
		free(x[k].b);
	for (k = 0; k < nh; k++)
		free(y[k].b);
	free(x);
	free(y);
	free(xs);
	free(ys);
}

/*
 * Links whose traffic leaves here: an ACCEPT link with a route from its dialer's inner
 * address out of this node (a middle node's carrier links have none).
 */
static bool
exit_links(const Pharos__V1__NodeConfig *c)
{
	size_t i, j;

	for (i = 0; c != NULL && i < c->n_links; i++) {
		const Pharos__V1__CascadeLink *l = c->links[i];
		if (l->direction != PHAROS__V1__LINK_DIRECTION__LINK_DIRECTION_ACCEPT ||
		    l->n_allowed_ips == 0)
			continue;
		for (j = 0; j < c->n_routes; j++) {
			const Pharos__V1__CascadeRoute *r = c->routes[j];
			if (r->via_link[0] == '\0' && strcmp(r->exit_node, c->node) == 0 &&
			    r->n_sources > 0 && strcmp(r->sources[0], l->allowed_ips[0]) == 0)
				return true;
		}
	}
	return false;
}

static int
own_diff(struct plan *p, struct pnode *pn, const struct desired_node *b,
    const struct desired_node *h)
{
	Pharos__V1__NodeConfig *x = NULL, *y = NULL;
	int rc = 0;

	if ((b != NULL && (x = unpack_own(b)) == NULL) || (y = unpack_own(h)) == NULL) {
		err_set("plan: the desired config of %s does not decode", h->name);
		rc = ERR_INVAL;
		goto out;
	}
	if (x != NULL)
		settings_diff(p, &pn->own, x, y);
	links_diff(p, &pn->own, x, y);
	routes_diff(p, &pn->own, x, y);
	pn->blinks = exit_links(x);
	pn->hlinks = exit_links(y);
out:
	if (x != NULL)
		pharos__v1__node_config__free_unpacked(x, NULL);
	if (y != NULL)
		pharos__v1__node_config__free_unpacked(y, NULL);
	return rc;
}

/* ---- the plan ---- */

static void
warnings(struct plan *p, const struct desired_node *b, const struct desired_node *h,
    struct pnode *pn)
{
	if (pn->status == '-' && pn->bpeers > 0)
		warn(p, W_REMOVED, pn->name, xprintf(p, "node %s is removed while it has %u peer%s",
		    pn->name,
		    pn->bpeers, pn->bpeers == 1 ? "" : "s"));
	if (pn->status == '~' && pn->bpeers > 0 && pn->hpeers == 0)
		warn(p, W_LOSES, pn->name, xprintf(p, "node %s loses all its %u peer%s%s", pn->name,
		    pn->bpeers,
		    pn->bpeers == 1 ? "" : "s", pn->idle ? " (it becomes idle)" : ""));
	/* An exit that stops receiving entries' traffic, or a new exit-only node that gets none. */
	if (h != NULL && (pn->roles & ROLE_EXIT) && !pn->idle && !pn->hlinks &&
	    ((b != NULL && pn->blinks) || (b == NULL && !(pn->roles & ROLE_ENTRY))))
		warn(p, W_EXIT, pn->name, xprintf(p, "exit node %s: no entry links to it%s", pn->name,
		    b == NULL ? "" : " any more"));
}

int
plan_diff(struct plan **out, const struct desired *base, const struct desired *head,
    const struct fleet *bf, const struct fleet *hf)
{
	struct plan *p;
	size_t i = 0, j = 0, nb = base != NULL ? base->n : 0, nh = head != NULL ? head->n : 0;
	int rc = 0;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (nb + nh > 0 && (p->nodes = calloc(nb + nh, sizeof(*p->nodes))) == NULL)) {
		free(p);
		err_set("plan: out of memory");
		return ERR_NOMEM;
	}
	p->bn.f = bf;
	p->hn.f = hf;
	while ((i < nb || j < nh) && rc == 0) {
		const struct desired_node *b = i < nb ? &base->nodes[i] : NULL;
		const struct desired_node *h = j < nh ? &head->nodes[j] : NULL;
		struct pnode *pn = &p->nodes[p->n++];
		int c = b == NULL ? 1 : h == NULL ? -1 : strcmp(b->name, h->name);

		if (c < 0)
			h = NULL, i++;
		else if (c > 0)
			b = NULL, j++;
		else
			i++, j++;
		pn->name = h != NULL ? h->name : b->name;
		pn->roles = (h != NULL ? h->node : b->node)->roles_mask;
		pn->idle = h != NULL && h->node->idle.set && h->node->idle.v;
		pn->bpeers = b != NULL ? b->npeers : 0;
		pn->busers = b != NULL ? b->nusers : 0;
		pn->hpeers = h != NULL ? h->npeers : 0;
		pn->husers = h != NULL ? h->nusers : 0;
		if (b != NULL && h != NULL && memcmp(b->content_hash, h->content_hash, 32) == 0) {
			pn->status = '=';
			continue;
		}
		pn->status = b == NULL ? '+' : h == NULL ? '-' : '~';
		p->changed++;
		if (h != NULL && ((pn->clients = get_pair(p, b, h, &rc)) == NULL || rc != 0 ||
		    (rc = own_diff(p, pn, b, h)) != 0))
			break;
		if (pn->clients != NULL && pn->clients->first == NULL)
			pn->clients->first = pn->name;
		if (pn->status == '~' && pn->clients->it.n == 0 && pn->clients->it.omitted == 0 &&
		    pn->own.n == 0 && pn->own.omitted == 0)
			add(p, &pn->own, '~', "setting", xprintf(p, "config"),
			    xprintf(p, "encoding changed"), NULL);
		warnings(p, b, h, pn);
	}
	if (rc == 0 && p->oom)
		rc = ERR_NOMEM;
	if (rc != 0) {
		if (rc == ERR_NOMEM)
			err_set("plan: out of memory");
		plan_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void
plan_free(struct plan *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->n; i++)
		items_free(&p->nodes[i].own);
	free(p->nodes);
	for (i = 0; i < p->npairs; i++) {
		items_free(&p->pairs[i]->it);
		free(p->pairs[i]);
	}
	free(p->pairs);
	for (i = 0; i < p->nwarn; i++)
		free(p->warn[i].msg);
	free(p->warn);
	free(p->bn.v);
	free(p->hn.v);
	free(p->base_rev);
	free(p->head_rev);
	free(p);
}

void
plan_set_revisions(struct plan *p, const char *base, const char *head)
{
	free(p->base_rev);
	free(p->head_rev);
	p->base_rev = base != NULL ? strdup(base) : NULL;
	p->head_rev = head != NULL ? strdup(head) : NULL;
}

size_t
plan_nodes(const struct plan *p)
{
	return p->n;
}

size_t
plan_changes(const struct plan *p)
{
	return p->changed;
}

size_t
plan_warnings(const struct plan *p)
{
	return p->nwarn;
}

int
plan_parse_format(const char *s, enum plan_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = PLAN_TEXT;
	else if (strcmp(s, "markdown") == 0 || strcmp(s, "md") == 0)
		*out = PLAN_MARKDOWN;
	else if (strcmp(s, "json") == 0)
		*out = PLAN_JSON;
	else
		return ERR_INVAL;
	return 0;
}

/* ---- printing ---- */

static void
summary(const struct plan *p, char *buf, size_t len)
{
	/* A fixed template (BRIEF: the exact wording), so scripts can parse it. */
	snprintf(buf, len, "%zu nodes: %zu change, %zu unchanged", p->n, p->changed,
	    p->n - p->changed);
}

static const char *
short_rev(const char *rev, char buf[16])
{
	if (rev == NULL || rev[0] == '\0')
		return "(none)";
	snprintf(buf, 16, "%.12s", rev);
	return buf;
}

/* "peers 5 -> 6 (+1), VLESS users 5 -> 6 (+1)" for a node header. */
static void
counts(const struct pnode *pn, char *buf, size_t len)
{
	const struct pair *c = pn->clients;
	size_t n = 0;

	buf[0] = '\0';
	if (pn->status == '+') {
		snprintf(buf, len, "added; %u peer%s, %u VLESS user%s", pn->hpeers,
		    pn->hpeers == 1 ? "" : "s", pn->husers, pn->husers == 1 ? "" : "s");
		return;
	}
	if (pn->status == '-') {
		snprintf(buf, len, "removed; had %u peer%s, %u VLESS user%s", pn->bpeers,
		    pn->bpeers == 1 ? "" : "s", pn->busers, pn->busers == 1 ? "" : "s");
		return;
	}
	if (c != NULL && (c->padd || c->pdel || c->pchg))
		n += (size_t)snprintf(buf + n, len - n, "peers %u -> %u (+%zu -%zu ~%zu)",
		    pn->bpeers, pn->hpeers, c->padd, c->pdel, c->pchg);
	if (n < len && c != NULL && (c->uadd || c->udel))
		snprintf(buf + n, len - n, "%sVLESS users %u -> %u (+%zu -%zu)", n ? ", " : "",
		    pn->busers, pn->husers, c->uadd, c->udel);
}

/*
 * The warnings as lines: each one, or for a kind with more than PLAN_MAX_WARN of them one
 * line naming the first few nodes. prefix/suffix wrap every line.
 */
static void
print_warnings(FILE *f, const struct plan *p, const char *prefix, const char *suffix)
{
	static const char *const group[W_KINDS] = {
		"nodes are removed while they have peers",
		"nodes lose all their peers",
		"exit nodes no longer get traffic from any entry",
	};
	size_t count[W_KINDS] = { 0 }, i, shown;
	int k;

	for (i = 0; i < p->nwarn; i++)
		count[p->warn[i].kind]++;
	for (k = 0; k < W_KINDS; k++) {
		if (count[k] == 0)
			continue;
		if (count[k] <= PLAN_MAX_WARN) {
			for (i = 0; i < p->nwarn; i++)
				if (p->warn[i].kind == k)
					fprintf(f, "%s%s%s\n", prefix, p->warn[i].msg, suffix);
			continue;
		}
		fprintf(f, "%s%zu %s:", prefix, count[k], group[k]);
		for (i = 0, shown = 0; i < p->nwarn && shown < PLAN_MAX_WARN; i++)
			if (p->warn[i].kind == k)
				fprintf(f, "%s %s", shown++ ? "," : "", p->warn[i].node);
		fprintf(f, " " ELLIPSIS " and %zu more%s\n", count[k] - shown, suffix);
	}
}

/* Client items are printed once, for the first node that has them; the others refer to it. */
static bool
clients_elsewhere(const struct pnode *pn)
{
	const struct pair *c = pn->clients;

	return c != NULL && c->first != pn->name && (c->it.n > 0 || c->it.omitted > 0);
}

static void
print_items_text(FILE *f, const struct items *it)
{
	size_t i;

	for (i = 0; it != NULL && i < it->n; i++)
		fprintf(f, "    %c %s %s%s%s\n", it->v[i].op, it->v[i].kind, it->v[i].what,
		    it->v[i].detail ? ": " : "", it->v[i].detail ? it->v[i].detail : "");
}

static size_t
omitted(const struct pnode *pn)
{
	return pn->own.omitted + (pn->clients != NULL && !clients_elsewhere(pn) ?
	    pn->clients->it.omitted : 0);
}

static void
print_text(FILE *f, const struct plan *p)
{
	char buf[256], r1[16], r2[16];
	size_t i;

	if (p->base_rev != NULL || p->head_rev != NULL)
		fprintf(f, "cox plan: %s -> %s\n\n", short_rev(p->base_rev, r1),
		    short_rev(p->head_rev, r2));
	for (i = 0; i < p->n; i++) {
		const struct pnode *pn = &p->nodes[i];
		if (pn->status == '=')
			continue;
		counts(pn, buf, sizeof(buf));
		fprintf(f, "%c %s (%s%s)%s%s\n", pn->status, pn->name, roles_text(pn->roles),
		    pn->idle ? ", idle" : "", buf[0] ? ": " : "", buf);
		if (clients_elsewhere(pn))
			fprintf(f, "    = peers and VLESS users: the same changes as %s\n",
			    pn->clients->first);
		else if (pn->clients != NULL)
			print_items_text(f, &pn->clients->it);
		print_items_text(f, &pn->own);
		if (omitted(pn) > 0)
			fprintf(f, "    " ELLIPSIS " and %zu more\n", omitted(pn));
	}
	if (p->changed > 0 || p->nwarn > 0)
		fprintf(f, "\n");
	print_warnings(f, p, "warning: ", "");
	summary(p, buf, sizeof(buf));
	fprintf(f, "%s\n", buf);
}

/* A table cell: '|' escaped, never a line break, "->" as an arrow. */
static void
md_cell(FILE *f, const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		if (s[0] == '-' && s[1] == '>') {
			fputs("\xe2\x86\x92", f);
			s++;
		} else if (*s == '|')
			fputs("\\|", f);
		else if (*s == '\n' || *s == '\r')
			fputc(' ', f);
		else
			fputc(*s, f);
	}
}

static void
print_items_md(FILE *f, const struct items *it)
{
	size_t i;

	for (i = 0; it != NULL && i < it->n; i++) {
		const struct item *x = &it->v[i];
		fprintf(f, "| %c | %s | ", x->op, x->kind);
		if (strcmp(x->kind, "peer") == 0) {
			/* "AbCdEfGh… alice/laptop": the fingerprint as code. */
			const char *sp = strchr(x->what, ' ');
			fputc('`', f);
			fwrite(x->what, 1, sp != NULL ? (size_t)(sp - x->what) : strlen(x->what), f);
			fputc('`', f);
			if (sp != NULL)
				md_cell(f, sp);
		} else if (strcmp(x->kind, "link") == 0 || strcmp(x->kind, "setting") == 0) {
			fputc('`', f);
			md_cell(f, x->what);
			fputc('`', f);
		} else {
			md_cell(f, x->what);
		}
		fputs(" | ", f);
		md_cell(f, x->detail);
		fputs(" |\n", f);
	}
}

static void
print_markdown(FILE *f, const struct plan *p)
{
	char buf[256], r1[16], r2[16];
	size_t i;

	fprintf(f, "### PharosVPN plan: `%s` \xe2\x86\x92 `%s`\n\n", short_rev(p->base_rev, r1),
	    short_rev(p->head_rev, r2));
	summary(p, buf, sizeof(buf));
	fprintf(f, "**%s**\n\n", buf);
	if (p->nwarn > 0) {
		print_warnings(f, p, "> \xe2\x9a\xa0\xef\xb8\x8f **Warning:** ", "<br>");
		fprintf(f, "\n");
	}
	if (p->changed == 0) {
		fprintf(f, "No node's configuration changes.\n");
		return;
	}
	for (i = 0; i < p->n; i++) {
		const struct pnode *pn = &p->nodes[i];
		if (pn->status == '=')
			continue;
		counts(pn, buf, sizeof(buf));
		fprintf(f, "#### %c `%s` (%s%s)%s", pn->status, pn->name, roles_text(pn->roles),
		    pn->idle ? ", idle" : "", buf[0] ? " \xe2\x80\x94 " : "");
		md_cell(f, buf);
		fputs("\n\n", f);
		if (clients_elsewhere(pn))
			fprintf(f, "Peers and VLESS users: the same changes as `%s`.\n\n",
			    pn->clients->first);
		if ((pn->clients == NULL || pn->clients->it.n == 0 || clients_elsewhere(pn)) &&
		    pn->own.n == 0 && omitted(pn) == 0)
			continue;
		fprintf(f, "| | kind | what | detail |\n|:-:|---|---|---|\n");
		if (pn->clients != NULL && !clients_elsewhere(pn))
			print_items_md(f, &pn->clients->it);
		print_items_md(f, &pn->own);
		if (omitted(pn) > 0)
			fprintf(f, "| " ELLIPSIS " | | %zu more | |\n", omitted(pn));
		fprintf(f, "\n");
	}
}

static json_t *
items_json(const struct items *it, json_t *arr)
{
	size_t i;

	for (i = 0; it != NULL && i < it->n && arr != NULL; i++) {
		const struct item *x = &it->v[i];
		char op[2] = { x->op, '\0' };
		json_t *o = json_pack("{s:s, s:s, s:s}", "op", op, "kind", x->kind, "what", x->what);
		if (o == NULL)
			return NULL;
		if ((x->detail != NULL && json_object_set_new(o, "detail", json_string(x->detail)) != 0) ||
		    (x->key != NULL && json_object_set_new(o, "key", json_string(x->key)) != 0) ||
		    json_array_append_new(arr, o) != 0)
			return NULL;
	}
	return arr;
}

static int
print_json(FILE *f, const struct plan *p)
{
	json_t *root, *warns, *changes;
	char buf[256];
	size_t i;
	int rc = ERR_NOMEM;

	summary(p, buf, sizeof(buf));
	root = json_pack("{s:o, s:o, s:I, s:I, s:I, s:s}",
	    "base", p->base_rev ? json_string(p->base_rev) : json_null(),
	    "head", p->head_rev ? json_string(p->head_rev) : json_null(),
	    "nodes", (json_int_t)p->n, "changed", (json_int_t)p->changed,
	    "unchanged", (json_int_t)(p->n - p->changed), "summary", buf);
	if (root == NULL || (warns = json_array()) == NULL ||
	    json_object_set_new(root, "warnings", warns) != 0 ||
	    (changes = json_array()) == NULL || json_object_set_new(root, "changes", changes) != 0)
		goto out;
	for (i = 0; i < p->nwarn; i++)
		if (json_array_append_new(warns, json_string(p->warn[i].msg)) != 0)
			goto out;
	for (i = 0; i < p->n; i++) {
		const struct pnode *pn = &p->nodes[i];
		const struct pair *c = pn->clients;
		json_t *o, *roles, *items;
		size_t padd = c ? c->padd : 0, pdel = c ? c->pdel : 0, uadd = c ? c->uadd : 0,
		    udel = c ? c->udel : 0;

		if (pn->status == '=')
			continue;
		if (pn->status == '-') {
			pdel = pn->bpeers;
			udel = pn->busers;
		}
		if ((roles = json_array()) == NULL)
			goto out;
		if ((pn->roles & ROLE_ENTRY) && json_array_append_new(roles, json_string("entry")) != 0)
			goto out;
		if ((pn->roles & ROLE_EXIT) && json_array_append_new(roles, json_string("exit")) != 0)
			goto out;
		o = json_pack("{s:s, s:s, s:o, s:b, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I}}",
		    "node", pn->name, "status", pn->status == '+' ? "added" : pn->status == '-' ?
		    "removed" : "changed", "roles", roles, "idle", pn->idle,
		    "peers", "base", (json_int_t)pn->bpeers, "head", (json_int_t)pn->hpeers,
		    "added", (json_int_t)padd, "removed", (json_int_t)pdel,
		    "changed", (json_int_t)(c ? c->pchg : 0),
		    "vless_users", "base", (json_int_t)pn->busers, "head", (json_int_t)pn->husers,
		    "added", (json_int_t)uadd, "removed", (json_int_t)udel);
		if (o == NULL || json_array_append_new(changes, o) != 0 ||
		    (items = json_array()) == NULL || json_object_set_new(o, "items", items) != 0 ||
		    (clients_elsewhere(pn) && json_object_set_new(o, "same_clients_as",
		    json_string(c->first)) != 0) ||
		    (c != NULL && !clients_elsewhere(pn) && items_json(&c->it, items) == NULL) ||
		    items_json(&pn->own, items) == NULL ||
		    json_object_set_new(o, "omitted", json_integer((json_int_t)omitted(pn))) != 0)
			goto out;
	}
	if (json_dumpf(root, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII) != 0)
		goto out;
	fputc('\n', f);
	rc = 0;
out:
	json_decref(root);
	if (rc != 0)
		err_set("plan: cannot build the JSON output");
	return rc;
}

int
plan_print(FILE *f, const struct plan *p, enum plan_format fmt)
{
	int rc = 0;

	switch (fmt) {
	case PLAN_TEXT:
		print_text(f, p);
		break;
	case PLAN_MARKDOWN:
		print_markdown(f, p);
		break;
	case PLAN_JSON:
		rc = print_json(f, p);
		break;
	}
	if (rc == 0 && ferror(f)) {
		err_setsys("plan: write");
		rc = ERR_SYS;
	}
	return rc;
}
