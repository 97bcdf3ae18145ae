/* SPDX-License-Identifier: Apache-2.0 */
/*
 * buoy keygen / buoy csr: the node's keys are made on the node and never leave it. The
 * TLS key (ECDSA P-256, node.key) signs a CSR the controller turns into node.pem; the
 * WireGuard key (wg.key, Curve25519) is the data plane's, and only its public half is
 * ever printed.
 */
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fsutil.h"
#include "keys.h"
#include "pki.h"

/* A WireGuard private key: 32 random bytes, clamped (RFC 7748). */
static void
wg_genkey(uint8_t k[32])
{
	randombytes_buf(k, 32);
	k[0] &= 248;
	k[31] &= 127;
	k[31] |= 64;
}

int
keys_wg_public(uint8_t pub[32], const char *dir)
{
	char path[1100], *text = NULL;
	uint8_t priv[32];
	size_t len, bin = 0;
	int rc = ERR_INVAL;

	snprintf(path, sizeof(path), "%s/%s", dir, WG_KEY_FILE);
	if (fs_read_file(&text, &len, path, 256) != 0)
		return ERR_NOTFOUND;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
		text[--len] = '\0';
	if (sodium_base642bin(priv, 32, text, len, NULL, &bin, NULL,
	    sodium_base64_VARIANT_ORIGINAL) == 0 && bin == 32 &&
	    crypto_scalarmult_base(pub, priv) == 0)
		rc = 0;
	else
		err_set("%s: not a WireGuard private key", path);
	sodium_memzero(priv, sizeof(priv));
	sodium_memzero(text, len);
	free(text);
	return rc;
}

static int
exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

int
keys_generate(const char *dir, bool force, uint8_t wg_pub[32])
{
	char path[1100], *pem = NULL;
	char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL) + 1];
	uint8_t priv[32];
	EVP_PKEY *key = NULL;
	int rc;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		err_setsys("%s", dir);
		return ERR_SYS;
	}
	snprintf(path, sizeof(path), "%s/node.key", dir);
	if (force || !exists(path)) {
		if ((rc = pki_key_new(&key)) != 0 || (rc = pki_key_pem(&pem, key)) != 0)
			goto out;
		rc = fs_write_atomic(path, pem, strlen(pem), 0600);
		sodium_memzero(pem, strlen(pem));
		if (rc != 0)
			goto out;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, WG_KEY_FILE);
	if (force || !exists(path)) {
		wg_genkey(priv);
		sodium_bin2base64(b64, sizeof(b64), priv, 32, sodium_base64_VARIANT_ORIGINAL);
		sodium_memzero(priv, sizeof(priv));
		strcat(b64, "\n");
		rc = fs_write_atomic(path, b64, strlen(b64), 0600);
		sodium_memzero(b64, sizeof(b64));
		if (rc != 0)
			goto out;
	}
	rc = keys_wg_public(wg_pub, dir);
out:
	free(pem);
	EVP_PKEY_free(key);
	return rc;
}

int
keys_csr(char **pem, const char *dir, const char *fleet, const char *name)
{
	char path[1100], *text = NULL;
	size_t len;
	struct spiffe id;
	EVP_PKEY *key = NULL;
	X509_REQ *csr = NULL;
	int rc;

	memset(&id, 0, sizeof(id));
	id.role = PKI_ROLE_NODE;
	snprintf(id.trust_domain, sizeof(id.trust_domain), "%s", fleet);
	snprintf(id.name, sizeof(id.name), "%s", name);
	{
		/* Round-trip through the parser: it refuses what a SPIFFE id may not hold. */
		char uri[PKI_SPIFFE_MAX];
		if ((rc = pki_spiffe_format(uri, sizeof(uri), &id)) != 0 ||
		    (rc = pki_spiffe_parse(&id, uri)) != 0)
			return rc;
	}
	snprintf(path, sizeof(path), "%s/node.key", dir);
	if ((rc = fs_read_file(&text, &len, path, 64 * 1024)) != 0)
		return rc;
	rc = pki_key_from_pem(&key, text, len);
	sodium_memzero(text, len);
	free(text);
	if (rc != 0)
		return rc;
	if ((rc = pki_csr_new(&csr, key, &id)) == 0)
		rc = pki_csr_pem(pem, csr);
	X509_REQ_free(csr);
	EVP_PKEY_free(key);
	return rc;
}
