/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The wire contract: generated protobuf-c code round-trips our messages, ignores unknown
 * fields (BRIEF.md §3.5), and one protobuf-c behaviour pinned down because it surprised
 * us (see tests/fuzz/fuzz_proto.c).
 */
#include <stdlib.h>
#include <string.h>

#include "pharos/v1/node.pb-c.h"
#include "t.h"

int
main(void)
{
	Pharos__V1__NodeConfig cfg = PHAROS__V1__NODE_CONFIG__INIT, *back;
	Pharos__V1__GetStatusRequest *gs;
	uint8_t buf[512], unknown[600];
	size_t len, ulen;
	static const uint8_t field0[] = { 0x80, 0x00, 0x04 };	/* tag 0 as a 2-byte varint */

	cfg.fleet_id = "alpha";
	cfg.revision = "0123456789abcdef0123456789abcdef01234567";
	cfg.serial = 42;
	len = pharos__v1__node_config__pack(&cfg, buf);
	back = pharos__v1__node_config__unpack(NULL, len, buf);
	T_OK(back != NULL && strcmp(back->fleet_id, "alpha") == 0 && back->serial == 42,
	    "proto: NodeConfig round trip");
	if (back != NULL)
		pharos__v1__node_config__free_unpacked(back, NULL);

	/* A field from a newer controller (number 999, varint) is ignored, not rejected. */
	memcpy(unknown, buf, len);
	ulen = len;
	unknown[ulen++] = 0xb8;		/* (999 << 3) | 0 = 7992 = 0xb8 0x3e */
	unknown[ulen++] = 0x3e;
	unknown[ulen++] = 0x07;
	back = pharos__v1__node_config__unpack(NULL, ulen, unknown);
	T_OK(back != NULL && back->serial == 42, "proto: an unknown field is ignored");
	if (back != NULL)
		pharos__v1__node_config__free_unpacked(back, NULL);

	gs = pharos__v1__get_status_request__unpack(NULL, 0, buf);
	T_OK(gs != NULL, "proto: an empty GetStatusRequest is valid");
	if (gs != NULL)
		pharos__v1__get_status_request__free_unpacked(gs, NULL);

	/* Pinned: protobuf-c 1.4 accepts a non-canonical tag for field 0 as unknown... */
	gs = pharos__v1__get_status_request__unpack(NULL, sizeof(field0), field0);
	T_OK(gs != NULL && gs->base.n_unknown_fields == 1,
	    "proto: protobuf-c accepts field 0 written as 0x80 0x00");
	if (gs != NULL) {
		/* ...re-encodes it canonically (0x00), which it then refuses to decode. */
		len = pharos__v1__get_status_request__pack(gs, buf);
		T_OK(len == 2 && buf[0] == 0x00, "proto: and re-encodes the tag as 0x00");
		T_OK(pharos__v1__get_status_request__unpack(NULL, len, buf) == NULL,
		    "proto: which it does not decode");
		pharos__v1__get_status_request__free_unpacked(gs, NULL);
	}
	T_DONE();
}
