/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller daemon (`cox run`): one libevent loop that watches the fleet repository,
 * loads each new revision off the loop (loader.c), and drives one state machine per node
 * (push.c) over a long-lived outbound mTLS gRPC channel. See docs/DESIGN.md §9.
 */
#ifndef PHAROS_CTL_H
#define PHAROS_CTL_H

#include <sys/queue.h>

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "pki.h"
#include "state.h"
#include "tls.h"

struct event_base;
struct event;
struct fleet;
struct source;
struct desired;
struct desired_node;
struct ipam;
struct grpc_channel;
struct grpc_ccall;
struct ctl;
struct admin;

/* ---- loader.c: revisions are read, validated and compiled on a worker thread ---- */

struct node_key {
	char		name[64];
	uint8_t		key[32];
};

struct load_result {
	char		 rev[STATE_REV_MAX];
	char		 author[128];
	struct source	*src;
	struct fleet	*fleet;
	struct desired	*desired;
	char		*errors;	/* NULL: valid; else the diagnostics, one per line */
	size_t		 nerr;
	bool		 io_error;	/* the revision could not be read at all (errors says why) */
	int64_t		 load_ns;
	int64_t		 read_ns, validate_ns, build_ns;	/* parts of load_ns */
	size_t		 reused;	/* files whose records came from the previous read */
	/* addresses the address pool handed out for this revision, to persist */
	struct load_addr {
		uint8_t	key[32];
		char	v4[16], v6[46];
	}		*addrs;
	size_t		 naddrs;
};

struct loader {
	pthread_t	 th;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	bool		 started, quit;
	/* the next job (only the newest is kept) */
	bool		 have_job;
	char		 job_rev[STATE_REV_MAX];
	struct node_key	*job_keys;
	size_t		 job_nkeys;
	bool		 busy;
	struct load_result *done;	/* handed to the loop through ev_done */
	struct event	*ev_done;
	/* worker-owned */
	char		 statedir[PATH_MAX];
	char		 gitdir[PATH_MAX + 16];
	struct ipam	*ipam;
	char		 ipam_pool[128];
	struct fleet	*prev;		/* the last fleet read: fleet_load_reuse() */
	struct desired	*prev_ds;	/* the last configs built: desired_build_from() */
};

int	 loader_start(struct loader *, struct ctl *);
/* Ask for rev; replaces a job that has not started. keys are copied. */
void	 loader_submit(struct loader *, const char *rev, const struct node_key *keys, size_t n);
bool	 loader_idle(struct loader *);
/* The finished result, or NULL; the caller owns it. */
struct load_result *loader_take(struct loader *);
void	 loader_stop(struct loader *);
void	 load_result_free(struct load_result *);

/* ---- push.c: one node ---- */

enum cnode_phase {
	CN_IDLE,	/* nothing wanted (not in the applied revision) */
	CN_CHECK,	/* asking the node what it runs before deciding */
	CN_PUSH,	/* an ApplyConfig is in flight */
	CN_SYNCED,	/* the node runs the desired content */
	CN_RETRY,	/* waiting out a backoff after a failure */
	CN_WAIT,	/* a push waiting for room under the push budget (push.c) */
};

struct cnode {
	struct ctl		*ctl;
	char			 name[64];
	char			 host[256], port[8];
	struct grpc_channel	*ch;
	struct tls_policy	 policy;
	struct state_node	 db;		/* the row, written back when dirty */
	bool			 dirty;
	struct cnode		*next_dirty;
	bool			 in_fleet;
	const struct desired_node *want;	/* NULL: nothing to run */
	char			 want_rev[STATE_REV_MAX];
	enum cnode_phase	 phase;
	bool			 need_check;	/* ask GetStatus before the next decision */
	bool			 force;		/* push even if the node reports our hash (drift) */
	struct grpc_ccall	*push_call, *status_call, *watch_call, *hs_call, *poll_call;
	uint64_t		 push_serial;
	char			 push_rev[STATE_REV_MAX];
	uint8_t			 push_hash[32], push_content[32];
	int64_t			 push_started;
	size_t			 push_len;	/* its bytes counted in ctl.push_bytes */
	struct push_ctx		*push_ctx;	/* the push_call's argument */
	bool			 waiting, may_push;
	TAILQ_ENTRY(cnode)	 wait_link;	/* in ctl.push_wait while waiting */
	unsigned		 fails;
	struct event		*ev_retry, *ev_watch;
	int			 missed;
	int64_t			 last_poll;	/* monotonic ns */
	int64_t			 last_sweep;
	/* what the node last reported */
	bool			 have_report;
	uint8_t			 rep_hash[32];
	uint64_t		 rep_serial;
	char			 rep_rev[STATE_REV_MAX];
	uint64_t		 ev_seq;
	bool			 dead;
};

struct cnode *cnode_new(struct ctl *, const char *name);
void	 cnode_free(struct cnode *);
/* Point the node at a desired config (NULL: none) of revision rev, and act on it. */
void	 cnode_want(struct cnode *, const struct desired_node *, const char *rev);
/* Where to dial; reconnects if it changed. */
void	 cnode_set_target(struct cnode *, const char *host, const char *port);
void	 cnode_tick(struct cnode *, int64_t now_mono);
void	 cnode_sweep(struct cnode *);
void	 cnode_mark_dirty(struct cnode *);

/* ---- upstream.c: an optional forge remote, fetched on an interval ---- */

struct upstream {
	struct ctl		*c;
	bool			 enabled, running;
	char			 url[512];
	unsigned		 interval_ms;
	struct event		*ev_timer, *ev_done;
	pthread_t		 th;		/* the one fetch thread */
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	bool			 started, want, quit;
	struct git_repository	*repo;		/* the worker's own, kept between fetches */
	struct git_remote	*remote;
	int			 rc;
	char			 err[256];
	unsigned		 failures, tries;
	uint8_t			*ssh_key;	/* sodium_malloc'd OpenSSH private key text */
	char			 ssh_pub[512];
};

/* 0 and disabled if fleet.git has no "upstream" remote. */
int	 upstream_start(struct upstream *, struct ctl *, unsigned interval_ms);
void	 upstream_stop(struct upstream *);

/* ---- run.c ---- */

struct ctl {
	struct event_base	*base;
	struct state		*st;
	char			 dir[PATH_MAX];
	char			 gitdir[PATH_MAX + 16];
	char			 branch[128];
	char			 refname[192];
	char			 fleet_id[64];
	SSL_CTX			*tls;
	struct spiffe		 self;
	uint8_t			*sign_sk;	/* sodium_malloc'd, 64 bytes */
	char			 key_id[17];
	struct git_repository	*repo;
	int			 ino_fd;
	struct event		*ev_ino, *ev_tick, *ev_flush, *ev_sigint, *ev_sigterm;
	char			 seen_rev[STATE_REV_MAX];	/* newest head looked at */
	char			 applied_rev[STATE_REV_MAX];	/* newest valid revision */
	struct load_result	*cur;		/* the applied revision's fleet and configs */
	struct loader		 loader;
	struct upstream		 upstream;
	struct admin		*admin;		/* NULL: --admin off */
	unsigned		 fetch_ms;
	bool			 replan;	/* node keys changed: rebuild the applied revision */
	struct cnode		**nodes;	/* sorted by name */
	size_t			 nnodes;
	struct cnode		*dirty;
	unsigned		 poll_ms;	/* GetStatus period per node */
	unsigned		 sweep_ms;	/* drift check period (fleet's reconcile.sweep) */
	unsigned		 sweep_override_ms;
	bool			 stopping;
	/* convergence of the applied revision, for the log and the benchmarks */
	int64_t			 seen_unix_ns;	/* when the head was first seen */
	bool			 converged;
	/* counters for the log and status */
	uint64_t		 pushes_ok, pushes_failed;
	/* request bytes of the ApplyConfigs in flight, and the pushes waiting for room */
	size_t			 push_bytes, push_budget;
	TAILQ_HEAD(, cnode)	 push_wait;
};

void	 ctl_flush_later(struct ctl *);
/* A node reached SYNCED: logs "revision converged" once every node has. */
void	 ctl_node_synced(struct ctl *);
/* Audit with the controller as the actor; errors are logged, never fatal. */
void	 ctl_audit(struct ctl *, const char *action, const char *object, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));

#endif
