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
struct xray_sup;

#define EVENT_RING	1024	/* events kept for WatchEvents(since_seq) */

struct watcher;

struct control {
	struct event_base	*base;
	struct watcher		*watchers;	/* open WatchEvents streams */
	struct {
		uint8_t		*buf;		/* a packed Event */
		size_t		 len;
		uint64_t	 seq;
		int		 kind;
	} ring[EVENT_RING];
	struct node_config	*nc;		/* the signed config that runs */
	struct dataplane	*dp;
	struct xray_sup		*xs;		/* Xray; runs only with an xray section */
	struct spiffe		 self;		/* this node, from its certificate */
	uint64_t		 started;	/* CLOCK_MONOTONIC seconds */
	uint64_t		 next_seq;	/* the next event's sequence number */
};

/* The method table to serve; handlers get the struct control as their argument. */
const struct grpc_method *control_methods(struct control *, size_t *n);
/* A data-plane event (dataplane.h dp_event_fn), to every watcher: of the AmneziaWG
 * backend (control_dp_event) or of Xray (control_xray_event). */
void	control_dp_event(void *ctl, int kind, const uint8_t *key, const char *endpoint,
	    int64_t handshake_nanos, const char *detail);
void	control_xray_event(void *ctl, int kind, const uint8_t *key, const char *endpoint,
	    int64_t handshake_nanos, const char *detail);
void	control_free(struct control *);
/* End every WatchEvents stream (UNAVAILABLE), so a graceful shutdown can finish. */
void	control_shutdown(struct control *);
/* Re-apply the persisted config at boot, before any controller contact. */
void	control_boot(struct control *);

#endif
