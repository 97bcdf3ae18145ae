/* SPDX-License-Identifier: Apache-2.0 */
/* The node's own keys, made on the node (buoy keygen, buoy csr). */
#ifndef PHAROS_KEYS_H
#define PHAROS_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#define WG_KEY_FILE	"wg.key"

/* Create DIR (0700), node.key and wg.key (0600) unless present (or force); *wg_pub set. */
int	keys_generate(const char *dir, bool force, uint8_t wg_pub[32]);
/* The WireGuard public key from DIR/wg.key. */
int	keys_wg_public(uint8_t pub[32], const char *dir);
/* A PEM CSR for spiffe://<fleet>/node/<name>, signed with DIR/node.key. */
int	keys_csr(char **pem, const char *dir, const char *fleet, const char *name);

#endif
