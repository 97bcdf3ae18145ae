/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Xray run by buoy: the REALITY key, the server config, the process and its users.
 *
 * Files in the state dir: reality.key (the REALITY X25519 private key, unpadded
 * base64url, 0600; made on first use, never sent anywhere — only its public half is
 * reported), xray.json (the server config, agent/xray.c, written atomically, 0600 since it
 * holds that key; it always lists every user of the running view, deltas included),
 * xray.pid and xray.log (Xray's output).
 *
 * The process is started as `BIN run -c DIR/xray.json` and supervised on a one-second
 * timer: if it dies it is started again (BACKEND_RESTARTED), with a backoff when it keeps
 * dying (DATA_PLANE_ERROR), and every user is added again through HandlerService, since
 * Xray keeps no live-added user across a restart ("already exists" counts as done). Like
 * the tunnels it outlives buoy; a restarted buoy adopts it (xray.pid naming a live process
 * whose command line holds DIR/xray.json). A change of port, target, server names, short
 * ids or flow rewrites the config and restarts Xray; a change of users only is made live,
 * removals first, then additions, one batch at a time, through AlterInbound. Failed user
 * changes leave the backend DEGRADED and are retried every second.
 */
#ifndef PHAROS_XRAY_SUP_H
#define PHAROS_XRAY_SUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane.h"
#include "pharos/v1/node.pb-c.h"

#define XRAY_SUP_KEY_FILE	"reality.key"
#define XRAY_SUP_CONFIG_FILE	"xray.json"

struct event_base;
struct xray_sup;

/*
 * bin: the xray binary (absolute path), or NULL when there is none: Xray is then
 * DISABLED whatever the config says. api_listen: "127.0.0.1:PORT" for the HandlerService
 * (NULL: 127.0.0.1:10085). Events go to on_event(arg, kind, NULL, NULL, 0, detail).
 * Loads reality.key if present and adopts a running Xray. NULL on failure (err_last()).
 */
struct xray_sup *xray_sup_new(struct event_base *, const char *dir, const char *bin,
	    const char *api_listen, dp_event_fn on_event, void *arg);
/*
 * Make Xray run cfg (the running view; NULL, no xray section or idle: stop it). Users
 * added and removed (a changed uuid counts in both) go to *added / *removed. 0 when done
 * or under way (user changes complete later, from the loop); <0 with why when Xray could
 * not be set up now (key, config file or start) — it keeps retrying every second.
 */
int	xray_sup_apply(struct xray_sup *, const Pharos__V1__NodeConfig *cfg, uint32_t *added,
	    uint32_t *removed, char *why, size_t whylen);
/* Stop and start Xray (RestartService), then add every user again. */
int	xray_sup_restart(struct xray_sup *, const char *reason, char *why, size_t whylen);

struct xray_sup_status {
	int		health;		/* PHAROS__V1__HEALTH_STATE__* */
	char		detail[256];
	unsigned	restarts;
	uint32_t	users;		/* users Xray has, as far as buoy knows */
	bool		have_key;
	uint8_t		reality_public[32];
};
void	xray_sup_status(struct xray_sup *, struct xray_sup_status *);
/* Leaves Xray running (a restarted buoy adopts it). NULL is a no-op. */
void	xray_sup_free(struct xray_sup *);

#endif
