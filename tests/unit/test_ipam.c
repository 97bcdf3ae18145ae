/* SPDX-License-Identifier: Apache-2.0 */
/* Tunnel addresses (reconciler/ipam.c): pools, pinning, seeding, exhaustion. */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "ipam.h"
#include "t.h"

static int
copy_new(void *arg, const uint8_t key[32], const char *v4, const char *v6)
{
	return ipam_seed(arg, key, v4, v6);
}

static int
count_new(void *arg, const uint8_t key[32], const char *v4, const char *v6)
{
	(void)key;
	(void)v4;
	(void)v6;
	++*(size_t *)arg;
	return 0;
}

static void
key_of(uint8_t key[32], unsigned i)
{
	memset(key, 0, 32);
	key[0] = (uint8_t)i;
	key[1] = (uint8_t)(i >> 8);
	key[31] = 0x5a;
}

int
main(void)
{
	struct ipam *m = NULL, *m2 = NULL;
	char v4[16], v6[46], a4[16], a6[46];
	uint8_t k[32];
	unsigned i;
	int rc;

	if (sodium_init() < 0)
		return 1;
	T_OK(ipam_new(&m, "10.9.0.0/30", NULL) == 0, "ipam: /30 pool");
	key_of(k, 1);
	T_OK(ipam_get(m, k, v4, v6) == 0 && strcmp(v4, "10.9.0.2") == 0 && v6[0] == '\0',
	    "ipam: /30 has one device address, 10.9.0.2");
	key_of(k, 2);
	rc = ipam_get(m, k, v4, v6);
	T_OK(rc == ERR_TOOBIG && strstr(err_last(), "10.9.0.0/30 is full") != NULL,
	    "ipam: a full pool is a clear error");
	printf("# %s\n", err_last());
	ipam_free(m);

	T_OK(ipam_new(&m, "10.9.0.0/24", "fd00:9::/120") == 0, "ipam: /24 + /120");
	for (i = 0, rc = 0; i < 253 && rc == 0; i++) {
		key_of(k, 100 + i);
		rc = ipam_get(m, k, v4, v6);
	}
	T_OK(rc == 0 && ipam_count(m) == 253, "ipam: all 253 device addresses of a /24");
	key_of(k, 999);
	T_OK(ipam_get(m, k, v4, v6) == ERR_TOOBIG, "ipam: the 254th device does not fit");
	ipam_free(m);

	T_OK(ipam_new(&m, "10.9.0.0/16", "fd00:9::/64") == 0, "ipam: /16 + /64");
	T_OK(ipam_new(&m2, "10.0.0.0/7", NULL) != 0, "ipam: a pool over /8 is refused");
	T_OK(ipam_new(&m2, "10.9.0.1/16", NULL) != 0, "ipam: host bits refused");
	key_of(k, 7);
	T_OK(ipam_get(m, k, a4, a6) == 0 && strncmp(a6, "fd00:9::", 8) == 0,
	    "ipam: v6 from the pool");
	T_OK(ipam_get(m, k, v4, v6) == 0 && strcmp(v4, a4) == 0 && strcmp(v6, a6) == 0,
	    "ipam: asking again gives the same addresses");
	T_OK(ipam_reserve(m, k, "10.9.3.3") == 0 && ipam_get(m, k, v4, v6) == 0 &&
	    strcmp(v4, "10.9.3.3") == 0 && strcmp(v6, a6) == 0,
	    "ipam: reserving moves the key to its pinned address");
	key_of(k, 8);
	T_OK(ipam_reserve(m, k, "10.9.3.3") == 0 && ipam_get(m, k, v4, v6) == 0 &&
	    strcmp(v4, "10.9.3.3") == 0, "ipam: a pinned address wins over an assigned one");
	key_of(k, 7);
	T_OK(ipam_get(m, k, v4, v6) == 0 && strcmp(v4, "10.9.3.3") != 0,
	    "ipam: the displaced key gets another address");
	T_OK(ipam_reserve(m, k, "10.9.255.255") != 0, "ipam: the broadcast cannot be pinned");
	T_OK(ipam_reserve(m, k, "10.10.0.5") != 0, "ipam: outside the pool cannot be pinned");
	/* A second controller seeded with the first one's assignments agrees. */
	T_OK(ipam_new(&m2, "10.9.0.0/16", "fd00:9::/64") == 0, "ipam: second pool");
	T_OK(ipam_each_new(m, copy_new, m2) == 0 && ipam_count(m2) == ipam_count(m),
	    "ipam: each_new seeds another ipam");
	key_of(k, 8);
	T_OK(ipam_get(m2, k, v4, v6) == 0 && strcmp(v4, "10.9.3.3") == 0,
	    "ipam: seeded assignment kept");
	key_of(k, 9);
	T_OK(ipam_seed(m2, k, "10.9.3.3", NULL) == 0 && ipam_get(m2, k, v4, v6) == 0 &&
	    strcmp(v4, "10.9.3.3") != 0, "ipam: a conflicting seed is ignored");
	T_OK(ipam_seed(m2, k, "10.99.0.1", "2001:db8::5") == 0, "ipam: a seed outside the pool is ignored");
	{
		size_t n = 0;
		T_OK(ipam_each_new(m, count_new, &n) == 0 && n == 2, "ipam: two new assignments");
		ipam_clear_new(m);
		n = 0;
		T_OK(ipam_each_new(m, count_new, &n) == 0 && n == 0, "ipam: none after clear_new");
	}
	ipam_free(m);
	ipam_free(m2);

	/* A /8 with 100,000 keys: every address distinct, inside the pool. */
	{
		static uint8_t seen[1 << 21];	/* a bit per address of the /8 */
		unsigned a, b, cc, dd, dup = 0, bad = 0;

		T_OK(ipam_new(&m, "10.0.0.0/8", "fd00:8::/48") == 0, "ipam: a /8 pool");
		for (i = 0, rc = 0; i < 100000 && rc == 0; i++) {
			key_of(k, i);
			k[2] = (uint8_t)(i >> 16);
			if ((rc = ipam_get(m, k, v4, v6)) != 0)
				break;
			if (sscanf(v4, "%u.%u.%u.%u", &a, &b, &cc, &dd) != 4 || a != 10 ||
			    strncmp(v6, "fd00:8::", 8) != 0) {
				bad++;
				continue;
			}
			if (seen[(b << 16 | cc << 8 | dd) >> 3] & (1 << (dd & 7)))
				dup++;
			seen[(b << 16 | cc << 8 | dd) >> 3] |= (uint8_t)(1 << (dd & 7));
		}
		T_OK(rc == 0 && ipam_count(m) == 100000 && dup == 0 && bad == 0,
		    "ipam: 100,000 distinct addresses in a /8");
		ipam_free(m);
	}
	T_DONE();
}
