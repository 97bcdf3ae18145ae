/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mutual TLS between two in-process endpoints over a socketpair: the handshake, ALPN,
 * SPIFFE authorization, and every refusal with its one log line (stderr is captured).
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "err.h"
#include "log.h"
#include "pki.h"
#include "t.h"
#include "tls.h"

#define DAY	86400

struct fleet_pki {
	X509		*root, *fca;
	EVP_PKEY	*root_key, *fca_key;
	char		*bundle;	/* root + Fleet CA, PEM */
	char		*fca_pem;
};

/* A leaf's files, as a node would hold them. */
struct ident {
	char	*chain;		/* leaf + Fleet CA */
	char	*key;
	X509	*cert;
};

static char *
cat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);

	if (s != NULL) {
		memcpy(s, a, la);
		memcpy(s + la, b, lb + 1);
	}
	return s;
}

static int
fleet_pki_new(struct fleet_pki *p, const char *fleet)
{
	char *root = NULL;
	int rc = -1;

	memset(p, 0, sizeof(*p));
	if (pki_root_new(&p->root, &p->root_key, fleet) == 0 &&
	    pki_ca_new(&p->fca, &p->fca_key, PKI_CA_FLEET, fleet, p->root, p->root_key) == 0 &&
	    pki_cert_pem(&root, p->root) == 0 && pki_cert_pem(&p->fca_pem, p->fca) == 0 &&
	    (p->bundle = cat(root, p->fca_pem)) != NULL)
		rc = 0;
	free(root);
	return rc;
}

static void
fleet_pki_free(struct fleet_pki *p)
{
	X509_free(p->root);
	X509_free(p->fca);
	EVP_PKEY_free(p->root_key);
	EVP_PKEY_free(p->fca_key);
	free(p->bundle);
	free(p->fca_pem);
}

static int
ident_new(struct ident *id, struct fleet_pki *p, const char *uri, time_t nb, time_t na)
{
	struct spiffe s;
	EVP_PKEY *key = NULL;
	X509_REQ *csr = NULL;
	char *leaf = NULL;
	int rc = -1;

	memset(id, 0, sizeof(*id));
	if (pki_spiffe_parse(&s, uri) == 0 && pki_key_new(&key) == 0 &&
	    pki_csr_new(&csr, key, &s) == 0 &&
	    pki_issue(&id->cert, p->fca, p->fca_key, csr, &s, nb, na) == 0 &&
	    pki_cert_pem(&leaf, id->cert) == 0 && pki_key_pem(&id->key, key) == 0 &&
	    (id->chain = cat(leaf, p->fca_pem)) != NULL)
		rc = 0;
	free(leaf);
	X509_REQ_free(csr);
	EVP_PKEY_free(key);
	return rc;
}

static void
ident_free(struct ident *id)
{
	free(id->chain);
	free(id->key);
	X509_free(id->cert);
}

static SSL_CTX *
ctx_new(enum tls_side side, const char *bundle, const struct ident *id, const char *crl)
{
	struct tls_config cfg = { bundle, id->chain, id->key, crl };
	SSL_CTX *ctx = tls_ctx_new(side, &cfg);

	if (ctx == NULL)
		printf("#   tls_ctx_new: %s\n", err_last());
	return ctx;
}

/* ---- stderr capture, to check the log lines ---- */

static int saved_stderr = -1;
static FILE *capture_file;
static char captured[16384];

static void
capture_start(void)
{
	fflush(stderr);
	if ((capture_file = tmpfile()) == NULL || (saved_stderr = dup(2)) == -1 ||
	    dup2(fileno(capture_file), 2) == -1)
		printf("#   capture failed: %s\n", strerror(errno));
}

static const char *
capture_end(void)
{
	size_t n = 0;

	fflush(stderr);
	if (saved_stderr != -1) {
		dup2(saved_stderr, 2);
		close(saved_stderr);
		saved_stderr = -1;
	}
	captured[0] = '\0';
	if (capture_file != NULL) {
		rewind(capture_file);
		n = fread(captured, 1, sizeof(captured) - 1, capture_file);
		captured[n] = '\0';
		fclose(capture_file);
		capture_file = NULL;
	}
	/* show it in the test log too */
	fputs(captured, stderr);
	return captured;
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

/* ---- handshakes over a socketpair ---- */

struct conn {
	SSL	*s, *c;		/* server and client ends */
	int	 sfd, cfd;
	int	 s_state, c_state;	/* 0 pending, 1 done, -1 failed */
	int	 c_read;	/* the client's first read after the handshake: 1 ok, -1 failed */
};

static void
conn_free(struct conn *k)
{
	SSL_free(k->s);
	SSL_free(k->c);
	if (k->sfd != -1)
		close(k->sfd);
	if (k->cfd != -1)
		close(k->cfd);
	memset(k, 0, sizeof(*k));
	k->sfd = k->cfd = -1;
}

static void
step(SSL *ssl, int fd, int *state)
{
	int r, e;

	if (*state != 0)
		return;
	if ((r = SSL_do_handshake(ssl)) == 1) {
		*state = 1;
		return;
	}
	e = SSL_get_error(ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return;
	*state = -1;
	tls_log_handshake_failure(ssl, NULL);	/* what the transport does */
	shutdown(fd, SHUT_WR);	/* so the other end is not left waiting */
}

/*
 * Run both ends to completion. With TLS 1.3 the client is done before the server has
 * checked its certificate: the client then reads once to learn the verdict.
 */
static int
handshake(struct conn *k, SSL_CTX *sctx, SSL_CTX *cctx, void (*tweak)(SSL *client))
{
	int sv[2], i;
	char buf[16];

	memset(k, 0, sizeof(*k));
	k->sfd = k->cfd = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		return -1;
	k->sfd = sv[0];
	k->cfd = sv[1];
	if (fcntl(k->sfd, F_SETFL, O_NONBLOCK) == -1 || fcntl(k->cfd, F_SETFL, O_NONBLOCK) == -1 ||
	    (k->s = SSL_new(sctx)) == NULL || (k->c = SSL_new(cctx)) == NULL ||
	    !SSL_set_fd(k->s, k->sfd) || !SSL_set_fd(k->c, k->cfd))
		return -1;
	tls_set_peer_addr(k->s, "192.0.2.1:4444");
	tls_set_peer_addr(k->c, "192.0.2.2:443");
	SSL_set_accept_state(k->s);
	SSL_set_connect_state(k->c);
	if (tweak != NULL)
		tweak(k->c);
	for (i = 0; i < 1000 && (k->s_state == 0 || k->c_state == 0); i++) {
		step(k->c, k->cfd, &k->c_state);
		step(k->s, k->sfd, &k->s_state);
	}
	if (k->c_state == 1) {
		/* the server's verdict on our certificate, or its session tickets */
		for (i = 0; i < 1000; i++) {
			int r = SSL_read(k->c, buf, sizeof(buf)), e;

			if (r > 0) {
				k->c_read = 1;
				break;
			}
			e = SSL_get_error(k->c, r);
			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
				k->c_read = -1;
				break;
			}
			if (k->s_state == 1) {
				if (SSL_write(k->s, "hi", 2) == 2)
					continue;
			}
		}
	}
	ERR_clear_error();
	return 0;
}

static void
no_alpn(SSL *c)
{
	SSL_set_alpn_protos(c, NULL, 0);
}

static void
http11_alpn(SSL *c)
{
	SSL_set_alpn_protos(c, (const unsigned char *)"\x08http/1.1", 9);
}

/* ---- the tests ---- */

struct world {
	struct fleet_pki	alpha, other, beta;
	struct ident		controller, node_a, node_b, expired, revoked, other_ca;
	struct ident		beta_controller;
	char			*crl;	/* alpha's Fleet CA CRL, revoking `revoked` */
};

static int
world_new(struct world *w)
{
	time_t now = time(NULL);
	X509_CRL *crl = NULL;
	char serial[64];
	const char *list[1] = { serial };
	int rc = -1;

	if (fleet_pki_new(&w->alpha, "alpha") != 0 || fleet_pki_new(&w->other, "alpha") != 0 ||
	    fleet_pki_new(&w->beta, "beta") != 0 ||
	    ident_new(&w->controller, &w->alpha, "spiffe://alpha/controller", 0, 0) != 0 ||
	    ident_new(&w->node_a, &w->alpha, "spiffe://alpha/node/node-a", 0, 0) != 0 ||
	    ident_new(&w->node_b, &w->alpha, "spiffe://alpha/node/node-b", 0, 0) != 0 ||
	    ident_new(&w->expired, &w->alpha, "spiffe://alpha/controller", now - 30 * DAY,
	    now - DAY) != 0 ||
	    ident_new(&w->revoked, &w->alpha, "spiffe://alpha/node/node-r", 0, 0) != 0 ||
	    ident_new(&w->other_ca, &w->other, "spiffe://alpha/node/node-a", 0, 0) != 0 ||
	    ident_new(&w->beta_controller, &w->beta, "spiffe://beta/controller", 0, 0) != 0 ||
	    pki_serial_hex(serial, sizeof(serial), w->revoked.cert) != 0 ||
	    pki_crl_new(&crl, w->alpha.fca, w->alpha.fca_key, list, 1, 7) != 0 ||
	    pki_crl_pem(&w->crl, crl) != 0)
		goto out;
	rc = 0;
out:
	X509_CRL_free(crl);
	return rc;
}

static void
world_free(struct world *w)
{
	ident_free(&w->controller);
	ident_free(&w->node_a);
	ident_free(&w->node_b);
	ident_free(&w->expired);
	ident_free(&w->revoked);
	ident_free(&w->other_ca);
	ident_free(&w->beta_controller);
	fleet_pki_free(&w->alpha);
	fleet_pki_free(&w->other);
	fleet_pki_free(&w->beta);
	free(w->crl);
}

static void
test_contexts(struct world *w)
{
	struct tls_config cfg = { w->alpha.bundle, w->controller.chain, w->node_a.key, NULL };
	struct spiffe id;
	SSL_CTX *ctx;

	ctx = ctx_new(TLS_SERVER, w->alpha.bundle, &w->controller, NULL);
	T_OK(ctx != NULL && tls_ctx_spiffe(&id, ctx) == 0 && id.role == PKI_ROLE_CONTROLLER &&
	    strcmp(id.trust_domain, "alpha") == 0, "ctx: server, our id is the controller");
	T_OK(ctx != NULL && SSL_CTX_get_min_proto_version(ctx) == TLS1_3_VERSION &&
	    SSL_CTX_get_max_proto_version(ctx) == TLS1_3_VERSION, "ctx: TLS 1.3 only");
	T_OK(ctx != NULL && (SSL_CTX_get_verify_mode(ctx) &
	    (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT)) ==
	    (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT),
	    "ctx: server requires a client certificate");
	T_OK(ctx != NULL && (SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION),
	    "ctx: no renegotiation");
	SSL_CTX_free(ctx);

	T_OK(tls_ctx_new(TLS_CLIENT, &cfg) == NULL, "ctx: a key not matching the certificate");
	cfg.key_pem = w->controller.key;
	cfg.ca_pem = w->alpha.fca_pem;
	T_OK(tls_ctx_new(TLS_CLIENT, &cfg) == NULL && strstr(err_last(), "root") != NULL,
	    "ctx: a bundle without a root is refused");
	cfg.ca_pem = "garbage";
	T_OK(tls_ctx_new(TLS_CLIENT, &cfg) == NULL, "ctx: garbage bundle refused");
	cfg.ca_pem = w->alpha.bundle;
	cfg.crl_pem = "not a crl";
	T_OK(tls_ctx_new(TLS_SERVER, &cfg) == NULL, "ctx: garbage CRL refused");
	T_OK(tls_ctx_new(TLS_SERVER, NULL) == NULL, "ctx: NULL config refused");
}

static void
test_config_load(struct world *w)
{
	char dir[] = "/tmp/pharos-test-tls-XXXXXX", ca[64], cert[64], key[64], crl[64];
	struct tls_config cfg;
	SSL_CTX *ctx = NULL;

	if (mkdtemp(dir) == NULL) {
		T_OK(0, "config: mkdtemp");
		return;
	}
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	snprintf(cert, sizeof(cert), "%s/c.pem", dir);
	snprintf(key, sizeof(key), "%s/c.key", dir);
	snprintf(crl, sizeof(crl), "%s/crl.pem", dir);
	T_OK(pki_write_file(ca, w->alpha.bundle, 0644) == 0 &&
	    pki_write_file(cert, w->controller.chain, 0644) == 0 &&
	    pki_write_file(key, w->controller.key, 0600) == 0 &&
	    pki_write_file(crl, w->crl, 0644) == 0, "config: files written");
	T_OK(tls_config_load(&cfg, ca, cert, key, crl) == 0 && cfg.crl_pem != NULL &&
	    strcmp(cfg.key_pem, w->controller.key) == 0 &&
	    (ctx = tls_ctx_new(TLS_SERVER, &cfg)) != NULL, "config: loaded from files");
	SSL_CTX_free(ctx);
	tls_config_free(&cfg);
	T_OK(cfg.key_pem == NULL, "config: freed");
	T_OK(tls_config_load(&cfg, ca, cert, key, NULL) == 0 && cfg.crl_pem == NULL,
	    "config: no CRL");
	tls_config_free(&cfg);
	T_OK(tls_config_load(&cfg, ca, cert, "/nonexistent/key", NULL) == ERR_SYS &&
	    cfg.ca_pem == NULL, "config: missing file refused");
	T_OK(tls_config_load(&cfg, ca, dir, key, NULL) != 0, "config: a directory refused");
	unlink(ca);
	unlink(cert);
	unlink(key);
	unlink(crl);
	rmdir(dir);
}

static void
test_good(struct world *w)
{
	SSL_CTX *sctx = ctx_new(TLS_SERVER, w->alpha.bundle, &w->controller, w->crl);
	SSL_CTX *cctx = ctx_new(TLS_CLIENT, w->alpha.bundle, &w->node_a, NULL);
	struct tls_policy pol;
	struct spiffe id;
	struct conn k;
	const unsigned char *alpn = NULL;
	unsigned alpnlen = 0;
	char why[256], buf[8];
	const char *log;

	if (sctx == NULL || cctx == NULL || handshake(&k, sctx, cctx, NULL) != 0) {
		T_OK(0, "good: set up");
		goto out;
	}
	T_OK(k.s_state == 1 && k.c_state == 1 && k.c_read != -1, "good: handshake completes");
	SSL_get0_alpn_selected(k.s, &alpn, &alpnlen);
	T_OK(alpnlen == 2 && memcmp(alpn, "h2", 2) == 0, "good: server selected ALPN h2");
	SSL_get0_alpn_selected(k.c, &alpn, &alpnlen);
	T_OK(alpnlen == 2 && memcmp(alpn, "h2", 2) == 0, "good: client sees ALPN h2");
	T_OK(SSL_version(k.s) == TLS1_3_VERSION, "good: TLS 1.3");
	T_OK(tls_peer(&id, k.s) == 0 && id.role == PKI_ROLE_NODE &&
	    strcmp(id.name, "node-a") == 0 && strcmp(id.trust_domain, "alpha") == 0,
	    "good: the server sees spiffe://alpha/node/node-a");
	T_OK(tls_peer(&id, k.c) == 0 && id.role == PKI_ROLE_CONTROLLER &&
	    strcmp(id.trust_domain, "alpha") == 0, "good: the client sees the controller");
	T_OK(SSL_write(k.c, "ping", 4) == 4 && SSL_read(k.s, buf, sizeof(buf)) == 4 &&
	    memcmp(buf, "ping", 4) == 0, "good: data flows");

	memset(&pol, 0, sizeof(pol));
	pol.kind = TLS_ALLOW_CONTROLLER;
	T_OK(tls_ctx_spiffe(&pol.self, cctx) == 0 &&
	    tls_authorize(k.c, &pol, NULL, why, sizeof(why)) == 0,
	    "authorize: a node allows its controller");
	pol.kind = TLS_ALLOW_EXACT;
	T_OK(pki_spiffe_parse(&pol.expect, "spiffe://alpha/node/node-a") == 0 &&
	    tls_authorize(k.s, &pol, NULL, why, sizeof(why)) == 0,
	    "authorize: the controller allows the node it dialled");
	pol.kind = TLS_ALLOW_ANY_FLEET;
	T_OK(tls_authorize(k.s, &pol, NULL, why, sizeof(why)) == 0,
	    "authorize: any identity of the fleet");
	pol.kind = TLS_ALLOW_EXACT;
	T_OK(pki_spiffe_parse(&pol.expect, "spiffe://alpha/node/node-b") == 0, "parse");
	capture_start();
	T_OK(tls_authorize(k.s, &pol, NULL, why, sizeof(why)) == ERR_INVAL,
	    "authorize: another node than the one dialled is refused");
	log = capture_end();
	T_STREQ(why, "peer is spiffe://alpha/node/node-a, expected spiffe://alpha/node/node-b",
	    "authorize: ... saying why");
	T_OK(strstr(log, "tls: refused peer=192.0.2.1:4444 id=spiffe://alpha/node/node-a "
	    "reason=\"peer is spiffe://alpha/node/node-a, expected "
	    "spiffe://alpha/node/node-b\"") != NULL, "authorize: ... in one log line");
	pol.kind = TLS_ALLOW_CONTROLLER;
	capture_start();
	T_OK(tls_authorize(k.s, &pol, "198.51.100.7:9", why, sizeof(why)) == ERR_INVAL,
	    "authorize: a node is not the controller");
	log = capture_end();
	T_OK(strstr(log, "peer=198.51.100.7:9 ") != NULL, "authorize: the given peer address");
	conn_free(&k);
	T_OK(tls_peer(&id, NULL) == ERR_INVAL, "tls_peer: NULL refused");
out:
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

/* A node dials a "controller" that is really another node of the fleet. */
static void
test_impersonation(struct world *w)
{
	SSL_CTX *sctx = ctx_new(TLS_SERVER, w->alpha.bundle, &w->node_b, NULL);
	SSL_CTX *cctx = ctx_new(TLS_CLIENT, w->alpha.bundle, &w->node_a, NULL);
	struct tls_policy pol;
	struct conn k;
	char why[256];
	const char *log;

	if (sctx == NULL || cctx == NULL || handshake(&k, sctx, cctx, NULL) != 0) {
		T_OK(0, "impersonation: set up");
		goto out;
	}
	T_OK(k.s_state == 1 && k.c_state == 1, "impersonation: the chain is fine");
	memset(&pol, 0, sizeof(pol));
	pol.kind = TLS_ALLOW_CONTROLLER;
	capture_start();
	T_OK(tls_authorize(k.c, &pol, NULL, why, sizeof(why)) == ERR_INVAL,
	    "authorize: node-b as the controller is refused");
	log = capture_end();
	T_STREQ(why, "peer is spiffe://alpha/node/node-b, not the controller",
	    "authorize: ... saying why");
	T_OK(strstr(log, "tls: refused peer=192.0.2.2:443 id=spiffe://alpha/node/node-b "
	    "reason=") != NULL, "authorize: ... logged with the peer's id");
	conn_free(&k);
out:
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

/* Beta's controller, with a chain the client trusts (both roots), is not alpha's. */
static void
test_other_fleet(struct world *w)
{
	char *both = cat(w->alpha.bundle, w->beta.bundle);
	SSL_CTX *sctx = ctx_new(TLS_SERVER, both, &w->beta_controller, NULL);
	SSL_CTX *cctx = ctx_new(TLS_CLIENT, both, &w->node_a, NULL);
	SSL_CTX *cctx1 = ctx_new(TLS_CLIENT, w->alpha.bundle, &w->node_a, NULL);
	struct tls_policy pol;
	struct conn k;
	char why[256];
	const char *log;

	if (both == NULL || sctx == NULL || cctx == NULL || cctx1 == NULL ||
	    handshake(&k, sctx, cctx, NULL) != 0) {
		T_OK(0, "other fleet: set up");
		goto out;
	}
	T_OK(k.s_state == 1 && k.c_state == 1, "other fleet: chain verifies with both roots");
	memset(&pol, 0, sizeof(pol));
	pol.kind = TLS_ALLOW_CONTROLLER;
	T_OK(tls_authorize(k.c, &pol, NULL, why, sizeof(why)) == ERR_INVAL,
	    "authorize: the other fleet's controller is refused");
	T_STREQ(why, "peer is spiffe://beta/controller, not the controller of trust domain "
	    "alpha", "authorize: ... saying why");
	pol.kind = TLS_ALLOW_ANY_FLEET;
	T_OK(tls_authorize(k.s, &pol, NULL, why, sizeof(why)) == ERR_INVAL,
	    "authorize: any-fleet is our fleet only");
	conn_free(&k);

	/* and with alpha's bundle only, the chain itself fails */
	capture_start();
	T_OK(handshake(&k, sctx, cctx1, NULL) == 0 && k.c_state == -1,
	    "other fleet: refused by a client trusting alpha only");
	log = capture_end();
	T_OK(strstr(log, "tls: refused peer=192.0.2.2:443 reason=\"unable to get local "
	    "issuer certificate\" subject=\"CN=spiffe://beta/controller\"") != NULL,
	    "other fleet: logged with reason and subject");
	conn_free(&k);
out:
	free(both);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	SSL_CTX_free(cctx1);
}

struct refusal {
	const char	*name;
	const char	*server_bundle, *client_bundle, *crl;
	struct ident	*server_id, *client_id;
	void		(*tweak)(SSL *);
	int		 server_fails, client_fails;
	const char	*log;		/* expected in the log */
};

static void
run_refusal(const struct refusal *r)
{
	SSL_CTX *sctx = ctx_new(TLS_SERVER, r->server_bundle, r->server_id, r->crl);
	SSL_CTX *cctx = ctx_new(TLS_CLIENT, r->client_bundle, r->client_id, NULL);
	struct conn k;
	const char *log;

	if (sctx == NULL || cctx == NULL) {
		T_OK(0, "%s: set up", r->name);
		goto out;
	}
	capture_start();
	if (handshake(&k, sctx, cctx, r->tweak) != 0) {
		capture_end();
		T_OK(0, "%s: handshake set up", r->name);
		goto out;
	}
	log = capture_end();
	if (r->server_fails)
		T_OK(k.s_state == -1, "%s: the server refuses", r->name);
	if (r->client_fails)
		T_OK(k.c_state == -1 || k.c_read == -1, "%s: the client fails", r->name);
	else
		T_OK(k.c_state == -1, "%s: the client refuses", r->name);
	T_OK(strstr(log, r->log) != NULL, "%s: logged: %s", r->name, r->log);
	T_OK(count(log, "tls: refused ") == 1, "%s: exactly one refusal line", r->name);
	conn_free(&k);
out:
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

static void
tls12_only(SSL *c)
{
	SSL_set_min_proto_version(c, TLS1_2_VERSION);
	SSL_set_max_proto_version(c, TLS1_2_VERSION);
}

static void
test_refusals(struct world *w)
{
	const struct refusal rs[] = {
		{ "other CA", w->alpha.bundle, w->alpha.bundle, NULL, &w->controller,
		    &w->other_ca, NULL, 1, 1,
		    "tls: refused peer=192.0.2.1:4444 reason=\"unable to get local issuer "
		    "certificate\" subject=\"CN=spiffe://alpha/node/node-a\"" },
		{ "expired server", w->alpha.bundle, w->alpha.bundle, NULL, &w->expired,
		    &w->node_a, NULL, 0, 0,
		    "tls: refused peer=192.0.2.2:443 reason=\"certificate has expired\" "
		    "subject=\"CN=spiffe://alpha/controller\"" },
		{ "revoked client", w->alpha.bundle, w->alpha.bundle, w->crl, &w->controller,
		    &w->revoked, NULL, 1, 1,
		    "tls: refused peer=192.0.2.1:4444 reason=\"certificate revoked\" "
		    "subject=\"CN=spiffe://alpha/node/node-r\"" },
		{ "TLS 1.2 client", w->alpha.bundle, w->alpha.bundle, NULL, &w->controller,
		    &w->node_a, tls12_only, 1, 1,
		    "tls: refused peer=192.0.2.1:4444 reason=\"protocol version: TLS 1.3 "
		    "required\"" },
		{ "no ALPN", w->alpha.bundle, w->alpha.bundle, NULL, &w->controller,
		    &w->node_a, no_alpn, 1, 1,
		    "tls: refused peer=192.0.2.1:4444 reason=\"no ALPN h2\"" },
		{ "http/1.1 only", w->alpha.bundle, w->alpha.bundle, NULL, &w->controller,
		    &w->node_a, http11_alpn, 1, 1,
		    "tls: refused peer=192.0.2.1:4444 reason=\"no ALPN h2\"" },
	};
	size_t i;

	for (i = 0; i < sizeof(rs) / sizeof(rs[0]); i++)
		run_refusal(&rs[i]);
}

/* A client without a certificate: built by hand, tls_ctx_new always has one. */
static void
test_no_client_cert(struct world *w)
{
	SSL_CTX *sctx = ctx_new(TLS_SERVER, w->alpha.bundle, &w->controller, NULL);
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	X509_STORE *st = cctx ? SSL_CTX_get_cert_store(cctx) : NULL;
	struct conn k;
	const char *log;

	if (sctx == NULL || cctx == NULL || !X509_STORE_add_cert(st, w->alpha.root) ||
	    SSL_CTX_set_alpn_protos(cctx, (const unsigned char *)"\x02h2", 3) != 0) {
		T_OK(0, "no client cert: set up");
		goto out;
	}
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	capture_start();
	handshake(&k, sctx, cctx, NULL);
	log = capture_end();
	T_OK(k.s_state == -1 && (k.c_state == -1 || k.c_read == -1),
	    "no client cert: refused");
	T_OK(strstr(log, "tls: refused peer=192.0.2.1:4444 reason=\"no client certificate\"") !=
	    NULL, "no client cert: logged");
	T_OK(count(log, "tls: refused ") == 1, "no client cert: one line");
	conn_free(&k);
out:
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

/* A bundle of another root plus alpha's Fleet CA: the intermediate is no anchor. */
static void
test_no_partial_chain(struct world *w)
{
	char *bundle = NULL, *broot = NULL, *both = NULL;
	SSL_CTX *sctx = NULL, *cctx = NULL;
	struct conn k;
	const char *log;

	if (pki_cert_pem(&broot, w->beta.root) != 0 ||
	    (bundle = cat(broot, w->alpha.fca_pem)) == NULL ||
	    (sctx = ctx_new(TLS_SERVER, bundle, &w->beta_controller, NULL)) == NULL ||
	    (both = cat(w->alpha.bundle, w->beta.bundle)) == NULL ||
	    (cctx = ctx_new(TLS_CLIENT, both, &w->node_a, NULL)) == NULL) {
		T_OK(0, "partial chain: set up");
		goto out;
	}
	capture_start();
	handshake(&k, sctx, cctx, NULL);
	log = capture_end();
	T_OK(k.s_state == -1, "partial chain: a trusted intermediate is not a trust anchor");
	T_OK(strstr(log, "tls: refused peer=192.0.2.1:4444 reason=\"unable to get issuer "
	    "certificate\" subject=\"CN=spiffe://alpha/node/node-a\"") != NULL,
	    "partial chain: logged by the server");
	conn_free(&k);
out:
	free(broot);
	free(bundle);
	free(both);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

/* tls_log_handshake_failure adds a line only when nothing was logged. */
static void
test_log_helper(struct world *w)
{
	SSL_CTX *ctx = ctx_new(TLS_CLIENT, w->alpha.bundle, &w->node_a, NULL);
	SSL *ssl = ctx ? SSL_new(ctx) : NULL;
	const char *log;

	if (ssl == NULL) {
		T_OK(0, "log helper: set up");
		goto out;
	}
	capture_start();
	tls_log_handshake_failure(ssl, "203.0.113.5:1");
	tls_log_handshake_failure(ssl, "203.0.113.5:1");
	log = capture_end();
	T_OK(count(log, "tls: refused peer=203.0.113.5:1 reason=\"connection closed during the "
	    "handshake\"") == 1, "log helper: one line per connection");
	T_OK(ERR_peek_error() == 0, "log helper: the error queue is drained");
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

int
main(void)
{
	struct world w;

	log_init("test_tls", LOG_INFO);
	memset(&w, 0, sizeof(w));
	if (world_new(&w) != 0) {
		T_OK(0, "world: %s", err_last());
		world_free(&w);
		T_DONE();
	}
	test_contexts(&w);
	test_config_load(&w);
	test_good(&w);
	test_impersonation(&w);
	test_other_fleet(&w);
	test_refusals(&w);
	test_no_client_cert(&w);
	test_no_partial_chain(&w);
	test_log_helper(&w);
	world_free(&w);
	T_DONE();
}
