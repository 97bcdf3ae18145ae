/* SPDX-License-Identifier: Apache-2.0 */
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sched.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "clock.h"
#include "config.h"
#include "err.h"
#include "fsutil.h"
#include "grpc.h"
#include "log.h"
#include "xray.h"

/*
 * The running config is decoded into an arena: 10,000 peers are four small allocations
 * each, which malloc would pad with its own headers and spread between the request's
 * transient buffers, in a heap that then cannot be trimmed. Big blocks (the peers array,
 * protobuf-c's temporary tables while it decodes) stay with malloc, so the temporary ones
 * really go when protobuf-c frees them.
 */
#define CFG_MEM_BIG	4096

struct cfg_mem {
	struct arena	*arena;
	void		**big;
	size_t		 nbig, capbig;
};

static struct cfg_mem *
cfg_mem_new(void)
{
	struct cfg_mem *m = calloc(1, sizeof(*m));

	if (m != NULL && (m->arena = arena_new()) == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

static void
cfg_mem_free(struct cfg_mem *m)
{
	if (m == NULL)
		return;
	while (m->nbig > 0)
		free(m->big[--m->nbig]);
	free(m->big);
	arena_free(m->arena);
	free(m);
}

static void *
cfg_mem_alloc(void *arg, size_t size)
{
	struct cfg_mem *m = arg;
	void *p, **nb;

	if (size < CFG_MEM_BIG)
		return arena_alloc(m->arena, size);
	if (m->nbig == m->capbig) {
		size_t cap = m->capbig ? m->capbig * 2 : 8;
		if ((nb = realloc(m->big, cap * sizeof(*nb))) == NULL)
			return NULL;
		m->big = nb;
		m->capbig = cap;
	}
	if ((p = malloc(size)) != NULL)
		m->big[m->nbig++] = p;
	return p;
}

static void
cfg_mem_release(void *arg, void *p)
{
	struct cfg_mem *m = arg;
	size_t i;

	/* A big block goes now; a small one with the arena. */
	for (i = 0; i < m->nbig; i++)
		if (m->big[i] == p) {
			free(p);
			m->big[i] = m->big[--m->nbig];
			return;
		}
}

int
config_open(struct node_config *nc, const char *dir, const struct spiffe *self)
{
	char path[1100], *text = NULL;
	size_t len, binlen = 0;

	memset(nc, 0, sizeof(*nc));
	snprintf(nc->dir, sizeof(nc->dir), "%s", dir);
	nc->self = *self;
	snprintf(path, sizeof(path), "%s/%s", dir, CONTROLLER_PUB_FILE);
	if (fs_read_file(&text, &len, path, 4096) != 0) {
		log_warnx("buoy: no pinned controller key (%s): every config will be refused",
		    err_last());
		return 0;
	}
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
		text[--len] = '\0';
	if (sodium_base642bin(nc->controller_pub, sizeof(nc->controller_pub), text, len, NULL,
	    &binlen, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 || binlen != 32) {
		free(text);
		err_set("%s: not an Ed25519 public key (base64 of 32 bytes)", path);
		return ERR_INVAL;
	}
	free(text);
	nc->have_pub = true;
	return 0;
}

static void
deltas_free(struct node_config *nc)
{
	while (nc->ndeltas > 0)
		pharos__v1__peer_delta__free_unpacked(nc->deltas[--nc->ndeltas], NULL);
	free(nc->deltas);
	nc->deltas = NULL;
	nc->capdeltas = 0;
	free(nc->view_users);
	nc->view_users = NULL;
	nc->have_view = false;
	nc->delta_serial = 0;
}

void
config_close(struct node_config *nc)
{
	deltas_free(nc);
	peerset_free(nc->peers);
	nc->peers = NULL;
	cfg_mem_free(nc->cfg_mem);	/* nc->cfg with it */
	nc->cfg_mem = NULL;
	nc->cfg = NULL;
}

const Pharos__V1__NodeConfig *
config_view(const struct node_config *nc, const struct peerset **peers)
{
	if (peers != NULL)
		*peers = nc->cfg != NULL ? nc->peers : NULL;
	return nc->cfg == NULL ? NULL : nc->have_view ? &nc->view : nc->cfg;
}

int
config_peerset(struct peerset **out, Pharos__V1__Peer *const *peers, size_t n, bool unique)
{
	struct peerset *ps;
	struct peerset_in in;
	size_t i, nips = 0;
	int rc;

	*out = NULL;
	if ((rc = peerset_new(&ps)) != 0)
		return rc;
	for (i = 0; i < n; i++)
		nips += peers[i]->n_allowed_ips < 65536 ? peers[i]->n_allowed_ips : 0;
	/* Most allowed IPs are IPv4 (6 bytes packed); seal gives back what is left over. */
	if (unique && (rc = peerset_reserve(ps, n, nips * 6)) != 0)
		goto fail;
	for (i = 0; i < n; i++) {
		in.key = peers[i]->public_key.data;
		in.keylen = peers[i]->public_key.len;
		in.ips = peers[i]->allowed_ips;
		in.n_ips = peers[i]->n_allowed_ips;
		in.endpoint = peers[i]->endpoint;
		in.keepalive = peers[i]->persistent_keepalive;
		if ((rc = unique ? peerset_append(ps, &in) : peerset_put(ps, &in)) != 0) {
			char why[256];
			snprintf(why, sizeof(why), "%s", err_last());
			err_set("peer %zu: %s", i, why);
			goto fail;
		}
	}
	if (unique && (rc = peerset_seal(ps)) != 0)
		goto fail;
	*out = ps;
	return 0;
fail:
	peerset_free(ps);
	return rc;
}

/* The view starts as cfg itself with its own user array (pointers into cfg). */
static int
view_reset(struct node_config *nc)
{
	size_t nu = nc->cfg->n_vless_users;

	free(nc->view_users);
	if ((nc->view_users = calloc(nu + 1, sizeof(*nc->view_users))) == NULL)
		return ERR_NOMEM;
	if (nu > 0)
		memcpy(nc->view_users, nc->cfg->vless_users, nu * sizeof(*nc->view_users));
	nc->view = *nc->cfg;
	nc->view.vless_users = nc->view_users;
	nc->view.n_vless_users = nu;
	nc->have_view = true;
	return 0;
}

static ssize_t
view_find_user(const struct node_config *nc, const char *email)
{
	size_t i;

	for (i = 0; i < nc->view.n_vless_users; i++)
		if (strcasecmp(nc->view_users[i]->email, email) == 0)
			return (ssize_t)i;
	return -1;
}

/* Apply a checked delta to the view (its users stay owned by the delta). */
static int
view_apply(struct node_config *nc, const Pharos__V1__PeerDelta *d, const struct peerset *add)
{
	size_t i, nu = nc->view.n_vless_users + d->n_add_users;
	Pharos__V1__VlessUser **nv;
	struct peerset_in in;
	ssize_t at;
	int rc;

	/* Room first: the puts below then fail only if memory runs out on the way. */
	if ((rc = peerset_reserve(nc->peers, add->n, add->ipslen)) != 0)
		return rc;
	if ((nv = realloc(nc->view_users, (nu + 1) * sizeof(*nv))) == NULL)
		return ERR_NOMEM;
	nc->view_users = nv;
	nc->view.vless_users = nv;
	for (i = 0; i < d->n_add_users; i++) {
		if ((at = view_find_user(nc, d->add_users[i]->email)) >= 0)
			nv[at] = d->add_users[i];
		else
			nv[nc->view.n_vless_users++] = d->add_users[i];
	}
	for (i = 0; i < d->n_remove_users; i++) {
		if ((at = view_find_user(nc, d->remove_users[i])) < 0)
			continue;
		/* In order: Xray's config lists the users as the view does. */
		memmove(&nv[at], &nv[at + 1], (nc->view.n_vless_users - (size_t)at - 1) *
		    sizeof(*nv));
		nc->view.n_vless_users--;
	}
	for (i = 0; i < d->n_add; i++) {
		in.key = d->add[i]->public_key.data;
		in.keylen = d->add[i]->public_key.len;
		in.ips = d->add[i]->allowed_ips;
		in.n_ips = d->add[i]->n_allowed_ips;
		in.endpoint = d->add[i]->endpoint;
		in.keepalive = d->add[i]->persistent_keepalive;
		if ((rc = peerset_put(nc->peers, &in)) != 0)
			return rc;
	}
	for (i = 0; i < d->n_remove; i++)
		peerset_remove(nc->peers, d->remove[i].data);
	return 0;
}

void
config_check_free(struct config_check *cc)
{
	cfg_mem_free(cc->mem);		/* cc->cfg with it */
	cc->mem = NULL;
	cc->cfg = NULL;
	peerset_free(cc->peers);
	cc->peers = NULL;
}

/*
 * Keep cfg's peers in compact form and cfg itself without them: packed again without its
 * peers and decoded into memory of its own, so the decoded peers go with the old memory.
 */
static int
split_peers(struct config_check *cc, Pharos__V1__NodeConfig *cfg)
{
	ProtobufCAllocator al = { cfg_mem_alloc, cfg_mem_release, NULL };
	Pharos__V1__NodeConfig *bare;
	struct cfg_mem *mem;
	uint8_t *buf;
	size_t len;
	int rc;

	if ((rc = config_peerset(&cc->peers, cfg->peers, cfg->n_peers, true)) != 0)
		return rc;
	cfg->n_peers = 0;
	cfg->peers = NULL;	/* protobuf-c frees nothing itself: the arena holds them */
	len = pharos__v1__node_config__get_packed_size(cfg);
	if ((buf = malloc(len ? len : 1)) == NULL || (mem = cfg_mem_new()) == NULL) {
		free(buf);
		err_set("out of memory");
		return ERR_NOMEM;
	}
	pharos__v1__node_config__pack(cfg, buf);
	al.allocator_data = mem;
	bare = pharos__v1__node_config__unpack(&al, len, buf);
	free(buf);
	if (bare == NULL) {
		cfg_mem_free(mem);
		err_set("out of memory");
		return ERR_NOMEM;
	}
	cfg_mem_free(cc->mem);	/* the decoded peers with it */
	cc->mem = mem;
	cc->cfg = bare;
	return 0;
}

static void
refuse(struct config_check *cc, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
refuse(struct config_check *cc, int status, const char *fmt, ...)
{
	va_list ap;

	cc->verdict = CONFIG_REFUSED;
	cc->grpc_status = status;
	va_start(ap, fmt);
	vsnprintf(cc->why, sizeof(cc->why), fmt, ap);
	va_end(ap);
}

/* The signature check and the hash of the config bytes, on a thread of their own. */
struct verify_job {
	const uint8_t	*sig, *msg, *pub;
	size_t		 siglen, msglen;
	void		(*verified)(void *);
	void		*arg;
	uint8_t		 hash[32];
	bool		 sig_ok, hash_ok;
};

static void *
verify_run(void *arg)
{
	struct verify_job *j = arg;

	j->sig_ok = j->siglen == crypto_sign_BYTES &&
	    crypto_sign_verify_detached(j->sig, j->msg, j->msglen, j->pub) == 0;
	if (j->sig_ok && j->verified != NULL)
		j->verified(j->arg);
	/* OpenSSL's SHA-256 uses the CPU's SHA extensions: 0.3 ms for 533 KB, libsodium's 1.8. */
	j->hash_ok = j->sig_ok &&
	    EVP_Digest(j->msg, j->msglen, j->hash, NULL, EVP_sha256(), NULL) == 1;
	return NULL;
}

/*
 * The check goes to another CPU than this thread's: left to itself, Linux often queued the
 * new thread behind its parent on the parent's busy CPU, so it started only when the
 * parent waited for it (~1.2 ms late in half the applies, measured). With one CPU allowed,
 * there is no thread: the caller checks inline.
 */
static bool
verify_start(pthread_t *th, struct verify_job *job)
{
	pthread_attr_t attr;
	cpu_set_t cpus;
	int self = sched_getcpu();
	bool ok;

	if (sched_getaffinity(0, sizeof(cpus), &cpus) != 0 || CPU_COUNT(&cpus) < 2)
		return false;
	if (pthread_attr_init(&attr) != 0)
		return false;
	if (self >= 0 && CPU_ISSET(self, &cpus)) {
		CPU_CLR(self, &cpus);
		(void)pthread_attr_setaffinity_np(&attr, sizeof(cpus), &cpus);
	}
	ok = pthread_create(th, &attr, verify_run, job) == 0;
	pthread_attr_destroy(&attr);
	return ok;
}

/*
 * The signature is checked on a second thread while this one decodes the signed bytes
 * (protobuf-c, fuzzed: tests/fuzz/fuzz_proto.c); nothing decoded is looked at before
 * the signature holds, and every other check comes after it, in the order they always
 * had. For 10,000 peers both take about a millisecond, so the overlap is most of one.
 */
void
config_check(struct node_config *nc, const uint8_t *req, size_t len, struct config_check *cc,
    void (*verified)(void *), void *arg)
{
	Pharos__V1__ApplyConfigRequest *r;
	Pharos__V1__NodeConfig *cfg = NULL;
	ProtobufCAllocator al = { cfg_mem_alloc, cfg_mem_release, NULL };
	struct verify_job job;
	pthread_t th;
	bool threaded;
	int rc;

	memset(cc, 0, sizeof(*cc));
	if ((r = pharos__v1__apply_config_request__unpack(NULL, len, req)) == NULL) {
		refuse(cc, GRPC_INVALID_ARGUMENT, "malformed ApplyConfigRequest");
		return;
	}
	if (!nc->have_pub) {
		refuse(cc, GRPC_FAILED_PRECONDITION, "no controller key is pinned on this node");
		goto out;
	}
	memset(&job, 0, sizeof(job));
	job.sig = r->signature.data;
	job.siglen = r->signature.len;
	job.msg = r->config.data;
	job.msglen = r->config.len;
	job.pub = nc->controller_pub;
	job.verified = verified;
	job.arg = arg;
	threaded = verify_start(&th, &job);
	if (!threaded)
		verify_run(&job);
	if ((al.allocator_data = cc->mem = cfg_mem_new()) != NULL)
		cfg = pharos__v1__node_config__unpack(&al, r->config.len, r->config.data);
	if (threaded)
		pthread_join(th, NULL);
	if (!job.sig_ok) {
		refuse(cc, GRPC_PERMISSION_DENIED, "signature does not verify with the pinned "
		    "controller key");
		goto out;
	}
	if (cc->mem == NULL) {
		refuse(cc, GRPC_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	if (cfg == NULL) {
		refuse(cc, GRPC_INVALID_ARGUMENT, "signed config is not a NodeConfig");
		goto out;
	}
	if (!job.hash_ok) {
		refuse(cc, GRPC_INTERNAL, "cannot hash the config");
		goto out;
	}
	memcpy(cc->hash, job.hash, 32);
	if (strcmp(cfg->fleet_id, nc->self.trust_domain) != 0 ||
	    strcmp(cfg->node, nc->self.name) != 0) {
		refuse(cc, GRPC_PERMISSION_DENIED, "config is for %s/%s, this is %s/%s",
		    cfg->fleet_id, cfg->node, nc->self.trust_domain, nc->self.name);
		goto out;
	}
	if (nc->cfg != NULL && cfg->serial == nc->cfg->serial && nc->delta_serial == 0 &&
	    memcmp(cc->hash, nc->hash, 32) == 0) {
		cc->verdict = CONFIG_SAME;
		goto out;
	}
	if (nc->cfg != NULL && cfg->serial <= nc->serial) {
		refuse(cc, GRPC_FAILED_PRECONDITION, "serial %llu (revision %.12s) is not newer "
		    "than the running %llu (revision %.12s)", (unsigned long long)cfg->serial,
		    cfg->revision, (unsigned long long)nc->serial, nc->cfg->revision);
		goto out;
	}
	if (cfg->xray != NULL && xray_check_config(cfg) != 0) {
		refuse(cc, GRPC_INVALID_ARGUMENT, "xray: %s", err_last());
		goto out;
	}
	if ((rc = split_peers(cc, cfg)) != 0) {
		refuse(cc, rc == ERR_NOMEM ? GRPC_RESOURCE_EXHAUSTED : GRPC_INVALID_ARGUMENT,
		    "%s", err_last());
		goto out;
	}
	cc->verdict = CONFIG_NEW;
out:
	if (cc->verdict != CONFIG_NEW)
		config_check_free(cc);
	pharos__v1__apply_config_request__free_unpacked(r, NULL);
}

int
config_prepare(struct node_config *nc, const uint8_t *req, size_t len, struct fs_pending *pw)
{
	char path[1100];

	snprintf(path, sizeof(path), "%s/%s", nc->dir, CONFIG_FILE);
	return fs_write_prepare(pw, path, req, len, 0600);
}

int
config_commit(struct node_config *nc, const uint8_t *req, size_t len, struct fs_pending *pw,
    struct config_check *cc)
{
	char path[1100];
	int rc;

	snprintf(path, sizeof(path), "%s/%s", nc->dir, CONFIG_FILE);
	if (pw != NULL && pw->tmp != NULL)
		rc = fs_write_commit(pw);
	else
		rc = req != NULL ? fs_write_atomic(path, req, len, 0600) : 0;
	if (rc != 0)
		return rc;
	config_close(nc);
	nc->cfg = cc->cfg;
	nc->cfg_mem = cc->mem;
	nc->peers = cc->peers;
	cc->cfg = NULL;		/* owned by the node config now */
	cc->mem = NULL;
	cc->peers = NULL;
	memcpy(nc->hash, cc->hash, 32);
	nc->applied_nanos = clock_unix_nanos();
	nc->serial = nc->cfg->serial;
	/* A new config starts a new chain of deltas (the old ones no longer apply). */
	snprintf(path, sizeof(path), "%s/%s", nc->dir, DELTAS_FILE);
	if (req != NULL && unlink(path) != 0 && errno != ENOENT)
		log_warn("buoy: %s", path);
	return view_reset(nc);
}

void
config_delta_check_free(struct delta_check *dc)
{
	if (dc->delta != NULL)
		pharos__v1__peer_delta__free_unpacked(dc->delta, NULL);
	dc->delta = NULL;
	peerset_free(dc->add);
	dc->add = NULL;
}

static void
drefuse(struct delta_check *dc, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
drefuse(struct delta_check *dc, int status, const char *fmt, ...)
{
	va_list ap;

	dc->verdict = DELTA_REFUSED;
	dc->grpc_status = status;
	va_start(ap, fmt);
	vsnprintf(dc->why, sizeof(dc->why), fmt, ap);
	va_end(ap);
}

/* kind: 1 add, 0 remove, -1 either (replay from disk). */
static void
delta_check(struct node_config *nc, const uint8_t *req, size_t len, int kind,
    struct delta_check *dc)
{
	Pharos__V1__AddPeerRequest *r;
	Pharos__V1__PeerDelta *d;
	size_t i;
	int rc;

	memset(dc, 0, sizeof(*dc));
	/* AddPeerRequest and RemovePeerRequest have the same fields. */
	if ((r = pharos__v1__add_peer_request__unpack(NULL, len, req)) == NULL) {
		drefuse(dc, GRPC_INVALID_ARGUMENT, "malformed request");
		return;
	}
	if (!nc->have_pub || r->signature.len != crypto_sign_BYTES ||
	    crypto_sign_verify_detached(r->signature.data, r->delta.data, r->delta.len,
	    nc->controller_pub) != 0) {
		drefuse(dc, GRPC_PERMISSION_DENIED, "signature does not verify with the pinned "
		    "controller key");
		goto out;
	}
	if ((d = pharos__v1__peer_delta__unpack(NULL, r->delta.len, r->delta.data)) == NULL) {
		drefuse(dc, GRPC_INVALID_ARGUMENT, "signed delta is not a PeerDelta");
		goto out;
	}
	if (strcmp(d->fleet_id, nc->self.trust_domain) != 0 || strcmp(d->node, nc->self.name) != 0)
		drefuse(dc, GRPC_PERMISSION_DENIED, "delta is for %s/%s, this is %s/%s",
		    d->fleet_id, d->node, nc->self.trust_domain, nc->self.name);
	else if (nc->cfg == NULL)
		drefuse(dc, GRPC_FAILED_PRECONDITION, "no config runs yet; send ApplyConfig first");
	else if (nc->delta_serial != 0 && d->serial == nc->delta_serial)
		dc->verdict = DELTA_SAME;	/* a retry of the last one */
	else if (d->base_serial != nc->serial)
		drefuse(dc, GRPC_FAILED_PRECONDITION, "delta is based on serial %llu; this node "
		    "runs %llu", (unsigned long long)d->base_serial,
		    (unsigned long long)nc->serial);
	else if (d->serial <= d->base_serial)
		drefuse(dc, GRPC_INVALID_ARGUMENT, "delta serial %llu is not above its base %llu",
		    (unsigned long long)d->serial, (unsigned long long)d->base_serial);
	else if (kind == 1 && (d->n_remove > 0 || d->n_remove_users > 0))
		drefuse(dc, GRPC_INVALID_ARGUMENT, "AddPeer carries removals");
	else if (kind == 0 && (d->n_add > 0 || d->n_add_users > 0))
		drefuse(dc, GRPC_INVALID_ARGUMENT, "RemovePeer carries additions");
	if (dc->verdict == DELTA_NEW && (rc = config_peerset(&dc->add, d->add, d->n_add,
	    false)) != 0)
		drefuse(dc, rc == ERR_NOMEM ? GRPC_RESOURCE_EXHAUSTED : GRPC_INVALID_ARGUMENT,
		    "add: %s", err_last());
	for (i = 0; dc->verdict == DELTA_NEW && i < d->n_remove; i++)
		if (d->remove[i].len != 32)
			drefuse(dc, GRPC_INVALID_ARGUMENT, "remove[%zu]: public key is %zu bytes", i,
			    d->remove[i].len);
	for (i = 0; dc->verdict == DELTA_NEW && i < d->n_add_users; i++) {
		const Pharos__V1__VlessUser *u = d->add_users[i];
		size_t j;
		if (xray_check_email(u->email) != 0 || xray_check_uuid(u->uuid) != 0) {
			drefuse(dc, GRPC_INVALID_ARGUMENT, "add_users[%zu]: %s", i, err_last());
			break;
		}
		for (j = 0; j < i; j++)
			if (strcasecmp(d->add_users[j]->email, u->email) == 0)
				drefuse(dc, GRPC_INVALID_ARGUMENT, "add_users[%zu]: email %s appears "
				    "twice", i, u->email);
	}
	for (i = 0; dc->verdict == DELTA_NEW && i < d->n_remove_users; i++)
		if (xray_check_email(d->remove_users[i]) != 0)
			drefuse(dc, GRPC_INVALID_ARGUMENT, "remove_users[%zu]: %s", i, err_last());
	if (dc->verdict == DELTA_NEW) {
		dc->delta = d;
	} else {
		pharos__v1__peer_delta__free_unpacked(d, NULL);
		peerset_free(dc->add);
		dc->add = NULL;
	}
out:
	pharos__v1__add_peer_request__free_unpacked(r, NULL);
}

void
config_delta_check(struct node_config *nc, const uint8_t *req, size_t len, bool add,
    struct delta_check *dc)
{
	delta_check(nc, req, len, add ? 1 : 0, dc);
}

static int
delta_keep(struct node_config *nc, struct delta_check *dc)
{
	int rc;

	if (nc->ndeltas == nc->capdeltas) {
		size_t cap = nc->capdeltas ? nc->capdeltas * 2 : 16;
		Pharos__V1__PeerDelta **nd = realloc(nc->deltas, cap * sizeof(*nd));
		if (nd == NULL)
			return ERR_NOMEM;
		nc->deltas = nd;
		nc->capdeltas = cap;
	}
	if ((rc = view_apply(nc, dc->delta, dc->add)) != 0)
		return rc;
	peerset_free(dc->add);
	dc->add = NULL;
	nc->deltas[nc->ndeltas++] = dc->delta;
	nc->serial = nc->delta_serial = dc->delta->serial;
	dc->delta = NULL;	/* owned by the node config now */
	return 0;
}

/*
 * Append one record (4-byte big-endian length, then the request) and fdatasync before
 * answering: an acknowledged delta survives a crash; a torn last record is detected at
 * boot and ignored (it was never acknowledged).
 */
int
config_delta_commit(struct node_config *nc, const uint8_t *req, size_t len,
    struct delta_check *dc)
{
	char path[1100];
	uint8_t hdr[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
	    (uint8_t)len };
	struct iovec iov[2] = { { hdr, 4 }, { (void *)(uintptr_t)req, len } };
	ssize_t w;
	int fd, created;

	snprintf(path, sizeof(path), "%s/%s", nc->dir, DELTAS_FILE);
	created = access(path, F_OK) != 0;
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		err_setsys("%s", path);
		return ERR_SYS;
	}
	w = writev(fd, iov, 2);
	if (w != (ssize_t)(len + 4) || fdatasync(fd) != 0) {
		err_setsys("%s: append", path);
		close(fd);
		return ERR_SYS;
	}
	close(fd);
	if (created) {
		int dfd = open(nc->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	return delta_keep(nc, dc);
}

int
config_deltas_load(struct node_config *nc, int (*apply)(void *, const Pharos__V1__PeerDelta *),
    void *arg)
{
	char path[1100], *buf = NULL;
	size_t len, off = 0, n = 0;
	struct delta_check dc;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", nc->dir, DELTAS_FILE);
	if ((rc = fs_read_file(&buf, &len, path, DELTAS_MAX)) != 0)
		return rc == ERR_NOTFOUND ? 0 : rc;
	while (off + 4 <= len) {
		size_t rl = (size_t)(uint8_t)buf[off] << 24 | (size_t)(uint8_t)buf[off + 1] << 16 |
		    (size_t)(uint8_t)buf[off + 2] << 8 | (uint8_t)buf[off + 3];
		if (rl > len - off - 4) {
			log_warnx("buoy: %s: a torn last record (never acknowledged) is ignored",
			    path);
			break;
		}
		delta_check(nc, (const uint8_t *)buf + off + 4, rl, -1, &dc);
		if (dc.verdict != DELTA_NEW) {
			log_warnx("buoy: %s: record %zu refused: %s; the rest is not applied", path,
			    n + 1, dc.verdict == DELTA_SAME ? "a repeat" : dc.why);
			config_delta_check_free(&dc);
			break;
		}
		if (apply != NULL && apply(arg, dc.delta) != 0) {
			config_delta_check_free(&dc);
			break;
		}
		if ((rc = delta_keep(nc, &dc)) != 0) {
			config_delta_check_free(&dc);
			break;
		}
		off += 4 + rl;
		n++;
	}
	free(buf);
	if (n > 0)
		log_info("buoy: replayed %zu signed peer deltas; serial %llu", n,
		    (unsigned long long)nc->serial);
	return 0;
}

int
config_load(struct node_config *nc, struct config_check *out)
{
	char path[1100], *buf = NULL;
	size_t len;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "%s/%s", nc->dir, CONFIG_FILE);
	if ((rc = fs_read_file(&buf, &len, path, CONFIG_MAX)) != 0)
		return rc == ERR_NOTFOUND ? ERR_NOTFOUND : rc;
	config_check(nc, (const uint8_t *)buf, len, out, NULL, NULL);
	free(buf);
	if (out->verdict != CONFIG_NEW) {
		log_warnx("buoy: refusing the persisted config %s: %s; nothing is applied", path,
		    out->verdict == CONFIG_SAME ? "already running" : out->why);
		err_set("%s", out->why);
		return ERR_INVAL;
	}
	return 0;
}
