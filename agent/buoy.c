/* SPDX-License-Identifier: Apache-2.0 */
/*
 * buoy: the PharosVPN node agent. It serves NodeControl over mutual TLS to exactly one
 * client identity, its own fleet's controller (spiffe://<fleet>/controller, the fleet
 * taken from the node's own certificate), and applies only validated instructions.
 */
#include <sys/stat.h>

#include <event2/event.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "control.h"
#include "dataplane.h"
#include "err.h"
#include "grpc.h"
#include "keys.h"
#include "log.h"
#include "tls.h"
#include "version.h"
#include "wgproc.h"
#include "xray_sup.h"

#define BUOY_PORT	"8444"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: buoy run --state-dir DIR [--listen HOST:PORT] [--interface IF]\n"
	    "                [--dataplane uapi|wgtool|none] [--impl wireguard-go|amneziawg-go]\n"
	    "                [--tool wg|awg|PATH] [--xray BIN|none] [--xray-api HOST:PORT]\n"
	    "                [--verbose]\n"
	    "       buoy keygen --state-dir DIR [--force]\n"
	    "       buoy csr --state-dir DIR --fleet FLEET --name NODE\n"
	    "       buoy --help | --version\n\n"
	    "buoy is the PharosVPN node agent: it serves the NodeControl gRPC service over\n"
	    "mutual TLS 1.3 to its own fleet's controller only, and applies signed config to\n"
	    "the data plane.\n\n"
	    "  --state-dir DIR    holds ca.pem (root + Fleet CA), node.pem (this node's chain),\n"
	    "                     node.key (0600), controller.pub (the controller's Ed25519\n"
	    "                     config-signing key) and, if present, crl.pem; buoy keeps the\n"
	    "                     last applied signed config there (config.signed), and for\n"
	    "                     Xray reality.key (made on first use), xray.json, xray.log\n"
	    "  --dataplane KIND   uapi (default): drive wireguard-go/amneziawg-go over UAPI,\n"
	    "                     starting it when no interface exists; wgtool: drive an\n"
	    "                     existing (kernel) interface with wg/awg syncconf, never\n"
	    "                     creating one; none: record configs, configure nothing\n"
	    "                     (control-plane benchmarks only)\n"
	    "  --interface IF     the data-plane interface (default awg0)\n"
	    "  --impl NAME        the userspace implementation to run (default wireguard-go);\n"
	    "                     with wgtool, amneziawg-go means the awg tool\n"
	    "  --tool NAME        wgtool's tool: wg (default), awg (AmneziaWG) or a path\n"
	    "  --xray BIN         the xray binary, run when the config has an xray section\n"
	    "                     (default: xray in PATH; none, or not found: Xray is not run)\n"
	    "  --xray-api ADDR    where Xray serves its HandlerService (default 127.0.0.1:10085)\n"
	    "  --listen HOST:PORT where to serve (default 0.0.0.0:" BUOY_PORT "; port 0 picks one)\n"
	    "  --verbose          debug logging\n\n"
	    "keygen makes the node's TLS key (node.key) and WireGuard key (wg.key), both 0600,\n"
	    "unless they exist, and prints the WireGuard public key; csr prints a certificate\n"
	    "request for spiffe://FLEET/node/NODE signed with node.key, for the controller to\n"
	    "sign. Private keys never leave the node.\n");
}

static struct grpc_server *server;
static struct tls_policy policy;
static struct control *the_control;

static void
stopped(void *arg)
{
	event_base_loopexit(arg, NULL);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	log_info("buoy: signal %d: shutting down (running calls finish)", (int)sig);
	control_shutdown(the_control);
	grpc_server_shutdown(server, stopped, arg);
}

static const Pharos__V1__NodeConfig *
running_config(void *arg, const struct peerset **peers)
{
	return config_view(arg, peers);
}

static int
cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "dataplane", required_argument, NULL, 'D' },
		{ "interface", required_argument, NULL, 'i' },
		{ "impl", required_argument, NULL, 'I' },
		{ "tool", required_argument, NULL, 'T' },
		{ "xray", required_argument, NULL, 'X' },
		{ "xray-api", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *listen = "0.0.0.0:" BUOY_PORT, *colon, *dpkind = "uapi";
	const char *ifname = "awg0", *impl = "wireguard-go", *tool = NULL;
	const char *xray = NULL, *xray_api = NULL;
	char xray_bin[1024];
	struct node_config nc;
	char ca[4096], cert[4096], key[4096], crl[4096], host[256];
	struct tls_config tc;
	struct control ctl;
	struct grpc_server_opts so;
	const struct grpc_method *methods;
	struct event_base *base;
	struct event *sigterm, *sigint;
	struct stat st;
	SSL_CTX *ctx;
	size_t nmethods;
	int ch, bound = 0;

	/*
	 * Big transient buffers (a UAPI dump or a config of 10,000 peers) come from and go
	 * back to the system: glibc would otherwise raise its mmap threshold after the first
	 * one is freed and keep the next ones in the heap, resident for good.
	 */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	/*
	 * One arena for every thread: the short-lived ones (the signature check, the device
	 * read) would otherwise each get an arena of their own, whose freed pages stayed
	 * resident (~1 MiB more RSS holding 10,000 peers, measured).
	 */
	mallopt(M_ARENA_MAX, 1);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': dir = optarg; break;
		case 'l': listen = optarg; break;
		case 'v': log_set_level(LOG_DEBUG); break;
		case 'D': dpkind = optarg; break;
		case 'i': ifname = optarg; break;
		case 'I': impl = optarg; break;
		case 'T': tool = optarg; break;
		case 'X': xray = optarg; break;
		case 'A': xray_api = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (dir == NULL || optind < argc) {
		usage(stderr);
		return 2;
	}
	if ((colon = strrchr(listen, ':')) == NULL || (size_t)(colon - listen) >= sizeof(host)) {
		fprintf(stderr, "buoy: --listen wants HOST:PORT\n");
		return 2;
	}
	/* Xray: the binary given, or xray in PATH; none found is no error (DISABLED). */
	if (xray != NULL && strcmp(xray, "none") == 0) {
		xray = NULL;
	} else if (wgproc_which(xray_bin, sizeof(xray_bin), xray != NULL ? xray : "xray") == 0) {
		xray = xray_bin;
	} else if (xray != NULL) {
		fprintf(stderr, "buoy: --xray %s: %s\n", xray, err_last());
		return 2;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	snprintf(cert, sizeof(cert), "%s/node.pem", dir);
	snprintf(key, sizeof(key), "%s/node.key", dir);
	snprintf(crl, sizeof(crl), "%s/crl.pem", dir);
	if (stat(key, &st) == 0 && (st.st_mode & 077) != 0)
		log_warnx("buoy: %s is readable by others (mode %03o); it should be 0600", key,
		    (unsigned)(st.st_mode & 0777));
	if (tls_config_load(&tc, ca, cert, key, stat(crl, &st) == 0 ? crl : NULL) != 0 ||
	    (ctx = tls_ctx_new(TLS_SERVER, &tc)) == NULL) {
		log_warnx("buoy: cannot load the node's identity from %s: %s", dir, err_last());
		return 1;
	}
	memset(&policy, 0, sizeof(policy));
	if (tls_ctx_spiffe(&policy.self, ctx) != 0 || policy.self.role != PKI_ROLE_NODE) {
		log_warnx("buoy: %s is not a node certificate (%s)", cert, err_last());
		return 1;
	}
	policy.kind = TLS_ALLOW_CONTROLLER;
	memset(&ctl, 0, sizeof(ctl));
	ctl.self = policy.self;
	ctl.started = (uint64_t)time(NULL);
	{
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ctl.started = (uint64_t)ts.tv_sec;
	}
	ctl.next_seq = 1;
	if (config_open(&nc, dir, &ctl.self) != 0) {
		log_warnx("buoy: %s", err_last());
		return 1;
	}
	ctl.nc = &nc;
	if ((base = event_base_new()) == NULL)
		fatalx("buoy: event_base_new failed");
	if (strcmp(dpkind, "none") == 0) {
		ctl.dp = dp_none_new();
		log_warnx("buoy: data plane 'none': configs are recorded, nothing is configured "
		    "(a benchmark mode)");
	} else if (strcmp(dpkind, "uapi") == 0) {
		ctl.dp = dp_uapi_new(base, dir, ifname, impl, running_config, &nc);
	} else if (strcmp(dpkind, "wgtool") == 0) {
		if (tool == NULL)
			tool = strstr(impl, "amneziawg") != NULL ? "awg" : "wg";
		ctl.dp = dp_wgtool_new(base, dir, ifname, tool, running_config, &nc);
	} else {
		log_warnx("buoy: unknown --dataplane '%s' (uapi, wgtool or none)", dpkind);
		return 2;
	}
	if (ctl.dp == NULL) {
		log_warnx("buoy: data plane: %s", err_last());
		return 1;
	}
	ctl.dp->on_event = control_dp_event;
	ctl.dp->event_arg = &ctl;
	if ((ctl.xs = xray_sup_new(base, dir, xray, xray_api, control_xray_event, &ctl)) == NULL) {
		log_warnx("buoy: xray: %s", err_last());
		return 2;
	}
	ctl.base = base;
	the_control = &ctl;
	/* The last signed config comes back up before any controller contact. */
	control_boot(&ctl);
	methods = control_methods(&ctl, &nmethods);
	memset(&so, 0, sizeof(so));
	so.ssl = ctx;
	so.authorize = tls_authorize_cb;
	so.authorize_arg = &policy;
	server = grpc_server_new(base, &so, methods, nmethods);
	if (server == NULL || grpc_server_listen(server, host, colon + 1, &bound) != 0) {
		log_warnx("buoy: cannot listen on %s: %s", listen, err_last());
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	log_info("buoy: serving NodeControl node=spiffe://%s/node/%s listen=%s:%d version=%s",
	    ctl.self.trust_domain, ctl.self.name, host, bound, PHAROS_VERSION);
	event_base_dispatch(base);
	grpc_server_free(server);
	event_free(sigterm);
	event_free(sigint);
	/* Their timers and the Xray API channel belong to the base: free them first. */
	ctl.dp->free(ctl.dp);
	xray_sup_free(ctl.xs);
	event_base_free(base);
	config_close(&nc);
	control_free(&ctl);
	SSL_CTX_free(ctx);
	tls_config_free(&tc);
	log_info("buoy: stopped");
	return 0;
}

static int
cmd_keys(int argc, char **argv, bool csr)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 'd' },
		{ "fleet", required_argument, NULL, 'f' },
		{ "name", required_argument, NULL, 'n' },
		{ "force", no_argument, NULL, 'F' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *fleet = NULL, *name = NULL;
	bool force = false;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': dir = optarg; break;
		case 'f': fleet = optarg; break;
		case 'n': name = optarg; break;
		case 'F': force = true; break;
		default: usage(stderr); return 2;
		}
	}
	if (dir == NULL || optind < argc || (csr && (fleet == NULL || name == NULL))) {
		usage(stderr);
		return 2;
	}
	if (csr) {
		char *pem = NULL;
		if (keys_csr(&pem, dir, fleet, name) != 0) {
			fprintf(stderr, "buoy csr: %s\n", err_last());
			return 1;
		}
		fputs(pem, stdout);
		free(pem);
	} else {
		uint8_t pub[32];
		char b64[64];
		if (sodium_init() < 0 || keys_generate(dir, force, pub) != 0) {
			fprintf(stderr, "buoy keygen: %s\n", err_last());
			return 1;
		}
		sodium_bin2base64(b64, sizeof(b64), pub, 32, sodium_base64_VARIANT_ORIGINAL);
		printf("wireguard-public-key %s\n", b64);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	log_init("buoy", LOG_INFO);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("buoy %s\n", PHAROS_VERSION);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
		return cmd_keys(argc - 1, argv + 1, false);
	if (argc >= 2 && strcmp(argv[1], "csr") == 0)
		return cmd_keys(argc - 1, argv + 1, true);
	usage(stderr);
	return 2;
}
