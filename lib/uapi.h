/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A client for the WireGuard cross-platform UAPI (wireguard-go, amneziawg-go): an AF_UNIX
 * stream socket at /var/run/wireguard/IF.sock or /var/run/amneziawg/IF.sock that speaks
 * "get=1" and "set=1" in key=value lines (docs: reference/protocols.md §2, §3).
 *
 * Errors: ERR_SYS for the socket (connect, read, write, timeout), ERR_INVAL for a
 * malformed reply or bad desired state, ERR_TOOBIG for an oversized reply, ERR_LIB when
 * the implementation answered errno=N with N != 0 (the message carries N and its text).
 *
 * The same model also reads and writes what the wg(8)/awg(8) tools speak (uapi_conf(),
 * uapi_parse_dump()), for kernel interfaces driven through the tool.
 *
 * Private keys are wiped with sodium_memzero() by the free functions; a set body made by
 * uapi_diff() or a config made by uapi_conf() may carry a private key, so free it with
 * uapi_body_free().
 */
#ifndef PHAROS_UAPI_H
#define PHAROS_UAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peerset.h"

#define UAPI_KEY_LEN		32
#define UAPI_KEY_HEX_LEN	64	/* without the NUL */
#define UAPI_KEY_B64_LEN	44	/* standard base64 with '=', without the NUL */
#define UAPI_TIMEOUT_MS		5000

struct wg_peer {
	uint8_t	  public_key[UAPI_KEY_LEN];
	char	  endpoint[64];		/* "ip:port" or "[v6]:port"; "" none (desired: leave) */
	int	  keepalive;		/* persistent keepalive in seconds, 0 off */
	int64_t	  last_handshake_sec, last_handshake_nsec;
	uint64_t  rx_bytes, tx_bytes;
	char	**allowed_ips;		/* canonical CIDR text, "10.64.0.2/32" */
	size_t	  n_allowed;
};

struct wg_device {
	uint8_t		 private_key[UAPI_KEY_LEN];
	bool		 has_private_key;
	int		 listen_port;
	uint32_t	 fwmark;
	struct wg_peer	*peers;
	size_t		 npeers;
};

/*
 * What the device should look like. listen_port 0 means "any" (left alone, since get
 * reports the port actually bound). A peer's endpoint "" means "leave it" (UAPI cannot
 * clear an endpoint, and a roaming peer's learned endpoint must not be reset). The AWG
 * keys are sent only when awg is true: jc/jmin/jmax only when jc > 0 (AWG 2.0 refuses
 * jc=0), s3/s4 only when non-zero and h1..h4 only when non-empty (AWG 1.0 knows no s3/s4),
 * i1..i5 only when non-NULL. The peers are a peerset (peerset.h: sorted by key, unique,
 * allowed IPs canonical), borrowed: it must outlive the wg_desired; NULL means none.
 */
struct wg_desired {
	uint8_t		 private_key[UAPI_KEY_LEN];
	int		 listen_port;
	bool		 awg;
	int		 jc, jmin, jmax, s1, s2, s3, s4;
	char		 h[4][24];	/* "123" or "a-b" */
	char		*i[5];
	const struct peerset *peers;
};

/* Free a peer's allowed IPs (the peer itself is not freed). NULL-safe. */
void	wg_peer_clear(struct wg_peer *);
/* Append a CIDR to a peer's allowed IPs, canonicalised (host bits masked). */
int	wg_peer_add_allowed_ip(struct wg_peer *, const char *cidr);
/* Wipe the private key, free the peers and the device. NULL-safe. */
void	wg_device_free(struct wg_device *);
/* Wipe the private key, free the i[] strings (not the peers); leaves *d zeroed. NULL-safe. */
void	wg_desired_clear(struct wg_desired *);

/*
 * Something accepts connections on sock_path: the implementation runs. Cheap whatever
 * the number of peers, unlike a get (a dump of 10,000 peers takes a while).
 */
int	uapi_probe(const char *sock_path);
/* "get=1": the device behind sock_path; *out is the caller's (wg_device_free). */
int	uapi_get(struct wg_device **out, const char *sock_path);
int	uapi_get_timeout(struct wg_device **out, const char *sock_path, int timeout_ms);
/*
 * Skip the peers' allowed IPs (n_allowed 0): for reading handshakes and counters, which
 * on a device of 10,000 peers saves two small allocations a peer on every read.
 */
#define UAPI_F_NO_ALLOWED_IPS	(1U << 0)
int	uapi_get_flags(struct wg_device **out, const char *sock_path, int timeout_ms,
	    unsigned flags);
/*
 * Parse a get reply (the lines, "errno=N" and the blank line). Unknown keys are skipped
 * (AWG device keys, newer versions); bad syntax, bad values, peer keys before the first
 * public_key, device keys after it, duplicate peers or a missing errno line are refused.
 */
int	uapi_parse_get(struct wg_device **out, const char *text, size_t len);
/* "set=1\n" + body + "\n"; 0 when the reply is errno=0. */
int	uapi_set(const char *sock_path, const char *body, size_t len);
/*
 * The minimal set body turning cur into want: changed device keys, then removals of
 * unwanted peers in key order, then new peers in the order of their first allowed IP
 * (peerset_order_by_ip()), then "update_only=true" changes of existing ones in key order.
 * Never replace_peers, so untouched peers keep their sessions. *body
 * is NUL-terminated and "" (len 0) when nothing differs; free it with uapi_body_free().
 */
int	uapi_diff(char **body, size_t *len, const struct wg_device *cur,
	    const struct wg_desired *want);
void	uapi_body_free(char *body, size_t len);

/* What turning cur into want does to peers (what uapi_diff() would send). */
struct uapi_counts {
	size_t	added, removed, changed;
	int64_t	connected_nanos;	/* uapi_set_diff(): when the set connected
					   (clock_mono_nanos()), 0 if it did not */
};
int	uapi_count(struct uapi_counts *, const struct wg_device *cur,
	    const struct wg_desired *want);
/* uapi_diff() and uapi_count() in one pass. */
int	uapi_diff_count(char **body, size_t *len, struct uapi_counts *,
	    const struct wg_device *cur, const struct wg_desired *want);

/*
 * uapi_diff_count() and uapi_set() in one, streamed: the body goes to the socket in
 * chunks as it is made, so the implementation starts on the first peers while the rest
 * are written. busy(busy_arg), if not NULL, is called once while the implementation
 * takes the body (when the socket is first full, else after the last byte), so the
 * caller's own work overlaps with it. Nothing is sent and busy is not called when
 * nothing differs. Whatever can be refused (want, a device listing a key twice) is
 * checked before the first byte; a failure after it (out of memory, the socket) leaves the
 * lines already taken applied, as with any set that fails half way. *sent: bytes sent.
 */
int	uapi_set_diff(const char *sock_path, struct uapi_counts *, size_t *sent,
	    const struct wg_device *cur, const struct wg_desired *want,
	    void (*busy)(void *), void *busy_arg);

/*
 * want as wg(8) configuration text, for `wg syncconf IF /dev/stdin` (or `awg`): an
 * [Interface] with PrivateKey (clamped; none if zero), ListenPort (unless 0) and, when
 * want->awg, Jc..I5 by uapi_diff()'s rules; then a [Peer] per peer, in the order of their
 * first allowed IP (peerset_order_by_ip()), with PublicKey, AllowedIPs (canonical,
 * sorted), Endpoint (unless "") and PersistentKeepalive (always: syncconf leaves one the
 * file omits as it is). No wg-quick keys (Address, MTU,
 * DNS). Checked like uapi_diff(); an AWG i1..i5 holding '#' is refused (a comment there).
 * *text holds the private key: free it with uapi_body_free().
 */
int	uapi_conf(char **text, size_t *len, const struct wg_desired *want);
/*
 * `wg show IF dump` (or `awg show IF dump`): the interface line (private key or
 * "(none)", public key, listen port, then fields that differ between wg and awg, ignored)
 * and a line per peer (public key, preshared key (not kept), endpoint or "(none)",
 * allowed IPs "a,b" or "(none)", latest handshake in seconds, rx, tx, keepalive or "off";
 * later fields ignored). Handshake nanoseconds are 0: dump has seconds only. flags:
 * UAPI_F_NO_ALLOWED_IPS or 0.
 */
int	uapi_parse_dump(struct wg_device **out, const char *text, size_t len, unsigned flags);

/* Key text: 64 lowercase hex digits (UAPI) or 44 characters of standard base64 (wg). */
int	uapi_key_from_hex(uint8_t key[UAPI_KEY_LEN], const char *hex, size_t len);
void	uapi_key_to_hex(char out[UAPI_KEY_HEX_LEN + 1], const uint8_t key[UAPI_KEY_LEN]);
int	uapi_key_from_base64(uint8_t key[UAPI_KEY_LEN], const char *b64);
void	uapi_key_to_base64(char out[UAPI_KEY_B64_LEN + 1], const uint8_t key[UAPI_KEY_LEN]);
/* The public key of a private key (X25519 base point multiplication, clamped). */
int	uapi_public_key(uint8_t pub[UAPI_KEY_LEN], const uint8_t priv[UAPI_KEY_LEN]);

#endif
