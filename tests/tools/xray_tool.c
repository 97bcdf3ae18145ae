/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xray_tool: agent/xray.c from the command line, for tests/agent/xray_api.sh.
 *
 *   xray_tool add HOST:PORT TAG UUID EMAIL FLOW
 *   xray_tool remove HOST:PORT TAG EMAIL
 *   xray_tool resync HOST:PORT TAG FLOW [UUID,EMAIL ...]
 *     One HandlerService/AlterInbound call each (resync: one per user) over h2c; prints
 *     "status CODE[ MESSAGE]" (resync: "status CODE[ MESSAGE]" for the whole).
 *   xray_tool encode add TAG UUID EMAIL FLOW | encode remove TAG EMAIL
 *     The AlterInboundRequest bytes, lower-case hex on one line.
 *   xray_tool config PORT TARGET SNI[,SNI...] SID[,SID...] FLOW PRIVKEY [UUID,EMAIL ...]
 *     The Xray server config on stdout (SID lists may hold empty ids: ",abcd").
 *   xray_tool keypair
 *     "PrivateKey: X" and "Password: Y", as `xray x25519` prints them.
 *   xray_tool public PRIVKEY
 *     "Password: Y" for that private key, as `xray x25519 -i PRIVKEY` prints it.
 * Exit 0 once a status was obtained (whatever it is) or the output was printed, 1 on
 * other failures (message on stderr), 2 usage.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/xray.c"

static struct event_base *base;
static int got_status = -1;

static int
usage(void)
{
	fprintf(stderr, "usage: xray_tool add HOST:PORT TAG UUID EMAIL FLOW | remove HOST:PORT "
	    "TAG EMAIL | resync HOST:PORT TAG FLOW [UUID,EMAIL...] | encode add TAG UUID EMAIL "
	    "FLOW | encode remove TAG EMAIL | config PORT TARGET SNIS SIDS FLOW PRIVKEY "
	    "[UUID,EMAIL...] | keypair | public PRIVKEY\n");
	return 2;
}

static int
fail(const char *what)
{
	fprintf(stderr, "xray_tool: %s: %s\n", what, err_last());
	return 1;
}

static void
on_done(void *arg, int status, const char *message)
{
	(void)arg;
	got_status = status;
	printf("status %d%s%s\n", status, message ? " " : "", message ? message : "");
	fflush(stdout);
	event_base_loopexit(base, NULL);
}

/* Split "a,b,,c" into a NULL-terminated vector (empty items kept); s is modified. */
static char **
split(char *s, size_t *n)
{
	char **v = NULL, **nv, *tok;

	*n = 0;
	while ((tok = strsep(&s, ",")) != NULL) {
		if ((nv = realloc(v, (*n + 2) * sizeof(*v))) == NULL) {
			free(v);
			return NULL;
		}
		v = nv;
		v[(*n)++] = tok;
		v[*n] = NULL;
	}
	return v;
}

/* "UUID,EMAIL" arguments into users; the strings stay in argv. */
static Pharos__V1__VlessUser **
parse_users(char **argv, int argc)
{
	Pharos__V1__VlessUser **v;
	int i;

	if ((v = calloc((size_t)argc + 1, sizeof(*v))) == NULL)
		return NULL;
	for (i = 0; i < argc; i++) {
		char *comma = strchr(argv[i], ',');
		if (comma == NULL || (v[i] = malloc(sizeof(**v))) == NULL) {
			fprintf(stderr, "xray_tool: \"%s\" is not UUID,EMAIL\n", argv[i]);
			while (i-- > 0)
				free(v[i]);
			free(v);
			return NULL;
		}
		pharos__v1__vless_user__init(v[i]);
		*comma = '\0';
		v[i]->uuid = argv[i];
		v[i]->email = comma + 1;
	}
	return v;
}

static void
free_users(Pharos__V1__VlessUser **v, int n)
{
	int i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int
cmd_api(int argc, char **argv)
{
	struct xray_api *api;
	Pharos__V1__VlessUser **users = NULL;
	char *target = argv[2], *colon = strrchr(target, ':');
	int rc;

	*colon = '\0';
	if ((base = event_base_new()) == NULL)
		return fail("event_base_new");
	if ((api = xray_api_new(base, target, colon + 1)) == NULL) {
		event_base_free(base);
		return fail("xray_api_new");
	}
	if (strcmp(argv[1], "add") == 0) {
		rc = xray_api_add_user(api, argv[3], argv[4], argv[5], argv[6], on_done, NULL);
	} else if (strcmp(argv[1], "remove") == 0) {
		rc = xray_api_remove_user(api, argv[3], argv[4], on_done, NULL);
	} else {
		if ((users = parse_users(argv + 5, argc - 5)) == NULL)
			return 1;
		rc = xray_api_resync(api, argv[3], users, (size_t)(argc - 5), argv[4], on_done,
		    NULL);
	}
	if (rc == 0)
		event_base_dispatch(base);
	else
		fail(argv[1]);
	xray_api_free(api);
	free_users(users, argc - 5);
	event_base_free(base);
	return got_status >= 0 ? 0 : 1;
}

static int
cmd_encode(int argc, char **argv)
{
	uint8_t *b;
	size_t n, i;
	int rc;

	if (strcmp(argv[2], "add") == 0 && argc == 7)
		rc = xray_encode_add_user(&b, &n, argv[3], argv[4], argv[5], argv[6]);
	else if (strcmp(argv[2], "remove") == 0 && argc == 5)
		rc = xray_encode_remove_user(&b, &n, argv[3], argv[4]);
	else
		return usage();
	if (rc != 0)
		return fail("encode");
	for (i = 0; i < n; i++)
		printf("%02x", b[i]);
	printf("\n");
	free(b);
	return 0;
}

static int
cmd_config(int argc, char **argv)
{
	Pharos__V1__NodeConfig cfg = PHAROS__V1__NODE_CONFIG__INIT;
	Pharos__V1__Reality r = PHAROS__V1__REALITY__INIT;
	Pharos__V1__VlessUser **users;
	char *json;
	int rc;

	r.port = (uint32_t)strtoul(argv[2], NULL, 10);
	r.target = argv[3];
	r.server_names = split(argv[4], &r.n_server_names);
	r.short_ids = split(argv[5], &r.n_short_ids);
	r.flow = argv[6];
	users = parse_users(argv + 8, argc - 8);
	if (r.server_names == NULL || r.short_ids == NULL || users == NULL) {
		free(r.server_names);
		free(r.short_ids);
		free_users(users, argc - 8);
		return 1;
	}
	cfg.xray = &r;
	cfg.vless_users = users;
	cfg.n_vless_users = (size_t)(argc - 8);
	rc = xray_config_json(&json, &cfg, argv[7], NULL);
	free(r.server_names);
	free(r.short_ids);
	free_users(users, argc - 8);
	if (rc != 0)
		return fail("config");
	fputs(json, stdout);
	xray_config_free(json);
	return 0;
}

int
main(int argc, char **argv)
{
	char priv[XRAY_KEY_B64_SIZE], pub[XRAY_KEY_B64_SIZE];

	log_init("xray_tool", getenv("XRAY_TOOL_DEBUG") ? LOG_DEBUG : LOG_WARN);
	if (argc < 2)
		return usage();
	if ((strcmp(argv[1], "add") == 0 && argc == 7) ||
	    (strcmp(argv[1], "remove") == 0 && argc == 5) ||
	    (strcmp(argv[1], "resync") == 0 && argc >= 5)) {
		if (strrchr(argv[2], ':') == NULL)
			return usage();
		return cmd_api(argc, argv);
	}
	if (strcmp(argv[1], "encode") == 0 && argc >= 3)
		return cmd_encode(argc, argv);
	if (strcmp(argv[1], "config") == 0 && argc >= 8)
		return cmd_config(argc, argv);
	if (strcmp(argv[1], "keypair") == 0 && argc == 2) {
		if (xray_reality_keypair(priv, pub) != 0)
			return fail("keypair");
		printf("PrivateKey: %s\nPassword: %s\n", priv, pub);
		sodium_memzero(priv, sizeof(priv));
		return 0;
	}
	if (strcmp(argv[1], "public") == 0 && argc == 3) {
		uint8_t raw[32];
		if (xray_reality_public(raw, argv[2]) != 0)
			return fail("public");
		sodium_bin2base64(pub, sizeof(pub), raw, sizeof(raw),
		    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		printf("Password: %s\n", pub);
		return 0;
	}
	return usage();
}
