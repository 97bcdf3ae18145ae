/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "err.h"

int
addr_parse_ip(struct ipaddr *out, const char *s)
{
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, s, out->a) == 1) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, out->a) == 1) {
		out->family = AF_INET6;
		return 0;
	}
	err_set("'%s' is not an IP address", s);
	return ERR_INVAL;
}

static int
parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	if (*s == '\0' || !isdigit((unsigned char)*s) || (s[0] == '0' && s[1] != '\0'))
		return ERR_INVAL;
	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || *out > max)
		return ERR_INVAL;
	return 0;
}

int
addr_parse_cidr(struct ipaddr *out, unsigned *prefix, bool *host_bits, const char *s)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	unsigned long p;
	unsigned max, i;

	if (slash == NULL || (size_t)(slash - s) >= sizeof(buf)) {
		err_set("'%s' is not a CIDR prefix (expected address/length)", s);
		return ERR_INVAL;
	}
	memcpy(buf, s, (size_t)(slash - s));
	buf[slash - s] = '\0';
	if (addr_parse_ip(out, buf) != 0) {
		err_set("'%s' is not a CIDR prefix: '%s' is not an IP address", s, buf);
		return ERR_INVAL;
	}
	max = out->family == AF_INET ? 32 : 128;
	if (parse_uint(slash + 1, max, &p) != 0) {
		err_set("'%s': prefix length must be 0-%u", s, max);
		return ERR_INVAL;
	}
	*prefix = (unsigned)p;
	*host_bits = false;
	for (i = 0; i < max / 8; i++) {
		unsigned bits = *prefix > i * 8 ? *prefix - i * 8 : 0;
		uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));
		if (out->a[i] & ~mask)
			*host_bits = true;
		out->a[i] &= mask;
	}
	return 0;
}

int
addr_parse_ip_port(struct ipaddr *out, int *port, const char *s)
{
	char buf[64];
	const char *colon;
	unsigned long p;
	size_t n;

	*port = -1;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':' || (n = (size_t)(close - s - 1)) >= sizeof(buf))
			goto bad;
		memcpy(buf, s + 1, n);
		buf[n] = '\0';
		if (addr_parse_ip(out, buf) != 0 || out->family != AF_INET6)
			goto bad;
		if (parse_uint(close + 2, 65535, &p) != 0 || p == 0)
			goto badport;
		*port = (int)p;
		return 0;
	}
	colon = strchr(s, ':');
	if (colon != NULL && strchr(colon + 1, ':') == NULL) {
		/* Exactly one colon: IPv4 with a port. */
		if ((n = (size_t)(colon - s)) >= sizeof(buf))
			goto bad;
		memcpy(buf, s, n);
		buf[n] = '\0';
		if (addr_parse_ip(out, buf) != 0 || out->family != AF_INET)
			goto bad;
		if (parse_uint(colon + 1, 65535, &p) != 0 || p == 0)
			goto badport;
		*port = (int)p;
		return 0;
	}
	if (addr_parse_ip(out, s) == 0)
		return 0;
bad:
	err_set("'%s' is not an IP address or IP:port (IPv6 with a port is [addr]:port)", s);
	return ERR_INVAL;
badport:
	err_set("'%s': port must be 1-65535", s);
	return ERR_INVAL;
}

bool
addr_valid_hostname(const char *s)
{
	size_t len = strlen(s), label = 0;
	const char *p;

	if (len == 0 || len > 253)
		return false;
	for (p = s; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-')
			return false;
		if (label == 0 && *p == '-')
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && p[-1] != '-';
}

int
addr_parse_host_port(char *host, size_t hostsz, int *port, const char *s, bool port_required)
{
	struct ipaddr ip;
	const char *colon;
	unsigned long p;
	size_t n;

	*port = -1;
	if (s[0] == '[' || (strchr(s, ':') != NULL && strchr(strchr(s, ':') + 1, ':') != NULL)) {
		if (addr_parse_ip_port(&ip, port, s) != 0)
			return ERR_INVAL;
		if (*port < 0 && port_required)
			goto noport;
		addr_ntop(&ip, host, hostsz);
		return 0;
	}
	colon = strrchr(s, ':');
	n = colon != NULL ? (size_t)(colon - s) : strlen(s);
	if (n >= hostsz || n == 0) {
		err_set("'%s': expected host:port", s);
		return ERR_INVAL;
	}
	memcpy(host, s, n);
	host[n] = '\0';
	if (addr_parse_ip(&ip, host) != 0 && !addr_valid_hostname(host)) {
		err_set("'%s': '%s' is neither an IP address nor a valid host name", s, host);
		return ERR_INVAL;
	}
	if (colon == NULL) {
		if (port_required)
			goto noport;
		return 0;
	}
	if (parse_uint(colon + 1, 65535, &p) != 0 || p == 0) {
		err_set("'%s': port must be 1-65535", s);
		return ERR_INVAL;
	}
	*port = (int)p;
	return 0;
noport:
	err_set("'%s': a port is required (host:port)", s);
	return ERR_INVAL;
}

const char *
addr_ntop(const struct ipaddr *ip, char *buf, size_t bufsz)
{
	if (inet_ntop(ip->family, ip->a, buf, (socklen_t)bufsz) == NULL && bufsz > 0)
		buf[0] = '\0';
	return buf;
}

int
addr_cmp(const struct ipaddr *x, const struct ipaddr *y)
{
	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	return memcmp(x->a, y->a, x->family == AF_INET ? 4 : 16);
}

uint32_t
addr_v4(const struct ipaddr *ip)
{
	return (uint32_t)ip->a[0] << 24 | (uint32_t)ip->a[1] << 16 |
	    (uint32_t)ip->a[2] << 8 | ip->a[3];
}
