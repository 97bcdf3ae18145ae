/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mutual TLS for the fleet, on OpenSSL 3.
 *
 * Trust is the CA bundle's roots only (no partial chains: a trusted intermediate is not
 * an anchor). Clients check no host name: which peer is acceptable is decided after the
 * handshake by tls_authorize() on the SPIFFE id, the same way on both sides.
 *
 * Refusal logging. OpenSSL reports a failed handshake as one error code, often after
 * the fact and (under bufferevent_openssl) on another error list than the thread's, so
 * each refusal is logged where it is decided, with the reason known there:
 *   - the verify callback: OpenSSL's verify reason and the peer's subject;
 *   - the ClientHello callback (server): no TLS 1.3 offered, or no ALPN at all;
 *   - the ALPN select callback (server): ALPN without "h2";
 *   - the message callback, on a fatal alert we send that nobody logged (no client
 *     certificate, no shared cipher, ...), and on one we receive ("alert from peer").
 * A per-connection flag in the SSL's ex_data keeps it to one line per connection;
 * tls_log_handshake_failure() covers whatever is left (EOF, a transport error).
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "fsutil.h"
#include "log.h"
#include "pki.h"
#include "tls.h"

#define TLS_FILE_MAX	(1024 * 1024)	/* a PEM bundle or CRL file */
#define ALPN_H2		"\x02h2"

/* Per-connection state, in the SSL's ex_data; freed with the SSL. */
struct tls_conn {
	int	logged;		/* this connection's refusal is in the log already */
	int	alert_sent;	/* last fatal alert description, or -1 */
	int	alert_recv;
	int	established;	/* the handshake completed (OpenSSL forgets after an error) */
	char	peer[96];	/* "" until tls_set_peer_addr() */
};

static pthread_once_t conn_once = PTHREAD_ONCE_INIT;
static int conn_idx = -1;

static void
conn_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	free(ptr);
}

static void
conn_idx_init(void)
{
	conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_ex_free);
}

static int
conn_index(void)
{
	pthread_once(&conn_once, conn_idx_init);
	return conn_idx;
}

/* The connection's state, created on first use; NULL only when out of memory. */
static struct tls_conn *
conn_get(SSL *ssl)
{
	struct tls_conn *c;

	if (ssl == NULL || conn_index() < 0)
		return NULL;
	if ((c = SSL_get_ex_data(ssl, conn_idx)) != NULL)
		return c;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->alert_sent = c->alert_recv = -1;
	if (!SSL_set_ex_data(ssl, conn_idx, c)) {
		free(c);
		return NULL;
	}
	return c;
}

void
tls_set_peer_addr(SSL *ssl, const char *peer_addr)
{
	struct tls_conn *c;

	if ((c = conn_get(ssl)) == NULL) {
		log_warnx("tls: out of memory for connection state peer=%s",
		    peer_addr ? peer_addr : "unknown");
		return;
	}
	snprintf(c->peer, sizeof(c->peer), "%s", peer_addr ? peer_addr : "");
}

/*
 * A value from a peer, made safe inside a "quoted" log value: printable ASCII stays,
 * '"' and '\' are backslashed, anything else becomes \xNN. Truncates to fit.
 */
static const char *
esc(char *dst, size_t dstsz, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	unsigned char ch;

	for (; *src && n + 5 < dstsz; src++) {
		ch = (unsigned char)*src;
		if (ch == '"' || ch == '\\') {
			dst[n++] = '\\';
			dst[n++] = (char)ch;
		} else if (ch >= 0x20 && ch < 0x7f) {
			dst[n++] = (char)ch;
		} else {
			dst[n++] = '\\';
			dst[n++] = 'x';
			dst[n++] = hex[ch >> 4];
			dst[n++] = hex[ch & 15];
		}
	}
	dst[n] = '\0';
	return dst;
}

/* Where the peer is, for log lines: what the transport told us, else the socket's. */
static const char *
peer_of(SSL *ssl, const char *given, char *buf, size_t bufsz)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct tls_conn *c;
	char ip[INET6_ADDRSTRLEN];
	int fd;

	if (given != NULL && *given != '\0')
		return esc(buf, bufsz, given);
	if (ssl != NULL && conn_index() >= 0 &&
	    (c = SSL_get_ex_data(ssl, conn_idx)) != NULL && c->peer[0] != '\0')
		return esc(buf, bufsz, c->peer);
	if (ssl != NULL && (fd = SSL_get_fd(ssl)) >= 0 &&
	    getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;

			if (inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip)) != NULL) {
				snprintf(buf, bufsz, "%s:%u", ip, ntohs(sin->sin_port));
				return buf;
			}
		} else if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;

			if (inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip)) != NULL) {
				snprintf(buf, bufsz, "[%s]:%u", ip, ntohs(sin6->sin6_port));
				return buf;
			}
		}
	}
	ERR_clear_error();	/* SSL_get_fd() on a non-socket BIO */
	snprintf(buf, bufsz, "unknown");
	return buf;
}

/* A certificate name as RFC 2253 text ("CN=spiffe://f/controller"), escaped. */
static const char *
name_str(char *buf, size_t bufsz, const X509_NAME *name)
{
	BIO *bio;
	char *data, tmp[512];
	long len;

	snprintf(buf, bufsz, "?");
	if (name == NULL || (bio = BIO_new(BIO_s_mem())) == NULL)
		return buf;
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0 &&
	    (len = BIO_get_mem_data(bio, &data)) >= 0) {
		if ((size_t)len >= sizeof(tmp))
			len = sizeof(tmp) - 1;
		memcpy(tmp, data, (size_t)len);
		tmp[len] = '\0';
		esc(buf, bufsz, tmp);
	}
	BIO_free(bio);
	return buf;
}

/* Log one refusal for this connection, unless one is logged already. */
static void
refuse(SSL *ssl, const char *peer_addr, const char *reason, const X509 *subject_of)
{
	struct tls_conn *c = conn_get(ssl);
	char peer[128], why[256], subj[512];

	if (c != NULL && c->logged)
		return;
	if (c != NULL)
		c->logged = 1;
	peer_of(ssl, peer_addr, peer, sizeof(peer));
	esc(why, sizeof(why), reason);
	if (subject_of != NULL)
		log_warnx("tls: refused peer=%s reason=\"%s\" subject=\"%s\"", peer, why,
		    name_str(subj, sizeof(subj), X509_get_subject_name(subject_of)));
	else
		log_warnx("tls: refused peer=%s reason=\"%s\"", peer, why);
}

static int
verify_cb(int ok, X509_STORE_CTX *sctx)
{
	SSL *ssl;
	X509 *leaf, *cur;
	struct tls_conn *c;
	char peer[128], subj[512], csubj[512];
	int err, depth;

	if (ok)
		return 1;
	ssl = X509_STORE_CTX_get_ex_data(sctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	err = X509_STORE_CTX_get_error(sctx);
	depth = X509_STORE_CTX_get_error_depth(sctx);
	leaf = X509_STORE_CTX_get0_cert(sctx);
	cur = X509_STORE_CTX_get_current_cert(sctx);
	c = conn_get(ssl);
	if (c != NULL && c->logged)
		return 0;
	if (c != NULL)
		c->logged = 1;
	peer_of(ssl, NULL, peer, sizeof(peer));
	name_str(subj, sizeof(subj), leaf ? X509_get_subject_name(leaf) : NULL);
	if (depth > 0 && cur != NULL && cur != leaf)
		log_warnx("tls: refused peer=%s reason=\"%s\" subject=\"%s\" depth=%d "
		    "cert=\"%s\"", peer, X509_verify_cert_error_string(err), subj, depth,
		    name_str(csubj, sizeof(csubj), X509_get_subject_name(cur)));
	else
		log_warnx("tls: refused peer=%s reason=\"%s\" subject=\"%s\"", peer,
		    X509_verify_cert_error_string(err), subj);
	return 0;
}

/* Our words for the alerts whose OpenSSL wording would puzzle an operator. */
static const char *
alert_reason(char *buf, size_t bufsz, int desc)
{
	const char *r;
	unsigned long e;

	switch (desc) {
	case SSL_AD_CERTIFICATE_REQUIRED:
		return "no client certificate";
	case SSL_AD_PROTOCOL_VERSION:
		return "protocol version: TLS 1.3 required";
	case SSL_AD_NO_APPLICATION_PROTOCOL:
		return "no ALPN h2";
	default:
		e = ERR_peek_last_error();
		r = e ? ERR_reason_error_string(e) : NULL;
		snprintf(buf, bufsz, "%s%s%s", SSL_alert_desc_string_long(desc),
		    r ? ": " : "", r ? r : "");
		return buf;
	}
}

static void
msg_cb(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl,
    void *arg)
{
	const unsigned char *p = buf;
	struct tls_conn *c;
	char peer[128], why[256];

	(void)version;
	(void)arg;
	if (content_type != SSL3_RT_ALERT || len != 2 || p[0] != SSL3_AL_FATAL)
		return;
	c = conn_get(ssl);
	if (write_p) {
		if (c != NULL)
			c->alert_sent = p[1];
		/* after the handshake, errors are the transport's to report */
		if (c != NULL ? !c->established : !SSL_is_init_finished(ssl))
			refuse(ssl, NULL, alert_reason(why, sizeof(why), p[1]), NULL);
		return;
	}
	if (c != NULL) {
		c->alert_recv = p[1];
		if (c->logged)
			return;
		c->logged = 1;
	}
	log_warnx("tls: alert from peer peer=%s alert=\"%s\"",
	    peer_of(ssl, NULL, peer, sizeof(peer)), SSL_alert_desc_string_long(p[1]));
}

/* Remember that the handshake completed: later errors are not refusals. */
static void
info_cb(const SSL *ssl, int where, int ret)
{
	struct tls_conn *c;

	(void)ret;
	if ((where & SSL_CB_HANDSHAKE_DONE) && (c = conn_get((SSL *)(uintptr_t)ssl)) != NULL)
		c->established = 1;
}

/*
 * Server: refuse a ClientHello without TLS 1.3 or without ALPN here, with a log line
 * saying so. (OpenSSL would refuse the first itself, and silently accept the second:
 * the ALPN select callback only runs when the client offers ALPN.)
 */
static int
client_hello_cb(SSL *ssl, int *al, void *arg)
{
	const unsigned char *d;
	size_t len, i;
	int v13 = 0;

	(void)arg;
	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_supported_versions, &d, &len) == 1 &&
	    len >= 1 && (size_t)d[0] + 1 == len) {
		for (i = 1; i + 1 < len; i += 2)
			if (d[i] == 0x03 && d[i + 1] == 0x04)
				v13 = 1;
	}
	if (!v13) {
		refuse(ssl, NULL, "protocol version: TLS 1.3 required", NULL);
		*al = SSL_AD_PROTOCOL_VERSION;
		return SSL_CLIENT_HELLO_ERROR;
	}
	if (SSL_client_hello_get0_ext(ssl,
	    TLSEXT_TYPE_application_layer_protocol_negotiation, &d, &len) != 1) {
		refuse(ssl, NULL, "no ALPN h2", NULL);
		*al = SSL_AD_NO_APPLICATION_PROTOCOL;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

static int
alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned int i, l;

	(void)arg;
	for (i = 0; i < inlen; i += 1 + l) {
		l = in[i];
		if (i + 1 + l > inlen)
			break;
		if (l == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
			*out = in + i + 1;
			*outlen = 2;
			return SSL_TLSEXT_ERR_OK;
		}
	}
	refuse(ssl, NULL, "no ALPN h2", NULL);
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

void
tls_log_handshake_failure(SSL *ssl, const char *peer_addr)
{
	struct tls_conn *c = conn_get(ssl);
	const X509 *peer_cert = NULL;
	const char *reason = "handshake failed";
	char buf[256];
	unsigned long e;
	long vr;

	if (c != NULL && c->logged) {
		ERR_clear_error();
		return;
	}
	e = ERR_peek_last_error();
	vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	if (vr != X509_V_OK) {
		reason = X509_verify_cert_error_string(vr);
		peer_cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	} else if (c != NULL && c->alert_sent >= 0) {
		reason = alert_reason(buf, sizeof(buf), c->alert_sent);
	} else if (c != NULL && c->alert_recv >= 0) {
		snprintf(buf, sizeof(buf), "peer sent alert: %s",
		    SSL_alert_desc_string_long(c->alert_recv));
		reason = buf;
	} else if (e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL) {
		switch (ERR_GET_REASON(e)) {
		case SSL_R_UNSUPPORTED_PROTOCOL:
		case SSL_R_NO_PROTOCOLS_AVAILABLE:
		case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
			reason = "protocol version: TLS 1.3 required";
			break;
		case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
			reason = "no client certificate";
			break;
		case SSL_R_NO_APPLICATION_PROTOCOL:
		case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
			reason = "no ALPN h2";
			break;
		default:
			if (ERR_reason_error_string(e) != NULL)
				reason = ERR_reason_error_string(e);
		}
	} else if (e != 0 && ERR_reason_error_string(e) != NULL) {
		reason = ERR_reason_error_string(e);
	} else if (ssl != NULL && (c != NULL ? !c->established : !SSL_is_init_finished(ssl))) {
		reason = "connection closed during the handshake";
	}
	refuse(ssl, peer_addr, reason, peer_cert);
	ERR_clear_error();
}

/* ---- configuration ---- */

/* fs_read_file() with this API's contract: a missing file is ERR_SYS like any other. */
static int
read_file(char **out, const char *path)
{
	size_t len;
	int rc = fs_read_file(out, &len, path, TLS_FILE_MAX);

	return rc == ERR_NOTFOUND ? ERR_SYS : rc;
}

/* Free a string the config owns; cast through uintptr_t since the fields are const. */
static void
free_str(const char *s, int wipe)
{
	char *p = (char *)(uintptr_t)s;

	if (p == NULL)
		return;
	if (wipe)
		OPENSSL_cleanse(p, strlen(p));
	free(p);
}

void
tls_config_free(struct tls_config *cfg)
{
	if (cfg == NULL)
		return;
	free_str(cfg->ca_pem, 0);
	free_str(cfg->cert_pem, 0);
	free_str(cfg->key_pem, 1);
	free_str(cfg->crl_pem, 0);
	memset(cfg, 0, sizeof(*cfg));
}

int
tls_config_load(struct tls_config *out, const char *ca_path, const char *cert_path,
    const char *key_path, const char *crl_path)
{
	char *ca = NULL, *cert = NULL, *key = NULL, *crl = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = read_file(&ca, ca_path)) != 0 || (rc = read_file(&cert, cert_path)) != 0 ||
	    (rc = read_file(&key, key_path)) != 0 ||
	    (crl_path != NULL && (rc = read_file(&crl, crl_path)) != 0)) {
		free(ca);
		free(cert);
		if (key != NULL)
			OPENSSL_cleanse(key, strlen(key));
		free(key);
		free(crl);
		return rc;
	}
	out->ca_pem = ca;
	out->cert_pem = cert;
	out->key_pem = key;
	out->crl_pem = crl;
	return 0;
}

/* ---- contexts ---- */

static int
no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* After a PEM loop: the end of input is fine, anything else is an error. */
static int
pem_loop_end(const char *what, int n)
{
	unsigned long e = ERR_peek_last_error();

	if (n > 0 && ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
		ERR_clear_error();
		return 0;
	}
	if (n == 0 && e == 0)
		err_set("%s: no PEM blocks", what);
	else
		pki_err_openssl(what);
	return ERR_INVAL;
}

static int
load_trust(X509_STORE *store, const char *ca_pem)
{
	BIO *bio;
	X509 *x;
	int n = 0, roots = 0, rc = ERR_LIB;

	if ((bio = BIO_new_mem_buf(ca_pem, -1)) == NULL)
		return pki_err_openssl("CA bundle");
	while ((x = PEM_read_bio_X509(bio, NULL, no_password, NULL)) != NULL) {
		if (X509_self_signed(x, 0) == 1)
			roots++;
		if (!X509_STORE_add_cert(store, x)) {
			X509_free(x);
			rc = pki_err_openssl("CA bundle");
			goto out;
		}
		X509_free(x);
		n++;
	}
	if ((rc = pem_loop_end("CA bundle", n)) != 0)
		goto out;
	/* Partial chains stay off: trust starts at a root, never at an intermediate. */
	if (roots == 0) {
		err_set("CA bundle: no root (self-signed) certificate to anchor trust");
		rc = ERR_INVAL;
		goto out;
	}
	rc = 0;
out:
	BIO_free(bio);
	return rc;
}

static int
load_crls(X509_STORE *store, const char *crl_pem)
{
	BIO *bio;
	X509_CRL *crl;
	int n = 0, rc = ERR_LIB;

	if ((bio = BIO_new_mem_buf(crl_pem, -1)) == NULL)
		return pki_err_openssl("CRL");
	while ((crl = PEM_read_bio_X509_CRL(bio, NULL, no_password, NULL)) != NULL) {
		if (!X509_STORE_add_crl(store, crl)) {
			X509_CRL_free(crl);
			rc = pki_err_openssl("CRL");
			goto out;
		}
		X509_CRL_free(crl);
		n++;
	}
	if ((rc = pem_loop_end("CRL", n)) != 0)
		goto out;
	/* the leaf's issuer must have a CRL here; CAs are checked by signature only */
	if (!X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK)) {
		rc = pki_err_openssl("CRL");
		goto out;
	}
	rc = 0;
out:
	BIO_free(bio);
	return rc;
}

static int
load_chain(SSL_CTX *ctx, const char *cert_pem)
{
	BIO *bio;
	X509 *x = NULL;
	int n = 0, rc = ERR_LIB;

	if ((bio = BIO_new_mem_buf(cert_pem, -1)) == NULL)
		return pki_err_openssl("certificate chain");
	while ((x = PEM_read_bio_X509(bio, NULL, no_password, NULL)) != NULL) {
		if (n == 0 ? !SSL_CTX_use_certificate(ctx, x) : !SSL_CTX_add0_chain_cert(ctx, x)) {
			rc = pki_err_openssl("certificate chain");
			goto out;
		}
		if (n == 0)
			X509_free(x);
		x = NULL;	/* the chain owns the others now */
		n++;
	}
	rc = pem_loop_end("certificate chain", n);
out:
	X509_free(x);
	BIO_free(bio);
	return rc;
}

SSL_CTX *
tls_ctx_new(enum tls_side side, const struct tls_config *cfg)
{
	SSL_CTX *ctx = NULL;
	EVP_PKEY *key = NULL;
	struct spiffe self;
	int ok = 0;

	if (cfg == NULL || cfg->ca_pem == NULL || cfg->cert_pem == NULL ||
	    cfg->key_pem == NULL) {
		err_set("tls: a CA bundle, a certificate and a key are required");
		return NULL;
	}
	if (conn_index() < 0) {
		pki_err_openssl("tls: connection state index");
		return NULL;
	}
	if ((ctx = SSL_CTX_new(side == TLS_SERVER ? TLS_server_method() :
	    TLS_client_method())) == NULL) {
		pki_err_openssl("tls: context");
		goto out;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, "TLS_AES_256_GCM_SHA384:"
	    "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256") ||
	    !SSL_CTX_set1_groups_list(ctx, "X25519:P-256")) {
		pki_err_openssl("tls: protocol settings");
		goto out;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	/*
	 * An idle connection gives its 2 x ~17 KB record buffers back: a controller holds one
	 * connection per node (1,000 nodes: ~34 MB of buffers otherwise; DESIGN §9).
	 */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

	if (load_trust(SSL_CTX_get_cert_store(ctx), cfg->ca_pem) != 0 ||
	    (cfg->crl_pem != NULL && load_crls(SSL_CTX_get_cert_store(ctx), cfg->crl_pem) != 0) ||
	    load_chain(ctx, cfg->cert_pem) != 0 ||
	    pki_key_from_pem(&key, cfg->key_pem, strlen(cfg->key_pem)) != 0)
		goto out;
	if (!SSL_CTX_use_PrivateKey(ctx, key) || !SSL_CTX_check_private_key(ctx)) {
		pki_err_openssl("tls: our key does not match our certificate");
		goto out;
	}
	if (tls_ctx_spiffe(&self, ctx) != 0)
		goto out;

	SSL_CTX_set_msg_callback(ctx, msg_cb);
	SSL_CTX_set_info_callback(ctx, info_cb);
	if (side == TLS_SERVER) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
		    verify_cb);
		SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
		/* resumption with client certificates needs a session id context */
		if (!SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"pharos", 6)) {
			pki_err_openssl("tls: session id context");
			goto out;
		}
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
		if (SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)ALPN_H2,
		    sizeof(ALPN_H2) - 1) != 0) {
			pki_err_openssl("tls: ALPN");
			goto out;
		}
	}
	ok = 1;
out:
	EVP_PKEY_free(key);
	if (!ok) {
		SSL_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

/* err_last() is err_set()'s own buffer: copy it before prefixing. */
static void
err_prefix(const char *what)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "%s", err_last());
	err_set("%s: %s", what, msg);
}

int
tls_ctx_spiffe(struct spiffe *out, SSL_CTX *ctx)
{
	X509 *cert = ctx ? SSL_CTX_get0_certificate(ctx) : NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (cert == NULL) {
		err_set("tls: the context has no certificate");
		return ERR_INVAL;
	}
	if ((rc = pki_cert_spiffe(out, cert)) != 0)
		err_prefix("tls: our own certificate");
	return rc;
}

/* ---- after the handshake ---- */

int
tls_peer(struct spiffe *out, SSL *ssl)
{
	const unsigned char *alpn = NULL;
	unsigned int alpnlen = 0;
	X509 *cert;
	long vr;
	int rc;

	memset(out, 0, sizeof(*out));
	if (ssl == NULL || !SSL_is_init_finished(ssl)) {
		err_set("tls: the handshake is not complete");
		return ERR_INVAL;
	}
	if ((cert = SSL_get0_peer_certificate(ssl)) == NULL) {
		err_set("tls: the peer presented no certificate");
		return ERR_INVAL;
	}
	if ((vr = SSL_get_verify_result(ssl)) != X509_V_OK) {
		err_set("tls: the peer's certificate did not verify: %s",
		    X509_verify_cert_error_string(vr));
		return ERR_INVAL;
	}
	SSL_get0_alpn_selected(ssl, &alpn, &alpnlen);
	if (alpnlen != 2 || memcmp(alpn, "h2", 2) != 0) {
		err_set("tls: ALPN did not select h2");
		return ERR_INVAL;
	}
	if ((rc = pki_cert_spiffe(out, cert)) != 0)
		err_prefix("tls: the peer's certificate");
	return rc;
}

int
tls_authorize(SSL *ssl, const struct tls_policy *pol, const char *peer_addr, char *why,
    size_t whylen)
{
	struct spiffe peer, self;
	char peer_uri[PKI_SPIFFE_MAX], want_uri[PKI_SPIFFE_MAX], reason[1024];
	char addr[128], ebuf[512], rbuf[1024];
	X509 *own;
	int allowed = 0;

	reason[0] = '\0';
	snprintf(peer_uri, sizeof(peer_uri), "-");
	if (tls_peer(&peer, ssl) != 0) {
		snprintf(reason, sizeof(reason), "%s", err_last());
		goto refused;
	}
	if (pki_spiffe_format(peer_uri, sizeof(peer_uri), &peer) != 0) {
		snprintf(reason, sizeof(reason), "%s", err_last());
		goto refused;
	}
	/* The trust domain is our certificate's on this connection; pol->self is a fallback. */
	if ((own = SSL_get_certificate(ssl)) == NULL || pki_cert_spiffe(&self, own) != 0) {
		if (pol == NULL) {
			snprintf(reason, sizeof(reason), "no policy and no own certificate");
			goto refused;
		}
		self = pol->self;
	}
	if (pol == NULL) {
		snprintf(reason, sizeof(reason), "no policy");
		goto refused;
	}
	switch (pol->kind) {
	case TLS_ALLOW_CONTROLLER:
		if (peer.role == PKI_ROLE_CONTROLLER &&
		    strcmp(peer.trust_domain, self.trust_domain) == 0)
			allowed = 1;
		else if (peer.role == PKI_ROLE_CONTROLLER)
			snprintf(reason, sizeof(reason), "peer is %s, not the controller of "
			    "trust domain %s", peer_uri, self.trust_domain);
		else
			snprintf(reason, sizeof(reason), "peer is %s, not the controller",
			    peer_uri);
		break;
	case TLS_ALLOW_EXACT:
		if (pki_spiffe_format(want_uri, sizeof(want_uri), &pol->expect) != 0)
			snprintf(reason, sizeof(reason), "the expected peer is not a valid "
			    "SPIFFE id: %s", err_last());
		else if (strcmp(peer_uri, want_uri) == 0)
			allowed = 1;
		else
			snprintf(reason, sizeof(reason), "peer is %s, expected %s", peer_uri,
			    want_uri);
		break;
	case TLS_ALLOW_ANY_FLEET:
		if (strcmp(peer.trust_domain, self.trust_domain) == 0)
			allowed = 1;
		else
			snprintf(reason, sizeof(reason), "peer is %s, not of trust domain %s",
			    peer_uri, self.trust_domain);
		break;
	default:
		snprintf(reason, sizeof(reason), "unknown policy %d", (int)pol->kind);
		break;
	}
	if (allowed)
		return 0;
refused:
	if (reason[0] == '\0')
		snprintf(reason, sizeof(reason), "refused");
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s", reason);
	err_set("%s", reason);
	log_warnx("tls: refused peer=%s id=%s reason=\"%s\"",
	    peer_of(ssl, peer_addr, addr, sizeof(addr)), esc(ebuf, sizeof(ebuf), peer_uri),
	    esc(rbuf, sizeof(rbuf), reason));
	return ERR_INVAL;
}

int
tls_authorize_cb(SSL *ssl, const struct spiffe *peer_id, const char *peer_addr, void *policy)
{
	char why[256];

	(void)peer_id;
	return tls_authorize(ssl, policy, peer_addr, why, sizeof(why));
}
