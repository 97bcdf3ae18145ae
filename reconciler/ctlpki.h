/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's own credentials, from state.db (docs/DESIGN.md §7): the TLS client
 * context it dials buoys with, its Ed25519 config-signing key, and issuing node
 * certificates from their CSRs. All return 0 or a negative ERR_* (err_last()).
 */
#ifndef PHAROS_CTLPKI_H
#define PHAROS_CTLPKI_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>

struct state;

#define CTLPKI_FLEET_MAX	64	/* a fleet id (at most 63 characters) and its NUL */
#define CTLPKI_SERIAL_MAX	80

/*
 * The controller's TLS client context (controller.pem/.key; trusts root + Fleet CA; its
 * SPIFFE id must be spiffe://<fleet_id>/controller) and its config-signing key pair.
 * sign_sk is a secret: pass sodium_malloc'd memory, or wipe it (sodium_memzero) when
 * done. *client_ctx is the caller's (SSL_CTX_free).
 */
int	 ctlpki_load(struct state *, SSL_CTX **client_ctx, uint8_t sign_sk[64],
	    uint8_t sign_pk[32], char fleet_id[CTLPKI_FLEET_MAX]);

/* What a node's state dir gets, malloc'd PEM/text: ca.pem (root + Fleet CA) ... */
int	 ctlpki_ca_bundle(struct state *, char **out);
/* ... and controller.pub: base64 of the Ed25519 public key, one line (agent/config.c). */
int	 ctlpki_controller_pub(struct state *, char **out);

/*
 * Issue spiffe://<fleet_id>/node/<name> from a CSR (PEM) with the Fleet CA: the CSR must
 * ask for exactly that id (else ERR_INVAL, "CSR asks for X, expected Y"). *leaf_pem is
 * the certificate, *chain_pem the certificate followed by the Fleet CA (buoy's node.pem);
 * serial is lowercase hex.
 */
int	 ctlpki_issue_node(struct state *, const char *fleet_id, const char *name,
	    const char *csr_pem, size_t csr_len, char **leaf_pem, char **chain_pem,
	    char serial[CTLPKI_SERIAL_MAX], time_t *not_after);

/* The serial (hex) and expiry of a certificate in PEM. */
int	 ctlpki_cert_info(const char *pem, char serial[CTLPKI_SERIAL_MAX], time_t *not_after);

#endif
