/* SPDX-License-Identifier: Apache-2.0 */
/*
 * From a validated fleet to what every node must run: one NodeConfig per node, computed
 * deterministically from the fleet model, the device addresses (ipam.h) and the node keys
 * the controller has learned. The same function feeds `cox plan`, the reconciler and the
 * admin API, so a plan shows exactly what a push would do (docs/DESIGN.md §8).
 *
 * The config is packed once as *content*: revision "", serial 0, issued 0 (proto3 leaves
 * them out of the encoding). desired_stamp() appends those three fields to the content
 * bytes — a protobuf parser takes the last value of a scalar field — so stamping costs one
 * copy, and the content hash stays the same across revisions that do not change a node.
 *
 * Content is two byte strings back to back, each a valid NodeConfig encoding on its own:
 * `clients` (fields 9 peers and 11 vless_users) and `own` (every other field). Every node
 * that admits the same users has the very same client peers, so `clients` is packed once
 * and shared between those nodes: with every user allowed on every entry node, 1,000 nodes
 * and 100,000 devices would otherwise be ~14 GB of configs. Protobuf parsers accept fields
 * in any order, and the node verifies and stores the bytes as they are.
 */
#ifndef PHAROS_DESIRED_H
#define PHAROS_DESIRED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fleet;
struct node;
struct ipam;

/* What the controller knows about a node's own keys (from its NodeStatus); may be absent. */
typedef bool (*desired_key_fn)(void *arg, const char *node, uint8_t awg_pub[32]);

/*
 * A CascadeRoute (NodeConfig field 14) as bytes: every field but its rule's sources (tail),
 * then those sources (field 2 entries), shared by every route of the rule on every node.
 */
struct desired_route {
	const uint8_t	*src;		/* NULL when src_len 0 */
	size_t		 src_len;
	uint8_t		*tail;
	size_t		 tail_len;
};

struct desired_node {
	const char	*name;
	const struct node *node;	/* in the fleet it was built from */
	/*
	 * content = clients[0..clients_len) || own[0..own_len) || routes, each as field 14;
	 * len = the sum (desired_content() puts them together)
	 */
	const uint8_t	*clients;	/* shared with other nodes; NULL when clients_len 0 */
	size_t		 clients_len;
	uint8_t		*own;
	size_t		 own_len;
	struct desired_route *routes;
	size_t		 nroutes, routes_len;
	size_t		 len;
	uint8_t		 content_hash[32];	/* SHA-256(content) */
	char		 host[256];	/* where cox dials buoy: `control`, else the ssh host, */
	char		 port[8];	/* else the first entry_pool address; port 8444 */
	uint32_t	 npeers;
	uint32_t	 nusers;	/* VLESS users */
};

struct desired {
	struct desired_node	*nodes;		/* sorted by name */
	size_t			 n;
	void			*priv;
};

/*
 * Build every node's config. f must have passed fleet_validate() with no errors. Devices
 * without an `address` get one from ipam (new assignments stay in ipam for the caller to
 * persist). keys may be NULL (cascade links then carry an empty peer key).
 */
int	 desired_build(struct desired **out, const struct fleet *f, struct ipam *ipam,
	    desired_key_fn keys, void *keys_arg);
/*
 * The same, sharing the packed bytes of prev (a node's own part, a client block) wherever
 * this build's come out equal; prev may be freed before or after the result.
 */
int	 desired_build_from(struct desired **out, const struct desired *prev,
	    const struct fleet *f, struct ipam *ipam, desired_key_fn keys, void *keys_arg);
/* Drops a reference (desired_build*() returns one; desired_ref() adds one). */
void	 desired_free(struct desired *);
struct desired *desired_ref(struct desired *);
const struct desired_node *desired_find(const struct desired *, const char *name);

/* The content as one malloc'd buffer (for decoding and tests; pushes use desired_stamp). */
int	 desired_content(const struct desired_node *, uint8_t **out, size_t *len);
/* own || routes: the node's NodeConfig without its peers and VLESS users. */
int	 desired_own(const struct desired_node *, uint8_t **out, size_t *len);

/* The bytes to sign: content + revision, serial and issued time. *out is malloc'd. */
int	 desired_stamp(const struct desired_node *, const char *revision, uint64_t serial,
	    int64_t issued_unix, uint8_t **out, size_t *len);

/*
 * The VLESS id of a device key: UUID version 8 (RFC 9562) made of the first 16 bytes of
 * SHA-256("pharos/vless/v1" || key), canonical lowercase text.
 */
void	 desired_vless_uuid(const uint8_t key[32], char out[37]);

#endif
