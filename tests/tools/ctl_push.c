/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A test controller: signs NodeConfigs and pushes them to a buoy over our gRPC client.
 *
 *   ctl_push keygen SIGNKEY PUBKEY
 *       An Ed25519 config-signing key pair (base64 text files; SIGNKEY mode 0600).
 *   ctl_push apply CONN --sign-key SIGNKEY --fleet F --node N --revision R --serial S
 *       [--listen-port P] [--mtu M] [--address CIDR]... [--peer PUB=CIDR[,CIDR][@HOST:PORT]]...
 *       [--tamper]
 *       Prints "status CODE MESSAGE" and, when OK, "applied result=R serial=S
 *       peers=+A/-R/~C hash=HEX".
 *   ctl_push status CONN
 *       Prints "node revision=R serial=S peers=N hash=HEX".
 *   CONN: --target HOST:PORT --ca CA --cert CERT --key KEY [--expect-id SPIFFE] [--timeout S]
 */
#include <event2/event.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fsutil.h"
#include "grpc.h"
#include "log.h"
#include "pharos/v1/node.pb-c.h"
#include "tls.h"

static struct event_base *base;
static struct tls_policy policy;
static int exit_code = 1;
static bool want_status;

static int
authorize(SSL *ssl, const struct spiffe *peer, const char *addr, void *arg)
{
	char why[256];

	(void)peer;
	(void)arg;
	return tls_authorize(ssl, &policy, addr, why, sizeof(why));
}

static void
hex(char *out, const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	out[2 * n] = '\0';
}

static void
on_msg(void *arg, const uint8_t *msg, size_t len)
{
	char h[65] = "";

	(void)arg;
	if (want_status) {
		Pharos__V1__NodeStatus *st = pharos__v1__node_status__unpack(NULL, len, msg);
		if (st == NULL)
			return;
		if (st->config_hash.len == 32)
			hex(h, st->config_hash.data, 32);
		printf("node revision=%s serial=%llu peers=%u hash=%s\n", st->revision,
		    (unsigned long long)st->serial, st->peer_count, h);
		pharos__v1__node_status__free_unpacked(st, NULL);
	} else {
		Pharos__V1__ApplyConfigResponse *r =
		    pharos__v1__apply_config_response__unpack(NULL, len, msg);
		if (r == NULL)
			return;
		if (r->config_hash.len == 32)
			hex(h, r->config_hash.data, 32);
		printf("applied result=%d serial=%llu peers=+%u/-%u/~%u hash=%s\n", r->result,
		    (unsigned long long)r->serial, r->peers_added, r->peers_removed,
		    r->peers_changed, h);
		pharos__v1__apply_config_response__free_unpacked(r, NULL);
	}
}

static void
on_done(void *arg, int status, const char *message)
{
	(void)arg;
	printf("status %d %s\n", status, message ? message : "");
	exit_code = 0;
	event_base_loopexit(base, NULL);
}

static int
keygen(const char *skpath, const char *pkpath)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	char b64[sodium_base64_ENCODED_LEN(crypto_sign_SECRETKEYBYTES,
	    sodium_base64_VARIANT_ORIGINAL) + 1];

	crypto_sign_keypair(pk, sk);
	sodium_bin2base64(b64, sizeof(b64), sk, sizeof(sk), sodium_base64_VARIANT_ORIGINAL);
	strcat(b64, "\n");
	sodium_memzero(sk, sizeof(sk));
	if (fs_write_atomic(skpath, b64, strlen(b64), 0600) != 0)
		goto fail;
	sodium_memzero(b64, sizeof(b64));
	sodium_bin2base64(b64, sizeof(b64), pk, sizeof(pk), sodium_base64_VARIANT_ORIGINAL);
	strcat(b64, "\n");
	if (fs_write_atomic(pkpath, b64, strlen(b64), 0644) != 0)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "ctl_push: %s\n", err_last());
	return 1;
}

static int
load_sk(unsigned char sk[crypto_sign_SECRETKEYBYTES], const char *path)
{
	char *text = NULL;
	size_t len, bin = 0;

	if (fs_read_file(&text, &len, path, 4096) != 0)
		return -1;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
		text[--len] = '\0';
	if (sodium_base642bin(sk, crypto_sign_SECRETKEYBYTES, text, len, NULL, &bin, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || bin != crypto_sign_SECRETKEYBYTES) {
		sodium_memzero(text, len);
		free(text);
		err_set("%s: not an Ed25519 signing key", path);
		return -1;
	}
	sodium_memzero(text, len);
	free(text);
	return 0;
}

/* "PUB=CIDR[,CIDR][@HOST:PORT]" */
static Pharos__V1__Peer *
parse_peer(char *spec)
{
	Pharos__V1__Peer *p = calloc(1, sizeof(*p));
	/* A base64 key ends in '=', a CIDR never has one: split at the last. */
	char *eq = strrchr(spec, '='), *at, *tok, *save = NULL;
	size_t bin = 0;

	if (p == NULL || eq == NULL)
		return NULL;
	pharos__v1__peer__init(p);
	*eq = '\0';
	p->public_key.data = malloc(32);
	if (sodium_base642bin(p->public_key.data, 32, spec, strlen(spec), NULL, &bin, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || bin != 32)
		return NULL;
	p->public_key.len = 32;
	if ((at = strchr(eq + 1, '@')) != NULL) {
		*at = '\0';
		p->endpoint = at + 1;
	}
	p->allowed_ips = calloc(16, sizeof(char *));
	for (tok = strtok_r(eq + 1, ",", &save); tok != NULL && p->n_allowed_ips < 16;
	    tok = strtok_r(NULL, ",", &save))
		p->allowed_ips[p->n_allowed_ips++] = tok;
	return p;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "target", required_argument, NULL, 't' }, { "ca", required_argument, NULL, 'C' },
		{ "cert", required_argument, NULL, 'c' }, { "key", required_argument, NULL, 'k' },
		{ "expect-id", required_argument, NULL, 'e' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "sign-key", required_argument, NULL, 's' },
		{ "fleet", required_argument, NULL, 'f' }, { "node", required_argument, NULL, 'n' },
		{ "revision", required_argument, NULL, 'r' },
		{ "serial", required_argument, NULL, 'S' },
		{ "listen-port", required_argument, NULL, 'p' },
		{ "mtu", required_argument, NULL, 'm' },
		{ "address", required_argument, NULL, 'a' },
		{ "peer", required_argument, NULL, 'P' },
		{ "tamper", no_argument, NULL, 'X' },
		{ NULL, 0, NULL, 0 },
	};
	const char *target = NULL, *ca = NULL, *cert = NULL, *key = NULL, *expect = NULL;
	const char *skpath = NULL;
	Pharos__V1__NodeConfig cfg = PHAROS__V1__NODE_CONFIG__INIT;
	Pharos__V1__AwgInterface awg = PHAROS__V1__AWG_INTERFACE__INIT;
	Pharos__V1__ApplyConfigRequest req = PHAROS__V1__APPLY_CONFIG_REQUEST__INIT;
	Pharos__V1__Peer *peers[4096];
	char *addrs[64];
	unsigned char sk[crypto_sign_SECRETKEYBYTES], sig[crypto_sign_BYTES];
	uint8_t *cbuf = NULL, *rbuf = NULL;
	size_t clen = 0, rlen = 0, npeers = 0, naddrs = 0;
	unsigned timeout_ms = 10000;
	bool tamper = false;
	struct tls_config tc;
	SSL_CTX *ctx;
	char host[256];
	const char *colon;
	int ch;

	if (sodium_init() < 0 || argc < 2)
		goto usage;
	log_init("ctl_push", LOG_WARN);
	if (strcmp(argv[1], "keygen") == 0)
		return argc == 4 ? keygen(argv[2], argv[3]) : 2;
	want_status = strcmp(argv[1], "status") == 0;
	if (!want_status && strcmp(argv[1], "apply") != 0)
		goto usage;
	cfg.amneziawg = &awg;
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 't': target = optarg; break;
		case 'C': ca = optarg; break;
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'e': expect = optarg; break;
		case 'T': timeout_ms = (unsigned)(atof(optarg) * 1000); break;
		case 's': skpath = optarg; break;
		case 'f': cfg.fleet_id = optarg; break;
		case 'n': cfg.node = optarg; break;
		case 'r': cfg.revision = optarg; break;
		case 'S': cfg.serial = strtoull(optarg, NULL, 10); break;
		case 'p': awg.listen_port = (uint32_t)atoi(optarg); break;
		case 'm': awg.mtu = (uint32_t)atoi(optarg); break;
		case 'a': if (naddrs < 64) addrs[naddrs++] = optarg; break;
		case 'P':
			if (npeers >= 4096 || (peers[npeers] = parse_peer(optarg)) == NULL) {
				fprintf(stderr, "ctl_push: bad --peer %s\n", optarg);
				return 2;
			}
			npeers++;
			break;
		case 'X': tamper = true; break;
		default: goto usage;
		}
	}
	if (target == NULL || ca == NULL || cert == NULL || key == NULL ||
	    (!want_status && (skpath == NULL || cfg.fleet_id == NULL || cfg.node == NULL)))
		goto usage;
	if (!want_status) {
		awg.addresses = addrs;
		awg.n_addresses = naddrs;
		cfg.peers = peers;
		cfg.n_peers = npeers;
		if (cfg.revision == NULL)
			cfg.revision = "";
		clen = pharos__v1__node_config__get_packed_size(&cfg);
		cbuf = malloc(clen + 1);
		pharos__v1__node_config__pack(&cfg, cbuf);
		if (load_sk(sk, skpath) != 0) {
			fprintf(stderr, "ctl_push: %s\n", err_last());
			return 1;
		}
		crypto_sign_detached(sig, NULL, cbuf, clen, sk);
		sodium_memzero(sk, sizeof(sk));
		if (tamper && clen > 0)
			cbuf[clen - 1] ^= 1;	/* the signature no longer covers these bytes */
		req.config.data = cbuf;
		req.config.len = clen;
		req.signature.data = sig;
		req.signature.len = sizeof(sig);
		rlen = pharos__v1__apply_config_request__get_packed_size(&req);
		rbuf = malloc(rlen + 1);
		pharos__v1__apply_config_request__pack(&req, rbuf);
	}
	if (tls_config_load(&tc, ca, cert, key, NULL) != 0 ||
	    (ctx = tls_ctx_new(TLS_CLIENT, &tc)) == NULL || tls_ctx_spiffe(&policy.self, ctx) != 0) {
		fprintf(stderr, "ctl_push: %s\n", err_last());
		return 1;
	}
	policy.kind = TLS_ALLOW_ANY_FLEET;
	if (expect != NULL) {
		policy.kind = TLS_ALLOW_EXACT;
		if (pki_spiffe_parse(&policy.expect, expect) != 0)
			goto usage;
	}
	if ((colon = strrchr(target, ':')) == NULL)
		goto usage;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - target), target);
	base = event_base_new();
	{
		struct grpc_channel_opts co = { .ssl = ctx, .authorize = authorize,
		    .backoff_initial_ms = 100 };
		struct grpc_channel *chn = grpc_channel_new(base, host, colon + 1, &co);
		grpc_channel_call(chn, want_status ? "/pharos.v1.NodeControl/GetStatus" :
		    "/pharos.v1.NodeControl/ApplyConfig", rbuf, rlen, timeout_ms,
		    GRPC_CALL_WAIT_FOR_READY, on_msg, on_done, NULL);
		event_base_dispatch(base);
		grpc_channel_free(chn);
	}
	fflush(stdout);
	event_base_free(base);
	SSL_CTX_free(ctx);
	tls_config_free(&tc);
	while (npeers > 0) {
		Pharos__V1__Peer *pp = peers[--npeers];
		free(pp->public_key.data);
		free(pp->allowed_ips);
		free(pp);
	}
	free(cbuf);
	free(rbuf);
	return exit_code;
usage:
	fprintf(stderr, "usage: ctl_push keygen SIGNKEY PUBKEY\n"
	    "       ctl_push apply CONN --sign-key K --fleet F --node N --revision R --serial S\n"
	    "                [--listen-port P] [--mtu M] [--address CIDR]...\n"
	    "                [--peer PUB=CIDR[,CIDR][@HOST:PORT]]... [--tamper]\n"
	    "       ctl_push status CONN\n"
	    "CONN: --target HOST:PORT --ca CA --cert CERT --key KEY [--expect-id ID] [--timeout S]\n");
	return 2;
}
