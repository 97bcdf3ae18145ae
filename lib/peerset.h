/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A node's WireGuard peers in compact form: fixed records sorted by public key, the
 * allowed IPs of all of them packed into one buffer (binary, canonical: host bits masked,
 * sorted, no duplicates), endpoints in one text buffer. buoy keeps the running config's
 * peers this way instead of protobuf-c's decoded structs (an 80-byte struct, a key, an
 * array and strings, each allocated, per peer): 10,000 peers with one /32 each take
 * ~500 KiB instead of ~1.5 MiB.
 *
 * Errors: ERR_INVAL (with err_set()) for a key that is not 32 bytes, an allowed IP that is
 * not a CIDR, a keepalive above 65535, more than 65535 allowed IPs, an endpoint longer
 * than 63 characters or a key listed twice; ERR_NOMEM, ERR_TOOBIG (buffers past 4 GiB).
 */
#ifndef PHAROS_PEERSET_H
#define PHAROS_PEERSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

#define PEERSET_KEY_LEN	32

struct peerset_peer {
	uint8_t		key[PEERSET_KEY_LEN];
	uint32_t	ips;		/* offset of the first allowed IP in ps->ips */
	uint32_t	endpoint;	/* offset + 1 of the endpoint in ps->text; 0: none */
	uint16_t	n_ips;
	uint16_t	keepalive;	/* seconds, 0 off */
};

struct peerset {
	struct peerset_peer	*v;		/* sorted by key, unique */
	size_t			 n, cap;
	uint8_t			*ips;		/* per CIDR: family (4 or 6), prefix, 4 or 16 bytes */
	size_t			 ipslen, ipscap;
	char			*text;		/* endpoints, NUL-terminated */
	size_t			 textlen, textcap;
	size_t			 garbage;	/* bytes of ips/text no peer refers to any more */
};

/* One allowed IP of a peer, as peerset_next_ip() walks them. */
struct peerset_cidr {
	struct ipaddr	ip;
	unsigned	prefix;
};

/* One peer as a config states it (allowed IPs as CIDR text, endpoint NULL or ""). */
struct peerset_in {
	const uint8_t	 *key;
	size_t		  keylen;
	char *const	 *ips;
	size_t		  n_ips;
	const char	 *endpoint;
	uint32_t	  keepalive;
};

/* An empty set; *out is the caller's (peerset_free). */
int	peerset_new(struct peerset **out);
void	peerset_free(struct peerset *);
/*
 * Building a whole set: peerset_append() each peer in any order, then peerset_seal()
 * sorts and refuses a key listed twice. Until then the set must not be searched.
 */
int	peerset_append(struct peerset *, const struct peerset_in *);
/* Room for n more peers and ipsbytes of allowed IPs (18 bytes at most per CIDR). */
int	peerset_reserve(struct peerset *, size_t n, size_t ipsbytes);
int	peerset_seal(struct peerset *);
/* Index of key, or -1. */
ptrdiff_t peerset_find(const struct peerset *, const uint8_t key[PEERSET_KEY_LEN]);
/* Add a peer, or replace the one with its key (AddPeer); the set stays sorted. */
int	peerset_put(struct peerset *, const struct peerset_in *);
/* Remove the peer with key; false if there is none. */
bool	peerset_remove(struct peerset *, const uint8_t key[PEERSET_KEY_LEN]);
/* The endpoint of v[i] ("" none). */
const char *peerset_endpoint(const struct peerset *, size_t i);
/*
 * Walk v[i]'s allowed IPs: *off starts at v[i].ips; each call fills *c and advances.
 * Call it v[i].n_ips times.
 */
void	peerset_next_ip(const struct peerset *, size_t *off, struct peerset_cidr *c);
/*
 * Reorder idx[0..n) (indices into the set) by each peer's first allowed IP: none first,
 * then IPv4, then IPv6, by the address's first 7 bytes; ties keep their order. A
 * trie takes addresses in order faster than in random order: wireguard-go took 10,000
 * new /32s ~10 % faster so (bench/uapi_order.py).
 */
int	peerset_order_by_ip(const struct peerset *, uint32_t *idx, size_t n);
/* Bytes held (records and buffers), for logs and tests. */
size_t	peerset_bytes(const struct peerset *);

#endif
