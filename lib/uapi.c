/* SPDX-License-Identifier: Apache-2.0 */
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <arpa/inet.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "clock.h"
#include "err.h"
#include "uapi.h"

#define REPLY_MAX	(16u << 20)	/* a get reply of ~100k peers; more is an attack */

/* ---- growing text buffer; growth wipes the old copy since bodies carry keys ---- */

struct sbuf {
	char	*p;
	size_t	 len, cap;
	int	 rc;
	/* Streaming to a UAPI set (uapi_set_diff()); fd -1: not yet connected. */
	const char	*sock_path;	/* NULL: no streaming */
	int		 fd;
	int64_t		 connected_nanos;	/* when it connected */
	int64_t		 deadline;
	size_t		 sent;
	void		(*busy)(void *);
	void		*busy_arg;
};

static int
sb_reserve(struct sbuf *sb, size_t extra)
{
	size_t want, cap;
	char *np;

	if (sb->rc != 0)
		return sb->rc;
	if (extra > SIZE_MAX - sb->len - 1) {
		err_set("uapi: buffer size overflow");
		return sb->rc = ERR_TOOBIG;
	}
	want = sb->len + extra + 1;
	if (want <= sb->cap)
		return 0;
	cap = sb->cap ? sb->cap : 256;
	while (cap < want)
		cap = cap > SIZE_MAX / 2 ? want : cap * 2;
	if ((np = malloc(cap)) == NULL) {
		err_set("uapi: out of memory");
		return sb->rc = ERR_NOMEM;
	}
	if (sb->p != NULL) {
		memcpy(np, sb->p, sb->len);
		sodium_memzero(sb->p, sb->cap);
		free(sb->p);
	}
	sb->p = np;
	sb->cap = cap;
	sb->p[sb->len] = '\0';
	return 0;
}

static void sb_printf(struct sbuf *, const char *, ...) __attribute__((format(printf, 2, 3)));

static void
sb_printf(struct sbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	/* Usually it fits: format once. */
	if (sb->rc == 0 && sb->p != NULL && sb->cap - sb->len > 1) {
		va_start(ap, fmt);
		n = vsnprintf(sb->p + sb->len, sb->cap - sb->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < sb->cap - sb->len) {
			sb->len += (size_t)n;
			return;
		}
		sb->p[sb->len] = '\0';
	}
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		if (sb->rc == 0) {
			err_set("uapi: formatting failed");
			sb->rc = ERR_INVAL;
		}
		return;
	}
	if (sb_reserve(sb, (size_t)n) != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(sb->p + sb->len, sb->cap - sb->len, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}

static void
sb_wipe(struct sbuf *sb)
{
	if (sb->p != NULL) {
		sodium_memzero(sb->p, sb->cap);
		free(sb->p);
	}
	memset(sb, 0, sizeof(*sb));
}

/* ---- keys ---- */

int
uapi_key_from_hex(uint8_t key[UAPI_KEY_LEN], const char *hex, size_t len)
{
	size_t bin_len = 0;
	const char *end = NULL;

	if (len != UAPI_KEY_HEX_LEN ||
	    sodium_hex2bin(key, UAPI_KEY_LEN, hex, len, NULL, &bin_len, &end) != 0 ||
	    bin_len != UAPI_KEY_LEN || end != hex + len) {
		sodium_memzero(key, UAPI_KEY_LEN);
		err_set("uapi: a key must be %d hex digits", UAPI_KEY_HEX_LEN);
		return ERR_INVAL;
	}
	return 0;
}

void
uapi_key_to_hex(char out[UAPI_KEY_HEX_LEN + 1], const uint8_t key[UAPI_KEY_LEN])
{
	sodium_bin2hex(out, UAPI_KEY_HEX_LEN + 1, key, UAPI_KEY_LEN);
}

int
uapi_key_from_base64(uint8_t key[UAPI_KEY_LEN], const char *b64)
{
	size_t bin_len = 0, n = strlen(b64);
	const char *end = NULL;

	if (n != UAPI_KEY_B64_LEN ||
	    sodium_base642bin(key, UAPI_KEY_LEN, b64, n, NULL, &bin_len, &end,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || bin_len != UAPI_KEY_LEN || end != b64 + n) {
		sodium_memzero(key, UAPI_KEY_LEN);
		err_set("uapi: a key must be %d characters of base64", UAPI_KEY_B64_LEN);
		return ERR_INVAL;
	}
	return 0;
}

void
uapi_key_to_base64(char out[UAPI_KEY_B64_LEN + 1], const uint8_t key[UAPI_KEY_LEN])
{
	sodium_bin2base64(out, UAPI_KEY_B64_LEN + 1, key, UAPI_KEY_LEN,
	    sodium_base64_VARIANT_ORIGINAL);
}

int
uapi_public_key(uint8_t pub[UAPI_KEY_LEN], const uint8_t priv[UAPI_KEY_LEN])
{
	if (sodium_init() < 0 || crypto_scalarmult_base(pub, priv) != 0) {
		err_set("uapi: cannot derive the public key");
		return ERR_LIB;
	}
	return 0;
}

/* What wireguard-go does to a private key on load, so get reports it clamped. */
static void
key_clamp(uint8_t k[UAPI_KEY_LEN])
{
	k[0] &= 248;
	k[31] = (uint8_t)((k[31] & 127) | 64);
}

/* ---- objects ---- */

void
wg_peer_clear(struct wg_peer *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->n_allowed; i++)
		free(p->allowed_ips[i]);
	free(p->allowed_ips);
	p->allowed_ips = NULL;
	p->n_allowed = 0;
}

static int
cidr_parse(struct peerset_cidr *c, const char *s)
{
	bool host;

	return addr_parse_cidr(&c->ip, &c->prefix, &host, s);
}

static void
cidr_text(char buf[64], const struct peerset_cidr *c)
{
	char ip[INET6_ADDRSTRLEN];

	addr_ntop(&c->ip, ip, sizeof(ip));
	snprintf(buf, 64, "%s/%u", ip, c->prefix);
}

int
wg_peer_add_allowed_ip(struct wg_peer *p, const char *s)
{
	struct peerset_cidr c;
	char text[64], *dup, **v;
	size_t n = p->n_allowed;

	if (cidr_parse(&c, s) != 0)
		return ERR_INVAL;
	cidr_text(text, &c);
	/* Capacity is implied: 4, then the next power of two at each power of two. */
	if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
		size_t cap = n == 0 ? 4 : n * 2;
		if (cap > SIZE_MAX / sizeof(char *)) {
			err_set("uapi: too many allowed IPs");
			return ERR_TOOBIG;
		}
		if ((v = realloc(p->allowed_ips, cap * sizeof(char *))) == NULL) {
			err_set("uapi: out of memory");
			return ERR_NOMEM;
		}
		p->allowed_ips = v;
	}
	if ((dup = strdup(text)) == NULL) {
		err_set("uapi: out of memory");
		return ERR_NOMEM;
	}
	p->allowed_ips[p->n_allowed++] = dup;
	return 0;
}

void
wg_device_free(struct wg_device *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->npeers; i++)
		wg_peer_clear(&d->peers[i]);
	free(d->peers);
	sodium_memzero(d, sizeof(*d));
	free(d);
}

void
wg_desired_clear(struct wg_desired *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < 5; i++)
		free(d->i[i]);
	sodium_memzero(d, sizeof(*d));
}

static int
peer_key_cmp(const void *a, const void *b)
{
	const struct wg_peer *const *pa = a, *const *pb = b;

	return memcmp((*pa)->public_key, (*pb)->public_key, UAPI_KEY_LEN);
}

/* Peers as pointers sorted by key; a duplicate key is an error. */
static int
sorted_peers(const struct wg_peer ***out, const struct wg_peer *peers, size_t n,
    const char *what)
{
	const struct wg_peer **v;
	size_t i;

	*out = NULL;
	if ((v = calloc(n ? n : 1, sizeof(*v))) == NULL) {
		err_set("uapi: out of memory");
		return ERR_NOMEM;
	}
	for (i = 0; i < n; i++)
		v[i] = &peers[i];
	qsort(v, n, sizeof(*v), peer_key_cmp);
	for (i = 1; i < n; i++) {
		if (memcmp(v[i - 1]->public_key, v[i]->public_key, UAPI_KEY_LEN) == 0) {
			char b64[UAPI_KEY_B64_LEN + 1];
			uapi_key_to_base64(b64, v[i]->public_key);
			err_set("uapi: %s lists peer %s twice", what, b64);
			free(v);
			return ERR_INVAL;
		}
	}
	*out = v;
	return 0;
}

/* ---- parsing a get reply ---- */

static bool
keyis(const char *k, size_t kn, const char *lit)
{
	return strlen(lit) == kn && memcmp(k, lit, kn) == 0;
}

static int
parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return ERR_INVAL;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return ERR_INVAL;
		if (v > (max - (uint64_t)(*s - '0')) / 10)
			return ERR_INVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static int
parse_errno(const char *s, int *out)
{
	uint64_t v;
	bool neg = *s == '-';

	if (parse_u64(s + neg, INT_MAX, &v) != 0)
		return ERR_INVAL;
	*out = neg ? -(int)v : (int)v;
	return 0;
}

static bool
endpoint_text_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s <= ' ' || *s > '~')
			return false;
	return true;
}

static int
grow_peers(struct wg_device *d, size_t *cap)
{
	struct wg_peer *np;
	size_t ncap;

	if (d->npeers < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 4;
	if (ncap > SIZE_MAX / sizeof(*np)) {
		err_set("uapi: too many peers");
		return ERR_TOOBIG;
	}
	if ((np = realloc(d->peers, ncap * sizeof(*np))) == NULL) {
		err_set("uapi: out of memory");
		return ERR_NOMEM;
	}
	d->peers = np;
	*cap = ncap;
	return 0;
}

/* One key=value line of the reply; v is a NUL-terminated copy of the value. */
static int
parse_line(struct wg_device *d, size_t *cap, const char *k, size_t kn, const char *v,
    size_t lineno, unsigned flags)
{
	struct wg_peer *p = d->npeers ? &d->peers[d->npeers - 1] : NULL;
	uint8_t scratch[UAPI_KEY_LEN];
	uint64_t u;
	int rc;

	if (keyis(k, kn, "public_key")) {
		if ((rc = grow_peers(d, cap)) != 0)
			return rc;
		p = &d->peers[d->npeers];
		memset(p, 0, sizeof(*p));
		if (uapi_key_from_hex(p->public_key, v, strlen(v)) != 0)
			goto bad;
		d->npeers++;
		return 0;
	}
	if (keyis(k, kn, "private_key") || keyis(k, kn, "listen_port") ||
	    keyis(k, kn, "fwmark")) {
		if (p != NULL) {
			err_set("uapi: line %zu: device key '%.*s' after a peer", lineno,
			    (int)kn, k);
			return ERR_INVAL;
		}
		if (k[0] == 'p') {
			if (uapi_key_from_hex(d->private_key, v, strlen(v)) != 0)
				goto bad;
			d->has_private_key = !sodium_is_zero(d->private_key, UAPI_KEY_LEN);
		} else if (k[0] == 'l') {
			if (parse_u64(v, 65535, &u) != 0)
				goto bad;
			d->listen_port = (int)u;
		} else {
			if (parse_u64(v, UINT32_MAX, &u) != 0)
				goto bad;
			d->fwmark = (uint32_t)u;
		}
		return 0;
	}
	if (p == NULL) {
		static const char *const peer_keys[] = { "preshared_key", "protocol_version",
			"endpoint", "last_handshake_time_sec", "last_handshake_time_nsec",
			"tx_bytes", "rx_bytes", "persistent_keepalive_interval", "allowed_ip" };
		size_t i;
		for (i = 0; i < sizeof(peer_keys) / sizeof(peer_keys[0]); i++) {
			if (keyis(k, kn, peer_keys[i])) {
				err_set("uapi: line %zu: peer key '%s' before any public_key",
				    lineno, peer_keys[i]);
				return ERR_INVAL;
			}
		}
		return 0;	/* another device key (AWG, newer versions): not ours */
	}
	if (keyis(k, kn, "preshared_key")) {
		rc = uapi_key_from_hex(scratch, v, strlen(v));
		sodium_memzero(scratch, sizeof(scratch));
		if (rc != 0)
			goto bad;
	} else if (keyis(k, kn, "protocol_version")) {
		if (parse_u64(v, UINT32_MAX, &u) != 0)
			goto bad;
	} else if (keyis(k, kn, "endpoint")) {
		if (strlen(v) >= sizeof(p->endpoint) || !endpoint_text_ok(v) || v[0] == '\0')
			goto bad;
		memcpy(p->endpoint, v, strlen(v) + 1);
	} else if (keyis(k, kn, "last_handshake_time_sec")) {
		if (parse_u64(v, INT64_MAX, &u) != 0)
			goto bad;
		p->last_handshake_sec = (int64_t)u;
	} else if (keyis(k, kn, "last_handshake_time_nsec")) {
		if (parse_u64(v, 999999999, &u) != 0)
			goto bad;
		p->last_handshake_nsec = (int64_t)u;
	} else if (keyis(k, kn, "tx_bytes")) {
		if (parse_u64(v, UINT64_MAX, &p->tx_bytes) != 0)
			goto bad;
	} else if (keyis(k, kn, "rx_bytes")) {
		if (parse_u64(v, UINT64_MAX, &p->rx_bytes) != 0)
			goto bad;
	} else if (keyis(k, kn, "persistent_keepalive_interval")) {
		if (parse_u64(v, 65535, &u) != 0)
			goto bad;
		p->keepalive = (int)u;
	} else if (keyis(k, kn, "allowed_ip") && !(flags & UAPI_F_NO_ALLOWED_IPS)) {
		if ((rc = wg_peer_add_allowed_ip(p, v)) != 0) {
			if (rc == ERR_INVAL)
				goto bad;
			return rc;
		}
	}
	return 0;
bad:
	err_set("uapi: line %zu: bad value for '%.*s'", lineno, (int)kn, k);
	return ERR_INVAL;
}

static int
parse_get(struct wg_device **out, const char *text, size_t len, unsigned flags)
{
	struct wg_device *d;
	const struct wg_peer **sorted = NULL;
	const char *p = text, *end = text + len, *nl, *eq;
	char v[80];
	size_t cap = 0, lineno = 0, n;
	bool seen_errno = false;
	int rc, eno = 0;

	*out = NULL;
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		err_set("uapi: out of memory");
		return ERR_NOMEM;
	}
	while (p < end) {
		lineno++;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			err_set("uapi: line %zu: truncated reply", lineno);
			rc = ERR_INVAL;
			goto fail;
		}
		n = (size_t)(nl - p);
		if (n == 0)
			break;		/* the blank line ends the reply */
		if (seen_errno) {
			err_set("uapi: line %zu: data after the errno line", lineno);
			rc = ERR_INVAL;
			goto fail;
		}
		if (memchr(p, '\0', n) != NULL || (eq = memchr(p, '=', n)) == NULL || eq == p) {
			err_set("uapi: line %zu: not key=value", lineno);
			rc = ERR_INVAL;
			goto fail;
		}
		if ((size_t)(nl - eq - 1) >= sizeof(v)) {
			/* Known values are short; long ones are AWG i1..i5 or unknown keys. */
			if (d->npeers == 0 && !keyis(p, (size_t)(eq - p), "errno") &&
			    !keyis(p, (size_t)(eq - p), "private_key") &&
			    !keyis(p, (size_t)(eq - p), "listen_port") &&
			    !keyis(p, (size_t)(eq - p), "fwmark")) {
				p = nl + 1;
				continue;
			}
			err_set("uapi: line %zu: value of '%.*s' too long", lineno,
			    (int)(eq - p), p);
			rc = ERR_INVAL;
			goto fail;
		}
		memcpy(v, eq + 1, (size_t)(nl - eq - 1));
		v[nl - eq - 1] = '\0';
		if (keyis(p, (size_t)(eq - p), "errno")) {
			if (parse_errno(v, &eno) != 0) {
				err_set("uapi: line %zu: bad errno value", lineno);
				rc = ERR_INVAL;
				goto fail;
			}
			seen_errno = true;
		} else if ((rc = parse_line(d, &cap, p, (size_t)(eq - p), v, lineno, flags)) != 0) {
			goto fail;
		}
		p = nl + 1;
	}
	sodium_memzero(v, sizeof(v));
	if (!seen_errno) {
		err_set("uapi: reply has no errno line");
		rc = ERR_INVAL;
		goto fail;
	}
	if (eno != 0) {
		err_set("uapi: get answered errno=%d (%s)", eno,
		    strerror(eno < 0 ? -eno : eno));
		rc = ERR_LIB;
		goto fail;
	}
	if ((rc = sorted_peers(&sorted, d->peers, d->npeers, "the get reply")) != 0)
		goto fail;
	free(sorted);
	*out = d;
	return 0;
fail:
	sodium_memzero(v, sizeof(v));
	wg_device_free(d);
	return rc;
}

int
uapi_parse_get(struct wg_device **out, const char *text, size_t len)
{
	return parse_get(out, text, len, 0);
}

/* ---- the socket ---- */

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
wait_fd(int fd, short ev, int64_t deadline, const char *path)
{
	struct pollfd pfd = { .fd = fd, .events = ev };
	int64_t left;
	int r;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0) {
			err_set("uapi: %s: timed out", path);
			return ERR_SYS;
		}
		r = poll(&pfd, 1, (int)(left > INT_MAX ? INT_MAX : left));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR) {
			err_setsys("uapi: %s: poll", path);
			return ERR_SYS;
		}
	}
}

static int
uapi_connect(int *fdp, const char *path)
{
	struct sockaddr_un sun;
	size_t n = strlen(path);
	int fd;

	*fdp = -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (n == 0 || n >= sizeof(sun.sun_path)) {
		err_set("uapi: socket path '%s' is empty or too long", path);
		return ERR_INVAL;
	}
	memcpy(sun.sun_path, path, n);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		err_setsys("uapi: socket");
		return ERR_SYS;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		err_setsys("uapi: connect %s", path);
		close(fd);
		return ERR_SYS;
	}
	*fdp = fd;
	return 0;
}

/*
 * All of iov[0..n), in as few sends as the socket takes. *busy, if set, is called (and
 * cleared) the first time the socket is full: the implementation then has plenty to chew
 * on, and the caller's own work overlaps with it.
 */
static int
sendv_all(int fd, struct iovec *iov, size_t n, int64_t deadline, const char *path,
    void (**busy)(void *), void *busy_arg)
{
	void (*fn)(void *);
	struct msghdr mh;
	ssize_t w;
	int rc;

	while (n > 0) {
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		mh.msg_iovlen = n;
		if ((w = sendmsg(fd, &mh, MSG_NOSIGNAL)) < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (busy != NULL && (fn = *busy) != NULL) {
					*busy = NULL;
					fn(busy_arg);
				}
				if ((rc = wait_fd(fd, POLLOUT, deadline, path)) != 0)
					return rc;
				continue;
			}
			err_setsys("uapi: %s: write", path);
			return ERR_SYS;
		}
		for (; n > 0 && (size_t)w >= iov->iov_len; iov++, n--)
			w -= (ssize_t)iov->iov_len;
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int
send_all_busy(int fd, const char *buf, size_t len, int64_t deadline, const char *path,
    void (**busy)(void *), void *busy_arg)
{
	struct iovec iov = { (void *)(uintptr_t)buf, len };

	return sendv_all(fd, &iov, 1, deadline, path, busy, busy_arg);
}

static int
send_all(int fd, const char *buf, size_t len, int64_t deadline, const char *path)
{
	return send_all_busy(fd, buf, len, deadline, path, NULL, NULL);
}

/* Read up to and including the first blank line (or EOF). */
static int
read_reply(struct sbuf *sb, int fd, int64_t deadline, const char *path)
{
	size_t from;
	ssize_t r;
	int rc;

	for (;;) {
		if (sb->len > REPLY_MAX) {
			err_set("uapi: %s: reply larger than %u bytes", path, REPLY_MAX);
			return ERR_TOOBIG;
		}
		if ((rc = sb_reserve(sb, 4096)) != 0)
			return rc;
		from = sb->len;
		r = recv(fd, sb->p + sb->len, sb->cap - sb->len - 1, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if ((rc = wait_fd(fd, POLLIN, deadline, path)) != 0)
					return rc;
				continue;
			}
			err_setsys("uapi: %s: read", path);
			return ERR_SYS;
		}
		if (r == 0)
			return 0;
		sb->len += (size_t)r;
		sb->p[sb->len] = '\0';
		if (sb->p[0] == '\n')
			return 0;
		from = from > 0 ? from - 1 : 0;
		if (memmem(sb->p + from, sb->len - from, "\n\n", 2) != NULL)
			return 0;
	}
}

int
uapi_probe(const char *sock_path)
{
	int fd, rc;

	if ((rc = uapi_connect(&fd, sock_path)) == 0)
		close(fd);
	return rc;
}

int
uapi_get_timeout(struct wg_device **out, const char *sock_path, int timeout_ms)
{
	return uapi_get_flags(out, sock_path, timeout_ms, 0);
}

int
uapi_get_flags(struct wg_device **out, const char *sock_path, int timeout_ms, unsigned flags)
{
	struct sbuf sb = { 0 };
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : UAPI_TIMEOUT_MS);
	int fd, rc;

	*out = NULL;
	if ((rc = uapi_connect(&fd, sock_path)) != 0)
		return rc;
	if ((rc = send_all(fd, "get=1\n\n", 7, deadline, sock_path)) == 0 &&
	    (rc = read_reply(&sb, fd, deadline, sock_path)) == 0)
		rc = parse_get(out, sb.p ? sb.p : "", sb.len, flags);
	close(fd);
	sb_wipe(&sb);
	return rc;
}

int
uapi_get(struct wg_device **out, const char *sock_path)
{
	return uapi_get_timeout(out, sock_path, UAPI_TIMEOUT_MS);
}

static int set_reply(int fd, int64_t deadline, const char *sock_path);

/* One send for a small set (a delta): the operation, the body and the blank line. */
int
uapi_set(const char *sock_path, const char *body, size_t len)
{
	int64_t deadline = now_ms() + UAPI_TIMEOUT_MS;
	struct iovec iov[3] = { { (void *)(uintptr_t)"set=1\n", 6 },
	    { (void *)(uintptr_t)body, len }, { (void *)(uintptr_t)"\n", 1 } };
	int fd, rc;

	/* A blank line would end the operation early and start another. */
	if (len > 0 && (body[0] == '\n' || body[len - 1] != '\n' ||
	    memmem(body, len, "\n\n", 2) != NULL || memchr(body, '\0', len) != NULL)) {
		err_set("uapi: set body must be non-blank lines, each ending in a newline");
		return ERR_INVAL;
	}
	if ((rc = uapi_connect(&fd, sock_path)) != 0)
		return rc;
	if ((rc = sendv_all(fd, iov, 3, deadline, sock_path, NULL, NULL)) == 0)
		rc = set_reply(fd, deadline, sock_path);
	close(fd);
	return rc;
}

/* The blank line that ends a streamed set, then its answer. */
static int
set_finish(int fd, int64_t deadline, const char *sock_path)
{
	int rc;

	if ((rc = send_all(fd, "\n", 1, deadline, sock_path)) != 0)
		return rc;
	return set_reply(fd, deadline, sock_path);
}

/* A set's answer: exactly "errno=N\n", then the blank line (or EOF). */
static int
set_reply(int fd, int64_t deadline, const char *sock_path)
{
	struct sbuf sb = { 0 };
	char *nl;
	int rc, eno;

	if ((rc = read_reply(&sb, fd, deadline, sock_path)) != 0)
		goto out;
	if (sb.len < 8 || strncmp(sb.p, "errno=", 6) != 0 ||
	    (nl = memchr(sb.p, '\n', sb.len)) == NULL ||
	    !(sb.p + sb.len == nl + 1 || (sb.p + sb.len == nl + 2 && nl[1] == '\n'))) {
		err_set("uapi: %s: set reply is not 'errno=N'", sock_path);
		rc = ERR_INVAL;
		goto out;
	}
	*nl = '\0';
	if (parse_errno(sb.p + 6, &eno) != 0) {
		err_set("uapi: %s: set reply has a bad errno value", sock_path);
		rc = ERR_INVAL;
		goto out;
	}
	if (eno != 0) {
		err_set("uapi: %s: set answered errno=%d (%s)", sock_path, eno,
		    strerror(eno < 0 ? -eno : eno));
		rc = ERR_LIB;
	}
out:
	sb_wipe(&sb);
	return rc;
}

/* ---- diff ---- */

static int
cidr_cmp(const void *a, const void *b)
{
	const struct peerset_cidr *ca = a, *cb = b;
	int c = addr_cmp(&ca->ip, &cb->ip);

	if (c != 0)
		return c;
	return ca->prefix < cb->prefix ? -1 : ca->prefix > cb->prefix;
}

/* A peer's allowed IPs parsed, sorted and without duplicates. */
static int
cidr_set(struct peerset_cidr **out, size_t *n, const struct wg_peer *p)
{
	struct peerset_cidr *v;
	size_t i, j;

	*out = NULL;
	*n = 0;
	if ((v = calloc(p->n_allowed ? p->n_allowed : 1, sizeof(*v))) == NULL) {
		err_set("uapi: out of memory");
		return ERR_NOMEM;
	}
	for (i = 0; i < p->n_allowed; i++) {
		if (cidr_parse(&v[i], p->allowed_ips[i]) != 0) {
			free(v);
			return ERR_INVAL;
		}
	}
	qsort(v, p->n_allowed, sizeof(*v), cidr_cmp);
	for (i = j = 0; i < p->n_allowed; i++)
		if (j == 0 || cidr_cmp(&v[j - 1], &v[i]) != 0)
			v[j++] = v[i];
	*out = v;
	*n = j;
	return 0;
}

/* Canonical "ip:port" / "[v6]:port" of an endpoint; "" stays "". */
static int
endpoint_canon(char out[64], const char *s)
{
	struct ipaddr ip;
	char buf[INET6_ADDRSTRLEN];
	int port;

	out[0] = '\0';
	if (s[0] == '\0')
		return 0;
	if (addr_parse_ip_port(&ip, &port, s) != 0 || port < 0) {
		err_set("uapi: endpoint '%s' is not ip:port or [v6]:port (no host names)", s);
		return ERR_INVAL;
	}
	addr_ntop(&ip, buf, sizeof(buf));
	if (ip.family == AF_INET6)
		snprintf(out, 64, "[%s]:%d", buf, port);
	else
		snprintf(out, 64, "%s:%d", buf, port);
	return 0;
}

static bool
valid_h(const char *h)
{
	uint64_t a, b;
	char buf[24];
	char *dash;

	if (strlen(h) >= sizeof(buf))
		return false;
	strcpy(buf, h);
	if ((dash = strchr(buf, '-')) == NULL)
		return parse_u64(buf, UINT32_MAX, &a) == 0;
	*dash = '\0';
	return parse_u64(buf, UINT32_MAX, &a) == 0 &&
	    parse_u64(dash + 1, UINT32_MAX, &b) == 0 && a <= b;
}

static int
check_desired(const struct wg_desired *w)
{
	const int *nums[] = { &w->jc, &w->jmin, &w->jmax, &w->s1, &w->s2, &w->s3, &w->s4 };
	char ep[64];
	size_t i;

	if (w->listen_port < 0 || w->listen_port > 65535) {
		err_set("uapi: listen_port %d is not 0-65535", w->listen_port);
		return ERR_INVAL;
	}
	if (w->awg) {
		for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
			if (*nums[i] < 0 || *nums[i] > 65535) {
				err_set("uapi: AWG jc/jmin/jmax/s1..s4 must be 0-65535");
				return ERR_INVAL;
			}
		}
		if (w->jc > 0 && (w->jmin > w->jmax || w->jmax == 0)) {
			err_set("uapi: AWG needs 0 < jmin <= jmax when jc > 0");
			return ERR_INVAL;
		}
		for (i = 0; i < 4; i++) {
			if (w->h[i][0] != '\0' && !valid_h(w->h[i])) {
				err_set("uapi: AWG h%zu '%.23s' is not N or A-B (u32)", i + 1,
				    w->h[i]);
				return ERR_INVAL;
			}
		}
		for (i = 0; i < 5; i++) {
			if (w->i[i] != NULL && strchr(w->i[i], '\n') != NULL) {
				err_set("uapi: AWG i%zu contains a newline", i + 1);
				return ERR_INVAL;
			}
		}
	}
	/* Keys, keepalives and allowed IPs were checked when the peerset was built. */
	for (i = 0; w->peers != NULL && i < w->peers->n; i++)
		if (w->peers->v[i].endpoint != 0 &&
		    endpoint_canon(ep, peerset_endpoint(w->peers, i)) != 0)
			return ERR_INVAL;
	return 0;
}

static void
emit_device(struct sbuf *sb, const struct wg_device *cur, const struct wg_desired *w)
{
	uint8_t key[UAPI_KEY_LEN];
	char hex[UAPI_KEY_HEX_LEN + 1];
	size_t i;

	memcpy(key, w->private_key, sizeof(key));
	if (!sodium_is_zero(key, sizeof(key)))
		key_clamp(key);
	if (sodium_is_zero(key, sizeof(key)) ? cur->has_private_key :
	    !cur->has_private_key || sodium_memcmp(key, cur->private_key, sizeof(key)) != 0) {
		uapi_key_to_hex(hex, key);
		sb_printf(sb, "private_key=%s\n", hex);
		sodium_memzero(hex, sizeof(hex));
	}
	sodium_memzero(key, sizeof(key));
	if (w->listen_port != 0 && w->listen_port != cur->listen_port)
		sb_printf(sb, "listen_port=%d\n", w->listen_port);
	if (!w->awg)
		return;
	if (w->jc > 0)
		sb_printf(sb, "jc=%d\njmin=%d\njmax=%d\n", w->jc, w->jmin, w->jmax);
	sb_printf(sb, "s1=%d\ns2=%d\n", w->s1, w->s2);
	if (w->s3 != 0)
		sb_printf(sb, "s3=%d\n", w->s3);
	if (w->s4 != 0)
		sb_printf(sb, "s4=%d\n", w->s4);
	for (i = 0; i < 4; i++)
		if (w->h[i][0] != '\0')
			sb_printf(sb, "h%zu=%s\n", i + 1, w->h[i]);
	for (i = 0; i < 5; i++)
		if (w->i[i] != NULL)
			sb_printf(sb, "i%zu=%s\n", i + 1, w->i[i]);
}

/* "public_key=HEX\n", written in place: it is the line every peer has. */
static void
emit_key(struct sbuf *sb, const uint8_t key[UAPI_KEY_LEN])
{
	static const char pre[] = "public_key=";

	if (sb_reserve(sb, sizeof(pre) - 1 + UAPI_KEY_HEX_LEN + 1) != 0)
		return;
	memcpy(sb->p + sb->len, pre, sizeof(pre) - 1);
	sb->len += sizeof(pre) - 1;
	sodium_bin2hex(sb->p + sb->len, UAPI_KEY_HEX_LEN + 1, key, UAPI_KEY_LEN);
	sb->len += UAPI_KEY_HEX_LEN;
	sb->p[sb->len++] = '\n';
	sb->p[sb->len] = '\0';
}

/* The wanted peer ps->v[i]'s allowed IPs, one "allowed_ip=" line each. */
static void
emit_want_ips(struct sbuf *sb, const struct peerset *ps, size_t i)
{
	struct peerset_cidr c;
	char text[64];
	size_t off = ps->v[i].ips, j;

	for (j = 0; j < ps->v[i].n_ips; j++) {
		peerset_next_ip(ps, &off, &c);
		cidr_text(text, &c);
		sb_printf(sb, "allowed_ip=%s\n", text);
	}
}

/* A peer the device does not have: its key, endpoint, keepalive and allowed IPs. */
static int
emit_new_peer(struct sbuf *sb, const struct peerset *ps, size_t i)
{
	const struct peerset_peer *w = &ps->v[i];
	char ep[64];
	int rc;

	if ((rc = endpoint_canon(ep, peerset_endpoint(ps, i))) != 0)
		return rc;
	emit_key(sb, w->key);
	if (ep[0] != '\0')
		sb_printf(sb, "endpoint=%s\n", ep);
	if (w->keepalive > 0)
		sb_printf(sb, "persistent_keepalive_interval=%u\n", (unsigned)w->keepalive);
	emit_want_ips(sb, ps, i);
	return 0;
}

/* What differs between the live peer c and the wanted ps->v[i] (same key). */
struct peer_change {
	bool		 endpoint, keepalive, ips;
	char		 wep[64];	/* the wanted endpoint, canonical */
};

static int
peer_changes(struct peer_change *pc, const struct wg_peer *c, const struct peerset *ps,
    size_t i)
{
	const struct peerset_peer *w = &ps->v[i];
	struct peerset_cidr *cv = NULL, wc;
	char cep[64];
	size_t cn, j, off = w->ips;
	int rc;

	memset(pc, 0, sizeof(*pc));
	if ((rc = endpoint_canon(pc->wep, peerset_endpoint(ps, i))) != 0)
		return rc;
	/* An endpoint we cannot parse (a zone, say) is simply "different". */
	if (endpoint_canon(cep, c->endpoint) != 0)
		cep[0] = '\0';
	if ((rc = cidr_set(&cv, &cn, c)) != 0)
		return rc;
	pc->endpoint = pc->wep[0] != '\0' && strcmp(pc->wep, cep) != 0;
	pc->keepalive = w->keepalive != c->keepalive;
	/* Both are canonical and in the same order (peerset.h). */
	pc->ips = cn != w->n_ips;
	for (j = 0; j < cn && !pc->ips; j++) {
		peerset_next_ip(ps, &off, &wc);
		pc->ips = cidr_cmp(&cv[j], &wc) != 0;
	}
	free(cv);
	return 0;
}

/* *changed set when the peer differs (and was emitted). */
static int
emit_changed_peer(struct sbuf *sb, const struct wg_peer *c, const struct peerset *ps,
    size_t i, bool *changed)
{
	struct peer_change pc;
	int rc;

	if ((rc = peer_changes(&pc, c, ps, i)) != 0)
		return rc;
	*changed = pc.endpoint || pc.keepalive || pc.ips;
	if (*changed) {
		emit_key(sb, ps->v[i].key);
		sb_printf(sb, "update_only=true\n");
		if (pc.endpoint)
			sb_printf(sb, "endpoint=%s\n", pc.wep);
		if (pc.keepalive)
			sb_printf(sb, "persistent_keepalive_interval=%u\n",
			    (unsigned)ps->v[i].keepalive);
		if (pc.ips) {
			sb_printf(sb, "replace_allowed_ips=true\n");
			emit_want_ips(sb, ps, i);
		}
	}
	return 0;
}

/*
 * The device's peers (cv, sorted by key) against the wanted ones (a peerset, sorted by
 * key too), in one merge: each pair calls step with the live peer or NULL and the wanted
 * index or -1.
 */
static int
merge(const struct wg_peer **cv, size_t cn, const struct peerset *ps,
    int (*step)(void *, const struct wg_peer *, ptrdiff_t), void *arg)
{
	size_t i = 0, j = 0, wn = ps != NULL ? ps->n : 0;
	int c, rc = 0;

	while (rc == 0 && (i < cn || j < wn)) {
		c = i == cn ? 1 : j == wn ? -1 :
		    memcmp(cv[i]->public_key, ps->v[j].key, UAPI_KEY_LEN);
		if (c < 0)
			rc = step(arg, cv[i++], -1);
		else if (c > 0)
			rc = step(arg, NULL, (ptrdiff_t)j++);
		else
			rc = step(arg, cv[i++], (ptrdiff_t)j++);
	}
	return rc;
}

int
uapi_diff(char **body, size_t *len, const struct wg_device *cur,
    const struct wg_desired *want)
{
	struct uapi_counts c;

	return uapi_diff_count(body, len, &c, cur, want);
}

/*
 * Streaming: once the body holds this much, it goes to the socket (connecting and
 * sending "set=1" first) and the buffer starts again. Below it nothing is sent until the
 * end, so a diff with nothing in it never connects.
 */
#define STREAM_CHUNK	(64 * 1024)

static int
sb_flush(struct sbuf *sb, size_t atleast)
{
	int rc;

	if (sb->sock_path == NULL || sb->rc != 0 || sb->len < atleast)
		return sb->rc;
	if (sb->fd < 0) {
		sb->connected_nanos = clock_mono_nanos();
		if ((rc = uapi_connect(&sb->fd, sb->sock_path)) != 0 ||
		    (rc = send_all(sb->fd, "set=1\n", 6, sb->deadline, sb->sock_path)) != 0)
			return sb->rc = rc;
	}
	if ((rc = send_all_busy(sb->fd, sb->p, sb->len, sb->deadline, sb->sock_path,
	    &sb->busy, sb->busy_arg)) != 0)
		return sb->rc = rc;
	sb->sent += sb->len;
	sodium_memzero(sb->p, sb->len);		/* the private key may be in it */
	sb->len = 0;
	sb->p[0] = '\0';
	return 0;
}

/* One pass of a diff over the merge of the device and the wanted peers (the added ones
   go out through emit_added()). */
struct diff_ctx {
	struct sbuf		*sb;		/* NULL: only count */
	struct uapi_counts	*counts;
	const struct peerset	*ps;
	enum { PASS_REMOVED, PASS_ADDED, PASS_CHANGED } pass;
};

static int
diff_step(void *arg, const struct wg_peer *c, ptrdiff_t w)
{
	struct diff_ctx *d = arg;
	struct peer_change pc;
	bool changed = false;
	int rc = 0;

	if (d->sb == NULL) {
		if (w < 0)
			d->counts->removed++;
		else if (c == NULL)
			d->counts->added++;
		else if ((rc = peer_changes(&pc, c, d->ps, (size_t)w)) == 0)
			d->counts->changed += pc.endpoint || pc.keepalive || pc.ips;
		return rc;
	}
	if (d->pass == PASS_REMOVED && w < 0) {
		emit_key(d->sb, c->public_key);
		sb_printf(d->sb, "remove=true\n");
		d->counts->removed++;
	} else if (d->pass == PASS_CHANGED && c != NULL && w >= 0) {
		rc = emit_changed_peer(d->sb, c, d->ps, (size_t)w, &changed);
		d->counts->changed += changed;
	} else {
		return 0;
	}
	return rc != 0 ? rc : sb_flush(d->sb, STREAM_CHUNK);
}

/* The wanted peers the device lacks, as indices into the set (room for all of them). */
struct added {
	uint32_t	*v;
	size_t		 n;
};

static int
collect_added(void *arg, const struct wg_peer *c, ptrdiff_t w)
{
	struct added *a = arg;

	if (c == NULL && w >= 0)
		a->v[a->n++] = (uint32_t)w;
	return 0;
}

/*
 * The wanted peers the device (cv, sorted) lacks, all of them when cn is 0, as indices
 * into the set in the order of their first allowed IP (peerset_order_by_ip()), not of
 * their keys: wireguard-go puts each allowed IP in a trie, and takes them in address
 * order faster than in the random order random keys give. *idx is the caller's (free).
 */
static int
added_by_ip(uint32_t **idx, size_t *n, const struct wg_peer **cv, size_t cn,
    const struct peerset *ps)
{
	struct added a = { NULL, 0 };
	int rc;

	*idx = NULL;
	*n = 0;
	if (ps == NULL || ps->n == 0)
		return 0;
	if ((a.v = malloc(ps->n * sizeof(*a.v))) == NULL) {
		err_set("out of memory");
		return ERR_NOMEM;
	}
	if ((rc = merge(cv, cn, ps, collect_added, &a)) != 0 ||
	    (rc = peerset_order_by_ip(ps, a.v, a.n)) != 0) {
		free(a.v);
		return rc;
	}
	*idx = a.v;
	*n = a.n;
	return 0;
}

static int
emit_added(struct diff_ctx *d, const struct wg_peer **cv, size_t cn)
{
	uint32_t *idx;
	size_t i, n;
	int rc;

	rc = added_by_ip(&idx, &n, cv, cn, d->ps);
	for (i = 0; i < n && rc == 0; i++) {
		rc = emit_new_peer(d->sb, d->ps, idx[i]);
		d->counts->added++;
		if (rc == 0)
			rc = sb_flush(d->sb, STREAM_CHUNK);
	}
	free(idx);
	return rc;
}

/*
 * The diff of cur and want into sb, flushed as it grows when sb streams: removed peers,
 * then added ones, then changed ones. Everything that can be refused is checked before
 * the first line.
 */
static int
diff_run(struct sbuf *sb, struct uapi_counts *counts, const struct wg_device *cur,
    const struct wg_desired *want)
{
	const struct wg_peer **cv = NULL;
	struct diff_ctx d = { sb, counts, want->peers, PASS_REMOVED };
	int rc;

	memset(counts, 0, sizeof(*counts));
	if ((rc = check_desired(want)) != 0)
		return rc;
	if ((rc = sorted_peers(&cv, cur->peers, cur->npeers, "the device")) != 0 ||
	    (rc = sb_reserve(sb, STREAM_CHUNK)) != 0)
		goto out;
	emit_device(sb, cur, want);
	for (d.pass = PASS_REMOVED; d.pass <= PASS_CHANGED && rc == 0; d.pass++)
		rc = d.pass == PASS_ADDED ? emit_added(&d, cv, cur->npeers) :
		    merge(cv, cur->npeers, want->peers, diff_step, &d);
	if (rc == 0)
		rc = sb->rc;
out:
	free(cv);
	return rc;
}

int
uapi_diff_count(char **body, size_t *len, struct uapi_counts *counts,
    const struct wg_device *cur, const struct wg_desired *want)
{
	struct sbuf sb = { 0 };
	int rc;

	*body = NULL;
	*len = 0;
	sb.fd = -1;
	if ((rc = diff_run(&sb, counts, cur, want)) == 0) {
		*body = sb.p;
		*len = sb.len;
		sb.p = NULL;	/* the caller's now */
	}
	sb_wipe(&sb);
	return rc;
}

int
uapi_set_diff(const char *sock_path, struct uapi_counts *counts, size_t *sent,
    const struct wg_device *cur, const struct wg_desired *want, void (*busy)(void *),
    void *busy_arg)
{
	struct sbuf sb = { 0 };
	int rc;

	*sent = 0;
	sb.sock_path = sock_path;
	sb.fd = -1;
	sb.deadline = now_ms() + UAPI_TIMEOUT_MS;
	sb.busy = busy;
	sb.busy_arg = busy_arg;
	if ((rc = diff_run(&sb, counts, cur, want)) == 0 && (sb.fd >= 0 || sb.len > 0) &&
	    (rc = sb_flush(&sb, 0)) == 0) {
		if (sb.busy != NULL)
			sb.busy(sb.busy_arg);	/* it all fit in the socket at once */
		rc = set_finish(sb.fd, sb.deadline, sock_path);
	}
	*sent = sb.sent;
	counts->connected_nanos = sb.connected_nanos;
	if (sb.fd >= 0)
		close(sb.fd);
	sb_wipe(&sb);
	return rc;
}

void
uapi_body_free(char *body, size_t len)
{
	if (body == NULL)
		return;
	sodium_memzero(body, len);
	free(body);
}

/* ---- counting what a diff does ---- */

int
uapi_count(struct uapi_counts *out, const struct wg_device *cur,
    const struct wg_desired *want)
{
	const struct wg_peer **cv = NULL;
	struct diff_ctx d = { NULL, out, want->peers, PASS_REMOVED };
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = sorted_peers(&cv, cur->peers, cur->npeers, "the device")) == 0)
		rc = merge(cv, cur->npeers, want->peers, diff_step, &d);
	free(cv);
	return rc;
}

/* ---- wg(8) configuration text ---- */

int
uapi_conf(char **text, size_t *len, const struct wg_desired *want)
{
	struct sbuf sb = { 0 };
	const struct peerset *ps = want->peers;
	struct peerset_cidr c;
	char b64[UAPI_KEY_B64_LEN + 1], ep[64], ip[64];
	uint8_t key[UAPI_KEY_LEN];
	uint32_t *order = NULL;
	size_t i, j, k, off, n = 0;
	int rc;

	*text = NULL;
	*len = 0;
	if ((rc = check_desired(want)) != 0)
		return rc;
	for (i = 0; want->awg && i < 5; i++) {
		/* wg(8) cuts a line at '#': the rest of the value would be lost. */
		if (want->i[i] != NULL && strchr(want->i[i], '#') != NULL) {
			err_set("uapi: AWG i%zu contains '#', which starts a comment in a config",
			    i + 1);
			return ERR_INVAL;
		}
	}
	sb_printf(&sb, "[Interface]\n");
	memcpy(key, want->private_key, sizeof(key));
	if (!sodium_is_zero(key, sizeof(key))) {
		key_clamp(key);
		uapi_key_to_base64(b64, key);
		sb_printf(&sb, "PrivateKey = %s\n", b64);
		sodium_memzero(b64, sizeof(b64));
	}
	sodium_memzero(key, sizeof(key));
	if (want->listen_port != 0)
		sb_printf(&sb, "ListenPort = %d\n", want->listen_port);
	if (want->awg) {
		/* The rules of emit_device(), in the capitalised config spelling. */
		if (want->jc > 0)
			sb_printf(&sb, "Jc = %d\nJmin = %d\nJmax = %d\n", want->jc, want->jmin,
			    want->jmax);
		sb_printf(&sb, "S1 = %d\nS2 = %d\n", want->s1, want->s2);
		if (want->s3 != 0)
			sb_printf(&sb, "S3 = %d\n", want->s3);
		if (want->s4 != 0)
			sb_printf(&sb, "S4 = %d\n", want->s4);
		for (i = 0; i < 4; i++)
			if (want->h[i][0] != '\0')
				sb_printf(&sb, "H%zu = %s\n", i + 1, want->h[i]);
		for (i = 0; i < 5; i++)
			if (want->i[i] != NULL)
				sb_printf(&sb, "I%zu = %s\n", i + 1, want->i[i]);
	}
	/* In the order of the first allowed IP, as uapi_diff() sends new peers. */
	rc = added_by_ip(&order, &n, NULL, 0, ps);
	for (k = 0; k < n && rc == 0; k++) {
		i = order[k];
		if ((rc = endpoint_canon(ep, peerset_endpoint(ps, i))) != 0)
			break;
		uapi_key_to_base64(b64, ps->v[i].key);
		sb_printf(&sb, "\n[Peer]\nPublicKey = %s\n", b64);
		for (j = 0, off = ps->v[i].ips; j < ps->v[i].n_ips; j++) {
			peerset_next_ip(ps, &off, &c);
			cidr_text(ip, &c);
			sb_printf(&sb, "%s%s", j == 0 ? "AllowedIPs = " : ", ", ip);
		}
		if (ps->v[i].n_ips > 0)
			sb_printf(&sb, "\n");
		if (ep[0] != '\0')
			sb_printf(&sb, "Endpoint = %s\n", ep);
		/* Always: syncconf leaves a keepalive the file does not mention as it is. */
		sb_printf(&sb, "PersistentKeepalive = %u\n", (unsigned)ps->v[i].keepalive);
	}
	free(order);
	if (rc == 0)
		rc = sb.rc;
	if (rc == 0) {
		*text = sb.p;
		*len = sb.len;
		sb.p = NULL;	/* the caller's now */
	}
	sb_wipe(&sb);
	return rc;
}

/* ---- `wg show IF dump` ---- */

/* The next tab-separated field of [*p, end); false at the end of the line. */
static bool
dump_field(const char **p, const char *end, const char **f, size_t *n)
{
	const char *tab;

	if (*p > end)
		return false;
	tab = memchr(*p, '\t', (size_t)(end - *p));
	*f = *p;
	*n = (size_t)((tab != NULL ? tab : end) - *p);
	*p = tab != NULL ? tab + 1 : end + 1;
	return true;
}

/* A field as a C string in buf (false if it does not fit). */
static bool
dump_copy(char *buf, size_t bufsz, const char *f, size_t n)
{
	if (n >= bufsz || memchr(f, '\0', n) != NULL)
		return false;
	memcpy(buf, f, n);
	buf[n] = '\0';
	return true;
}

static int
dump_peer(struct wg_device *d, size_t *cap, const char *p, const char *end, size_t lineno,
    unsigned flags)
{
	struct wg_peer *w;
	const char *f, *c, *comma;
	char buf[80];
	size_t n, field;
	uint64_t u;
	int rc;

	if ((rc = grow_peers(d, cap)) != 0)
		return rc;
	w = &d->peers[d->npeers];
	memset(w, 0, sizeof(*w));
	for (field = 0; field < 8; field++) {
		if (!dump_field(&p, end, &f, &n))
			goto bad;
		if (field == 3) {
			/* Allowed IPs: "a/n,b/m" or "(none)"; the list may be long. */
			if ((n == 6 && memcmp(f, "(none)", 6) == 0) || (flags & UAPI_F_NO_ALLOWED_IPS))
				continue;
			for (c = f; c < f + n; c = comma + 1) {
				if ((comma = memchr(c, ',', (size_t)(f + n - c))) == NULL)
					comma = f + n;
				if (!dump_copy(buf, sizeof(buf), c, (size_t)(comma - c)) ||
				    (rc = wg_peer_add_allowed_ip(w, buf)) == ERR_INVAL)
					goto bad;
				if (rc != 0)
					goto fail;
			}
			continue;
		}
		if (!dump_copy(buf, sizeof(buf), f, n))
			goto bad;
		switch (field) {
		case 0:
			if (uapi_key_from_base64(w->public_key, buf) != 0)
				goto bad;
			break;
		case 1:		/* the preshared key: not ours to read */
			break;
		case 2:
			if (strcmp(buf, "(none)") == 0)
				break;
			if (strlen(buf) >= sizeof(w->endpoint) || !endpoint_text_ok(buf))
				goto bad;
			memcpy(w->endpoint, buf, strlen(buf) + 1);
			break;
		case 4:
			if (parse_u64(buf, INT64_MAX, &u) != 0)
				goto bad;
			w->last_handshake_sec = (int64_t)u;
			break;
		case 5:
			if (parse_u64(buf, UINT64_MAX, &w->rx_bytes) != 0)
				goto bad;
			break;
		case 6:
			if (parse_u64(buf, UINT64_MAX, &w->tx_bytes) != 0)
				goto bad;
			break;
		case 7:
			if (strcmp(buf, "off") == 0)
				break;
			if (parse_u64(buf, 65535, &u) != 0)
				goto bad;
			w->keepalive = (int)u;
			break;
		}
	}
	sodium_memzero(buf, sizeof(buf));
	d->npeers++;
	return 0;
bad:
	err_set("uapi: dump line %zu: not a peer line (field %zu)", lineno, field + 1);
	rc = ERR_INVAL;
fail:
	sodium_memzero(buf, sizeof(buf));
	wg_peer_clear(w);
	return rc;
}

int
uapi_parse_dump(struct wg_device **out, const char *text, size_t len, unsigned flags)
{
	struct wg_device *d;
	const struct wg_peer **sorted = NULL;
	const char *p = text, *end = text + len, *nl, *f;
	char buf[UAPI_KEY_B64_LEN + 8];
	size_t cap = 0, lineno = 0, n;
	uint64_t u;
	bool iface = false;
	int rc;

	*out = NULL;
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		err_set("uapi: out of memory");
		return ERR_NOMEM;
	}
	while (p < end) {
		lineno++;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if (nl == p) {
			p = nl + 1;
			continue;
		}
		if (iface) {
			if ((rc = dump_peer(d, &cap, p, nl, lineno, flags)) != 0)
				goto fail;
			p = nl + 1;
			continue;
		}
		/* The interface: private key, public key, port, then fwmark or AWG keys. */
		rc = ERR_INVAL;
		if (!dump_field(&p, nl, &f, &n) || !dump_copy(buf, sizeof(buf), f, n))
			goto bad;
		if (strcmp(buf, "(none)") != 0) {
			if (uapi_key_from_base64(d->private_key, buf) != 0)
				goto bad;
			d->has_private_key = !sodium_is_zero(d->private_key, UAPI_KEY_LEN);
		}
		sodium_memzero(buf, sizeof(buf));
		if (!dump_field(&p, nl, &f, &n) || !dump_field(&p, nl, &f, &n) ||
		    !dump_copy(buf, sizeof(buf), f, n) || parse_u64(buf, 65535, &u) != 0)
			goto bad;
		d->listen_port = (int)u;
		iface = true;
		p = nl + 1;
	}
	if (!iface) {
		err_set("uapi: empty dump");
		rc = ERR_INVAL;
		goto fail;
	}
	if ((rc = sorted_peers(&sorted, d->peers, d->npeers, "the dump")) != 0)
		goto fail;
	free(sorted);
	*out = d;
	return 0;
bad:
	err_set("uapi: dump line %zu: not an interface line", lineno);
fail:
	sodium_memzero(buf, sizeof(buf));
	wg_device_free(d);
	return rc;
}
