/* SPDX-License-Identifier: Apache-2.0 */
/*
 * uapi_tool: the UAPI client and buoy's wgproc/netcfg from the command line, for the
 * namespace tests (tests/agent/uapi_netns.sh).
 *
 *   uapi_tool get SOCK               the device, stable text (peers sorted by key):
 *                                      public_key=B64  listen_port=N  fwmark=N
 *                                      peer=B64 endpoint=EP|- keepalive=N allowed=A,B|-
 *                                        handshake=SEC rx=N tx=N
 *   uapi_tool apply SOCK FILE        diff the live device against FILE, send it, print
 *                                    the body sent (private_key hidden; nothing if equal)
 *   uapi_tool start IMPL IF LOG SOCK wgproc_start + wgproc_wait_socket (5 s); prints pid
 *   uapi_tool cycle IMPL IF LOG SOCK start, wait, wgproc_stop; checks the socket is gone
 *   uapi_tool netcfg IF MTU up|down [ADDR...]
 *   uapi_tool forwarding on|off
 *   uapi_tool masq TABLE IF on|off
 *
 * FILE: one setting a line, '#' comments:
 *   private_key=B64   listen_port=N   jc= jmin= jmax= s1= .. s4= h1= .. h4= i1= .. i5=
 *   (any AWG key turns AWG on), and per peer one line:
 *   peer=B64 [allowed=CIDR,CIDR] [endpoint=IP:PORT] [keepalive=N]
 * Exit 0 ok, 1 failure (message on stderr), 2 usage.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/wgproc.c"

static int
usage(void)
{
	fprintf(stderr, "usage: uapi_tool get SOCK | apply SOCK FILE | start IMPL IF LOG SOCK |"
	    " cycle IMPL IF LOG SOCK | netcfg IF MTU up|down [ADDR...] | forwarding on|off |"
	    " masq TABLE IF on|off\n");
	return 2;
}

static int
fail(const char *what)
{
	fprintf(stderr, "uapi_tool: %s: %s\n", what, err_last());
	return 1;
}

static int
cmp_peer(const void *a, const void *b)
{
	const struct wg_peer *pa = a, *pb = b;

	return memcmp(pa->public_key, pb->public_key, 32);
}

static int
cmd_get(const char *sock)
{
	struct wg_device *d;
	char b64[UAPI_KEY_B64_LEN + 1];
	uint8_t pub[32];
	size_t i, j;

	if (uapi_get(&d, sock) != 0)
		return fail("get");
	if (d->has_private_key && uapi_public_key(pub, d->private_key) == 0) {
		uapi_key_to_base64(b64, pub);
		printf("public_key=%s\n", b64);
	}
	printf("listen_port=%d\n", d->listen_port);
	if (d->fwmark != 0)
		printf("fwmark=%u\n", d->fwmark);
	qsort(d->peers, d->npeers, sizeof(*d->peers), cmp_peer);
	for (i = 0; i < d->npeers; i++) {
		const struct wg_peer *p = &d->peers[i];
		uapi_key_to_base64(b64, p->public_key);
		printf("peer=%s endpoint=%s keepalive=%d allowed=", b64,
		    p->endpoint[0] ? p->endpoint : "-", p->keepalive);
		for (j = 0; j < p->n_allowed; j++)
			printf("%s%s", j ? "," : "", p->allowed_ips[j]);
		printf("%s handshake=%lld rx=%llu tx=%llu\n", p->n_allowed ? "" : "-",
		    (long long)p->last_handshake_sec, (unsigned long long)p->rx_bytes,
		    (unsigned long long)p->tx_bytes);
	}
	wg_device_free(d);
	return 0;
}

static int
num(int *out, const char *s, int max)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < 0 || v > max) {
		err_set("'%s' is not a number 0-%d", s, max);
		return ERR_INVAL;
	}
	*out = (int)v;
	return 0;
}

/* "peer=B64 [allowed=CIDR,...] [endpoint=E] [keepalive=N]" into ps. */
static int
peer_line(struct peerset *ps, char *line)
{
	uint8_t key[UAPI_KEY_LEN];
	char *tok, *save = NULL, *ip, *save2 = NULL, *ips[256];
	struct peerset_in in;
	const char *endpoint = NULL;
	size_t n_ips = 0;
	int keepalive = 0;
	bool have_key = false;

	for (tok = strtok_r(line, " \t", &save); tok != NULL; tok = strtok_r(NULL, " \t", &save)) {
		if (strncmp(tok, "peer=", 5) == 0) {
			if (uapi_key_from_base64(key, tok + 5) != 0)
				return ERR_INVAL;
			have_key = true;
		} else if (strncmp(tok, "allowed=", 8) == 0) {
			for (ip = strtok_r(tok + 8, ",", &save2); ip != NULL;
			    ip = strtok_r(NULL, ",", &save2)) {
				if (n_ips == sizeof(ips) / sizeof(ips[0])) {
					err_set("more than 256 allowed IPs");
					return ERR_INVAL;
				}
				ips[n_ips++] = ip;
			}
		} else if (strncmp(tok, "endpoint=", 9) == 0) {
			endpoint = tok + 9;
		} else if (strncmp(tok, "keepalive=", 10) == 0) {
			if (num(&keepalive, tok + 10, 65535) != 0)
				return ERR_INVAL;
		} else {
			err_set("unknown peer setting '%s'", tok);
			return ERR_INVAL;
		}
	}
	if (!have_key) {
		err_set("a peer line without peer=");
		return ERR_INVAL;
	}
	in = (struct peerset_in){ key, UAPI_KEY_LEN, ips, n_ips, endpoint, (uint32_t)keepalive };
	return peerset_append(ps, &in);
}

/* The desired state in path; its peers go to *ps (the caller frees it, also on error). */
static int
load_desired(struct wg_desired *w, struct peerset **ps, const char *path)
{
	static const char *const ints[] = { "jc", "jmin", "jmax", "s1", "s2", "s3", "s4" };
	int *const dst[] = { &w->jc, &w->jmin, &w->jmax, &w->s1, &w->s2, &w->s3, &w->s4 };
	char line[4096], *eq, *end;
	size_t i, lineno = 0;
	FILE *f;
	int rc = 0;

	memset(w, 0, sizeof(*w));
	if ((rc = peerset_new(ps)) != 0)
		return rc;
	if ((f = fopen(path, "r")) == NULL) {
		err_setsys("%s", path);
		return ERR_SYS;
	}
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		end = line + strlen(line);
		while (end > line && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
			*--end = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (strncmp(line, "peer=", 5) == 0) {
			rc = peer_line(*ps, line);
			continue;
		}
		if ((eq = strchr(line, '=')) == NULL) {
			err_set("line %zu: not key=value", lineno);
			rc = ERR_INVAL;
			break;
		}
		*eq++ = '\0';
		if (strcmp(line, "private_key") == 0) {
			rc = uapi_key_from_base64(w->private_key, eq);
		} else if (strcmp(line, "listen_port") == 0) {
			rc = num(&w->listen_port, eq, 65535);
		} else if (line[0] == 'h' && line[1] >= '1' && line[1] <= '4' && line[2] == '\0') {
			w->awg = true;
			if ((size_t)snprintf(w->h[line[1] - '1'], sizeof(w->h[0]), "%s", eq) >=
			    sizeof(w->h[0])) {
				err_set("line %zu: h value too long", lineno);
				rc = ERR_INVAL;
			}
		} else if (line[0] == 'i' && line[1] >= '1' && line[1] <= '5' && line[2] == '\0') {
			w->awg = true;
			free(w->i[line[1] - '1']);
			if ((w->i[line[1] - '1'] = strdup(eq)) == NULL) {
				err_set("out of memory");
				rc = ERR_NOMEM;
			}
		} else {
			for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
				if (strcmp(line, ints[i]) == 0)
					break;
			if (i == sizeof(ints) / sizeof(ints[0])) {
				err_set("line %zu: unknown key '%s'", lineno, line);
				rc = ERR_INVAL;
			} else {
				w->awg = true;
				rc = num(dst[i], eq, 65535);
			}
		}
	}
	sodium_memzero(line, sizeof(line));
	fclose(f);
	if (rc == 0 && (rc = peerset_seal(*ps)) == 0)
		w->peers = *ps;
	if (rc != 0)
		err_set("%s: %s", path, err_last());
	return rc;
}

static int
cmd_apply(const char *sock, const char *file)
{
	struct wg_device *d = NULL;
	struct wg_desired w;
	struct peerset *ps = NULL;
	char *body = NULL, *line, *nl;
	size_t len = 0;
	int rc;

	if (load_desired(&w, &ps, file) != 0) {
		wg_desired_clear(&w);
		peerset_free(ps);
		return fail("apply");
	}
	if ((rc = uapi_get(&d, sock)) == 0 && (rc = uapi_diff(&body, &len, d, &w)) == 0 &&
	    len > 0)
		rc = uapi_set(sock, body, len);
	if (rc == 0) {
		for (line = body; line != NULL && *line != '\0'; line = nl + 1) {
			nl = strchr(line, '\n');
			if (strncmp(line, "private_key=", 12) == 0)
				printf("private_key=(hidden)\n");
			else
				printf("%.*s\n", (int)(nl - line), line);
		}
	}
	uapi_body_free(body, len);
	wg_device_free(d);
	wg_desired_clear(&w);
	peerset_free(ps);
	return rc == 0 ? 0 : fail("apply");
}

static int
cmd_start(const char *impl, const char *ifname, const char *log, const char *sock, bool cycle)
{
	struct wg_device *d;
	pid_t pid;

	if (wgproc_start(&pid, impl, ifname, log) != 0)
		return fail("start");
	if (wgproc_wait_socket(sock, 5000) != 0) {
		fprintf(stderr, "uapi_tool: wait: %s\n", err_last());
		wgproc_stop(pid, 2000);
		return 1;
	}
	if (!cycle) {
		printf("%ld\n", (long)pid);
		return 0;
	}
	if (wgproc_stop(pid, 2000) != 0)
		return fail("stop");
	if (kill(pid, 0) == 0 || errno != ESRCH) {
		fprintf(stderr, "uapi_tool: pid %ld still exists after stop\n", (long)pid);
		return 1;
	}
	if (uapi_get_timeout(&d, sock, 500) == 0) {
		wg_device_free(d);
		fprintf(stderr, "uapi_tool: %s still answers after stop\n", sock);
		return 1;
	}
	printf("stopped\n");
	return 0;
}

static int
onoff(bool *out, const char *s)
{
	if (strcmp(s, "on") == 0 || strcmp(s, "up") == 0)
		*out = true;
	else if (strcmp(s, "off") == 0 || strcmp(s, "down") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

int
main(int argc, char **argv)
{
	bool on;
	int mtu;

	log_init("uapi_tool", LOG_WARN);
	signal(SIGPIPE, SIG_IGN);	/* as buoy: a child may close stdin early */
	if (argc == 3 && strcmp(argv[1], "get") == 0)
		return cmd_get(argv[2]);
	if (argc == 4 && strcmp(argv[1], "apply") == 0)
		return cmd_apply(argv[2], argv[3]);
	if (argc == 6 && strcmp(argv[1], "start") == 0)
		return cmd_start(argv[2], argv[3], argv[4], argv[5], false);
	if (argc == 6 && strcmp(argv[1], "cycle") == 0)
		return cmd_start(argv[2], argv[3], argv[4], argv[5], true);
	if (argc >= 5 && strcmp(argv[1], "netcfg") == 0) {
		if (num(&mtu, argv[3], 65535) != 0 || onoff(&on, argv[4]) != 0)
			return usage();
		if (netcfg_apply(argv[2], (const char *const *)(uintptr_t)(argv + 5),
		    (size_t)(argc - 5), mtu, on) != 0)
			return fail("netcfg");
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "forwarding") == 0) {
		if (onoff(&on, argv[2]) != 0)
			return usage();
		return netcfg_forwarding(on) == 0 ? 0 : fail("forwarding");
	}
	if (argc == 5 && strcmp(argv[1], "masq") == 0) {
		if (onoff(&on, argv[4]) != 0)
			return usage();
		return netcfg_masquerade(argv[2], argv[3], on) == 0 ? 0 : fail("masq");
	}
	return usage();
}
