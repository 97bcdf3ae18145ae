/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One YAML document as a tree, with the position of every key and value. Built on
 * libyaml's event parser with fixed limits, so hostile input costs bounded memory and
 * time: no anchors or aliases (so no alias bombs), no duplicate keys, bounded depth and
 * scalar size. Problems are reported to a struct diag; the tree is still returned when
 * they are not syntax errors, so the caller can report everything in one pass.
 */
#ifndef PHAROS_YTREE_H
#define PHAROS_YTREE_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"

struct arena;

enum ytype { Y_NULL, Y_SCALAR, Y_MAP, Y_SEQ };

/* How a plain (unquoted) scalar would be typed by a YAML 1.1 loader such as PyYAML. */
enum yimplicit { YI_STR, YI_NULL, YI_BOOL, YI_INT, YI_FLOAT, YI_TIMESTAMP };

struct ynode;

struct ypair {
	struct ynode	*key;		/* always a Y_SCALAR */
	struct ynode	*val;
};

struct ynode {
	enum ytype	 type;
	bool		 quoted;	/* scalar written in quotes or as a block: always a string */
	bool		 reported;	/* a problem with this value was reported already */
	struct loc	 at;
	union {
		struct {
			const char	*s;	/* NUL-terminated; may contain NULs before len */
			size_t		 len;
		} str;
		struct {
			struct ypair	*v;
			size_t		 n;
		} map;
		struct {
			struct ynode	**v;
			size_t		  n;
		} seq;
	} u;
};

#define YTREE_MAX_DEPTH		64
#define YTREE_MAX_SCALAR	(64 * 1024)
#define YTREE_MAX_FILE		(16 * 1024 * 1024)
#define YTREE_MAX_NODES		500000	/* keys and values in one file: ~40 MB of tree */

/*
 * Parse buf[0..len) of file `file` (a diag file index). Returns 0 and the root in *out
 * (NULL for an empty document), or <0 when the document could not be read at all; in
 * both cases problems went to d. All memory comes from arena a.
 */
int		 ytree_parse(struct ynode **out, struct arena *a, struct diag *d,
		    uint32_t file, const char *buf, size_t len);
enum yimplicit	 ytree_implicit(const struct ynode *);
const char	*ytree_type_name(const struct ynode *);
/* The value of key k in map m, or NULL. */
struct ynode	*ytree_get(const struct ynode *m, const char *k);

#endif
