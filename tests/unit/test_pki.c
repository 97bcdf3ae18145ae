/* SPDX-License-Identifier: Apache-2.0 */
/* The fleet PKI: SPIFFE ids, issuance rules, chains and CRLs, PEM, atomic files. */
#include <sys/stat.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "pki.h"
#include "t.h"

#define DAY	86400

struct fleet_pki {
	X509		*root, *fca, *dca;
	EVP_PKEY	*root_key, *fca_key, *dca_key;
};

static int
fleet_pki_new(struct fleet_pki *p, const char *fleet)
{
	memset(p, 0, sizeof(*p));
	if (pki_root_new(&p->root, &p->root_key, fleet) != 0 ||
	    pki_ca_new(&p->fca, &p->fca_key, PKI_CA_FLEET, fleet, p->root, p->root_key) != 0 ||
	    pki_ca_new(&p->dca, &p->dca_key, PKI_CA_DEVICE, fleet, p->root, p->root_key) != 0)
		return -1;
	return 0;
}

static void
fleet_pki_free(struct fleet_pki *p)
{
	X509_free(p->root);
	X509_free(p->fca);
	X509_free(p->dca);
	EVP_PKEY_free(p->root_key);
	EVP_PKEY_free(p->fca_key);
	EVP_PKEY_free(p->dca_key);
}

/* A key, a CSR for csr_uri and a certificate for want_uri from ca: rc of pki_issue. */
static int
issue(X509 **out, X509 *ca, EVP_PKEY *ca_key, const char *csr_uri, const char *want_uri,
    time_t nb, time_t na)
{
	struct spiffe csr_id, want;
	EVP_PKEY *key = NULL;
	X509_REQ *csr = NULL;
	int rc;

	*out = NULL;
	if ((rc = pki_spiffe_parse(&csr_id, csr_uri)) != 0 ||
	    (rc = pki_spiffe_parse(&want, want_uri)) != 0 || (rc = pki_key_new(&key)) != 0 ||
	    (rc = pki_csr_new(&csr, key, &csr_id)) != 0)
		goto out;
	rc = pki_issue(out, ca, ca_key, csr, &want, nb, na);
out:
	X509_REQ_free(csr);
	EVP_PKEY_free(key);
	return rc;
}

/* X509_verify_cert of leaf under root with ca as intermediate: 0 or the X509_V_ERR. */
static int
verify(X509 *root, X509 *ca, X509 *leaf, X509_CRL *crl, int purpose)
{
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	int rc = -1;

	if (st == NULL || ctx == NULL || untrusted == NULL || leaf == NULL ||
	    !X509_STORE_add_cert(st, root) || !sk_X509_push(untrusted, ca))
		goto out;
	X509_STORE_set_flags(st, X509_V_FLAG_X509_STRICT);
	if (crl != NULL &&
	    (!X509_STORE_add_crl(st, crl) || !X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK)))
		goto out;
	if (!X509_STORE_CTX_init(ctx, st, leaf, untrusted) ||
	    !X509_STORE_CTX_set_purpose(ctx, purpose))
		goto out;
	rc = X509_verify_cert(ctx) == 1 ? 0 : X509_STORE_CTX_get_error(ctx);
out:
	sk_X509_free(untrusted);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	return rc;
}

static int
cn_is(X509 *x, const char *want)
{
	char cn[PKI_SPIFFE_MAX];

	return X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
	    sizeof(cn)) > 0 && strcmp(cn, want) == 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_spiffe(void)
{
	static const char *const good[] = {
		"spiffe://alpha/controller",
		"spiffe://alpha/node/node-a",
		"spiffe://alpha/relay/r1",
		"spiffe://alpha/device/j.doe/laptop_1",
		"spiffe://a.b-c.example/node/n",
		"spiffe://0/device/u/d",
		/* the limits: 63, 32 and 64 characters */
		"spiffe://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/controller",
		"spiffe://alpha/node/nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
		("spiffe://alpha/device/uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu/"
		    "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"),
	};
	static const char *const bad[] = {
		"", "spiffe://", "spiffe://alpha", "spiffe://alpha/", "spiffe:///controller",
		"spiffe://alpha/controller/", "spiffe://alpha/controller/x", "spiffe://alpha/node",
		"spiffe://alpha/node/", "spiffe://alpha/node/a/b", "spiffe://alpha/node/../x",
		"spiffe://alpha/node/..", "spiffe://alpha/node/.", "spiffe://alpha/device/u",
		"spiffe://alpha/device/u/d/e", "spiffe://alpha/device/../d",
		"spiffe://alpha/device/u/..", "spiffe://alpha/device/u/.hidden",
		"spiffe://alpha/device//d", "SPIFFE://alpha/controller", "spiffe://Alpha/controller",
		"spiffe://alpha/Controller", "spiffe://alpha/node/NodeA", "spiffe://alpha/node/-a",
		"spiffe://alpha/node/a-", "spiffe://alpha/node/a_b", "spiffe://alpha/node/a.b",
		"spiffe://alpha//controller", "spiffe://al pha/controller",
		"spiffe://alpha/controller?x=1", "spiffe://alpha/controller#f",
		"spiffe://alpha:443/controller", "spiffe://user@alpha/controller",
		"spiffe://.alpha/controller", "spiffe://alpha-/controller", "spiffe://alpha/admin",
		"https://alpha/controller", "spiffe://alpha/relay/x/y", "spiffe://alpha/node/a%2fb",
		"spiffe://alpha/node/a\n", " spiffe://alpha/controller",
		"spiffe://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/controller",
		"spiffe://alpha/node/nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
		"spiffe://alpha/device/uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu/d",
	};
	struct spiffe id;
	char buf[PKI_SPIFFE_MAX];
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		buf[0] = '\0';
		T_OK(pki_spiffe_parse(&id, good[i]) == 0 &&
		    pki_spiffe_format(buf, sizeof(buf), &id) == 0 && strcmp(buf, good[i]) == 0,
		    "spiffe: round trip %.60s", good[i]);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char nm[64];
		size_t j;

		/* the test name must stay on one line */
		snprintf(nm, sizeof(nm), "%.60s", bad[i]);
		for (j = 0; nm[j]; j++)
			if (nm[j] < 0x20 || nm[j] > 0x7e)
				nm[j] = '?';
		T_OK(pki_spiffe_parse(&id, bad[i]) == ERR_INVAL && id.role == PKI_ROLE_NONE,
		    "spiffe: refused '%s'", nm);
	}
	T_OK(pki_spiffe_parse(&id, NULL) == ERR_INVAL, "spiffe: NULL refused");

	T_OK(pki_spiffe_parse(&id, "spiffe://alpha/device/j.doe/laptop") == 0 &&
	    id.role == PKI_ROLE_DEVICE && strcmp(id.trust_domain, "alpha") == 0 &&
	    strcmp(id.name, "j.doe") == 0 && strcmp(id.device, "laptop") == 0,
	    "spiffe: device fields");
	T_OK(pki_spiffe_parse(&id, "spiffe://alpha/relay/r1") == 0 && id.role == PKI_ROLE_RELAY &&
	    strcmp(id.name, "r1") == 0 && id.device[0] == '\0', "spiffe: relay fields");
	T_OK(pki_spiffe_parse(&id, "spiffe://alpha/node/../x") != 0 &&
	    strstr(err_last(), "not a SPIFFE id") != NULL, "spiffe: traversal message");
	printf("#   %s\n", err_last());

	/* format refuses what parse would */
	memset(&id, 0, sizeof(id));
	strcpy(id.trust_domain, "alpha");
	T_OK(pki_spiffe_format(buf, sizeof(buf), &id) == ERR_INVAL, "spiffe: format: no role");
	id.role = PKI_ROLE_NODE;
	strcpy(id.name, "../x");
	T_OK(pki_spiffe_format(buf, sizeof(buf), &id) == ERR_INVAL,
	    "spiffe: format: bad node name");
	strcpy(id.name, "");
	T_OK(pki_spiffe_format(buf, sizeof(buf), &id) == ERR_INVAL,
	    "spiffe: format: empty node name");
	strcpy(id.name, "a");
	strcpy(id.trust_domain, "Alpha");
	T_OK(pki_spiffe_format(buf, sizeof(buf), &id) == ERR_INVAL,
	    "spiffe: format: uppercase trust domain");
	strcpy(id.trust_domain, "alpha");
	T_OK(pki_spiffe_format(buf, 10, &id) == ERR_TOOBIG, "spiffe: format: small buffer");
	T_OK(pki_spiffe_format(buf, sizeof(buf), &id) == 0 &&
	    strcmp(buf, "spiffe://alpha/node/a") == 0, "spiffe: format node");
}

static void
test_cas(struct fleet_pki *p)
{
	T_OK(X509_check_ca(p->root) == 1 && X509_get_pathlen(p->root) == 1,
	    "ca: root is a CA with pathlen 1");
	T_OK(X509_check_ca(p->fca) == 1 && X509_get_pathlen(p->fca) == 0 &&
	    X509_check_ca(p->dca) == 1 && X509_get_pathlen(p->dca) == 0,
	    "ca: intermediates are CAs with pathlen 0");
	T_OK((X509_get_key_usage(p->fca) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) ==
	    (KU_KEY_CERT_SIGN | KU_CRL_SIGN), "ca: keyCertSign and cRLSign");
	T_OK(X509_get_ext_by_critical(p->fca, 1, -1) >= 0 &&
	    X509_EXTENSION_get_critical(X509_get_ext(p->fca,
	    X509_get_ext_by_NID(p->fca, NID_basic_constraints, -1))) == 1,
	    "ca: basicConstraints critical");
	T_OK(X509_check_issued(p->root, p->fca) == X509_V_OK &&
	    X509_check_issued(p->root, p->root) == X509_V_OK, "ca: root issued itself and the CA");
	T_OK(cn_is(p->root, "PharosVPN root alpha"), "ca: root CN");
	T_OK(X509_get_version(p->fca) == X509_VERSION_3, "ca: X.509 v3");
	T_OK(X509_cmp_time(X509_get0_notAfter(p->root), &(time_t){ time(NULL) +
	    (PKI_ROOT_DAYS - 1) * (time_t)DAY }) > 0 &&
	    X509_cmp_time(X509_get0_notAfter(p->fca), &(time_t){ time(NULL) +
	    (PKI_CA_DAYS + 1) * (time_t)DAY }) < 0, "ca: lifetimes");
	T_OK(verify(p->root, p->root, p->fca, NULL, X509_PURPOSE_ANY) == 0,
	    "ca: the Fleet CA verifies under the root");
	{
		X509 *c = NULL;
		EVP_PKEY *k = NULL;

		T_OK(pki_root_new(&c, &k, "Bad_Fleet") == ERR_INVAL && c == NULL && k == NULL,
		    "ca: bad fleet id refused");
		T_OK(pki_ca_new(&c, &k, PKI_CA_FLEET, "alpha", p->root, p->fca_key) == ERR_INVAL &&
		    c == NULL, "ca: root key mismatch refused");
	}
}

static void
test_issue(struct fleet_pki *p, struct fleet_pki *beta)
{
	static const struct {
		const char	*uri;
		int		 device;
	} leaves[] = {
		{ "spiffe://alpha/controller", 0 },
		{ "spiffe://alpha/node/node-a", 0 },
		{ "spiffe://alpha/relay/r1", 0 },
		{ "spiffe://alpha/device/j.doe/laptop", 1 },
	};
	struct spiffe id, want;
	char buf[PKI_SPIFFE_MAX], hex[80];
	X509 *x = NULL, *ca;
	EVP_PKEY *key = NULL, *key2 = NULL, *p384 = NULL;
	X509_REQ *csr = NULL;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
		ca = leaves[i].device ? p->dca : p->fca;
		rc = issue(&x, ca, leaves[i].device ? p->dca_key : p->fca_key, leaves[i].uri,
		    leaves[i].uri, 0, 0);
		T_OK(rc == 0, "issue: %s (%s)", leaves[i].uri, rc ? err_last() : "ok");
		if (rc != 0)
			continue;
		T_OK(pki_cert_spiffe(&id, x) == 0 && pki_spiffe_format(buf, sizeof(buf), &id) == 0 &&
		    strcmp(buf, leaves[i].uri) == 0, "issue: %s: the URI SAN", leaves[i].uri);
		T_OK(cn_is(x, leaves[i].uri), "issue: %s: subject CN", leaves[i].uri);
		T_OK(X509_check_ca(x) == 0, "issue: %s: not a CA", leaves[i].uri);
		T_OK((X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE) &&
		    !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN) &&
		    (X509_get_extended_key_usage(x) & (XKU_SSL_SERVER | XKU_SSL_CLIENT)) ==
		    (XKU_SSL_SERVER | XKU_SSL_CLIENT), "issue: %s: key usages", leaves[i].uri);
		T_OK(X509_check_issued(ca, x) == X509_V_OK && X509_get0_subject_key_id(x) != NULL,
		    "issue: %s: key ids", leaves[i].uri);
		T_OK(pki_serial_hex(hex, sizeof(hex), x) == 0 && strlen(hex) == 32 &&
		    strspn(hex, "0123456789abcdef") == 32 && hex[0] >= '4' && hex[0] <= '7',
		    "issue: %s: 16-byte positive serial %s", leaves[i].uri, hex);
		T_OK(verify(p->root, ca, x, NULL, X509_PURPOSE_SSL_CLIENT) == 0 &&
		    verify(p->root, ca, x, NULL, X509_PURPOSE_SSL_SERVER) == 0,
		    "issue: %s: verifies as client and server", leaves[i].uri);
		T_OK(X509_cmp_time(X509_get0_notAfter(x), &(time_t){ time(NULL) +
		    (PKI_LEAF_DAYS - 1) * (time_t)DAY }) > 0 &&
		    X509_cmp_time(X509_get0_notAfter(x), &(time_t){ time(NULL) +
		    (PKI_LEAF_DAYS + 1) * (time_t)DAY }) < 0 &&
		    X509_cmp_time(X509_get0_notBefore(x), NULL) < 0,
		    "issue: %s: valid now for a year", leaves[i].uri);
		X509_free(x);
		x = NULL;
	}

	rc = issue(&x, p->fca, p->fca_key, "spiffe://alpha/node/node-b",
	    "spiffe://alpha/node/node-a", 0, 0);
	T_OK(rc == ERR_INVAL && x == NULL, "issue: a CSR for another identity is refused");
	T_STREQ(err_last(), "CSR asks for spiffe://alpha/node/node-b, expected "
	    "spiffe://alpha/node/node-a", "issue: ... with a clear message");
	rc = issue(&x, p->fca, p->fca_key, "spiffe://alpha/node/node-a",
	    "spiffe://alpha/controller", 0, 0);
	T_OK(rc == ERR_INVAL && x == NULL, "issue: a node CSR cannot become the controller");

	rc = issue(&x, p->fca, p->fca_key, "spiffe://alpha/device/u/d",
	    "spiffe://alpha/device/u/d", 0, 0);
	T_OK(rc == ERR_INVAL && x == NULL && strstr(err_last(), "Device CA") != NULL,
	    "issue: a device id from the Fleet CA is refused (%s)", err_last());
	rc = issue(&x, p->dca, p->dca_key, "spiffe://alpha/node/n", "spiffe://alpha/node/n",
	    0, 0);
	T_OK(rc == ERR_INVAL && x == NULL, "issue: a node id from the Device CA is refused");
	rc = issue(&x, p->root, p->root_key, "spiffe://alpha/node/n", "spiffe://alpha/node/n",
	    0, 0);
	T_OK(rc == ERR_INVAL && x == NULL, "issue: the root does not issue leaves (%s)",
	    err_last());
	rc = issue(&x, p->fca, p->fca_key, "spiffe://beta/controller",
	    "spiffe://beta/controller", 0, 0);
	T_OK(rc == ERR_INVAL && x == NULL && strstr(err_last(), "fleet alpha") != NULL,
	    "issue: another trust domain is refused (%s)", err_last());
	rc = issue(&x, beta->fca, p->fca_key, "spiffe://beta/controller",
	    "spiffe://beta/controller", 0, 0);
	T_OK(rc == ERR_INVAL && x == NULL, "issue: CA key not matching the CA is refused");
	rc = issue(&x, p->fca, p->fca_key, "spiffe://alpha/controller",
	    "spiffe://alpha/controller", time(NULL), time(NULL) - 1);
	T_OK(rc == ERR_INVAL && x == NULL, "issue: validity ending before it starts refused");

	/* a leaf cannot issue */
	if (issue(&x, p->fca, p->fca_key, "spiffe://alpha/node/n", "spiffe://alpha/node/n",
	    0, 0) == 0) {
		X509 *y = NULL;

		key = NULL;
		T_OK(pki_key_new(&key) == 0, "issue: key");
		/* the leaf's own key is gone; any key shows the CA check comes first */
		rc = issue(&y, x, key, "spiffe://alpha/node/m", "spiffe://alpha/node/m", 0, 0);
		T_OK(rc == ERR_INVAL && y == NULL, "issue: a leaf cannot issue");
		X509_free(y);
		EVP_PKEY_free(key);
		key = NULL;
	}
	X509_free(x);
	x = NULL;

	/* a CSR whose signature does not match its key */
	T_OK(pki_spiffe_parse(&want, "spiffe://alpha/node/n") == 0 && pki_key_new(&key) == 0 &&
	    pki_key_new(&key2) == 0 && pki_csr_new(&csr, key, &want) == 0 &&
	    X509_REQ_set_pubkey(csr, key2) == 1, "issue: forged CSR built");
	rc = pki_issue(&x, p->fca, p->fca_key, csr, &want, 0, 0);
	T_OK(rc == ERR_INVAL && x == NULL && strstr(err_last(), "signature") != NULL,
	    "issue: a CSR with a bad signature is refused (%s)", err_last());
	X509_REQ_free(csr);
	csr = NULL;

	/* keys other than P-256 */
	p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	T_OK(p384 != NULL && pki_csr_new(&csr, p384, &want) == 0, "issue: P-384 CSR built");
	rc = pki_issue(&x, p->fca, p->fca_key, csr, &want, 0, 0);
	T_OK(rc == ERR_INVAL && x == NULL && strstr(err_last(), "P-256") != NULL,
	    "issue: a P-384 CSR is refused");
	X509_REQ_free(csr);
	csr = NULL;

	/* a CSR round trip through PEM still issues */
	{
		char *pem = NULL;
		X509_REQ *back = NULL;

		T_OK(pki_csr_new(&csr, key, &want) == 0 && pki_csr_pem(&pem, csr) == 0 &&
		    strncmp(pem, "-----BEGIN CERTIFICATE REQUEST-----", 35) == 0 &&
		    pki_csr_from_pem(&back, pem, strlen(pem)) == 0 &&
		    pki_issue(&x, p->fca, p->fca_key, back, &want, 0, 0) == 0,
		    "issue: from a CSR read back from PEM");
		free(pem);
		X509_REQ_free(back);
		X509_REQ_free(csr);
		csr = NULL;
		X509_free(x);
		x = NULL;
	}
	EVP_PKEY_free(p384);
	EVP_PKEY_free(key);
	EVP_PKEY_free(key2);
}

static void
test_serials(struct fleet_pki *p)
{
	enum { N = 1000 };
	struct spiffe want;
	EVP_PKEY *key = NULL;
	X509_REQ *csr = NULL;
	X509 *x;
	char **s;
	int i, ok = 1, dup = 0;

	if ((s = calloc(N, sizeof(*s))) == NULL) {
		T_OK(0, "serials: calloc");
		return;
	}
	if (pki_spiffe_parse(&want, "spiffe://alpha/node/n") != 0 || pki_key_new(&key) != 0 ||
	    pki_csr_new(&csr, key, &want) != 0)
		ok = 0;
	for (i = 0; ok && i < N; i++) {
		if (pki_issue(&x, p->fca, p->fca_key, csr, &want, 0, 0) != 0 ||
		    (s[i] = malloc(64)) == NULL || pki_serial_hex(s[i], 64, x) != 0)
			ok = 0;
		X509_free(x);
	}
	if (ok) {
		qsort(s, N, sizeof(*s), cmp_str);
		for (i = 1; i < N; i++)
			if (strcmp(s[i - 1], s[i]) == 0)
				dup++;
	}
	T_OK(ok && dup == 0, "serials: %d issues, %d duplicate serials", N, dup);
	for (i = 0; i < N; i++)
		free(s[i]);
	free(s);
	X509_REQ_free(csr);
	EVP_PKEY_free(key);
}

static void
test_chains(struct fleet_pki *p, struct fleet_pki *other)
{
	X509 *good = NULL, *foreign = NULL, *expired = NULL, *notyet = NULL, *revoked = NULL;
	X509 *dev = NULL;
	X509_CRL *crl = NULL, *empty = NULL;
	char hex[64], hex0x[70];
	const char *list[2];
	char *pem = NULL;
	X509_REVOKED *rev = NULL;
	time_t now = time(NULL);

	T_OK(issue(&good, p->fca, p->fca_key, "spiffe://alpha/controller",
	    "spiffe://alpha/controller", 0, 0) == 0 &&
	    issue(&foreign, other->fca, other->fca_key, "spiffe://alpha/controller",
	    "spiffe://alpha/controller", 0, 0) == 0 &&
	    issue(&expired, p->fca, p->fca_key, "spiffe://alpha/controller",
	    "spiffe://alpha/controller", now - 30 * DAY, now - DAY) == 0 &&
	    issue(&notyet, p->fca, p->fca_key, "spiffe://alpha/controller",
	    "spiffe://alpha/controller", now + DAY, now + 30 * DAY) == 0 &&
	    issue(&revoked, p->fca, p->fca_key, "spiffe://alpha/node/node-r",
	    "spiffe://alpha/node/node-r", 0, 0) == 0 &&
	    issue(&dev, p->dca, p->dca_key, "spiffe://alpha/device/u/d",
	    "spiffe://alpha/device/u/d", 0, 0) == 0, "chains: leaves issued");

	T_OK(verify(p->root, p->fca, good, NULL, X509_PURPOSE_SSL_CLIENT) == 0,
	    "chains: good leaf verifies");
	T_OK(verify(p->root, p->dca, dev, NULL, X509_PURPOSE_SSL_CLIENT) == 0,
	    "chains: device leaf verifies under the Device CA");
	T_OK(verify(p->root, p->fca, foreign, NULL, X509_PURPOSE_SSL_CLIENT) ==
	    X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
	    "chains: a leaf of another root (same fleet id) is refused");
	T_OK(verify(p->root, other->fca, foreign, NULL, X509_PURPOSE_SSL_CLIENT) ==
	    X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
	    "chains: ... even with its own intermediate supplied");
	T_OK(verify(p->root, p->fca, expired, NULL, X509_PURPOSE_SSL_CLIENT) ==
	    X509_V_ERR_CERT_HAS_EXPIRED, "chains: expired leaf refused");
	T_OK(verify(p->root, p->fca, notyet, NULL, X509_PURPOSE_SSL_CLIENT) ==
	    X509_V_ERR_CERT_NOT_YET_VALID, "chains: not-yet-valid leaf refused");

	T_OK(pki_serial_hex(hex, sizeof(hex), revoked) == 0, "chains: serial");
	snprintf(hex0x, sizeof(hex0x), "0x%s", hex);
	list[0] = hex0x;
	T_OK(pki_crl_new(&crl, p->fca, p->fca_key, list, 1, 7) == 0, "crl: built");
	T_OK(crl != NULL && X509_CRL_verify(crl, X509_get0_pubkey(p->fca)) == 1 &&
	    sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) == 1 &&
	    X509_CRL_get0_by_serial(crl, &rev,
	    X509_get0_serialNumber(revoked)) == 1, "crl: signed, lists the serial");
	T_OK(verify(p->root, p->fca, revoked, crl, X509_PURPOSE_SSL_CLIENT) ==
	    X509_V_ERR_CERT_REVOKED, "chains: revoked leaf refused with the CRL");
	T_OK(verify(p->root, p->fca, good, crl, X509_PURPOSE_SSL_CLIENT) == 0,
	    "chains: good leaf verifies with the CRL");
	T_OK(verify(p->root, p->fca, revoked, NULL, X509_PURPOSE_SSL_CLIENT) == 0,
	    "chains: ... and the revoked one without it");
	T_OK(verify(p->root, p->dca, dev, crl, X509_PURPOSE_SSL_CLIENT) ==
	    X509_V_ERR_UNABLE_TO_GET_CRL, "chains: CRL checking needs the issuer's CRL");
	X509_CRL_free(crl);
	crl = NULL;

	list[0] = hex;
	T_OK(pki_crl_new(&crl, p->fca, p->fca_key, list, 1, 7) == 0 &&
	    verify(p->root, p->fca, revoked, crl, X509_PURPOSE_SSL_CLIENT) ==
	    X509_V_ERR_CERT_REVOKED, "crl: serial without 0x");
	T_OK(pki_crl_new(&empty, p->root, p->root_key, NULL, 0, 30) == 0 && empty != NULL &&
	    sk_X509_REVOKED_num(X509_CRL_get_REVOKED(empty)) <= 0 &&
	    X509_CRL_verify(empty, X509_get0_pubkey(p->root)) == 1, "crl: empty root CRL");
	T_OK(pki_crl_pem(&pem, crl) == 0 && strncmp(pem, "-----BEGIN X509 CRL-----", 24) == 0,
	    "crl: PEM");
	free(pem);
	X509_CRL_free(crl);
	crl = NULL;
	list[0] = "xyz";
	T_OK(pki_crl_new(&crl, p->fca, p->fca_key, list, 1, 7) == ERR_INVAL && crl == NULL,
	    "crl: bad serial refused");
	list[0] = "";
	T_OK(pki_crl_new(&crl, p->fca, p->fca_key, list, 1, 7) == ERR_INVAL && crl == NULL,
	    "crl: empty serial refused");
	T_OK(pki_crl_new(&crl, p->fca, p->fca_key, NULL, 0, 0) == ERR_INVAL && crl == NULL,
	    "crl: zero days refused");

	X509_CRL_free(empty);
	X509_free(good);
	X509_free(foreign);
	X509_free(expired);
	X509_free(notyet);
	X509_free(revoked);
	X509_free(dev);
}

static void
test_pem(struct fleet_pki *p)
{
	char *pem = NULL, *pem2 = NULL;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;

	T_OK(pki_cert_pem(&pem, p->fca) == 0 && pki_cert_from_pem(&x, pem, strlen(pem)) == 0 &&
	    X509_cmp(x, p->fca) == 0, "pem: certificate round trip");
	free(pem);
	pem = NULL;
	X509_free(x);
	x = NULL;
	T_OK(pki_key_pem(&pem, p->fca_key) == 0 &&
	    strncmp(pem, "-----BEGIN PRIVATE KEY-----", 27) == 0 &&
	    pki_key_from_pem(&k, pem, strlen(pem)) == 0 && EVP_PKEY_eq(k, p->fca_key) == 1 &&
	    pki_key_pem(&pem2, k) == 0 && strcmp(pem, pem2) == 0,
	    "pem: key round trip (PKCS#8)");
	free(pem);
	free(pem2);
	EVP_PKEY_free(k);
	k = NULL;
	T_OK(pki_cert_from_pem(&x, "garbage", 7) == ERR_INVAL && x == NULL,
	    "pem: garbage certificate refused");
	T_OK(pki_key_from_pem(&k, "", 0) == ERR_INVAL && k == NULL, "pem: empty key refused");
	T_OK(pki_cert_pem(&pem, NULL) == ERR_INVAL && pem == NULL, "pem: NULL refused");
}

static int
dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static int
file_is(const char *path, const char *want)
{
	char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strcmp(buf, want) == 0;
}

static void
test_files(struct fleet_pki *p)
{
	char dir[] = "/tmp/pharos-test-pki-XXXXXX", path[128], path2[128], *key = NULL, *cert = NULL;
	struct stat st;
	mode_t old;

	if (mkdtemp(dir) == NULL) {
		T_OK(0, "files: mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/node.key", dir);
	snprintf(path2, sizeof(path2), "%s/node.pem", dir);
	old = umask(0);
	T_OK(pki_key_pem(&key, p->fca_key) == 0 && pki_cert_pem(&cert, p->fca) == 0 &&
	    pki_write_file(path, key, 0600) == 0, "files: key written");
	T_OK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600, "files: key is mode 0600");
	T_OK(file_is(path, key), "files: key content complete");
	T_OK(pki_write_file(path, cert, 0600) == 0 && file_is(path, cert) &&
	    stat(path, &st) == 0 && (st.st_mode & 07777) == 0600,
	    "files: overwrite replaces the whole file");
	T_OK(pki_write_file(path2, cert, 0644) == 0 && stat(path2, &st) == 0 &&
	    (st.st_mode & 07777) == 0644, "files: mode 0644 as given");
	umask(077);
	T_OK(pki_write_file(path2, cert, 0644) == 0 && stat(path2, &st) == 0 &&
	    (st.st_mode & 07777) == 0644, "files: mode as given whatever the umask");
	umask(old);
	T_OK(dir_entries(dir) == 2, "files: no temporary files left");
	snprintf(path2, sizeof(path2), "%s/missing/x.pem", dir);
	T_OK(pki_write_file(path2, cert, 0644) == ERR_SYS &&
	    strstr(err_last(), "No such file") != NULL, "files: missing directory refused");
	snprintf(path2, sizeof(path2), "%s/", dir);
	T_OK(pki_write_file(path2, cert, 0644) == ERR_INVAL, "files: a directory path refused");
	T_OK(dir_entries(dir) == 2, "files: failures leave nothing behind");
	T_OK(chdir(dir) == 0 && pki_write_file("rel.pem", cert, 0644) == 0 &&
	    file_is("rel.pem", cert), "files: relative path in the current directory");
	unlink("rel.pem");
	if (chdir("/") != 0)
		T_OK(0, "files: chdir back");
	unlink(path);
	snprintf(path2, sizeof(path2), "%s/node.pem", dir);
	unlink(path2);
	T_OK(rmdir(dir) == 0, "files: cleaned up");
	if (key != NULL)
		OPENSSL_cleanse(key, strlen(key));
	free(key);
	free(cert);
}

/*
 * Fault injection: OpenSSL's allocations go through these, and fail_at > 0 makes the
 * fail_at-th one from now fail. Every error path of issuance, CRLs and PEM then runs
 * (with ASan watching for leaks and double frees).
 */
static long fail_at, alloc_n;

static void *
f_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	if (fail_at > 0 && ++alloc_n == fail_at)
		return NULL;
	return malloc(n);
}

static void *
f_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	if (fail_at > 0 && ++alloc_n == fail_at)
		return NULL;
	return realloc(p, n);
}

static void
f_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	free(p);
}

/*
 * One pass of the operations under test: 0 if all succeeded, -100 if one failed but
 * left its out parameter set, else the failing one's code.
 */
static int
fault_pass(struct fleet_pki *p, X509_REQ *csr, const struct spiffe *want)
{
	struct spiffe id;
	X509 *x = NULL;
	X509_CRL *crl = NULL;
	char *pem = NULL, hex[80];
	const char *list[1] = { hex };
	int rc;

	if ((rc = pki_issue(&x, p->fca, p->fca_key, csr, want, 0, 0)) != 0) {
		rc = x ? -100 : rc;
		goto out;
	}
	if ((rc = pki_serial_hex(hex, sizeof(hex), x)) != 0)
		goto out;
	if ((rc = pki_crl_new(&crl, p->fca, p->fca_key, list, 1, 7)) != 0) {
		rc = crl ? -100 : rc;
		goto out;
	}
	if ((rc = pki_cert_pem(&pem, x)) != 0) {
		rc = pem ? -100 : rc;
		goto out;
	}
	rc = pki_cert_spiffe(&id, x);
out:
	free(pem);
	X509_CRL_free(crl);
	X509_free(x);
	return rc;
}

static void
test_faults(struct fleet_pki *p)
{
	struct spiffe want;
	EVP_PKEY *key = NULL;
	X509_REQ *csr = NULL;
	long n;
	int rc = -1, failed = 0, bad = 0;

	if (pki_spiffe_parse(&want, "spiffe://alpha/node/n") != 0 || pki_key_new(&key) != 0 ||
	    pki_csr_new(&csr, key, &want) != 0) {
		T_OK(0, "faults: set up");
		goto out;
	}
	for (n = 1; n < 100000; n++) {
		alloc_n = 0;
		fail_at = n;
		rc = fault_pass(p, csr, &want);
		fail_at = 0;
		ERR_clear_error();
		if (alloc_n < n)
			break;	/* nothing failed: every allocation has been tried */
		if (rc == -100)
			bad++;
		else if (rc != 0)
			failed++;
	}
	/* OpenSSL shrugs off some failures (caches, error state); those passes succeed */
	T_OK(rc == 0 && n > 100, "faults: each of %ld allocations failed in turn, %d passes "
	    "failed cleanly", n - 1, failed);
	T_OK(bad == 0, "faults: no out parameter set on failure (%d were)", bad);
out:
	X509_REQ_free(csr);
	EVP_PKEY_free(key);
}

int
main(void)
{
	struct fleet_pki alpha, other, beta;

	if (!CRYPTO_set_mem_functions(f_malloc, f_realloc, f_free))
		T_OK(0, "faults: CRYPTO_set_mem_functions");
	test_spiffe();
	T_OK(fleet_pki_new(&alpha, "alpha") == 0, "ca: alpha PKI");
	T_OK(fleet_pki_new(&other, "alpha") == 0, "ca: a second PKI also named alpha");
	T_OK(fleet_pki_new(&beta, "beta") == 0, "ca: beta PKI");
	test_cas(&alpha);
	test_issue(&alpha, &beta);
	test_serials(&alpha);
	test_chains(&alpha, &other);
	test_pem(&alpha);
	test_files(&alpha);
	test_faults(&alpha);
	fleet_pki_free(&alpha);
	fleet_pki_free(&other);
	fleet_pki_free(&beta);
	T_DONE();
}
