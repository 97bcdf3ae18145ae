/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What buoy's two WireGuard data planes share: dp_uapi.c (wireguard-go/amneziawg-go over
 * its UAPI socket) and dp_wgtool.c (an existing interface through the wg/awg tool). The
 * node's WireGuard key, the desired device for a NodeConfig, status and handshake events
 * from a read of the device, and the interface's addresses, MTU, link state, forwarding
 * and NAT.
 */
#ifndef PHAROS_WGDP_H
#define PHAROS_WGDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane.h"
#include "uapi.h"

#define WGDP_CHECK_MS		1000	/* the supervisor's period */
#define WGDP_ACTIVE_WINDOW_S	180	/* WireGuard's REJECT_AFTER_TIME */
#define WGDP_SCAN_PEERS		1000	/* up to this many peers, a read on every check */
#define WGDP_SCAN_MAX_S		10	/* and at least one read this often, however many */

/* DIR/wg.key (base64, as buoy keygen writes it). */
int	wgdp_load_key(uint8_t priv[32], const char *dir);
/*
 * The device cfg asks for: priv, cfg's listen port, the peers (NULL: none; borrowed, not
 * copied: they must outlive it), and with awg the obfuscation keys (WireGuard
 * implementations refuse them, so never without awg). Clear it with wg_desired_clear(),
 * also after a failure.
 */
int	wgdp_desired(struct wg_desired *, const uint8_t priv[32], bool awg,
	    const Pharos__V1__NodeConfig *cfg, const struct peerset *peers);
/* Peer count, active peers, latest handshake and byte counters of dev; health UP, or
 * DEGRADED with detail when detail is not empty. */
void	wgdp_status(struct dp_status *, const struct wg_device *dev, const char *detail);

/* HANDSHAKE_UP / HANDSHAKE_DOWN: a peer is up while its last handshake is < 180 s old. */
struct wgdp_hs {
	uint8_t			*up;		/* the keys of the peers up, sorted */
	size_t			 n;
	size_t			 peers;		/* the device's peers at the last scan */
	unsigned		 skipped;	/* checks since the last scan */
};
/* Compare dev with the last scan and report each change through dp->on_event. */
void	wgdp_scan(struct wgdp_hs *, const struct wg_device *dev, struct dataplane *dp);
/*
 * Whether this check should read the device for handshakes. A read is a dump of every
 * peer, which the implementation formats and buoy parses: with 10,000 peers, once a second
 * cost ~1.7 % of a CPU in buoy and ~2.8 % in wireguard-go on an idle node. So up to
 * WGDP_SCAN_PEERS peers every check reads, above that one check in peers / WGDP_SCAN_PEERS
 * (at most WGDP_SCAN_MAX_S apart). Liveness is checked every time all the same.
 */
bool	wgdp_scan_due(struct wgdp_hs *);
void	wgdp_hs_free(struct wgdp_hs *);

/*
 * After a read of a big device (the one-second check): give the pages that read took back
 * to the system, so a node with 10,000 peers does not carry them between reads.
 */
void	wgdp_after_read(size_t npeers);

/* dp->on_event, if set. */
void	wgdp_emit(struct dataplane *dp, int kind, const uint8_t *key, const char *endpoint,
	    int64_t handshake_nanos, const char *detail);

/*
 * cfg's interface addresses and MTU, link up, and for an exit node IP forwarding and the
 * nftables masquerade (wgproc.h netcfg_*). *netkey remembers what was last set: ip and
 * nft run only when that changes, or with force (a new interface). Blocking.
 */
int	wgdp_netcfg(char **netkey, const char *ifname, const Pharos__V1__NodeConfig *cfg,
	    bool force);

#endif
