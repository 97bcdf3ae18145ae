/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node's running config: only a NodeConfig signed by the controller's pinned Ed25519
 * key (DIR/controller.pub), for this node, newer than what runs, is ever applied; the
 * signed request is persisted atomically (DIR/config.signed) and verified again before
 * it is re-applied at boot.
 */
#ifndef PHAROS_CONFIG_H
#define PHAROS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsutil.h"
#include "pharos/v1/node.pb-c.h"
#include "peerset.h"
#include "pki.h"

struct cfg_mem;

#define CONFIG_FILE		"config.signed"
#define DELTAS_FILE		"deltas.signed"	/* signed PeerDeltas since the config */
#define DELTAS_MAX		(64 * 1024 * 1024)
#define CONTROLLER_PUB_FILE	"controller.pub"
#define CONFIG_MAX		(4 * 1024 * 1024)

struct node_config {
	char			 dir[1024];
	struct spiffe		 self;
	uint8_t			 controller_pub[32];
	bool			 have_pub;
	/*
	 * What runs. cfg holds no peers (n_peers 0): they are in `peers`, in compact form,
	 * with the deltas applied — 10,000 decoded Peer messages would be ~1.5 MiB.
	 */
	Pharos__V1__NodeConfig	*cfg;		/* NULL: nothing applied yet */
	struct cfg_mem		*cfg_mem;	/* cfg's memory, in a few large chunks */
	uint8_t			 hash[32];	/* SHA-256 of the config bytes */
	int64_t			 applied_nanos;
	/*
	 * Signed peer deltas applied on top of cfg, in order; `view` is cfg with their
	 * users applied (a shallow copy whose users point into cfg and the deltas) and
	 * `peers` the peers with them applied. The data plane and GetStatus see the view.
	 */
	Pharos__V1__PeerDelta	**deltas;
	size_t			  ndeltas, capdeltas;
	uint64_t		  serial;	/* cfg's serial, or the last delta's */
	uint64_t		  delta_serial;	/* 0: no delta since cfg */
	Pharos__V1__NodeConfig	  view;
	struct peerset		 *peers;
	Pharos__V1__VlessUser	**view_users;	/* cfg's users, then the deltas' */
	bool			  have_view;
};

/*
 * The effective config (cfg plus deltas), or NULL if nothing runs; it has no peers:
 * *peers (may be NULL) gets them.
 */
const Pharos__V1__NodeConfig *config_view(const struct node_config *,
	    const struct peerset **peers);
/*
 * Decoded peers in compact form (peerset.h); with unique, a key listed twice is refused,
 * else the last one wins. Errors as peerset's, with the peer's index in err_last().
 */
int	 config_peerset(struct peerset **out, Pharos__V1__Peer *const *peers, size_t n,
	    bool unique);

struct delta_check {
	enum config_verdict_d { DELTA_NEW, DELTA_SAME, DELTA_REFUSED } verdict;
	int			 grpc_status;
	char			 why[256];
	Pharos__V1__PeerDelta	*delta;		/* DELTA_NEW: decoded (owned) */
	struct peerset		*add;		/* DELTA_NEW: delta->add, compact (owned) */
};

/*
 * Check a signed Add/RemovePeerRequest (same wire shape) against key, node and serial;
 * added peers must be valid (keys, allowed IPs, keepalive: peerset.h); VLESS users must
 * have a UUID and an email, unique case-insensitively within the delta.
 * In the view, an added user replaces one with the same email (compared as Xray does,
 * case-insensitively), a removed email that is not there is no error.
 */
void	 config_delta_check(struct node_config *, const uint8_t *req, size_t len, bool add,
	    struct delta_check *);
/* After the data plane took it: append to DELTAS_FILE atomically and make it part of the view. */
int	 config_delta_commit(struct node_config *, const uint8_t *req, size_t len,
	    struct delta_check *);
/* At boot, after config_load(): replay DELTAS_FILE; calls apply() for each verified delta. */
int	 config_deltas_load(struct node_config *,
	    int (*apply)(void *, const Pharos__V1__PeerDelta *), void *arg);
void	 config_delta_check_free(struct delta_check *);

/* The outcome of checking one request. */
enum config_verdict {
	CONFIG_NEW,		/* verified and newer: apply it */
	CONFIG_SAME,		/* the config that runs already: nothing to do */
	CONFIG_REFUSED,		/* see why and grpc_status */
};

struct config_check {
	enum config_verdict		 verdict;
	int				 grpc_status;
	char				 why[256];
	Pharos__V1__NodeConfig		*cfg;	/* CONFIG_NEW: the decoded config (owned),
						   without its peers */
	struct cfg_mem			*mem;	/* where cfg lives */
	struct peerset			*peers;	/* CONFIG_NEW: cfg's peers (owned) */
	uint8_t				 hash[32];
};

/* Load DIR/controller.pub (base64 of 32 bytes). Without it every config is refused. */
int	 config_open(struct node_config *, const char *dir, const struct spiffe *self);
void	 config_close(struct node_config *);
/*
 * Check a serialized ApplyConfigRequest against the pinned key, this node and what runs;
 * an xray section must pass xray_check_config() and the peers peerset's checks (a key
 * listed twice included); INVALID_ARGUMENT otherwise. verified(arg), if not NULL, is
 * called once the signature holds, from another thread, while the check goes on.
 */
void	 config_check(struct node_config *, const uint8_t *req, size_t len, struct config_check *,
	    void (*verified)(void *), void *arg);
/*
 * While the data plane takes it: write the request to a temporary file beside
 * CONFIG_FILE and fsync it (fs_write_prepare()); CONFIG_FILE still holds the running one.
 */
int	 config_prepare(struct node_config *, const uint8_t *req, size_t len,
	    struct fs_pending *);
/*
 * After the data plane took it: persist the request atomically — the prepared file
 * renamed into place if pw holds one, else written now — and make it the running one.
 * req NULL (at boot): nothing is written.
 */
int	 config_commit(struct node_config *, const uint8_t *req, size_t len,
	    struct fs_pending *pw, struct config_check *);
/*
 * At boot: read and verify DIR/config.signed. 0 with *out set (a CONFIG_NEW check) if
 * there is a valid one; ERR_NOTFOUND if there is none; another error (logged with the
 * reason) if it is tampered, truncated or not for this node — nothing is applied then.
 */
int	 config_load(struct node_config *, struct config_check *out);
void	 config_check_free(struct config_check *);

#endif
