/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The UAPI client: get-reply parsing, set-body diffs (golden strings), key text; and the
 * wg(8) side: config text for syncconf, `wg show dump` parsing, peer counts.
 */
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "err.h"
#include "uapi.h"
#include "t.h"

#define R2(x)	x x
#define R4(x)	R2(R2(x))
#define R32(x)	R4(R4(R2(x)))
#define KA	R32("aa")
#define KB	R32("bb")
#define KC	R32("cc")
#define PRIV	R32("48")	/* already clamped */
#define PRIV2	R32("50")
#define ZERO	R32("00")
#define PRIV_B64 "SEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEg="
#define KA_B64	"qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqo="
#define KB_B64	"u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7s="
#define KC_B64	"zMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMw="

static const char reply[] =
    "private_key=" PRIV "\n"
    "listen_port=51820\n"
    "fwmark=51\n"
    "jc=3\n"			/* an AWG device key: skipped */
    "public_key=" KB "\n"
    "preshared_key=" ZERO "\n"
    "protocol_version=1\n"
    "endpoint=[2001:db8::5]:51821\n"
    "last_handshake_time_sec=0\n"
    "last_handshake_time_nsec=0\n"
    "tx_bytes=0\n"
    "rx_bytes=0\n"
    "persistent_keepalive_interval=0\n"
    "allowed_ip=10.64.0.3/32\n"
    "public_key=" KA "\n"
    "preshared_key=" ZERO "\n"
    "protocol_version=1\n"
    "endpoint=192.0.2.10:51820\n"
    "last_handshake_time_sec=1700000000\n"
    "last_handshake_time_nsec=123456789\n"
    "tx_bytes=1000\n"
    "rx_bytes=18446744073709551615\n"
    "persistent_keepalive_interval=25\n"
    "allowed_ip=10.64.0.2/32\n"
    "allowed_ip=fd00:64::2/128\n"
    "errno=0\n"
    "\n";

static int
parse(struct wg_device **d, const char *s)
{
	return uapi_parse_get(d, s, strlen(s));
}

static const struct {
	const char	*name, *text;
	int		 rc;
} bad[] = {
	{ "errno=-22", "errno=-22\n\n", ERR_LIB },
	{ "errno=5 (positive)", "errno=5\n\n", ERR_LIB },
	{ "errno=-55 after data", "listen_port=1\nerrno=-55\n\n", ERR_LIB },
	{ "missing errno", "listen_port=1\n\n", ERR_INVAL },
	{ "empty reply", "", ERR_INVAL },
	{ "blank reply", "\n", ERR_INVAL },
	{ "errno not a number", "errno=x\n\n", ERR_INVAL },
	{ "errno empty", "errno=\n\n", ERR_INVAL },
	{ "errno overflow", "errno=99999999999\n\n", ERR_INVAL },
	{ "line without =", "garbage\nerrno=0\n\n", ERR_INVAL },
	{ "empty key", "=5\nerrno=0\n\n", ERR_INVAL },
	{ "truncated last line", "listen_port=1\nerrno=0", ERR_INVAL },
	{ "data after errno", "errno=0\nlisten_port=1\n\n", ERR_INVAL },
	{ "bad public key", "public_key=zz\nerrno=0\n\n", ERR_INVAL },
	{ "short public key", "public_key=" R4("aa") "\nerrno=0\n\n", ERR_INVAL },
	{ "bad private key", "private_key=" R32("4g") "\nerrno=0\n\n", ERR_INVAL },
	{ "peer key before a peer", "allowed_ip=10.0.0.0/8\nerrno=0\n\n", ERR_INVAL },
	{ "device key after a peer", "public_key=" KA "\nlisten_port=5\nerrno=0\n\n",
	    ERR_INVAL },
	{ "listen_port 70000", "listen_port=70000\nerrno=0\n\n", ERR_INVAL },
	{ "listen_port -1", "listen_port=-1\nerrno=0\n\n", ERR_INVAL },
	{ "fwmark 2^32", "fwmark=4294967296\nerrno=0\n\n", ERR_INVAL },
	{ "allowed_ip /33", "public_key=" KA "\nallowed_ip=10.0.0.0/33\nerrno=0\n\n",
	    ERR_INVAL },
	{ "allowed_ip not an address", "public_key=" KA "\nallowed_ip=x/1\nerrno=0\n\n",
	    ERR_INVAL },
	{ "nsec >= 1e9", "public_key=" KA "\nlast_handshake_time_nsec=1000000000\nerrno=0\n\n",
	    ERR_INVAL },
	{ "tx_bytes 2^64", "public_key=" KA "\ntx_bytes=18446744073709551616\nerrno=0\n\n",
	    ERR_INVAL },
	{ "endpoint with a space", "public_key=" KA "\nendpoint=1.2.3.4 :5\nerrno=0\n\n",
	    ERR_INVAL },
	{ "endpoint too long", "public_key=" KA "\nendpoint=" R32("ab") "\nerrno=0\n\n",
	    ERR_INVAL },
	{ "duplicate peer", "public_key=" KA "\npublic_key=" KA "\nerrno=0\n\n", ERR_INVAL },
	{ "keepalive 65536", "public_key=" KA "\npersistent_keepalive_interval=65536\n"
	    "errno=0\n\n", ERR_INVAL },
};

/*
 * A desired state under test: peers as plain fields the tests change, sealed into the
 * peerset the diff takes (want_seal()) before each use.
 */
struct tpeer {
	const char	*key;		/* hex */
	char		 endpoint[64];
	unsigned	 keepalive;
	char		*ips[4];
	size_t		 n_ips;
};

struct twant {
	struct wg_desired	 w;
	struct tpeer		 p[3];
	size_t			 n;
	struct peerset		*ps;
};

static void
tp_ip(struct tpeer *p, const char *cidr)
{
	if (p->n_ips < 4)
		p->ips[p->n_ips++] = (char *)(uintptr_t)cidr;
}

/* The peerset of t's peers into t->w.peers; a peerset error (a key twice) as it is. */
static int
want_seal(struct twant *t)
{
	uint8_t keys[3][32];
	size_t i;
	int rc;

	peerset_free(t->ps);
	t->ps = NULL;
	t->w.peers = NULL;
	if ((rc = peerset_new(&t->ps)) != 0)
		return rc;
	for (i = 0; i < t->n; i++) {
		struct peerset_in in = { keys[i], 32, t->p[i].ips, t->p[i].n_ips,
			t->p[i].endpoint, t->p[i].keepalive };
		uapi_key_from_hex(keys[i], t->p[i].key, 64);
		if ((rc = peerset_append(t->ps, &in)) != 0)
			return rc;
	}
	if ((rc = peerset_seal(t->ps)) != 0)
		return rc;
	t->w.peers = t->ps;
	return 0;
}

static void
want_clear(struct twant *t)
{
	wg_desired_clear(&t->w);
	peerset_free(t->ps);
	memset(t, 0, sizeof(*t));
}

/* The desired state equal to `reply`. */
static void
want_init(struct twant *t)
{
	memset(t, 0, sizeof(*t));
	uapi_key_from_hex(t->w.private_key, PRIV, 64);
	t->w.listen_port = 51820;
	t->n = 2;
	t->p[0].key = KA;
	strcpy(t->p[0].endpoint, "192.0.2.10:51820");
	t->p[0].keepalive = 25;
	tp_ip(&t->p[0], "fd00:64::2/128");	/* order is free */
	tp_ip(&t->p[0], "10.64.0.2/32");
	t->p[1].key = KB;
	strcpy(t->p[1].endpoint, "[2001:DB8::5]:51821");	/* any spelling */
	tp_ip(&t->p[1], "10.64.0.3/32");
}

static void
diff_is(const struct wg_device *cur, struct twant *t, const char *want, const char *name)
{
	char *body = NULL;
	size_t len = 0;
	int rc = want_seal(t);

	if (rc == 0)
		rc = uapi_diff(&body, &len, cur, &t->w);

	T_OK(rc == 0 && body != NULL && len == strlen(body), "diff %s: ok", name);
	T_STREQ(body, want, "diff %s: body", name);
	uapi_body_free(body, len);
}

static void
conf_is(struct twant *t, const char *want, const char *name)
{
	char *text = NULL;
	size_t len = 0;
	int rc = want_seal(t);

	if (rc == 0)
		rc = uapi_conf(&text, &len, &t->w);

	T_OK(rc == 0 && text != NULL && len == strlen(text), "conf %s: ok (%s)", name,
	    rc ? err_last() : "ok");
	T_STREQ(text, want, "conf %s: text", name);
	uapi_body_free(text, len);
}

/* `wg show IF dump` of the device in `reply` (wg prints keys in base64, seconds only). */
static const char dump[] =
    PRIV_B64 "\t" KC_B64 "\t51820\t0x33\n"
    KB_B64 "\t(none)\t[2001:db8::5]:51821\t10.64.0.3/32\t0\t0\t0\toff\n"
    KA_B64 "\t(none)\t192.0.2.10:51820\t10.64.0.2/32,fd00:64::2/128\t1700000000\t"
    "18446744073709551615\t1000\t25\n";

static void
wgtool_tests(const struct wg_device *d)
{
	struct wg_device *e = NULL;
	struct twant t;
	struct uapi_counts c;
	char *text;
	size_t len;
	int rc;

	/* ---- wg(8) config text ---- */
	want_init(&t);
	conf_is(&t, "[Interface]\nPrivateKey = " PRIV_B64 "\nListenPort = 51820\n"
	    "\n[Peer]\nPublicKey = " KA_B64 "\nAllowedIPs = 10.64.0.2/32, fd00:64::2/128\n"
	    "Endpoint = 192.0.2.10:51820\nPersistentKeepalive = 25\n"
	    "\n[Peer]\nPublicKey = " KB_B64 "\nAllowedIPs = 10.64.0.3/32\n"
	    "Endpoint = [2001:db8::5]:51821\nPersistentKeepalive = 0\n",
	    "two peers, canonical addresses");
	t.p[1].n_ips = 0;
	tp_ip(&t.p[1], "10.64.0.1/32");
	conf_is(&t, "[Interface]\nPrivateKey = " PRIV_B64 "\nListenPort = 51820\n"
	    "\n[Peer]\nPublicKey = " KB_B64 "\nAllowedIPs = 10.64.0.1/32\n"
	    "Endpoint = [2001:db8::5]:51821\nPersistentKeepalive = 0\n"
	    "\n[Peer]\nPublicKey = " KA_B64 "\nAllowedIPs = 10.64.0.2/32, fd00:64::2/128\n"
	    "Endpoint = 192.0.2.10:51820\nPersistentKeepalive = 25\n",
	    "peers in the order of their first allowed IP, not of their keys");
	t.w.listen_port = 0;
	t.p[0].endpoint[0] = '\0';
	t.n = 1;
	conf_is(&t, "[Interface]\nPrivateKey = " PRIV_B64 "\n"
	    "\n[Peer]\nPublicKey = " KA_B64 "\nAllowedIPs = 10.64.0.2/32, fd00:64::2/128\n"
	    "PersistentKeepalive = 25\n", "no port, no endpoint");
	t.n = 0;
	conf_is(&t, "[Interface]\nPrivateKey = " PRIV_B64 "\n", "no peers");
	t.w.jc = 3, t.w.jmin = 10, t.w.jmax = 30, t.w.s1 = 15, t.w.s2 = 18;
	conf_is(&t, "[Interface]\nPrivateKey = " PRIV_B64 "\n", "AWG params ignored without awg");
	t.w.awg = true;
	t.w.s3 = 20, t.w.s4 = 23;
	strcpy(t.w.h[0], "1020325451");
	strcpy(t.w.h[3], "100-200");
	t.w.i[0] = strdup("<r 2><b 0x8580>");
	conf_is(&t, "[Interface]\nPrivateKey = " PRIV_B64 "\nJc = 3\nJmin = 10\nJmax = 30\n"
	    "S1 = 15\nS2 = 18\nS3 = 20\nS4 = 23\nH1 = 1020325451\nH4 = 100-200\n"
	    "I1 = <r 2><b 0x8580>\n", "AWG keys in config spelling");
	free(t.w.i[0]);
	t.w.i[0] = strdup("<r 2>#x");
	T_OK(want_seal(&t) == 0 && uapi_conf(&text, &len, &t.w) == ERR_INVAL && text == NULL,
	    "conf refuses: '#' in i1 (%s)", err_last());
	want_clear(&t);
	want_init(&t);
	strcpy(t.p[1].endpoint, "vpn.example.com:1");
	T_OK(want_seal(&t) == 0 && uapi_conf(&text, &len, &t.w) == ERR_INVAL,
	    "conf refuses: host name endpoint");
	want_clear(&t);

	/* ---- wg show dump ---- */
	rc = uapi_parse_dump(&e, dump, strlen(dump), 0);
	T_OK(rc == 0 && e != NULL, "dump: parses (%s)", rc ? err_last() : "ok");
	if (e != NULL) {
		T_OK(e->has_private_key && memcmp(e->private_key, d->private_key, 32) == 0 &&
		    e->listen_port == 51820, "dump: private key and port");
		T_OK(e->npeers == 2 && e->peers[0].n_allowed == 1 &&
		    e->peers[0].keepalive == 0 && e->peers[0].last_handshake_sec == 0,
		    "dump: a peer without handshake, keepalive off");
		T_STREQ(e->npeers == 2 ? e->peers[0].endpoint : NULL, "[2001:db8::5]:51821",
		    "dump: v6 endpoint");
		T_OK(e->npeers == 2 && e->peers[1].last_handshake_sec == 1700000000 &&
		    e->peers[1].rx_bytes == UINT64_MAX && e->peers[1].tx_bytes == 1000 &&
		    e->peers[1].keepalive == 25 && e->peers[1].n_allowed == 2,
		    "dump: handshake, counters, keepalive, two allowed IPs");
		want_init(&t);
		T_OK(want_seal(&t) == 0 && uapi_count(&c, e, &t.w) == 0 && c.added == 0 &&
		    c.removed == 0 && c.changed == 0, "count: dump equals the desired state");
		want_clear(&t);
	}
	wg_device_free(e);
	e = NULL;
	T_OK(uapi_parse_dump(&e, dump, strlen(dump), UAPI_F_NO_ALLOWED_IPS) == 0 && e != NULL &&
	    e->npeers == 2 && e->peers[0].n_allowed == 0 && e->peers[1].n_allowed == 0 &&
	    e->peers[1].last_handshake_sec == 1700000000, "dump without allowed IPs");
	wg_device_free(e);
	e = NULL;
	text = "(none)\t(none)\t0\t0\t0\t0\t0\t0\t(null)\t(null)\n"
	    KA_B64 "\t(none)\t(none)\t(none)\t0\t0\t0\toff\ton\n";
	T_OK(uapi_parse_dump(&e, text, strlen(text), 0) == 0 && e != NULL && !e->has_private_key && e->npeers == 1 && e->peers[0].n_allowed == 0,
	    "dump: awg's longer lines, no key, no allowed IPs (%s)", err_last());
	wg_device_free(e);
	{
		static const char *const bad_dumps[] = {
			"",
			"\n",
			PRIV_B64 "\t" KC_B64 "\n",
			"xyz\t" KC_B64 "\t1\toff\n",
			PRIV_B64 "\t" KC_B64 "\t70000\toff\n",
			PRIV_B64 "\t" KC_B64 "\t1\toff\n" KA_B64 "\t(none)\t(none)\t(none)\t0\t0\t0\n",
			PRIV_B64 "\t" KC_B64 "\t1\toff\n" KA_B64 "\t(none)\t(none)\t10.0.0.0/33\t0\t0\t0\toff\n",
			PRIV_B64 "\t" KC_B64 "\t1\toff\n" KA_B64 "\t(none)\t(none)\t(none)\tx\t0\t0\toff\n",
			PRIV_B64 "\t" KC_B64 "\t1\toff\n" KA_B64 "\t(none)\t(none)\t(none)\t0\t0\t0\toff\n"
			    KA_B64 "\t(none)\t(none)\t(none)\t0\t0\t0\toff\n",
		};
		size_t i;
		for (i = 0; i < sizeof(bad_dumps) / sizeof(bad_dumps[0]); i++) {
			e = NULL;
			rc = uapi_parse_dump(&e, bad_dumps[i], strlen(bad_dumps[i]), 0);
			T_OK(rc == ERR_INVAL && e == NULL, "dump refuses #%zu (%s)", i, err_last());
		}
	}

	/* ---- counts ---- */
	want_init(&t);
	t.p[1].key = KC;	/* B out, C in */
	t.p[0].keepalive = 5;					/* A changed */
	T_OK(want_seal(&t) == 0 && uapi_count(&c, d, &t.w) == 0 && c.added == 1 &&
	    c.removed == 1 && c.changed == 1,
	    "count: one added, one removed, one changed");
	memset(&c, 0xff, sizeof(c));
	T_OK(uapi_diff_count(&text, &len, &c, d, &t.w) == 0 && c.added == 1 && c.removed == 1 &&
	    c.changed == 1, "diff_count: the same counts");
	uapi_body_free(text, len);
	want_clear(&t);
}

/*
 * A UAPI server for one set: it waits before reading (so a big body meets a full socket
 * and goes out in parts), reads up to the blank line, keeps what came and answers.
 */
struct set_srv {
	int		 lfd;
	const char	*answer;
	char		*got;
	size_t		 gotlen;
};

static void *
set_srv_run(void *arg)
{
	struct set_srv *s = arg;
	struct timeval tv = { .tv_sec = 6 };	/* past the client's 5 s: a bug fails, not hangs */
	size_t cap = 1 << 21;
	ssize_t r;
	int fd;

	s->got = malloc(cap);
	s->gotlen = 0;
	if (s->got == NULL || (fd = accept(s->lfd, NULL, NULL)) < 0)
		return NULL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	usleep(50 * 1000);
	while (s->gotlen < cap && (r = read(fd, s->got + s->gotlen, cap - s->gotlen)) > 0) {
		s->gotlen += (size_t)r;
		if (s->gotlen >= 2 && memcmp(s->got + s->gotlen - 2, "\n\n", 2) == 0)
			break;
	}
	if (send(fd, s->answer, strlen(s->answer), MSG_NOSIGNAL) < 0)
		s->gotlen = 0;
	close(fd);
	return NULL;
}

/* uapi_set() against a live socket: every byte, in order, through partial sends. */
static void
set_live_tests(void)
{
	char dir[] = "/tmp/pharos-uapi-XXXXXX", path[64] = "";
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct set_srv srv = { .lfd = -1 };
	const char line[] = "allowed_ip=10.0.0.1/32\n";
	size_t n = 40000, len = n * (sizeof(line) - 1), i;
	char *body = malloc(len), *want = malloc(len + 7);
	pthread_t th;
	int pass, rc;

	if (body == NULL || want == NULL || mkdtemp(dir) == NULL) {
		T_OK(0, "set live: setup");
		goto out;
	}
	for (i = 0; i < n; i++)
		memcpy(body + i * (sizeof(line) - 1), line, sizeof(line) - 1);
	memcpy(want, "set=1\n", 6);
	memcpy(want + 6, body, len);
	want[len + 6] = '\n';
	snprintf(path, sizeof(path), "%s/wg0.sock", dir);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if ((srv.lfd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
	    bind(srv.lfd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || listen(srv.lfd, 2) != 0) {
		T_OK(0, "set live: listen");
		goto out;
	}
	for (pass = 0; pass < 2; pass++) {
		srv.answer = pass == 0 ? "errno=0\n\n" : "errno=-22\n\n";
		if (pthread_create(&th, NULL, set_srv_run, &srv) != 0) {
			T_OK(0, "set live: thread");
			goto out;
		}
		rc = uapi_set(path, body, len);
		pthread_join(th, NULL);
		if (pass == 0) {
			T_OK(rc == 0, "set live: a %zu-byte body is answered errno=0 (%s)", len,
			    rc ? err_last() : "ok");
			T_OK(srv.gotlen == len + 7 && memcmp(srv.got, want, len + 7) == 0,
			    "set live: the server got set=1, the body and the blank line, in order "
			    "(%zu bytes)", srv.gotlen);
		} else {
			T_OK(rc == ERR_LIB && strstr(err_last(), "errno=-22") != NULL,
			    "set live: errno=-22 is an error (%s)", err_last());
		}
		free(srv.got);
		srv.got = NULL;
	}
out:
	if (srv.lfd >= 0)
		close(srv.lfd);
	if (path[0] != '\0')
		unlink(path);
	rmdir(dir);
	free(body);
	free(want);
}

int
main(void)
{
	struct wg_device *d = NULL, *e = NULL;
	struct twant t;
	uint8_t k[32], k2[32];
	char b64[UAPI_KEY_B64_LEN + 1], hex[UAPI_KEY_HEX_LEN + 1], *body;
	size_t i, len;
	int rc;

	/* ---- parse ---- */
	rc = parse(&d, reply);
	T_OK(rc == 0 && d != NULL, "parse: realistic reply (%s)", rc ? err_last() : "ok");
	if (d == NULL)
		T_DONE();
	uapi_key_to_hex(hex, d->private_key);
	T_OK(d->has_private_key && strcmp(hex, PRIV) == 0, "parse: private key");
	T_OK(d->listen_port == 51820 && d->fwmark == 51, "parse: listen_port, fwmark");
	T_OK(d->npeers == 2, "parse: two peers");
	uapi_key_to_hex(hex, d->peers[0].public_key);
	T_STREQ(hex, KB, "parse: first peer key, reply order kept");
	T_STREQ(d->peers[0].endpoint, "[2001:db8::5]:51821", "parse: v6 endpoint");
	T_OK(d->peers[0].last_handshake_sec == 0 && d->peers[0].keepalive == 0 &&
	    d->peers[0].n_allowed == 1, "parse: never-handshaken peer");
	T_STREQ(d->peers[1].endpoint, "192.0.2.10:51820", "parse: v4 endpoint");
	T_OK(d->peers[1].last_handshake_sec == 1700000000 &&
	    d->peers[1].last_handshake_nsec == 123456789, "parse: handshake time");
	T_OK(d->peers[1].tx_bytes == 1000 && d->peers[1].rx_bytes == UINT64_MAX,
	    "parse: byte counters to 2^64-1");
	T_OK(d->peers[1].keepalive == 25, "parse: keepalive");
	T_OK(d->peers[1].n_allowed == 2, "parse: two allowed IPs");
	if (d->peers[1].n_allowed == 2) {
		T_STREQ(d->peers[1].allowed_ips[0], "10.64.0.2/32", "parse: allowed v4");
		T_STREQ(d->peers[1].allowed_ips[1], "fd00:64::2/128", "parse: allowed v6");
	}
	T_OK(parse(&e, "errno=0\n\n") == 0 && e != NULL && e->npeers == 0 &&
	    !e->has_private_key && e->listen_port == 0, "parse: empty device");
	wg_device_free(e);
	T_OK(parse(&e, "private_key=" ZERO "\nerrno=0\n") == 0 && e != NULL &&
	    !e->has_private_key, "parse: zero key is no key; EOF instead of blank line");
	wg_device_free(e);
	T_OK(parse(&e, "public_key=" KA "\nallowed_ip=10.64.1.9/24\nerrno=0\n\n") == 0 &&
	    e != NULL && e->peers[0].n_allowed == 1 &&
	    strcmp(e->peers[0].allowed_ips[0], "10.64.1.0/24") == 0, "parse: CIDR canonical");
	wg_device_free(e);
	T_OK(parse(&e, "errno=0\n\nlisten_port=1\n") == 0 && e != NULL && e->listen_port == 0,
	    "parse: stops at the blank line");
	wg_device_free(e);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e = NULL;
		rc = parse(&e, bad[i].text);
		T_OK(rc == bad[i].rc && e == NULL, "parse refuses: %s (%s)", bad[i].name,
		    err_last());
	}
	T_OK(uapi_parse_get(&e, "listen_port=1\0\nerrno=0\n\n", 24) == ERR_INVAL && e == NULL,
	    "parse refuses: NUL inside a line");
	rc = parse(&e, "errno=-22\n\n");
	T_OK(strstr(err_last(), "-22") != NULL && strstr(err_last(), "Invalid argument"),
	    "parse: errno text in the message (%s)", err_last());

	/* ---- diff ---- */
	want_init(&t);
	diff_is(d, &t, "", "identical");

	t.p[2].key = KC;
	tp_ip(&t.p[2], "10.64.0.4/32");
	t.n = 3;
	diff_is(d, &t, "public_key=" KC "\nallowed_ip=10.64.0.4/32\n", "one peer added");
	strcpy(t.p[2].endpoint, "[2001:db8::9]:1");
	t.p[2].keepalive = 15;
	diff_is(d, &t, "public_key=" KC "\nendpoint=[2001:db8::9]:1\n"
	    "persistent_keepalive_interval=15\nallowed_ip=10.64.0.4/32\n",
	    "one peer added with endpoint and keepalive");
	want_clear(&t);

	want_init(&t);
	t.n = 1;
	diff_is(d, &t, "public_key=" KB "\nremove=true\n", "one peer removed");
	want_clear(&t);

	/* New peers go out in the order of their first allowed IP, not of their keys. */
	T_OK(parse(&e, "listen_port=51820\nprivate_key=" PRIV "\nerrno=0\n\n") == 0 && e != NULL,
	    "parse: a device with no peers");
	want_init(&t);
	t.n = 3;
	t.p[0].endpoint[0] = t.p[1].endpoint[0] = '\0';
	t.p[0].keepalive = 0;
	t.p[0].n_ips = t.p[1].n_ips = 0;
	tp_ip(&t.p[0], "fd00::1/128");
	t.p[2].key = KC;
	tp_ip(&t.p[2], "10.0.0.9/32");
	tp_ip(&t.p[2], "10.0.0.1/32");	/* canonical order: the first is 10.0.0.1 */
	t.p[1].key = KB;
	diff_is(e, &t, "public_key=" KB "\npublic_key=" KC "\nallowed_ip=10.0.0.1/32\n"
	    "allowed_ip=10.0.0.9/32\npublic_key=" KA "\nallowed_ip=fd00::1/128\n",
	    "new peers by allowed IP: none, IPv4, IPv6");
	want_clear(&t);
	wg_device_free(e);
	e = NULL;

	want_init(&t);
	tp_ip(&t.p[0], "10.64.1.7/24");
	diff_is(d, &t, "public_key=" KA "\nupdate_only=true\nreplace_allowed_ips=true\n"
	    "allowed_ip=10.64.0.2/32\nallowed_ip=10.64.1.0/24\nallowed_ip=fd00:64::2/128\n",
	    "allowed IPs changed");
	want_clear(&t);

	want_init(&t);
	tp_ip(&t.p[0], "10.64.0.2/32");
	diff_is(d, &t, "", "duplicate allowed IP is no change");
	want_clear(&t);

	want_init(&t);
	strcpy(t.p[1].endpoint, "[2001:db8::6]:51821");
	t.p[0].endpoint[0] = '\0';
	diff_is(d, &t, "public_key=" KB "\nupdate_only=true\nendpoint=[2001:db8::6]:51821\n",
	    "endpoint changed (and \"\" leaves one alone)");
	t.p[0].keepalive = 0;
	diff_is(d, &t, "public_key=" KA "\nupdate_only=true\npersistent_keepalive_interval=0\n"
	    "public_key=" KB "\nupdate_only=true\nendpoint=[2001:db8::6]:51821\n",
	    "keepalive off; peers in key order");
	want_clear(&t);

	want_init(&t);
	t.w.listen_port = 51821;
	diff_is(d, &t, "listen_port=51821\n", "listen port changed");
	t.w.listen_port = 0;
	diff_is(d, &t, "", "listen port 0 means any");
	want_clear(&t);

	want_init(&t);
	uapi_key_from_hex(t.w.private_key, PRIV2, 64);
	diff_is(d, &t, "private_key=" PRIV2 "\n", "private key changed");
	t.w.private_key[0] = 0x4f;	/* clamps to 0x48 */
	t.w.private_key[31] = 0xc8;	/* clamps to 0x48 */
	memset(t.w.private_key + 1, 0x48, 30);
	diff_is(d, &t, "", "unclamped private key equal after clamping");
	memset(t.w.private_key, 0, 32);
	diff_is(d, &t, "private_key=" ZERO "\n", "zero private key removes it");
	want_clear(&t);

	want_init(&t);
	t.w.jc = 3, t.w.jmin = 10, t.w.jmax = 30, t.w.s1 = 15, t.w.s2 = 18;
	strcpy(t.w.h[0], "1020325451");
	diff_is(d, &t, "", "AWG params ignored without awg");
	t.w.awg = true;
	diff_is(d, &t, "jc=3\njmin=10\njmax=30\ns1=15\ns2=18\nh1=1020325451\n",
	    "AWG params always with awg");
	t.w.jc = 0, t.w.s3 = 20, t.w.s4 = 23;
	strcpy(t.w.h[1], "100-200");
	t.w.i[0] = strdup("<r 2><b 0x8580>");
	diff_is(d, &t, "s1=15\ns2=18\ns3=20\ns4=23\nh1=1020325451\nh2=100-200\n"
	    "i1=<r 2><b 0x8580>\n", "AWG 2.0 params, junk off");
	strcpy(t.w.h[2], "200-100");
	T_OK(want_seal(&t) == 0 && uapi_diff(&body, &len, d, &t.w) == ERR_INVAL && body == NULL,
	    "diff refuses: reversed h range");
	t.w.h[2][0] = '\0';
	free(t.w.i[0]);
	t.w.i[0] = strdup("a\nremove=true");
	T_OK(want_seal(&t) == 0 && uapi_diff(&body, &len, d, &t.w) == ERR_INVAL,
	    "diff refuses: newline in i1");
	want_clear(&t);

	want_init(&t);
	t.p[1].key = KC;	/* B out, C in */
	t.p[0].keepalive = 5;
	diff_is(d, &t, "public_key=" KB "\nremove=true\n"
	    "public_key=" KC "\nendpoint=[2001:db8::5]:51821\nallowed_ip=10.64.0.3/32\n"
	    "public_key=" KA "\nupdate_only=true\npersistent_keepalive_interval=5\n",
	    "remove, add, update in that order");
	t.p[1].key = t.p[0].key;
	T_OK(want_seal(&t) == ERR_INVAL && strstr(err_last(), "twice") != NULL,
	    "a key listed twice is refused before any diff (%s)", err_last());
	want_clear(&t);

	want_init(&t);
	strcpy(t.p[0].endpoint, "vpn.example.com:51820");
	T_OK(want_seal(&t) == 0 && uapi_diff(&body, &len, d, &t.w) == ERR_INVAL,
	    "diff refuses: host name endpoint");
	want_clear(&t);

	/* ---- keys ---- */
	memset(k, 0, sizeof(k));
	uapi_key_to_base64(b64, k);
	T_STREQ(b64, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "key: base64 of zeros");
	uapi_key_from_hex(k, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
	    64);
	T_OK(uapi_public_key(k2, k) == 0, "key: public key");
	uapi_key_to_hex(hex, k2);
	T_STREQ(hex, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
	    "key: RFC 7748 public key");
	uapi_key_to_base64(b64, k2);
	T_OK(uapi_key_from_base64(k, b64) == 0 && memcmp(k, k2, 32) == 0,
	    "key: base64 round trip");
	T_OK(uapi_key_from_base64(k, "AAAA") != 0, "key: short base64 refused");
	T_OK(uapi_key_from_base64(k, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_") != 0,
	    "key: URL-safe base64 refused");
	T_OK(uapi_key_from_hex(k, R32("AA"), 64) == 0 && k[0] == 0xaa,
	    "key: upper-case hex accepted");

	wgtool_tests(d);

	/* ---- set bodies are checked before anything is sent ---- */
	T_OK(uapi_set("/nonexistent/x.sock", "listen_port=1\n\nget=1\n", 21) == ERR_INVAL,
	    "set refuses: blank line in the body");
	T_OK(uapi_set("/nonexistent/x.sock", "listen_port=1", 13) == ERR_INVAL,
	    "set refuses: unterminated body");
	T_OK(uapi_set("/nonexistent/x.sock", "", 0) == ERR_SYS, "set: missing socket is ERR_SYS");
	T_OK(uapi_get(&e, "/nonexistent/x.sock") == ERR_SYS && e == NULL,
	    "get: missing socket is ERR_SYS");
	set_live_tests();
	wg_device_free(d);
	wg_device_free(NULL);
	wg_desired_clear(NULL);
	T_DONE();
}
