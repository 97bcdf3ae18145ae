/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pki_fixture OUTDIR: the certificate matrix of the TLS integration tests, all PEM.
 *
 *   ca.pem              fleet alpha's trust bundle (root + Fleet CA)
 *   crl.pem             alpha's Fleet CA CRL revoking `revoked`, then alpha's empty root CRL
 *   NAME.pem, NAME.key  a leaf with its issuing Fleet CA, and its key (0600), for
 *     controller        spiffe://alpha/controller
 *     node-a, node-b    spiffe://alpha/node/node-a, .../node-b (node-b plays controller)
 *     expired, notyet   spiffe://alpha/controller, valid only in the past / the future
 *     revoked           spiffe://alpha/controller, listed in crl.pem
 *     other-ca          spiffe://alpha/controller from another root + Fleet CA, also "alpha"
 *     other-fleet       spiffe://beta/controller from fleet beta's own PKI
 *   other-ca.ca.pem, beta.ca.pem      those PKIs' trust bundles
 *   other-ca.crl.pem, beta.crl.pem    their (empty) Fleet CA and root CRLs
 *
 * Every leaf comes from its own key and a CSR through pki_issue. Prints nothing on
 * success; on failure, the error and exit 1.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "pki.h"

#define DAY	86400

struct pkiset {
	X509		*root, *fca;
	EVP_PKEY	*root_key, *fca_key;
};

static const char *outdir;

static int
write_pem(const char *name, const char *pem, int mode)
{
	char path[4096];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", outdir, name) >= sizeof(path)) {
		err_set("%s/%s: path too long", outdir, name);
		return ERR_TOOBIG;
	}
	return pki_write_file(path, pem, mode);
}

/* Concatenate the PEM of a and b (b may be NULL) into *out. */
static int
pem2(char **out, X509 *a, X509 *b)
{
	char *pa = NULL, *pb = NULL;
	size_t la, lb;
	int rc;

	*out = NULL;
	if ((rc = pki_cert_pem(&pa, a)) != 0 || (b != NULL && (rc = pki_cert_pem(&pb, b)) != 0))
		goto out;
	la = strlen(pa);
	lb = pb ? strlen(pb) : 0;
	if ((*out = malloc(la + lb + 1)) == NULL) {
		err_set("out of memory");
		rc = ERR_NOMEM;
		goto out;
	}
	memcpy(*out, pa, la);
	memcpy(*out + la, pb ? pb : "", lb + 1);
out:
	free(pa);
	free(pb);
	return rc;
}

static int
pkiset_new(struct pkiset *p, const char *fleet)
{
	int rc;

	memset(p, 0, sizeof(*p));
	if ((rc = pki_root_new(&p->root, &p->root_key, fleet)) != 0)
		return rc;
	return pki_ca_new(&p->fca, &p->fca_key, PKI_CA_FLEET, fleet, p->root, p->root_key);
}

static void
pkiset_free(struct pkiset *p)
{
	X509_free(p->root);
	X509_free(p->fca);
	EVP_PKEY_free(p->root_key);
	EVP_PKEY_free(p->fca_key);
}

/* NAME.ca.pem (or the given name): root + Fleet CA. */
static int
write_bundle(const char *file, struct pkiset *p)
{
	char *pem = NULL;
	int rc;

	if ((rc = pem2(&pem, p->root, p->fca)) == 0)
		rc = write_pem(file, pem, 0644);
	free(pem);
	return rc;
}

/* The Fleet CA's CRL listing serial (or none), then the root's empty CRL. */
static int
write_crls(const char *file, struct pkiset *p, const char *serial)
{
	X509_CRL *fcrl = NULL, *rcrl = NULL;
	char *a = NULL, *b = NULL, *both = NULL;
	const char *list[1] = { serial };
	int rc;

	if ((rc = pki_crl_new(&fcrl, p->fca, p->fca_key, list, serial ? 1 : 0, 30)) != 0 ||
	    (rc = pki_crl_new(&rcrl, p->root, p->root_key, NULL, 0, 30)) != 0 ||
	    (rc = pki_crl_pem(&a, fcrl)) != 0 || (rc = pki_crl_pem(&b, rcrl)) != 0)
		goto out;
	if ((both = malloc(strlen(a) + strlen(b) + 1)) == NULL) {
		err_set("out of memory");
		rc = ERR_NOMEM;
		goto out;
	}
	strcpy(both, a);
	strcat(both, b);
	rc = write_pem(file, both, 0644);
out:
	free(both);
	free(a);
	free(b);
	X509_CRL_free(fcrl);
	X509_CRL_free(rcrl);
	return rc;
}

/* NAME.pem (leaf + Fleet CA) and NAME.key for uri; *serial gets the leaf's serial. */
static int
write_leaf(const char *name, struct pkiset *p, const char *uri, time_t nb, time_t na,
    char *serial, size_t serialsz)
{
	struct spiffe id;
	EVP_PKEY *key = NULL;
	X509_REQ *csr = NULL;
	X509 *leaf = NULL;
	char *chain = NULL, *keypem = NULL, file[256];
	int rc;

	if ((rc = pki_spiffe_parse(&id, uri)) != 0 || (rc = pki_key_new(&key)) != 0 ||
	    (rc = pki_csr_new(&csr, key, &id)) != 0 ||
	    (rc = pki_issue(&leaf, p->fca, p->fca_key, csr, &id, nb, na)) != 0 ||
	    (rc = pem2(&chain, leaf, p->fca)) != 0 || (rc = pki_key_pem(&keypem, key)) != 0)
		goto out;
	if (serial != NULL && (rc = pki_serial_hex(serial, serialsz, leaf)) != 0)
		goto out;
	snprintf(file, sizeof(file), "%s.pem", name);
	if ((rc = write_pem(file, chain, 0644)) != 0)
		goto out;
	snprintf(file, sizeof(file), "%s.key", name);
	rc = write_pem(file, keypem, 0600);
out:
	if (keypem != NULL)
		OPENSSL_cleanse(keypem, strlen(keypem));
	free(keypem);
	free(chain);
	X509_free(leaf);
	X509_REQ_free(csr);
	EVP_PKEY_free(key);
	if (rc != 0 && strncmp(err_last(), name, strlen(name)) != 0) {
		char msg[768];

		snprintf(msg, sizeof(msg), "%s", err_last());
		err_set("%s: %s", name, msg);
	}
	return rc;
}

int
main(int argc, char **argv)
{
	struct pkiset alpha, other, beta;
	char revoked[80];
	time_t now = time(NULL);
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: pki_fixture OUTDIR\n");
		return 2;
	}
	outdir = argv[1];
	memset(&alpha, 0, sizeof(alpha));
	memset(&other, 0, sizeof(other));
	memset(&beta, 0, sizeof(beta));
	if (mkdir(outdir, 0755) == -1 && errno != EEXIST) {
		err_setsys("%s", outdir);
		rc = ERR_SYS;
		goto out;
	}
	if ((rc = pkiset_new(&alpha, "alpha")) != 0 || (rc = pkiset_new(&other, "alpha")) != 0 ||
	    (rc = pkiset_new(&beta, "beta")) != 0 ||
	    (rc = write_bundle("ca.pem", &alpha)) != 0 ||
	    (rc = write_bundle("other-ca.ca.pem", &other)) != 0 ||
	    (rc = write_bundle("beta.ca.pem", &beta)) != 0 ||
	    (rc = write_leaf("controller", &alpha, "spiffe://alpha/controller", 0, 0,
	    NULL, 0)) != 0 ||
	    (rc = write_leaf("node-a", &alpha, "spiffe://alpha/node/node-a", 0, 0,
	    NULL, 0)) != 0 ||
	    (rc = write_leaf("node-b", &alpha, "spiffe://alpha/node/node-b", 0, 0,
	    NULL, 0)) != 0 ||
	    (rc = write_leaf("expired", &alpha, "spiffe://alpha/controller",
	    now - 30 * DAY, now - DAY, NULL, 0)) != 0 ||
	    (rc = write_leaf("notyet", &alpha, "spiffe://alpha/controller",
	    now + DAY, now + 30 * DAY, NULL, 0)) != 0 ||
	    (rc = write_leaf("revoked", &alpha, "spiffe://alpha/controller", 0, 0,
	    revoked, sizeof(revoked))) != 0 ||
	    (rc = write_leaf("other-ca", &other, "spiffe://alpha/controller", 0, 0,
	    NULL, 0)) != 0 ||
	    (rc = write_leaf("other-fleet", &beta, "spiffe://beta/controller", 0, 0,
	    NULL, 0)) != 0 ||
	    (rc = write_crls("crl.pem", &alpha, revoked)) != 0 ||
	    (rc = write_crls("other-ca.crl.pem", &other, NULL)) != 0 ||
	    (rc = write_crls("beta.crl.pem", &beta, NULL)) != 0)
		goto out;
out:
	pkiset_free(&alpha);
	pkiset_free(&other);
	pkiset_free(&beta);
	if (rc != 0) {
		fprintf(stderr, "pki_fixture: %s\n", err_last());
		return 1;
	}
	return 0;
}
