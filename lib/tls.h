/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS contexts for the fleet's mutual TLS: TLS 1.3 only, ALPN "h2" only, a peer
 * certificate required and verified against the fleet's CA (root + intermediates),
 * the CRL enforced when given. Authorization on top of chain validation is by SPIFFE
 * id: tls_authorize() after the handshake. Every refusal is logged as one line:
 *   "tls: refused peer=ADDR reason=\"...\"" with OpenSSL's verify reason and the subject.
 */
#ifndef PHAROS_TLS_H
#define PHAROS_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "pki.h"

enum tls_side { TLS_SERVER, TLS_CLIENT };

struct tls_config {
	const char	*ca_pem;	/* trusted roots and intermediates (PEM, one or more) */
	const char	*cert_pem;	/* our chain: leaf first, then intermediates */
	const char	*key_pem;	/* our private key */
	const char	*crl_pem;	/* optional: CRLs (PEM, one or more) */
};

/* Load from files instead (NULL crl_path: none). Strings are owned by the caller. */
int	 tls_config_load(struct tls_config *out, const char *ca_path, const char *cert_path,
	    const char *key_path, const char *crl_path);
void	 tls_config_free(struct tls_config *);

/* A context for one side; NULL on error (err_last()). */
SSL_CTX	*tls_ctx_new(enum tls_side, const struct tls_config *);
/* Our own SPIFFE id, from the context's certificate. */
int	 tls_ctx_spiffe(struct spiffe *out, SSL_CTX *);

/*
 * The peer's address ("ip:port") for this connection's log lines, kept in the SSL's
 * ex_data; call it after SSL_new(), before the handshake. Without it the callbacks use
 * getpeername() on the SSL's fd, or "unknown".
 */
void	 tls_set_peer_addr(SSL *, const char *peer_addr);
/*
 * For a handshake that failed (SSL_ERROR_SSL, or the connection closed mid-handshake):
 * log one "tls: refused peer=ADDR reason=\"...\"" line from the verify result and
 * OpenSSL's error queue, unless this connection's failure was logged already (the
 * verify, ALPN and alert callbacks log what they see). Drains the error queue.
 * peer_addr may be NULL (then as for tls_set_peer_addr).
 *
 * Note for TLS 1.3: the server verifies the client's certificate after the client has
 * finished its side of the handshake, so a refused client learns it from an alert on
 * its first read, not from SSL_connect().
 */
void	 tls_log_handshake_failure(SSL *, const char *peer_addr);

/*
 * After a completed handshake: the peer's verified SPIFFE id. ERR_INVAL if the peer
 * presented no certificate, verification failed, or ALPN did not select h2.
 */
int	 tls_peer(struct spiffe *out, SSL *);

/* Authorization policies, for the gRPC layer's authorize callback. */
enum tls_policy_kind {
	TLS_ALLOW_CONTROLLER,	/* a node/relay: only spiffe://<own trust domain>/controller */
	TLS_ALLOW_EXACT,	/* the controller dialing: only the id it meant to dial */
	TLS_ALLOW_ANY_FLEET,	/* any verified identity of our own trust domain (tests) */
};

struct tls_policy {
	enum tls_policy_kind	 kind;
	struct spiffe		 self;		/* from our own certificate */
	struct spiffe		 expect;	/* TLS_ALLOW_EXACT */
};

/*
 * Check the peer of a completed handshake against the policy. 0 if allowed; otherwise
 * ERR_INVAL with a reason in why (e.g. "peer is spiffe://f/node/a, not the controller")
 * and one log line "tls: refused peer=ADDR id=... reason=...".
 */
int	 tls_authorize(SSL *, const struct tls_policy *, const char *peer_addr,
	    char *why, size_t whylen);

/*
 * tls_authorize() in the shape of the gRPC layer's authorize callback
 * (grpc_authorize_fn): the argument is the struct tls_policy to apply.
 */
int	 tls_authorize_cb(SSL *, const struct spiffe *peer_id, const char *peer_addr,
	    void *policy);

#endif
