/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tunnel addresses (ipam.h). One entry per key in a dense array, found through an
 * open-addressing table of indexes; used IPv4 offsets in a bitmap (2 MiB for a /8), used
 * IPv6 host values in a hash set. A key's first candidate is SipHash-2-4 of the key under
 * a fixed key, so two controllers that see the same devices mostly hand out the same
 * addresses; collisions probe linearly. Everything is O(1) on average per key, except a
 * nearly full IPv4 pool, where the probe skips full 64-bit bitmap words.
 */
#include <arpa/inet.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "err.h"
#include "ipam.h"

#define NONE4		UINT32_MAX
#define MIN_PREFIX4	8	/* 2^24 addresses: a 2 MiB bitmap */
#define MAX_PREFIX4	30
#define MAX_PREFIX6	120

enum { ENT_V6 = 1U << 0, ENT_NEW = 1U << 1 };

struct ent {
	uint8_t		key[32];
	uint64_t	host6;		/* valid with ENT_V6 */
	uint32_t	off4;		/* offset in pool4, NONE4 if none */
	uint32_t	flags;
};

struct ipam {
	char		 pool4_text[48], pool6_text[64];
	uint32_t	 net4;		/* host order */
	uint32_t	 size4;		/* addresses in the pool */
	uint64_t	*used4;		/* bitmap of offsets; 0, 1 and size4 - 1 always set */
	uint32_t	 nused4;	/* including the three reserved */
	bool		 have6;
	uint8_t		 net6[16];
	unsigned	 bits6;		/* host bits used, <= 64 */
	uint64_t	*set6;		/* open addressing; 0 = empty (host values 0, 1 never used) */
	size_t		 cap6, nused6;
	struct ent	*ents;
	size_t		 nents, capents;
	uint64_t	*tab;		/* hash << 32 | (index + 1) into ents; 0 = empty */
	size_t		 captab;
	size_t		 nassigned;	/* entries with a v4 address */
};

/* Fixed SipHash keys: the same inputs give the same addresses on every controller. */
static const uint8_t hkey4[crypto_shorthash_KEYBYTES] = "pharos-ipam4-v1";
static const uint8_t hkey6[crypto_shorthash_KEYBYTES] = "pharos-ipam6-v1";

static uint64_t
siphash(const uint8_t key[32], const uint8_t *hk)
{
	uint8_t out[crypto_shorthash_BYTES];
	uint64_t v = 0;
	int i;

	crypto_shorthash(out, key, 32, hk);
	for (i = 0; i < 8; i++)
		v |= (uint64_t)out[i] << (8 * i);
	return v;
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

static bool
bit_get(const uint64_t *b, uint32_t i)
{
	return (b[i >> 6] >> (i & 63)) & 1;
}

static void
bit_set(uint64_t *b, uint32_t i)
{
	b[i >> 6] |= 1ULL << (i & 63);
}

static void
bit_clear(uint64_t *b, uint32_t i)
{
	b[i >> 6] &= ~(1ULL << (i & 63));
}

int
ipam_new(struct ipam **out, const char *pool4, const char *pool6)
{
	struct ipam *m;
	struct ipaddr ip;
	unsigned prefix;
	uint32_t i;
	bool host;

	*out = NULL;
	if (pool4 == NULL || addr_parse_cidr(&ip, &prefix, &host, pool4) != 0 ||
	    ip.family != AF_INET || host) {
		err_set("ipam: '%s' is not an IPv4 prefix", pool4 ? pool4 : "(null)");
		return ERR_INVAL;
	}
	if (prefix < MIN_PREFIX4 || prefix > MAX_PREFIX4) {
		err_set("ipam: tunnel pool %s: the prefix must be /%d to /%d", pool4, MIN_PREFIX4,
		    MAX_PREFIX4);
		return ERR_INVAL;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		err_set("ipam: out of memory");
		return ERR_NOMEM;
	}
	snprintf(m->pool4_text, sizeof(m->pool4_text), "%s", pool4);
	m->net4 = addr_v4(&ip);
	m->size4 = (uint32_t)1 << (32 - prefix);
	if ((m->used4 = calloc((m->size4 + 63) / 64, sizeof(uint64_t))) == NULL)
		goto nomem;
	bit_set(m->used4, 0);
	bit_set(m->used4, 1);
	bit_set(m->used4, m->size4 - 1);
	m->nused4 = 3;
	for (i = m->size4; i % 64 != 0; i++)	/* padding of a pool smaller than 64 */
		bit_set(m->used4, i);
	if (pool6 != NULL) {
		if (addr_parse_cidr(&ip, &prefix, &host, pool6) != 0 || ip.family != AF_INET6 ||
		    host || prefix > MAX_PREFIX6) {
			err_set("ipam: '%s' is not an IPv6 prefix of /%d or larger", pool6,
			    MAX_PREFIX6);
			ipam_free(m);
			return ERR_INVAL;
		}
		snprintf(m->pool6_text, sizeof(m->pool6_text), "%s", pool6);
		m->have6 = true;
		memcpy(m->net6, ip.a, 16);
		m->bits6 = 128 - prefix > 64 ? 64 : 128 - prefix;
	}
	*out = m;
	return 0;
nomem:
	ipam_free(m);
	err_set("ipam: out of memory");
	return ERR_NOMEM;
}

void
ipam_free(struct ipam *m)
{
	if (m == NULL)
		return;
	free(m->used4);
	free(m->set6);
	free(m->ents);
	free(m->tab);
	free(m);
}

/* ---- the key table ---- */

/* The upper half of a slot: the key's hash, so most mismatches never touch ents. */
#define TAB_FP(h)	((h) & 0xffffffff00000000ULL)

static struct ent *
find(const struct ipam *m, const uint8_t key[32], uint64_t h)
{
	size_t i;

	if (m->captab == 0)
		return NULL;
	for (i = h & (m->captab - 1); m->tab[i] != 0; i = (i + 1) & (m->captab - 1)) {
		struct ent *e;
		if ((m->tab[i] & 0xffffffff00000000ULL) != TAB_FP(h))
			continue;
		e = &m->ents[(m->tab[i] & 0xffffffff) - 1];
		if (memcmp(e->key, key, 32) == 0)
			return e;
	}
	return NULL;
}

static int
tab_grow(struct ipam *m)
{
	size_t cap = m->captab ? m->captab * 2 : 1024, i, j;
	uint64_t *t, h;

	if (cap > ((size_t)UINT32_MAX >> 1) || (t = calloc(cap, sizeof(*t))) == NULL)
		return ERR_NOMEM;
	for (i = 0; i < m->nents; i++) {
		h = siphash(m->ents[i].key, hkey4);
		for (j = h & (cap - 1); t[j] != 0; j = (j + 1) & (cap - 1))
			;
		t[j] = TAB_FP(h) | ((uint64_t)i + 1);
	}
	free(m->tab);
	m->tab = t;
	m->captab = cap;
	return 0;
}

/* The entry for key, created (without addresses) if absent. */
static struct ent *
get_ent(struct ipam *m, const uint8_t key[32], uint64_t h)
{
	struct ent *e;
	size_t i;

	if ((e = find(m, key, h)) != NULL)
		return e;
	if ((m->nents + 1) * 2 > m->captab && tab_grow(m) != 0)
		return NULL;
	if (m->nents == m->capents) {
		size_t cap = m->capents ? m->capents * 2 : 256;
		struct ent *v;
		if (cap > UINT32_MAX - 1 || (v = reallocarray(m->ents, cap, sizeof(*v))) == NULL)
			return NULL;
		m->ents = v;
		m->capents = cap;
	}
	e = &m->ents[m->nents];
	memset(e, 0, sizeof(*e));
	memcpy(e->key, key, 32);
	e->off4 = NONE4;
	for (i = h & (m->captab - 1); m->tab[i] != 0; i = (i + 1) & (m->captab - 1))
		;
	m->tab[i] = TAB_FP(h) | (uint64_t)++m->nents;
	return e;
}

/* ---- IPv6 host values ---- */

static bool
set6_has(const struct ipam *m, uint64_t v)
{
	size_t i;

	if (m->cap6 == 0)
		return false;
	for (i = mix64(v) & (m->cap6 - 1); m->set6[i] != 0; i = (i + 1) & (m->cap6 - 1))
		if (m->set6[i] == v)
			return true;
	return false;
}

static void
set6_put_nogrow(uint64_t *set, size_t cap, uint64_t v)
{
	size_t i;

	for (i = mix64(v) & (cap - 1); set[i] != 0 && set[i] != v; i = (i + 1) & (cap - 1))
		;
	set[i] = v;
}

static int
set6_add(struct ipam *m, uint64_t v)
{
	if ((m->nused6 + 1) * 2 > m->cap6) {
		size_t cap = m->cap6 ? m->cap6 * 2 : 1024, i;
		uint64_t *s;
		if ((s = calloc(cap, sizeof(*s))) == NULL)
			return ERR_NOMEM;
		for (i = 0; i < m->cap6; i++)
			if (m->set6[i] != 0)
				set6_put_nogrow(s, cap, m->set6[i]);
		free(m->set6);
		m->set6 = s;
		m->cap6 = cap;
	}
	set6_put_nogrow(m->set6, m->cap6, v);
	m->nused6++;
	return 0;
}

static uint64_t
mask6(const struct ipam *m)
{
	return m->bits6 >= 64 ? UINT64_MAX : ((uint64_t)1 << m->bits6) - 1;
}

/*
 * RFC 5952 text, as inet_ntop() writes it but without its sprintf per group (a third of
 * the time of a 100,000-device build went there). Addresses whose first 80 bits are zero
 * may be written with an embedded IPv4 part: those go through inet_ntop().
 */
static void
ntop6(const uint8_t a[16], char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned w[8], i, best = 8, bestlen = 0, run, j;
	char *p = out;

	for (i = 0; i < 8; i++)
		w[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
	if ((w[0] | w[1] | w[2] | w[3] | w[4]) == 0) {
		inet_ntop(AF_INET6, a, out, 46);
		return;
	}
	for (i = 0; i < 8; i += run ? run : 1) {
		for (run = 0; i + run < 8 && w[i + run] == 0; run++)
			;
		if (run > bestlen) {
			best = i;
			bestlen = run;
		}
	}
	if (bestlen < 2)
		best = 8;
	for (i = 0; i < 8; i++) {
		if (i == best) {
			*p++ = ':';
			if (i == 0)
				*p++ = ':';
			i += bestlen - 1;
			continue;
		}
		for (j = 12; j > 0 && ((w[i] >> j) & 15) == 0; j -= 4)
			;
		for (;; j -= 4) {
			*p++ = hex[(w[i] >> j) & 15];
			if (j == 0)
				break;
		}
		if (i < 7)
			*p++ = ':';
	}
	*p = '\0';
}

static void
fmt6(const struct ipam *m, uint64_t host, char out[46])
{
	uint8_t a[16];
	int i;

	memcpy(a, m->net6, 16);
	for (i = 0; i < 8; i++)
		a[15 - i] |= (uint8_t)(host >> (8 * i));
	ntop6(a, out);
}

/* The host value of v6 text in pool6, or 0 (never a valid assignment) if outside it. */
static uint64_t
parse6(const struct ipam *m, const char *s)
{
	struct ipaddr ip;
	uint64_t host = 0;
	int i;

	if (s == NULL || addr_parse_ip(&ip, s) != 0 || ip.family != AF_INET6)
		return 0;
	for (i = 0; i < 16; i++) {
		uint8_t hm = i >= 8 ? (uint8_t)(mask6(m) >> (8 * (15 - i))) : 0;
		if ((ip.a[i] & ~hm) != m->net6[i])
			return 0;
	}
	for (i = 8; i < 16; i++)
		host = host << 8 | ip.a[i];
	return host > 1 ? host : 0;
}

/* ---- IPv4 offsets ---- */

/* The offset of v4 text in pool4 if it may be handed out, else NONE4. */
static uint32_t
parse4(const struct ipam *m, const char *s)
{
	struct ipaddr ip;
	uint32_t off;

	if (s == NULL || addr_parse_ip(&ip, s) != 0 || ip.family != AF_INET)
		return NONE4;
	off = addr_v4(&ip) - m->net4;
	if ((addr_v4(&ip) & ~(m->size4 - 1)) != m->net4 || off < 2 || off == m->size4 - 1)
		return NONE4;
	return off;
}

static void
fmt4(const struct ipam *m, uint32_t off, char out[16])
{
	uint32_t a = m->net4 + off;
	char *p = out;
	int i;

	for (i = 24; i >= 0; i -= 8) {
		unsigned b = (a >> i) & 255;
		if (b >= 100)
			*p++ = (char)('0' + b / 100);
		if (b >= 10)
			*p++ = (char)('0' + b / 10 % 10);
		*p++ = (char)('0' + b % 10);
		*p++ = i > 0 ? '.' : '\0';
	}
}

/* The first free offset at or after start, wrapping; the pool is known not to be full. */
static uint32_t
probe4(const struct ipam *m, uint32_t start)
{
	uint32_t nwords = (m->size4 + 63) / 64, w = start >> 6, n;
	uint64_t word = m->used4[w] | ((1ULL << (start & 63)) - 1);

	for (n = 0; n <= nwords; n++) {
		if (word != UINT64_MAX) {
			uint32_t off = (w << 6) + (uint32_t)__builtin_ctzll(~word);
			if (off < m->size4)
				return off;
		}
		w = w + 1 == nwords ? 0 : w + 1;
		word = m->used4[w];
	}
	return NONE4;	/* not reached: the caller checked for room */
}

static int
assign4(struct ipam *m, struct ent *e, uint64_t h)
{
	uint32_t usable = m->size4 - 3, off;

	if (m->nused4 >= m->size4) {
		err_set("ipam: network.tunnel_pool %s is full: all %u device addresses are "
		    "taken", m->pool4_text, usable);
		return ERR_TOOBIG;
	}
	off = probe4(m, 2 + (uint32_t)(h % usable));
	if (off == NONE4) {
		err_set("ipam: network.tunnel_pool %s: no free address (internal error)",
		    m->pool4_text);
		return ERR_TOOBIG;
	}
	bit_set(m->used4, off);
	m->nused4++;
	e->off4 = off;
	m->nassigned++;
	return 0;
}

static int
assign6(struct ipam *m, struct ent *e)
{
	uint64_t mask = mask6(m), v, n;

	if (m->bits6 < 64 && m->nused6 >= mask - 1) {
		err_set("ipam: network.tunnel_pool6 %s is full: all %llu device addresses are "
		    "taken", m->pool6_text, (unsigned long long)(mask - 1));
		return ERR_TOOBIG;
	}
	v = siphash(e->key, hkey6) & mask;
	for (n = 0;; n++) {
		if (v > 1 && !set6_has(m, v))
			break;
		v = (v + 1) & mask;
		if (m->bits6 < 64 && n > mask) {
			err_set("ipam: network.tunnel_pool6 %s: no free address", m->pool6_text);
			return ERR_TOOBIG;
		}
	}
	if (set6_add(m, v) != 0) {
		err_set("ipam: out of memory");
		return ERR_NOMEM;
	}
	e->host6 = v;
	e->flags |= ENT_V6;
	return 0;
}

/* ---- the interface ---- */

int
ipam_seed(struct ipam *m, const uint8_t key[32], const char *v4, const char *v6)
{
	uint64_t h = siphash(key, hkey4), host;
	uint32_t off = parse4(m, v4);
	struct ent *e;

	if ((e = get_ent(m, key, h)) == NULL) {
		err_set("ipam: out of memory");
		return ERR_NOMEM;
	}
	/* The first claim on an address stands; a later conflicting one is ignored. */
	if (e->off4 == NONE4 && off != NONE4 && !bit_get(m->used4, off)) {
		bit_set(m->used4, off);
		m->nused4++;
		e->off4 = off;
		m->nassigned++;
	}
	if (m->have6 && !(e->flags & ENT_V6) && (host = parse6(m, v6)) != 0 &&
	    !set6_has(m, host)) {
		if (set6_add(m, host) != 0) {
			err_set("ipam: out of memory");
			return ERR_NOMEM;
		}
		e->host6 = host;
		e->flags |= ENT_V6;
	}
	return 0;
}

int
ipam_reserve(struct ipam *m, const uint8_t key[32], const char *v4)
{
	uint64_t h = siphash(key, hkey4);
	uint32_t off = parse4(m, v4);
	struct ent *e;
	size_t i;

	if (off == NONE4) {
		err_set("ipam: %s is not a device address in network.tunnel_pool %s",
		    v4 ? v4 : "(null)", m->pool4_text);
		return ERR_INVAL;
	}
	if ((e = get_ent(m, key, h)) == NULL) {
		err_set("ipam: out of memory");
		return ERR_NOMEM;
	}
	if (e->off4 == off)
		return 0;
	if (bit_get(m->used4, off)) {
		/* An explicit address wins over a remembered one: that key gets a new address
		 * the next time it is asked for. Linear, but only on this rare conflict. */
		for (i = 0; i < m->nents; i++)
			if (m->ents[i].off4 == off) {
				m->ents[i].off4 = NONE4;
				m->nassigned--;
				break;
			}
	} else {
		bit_set(m->used4, off);
		m->nused4++;
	}
	if (e->off4 != NONE4) {
		bit_clear(m->used4, e->off4);
		m->nused4--;
		m->nassigned--;
	}
	e->off4 = off;
	e->flags |= ENT_NEW;
	m->nassigned++;
	return 0;
}

int
ipam_get(struct ipam *m, const uint8_t key[32], char v4[16], char v6[46])
{
	uint64_t h = siphash(key, hkey4);
	struct ent *e;
	int rc;

	if ((e = get_ent(m, key, h)) == NULL) {
		err_set("ipam: out of memory");
		return ERR_NOMEM;
	}
	if (e->off4 == NONE4) {
		if ((rc = assign4(m, e, h)) != 0)
			return rc;
		e->flags |= ENT_NEW;
	}
	if (m->have6 && !(e->flags & ENT_V6)) {
		if ((rc = assign6(m, e)) != 0)
			return rc;
		e->flags |= ENT_NEW;
	}
	fmt4(m, e->off4, v4);
	if (m->have6)
		fmt6(m, e->host6, v6);
	else
		v6[0] = '\0';
	return 0;
}

int
ipam_each_new(const struct ipam *m, ipam_fn fn, void *arg)
{
	char v4[16], v6[46];
	size_t i;
	int rc;

	for (i = 0; i < m->nents; i++) {
		const struct ent *e = &m->ents[i];
		if (!(e->flags & ENT_NEW) || e->off4 == NONE4)
			continue;
		fmt4(m, e->off4, v4);
		if (e->flags & ENT_V6)
			fmt6(m, e->host6, v6);
		if ((rc = fn(arg, e->key, v4, (e->flags & ENT_V6) ? v6 : NULL)) != 0)
			return rc;
	}
	return 0;
}

void
ipam_clear_new(struct ipam *m)
{
	size_t i;

	for (i = 0; i < m->nents; i++)
		m->ents[i].flags &= ~(uint32_t)ENT_NEW;
}

size_t
ipam_count(const struct ipam *m)
{
	return m->nassigned;
}
