/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for gRPC message framing and reassembly, grpc-message decoding and
 * grpc-timeout parsing. The input is cut into DATA-frame-sized chunks at positions the
 * input itself chooses, so every split of a message across frames is explored, and the
 * reassembled messages must equal what a one-shot parse of the same bytes gives.
 */
#include <stdlib.h>
#include <string.h>

#include "grpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink {
	size_t	n, bytes;
	uint32_t sum;
};

static int
on_msg(void *arg, const uint8_t *msg, size_t len)
{
	struct sink *s = arg;
	size_t i;

	s->n++;
	s->bytes += len;
	for (i = 0; i < len; i++)
		s->sum = s->sum * 31 + msg[i];
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct grpc_reasm one, split;
	struct sink a = { 0, 0, 0 }, b = { 0, 0, 0 };
	size_t off, step;
	int ra, rb = 0;
	char *dec, *enc;
	uint64_t ms;

	if (size < 2)
		return 0;
	step = (size_t)data[0] % 17 + 1;
	grpc_reasm_init(&one, 1024);
	grpc_reasm_init(&split, 1024);
	ra = grpc_reasm_feed(&one, data + 1, size - 1, on_msg, &a);
	for (off = 1; off < size && rb == 0; off += step) {
		size_t n = size - off < step ? size - off : step;
		rb = grpc_reasm_feed(&split, data + off, n, on_msg, &b);
	}
	/* However the bytes were split, the result is the same. */
	if (ra != rb || a.n != b.n || a.bytes != b.bytes || a.sum != b.sum)
		abort();
	grpc_reasm_free(&one);
	grpc_reasm_free(&split);

	dec = grpc_percent_decode((const char *)data, size);
	if (dec != NULL) {
		enc = grpc_percent_encode(dec);
		free(enc);
		free(dec);
	}
	(void)grpc_timeout_parse((const char *)data, size, &ms);
	return 0;
}
