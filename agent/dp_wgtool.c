/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel data plane: an existing WireGuard or AmneziaWG interface driven through the
 * wg(8) tool (awg for AmneziaWG). buoy does not create kernel interfaces — the operator
 * (or the distribution's network config) does, with `ip link add IF type wireguard` or
 * `type amneziawg` — so a missing interface fails the apply, saying so. The tool also
 * drives a userspace implementation through its UAPI socket, which is how the tests run
 * this backend against wireguard-go.
 *
 * apply(): the live peers from `wg show IF dump`, the config as wg(8) text (uapi_conf())
 * fed to `wg syncconf IF /dev/stdin` through a pipe — the private key never touches a
 * file — unless nothing differs from what the last syncconf set; then addresses, MTU,
 * link state, forwarding and NAT as the UAPI plane does (wgdp.c). A peer delta is
 * `wg addconf IF /dev/stdin` of just those peers and `wg set IF peer K remove`. The
 * one-second check reads the dump for handshake events; an interface that disappears is
 * reported (DATA_PLANE_ERROR) and one that (re)appears gets the running config
 * (BACKEND_RESTARTED). Nothing here is stopped when buoy exits.
 */
#include <net/if.h>

#include <event2/event.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "dataplane.h"
#include "err.h"
#include "log.h"
#include "uapi.h"
#include "wgdp.h"
#include "wgproc.h"

struct wgtool_dp {
	struct dataplane		 dp;
	char				 ifname[IF_NAMESIZE];
	char				 tool[PATH_MAX];
	bool				 awg;		/* awg(8): the obfuscation keys too */
	uint8_t				 priv[32];
	unsigned			 ifindex;	/* the interface last configured; 0 none */
	bool				 up;		/* the running config is on it */
	bool				 gone;		/* reported missing, not back yet */
	bool				 dump_failed;	/* reported, not readable again yet */
	char				*netkey;	/* wgdp_netcfg()'s memory */
	uint8_t				 conf_hash[32];	/* of the text the last syncconf took */
	bool				 have_hash;
	struct wgdp_hs			 hs;
	dp_current_fn			 current;
	void				*current_arg;
	struct event			*check;
	char				 detail[128];
};

/* The interface by name; a new ifindex means a new interface, to be set up from scratch. */
static int
iface_check(struct wgtool_dp *t)
{
	unsigned idx = if_nametoindex(t->ifname);

	if (idx == 0) {
		err_set("interface %s does not exist; buoy does not create kernel interfaces: "
		    "create it with `ip link add %s type %s`", t->ifname, t->ifname,
		    t->awg ? "amneziawg" : "wireguard");
		return ERR_NOTFOUND;
	}
	if (idx != t->ifindex) {
		t->ifindex = idx;
		t->up = false;
		t->have_hash = false;
		free(t->netkey);
		t->netkey = NULL;
	}
	return 0;
}

/* flags: UAPI_F_NO_ALLOWED_IPS when only handshakes and counters matter. */
static int
read_dump(struct wgtool_dp *t, struct wg_device **out, unsigned flags)
{
	const char *argv[] = { t->tool, "show", t->ifname, "dump", NULL };
	char *text = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	/* The first line carries the private key. */
	if ((rc = wgproc_run(&text, &len, argv, NULL, 0, WGPROC_F_SECRET)) != 0)
		return rc;
	rc = uapi_parse_dump(out, text, len, flags);
	sodium_memzero(text, len);
	free(text);
	return rc;
}

/* `TOOL VERB IF /dev/stdin` with text on a pipe. */
static int
feed(struct wgtool_dp *t, const char *verb, const char *text, size_t len)
{
	const char *argv[] = { t->tool, verb, t->ifname, "/dev/stdin", NULL };

	return wgproc_run(NULL, NULL, argv, text, len, 0);
}

/* Nothing to send: the device has exactly these peers and this key and port, and the
 * last syncconf took this very text (so the AWG keys, which dump does not show, too). */
static bool
unchanged(const struct wgtool_dp *t, const struct wg_device *cur,
    const struct wg_desired *want, const struct uapi_counts *c, const uint8_t hash[32])
{
	uint8_t key[32];
	bool same;

	memcpy(key, want->private_key, 32);
	key[0] &= 248;
	key[31] = (uint8_t)((key[31] & 127) | 64);
	same = t->have_hash && sodium_memcmp(hash, t->conf_hash, 32) == 0 &&
	    c->added == 0 && c->removed == 0 && c->changed == 0 && cur->has_private_key &&
	    sodium_memcmp(key, cur->private_key, 32) == 0 &&
	    (want->listen_port == 0 || want->listen_port == cur->listen_port);
	sodium_memzero(key, sizeof(key));
	return same;
}

static int
wgtool_apply(struct dataplane *dp, const Pharos__V1__NodeConfig *cfg,
    const struct peerset *peers, void (*busy)(void *), void *busy_arg, struct dp_result *res,
    char *why, size_t whylen)
{
	struct wgtool_dp *t = dp->ctx;
	struct wg_desired want;
	struct wg_device *cur = NULL;
	struct uapi_counts c;
	uint8_t hash[32];
	char *text = NULL;
	size_t len = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&want, 0, sizeof(want));
	if ((rc = iface_check(t)) != 0 ||
	    (rc = wgdp_desired(&want, t->priv, t->awg, cfg, peers)) != 0 ||
	    (rc = read_dump(t, &cur, 0)) != 0 || (rc = uapi_count(&c, cur, &want)) != 0 ||
	    (rc = uapi_conf(&text, &len, &want)) != 0)
		goto fail;
	crypto_hash_sha256(hash, (const unsigned char *)text, len);
	if (unchanged(t, cur, &want, &c, hash)) {
		log_debug("buoy: wgtool interface=%s unchanged; no syncconf", t->ifname);
	} else {
		/* wg(8) takes the whole text before it answers: nothing to overlap with. */
		if (busy != NULL)
			busy(busy_arg);
		res->set_nanos = clock_mono_nanos();
		if ((rc = feed(t, "syncconf", text, len)) != 0)
			goto fail;
		res->set_nanos = clock_mono_nanos() - res->set_nanos;
		memcpy(t->conf_hash, hash, 32);
		t->have_hash = true;
		log_info("buoy: %s syncconf interface=%s peers=+%zu/-%zu/~%zu", t->tool,
		    t->ifname, c.added, c.removed, c.changed);
	}
	res->peers_added = (uint32_t)c.added;
	res->peers_removed = (uint32_t)c.removed;
	res->peers_changed = (uint32_t)c.changed;
	if ((rc = wgdp_netcfg(&t->netkey, t->ifname, cfg, !t->up)) != 0)
		goto fail;
	t->up = true;
	t->gone = false;
	t->detail[0] = '\0';
	uapi_body_free(text, len);
	wg_device_free(cur);
	wg_desired_clear(&want);
	return 0;
fail:
	uapi_body_free(text, len);
	wg_device_free(cur);
	wg_desired_clear(&want);
	snprintf(why, whylen, "%s", err_last());
	snprintf(t->detail, sizeof(t->detail), "%s", err_last());
	t->up = false;
	return rc;
}

/* Only these peers: addconf of the added ones (replacing their allowed IPs), set remove. */
static int
wgtool_delta(struct dataplane *dp, const Pharos__V1__PeerDelta *d, struct dp_result *res,
    char *why, size_t whylen)
{
	struct wgtool_dp *t = dp->ctx;
	Pharos__V1__NodeConfig only = PHAROS__V1__NODE_CONFIG__INIT;
	struct peerset *add = NULL;
	static const uint8_t nokey[32];
	struct wg_desired want;
	const char **argv = NULL;
	char *text = NULL, (*b64)[UAPI_KEY_B64_LEN + 1] = NULL;
	size_t len = 0, i, n = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&want, 0, sizeof(want));
	if ((rc = iface_check(t)) != 0)
		goto out;
	if (d->n_add > 0) {
		/* No private key, no port: an [Interface] that changes nothing. */
		if ((rc = config_peerset(&add, d->add, d->n_add, false)) != 0 ||
		    (rc = wgdp_desired(&want, nokey, false, &only, add)) != 0 ||
		    (rc = uapi_conf(&text, &len, &want)) != 0 ||
		    (rc = feed(t, "addconf", text, len)) != 0)
			goto out;
	}
	if (d->n_remove > 0) {
		if ((argv = calloc(3 * d->n_remove + 4, sizeof(*argv))) == NULL ||
		    (b64 = calloc(d->n_remove, sizeof(*b64))) == NULL) {
			err_set("out of memory");
			rc = ERR_NOMEM;
			goto out;
		}
		argv[n++] = t->tool;
		argv[n++] = "set";
		argv[n++] = t->ifname;
		for (i = 0; i < d->n_remove; i++) {
			if (d->remove[i].len != 32)
				continue;
			uapi_key_to_base64(b64[i], d->remove[i].data);
			argv[n++] = "peer";
			argv[n++] = b64[i];
			argv[n++] = "remove";
		}
		argv[n] = NULL;
		if ((rc = wgproc_run(NULL, NULL, argv, NULL, 0, 0)) != 0)
			goto out;
	}
	res->peers_added = (uint32_t)d->n_add;
	res->peers_removed = (uint32_t)d->n_remove;
out:
	if (rc != 0)
		snprintf(why, whylen, "%s", err_last());
	uapi_body_free(text, len);
	wg_desired_clear(&want);
	peerset_free(add);
	free(argv);
	free(b64);
	return rc;
}

static void
wgtool_status(struct dataplane *dp, struct dp_status *st)
{
	struct wgtool_dp *t = dp->ctx;
	struct wg_device *dev = NULL;

	if (if_nametoindex(t->ifname) == 0 || read_dump(t, &dev, UAPI_F_NO_ALLOWED_IPS) != 0) {
		memset(st, 0, sizeof(*st));
		st->health = PHAROS__V1__HEALTH_STATE__HEALTH_STATE_DOWN;
		snprintf(st->detail, sizeof(st->detail), "%s: %s", t->ifname,
		    if_nametoindex(t->ifname) == 0 ? "no such interface" : err_last());
		return;
	}
	wgdp_status(st, dev, t->detail);
	wg_device_free(dev);
}

static int
wgtool_peers(struct dataplane *dp, struct wg_device **out)
{
	return read_dump(dp->ctx, out, UAPI_F_NO_ALLOWED_IPS);
}

/*
 * A kernel interface is not buoy's to restart: RestartService sets it up from scratch
 * instead — syncconf even if nothing seems to differ, addresses and link checked.
 */
static int
wgtool_restart(struct dataplane *dp, const char *reason, char *why, size_t whylen)
{
	struct wgtool_dp *t = dp->ctx;
	const struct peerset *peers;
	const Pharos__V1__NodeConfig *cfg = t->current(t->current_arg, &peers);
	struct dp_result res;

	log_info("buoy: re-applying everything to interface=%s: %s", t->ifname, reason);
	t->up = false;
	t->have_hash = false;
	if (cfg != NULL && wgtool_apply(dp, cfg, peers, NULL, NULL, &res, why, whylen) != 0)
		return ERR_SYS;
	wgdp_emit(dp, PHAROS__V1__EVENT_KIND__EVENT_KIND_BACKEND_RESTARTED, NULL, NULL, 0, reason);
	return 0;
}

/*
 * Every second: is the interface there, and the same one? A new one gets the running
 * config; a present one is read for handshake changes as often as wgdp_scan_due() says.
 */
static void
check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wgtool_dp *t = arg;
	struct timeval tv = { WGDP_CHECK_MS / 1000, (WGDP_CHECK_MS % 1000) * 1000 };
	const struct peerset *peers;
	const Pharos__V1__NodeConfig *cfg = t->current(t->current_arg, &peers);
	struct wg_device *dev = NULL;
	struct dp_result res;
	unsigned idx = if_nametoindex(t->ifname);
	char why[256], reason[128];

	(void)fd;
	(void)what;
	if (cfg == NULL) {
		/* Nothing to run yet. */
	} else if (idx == 0) {
		if (!t->gone) {
			t->gone = true;
			t->up = false;
			snprintf(t->detail, sizeof(t->detail), "interface %s is gone", t->ifname);
			log_warnx("buoy: interface=%s is gone; its config is applied again when it "
			    "is back", t->ifname);
			wgdp_emit(&t->dp, PHAROS__V1__EVENT_KIND__EVENT_KIND_DATA_PLANE_ERROR, NULL,
			    NULL, 0, t->detail);
		}
	} else if (idx != t->ifindex) {
		snprintf(reason, sizeof(reason), "interface %s appeared (ifindex %u)", t->ifname,
		    idx);
		if (wgtool_apply(&t->dp, cfg, peers, NULL, NULL, &res, why, sizeof(why)) != 0) {
			log_warnx("buoy: %s; applying the running config failed: %s", reason, why);
			wgdp_emit(&t->dp, PHAROS__V1__EVENT_KIND__EVENT_KIND_DATA_PLANE_ERROR, NULL,
			    NULL, 0, why);
		} else {
			log_info("buoy: %s; the running config applied", reason);
			wgdp_emit(&t->dp, PHAROS__V1__EVENT_KIND__EVENT_KIND_BACKEND_RESTARTED,
			    NULL, NULL, 0, reason);
		}
	} else if (t->up && wgdp_scan_due(&t->hs)) {
		if (read_dump(t, &dev, UAPI_F_NO_ALLOWED_IPS) == 0) {
			size_t n = dev->npeers;
			t->dump_failed = false;
			wgdp_scan(&t->hs, dev, &t->dp);
			wg_device_free(dev);
			wgdp_after_read(n);
		} else if (!t->dump_failed) {
			t->dump_failed = true;
			log_warnx("buoy: interface=%s: %s", t->ifname, err_last());
			wgdp_emit(&t->dp, PHAROS__V1__EVENT_KIND__EVENT_KIND_DATA_PLANE_ERROR, NULL,
			    NULL, 0, err_last());
		}
	}
	evtimer_add(t->check, &tv);
}

static void
wgtool_free(struct dataplane *dp)
{
	struct wgtool_dp *t = dp->ctx;

	if (t->check != NULL)
		event_free(t->check);
	free(t->netkey);
	wgdp_hs_free(&t->hs);
	sodium_memzero(t->priv, sizeof(t->priv));
	free(t);
}

struct dataplane *
dp_wgtool_new(struct event_base *base, const char *dir, const char *ifname, const char *tool,
    dp_current_fn current, void *arg)
{
	struct wgtool_dp *t;
	struct timeval tv = { WGDP_CHECK_MS / 1000, 0 };
	const char *slash = strrchr(tool, '/');

	if (strlen(ifname) == 0 || strlen(ifname) >= IF_NAMESIZE) {
		err_set("interface name '%s' must be 1-%d characters", ifname, IF_NAMESIZE - 1);
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		err_set("out of memory");
		return NULL;
	}
	t->current = current;
	t->current_arg = arg;
	snprintf(t->ifname, sizeof(t->ifname), "%s", ifname);
	if (wgproc_which(t->tool, sizeof(t->tool), tool) != 0) {
		free(t);
		return NULL;
	}
	t->awg = strcmp(slash != NULL ? slash + 1 : tool, "awg") == 0;
	if (wgdp_load_key(t->priv, dir) != 0) {
		free(t);
		return NULL;
	}
	t->dp.name = "wgtool";
	t->dp.apply = wgtool_apply;
	t->dp.apply_delta = wgtool_delta;
	t->dp.status = wgtool_status;
	t->dp.peers = wgtool_peers;
	t->dp.restart = wgtool_restart;
	t->dp.free = wgtool_free;
	t->dp.ctx = t;
	if ((t->check = evtimer_new(base, check_cb, t)) != NULL)
		evtimer_add(t->check, &tv);
	return &t->dp;
}
