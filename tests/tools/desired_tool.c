/* SPDX-License-Identifier: Apache-2.0 */
/*
 * desired_tool: build every node's desired config from a fleet folder and report time,
 * sizes and peak RSS (the figures in docs/DESIGN.md §8), or dump one node's config.
 *   desired_tool [--repeat N] [--dump NODE] PATH
 */
#include <getopt.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "pharos/v1/node.pb-c.h"
#include "desired.h"
#include "diag.h"
#include "err.h"
#include "fleet.h"
#include "ipam.h"
#include "source.h"

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long
maxrss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* Whether route k of node i shares its sources with an earlier route (counted once). */
static bool
src_seen(const struct desired *ds, size_t i, size_t k)
{
	const uint8_t *src = ds->nodes[i].routes[k].src;
	size_t a, b;

	for (a = 0; a <= i; a++)
		for (b = 0; b < ds->nodes[a].nroutes && (a < i || b < k); b++)
			if (ds->nodes[a].routes[b].src == src)
				return true;
	return false;
}

static void
dump(const struct desired_node *dn)
{
	Pharos__V1__NodeConfig *c;
	uint8_t *buf;
	size_t len, i;

	if (desired_content(dn, &buf, &len) != 0 ||
	    (c = pharos__v1__node_config__unpack(NULL, len, buf)) == NULL) {
		fprintf(stderr, "desired_tool: cannot decode %s\n", dn->name);
		return;
	}
	printf("node %s: %zu bytes, %zu peers, %zu VLESS users, %zu links, %zu routes\n",
	    c->node, len, c->n_peers, c->n_vless_users, c->n_links, c->n_routes);
	for (i = 0; i < c->n_links; i++)
		printf("  link %s %s %s endpoint=%s port=%u mtu=%u carried_by=%s\n",
		    c->links[i]->name, c->links[i]->direction ==
		    PHAROS__V1__LINK_DIRECTION__LINK_DIRECTION_DIAL ? "dial" : "accept",
		    c->links[i]->peer_node, c->links[i]->endpoint, c->links[i]->listen_port,
		    c->links[i]->mtu, c->links[i]->carried_by);
	for (i = 0; i < c->n_routes; i++)
		printf("  route rule=%s via=%s exit=%s sources=%zu first=%s\n", c->routes[i]->rule,
		    c->routes[i]->via_link, c->routes[i]->exit_node, c->routes[i]->n_sources,
		    c->routes[i]->n_sources ? c->routes[i]->sources[0] : "");
	pharos__v1__node_config__free_unpacked(c, NULL);
	free(buf);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dump", required_argument, NULL, 'd' },
		{ "repeat", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dumpname = NULL;
	struct source *src = NULL;
	struct fleet *f = NULL;
	struct desired *ds = NULL;
	struct ipam *ip = NULL;
	struct diag d;
	double t0, best = 1e18;
	long rss_load;
	size_t i, j, rt, total = 0, shared = 0, nblocks = 0, maxlen = 0;
	int ch, repeat = 1, k;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'd')
			dumpname = optarg;
		else if (ch == 'r')
			repeat = atoi(optarg) > 0 ? atoi(optarg) : 1;
		else
			return 2;
	}
	if (optind + 1 != argc || sodium_init() < 0) {
		fprintf(stderr, "usage: desired_tool [--repeat N] [--dump NODE] PATH\n");
		return 2;
	}
	diag_init(&d);
	t0 = now_ms();
	if (source_open_dir(&src, argv[optind]) != 0 || fleet_load(&f, src, &d) != 0) {
		fprintf(stderr, "desired_tool: %s\n", err_last());
		return 2;
	}
	fleet_validate(f, &d);
	if (d.nerr > 0) {
		diag_print(&d, stderr, DIAG_TEXT, NULL, NULL, NULL);
		return 1;
	}
	printf("load+validate: %.0f ms\n", now_ms() - t0);
	rss_load = maxrss_kb();
	for (k = 0; k < repeat; k++) {
		desired_free(ds);
		ipam_free(ip);
		ds = NULL;
		if (ipam_new(&ip, f->eff.tunnel_pool, f->network.tunnel_pool6.v) != 0) {
			fprintf(stderr, "desired_tool: %s\n", err_last());
			return 2;
		}
		t0 = now_ms();
		if (desired_build(&ds, f, ip, NULL, NULL) != 0) {
			fprintf(stderr, "desired_tool: %s\n", err_last());
			return 2;
		}
		if (now_ms() - t0 < best)
			best = now_ms() - t0;
	}
	for (i = 0; i < ds->n; i++) {
		const struct desired_node *dn = &ds->nodes[i];
		total += dn->len;
		shared += dn->own_len;
		for (rt = 0; rt < dn->nroutes; rt++) {
			shared += dn->routes[rt].tail_len;
			if (dn->routes[rt].src != NULL && !src_seen(ds, i, rt))
				shared += dn->routes[rt].src_len;
		}
		if (dn->len > maxlen)
			maxlen = dn->len;
		for (j = 0; j < i; j++)
			if (ds->nodes[j].clients == dn->clients)
				break;
		if (j == i) {
			shared += dn->clients_len;
			nblocks += dn->clients_len > 0;
		}
	}
	printf("desired_build: %zu nodes, %zu devices: %.0f ms (best of %d); content %.1f MB "
	    "(%.1f MB in memory, %zu shared client blocks, largest node %.1f MB); peak RSS "
	    "%ld MB after load, %ld MB after build\n", ds->n, f->ndevices, best, repeat,
	    (double)total / 1e6, (double)shared / 1e6, nblocks, (double)maxlen / 1e6,
	    rss_load / 1024, maxrss_kb() / 1024);
	if (dumpname != NULL) {
		const struct desired_node *dn = desired_find(ds, dumpname);
		if (dn == NULL) {
			fprintf(stderr, "desired_tool: no node %s\n", dumpname);
			return 2;
		}
		dump(dn);
	}
	desired_free(ds);
	ipam_free(ip);
	fleet_free(f);
	source_free(src);
	diag_free(&d);
	return 0;
}
