/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Address syntax shared by the fleet validator and the daemons: IP literals, CIDR
 * prefixes, "host:port" and host names. Parsing goes through inet_pton(); these helpers
 * only add the port and prefix syntax around it.
 */
#ifndef PHAROS_ADDR_H
#define PHAROS_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ipaddr {
	int	family;		/* AF_INET or AF_INET6 */
	uint8_t	a[16];		/* network order; IPv4 uses a[0..3] */
};

/* A bare IPv4 or IPv6 literal. */
int	 addr_parse_ip(struct ipaddr *out, const char *s);
/*
 * "ip/prefix". *host_bits is set when bits beyond the prefix are non-zero (the caller
 * decides whether that is an error); *out then holds the masked network address.
 */
int	 addr_parse_cidr(struct ipaddr *out, unsigned *prefix, bool *host_bits, const char *s);
/* "ip", "ip:port", "[v6]:port" or a bare v6 literal; *port is -1 when absent. */
int	 addr_parse_ip_port(struct ipaddr *out, int *port, const char *s);
/*
 * "host:port" or "[v6]:port" where host is an IP literal or a DNS name; with
 * port_required false a missing port leaves *port at -1.
 */
int	 addr_parse_host_port(char *host, size_t hostsz, int *port, const char *s,
	    bool port_required);
/* An RFC 1123 host name: labels of [A-Za-z0-9-], no leading/trailing '-', <= 253. */
bool	 addr_valid_hostname(const char *s);
/* "a.b.c.d" or RFC 5952 text of ip into buf (INET6_ADDRSTRLEN is enough). */
const char *addr_ntop(const struct ipaddr *ip, char *buf, size_t bufsz);
/* Compare two addresses: family first, then bytes. */
int	 addr_cmp(const struct ipaddr *, const struct ipaddr *);
/* IPv4 helpers on host-order integers. */
uint32_t addr_v4(const struct ipaddr *);

#endif
