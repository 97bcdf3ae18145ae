/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tunnel addresses for devices: a device key keeps its address for as long as the
 * controller remembers it (state.db), whatever else changes in the fleet. A new key gets
 * a free address chosen from a hash of the key (so independent controllers mostly agree)
 * with linear probing; .0, the gateway .1 and the broadcast address are never handed out.
 */
#ifndef PHAROS_IPAM_H
#define PHAROS_IPAM_H

#include <stddef.h>
#include <stdint.h>

struct ipam;

/* pool4 "a.b.c.d/len" (required); pool6 "prefix/len" or NULL. */
int	 ipam_new(struct ipam **out, const char *pool4, const char *pool6);
void	 ipam_free(struct ipam *);
/* A remembered assignment (from state.db or a base revision); ignored if outside the pool. */
int	 ipam_seed(struct ipam *, const uint8_t key[32], const char *v4, const char *v6);
/* Reserve an address given explicitly in the fleet (device `address`). */
int	 ipam_reserve(struct ipam *, const uint8_t key[32], const char *v4);
/* The address of key, assigning a free one if it has none; "IP" text into v4/v6 ("" if no pool6). */
int	 ipam_get(struct ipam *, const uint8_t key[32], char v4[16], char v6[46]);
/* Assignments made since ipam_new() or the last ipam_clear_new(), for the caller to persist. */
typedef int (*ipam_fn)(void *arg, const uint8_t key[32], const char *v4, const char *v6);
int	 ipam_each_new(const struct ipam *, ipam_fn, void *arg);
void	 ipam_clear_new(struct ipam *);
size_t	 ipam_count(const struct ipam *);

#endif
