/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fleet PKI (docs/DESIGN.md §4): root CA (10 y) -> Fleet CA and Device CA (5 y) ->
 * leaves (1 y) naming their holder in one SPIFFE URI SAN:
 *   spiffe://<fleet>/controller            spiffe://<fleet>/node/<name>
 *   spiffe://<fleet>/relay/<name>          spiffe://<fleet>/device/<user>/<device>
 * Keys are ECDSA P-256. A leaf is issued from a CSR only for the identity the caller
 * intends; the CA never sees a leaf's private key. Revocation is a CRL per issuing CA.
 * All functions return 0 or a negative ERR_* with the detail in err_last() (OpenSSL's
 * error queue is drained into it).
 */
#ifndef PHAROS_PKI_H
#define PHAROS_PKI_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define PKI_ROOT_DAYS	3650
#define PKI_CA_DAYS	1825
#define PKI_LEAF_DAYS	365
/* Longest SPIFFE id of the four shapes below, with its NUL: a buffer this size fits any. */
#define PKI_SPIFFE_MAX	256

enum pki_role {
	PKI_ROLE_NONE = 0,
	PKI_ROLE_CONTROLLER,
	PKI_ROLE_NODE,
	PKI_ROLE_RELAY,
	PKI_ROLE_DEVICE,
};

/* A parsed SPIFFE id. */
struct spiffe {
	char		trust_domain[64];
	enum pki_role	role;
	char		name[65];	/* node/relay name, or the device's user */
	char		device[65];	/* device name (PKI_ROLE_DEVICE only) */
};

enum pki_ca_kind { PKI_CA_FLEET, PKI_CA_DEVICE };

/* Parse and format SPIFFE ids; parsing refuses anything not of the four shapes above. */
int	 pki_spiffe_parse(struct spiffe *out, const char *uri);
int	 pki_spiffe_format(char *buf, size_t bufsz, const struct spiffe *);
/* The one URI SAN of cert, parsed; ERR_INVAL if there is none or more than one. */
int	 pki_cert_spiffe(struct spiffe *out, X509 *cert);

int	 pki_key_new(EVP_PKEY **out);
/* Self-signed root, subject "CN=PharosVPN root <fleet>", 10 years, pathlen 1. */
int	 pki_root_new(X509 **cert, EVP_PKEY **key, const char *fleet_id);
/* An intermediate under the root, 5 years, pathlen 0, named for its kind and fleet. */
int	 pki_ca_new(X509 **cert, EVP_PKEY **key, enum pki_ca_kind, const char *fleet_id,
	    X509 *root, EVP_PKEY *root_key);
/* A CSR for `id` signed by key (done where the key lives: on the node or device). */
int	 pki_csr_new(X509_REQ **out, EVP_PKEY *key, const struct spiffe *id);
/*
 * Issue a leaf for `want` from csr: the CSR's signature must verify and it must ask for
 * exactly `want` (its one URI SAN), else ERR_INVAL ("CSR asks for X, expected Y"). The
 * role must match the CA (devices from the Device CA, everything else from the Fleet
 * CA) and the trust domain the CA's fleet. The serial is 16 random bytes (positive).
 * not_before/not_after of 0 mean now-5min / now+PKI_LEAF_DAYS; tests pass others.
 * Key usage digitalSignature; extended key usage serverAuth and clientAuth.
 */
int	 pki_issue(X509 **out, X509 *ca, EVP_PKEY *ca_key, X509_REQ *csr,
	    const struct spiffe *want, time_t not_before, time_t not_after);
/*
 * A CRL from ca listing the given serials, valid for `days`. Serials are hex strings as
 * printed by pki_serial_hex ("0x" prefix accepted). An all-digit string is read as hex
 * too, never as decimal: the two cannot be told apart. An empty list is a valid CRL: a
 * verifier with CRL checking on needs one per CA.
 */
int	 pki_crl_new(X509_CRL **out, X509 *ca, EVP_PKEY *ca_key, const char *const *serials,
	    size_t n, int days);
/* Serial as lowercase hex, no leading zeros. */
int	 pki_serial_hex(char *buf, size_t bufsz, X509 *cert);

/* PEM in memory: *out is malloc'd and NUL-terminated; keys are PKCS#8, unencrypted. */
int	 pki_cert_pem(char **out, X509 *);
int	 pki_key_pem(char **out, EVP_PKEY *);
int	 pki_csr_pem(char **out, X509_REQ *);
int	 pki_crl_pem(char **out, X509_CRL *);
int	 pki_cert_from_pem(X509 **out, const char *pem, size_t len);
int	 pki_key_from_pem(EVP_PKEY **out, const char *pem, size_t len);
int	 pki_csr_from_pem(X509_REQ **out, const char *pem, size_t len);
/* Write PEM atomically (temp file, fsync, rename, fsync dir); keys get mode 0600. */
int	 pki_write_file(const char *path, const char *pem, int mode);

/*
 * err_set("<what>: <OpenSSL's error queue>"), draining the queue; returns ERR_LIB. For
 * other wrappers of OpenSSL (tls.c, the gRPC transport), so the queue is translated
 * the same way everywhere.
 */
int	 pki_err_openssl(const char *what);

#endif
