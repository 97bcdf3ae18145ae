/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A test controller: signs NodeConfigs and pushes them to a buoy over our gRPC client.
 *
 *   ctl_push keygen SIGNKEY PUBKEY
 *       An Ed25519 config-signing key pair (base64 text files; SIGNKEY mode 0600).
 *   ctl_push apply CONN --sign-key SIGNKEY --fleet F --node N --revision R --serial S
 *       [--listen-port P] [--mtu M] [--address CIDR]... [--peer PUB=CIDR[,CIDR][@HOST:PORT]]...
 *       [--xray-port P [--xray-target H:P] [--xray-sni NAME]... [--xray-sid ID]...
 *       [--xray-flow F]] [--user UUID=EMAIL]... [--tamper] [--junk]
 *       Prints "status CODE MESSAGE" and, when OK, "applied result=R serial=S
 *       peers=+A/-R/~C hash=HEX users=+A/-R[ detail=TEXT]". --xray-port adds an xray
 *       section (defaults: target www.example.com:443, sni www.example.com, short ids
 *       "" and 0123456789abcdef, flow xtls-rprx-vision); --user adds VLESS users.
 *       --tamper flips a config byte after signing; --junk makes the config bytes 0xff
 *       (no NodeConfig) before signing.
 *   ctl_push add-peer CONN --sign-key K --fleet F --node N --base-serial B --serial S
 *       [--revision R] [--peer PUB=CIDR]... [--user UUID=EMAIL]... [--bench COUNT]
 *   ctl_push remove-peer CONN ... [--remove PUB]... [--remove-user EMAIL]...
 *       A signed PeerDelta. Prints "status CODE MESSAGE" and "peers serial=S count=N
 *       changed=C". --bench COUNT sends COUNT AddPeers of one fresh random peer each, one
 *       after another (serials B+1..), and prints "bench calls=N p50_ms=A p99_ms=B".
 *   ctl_push watch CONN [--since SEQ] [--count N]
 *       WatchEvents: prints "event seq=S kind=K [key=B64] [detail]" per event (heartbeats
 *       as kind=6; errors and restarts with " backend=B"), until N events or the timeout.
 *   ctl_push restart CONN [--reason TEXT] [--backend awg|xray|all]
 *       RestartService (default the AmneziaWG/WireGuard backend); prints "restarted
 *       BACKEND=STATE..." and "status CODE MESSAGE".
 *   ctl_push handshakes CONN
 *       GetHandshakes: prints "peer KEY handshake=UNIX_SECONDS rx=N tx=N" per peer.
 *   ctl_push status CONN
 *       Prints "node revision=R serial=S peers=N hash=HEX users=N reality=B64URL|-" and a
 *       line "backend B state=S restarts=N detail=TEXT" per backend.
 *   CONN: --target HOST:PORT --ca CA --cert CERT --key KEY [--expect-id SPIFFE] [--timeout S]
 */
#include <event2/event.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
static int mode;	/* 0 apply, 1 status, 2 add-peer, 3 remove-peer, 4 watch, 5 handshakes,
			   6 restart */
static const char *restart_reason = "";
static int restart_backend = 1;	/* BACKEND_AMNEZIAWG */
static long watch_left = -1;
static uint64_t watch_since;
static struct grpc_channel *chn;
static unsigned char signkey[crypto_sign_SECRETKEYBYTES];
static Pharos__V1__PeerDelta delta = PHAROS__V1__PEER_DELTA__INIT;
static long bench_left, bench_n;
static double *bench_lat, bench_t0;
static unsigned call_timeout_ms = 10000;
/* apply --time-call: the channel is opened (GetStatus) before the timed ApplyConfig. */
static bool time_call, opening;
/* apply --time-call --go-on-stdin: once the channel is open, print "ready" and wait for a
   line on stdin before the call (a bench starts it together with another client). */
static bool go_on_stdin;
static const uint8_t *apply_buf;
static size_t apply_len;
static double call_t0;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
	if (opening)
		return;		/* the GetStatus that opened the channel */
	if (mode == 4) {
		Pharos__V1__Event *e = pharos__v1__event__unpack(NULL, len, msg);
		char k[64] = "";
		if (e == NULL)
			return;
		if (e->detail_case == PHAROS__V1__EVENT__DETAIL_HANDSHAKE &&
		    e->handshake->public_key.len == 32)
			sodium_bin2base64(k, sizeof(k), e->handshake->public_key.data, 32,
			    sodium_base64_VARIANT_ORIGINAL);
		printf("event seq=%llu kind=%d%s%s%s%s", (unsigned long long)e->seq, e->kind,
		    k[0] ? " key=" : "", k,
		    e->detail_case == PHAROS__V1__EVENT__DETAIL_CONFIG_APPLIED ?
		    (e->config_applied->from_disk ? " from_disk" : " pushed") : "",
		    e->detail_case == PHAROS__V1__EVENT__DETAIL_EVENTS_LOST ? " lost" : "");
		if (e->detail_case == PHAROS__V1__EVENT__DETAIL_DATA_PLANE_ERROR)
			printf(" backend=%d %s", e->data_plane_error->backend,
			    e->data_plane_error->message);
		if (e->detail_case == PHAROS__V1__EVENT__DETAIL_BACKEND_RESTARTED)
			printf(" backend=%d %s", e->backend_restarted->backend,
			    e->backend_restarted->reason);
		printf("\n");
		fflush(stdout);
		pharos__v1__event__free_unpacked(e, NULL);
		if (watch_left > 0 && --watch_left == 0) {
			exit_code = 0;
			event_base_loopexit(base, NULL);
		}
		return;
	}
	if (mode == 5) {
		Pharos__V1__HandshakesResponse *hr = pharos__v1__handshakes_response__unpack(NULL,
		    len, msg);
		size_t i;
		char k[64];
		if (hr == NULL)
			return;
		for (i = 0; i < hr->n_peers; i++) {
			sodium_bin2base64(k, sizeof(k), hr->peers[i]->public_key.data,
			    hr->peers[i]->public_key.len, sodium_base64_VARIANT_ORIGINAL);
			printf("peer %s handshake=%lld rx=%llu tx=%llu\n", k,
			    (long long)(hr->peers[i]->last_handshake_unix_nanos / 1000000000),
			    (unsigned long long)hr->peers[i]->rx_bytes,
			    (unsigned long long)hr->peers[i]->tx_bytes);
		}
		pharos__v1__handshakes_response__free_unpacked(hr, NULL);
		return;
	}
	if (mode == 6) {
		Pharos__V1__RestartServiceResponse *r =
		    pharos__v1__restart_service_response__unpack(NULL, len, msg);
		size_t i;
		if (r == NULL)
			return;
		printf("restarted");
		for (i = 0; i < r->n_backends; i++)
			printf(" %d=%d", r->backends[i]->backend, r->backends[i]->state);
		printf("\n");
		pharos__v1__restart_service_response__free_unpacked(r, NULL);
		return;
	}
	if (mode >= 2) {
		Pharos__V1__PeerResponse *r = pharos__v1__peer_response__unpack(NULL, len, msg);
		if (r != NULL && bench_n == 0)
			printf("peers serial=%llu count=%u changed=%u detail=%s\n",
			    (unsigned long long)r->serial, r->peer_count, r->peers_changed,
			    r->detail);
		if (r != NULL)
			pharos__v1__peer_response__free_unpacked(r, NULL);
		return;
	}
	if (want_status) {
		Pharos__V1__NodeStatus *st = pharos__v1__node_status__unpack(NULL, len, msg);
		if (st == NULL)
			return;
		char rk[64] = "-";
		size_t i;
		if (st->config_hash.len == 32)
			hex(h, st->config_hash.data, 32);
		if (st->reality_public_key.len == 32)
			sodium_bin2base64(rk, sizeof(rk), st->reality_public_key.data, 32,
			    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		printf("node revision=%s serial=%llu peers=%u hash=%s users=%u reality=%s\n",
		    st->revision, (unsigned long long)st->serial, st->peer_count, h,
		    st->vless_user_count, rk);
		for (i = 0; i < st->n_backends; i++)
			printf("backend %d state=%d restarts=%u detail=%s\n",
			    st->backends[i]->backend, st->backends[i]->state,
			    st->backends[i]->restarts, st->backends[i]->detail);
		pharos__v1__node_status__free_unpacked(st, NULL);
	} else {
		Pharos__V1__ApplyConfigResponse *r =
		    pharos__v1__apply_config_response__unpack(NULL, len, msg);
		if (r == NULL)
			return;
		if (r->config_hash.len == 32)
			hex(h, r->config_hash.data, 32);
		printf("applied result=%d serial=%llu peers=+%u/-%u/~%u hash=%s users=+%u/-%u%s%s\n",
		    r->result, (unsigned long long)r->serial, r->peers_added, r->peers_removed,
		    r->peers_changed, h, r->users_added, r->users_removed,
		    r->detail[0] ? " detail=" : "", r->detail);
		pharos__v1__apply_config_response__free_unpacked(r, NULL);
	}
}

static void send_delta(void);

static int
dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void
on_done(void *arg, int status, const char *message)
{
	(void)arg;
	if (bench_n > 0) {
		bench_lat[bench_n - bench_left] = now_s() - bench_t0;
		if (status != 0) {
			printf("status %d %s\n", status, message ? message : "");
			event_base_loopexit(base, NULL);
			return;
		}
		if (--bench_left > 0) {
			delta.base_serial = delta.serial;
			delta.serial++;
			send_delta();
			return;
		}
		qsort(bench_lat, (size_t)bench_n, sizeof(*bench_lat), dcmp);
		printf("bench calls=%ld p50_ms=%.3f p99_ms=%.3f\n", bench_n,
		    bench_lat[bench_n / 2] * 1000, bench_lat[(bench_n * 99) / 100] * 1000);
		exit_code = 0;
		event_base_loopexit(base, NULL);
		return;
	}
	if (opening) {
		opening = false;
		if (status != 0) {
			printf("status %d %s\n", status, message ? message : "");
			event_base_loopexit(base, NULL);
			return;
		}
		if (go_on_stdin) {
			char line[16];

			printf("ready\n");
			fflush(stdout);
			if (fgets(line, sizeof(line), stdin) == NULL) {
				printf("status -1 no go line on stdin\n");
				event_base_loopexit(base, NULL);
				return;
			}
		}
		call_t0 = now_s();
		grpc_channel_call(chn, "/pharos.v1.NodeControl/ApplyConfig", apply_buf, apply_len,
		    call_timeout_ms, GRPC_CALL_WAIT_FOR_READY, on_msg, on_done, NULL);
		return;
	}
	if (time_call)
		printf("call_ms=%.3f\n", (now_s() - call_t0) * 1000);
	printf("status %d %s\n", status, message ? message : "");
	exit_code = 0;
	event_base_loopexit(base, NULL);
}

/* Sign the current delta and send it (in bench mode with a fresh random peer). */
static void
send_delta(void)
{
	Pharos__V1__AddPeerRequest req = PHAROS__V1__ADD_PEER_REQUEST__INIT;
	unsigned char sig[crypto_sign_BYTES];
	uint8_t *dbuf, *rbuf;
	size_t dlen, rlen;

	if (bench_n > 0)
		randombytes_buf(delta.add[0]->public_key.data, 32);
	dlen = pharos__v1__peer_delta__get_packed_size(&delta);
	dbuf = malloc(dlen + 1);
	pharos__v1__peer_delta__pack(&delta, dbuf);
	crypto_sign_detached(sig, NULL, dbuf, dlen, signkey);
	req.delta.data = dbuf;
	req.delta.len = dlen;
	req.signature.data = sig;
	req.signature.len = sizeof(sig);
	rlen = pharos__v1__add_peer_request__get_packed_size(&req);
	rbuf = malloc(rlen + 1);
	pharos__v1__add_peer_request__pack(&req, rbuf);
	bench_t0 = now_s();
	grpc_channel_call(chn, mode == 2 ? "/pharos.v1.NodeControl/AddPeer" :
	    "/pharos.v1.NodeControl/RemovePeer", rbuf, rlen, call_timeout_ms,
	    GRPC_CALL_WAIT_FOR_READY, on_msg, on_done, NULL);
	free(dbuf);
	free(rbuf);
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
		{ "junk", no_argument, NULL, 'J' },
		{ "base-serial", required_argument, NULL, 'B' },
		{ "remove", required_argument, NULL, 'R' },
		{ "bench", required_argument, NULL, 'N' },
		{ "peers-file", required_argument, NULL, 'F' },
		{ "since", required_argument, NULL, 'Q' },
		{ "count", required_argument, NULL, 'K' },
		{ "reason", required_argument, NULL, 'Y' },
		{ "backend", required_argument, NULL, 'b' },
		{ "xray-port", required_argument, NULL, 'x' },
		{ "xray-target", required_argument, NULL, 'g' },
		{ "xray-sni", required_argument, NULL, 'i' },
		{ "xray-sid", required_argument, NULL, 'j' },
		{ "xray-flow", required_argument, NULL, 'w' },
		{ "user", required_argument, NULL, 'u' },
		{ "remove-user", required_argument, NULL, 'U' },
		{ "time-call", no_argument, NULL, 'W' },
		{ "go-on-stdin", no_argument, NULL, 'O' },
		{ NULL, 0, NULL, 0 },
	};
	const char *target = NULL, *ca = NULL, *cert = NULL, *key = NULL, *expect = NULL;
	const char *skpath = NULL;
	Pharos__V1__NodeConfig cfg = PHAROS__V1__NODE_CONFIG__INIT;
	Pharos__V1__AwgInterface awg = PHAROS__V1__AWG_INTERFACE__INIT;
	Pharos__V1__ApplyConfigRequest req = PHAROS__V1__APPLY_CONFIG_REQUEST__INIT;
	Pharos__V1__Peer *peers[4096];
	Pharos__V1__Reality reality = PHAROS__V1__REALITY__INIT;
	static Pharos__V1__VlessUser userv[1024], *users[1024];
	static char *snis[16], *sids[16], *rm_users[1024];
	static char default_sni[] = "www.example.com", default_sid0[] = "",
	    default_sid1[] = "0123456789abcdef";
	size_t nusers = 0, nsnis = 0, nsids = 0, n_rm_users = 0;
	bool with_xray = false, flow_set = false;
	char *addrs[64];
	unsigned char sk[crypto_sign_SECRETKEYBYTES], sig[crypto_sign_BYTES];
	uint8_t *cbuf = NULL, *rbuf = NULL;
	size_t clen = 0, rlen = 0, npeers = 0, naddrs = 0;
	unsigned timeout_ms = 10000;
	bool tamper = false, junk = false;
	static uint8_t removes[4096][32];
	static ProtobufCBinaryData rm[4096];
	size_t removes_n = 0, nfile = 0;
	Pharos__V1__Peer **filepeers = NULL;
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
	mode = want_status ? 1 : strcmp(argv[1], "add-peer") == 0 ? 2 :
	    strcmp(argv[1], "remove-peer") == 0 ? 3 : strcmp(argv[1], "apply") == 0 ? 0 :
	    strcmp(argv[1], "watch") == 0 ? 4 : strcmp(argv[1], "handshakes") == 0 ? 5 :
	    strcmp(argv[1], "restart") == 0 ? 6 : -1;
	if (mode >= 4)
		want_status = true;	/* no signing key needed */
	if (mode < 0)
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
		case 'J': junk = true; break;
		case 'W': time_call = true; break;
		case 'O': go_on_stdin = true; break;
		case 'B': delta.base_serial = strtoull(optarg, NULL, 10); break;
		case 'N': bench_n = bench_left = atol(optarg); break;
		case 'Q': watch_since = strtoull(optarg, NULL, 10); break;
		case 'K': watch_left = atol(optarg); break;
		case 'Y': restart_reason = optarg; break;
		case 'b':
			restart_backend = strcmp(optarg, "xray") == 0 ? 2 :
			    strcmp(optarg, "all") == 0 ? 0 : 1;
			break;
		case 'x': with_xray = true; reality.port = (uint32_t)atoi(optarg); break;
		case 'g': reality.target = optarg; break;
		case 'i': if (nsnis < 16) snis[nsnis++] = optarg; break;
		case 'j': if (nsids < 16) sids[nsids++] = optarg; break;
		case 'w': reality.flow = optarg; flow_set = true; break;
		case 'u': {
			char *eq = strchr(optarg, '=');
			if (eq == NULL || nusers >= 1024) {
				fprintf(stderr, "ctl_push: bad --user %s (UUID=EMAIL)\n", optarg);
				return 2;
			}
			*eq = '\0';
			pharos__v1__vless_user__init(&userv[nusers]);
			userv[nusers].uuid = optarg;
			userv[nusers].email = eq + 1;
			users[nusers] = &userv[nusers];
			nusers++;
			break;
		}
		case 'U': if (n_rm_users < 1024) rm_users[n_rm_users++] = optarg; break;
		case 'F': {
			/* One PUB=CIDR[,CIDR][@HOST:PORT] per line, for big configs. */
			static Pharos__V1__Peer **many;
			FILE *fp = fopen(optarg, "r");
			char line[512];
			size_t cap = 0;
			if (fp == NULL) {
				perror(optarg);
				return 2;
			}
			while (fgets(line, sizeof(line), fp) != NULL) {
				line[strcspn(line, "\n")] = '\0';
				if (line[0] == '\0')
					continue;
				if (nfile == cap) {
					cap = cap ? cap * 2 : 1024;
					many = realloc(many, cap * sizeof(*many));
				}
				if ((many[nfile] = parse_peer(strdup(line))) == NULL) {
					fprintf(stderr, "ctl_push: bad peer line: %s\n", line);
					return 2;
				}
				nfile++;
			}
			fclose(fp);
			filepeers = many;
			break;
		}
		case 'R': {
			size_t bl = 0;
			if (removes_n >= 4096 || sodium_base642bin(removes[removes_n], 32, optarg,
			    strlen(optarg), NULL, &bl, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
			    bl != 32) {
				fprintf(stderr, "ctl_push: bad --remove %s\n", optarg);
				return 2;
			}
			rm[removes_n].data = removes[removes_n];
			rm[removes_n].len = 32;
			removes_n++;
			break;
		}
		default: goto usage;
		}
	}
	if (go_on_stdin && !time_call) {
		fprintf(stderr, "ctl_push: --go-on-stdin needs --time-call\n");
		return 2;
	}
	if (target == NULL || ca == NULL || cert == NULL || key == NULL ||
	    (!want_status && (skpath == NULL || cfg.fleet_id == NULL || cfg.node == NULL)))
		goto usage;
	call_timeout_ms = timeout_ms;
	if (mode == 2 || mode == 3) {
		if (load_sk(signkey, skpath) != 0) {
			fprintf(stderr, "ctl_push: %s\n", err_last());
			return 1;
		}
		delta.fleet_id = cfg.fleet_id;
		delta.node = cfg.node;
		delta.revision = cfg.revision != NULL ? cfg.revision : "";
		delta.serial = cfg.serial;
		if (bench_n > 0) {
			static uint8_t bkey[32];
			static char *ip[] = { "10.100.0.0/32" };
			static Pharos__V1__Peer bp = PHAROS__V1__PEER__INIT;
			static Pharos__V1__Peer *bpp[] = { &bp };
			bp.public_key.data = bkey;
			bp.public_key.len = 32;
			bp.allowed_ips = ip;
			bp.n_allowed_ips = 1;
			delta.add = bpp;
			delta.n_add = 1;
			bench_lat = calloc((size_t)bench_n, sizeof(*bench_lat));
		} else {
			delta.add = peers;
			delta.n_add = npeers;
			delta.remove = rm;
			delta.n_remove = removes_n;
			delta.add_users = users;
			delta.n_add_users = nusers;
			delta.remove_users = rm_users;
			delta.n_remove_users = n_rm_users;
		}
	}
	if (mode == 0) {
		awg.addresses = addrs;
		awg.n_addresses = naddrs;
		cfg.peers = nfile > 0 ? filepeers : peers;
		cfg.n_peers = nfile > 0 ? nfile : npeers;
		if (cfg.revision == NULL)
			cfg.revision = "";
		if (with_xray) {
			if (reality.target[0] == '\0')
				reality.target = "www.example.com:443";
			if (!flow_set)
				reality.flow = "xtls-rprx-vision";
			if (nsnis == 0)
				snis[nsnis++] = default_sni;
			if (nsids == 0) {
				sids[nsids++] = default_sid0;
				sids[nsids++] = default_sid1;
			}
			reality.server_names = snis;
			reality.n_server_names = nsnis;
			reality.short_ids = sids;
			reality.n_short_ids = nsids;
			cfg.xray = &reality;
		}
		cfg.vless_users = users;
		cfg.n_vless_users = nusers;
		clen = pharos__v1__node_config__get_packed_size(&cfg);
		cbuf = malloc(clen + 1);
		pharos__v1__node_config__pack(&cfg, cbuf);
		if (junk)	/* signed (unless --tamper), but no NodeConfig: 0xff never ends a varint */
			memset(cbuf, 0xff, clen);
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
		struct grpc_channel_opts co = { .ssl = ctx, .authorize = tls_authorize_cb,
		    .authorize_arg = &policy,
		    .backoff_initial_ms = 100 };
		chn = grpc_channel_new(base, host, colon + 1, &co);
		if (mode == 4) {
			Pharos__V1__WatchEventsRequest wr = PHAROS__V1__WATCH_EVENTS_REQUEST__INIT;
			uint8_t wb[64];
			wr.since_seq = watch_since;
			wr.heartbeat_seconds = 1;
			grpc_channel_call(chn, "/pharos.v1.NodeControl/WatchEvents", wb,
			    pharos__v1__watch_events_request__pack(&wr, wb), timeout_ms,
			    GRPC_CALL_WAIT_FOR_READY, on_msg, on_done, NULL);
		} else if (mode == 6) {
			Pharos__V1__RestartServiceRequest rr = PHAROS__V1__RESTART_SERVICE_REQUEST__INIT;
			uint8_t rb[512];
			rr.reason = (char *)(uintptr_t)restart_reason;
			rr.backend = (Pharos__V1__Backend)restart_backend;
			grpc_channel_call(chn, "/pharos.v1.NodeControl/RestartService", rb,
			    pharos__v1__restart_service_request__pack(&rr, rb), timeout_ms,
			    GRPC_CALL_WAIT_FOR_READY, on_msg, on_done, NULL);
		} else if (mode == 5) {
			grpc_channel_call(chn, "/pharos.v1.NodeControl/GetHandshakes", NULL, 0,
			    timeout_ms, GRPC_CALL_WAIT_FOR_READY, on_msg, on_done, NULL);
		} else if (mode >= 2) {
			send_delta();
		} else if (mode == 0 && time_call) {
			opening = true;
			apply_buf = rbuf;
			apply_len = rlen;
			call_timeout_ms = timeout_ms;
			grpc_channel_call(chn, "/pharos.v1.NodeControl/GetStatus", NULL, 0,
			    timeout_ms, GRPC_CALL_WAIT_FOR_READY, on_msg, on_done, NULL);
		} else
			grpc_channel_call(chn, want_status ? "/pharos.v1.NodeControl/GetStatus" :
			    "/pharos.v1.NodeControl/ApplyConfig", rbuf, rlen, timeout_ms,
			    GRPC_CALL_WAIT_FOR_READY, on_msg, on_done, NULL);
		event_base_dispatch(base);
		grpc_channel_free(chn);
		sodium_memzero(signkey, sizeof(signkey));
		free(bench_lat);
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
	    "                [--peer PUB=CIDR[,CIDR][@HOST:PORT]]... [--tamper] [--junk]\n"
	    "                [--xray-port P [--xray-target H:P] [--xray-sni N]... [--xray-sid ID]...\n"
	    "                [--xray-flow F]] [--user UUID=EMAIL]...\n"
	    "                [--time-call [--go-on-stdin]]\n"
	    "       ctl_push add-peer CONN --sign-key K --fleet F --node N --base-serial B\n"
	    "                --serial S [--peer PUB=CIDR]... [--user UUID=EMAIL]... [--bench COUNT]\n"
	    "       ctl_push remove-peer CONN ... [--remove PUB]... [--remove-user EMAIL]...\n"
	    "       ctl_push watch CONN [--since SEQ] [--count N]\n"
	    "       ctl_push handshakes CONN\n"
	    "       ctl_push restart CONN [--reason TEXT] [--backend awg|xray|all]\n"
	    "       ctl_push status CONN\n"
	    "CONN: --target HOST:PORT --ca CA --cert CERT --key KEY [--expect-id ID] [--timeout S]\n"
	    "--time-call: open the channel first (a GetStatus, as a controller's channel is\n"
	    "already open), then time the ApplyConfig call alone: call_ms=\n"
	    "--go-on-stdin: with --time-call, print \"ready\" once the channel is open and make\n"
	    "the call when a line comes on stdin\n");
	return 2;
}
