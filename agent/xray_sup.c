/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Xray run by buoy: key, config, process, users. See xray_sup.h.
 *
 * Users are kept twice: want (the running view's users) and have (what Xray has, as far
 * as buoy knows: the config file's users at a start, then every AlterInbound that
 * succeeded). kick() turns have into want in batches, one at a time so that no change can
 * overtake another (Xray runs concurrent calls in any order): a batch's removals, then its
 * additions, or after a restart one resync of every user. A batch started before a
 * restart is stale (its gen is older) and only winds down.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "fsutil.h"
#include "grpc.h"
#include "log.h"
#include "wgproc.h"
#include "xray.h"
#include "xray_sup.h"

#define PID_FILE	"xray.pid"
#define LOG_FILE	"xray.log"
#define TICK_MS		1000
#define QUICK_DEATH_S	5	/* a process that dies sooner backs off */
#define BACKOFF_MAX_S	30
#define STOP_WAIT_MS	2000

struct users {
	Pharos__V1__VlessUser	**v;
	size_t			  n;
};

struct xray_sup {
	struct event_base	*base;
	char			 bin[1024];
	char			 conf[1100], keyfile[1100], pidfile[1100], log[1100];
	char			 api_host[64], api_port[16], api_listen[96];
	dp_event_fn		 on_event;
	void			*event_arg;
	struct event		*tick;
	struct xray_api		*api;

	char			 priv[XRAY_KEY_B64_SIZE];
	bool			 have_key, key_bad;
	uint8_t			 pub[32];

	bool			 enabled;	/* the view has an xray section */
	char			 why_disabled[96];
	pid_t			 pid;		/* 0: none */
	bool			 child;		/* false: adopted from an earlier buoy */
	bool			 died;		/* it ran and exited: the next start is a restart */
	int64_t			 started;	/* CLOCK_MONOTONIC s */
	int64_t			 next_start;
	unsigned		 backoff;	/* s */
	unsigned		 restarts;
	char			 exit_text[96];
	bool			 have_settings;
	uint8_t			 settings[32];	/* hash of the config without its users */
	char			*flow;

	struct users		 want, have;
	bool			 need_resync;	/* a restart lost the live-added users */
	bool			 busy;		/* a batch runs */
	unsigned		 gen;
	char			 op_error[256];	/* the last failed user change; "" none */
	bool			 closing;
};

struct batch {
	struct xray_sup	*xs;
	unsigned	 gen;
	size_t		 pending;
	bool		 resync, adds_sent;
	struct users	 snapshot;	/* resync: the users being added */
	struct users	 adds;		/* added once the removals are done */
	char		**removes;
	size_t		 nremoves;
	char		 error[256];
};

struct op {
	struct batch	*b;
	char		*uuid, *email;	/* uuid NULL: a removal */
};

static int64_t
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

static void
emit(struct xray_sup *xs, int kind, const char *detail)
{
	if (xs->on_event != NULL)
		xs->on_event(xs->event_arg, kind, NULL, NULL, 0, detail);
}

/* A failure worth an event: once per distinct message, not every retry. */
static void
report(struct xray_sup *xs, const char *text)
{
	if (strcmp(xs->op_error, text) == 0)
		return;
	snprintf(xs->op_error, sizeof(xs->op_error), "%s", text);
	log_warnx("xray: %s", text);
	emit(xs, PHAROS__V1__EVENT_KIND__EVENT_KIND_DATA_PLANE_ERROR, text);
}

/* ---- user lists (owned copies) ---- */

static void
users_clear(struct users *u)
{
	size_t i;

	for (i = 0; i < u->n; i++) {
		free(u->v[i]->uuid);
		free(u->v[i]->email);
		free(u->v[i]);
	}
	free(u->v);
	u->v = NULL;
	u->n = 0;
}

static ssize_t
users_find(const struct users *u, const char *email)
{
	size_t i;

	for (i = 0; i < u->n; i++)
		if (strcasecmp(u->v[i]->email, email) == 0)
			return (ssize_t)i;
	return -1;
}

/* Add, or replace the one with this email (case-insensitively, as Xray compares). */
static int
users_set(struct users *u, const char *uuid, const char *email)
{
	Pharos__V1__VlessUser *nu, **nv;
	char *a, *b;
	ssize_t at = users_find(u, email);

	if ((a = strdup(uuid)) == NULL || (b = strdup(email)) == NULL) {
		free(a);
		err_set("out of memory");
		return ERR_NOMEM;
	}
	if (at >= 0) {
		free(u->v[at]->uuid);
		free(u->v[at]->email);
		u->v[at]->uuid = a;
		u->v[at]->email = b;
		return 0;
	}
	if ((nu = malloc(sizeof(*nu))) == NULL ||
	    (nv = realloc(u->v, (u->n + 1) * sizeof(*nv))) == NULL) {
		free(nu);
		free(a);
		free(b);
		err_set("out of memory");
		return ERR_NOMEM;
	}
	pharos__v1__vless_user__init(nu);
	nu->uuid = a;
	nu->email = b;
	nv[u->n++] = nu;
	u->v = nv;
	return 0;
}

static void
users_del(struct users *u, const char *email)
{
	ssize_t at = users_find(u, email);

	if (at < 0)
		return;
	free(u->v[at]->uuid);
	free(u->v[at]->email);
	free(u->v[at]);
	u->v[at] = u->v[--u->n];
}

/* A copy of v, whose emails are unique (checked where it came from): no lookups. */
static int
users_copy(struct users *out, Pharos__V1__VlessUser *const *v, size_t n)
{
	Pharos__V1__VlessUser *u;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (n > 0 && (out->v = calloc(n, sizeof(*out->v))) == NULL)
		goto nomem;
	for (i = 0; i < n; i++) {
		if ((u = malloc(sizeof(*u))) == NULL)
			goto nomem;
		pharos__v1__vless_user__init(u);
		u->uuid = strdup(v[i]->uuid);
		u->email = strdup(v[i]->email);
		out->v[out->n++] = u;
		if (u->uuid == NULL || u->email == NULL)
			goto nomem;
	}
	return 0;
nomem:
	users_clear(out);
	err_set("out of memory");
	return ERR_NOMEM;
}

/* ---- batches of user changes ---- */

static void kick(struct xray_sup *);
static void send_phase(struct batch *);

static bool
live(const struct batch *b)
{
	return !b->xs->closing && b->gen == b->xs->gen;
}

static void
batch_free(struct batch *b)
{
	size_t i;

	users_clear(&b->snapshot);
	users_clear(&b->adds);
	for (i = 0; i < b->nremoves; i++)
		free(b->removes[i]);
	free(b->removes);
	free(b);
}

static void
batch_finish(struct batch *b)
{
	struct xray_sup *xs = b->xs;
	bool again = false;

	if (live(b)) {
		xs->busy = false;
		if (b->error[0] != '\0') {
			report(xs, b->error);	/* retried by the next tick */
		} else {
			if (xs->op_error[0] != '\0')
				log_info("xray: user changes went through again");
			xs->op_error[0] = '\0';
			again = true;		/* what changed meanwhile */
		}
	}
	batch_free(b);
	if (again)
		kick(xs);
}

static void
op_done(void *arg, int status, const char *message)
{
	struct op *op = arg;
	struct batch *b = op->b;
	bool add = op->uuid != NULL;

	if (live(b)) {
		struct xray_sup *xs = b->xs;
		if (status == GRPC_OK || (add && xray_status_exists(status, message)) ||
		    (!add && xray_status_not_found(status, message))) {
			if (add)
				users_set(&xs->have, op->uuid, op->email);
			else
				users_del(&xs->have, op->email);
		} else if (b->error[0] == '\0') {
			snprintf(b->error, sizeof(b->error), "AlterInbound %s user %s: %s",
			    add ? "add" : "remove", op->email, message != NULL && message[0] ?
			    message : grpc_status_name(status));
		}
	}
	free(op->uuid);
	free(op->email);
	free(op);
	if (--b->pending > 0)
		return;
	if (live(b) && !b->adds_sent && b->adds.n > 0 && b->error[0] == '\0')
		send_phase(b);
	else
		batch_finish(b);
}

/*
 * The removals, or (once they are done) the additions; finishes when nothing went out.
 * A failed removal stops the batch before its additions: an addition of the same email
 * would be answered "already exists" and taken for done with the old uuid in place.
 */
static void
send_phase(struct batch *b)
{
	struct xray_sup *xs = b->xs;
	struct op *op;
	size_t i;

	b->pending++;		/* held while sending: no callback finishes the batch early */
	if (b->removes != NULL) {
		for (i = 0; i < b->nremoves; i++) {
			if ((op = calloc(1, sizeof(*op))) == NULL) {
				snprintf(b->error, sizeof(b->error), "out of memory");
				break;
			}
			op->b = b;
			op->email = b->removes[i];	/* the op's now */
			b->removes[i] = NULL;
			b->pending++;
			if (xray_api_remove_user(xs->api, XRAY_INBOUND_TAG, op->email, op_done,
			    op) != 0) {
				b->pending--;
				snprintf(b->error, sizeof(b->error), "remove user: %s", err_last());
				free(op->email);
				free(op);
			}
		}
		for (i = 0; i < b->nremoves; i++)
			free(b->removes[i]);
		free(b->removes);
		b->removes = NULL;
		b->nremoves = 0;
	} else {
		b->adds_sent = true;
		for (i = 0; i < b->adds.n; i++) {
			const Pharos__V1__VlessUser *u = b->adds.v[i];
			if ((op = calloc(1, sizeof(*op))) == NULL ||
			    (op->uuid = strdup(u->uuid)) == NULL ||
			    (op->email = strdup(u->email)) == NULL) {
				if (op != NULL)
					free(op->uuid);
				free(op);
				snprintf(b->error, sizeof(b->error), "out of memory");
				break;
			}
			op->b = b;
			b->pending++;
			if (xray_api_add_user(xs->api, XRAY_INBOUND_TAG, op->uuid, op->email,
			    xs->flow != NULL ? xs->flow : "", op_done, op) != 0) {
				b->pending--;
				snprintf(b->error, sizeof(b->error), "add user %s: %s", u->email,
				    err_last());
				free(op->uuid);
				free(op->email);
				free(op);
			}
		}
	}
	if (--b->pending > 0)
		return;
	/* Everything was refused at once, or answered: next phase or done. */
	if (!b->adds_sent && b->adds.n > 0 && b->error[0] == '\0')
		send_phase(b);
	else
		batch_finish(b);
}

static void
resync_done(void *arg, int status, const char *message)
{
	struct batch *b = arg;
	struct xray_sup *xs = b->xs;
	bool again = false;

	if (live(b)) {
		xs->busy = false;
		if (status == GRPC_OK) {
			users_clear(&xs->have);
			xs->have = b->snapshot;
			memset(&b->snapshot, 0, sizeof(b->snapshot));	/* xs->have's now */
			xs->need_resync = false;
			xs->op_error[0] = '\0';
			log_info("xray: every user added again after the restart (%zu)",
			    xs->have.n);
			again = true;
		} else {
			snprintf(b->error, sizeof(b->error), "adding the users again after a "
			    "restart: %s", message != NULL && message[0] ? message :
			    grpc_status_name(status));
			report(xs, b->error);
		}
	}
	batch_free(b);
	if (again)
		kick(xs);
}

/* Start the next batch if none runs and Xray's users differ from the wanted ones. */
static void
kick(struct xray_sup *xs)
{
	struct xray_diff d;
	struct batch *b;
	size_t i;
	int rc;

	if (xs->closing || xs->busy || xs->pid <= 0 || xs->api == NULL || !xs->enabled)
		return;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return;
	b->xs = xs;
	b->gen = xs->gen;
	if (xs->need_resync) {
		if (xs->want.n == 0) {
			xs->need_resync = false;
			users_clear(&xs->have);
			free(b);
			return;
		}
		b->resync = true;
		if (users_copy(&b->snapshot, xs->want.v, xs->want.n) != 0) {
			free(b);
			return;
		}
		xs->busy = true;
		if ((rc = xray_api_resync(xs->api, XRAY_INBOUND_TAG, b->snapshot.v, b->snapshot.n,
		    xs->flow != NULL ? xs->flow : "", resync_done, b)) != 0) {
			xs->busy = false;
			report(xs, err_last());
			batch_free(b);
		}
		return;
	}
	if ((rc = xray_users_diff(&d, xs->have.v, xs->have.n, xs->want.v, xs->want.n)) != 0) {
		report(xs, err_last());
		free(b);
		return;
	}
	if (d.nadd == 0 && d.nremove == 0) {
		xray_diff_free(&d);
		xs->op_error[0] = '\0';		/* nothing left that could fail */
		free(b);
		return;
	}
	rc = 0;
	if (d.nremove > 0 && (b->removes = calloc(d.nremove, sizeof(char *))) == NULL)
		rc = ERR_NOMEM;
	for (i = 0; rc == 0 && i < d.nremove; i++)
		if ((b->removes[b->nremoves++] = strdup(d.remove[i]->email)) == NULL)
			rc = ERR_NOMEM;
	for (i = 0; rc == 0 && i < d.nadd; i++)
		rc = users_set(&b->adds, d.add[i]->uuid, d.add[i]->email);
	xray_diff_free(&d);
	if (rc != 0) {
		batch_free(b);
		return;
	}
	log_debug("xray: user batch remove=%zu add=%zu", b->nremoves, b->adds.n);
	xs->busy = true;
	send_phase(b);
}

/* ---- the process ---- */

/* /proc/PID/cmdline holds "run" and our config path: our Xray, not a reused pid. */
static bool
is_ours(const struct xray_sup *xs, pid_t pid)
{
	char path[64], buf[8192], *p;
	size_t len = 0;
	ssize_t r;
	bool run = false, conf = false;
	int fd;

	/* Read, not fs_read_file(): a /proc file has no size to stat. */
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	while (len < sizeof(buf) - 1 && (r = read(fd, buf + len, sizeof(buf) - 1 - len)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	for (p = buf; p < buf + len; p += strlen(p) + 1) {
		run |= strcmp(p, "run") == 0;
		conf |= strcmp(p, xs->conf) == 0;
	}
	return run && conf;
}

/* True if the process is gone; then exit_text says how. */
static bool
gone(struct xray_sup *xs)
{
	int st;
	pid_t r;

	if (xs->child) {
		r = waitpid(xs->pid, &st, WNOHANG);
		if (r == 0)
			return false;
		if (r == xs->pid && WIFEXITED(st))
			snprintf(xs->exit_text, sizeof(xs->exit_text), "exit status %d",
			    WEXITSTATUS(st));
		else if (r == xs->pid && WIFSIGNALED(st))
			snprintf(xs->exit_text, sizeof(xs->exit_text), "killed by signal %d",
			    WTERMSIG(st));
		else
			snprintf(xs->exit_text, sizeof(xs->exit_text), "gone");
		return true;
	}
	if ((kill(xs->pid, 0) == 0 || errno == EPERM) && is_ours(xs, xs->pid))
		return false;
	snprintf(xs->exit_text, sizeof(xs->exit_text), "gone (adopted, exit status unknown)");
	return true;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)ms * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* SIGTERM the process group, wait, then SIGKILL: blocks at most ~3 s. */
static void
stop_proc(struct xray_sup *xs)
{
	int i;

	if (xs->pid <= 0)
		return;
	if (kill(-xs->pid, SIGTERM) != 0)
		kill(xs->pid, SIGTERM);
	for (i = 0; i < STOP_WAIT_MS / 10 && !gone(xs); i++)
		sleep_ms(10);
	if (i == STOP_WAIT_MS / 10) {
		log_warnx("xray: pid=%ld ignored SIGTERM for %d ms; SIGKILL", (long)xs->pid,
		    STOP_WAIT_MS);
		if (kill(-xs->pid, SIGKILL) != 0)
			kill(xs->pid, SIGKILL);
		for (i = 0; i < 100 && !gone(xs); i++)
			sleep_ms(10);
	}
	xs->pid = 0;
}

/* A fresh API client: a restarted Xray should not wait out an old backoff. */
static int
api_renew(struct xray_sup *xs)
{
	xs->gen++;		/* batches on the old client are stale */
	xs->busy = false;
	xray_api_free(xs->api);
	if ((xs->api = xray_api_new(xs->base, xs->api_host, xs->api_port)) == NULL)
		return ERR_NOMEM;
	return 0;
}

static int
start_proc(struct xray_sup *xs)
{
	const char *argv[] = { xs->bin, "run", "-c", xs->conf, NULL };
	char pid[32];
	int rc;

	if ((rc = wgproc_spawn(&xs->pid, argv, xs->log)) != 0) {
		xs->pid = 0;
		return rc;
	}
	xs->child = true;
	xs->started = mono_s();
	snprintf(pid, sizeof(pid), "%ld\n", (long)xs->pid);
	if (fs_write_atomic(xs->pidfile, pid, strlen(pid), 0644) != 0)
		log_warnx("xray: %s (a restarted buoy will not adopt this Xray)", err_last());
	log_info("xray: started pid=%ld config=%s api=%s", (long)xs->pid, xs->conf,
	    xs->api_listen);
	/* Xray starts with the config file's users, which are the wanted ones. */
	users_clear(&xs->have);
	if (users_copy(&xs->have, xs->want.v, xs->want.n) != 0)
		xs->need_resync = true;
	return api_renew(xs);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct xray_sup *xs = arg;
	struct timeval tv = { TICK_MS / 1000, (TICK_MS % 1000) * 1000 };
	char text[1400];
	int64_t now = mono_s();

	(void)fd;
	(void)what;
	if (xs->enabled && xs->pid > 0 && gone(xs)) {
		int64_t lived = now - xs->started;
		log_warnx("xray: pid=%ld %s after %lld s", (long)xs->pid, xs->exit_text,
		    (long long)lived);
		xs->pid = 0;
		xs->died = true;
		if (lived < QUICK_DEATH_S) {
			xs->backoff = xs->backoff ? xs->backoff * 2 : 1;
			if (xs->backoff > BACKOFF_MAX_S)
				xs->backoff = BACKOFF_MAX_S;
			snprintf(text, sizeof(text), "xray %s after %lld s; next start in %u s "
			    "(see %s)", xs->exit_text, (long long)lived, xs->backoff, xs->log);
			emit(xs, PHAROS__V1__EVENT_KIND__EVENT_KIND_DATA_PLANE_ERROR, text);
		} else {
			xs->backoff = 0;
		}
		xs->next_start = now + xs->backoff;
	}
	if (xs->enabled && xs->pid <= 0 && xs->have_key && now >= xs->next_start) {
		if (start_proc(xs) != 0) {
			snprintf(text, sizeof(text), "starting xray: %s", err_last());
			report(xs, text);
			xs->next_start = now + 5;
		} else if (xs->died) {
			xs->died = false;
			xs->restarts++;
			xs->need_resync = true;		/* live-added users are lost */
			snprintf(text, sizeof(text), "xray %s; started again", xs->exit_text);
			emit(xs, PHAROS__V1__EVENT_KIND__EVENT_KIND_BACKEND_RESTARTED, text);
		}
	}
	/* A resync after a restart, failed user changes, or nothing. */
	kick(xs);
	evtimer_add(xs->tick, &tv);
}

/* ---- key, config, settings ---- */

static int
load_key(struct xray_sup *xs)
{
	char *text = NULL;
	size_t len;
	int rc;

	if ((rc = fs_read_file(&text, &len, xs->keyfile, 256)) != 0)
		return rc;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
		text[--len] = '\0';
	if (len + 1 > sizeof(xs->priv) || xray_reality_public(xs->pub, text) != 0) {
		err_set("%s is not a REALITY key (unpadded base64url of 32 bytes); move it away "
		    "to have a new one made", xs->keyfile);
		xs->key_bad = true;
		rc = ERR_INVAL;
	} else {
		memcpy(xs->priv, text, len + 1);
		xs->have_key = true;
	}
	sodium_memzero(text, len);
	free(text);
	return rc;
}

/* reality.key on first use: made here, kept here, only its public half leaves. */
static int
ensure_key(struct xray_sup *xs)
{
	char pub[XRAY_KEY_B64_SIZE], line[XRAY_KEY_B64_SIZE + 1];
	int rc;

	if (xs->have_key)
		return 0;
	if (xs->key_bad) {
		err_set("%s is not a REALITY key; move it away to have a new one made",
		    xs->keyfile);
		return ERR_INVAL;
	}
	if ((rc = xray_reality_keypair(xs->priv, pub)) != 0)
		return rc;
	snprintf(line, sizeof(line), "%s\n", xs->priv);
	rc = fs_write_atomic(xs->keyfile, line, strlen(line), 0600);
	sodium_memzero(line, sizeof(line));
	if (rc != 0) {
		sodium_memzero(xs->priv, sizeof(xs->priv));
		return rc;
	}
	if ((rc = xray_reality_public(xs->pub, xs->priv)) != 0)
		return rc;
	xs->have_key = true;
	log_info("xray: made the REALITY key %s public=%s", xs->keyfile, pub);
	return 0;
}

static void
hash_text(uint8_t out[32], const char *s, bool add_newline)
{
	crypto_hash_sha256_state st;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)s, strlen(s));
	if (add_newline)
		crypto_hash_sha256_update(&st, (const unsigned char *)"\n", 1);
	crypto_hash_sha256_final(&st, out);
}

/* What needs a restart to change: the config as it would be with no users. */
static int
settings_of(uint8_t out[32], const struct xray_sup *xs, const Pharos__V1__NodeConfig *cfg)
{
	Pharos__V1__NodeConfig bare = *cfg;
	char *json;
	int rc;

	bare.n_vless_users = 0;
	bare.vless_users = NULL;
	if ((rc = xray_config_json(&json, &bare, xs->priv, xs->api_listen)) != 0)
		return rc;
	hash_text(out, json, false);
	xray_config_free(json);
	return 0;
}

/*
 * The same from the config file an adopted Xray runs, and its users: the file read,
 * its clients taken out, dumped as xray_config_json() dumps.
 */
static int
settings_of_file(uint8_t out[32], struct users *users, const char *path)
{
	json_t *root, *clients, *c, *key;
	json_error_t jerr;
	const char *v;
	char *s;
	size_t i;
	int rc = ERR_INVAL;

	if ((root = json_load_file(path, 0, &jerr)) == NULL) {
		err_set("%s: %s", path, jerr.text);
		return ERR_INVAL;
	}
	key = json_object_get(json_object_get(json_object_get(json_array_get(
	    json_object_get(root, "inbounds"), 0), "streamSettings"), "realitySettings"),
	    "privateKey");
	clients = json_object_get(json_object_get(json_array_get(json_object_get(root,
	    "inbounds"), 0), "settings"), "clients");
	if (!json_is_array(clients)) {
		err_set("%s: no inbounds[0].settings.clients", path);
		goto out;
	}
	json_array_foreach(clients, i, c) {
		const char *id = json_string_value(json_object_get(c, "id"));
		const char *email = json_string_value(json_object_get(c, "email"));
		if (id != NULL && email != NULL && users_set(users, id, email) != 0)
			goto out;
	}
	json_array_clear(clients);
	if ((s = json_dumps(root, JSON_SORT_KEYS | JSON_INDENT(2))) == NULL) {
		err_set("out of memory");
		goto out;
	}
	hash_text(out, s, true);
	sodium_memzero(s, strlen(s));
	free(s);
	rc = 0;
out:
	if ((v = json_string_value(key)) != NULL)
		sodium_memzero((char *)(uintptr_t)v, strlen(v));
	json_decref(root);
	return rc;
}

/* An Xray left running by an earlier buoy, if xray.pid names one that is ours. */
static void
adopt(struct xray_sup *xs)
{
	char *text = NULL;
	size_t len;
	long pid;

	if (fs_read_file(&text, &len, xs->pidfile, 64) != 0)
		return;
	pid = strtol(text, NULL, 10);
	free(text);
	if (pid <= 1 || kill((pid_t)pid, 0) != 0 || !is_ours(xs, (pid_t)pid))
		return;
	if (settings_of_file(xs->settings, &xs->have, xs->conf) != 0) {
		log_warnx("xray: not adopting pid=%ld: %s", pid, err_last());
		users_clear(&xs->have);
		return;
	}
	xs->have_settings = true;
	xs->pid = (pid_t)pid;
	xs->child = false;
	xs->started = mono_s();
	if (api_renew(xs) != 0)
		log_warnx("xray: %s", err_last());
	log_info("xray: adopted the running xray pid=%ld users=%zu", pid, xs->have.n);
}

static void
disable(struct xray_sup *xs, const char *why)
{
	if (xs->pid > 0) {
		log_info("xray: stopping pid=%ld: %s", (long)xs->pid, why);
		stop_proc(xs);
		unlink(xs->pidfile);
	}
	if (xs->enabled)
		log_info("xray: disabled: %s", why);
	xs->enabled = false;
	snprintf(xs->why_disabled, sizeof(xs->why_disabled), "%s", why);
	users_clear(&xs->want);
	users_clear(&xs->have);
	xs->have_settings = false;
	xs->need_resync = false;
	xs->op_error[0] = '\0';
	xs->died = false;
	xs->backoff = 0;
	xs->gen++;
	xs->busy = false;
}

/* ---- the interface ---- */

int
xray_sup_apply(struct xray_sup *xs, const Pharos__V1__NodeConfig *cfg, uint32_t *added,
    uint32_t *removed, char *why, size_t whylen)
{
	struct users nw;
	struct xray_diff d;
	uint8_t settings[32];
	char *json = NULL, *flow;
	int rc;

	*added = *removed = 0;
	if (cfg == NULL || cfg->xray == NULL || cfg->idle) {
		disable(xs, cfg == NULL ? "no config" : cfg->xray == NULL ?
		    "the config has no xray section" : "the node is idle");
		return 0;
	}
	if (xs->bin[0] == '\0') {
		if (strcmp(xs->why_disabled, "no xray binary") != 0)
			log_warnx("xray: the config has an xray section, but there is no xray "
			    "binary (--xray, or xray in PATH): Xray is not run");
		disable(xs, "no xray binary");
		return 0;
	}
	if ((rc = ensure_key(xs)) != 0 ||
	    (rc = users_copy(&nw, cfg->vless_users, cfg->n_vless_users)) != 0)
		goto fail;
	if ((rc = xray_users_diff(&d, xs->want.v, xs->want.n, nw.v, nw.n)) != 0) {
		users_clear(&nw);
		goto fail;
	}
	*added = (uint32_t)d.nadd;
	*removed = (uint32_t)d.nremove;
	xray_diff_free(&d);
	if ((rc = settings_of(settings, xs, cfg)) != 0 ||
	    (rc = xray_config_json(&json, cfg, xs->priv, xs->api_listen)) != 0 ||
	    (rc = fs_write_atomic(xs->conf, json, strlen(json), 0600)) != 0 ||
	    (flow = strdup(cfg->xray->flow)) == NULL) {
		if (rc == 0) {
			err_set("out of memory");
			rc = ERR_NOMEM;
		}
		xray_config_free(json);
		users_clear(&nw);
		goto fail;
	}
	xray_config_free(json);
	users_clear(&xs->want);
	xs->want = nw;
	free(xs->flow);
	xs->flow = flow;
	xs->enabled = true;
	xs->why_disabled[0] = '\0';
	if (xs->pid <= 0) {
		memcpy(xs->settings, settings, 32);
		xs->have_settings = true;
		if (xs->next_start <= mono_s() && (rc = start_proc(xs)) != 0)
			goto fail;		/* the tick tries again */
	} else if (!xs->have_settings || memcmp(settings, xs->settings, 32) != 0) {
		memcpy(xs->settings, settings, 32);
		xs->have_settings = true;
		log_info("xray: the inbound's settings changed; restarting pid=%ld",
		    (long)xs->pid);
		stop_proc(xs);
		if ((rc = start_proc(xs)) != 0)
			goto fail;
		xs->restarts++;
		emit(xs, PHAROS__V1__EVENT_KIND__EVENT_KIND_BACKEND_RESTARTED,
		    "the inbound's settings changed (port, target, server names, short ids or "
		    "flow)");
	} else {
		kick(xs);
	}
	return 0;
fail:
	snprintf(why, whylen, "xray: %s", err_last());
	report(xs, why);
	return rc;
}

int
xray_sup_restart(struct xray_sup *xs, const char *reason, char *why, size_t whylen)
{
	int rc;

	if (!xs->enabled) {
		snprintf(why, whylen, "Xray is not run here: %s", xs->why_disabled[0] ?
		    xs->why_disabled : "no config yet");
		return ERR_INVAL;
	}
	log_info("xray: restarting pid=%ld: %s", (long)xs->pid, reason);
	stop_proc(xs);
	xs->backoff = 0;
	xs->died = false;
	if ((rc = start_proc(xs)) != 0) {
		snprintf(why, whylen, "xray: %s", err_last());
		report(xs, why);
		xs->next_start = mono_s() + 1;
		return rc;
	}
	xs->restarts++;
	xs->need_resync = true;
	emit(xs, PHAROS__V1__EVENT_KIND__EVENT_KIND_BACKEND_RESTARTED, reason);
	kick(xs);
	return 0;
}

void
xray_sup_status(struct xray_sup *xs, struct xray_sup_status *st)
{
	memset(st, 0, sizeof(*st));
	st->restarts = xs->restarts;
	st->users = (uint32_t)xs->have.n;
	st->have_key = xs->have_key;
	if (xs->have_key)
		memcpy(st->reality_public, xs->pub, 32);
	if (!xs->enabled) {
		st->health = PHAROS__V1__HEALTH_STATE__HEALTH_STATE_DISABLED;
		snprintf(st->detail, sizeof(st->detail), "%s", xs->why_disabled[0] ?
		    xs->why_disabled : "no config yet");
	} else if (xs->pid <= 0) {
		st->health = PHAROS__V1__HEALTH_STATE__HEALTH_STATE_DOWN;
		snprintf(st->detail, sizeof(st->detail), "not running%s%s",
		    xs->exit_text[0] ? ": " : "", xs->exit_text);
	} else if (xs->api == NULL || !xray_api_ready(xs->api)) {
		st->health = PHAROS__V1__HEALTH_STATE__HEALTH_STATE_DOWN;
		snprintf(st->detail, sizeof(st->detail), "pid %ld: the API at %s does not answer",
		    (long)xs->pid, xs->api_listen);
	} else if (xs->op_error[0] != '\0') {
		st->health = PHAROS__V1__HEALTH_STATE__HEALTH_STATE_DEGRADED;
		snprintf(st->detail, sizeof(st->detail), "%s", xs->op_error);
	} else {
		st->health = PHAROS__V1__HEALTH_STATE__HEALTH_STATE_UP;
	}
}

struct xray_sup *
xray_sup_new(struct event_base *base, const char *dir, const char *bin, const char *api_listen,
    dp_event_fn on_event, void *arg)
{
	struct xray_sup *xs;
	struct timeval tv = { TICK_MS / 1000, (TICK_MS % 1000) * 1000 };
	const char *colon;
	char *abs;

	if (api_listen == NULL)
		api_listen = XRAY_API_LISTEN;
	if ((colon = strrchr(api_listen, ':')) == NULL || colon == api_listen ||
	    (size_t)(colon - api_listen) >= sizeof(xs->api_host) || strlen(colon + 1) == 0 ||
	    strlen(colon + 1) >= sizeof(xs->api_port) || strlen(api_listen) >= sizeof(xs->api_listen)) {
		err_set("xray API address '%s' is not HOST:PORT", api_listen);
		return NULL;
	}
	if ((xs = calloc(1, sizeof(*xs))) == NULL) {
		err_set("out of memory");
		return NULL;
	}
	xs->base = base;
	xs->on_event = on_event;
	xs->event_arg = arg;
	snprintf(xs->bin, sizeof(xs->bin), "%s", bin != NULL ? bin : "");
	snprintf(xs->api_listen, sizeof(xs->api_listen), "%s", api_listen);
	snprintf(xs->api_host, sizeof(xs->api_host), "%.*s", (int)(colon - api_listen),
	    api_listen);
	snprintf(xs->api_port, sizeof(xs->api_port), "%s", colon + 1);
	/* Absolute: Xray's command line names the config, and adoption looks for it. */
	if ((abs = realpath(dir, NULL)) != NULL)
		dir = abs;
	snprintf(xs->conf, sizeof(xs->conf), "%s/%s", dir, XRAY_SUP_CONFIG_FILE);
	snprintf(xs->keyfile, sizeof(xs->keyfile), "%s/%s", dir, XRAY_SUP_KEY_FILE);
	snprintf(xs->pidfile, sizeof(xs->pidfile), "%s/%s", dir, PID_FILE);
	snprintf(xs->log, sizeof(xs->log), "%s/%s", dir, LOG_FILE);
	free(abs);
	if (load_key(xs) != 0 && xs->key_bad)
		log_warnx("xray: %s", err_last());
	if ((xs->tick = evtimer_new(base, tick_cb, xs)) == NULL) {
		err_set("out of memory");
		xray_sup_free(xs);
		return NULL;
	}
	if (xs->bin[0] != '\0')
		adopt(xs);
	evtimer_add(xs->tick, &tv);
	return xs;
}

void
xray_sup_free(struct xray_sup *xs)
{
	if (xs == NULL)
		return;
	xs->closing = true;	/* outstanding calls end now, and change nothing */
	xray_api_free(xs->api);
	if (xs->tick != NULL)
		event_free(xs->tick);
	users_clear(&xs->want);
	users_clear(&xs->have);
	free(xs->flow);
	sodium_memzero(xs->priv, sizeof(xs->priv));
	free(xs);
}
