/* SPDX-License-Identifier: Apache-2.0 */
/*
 * From a validated fleet to what every node must run: one NodeConfig per node, computed
 * deterministically from the fleet model, the device addresses (ipam.h) and the node keys
 * the controller has learned. The same function feeds `cox plan`, the reconciler and the
 * admin API, so a plan shows exactly what a push would do.
 *
 * The config is packed once as *content*: revision "", serial 0, issued 0 (proto3 leaves
 * them out of the encoding). desired_stamp() appends those three fields to the content
 * bytes — a protobuf parser takes the last value of a scalar field — so stamping costs one
 * copy, and the content hash stays the same across revisions that do not change a node.
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

struct desired_node {
	const char	*name;
	const struct node *node;	/* in the fleet it was built from */
	uint8_t		*content;	/* packed NodeConfig without revision/serial/issued */
	size_t		 len;
	uint8_t		 content_hash[32];	/* SHA-256(content) */
	char		 host[256];	/* where cox dials buoy: `control`, else the ssh host, */
	char		 port[8];	/* else the first entry_pool address; port 8444 */
	uint32_t	 npeers;
};

struct desired {
	struct desired_node	*nodes;		/* sorted by name */
	size_t			 n;
};

/*
 * Build every node's config. f must have passed fleet_validate() with no errors. Devices
 * without an `address` get one from ipam (new assignments stay in ipam for the caller to
 * persist). keys may be NULL (cascade links then carry an empty peer key).
 */
int	 desired_build(struct desired **out, const struct fleet *f, struct ipam *ipam,
	    desired_key_fn keys, void *keys_arg);
void	 desired_free(struct desired *);
const struct desired_node *desired_find(const struct desired *, const char *name);

/* The bytes to sign: content + revision, serial and issued time. *out is malloc'd. */
int	 desired_stamp(const struct desired_node *, const char *revision, uint64_t serial,
	    int64_t issued_unix, uint8_t **out, size_t *len);

#endif
