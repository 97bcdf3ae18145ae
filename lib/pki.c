/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fleet PKI on OpenSSL 3 (EVP and X509 APIs only).
 *
 * Where a CA's fleet and kind live: in its subject, O=<fleet id> and OU="root",
 * "Fleet CA" or "Device CA" (e.g. "O=alpha, OU=Fleet CA, CN=PharosVPN Fleet CA alpha").
 * pki_issue reads both from the issuing certificate, so an issuer cannot be handed the
 * wrong fleet or kind by its caller. A CA carries no SAN.
 *
 * A leaf's subject is CN=<its SPIFFE id>, for people reading logs; identity is only
 * ever taken from the one URI SAN. Names are written as UTF8String without the X.520
 * upper bound of 64 characters (a device id can be ~200): OpenSSL, Go and rustls do
 * not enforce that bound, and refusing long ids would be worse.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "fsutil.h"
#include "pki.h"

#define SPIFFE_SCHEME	"spiffe://"
#define CA_OU_ROOT	"root"
#define CA_OU_FLEET	"Fleet CA"
#define CA_OU_DEVICE	"Device CA"
#define BACKDATE	300	/* seconds: tolerate clocks a little behind ours */
#define DAY		86400

int
pki_err_openssl(const char *what)
{
	char msg[768];
	const char *data, *reason, *lib;
	size_t n = 0;
	unsigned long e;
	int flags, w;

	msg[0] = '\0';
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		if (n >= sizeof(msg) - 1)
			continue;	/* keep draining */
		reason = ERR_reason_error_string(e);
		lib = ERR_lib_error_string(e);
		w = snprintf(msg + n, sizeof(msg) - n, "%s%s%s%s%s%s%s", n ? "; " : "",
		    reason ? reason : "unknown error", lib ? " (" : "", lib ? lib : "",
		    lib ? ")" : "", (flags & ERR_TXT_STRING) && data && *data ? ": " : "",
		    (flags & ERR_TXT_STRING) && data ? data : "");
		if (w < 0)
			break;
		n += (size_t)w;
		if (n > sizeof(msg) - 1)
			n = sizeof(msg) - 1;
	}
	err_set("%s: %s", what, msg[0] ? msg : "failed (no OpenSSL error)");
	return ERR_LIB;
}

/* ---- SPIFFE ids ---- */

static int
is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/*
 * The name rules of DESIGN §2.2: first and last character [a-z0-9], the middle from
 * [a-z0-9] plus `extra`, 1..max characters. No name can be "." or "..", and none holds
 * a '/', so a segment never walks a path.
 */
static int
valid_name(const char *s, size_t len, size_t max, const char *extra)
{
	size_t i;

	if (len == 0 || len > max)
		return 0;
	if (!is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1]))
		return 0;
	for (i = 1; i + 1 < len; i++)
		if (!is_lower_alnum(s[i]) && (s[i] == '\0' || strchr(extra, s[i]) == NULL))
			return 0;
	return 1;
}

static int
valid_fleet(const char *s, size_t len)
{
	return valid_name(s, len, 63, ".-");
}

/* node and relay names end up in interface and host names: DESIGN §2.2 */
static int
valid_host_name(const char *s, size_t len)
{
	return valid_name(s, len, 32, "-");
}

static int
valid_user_name(const char *s, size_t len)
{
	return valid_name(s, len, 64, "._-");
}

static int
seg_is(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && memcmp(s, word, len) == 0;
}

int
pki_spiffe_parse(struct spiffe *out, const char *uri)
{
	const char *p, *seg[4];
	size_t seglen[4], ulen, n = 0;
	const char *td, *slash;

	memset(out, 0, sizeof(*out));
	if (uri == NULL) {
		err_set("no SPIFFE id");
		return ERR_INVAL;
	}
	ulen = strnlen(uri, PKI_SPIFFE_MAX);
	if (ulen >= PKI_SPIFFE_MAX) {
		err_set("SPIFFE id '%.64s...' is too long", uri);
		return ERR_INVAL;
	}
	if (strncmp(uri, SPIFFE_SCHEME, strlen(SPIFFE_SCHEME)) != 0) {
		err_set("'%s' is not a SPIFFE id (must start with " SPIFFE_SCHEME ")", uri);
		return ERR_INVAL;
	}
	td = uri + strlen(SPIFFE_SCHEME);
	if ((slash = strchr(td, '/')) == NULL) {
		err_set("'%s' is not a SPIFFE id of ours: no path", uri);
		return ERR_INVAL;
	}
	if (!valid_fleet(td, (size_t)(slash - td))) {
		err_set("'%s': trust domain must be 1-63 of [a-z0-9.-], starting and ending "
		    "with [a-z0-9]", uri);
		return ERR_INVAL;
	}
	for (p = slash + 1;; p++) {
		const char *end = strchr(p, '/');

		if (n == 4) {
			n++;	/* too many segments */
			break;
		}
		seg[n] = p;
		seglen[n] = end ? (size_t)(end - p) : strlen(p);
		n++;
		if (end == NULL)
			break;
		p = end;
	}
	if (n == 1 && seg_is(seg[0], seglen[0], "controller")) {
		out->role = PKI_ROLE_CONTROLLER;
	} else if (n == 2 && (seg_is(seg[0], seglen[0], "node") ||
	    seg_is(seg[0], seglen[0], "relay"))) {
		if (!valid_host_name(seg[1], seglen[1])) {
			err_set("'%s': a %s name must be 1-32 of [a-z0-9-], starting and "
			    "ending with [a-z0-9]", uri, seg[0][0] == 'n' ? "node" : "relay");
			return ERR_INVAL;
		}
		out->role = seg[0][0] == 'n' ? PKI_ROLE_NODE : PKI_ROLE_RELAY;
		memcpy(out->name, seg[1], seglen[1]);
	} else if (n == 3 && seg_is(seg[0], seglen[0], "device")) {
		if (!valid_user_name(seg[1], seglen[1]) || !valid_user_name(seg[2], seglen[2])) {
			err_set("'%s': user and device names must be 1-64 of [a-z0-9._-], "
			    "starting and ending with [a-z0-9]", uri);
			return ERR_INVAL;
		}
		out->role = PKI_ROLE_DEVICE;
		memcpy(out->name, seg[1], seglen[1]);
		memcpy(out->device, seg[2], seglen[2]);
	} else {
		err_set("'%s' is not a SPIFFE id of ours (controller, node/NAME, relay/NAME "
		    "or device/USER/DEVICE)", uri);
		memset(out, 0, sizeof(*out));
		return ERR_INVAL;
	}
	memcpy(out->trust_domain, td, (size_t)(slash - td));
	return 0;
}

int
pki_spiffe_format(char *buf, size_t bufsz, const struct spiffe *id)
{
	size_t tdl, nl, dl;
	int n = -1;

	tdl = strnlen(id->trust_domain, sizeof(id->trust_domain));
	nl = strnlen(id->name, sizeof(id->name));
	dl = strnlen(id->device, sizeof(id->device));
	if (!valid_fleet(id->trust_domain, tdl)) {
		err_set("bad trust domain in SPIFFE id");
		return ERR_INVAL;
	}
	switch (id->role) {
	case PKI_ROLE_CONTROLLER:
		n = snprintf(buf, bufsz, SPIFFE_SCHEME "%s/controller", id->trust_domain);
		break;
	case PKI_ROLE_NODE:
	case PKI_ROLE_RELAY:
		if (!valid_host_name(id->name, nl)) {
			err_set("bad %s name in SPIFFE id",
			    id->role == PKI_ROLE_NODE ? "node" : "relay");
			return ERR_INVAL;
		}
		n = snprintf(buf, bufsz, SPIFFE_SCHEME "%s/%s/%s", id->trust_domain,
		    id->role == PKI_ROLE_NODE ? "node" : "relay", id->name);
		break;
	case PKI_ROLE_DEVICE:
		if (!valid_user_name(id->name, nl) || !valid_user_name(id->device, dl)) {
			err_set("bad user or device name in SPIFFE id");
			return ERR_INVAL;
		}
		n = snprintf(buf, bufsz, SPIFFE_SCHEME "%s/device/%s/%s", id->trust_domain,
		    id->name, id->device);
		break;
	default:
		err_set("SPIFFE id has no role");
		return ERR_INVAL;
	}
	if (n < 0 || (size_t)n >= bufsz) {
		err_set("SPIFFE id does not fit in %zu bytes", bufsz);
		return ERR_TOOBIG;
	}
	return 0;
}

/*
 * The one URI among names (a subjectAltName); crit is X509_get_ext_d2i's, which tells
 * "no SAN" from "several SAN extensions". With only_uri, any other name is refused too.
 */
static int
names_uri(char *buf, size_t bufsz, const GENERAL_NAMES *gens, int crit, int only_uri,
    const char *what)
{
	const GENERAL_NAME *gn, *uri = NULL;
	const unsigned char *data;
	int i, nuri = 0, nother = 0, len;

	if (gens == NULL) {
		if (crit == -2)
			err_set("%s has more than one subjectAltName extension", what);
		else if (crit == -1)
			err_set("%s has no subjectAltName (no SPIFFE id)", what);
		else
			err_set("%s has an unreadable subjectAltName", what);
		return ERR_INVAL;
	}
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		gn = sk_GENERAL_NAME_value(gens, i);
		if (gn->type == GEN_URI) {
			uri = gn;
			nuri++;
		} else {
			nother++;
		}
	}
	if (nuri != 1) {
		err_set("%s has %d URI names, expected exactly one SPIFFE id", what, nuri);
		return ERR_INVAL;
	}
	if (only_uri && nother > 0) {
		err_set("%s asks for %d names besides its SPIFFE id", what, nother);
		return ERR_INVAL;
	}
	data = ASN1_STRING_get0_data(uri->d.uniformResourceIdentifier);
	len = ASN1_STRING_length(uri->d.uniformResourceIdentifier);
	if (len <= 0 || (size_t)len >= bufsz || memchr(data, '\0', (size_t)len) != NULL) {
		err_set("%s has a malformed or overlong URI name", what);
		return ERR_INVAL;
	}
	memcpy(buf, data, (size_t)len);
	buf[len] = '\0';
	return 0;
}

int
pki_cert_spiffe(struct spiffe *out, X509 *cert)
{
	GENERAL_NAMES *gens;
	char uri[PKI_SPIFFE_MAX];
	int crit = 0, rc;

	memset(out, 0, sizeof(*out));
	if (cert == NULL) {
		err_set("no certificate");
		return ERR_INVAL;
	}
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	rc = names_uri(uri, sizeof(uri), gens, crit, 0, "certificate");
	GENERAL_NAMES_free(gens);
	if (rc == 0)
		rc = pki_spiffe_parse(out, uri);
	ERR_clear_error();	/* a failed d2i leaves its reason, already said above */
	return rc;
}

/* ---- keys and certificates ---- */

int
pki_key_new(EVP_PKEY **out)
{
	*out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (*out == NULL)
		return pki_err_openssl("generating a P-256 key");
	return 0;
}

static int
key_is_p256(EVP_PKEY *key)
{
	char group[64];
	size_t len = 0;

	return EVP_PKEY_is_a(key, "EC") &&
	    EVP_PKEY_get_group_name(key, group, sizeof(group), &len) == 1 &&
	    strcmp(group, "prime256v1") == 0;
}

static int
name_add(X509_NAME *name, const char *field, const char *value)
{
	/* UTF8String, not MBSTRING_UTF8: see the header comment on the 64-character bound */
	if (!X509_NAME_add_entry_by_txt(name, field, V_ASN1_UTF8STRING,
	    (const unsigned char *)value, -1, -1, 0))
		return pki_err_openssl("building a certificate name");
	return 0;
}

static int
set_random_serial(X509 *x)
{
	unsigned char b[16];
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai = NULL;
	int rc = ERR_LIB;

	if (RAND_bytes(b, sizeof(b)) != 1) {
		rc = pki_err_openssl("drawing a serial");
		goto out;
	}
	/* positive (top bit clear) and always 16 bytes long (next bit set) */
	b[0] = (unsigned char)((b[0] & 0x7f) | 0x40);
	if ((bn = BN_bin2bn(b, sizeof(b), NULL)) == NULL ||
	    (ai = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    !X509_set_serialNumber(x, ai)) {
		rc = pki_err_openssl("setting a serial");
		goto out;
	}
	rc = 0;
out:
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return rc;
}

static int
add_conf_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value)) == NULL)
		return pki_err_openssl("building a certificate extension");
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (!ok)
		return pki_err_openssl("adding a certificate extension");
	return 0;
}

/* RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
static int
key_id(unsigned char *md, unsigned *mdlen, X509 *cert)
{
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(cert);

	if (ski != NULL && ASN1_STRING_length(ski) > 0 &&
	    ASN1_STRING_length(ski) <= EVP_MAX_MD_SIZE) {
		*mdlen = (unsigned)ASN1_STRING_length(ski);
		memcpy(md, ASN1_STRING_get0_data(ski), *mdlen);
		return 0;
	}
	ERR_clear_error();
	if (!X509_pubkey_digest(cert, EVP_sha1(), md, mdlen))
		return pki_err_openssl("hashing a public key");
	return 0;
}

static AUTHORITY_KEYID *
akid_new(const unsigned char *md, unsigned mdlen)
{
	AUTHORITY_KEYID *akid;

	if ((akid = AUTHORITY_KEYID_new()) == NULL ||
	    (akid->keyid = ASN1_OCTET_STRING_new()) == NULL ||
	    !ASN1_OCTET_STRING_set(akid->keyid, md, (int)mdlen)) {
		AUTHORITY_KEYID_free(akid);
		pki_err_openssl("building an authority key id");
		return NULL;
	}
	return akid;
}

/*
 * Nothing here may look at x through a caching getter (X509_get0_subject_key_id,
 * X509_check_ca, ...): OpenSSL would cache x's extensions before they are all added.
 */
static int
add_key_ids(X509 *x, X509 *issuer)
{
	unsigned char md[EVP_MAX_MD_SIZE], imd[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0, imdlen = 0;
	ASN1_OCTET_STRING *ski = NULL;
	AUTHORITY_KEYID *akid = NULL;
	int rc = ERR_LIB;

	if (!X509_pubkey_digest(x, EVP_sha1(), md, &mdlen) ||
	    (ski = ASN1_OCTET_STRING_new()) == NULL ||
	    !ASN1_OCTET_STRING_set(ski, md, (int)mdlen) ||
	    !X509_add1_ext_i2d(x, NID_subject_key_identifier, ski, 0, X509V3_ADD_DEFAULT)) {
		rc = pki_err_openssl("adding the subject key id");
		goto out;
	}
	if (issuer != NULL && (rc = key_id(imd, &imdlen, issuer)) != 0)
		goto out;
	/* self-signed: the authority key id is our own */
	if ((akid = issuer ? akid_new(imd, imdlen) : akid_new(md, mdlen)) == NULL) {
		rc = ERR_LIB;
		goto out;
	}
	if (!X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT)) {
		rc = pki_err_openssl("adding the authority key id");
		goto out;
	}
	rc = 0;
out:
	AUTHORITY_KEYID_free(akid);
	ASN1_OCTET_STRING_free(ski);
	return rc;
}

static int
add_uri_san(X509 *x, const char *uri)
{
	GENERAL_NAMES *gens = NULL;
	GENERAL_NAME *gn = NULL;
	ASN1_IA5STRING *ia5 = NULL;
	int rc = ERR_LIB;

	if ((gens = GENERAL_NAMES_new()) == NULL || (gn = GENERAL_NAME_new()) == NULL ||
	    (ia5 = ASN1_IA5STRING_new()) == NULL ||
	    !ASN1_STRING_set(ia5, uri, (int)strlen(uri))) {
		rc = pki_err_openssl("building a URI name");
		goto out;
	}
	GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
	ia5 = NULL;	/* owned by gn now */
	if (!sk_GENERAL_NAME_push(gens, gn)) {
		rc = pki_err_openssl("building a URI name");
		goto out;
	}
	gn = NULL;	/* owned by gens now */
	if (!X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT)) {
		rc = pki_err_openssl("adding the subjectAltName");
		goto out;
	}
	rc = 0;
out:
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	return rc;
}

struct conf_ext {
	int		 nid;
	const char	*value;
};

/*
 * A v3 certificate for pubkey named subject, signed by sign_key as issuer (NULL:
 * self-signed), valid [nb, na], with a random serial, key ids, the given extensions
 * and, if uri is set, that one URI SAN.
 */
static int
cert_make(X509 **out, X509_NAME *subject, EVP_PKEY *pubkey, X509 *issuer,
    EVP_PKEY *sign_key, time_t nb, time_t na, const struct conf_ext *exts, size_t nexts,
    const char *uri)
{
	X509 *x;
	size_t i;
	int rc = ERR_LIB;

	*out = NULL;
	if ((x = X509_new()) == NULL) {
		rc = pki_err_openssl("allocating a certificate");
		goto out;
	}
	if (!X509_set_version(x, X509_VERSION_3) || !X509_set_subject_name(x, subject) ||
	    !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subject) ||
	    !X509_set_pubkey(x, pubkey) ||
	    ASN1_TIME_set(X509_getm_notBefore(x), nb) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), na) == NULL) {
		rc = pki_err_openssl("building a certificate");
		goto out;
	}
	if ((rc = set_random_serial(x)) != 0 || (rc = add_key_ids(x, issuer)) != 0)
		goto out;
	for (i = 0; i < nexts; i++)
		if ((rc = add_conf_ext(x, issuer ? issuer : x, exts[i].nid, exts[i].value)) != 0)
			goto out;
	if (uri != NULL && (rc = add_uri_san(x, uri)) != 0)
		goto out;
	if (X509_sign(x, sign_key, EVP_sha256()) <= 0) {
		rc = pki_err_openssl("signing a certificate");
		goto out;
	}
	*out = x;
	x = NULL;	/* owned by the caller now */
	rc = 0;
out:
	X509_free(x);
	return rc;
}

static int
ca_name(X509_NAME **out, const char *fleet, const char *ou, const char *cn)
{
	X509_NAME *name;
	int rc;

	*out = NULL;
	if ((name = X509_NAME_new()) == NULL)
		return pki_err_openssl("allocating a name");
	if ((rc = name_add(name, "O", fleet)) != 0 || (rc = name_add(name, "OU", ou)) != 0 ||
	    (rc = name_add(name, "CN", cn)) != 0) {
		X509_NAME_free(name);
		return rc;
	}
	*out = name;
	return 0;
}

int
pki_root_new(X509 **cert, EVP_PKEY **key, const char *fleet_id)
{
	static const struct conf_ext exts[] = {
		{ NID_basic_constraints, "critical,CA:TRUE,pathlen:1" },
		{ NID_key_usage, "critical,keyCertSign,cRLSign" },
	};
	X509_NAME *name = NULL;
	EVP_PKEY *k = NULL;
	char cn[128];
	time_t now = time(NULL);
	int rc;

	*cert = NULL;
	*key = NULL;
	if (fleet_id == NULL || !valid_fleet(fleet_id, strlen(fleet_id))) {
		err_set("'%s' is not a fleet id", fleet_id ? fleet_id : "(null)");
		return ERR_INVAL;
	}
	snprintf(cn, sizeof(cn), "PharosVPN root %s", fleet_id);
	if ((rc = pki_key_new(&k)) != 0 || (rc = ca_name(&name, fleet_id, CA_OU_ROOT, cn)) != 0)
		goto out;
	if ((rc = cert_make(cert, name, k, NULL, k, now - BACKDATE,
	    now + (time_t)PKI_ROOT_DAYS * DAY, exts, 2, NULL)) != 0)
		goto out;
	*key = k;
	k = NULL;	/* owned by the caller now */
out:
	X509_NAME_free(name);
	EVP_PKEY_free(k);
	return rc;
}

/* The fleet and kind of a CA we made, from its subject (see the top of this file). */
static int
ca_info(char *fleet, size_t fleetsz, enum pki_ca_kind *kind, X509 *ca)
{
	const X509_NAME *name = X509_get_subject_name(ca);
	const ASN1_STRING *s;
	char ou[32];
	int i, len;

	if (X509_check_ca(ca) != 1) {
		err_set("the issuing certificate is not a CA");
		return ERR_INVAL;
	}
	if ((i = X509_NAME_get_index_by_NID(name, NID_organizationName, -1)) < 0 ||
	    X509_NAME_get_index_by_NID(name, NID_organizationName, i) >= 0) {
		err_set("the issuing CA names no (or several) fleets in its subject O=");
		return ERR_INVAL;
	}
	s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
	len = ASN1_STRING_length(s);
	if (len <= 0 || (size_t)len >= fleetsz ||
	    !valid_fleet((const char *)ASN1_STRING_get0_data(s), (size_t)len)) {
		err_set("the issuing CA's subject O= is not a fleet id");
		return ERR_INVAL;
	}
	memcpy(fleet, ASN1_STRING_get0_data(s), (size_t)len);
	fleet[len] = '\0';

	if ((i = X509_NAME_get_index_by_NID(name, NID_organizationalUnitName, -1)) < 0) {
		err_set("the issuing CA names no kind in its subject OU=");
		return ERR_INVAL;
	}
	s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
	len = ASN1_STRING_length(s);
	if (len <= 0 || (size_t)len >= sizeof(ou)) {
		err_set("the issuing CA is not a Fleet CA or Device CA");
		return ERR_INVAL;
	}
	memcpy(ou, ASN1_STRING_get0_data(s), (size_t)len);
	ou[len] = '\0';
	if (strcmp(ou, CA_OU_FLEET) == 0) {
		*kind = PKI_CA_FLEET;
	} else if (strcmp(ou, CA_OU_DEVICE) == 0) {
		*kind = PKI_CA_DEVICE;
	} else {
		err_set("the issuing CA is a %s, not a Fleet CA or Device CA", ou);
		return ERR_INVAL;
	}
	return 0;
}

static int
check_signer(X509 *ca, EVP_PKEY *ca_key)
{
	if (ca == NULL || ca_key == NULL) {
		err_set("no CA certificate or key");
		return ERR_INVAL;
	}
	if (X509_check_private_key(ca, ca_key) != 1) {
		pki_err_openssl("CA key");
		err_set("the CA key does not match the CA certificate");
		return ERR_INVAL;
	}
	return 0;
}

int
pki_ca_new(X509 **cert, EVP_PKEY **key, enum pki_ca_kind kind, const char *fleet_id,
    X509 *root, EVP_PKEY *root_key)
{
	static const struct conf_ext exts[] = {
		{ NID_basic_constraints, "critical,CA:TRUE,pathlen:0" },
		{ NID_key_usage, "critical,keyCertSign,cRLSign" },
	};
	X509_NAME *name = NULL;
	EVP_PKEY *k = NULL;
	const char *ou = kind == PKI_CA_DEVICE ? CA_OU_DEVICE : CA_OU_FLEET;
	char cn[128];
	time_t now = time(NULL);
	int rc;

	*cert = NULL;
	*key = NULL;
	if (fleet_id == NULL || !valid_fleet(fleet_id, strlen(fleet_id))) {
		err_set("'%s' is not a fleet id", fleet_id ? fleet_id : "(null)");
		return ERR_INVAL;
	}
	if (kind != PKI_CA_FLEET && kind != PKI_CA_DEVICE) {
		err_set("unknown CA kind %d", (int)kind);
		return ERR_INVAL;
	}
	if ((rc = check_signer(root, root_key)) != 0)
		return rc;
	if (X509_check_ca(root) != 1) {
		err_set("the root certificate is not a CA");
		return ERR_INVAL;
	}
	snprintf(cn, sizeof(cn), "PharosVPN %s %s", ou, fleet_id);
	if ((rc = pki_key_new(&k)) != 0 || (rc = ca_name(&name, fleet_id, ou, cn)) != 0)
		goto out;
	if ((rc = cert_make(cert, name, k, root, root_key, now - BACKDATE,
	    now + (time_t)PKI_CA_DAYS * DAY, exts, 2, NULL)) != 0)
		goto out;
	*key = k;
	k = NULL;	/* owned by the caller now */
out:
	X509_NAME_free(name);
	EVP_PKEY_free(k);
	return rc;
}

int
pki_csr_new(X509_REQ **out, EVP_PKEY *key, const struct spiffe *id)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext = NULL;
	GENERAL_NAMES *gens = NULL;
	GENERAL_NAME *gn = NULL;
	ASN1_IA5STRING *ia5 = NULL;
	X509_NAME *name = NULL;
	X509_REQ *req = NULL;
	char uri[PKI_SPIFFE_MAX];
	int rc;

	*out = NULL;
	if ((rc = pki_spiffe_format(uri, sizeof(uri), id)) != 0)
		return rc;
	rc = ERR_LIB;
	if ((req = X509_REQ_new()) == NULL || (name = X509_NAME_new()) == NULL ||
	    (exts = sk_X509_EXTENSION_new_null()) == NULL ||
	    (gens = GENERAL_NAMES_new()) == NULL || (gn = GENERAL_NAME_new()) == NULL ||
	    (ia5 = ASN1_IA5STRING_new()) == NULL) {
		rc = pki_err_openssl("allocating a CSR");
		goto out;
	}
	if ((rc = name_add(name, "CN", uri)) != 0)
		goto out;
	if (!ASN1_STRING_set(ia5, uri, (int)strlen(uri))) {
		rc = pki_err_openssl("building a CSR");
		goto out;
	}
	GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
	ia5 = NULL;	/* owned by gn now */
	if (!sk_GENERAL_NAME_push(gens, gn)) {
		rc = pki_err_openssl("building a CSR");
		goto out;
	}
	gn = NULL;	/* owned by gens now */
	if ((ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens)) == NULL ||
	    !sk_X509_EXTENSION_push(exts, ext)) {
		rc = pki_err_openssl("building a CSR");
		goto out;
	}
	ext = NULL;	/* owned by exts now */
	if (!X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
	    !X509_REQ_set_subject_name(req, name) || !X509_REQ_set_pubkey(req, key) ||
	    !X509_REQ_add_extensions(req, exts) || X509_REQ_sign(req, key, EVP_sha256()) <= 0) {
		rc = pki_err_openssl("signing a CSR");
		goto out;
	}
	*out = req;
	req = NULL;	/* owned by the caller now */
	rc = 0;
out:
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	X509_NAME_free(name);
	X509_REQ_free(req);
	return rc;
}

/* The one URI the CSR asks for. */
static int
csr_uri(char *buf, size_t bufsz, X509_REQ *csr)
{
	STACK_OF(X509_EXTENSION) *exts;
	GENERAL_NAMES *gens = NULL;
	int crit = -1, rc;

	if ((exts = X509_REQ_get_extensions(csr)) != NULL)
		gens = X509V3_get_d2i(exts, NID_subject_alt_name, &crit, NULL);
	rc = names_uri(buf, bufsz, gens, crit, 1, "CSR");
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	ERR_clear_error();
	return rc;
}

int
pki_issue(X509 **out, X509 *ca, EVP_PKEY *ca_key, X509_REQ *csr,
    const struct spiffe *want, time_t not_before, time_t not_after)
{
	static const struct conf_ext exts[] = {
		{ NID_basic_constraints, "critical,CA:FALSE" },
		{ NID_key_usage, "critical,digitalSignature" },
		{ NID_ext_key_usage, "serverAuth,clientAuth" },
	};
	char want_uri[PKI_SPIFFE_MAX], asked[PKI_SPIFFE_MAX], fleet[64];
	struct spiffe asked_id;
	enum pki_ca_kind kind;
	X509_NAME *name = NULL;
	EVP_PKEY *pub;
	time_t now = time(NULL);
	int rc;

	*out = NULL;
	if (csr == NULL || want == NULL) {
		err_set("no CSR or identity to issue for");
		return ERR_INVAL;
	}
	if ((rc = pki_spiffe_format(want_uri, sizeof(want_uri), want)) != 0 ||
	    (rc = check_signer(ca, ca_key)) != 0 ||
	    (rc = ca_info(fleet, sizeof(fleet), &kind, ca)) != 0)
		return rc;

	if ((pub = X509_REQ_get0_pubkey(csr)) == NULL) {
		pki_err_openssl("CSR public key");
		err_set("the CSR's public key is unreadable");
		return ERR_INVAL;
	}
	if (X509_REQ_verify(csr, pub) != 1) {
		pki_err_openssl("CSR signature");
		err_set("the CSR's signature does not verify");
		return ERR_INVAL;
	}
	if (!key_is_p256(pub)) {
		err_set("the CSR's key is not ECDSA P-256");
		return ERR_INVAL;
	}
	if ((rc = csr_uri(asked, sizeof(asked), csr)) != 0)
		return rc;
	if (pki_spiffe_parse(&asked_id, asked) != 0 || strcmp(asked, want_uri) != 0) {
		err_set("CSR asks for %s, expected %s", asked, want_uri);
		return ERR_INVAL;
	}
	if ((want->role == PKI_ROLE_DEVICE) != (kind == PKI_CA_DEVICE)) {
		err_set("%s cannot be issued by the %s: devices come from the Device CA, "
		    "everything else from the Fleet CA", want_uri,
		    kind == PKI_CA_DEVICE ? CA_OU_DEVICE : CA_OU_FLEET);
		return ERR_INVAL;
	}
	if (strcmp(want->trust_domain, fleet) != 0) {
		err_set("%s is not of this CA's fleet %s", want_uri, fleet);
		return ERR_INVAL;
	}
	if (not_before == 0)
		not_before = now - BACKDATE;
	if (not_after == 0)
		not_after = now + (time_t)PKI_LEAF_DAYS * DAY;
	if (not_after <= not_before) {
		err_set("validity ends before it starts");
		return ERR_INVAL;
	}

	if ((name = X509_NAME_new()) == NULL) {
		rc = pki_err_openssl("allocating a name");
		goto out;
	}
	if ((rc = name_add(name, "CN", want_uri)) != 0)
		goto out;
	rc = cert_make(out, name, pub, ca, ca_key, not_before, not_after, exts, 3, want_uri);
out:
	X509_NAME_free(name);
	return rc;
}

/* ---- revocation ---- */

static int
serial_parse(ASN1_INTEGER **out, const char *s)
{
	BIGNUM *bn = NULL;
	size_t i, len;
	int rc = ERR_INVAL;

	*out = NULL;
	if (s == NULL) {
		err_set("no serial");
		return ERR_INVAL;
	}
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	len = strlen(s);
	/* serials are at most 20 bytes (RFC 5280 4.1.2.2) */
	if (len == 0 || len > 40) {
		err_set("'%.48s' is not a certificate serial", s);
		return ERR_INVAL;
	}
	for (i = 0; i < len; i++) {
		if (strchr("0123456789abcdefABCDEF", s[i]) == NULL) {
			err_set("'%s' is not a certificate serial (hex)", s);
			return ERR_INVAL;
		}
	}
	if (BN_hex2bn(&bn, s) != (int)len || (*out = BN_to_ASN1_INTEGER(bn, NULL)) == NULL) {
		rc = pki_err_openssl("parsing a serial");
		goto out;
	}
	rc = 0;
out:
	BN_free(bn);
	return rc;
}

int
pki_crl_new(X509_CRL **out, X509 *ca, EVP_PKEY *ca_key, const char *const *serials,
    size_t n, int days)
{
	X509_CRL *crl = NULL;
	X509_REVOKED *rev = NULL;
	ASN1_INTEGER *serial = NULL, *number = NULL;
	ASN1_TIME *now_t = NULL;
	AUTHORITY_KEYID *akid = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	time_t now = time(NULL);
	size_t i;
	int rc;

	*out = NULL;
	if (days <= 0 || days > 3650) {
		err_set("CRL validity of %d days is out of range", days);
		return ERR_INVAL;
	}
	if ((rc = check_signer(ca, ca_key)) != 0)
		return rc;
	if (X509_check_ca(ca) != 1) {
		err_set("the CRL issuer is not a CA");
		return ERR_INVAL;
	}
	rc = ERR_LIB;
	if ((crl = X509_CRL_new()) == NULL || (now_t = ASN1_TIME_new()) == NULL ||
	    (number = ASN1_INTEGER_new()) == NULL) {
		rc = pki_err_openssl("allocating a CRL");
		goto out;
	}
	if (ASN1_TIME_set(now_t, now) == NULL ||
	    !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) ||
	    !X509_CRL_set1_lastUpdate(crl, now_t) ||
	    X509_time_adj_ex(now_t, days, 0, &now) == NULL ||
	    !X509_CRL_set1_nextUpdate(crl, now_t)) {
		rc = pki_err_openssl("building a CRL");
		goto out;
	}
	/* a CRL number that grows: issuing time, good for one CRL per second */
	if (!ASN1_INTEGER_set_int64(number, (int64_t)now) ||
	    !X509_CRL_add1_ext_i2d(crl, NID_crl_number, number, 0, 0)) {
		rc = pki_err_openssl("numbering a CRL");
		goto out;
	}
	if ((rc = key_id(md, &mdlen, ca)) != 0 || (akid = akid_new(md, mdlen)) == NULL) {
		rc = ERR_LIB;
		goto out;
	}
	if (!X509_CRL_add1_ext_i2d(crl, NID_authority_key_identifier, akid, 0, 0)) {
		rc = pki_err_openssl("building a CRL");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((rc = serial_parse(&serial, serials[i])) != 0)
			goto out;
		rc = ERR_LIB;
		if ((rev = X509_REVOKED_new()) == NULL ||
		    !X509_REVOKED_set_serialNumber(rev, serial) ||
		    ASN1_TIME_set(now_t, now) == NULL ||
		    !X509_REVOKED_set_revocationDate(rev, now_t) ||
		    !X509_CRL_add0_revoked(crl, rev)) {
			rc = pki_err_openssl("listing a revoked serial");
			goto out;
		}
		rev = NULL;	/* owned by crl now */
		ASN1_INTEGER_free(serial);
		serial = NULL;
	}
	if (!X509_CRL_sort(crl) || X509_CRL_sign(crl, ca_key, EVP_sha256()) <= 0) {
		rc = pki_err_openssl("signing a CRL");
		goto out;
	}
	*out = crl;
	crl = NULL;	/* owned by the caller now */
	rc = 0;
out:
	AUTHORITY_KEYID_free(akid);
	X509_REVOKED_free(rev);
	ASN1_INTEGER_free(serial);
	ASN1_INTEGER_free(number);
	ASN1_TIME_free(now_t);
	X509_CRL_free(crl);
	return rc;
}

int
pki_serial_hex(char *buf, size_t bufsz, X509 *cert)
{
	BIGNUM *bn = NULL;
	char *hex = NULL, *p;
	int rc = ERR_LIB;

	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL)) == NULL ||
	    (hex = BN_bn2hex(bn)) == NULL) {
		rc = pki_err_openssl("reading a serial");
		goto out;
	}
	for (p = hex; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	p = hex + (hex[0] == '-');
	while (p[0] == '0' && p[1] != '\0')	/* BN_bn2hex pads to whole bytes */
		memmove(p, p + 1, strlen(p));
	if (strlen(hex) >= bufsz) {
		err_set("serial does not fit in %zu bytes", bufsz);
		rc = ERR_TOOBIG;
		goto out;
	}
	memcpy(buf, hex, strlen(hex) + 1);
	rc = 0;
out:
	OPENSSL_free(hex);
	BN_free(bn);
	return rc;
}

/* ---- PEM ---- */

static int
bio_take(char **out, BIO *bio)
{
	char *data;
	long len;

	len = BIO_get_mem_data(bio, &data);
	if (len < 0) {
		err_set("PEM buffer");
		return ERR_LIB;
	}
	if ((*out = malloc((size_t)len + 1)) == NULL) {
		err_set("out of memory");
		return ERR_NOMEM;
	}
	memcpy(*out, data, (size_t)len);
	(*out)[len] = '\0';
	return 0;
}

#define PEM_WRITER(fn, type, call, what) \
int \
fn(char **out, type *obj) \
{ \
	BIO *bio; \
	int rc; \
	*out = NULL; \
	if (obj == NULL) { \
		err_set("no " what " to encode"); \
		return ERR_INVAL; \
	} \
	if ((bio = BIO_new(BIO_s_mem())) == NULL) \
		return pki_err_openssl("PEM buffer"); \
	if (!(call)) \
		rc = pki_err_openssl("encoding a " what); \
	else \
		rc = bio_take(out, bio); \
	BIO_free(bio); \
	return rc; \
}

PEM_WRITER(pki_cert_pem, X509, PEM_write_bio_X509(bio, obj), "certificate")
PEM_WRITER(pki_key_pem, EVP_PKEY,
    PEM_write_bio_PrivateKey(bio, obj, NULL, NULL, 0, NULL, NULL), "key")
PEM_WRITER(pki_csr_pem, X509_REQ, PEM_write_bio_X509_REQ(bio, obj), "CSR")
PEM_WRITER(pki_crl_pem, X509_CRL, PEM_write_bio_X509_CRL(bio, obj), "CRL")

/* Encrypted keys are refused rather than prompting on the terminal. */
static int
no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static BIO *
pem_bio(const char *pem, size_t len)
{
	BIO *bio;

	if (pem == NULL || len > INT_MAX) {
		err_set("no PEM, or too long");
		return NULL;
	}
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		pki_err_openssl("PEM buffer");
	return bio;
}

#define PEM_READER(fn, type, call, what) \
int \
fn(type **out, const char *pem, size_t len) \
{ \
	BIO *bio; \
	*out = NULL; \
	if ((bio = pem_bio(pem, len)) == NULL) \
		return ERR_INVAL; \
	*out = (call); \
	BIO_free(bio); \
	if (*out == NULL) { \
		pki_err_openssl("reading a PEM " what); \
		return ERR_INVAL; \
	} \
	return 0; \
}

PEM_READER(pki_cert_from_pem, X509, PEM_read_bio_X509(bio, NULL, no_password, NULL),
    "certificate")
PEM_READER(pki_key_from_pem, EVP_PKEY,
    PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL), "key")
PEM_READER(pki_csr_from_pem, X509_REQ,
    PEM_read_bio_X509_REQ(bio, NULL, no_password, NULL), "CSR")

/* ---- files ---- */

int
pki_write_file(const char *path, const char *pem, int mode)
{
	if (pem == NULL) {
		err_set("pki_write_file: bad arguments");
		return ERR_INVAL;
	}
	return fs_write_atomic(path, pem, strlen(pem), mode);
}
