/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the UAPI get-reply parser, then a diff of whatever parsed against
 * a fixed desired state (and against itself turned into a desired state, which must be
 * empty apart from the device keys). The same bytes go to the `wg show dump` parser
 * (with and without allowed IPs); what it parses is counted against itself (nothing may
 * differ) and written as wg(8) config text. Includes uapi.c so its statics are fuzzed too.
 */
#include <assert.h>

#include "../../lib/uapi.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fixed_want(struct wg_desired *w, struct wg_peer *peers)
{
	memset(w, 0, sizeof(*w));
	memset(peers, 0, 2 * sizeof(*peers));
	memset(w->private_key, 0x48, 32);
	w->listen_port = 51820;
	memset(peers[0].public_key, 0xaa, 32);
	strcpy(peers[0].endpoint, "192.0.2.10:51820");
	peers[0].keepalive = 25;
	memset(peers[1].public_key, 0xbb, 32);
	strcpy(peers[1].endpoint, "[2001:db8::5]:51821");
	w->peers = peers;
	w->npeers = 2;
}

/* The dump parser on the same bytes. */
static void
fuzz_dump(const uint8_t *data, size_t size)
{
	struct wg_device *d = NULL;
	struct wg_desired w;
	struct uapi_counts c;
	char *text = NULL;
	size_t len = 0;

	if (uapi_parse_dump(&d, (const char *)data, size, UAPI_F_NO_ALLOWED_IPS) == 0) {
		assert(d != NULL);
		wg_device_free(d);
		d = NULL;
	}
	if (uapi_parse_dump(&d, (const char *)data, size, 0) != 0) {
		assert(d == NULL);
		return;
	}
	memset(&w, 0, sizeof(w));
	memcpy(w.private_key, d->private_key, 32);
	w.listen_port = d->listen_port;
	w.peers = d->peers;
	w.npeers = d->npeers;
	if (uapi_count(&c, d, &w) == 0)
		assert(c.added == 0 && c.removed == 0);
	if (uapi_conf(&text, &len, &w) == 0) {
		assert(strlen(text) == len);
		uapi_body_free(text, len);
	}
	wg_device_free(d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wg_device *d = NULL;
	struct wg_desired w;
	struct wg_peer peers[2];
	char *body = NULL;
	size_t len = 0, i;

	fuzz_dump(data, size);
	if (uapi_parse_get(&d, (const char *)data, size) != 0) {
		assert(d == NULL);
		return 0;
	}
	fixed_want(&w, peers);
	if (wg_peer_add_allowed_ip(&peers[0], "10.64.0.2/32") == 0 &&
	    wg_peer_add_allowed_ip(&peers[1], "fd00::/64") == 0 &&
	    uapi_diff(&body, &len, d, &w) == 0) {
		assert(strlen(body) == len);
		uapi_body_free(body, len);
	}
	wg_peer_clear(&peers[0]);
	wg_peer_clear(&peers[1]);

	/* The device as its own desired state: no peer line may come out. */
	memset(&w, 0, sizeof(w));
	memcpy(w.private_key, d->private_key, 32);
	w.listen_port = d->listen_port;
	w.peers = d->peers;
	w.npeers = d->npeers;
	for (i = 0; i < d->npeers; i++)
		if (endpoint_canon((char[64]){ 0 }, d->peers[i].endpoint) != 0)
			break;
	if (i == d->npeers && uapi_diff(&body, &len, d, &w) == 0) {
		assert(strstr(body, "public_key=") == NULL);
		uapi_body_free(body, len);
	}
	wg_device_free(d);
	return 0;
}
