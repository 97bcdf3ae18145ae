/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fleet model: the typed form of a fleet repository (docs/DESIGN.md §2). Every value
 * keeps the place it was written, so any later check — the validator, the planner, the
 * admin API — can point at the exact line. A value's `set` flag says whether the file
 * gave it; the effective values after preset defaults are in struct fleet_eff and the
 * fleet_node_*() helpers.
 */
#ifndef PHAROS_FLEET_H
#define PHAROS_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"

struct arena;
struct source;

enum preset { PRESET_PERSONAL, PRESET_ENTERPRISE };

enum { ROLE_ENTRY = 1U << 0, ROLE_EXIT = 1U << 1 };

/* Every nested object starts with this header. */
struct fobj {
	struct loc	at;
	bool		set;
};

struct fstr {
	const char	*v;		/* NULL when absent */
	struct loc	 at;
};

struct fint {
	int64_t		v;
	struct loc	at;
	bool		set;
};

struct fbool {
	bool		v;
	bool		set;
	struct loc	at;
};

/* A list; v points at n elements of the list's element type (struct fstr, ...). */
struct flist {
	void		*v;
	size_t		 n;
	struct loc	 at;
	bool		 set;
};

#define FLIST_STR(l, i)	(((struct fstr *)(l).v)[i])

/* An AmneziaWG header value: a u32, or a range lo-hi (AWG 2.0). */
struct awg_h {
	uint32_t	lo, hi;
	struct loc	at;
	bool		set;
};

struct awg {
	struct fobj	hdr;
	struct fint	port, jc, jmin, jmax, s1, s2, s3, s4;
	struct awg_h	h[4];
	struct fstr	i[5];
};

struct xray {
	struct fobj	hdr;
	struct fint	port;
	struct fstr	decoy, flow;
	struct flist	server_names, short_ids;	/* of struct fstr */
};

/* Effective AmneziaWG parameters of a node: built-in defaults <- fleet <- node. */
struct awg_params {
	int		port, jc, jmin, jmax, s1, s2, s3, s4;
	uint32_t	h_lo[4], h_hi[4];
	const char	*i[5];
};

struct node {
	const char	*name;
	struct loc	 at;		/* the file */
	struct fobj	 hdr;
	struct fstr	 region, ssh, control;
	struct flist	 roles, entry_pool;	/* of struct fstr */
	struct fint	 mtu;
	struct fbool	 idle;
	struct awg	 awg;
	struct xray	 xray;
	unsigned	 roles_mask;	/* ROLE_*, effective (default both) */
};

struct relay {
	const char	*name;
	struct loc	 at;
	struct fobj	 hdr;
	struct fstr	 address, ssh, region;
};

struct user;
struct uindex;

struct device {
	struct fobj	 hdr;
	struct fstr	 name, public_key, address;
	const struct user *user;
	/*
	 * Whether public_key decodes to 32 bytes (0 not yet looked at, 1 yes, 2 no): a
	 * property of the string alone, so validation writes it once and a record reused by
	 * the next load (fleet_load_reuse) is not decoded again. Read only by validation.
	 */
	uint8_t		 key_ok;
};

struct user {
	const char	*name;
	struct loc	 at;
	struct fobj	 hdr;
	struct fstr	 email, role, full_name;
	struct fbool	 disabled;
	struct flist	 devices;	/* of struct device */
	bool		 admin;		/* effective role */
};

struct rule {
	struct fobj	hdr;
	struct fstr	name;
	struct flist	users, entry, exit, via;	/* of struct fstr */
	struct fint	hops;
};

/* Effective fleet-wide values after preset defaults (docs/DESIGN.md §2.7). */
struct fleet_eff {
	bool		known;		/* fleet.yaml and its preset were read */
	bool		xray, amneziawg;
	int		hops;
	int64_t		rotate_s, audit_s, metrics_s, sweep_s;
	bool		review_required, account_sync, relay_embedded;
	int		mtu;
	const char	*tunnel_pool;
};

struct fleet {
	struct arena	*arena;
	bool		 have_fleet_yaml;
	struct loc	 at;			/* fleet.yaml */
	struct fobj	 root;
	struct fint	 version;
	struct {
		struct fobj	hdr;
		struct fstr	id, name, preset;
	} fleet;
	struct {
		struct fobj	hdr;
		struct fstr	tunnel_pool, tunnel_pool6;
		struct flist	dns;
		struct fint	mtu;
	} network;
	struct {
		struct fobj	hdr;
		struct fbool	amneziawg, xray;
	} protocols;
	struct awg	 awg;
	struct xray	 xray;
	struct {
		struct fobj	hdr;
		struct fstr	rotate;
	} entry_pool;
	struct flist	 access;		/* of struct rule */
	struct {
		struct fobj	hdr;
		struct fstr	audit, metrics;
	} retention;
	struct {
		struct fobj	hdr;
		struct fstr	sweep;
	} reconcile;
	struct {
		struct fobj	hdr;
		struct fbool	required;
	} review;
	struct {
		struct fobj	hdr;
		struct fbool	embedded;
	} relay;
	struct fbool	 account_sync;

	enum preset	 preset;
	struct fleet_eff eff;
	struct node	**nodes;
	size_t		  nnodes;
	struct relay	**relays;
	size_t		  nrelays;
	struct user	**users;
	size_t		  nusers;
	size_t		  ndevices;
	size_t		  cap_nodes, cap_relays, cap_users;
	/*
	 * Private to fleet.c. The records live in the loader threads' arenas, which are
	 * shared (refcounted) with the fleets that reuse them; `files` says what each file
	 * of the source decoded to and `dnames` the diagnostics' file names by index, so the
	 * next load can reuse both (fleet_load_reuse).
	 */
	struct fleet_arena **arenas;
	size_t		  narenas, cap_arenas;
	struct fleet_file *files;		/* in source order (by path) */
	size_t		  nfiles;
	char		**dnames;
	uint32_t	  ndnames;
	unsigned	  generation;		/* loads since the last full one */
	size_t		  reused;		/* files taken from the previous fleet */
	/* validate.c's uniqueness index of this fleet, and the previous fleet's for it */
	struct uindex	 *uidx, *uprev;
	size_t		  users_checked;	/* by the last validation: all, or the changed */
	unsigned	  refs;			/* atomic; fleet_ref(), fleet_free() */
};

#define FLEET_DEFAULT_DECOY	"www.microsoft.com:443"
#define FLEET_DEFAULT_POOL	"10.64.0.0/16"
#define FLEET_CONTROL_PORT	8444

/*
 * Read every file of src into a fleet. Problems with the fleet's content go to d (the
 * load still succeeds); a return <0 means the source itself could not be read (err_last()).
 */
int	 fleet_load(struct fleet **out, struct source *src, struct diag *d);
/*
 * The same, reusing what prev (an earlier load of the same repository) decoded for every
 * file whose blob is unchanged and that decoded without a diagnostic: a one-file commit
 * parses one file. d must be fresh (no file registered). The result is identical to
 * fleet_load()'s, diagnostics included. prev may be NULL, and a folder source, or a prev
 * that is FLEET_REUSE_MAX loads away from a full one, gets a full load (which also drops
 * the records of changed files that earlier loads kept alive). The new fleet shares
 * prev's records, never prev itself: either may be freed first, from any thread.
 */
#define FLEET_REUSE_MAX	32
int	 fleet_load_reuse(struct fleet **out, struct source *src, struct diag *d,
	    const struct fleet *prev);
/* Another reference: fleet_free() frees the fleet when the last one goes. */
struct fleet *fleet_ref(struct fleet *);
void	 fleet_free(struct fleet *);
/* The uniqueness index's references (validate.c; fleet.c passes it from load to load). */
struct uindex	*fleet_uindex_ref(struct uindex *);
void	 fleet_uindex_unref(struct uindex *);
/* Semantic rules (schema/validate.c); fills f->eff. */
void	 fleet_validate(struct fleet *f, struct diag *d);
/* Effective AWG parameters for node n (n may be NULL for the fleet's own). */
void	 fleet_node_awg(const struct fleet *f, const struct node *n, struct awg_params *out);
struct node *fleet_find_node(const struct fleet *, const char *name);
struct user *fleet_find_user(const struct fleet *, const char *name);
/* The index of a user in f->users (sorted by name), or SIZE_MAX. */
size_t	 fleet_user_index(const struct fleet *, const char *name);
/*
 * Access-rule selectors, as the validator reads them (docs/DESIGN.md §2.5): users by name,
 * "*", "role:admin" or "role:user"; nodes by name, "*" or "region:<r>", and only if the
 * node has `role` (ROLE_*, any of them).
 */
bool	 fleet_user_selected(const struct flist *sel, const struct user *u);
bool	 fleet_node_selected(const struct flist *sel, const struct node *n, unsigned role);
/* Parse "30s" / "10m" / "1h" / "30d" / "0" into seconds; <0 on bad syntax. */
int	 fleet_parse_duration(const char *s, int64_t *out);

#endif
