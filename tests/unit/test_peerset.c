/* SPDX-License-Identifier: Apache-2.0 */
/* buoy's compact peer set: build, canonical allowed IPs, put/remove, compaction. */
#include <arpa/inet.h>

#include <stdlib.h>
#include <string.h>

#include "peerset.h"
#include "t.h"

static void
key(uint8_t k[32], unsigned n)
{
	memset(k, 0, 32);
	k[0] = (uint8_t)(n >> 8);
	k[1] = (uint8_t)n;
	k[31] = 0x5a;
}

/* v[i]'s allowed IPs as "a/p,b/p". */
static const char *
ips_text(const struct peerset *ps, size_t i)
{
	static char out[512];
	char ip[INET6_ADDRSTRLEN];
	struct peerset_cidr c;
	size_t off = ps->v[i].ips, j, n = 0;

	out[0] = '\0';
	for (j = 0; j < ps->v[i].n_ips; j++) {
		peerset_next_ip(ps, &off, &c);
		addr_ntop(&c.ip, ip, sizeof(ip));
		n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s/%u", j ? "," : "", ip,
		    c.prefix);
	}
	return out;
}

static int
key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

/*
 * The sort orders by the keys' first 8 bytes, then by the whole key where those tie:
 * 600 pseudo-random keys, 400 of them sharing their first 8 bytes in four groups, come
 * out in memcmp() order; a repeat inside a group is still found.
 */
static void
sort_ties(void)
{
	static uint8_t keys[600][32];
	struct peerset *ps = NULL;
	struct peerset_in in;
	char *one[] = { "10.9.0.1/32" };
	uint32_t x = 2463534242u;
	size_t i, j, bad = 0;

	for (i = 0; i < 600; i++)
		for (j = 0; j < 32; j++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			keys[i][j] = (uint8_t)x;
		}
	for (i = 200; i < 600; i++)
		memcpy(keys[i], keys[i % 4], 8);
	memset(&in, 0, sizeof(in));
	in.keylen = 32;
	in.ips = one;
	in.n_ips = 1;
	T_OK(peerset_new(&ps) == 0, "peerset sort: new");
	for (i = 0; i < 600; i++) {
		in.key = keys[i];
		if (peerset_append(ps, &in) != 0)
			break;
	}
	T_OK(i == 600 && peerset_seal(ps) == 0 && ps->n == 600, "peerset sort: 600 sealed");
	qsort(keys, 600, 32, key_cmp);
	for (i = 0; i < ps->n; i++)
		bad += memcmp(ps->v[i].key, keys[i], 32) != 0;
	T_OK(bad == 0, "peerset sort: memcmp order where the first 8 bytes tie (%zu out)", bad);
	peerset_free(ps);

	T_OK(peerset_new(&ps) == 0, "peerset sort: new");
	for (i = 0; i < 600; i++) {
		in.key = keys[i == 599 ? 300 : i];
		if (peerset_append(ps, &in) != 0)
			break;
	}
	T_OK(i == 600 && peerset_seal(ps) != 0, "peerset sort: a repeat among tied keys refused");
	peerset_free(ps);
}

int
main(void)
{
	struct peerset *ps = NULL;
	struct peerset_in in;
	uint8_t k[32], k2[32];
	char *ips[] = { "fd00::1/128", "10.0.0.7/24", "10.0.0.0/24", "10.1.0.1/32" };
	char *one[] = { "10.9.0.1/32" };
	char *bad[] = { "10.9.0.1/33" };
	unsigned i;
	bool sorted = true;

	T_OK(peerset_new(&ps) == 0 && ps->n == 0, "peerset: empty");
	memset(&in, 0, sizeof(in));
	for (i = 0; i < 1000; i++) {
		key(k, 999 - i);
		in.key = k;
		in.keylen = 32;
		in.ips = i == 0 ? ips : one;
		in.n_ips = i == 0 ? 4 : 1;
		in.endpoint = i == 0 ? "192.0.2.1:51820" : NULL;
		in.keepalive = i == 0 ? 25 : 0;
		if (peerset_append(ps, &in) != 0)
			break;
	}
	T_OK(i == 1000 && peerset_seal(ps) == 0 && ps->n == 1000, "peerset: 1,000 appended");
	for (i = 1; i < ps->n; i++)
		sorted = sorted && memcmp(ps->v[i - 1].key, ps->v[i].key, 32) < 0;
	T_OK(sorted, "peerset: sorted by key");
	key(k, 999);
	T_OK(peerset_find(ps, k) == 999, "peerset: find");
	T_STREQ(ips_text(ps, 999), "10.0.0.0/24,10.1.0.1/32,fd00::1/128",
	    "peerset: allowed IPs masked, sorted, deduplicated");
	T_STREQ(peerset_endpoint(ps, 999), "192.0.2.1:51820", "peerset: endpoint");
	T_OK(ps->v[999].keepalive == 25 && ps->v[0].keepalive == 0, "peerset: keepalive");
	T_STREQ(peerset_endpoint(ps, 0), "", "peerset: no endpoint");
	T_OK(ps->cap == 1000 && ps->ipslen < 1000 * 6 + 64, "peerset: sealed to size (%zu)",
	    peerset_bytes(ps));

	/* put: a new key goes in order; an existing one is replaced. */
	key(k, 5000);
	in.key = k;
	in.ips = one;
	in.n_ips = 1;
	in.endpoint = NULL;
	T_OK(peerset_put(ps, &in) == 0 && ps->n == 1001 && peerset_find(ps, k) == 1000,
	    "peerset: put adds");
	key(k, 999);
	in.ips = ips;
	in.n_ips = 2;
	T_OK(peerset_put(ps, &in) == 0 && ps->n == 1001, "peerset: put replaces");
	T_STREQ(ips_text(ps, (size_t)peerset_find(ps, k)), "10.0.0.0/24,fd00::1/128",
	    "peerset: replaced allowed IPs");
	T_OK(peerset_remove(ps, k) && !peerset_remove(ps, k) && ps->n == 1000 &&
	    peerset_find(ps, k) < 0, "peerset: remove");
	for (i = 0; i < 900; i++) {
		key(k2, i);
		peerset_remove(ps, k2);
	}
	T_OK(ps->n == 100 && ps->garbage < 4096 + 64, "peerset: compacted (%zu bytes of garbage)",
	    ps->garbage);
	key(k2, 950);
	T_STREQ(ips_text(ps, (size_t)peerset_find(ps, k2)), "10.9.0.1/32",
	    "peerset: allowed IPs survive compaction");

	/* Refused. */
	in.ips = bad;
	in.n_ips = 1;
	T_OK(peerset_put(ps, &in) != 0 && ps->n == 100, "peerset: bad CIDR refused");
	in.ips = one;
	in.keylen = 31;
	T_OK(peerset_put(ps, &in) != 0, "peerset: short key refused");
	in.keylen = 32;
	in.keepalive = 65536;
	T_OK(peerset_put(ps, &in) != 0, "peerset: keepalive above 65535 refused");
	in.keepalive = 0;
	in.endpoint = "[2001:db8:1111:2222:3333:4444:5555:6666]:51820-and-then-some-more-text";
	T_OK(peerset_put(ps, &in) != 0, "peerset: long endpoint refused");
	peerset_free(ps);

	T_OK(peerset_new(&ps) == 0, "peerset: new");
	in.endpoint = NULL;
	key(k, 1);
	in.key = k;
	T_OK(peerset_append(ps, &in) == 0 && peerset_append(ps, &in) == 0 &&
	    peerset_seal(ps) != 0, "peerset: a key listed twice refused");
	peerset_free(ps);
	peerset_free(NULL);
	sort_ties();
	T_DONE();
}
