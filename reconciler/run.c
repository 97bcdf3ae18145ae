/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `cox run DIR`: the controller daemon (docs/DESIGN.md §9). One libevent loop:
 *   - inotify on fleet.git's refs (loose and packed): a push is seen at once, no polling;
 *   - a new head of the applied branch goes to the loader thread (read from git objects,
 *     validated, every node's config compiled); an invalid revision is recorded with its
 *     errors and pushes nothing — the last valid revision stays applied;
 *   - each node's state machine (push.c) brings it to the applied revision;
 *   - one 1-second timer does the periodic work: status polls, the drift sweep.
 * cox listens on nothing here: it dials every node.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <git2.h>
#include <sodium.h>

#include "clock.h"
#include "cox.h"
#include "admin.h"
#include "ctl.h"
#include "ctlpki.h"
#include "desired.h"
#include "err.h"
#include "fleet.h"
#include "log.h"
#include "version.h"

void
ctl_audit(struct ctl *c, const char *action, const char *object, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (audit_append(c->st, "cox", action, object, buf) != 0)
		log_warnx("audit: cannot append %s %s: %s", action, object, err_last());
}

/* ---- writing node rows back, batched into one transaction per loop turn ---- */

static void
on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct ctl *c = arg;
	struct cnode *n, *next;
	bool tx;

	(void)fd;
	(void)what;
	if (c->dirty == NULL)
		return;
	tx = state_begin(c->st) == 0;
	for (n = c->dirty; n != NULL; n = next) {
		next = n->next_dirty;
		n->dirty = false;
		n->next_dirty = NULL;
		if (state_node_put(c->st, &n->db) != 0)
			log_warnx("state: cannot record node=%s: %s", n->name, err_last());
	}
	c->dirty = NULL;
	if (tx && state_commit(c->st) != 0) {
		log_warnx("state: commit failed: %s", err_last());
		state_rollback(c->st);
	}
}

void
ctl_flush_later(struct ctl *c)
{
	if (!event_pending(c->ev_flush, EV_TIMEOUT, NULL)) {
		struct timeval tv = { 0, 0 };

		evtimer_add(c->ev_flush, &tv);
	}
}

/* ---- convergence ---- */

void
ctl_node_synced(struct ctl *c)
{
	size_t i, n = 0;
	int64_t now;

	if (c->converged || c->cur == NULL)
		return;
	for (i = 0; i < c->nnodes; i++) {
		if (c->nodes[i]->want == NULL)
			continue;
		if (c->nodes[i]->phase != CN_SYNCED ||
		    strcmp(c->nodes[i]->db.applied_rev, c->applied_rev) != 0)
			return;
		n++;
	}
	c->converged = true;
	now = clock_unix_nanos();
	log_info("revision converged rev=%.12s nodes=%zu ms=%.1f at_unix_ns=%lld",
	    c->applied_rev, n, (double)(now - c->seen_unix_ns) / 1e6, (long long)now);
	/*
	 * The pushes' requests and TLS records are freed by now: give their pages back, so
	 * the next revision's build starts from the fleet's size, not the push's high-water
	 * mark (1,000 nodes: 238 -> ~180 MiB).
	 */
	malloc_trim(0);
}

/* ---- nodes ---- */

static int
cmp_cnode(const void *a, const void *b)
{
	return strcmp((*(struct cnode *const *)a)->name, (*(struct cnode *const *)b)->name);
}

static struct cnode *
find_cnode(struct ctl *c, const char *name)
{
	size_t lo = 0, hi = c->nnodes;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int r = strcmp(name, c->nodes[mid]->name);

		if (r == 0)
			return c->nodes[mid];
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static void
split_hostport(const char *s, char *host, size_t hostsz, char *port, size_t portsz)
{
	const char *colon;

	if (s[0] == '[' && (colon = strstr(s, "]:")) != NULL) {
		snprintf(host, hostsz, "%.*s", (int)(colon - s - 1), s + 1);
		snprintf(port, portsz, "%s", colon + 2);
	} else if ((colon = strrchr(s, ':')) != NULL && strchr(s, ':') == colon) {
		snprintf(host, hostsz, "%.*s", (int)(colon - s), s);
		snprintf(port, portsz, "%s", colon + 1);
	} else {
		snprintf(host, hostsz, "%s", s);
		snprintf(port, portsz, "%d", FLEET_CONTROL_PORT);
	}
}

/* Make the node set match the applied revision and point every node at its config. */
static void
apply_nodes(struct ctl *c)
{
	const struct desired *d = c->cur->desired;
	struct cnode **nv;
	size_t i, nn = 0;

	nv = calloc(d->n + 1, sizeof(*nv));
	if (nv == NULL) {
		log_warnx("out of memory planning rev=%.12s", c->cur->rev);
		return;
	}
	for (i = 0; i < d->n; i++) {
		const struct desired_node *dn = &d->nodes[i];
		struct cnode *n = find_cnode(c, dn->name);
		char host[256], port[8];

		if (n == NULL && (n = cnode_new(c, dn->name)) == NULL) {
			log_warnx("node=%s cannot be tracked: %s", dn->name, err_last());
			continue;
		}
		n->in_fleet = true;
		if (n->db.control != NULL && n->db.control[0] != '\0')
			split_hostport(n->db.control, host, sizeof(host), port, sizeof(port));
		else {
			snprintf(host, sizeof(host), "%s", dn->host);
			snprintf(port, sizeof(port), "%s", dn->port);
		}
		cnode_set_target(n, host, port);
		nv[nn++] = n;
	}
	/* Nodes gone from the fleet: stop driving them (their data plane keeps running). */
	on_flush(-1, 0, c);	/* no freed node may stay on the dirty list */
	for (i = 0; i < c->nnodes; i++)
		if (desired_find(d, c->nodes[i]->name) == NULL) {
			log_info("node=%s removed from the fleet: no longer driven",
			    c->nodes[i]->name);
			cnode_free(c->nodes[i]);
		}
	free(c->nodes);
	c->nodes = nv;
	c->nnodes = nn;
	qsort(c->nodes, c->nnodes, sizeof(*c->nodes), cmp_cnode);
	if (state_begin(c->st) != 0)
		log_warnx("state: %s", err_last());
	for (i = 0; i < c->nnodes; i++)
		cnode_want(c->nodes[i], desired_find(d, c->nodes[i]->name), c->cur->rev);
	if (state_commit(c->st) != 0) {
		log_warnx("state: %s", err_last());
		state_rollback(c->st);
	}
}

/* ---- revisions ---- */

static void
submit(struct ctl *c, const char *rev)
{
	struct node_key *keys = calloc(c->nnodes + 1, sizeof(*keys));
	size_t i, n = 0;

	for (i = 0; keys != NULL && i < c->nnodes; i++)
		if (c->nodes[i]->db.have_awg_pub) {
			snprintf(keys[n].name, sizeof(keys[n].name), "%s", c->nodes[i]->name);
			memcpy(keys[n].key, c->nodes[i]->db.awg_pub, 32);
			n++;
		}
	loader_submit(&c->loader, rev, keys, n);
	free(keys);
}

static void
check_head(struct ctl *c)
{
	git_oid oid;
	char rev[STATE_REV_MAX];
	int rc;

	rc = git_reference_name_to_id(&oid, c->repo, c->refname);
	if (rc != 0) {
		const git_error *e = git_error_last();

		if (rc != GIT_ENOTFOUND)
			log_warnx("git: cannot resolve %s: %s", c->refname,
			    e != NULL ? e->message : "unknown error");
		return;
	}
	git_oid_tostr(rev, sizeof(rev), &oid);
	if (strcmp(rev, c->seen_rev) == 0)
		return;
	log_info("revision seen branch=%s rev=%.12s", c->branch, rev);
	c->seen_unix_ns = clock_unix_nanos();
	memcpy(c->seen_rev, rev, sizeof(rev));
	submit(c, rev);
}

static void
persist_addrs(struct ctl *c, const struct load_result *r)
{
	size_t i;

	if (r->naddrs == 0)
		return;
	if (state_begin(c->st) != 0)
		goto fail;
	for (i = 0; i < r->naddrs; i++)
		if (state_addr_put(c->st, r->addrs[i].key, r->addrs[i].v4,
		    r->addrs[i].v6[0] != '\0' ? r->addrs[i].v6 : NULL) != 0) {
			state_rollback(c->st);
			goto fail;
		}
	if (state_commit(c->st) == 0)
		return;
	state_rollback(c->st);
fail:
	log_warnx("state: cannot record %zu tunnel addresses: %s", r->naddrs, err_last());
}

static void
on_loaded(evutil_socket_t fd, short what, void *arg)
{
	struct ctl *c = arg;
	struct load_result *r = loader_take(&c->loader);
	char when[32];
	bool same;

	(void)fd;
	(void)what;
	if (r == NULL)
		return;
	snprintf(when, sizeof(when), "%lld", (long long)(clock_unix_nanos() / 1000000000));
	state_meta_set(c->st, "attempted_rev", r->rev);
	state_meta_set(c->st, "attempted_unix", when);
	if (r->errors != NULL) {
		const char *line = r->errors, *nl;
		int shown = 0;

		state_meta_set(c->st, "attempted_errors", r->errors);
		log_warnx("revision refused rev=%.12s errors=%zu author=\"%s\": keeping rev=%.12s",
		    r->rev, r->nerr, r->author, c->applied_rev[0] ? c->applied_rev : "none");
		for (; *line != '\0' && shown < 20; line = nl + 1, shown++) {
			if ((nl = strchr(line, '\n')) == NULL)
				nl = line + strlen(line) - 1;
			log_warnx("  %.*s", (int)(nl - line), line);
			if (nl[0] == '\0')
				break;
		}
		ctl_audit(c, "revision.refused", r->rev, "author=%s errors=%zu", r->author,
		    r->nerr);
		admin_revision(c->admin, r);
		load_result_free(r);
		goto next;
	}
	state_meta_set(c->st, "attempted_errors", "");
	persist_addrs(c, r);
	same = strcmp(r->rev, c->applied_rev) == 0;
	if (!same) {
		state_meta_set(c->st, "applied_rev", r->rev);
		ctl_audit(c, "revision.applied", r->rev, "author=%s nodes=%zu load_ms=%.1f",
		    r->author, r->desired->n, (double)r->load_ns / 1e6);
	}
	log_info("revision %s rev=%.12s nodes=%zu devices=%zu load_ms=%.1f (read %.1f, "
	    "validate %.1f, build %.1f) files_reused=%zu new_addresses=%zu",
	    same ? "re-planned" : "applied", r->rev, r->desired->n, r->fleet->ndevices,
	    (double)r->load_ns / 1e6, (double)r->read_ns / 1e6, (double)r->validate_ns / 1e6,
	    (double)r->build_ns / 1e6, r->reused, r->naddrs);
	/* On disk now; the first load's 100,000 of them are 12 MB not worth keeping. */
	free(r->addrs);
	r->addrs = NULL;
	memcpy(c->applied_rev, r->rev, sizeof(c->applied_rev));
	{
		/* The sweep period comes from the fleet (reconcile.sweep / preset). */
		int64_t s = r->fleet->eff.sweep_s;

		c->sweep_ms = c->sweep_override_ms > 0 ? c->sweep_override_ms :
		    s > 0 ? (unsigned)(s * 1000) : 0;
	}
	/* The old configs stay alive until every node points at the new ones. */
	{
		struct load_result *old = c->cur;

		c->cur = r;
		c->converged = false;
		apply_nodes(c);
		admin_revision(c->admin, r);
		ctl_node_synced(c);
		load_result_free(old);
		/* A 100,000-device revision is ~100 MB of short-lived parse state on the loader's
		 * malloc arenas; give it back instead of keeping the high-water mark. */
		malloc_trim(0);
	}
next:
	/* A push that landed while we were loading, or new node keys to build in. */
	if (c->replan && c->applied_rev[0] != '\0' && strcmp(c->seen_rev, c->applied_rev) == 0) {
		c->replan = false;
		submit(c, c->applied_rev);
		return;
	}
	check_head(c);
}

/* ---- inotify on the refs ---- */

static void
on_inotify(evutil_socket_t fd, short what, void *arg)
{
	struct ctl *c = arg;
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t len;

	(void)what;
	while ((len = read(fd, buf, sizeof(buf))) > 0)
		;
	if (len < 0 && errno != EAGAIN && errno != EINTR)
		log_warn("inotify read");
	check_head(c);
}

static int
watch_refs(struct ctl *c)
{
	char path[PATH_MAX + 16 + 192 + 2];
	const char *sub;
	size_t i;
	/* Loose refs are renamed into place from NAME.lock; packed-refs the same way. */
	uint32_t mask = IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE;

	if ((c->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
		err_setsys("inotify_init1");
		return -1;
	}
	/* refs/heads/<branch>'s folder (a branch "a/b" lives in refs/heads/a/), and the repo. */
	snprintf(path, sizeof(path), "%s/%s", c->gitdir, c->refname);
	if ((sub = strrchr(path, '/')) != NULL)
		path[sub - path] = '\0';
	for (i = 0; i < 2; i++) {
		if (inotify_add_watch(c->ino_fd, i == 0 ? path : c->gitdir, mask) < 0) {
			err_setsys("inotify on %s", i == 0 ? path : c->gitdir);
			return -1;
		}
	}
	c->ev_ino = event_new(c->base, c->ino_fd, EV_READ | EV_PERSIST, on_inotify, c);
	return c->ev_ino != NULL && event_add(c->ev_ino, NULL) == 0 ? 0 : -1;
}

/* ---- the one periodic timer ---- */

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct ctl *c = arg;
	int64_t now = clock_mono_nanos();
	size_t i;

	(void)fd;
	(void)what;
	for (i = 0; i < c->nnodes; i++)
		cnode_tick(c->nodes[i], now);
	admin_tick(c->admin);
	if (c->replan && loader_idle(&c->loader) && c->applied_rev[0] != '\0' &&
	    strcmp(c->seen_rev, c->applied_rev) == 0) {
		c->replan = false;
		log_info("node keys changed: re-planning rev=%.12s", c->applied_rev);
		submit(c, c->applied_rev);
	}
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct ctl *c = arg;

	(void)what;
	log_info("signal %d: stopping (nodes keep their config)", (int)sig);
	c->stopping = true;
	event_base_loopbreak(c->base);
}

/* ---- cox run ---- */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: cox run DIR [options]\n\n"
	    "Run the controller of the state directory DIR (made by `cox init`): watch\n"
	    "DIR/fleet.git, validate each new revision of the applied branch and bring every\n"
	    "node to it over mutual TLS. It listens on nothing public; it dials the nodes.\n\n"
	    "options:\n"
	    "  --admin HOST:PORT  serve the admin UI and API here (default 127.0.0.1:8440;\n"
	    "                     port 0 picks a free one; \"off\" serves nothing). Loopback only\n"
	    "  --admin-allow-remote  ... unless this is given too (then put TLS in front)\n"
	    "  --poll SECONDS     status poll period per node (default 5; 3 missed = unreachable)\n"
	    "  --sweep SECONDS    drift sweep period (default: the fleet's reconcile.sweep)\n"
	    "  --fetch-interval SECONDS  with a remote \"upstream\" in DIR/fleet.git (a fleet\n"
	    "                     hosted on a git forge): fetch its branch this often, ±10%%\n"
	    "                     jitter (default 60); https, ssh (the controller's key), file\n"
	    "  --push-budget BYTES  ApplyConfig request bytes in flight at once; the other\n"
	    "                     pushes wait their turn (default 16777216; one push always may)\n"
	    "  --log-level LEVEL  debug, info (default), warn, error\n"
	    "  --help, --version\n");
}

static int
parse_level(const char *s, enum log_level *out)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	int i;

	for (i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -1;
}

static int
ctl_open(struct ctl *c, const char *dir)
{
	uint8_t pk[crypto_sign_PUBLICKEYBYTES], h[crypto_hash_sha256_BYTES];
	char *branch = NULL;
	size_t i;

	if (realpath(dir, c->dir) == NULL) {
		err_setsys("%s", dir);
		return -1;
	}
	snprintf(c->gitdir, sizeof(c->gitdir), "%s/%s", c->dir, STATE_GIT);
	if (state_open(&c->st, c->dir, 0) != 0)
		return -1;
	if (state_meta_get(c->st, "branch", &branch) < 0)
		return -1;
	snprintf(c->branch, sizeof(c->branch), "%s", branch != NULL ? branch : "main");
	free(branch);
	snprintf(c->refname, sizeof(c->refname), "refs/heads/%s", c->branch);
	if ((c->sign_sk = sodium_malloc(crypto_sign_SECRETKEYBYTES)) == NULL) {
		err_set("out of memory");
		return -1;
	}
	if (ctlpki_load(c->st, &c->tls, c->sign_sk, pk, c->fleet_id) != 0)
		return -1;
	if (tls_ctx_spiffe(&c->self, c->tls) != 0)
		return -1;
	crypto_hash_sha256(h, pk, sizeof(pk));
	for (i = 0; i < 8; i++)
		snprintf(c->key_id + 2 * i, 3, "%02x", h[i]);
	if (git_repository_open_bare(&c->repo, c->gitdir) != 0) {
		const git_error *e = git_error_last();

		err_set("%s: %s", c->gitdir, e != NULL ? e->message : "cannot open");
		return -1;
	}
	return 0;
}

static void
ctl_close(struct ctl *c)
{
	size_t i;

	c->stopping = true;
	admin_stop(c->admin);
	c->admin = NULL;
	upstream_stop(&c->upstream);
	loader_stop(&c->loader);
	for (i = 0; i < c->nnodes; i++)
		cnode_free(c->nodes[i]);
	free(c->nodes);
	c->nodes = NULL;
	c->nnodes = 0;
	c->dirty = NULL;
	load_result_free(c->cur);
	c->cur = NULL;
	if (c->loader.ev_done != NULL)
		event_free(c->loader.ev_done);
	if (c->ev_ino != NULL)
		event_free(c->ev_ino);
	if (c->ino_fd > 0)
		close(c->ino_fd);
	if (c->ev_tick != NULL)
		event_free(c->ev_tick);
	if (c->ev_flush != NULL)
		event_free(c->ev_flush);
	if (c->ev_sigint != NULL)
		event_free(c->ev_sigint);
	if (c->ev_sigterm != NULL)
		event_free(c->ev_sigterm);
	if (c->repo != NULL)
		git_repository_free(c->repo);
	if (c->tls != NULL)
		SSL_CTX_free(c->tls);
	if (c->sign_sk != NULL)
		sodium_free(c->sign_sk);
	state_close(c->st);
	if (c->base != NULL)
		event_base_free(c->base);
}

int
cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "admin", required_argument, NULL, 'a' },
		{ "admin-allow-remote", no_argument, NULL, 'A' },
		{ "poll", required_argument, NULL, 'p' },
		{ "sweep", required_argument, NULL, 's' },
		{ "fetch-interval", required_argument, NULL, 'f' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "push-budget", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl c = { .ino_fd = -1, .poll_ms = 5000, .fetch_ms = 60000,
	    .push_budget = 16u << 20 };
	char *end;
	unsigned long long ull;
	enum log_level level = LOG_INFO;
	struct timeval tick = { 1, 0 };
	const char *admin = "127.0.0.1:8440";
	bool admin_remote = false;
	double v;
	int ch, rc = COX_FAIL;

	TAILQ_INIT(&c.push_wait);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			admin = optarg;
			break;
		case 'A':
			admin_remote = true;
			break;
		case 'p':
		case 's':
		case 'f':
			v = atof(optarg);
			if (v <= 0 || v > 86400) {
				fprintf(stderr, "cox run: --%s needs seconds in (0, 86400]\n",
				    ch == 'p' ? "poll" : ch == 's' ? "sweep" : "fetch-interval");
				return COX_USAGE;
			}
			if (ch == 'p')
				c.poll_ms = (unsigned)(v * 1000);
			else if (ch == 's')
				c.sweep_override_ms = (unsigned)(v * 1000);
			else
				c.fetch_ms = (unsigned)(v * 1000);
			break;
		case 'b':
			errno = 0;
			ull = strtoull(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || ull == 0 ||
			    optarg[0] == '-' || ull > SIZE_MAX / 2) {
				fprintf(stderr, "cox run: --push-budget needs a positive number of "
				    "bytes\n");
				return COX_USAGE;
			}
			c.push_budget = (size_t)ull;
			break;
		case 'l':
			if (parse_level(optarg, &level) != 0) {
				fprintf(stderr, "cox run: --log-level: debug, info, warn or error\n");
				return COX_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return COX_OK;
		case 'V':
			printf("cox %s\n", PHAROS_VERSION);
			return COX_OK;
		default:
			usage(stderr);
			return COX_USAGE;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return COX_USAGE;
	}
	log_init("cox", level);
	signal(SIGPIPE, SIG_IGN);
	git_libgit2_init();
	if (evthread_use_pthreads() != 0 || (c.base = event_base_new()) == NULL) {
		fprintf(stderr, "cox run: cannot create the event loop\n");
		goto out;
	}
	if (ctl_open(&c, argv[optind]) != 0) {
		fprintf(stderr, "cox run: %s\n", err_last());
		goto out;
	}
	c.ev_flush = evtimer_new(c.base, on_flush, &c);
	c.ev_tick = event_new(c.base, -1, EV_PERSIST, on_tick, &c);
	c.loader.ev_done = event_new(c.base, -1, 0, on_loaded, &c);
	c.ev_sigint = evsignal_new(c.base, SIGINT, on_signal, &c);
	c.ev_sigterm = evsignal_new(c.base, SIGTERM, on_signal, &c);
	if (c.ev_flush == NULL || c.ev_tick == NULL || c.loader.ev_done == NULL ||
	    c.ev_sigint == NULL || c.ev_sigterm == NULL || event_add(c.ev_tick, &tick) != 0 ||
	    event_add(c.ev_sigint, NULL) != 0 || event_add(c.ev_sigterm, NULL) != 0) {
		fprintf(stderr, "cox run: cannot set up events\n");
		goto out;
	}
	if (strcmp(admin, "off") != 0 && admin_start(&c.admin, &c, admin, admin_remote) != 0) {
		fprintf(stderr, "cox run: %s\n", err_last());
		goto out;
	}
	if (watch_refs(&c) != 0 || loader_start(&c.loader, &c) != 0 ||
	    upstream_start(&c.upstream, &c, c.fetch_ms) != 0) {
		fprintf(stderr, "cox run: %s\n", err_last());
		goto out;
	}
	{
		char *applied = NULL;

		if (state_meta_get(c.st, "applied_rev", &applied) == 0 && applied != NULL) {
			log_info("last applied rev=%.12s (nodes are checked, not re-pushed)",
			    applied);
			snprintf(c.applied_rev, sizeof(c.applied_rev), "%s", applied);
		}
		free(applied);
	}
	log_info("cox %s running dir=%s fleet=%s branch=%s poll_s=%.1f admin=%s", PHAROS_VERSION,
	    c.dir, c.fleet_id, c.branch, c.poll_ms / 1000.0, admin);
	ctl_audit(&c, "controller.start", c.fleet_id, "version=%s", PHAROS_VERSION);
	check_head(&c);
	event_base_dispatch(c.base);
	on_flush(-1, 0, &c);
	ctl_audit(&c, "controller.stop", c.fleet_id, "pushes_ok=%llu pushes_failed=%llu",
	    (unsigned long long)c.pushes_ok, (unsigned long long)c.pushes_failed);
	rc = COX_OK;
out:
	ctl_close(&c);
	git_libgit2_shutdown();
	return rc;
}
