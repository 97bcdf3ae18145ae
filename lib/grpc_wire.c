/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The parts of gRPC's wire format that need no connection: message framing and
 * reassembly, grpc-message percent-encoding, grpc-timeout, status mappings. Pure
 * functions, so they are fuzzed directly (tests/fuzz/fuzz_grpc_wire.c).
 */
#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "grpc.h"

void
grpc_reasm_init(struct grpc_reasm *r, size_t max)
{
	memset(r, 0, sizeof(*r));
	r->max = max ? max : GRPC_MAX_MESSAGE_DEFAULT;
}

void
grpc_reasm_free(struct grpc_reasm *r)
{
	free(r->buf);
	r->buf = NULL;
	r->have = r->len = r->hdr_have = 0;
	r->in_msg = false;
}

bool
grpc_reasm_idle(const struct grpc_reasm *r)
{
	return r->hdr_have == 0 && !r->in_msg;
}

size_t
grpc_reasm_buffered(const struct grpc_reasm *r)
{
	return r->in_msg ? r->have : 0;
}

int
grpc_reasm_feed(struct grpc_reasm *r, const uint8_t *data, size_t len, grpc_reasm_fn on_msg,
    void *arg)
{
	int rc;

	while (len > 0) {
		if (!r->in_msg) {
			size_t take = 5 - r->hdr_have;
			if (take > len)
				take = len;
			memcpy(r->hdr + r->hdr_have, data, take);
			r->hdr_have += take;
			data += take;
			len -= take;
			if (r->hdr_have < 5)
				return 0;
			r->hdr_have = 0;
			if (r->hdr[0] == 1)
				return GRPC_UNIMPLEMENTED;	/* compressed: we accept identity only */
			if (r->hdr[0] != 0)
				return GRPC_INTERNAL;
			r->len = (size_t)r->hdr[1] << 24 | (size_t)r->hdr[2] << 16 |
			    (size_t)r->hdr[3] << 8 | r->hdr[4];
			if (r->len > r->max)
				return GRPC_RESOURCE_EXHAUSTED;
			r->have = 0;
			r->in_msg = true;
			/* A whole message in this chunk: hand it over without copying. */
			if (len >= r->len) {
				r->in_msg = false;
				rc = on_msg(arg, data, r->len);
				data += r->len;
				len -= r->len;
				if (rc != 0)
					return rc;
				continue;
			}
			if ((r->buf = malloc(r->len ? r->len : 1)) == NULL)
				return GRPC_RESOURCE_EXHAUSTED;
		}
		{
			size_t take = r->len - r->have;
			if (take > len)
				take = len;
			memcpy(r->buf + r->have, data, take);
			r->have += take;
			data += take;
			len -= take;
		}
		if (r->have == r->len) {
			uint8_t *msg = r->buf;
			r->buf = NULL;
			r->in_msg = false;
			r->heap_msg = true;
			rc = on_msg(arg, msg, r->len);
			r->heap_msg = false;
			if (!r->kept)
				free(msg);
			r->kept = false;
			if (rc != 0)
				return rc;
		}
	}
	return 0;
}

int
grpc_frame(struct evbuffer *out, const uint8_t *msg, size_t len)
{
	uint8_t hdr[5];

	if (len > UINT32_MAX)
		return ERR_TOOBIG;
	hdr[0] = 0;
	hdr[1] = (uint8_t)(len >> 24);
	hdr[2] = (uint8_t)(len >> 16);
	hdr[3] = (uint8_t)(len >> 8);
	hdr[4] = (uint8_t)len;
	if (evbuffer_add(out, hdr, 5) != 0 || (len > 0 && evbuffer_add(out, msg, len) != 0))
		return ERR_NOMEM;
	return 0;
}

char *
grpc_percent_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s), i, j = 0;
	char *out;

	if (n > (SIZE_MAX - 1) / 3 || (out = malloc(n * 3 + 1)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c <= 0x7e && c != '%') {
			out[j++] = (char)c;
		} else {
			out[j++] = '%';
			out[j++] = hex[c >> 4];
			out[j++] = hex[c & 15];
		}
	}
	out[j] = '\0';
	return out;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *
grpc_percent_decode(const char *s, size_t len)
{
	char *out;
	size_t i, j = 0;

	if (len == SIZE_MAX || (out = malloc(len + 1)) == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		int hi, lo;
		if (s[i] == '%' && i + 2 < len && (hi = hexval(s[i + 1])) >= 0 &&
		    (lo = hexval(s[i + 2])) >= 0) {
			out[j++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[j++] = s[i];
		}
	}
	out[j] = '\0';
	return out;
}

int
grpc_timeout_parse(const char *s, size_t len, uint64_t *ms)
{
	uint64_t v = 0, div = 1, mul = 1;
	size_t i;

	if (len < 2 || len > 9)
		return ERR_INVAL;
	for (i = 0; i + 1 < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return ERR_INVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	switch (s[len - 1]) {
	case 'H': mul = 3600000; break;
	case 'M': mul = 60000; break;
	case 'S': mul = 1000; break;
	case 'm': break;
	case 'u': div = 1000; break;
	case 'n': div = 1000000; break;
	default: return ERR_INVAL;
	}
	*ms = v * mul / div + (v * mul % div != 0);
	if (*ms == 0)
		*ms = 1;
	return 0;
}

void
grpc_timeout_format(char buf[16], uint64_t ms)
{
	if (ms < 100000000ULL)
		snprintf(buf, 16, "%llum", (unsigned long long)ms);
	else if (ms / 1000 < 100000000ULL)
		snprintf(buf, 16, "%lluS", (unsigned long long)((ms + 999) / 1000));
	else
		snprintf(buf, 16, "%lluH", (unsigned long long)((ms / 3600000) % 100000000ULL));
}

const char *
grpc_status_name(int status)
{
	static const char *const names[] = { "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
	    "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
	    "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED" };

	if (status < 0 || status > 16)
		return "UNKNOWN";
	return names[status];
}

int
grpc_status_from_http(int http)
{
	switch (http) {
	case 400: case 431: return GRPC_INTERNAL;
	case 401: return GRPC_UNAUTHENTICATED;
	case 403: return GRPC_PERMISSION_DENIED;
	case 404: return GRPC_UNIMPLEMENTED;
	case 429: case 502: case 503: case 504: return GRPC_UNAVAILABLE;
	default: return GRPC_UNKNOWN;
	}
}

int
grpc_status_from_rst(uint32_t code)
{
	switch (code) {
	case NGHTTP2_REFUSED_STREAM: return GRPC_UNAVAILABLE;
	case NGHTTP2_CANCEL: return GRPC_CANCELLED;
	case NGHTTP2_ENHANCE_YOUR_CALM: return GRPC_RESOURCE_EXHAUSTED;
	case NGHTTP2_INADEQUATE_SECURITY: return GRPC_PERMISSION_DENIED;
	default: return GRPC_INTERNAL;
	}
}
