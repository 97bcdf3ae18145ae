/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for protobuf decoding of every NodeControl request buoy accepts, of
 * the messages carried inside them (the signed NodeConfig and PeerDelta), and of every
 * answer and event cox decodes from a node (a node is not trusted to be sane). The first
 * byte picks the message type. A decoded message is packed again: the size must match
 * the prediction, and, when it carried no unknown fields, the result must decode again.
 * (protobuf-c keeps unknown fields verbatim except their tag, which it re-encodes; a
 * non-canonical tag for field 0 decodes but its re-encoding does not — pinned in
 * tests/unit/test_proto.c. Buoy never re-packs what it received: signatures cover the
 * exact bytes.)
 */
#include <stdlib.h>
#include <string.h>

#include "pharos/v1/node.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const types[] = {
	&pharos__v1__get_status_request__descriptor,
	&pharos__v1__apply_config_request__descriptor,
	&pharos__v1__node_config__descriptor,
	&pharos__v1__add_peer_request__descriptor,
	&pharos__v1__remove_peer_request__descriptor,
	&pharos__v1__peer_delta__descriptor,
	&pharos__v1__get_handshakes_request__descriptor,
	&pharos__v1__restart_service_request__descriptor,
	&pharos__v1__watch_events_request__descriptor,
	&pharos__v1__event__descriptor,
	&pharos__v1__node_status__descriptor,
	&pharos__v1__apply_config_response__descriptor,
	&pharos__v1__peer_response__descriptor,
	&pharos__v1__handshakes_response__descriptor,
	&pharos__v1__restart_service_response__descriptor,
};

/* Whether m has any sub-message set (which might hold unknown fields of its own). */
static int
has_nested(const ProtobufCMessage *m)
{
	unsigned i;

	for (i = 0; i < m->descriptor->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &m->descriptor->fields[i];
		if (f->type == PROTOBUF_C_TYPE_MESSAGE)
			return 1;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const ProtobufCMessageDescriptor *d;
	ProtobufCMessage *m, *again;
	uint8_t *buf;
	size_t len;

	if (size < 1)
		return 0;
	d = types[data[0] % (sizeof(types) / sizeof(types[0]))];
	m = protobuf_c_message_unpack(d, NULL, size - 1, data + 1);
	if (m == NULL)
		return 0;
	len = protobuf_c_message_get_packed_size(m);
	if ((buf = malloc(len ? len : 1)) != NULL) {
		if (protobuf_c_message_pack(m, buf) != len)
			abort();
		again = protobuf_c_message_unpack(d, NULL, len, buf);
		if (again == NULL && m->n_unknown_fields == 0 && !has_nested(m))
			abort();
		if (again != NULL)
			protobuf_c_message_free_unpacked(again, NULL);
		free(buf);
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
