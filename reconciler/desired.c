/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every node's NodeConfig from a validated fleet (desired.h; docs/DESIGN.md §8).
 *
 * The work is arranged so nothing is quadratic in devices × nodes:
 * - access rules are resolved once: a bitset of matching rules per user, a bitset of the
 *   rules a node is an entry of;
 * - each device's Peer and VlessUser are encoded once, and every distinct set of entry
 *   rules concatenates its clients' encodings once (the shared `clients` bytes);
 * - the cascade's links are collected per rule and entry, sorted and deduplicated by name.
 * Only the small per-node part is packed per node.
 */
#include <arpa/inet.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pharos/v1/node.pb-c.h"
#include "addr.h"
#include "arena.h"
#include "desired.h"
#include "err.h"
#include "fleet.h"
#include "ipam.h"

#define UNCONST(s)	((char *)(uintptr_t)(s))
#define UNCONSTV(v)	((char **)(uintptr_t)(v))

#define AWG_LAYER	80	/* as schema/validate.c: IPv6 + UDP + WireGuard header + tag */
#define LINK_EXITS	2	/* exits an entry links to per rule: the active one and a standby */
#define LINK_PORT_BASE	51900
#define LINK_PORTS	4096	/* ACCEPT ports are LINK_PORT_BASE + [0, LINK_PORTS) */
#define LINK_KEEPALIVE	25
#define DEFAULT_XRAY_PORT 443
#define DEFAULT_FLOW	"xtls-rprx-vision"

/*
 * Inner addresses of cascade links: a /31 (and a /127) per link. The first prefix that
 * overlaps neither the tunnel pool nor any node's underlay address is used.
 */
static const char *const link_pools4[] = { "198.18.0.0/15", "100.64.0.0/10" };
static const char *const link_pools6[] = { "fd70:6861:726f:7300::/64", "fd70:6861:726f:7301::/64" };

static const uint8_t hrw_key[crypto_shorthash_KEYBYTES] = "pharos-hrw-v1";
static const uint8_t slot_key[crypto_shorthash_KEYBYTES] = "pharos-link-v1";
static const uint8_t port_key[crypto_shorthash_KEYBYTES] = "pharos-port-v1";

/* An enabled device: what its two messages (NodeConfig fields 9 and 11) are made from. */
struct dev {
	uint8_t		 key[32];
	uint8_t		 uuid[16];	/* the VLESS id's hash bytes (uuid_text()) */
	uint32_t	 user;		/* index in f->users */
	const char	*name;
	char		*aip[2];	/* "v4/32", "v6/128" */
	size_t		 naip;
	uint32_t	 peer_len, vless_len;	/* its Peer and VlessUser as fields 9, 11 */
};

struct rrule {
	const char		*name;
	int			 hops;
	const struct flist	*users, *entry, *exit, *via;
	bool			 all_users;
	char			**src;		/* entry-side route sources */
	size_t			 nsrc;
};

struct nd {
	const struct node	*n;
	struct awg_params	 awg;
	int			 mtu;
	bool			 idle;
	char			 under[300];	/* "1.2.3.4", "[v6]" or a host name; "" if none */
	bool			 under_ip;
	struct ipaddr		 under_addr;
	int			 block;		/* index in blocks, -1: no clients */
	uint64_t		*erules;	/* rules this node is a (live) entry of */
};

struct link {
	char		*name;
	uint32_t	 dial, acc;
	uint32_t	 rule;		/* the lowest rule index that asks for it */
	const char	*carrier;	/* name of the link carrying it, or NULL */
	bool		 direct;	/* its far end is a path's exit (not only a carrier) */
	int		 mtu;
	uint32_t	 port;
	char		*in4[2], *in6[2];	/* [0] the dialer's, [1] the acceptor's: "/31", "/127" */
	char		*host4[2], *host6[2];	/* the same as "/32", "/128" */
};

enum { RT_SPECIFIC, RT_CATCHALL, RT_LINK };

struct rt {
	uint32_t	 node, klass, rule, rank;
	const char	*key;		/* RT_LINK: the link the route belongs to */
	const char	*via;		/* link name or "" */
	const char	*exit;
	uint32_t	 link;		/* RT_LINK: sources = the dialer's inner addresses on it */
	char		**dst;
	size_t		 ndst;
};

struct block {
	uint64_t	*rules;
	size_t		 same;		/* 1 + an earlier block with the same bytes; 0: none */
	uint8_t		*bytes;
	size_t		 len;
	EVP_MD_CTX	*st;		/* SHA-256 after the bytes, copied for each node */
	uint32_t	 npeers, nusers;
};

/*
 * Packed bytes (a node's own part, a client block) carry a reference count in front, so a
 * build can share the bytes of the previous build that came out the same: a one-device
 * push then costs the memory of what changed, not of a second fleet of configs beside the
 * first (DESIGN §8). The counts are atomic: the loader thread builds from a desired the
 * loop may be freeing.
 */
union shared {
	size_t		refs;
	max_align_t	align;
};

static uint8_t *
sh_alloc(size_t len)
{
	union shared *h = malloc(sizeof(*h) + (len ? len : 1));

	if (h == NULL)
		return NULL;
	h->refs = 1;
	return (uint8_t *)(h + 1);
}

static uint8_t *
sh_ref(uint8_t *p)
{
	__atomic_add_fetch(&((union shared *)(void *)p - 1)->refs, 1, __ATOMIC_RELAXED);
	return p;
}

static void
sh_unref(uint8_t *p)
{
	union shared *h;

	if (p == NULL)
		return;
	h = (union shared *)(void *)p - 1;
	if (__atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(h);
}

struct priv {
	size_t		  refs;		/* desired_ref(); atomic */
	uint8_t		**blocks;
	size_t		 *block_len;
	size_t		  nblocks;
	uint64_t	 *name_key;	/* per node: SipHash of its name (ctx.hrw) */
	uint8_t		**srcs;		/* per rule: the route sources the nodes' routes share */
	size_t		  nsrcs;
};

struct ctx {
	const struct fleet	*f;
	const struct desired	*prev;		/* share its bytes where ours come out equal */
	struct ipam		*ipam;
	desired_key_fn		 keys;
	void			*keys_arg;
	struct arena		*a;
	uint8_t			**rsrc;		/* per rule: its route sources as field 2, or NULL */
	size_t			 *rsrc_len;
	struct nd		*nodes;
	size_t			 nn;
	struct rrule		*rules;
	size_t			 nr, rw;	/* rules, 64-bit words per rule bitset */
	uint64_t		*urules;	/* nusers × rw */
	uint64_t		*nrules;	/* nn × rw */
	struct dev		*devs;		/* enabled devices, sorted by key */
	size_t			 ndev;
	uint32_t		*by_email;
	uint32_t		*email_pos;	/* device -> its place in by_email */
	uint32_t		**rdev;		/* per rule: admitted devices, ascending */
	size_t			*nrdev;
	uint64_t		*hrw;		/* per node: SipHash of its name */
	EVP_MD			*sha256;	/* fetched once: EVP_sha256() locks on every use */
	EVP_MD_CTX		*md;
	struct link		*links;
	size_t			 nlinks, caplinks;
	struct rt		*routes;
	size_t			 nroutes, caproutes;
	struct block		*blocks;
	size_t			 nblocks;
	struct ipaddr		 lnet4, lnet6;
	unsigned		 llen4;
	struct fstr		 star;
	struct flist		 all;
};

static int
nomem(void)
{
	err_set("desired: out of memory");
	return ERR_NOMEM;
}

/* SipHash-2-4 of a name under a fixed key: the same on every controller. */
static uint64_t
sip(const uint8_t *hk, const char *name)
{
	uint8_t out[crypto_shorthash_BYTES];
	uint64_t v = 0;
	int i;

	crypto_shorthash(out, (const uint8_t *)name, strlen(name), hk);
	for (i = 0; i < 8; i++)
		v |= (uint64_t)out[i] << (8 * i);
	return v;
}

static bool
bits_any(const uint64_t *a, size_t w)
{
	size_t i;

	for (i = 0; i < w; i++)
		if (a[i] != 0)
			return true;
	return false;
}

/* ---- nodes ---- */

static int
nd_cmp(const void *x, const void *y)
{
	return strcmp(((const struct nd *)x)->n->name, ((const struct nd *)y)->n->name);
}

/* The host of "[user@]host[:port]". */
static bool
ssh_host(const char *ssh, char *host, size_t hostsz)
{
	const char *at = strchr(ssh, '@');
	int port;

	return addr_parse_host_port(host, hostsz, &port, at ? at + 1 : ssh, false) == 0;
}

/*
 * Where other nodes reach this one (a link's endpoint): the first IP literal of the
 * `control` host, the ssh host and the first entry_pool address; failing that the
 * control or ssh host name, which buoy resolves.
 */
static void
underlay(struct nd *d)
{
	const struct node *n = d->n;
	char cand[3][256], name[256] = "";
	struct ipaddr ip;
	int port, i;

	memset(cand, 0, sizeof(cand));
	if (n->control.v != NULL &&
	    addr_parse_host_port(cand[0], sizeof(cand[0]), &port, n->control.v, false) != 0)
		cand[0][0] = '\0';
	if (n->ssh.v != NULL && !ssh_host(n->ssh.v, cand[1], sizeof(cand[1])))
		cand[1][0] = '\0';
	if (n->entry_pool.n > 0 &&
	    addr_parse_ip_port(&ip, &port, FLIST_STR(n->entry_pool, 0).v) == 0)
		addr_ntop(&ip, cand[2], sizeof(cand[2]));
	for (i = 0; i < 3; i++) {
		if (cand[i][0] == '\0')
			continue;
		if (addr_parse_ip(&ip, cand[i]) == 0) {
			d->under_ip = true;
			d->under_addr = ip;
			snprintf(d->under, sizeof(d->under), ip.family == AF_INET6 ? "[%s]" : "%s",
			    cand[i]);
			return;
		}
		if (name[0] == '\0')
			memcpy(name, cand[i], sizeof(name));
	}
	snprintf(d->under, sizeof(d->under), "%s", name);
}

/* Where cox dials buoy (desired.h). */
static void
control_addr(const struct node *n, struct desired_node *dn)
{
	struct ipaddr ip;
	int port = -1;

	dn->host[0] = '\0';
	snprintf(dn->port, sizeof(dn->port), "%d", FLEET_CONTROL_PORT);
	if (n->control.v != NULL &&
	    addr_parse_host_port(dn->host, sizeof(dn->host), &port, n->control.v, false) == 0) {
		if (port > 0 && port <= 65535)
			snprintf(dn->port, sizeof(dn->port), "%u", (unsigned)port & 0xffff);
		return;
	}
	dn->host[0] = '\0';
	if (n->ssh.v != NULL && ssh_host(n->ssh.v, dn->host, sizeof(dn->host)))
		return;
	dn->host[0] = '\0';
	if (n->entry_pool.n > 0 &&
	    addr_parse_ip_port(&ip, &port, FLIST_STR(n->entry_pool, 0).v) == 0)
		addr_ntop(&ip, dn->host, sizeof(dn->host));
}

static int
setup_nodes(struct ctx *c)
{
	const struct fleet *f = c->f;
	size_t i;

	c->nn = f->nnodes;
	if (c->nn == 0)
		return 0;
	if ((c->nodes = calloc(c->nn, sizeof(*c->nodes))) == NULL)
		return nomem();
	for (i = 0; i < c->nn; i++) {
		struct nd *d = &c->nodes[i];
		d->n = f->nodes[i];
		fleet_node_awg(f, d->n, &d->awg);
		d->mtu = d->n->mtu.set ? (int)d->n->mtu.v : f->eff.mtu;
		d->idle = d->n->idle.set && d->n->idle.v;
		d->block = -1;
		underlay(d);
	}
	if (c->nn > 1)
		qsort(c->nodes, c->nn, sizeof(*c->nodes), nd_cmp);
	if ((c->hrw = calloc(c->nn, sizeof(*c->hrw))) == NULL)
		return nomem();
	for (i = 0; i < c->nn; i++)
		c->hrw[i] = sip(hrw_key, c->nodes[i].n->name);
	return 0;
}

/* ---- access rules ---- */

static int
setup_rules(struct ctx *c)
{
	const struct fleet *f = c->f;
	const struct rule *rv = f->access.v;
	size_t i, j;

	c->star.v = "*";
	c->all = (struct flist){ &c->star, 1, f->at, true };
	if (!f->access.set) {
		/* No access list: one rule, every user, every entry, every exit, preset hops
		 * (docs/DESIGN.md §2.3), as the validator checks it. */
		if ((c->rules = calloc(1, sizeof(*c->rules))) == NULL)
			return nomem();
		c->nr = 1;
		c->rules[0] = (struct rrule){ "default", f->eff.hops, &c->all, &c->all,
		    f->eff.hops >= 2 ? &c->all : NULL, f->eff.hops == 3 ? &c->all : NULL,
		    true, NULL, 0 };
	} else if (f->access.n > 0) {
		if ((c->rules = calloc(f->access.n, sizeof(*c->rules))) == NULL)
			return nomem();
		for (i = 0; i < f->access.n; i++) {
			struct rrule *r = &c->rules[c->nr++];
			r->name = rv[i].name.v != NULL ? rv[i].name.v : "";
			r->hops = rv[i].hops.set ? (int)rv[i].hops.v : f->eff.hops;
			r->users = &rv[i].users;
			r->entry = &rv[i].entry;
			r->exit = &rv[i].exit;
			r->via = &rv[i].via;
			for (j = 0; j < rv[i].users.n; j++)
				if (strcmp(FLIST_STR(rv[i].users, j).v, "*") == 0)
					r->all_users = true;
		}
	}
	c->rw = (c->nr + 63) / 64;
	if (c->rw == 0)
		c->rw = 1;
	if ((f->nusers > 0 && (c->urules = calloc(f->nusers * c->rw, 8)) == NULL) ||
	    (c->nn > 0 && (c->nrules = calloc(c->nn * c->rw, 8)) == NULL))
		return nomem();
	/*
	 * Which rules admit which users, driven by the selectors: a name is one
	 * fleet_user_index() binary search, so 200 rules naming 100 users each cost 20,000
	 * lookups, not 200 x 20,000 scans of every selector list.
	 */
	for (j = 0; j < c->nr; j++) {
		const struct flist *sel = c->rules[j].users;
		uint64_t bit = 1ULL << (j % 64);
		size_t k, w = j / 64;

		for (k = 0; sel != NULL && k < sel->n; k++) {
			const char *name = FLIST_STR(*sel, k).v;
			bool all = strcmp(name, "*") == 0;
			bool admins = strcmp(name, "role:admin") == 0;
			bool plain = strcmp(name, "role:user") == 0;
			size_t u;

			if (all || admins || plain) {
				for (i = 0; i < f->nusers; i++)
					if (all || f->users[i]->admin == admins)
						c->urules[i * c->rw + w] |= bit;
			} else if ((u = fleet_user_index(f, name)) != SIZE_MAX) {
				c->urules[u * c->rw + w] |= bit;
			}
		}
	}
	for (i = 0; i < f->nusers; i++)
		if (f->users[i]->disabled.set && f->users[i]->disabled.v)
			memset(&c->urules[i * c->rw], 0, c->rw * 8);
	for (i = 0; i < c->nn; i++) {
		c->nodes[i].erules = &c->nrules[i * c->rw];
		if (c->nodes[i].idle)
			continue;
		for (j = 0; j < c->nr; j++)
			if (fleet_node_selected(c->rules[j].entry, c->nodes[i].n, ROLE_ENTRY))
				c->nodes[i].erules[j / 64] |= 1ULL << (j % 64);
	}
	return 0;
}

/* ---- devices ---- */

/* A device before its messages are built: small, so sorting moves little. */
struct dkey {
	uint64_t	 pfx;		/* the key's first 8 bytes, big-endian */
	uint8_t		 key[32];
	uint32_t	 user;
	const char	*name;
};

static int
dkey_cmp(const void *x, const void *y)
{
	const struct dkey *a = x, *b = y;

	if (a->pfx != b->pfx)
		return a->pfx < b->pfx ? -1 : 1;
	return memcmp(a->key, b->key, 32);
}

/* strcmp with the end of each string read as `end`. */
static int
cmp_term(const char *a, const char *b, int end)
{
	for (;; a++, b++) {
		int x = *a != '\0' ? (unsigned char)*a : end;
		int y = *b != '\0' ? (unsigned char)*b : end;
		if (x != y)
			return x - y;
		if (*a == '\0')
			return 0;
	}
}

static int
user_cmp(const void *x, const void *y, void *arg)
{
	struct user *const *u = arg;

	return cmp_term(u[*(const uint32_t *)x]->name, u[*(const uint32_t *)y]->name, '/');
}

struct eref {
	uint32_t	rank, dev;
};

/*
 * Email order ("<user>/<device>@<fleet>") without comparing whole emails: by the user's
 * rank among user names read with '/' at their end, then the device name with '@'.
 */
static int
eref_cmp(const void *x, const void *y, void *arg)
{
	const struct eref *a = x, *b = y;
	const struct dev *v = arg;

	if (a->rank != b->rank)
		return a->rank < b->rank ? -1 : 1;
	return cmp_term(v[a->dev].name, v[b->dev].name, '@');
}

/* The concatenation of up to five strings (NULL ends the list early), in the arena. */
static char *
cat(struct arena *a, const char *s1, const char *s2, const char *s3, const char *s4,
    const char *s5)
{
	const char *v[5] = { s1, s2, s3, s4, s5 };
	size_t l[5], n = 0, i, k;
	char *out, *p;

	for (k = 0; k < 5 && v[k] != NULL; k++)
		n += l[k] = strlen(v[k]);
	if ((out = p = arena_alloc(a, n + 1)) == NULL)
		return NULL;
	for (i = 0; i < k; i++) {
		memcpy(p, v[i], l[i]);
		p += l[i];
	}
	*p = '\0';
	return out;
}

static void
uuid_text(const uint8_t h[16], char out[37])
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	for (i = 0; i < 16; i++) {
		uint8_t b = h[i];
		if (i == 6)
			b = (uint8_t)((b & 0x0f) | 0x80);	/* version 8 */
		else if (i == 8)
			b = (uint8_t)((b & 0x3f) | 0x80);	/* variant 10 */
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b >> 4];
		out[o++] = hex[b & 15];
	}
	out[o] = '\0';
}

#define VLESS_NS	"pharos/vless/v1"

void
desired_vless_uuid(const uint8_t key[32], char out[37])
{
	uint8_t in[sizeof(VLESS_NS) - 1 + 32], h[32];

	memcpy(in, VLESS_NS, sizeof(VLESS_NS) - 1);
	memcpy(in + sizeof(VLESS_NS) - 1, key, 32);
	crypto_hash_sha256(h, in, sizeof(in));
	uuid_text(h, out);
}

/* The same through OpenSSL, which uses the SHA extensions: ~3x libsodium's speed here. */
static bool
vless_uuid(struct ctx *c, const uint8_t key[32], uint8_t out[16])
{
	uint8_t h[EVP_MAX_MD_SIZE];
	unsigned hl = 0;

	if (EVP_DigestInit_ex2(c->md, c->sha256, NULL) != 1 ||
	    EVP_DigestUpdate(c->md, VLESS_NS, sizeof(VLESS_NS) - 1) != 1 ||
	    EVP_DigestUpdate(c->md, key, 32) != 1 || EVP_DigestFinal_ex(c->md, h, &hl) != 1 ||
	    hl != 32)
		return false;
	memcpy(out, h, 16);
	return true;
}

/*
 * A validated WireGuard key: 43 base64 characters and '='. Keys are public, so a table
 * lookup is fine here (sodium_base642bin is constant-time and several times slower).
 */
static bool
decode_key(const char *b64, uint8_t key[32])
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	int8_t tab[256];
	uint32_t acc = 0;
	int i, bits = 0, o = 0;

	if (b64 == NULL || strlen(b64) != 44 || b64[43] != '=')
		return false;
	memset(tab, -1, sizeof(tab));
	for (i = 0; i < 64; i++)
		tab[(unsigned char)al[i]] = (int8_t)i;
	for (i = 0; i < 43; i++) {
		int v = tab[(unsigned char)b64[i]];
		if (v < 0)
			return false;
		acc = acc << 6 | (uint32_t)v;
		if ((bits += 6) >= 8) {
			bits -= 8;
			if (o < 32)
				key[o++] = (uint8_t)(acc >> bits);
		}
	}
	return o == 32;
}

/* ---- protobuf encoding of the repeated client fields ---- */

static size_t
varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static uint8_t *
put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* A length-delimited field (tag = field << 3 | 2, one byte for fields 1-15). */
static uint8_t *
put_ld(uint8_t *p, uint8_t tag, const void *b, size_t n)
{
	*p++ = tag;
	p = put_varint(p, n);
	memcpy(p, b, n);
	return p + n;
}

static size_t
ld_len(size_t n)
{
	return 1 + varint_len(n) + n;
}

/* "<user>/<device>@<fleet id>" into buf; its length (0: too long, never for valid names). */
static size_t
dev_email(const struct ctx *c, const struct dev *d, char *buf, size_t size)
{
	const struct fleet *f = c->f;
	int n = snprintf(buf, size, "%s/%s@%s", f->users[d->user]->name, d->name,
	    f->fleet.id.v != NULL ? f->fleet.id.v : "");

	return n < 0 || (size_t)n >= size ? 0 : (size_t)n;
}

static size_t
peer_inner(const struct dev *d)
{
	size_t in = ld_len(32), i;

	for (i = 0; i < d->naip; i++)
		in += ld_len(strlen(d->aip[i]));
	return in;
}

/*
 * A device's Peer (field 9: public_key, allowed_ips; no endpoint, no keepalive) and
 * VlessUser (field 11: uuid, email) are written straight into each client block that holds
 * it (put_peer(), put_vless(): the bytes protobuf-c writes, test_desired compares), not kept
 * encoded beside the blocks (20 MB for 100,000 devices); here only their lengths.
 */
static int
dev_lens(struct ctx *c, struct dev *d)
{
	char email[1024];
	size_t el = dev_email(c, d, email, sizeof(email));

	if (el == 0) {
		err_set("desired: a device's VLESS email is too long");
		return ERR_INVAL;
	}
	d->peer_len = (uint32_t)ld_len(peer_inner(d));
	d->vless_len = (uint32_t)ld_len(ld_len(36) + ld_len(el));
	return 0;
}

static uint8_t *
put_peer(uint8_t *p, const struct dev *d)
{
	size_t i;

	*p++ = 9 << 3 | 2;
	p = put_varint(p, peer_inner(d));
	p = put_ld(p, 1 << 3 | 2, d->key, 32);
	for (i = 0; i < d->naip; i++)
		p = put_ld(p, 2 << 3 | 2, d->aip[i], strlen(d->aip[i]));
	return p;
}

static uint8_t *
put_vless(uint8_t *p, const struct ctx *c, const struct dev *d)
{
	char uuid[37], email[1024];
	size_t el = dev_email(c, d, email, sizeof(email));

	uuid_text(d->uuid, uuid);
	*p++ = 11 << 3 | 2;
	p = put_varint(p, ld_len(36) + ld_len(el));
	p = put_ld(p, 1 << 3 | 2, uuid, 36);
	return put_ld(p, 2 << 3 | 2, email, el);
}

static int
setup_devices(struct ctx *c)
{
	const struct fleet *f = c->f;
	struct dkey *dk = NULL;
	struct eref *er = NULL;
	uint32_t *urank = NULL, *pos = NULL;
	size_t i, j, k, n = 0;
	uint8_t key[32];
	int rc = 0;

	for (i = 0; i < f->nusers; i++)
		if (!(f->users[i]->disabled.set && f->users[i]->disabled.v))
			n += f->users[i]->devices.n;
	if (n == 0)
		return 0;
	if ((dk = calloc(n, sizeof(*dk))) == NULL || (er = calloc(n, sizeof(*er))) == NULL ||
	    (urank = calloc(f->nusers, sizeof(*urank))) == NULL ||
	    (pos = calloc(f->nusers, sizeof(*pos))) == NULL ||
	    (c->devs = calloc(n, sizeof(*c->devs))) == NULL ||
	    (c->by_email = calloc(n, sizeof(*c->by_email))) == NULL)
		goto oom;
	/* Pinned addresses first, disabled users' too, so no other device is given one. */
	for (i = 0; i < f->nusers; i++) {
		const struct user *u = f->users[i];
		const struct device *dv = u->devices.v;
		bool on = !(u->disabled.set && u->disabled.v);

		for (j = 0; j < u->devices.n; j++) {
			if (!dv[j].hdr.set || !decode_key(dv[j].public_key.v, key))
				continue;
			if (dv[j].address.v != NULL &&
			    (rc = ipam_reserve(c->ipam, key, dv[j].address.v)) != 0)
				goto out;
			if (!on || c->ndev >= n)
				continue;
			memcpy(dk[c->ndev].key, key, 32);
			for (k = 0; k < 8; k++)
				dk[c->ndev].pfx = dk[c->ndev].pfx << 8 | key[k];
			dk[c->ndev].user = (uint32_t)i;
			dk[c->ndev].name = dv[j].name.v != NULL ? dv[j].name.v : "";
			c->ndev++;
		}
	}
	/* New addresses in key order: the result does not depend on file names. */
	if (c->ndev > 1)
		qsort(dk, c->ndev, sizeof(*dk), dkey_cmp);
	for (i = 0; i < c->ndev; i++) {
		struct dev *d = &c->devs[i];
		char v4[16], v6[46];

		memcpy(d->key, dk[i].key, 32);
		d->user = dk[i].user;
		d->name = dk[i].name;
		if ((rc = ipam_get(c->ipam, d->key, v4, v6)) != 0)
			goto out;
		if ((d->aip[d->naip++] = cat(c->a, v4, "/32", NULL, NULL, NULL)) == NULL ||
		    (v6[0] != '\0' && (d->aip[d->naip++] = cat(c->a, v6, "/128", NULL, NULL,
		    NULL)) == NULL))
			goto oom;
		if (!vless_uuid(c, d->key, d->uuid)) {
			err_set("desired: SHA-256 failed");
			rc = ERR_LIB;
			goto out;
		}
		if ((rc = dev_lens(c, d)) != 0)
			goto out;
	}
	/* VLESS users in email order: rank the users once, then sort (rank, device). */
	for (i = 0; i < f->nusers; i++)
		urank[i] = (uint32_t)i;
	qsort_r(urank, f->nusers, sizeof(*urank), user_cmp, f->users);
	for (i = 0; i < f->nusers; i++)
		pos[urank[i]] = (uint32_t)i;
	for (i = 0; i < c->ndev; i++)
		er[i] = (struct eref){ pos[c->devs[i].user], (uint32_t)i };
	qsort_r(er, c->ndev, sizeof(*er), eref_cmp, c->devs);
	for (i = 0; i < c->ndev; i++)
		c->by_email[i] = er[i].dev;
	goto out;
oom:
	rc = nomem();
out:
	free(dk);
	free(er);
	free(urank);
	free(pos);
	return rc;
}

/* The client addresses a rule covers: the whole pool for "*", else each device's. */
/*
 * Per rule, the devices it admits (ascending, i.e. in key order). A node's client block
 * and a rule's sources are then built from these lists, not by testing every device
 * against every block: 200 site rules x 100,000 devices would be 20 million tests.
 */
static int
index_rules(struct ctx *c)
{
	size_t i, j, w;

	if (c->nr == 0)
		return 0;
	if ((c->rdev = calloc(c->nr, sizeof(*c->rdev))) == NULL ||
	    (c->nrdev = calloc(c->nr, sizeof(*c->nrdev))) == NULL ||
	    (c->email_pos = calloc(c->ndev + 1, sizeof(*c->email_pos))) == NULL)
		return nomem();
	for (i = 0; i < c->ndev; i++)
		c->email_pos[c->by_email[i]] = (uint32_t)i;
	/* Two passes over the devices, each visiting only its user's rule bits: count, fill. */
	for (i = 0; i < c->ndev; i++) {
		const uint64_t *ur = &c->urules[c->devs[i].user * c->rw];
		for (w = 0; w < c->rw; w++)
			for (uint64_t b = ur[w]; b != 0; b &= b - 1)
				c->nrdev[w * 64 + (size_t)__builtin_ctzll(b)]++;
	}
	for (j = 0; j < c->nr; j++) {
		if (c->nrdev[j] == 0)
			continue;
		if ((c->rdev[j] = malloc(c->nrdev[j] * sizeof(**c->rdev))) == NULL)
			return nomem();
		c->nrdev[j] = 0;
	}
	for (i = 0; i < c->ndev; i++) {
		const uint64_t *ur = &c->urules[c->devs[i].user * c->rw];
		for (w = 0; w < c->rw; w++)
			for (uint64_t b = ur[w]; b != 0; b &= b - 1) {
				j = w * 64 + (size_t)__builtin_ctzll(b);
				c->rdev[j][c->nrdev[j]++] = (uint32_t)i;
			}
	}
	return 0;
}

static int
cmp_u32(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

	return a < b ? -1 : a > b;
}

/* The devices of a rule set: one rule's list as it is, several merged (sorted, unique). */
static int
block_devices(struct ctx *c, const uint64_t *rules, uint32_t **out, size_t *n, bool *owned)
{
	size_t j, total = 0, nsel = 0, last = 0, k;
	uint32_t *v;

	*out = NULL;
	*n = 0;
	*owned = false;
	for (j = 0; j < c->nr; j++)
		if (rules[j / 64] & (1ULL << (j % 64))) {
			total += c->nrdev[j];
			nsel++;
			last = j;
		}
	if (nsel == 1) {
		*out = c->rdev[last];
		*n = c->nrdev[last];
		return 0;
	}
	if (total == 0)
		return 0;
	if ((v = malloc(total * sizeof(*v))) == NULL)
		return nomem();
	for (k = 0, j = 0; j < c->nr; j++)
		if (rules[j / 64] & (1ULL << (j % 64))) {
			memcpy(v + k, c->rdev[j], c->nrdev[j] * sizeof(*v));
			k += c->nrdev[j];
		}
	qsort(v, total, sizeof(*v), cmp_u32);
	for (k = 0, j = 0; j < total; j++)
		if (k == 0 || v[k - 1] != v[j])
			v[k++] = v[j];
	*out = v;
	*n = k;
	*owned = true;
	return 0;
}

static int
rule_sources(struct ctx *c)
{
	const struct fleet *f = c->f;
	size_t i, j, n;

	for (i = 0; i < c->nr; i++) {
		struct rrule *r = &c->rules[i];
		if (r->all_users) {
			if ((r->src = arena_calloc(c->a, 2, sizeof(char *))) == NULL ||
			    (r->src[r->nsrc++] = arena_strdup(c->a, f->eff.tunnel_pool)) == NULL)
				return nomem();
			if (f->network.tunnel_pool6.v != NULL &&
			    (r->src[r->nsrc++] = arena_strdup(c->a, f->network.tunnel_pool6.v)) == NULL)
				return nomem();
			continue;
		}
		for (n = 0, j = 0; j < c->nrdev[i]; j++)
			n += c->devs[c->rdev[i][j]].naip;
		if (n == 0)
			continue;
		if ((r->src = arena_calloc(c->a, n, sizeof(char *))) == NULL)
			return nomem();
		for (j = 0; j < c->nrdev[i]; j++) {
			const struct dev *d = &c->devs[c->rdev[i][j]];
			memcpy(r->src + r->nsrc, d->aip, d->naip * sizeof(char *));
			r->nsrc += d->naip;
		}
	}
	return 0;
}

/* ---- client blocks: peers and VLESS users shared by nodes with the same entry rules ---- */

static int
pack_block(struct ctx *c, struct block *b)
{
	bool awg = c->f->eff.amneziawg, xray = c->f->eff.xray, owned;
	size_t i, len = 0, n;
	uint32_t *dv, *ev = NULL;
	uint8_t *p;
	int rc;

	if ((rc = block_devices(c, b->rules, &dv, &n, &owned)) != 0)
		return rc;
	for (i = 0; i < n; i++) {
		const struct dev *d = &c->devs[dv[i]];
		if (awg) {
			len += d->peer_len;
			b->npeers++;
		}
		if (xray) {
			len += d->vless_len;
			b->nusers++;
		}
	}
	b->len = len;
	if ((b->bytes = p = sh_alloc(len)) == NULL ||
	    (xray && n > 0 && (ev = malloc(n * sizeof(*ev))) == NULL)) {
		if (owned)
			free(dv);
		return nomem();
	}
	for (i = 0; awg && i < n; i++)
		p = put_peer(p, &c->devs[dv[i]]);
	/* VLESS users go in email order: the same devices, sorted by their place there. */
	for (i = 0; xray && i < n; i++)
		ev[i] = c->email_pos[dv[i]];
	if (xray && n > 0)
		qsort(ev, n, sizeof(*ev), cmp_u32);
	for (i = 0; xray && i < n; i++)
		p = put_vless(p, c, &c->devs[c->by_email[ev[i]]]);
	free(ev);
	if (owned)
		free(dv);
	if ((b->st = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex2(b->st, c->sha256, NULL) != 1 ||
	    EVP_DigestUpdate(b->st, b->bytes, b->len) != 1) {
		err_set("desired: SHA-256 failed");
		return ERR_LIB;
	}
	return 0;
}

/* The previous build's block with the same bytes, if any, replaces b's. */
static void
share_block(struct ctx *c, struct block *b)
{
	const struct priv *pv = c->prev != NULL ? c->prev->priv : NULL;
	size_t i;

	for (i = 0; pv != NULL && i < pv->nblocks; i++)
		if (pv->block_len[i] == b->len && memcmp(pv->blocks[i], b->bytes, b->len) == 0) {
			sh_unref(b->bytes);
			b->bytes = sh_ref(pv->blocks[i]);
			return;
		}
}

static int
setup_blocks(struct ctx *c)
{
	size_t i, j, k;
	int rc;

	if (c->nn > 0 && (c->blocks = calloc(c->nn, sizeof(*c->blocks))) == NULL)
		return nomem();
	for (i = 0; i < c->nn; i++) {
		struct nd *d = &c->nodes[i];
		if (!bits_any(d->erules, c->rw))
			continue;
		for (k = 0; k < c->nblocks; k++)
			if (memcmp(c->blocks[k].rules, d->erules, c->rw * 8) == 0)
				break;
		if (k == c->nblocks) {
			struct block *b = &c->blocks[k];
			b->rules = d->erules;
			c->nblocks++;
			if ((rc = pack_block(c, b)) != 0)
				return rc;
			/* Other rules, the same users (e.g. two rules for "*"): share the bytes. */
			for (j = 0; j < k; j++)
				if (c->blocks[j].same == 0 && c->blocks[j].len == b->len &&
				    memcmp(c->blocks[j].bytes, b->bytes, b->len) == 0)
					break;
			if (j < k) {
				sh_unref(b->bytes);
				b->bytes = NULL;
				EVP_MD_CTX_free(b->st);
				b->st = NULL;
				b->same = j + 1;
			} else
				share_block(c, b);
		}
		d->block = c->blocks[k].same > 0 ? (int)c->blocks[k].same - 1 : (int)k;
	}
	return 0;
}

/* ---- cascade links and routes ---- */

static struct link *
add_link(struct ctx *c, uint32_t dial, uint32_t acc, uint32_t rule, const char *carrier,
    const char *fmt3)
{
	struct link *l;

	if (c->nlinks == c->caplinks) {
		size_t cap = c->caplinks ? c->caplinks * 2 : 64;
		struct link *v = reallocarray(c->links, cap, sizeof(*v));
		if (v == NULL)
			return NULL;
		c->links = v;
		c->caplinks = cap;
	}
	l = &c->links[c->nlinks];
	memset(l, 0, sizeof(*l));
	l->dial = dial;
	l->acc = acc;
	l->rule = rule;
	l->carrier = carrier;
	if (fmt3 != NULL)
		l->name = arena_printf(c->a, "%s.%s.%s", c->nodes[dial].n->name, fmt3,
		    c->nodes[acc].n->name);
	else
		l->name = arena_printf(c->a, "%s.%s", c->nodes[dial].n->name, c->nodes[acc].n->name);
	if (l->name == NULL)
		return NULL;
	c->nlinks++;
	return l;
}

static struct rt *
add_route(struct ctx *c)
{
	struct rt *r;

	if (c->nroutes == c->caproutes) {
		size_t cap = c->caproutes ? c->caproutes * 2 : 64;
		struct rt *v = reallocarray(c->routes, cap, sizeof(*v));
		if (v == NULL)
			return NULL;
		c->routes = v;
		c->caproutes = cap;
	}
	r = &c->routes[c->nroutes++];
	memset(r, 0, sizeof(*r));
	return r;
}

static int
link_mtu(const struct ctx *c, uint32_t a, uint32_t b)
{
	int m = c->nodes[a].mtu < c->nodes[b].mtu ? c->nodes[a].mtu : c->nodes[b].mtu;

	return m - AWG_LAYER - c->nodes[b].awg.s4;
}

static uint64_t
mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/*
 * The rendezvous score of (a, b): the MurmurHash3 finalizer over SipHash-2-4 of both
 * names, so one hash per node, not per pair (546,000 pairs in the 1,000-node bench).
 */
static uint64_t
hrw2(const struct ctx *c, uint32_t a, uint32_t b)
{
	return mix64(c->hrw[a] ^ (c->hrw[b] * 0x9e3779b97f4a7c15ULL));
}

struct cand {
	uint64_t	score;
	uint32_t	node;
};

/* Keep the best k candidates (highest score, then lowest name) in best[0..*nbest). */
static void
consider(struct cand *best, size_t *nbest, size_t k, uint64_t score, uint32_t node)
{
	size_t i = *nbest;

	if (i == k && (best[k - 1].score > score || (best[k - 1].score == score &&
	    best[k - 1].node < node)))
		return;
	if (i < k)
		(*nbest)++;
	else
		i = k - 1;
	while (i > 0 && (best[i - 1].score < score ||
	    (best[i - 1].score == score && best[i - 1].node > node))) {
		best[i] = best[i - 1];
		i--;
	}
	best[i].score = score;
	best[i].node = node;
}

/*
 * For each rule of 2 or 3 hops and each of its entries: the LINK_EXITS exits with the
 * highest rendezvous score SipHash(entry, exit) (and for 3 hops the via with the highest
 * SipHash(entry, exit, via)), so entries spread over the exits and adding or removing an
 * exit moves only the entries that ranked it first.
 */
static int
plan_paths(struct ctx *c)
{
	uint32_t *exits = NULL, *vias = NULL;
	size_t i, e, x, v;
	int rc = 0;

	if (c->nn > 0 && ((exits = calloc(c->nn, sizeof(*exits))) == NULL ||
	    (vias = calloc(c->nn, sizeof(*vias))) == NULL)) {
		free(exits);
		return nomem();
	}
	for (i = 0; i < c->nr; i++) {
		const struct rrule *r = &c->rules[i];
		size_t nx = 0, nv = 0;

		for (x = 0; x < c->nn; x++) {
			if (c->nodes[x].idle)
				continue;
			if (r->hops >= 2 && fleet_node_selected(r->exit, c->nodes[x].n, ROLE_EXIT))
				exits[nx++] = (uint32_t)x;
			if (r->hops == 3 &&
			    fleet_node_selected(r->via, c->nodes[x].n, ROLE_ENTRY | ROLE_EXIT))
				vias[nv++] = (uint32_t)x;
		}
		for (e = 0; e < c->nn; e++) {
			const char *en = c->nodes[e].n->name;
			struct cand best[LINK_EXITS], bv = { 0, 0 };
			size_t nbest = 0, k, nb;
			struct rt *rt;

			if (!(c->nodes[e].erules[i / 64] & (1ULL << (i % 64))))
				continue;
			if (r->hops == 1) {
				if (r->nsrc == 0)
					continue;
				if ((rt = add_route(c)) == NULL)
					goto oom;
				*rt = (struct rt){ (uint32_t)e, r->all_users ? RT_CATCHALL :
				    RT_SPECIFIC, (uint32_t)i, 0, NULL, "", en, 0, NULL, 0 };
				continue;
			}
			for (k = 0; k < nx; k++) {
				bool via_ok = r->hops == 2;
				if (exits[k] == e)
					continue;
				for (v = 0; !via_ok && v < nv; v++)
					via_ok = vias[v] != e && vias[v] != exits[k];
				if (via_ok)
					consider(best, &nbest, LINK_EXITS,
					    hrw2(c, (uint32_t)e, exits[k]), exits[k]);
			}
			for (k = 0; k < nbest; k++) {
				uint32_t xn = best[k].node;
				struct link *l, *carrier;

				if (r->hops == 2) {
					if ((l = add_link(c, (uint32_t)e, xn, (uint32_t)i, NULL, NULL)) == NULL)
						goto oom;
					l->mtu = link_mtu(c, (uint32_t)e, xn);
					l->direct = true;
				} else {
					nb = 0;
					for (v = 0; v < nv; v++)
						if (vias[v] != e && vias[v] != xn)
							consider(&bv, &nb, 1, mix64(hrw2(c,
							    (uint32_t)e, xn) ^ c->hrw[vias[v]]), vias[v]);
					if ((carrier = add_link(c, (uint32_t)e, bv.node, (uint32_t)i,
					    NULL, NULL)) == NULL)
						goto oom;
					carrier->mtu = link_mtu(c, (uint32_t)e, bv.node);
					if ((l = add_link(c, (uint32_t)e, xn, (uint32_t)i, NULL,
					    c->nodes[bv.node].n->name)) == NULL)
						goto oom;
					/* c->links may have moved: take the carrier's fields again. */
					carrier = &c->links[c->nlinks - 2];
					l->carrier = carrier->name;
					l->direct = true;
					l->mtu = carrier->mtu - AWG_LAYER - c->nodes[xn].awg.s4;
					if (link_mtu(c, bv.node, xn) < l->mtu)
						l->mtu = link_mtu(c, bv.node, xn);
				}
				if (r->nsrc == 0)
					continue;	/* the rule has no devices yet */
				if ((rt = add_route(c)) == NULL)
					goto oom;
				*rt = (struct rt){ (uint32_t)e, r->all_users ? RT_CATCHALL :
				    RT_SPECIFIC, (uint32_t)i, (uint32_t)k, NULL,
				    c->links[c->nlinks - 1].name, c->nodes[xn].n->name, 0, NULL, 0 };
			}
		}
	}
	goto out;
oom:
	rc = nomem();
out:
	free(exits);
	free(vias);
	return rc;
}

static int
link_cmp(const void *x, const void *y)
{
	const struct link *a = x, *b = y;
	int r = strcmp(a->name, b->name);

	if (r != 0)
		return r;
	return a->rule < b->rule ? -1 : a->rule > b->rule;
}

static int
find_link(const struct ctx *c, const char *name)
{
	size_t lo = 0, hi = c->nlinks;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int r = strcmp(c->links[mid].name, name);
		if (r == 0)
			return (int)mid;
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static bool
overlaps(const struct ipaddr *a, unsigned alen, const struct ipaddr *b, unsigned blen)
{
	unsigned len = alen < blen ? alen : blen, i;

	if (a->family != b->family)
		return false;
	for (i = 0; i < len; i++)
		if (((a->a[i / 8] ^ b->a[i / 8]) >> (7 - i % 8)) & 1)
			return false;
	return true;
}

/* The link prefixes: the first candidate clear of the tunnel pools and node addresses. */
static int
pick_link_pools(struct ctx *c)
{
	const struct fleet *f = c->f;
	struct ipaddr pool, cand;
	unsigned plen, clen;
	bool host, have_pool, bad;
	size_t k, i, j;
	int port, fam;

	for (fam = 0; fam < 2; fam++) {
		const char *const *cands = fam == 0 ? link_pools4 : link_pools6;
		const char *p = fam == 0 ? f->eff.tunnel_pool : f->network.tunnel_pool6.v;

		have_pool = p != NULL && addr_parse_cidr(&pool, &plen, &host, p) == 0;
		for (k = 0; k < 2; k++) {
			if (addr_parse_cidr(&cand, &clen, &host, cands[k]) != 0)
				return ERR_INVAL;
			bad = have_pool && overlaps(&pool, plen, &cand, clen);
			for (i = 0; !bad && i < c->nn; i++) {
				const struct node *n = c->nodes[i].n;
				if (c->nodes[i].under_ip &&
				    overlaps(&c->nodes[i].under_addr, 128, &cand, clen))
					bad = true;
				for (j = 0; !bad && j < n->entry_pool.n; j++) {
					struct ipaddr ip;
					if (addr_parse_ip_port(&ip, &port, FLIST_STR(n->entry_pool, j).v) == 0 &&
					    overlaps(&ip, 128, &cand, clen))
						bad = true;
				}
			}
			if (!bad)
				break;
		}
		if (k == 2) {
			err_set("desired: no free prefix for cascade links: %s and %s are both used "
			    "by the tunnel pool or node addresses", cands[0], cands[1]);
			return ERR_INVAL;
		}
		if (fam == 0) {
			c->lnet4 = cand;
			c->llen4 = clen;
		} else {
			c->lnet6 = cand;
		}
	}
	return 0;
}

static int
link_addrs(struct ctx *c, struct link *l, uint64_t *used, uint32_t nslots)
{
	uint32_t s = (uint32_t)(sip(slot_key, l->name) % nslots), n;
	char buf[64];
	int side;

	for (n = 0; (used[s / 64] >> (s % 64)) & 1; n++) {
		if (n >= nslots) {
			err_set("desired: more cascade links than the link prefix holds (%u)", nslots);
			return ERR_TOOBIG;
		}
		s = s + 1 == nslots ? 0 : s + 1;
	}
	used[s / 64] |= 1ULL << (s % 64);
	for (side = 0; side < 2; side++) {
		uint32_t v4 = addr_v4(&c->lnet4) + 2 * s + (uint32_t)side;
		struct ipaddr ip = { AF_INET, { 0 } };
		uint64_t v6 = 2 * (uint64_t)s + (uint64_t)side;
		int i;

		ip.a[0] = (uint8_t)(v4 >> 24);
		ip.a[1] = (uint8_t)(v4 >> 16);
		ip.a[2] = (uint8_t)(v4 >> 8);
		ip.a[3] = (uint8_t)v4;
		addr_ntop(&ip, buf, sizeof(buf));
		if ((l->in4[side] = arena_printf(c->a, "%s/31", buf)) == NULL ||
		    (l->host4[side] = arena_printf(c->a, "%s/32", buf)) == NULL)
			return nomem();
		ip = c->lnet6;
		for (i = 0; i < 8; i++)
			ip.a[15 - i] |= (uint8_t)(v6 >> (8 * i));
		addr_ntop(&ip, buf, sizeof(buf));
		if ((l->in6[side] = arena_printf(c->a, "%s/127", buf)) == NULL ||
		    (l->host6[side] = arena_printf(c->a, "%s/128", buf)) == NULL)
			return nomem();
	}
	return 0;
}

static int
acc_cmp(const void *x, const void *y, void *arg)
{
	const struct link *v = arg, *a = &v[*(const uint32_t *)x], *b = &v[*(const uint32_t *)y];

	if (a->acc != b->acc)
		return a->acc < b->acc ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* An ACCEPT port per link, unique on the accepting node and clear of its own ports. */
static int
link_ports(struct ctx *c)
{
	uint64_t used[LINK_PORTS / 64];
	uint32_t *order, cur = UINT32_MAX;
	size_t i, j;
	int port;

	if (c->nlinks == 0)
		return 0;
	if ((order = calloc(c->nlinks, sizeof(*order))) == NULL)
		return nomem();
	for (i = 0; i < c->nlinks; i++)
		order[i] = (uint32_t)i;
	qsort_r(order, c->nlinks, sizeof(*order), acc_cmp, c->links);
	for (i = 0; i < c->nlinks; i++) {
		struct link *l = &c->links[order[i]];
		const struct nd *d = &c->nodes[l->acc];
		uint32_t p, n;

		if (l->acc != cur) {
			cur = l->acc;
			memset(used, 0, sizeof(used));
#define RESERVE(pt) do { if ((pt) >= LINK_PORT_BASE && (pt) < LINK_PORT_BASE + LINK_PORTS) \
		used[((pt) - LINK_PORT_BASE) / 64] |= 1ULL << (((pt) - LINK_PORT_BASE) % 64); } while (0)
			RESERVE(d->awg.port);
			for (j = 0; j < d->n->entry_pool.n; j++) {
				struct ipaddr ip;
				if (addr_parse_ip_port(&ip, &port, FLIST_STR(d->n->entry_pool, j).v) == 0)
					RESERVE(port);
			}
#undef RESERVE
		}
		p = (uint32_t)(sip(port_key, l->name) % LINK_PORTS);
		for (n = 0; (used[p / 64] >> (p % 64)) & 1; n++) {
			if (n >= LINK_PORTS) {
				free(order);
				err_set("desired: node %s accepts more than %d cascade links",
				    d->n->name, LINK_PORTS);
				return ERR_TOOBIG;
			}
			p = (p + 1) % LINK_PORTS;
		}
		used[p / 64] |= 1ULL << (p % 64);
		l->port = LINK_PORT_BASE + p;
	}
	free(order);
	return 0;
}

/*
 * Sort and merge the links, give them addresses and ports, and add the routes at the far
 * ends: the exit of a link NATs what comes out of it; the via node of a 3-hop path NATs
 * the outer packets of the nested link towards the exit.
 */
static int
finish_links(struct ctx *c)
{
	uint64_t *used = NULL;
	uint32_t nslots;
	size_t i, j;
	int rc;

	if (c->nlinks == 0)
		return 0;
	if (c->nlinks > 1)
		qsort(c->links, c->nlinks, sizeof(*c->links), link_cmp);
	for (i = 1, j = 0; i < c->nlinks; i++) {
		if (strcmp(c->links[i].name, c->links[j].name) != 0)
			c->links[++j] = c->links[i];
		else if (c->links[i].direct)
			c->links[j].direct = true;
	}
	c->nlinks = j + 1;
	if ((rc = pick_link_pools(c)) != 0)
		return rc;
	nslots = (uint32_t)1 << (32 - c->llen4 - 1);
	if ((used = calloc((nslots + 63) / 64, 8)) == NULL)
		return nomem();
	for (i = 0; i < c->nlinks; i++)
		if ((rc = link_addrs(c, &c->links[i], used, nslots)) != 0)
			break;
	free(used);
	if (rc != 0)
		return rc;
	if ((rc = link_ports(c)) != 0)
		return rc;
	for (i = 0; i < c->nlinks; i++) {
		const struct link *l = &c->links[i];
		struct rt *rt;
		int carrier;

		/* A link that is only a carrier does not exit at its far end. */
		if (l->direct) {
			if ((rt = add_route(c)) == NULL)
				return nomem();
			*rt = (struct rt){ l->acc, RT_LINK, l->rule, 0, l->name, "",
			    c->nodes[l->acc].n->name, (uint32_t)i, NULL, 0 };
		}
		if (l->carrier == NULL || (carrier = find_link(c, l->carrier)) < 0)
			continue;
		/* The via node: the nested link's outer packets, from the entry's inner address
		 * on the carrier, go out to the exit with NAT. */
		if ((rt = add_route(c)) == NULL)
			return nomem();
		*rt = (struct rt){ c->links[carrier].acc, RT_LINK, l->rule, 1, l->name, "",
		    c->nodes[l->acc].n->name, (uint32_t)carrier, NULL, 0 };
		if (c->nodes[l->acc].under_ip) {
			const struct nd *x = &c->nodes[l->acc];
			char buf[64];
			if ((rt->dst = arena_calloc(c->a, 1, sizeof(char *))) == NULL ||
			    (rt->dst[0] = arena_printf(c->a, "%s/%d", addr_ntop(&x->under_addr,
			    buf, sizeof(buf)), x->under_addr.family == AF_INET ? 32 : 128)) == NULL)
				return nomem();
			rt->ndst = 1;
		}
	}
	return 0;
}

/*
 * Route order on a node is priority order, first match wins: routes of rules that name
 * their users before rules for "*" (so the more specific rule wins), then by rule, then by
 * preference (the active exit first); the far-end routes of links follow, by link name.
 */
static int
rt_cmp(const void *x, const void *y)
{
	const struct rt *a = x, *b = y;
	int r;

	if (a->node != b->node)
		return a->node < b->node ? -1 : 1;
	if (a->klass != b->klass)
		return a->klass < b->klass ? -1 : 1;
	if (a->klass == RT_LINK) {
		if ((r = strcmp(a->key, b->key)) != 0)
			return r;
		if (a->rank != b->rank)
			return a->rank < b->rank ? -1 : 1;
	}
	if (a->rule != b->rule)
		return a->rule < b->rule ? -1 : 1;
	if (a->rank != b->rank)
		return a->rank < b->rank ? -1 : 1;
	return 0;
}

/* ---- packing a node ---- */

static char *
h_text(struct arena *a, uint32_t lo, uint32_t hi)
{
	return lo == hi ? arena_printf(a, "%u", lo) : arena_printf(a, "%u-%u", lo, hi);
}

static int
obfuscation(struct ctx *c, const struct awg_params *p, Pharos__V1__AwgObfuscation *o)
{
	char **h[4], **iv[5];
	int i;

	pharos__v1__awg_obfuscation__init(o);
	o->jc = (uint32_t)p->jc;
	o->jmin = (uint32_t)p->jmin;
	o->jmax = (uint32_t)p->jmax;
	o->s1 = (uint32_t)p->s1;
	o->s2 = (uint32_t)p->s2;
	o->s3 = (uint32_t)p->s3;
	o->s4 = (uint32_t)p->s4;
	h[0] = &o->h1; h[1] = &o->h2; h[2] = &o->h3; h[3] = &o->h4;
	iv[0] = &o->i1; iv[1] = &o->i2; iv[2] = &o->i3; iv[3] = &o->i4; iv[4] = &o->i5;
	for (i = 0; i < 4; i++)
		if ((*h[i] = h_text(c->a, p->h_lo[i], p->h_hi[i])) == NULL)
			return nomem();
	for (i = 0; i < 5; i++)
		if (p->i[i] != NULL)
			*iv[i] = UNCONST(p->i[i]);
	return 0;
}

static char **
strv(struct arena *a, const struct flist *l, size_t *n)
{
	char **v;
	size_t i;

	*n = l->n;
	if (l->n == 0)
		return NULL;
	if ((v = arena_calloc(a, l->n, sizeof(char *))) == NULL)
		return NULL;
	for (i = 0; i < l->n; i++)
		v[i] = UNCONST(FLIST_STR(*l, i).v);
	return v;
}

static int
gateway(struct ctx *c, const char *pool, char **out)
{
	struct ipaddr ip;
	unsigned len;
	bool host;
	char buf[64];

	if (addr_parse_cidr(&ip, &len, &host, pool) != 0) {
		err_set("desired: '%s' is not a prefix", pool);
		return ERR_INVAL;
	}
	ip.a[ip.family == AF_INET ? 3 : 15] |= 1;
	if ((*out = arena_printf(c->a, "%s/%u", addr_ntop(&ip, buf, sizeof(buf)), len)) == NULL)
		return nomem();
	return 0;
}

static bool
want_key(struct ctx *c, uint32_t node, ProtobufCBinaryData *out)
{
	uint8_t k[32];

	if (c->keys == NULL || !c->keys(c->keys_arg, c->nodes[node].n->name, k))
		return true;
	if ((out->data = arena_alloc(c->a, 32)) == NULL)
		return false;
	memcpy(out->data, k, 32);
	out->len = 32;
	return true;
}

struct end {
	uint32_t	node, link;
	bool		dial;
};

static int
end_cmp(const void *x, const void *y)
{
	const struct end *a = x, *b = y;

	if (a->node != b->node)
		return a->node < b->node ? -1 : 1;
	return a->link < b->link ? -1 : a->link > b->link;
}

/*
 * The previous build's own part of the node with the same name, if its bytes are equal,
 * replaces dn's. Names are matched by their SipHash (the previous fleet's records may be
 * gone); the bytes are compared whole, so a collision only costs a comparison.
 */
static void
share_own(struct ctx *c, uint32_t i, struct desired_node *dn)
{
	const struct desired *pd = c->prev;
	const struct priv *pv = pd != NULL ? pd->priv : NULL;
	size_t lo = 0, hi;

	if (pv == NULL || pv->name_key == NULL)
		return;
	/* Both builds are sorted by name; look near the same place first. */
	if (i < pd->n && pv->name_key[i] == c->hrw[i])
		lo = i;
	else {
		for (hi = pd->n; lo < hi && pv->name_key[lo] != c->hrw[i]; lo++)
			;
		if (lo == hi)
			return;
	}
	if (pd->nodes[lo].own_len == dn->own_len &&
	    memcmp(pd->nodes[lo].own, dn->own, dn->own_len) == 0) {
		sh_unref(dn->own);
		dn->own = sh_ref(pd->nodes[lo].own);
	}
}

/*
 * A rule's route sources (its users' device addresses: 990 strings in the benchmark fleet)
 * as CascadeRoute field 2, encoded once and shared by every route of the rule on every
 * node (DESIGN §8) instead of repeated in each: 45 -> ~8 MB of configs at 1,000 nodes.
 */
static int
rule_src_bytes(struct ctx *c, uint32_t rule, const uint8_t **out, size_t *len)
{
	const struct rrule *r = &c->rules[rule];
	size_t i, n = 0;
	uint8_t *p;

	if (c->rsrc == NULL && ((c->rsrc = calloc(c->nr, sizeof(*c->rsrc))) == NULL ||
	    (c->rsrc_len = calloc(c->nr, sizeof(*c->rsrc_len))) == NULL))
		return nomem();
	if (c->rsrc[rule] == NULL) {
		for (i = 0; i < r->nsrc; i++)
			n += ld_len(strlen(r->src[i]));
		if ((c->rsrc[rule] = p = sh_alloc(n)) == NULL)
			return nomem();
		for (i = 0; i < r->nsrc; i++)
			p = put_ld(p, 2 << 3 | 2, r->src[i], strlen(r->src[i]));
		c->rsrc_len[rule] = n;
	}
	*out = c->rsrc_len[rule] > 0 ? c->rsrc[rule] : NULL;
	*len = c->rsrc_len[rule];
	return 0;
}

/* The node's routes, in order: each its own tail (every field but a rule's sources). */
static int
pack_routes(struct ctx *c, const struct rt *rts, size_t nrts, struct desired_node *dn)
{
	Pharos__V1__CascadeRoute cr;
	char *lsrc[2];
	size_t i, l;

	dn->routes_len = 0;
	if (nrts == 0)
		return 0;
	if ((dn->routes = calloc(nrts, sizeof(*dn->routes))) == NULL)
		return nomem();
	dn->nroutes = nrts;
	for (i = 0; i < nrts; i++) {
		const struct rt *r = &rts[i];
		struct desired_route *dr = &dn->routes[i];

		pharos__v1__cascade_route__init(&cr);
		cr.rule = UNCONST(c->rules[r->rule].name);
		if (r->klass == RT_LINK) {
			const struct link *lk = &c->links[r->link];

			lsrc[0] = lk->host4[0];
			lsrc[1] = lk->host6[0];
			cr.sources = lsrc;
			cr.n_sources = 2;
		} else if (rule_src_bytes(c, r->rule, &dr->src, &dr->src_len) != 0)
			return ERR_NOMEM;
		cr.destinations = r->dst;
		cr.n_destinations = r->ndst;
		cr.via_link = UNCONST(r->via);
		cr.exit_node = UNCONST(r->exit);
		dr->tail_len = pharos__v1__cascade_route__get_packed_size(&cr);
		if ((dr->tail = malloc(dr->tail_len ? dr->tail_len : 1)) == NULL)
			return nomem();
		pharos__v1__cascade_route__pack(&cr, dr->tail);
		l = dr->tail_len + dr->src_len;
		dn->routes_len += 1 + varint_len(l) + l;
	}
	return 0;
}

/* A route's field 14 tag and length; at most 11 bytes. */
static size_t
route_hdr(uint8_t out[11], const struct desired_route *dr)
{
	out[0] = 14 << 3 | 2;
	return (size_t)(put_varint(out + 1, dr->tail_len + dr->src_len) - out);
}

static uint8_t *
put_routes(uint8_t *p, const struct desired_node *dn)
{
	size_t i;

	for (i = 0; i < dn->nroutes; i++) {
		const struct desired_route *dr = &dn->routes[i];

		p += route_hdr(p, dr);
		memcpy(p, dr->tail, dr->tail_len);
		p += dr->tail_len;
		if (dr->src_len > 0)
			memcpy(p, dr->src, dr->src_len);
		p += dr->src_len;
	}
	return p;
}

static int
pack_node(struct ctx *c, uint32_t ni, const struct end *ends, size_t nends,
    const struct rt *rts, size_t nrts, struct desired_node *dn)
{
	static char *const dns_default[] = { UNCONST("1.1.1.1"), UNCONST("1.0.0.1") };
	static char *const any[] = { UNCONST("0.0.0.0/0"), UNCONST("::/0") };
	const struct fleet *f = c->f;
	const struct nd *d = &c->nodes[ni];
	const struct node *n = d->n;
	Pharos__V1__NodeConfig cfg;
	Pharos__V1__AwgInterface awg;
	Pharos__V1__AwgObfuscation obf;
	Pharos__V1__Reality rx;
	Pharos__V1__Role roles[2];
	Pharos__V1__CascadeLink *cl = NULL, **clp = NULL;
	char *addrs[2];
	size_t i, nroles = 0;
	int rc = ERR_NOMEM;

	pharos__v1__node_config__init(&cfg);
	pharos__v1__awg_interface__init(&awg);
	pharos__v1__reality__init(&rx);
	cfg.fleet_id = UNCONST(f->fleet.id.v != NULL ? f->fleet.id.v : "");
	cfg.node = UNCONST(n->name);
	if (n->roles_mask & ROLE_ENTRY)
		roles[nroles++] = PHAROS__V1__ROLE__ROLE_ENTRY;
	if (n->roles_mask & ROLE_EXIT)
		roles[nroles++] = PHAROS__V1__ROLE__ROLE_EXIT;
	cfg.roles = roles;
	cfg.n_roles = nroles;
	cfg.idle = d->idle;
	if (f->eff.amneziawg) {
		awg.listen_port = (uint32_t)d->awg.port;
		awg.mtu = (uint32_t)(d->mtu - AWG_LAYER - d->awg.s4);
		if ((rc = gateway(c, f->eff.tunnel_pool, &addrs[0])) != 0)
			return rc;
		awg.n_addresses = 1;
		if (f->network.tunnel_pool6.v != NULL) {
			if ((rc = gateway(c, f->network.tunnel_pool6.v, &addrs[1])) != 0)
				return rc;
			awg.n_addresses = 2;
		}
		awg.addresses = addrs;
		if ((rc = obfuscation(c, &d->awg, &obf)) != 0)
			return rc;
		awg.obfuscation = &obf;
		cfg.amneziawg = &awg;
	}
	if (f->eff.xray) {
		const struct xray *nx = &n->xray, *fx = &f->xray;
		const struct flist *sn = nx->server_names.set ? &nx->server_names :
		    fx->server_names.set ? &fx->server_names : NULL;
		const struct flist *si = nx->short_ids.set ? &nx->short_ids :
		    fx->short_ids.set ? &fx->short_ids : NULL;
		const char *decoy = nx->decoy.v != NULL ? nx->decoy.v : fx->decoy.v != NULL ?
		    fx->decoy.v : FLEET_DEFAULT_DECOY;
		const char *flow = nx->flow.v != NULL ? nx->flow.v : fx->flow.v != NULL ?
		    fx->flow.v : DEFAULT_FLOW;

		rx.port = nx->port.set ? (uint32_t)nx->port.v : fx->port.set ?
		    (uint32_t)fx->port.v : DEFAULT_XRAY_PORT;
		rx.target = UNCONST(decoy);
		if (sn != NULL) {
			if ((rx.server_names = strv(c->a, sn, &rx.n_server_names)) == NULL &&
			    sn->n > 0)
				return nomem();
		} else {
			char host[256];
			int port;
			if (addr_parse_host_port(host, sizeof(host), &port, decoy, false) != 0)
				snprintf(host, sizeof(host), "%s", decoy);
			if ((rx.server_names = arena_calloc(c->a, 1, sizeof(char *))) == NULL ||
			    (rx.server_names[0] = arena_strdup(c->a, host)) == NULL)
				return nomem();
			rx.n_server_names = 1;
		}
		if (si != NULL) {
			if ((rx.short_ids = strv(c->a, si, &rx.n_short_ids)) == NULL && si->n > 0)
				return nomem();
		} else {
			if ((rx.short_ids = arena_calloc(c->a, 1, sizeof(char *))) == NULL)
				return nomem();
			rx.short_ids[0] = UNCONST("");
			rx.n_short_ids = 1;
		}
		rx.flow = UNCONST(flow);
		cfg.xray = &rx;
	}
	if ((n->roles_mask & ROLE_ENTRY) &&
	    (cfg.entry_pool = strv(c->a, &n->entry_pool, &cfg.n_entry_pool)) == NULL &&
	    n->entry_pool.n > 0)
		return nomem();
	if (f->network.dns.set) {
		if ((cfg.dns = strv(c->a, &f->network.dns, &cfg.n_dns)) == NULL &&
		    f->network.dns.n > 0)
			return nomem();
	} else {
		cfg.dns = UNCONSTV(dns_default);
		cfg.n_dns = 2;
	}
	if (nends > 0 && ((cl = calloc(nends, sizeof(*cl))) == NULL ||
	    (clp = calloc(nends, sizeof(*clp))) == NULL))
		goto out;
	for (i = 0; i < nends; i++) {
		const struct link *l = &c->links[ends[i].link];
		bool dial = ends[i].dial;
		uint32_t other = dial ? l->acc : l->dial;
		int side = dial ? 0 : 1;

		pharos__v1__cascade_link__init(&cl[i]);
		clp[i] = &cl[i];
		cl[i].name = l->name;
		cl[i].peer_node = UNCONST(c->nodes[other].n->name);
		cl[i].direction = dial ? PHAROS__V1__LINK_DIRECTION__LINK_DIRECTION_DIAL :
		    PHAROS__V1__LINK_DIRECTION__LINK_DIRECTION_ACCEPT;
		if (!want_key(c, other, &cl[i].peer_public_key))
			goto out;
		if (dial) {
			if ((cl[i].endpoint = arena_printf(c->a, "%s:%u", c->nodes[l->acc].under,
			    l->port)) == NULL)
				goto out;
			cl[i].persistent_keepalive = LINK_KEEPALIVE;
			cl[i].allowed_ips = UNCONSTV(any);
			cl[i].n_allowed_ips = 2;
		} else {
			cl[i].listen_port = l->port;
			if ((cl[i].allowed_ips = arena_calloc(c->a, 2, sizeof(char *))) == NULL)
				goto out;
			cl[i].allowed_ips[0] = l->host4[0];
			cl[i].allowed_ips[1] = l->host6[0];
			cl[i].n_allowed_ips = 2;
		}
		if ((cl[i].addresses = arena_calloc(c->a, 2, sizeof(char *))) == NULL)
			goto out;
		cl[i].addresses[0] = l->in4[side];
		cl[i].addresses[1] = l->in6[side];
		cl[i].n_addresses = 2;
		cl[i].mtu = l->mtu > 0 ? (uint32_t)l->mtu : 0;
		if ((cl[i].obfuscation = arena_alloc(c->a, sizeof(*cl[i].obfuscation))) == NULL ||
		    obfuscation(c, &c->nodes[l->acc].awg, cl[i].obfuscation) != 0)
			goto out;
		if (l->carrier != NULL)
			cl[i].carried_by = UNCONST(l->carrier);
	}
	cfg.links = clp;
	cfg.n_links = nends;
	dn->own_len = pharos__v1__node_config__get_packed_size(&cfg);
	if ((dn->own = sh_alloc(dn->own_len)) == NULL)
		goto out;
	pharos__v1__node_config__pack(&cfg, dn->own);
	share_own(c, ni, dn);
	if (pack_routes(c, rts, nrts, dn) != 0)
		goto out;
	rc = 0;
out:
	free(cl);
	free(clp);
	return rc == 0 ? 0 : nomem();
}

static int
pack_nodes(struct ctx *c, struct desired *ds)
{
	struct end *ends = NULL;
	size_t i, k, e = 0, r = 0, nends = 2 * c->nlinks, e0, r0;
	int rc = 0;

	if (nends > 0 && (ends = calloc(nends, sizeof(*ends))) == NULL)
		return nomem();
	for (i = 0; i < c->nlinks; i++) {
		ends[2 * i] = (struct end){ c->links[i].dial, (uint32_t)i, true };
		ends[2 * i + 1] = (struct end){ c->links[i].acc, (uint32_t)i, false };
	}
	if (nends > 0)
		qsort(ends, nends, sizeof(*ends), end_cmp);
	if (c->nroutes > 0)
		qsort(c->routes, c->nroutes, sizeof(*c->routes), rt_cmp);
	for (i = 0; i < c->nn; i++) {
		struct desired_node *dn = &ds->nodes[i];
		const struct nd *d = &c->nodes[i];
		uint8_t h[EVP_MAX_MD_SIZE];
		unsigned hl = 0;
		bool ok;

		for (e0 = e; e < nends && ends[e].node == i; e++)
			;
		for (r0 = r; r < c->nroutes && c->routes[r].node == i; r++)
			;
		dn->name = d->n->name;
		dn->node = d->n;
		control_addr(d->n, dn);
		if ((rc = pack_node(c, (uint32_t)i, ends + e0, e - e0, c->routes + r0, r - r0,
		    dn)) != 0)
			break;
		if (d->block >= 0) {
			const struct block *b = &c->blocks[d->block];
			dn->clients = b->len > 0 ? b->bytes : NULL;
			dn->clients_len = b->len;
			dn->npeers = b->npeers;
			dn->nusers = b->nusers;
			ok = EVP_MD_CTX_copy_ex(c->md, b->st) == 1;
		} else {
			ok = EVP_DigestInit_ex2(c->md, c->sha256, NULL) == 1;
		}
		dn->len = dn->clients_len + dn->own_len + dn->routes_len;
		ok = ok && EVP_DigestUpdate(c->md, dn->own, dn->own_len) == 1;
		for (k = 0; ok && k < dn->nroutes; k++) {
			const struct desired_route *dr = &dn->routes[k];
			uint8_t hdr[11];

			ok = EVP_DigestUpdate(c->md, hdr, route_hdr(hdr, dr)) == 1 &&
			    EVP_DigestUpdate(c->md, dr->tail, dr->tail_len) == 1 &&
			    (dr->src_len == 0 ||
			    EVP_DigestUpdate(c->md, dr->src, dr->src_len) == 1);
		}
		if (!ok || EVP_DigestFinal_ex(c->md, h, &hl) != 1 || hl != 32) {
			err_set("desired: SHA-256 failed");
			rc = ERR_LIB;
			break;
		}
		memcpy(dn->content_hash, h, 32);
	}
	free(ends);
	return rc;
}

/* ---- the interface ---- */

int
desired_build(struct desired **out, const struct fleet *f, struct ipam *ipam,
    desired_key_fn keys, void *keys_arg)
{
	return desired_build_from(out, NULL, f, ipam, keys, keys_arg);
}

int
desired_build_from(struct desired **out, const struct desired *prev, const struct fleet *f,
    struct ipam *ipam, desired_key_fn keys, void *keys_arg)
{
	struct ctx c;
	struct desired *ds = NULL;
	struct priv *pv = NULL;
	size_t i;
	int rc;

	*out = NULL;
	memset(&c, 0, sizeof(c));
	c.prev = prev;
	c.f = f;
	c.ipam = ipam;
	c.keys = keys;
	c.keys_arg = keys_arg;
	if ((c.a = arena_new()) == NULL || (ds = calloc(1, sizeof(*ds))) == NULL ||
	    (pv = calloc(1, sizeof(*pv))) == NULL || (c.md = EVP_MD_CTX_new()) == NULL ||
	    (c.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) {
		rc = nomem();
		goto out;
	}
	pv->refs = 1;
	ds->priv = pv;
	if ((rc = setup_nodes(&c)) != 0 || (rc = setup_rules(&c)) != 0 ||
	    (rc = setup_devices(&c)) != 0 || (rc = index_rules(&c)) != 0 ||
	    (rc = rule_sources(&c)) != 0 ||
	    (rc = setup_blocks(&c)) != 0)
		goto out;
	if ((rc = plan_paths(&c)) != 0 || (rc = finish_links(&c)) != 0)
		goto out;
	if ((c.nn > 0 && (ds->nodes = calloc(c.nn, sizeof(*ds->nodes))) == NULL) ||
	    (c.nblocks > 0 && ((pv->blocks = calloc(c.nblocks, sizeof(*pv->blocks))) == NULL ||
	    (pv->block_len = calloc(c.nblocks, sizeof(*pv->block_len))) == NULL))) {
		rc = nomem();
		goto out;
	}
	ds->n = c.nn;
	if ((rc = pack_nodes(&c, ds)) != 0)
		goto out;
	/* The client bytes belong to the result now. */
	for (i = 0; i < c.nblocks; i++) {
		if (c.blocks[i].bytes == NULL)
			continue;
		pv->block_len[pv->nblocks] = c.blocks[i].len;
		pv->blocks[pv->nblocks++] = c.blocks[i].bytes;
		c.blocks[i].bytes = NULL;
	}
	pv->name_key = c.hrw;	/* for the next build's share_own() */
	c.hrw = NULL;
	pv->srcs = c.rsrc;
	pv->nsrcs = c.rsrc != NULL ? c.nr : 0;
	c.rsrc = NULL;
out:
	for (i = 0; i < c.nblocks; i++) {
		sh_unref(c.blocks[i].bytes);
		EVP_MD_CTX_free(c.blocks[i].st);
	}
	free(c.blocks);
	free(c.hrw);
	EVP_MD_CTX_free(c.md);
	EVP_MD_free(c.sha256);
	free(c.nodes);
	free(c.rules);
	free(c.urules);
	free(c.nrules);
	free(c.devs);
	free(c.by_email);
	free(c.email_pos);
	for (i = 0; c.rdev != NULL && i < c.nr; i++)
		free(c.rdev[i]);
	free(c.rdev);
	free(c.nrdev);
	free(c.links);
	free(c.routes);
	for (i = 0; c.rsrc != NULL && i < c.nr; i++)
		sh_unref(c.rsrc[i]);
	free(c.rsrc);
	free(c.rsrc_len);
	arena_free(c.a);
	if (rc != 0) {
		desired_free(ds);
		return rc;
	}
	*out = ds;
	return 0;
}

void
desired_free(struct desired *ds)
{
	struct priv *pv;
	size_t i, j;

	if (ds == NULL)
		return;
	pv = ds->priv;
	if (pv != NULL && __atomic_sub_fetch(&pv->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (i = 0; i < ds->n; i++) {
		struct desired_node *dn = &ds->nodes[i];

		sh_unref(dn->own);
		for (j = 0; j < dn->nroutes; j++)
			free(dn->routes[j].tail);
		free(dn->routes);
	}
	free(ds->nodes);
	if (pv != NULL) {
		for (i = 0; i < pv->nblocks; i++)
			sh_unref(pv->blocks[i]);
		free(pv->blocks);
		free(pv->block_len);
		free(pv->name_key);
		for (i = 0; i < pv->nsrcs; i++)
			sh_unref(pv->srcs[i]);
		free(pv->srcs);
		free(pv);
	}
	free(ds);
}

struct desired *
desired_ref(struct desired *ds)
{
	if (ds != NULL && ds->priv != NULL)
		__atomic_add_fetch(&((struct priv *)ds->priv)->refs, 1, __ATOMIC_RELAXED);
	return ds;
}

const struct desired_node *
desired_find(const struct desired *ds, const char *name)
{
	size_t lo = 0, hi = ds->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int r = strcmp(ds->nodes[mid].name, name);
		if (r == 0)
			return &ds->nodes[mid];
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* own || routes at p. */
static void
put_own(uint8_t *p, const struct desired_node *dn)
{
	if (dn->own_len > 0)
		memcpy(p, dn->own, dn->own_len);
	put_routes(p + dn->own_len, dn);
}

int
desired_content(const struct desired_node *dn, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if ((*out = malloc(dn->len ? dn->len : 1)) == NULL)
		return nomem();
	if (dn->clients_len > 0)
		memcpy(*out, dn->clients, dn->clients_len);
	put_own(*out + dn->clients_len, dn);
	*len = dn->len;
	return 0;
}

int
desired_own(const struct desired_node *dn, uint8_t **out, size_t *len)
{
	size_t n = dn->own_len + dn->routes_len;

	*len = 0;
	if ((*out = malloc(n ? n : 1)) == NULL)
		return nomem();
	put_own(*out, dn);
	*len = n;
	return 0;
}

int
desired_stamp(const struct desired_node *dn, const char *revision, uint64_t serial,
    int64_t issued_unix, uint8_t **out, size_t *len)
{
	Pharos__V1__NodeConfig st;
	size_t n;
	int rc;

	pharos__v1__node_config__init(&st);
	*out = NULL;
	*len = 0;
	st.revision = UNCONST(revision != NULL ? revision : "");
	st.serial = serial;
	st.issued_unix_seconds = issued_unix;
	n = pharos__v1__node_config__get_packed_size(&st);
	if (dn->len > SIZE_MAX - n) {
		err_set("desired: config too large");
		return ERR_TOOBIG;
	}
	if ((rc = desired_content(dn, out, len)) != 0)
		return rc;
	if (n > 0) {
		uint8_t *p = realloc(*out, dn->len + n);
		if (p == NULL) {
			free(*out);
			*out = NULL;
			*len = 0;
			return nomem();
		}
		*out = p;
		pharos__v1__node_config__pack(&st, p + dn->len);
	}
	*len = dn->len + n;
	return 0;
}
