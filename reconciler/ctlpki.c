/* SPDX-License-Identifier: Apache-2.0 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>

#include "ctlpki.h"
#include "err.h"
#include "pki.h"
#include "state.h"
#include "tls.h"

/* A secret that is PEM or other text; a missing one is an incomplete state directory. */
static int
secret_text(struct state *st, const char *name, char **out)
{
	uint8_t *v = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if ((rc = state_secret_get(st, name, &v, &len)) == 1) {
		err_set("%s/%s: no %s (was this state directory made by cox init?)",
		    state_dir(st), STATE_DB, name);
		return ERR_NOTFOUND;
	}
	if (rc < 0)
		return rc;
	if (memchr(v, '\0', len) != NULL) {
		sodium_memzero(v, len);
		free(v);
		err_set("%s/%s: %s is not text", state_dir(st), STATE_DB, name);
		return ERR_INVAL;
	}
	*out = (char *)v;
	return 0;
}

static void
wipe_free(char *s)
{
	if (s != NULL) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

static char *
concat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s;

	if ((s = malloc(la + lb + 1)) == NULL) {
		err_set("out of memory");
		return NULL;
	}
	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	return s;
}

int
ctlpki_ca_bundle(struct state *st, char **out)
{
	char *root = NULL, *fca = NULL;
	int rc;

	*out = NULL;
	if ((rc = secret_text(st, "root.pem", &root)) == 0 &&
	    (rc = secret_text(st, "fleet-ca.pem", &fca)) == 0 &&
	    (*out = concat(root, fca)) == NULL)
		rc = ERR_NOMEM;
	free(root);
	free(fca);
	return rc;
}

/* The 64-byte signing key into sk (the caller's memory); pk derived from it. */
static int
sign_key(struct state *st, uint8_t sk[64], uint8_t pk[32])
{
	uint8_t *v = NULL;
	size_t len = 0;
	int rc;

	if ((rc = state_secret_get(st, "sign.key", &v, &len)) == 1) {
		err_set("%s/%s: no sign.key (was this state directory made by cox init?)",
		    state_dir(st), STATE_DB);
		return ERR_NOTFOUND;
	}
	if (rc < 0)
		return rc;
	if (len != crypto_sign_SECRETKEYBYTES) {
		err_set("%s/%s: sign.key is %zu bytes, not an Ed25519 secret key", state_dir(st),
		    STATE_DB, len);
		rc = ERR_INVAL;
	} else {
		memcpy(sk, v, 64);
		crypto_sign_ed25519_sk_to_pk(pk, sk);
	}
	sodium_memzero(v, len);
	free(v);
	return rc;
}

int
ctlpki_controller_pub(struct state *st, char **out)
{
	uint8_t *sk, pk[32];
	size_t n = sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL);
	int rc;

	*out = NULL;
	if ((sk = sodium_malloc(64)) == NULL) {
		err_set("out of memory");
		return ERR_NOMEM;
	}
	rc = sign_key(st, sk, pk);
	sodium_free(sk);
	if (rc != 0)
		return rc;
	if ((*out = malloc(n + 1)) == NULL) {
		err_set("out of memory");
		return ERR_NOMEM;
	}
	sodium_bin2base64(*out, n, pk, 32, sodium_base64_VARIANT_ORIGINAL);
	strcat(*out, "\n");
	return 0;
}

int
ctlpki_load(struct state *st, SSL_CTX **client_ctx, uint8_t sign_sk[64], uint8_t sign_pk[32],
    char fleet_id[CTLPKI_FLEET_MAX])
{
	struct tls_config tc;
	struct spiffe self;
	char *fid = NULL, *ca = NULL, *cert = NULL, *key = NULL;
	SSL_CTX *ctx = NULL;
	int rc;

	*client_ctx = NULL;
	memset(&tc, 0, sizeof(tc));
	if ((rc = state_meta_get(st, "fleet_id", &fid)) == 1) {
		err_set("%s/%s: no fleet_id", state_dir(st), STATE_DB);
		return ERR_NOTFOUND;
	}
	if (rc < 0)
		return rc;
	if (strlen(fid) >= CTLPKI_FLEET_MAX) {
		err_set("%s/%s: fleet_id is too long", state_dir(st), STATE_DB);
		free(fid);
		return ERR_INVAL;
	}
	snprintf(fleet_id, CTLPKI_FLEET_MAX, "%s", fid);
	free(fid);
	if ((rc = ctlpki_ca_bundle(st, &ca)) != 0 ||
	    (rc = secret_text(st, "controller.pem", &cert)) != 0 ||
	    (rc = secret_text(st, "controller.key", &key)) != 0) {
		free(ca);
		free(cert);
		wipe_free(key);
		return rc;
	}
	tc.ca_pem = ca;
	tc.cert_pem = cert;
	tc.key_pem = key;	/* owned by tc now; tls_config_free() wipes it */
	if ((ctx = tls_ctx_new(TLS_CLIENT, &tc)) == NULL) {
		rc = ERR_LIB;
		goto out;
	}
	if ((rc = tls_ctx_spiffe(&self, ctx)) != 0)
		goto out;
	if (self.role != PKI_ROLE_CONTROLLER || strcmp(self.trust_domain, fleet_id) != 0) {
		err_set("%s/%s: controller.pem is not spiffe://%s/controller", state_dir(st),
		    STATE_DB, fleet_id);
		rc = ERR_INVAL;
		goto out;
	}
	if ((rc = sign_key(st, sign_sk, sign_pk)) != 0)
		goto out;
	*client_ctx = ctx;
	ctx = NULL;	/* the caller's now */
out:
	SSL_CTX_free(ctx);
	tls_config_free(&tc);
	return rc;
}

int
ctlpki_cert_info(const char *pem, char serial[CTLPKI_SERIAL_MAX], time_t *not_after)
{
	X509 *x = NULL;
	struct tm tm;
	int rc;

	if ((rc = pki_cert_from_pem(&x, pem, strlen(pem))) != 0)
		return rc;
	if ((rc = pki_serial_hex(serial, CTLPKI_SERIAL_MAX, x)) == 0) {
		memset(&tm, 0, sizeof(tm));
		if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1) {
			rc = pki_err_openssl("certificate expiry");
		} else {
			*not_after = timegm(&tm);
		}
	}
	X509_free(x);
	return rc;
}

int
ctlpki_issue_node(struct state *st, const char *fleet_id, const char *name,
    const char *csr_pem, size_t csr_len, char **leaf_pem, char **chain_pem,
    char serial[CTLPKI_SERIAL_MAX], time_t *not_after)
{
	char *ca_pem = NULL, *ca_key_pem = NULL, *leaf = NULL, uri[PKI_SPIFFE_MAX];
	X509 *ca = NULL, *cert = NULL;
	EVP_PKEY *ca_key = NULL;
	X509_REQ *csr = NULL;
	struct spiffe want;
	int rc;

	*leaf_pem = *chain_pem = NULL;
	memset(&want, 0, sizeof(want));
	want.role = PKI_ROLE_NODE;
	if (strlen(fleet_id) >= sizeof(want.trust_domain) || strlen(name) >= sizeof(want.name)) {
		err_set("fleet id or node name too long");
		return ERR_INVAL;
	}
	snprintf(want.trust_domain, sizeof(want.trust_domain), "%s", fleet_id);
	snprintf(want.name, sizeof(want.name), "%s", name);
	/* through the parser: it refuses what a SPIFFE id may not hold */
	if ((rc = pki_spiffe_format(uri, sizeof(uri), &want)) != 0 ||
	    (rc = pki_spiffe_parse(&want, uri)) != 0)
		return rc;
	if ((rc = pki_csr_from_pem(&csr, csr_pem, csr_len)) != 0)
		return rc;
	if ((rc = secret_text(st, "fleet-ca.pem", &ca_pem)) != 0 ||
	    (rc = secret_text(st, "fleet-ca.key", &ca_key_pem)) != 0 ||
	    (rc = pki_cert_from_pem(&ca, ca_pem, strlen(ca_pem))) != 0 ||
	    (rc = pki_key_from_pem(&ca_key, ca_key_pem, strlen(ca_key_pem))) != 0 ||
	    (rc = pki_issue(&cert, ca, ca_key, csr, &want, 0, 0)) != 0 ||
	    (rc = pki_cert_pem(&leaf, cert)) != 0 ||
	    (rc = ctlpki_cert_info(leaf, serial, not_after)) != 0)
		goto out;
	if ((*chain_pem = concat(leaf, ca_pem)) == NULL) {
		rc = ERR_NOMEM;
		goto out;
	}
	*leaf_pem = leaf;
	leaf = NULL;
out:
	free(leaf);
	free(ca_pem);
	wipe_free(ca_key_pem);
	X509_free(ca);
	X509_free(cert);
	X509_REQ_free(csr);
	EVP_PKEY_free(ca_key);
	return rc;
}
