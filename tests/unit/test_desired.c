/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Desired configs (reconciler/desired.c) on fleet.example: who is a peer where, cascade
 * links on both ends, determinism, stamping, address stability across edits and pool
 * exhaustion. DUMP=1 prints every decoded config.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pharos/v1/node.pb-c.h"
#include "desired.h"
#include "diag.h"
#include "err.h"
#include "fleet.h"
#include "ipam.h"
#include "source.h"
#include "t.h"

static struct fleet *
load(const char *path, struct diag *d, struct source **src)
{
	struct fleet *f = NULL;

	diag_init(d);
	if (source_open_dir(src, path) != 0)
		return NULL;
	if (fleet_load(&f, *src, d) != 0)
		return NULL;
	fleet_validate(f, d);
	return f;
}

/* Every node's content still hashes to its content_hash (under ASan: still readable). */
static bool
contents_intact(const struct desired *ds)
{
	uint8_t *buf, h[32];
	size_t i, len;
	bool ok = true;

	for (i = 0; ok && i < ds->n; i++) {
		if (desired_content(&ds->nodes[i], &buf, &len) != 0)
			return false;
		crypto_hash_sha256(h, buf, len);
		ok = memcmp(h, ds->nodes[i].content_hash, 32) == 0;
		free(buf);
	}
	return ok;
}

static Pharos__V1__NodeConfig *
decode(const struct desired *ds, const char *name)
{
	const struct desired_node *dn = desired_find(ds, name);
	Pharos__V1__NodeConfig *cfg;
	uint8_t *buf;
	size_t len;

	if (dn == NULL || desired_content(dn, &buf, &len) != 0)
		return NULL;
	cfg = pharos__v1__node_config__unpack(NULL, len, buf);
	free(buf);
	return cfg;
}

static void
dump(const Pharos__V1__NodeConfig *c)
{
	size_t i, j;
	char b64[64];

	printf("# node %s fleet %s idle %d peers %zu users %zu links %zu routes %zu\n", c->node,
	    c->fleet_id, c->idle, c->n_peers, c->n_vless_users, c->n_links, c->n_routes);
	if (c->amneziawg != NULL)
		printf("#   awg port %u mtu %u addr %s %s h1 %s\n", c->amneziawg->listen_port,
		    c->amneziawg->mtu, c->amneziawg->addresses[0],
		    c->amneziawg->n_addresses > 1 ? c->amneziawg->addresses[1] : "",
		    c->amneziawg->obfuscation->h1);
	if (c->xray != NULL)
		printf("#   xray port %u target %s sni %s flow %s sids %zu\n", c->xray->port,
		    c->xray->target, c->xray->server_names[0], c->xray->flow, c->xray->n_short_ids);
	for (i = 0; i < c->n_peers; i++) {
		sodium_bin2base64(b64, sizeof(b64), c->peers[i]->public_key.data,
		    c->peers[i]->public_key.len, sodium_base64_VARIANT_ORIGINAL);
		printf("#   peer %s", b64);
		for (j = 0; j < c->peers[i]->n_allowed_ips; j++)
			printf(" %s", c->peers[i]->allowed_ips[j]);
		printf("\n");
	}
	for (i = 0; i < c->n_vless_users; i++)
		printf("#   vless %s %s\n", c->vless_users[i]->email, c->vless_users[i]->uuid);
	for (i = 0; i < c->n_links; i++) {
		const Pharos__V1__CascadeLink *l = c->links[i];
		printf("#   link %s peer %s %s endpoint '%s' port %u addr %s %s allowed %s mtu %u "
		    "carried_by '%s'\n", l->name, l->peer_node,
		    l->direction == PHAROS__V1__LINK_DIRECTION__LINK_DIRECTION_DIAL ? "dial" :
		    "accept", l->endpoint, l->listen_port, l->addresses[0], l->addresses[1],
		    l->allowed_ips[0], l->mtu, l->carried_by);
	}
	for (i = 0; i < c->n_routes; i++) {
		const Pharos__V1__CascadeRoute *r = c->routes[i];
		printf("#   route %s via '%s' exit %s src", r->rule, r->via_link, r->exit_node);
		for (j = 0; j < r->n_sources; j++)
			printf(" %s", r->sources[j]);
		if (r->n_destinations > 0)
			printf(" dst %s", r->destinations[0]);
		printf("\n");
	}
}

static const Pharos__V1__CascadeLink *
link_named(const Pharos__V1__NodeConfig *c, const char *name)
{
	size_t i;

	for (i = 0; c != NULL && i < c->n_links; i++)
		if (strcmp(c->links[i]->name, name) == 0)
			return c->links[i];
	return NULL;
}

static const Pharos__V1__Peer *
peer_of(const Pharos__V1__NodeConfig *c, const char *b64)
{
	uint8_t key[32];
	size_t i, len;

	if (sodium_base642bin(key, 32, b64, strlen(b64), NULL, &len, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || len != 32)
		return NULL;
	for (i = 0; c != NULL && i < c->n_peers; i++)
		if (c->peers[i]->public_key.len == 32 && memcmp(c->peers[i]->public_key.data, key, 32) == 0)
			return c->peers[i];
	return NULL;
}

static bool
sorted_peers(const Pharos__V1__NodeConfig *c)
{
	size_t i;

	for (i = 1; i < c->n_peers; i++)
		if (memcmp(c->peers[i - 1]->public_key.data, c->peers[i]->public_key.data, 32) >= 0)
			return false;
	for (i = 1; i < c->n_vless_users; i++)
		if (strcmp(c->vless_users[i - 1]->email, c->vless_users[i]->email) >= 0)
			return false;
	return true;
}

static bool
fra_key(void *arg, const char *node, uint8_t pub[32])
{
	(void)arg;
	if (strcmp(node, "fra-1") != 0)
		return false;
	memset(pub, 0xf1, 32);
	return true;
}

static int
copy_new(void *arg, const uint8_t key[32], const char *v4, const char *v6)
{
	return ipam_seed(arg, key, v4, v6);
}

int
main(void)
{
	struct diag d;
	struct source *src = NULL;
	struct fleet *f = load("fleet.example", &d, &src);
	struct desired *ds = NULL, *ds2 = NULL;
	struct ipam *ip = NULL, *ip2 = NULL;
	Pharos__V1__NodeConfig *ams1, *ams2, *fra1, *waw1, *c;
	const Pharos__V1__CascadeLink *l;
	const Pharos__V1__Peer *p;
	const char *pool6;
	char bob_ws[64] = "", alice_laptop[64] = "";
	size_t i;
	bool same;

	if (sodium_init() < 0)
		return 1;
	T_OK(f != NULL && d.nerr == 0, "desired: fleet.example loads and validates");
	if (f == NULL || d.nerr != 0)
		T_DONE();
	pool6 = f->network.tunnel_pool6.v;
	T_OK(ipam_new(&ip, f->eff.tunnel_pool, pool6) == 0, "desired: ipam for the fleet's pools");
	T_OK(desired_build(&ds, f, ip, fra_key, NULL) == 0, "desired: fleet.example builds");
	if (ds == NULL)
		T_DONE();
	T_OK(ds->n == 4 && strcmp(ds->nodes[0].name, "ams-1") == 0 &&
	    strcmp(ds->nodes[3].name, "waw-1") == 0, "desired: four nodes, sorted by name");
	ams1 = decode(ds, "ams-1");
	ams2 = decode(ds, "ams-2");
	fra1 = decode(ds, "fra-1");
	waw1 = decode(ds, "waw-1");
	T_OK(ams1 && ams2 && fra1 && waw1, "desired: every config decodes");
	if (!(ams1 && ams2 && fra1 && waw1))
		T_DONE();
	if (getenv("DUMP") != NULL) {
		dump(ams1);
		dump(ams2);
		dump(fra1);
		dump(waw1);
	}

	/* ams-1: the staff entry; everyone enabled; dave is disabled. */
	T_STREQ(ams1->fleet_id, "example-corp", "ams-1: fleet id");
	T_OK(ams1->n_peers == 5 && desired_find(ds, "ams-1")->npeers == 5,
	    "ams-1: alice's, bob's and carol's five devices");
	T_OK(peer_of(ams1, "TuNkhl1p1BxaTImgKsC5v2Nq3QtcuvAgDFkgD9wWTcQ=") == NULL,
	    "ams-1: disabled dave is not a peer");
	p = peer_of(ams1, "OO8nJYz2K3BYBNRSoZ8r2X5Tv8ahXQwrrc8Zy+dGoXc=");
	T_OK(p != NULL && p->n_allowed_ips == 2 && strcmp(p->allowed_ips[0], "10.80.1.20/32") == 0 &&
	    strncmp(p->allowed_ips[1], "fd42:80::", 9) == 0 && strstr(p->allowed_ips[1], "/128"),
	    "ams-1: bob's pinned workstation address 10.80.1.20/32 and a /128");
	if (p != NULL)
		snprintf(bob_ws, sizeof(bob_ws), "%s", p->allowed_ips[1]);
	p = peer_of(ams1, "RgZc4OAeym2WtRqgHdEj+r62Mq5Q6efVb3kk1bMZ0Q8=");
	T_OK(p != NULL && p->endpoint[0] == '\0' && p->persistent_keepalive == 0 &&
	    strncmp(p->allowed_ips[0], "10.80.", 6) == 0, "ams-1: alice's laptop, roaming");
	if (p != NULL)
		snprintf(alice_laptop, sizeof(alice_laptop), "%s", p->allowed_ips[0]);
	T_OK(sorted_peers(ams1), "ams-1: peers sorted by key, users by email");
	T_OK(ams1->n_vless_users == 5 &&
	    strcmp(ams1->vless_users[0]->email, "alice/laptop@example-corp") == 0 &&
	    strlen(ams1->vless_users[0]->uuid) == 36 && ams1->vless_users[0]->uuid[14] == '8',
	    "ams-1: VLESS users <user>/<device>@<fleet> with v8 UUIDs");
	T_OK(ams1->amneziawg != NULL && ams1->amneziawg->listen_port == 443 &&
	    ams1->amneziawg->mtu == 1500 - 80 - 16 &&
	    strcmp(ams1->amneziawg->addresses[0], "10.80.0.1/16") == 0 &&
	    strcmp(ams1->amneziawg->addresses[1], "fd42:80::1/64") == 0,
	    "ams-1: AWG port, MTU 1500-80-s4, gateway addresses");
	T_OK(ams1->amneziawg->obfuscation->jc == 4 &&
	    strcmp(ams1->amneziawg->obfuscation->h1, "1402839710") == 0 &&
	    strcmp(ams1->amneziawg->obfuscation->i1, "<r 2><b 0x858000010001000000000000>") == 0,
	    "ams-1: obfuscation from the fleet");
	T_OK(ams1->xray != NULL && ams1->xray->port == 443 &&
	    strcmp(ams1->xray->target, "www.samsung.com:443") == 0 &&
	    ams1->xray->n_short_ids == 3 && strcmp(ams1->xray->flow, "xtls-rprx-vision") == 0,
	    "ams-1: REALITY with the node's own short ids");
	T_OK(ams1->n_entry_pool == 3 && ams1->n_dns == 3 && ams1->n_roles == 1 &&
	    ams1->roles[0] == PHAROS__V1__ROLE__ROLE_ENTRY, "ams-1: entry pool, dns, roles");
	l = link_named(ams1, "ams-1.fra-1");
	T_OK(l != NULL && l->direction == PHAROS__V1__LINK_DIRECTION__LINK_DIRECTION_DIAL &&
	    strncmp(l->endpoint, "203.0.113.30:", 13) == 0 && l->peer_public_key.len == 32 &&
	    l->peer_public_key.data[0] == 0xf1 && l->persistent_keepalive > 0 &&
	    l->mtu == 1500 - 80 - 16, "ams-1: dials fra-1 at its ssh address, with its key");
	l = link_named(ams1, "ams-1.waw-1.fra-1");
	T_OK(l != NULL && strcmp(l->carried_by, "ams-1.waw-1") == 0 &&
	    l->mtu == 1500 - 2 * (80 + 16), "ams-1: the admins' link rides in ams-1.waw-1, MTU 1308");
	l = link_named(ams1, "ams-1.waw-1");
	T_OK(l != NULL && strncmp(l->endpoint, "[2001:db8:20::20]:", 18) == 0 &&
	    l->peer_public_key.len == 0, "ams-1: dials waw-1 at [v6]:port, key unknown");
	T_OK(ams1->n_routes == 2 && strcmp(ams1->routes[0]->rule, "admins-cascade") == 0 &&
	    strcmp(ams1->routes[0]->via_link, "ams-1.waw-1.fra-1") == 0 &&
	    ams1->routes[0]->n_sources == 4 &&
	    strcmp(ams1->routes[1]->rule, "staff") == 0 &&
	    strcmp(ams1->routes[1]->via_link, "ams-1.fra-1") == 0 &&
	    strcmp(ams1->routes[1]->sources[0], "10.80.0.0/16") == 0,
	    "ams-1: the admins' route before the catch-all staff route");

	/* ams-2: idle; fra-1: exit only; waw-1: carol direct and the middle hop. */
	T_OK(ams2->idle && ams2->n_peers == 0 && ams2->n_vless_users == 0 && ams2->n_links == 0 &&
	    ams2->n_routes == 0 && ams2->amneziawg != NULL, "ams-2: idle, configured, no users");
	T_OK(fra1->n_peers == 0 && fra1->n_vless_users == 0 && fra1->n_entry_pool == 0,
	    "fra-1: no client peers");
	l = link_named(fra1, "ams-1.fra-1");
	T_OK(l != NULL && l->direction == PHAROS__V1__LINK_DIRECTION__LINK_DIRECTION_ACCEPT &&
	    l->listen_port >= 51900 && l->listen_port < 51900 + 4096 && l->endpoint[0] == '\0',
	    "fra-1: accepts ams-1.fra-1 on a link port");
	if (l != NULL) {
		char want[64];
		snprintf(want, sizeof(want), "203.0.113.30:%u", l->listen_port);
		T_STREQ(link_named(ams1, "ams-1.fra-1")->endpoint, want, "link: dial endpoint = accept port");
		T_OK(strcmp(l->allowed_ips[0], link_named(ams1, "ams-1.fra-1")->addresses[0]) != 0 &&
		    (strncmp(l->allowed_ips[0], "198.18.", 7) == 0 ||
		    strncmp(l->allowed_ips[0], "198.19.", 7) == 0), "link: inner addresses from 198.18.0.0/15");
	}
	T_OK(link_named(fra1, "ams-1.waw-1.fra-1") != NULL && fra1->n_links == 2,
	    "fra-1: accepts the nested admins' link too");
	T_OK(fra1->n_routes == 2 && fra1->routes[0]->via_link[0] == '\0' &&
	    strcmp(fra1->routes[0]->exit_node, "fra-1") == 0, "fra-1: NAT routes for both links");
	T_OK(waw1->n_peers == 1 && peer_of(waw1, "6TaEsYKftOpWuSPTdVvDrrFr4yH8psH/qGgdyvtefeY=") != NULL,
	    "waw-1: only carol (warsaw-direct)");
	T_OK(waw1->amneziawg->listen_port == 51820, "waw-1: its own AWG port");
	l = link_named(waw1, "ams-1.waw-1");
	T_OK(l != NULL && l->direction == PHAROS__V1__LINK_DIRECTION__LINK_DIRECTION_ACCEPT &&
	    waw1->n_links == 1, "waw-1: accepts the carrier link only");
	T_OK(waw1->n_routes == 2 && strcmp(waw1->routes[0]->rule, "warsaw-direct") == 0 &&
	    waw1->routes[0]->via_link[0] == '\0' && strcmp(waw1->routes[1]->exit_node, "fra-1") == 0 &&
	    waw1->routes[1]->n_destinations == 1 &&
	    strcmp(waw1->routes[1]->destinations[0], "203.0.113.30/32") == 0,
	    "waw-1: carol out directly; the nested link's packets out to fra-1");

	/* Byte determinism, and the hash. */
	T_OK(ipam_new(&ip2, f->eff.tunnel_pool, pool6) == 0 &&
	    desired_build(&ds2, f, ip2, fra_key, NULL) == 0, "determinism: a second build");
	same = ds2 != NULL && ds2->n == ds->n;
	for (i = 0; same && i < ds->n; i++) {
		uint8_t *a, *b, h[32];
		size_t la, lb;
		if (desired_content(&ds->nodes[i], &a, &la) != 0)
			same = false;
		else if (desired_content(&ds2->nodes[i], &b, &lb) != 0)
			free(a), same = false;
		else {
			crypto_hash_sha256(h, a, la);
			same = la == lb && memcmp(a, b, la) == 0 &&
			    memcmp(h, ds->nodes[i].content_hash, 32) == 0 &&
			    memcmp(ds->nodes[i].content_hash, ds2->nodes[i].content_hash, 32) == 0;
			free(a);
			free(b);
		}
	}
	T_OK(same, "determinism: a fresh build gives byte-identical content, hash = SHA-256");
	T_OK(ds->nodes[0].clients != NULL && ds->nodes[0].clients != ds->nodes[3].clients &&
	    ds->nodes[2].clients_len == 0, "content: client bytes only where there are clients");
	{
		/* The hand-encoded client fields are the bytes protobuf-c writes. */
		Pharos__V1__NodeConfig only = PHAROS__V1__NODE_CONFIG__INIT;
		const struct desired_node *dn = desired_find(ds, "ams-1");
		uint8_t *buf;
		size_t len;
		char uuid[37];

		only.n_peers = ams1->n_peers;
		only.peers = ams1->peers;
		only.n_vless_users = ams1->n_vless_users;
		only.vless_users = ams1->vless_users;
		len = pharos__v1__node_config__get_packed_size(&only);
		buf = malloc(len);
		T_OK(buf != NULL && len == dn->clients_len &&
		    pharos__v1__node_config__pack(&only, buf) == len &&
		    memcmp(buf, dn->clients, len) == 0, "content: client bytes = protobuf-c's");
		free(buf);
		p = peer_of(ams1, "RgZc4OAeym2WtRqgHdEj+r62Mq5Q6efVb3kk1bMZ0Q8=");
		desired_vless_uuid(p->public_key.data, uuid);
		T_STREQ(uuid, ams1->vless_users[0]->uuid, "content: desired_vless_uuid() = the config's");
	}
	desired_free(ds2);
	ds2 = NULL;
	ipam_free(ip2);
	ip2 = NULL;

	/* Stamping. */
	{
		const struct desired_node *dn = desired_find(ds, "ams-1");
		uint8_t *st = NULL;
		size_t len = 0;
		T_OK(desired_stamp(dn, "0123456789abcdef0123456789abcdef01234567", 42,
		    1700000000, &st, &len) == 0 && len > dn->len, "stamp: bytes");
		c = st != NULL ? pharos__v1__node_config__unpack(NULL, len, st) : NULL;
		T_OK(c != NULL && strcmp(c->revision, "0123456789abcdef0123456789abcdef01234567") == 0 &&
		    c->serial == 42 && c->issued_unix_seconds == 1700000000 && c->n_peers == 5 &&
		    c->n_links == ams1->n_links && strcmp(c->node, "ams-1") == 0,
		    "stamp: unpacks to the config with revision, serial and issued set");
		if (c != NULL) {
			char *rev = c->revision;
			uint8_t *re;
			size_t rl;
			/* Re-packing the stamped config and stripping the stamp gives the same
			 * config as the content: the fields are the same. */
			c->revision = (char *)(uintptr_t)"";
			c->serial = 0;
			c->issued_unix_seconds = 0;
			rl = pharos__v1__node_config__get_packed_size(c);
			re = malloc(rl);
			if (re != NULL) {
				Pharos__V1__NodeConfig *c2;
				pharos__v1__node_config__pack(c, re);
				c2 = pharos__v1__node_config__unpack(NULL, rl, re);
				T_OK(c2 != NULL && c2->n_peers == ams1->n_peers &&
				    c2->n_vless_users == ams1->n_vless_users &&
				    c2->n_routes == ams1->n_routes,
				    "stamp: the stamped config is the content's config");
				pharos__v1__node_config__free_unpacked(c2, NULL);
				free(re);
			}
			c->revision = rev;
			pharos__v1__node_config__free_unpacked(c, NULL);
		}
		free(st);
		T_OK(desired_stamp(dn, "", 0, 0, &st, &len) == 0 && len == dn->len,
		    "stamp: empty revision, serial 0 and time 0 add nothing");
		free(st);
	}

	/*
	 * Routes: a rule's sources are encoded once, and every route of that rule (on any
	 * node) points at that one encoding; content = the client block || desired_own().
	 */
	{
		const uint8_t *enc[64];
		char rule[64][64];
		size_t k, r, n = 0, nsrc = 0;
		bool whole = true, one = true;

		for (k = 0; k < ds->n; k++) {
			const struct desired_node *dn = &ds->nodes[k];
			uint8_t *a = NULL, *b = NULL;
			size_t la = 0, lb = 0, q;

			whole = whole && desired_content(dn, &a, &la) == 0 &&
			    desired_own(dn, &b, &lb) == 0 && la == dn->clients_len + lb &&
			    (dn->clients_len == 0 || memcmp(a, dn->clients, dn->clients_len) == 0) &&
			    memcmp(a + dn->clients_len, b, lb) == 0;
			free(a);
			free(b);
			for (r = 0; r < dn->nroutes; r++) {
				Pharos__V1__CascadeRoute *cr;

				if (dn->routes[r].src == NULL)
					continue;
				nsrc++;
				cr = pharos__v1__cascade_route__unpack(NULL, dn->routes[r].tail_len,
				    dn->routes[r].tail);
				if (cr == NULL) {
					one = false;
					continue;
				}
				for (q = 0; q < n && strcmp(rule[q], cr->rule) != 0; q++)
					;
				if (q == n && n < 64) {
					snprintf(rule[n], sizeof(rule[n]), "%s", cr->rule);
					enc[n++] = dn->routes[r].src;
				} else if (q < n)
					one = one && enc[q] == dn->routes[r].src;
				for (q = 0; q < n; q++)
					one = one && (strcmp(rule[q], cr->rule) == 0) ==
					    (enc[q] == dn->routes[r].src);
				pharos__v1__cascade_route__free_unpacked(cr, NULL);
			}
		}
		T_OK(whole, "content: the client block, then desired_own()'s bytes");
		T_OK(nsrc > 0 && one, "routes: %zu rule-sourced routes, one encoding of the sources "
		    "per rule (%zu rules)", nsrc, n);
	}

	/* Address stability: enable dave (a device appears), drop bob's phone (one goes). */
	{
		struct user *dave = fleet_find_user(f, "dave"), *bob = fleet_find_user(f, "bob");
		Pharos__V1__NodeConfig *a2;
		size_t nbob = bob->devices.n;

		dave->disabled.v = false;
		bob->devices.n = 1;
		T_OK(desired_build(&ds2, f, ip, NULL, NULL) == 0, "stable: rebuild with the same ipam");
		/*
		 * Sharing with a previous build (what the loader does): the same configs as a
		 * build of its own; equal own parts share the previous bytes; a build of the
		 * same fleet shares everything and outlives the one it shares with.
		 */
		{
			struct desired *s1 = NULL, *s2 = NULL;
			size_t k, shared = 0, unchanged = 0, n = ds2 != NULL ? ds2->n : 0;
			bool eq = true, all = true;

			T_OK(desired_build_from(&s1, ds, f, ip, NULL, NULL) == 0 && s1 != NULL &&
			    s1->n == n, "share: a build from the previous one");
			for (k = 0; s1 != NULL && k < n; k++) {
				const struct desired_node *o = desired_find(ds, s1->nodes[k].name);

				eq = eq && memcmp(s1->nodes[k].content_hash,
				    ds2->nodes[k].content_hash, 32) == 0;
				if (o != NULL && o->own_len == s1->nodes[k].own_len &&
				    memcmp(o->own, s1->nodes[k].own, o->own_len) == 0) {
					unchanged++;
					shared += o->own == s1->nodes[k].own;
				}
			}
			T_OK(eq, "share: every node's content is what a build of its own gives");
			T_OK(unchanged > 0 && shared == unchanged, "share: the %zu own parts that "
			    "did not change are the previous build's bytes (%zu shared)", unchanged,
			    shared);
			T_OK(desired_build_from(&s2, s1, f, ip, NULL, NULL) == 0 && s2 != NULL,
			    "share: the same fleet again");
			for (k = 0; s2 != NULL && k < s2->n; k++)
				all = all && s2->nodes[k].own == s1->nodes[k].own &&
				    s2->nodes[k].clients == s1->nodes[k].clients;
			T_OK(s2 != NULL && all, "share: the same fleet shares every own part and "
			    "client block");
			desired_free(s1);
			T_OK(s2 != NULL && contents_intact(s2), "share: the shared bytes outlive the "
			    "build they came from");
			T_OK(desired_ref(s2) == s2, "share: desired_ref");
			desired_free(s2);
			T_OK(contents_intact(s2), "share: one reference dropped of two keeps it");
			desired_free(s2);
		}
		a2 = ds2 != NULL ? decode(ds2, "ams-1") : NULL;
		T_OK(a2 != NULL && a2->n_peers == 5 &&
		    peer_of(a2, "TuNkhl1p1BxaTImgKsC5v2Nq3QtcuvAgDFkgD9wWTcQ=") != NULL &&
		    peer_of(a2, "lVotelmBYPq6XlergrNt55jKkNIameuAlkjoOLUPb20=") == NULL,
		    "stable: dave's tablet in, bob's phone out");
		p = peer_of(a2, "RgZc4OAeym2WtRqgHdEj+r62Mq5Q6efVb3kk1bMZ0Q8=");
		T_OK(p != NULL && strcmp(p->allowed_ips[0], alice_laptop) == 0,
		    "stable: alice's laptop keeps %s", alice_laptop);
		p = peer_of(a2, "OO8nJYz2K3BYBNRSoZ8r2X5Tv8ahXQwrrc8Zy+dGoXc=");
		T_OK(p != NULL && strcmp(p->allowed_ips[1], bob_ws) == 0,
		    "stable: bob's workstation keeps its IPv6 %s", bob_ws);
		pharos__v1__node_config__free_unpacked(a2, NULL);
		desired_free(ds2);
		ds2 = NULL;

		/* A fresh controller seeded from the first one's assignments agrees too. */
		T_OK(ipam_new(&ip2, f->eff.tunnel_pool, pool6) == 0 &&
		    ipam_each_new(ip, copy_new, ip2) == 0 &&
		    desired_build(&ds2, f, ip2, NULL, NULL) == 0, "stable: a seeded ipam");
		a2 = ds2 != NULL ? decode(ds2, "ams-1") : NULL;
		p = peer_of(a2, "RgZc4OAeym2WtRqgHdEj+r62Mq5Q6efVb3kk1bMZ0Q8=");
		T_OK(p != NULL && strcmp(p->allowed_ips[0], alice_laptop) == 0,
		    "stable: seeded from state, alice's laptop keeps %s", alice_laptop);
		pharos__v1__node_config__free_unpacked(a2, NULL);
		desired_free(ds2);
		ds2 = NULL;
		ipam_free(ip2);
		ip2 = NULL;
		dave->disabled.v = true;
		bob->devices.n = nbob;
	}

	/* No access list: the implicit rule, every user on every entry, preset hops (2). */
	{
		Pharos__V1__NodeConfig *a2, *w2, *f2;
		f->access.set = false;
		T_OK(desired_build(&ds2, f, ip, NULL, NULL) == 0, "default access: builds");
		a2 = ds2 != NULL ? decode(ds2, "ams-1") : NULL;
		w2 = ds2 != NULL ? decode(ds2, "waw-1") : NULL;
		f2 = ds2 != NULL ? decode(ds2, "fra-1") : NULL;
		T_OK(a2 != NULL && w2 != NULL && f2 != NULL && a2->n_peers == 5 && w2->n_peers == 5 &&
		    f2->n_peers == 0 && desired_find(ds2, "ams-2")->npeers == 0,
		    "default access: every enabled device on every non-idle entry node");
		T_OK(a2 != NULL && a2->n_links == 2 && link_named(a2, "ams-1.fra-1") != NULL &&
		    link_named(a2, "ams-1.waw-1") != NULL && a2->n_routes == 2 &&
		    strcmp(a2->routes[0]->rule, "default") == 0,
		    "default access: ams-1 links to both live exits (not idle ams-2)");
		T_OK(w2 != NULL && link_named(w2, "waw-1.fra-1") != NULL &&
		    link_named(w2, "waw-1.waw-1") == NULL, "default access: waw-1 does not link to itself");
		pharos__v1__node_config__free_unpacked(a2, NULL);
		pharos__v1__node_config__free_unpacked(w2, NULL);
		pharos__v1__node_config__free_unpacked(f2, NULL);
		desired_free(ds2);
		ds2 = NULL;
		/* access: [] admits nobody. */
		f->access.set = true;
		{
			size_t n = f->access.n;
			f->access.n = 0;
			T_OK(desired_build(&ds2, f, ip, NULL, NULL) == 0 &&
			    desired_find(ds2, "ams-1")->npeers == 0 &&
			    desired_find(ds2, "ams-1")->clients_len == 0,
			    "access: [] admits nobody");
			f->access.n = n;
		}
		desired_free(ds2);
		ds2 = NULL;
	}

	/* A pool too small for the fleet fails cleanly: six devices, five addresses. */
	fleet_find_user(f, "dave")->disabled.v = false;
	T_OK(ipam_new(&ip2, "10.80.1.16/29", NULL) == 0, "exhaustion: a /29");
	T_OK(desired_build(&ds2, f, ip2, NULL, NULL) == ERR_TOOBIG && ds2 == NULL &&
	    strstr(err_last(), "full") != NULL, "exhaustion: the build fails");
	printf("# %s\n", err_last());
	fleet_find_user(f, "dave")->disabled.v = true;
	ipam_free(ip2);

	pharos__v1__node_config__free_unpacked(ams1, NULL);
	pharos__v1__node_config__free_unpacked(ams2, NULL);
	pharos__v1__node_config__free_unpacked(fra1, NULL);
	pharos__v1__node_config__free_unpacked(waw1, NULL);
	desired_free(ds);
	ipam_free(ip);
	fleet_free(f);
	source_free(src);
	diag_free(&d);
	T_DONE();
}
