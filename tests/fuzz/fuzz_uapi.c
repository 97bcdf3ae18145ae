/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the UAPI get-reply parser, then a diff of whatever parsed against
 * a fixed desired state (and against itself turned into a desired state, which must be
 * empty apart from the device keys). Includes uapi.c so its statics are fuzzed too.
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wg_device *d = NULL;
	struct wg_desired w;
	struct wg_peer peers[2];
	char *body = NULL;
	size_t len = 0, i;

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
