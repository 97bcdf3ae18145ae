/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fleets hosted on a git forge: when fleet.git has a remote named "upstream", cox fetches
 * its applied branch on an interval (±10 % jitter) straight into refs/heads/<branch>;
 * the ref update wakes the inotify path like a push, so validation, refusal of an invalid
 * revision and the push to nodes are the same. The forge is then the source of truth: a
 * force-push there is followed here. Fetching is blocking network work, so it runs on a
 * short-lived thread; the result comes back to the loop through an event. https and
 * file URLs use libgit2's transports; ssh uses libssh2 with the controller's SSH key.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <git2.h>
#include <sodium.h>

#include "ctl.h"
#include "err.h"
#include "log.h"

static int
creds(git_credential **out, const char *url, const char *user, unsigned int allowed,
    void *arg)
{
	struct upstream *u = arg;

	(void)url;
	if ((allowed & GIT_CREDENTIAL_SSH_KEY) && u->ssh_key != NULL && u->tries++ < 1)
		return git_credential_ssh_key_memory_new(out, user != NULL ? user : "git",
		    u->ssh_pub, (const char *)u->ssh_key, NULL);
	return GIT_PASSTHROUGH;
}

/*
 * The repository and the remote are opened once, by the worker, and kept; the remote is
 * an anonymous one for the configured URL, with no url.*.insteadOf rewriting. libgit2 1.5
 * (Debian 12) leaks a PCRE2 match block on each config regex search that does not match
 * (fixed upstream in libgit2 PR #6382); git_remote_lookup() and the insteadOf rewrite do
 * such searches, and a lookup per fetch leaked ~60 KB each time.
 */
static void
fetch_once(struct upstream *u)
{
	git_fetch_options fo;
	char spec[2 * 192 + 8], *specs[] = { spec };
	git_strarray refspecs = { specs, 1 };
	const git_error *e;

	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	snprintf(spec, sizeof(spec), "+%s:%s", u->c->refname, u->c->refname);
	fo.callbacks.credentials = creds;
	fo.callbacks.payload = u;
	fo.prune = GIT_FETCH_NO_PRUNE;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	u->tries = 0;
	u->rc = 0;
	if (u->repo == NULL)
		u->rc = git_repository_open_bare(&u->repo, u->c->gitdir);
	if (u->rc == 0 && u->remote == NULL) {
		git_remote_create_options ro;

		git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
		ro.repository = u->repo;
		ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF |
		    GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
		u->rc = git_remote_create_with_opts(&u->remote, u->url, &ro);
	}
	if (u->rc == 0)
		u->rc = git_remote_fetch(u->remote, &refspecs, &fo, "cox: fetch upstream");
	if (u->rc != 0 && (e = git_error_last()) != NULL)
		snprintf(u->err, sizeof(u->err), "%s", e->message);
}

static void *
fetch_main(void *arg)
{
	struct upstream *u = arg;

	pthread_mutex_lock(&u->mu);
	for (;;) {
		while (!u->quit && !u->want)
			pthread_cond_wait(&u->cv, &u->mu);
		if (u->quit)
			break;
		u->want = false;
		pthread_mutex_unlock(&u->mu);
		fetch_once(u);
		event_active(u->ev_done, EV_READ, 0);
		pthread_mutex_lock(&u->mu);
	}
	pthread_mutex_unlock(&u->mu);
	git_remote_free(u->remote);
	git_repository_free(u->repo);
	u->remote = NULL;
	u->repo = NULL;
	return NULL;
}

static void
schedule(struct upstream *u)
{
	uint64_t ms = (uint64_t)u->interval_ms * (90 + randombytes_uniform(21)) / 100;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(u->ev_timer, &tv);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *u = arg;

	(void)fd;
	(void)what;
	if (u->running)
		return;
	u->err[0] = '\0';
	u->running = true;
	pthread_mutex_lock(&u->mu);
	u->want = true;
	pthread_cond_signal(&u->cv);
	pthread_mutex_unlock(&u->mu);
}

static void
on_done(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *u = arg;

	(void)fd;
	(void)what;
	u->running = false;
	if (u->rc != 0) {
		u->failures++;
		log_warnx("upstream: fetch %s failed: %s (keeping the last fetched revision)",
		    u->url, u->err[0] ? u->err : "unknown error");
	} else {
		if (u->failures > 0)
			log_info("upstream: fetch %s works again", u->url);
		u->failures = 0;
	}
	if (!u->c->stopping)
		schedule(u);
}

int
upstream_start(struct upstream *u, struct ctl *c, unsigned interval_ms)
{
	git_config *cfg = NULL;
	git_buf url = { 0 };
	uint8_t *key = NULL, *pub = NULL;
	size_t klen = 0, plen = 0;

	memset(u, 0, sizeof(*u));
	u->c = c;
	u->interval_ms = interval_ms;
	/* A plain config read: a remote lookup would search the config with regexes. */
	if (git_repository_config_snapshot(&cfg, c->repo) != 0 ||
	    git_config_get_string_buf(&url, cfg, "remote.upstream.url") != 0) {
		git_config_free(cfg);
		return 0;		/* no forge: pushes go to fleet.git directly */
	}
	snprintf(u->url, sizeof(u->url), "%s", url.ptr);
	git_buf_dispose(&url);
	git_config_free(cfg);
	if (state_secret_get(c->st, "ssh.key", &key, &klen) == 0 &&
	    state_secret_get(c->st, "ssh.pub", &pub, &plen) == 0 &&
	    (u->ssh_key = sodium_malloc(klen + 1)) != NULL) {
		memcpy(u->ssh_key, key, klen + 1);
		snprintf(u->ssh_pub, sizeof(u->ssh_pub), "%s", (const char *)pub);
	}
	if (key != NULL) {
		sodium_memzero(key, klen);
		free(key);
	}
	free(pub);
	u->ev_timer = evtimer_new(c->base, on_timer, u);
	u->ev_done = event_new(c->base, -1, 0, on_done, u);
	if (u->ev_timer == NULL || u->ev_done == NULL) {
		err_set("out of memory");
		return -1;
	}
	if (pthread_mutex_init(&u->mu, NULL) != 0 || pthread_cond_init(&u->cv, NULL) != 0 ||
	    pthread_create(&u->th, NULL, fetch_main, u) != 0) {
		err_set("upstream: cannot start the fetch thread");
		return -1;
	}
	u->started = true;
	u->enabled = true;
	log_info("upstream: fetching %s %s every ~%us into fleet.git", u->url, c->refname,
	    interval_ms / 1000);
	/* The first fetch right away. */
	event_active(u->ev_timer, EV_TIMEOUT, 0);
	return 0;
}

void
upstream_stop(struct upstream *u)
{
	if (u->started) {
		/* A fetch in progress finishes first (git offers no way to abort it). */
		pthread_mutex_lock(&u->mu);
		u->quit = true;
		pthread_cond_signal(&u->cv);
		pthread_mutex_unlock(&u->mu);
		pthread_join(u->th, NULL);
		pthread_mutex_destroy(&u->mu);
		pthread_cond_destroy(&u->cv);
	}
	if (u->ev_timer != NULL)
		event_free(u->ev_timer);
	if (u->ev_done != NULL)
		event_free(u->ev_done);
	if (u->ssh_key != NULL)
		sodium_free(u->ssh_key);
	memset(u, 0, sizeof(*u));
}
