/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Data-plane backends behind one interface: "uapi" drives wireguard-go/amneziawg-go over
 * its UAPI socket (agent/dp_uapi.c); "wgtool" drives an existing (kernel) interface
 * through the wg/awg tool (agent/dp_wgtool.c); "none" records the config and touches
 * nothing — a mode for control-plane benchmarks only, and says so in GetStatus.
 */
#ifndef PHAROS_DATAPLANE_H
#define PHAROS_DATAPLANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pharos/v1/node.pb-c.h"
#include "peerset.h"

struct dp_result {
	uint32_t	peers_added, peers_removed, peers_changed;
	int64_t		set_nanos;	/* the implementation taking the change: from the
					   set's connect (the tool's start) to its answer */
};

struct dp_status {
	uint32_t	peer_count, peers_active;
	int64_t		latest_handshake_nanos;
	uint64_t	rx_bytes, tx_bytes;
	int		health;		/* PHAROS__V1__HEALTH_STATE__* */
	char		detail[128];
};

struct wg_device;

/*
 * What a data plane reports as it happens: kind is a PHAROS__V1__EVENT_KIND__* value;
 * key (32 bytes) and endpoint for handshakes, detail for errors and restarts.
 */
typedef void (*dp_event_fn)(void *arg, int kind, const uint8_t *key, const char *endpoint,
    int64_t handshake_nanos, const char *detail);

struct dataplane {
	const char	*name;
	dp_event_fn	 on_event;	/* set by the owner; may be NULL */
	void		*event_arg;
	/*
	 * Make the data plane match cfg and its peers (cfg->peers is not used); only the
	 * difference is applied. busy(busy_arg), if not NULL, is called once while the
	 * implementation takes the change (the caller's own work overlaps with it), or
	 * not at all when there is nothing to send.
	 */
	int		(*apply)(struct dataplane *, const Pharos__V1__NodeConfig *cfg,
			    const struct peerset *peers, void (*busy)(void *), void *busy_arg,
			    struct dp_result *, char *why, size_t whylen);
	/*
	 * Optional (NULL: not offered). prefetch(dp, true) starts reading the live device on a
	 * thread of its own while the caller checks a request; the next apply() takes that
	 * read instead of making its own. prefetch(dp, false) drops it (the request was
	 * refused). The caller must do one or the other before returning to its event loop,
	 * so the read is never older than the request it was made for.
	 */
	void		(*prefetch)(struct dataplane *, bool start);
	/* Add (or replace) and remove single peers, touching nothing else. */
	int		(*apply_delta)(struct dataplane *, const Pharos__V1__PeerDelta *,
			    struct dp_result *, char *why, size_t whylen);
	void		(*status)(struct dataplane *, struct dp_status *);
	/* Restart the implementation and re-apply what runs; NULL if not possible. */
	int		(*restart)(struct dataplane *, const char *reason, char *why,
			    size_t whylen);
	/* The live peers with their handshakes and counters (*out NULL: none). */
	int		(*peers)(struct dataplane *, struct wg_device **out);
	void		(*free)(struct dataplane *);
	void		*ctx;
};

struct event_base;

struct dataplane *dp_none_new(void);
/* The running config and its peers (NULL: nothing runs), re-applied after a restart. */
typedef const Pharos__V1__NodeConfig *(*dp_current_fn)(void *arg,
	    const struct peerset **peers);

/*
 * wireguard-go (impl "wireguard-go") or amneziawg-go on interface ifname; the private key
 * is DIR/wg.key.
 */
struct dataplane *dp_uapi_new(struct event_base *, const char *dir, const char *ifname,
	    const char *impl, dp_current_fn current, void *arg);

/*
 * An existing interface ifname (kernel WireGuard or AmneziaWG; buoy does not create
 * one) through tool: "wg", "awg" (AmneziaWG: the obfuscation keys are sent too) or a
 * path to either. The private key is DIR/wg.key. current as for dp_uapi_new().
 */
struct dataplane *dp_wgtool_new(struct event_base *, const char *dir, const char *ifname,
	    const char *tool, dp_current_fn current, void *arg);

#endif
