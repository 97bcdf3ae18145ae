/* SPDX-License-Identifier: Apache-2.0 */
/* The NodeControl gRPC service of buoy (proto/pharos/v1/node.proto). */
#ifndef PHAROS_CONTROL_H
#define PHAROS_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "pki.h"

struct event_base;
struct grpc_method;

struct node_config;
struct dataplane;

struct control {
	struct event_base	*base;
	struct node_config	*nc;		/* the signed config that runs */
	struct dataplane	*dp;
	struct spiffe		 self;		/* this node, from its certificate */
	uint64_t		 started;	/* CLOCK_MONOTONIC seconds */
	uint64_t		 next_seq;	/* the next event's sequence number */
};

/* The method table to serve; handlers get the struct control as their argument. */
const struct grpc_method *control_methods(struct control *, size_t *n);
/* Re-apply the persisted config at boot, before any controller contact. */
void	control_boot(struct control *);

#endif
