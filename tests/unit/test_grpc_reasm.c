/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gRPC message reassembler (lib/grpc_wire.c): messages split anywhere come out whole,
 * one whole in a chunk comes out in place, and one that arrived in pieces can be kept by
 * the callback instead of copied (how a server call takes its request).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "grpc.h"
#include "t.h"

struct seen {
	int		 n;
	size_t		 len[4];
	bool		 heap[4];
	uint8_t		*kept;		/* the first heap message, if keep */
	bool		 keep;
	uint8_t		 first[8];
};

static int
on_msg(void *arg, const uint8_t *msg, size_t len)
{
	struct seen *s = arg;

	if (s->n < 4) {
		s->len[s->n] = len;
		s->heap[s->n] = false;
	}
	if (s->n == 0 && len > 0)
		memcpy(s->first, msg, len < 8 ? len : 8);
	s->n++;
	return 0;
}

static struct grpc_reasm *current;	/* the reassembler on_msg_keep() is called from */

static int
on_msg_keep(void *arg, const uint8_t *msg, size_t len)
{
	struct seen *s = arg;

	if (s->n < 4) {
		s->len[s->n] = len;
		s->heap[s->n] = current->heap_msg;
	}
	if (s->keep && current->heap_msg && s->kept == NULL) {
		s->kept = (uint8_t *)(uintptr_t)msg;
		current->kept = true;
	}
	s->n++;
	return 0;
}

/* Two messages of n and 3 bytes, framed back to back into out; returns the length. */
static size_t
frame2(uint8_t *out, size_t n)
{
	size_t i, o = 0;

	out[o++] = 0;
	out[o++] = (uint8_t)(n >> 24);
	out[o++] = (uint8_t)(n >> 16);
	out[o++] = (uint8_t)(n >> 8);
	out[o++] = (uint8_t)n;
	for (i = 0; i < n; i++)
		out[o++] = (uint8_t)(i * 7 + 1);
	memcpy(out + o, "\0\0\0\0\3abc", 8);
	return o + 8;
}

int
main(void)
{
	static uint8_t wire[70000];
	struct grpc_reasm r;
	struct seen s;
	static const size_t steps[] = { 1, 2, 3, 4, 5, 6, 7, 1000 };
	size_t len = frame2(wire, 65536), i, k, step;
	int rc;

	/* Whole in one chunk: both come out, in place. */
	grpc_reasm_init(&r, 0);
	memset(&s, 0, sizeof(s));
	current = &r;
	rc = grpc_reasm_feed(&r, wire, len, on_msg_keep, &s);
	T_OK(rc == 0 && s.n == 2 && s.len[0] == 65536 && s.len[1] == 3 && !s.heap[0] &&
	    !s.heap[1], "reasm: two messages in one chunk come out in place");
	T_OK(grpc_reasm_idle(&r), "reasm: idle after whole messages");
	grpc_reasm_free(&r);

	/* Split every 1 to 7 bytes and every 1000: the same two messages. */
	for (k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		step = steps[k];
		grpc_reasm_init(&r, 0);
		memset(&s, 0, sizeof(s));
		rc = 0;
		for (i = 0; i < len && rc == 0; i += step)
			rc = grpc_reasm_feed(&r, wire + i, len - i < step ? len - i : step, on_msg, &s);
		T_OK(rc == 0 && s.n == 2 && s.len[0] == 65536 && s.len[1] == 3 &&
		    s.first[0] == 1 && s.first[1] == 8, "reasm: split every %zu bytes", step);
		grpc_reasm_free(&r);
	}

	/* In pieces, kept by the callback: the same bytes, and ours to free. */
	grpc_reasm_init(&r, 0);
	memset(&s, 0, sizeof(s));
	s.keep = true;
	current = &r;
	rc = grpc_reasm_feed(&r, wire, 1000, on_msg_keep, &s);
	rc = rc != 0 ? rc : grpc_reasm_feed(&r, wire + 1000, len - 1000, on_msg_keep, &s);
	T_OK(rc == 0 && s.n == 2 && s.heap[0] && !s.heap[1] && s.kept != NULL,
	    "reasm: a message that came in pieces is handed over on the heap");
	T_OK(s.kept != NULL && s.kept[0] == 1 && s.kept[65535] == (uint8_t)(65535 * 7 + 1),
	    "reasm: the kept message holds its bytes after feed() returned");
	T_OK(!r.heap_msg && !r.kept, "reasm: heap_msg and kept are reset after the callback");
	free(s.kept);
	grpc_reasm_free(&r);

	/* Announced beyond the limit: refused before anything is buffered. */
	grpc_reasm_init(&r, 1024);
	memset(&s, 0, sizeof(s));
	rc = grpc_reasm_feed(&r, wire, 5, on_msg, &s);
	T_OK(rc == GRPC_RESOURCE_EXHAUSTED && grpc_reasm_buffered(&r) == 0 && s.n == 0,
	    "reasm: a message over the limit is refused from its prefix");
	grpc_reasm_free(&r);
	T_DONE();
}
