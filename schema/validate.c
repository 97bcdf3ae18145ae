/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The semantic rules of a fleet (docs/DESIGN.md §2): names, references, addresses,
 * uniqueness across records, protocol parameters and the cascade MTU. Uniqueness is
 * sort-and-scan over every record, O(n log n); the first occurrence in path order is
 * the one that stands and every later one is the error.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "arena.h"
#include "fleet.h"

#define AWG_LAYER	80	/* IPv6 40 + UDP 8 + WireGuard data header 16 + tag 16 */
#define MIN_INNER_MTU	1280

struct ctx {
	struct fleet	*f;
	struct diag	*d;
};

/* Amnezia client defaults (reference/protocols.md §3). */
static const struct awg_params awg_defaults = {
	443, 3, 10, 30, 15, 18, 20, 23,
	{ 1020325451u, 3288052141u, 1766607858u, 2528465083u },
	{ 1020325451u, 3288052141u, 1766607858u, 2528465083u },
	{ NULL, NULL, NULL, NULL, NULL },
};

/*
 * Names: lowercase alnum at both ends, [a-z0-9-] between (plus '.' and '_' when
 * `extra`), at most max characters.
 */
static bool
name_ok(const char *s, size_t max, const char *extra)
{
	size_t len = strlen(s), i;

	if (len == 0 || len > max)
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (alnum)
			continue;
		if (i == 0 || i == len - 1)
			return false;
		if (c != '-' && (extra == NULL || strchr(extra, c) == NULL))
			return false;
	}
	return true;
}

#define NODE_NAME_RULE	"lowercase letters, digits and '-', starting and ending with a letter or digit, at most 32 characters"
#define USER_NAME_RULE	"lowercase letters, digits, '.', '_' and '-', starting and ending with a letter or digit, at most 64 characters"

static bool
node_name_ok(const char *s)
{
	return name_ok(s, 32, NULL);
}

static bool
user_name_ok(const char *s)
{
	return name_ok(s, 64, "._");
}

/* ---- uniqueness ---- */

struct keyref {
	uint64_t	 pfx;		/* the key's first 8 bytes, big-endian: a cheap first compare */
	const char	*key;
	struct loc	 at;
	/* Who holds it, for the message: printf(owner, a, b). Formatted only on error. */
	const char	*owner, *a, *b;
	const struct device *dev;	/* a device's key or address: the device */
	uint32_t	 v4;		/* an address: its value */
};

static uint64_t
key_pfx(const char *key)
{
	uint64_t p = 0;
	size_t j;

	for (j = 0; j < 8 && key[j] != '\0'; j++)
		p |= (uint64_t)(unsigned char)key[j] << (56 - 8 * j);
	return p;
}

static int
keyref_cmp(const void *a, const void *b)
{
	const struct keyref *x = a, *y = b;
	int c;

	if (x->pfx != y->pfx)
		return x->pfx < y->pfx ? -1 : 1;
	if ((c = strcmp(x->key, y->key)) != 0)
		return c;
	if (x->at.file != y->at.file)
		return x->at.file < y->at.file ? -1 : 1;
	if (x->at.line != y->at.line)
		return x->at.line < y->at.line ? -1 : 1;
	return x->at.col < y->at.col ? -1 : x->at.col > y->at.col;
}

/* Every key after the first of its value is an error naming the first. */
static void
report_dups(struct ctx *c, struct keyref *v, size_t n, const char *what)
{
	size_t i, first = 0;

	if (n < 2)
		return;
	/* Sorting 100,000 keys scattered over the arena is cache-miss bound: compare a
	 * prefix kept in the array first, which orders exactly like strcmp. */
	for (i = 0; i < n; i++)
		v[i].pfx = key_pfx(v[i].key);
	qsort(v, n, sizeof(*v), keyref_cmp);
	for (i = 1; i < n; i++) {
		if (strcmp(v[i].key, v[first].key) != 0) {
			first = i;
			continue;
		}
		char owner[256];

		if (v[first].owner == NULL) {
			diag_err(c->d, v[i].at, "%s '%s' is already used at %s:%u:%u", what,
			    v[i].key, c->d->files[v[first].at.file], v[first].at.line,
			    v[first].at.col);
			continue;
		}
		snprintf(owner, sizeof(owner), v[first].owner, v[first].a, v[first].b);
		diag_err(c->d, v[i].at, "%s %s is also used by %s (%s:%u:%u)", what, v[i].key,
		    owner, c->d->files[v[first].at.file], v[first].at.line, v[first].at.col);
	}
}

/* ---- durations and presets ---- */

static int64_t
duration_or(struct ctx *c, const struct fstr *s, const char *key, int64_t def)
{
	int64_t v;

	if (s->v == NULL)
		return def;
	if (fleet_parse_duration(s->v, &v) != 0) {
		diag_err(c->d, s->at, "%s: '%s' is not a duration (e.g. 30s, 10m, 1h, 30d or 0)",
		    key, s->v);
		return def;
	}
	return v;
}

static bool
bool_or(const struct fbool *b, bool def)
{
	return b->set ? b->v : def;
}

static void
check_fleet_yaml(struct ctx *c)
{
	struct fleet *f = c->f;
	bool ent;

	if (!f->have_fleet_yaml || !f->root.set)
		return;
	if (f->version.set && f->version.v != 1)
		diag_err(c->d, f->version.at, "version: %lld is not supported; this cox reads "
		    "version 1", (long long)f->version.v);
	if (f->fleet.id.v != NULL && !name_ok(f->fleet.id.v, 63, "."))
		diag_err(c->d, f->fleet.id.at, "fleet.id: '%s' is not a valid fleet id (it is the "
		    "SPIFFE trust domain: lowercase letters, digits, '-' and '.', at most 63)",
		    f->fleet.id.v);
	if (f->fleet.preset.v != NULL) {
		if (strcmp(f->fleet.preset.v, "personal") == 0)
			f->preset = PRESET_PERSONAL;
		else if (strcmp(f->fleet.preset.v, "enterprise") == 0)
			f->preset = PRESET_ENTERPRISE;
		if (f->preset == PRESET_ENTERPRISE || strcmp(f->fleet.preset.v, "personal") == 0)
			f->eff.known = true;
		else
			diag_err(c->d, f->fleet.preset.at, "fleet.preset: '%s' is not a preset "
			    "(personal or enterprise)", f->fleet.preset.v);
	}
	ent = f->preset == PRESET_ENTERPRISE;
	f->eff.amneziawg = bool_or(&f->protocols.amneziawg, true);
	f->eff.xray = bool_or(&f->protocols.xray, ent);
	f->eff.hops = ent ? 2 : 1;
	f->eff.rotate_s = duration_or(c, &f->entry_pool.rotate, "entry_pool.rotate", ent ? 600 : 0);
	f->eff.audit_s = duration_or(c, &f->retention.audit, "retention.audit",
	    (ent ? 365 : 30) * 86400LL);
	f->eff.metrics_s = duration_or(c, &f->retention.metrics, "retention.metrics",
	    (ent ? 90 : 7) * 86400LL);
	f->eff.sweep_s = duration_or(c, &f->reconcile.sweep, "reconcile.sweep", ent ? 30 : 60);
	if (f->reconcile.sweep.v != NULL && f->eff.sweep_s > 0 && f->eff.sweep_s < 5)
		diag_err(c->d, f->reconcile.sweep.at, "reconcile.sweep: at least 5s (or 0 to turn "
		    "drift correction off)");
	else if (f->reconcile.sweep.v != NULL && f->eff.sweep_s == 0)
		diag_warn(c->d, f->reconcile.sweep.at, "reconcile.sweep: 0 turns drift "
		    "correction off");
	if (f->retention.audit.v != NULL && f->eff.audit_s == 0)
		diag_warn(c->d, f->retention.audit.at, "retention.audit: 0 keeps no audit log");
	f->eff.review_required = bool_or(&f->review.required, ent);
	f->eff.account_sync = bool_or(&f->account_sync, !ent);
	f->eff.relay_embedded = bool_or(&f->relay.embedded, true);
	f->eff.mtu = f->network.mtu.set ? (int)f->network.mtu.v : 1500;
	f->eff.tunnel_pool = f->network.tunnel_pool.v ? f->network.tunnel_pool.v :
	    FLEET_DEFAULT_POOL;
	if (!f->eff.amneziawg && !f->eff.xray)
		diag_err(c->d, f->protocols.hdr.at, "protocols: at least one of amneziawg and "
		    "xray must be on");
}

/* ---- network ---- */

static void
check_network(struct ctx *c, uint32_t *pool_net, unsigned *pool_prefix, bool *pool_ok)
{
	struct fleet *f = c->f;
	struct ipaddr ip;
	unsigned prefix;
	bool host;
	size_t i;
	char buf[64];

	*pool_ok = false;
	if (addr_parse_cidr(&ip, &prefix, &host, f->eff.tunnel_pool) != 0 ||
	    ip.family != AF_INET) {
		diag_err(c->d, f->network.tunnel_pool.at, "network.tunnel_pool: '%s' is not an "
		    "IPv4 prefix (e.g. 10.64.0.0/16)", f->eff.tunnel_pool);
	} else if (host) {
		diag_err(c->d, f->network.tunnel_pool.at, "network.tunnel_pool: '%s' has host bits "
		    "set (did you mean %s/%u?)", f->eff.tunnel_pool,
		    addr_ntop(&ip, buf, sizeof(buf)), prefix);
	} else if (prefix > 30) {
		diag_err(c->d, f->network.tunnel_pool.at, "network.tunnel_pool: /%u is too small; "
		    "use /30 or larger", prefix);
	} else {
		*pool_net = addr_v4(&ip);
		*pool_prefix = prefix;
		*pool_ok = true;
	}
	if (f->network.tunnel_pool6.v != NULL) {
		const struct fstr *s = &f->network.tunnel_pool6;
		if (addr_parse_cidr(&ip, &prefix, &host, s->v) != 0 || ip.family != AF_INET6)
			diag_err(c->d, s->at, "network.tunnel_pool6: '%s' is not an IPv6 prefix "
			    "(e.g. fd00:64::/64)", s->v);
		else if (host)
			diag_err(c->d, s->at, "network.tunnel_pool6: '%s' has host bits set (did you "
			    "mean %s/%u?)", s->v, addr_ntop(&ip, buf, sizeof(buf)), prefix);
		else if (prefix > 120)
			diag_err(c->d, s->at, "network.tunnel_pool6: /%u is too small; use /120 or "
			    "larger", prefix);
	}
	for (i = 0; i < f->network.dns.n; i++) {
		const struct fstr *s = &FLIST_STR(f->network.dns, i);
		if (addr_parse_ip(&ip, s->v) != 0)
			diag_err(c->d, s->at, "network.dns[%zu]: '%s' is not an IP address", i, s->v);
	}
}

/* ---- AmneziaWG ---- */

/* One effective value and where it came from. */
struct eval {
	int64_t		v;
	struct loc	at;
	bool		from_node;
};

static struct eval
awg_int(const struct fint *node, const struct fint *fleet, int64_t def, struct loc dflt_at)
{
	struct eval e = { def, dflt_at, false };

	if (node != NULL && node->set) {
		e.v = node->v;
		e.at = node->at;
		e.from_node = true;
	} else if (fleet->set) {
		e.v = fleet->v;
		e.at = fleet->at;
	}
	return e;
}

void
fleet_node_awg(const struct fleet *f, const struct node *n, struct awg_params *out)
{
	const struct awg *fa = &f->awg, *na = n != NULL ? &n->awg : NULL;
	int i;

	*out = awg_defaults;
#define PICK(fld) do { \
		if (na != NULL && na->fld.set) out->fld = (int)na->fld.v; \
		else if (fa->fld.set) out->fld = (int)fa->fld.v; \
	} while (0)
	PICK(port); PICK(jc); PICK(jmin); PICK(jmax); PICK(s1); PICK(s2); PICK(s3); PICK(s4);
#undef PICK
	for (i = 0; i < 4; i++) {
		const struct awg_h *h = na != NULL && na->h[i].set ? &na->h[i] :
		    fa->h[i].set ? &fa->h[i] : NULL;
		if (h != NULL) {
			out->h_lo[i] = h->lo;
			out->h_hi[i] = h->hi;
		}
	}
	for (i = 0; i < 5; i++)
		out->i[i] = na != NULL && na->i[i].v != NULL ? na->i[i].v : fa->i[i].v;
}

/* An I-packet: a sequence of <b 0xHEX>, <r N>, <rc N>, <rd N>, <t> tags. */
static const char *
ipacket_problem(const char *s)
{
	while (*s == ' ')
		s++;
	while (*s != '\0') {
		const char *end;
		char tag[4] = "";
		size_t tl = 0;

		if (*s != '<' || (end = strchr(s, '>')) == NULL)
			return "expected a tag like <b 0x...>, <r N>, <rc N>, <rd N> or <t>";
		s++;
		while (s < end && *s != ' ' && tl < 3)
			tag[tl++] = *s++;
		tag[tl] = '\0';
		while (s < end && *s == ' ')
			s++;
		if (strcmp(tag, "t") == 0) {
			if (s != end)
				return "<t> takes no argument";
		} else if (strcmp(tag, "b") == 0) {
			const char *h = s;
			if (end - s < 4 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
				return "<b> takes hex bytes written 0x...";
			for (h = s + 2; h < end; h++)
				if (!isxdigit((unsigned char)*h))
					return "<b> takes hex bytes written 0x...";
			if ((end - s - 2) % 2 != 0)
				return "<b> needs an even number of hex digits";
		} else if (strcmp(tag, "r") == 0 || strcmp(tag, "rc") == 0 ||
		    strcmp(tag, "rd") == 0) {
			const char *p;
			if (s == end)
				return "<r>, <rc> and <rd> take a length";
			for (p = s; p < end; p++)
				if (!isdigit((unsigned char)*p))
					return "<r>, <rc> and <rd> take a length";
			if (atoi(s) < 1 || atoi(s) > 1000)
				return "a random run must be 1-1000 bytes";
		} else {
			return "unknown tag (amneziawg-go 2.0 knows b, r, rc, rd and t)";
		}
		s = end + 1;
		while (*s == ' ')
			s++;
	}
	return NULL;
}

/*
 * Check the AWG rules for the fleet block (n == NULL) or a node's effective values. For
 * a node only violations that involve a value the node sets are reported: the fleet's
 * own were reported once already.
 */
static void
check_awg(struct ctx *c, const struct node *n)
{
	const struct fleet *f = c->f;
	const struct awg *na = n != NULL ? &n->awg : NULL, *fa = &f->awg;
	struct loc dat = n != NULL ? n->at : f->at;
	struct eval jmin, jmax, s1, s2, h[4];
	const char *prefix = "amneziawg";
	int i, j;

	if (n != NULL && !n->awg.hdr.set)
		return;
	if (n == NULL && !fa->hdr.set)
		return;
	if (na == NULL)
		dat = fa->hdr.at;
	else
		dat = na->hdr.at;
	jmin = awg_int(na ? &na->jmin : NULL, &fa->jmin, awg_defaults.jmin, dat);
	jmax = awg_int(na ? &na->jmax : NULL, &fa->jmax, awg_defaults.jmax, dat);
	s1 = awg_int(na ? &na->s1 : NULL, &fa->s1, awg_defaults.s1, dat);
	s2 = awg_int(na ? &na->s2 : NULL, &fa->s2, awg_defaults.s2, dat);
#define MINE(...) (n == NULL || __VA_ARGS__)
	if (jmin.v > jmax.v && MINE(jmin.from_node || jmax.from_node))
		diag_err(c->d, jmin.from_node || n == NULL ? jmin.at : jmax.at,
		    "%s.jmin (%lld) is greater than jmax (%lld)", prefix, (long long)jmin.v,
		    (long long)jmax.v);
	if (jmax.v >= 65535 && MINE(jmax.from_node))
		diag_err(c->d, jmax.at, "%s.jmax must be below 65535", prefix);
	if (s1.v + 56 == s2.v && MINE(s1.from_node || s2.from_node))
		diag_err(c->d, s2.from_node || n == NULL ? s2.at : s1.at,
		    "%s: s2 (%lld) equals s1 + 56: the handshake initiation and response would "
		    "have the same size (amneziawg-go refuses this)", prefix, (long long)s2.v);
	if (148 + s1.v >= 65535 && MINE(s1.from_node))
		diag_err(c->d, s1.at, "%s.s1: 148 + s1 must be below 65535", prefix);
	if (92 + s2.v >= 65535 && MINE(s2.from_node))
		diag_err(c->d, s2.at, "%s.s2: 92 + s2 must be below 65535", prefix);
	for (i = 0; i < 4; i++) {
		const struct awg_h *src = na != NULL && na->h[i].set ? &na->h[i] :
		    fa->h[i].set ? &fa->h[i] : NULL;
		h[i].from_node = na != NULL && na->h[i].set;
		h[i].at = src != NULL ? src->at : dat;
		h[i].v = i;
		if (src != NULL && src->lo <= 4 && MINE(h[i].from_node))
			diag_warn(c->d, src->at, "%s.h%d: values 0-4 mean the WireGuard default "
			    "header (no header obfuscation)", prefix, i + 1);
	}
	{
		struct awg_params p;
		fleet_node_awg(f, n, &p);
		for (i = 0; i < 4; i++) {
			for (j = 0; j < i; j++) {
				if (p.h_lo[i] > p.h_hi[j] || p.h_lo[j] > p.h_hi[i])
					continue;
				if (!MINE(h[i].from_node || h[j].from_node))
					continue;
				if (p.h_lo[i] == p.h_hi[i] && p.h_lo[j] == p.h_hi[j])
					diag_err(c->d, h[i].from_node || n == NULL ? h[i].at : h[j].at,
					    "%s.h%d equals h%d (%u): the four message headers must "
					    "differ", prefix, i + 1, j + 1, p.h_lo[i]);
				else
					diag_err(c->d, h[i].from_node || n == NULL ? h[i].at : h[j].at,
					    "%s.h%d (%u-%u) overlaps h%d (%u-%u): header ranges must "
					    "not overlap", prefix, i + 1, p.h_lo[i], p.h_hi[i], j + 1,
					    p.h_lo[j], p.h_hi[j]);
			}
		}
	}
#undef MINE
	for (i = 0; i < 5; i++) {
		const struct fstr *s = na != NULL ? &na->i[i] : &fa->i[i];
		const char *why;
		if (s->v != NULL && (why = ipacket_problem(s->v)) != NULL)
			diag_err(c->d, s->at, "%s.i%d: %s", prefix, i + 1, why);
	}
}

/* ---- REALITY ---- */

static void
check_xray(struct ctx *c, const struct xray *x)
{
	char host[256];
	int port;
	size_t i, j;

	if (!x->hdr.set)
		return;
	if (x->decoy.v != NULL &&
	    addr_parse_host_port(host, sizeof(host), &port, x->decoy.v, true) != 0)
		diag_err(c->d, x->decoy.at, "xray.decoy: '%s' is not host:port (the site Xray "
		    "forwards unauthenticated traffic to, e.g. www.example.com:443)", x->decoy.v);
	if (x->server_names.set && x->server_names.n == 0)
		diag_err(c->d, x->server_names.at, "xray.server_names: must not be empty");
	for (i = 0; i < x->server_names.n; i++) {
		const struct fstr *s = &FLIST_STR(x->server_names, i);
		if (!addr_valid_hostname(s->v))
			diag_err(c->d, s->at, "xray.server_names[%zu]: '%s' is not a host name", i,
			    s->v);
	}
	if (x->short_ids.set && x->short_ids.n == 0)
		diag_err(c->d, x->short_ids.at, "xray.short_ids: must not be empty (use [\"\"] "
		    "to allow an empty short id)");
	for (i = 0; i < x->short_ids.n; i++) {
		const struct fstr *s = &FLIST_STR(x->short_ids, i);
		size_t len = strlen(s->v), k;
		bool hex = true;
		for (k = 0; k < len; k++)
			hex = hex && isxdigit((unsigned char)s->v[k]);
		if (!hex || len > 16 || len % 2 != 0)
			diag_err(c->d, s->at, "xray.short_ids[%zu]: '%s' must be 0-16 hex digits, "
			    "an even number of them", i, s->v);
		for (j = 0; j < i; j++)
			if (strcasecmp(FLIST_STR(x->short_ids, j).v, s->v) == 0) {
				diag_warn(c->d, s->at, "xray.short_ids[%zu]: '%s' is listed twice",
				    i, s->v);
				break;
			}
	}
	if (x->flow.v != NULL && x->flow.v[0] != '\0' && strcmp(x->flow.v, "xtls-rprx-vision") != 0)
		diag_err(c->d, x->flow.at, "xray.flow: '%s' is not a VLESS flow (\"xtls-rprx-vision\" "
		    "or \"\")", x->flow.v);
}

/* ---- nodes and relays ---- */

/* "[user@]host[:port]" */
static bool
ssh_ok(const char *s)
{
	const char *at = strchr(s, '@'), *host = s, *p;
	char h[256];
	int port;

	if (at != NULL) {
		if (at == s)
			return false;
		for (p = s; p < at; p++)
			if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) ||
			    *p == '_' || *p == '-' || *p == '.'))
				return false;
		host = at + 1;
	}
	return addr_parse_host_port(h, sizeof(h), &port, host, false) == 0;
}

static void
check_nodes(struct ctx *c, struct keyref **pool_refs, size_t *npool)
{
	struct fleet *f = c->f;
	size_t i, j, k, cap = 0;
	unsigned mask;
	struct ipaddr ip;
	int port;
	char host[256], buf[64];

	*pool_refs = NULL;
	*npool = 0;
	for (i = 0; i < f->nnodes; i++)
		cap += f->nodes[i]->entry_pool.n;
	if (cap > 0 && (*pool_refs = calloc(cap, sizeof(**pool_refs))) == NULL)
		return;
	for (i = 0; i < f->nnodes; i++) {
		struct node *n = f->nodes[i];

		if (!node_name_ok(n->name))
			diag_err(c->d, n->at, "node name '%s' (from the file name) must be "
			    NODE_NAME_RULE, n->name);
		if (!n->hdr.set)
			continue;
		if (n->region.v != NULL && !node_name_ok(n->region.v))
			diag_err(c->d, n->region.at, "region: '%s' must be " NODE_NAME_RULE,
			    n->region.v);
		if (n->ssh.v != NULL && !ssh_ok(n->ssh.v))
			diag_err(c->d, n->ssh.at, "ssh: '%s' is not [user@]host[:port]", n->ssh.v);
		if (n->control.v != NULL &&
		    addr_parse_host_port(host, sizeof(host), &port, n->control.v, true) != 0)
			diag_err(c->d, n->control.at, "control: '%s' is not host:port (buoy's gRPC "
			    "address, default port %d)", n->control.v, FLEET_CONTROL_PORT);
		mask = n->roles.set ? 0 : ROLE_ENTRY | ROLE_EXIT;
		for (j = 0; j < n->roles.n; j++) {
			const struct fstr *r = &FLIST_STR(n->roles, j);
			unsigned bit = strcmp(r->v, "entry") == 0 ? ROLE_ENTRY :
			    strcmp(r->v, "exit") == 0 ? ROLE_EXIT : 0;
			if (bit == 0)
				diag_err(c->d, r->at, "roles[%zu]: '%s' is not a role (entry or exit)",
				    j, r->v);
			else if (mask & bit)
				diag_err(c->d, r->at, "roles[%zu]: '%s' is listed twice", j, r->v);
			mask |= bit;
		}
		/*
		 * A record may be shared with the fleet the reconciler is running (see
		 * fleet_load_reuse): store only a value that differs, so an unchanged
		 * record is only read here.
		 */
		if (n->roles_mask != mask)
			n->roles_mask = mask;
		if (n->roles.set && n->roles.n == 0)
			diag_err(c->d, n->roles.at, "roles: must name entry, exit or both");
		/* entry_pool.at.line != 0: the key is there (a bad value was reported). */
		if ((n->roles_mask & ROLE_ENTRY) && n->entry_pool.n == 0 && !n->entry_pool.set &&
		    n->entry_pool.at.line == 0)
			diag_err(c->d, n->hdr.at, "entry_pool: an entry node needs at least one "
			    "public address");
		else if ((n->roles_mask & ROLE_ENTRY) && n->entry_pool.set && n->entry_pool.n == 0)
			diag_err(c->d, n->entry_pool.at, "entry_pool: an entry node needs at least one "
			    "public address");
		if (!(n->roles_mask & ROLE_ENTRY) && n->entry_pool.n > 0 && n->roles_mask)
			diag_warn(c->d, n->entry_pool.at, "entry_pool: unused, the node has no entry "
			    "role");
		for (j = 0; j < n->entry_pool.n; j++) {
			const struct fstr *s = &FLIST_STR(n->entry_pool, j);
			if (addr_parse_ip_port(&ip, &port, s->v) != 0) {
				diag_err(c->d, s->at, "entry_pool[%zu]: '%s' is not an IP address or "
				    "IP:port ([v6]:port)", j, s->v);
				continue;
			}
			k = (*npool)++;
			(*pool_refs)[k].key = arena_strdup(f->arena, addr_ntop(&ip, buf, sizeof(buf)));
			(*pool_refs)[k].at = s->at;
			(*pool_refs)[k].owner = "node %s";
			(*pool_refs)[k].a = n->name;
		}
		check_awg(c, n);
		check_xray(c, &n->xray);
		if (n->xray.hdr.set && !f->eff.xray && f->eff.known)
			diag_warn(c->d, n->xray.hdr.at, "xray: settings unused, protocols.xray is off");
	}
}

static void
check_relays(struct ctx *c)
{
	struct fleet *f = c->f;
	char host[256];
	int port;
	size_t i;

	for (i = 0; i < f->nrelays; i++) {
		struct relay *r = f->relays[i];
		if (!node_name_ok(r->name))
			diag_err(c->d, r->at, "relay name '%s' (from the file name) must be "
			    NODE_NAME_RULE, r->name);
		if (!r->hdr.set)
			continue;
		if (r->address.v != NULL &&
		    addr_parse_host_port(host, sizeof(host), &port, r->address.v, true) != 0)
			diag_err(c->d, r->address.at, "address: '%s' is not host:port", r->address.v);
		if (r->ssh.v != NULL && !ssh_ok(r->ssh.v))
			diag_err(c->d, r->ssh.at, "ssh: '%s' is not [user@]host[:port]", r->ssh.v);
		if (r->region.v != NULL && !node_name_ok(r->region.v))
			diag_err(c->d, r->region.at, "region: '%s' must be " NODE_NAME_RULE,
			    r->region.v);
		if (f->preset == PRESET_PERSONAL && f->eff.known)
			diag_warn(c->d, r->at, "remote relay in a personal fleet: the personal preset "
			    "uses the embedded relay; this one is still deployed");
	}
}

/* ---- users and devices ---- */

static bool
email_ok(const char *s)
{
	const char *at = strchr(s, '@'), *p;

	if (at == NULL || at == s || strchr(at + 1, '@') != NULL || strchr(at + 1, '.') == NULL)
		return false;
	for (p = s; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == ',')
			return false;
	return at[1] != '.' && p[-1] != '.';
}

/*
 * The uniqueness index of a clean user check (no diagnostic from the per-user rules and
 * no duplicate): every device's public key and explicit address, and the device holding
 * it. fleet_load_reuse() hands the previous fleet's index to the next load, whose
 * validation copies it and updates it for the users whose records changed (a one-file
 * commit: one user out, one in) instead of checking and sorting every device again. Any
 * problem found that way (or a changed tunnel pool) falls back to the full check, so the
 * diagnostics are always the full check's.
 */
struct uslot {
	uint64_t		 k;	/* a key's first 8 bytes (keyref.pfx) or an IPv4 address */
	const struct device	*dev;	/* NULL: a free slot */
};

struct uset {
	struct uslot	*v;
	size_t		 n, mask;
	bool		 str;		/* keys (compare the strings too), not addresses */
};

struct pool {
	uint32_t	 net, size;	/* size: the host part's mask */
	unsigned	 prefix;
	bool		 ok;
};

struct uindex {
	unsigned	 refs;		/* atomic */
	struct uset	 keys, addrs;
	struct user	**users;	/* the validated fleet's, by name */
	size_t		 nusers, admins;
	struct pool	 pool;
};

static size_t
uhome(const struct uset *s, uint64_t k)
{
	return (size_t)((k * 0x9E3779B97F4A7C15ULL) >> 32) & s->mask;
}

static bool
uslot_is(const struct uset *s, const struct uslot *e, uint64_t k, const char *key)
{
	return e->k == k && (!s->str || strcmp(e->dev->public_key.v, key) == 0);
}

static int
uset_clone(struct uset *dst, const struct uset *src)
{
	if ((dst->v = malloc((src->mask + 1) * sizeof(*dst->v))) == NULL)
		return -1;
	memcpy(dst->v, src->v, (src->mask + 1) * sizeof(*dst->v));
	dst->n = src->n;
	dst->mask = src->mask;
	dst->str = src->str;
	return 0;
}

static int
uset_alloc(struct uset *s, size_t want, bool str)
{
	size_t cap = 16;

	while (cap < 2 * want)
		cap *= 2;
	if ((s->v = calloc(cap, sizeof(*s->v))) == NULL)
		return -1;
	s->n = 0;
	s->mask = cap - 1;
	s->str = str;
	return 0;
}

/* The holder of k if there is one (nothing inserted); NULL once dev holds it. */
static const struct device *
uset_put(struct uset *s, uint64_t k, const char *key, const struct device *dev)
{
	size_t i;

	if (2 * (s->n + 1) > s->mask + 1) {
		struct uset g;

		if (uset_alloc(&g, s->n + 1, s->str) != 0)
			return dev;	/* out of memory: reported as a clash, so the caller gives up */
		for (i = 0; i <= s->mask; i++)
			if (s->v[i].dev != NULL)
				(void)uset_put(&g, s->v[i].k, NULL, s->v[i].dev);
		free(s->v);
		*s = g;
	}
	for (i = uhome(s, k); s->v[i].dev != NULL; i = (i + 1) & s->mask)
		if (key != NULL || !s->str ? uslot_is(s, &s->v[i], k, key) : false)
			return s->v[i].dev;
	s->v[i].k = k;
	s->v[i].dev = dev;
	s->n++;
	return NULL;
}

/* Drop k if dev holds it; the entries after it move back (linear probing, no tombstones). */
static void
uset_del(struct uset *s, uint64_t k, const char *key, const struct device *dev)
{
	size_t i, j, h;

	for (i = uhome(s, k); s->v[i].dev != NULL; i = (i + 1) & s->mask)
		if (uslot_is(s, &s->v[i], k, key))
			break;
	if (s->v[i].dev != dev || dev == NULL)
		return;
	for (j = i;;) {
		j = (j + 1) & s->mask;
		if (s->v[j].dev == NULL)
			break;
		h = uhome(s, s->v[j].k);
		/* move j back to i unless its home lies cyclically in (i, j] */
		if (i <= j ? (h <= i || h > j) : (h <= i && h > j)) {
			s->v[i] = s->v[j];
			i = j;
		}
	}
	s->v[i].dev = NULL;
	s->n--;
}

static void
uindex_free(struct uindex *ix)
{
	if (ix == NULL)
		return;
	free(ix->keys.v);
	free(ix->addrs.v);
	free(ix->users);
	free(ix);
}

void
fleet_uindex_unref(struct uindex *ix)
{
	if (ix != NULL && __atomic_sub_fetch(&ix->refs, 1, __ATOMIC_ACQ_REL) == 0)
		uindex_free(ix);
}

struct uindex *
fleet_uindex_ref(struct uindex *ix)
{
	if (ix != NULL)
		__atomic_add_fetch(&ix->refs, 1, __ATOMIC_RELAXED);
	return ix;
}

/* The keys and explicit addresses of some users' devices, for the uniqueness rules. */
struct refs {
	struct keyref	*keys, *addrs;
	size_t		 nkeys, naddrs;
};

/*
 * The rules of one user and its devices; its keys and addresses are appended to r (room
 * for u's devices). *admins counts the admins so far. <0 out of memory.
 */
static int
check_user(struct ctx *c, struct user *u, const struct pool *p, struct refs *r,
    size_t *admins)
{
	struct fleet *f = c->f;
	struct device *dv = u->devices.v;
	struct keyref *names = NULL;
	size_t nnames = 0, j;
	char buf[64];

	if (!user_name_ok(u->name))
		diag_err(c->d, u->at, "user name '%s' (from the file name) must be "
		    USER_NAME_RULE, u->name);
	if (!u->hdr.set)
		return 0;
	if (u->email.v != NULL && !email_ok(u->email.v))
		diag_err(c->d, u->email.at, "email: '%s' is not an email address", u->email.v);
	if (u->role.v != NULL) {
		if (strcmp(u->role.v, "admin") == 0) {
			if (!u->admin)	/* written once: see roles_mask */
				u->admin = true;
		}
		else if (strcmp(u->role.v, "user") != 0)
			diag_err(c->d, u->role.at, "role: '%s' is not a role (user or admin)",
			    u->role.v);
	}
	if (u->admin && ++*admins > 1 && f->preset == PRESET_PERSONAL && f->eff.known)
		diag_warn(c->d, u->role.at, "role: a personal fleet has one admin (the "
		    "operator); use the enterprise preset for more");
	if (u->devices.n > 1 && (names = calloc(u->devices.n, sizeof(*names))) == NULL)
		return -1;
	for (j = 0; j < u->devices.n; j++) {
		struct device *d = &dv[j];
		unsigned char key[32];
		size_t binlen = 0;
		const char *end = NULL;
		struct ipaddr ip;

		if (!d->hdr.set)
			continue;
		if (d->name.v != NULL) {
			if (!user_name_ok(d->name.v))
				diag_err(c->d, d->name.at, "devices[%zu].name: '%s' must be "
				    USER_NAME_RULE, j, d->name.v);
			if (names != NULL) {
				names[nnames].key = d->name.v;
				names[nnames].at = d->name.at;
				names[nnames].owner = NULL;
				nnames++;
			}
		}
		if (d->public_key.v != NULL) {
			const char *k = d->public_key.v;

			if (d->key_ok == 0)
				d->key_ok = strlen(k) == 44 && sodium_base642bin(key,
				    sizeof(key), k, 44, NULL, &binlen, &end,
				    sodium_base64_VARIANT_ORIGINAL) == 0 && binlen == 32 &&
				    end == k + 44 ? 1 : 2;
			if (d->key_ok != 1) {
				diag_err(c->d, d->public_key.at, "devices[%zu].public_key: not a "
				    "WireGuard public key (base64 of 32 bytes, 44 characters)", j);
			} else {
				struct keyref *kr = &r->keys[r->nkeys++];

				kr->key = k;
				kr->at = d->public_key.at;
				kr->owner = "device %s/%s";
				kr->a = u->name;
				kr->b = d->name.v ? d->name.v : "?";
				kr->dev = d;
			}
		}
		if (d->address.v == NULL)
			continue;
		if (addr_parse_ip(&ip, d->address.v) != 0 || ip.family != AF_INET) {
			diag_err(c->d, d->address.at, "devices[%zu].address: '%s' is not an IPv4 "
			    "address", j, d->address.v);
			continue;
		}
		if (p->ok) {
			uint32_t a = addr_v4(&ip), off = a - p->net;
			if ((a & ~p->size) != p->net) {
				diag_err(c->d, d->address.at, "devices[%zu].address: %s is outside "
				    "network.tunnel_pool %s", j, d->address.v, f->eff.tunnel_pool);
				continue;
			}
			if (off == 0 || off == 1 || off == p->size) {
				diag_err(c->d, d->address.at, "devices[%zu].address: %s is the "
				    "pool's %s address", j, d->address.v, off == 0 ? "network" :
				    off == 1 ? "gateway (first host)" : "broadcast");
				continue;
			}
		}
		{
			struct keyref *kr = &r->addrs[r->naddrs];

			if ((kr->key = arena_strdup(f->arena, addr_ntop(&ip, buf,
			    sizeof(buf)))) == NULL) {
				free(names);
				return -1;
			}
			kr->at = d->address.at;
			kr->owner = "device %s/%s";
			kr->a = u->name;
			kr->b = d->name.v ? d->name.v : "?";
			kr->dev = d;
			kr->v4 = addr_v4(&ip);
			r->naddrs++;
		}
	}
	if (names != NULL) {
		report_dups(c, names, nnames, "device name");
		free(names);
	}
	return 0;
}

/* Put r's keys and addresses into ix; false at the first one already held (a duplicate). */
static bool
index_add(struct uindex *ix, const struct refs *r)
{
	size_t i;

	for (i = 0; i < r->nkeys; i++)
		if (uset_put(&ix->keys, key_pfx(r->keys[i].key), r->keys[i].key,
		    r->keys[i].dev) != NULL)
			return false;
	for (i = 0; i < r->naddrs; i++)
		if (uset_put(&ix->addrs, r->addrs[i].v4, NULL, r->addrs[i].dev) != NULL)
			return false;
	return true;
}

/* Take a user that left (or whose file changed) out of ix. */
static void
index_drop(struct uindex *ix, const struct user *u)
{
	const struct device *dv = u->devices.v;
	struct ipaddr ip;
	size_t j;

	if (u->admin)
		ix->admins--;
	for (j = 0; j < u->devices.n; j++) {
		const struct device *d = &dv[j];

		if (!d->hdr.set)
			continue;
		if (d->public_key.v != NULL)
			uset_del(&ix->keys, key_pfx(d->public_key.v), d->public_key.v, d);
		if (d->address.v != NULL && addr_parse_ip(&ip, d->address.v) == 0 &&
		    ip.family == AF_INET)
			uset_del(&ix->addrs, addr_v4(&ip), NULL, d);
	}
}

/* ix becomes f's index: the one the next incremental load's validation starts from. */
static void
index_keep(struct fleet *f, struct uindex *ix, size_t admins, const struct pool *p)
{
	if (f->nusers > 0)	/* an empty list may have no array */
		memcpy(ix->users, f->users, f->nusers * sizeof(*ix->users));
	ix->nusers = f->nusers;
	ix->admins = admins;
	ix->pool = *p;
	ix->refs = 1;
	fleet_uindex_unref(f->uidx);
	f->uidx = ix;
}

static bool
same_name(struct user **v, size_t n, size_t i, size_t j)
{
	return j < n && strcmp(v[i]->name, v[j]->name) == 0;
}

/* "a.yaml" and "a.yml" in users/ name the same user: every one after the first is an error. */
static void
check_user_names(struct ctx *c)
{
	struct fleet *f = c->f;
	struct keyref *v;
	size_t i, j, k;

	for (i = 0; i + 1 < f->nusers; i = j) {
		for (j = i + 1; same_name(f->users, f->nusers, i, j); j++)
			;
		if (j - i < 2 || (v = calloc(j - i, sizeof(*v))) == NULL)
			continue;
		for (k = i; k < j; k++) {
			v[k - i].key = f->users[k]->name;
			v[k - i].at = f->users[k]->at;
		}
		report_dups(c, v, j - i, "user name");
		free(v);
	}
}

/*
 * The user rules from the previous validation's index: only the users not in it are
 * checked. 0 done (f->uidx set); 1 use the full check (nothing was added to c->d).
 */
static int
check_users_since(struct ctx *c, const struct pool *p)
{
	struct fleet *f = c->f;
	const struct uindex *prev = f->uprev;
	struct user **added = NULL;
	struct uindex *ix;
	struct refs r = { NULL, NULL, 0, 0 };
	struct diag_mark mark;
	size_t i = 0, j = 0, nadded = 0, ndev = 0, admins = 0;
	bool ok = false;

	if (prev == NULL || prev->pool.ok != p->ok || prev->pool.net != p->net ||
	    prev->pool.prefix != p->prefix)
		return 1;
	diag_save(c->d, &mark);
	if ((ix = calloc(1, sizeof(*ix))) == NULL ||
	    (ix->users = malloc((f->nusers + 1) * sizeof(*ix->users))) == NULL ||
	    (added = malloc((f->nusers + 1) * sizeof(*added))) == NULL ||
	    uset_clone(&ix->keys, &prev->keys) != 0 || uset_clone(&ix->addrs, &prev->addrs) != 0)
		goto out;
	ix->admins = prev->admins;
	/* Both lists are by name, and an unchanged file is the same record: walk them. */
	while (i < prev->nusers || j < f->nusers) {
		int cmp;

		if (i < prev->nusers && j < f->nusers && prev->users[i] == f->users[j]) {
			i++;
			j++;
			continue;
		}
		cmp = i == prev->nusers ? 1 : j == f->nusers ? -1 :
		    strcmp(prev->users[i]->name, f->users[j]->name);
		if (cmp <= 0)
			index_drop(ix, prev->users[i++]);
		if (cmp >= 0) {
			if ((j > 0 && same_name(f->users, f->nusers, j - 1, j)) ||
			    same_name(f->users, f->nusers, j, j + 1))
				goto out;	/* two files, one name: the full check says so */
			ndev += f->users[j]->devices.n;
			added[nadded++] = f->users[j++];
		}
	}
	if (ndev > 0 && ((r.keys = calloc(ndev, sizeof(*r.keys))) == NULL ||
	    (r.addrs = calloc(ndev, sizeof(*r.addrs))) == NULL))
		goto out;
	for (i = 0; i < nadded; i++)
		if (check_user(c, added[i], p, &r, &admins) != 0)
			goto out;
	if (diag_since(c->d, &mark) || !index_add(ix, &r))
		goto out;
	admins += ix->admins;
	if (f->preset == PRESET_PERSONAL && f->eff.known && admins > 1)
		goto out;	/* the warning names the second admin: the full check finds it */
	index_keep(f, ix, admins, p);
	f->users_checked = nadded;
	ix = NULL;
	ok = true;
out:
	if (!ok)
		diag_rewind(c->d, &mark);
	free(r.keys);
	free(r.addrs);
	free(added);
	uindex_free(ix);
	return ok ? 0 : 1;
}

static void
check_users(struct ctx *c, const struct pool *p)
{
	struct fleet *f = c->f;
	struct uindex *ix = NULL;
	struct refs r = { NULL, NULL, 0, 0 };
	struct diag_mark mark;
	size_t i, admins = 0;

	if (check_users_since(c, p) == 0) {
		admins = f->uidx->admins;
		goto tail;
	}
	if (f->ndevices > 0 && ((r.keys = calloc(f->ndevices, sizeof(*r.keys))) == NULL ||
	    (r.addrs = calloc(f->ndevices, sizeof(*r.addrs))) == NULL))
		goto out;
	diag_save(c->d, &mark);
	f->users_checked = f->nusers;
	check_user_names(c);
	for (i = 0; i < f->nusers; i++)
		if (check_user(c, f->users[i], p, &r, &admins) != 0)
			goto out;
	/* No problem so far: an index finds a duplicate as well as sorting would, faster. */
	if (!diag_since(c->d, &mark) &&
	    ((ix = calloc(1, sizeof(*ix))) == NULL ||
	    (ix->users = malloc((f->nusers + 1) * sizeof(*ix->users))) == NULL ||
	    uset_alloc(&ix->keys, r.nkeys, true) != 0 ||
	    uset_alloc(&ix->addrs, r.naddrs, false) != 0 || !index_add(ix, &r))) {
		uindex_free(ix);
		ix = NULL;
	}
	if (ix == NULL) {
		report_dups(c, r.keys, r.nkeys, "public key");
		report_dups(c, r.addrs, r.naddrs, "tunnel address");
	} else
		index_keep(f, ix, admins, p);
tail:
	if (p->ok && f->ndevices > (size_t)p->size - 2)
		diag_err(c->d, f->network.tunnel_pool.v ? f->network.tunnel_pool.at : f->at,
		    "network.tunnel_pool: %s has room for %u devices but the fleet has %zu",
		    f->eff.tunnel_pool, p->size > 2 ? p->size - 2 : 0, f->ndevices);
	if (admins == 0 && f->have_fleet_yaml && f->root.set)
		diag_warn(c->d, f->at, "no user has role admin: nobody can sign in to the admin UI");
out:
	free(r.keys);
	free(r.addrs);
}

/* ---- access policy and the cascade ---- */

struct nodeset {
	struct node	**v;
	size_t		  n;
};

/*
 * Resolve selectors ("*", "region:R", a node name) to the nodes that have `role`. Errors
 * name the selector; an empty result is an error at the list.
 */
static size_t
resolve_nodes(struct ctx *c, const struct flist *sel, unsigned role, const char *key,
    const char *rule, struct nodeset *out)
{
	size_t nerr = c->d->nerr;

	struct fleet *f = c->f;
	const char *rname = role == ROLE_ENTRY ? "entry" : "exit";
	bool *in;
	size_t i, j;

	out->n = 0;
	if ((out->v = calloc(f->nnodes + 1, sizeof(*out->v))) == NULL ||
	    (in = calloc(f->nnodes + 1, sizeof(*in))) == NULL) {
		free(out->v);
		out->v = NULL;
		return 0;
	}
	for (i = 0; sel != NULL && i < sel->n; i++) {
		const struct fstr *s = &FLIST_STR(*sel, i);
		size_t before = out->n;
		bool any = false;

		if (strcmp(s->v, "*") == 0 || strncmp(s->v, "region:", 7) == 0) {
			bool all = s->v[0] == '*';
			for (j = 0; j < f->nnodes; j++) {
				struct node *n = f->nodes[j];
				if (!all && (n->region.v == NULL || strcmp(n->region.v, s->v + 7) != 0))
					continue;
				any = true;
				if ((n->roles_mask & role) && !in[j]) {
					in[j] = true;
					out->v[out->n++] = n;
				}
			}
			if (!all && !any)
				diag_err(c->d, s->at, "access %s: %s: no node is in region '%s'", rule,
				    key, s->v + 7);
			else if (any && out->n == before && !all)
				diag_err(c->d, s->at, "access %s: %s: no node in region '%s' has role "
				    "%s", rule, key, s->v + 7, rname);
			continue;
		}
		for (j = 0; j < f->nnodes; j++)
			if (strcmp(f->nodes[j]->name, s->v) == 0)
				break;
		if (j == f->nnodes) {
			diag_err(c->d, s->at, "access %s: %s: unknown node '%s'", rule, key, s->v);
			continue;
		}
		if (!(f->nodes[j]->roles_mask & role)) {
			diag_err(c->d, s->at, "access %s: %s: node '%s' has no %s role", rule, key,
			    s->v, rname);
			continue;
		}
		if (!in[j]) {
			in[j] = true;
			out->v[out->n++] = f->nodes[j];
		}
	}
	free(in);
	return c->d->nerr - nerr;
}

bool
fleet_node_selected(const struct flist *sel, const struct node *n, unsigned role)
{
	size_t i;

	if (!(n->roles_mask & role))
		return false;
	for (i = 0; sel != NULL && i < sel->n; i++) {
		const char *s = FLIST_STR(*sel, i).v;
		if (strcmp(s, "*") == 0 || strcmp(s, n->name) == 0 ||
		    (strncmp(s, "region:", 7) == 0 && n->region.v != NULL &&
		    strcmp(n->region.v, s + 7) == 0))
			return true;
	}
	return false;
}

static int
node_mtu(const struct fleet *f, const struct node *n)
{
	return n->mtu.set ? (int)n->mtu.v : f->eff.mtu;
}

static int
node_layer(const struct fleet *f, const struct node *n)
{
	struct awg_params p;

	fleet_node_awg(f, n, &p);
	return AWG_LAYER + p.s4;
}

/*
 * The worst inner MTU over every path the rule allows (docs/DESIGN.md §2.5): each
 * segment's worst case is independent of the others, so this is linear in the nodes.
 */
static void
check_cascade(struct ctx *c, const char *rule, int hops, struct loc at,
    const struct nodeset *en, const struct nodeset *vi, const struct nodeset *ex)
{
	const struct fleet *f = c->f;
	const struct node *w1 = NULL, *w2 = NULL, *w3 = NULL;
	int worst = 1 << 30, v, minmtu_e = 1 << 30, minmtu_v = 1 << 30, maxlayer_x = 0;
	const struct node *me = NULL, *mv = NULL, *lx = NULL;
	size_t i;

	for (i = 0; i < en->n; i++) {
		v = node_mtu(f, en->v[i]) - node_layer(f, en->v[i]);
		if (v < worst) {
			worst = v;
			w1 = en->v[i];
			w2 = w3 = NULL;
		}
		if (node_mtu(f, en->v[i]) < minmtu_e) {
			minmtu_e = node_mtu(f, en->v[i]);
			me = en->v[i];
		}
	}
	for (i = 0; i < ex->n; i++)
		if (node_layer(f, ex->v[i]) > maxlayer_x) {
			maxlayer_x = node_layer(f, ex->v[i]);
			lx = ex->v[i];
		}
	if (hops == 2) {
		for (i = 0; i < ex->n && me != NULL; i++) {
			int m = node_mtu(f, ex->v[i]) < minmtu_e ? node_mtu(f, ex->v[i]) : minmtu_e;
			v = m - node_layer(f, ex->v[i]);
			if (v < worst) {
				worst = v;
				w1 = me;
				w2 = ex->v[i];
				w3 = NULL;
			}
		}
	} else if (hops == 3) {
		for (i = 0; i < vi->n; i++) {
			int mv_ = node_mtu(f, vi->v[i]);
			if (mv_ < minmtu_v) {
				minmtu_v = mv_;
				mv = vi->v[i];
			}
			if (me == NULL || lx == NULL)
				continue;
			v = (mv_ < minmtu_e ? mv_ : minmtu_e) - node_layer(f, vi->v[i]) - maxlayer_x;
			if (v < worst) {
				worst = v;
				w1 = me;
				w2 = vi->v[i];
				w3 = lx;
			}
		}
		for (i = 0; i < ex->n && mv != NULL; i++) {
			int m = node_mtu(f, ex->v[i]) < minmtu_v ? node_mtu(f, ex->v[i]) : minmtu_v;
			v = m - node_layer(f, ex->v[i]);
			if (v < worst) {
				worst = v;
				w1 = NULL;
				w2 = mv;
				w3 = ex->v[i];
			}
		}
	}
	if (w1 == NULL && w2 == NULL)
		return;
	if (worst < MIN_INNER_MTU) {
		char path[256];
		snprintf(path, sizeof(path), "%s%s%s%s%s", w1 ? w1->name : "", w1 && w2 ? " -> " : "",
		    w2 ? w2->name : "", w3 ? " -> " : "", w3 ? w3->name : "");
		diag_err(c->d, at, "access %s: the inner MTU on %s is %d, below %d (each "
		    "AmneziaWG layer costs 80 bytes + s4; raise the nodes' mtu or use fewer hops)",
		    rule, path, worst, MIN_INNER_MTU);
	}
}

bool
fleet_user_selected(const struct flist *sel, const struct user *u)
{
	size_t i;

	for (i = 0; i < sel->n; i++) {
		const char *s = FLIST_STR(*sel, i).v;
		if (strcmp(s, "*") == 0 || strcmp(s, u->name) == 0 ||
		    (strcmp(s, "role:admin") == 0 && u->admin) ||
		    (strcmp(s, "role:user") == 0 && !u->admin))
			return true;
	}
	return false;
}

/*
 * Users no rule selects. One pass over the selectors (users are sorted by name, so a
 * name is a binary search): linear in rules x selectors + users, not their product.
 */
static void
warn_uncovered(struct ctx *c, const struct rule *rules)
{
	struct fleet *f = c->f;
	bool *cov, all = false, admins = false, plain = false;
	size_t i, j;

	if (f->nusers == 0 || (cov = calloc(f->nusers, sizeof(*cov))) == NULL)
		return;
	for (i = 0; i < f->access.n; i++)
		for (j = 0; j < rules[i].users.n; j++) {
			const char *s = FLIST_STR(rules[i].users, j).v;
			size_t k;

			if (strcmp(s, "*") == 0)
				all = true;
			else if (strcmp(s, "role:admin") == 0)
				admins = true;
			else if (strcmp(s, "role:user") == 0)
				plain = true;
			else if ((k = fleet_user_index(f, s)) != SIZE_MAX)
				cov[k] = true;
		}
	for (i = 0; i < f->nusers && !all; i++) {
		struct user *u = f->users[i];

		if (cov[i] || (u->admin ? admins : plain))
			continue;
		if (u->hdr.set)
			diag_warn(c->d, u->at, "user '%s' matches no access rule and cannot use any "
			    "node", u->name);
	}
	free(cov);
}

static void
check_rule(struct ctx *c, struct rule *r, size_t idx, bool dflt)
{
	struct fleet *f = c->f;
	struct nodeset en = { 0 }, vi = { 0 }, ex = { 0 };
	char rname[96];
	int hops = r->hops.set ? (int)r->hops.v : f->eff.hops;
	size_t i, eerr, xerr = 0;

	if (r->name.v != NULL)
		snprintf(rname, sizeof(rname), "'%s'", r->name.v);
	else
		snprintf(rname, sizeof(rname), "[%zu]", idx);
	if (!dflt && r->name.v != NULL && !user_name_ok(r->name.v))
		diag_err(c->d, r->name.at, "access[%zu].name: '%s' must be " USER_NAME_RULE, idx,
		    r->name.v);
	for (i = 0; i < r->users.n; i++) {
		const struct fstr *s = &FLIST_STR(r->users, i);
		if (strcmp(s->v, "*") == 0)
			continue;
		if (strncmp(s->v, "role:", 5) == 0) {
			if (strcmp(s->v + 5, "admin") != 0 && strcmp(s->v + 5, "user") != 0)
				diag_err(c->d, s->at, "access %s: users: '%s' is not a role selector "
				    "(role:admin or role:user)", rname, s->v);
		} else if (fleet_find_user(f, s->v) == NULL) {
			diag_err(c->d, s->at, "access %s: users: unknown user '%s'", rname, s->v);
		}
	}
	if (!dflt && r->hdr.set && r->users.set && r->users.n == 0)
		diag_err(c->d, r->users.at, "access %s: users: must not be empty", rname);
	eerr = resolve_nodes(c, &r->entry, ROLE_ENTRY, "entry", rname, &en);
	if (hops == 1) {
		if (r->exit.set)
			diag_err(c->d, r->exit.at, "access %s: exit: a 1-hop path leaves from its "
			    "entry node; remove exit or set hops: 2", rname);
		for (i = 0; i < en.n; i++)
			if (!(en.v[i]->roles_mask & ROLE_EXIT))
				diag_err(c->d, dflt ? en.v[i]->at : r->entry.at, "access %s: node '%s' "
				    "is the exit of a 1-hop path but has no exit role", rname,
				    en.v[i]->name);
		ex = en;
		en.v = NULL;
		check_cascade(c, rname, 1, r->hdr.at, &ex, &vi, &ex);
	} else {
		if (!r->exit.set && !dflt)
			diag_err(c->d, r->hdr.at, "access %s: missing exit: a %d-hop path needs exit "
			    "nodes", rname, hops);
		xerr = resolve_nodes(c, &r->exit, ROLE_EXIT, "exit", rname, &ex);
		if (hops == 3) {
			if (!r->via.set && !dflt)
				diag_err(c->d, r->hdr.at, "access %s: missing via: a 3-hop path needs "
				    "middle nodes", rname);
			resolve_nodes(c, &r->via, ROLE_ENTRY | ROLE_EXIT, "via", rname, &vi);
		} else if (r->via.set) {
			diag_err(c->d, r->via.at, "access %s: via: only a 3-hop path has middle "
			    "nodes", rname);
		}
		if (en.n > 0 && ex.n > 0 && (hops != 3 || vi.n > 0))
			check_cascade(c, rname, hops, r->hdr.at, &en, &vi, &ex);
	}
	/* An empty result is worth its own error only when no selector was wrong. */
	if ((r->entry.n > 0 || dflt) && eerr == 0 && (hops == 1 ? ex.n : en.n) == 0)
		diag_err(c->d, dflt ? f->at : r->entry.at, "access %s: no entry node", rname);
	if (hops >= 2 && ex.n == 0 && (r->exit.n > 0 || dflt) && xerr == 0)
		diag_err(c->d, dflt ? f->at : r->exit.at, "access %s: no exit node", rname);
	free(en.v);
	free(vi.v);
	free(ex.v);
}

static void
check_access(struct ctx *c)
{
	struct fleet *f = c->f;
	struct rule *rules = f->access.v, dflt;
	struct fstr star = { "*", f->at };
	struct keyref *names;
	size_t i, nn = 0;

	if (!f->have_fleet_yaml)
		return;
	if (!f->access.set) {
		if (f->nnodes == 0)
			return;
		/* The implicit rule: every user, every entry, every exit, preset hops. */
		memset(&dflt, 0, sizeof(dflt));
		dflt.hdr.at = f->at;
		dflt.name.v = "default";
		dflt.users = (struct flist){ &star, 1, f->at, true };
		dflt.entry = dflt.users;
		if (f->eff.hops >= 2)
			dflt.exit = dflt.users;
		if (f->eff.hops == 3)
			dflt.via = dflt.users;
		check_rule(c, &dflt, 0, true);
		return;
	}
	if (f->access.n > 0 && (names = calloc(f->access.n, sizeof(*names))) != NULL) {
		for (i = 0; i < f->access.n; i++) {
			if (rules[i].name.v == NULL)
				continue;
			names[nn].key = rules[i].name.v;
			names[nn].at = rules[i].name.at;
			names[nn].owner = NULL;
			nn++;
		}
		report_dups(c, names, nn, "access rule name");
		free(names);
	}
	for (i = 0; i < f->access.n; i++)
		if (rules[i].hdr.set)
			check_rule(c, &rules[i], i, false);
	warn_uncovered(c, rules);
}

void
fleet_validate(struct fleet *f, struct diag *d)
{
	struct ctx c = { f, d };
	struct keyref *pool = NULL, *nodenames;
	struct pool tp = { 0, 0, 0, false };
	size_t npool = 0, i;

	check_fleet_yaml(&c);
	if (f->have_fleet_yaml && f->root.set) {
		check_network(&c, &tp.net, &tp.prefix, &tp.ok);
		check_awg(&c, NULL);
		check_xray(&c, &f->xray);
		if (f->preset == PRESET_ENTERPRISE && f->eff.xray && f->xray.decoy.v == NULL)
			diag_warn(d, f->xray.hdr.set ? f->xray.hdr.at : f->at, "xray.decoy: defaults "
			    "to " FLEET_DEFAULT_DECOY "; an enterprise fleet should pick (and rotate) "
			    "its own decoy site");
	}
	/* "a.yaml" and "a.yml" in the same folder name the same record. */
	if (f->nnodes > 0 && (nodenames = calloc(f->nnodes, sizeof(*nodenames))) != NULL) {
		for (i = 0; i < f->nnodes; i++) {
			nodenames[i].key = f->nodes[i]->name;
			nodenames[i].at = f->nodes[i]->at;
			nodenames[i].owner = NULL;
		}
		report_dups(&c, nodenames, f->nnodes, "node name");
		free(nodenames);
	}
	check_nodes(&c, &pool, &npool);
	report_dups(&c, pool, npool, "entry-pool address");
	free(pool);
	check_relays(&c);
	if (tp.ok)
		tp.size = (uint32_t)(1ULL << (32 - tp.prefix)) - 1;
	check_users(&c, &tp);
	fleet_uindex_unref(f->uprev);	/* needed by this validation only */
	f->uprev = NULL;
	check_access(&c);
}
