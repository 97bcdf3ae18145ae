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

/* Two fixed peers as a peerset (NULL when out of memory). */
static struct peerset *
fixed_peers(void)
{
	static const uint8_t ka[32] = { 0xaa }, kb[32] = { 0xbb };
	static char a4[] = "10.64.0.2/32", a6[] = "fd00::/64";
	static char *const ips_a[] = { a4 }, *const ips_b[] = { a6 };
	const struct peerset_in in[2] = {
		{ ka, 32, ips_a, 1, "192.0.2.10:51820", 25 },
		{ kb, 32, ips_b, 1, "[2001:db8::5]:51821", 0 },
	};
	struct peerset *ps;

	if (peerset_new(&ps) != 0)
		return NULL;
	if (peerset_append(ps, &in[0]) != 0 || peerset_append(ps, &in[1]) != 0 ||
	    peerset_seal(ps) != 0) {
		peerset_free(ps);
		return NULL;
	}
	return ps;
}

/* The device's peers as a peerset; NULL if the peerset refuses them. */
static struct peerset *
device_peers(const struct wg_device *d)
{
	struct peerset *ps;
	size_t i;

	if (peerset_new(&ps) != 0)
		return NULL;
	for (i = 0; i < d->npeers; i++) {
		const struct wg_peer *p = &d->peers[i];
		struct peerset_in in = { p->public_key, 32, p->allowed_ips, p->n_allowed,
			p->endpoint, (uint32_t)p->keepalive };
		if (peerset_append(ps, &in) != 0)
			break;
	}
	if (i < d->npeers || peerset_seal(ps) != 0) {
		peerset_free(ps);
		return NULL;
	}
	return ps;
}

/* The dump parser on the same bytes. */
static void
fuzz_dump(const uint8_t *data, size_t size)
{
	struct wg_device *d = NULL;
	struct wg_desired w;
	struct uapi_counts c;
	struct peerset *ps;
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
	if ((w.peers = ps = device_peers(d)) != NULL) {
		if (uapi_count(&c, d, &w) == 0)
			assert(c.added == 0 && c.removed == 0 && c.changed == 0);
		if (uapi_conf(&text, &len, &w) == 0) {
			assert(strlen(text) == len);
			uapi_body_free(text, len);
		}
		peerset_free(ps);
	}
	wg_device_free(d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wg_device *d = NULL;
	struct wg_desired w;
	struct peerset *ps;
	char *body = NULL;
	size_t len = 0, i;

	fuzz_dump(data, size);
	if (uapi_parse_get(&d, (const char *)data, size) != 0) {
		assert(d == NULL);
		return 0;
	}
	memset(&w, 0, sizeof(w));
	memset(w.private_key, 0x48, 32);
	w.listen_port = 51820;
	if ((w.peers = ps = fixed_peers()) != NULL && uapi_diff(&body, &len, d, &w) == 0) {
		assert(strlen(body) == len);
		uapi_body_free(body, len);
	}
	peerset_free(ps);

	/* The device as its own desired state: no peer line may come out. */
	memset(&w, 0, sizeof(w));
	memcpy(w.private_key, d->private_key, 32);
	w.listen_port = d->listen_port;
	for (i = 0; i < d->npeers; i++)
		if (endpoint_canon((char[64]){ 0 }, d->peers[i].endpoint) != 0)
			break;
	if (i == d->npeers && (w.peers = ps = device_peers(d)) != NULL) {
		if (uapi_diff(&body, &len, d, &w) == 0) {
			assert(strstr(body, "public_key=") == NULL);
			uapi_body_free(body, len);
		}
		peerset_free(ps);
	}
	wg_device_free(d);
	return 0;
}
