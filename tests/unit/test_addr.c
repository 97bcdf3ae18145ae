/* SPDX-License-Identifier: Apache-2.0 */
/* Address syntax helpers. */
#include <arpa/inet.h>

#include "addr.h"
#include "t.h"

int
main(void)
{
	struct ipaddr ip;
	unsigned prefix;
	bool host;
	int port;
	char h[256], buf[64];

	T_OK(addr_parse_ip(&ip, "192.0.2.1") == 0 && ip.family == AF_INET, "addr: IPv4");
	T_OK(addr_parse_ip(&ip, "2001:db8::1") == 0 && ip.family == AF_INET6, "addr: IPv6");
	T_OK(addr_parse_ip(&ip, "192.0.2.256") != 0, "addr: 192.0.2.256 refused");
	T_OK(addr_parse_cidr(&ip, &prefix, &host, "10.64.0.0/16") == 0 && prefix == 16 && !host,
	    "addr: CIDR");
	T_OK(addr_parse_cidr(&ip, &prefix, &host, "10.64.1.1/16") == 0 && host,
	    "addr: CIDR host bits detected");
	T_STREQ(addr_ntop(&ip, buf, sizeof(buf)), "10.64.0.0", "addr: CIDR masked");
	T_OK(addr_parse_cidr(&ip, &prefix, &host, "10.64.0.0/33") != 0, "addr: /33 refused");
	T_OK(addr_parse_cidr(&ip, &prefix, &host, "10.64.0.0/016") != 0, "addr: /016 refused");
	T_OK(addr_parse_cidr(&ip, &prefix, &host, "fd00::/64") == 0 && prefix == 64,
	    "addr: IPv6 CIDR");
	T_OK(addr_parse_ip_port(&ip, &port, "192.0.2.1:443") == 0 && port == 443,
	    "addr: IPv4:port");
	T_OK(addr_parse_ip_port(&ip, &port, "[2001:db8::1]:443") == 0 && port == 443 &&
	    ip.family == AF_INET6, "addr: [v6]:port");
	T_OK(addr_parse_ip_port(&ip, &port, "2001:db8::1") == 0 && port == -1,
	    "addr: bare v6 has no port");
	T_OK(addr_parse_ip_port(&ip, &port, "192.0.2.1:0") != 0, "addr: port 0 refused");
	T_OK(addr_parse_ip_port(&ip, &port, "192.0.2.1:65536") != 0, "addr: port 65536 refused");
	T_OK(addr_parse_ip_port(&ip, &port, "[192.0.2.1]:80") != 0, "addr: bracketed v4 refused");
	T_OK(addr_parse_host_port(h, sizeof(h), &port, "www.example.com:443", true) == 0 &&
	    port == 443 && strcmp(h, "www.example.com") == 0, "addr: host:port");
	T_OK(addr_parse_host_port(h, sizeof(h), &port, "www.example.com", true) != 0,
	    "addr: missing port refused when required");
	T_OK(addr_parse_host_port(h, sizeof(h), &port, "www.example.com", false) == 0 &&
	    port == -1, "addr: port optional");
	T_OK(addr_parse_host_port(h, sizeof(h), &port, "bad host:22", false) != 0,
	    "addr: space in host refused");
	T_OK(addr_valid_hostname("a-b.example.com"), "addr: host name");
	T_OK(!addr_valid_hostname("-a.example.com"), "addr: leading dash refused");
	T_OK(!addr_valid_hostname("a..b"), "addr: empty label refused");
	T_OK(!addr_valid_hostname("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b"),
	    "addr: 64-character label refused");
	T_DONE();
}
