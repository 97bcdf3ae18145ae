/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin UI and API (admin.h; docs/DESIGN.md §10).
 *
 * Requests are served on the controller's loop. Everything slow — a login (Argon2id) and
 * an edit (libgit2, validation of the whole fleet) — is a job for the one worker thread,
 * which owns its own state.db connection; the reply goes out from the loop when the job
 * comes back. Jobs run one at a time, so concurrent edits serialize here as well as on the
 * branch's compare-and-swap.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <git2.h>
#include <jansson.h>
#include <sodium.h>
#include <yaml.h>

#include "admin.h"
#include "addr.h"
#include "arena.h"
#include "auth.h"
#include "ctl.h"
#include "desired.h"
#include "edit.h"
#include "err.h"
#include "fleet.h"
#include "log.h"
#include "state.h"
#include "version.h"
#include "webui.h"
#include "ytree.h"

#define BODY_MAX	(1024 * 1024)
#define SSE_PING_S	15
#define LIST_MAX	1000		/* records per page */
#define HISTORY_MAX	200
#define REFS_CHECK_MS	250		/* a push to any branch shows on open pages this soon */

enum job_kind { JOB_LOGIN, JOB_EDIT, JOB_REVIEW, JOB_MERGE, JOB_PLAN };

struct job {
	struct admin		*a;
	enum job_kind		 kind;
	struct evhttp_request	*req;		/* NULL once the client has gone */
	struct evhttp_connection *evcon;
	struct job		*next;
	/* who asked */
	char			 actor[160];	/* "admin:NAME" or "token:NAME" */
	/* JOB_LOGIN */
	char			 user[AUTH_USER_MAX];
	char			*pass;		/* sodium_malloc'd, wiped */
	char			 ip[64];
	bool			 is_admin;
	struct auth_session	 sess;
	int			 rc;
	int64_t			 retry_after;
	/* JOB_EDIT */
	struct edit		 e;
	char			*path, *content, *base, *branch, *message, *aname, *aemail;
	char			*what;		/* for the audit: "user.update alice" */
	struct edit_result	 r;
	struct fleet		*fleet;		/* EDIT_OK on the applied branch: the new fleet */
	bool			 proposal;	/* the edit went to a proposal branch */
	/* JOB_REVIEW, JOB_MERGE (branch, base = the head the reviewer saw), JOB_PLAN */
	struct merge		 mg;
	struct merge_result	 mr;
	char			*from, *to;	/* JOB_PLAN: the revisions */
	json_t			*info;		/* JOB_REVIEW: what the loop knew */
};

struct sse {
	struct evhttp_request	*req;
	struct sse		*next;
};

struct admin {
	struct ctl		*c;
	struct evhttp		*http;
	/* the newest fleet we can answer from: the applied revision, or a later edit's */
	struct fleet		*fleet;
	char			 rev[STATE_REV_MAX];
	struct sse		*sse;
	uint64_t		 sse_id;
	struct event		*ev_ping;
	struct event		*ev_refs;	/* branch heads are checked every REFS_CHECK_MS */
	uint8_t			 nodes_digest[32];
	uint8_t			 branches_digest[32];	/* every branch head: proposals */
	/* the worker */
	pthread_t		 th;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	bool			 started, quit;
	struct job		*todo, *done;
	struct event		*ev_done;
	struct state		*wst;		/* the worker's own connection */
	struct fleet		*edit_cache;	/* the worker's: edits reuse its records */
	struct edit_repo	*wrepo;		/* the worker's, open between edits */
};

/* ---- small helpers ---- */

static int64_t
now_unix(void)
{
	return (int64_t)time(NULL);
}

static void
reply_json(struct evhttp_request *req, int code, json_t *j, const char *etag)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *b = evbuffer_new();
	char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (etag != NULL && etag[0] != '\0') {
		char q[STATE_REV_MAX + 4];

		snprintf(q, sizeof(q), "\"%s\"", etag);
		evhttp_add_header(h, "ETag", q);
	}
	if (b != NULL && s != NULL)
		evbuffer_add(b, s, strlen(s));
	evhttp_send_reply(req, code, code == 200 ? "OK" : code == 201 ? "Created" : NULL, b);
	if (b != NULL)
		evbuffer_free(b);
	free(s);
	json_decref(j);
}

static void
reply_error(struct evhttp_request *req, int code, const char *error, const char *msg)
{
	reply_json(req, code, json_pack("{s:s, s:s}", "error", error, "message", msg), NULL);
}

/* The request body as a NUL-terminated string, or NULL (too large). */
static char *
body_of(struct evhttp_request *req, size_t *len)
{
	struct evbuffer *b = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(b);
	char *s;

	if (n > BODY_MAX || (s = malloc(n + 1)) == NULL)
		return NULL;
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	*len = n;
	return s;
}

static const char *
header(struct evhttp_request *req, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

/* The cookie's value of name, copied into out. */
static bool
cookie_get(struct evhttp_request *req, const char *name, char *out, size_t outsz)
{
	const char *h = header(req, "Cookie"), *p;
	size_t nl = strlen(name);

	if (h == NULL)
		return false;
	for (p = h; *p != '\0';) {
		while (*p == ' ' || *p == ';')
			p++;
		if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
			const char *v = p + nl + 1;
			size_t vl = strcspn(v, ";");

			if (vl >= outsz)
				return false;
			memcpy(out, v, vl);
			out[vl] = '\0';
			return true;
		}
		p += strcspn(p, ";");
	}
	return false;
}

static void
client_ip(struct evhttp_request *req, char *out, size_t outsz)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	const char *host = NULL;
	ev_uint16_t port = 0;

	snprintf(out, outsz, "?");
	if (evcon != NULL) {
		evhttp_connection_get_peer(evcon, (char **)(uintptr_t)&host, &port);
		if (host != NULL)
			snprintf(out, outsz, "%s", host);
	}
}

/* ---- who is asking ---- */

struct who {
	char		 name[AUTH_USER_MAX];	/* the admin, or the token's name */
	char		 actor[160];
	bool		 session;
	enum auth_scope	 scope;
	char		 cookie[AUTH_COOKIE_SIZE];
	char		 csrf[AUTH_CSRF_SIZE];
};

/*
 * A session cookie (an admin of the applied revision) or a bearer token with at least
 * `need`. Mutations by a session must echo its CSRF token in X-CSRF-Token. On refusal the
 * reply has been sent and false is returned.
 */
static bool
authenticate(struct admin *a, struct evhttp_request *req, enum auth_scope need, bool mutation,
    struct who *w)
{
	const char *authz = header(req, "Authorization");
	struct auth_session s;
	int rc;

	memset(w, 0, sizeof(*w));
	if (authz != NULL && strncmp(authz, "Bearer ", 7) == 0) {
		struct auth_token t;

		rc = auth_token_check(a->c->st, authz + 7, now_unix(), need, &t);
		if (rc == AUTH_SCOPE) {
			reply_error(req, 403, "forbidden", "the token's scope does not allow this");
			return false;
		}
		if (rc != 0) {
			reply_error(req, 401, "unauthorized", "unknown, expired or revoked token");
			return false;
		}
		snprintf(w->name, sizeof(w->name), "%s", t.name);
		snprintf(w->actor, sizeof(w->actor), "token:%s", t.name);
		w->scope = t.scope;
		return true;
	}
	if (!cookie_get(req, "pharos_session", w->cookie, sizeof(w->cookie)) ||
	    (rc = auth_session_check(a->c->st, w->cookie, now_unix(), &s)) != 0) {
		sodium_memzero(w->cookie, sizeof(w->cookie));
		reply_error(req, 401, "unauthorized", "log in first");
		return false;
	}
	/* Still an admin of the fleet? A role removed in git ends the session. */
	if (a->fleet != NULL && !auth_fleet_admin(a->fleet, s.user)) {
		auth_sessions_drop(a->c->st, s.user, NULL);
		sodium_memzero(&s, sizeof(s));
		reply_error(req, 401, "unauthorized", "no longer an admin of this fleet");
		return false;
	}
	if (mutation) {
		const char *csrf = header(req, "X-CSRF-Token");

		if (csrf == NULL || auth_csrf_check(w->cookie, csrf) != 0) {
			sodium_memzero(&s, sizeof(s));
			reply_error(req, 403, "csrf", "missing or wrong X-CSRF-Token");
			return false;
		}
	}
	snprintf(w->name, sizeof(w->name), "%s", s.user);
	snprintf(w->actor, sizeof(w->actor), "admin:%s", s.user);
	memcpy(w->csrf, s.csrf, sizeof(w->csrf));
	w->session = true;
	w->scope = AUTH_SCOPE_ADMIN;
	sodium_memzero(&s, sizeof(s));
	return true;
}

/* ---- events to open pages ---- */

static void
sse_closed(struct evhttp_connection *evcon, void *arg)
{
	struct admin *a = arg;
	struct sse **pp, *s;

	for (pp = &a->sse; (s = *pp) != NULL;) {
		if (evhttp_request_get_connection(s->req) == evcon) {
			*pp = s->next;
			free(s);
		} else
			pp = &s->next;
	}
}

/*
 * A stream whose client went away: libevent detaches the request from the dead connection
 * (without always calling the close callback) and leaves it to us; ending it frees it.
 */
static void
sse_reap(struct admin *a)
{
	struct sse **pp, *s;

	for (pp = &a->sse; (s = *pp) != NULL;) {
		if (evhttp_request_get_connection(s->req) == NULL) {
			*pp = s->next;
			evhttp_send_reply_end(s->req);
			free(s);
		} else
			pp = &s->next;
	}
}

static void
sse_send(struct admin *a, const char *type, json_t *data)
{
	char *s = json_dumps(data, JSON_COMPACT);
	struct sse *c;

	json_decref(data);
	if (s == NULL)
		return;
	sse_reap(a);
	a->sse_id++;
	for (c = a->sse; c != NULL; c = c->next) {
		struct evbuffer *b = evbuffer_new();

		if (b == NULL)
			continue;
		evbuffer_add_printf(b, "id: %llu\nevent: %s\ndata: %s\n\n",
		    (unsigned long long)a->sse_id, type, s);
		evhttp_send_reply_chunk(c->req, b);
		evbuffer_free(b);
	}
	free(s);
}

static void
on_ping(evutil_socket_t fd, short what, void *arg)
{
	struct admin *a = arg;
	struct sse *c;

	(void)fd;
	(void)what;
	sse_reap(a);
	for (c = a->sse; c != NULL; c = c->next) {
		struct evbuffer *b = evbuffer_new();

		if (b == NULL)
			continue;
		evbuffer_add_printf(b, ": ping\n\n");
		evhttp_send_reply_chunk(c->req, b);
		evbuffer_free(b);
	}
}

static void
h_events(struct admin *a, struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct sse *s;
	struct evbuffer *b;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		reply_error(req, 503, "busy", "out of memory");
		return;
	}
	evhttp_add_header(h, "Content-Type", "text/event-stream");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply_start(req, 200, "OK");
	s->req = req;
	s->next = a->sse;
	a->sse = s;
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), sse_closed, a);
	if ((b = evbuffer_new()) != NULL) {
		evbuffer_add_printf(b, "retry: 1000\nevent: hello\ndata: {\"revision\":\"%s\"}\n\n",
		    a->rev);
		evhttp_send_reply_chunk(req, b);
		evbuffer_free(b);
	}
}

/* ---- JSON views of the fleet ---- */

static json_t *
jstr(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static json_t *
user_json(const struct user *u, bool devices)
{
	json_t *o = json_object(), *dv;
	const struct device *d = u->devices.v;
	size_t i;

	json_object_set_new(o, "name", json_string(u->name));
	json_object_set_new(o, "email", jstr(u->email.v));
	json_object_set_new(o, "full_name", jstr(u->full_name.v));
	json_object_set_new(o, "role", json_string(u->admin ? "admin" : "user"));
	json_object_set_new(o, "disabled", json_boolean(u->disabled.set && u->disabled.v));
	if (!devices) {
		json_object_set_new(o, "devices", json_integer((json_int_t)u->devices.n));
		return o;
	}
	dv = json_array();
	for (i = 0; i < u->devices.n; i++) {
		json_t *x = json_object();

		json_object_set_new(x, "name", jstr(d[i].name.v));
		json_object_set_new(x, "public_key", jstr(d[i].public_key.v));
		json_object_set_new(x, "address", jstr(d[i].address.v));
		json_array_append_new(dv, x);
	}
	json_object_set_new(o, "devices", dv);
	return o;
}

static json_t *
node_row_json(struct admin *a, const char *name)
{
	json_t *o = json_object();
	size_t lo = 0, hi = a->c->nnodes;

	json_object_set_new(o, "name", json_string(name));
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		struct cnode *n = a->c->nodes[mid];
		int c = strcmp(name, n->name);

		if (c == 0) {
			static const char *const phase[] = { "idle", "check", "push", "synced",
			    "retry", "wait" };
			bool drift = n->want != NULL && (!n->have_report ||
			    memcmp(n->db.content_hash, n->want->content_hash, 32) != 0 ||
			    !n->db.have_applied);

			json_object_set_new(o, "enrolled", json_boolean(n->db.cert_pem != NULL));
			json_object_set_new(o, "reachable", json_boolean(n->db.reachable));
			json_object_set_new(o, "phase", json_string(phase[n->phase]));
			json_object_set_new(o, "applied_revision", json_string(n->db.applied_rev));
			json_object_set_new(o, "attempted_revision",
			    json_string(n->db.attempted_rev));
			json_object_set_new(o, "drift", json_boolean(drift && n->phase != CN_SYNCED));
			json_object_set_new(o, "last_error", jstr(n->db.last_error));
			json_object_set_new(o, "last_seen_unix",
			    json_integer(n->db.last_seen_unix));
			json_object_set_new(o, "peers",
			    json_integer(n->want != NULL ? n->want->npeers : 0));
			return o;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	json_object_set_new(o, "enrolled", json_false());
	json_object_set_new(o, "reachable", json_false());
	json_object_set_new(o, "phase", json_string("unknown"));
	return o;
}

static json_t *
node_json(struct admin *a, const struct node *n)
{
	json_t *o = node_row_json(a, n->name), *roles = json_array();

	json_object_set_new(o, "region", jstr(n->region.v));
	if (n->roles_mask & ROLE_ENTRY)
		json_array_append_new(roles, json_string("entry"));
	if (n->roles_mask & ROLE_EXIT)
		json_array_append_new(roles, json_string("exit"));
	json_object_set_new(o, "roles", roles);
	json_object_set_new(o, "ssh", jstr(n->ssh.v));
	json_object_set_new(o, "control", jstr(n->control.v));
	return o;
}

static json_t *
status_json(struct admin *a)
{
	struct ctl *c = a->c;
	json_t *o = json_object(), *nodes = json_array();
	char *att = NULL, *errs = NULL;
	size_t i;

	json_object_set_new(o, "revision", json_string(a->rev));
	json_object_set_new(o, "applied_revision", json_string(c->applied_rev));
	json_object_set_new(o, "head", json_string(c->seen_rev));
	json_object_set_new(o, "fleet", json_string(c->fleet_id));
	json_object_set_new(o, "branch", json_string(c->branch));
	json_object_set_new(o, "version", json_string(PHAROS_VERSION));
	json_object_set_new(o, "converged", json_boolean(c->converged));
	if (state_meta_get(c->st, "attempted_rev", &att) == 0 &&
	    state_meta_get(c->st, "attempted_errors", &errs) == 0 && errs != NULL &&
	    errs[0] != '\0') {
		json_object_set_new(o, "refused_revision", jstr(att));
		json_object_set_new(o, "refused_errors", json_string(errs));
	}
	json_object_set_new(o, "valid", json_boolean(strcmp(c->seen_rev, c->applied_rev) == 0 ||
	    errs == NULL || errs[0] == '\0'));
	free(att);
	free(errs);
	for (i = 0; i < c->nnodes; i++)
		if (c->nodes[i]->in_fleet)
			json_array_append_new(nodes, node_row_json(a, c->nodes[i]->name));
	json_object_set_new(o, "nodes", nodes);
	if (a->fleet != NULL) {
		json_object_set_new(o, "users", json_integer((json_int_t)a->fleet->nusers));
		json_object_set_new(o, "devices", json_integer((json_int_t)a->fleet->ndevices));
	}
	return o;
}

/* ---- edits: JSON in, YAML out ---- */

static int
emit_scalar(yaml_emitter_t *em, const char *s, bool quoted)
{
	yaml_event_t ev;

	yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)(uintptr_t)s, (int)strlen(s),
	    !quoted, quoted, quoted ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_PLAIN_SCALAR_STYLE);
	return yaml_emitter_emit(em, &ev) ? 0 : -1;
}

static int
emit_simple(yaml_emitter_t *em, yaml_event_type_t t)
{
	yaml_event_t ev;
	int ok = 0;

	switch (t) {
	case YAML_STREAM_START_EVENT:
		ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
		break;
	case YAML_STREAM_END_EVENT:
		ok = yaml_stream_end_event_initialize(&ev);
		break;
	case YAML_DOCUMENT_START_EVENT:
		ok = yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
		break;
	case YAML_DOCUMENT_END_EVENT:
		ok = yaml_document_end_event_initialize(&ev, 1);
		break;
	case YAML_MAPPING_START_EVENT:
		ok = yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
		break;
	case YAML_MAPPING_END_EVENT:
		ok = yaml_mapping_end_event_initialize(&ev);
		break;
	case YAML_SEQUENCE_START_EVENT:
		ok = yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
		    YAML_BLOCK_SEQUENCE_STYLE);
		break;
	case YAML_SEQUENCE_END_EVENT:
		ok = yaml_sequence_end_event_initialize(&ev);
		break;
	default:
		return -1;
	}
	return ok && yaml_emitter_emit(em, &ev) ? 0 : -1;
}

struct strbuf {
	char	*s;
	size_t	 len, cap;
};

static int
strbuf_write(void *arg, unsigned char *buf, size_t n)
{
	struct strbuf *b = arg;

	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *p = realloc(b->s, cap);

		if (p == NULL)
			return 0;
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, buf, n);
	b->len += n;
	b->s[b->len] = '\0';
	return 1;
}

static bool
str_ok(const json_t *v, size_t max)
{
	return json_is_string(v) && json_string_length(v) <= max &&
	    strlen(json_string_value(v)) == json_string_length(v);
}

/*
 * A user record from the API's JSON: {email, full_name, role, disabled, devices: [{name,
 * public_key, address}]}; "name" may be there and must then match. Only these keys; the
 * values' meaning is the validator's business (the commit is validated). Strings are
 * written double-quoted: YAML 1.1 would read a plain `no` or `0x1` as something else.
 */
int
admin_user_yaml(const json_t *u, const char *name, char **yaml, size_t *len, const char **why)
{
	static const char *const keys[] = { "name", "email", "full_name", "role", "disabled",
	    "devices", NULL };
	static const char *const dkeys[] = { "name", "public_key", "address", NULL };
	yaml_emitter_t em;
	struct strbuf b = { NULL, 0, 0 };
	const char *k;
	json_t *v, *dv;
	size_t i, j;
	int rc = -1;

	*yaml = NULL;
	*len = 0;
	*why = "out of memory";
	if (!json_is_object(u)) {
		*why = "the body must be a JSON object";
		return -1;
	}
	json_object_foreach((json_t *)(uintptr_t)u, k, v) {
		for (i = 0; keys[i] != NULL && strcmp(keys[i], k) != 0; i++)
			;
		if (keys[i] == NULL) {
			*why = "unknown key in the user (allowed: name, email, full_name, role, "
			    "disabled, devices)";
			return -1;
		}
		if (json_is_null(v))
			continue;		/* absent */
		if (strcmp(k, "disabled") == 0 ? !json_is_boolean(v) :
		    strcmp(k, "devices") == 0 ? !json_is_array(v) : !str_ok(v, 512)) {
			*why = "a user's values are strings, disabled a boolean, devices a list";
			return -1;
		}
	}
	if ((v = json_object_get(u, "name")) != NULL && json_is_string(v) &&
	    strcmp(json_string_value(v), name) != 0) {
		*why = "the name in the body differs from the one in the path";
		return -1;
	}
	dv = json_object_get(u, "devices");
	for (i = 0; dv != NULL && i < json_array_size(dv); i++) {
		json_t *d = json_array_get(dv, i);

		if (!json_is_object(d)) {
			*why = "each device is an object";
			return -1;
		}
		json_object_foreach(d, k, v) {
			for (j = 0; dkeys[j] != NULL && strcmp(dkeys[j], k) != 0; j++)
				;
			if (dkeys[j] == NULL || (!json_is_null(v) && !str_ok(v, 512))) {
				*why = "a device has name, public_key and address, all strings";
				return -1;
			}
		}
	}
	if (!yaml_emitter_initialize(&em))
		return -1;
	yaml_emitter_set_output(&em, strbuf_write, &b);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1);
	if (emit_simple(&em, YAML_STREAM_START_EVENT) != 0 ||
	    emit_simple(&em, YAML_DOCUMENT_START_EVENT) != 0 ||
	    emit_simple(&em, YAML_MAPPING_START_EVENT) != 0)
		goto out;
	for (i = 1; keys[i] != NULL; i++) {
		if ((v = json_object_get(u, keys[i])) == NULL || json_is_null(v))
			continue;
		if (emit_scalar(&em, keys[i], false) != 0)
			goto out;
		if (json_is_boolean(v)) {
			if (emit_scalar(&em, json_is_true(v) ? "true" : "false", false) != 0)
				goto out;
		} else if (json_is_string(v)) {
			if (emit_scalar(&em, json_string_value(v), true) != 0)
				goto out;
		} else {
			if (emit_simple(&em, YAML_SEQUENCE_START_EVENT) != 0)
				goto out;
			for (j = 0; j < json_array_size(v); j++) {
				json_t *d = json_array_get(v, j), *x;
				size_t m;

				if (emit_simple(&em, YAML_MAPPING_START_EVENT) != 0)
					goto out;
				for (m = 0; dkeys[m] != NULL; m++) {
					if ((x = json_object_get(d, dkeys[m])) == NULL || json_is_null(x))
						continue;
					if (emit_scalar(&em, dkeys[m], false) != 0 ||
					    emit_scalar(&em, json_string_value(x), true) != 0)
						goto out;
				}
				if (emit_simple(&em, YAML_MAPPING_END_EVENT) != 0)
					goto out;
			}
			if (emit_simple(&em, YAML_SEQUENCE_END_EVENT) != 0)
				goto out;
		}
	}
	if (emit_simple(&em, YAML_MAPPING_END_EVENT) != 0 ||
	    emit_simple(&em, YAML_DOCUMENT_END_EVENT) != 0 ||
	    emit_simple(&em, YAML_STREAM_END_EVENT) != 0 || !yaml_emitter_flush(&em))
		goto out;
	*yaml = b.s;
	*len = b.len;
	b.s = NULL;
	rc = 0;
out:
	if (rc != 0)
		*why = em.problem != NULL ? em.problem : "cannot write the record";
	yaml_emitter_delete(&em);
	free(b.s);
	return rc;
}

/* ---- the worker ---- */

static void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	if (j->pass != NULL)
		sodium_free(j->pass);
	free(j->path);
	free(j->content);
	free(j->base);
	free(j->branch);
	free(j->message);
	free(j->aname);
	free(j->aemail);
	free(j->what);
	edit_result_free(&j->r);
	merge_result_free(&j->mr);
	free(j->from);
	free(j->to);
	json_decref(j->info);
	fleet_free(j->fleet);
	sodium_memzero(&j->sess, sizeof(j->sess));
	free(j);
}

static void
job_run(struct admin *a, struct job *j)
{
	if (j->kind == JOB_LOGIN) {
		j->rc = auth_login(a->wst, j->user, j->pass, j->is_admin, j->ip, now_unix(),
		    &j->sess, &j->retry_after);
		sodium_memzero(j->pass, strlen(j->pass));
		return;
	}
	if (j->kind == JOB_REVIEW || j->kind == JOB_MERGE) {
		j->mg.branch = j->branch;
		j->mg.into = a->c->branch;
		j->mg.expect = j->base;
		j->mg.author_name = j->aname;
		j->mg.author_email = j->aemail;
		j->mg.message = j->message;
		j->mg.dry_run = j->kind == JOB_REVIEW;
		if (edit_merge(a->c->gitdir, &j->mg, &j->mr) != 0 && j->mr.status == MERGE_OK)
			j->mr.status = MERGE_ERROR;
		return;
	}
	if (j->kind == JOB_PLAN) {
		edit_plan(a->c->gitdir, j->from, j->to, &j->mr);
		return;
	}
	j->e.path = j->path;
	j->e.content = j->content;
	j->e.len = j->content != NULL ? strlen(j->content) : 0;
	j->e.base = j->base;
	j->e.branch = j->branch;
	j->e.author_name = j->aname;
	j->e.author_email = j->aemail;
	j->e.message = j->message;
	j->e.onto = j->proposal ? a->c->branch : NULL;
	j->e.cache = &a->edit_cache;
	j->e.repo = a->wrepo;
	if (edit_apply(a->c->gitdir, &j->e, &j->r) != 0 && j->r.status == EDIT_OK)
		j->r.status = EDIT_ERROR;
	if (j->r.status == EDIT_OK && a->edit_cache != NULL)
		j->fleet = fleet_ref(a->edit_cache);	/* the worker's to read, ours to hand */
}

static void *
worker(void *arg)
{
	struct admin *a = arg;
	struct job *j;

	/* Open for the worker's life: edits then find the last edit's trees in its cache. */
	git_libgit2_init();
	if (edit_repo_open(&a->wrepo, a->c->gitdir) != 0) {
		log_warnx("admin: %s: %s (edits open it each time)", a->c->gitdir,
		    git_error_last() != NULL ? git_error_last()->message : "?");
		a->wrepo = NULL;
	}
	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->quit && a->todo == NULL)
			pthread_cond_wait(&a->cv, &a->mu);
		if (a->quit)
			break;
		j = a->todo;
		a->todo = j->next;
		pthread_mutex_unlock(&a->mu);
		job_run(a, j);
		pthread_mutex_lock(&a->mu);
		j->next = a->done;
		a->done = j;
		event_active(a->ev_done, EV_READ, 0);
	}
	pthread_mutex_unlock(&a->mu);
	edit_repo_free(a->wrepo);
	a->wrepo = NULL;
	git_libgit2_shutdown();
	return NULL;
}

static void
job_conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct job *j = arg;

	(void)evcon;
	j->req = NULL;
}

static void
submit(struct admin *a, struct job *j)
{
	struct job **pp;

	j->a = a;
	if (j->req != NULL && (j->evcon = evhttp_request_get_connection(j->req)) != NULL)
		evhttp_connection_set_closecb(j->evcon, job_conn_closed, j);
	pthread_mutex_lock(&a->mu);
	for (pp = &a->todo; *pp != NULL; pp = &(*pp)->next)
		;
	j->next = NULL;
	*pp = j;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

static void
login_done(struct admin *a, struct job *j)
{
	struct evkeyvalq *h;
	char cookie[256];

	if (j->rc == AUTH_LIMITED) {
		char ra[32];

		snprintf(ra, sizeof(ra), "%lld", (long long)j->retry_after);
		evhttp_add_header(evhttp_request_get_output_headers(j->req), "Retry-After", ra);
		reply_error(j->req, 429, "rate_limited", "too many failed logins; wait");
		return;
	}
	if (j->rc != 0) {
		if (audit_append(a->c->st, "admin:-", "admin.login_failed", j->user, j->ip) != 0)
			log_warnx("audit: %s", err_last());
		reply_error(j->req, 401, "unauthorized", "wrong user or passphrase");
		return;
	}
	h = evhttp_request_get_output_headers(j->req);
	snprintf(cookie, sizeof(cookie), "pharos_session=%s; Path=/; HttpOnly; SameSite=Strict; "
	    "Max-Age=%d", j->sess.cookie, AUTH_SESSION_MAX_S);
	evhttp_add_header(h, "Set-Cookie", cookie);
	sodium_memzero(cookie, sizeof(cookie));
	if (audit_append(a->c->st, j->actor, "admin.login", j->user, j->ip) != 0)
		log_warnx("audit: %s", err_last());
	reply_json(j->req, 200, json_pack("{s:s, s:s, s:I}", "user", j->sess.user, "csrf",
	    j->sess.csrf, "expires_unix", (json_int_t)j->sess.expires_unix), NULL);
}

static json_t *
yaml_to_json(const char *text);
static void
proposals_changed(struct admin *a, const char *branch, const char *what);
static void
merge_done(struct admin *a, struct job *j);

static void
edit_done(struct admin *a, struct job *j)
{
	struct edit_result *r = &j->r;
	json_t *o;

	switch (r->status) {
	case EDIT_OK:
		if (audit_append(a->c->st, j->actor, j->what, r->rev, j->path) != 0)
			log_warnx("audit: %s", err_last());
		log_info("admin: %s by %s committed rev=%.12s (%u round%s)", j->what, j->actor,
		    r->rev, r->attempts, r->attempts == 1 ? "" : "s");
		/* The edit's fleet answers reads until the loop applies the commit. */
		if (j->fleet != NULL && strcmp(j->branch, a->c->branch) == 0) {
			fleet_free(a->fleet);
			a->fleet = j->fleet;
			j->fleet = NULL;
			snprintf(a->rev, sizeof(a->rev), "%s", r->rev);
		}
		sse_send(a, "commit", json_pack("{s:s, s:s, s:s, s:s}", "revision", r->rev,
		    "branch", j->branch, "by", j->actor, "what", j->what));
		if (j->proposal)
			proposals_changed(a, j->branch, "edit");
		if (j->req != NULL)
			reply_json(j->req, 200,
			    json_pack("{s:s, s:s, s:s, s:b}", "revision", r->rev, "branch", j->branch,
			    "path", j->path, "proposal", j->proposal), r->rev);
		break;
	case EDIT_CONFLICT:
		if (j->req == NULL)
			break;
		o = json_pack("{s:s, s:s, s:s}", "error", "conflict", "message",
		    "this record changed since the revision you read", "revision", r->head);
		json_object_set_new(o, "current", r->current != NULL ? yaml_to_json(r->current) :
		    json_null());
		json_object_set_new(o, "current_yaml", jstr(r->current));
		json_object_set_new(o, "changed_in", r->changed_rev[0] ? json_string(r->changed_rev) :
		    json_null());
		json_object_set_new(o, "changed_by", jstr(r->changed_by));
		reply_json(j->req, 409, o, r->head);
		break;
	case EDIT_NOT_FOUND:
		if (j->req != NULL)
			reply_error(j->req, 404, "not_found", "no such record at the branch head");
		break;
	case EDIT_INVALID:
		if (j->req != NULL)
			reply_json(j->req, 422, json_pack("{s:s, s:s, s:s}", "error", "invalid",
			    "message", "the fleet would not validate", "errors",
			    r->errors != NULL ? r->errors : ""), NULL);
		break;
	case EDIT_BAD_BASE:
		if (j->req != NULL)
			reply_error(j->req, 412, "bad_revision",
			    "If-Match names no revision of this fleet");
		break;
	case EDIT_ERROR:
		log_warnx("admin: %s by %s failed: %s", j->what, j->actor,
		    r->errors != NULL ? r->errors : "?");
		if (j->req != NULL)
			reply_error(j->req, 500, "error", r->errors != NULL ? r->errors : "failed");
		break;
	}
}

static void
on_done(evutil_socket_t fd, short what, void *arg)
{
	struct admin *a = arg;
	struct job *list, *j, *rev = NULL;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&a->mu);
	list = a->done;
	a->done = NULL;
	pthread_mutex_unlock(&a->mu);
	while (list != NULL) {		/* oldest first */
		j = list;
		list = j->next;
		j->next = rev;
		rev = j;
	}
	while ((j = rev) != NULL) {
		rev = j->next;
		if (j->evcon != NULL && j->req != NULL)
			evhttp_connection_set_closecb(j->evcon, NULL, NULL);
		if (j->kind == JOB_LOGIN) {
			if (j->req != NULL)
				login_done(a, j);
		} else if (j->kind == JOB_EDIT)
			edit_done(a, j);
		else
			merge_done(a, j);
		job_free(j);
	}
}

/* ---- YAML text -> JSON (a conflict's current value) ---- */

static json_t *
ynode_json(const struct ynode *n)
{
	json_t *o;
	size_t i;

	if (n == NULL)
		return json_null();
	switch (n->type) {
	case Y_NULL:
		return json_null();
	case Y_SCALAR:
		if (!n->quoted) {
			switch (ytree_implicit(n)) {
			case YI_NULL:
				return json_null();
			case YI_BOOL:
				return json_boolean(strchr("yYtTO", n->u.str.s[0]) != NULL &&
				    strcasecmp(n->u.str.s, "off") != 0);
			case YI_INT:
				return json_integer(strtoll(n->u.str.s, NULL, 0));
			default:
				break;
			}
		}
		return json_stringn(n->u.str.s, n->u.str.len);
	case Y_MAP:
		o = json_object();
		for (i = 0; i < n->u.map.n; i++)
			json_object_set_new(o, n->u.map.v[i].key->u.str.s,
			    ynode_json(n->u.map.v[i].val));
		return o;
	case Y_SEQ:
		o = json_array();
		for (i = 0; i < n->u.seq.n; i++)
			json_array_append_new(o, ynode_json(n->u.seq.v[i]));
		return o;
	}
	return json_null();
}

static json_t *
yaml_to_json(const char *text)
{
	struct arena *ar = arena_new();
	struct diag d;
	struct ynode *root = NULL;
	json_t *j = json_null();

	diag_init(&d);
	if (ar != NULL && ytree_parse(&root, ar, &d, (uint32_t)diag_file(&d, "record"), text,
	    strlen(text)) == 0 && root != NULL) {
		json_decref(j);
		j = ynode_json(root);
	}
	diag_free(&d);
	arena_free(ar);
	return j;
}

/* ---- handlers ---- */

/* If-Match: "<40 hex>" (quotes optional). 428 without it. */
static bool
if_match(struct evhttp_request *req, char out[STATE_REV_MAX])
{
	const char *h = header(req, "If-Match");
	size_t i, n = 0;

	if (h == NULL) {
		reply_error(req, 428, "precondition_required",
		    "send If-Match with the revision (ETag) you read");
		return false;
	}
	for (i = 0; h[i] != '\0' && n < 40; i++) {
		if (h[i] == '"' || h[i] == ' ' || h[i] == 'W' || h[i] == '/')
			continue;
		if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
			break;
		out[n++] = h[i];
	}
	out[n] = '\0';
	if (n != 40) {
		reply_error(req, 412, "bad_revision", "If-Match must be a 40-hex revision");
		return false;
	}
	return true;
}

static bool
name_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		    ((s[i] == '-' || s[i] == '.' || s[i] == '_') && i > 0)))
			return false;
	return true;
}

/* The query parameter key, decoded, into out; false if absent or too long. */
static bool
query_str(struct evhttp_request *req, const char *key, char *out, size_t outsz)
{
	struct evkeyvalq q;
	const char *uri = evhttp_request_get_uri(req), *qs = strchr(uri, '?'), *v;
	bool ok = false;

	if (qs == NULL || evhttp_parse_query_str(qs + 1, &q) != 0)
		return false;
	if ((v = evhttp_find_header(&q, key)) != NULL && strlen(v) < outsz) {
		memcpy(out, v, strlen(v) + 1);
		ok = true;
	}
	evhttp_clear_headers(&q);
	return ok;
}

static size_t
query_size(struct evhttp_request *req, const char *key, size_t dflt, size_t max)
{
	char v[32];
	size_t n;

	if (!query_str(req, key, v, sizeof(v)))
		return dflt;
	n = (size_t)strtoull(v, NULL, 10);
	return n > max ? max : n;
}

/* The address an admin's commits carry: their email in the fleet, or NAME@<fleet id>. */
static void
admin_email(struct admin *a, const char *name, char *out, size_t outsz)
{
	const struct user *u = a->fleet != NULL ? fleet_find_user(a->fleet, name) : NULL;

	if (u != NULL && u->email.v != NULL)
		snprintf(out, outsz, "%s", u->email.v);
	else
		snprintf(out, outsz, "%s@%s", name, a->c->fleet_id);
}

/*
 * Where an edit goes: ?proposal=BRANCH adds it to that proposal; when the fleet requires
 * review (the enterprise preset) or with ?propose=1 it opens a new proposals/<id>;
 * otherwise the applied branch. false: refused, and the reply has been sent.
 */
static bool
edit_target(struct admin *a, struct evhttp_request *req, char *branch, size_t sz,
    bool *proposal)
{
	char q[256];
	uint8_t id[5];
	struct proposal p;

	*proposal = true;
	if (query_str(req, "proposal", q, sizeof(q))) {
		if (edit_proposal(a->c->repo, a->c->branch, q, &p) != 0) {
			reply_error(req, 404, "not_found", "no such proposal");
			return false;
		}
		edit_proposal_clear(&p);
		snprintf(branch, sz, "%s", q);
		return true;
	}
	if ((a->fleet != NULL && a->fleet->eff.review_required) ||
	    (query_str(req, "propose", q, sizeof(q)) && strcmp(q, "0") != 0)) {
		randombytes_buf(id, sizeof(id));
		snprintf(branch, sz, PROPOSAL_PREFIX "%02x%02x%02x%02x%02x", id[0], id[1], id[2],
		    id[3], id[4]);
		return true;
	}
	*proposal = false;
	snprintf(branch, sz, "%s", a->c->branch);
	return true;
}

/* The commit author a job writes as: the admin's full name (or name) and email. */
static void
job_author(struct admin *a, const struct who *w, struct job *j)
{
	const struct user *u = a->fleet != NULL && w->session ? fleet_find_user(a->fleet, w->name) :
	    NULL;
	char email[256];

	admin_email(a, w->name, email, sizeof(email));
	j->aname = strdup(u != NULL && u->full_name.v != NULL ? u->full_name.v : w->name);
	j->aemail = strdup(email);
}

/* Start an edit job for a user record. content NULL deletes. */
static void
start_edit(struct admin *a, struct evhttp_request *req, const struct who *w, const char *kind,
    const char *path, char *content, const char *base, bool must_exist, bool must_not_exist,
    const char *msg)
{
	struct job *j;
	char branch[256];
	bool proposal;

	if (!edit_target(a, req, branch, sizeof(branch), &proposal)) {
		free(content);
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		free(content);
		reply_error(req, 503, "busy", "out of memory");
		return;
	}
	j->proposal = proposal;
	j->kind = JOB_EDIT;
	j->req = req;
	snprintf(j->actor, sizeof(j->actor), "%s", w->actor);
	j->path = strdup(path);
	j->content = content;
	j->base = strdup(base);
	j->branch = strdup(branch);
	if (asprintf(&j->message, "%s\n\nvia the admin API by %s\n", msg, w->actor) < 0)
		j->message = NULL;
	if (asprintf(&j->what, "%s", kind) < 0)
		j->what = NULL;
	job_author(a, w, j);
	j->e.must_exist = must_exist;
	j->e.must_not_exist = must_not_exist;
	if (j->path == NULL || j->base == NULL || j->branch == NULL || j->message == NULL ||
	    j->what == NULL || j->aname == NULL || j->aemail == NULL) {
		job_free(j);
		reply_error(req, 503, "busy", "out of memory");
		return;
	}
	submit(a, j);
}

static void
h_login(struct admin *a, struct evhttp_request *req)
{
	size_t len;
	char *body = body_of(req, &len);
	json_t *j = body != NULL ? json_loads(body, 0, NULL) : NULL;
	const char *user = NULL, *pass = NULL;
	struct job *jb;

	if (body != NULL)
		sodium_memzero(body, len);
	free(body);
	if (j == NULL || json_unpack(j, "{s:s, s:s}", "user", &user, "password", &pass) != 0 ||
	    strlen(user) >= AUTH_USER_MAX || strlen(pass) > AUTH_PASS_MAX) {
		json_decref(j);
		reply_error(req, 400, "bad_request", "send {\"user\": ..., \"password\": ...}");
		return;
	}
	if ((jb = calloc(1, sizeof(*jb))) == NULL ||
	    (jb->pass = sodium_malloc(strlen(pass) + 1)) == NULL) {
		free(jb);
		json_decref(j);
		reply_error(req, 503, "busy", "out of memory");
		return;
	}
	jb->kind = JOB_LOGIN;
	jb->req = req;
	snprintf(jb->user, sizeof(jb->user), "%s", user);
	memcpy(jb->pass, pass, strlen(pass) + 1);
	sodium_memzero((void *)(uintptr_t)pass, strlen(pass));
	json_decref(j);
	snprintf(jb->actor, sizeof(jb->actor), "admin:%s", jb->user);
	client_ip(req, jb->ip, sizeof(jb->ip));
	jb->is_admin = a->fleet != NULL && auth_fleet_admin(a->fleet, jb->user);
	submit(a, jb);
}

static void
h_logout(struct admin *a, struct evhttp_request *req)
{
	struct who w;

	if (!authenticate(a, req, AUTH_SCOPE_READ, true, &w))
		return;
	if (w.session)
		auth_logout(a->c->st, w.cookie);
	sodium_memzero(w.cookie, sizeof(w.cookie));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie",
	    "pharos_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
	audit_append(a->c->st, w.actor, "admin.logout", w.name, "");
	reply_json(req, 200, json_pack("{s:b}", "ok", 1), NULL);
}

static void
h_me(struct admin *a, struct evhttp_request *req)
{
	struct who w;

	if (!authenticate(a, req, AUTH_SCOPE_READ, false, &w))
		return;
	sodium_memzero(w.cookie, sizeof(w.cookie));
	reply_json(req, 200, json_pack("{s:s, s:s, s:s, s:s?}", "user", w.name, "scope",
	    auth_scope_name(w.scope), "revision", a->rev, "csrf", w.session ? w.csrf : NULL),
	    a->rev);
}

static void
h_users_list(struct admin *a, struct evhttp_request *req)
{
	size_t off = query_size(req, "offset", 0, SIZE_MAX), lim = query_size(req, "limit", 100,
	    LIST_MAX), i;
	json_t *arr = json_array();

	for (i = off; a->fleet != NULL && i < a->fleet->nusers && i < off + lim; i++)
		json_array_append_new(arr, user_json(a->fleet->users[i], false));
	reply_json(req, 200, json_pack("{s:s, s:I, s:I, s:o}", "revision", a->rev, "total",
	    (json_int_t)(a->fleet != NULL ? a->fleet->nusers : 0), "offset", (json_int_t)off,
	    "users", arr), a->rev);
}

static void
h_nodes_list(struct admin *a, struct evhttp_request *req)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; a->fleet != NULL && i < a->fleet->nnodes; i++)
		json_array_append_new(arr, node_json(a, a->fleet->nodes[i]));
	reply_json(req, 200, json_pack("{s:s, s:o}", "revision", a->rev, "nodes", arr), a->rev);
}

static void
h_history(struct admin *a, struct evhttp_request *req)
{
	size_t lim = query_size(req, "limit", 50, HISTORY_MAX), n = 0;
	git_revwalk *w = NULL;
	git_oid id;
	json_t *arr = json_array();

	if (git_revwalk_new(&w, a->c->repo) == 0 &&
	    git_revwalk_push_ref(w, a->c->refname) == 0) {
		git_revwalk_sorting(w, GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME);
		while (n < lim && git_revwalk_next(&id, w) == 0) {
			git_commit *c = NULL;
			char hex[GIT_OID_HEXSZ + 1];
			const git_signature *s;

			if (git_commit_lookup(&c, a->c->repo, &id) != 0)
				break;
			s = git_commit_author(c);
			git_oid_tostr(hex, sizeof(hex), &id);
			json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:I, s:s}", "revision",
			    hex, "author", s != NULL ? s->name : "", "email", s != NULL ? s->email : "",
			    "time_unix", (json_int_t)git_commit_time(c), "message",
			    git_commit_message(c) != NULL ? git_commit_message(c) : ""));
			git_commit_free(c);
			n++;
		}
	}
	git_revwalk_free(w);
	reply_json(req, 200, json_pack("{s:s, s:o}", "revision", a->rev, "commits", arr), a->rev);
}

/* One commit: who, when, why, and its diff against its first parent. */
static void
h_commit(struct admin *a, struct evhttp_request *req, const char *hex)
{
	git_oid id;
	git_commit *c = NULL;
	char parent[GIT_OID_HEXSZ + 1], *diff;
	const git_signature *s;

	if (git_oid_fromstr(&id, hex) != 0 || git_commit_lookup(&c, a->c->repo, &id) != 0) {
		reply_error(req, 404, "not_found", "no such commit");
		return;
	}
	if (git_commit_parentcount(c) > 0)
		git_oid_tostr(parent, sizeof(parent), git_commit_parent_id(c, 0));
	diff = edit_diff(a->c->repo, git_commit_parentcount(c) > 0 ? parent : NULL, hex);
	s = git_commit_author(c);
	reply_json(req, 200, json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "revision", hex,
	    "author", s != NULL ? s->name : "", "email", s != NULL ? s->email : "", "time_unix",
	    (json_int_t)git_commit_time(c), "message", git_commit_message(c) != NULL ?
	    git_commit_message(c) : "", "diff", diff != NULL ? diff : ""), a->rev);
	free(diff);
	git_commit_free(c);
}

static void
h_audit(struct admin *a, struct evhttp_request *req)
{
	struct audit_entry *v = NULL;
	struct audit_result ar;
	size_t n = 0, i, lim = query_size(req, "limit", 100, 1000);
	json_t *arr = json_array();
	int vr;

	memset(&ar, 0, sizeof(ar));
	vr = audit_verify(a->c->st, &ar);
	if (audit_list(a->c->st, (int64_t)lim, &v, &n) == 0) {
		for (i = n; i-- > 0;)
			json_array_append_new(arr, json_pack("{s:I, s:I, s:s, s:s, s:s, s:s}", "seq",
			    (json_int_t)v[i].seq, "time_unix", (json_int_t)v[i].time_unix, "actor",
			    v[i].actor, "action", v[i].action, "object", v[i].object, "detail",
			    v[i].detail));
		audit_list_free(v, n);
	}
	reply_json(req, 200, json_pack("{s:s, s:{s:b, s:I, s:I, s:s}, s:o}", "revision", a->rev,
	    "verify", "intact", vr == 0, "entries", (json_int_t)ar.entries, "first_bad",
	    (json_int_t)ar.first_bad, "why", ar.why, "entries", arr), a->rev);
}

static void
h_tokens(struct admin *a, struct evhttp_request *req, const struct who *w, const char *rest)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	json_t *arr;
	size_t n = 0, i;
	struct auth_token *v = NULL;

	if (m == EVHTTP_REQ_GET && rest[0] == '\0') {
		arr = json_array();
		if (auth_token_list(a->c->st, &v, &n) == 0) {
			for (i = 0; i < n; i++)
				json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s, s:I, s:I, "
				    "s:I, s:I}", "id", (json_int_t)v[i].id, "name", v[i].name, "scope",
				    auth_scope_name(v[i].scope), "created_by", v[i].created_by,
				    "created_unix", (json_int_t)v[i].created_unix, "expires_unix",
				    (json_int_t)v[i].expires_unix, "last_used_unix",
				    (json_int_t)v[i].last_used_unix, "revoked_unix",
				    (json_int_t)v[i].revoked_unix));
			free(v);
		}
		reply_json(req, 200, json_pack("{s:s, s:o}", "revision", a->rev, "tokens", arr),
		    a->rev);
		return;
	}
	if (w->scope < AUTH_SCOPE_ADMIN) {
		reply_error(req, 403, "forbidden", "tokens are managed with the admin scope");
		return;
	}
	if (m == EVHTTP_REQ_POST && rest[0] == '\0') {
		size_t len;
		char *body = body_of(req, &len), tok[AUTH_TOKEN_SIZE];
		json_t *j = body != NULL ? json_loads(body, 0, NULL) : NULL;
		const char *name = NULL, *scope = NULL;
		json_int_t ttl = 30 * 86400;
		enum auth_scope sc;
		struct auth_token info;
		int rc;

		free(body);
		if (j == NULL || json_unpack(j, "{s:s, s:s, s?I}", "name", &name, "scope", &scope,
		    "ttl_seconds", &ttl) != 0 || auth_scope_parse(scope, &sc) != 0) {
			json_decref(j);
			reply_error(req, 400, "bad_request",
			    "send {\"name\", \"scope\": read|write|admin, \"ttl_seconds\"}");
			return;
		}
		rc = auth_token_create(a->c->st, name, sc, (int64_t)ttl, w->actor, now_unix(), tok,
		    &info);
		json_decref(j);
		if (rc != 0) {
			reply_error(req, 400, "bad_request", err_last());
			return;
		}
		audit_append(a->c->st, w->actor, "token.create", info.name, auth_scope_name(sc));
		reply_json(req, 201, json_pack("{s:s, s:s, s:s, s:I}", "token", tok, "name",
		    info.name, "scope", auth_scope_name(sc), "expires_unix",
		    (json_int_t)info.expires_unix), NULL);
		sodium_memzero(tok, sizeof(tok));
		return;
	}
	if (m == EVHTTP_REQ_DELETE && rest[0] == '/') {
		struct auth_token info;

		if (auth_token_revoke(a->c->st, rest + 1, now_unix(), &info) != 0) {
			reply_error(req, 404, "not_found", "no such live token");
			return;
		}
		audit_append(a->c->st, w->actor, "token.revoke", info.name, "");
		reply_json(req, 200, json_pack("{s:b}", "ok", 1), NULL);
		return;
	}
	reply_error(req, 405, "method", "not allowed here");
}

/* /api/v1/users[/NAME[/devices[/DEV]]] */
static void
h_users(struct admin *a, struct evhttp_request *req, const struct who *w, const char *rest)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	char name[128], dev[128], path[192], base[STATE_REV_MAX], msg[512], what[512];
	const struct user *u;
	const char *p;
	size_t len;
	char *body = NULL, *yaml = NULL;
	const char *why;
	json_t *j = NULL, *uj = NULL;
	int nf;

	name[0] = dev[0] = '\0';
	if (rest[0] == '\0') {
		if (m == EVHTTP_REQ_GET) {
			h_users_list(a, req);
			return;
		}
		if (m != EVHTTP_REQ_POST) {
			reply_error(req, 405, "method", "GET or POST");
			return;
		}
	} else {
		p = rest + 1;
		len = strcspn(p, "/");
		if (len == 0 || len >= sizeof(name)) {
			reply_error(req, 404, "not_found", "no such user");
			return;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		p += len;
		if (strncmp(p, "/devices", 8) == 0) {
			p += 8;
			if (*p == '/')
				snprintf(dev, sizeof(dev), "%s", p + 1);
			else if (*p != '\0') {
				reply_error(req, 404, "not_found", "no such resource");
				return;
			}
			if (dev[0] == '\0' && m != EVHTTP_REQ_POST) {
				reply_error(req, 405, "method", "POST a device");
				return;
			}
		} else if (*p != '\0') {
			reply_error(req, 404, "not_found", "no such resource");
			return;
		}
	}
	if (m == EVHTTP_REQ_GET) {
		if (dev[0] != '\0' || a->fleet == NULL ||
		    (u = fleet_find_user(a->fleet, name)) == NULL) {
			reply_error(req, 404, "not_found", "no such user in this revision");
			return;
		}
		uj = user_json(u, true);
		json_object_set_new(uj, "revision", json_string(a->rev));
		reply_json(req, 200, uj, a->rev);
		return;
	}
	if (w->scope < AUTH_SCOPE_WRITE) {
		reply_error(req, 403, "forbidden", "this token may only read");
		return;
	}
	if (!if_match(req, base))
		return;
	if (m != EVHTTP_REQ_DELETE) {
		if ((body = body_of(req, &len)) == NULL || (j = json_loads(body, 0, NULL)) == NULL) {
			free(body);
			reply_error(req, 400, "bad_request", "the body must be JSON (at most 1 MiB)");
			return;
		}
		free(body);
	}
	if (rest[0] == '\0') {			/* POST /users: create */
		json_t *n = json_object_get(j, "name");

		if (!json_is_string(n) || !name_ok(json_string_value(n))) {
			json_decref(j);
			reply_error(req, 400, "bad_request", "a new user needs a \"name\": lowercase "
			    "letters, digits, '-', '.', '_'");
			return;
		}
		snprintf(name, sizeof(name), "%s", json_string_value(n));
		snprintf(path, sizeof(path), "users/%s.yaml", name);
		if (admin_user_yaml(j, name, &yaml, &len, &why) != 0) {
			json_decref(j);
			reply_error(req, 400, "bad_request", why);
			return;
		}
		json_decref(j);
		snprintf(msg, sizeof(msg), "Add user %s", name);
		snprintf(what, sizeof(what), "user.create %s", name);
		start_edit(a, req, w, what, path, yaml, base, false, true, msg);
		return;
	}
	if (!name_ok(name)) {
		json_decref(j);
		reply_error(req, 404, "not_found", "no such user");
		return;
	}
	snprintf(path, sizeof(path), "users/%s.yaml", name);
	if (dev[0] == '\0' && m == EVHTTP_REQ_PUT) {
		if (admin_user_yaml(j, name, &yaml, &len, &why) != 0) {
			json_decref(j);
			reply_error(req, 400, "bad_request", why);
			return;
		}
		json_decref(j);
		snprintf(msg, sizeof(msg), "Edit user %s", name);
		snprintf(what, sizeof(what), "user.update %s", name);
		start_edit(a, req, w, what, path, yaml, base, true, false, msg);
		return;
	}
	if (dev[0] == '\0' && m == EVHTTP_REQ_DELETE) {
		snprintf(msg, sizeof(msg), "Delete user %s", name);
		snprintf(what, sizeof(what), "user.delete %s", name);
		start_edit(a, req, w, what, path, NULL, base, true, false, msg);
		return;
	}
	/*
	 * Devices live in their user's file: the user as this revision has it, with one
	 * device added or removed, is the new record (a conflict is on the user's file). That
	 * record is built from the applied revision, so an edit onto an existing proposal must
	 * be based on it too: then a proposal that changed this user conflicts (409) instead of
	 * having its change overwritten.
	 */
	if (query_str(req, "proposal", msg, sizeof(msg)) && strcmp(base, a->rev) != 0) {
		json_decref(j);
		reply_json(req, 409, json_pack("{s:s, s:s, s:s}", "error", "conflict", "message",
		    "a device edit on a proposal is based on the applied revision: send If-Match "
		    "with it", "revision", a->rev), a->rev);
		return;
	}
	if (a->fleet == NULL || (u = fleet_find_user(a->fleet, name)) == NULL) {
		json_decref(j);
		reply_error(req, 404, "not_found", "no such user in this revision");
		return;
	}
	uj = user_json(u, true);
	json_object_del(uj, "role");	/* the effective role; keep what the file says */
	if (u->role.v != NULL)
		json_object_set_new(uj, "role", json_string(u->role.v));
	if (!(u->disabled.set))
		json_object_del(uj, "disabled");
	{
		json_t *dv = json_object_get(uj, "devices");
		size_t i, k;

		for (k = 0; k < json_array_size(dv); k++) {
			json_t *d = json_array_get(dv, k);
			const char *dn = json_string_value(json_object_get(d, "name"));

			if (dn != NULL && strcmp(dn, dev[0] != '\0' ? dev :
			    json_string_value(json_object_get(j, "name")) != NULL ?
			    json_string_value(json_object_get(j, "name")) : "") == 0)
				break;
		}
		nf = k == json_array_size(dv);
		if (m == EVHTTP_REQ_POST && dev[0] == '\0') {
			if (!nf) {
				json_decref(uj);
				json_decref(j);
				reply_error(req, 409, "exists", "the user has a device of that name");
				return;
			}
			json_array_append(dv, j);
			snprintf(msg, sizeof(msg), "Add device %s of %s",
			    json_string_value(json_object_get(j, "name")) != NULL ?
			    json_string_value(json_object_get(j, "name")) : "?", name);
			snprintf(what, sizeof(what), "device.create %s", name);
		} else if (m == EVHTTP_REQ_DELETE && dev[0] != '\0') {
			if (nf) {
				json_decref(uj);
				reply_error(req, 404, "not_found", "no such device");
				return;
			}
			json_array_remove(dv, k);
			snprintf(msg, sizeof(msg), "Delete device %s of %s", dev, name);
			snprintf(what, sizeof(what), "device.delete %s/%s", name, dev);
		} else {
			json_decref(uj);
			json_decref(j);
			reply_error(req, 405, "method", "POST or DELETE a device");
			return;
		}
		for (i = 0; i < json_array_size(dv); i++) {	/* drop nulls: not in the file */
			json_t *d = json_array_get(dv, i);
			if (json_is_null(json_object_get(d, "address")))
				json_object_del(d, "address");
		}
	}
	json_decref(j);
	json_object_del(uj, "name");
	if (admin_user_yaml(uj, name, &yaml, &len, &why) != 0) {
		json_decref(uj);
		reply_error(req, 400, "bad_request", why);
		return;
	}
	json_decref(uj);
	start_edit(a, req, w, what, path, yaml, base, true, false, msg);
}

static void
h_nodes(struct admin *a, struct evhttp_request *req, const char *rest)
{
	const struct node *n;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		reply_error(req, 405, "method", "nodes are edited in git (fleet.git/nodes/)");
		return;
	}
	if (rest[0] == '\0') {
		h_nodes_list(a, req);
		return;
	}
	if (rest[0] != '/' || a->fleet == NULL || (n = fleet_find_node(a->fleet, rest + 1)) == NULL) {
		reply_error(req, 404, "not_found", "no such node in this revision");
		return;
	}
	reply_json(req, 200, node_json(a, n), a->rev);
}

/* ---- proposals ---- */

static void
proposals_changed(struct admin *a, const char *branch, const char *what)
{
	sse_send(a, "proposal", json_pack("{s:s, s:s}", "branch", branch, "what", what));
}

static bool
review_required(const struct admin *a)
{
	return a->fleet != NULL && a->fleet->eff.review_required;
}

/* Did the admin write a commit of the proposal (by the address their commits carry)? */
static bool
is_author(struct admin *a, const struct proposal *p, const char *name)
{
	char email[256];
	size_t i;

	admin_email(a, name, email, sizeof(email));
	for (i = 0; i < p->nauthors; i++)
		if (strcasecmp(p->authors[i], email) == 0)
			return true;
	return false;
}

/*
 * The approvals of the proposal's head; those that count are by admins of the fleet as it
 * is now who wrote none of it. Returns how many count; *mine: whether `me` approved it;
 * names (may be NULL): those who count, "a, b".
 */
static size_t
approvals_json(struct admin *a, const struct proposal *p, const char *me, json_t **out,
    bool *mine, char *names, size_t namesz)
{
	char **v = NULL;
	size_t n = 0, i, counted = 0;

	*out = json_array();
	*mine = false;
	if (names != NULL)
		names[0] = '\0';
	if (auth_approvals(a->c->st, p->branch, p->head, &v, &n) != 0)
		log_warnx("admin: %s", err_last());
	for (i = 0; i < n; i++) {
		bool counts = a->fleet != NULL && auth_fleet_admin(a->fleet, v[i]) &&
		    !is_author(a, p, v[i]);

		json_array_append_new(*out, json_pack("{s:s, s:b}", "user", v[i], "counts", counts));
		counted += counts;
		if (counts && names != NULL)
			snprintf(names + strlen(names), namesz - strlen(names), "%s%s",
			    names[0] != '\0' ? ", " : "", v[i]);
		if (me != NULL && strcmp(v[i], me) == 0)
			*mine = true;
	}
	auth_approvals_free(v, n);
	return counted;
}

static json_t *
proposal_json(struct admin *a, const struct proposal *p, const struct who *w)
{
	json_t *authors = json_array(), *appr, *o;
	size_t i, counted;
	bool mine, ours = strncmp(p->branch, PROPOSAL_PREFIX, strlen(PROPOSAL_PREFIX)) == 0;

	for (i = 0; i < p->nauthors; i++)
		json_array_append_new(authors, json_string(p->authors[i]));
	counted = approvals_json(a, p, w != NULL && w->session ? w->name : NULL, &appr, &mine,
	    NULL, 0);
	o = json_pack("{s:s, s:s, s:s?, s:I, s:I, s:s, s:I, s:o, s:o, s:b, s:b, s:s}",
	    "branch", p->branch, "head", p->head, "base", p->base[0] != '\0' ? p->base : NULL,
	    "ahead", (json_int_t)p->ahead, "behind", (json_int_t)p->behind, "title", p->title,
	    "time_unix", (json_int_t)p->time_unix, "authors", authors, "approvals", appr,
	    "approved", counted > 0, "ours", ours, "state", p->ahead > 0 ? "open" : "merged");
	if (w != NULL) {
		bool author = is_author(a, p, w->name);

		json_object_set_new(o, "you_wrote_it", json_boolean(w->session && author));
		json_object_set_new(o, "can_approve", json_boolean(w->session && p->ahead > 0 &&
		    !mine && !(review_required(a) && author)));
		json_object_set_new(o, "can_merge", json_boolean(w->scope >= AUTH_SCOPE_WRITE &&
		    p->ahead > 0 && (counted > 0 || !review_required(a))));
	}
	return o;
}

static void
h_proposals_list(struct admin *a, struct evhttp_request *req, const struct who *w)
{
	struct proposal *v = NULL;
	size_t n = 0, i;
	json_t *arr = json_array();

	if (edit_proposals(a->c->repo, a->c->branch, &v, &n) != 0) {
		json_decref(arr);
		reply_error(req, 500, "error", "listing the branches failed");
		return;
	}
	for (i = 0; i < n; i++)
		json_array_append_new(arr, proposal_json(a, &v[i], w));
	edit_proposals_free(v, n);
	reply_json(req, 200, json_pack("{s:s, s:s, s:b, s:o}", "revision", a->rev, "branch",
	    a->c->branch, "review_required", review_required(a), "proposals", arr), a->rev);
}

static json_t *
lines_json(const char *s)
{
	json_t *arr = json_array();
	size_t n;

	while (s != NULL && *s != '\0') {
		n = strcspn(s, "\n");
		if (n > 0)
			json_array_append_new(arr, json_stringn(s, n));
		s += n + (s[n] == '\n');
	}
	return arr;
}

/* A merge (or its dry run, or a plan) as JSON. */
static json_t *
merge_json(const struct merge_result *r)
{
	static const char *const names[] = { "clean", "not_found", "stale", "nothing",
	    "conflict", "invalid", "error" };
	json_t *o = json_pack("{s:s}", "status", names[r->status]);

	if (r->into_head[0] != '\0')
		json_object_set_new(o, "onto", json_string(r->into_head));
	if (r->status == MERGE_CONFLICT)
		json_object_set_new(o, "conflicts", lines_json(r->conflicts));
	if (r->errors != NULL)
		json_object_set_new(o, "errors", json_string(r->errors));
	if (r->plan_text != NULL) {
		json_object_set_new(o, "plan", json_string(r->plan_text));
		json_object_set_new(o, "plan_json", r->plan_json != NULL ?
		    json_loads(r->plan_json, 0, NULL) : json_null());
		json_object_set_new(o, "changes", json_integer((json_int_t)r->changes));
	}
	return o;
}

static void
merge_done(struct admin *a, struct job *j)
{
	struct merge_result *r = &j->mr;
	json_t *o;

	if (j->kind == JOB_MERGE && r->status == MERGE_OK) {
		char detail[128];

		snprintf(detail, sizeof(detail), "%s@%.12s", j->branch, r->head);
		if (audit_append(a->c->st, j->actor, "proposal.merge", r->rev, detail) != 0)
			log_warnx("audit: %s", err_last());
		log_info("admin: %s merged %s by %s rev=%.12s (%zu node%s change)", j->branch,
		    r->head, j->actor, r->rev, r->changes, r->changes == 1 ? "" : "s");
		sse_send(a, "commit", json_pack("{s:s, s:s, s:s, s:s}", "revision", r->rev,
		    "branch", a->c->branch, "by", j->actor, "what", "proposal.merge"));
		proposals_changed(a, j->branch, "merge");
	}
	if (j->req == NULL)
		return;
	if (j->kind == JOB_REVIEW) {
		json_object_set_new(j->info, "merge", merge_json(r));
		reply_json(j->req, 200, j->info, j->base);
		j->info = NULL;
		return;
	}
	if (j->kind == JOB_PLAN) {
		o = json_pack("{s:s, s:s, s:o}", "revision", j->to, "parent", j->from, "plan",
		    merge_json(r));
		reply_json(j->req, r->status == MERGE_OK ? 200 : 422, o, NULL);
		return;
	}
	switch (r->status) {
	case MERGE_OK:
		o = merge_json(r);
		json_object_set_new(o, "revision", json_string(r->rev));
		json_object_set_new(o, "branch", json_string(a->c->branch));
		json_object_set_new(o, "merged", json_string(j->branch));
		reply_json(j->req, 200, o, r->rev);
		break;
	case MERGE_NOT_FOUND:
		reply_error(j->req, 404, "not_found", "no such proposal");
		break;
	case MERGE_STALE:
		reply_json(j->req, 409, json_pack("{s:s, s:s, s:s}", "error", "proposal_changed",
		    "message", "the proposal changed since you reviewed it", "head", r->head), NULL);
		break;
	case MERGE_NOTHING:
		reply_error(j->req, 409, "nothing_to_merge", "the proposal is already merged");
		break;
	case MERGE_CONFLICT:
		o = merge_json(r);
		json_object_set_new(o, "error", json_string("merge_conflict"));
		json_object_set_new(o, "message", json_string("the proposal and the branch changed "
		    "the same lines; update the proposal"));
		reply_json(j->req, 409, o, NULL);
		break;
	case MERGE_INVALID:
		reply_json(j->req, 422, json_pack("{s:s, s:s, s:s}", "error", "invalid", "message",
		    "the merged fleet would not validate", "errors", r->errors != NULL ? r->errors :
		    ""), NULL);
		break;
	case MERGE_ERROR:
		log_warnx("admin: merging %s failed: %s", j->branch, r->errors != NULL ?
		    r->errors : "?");
		reply_error(j->req, 500, "error", r->errors != NULL ? r->errors : "failed");
		break;
	}
}

/* A job on a proposal's branch, run by the worker; its author is the one asking. */
static struct job *
proposal_job(struct admin *a, struct evhttp_request *req, const struct who *w,
    enum job_kind kind, const struct proposal *p, const char *approvers)
{
	struct job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->kind = kind;
	j->req = req;
	snprintf(j->actor, sizeof(j->actor), "%s", w->actor);
	job_author(a, w, j);
	j->branch = strdup(p->branch);
	j->base = strdup(p->head);
	if (asprintf(&j->message, "Merge %s: %s\n\nApproved by: %s\nvia the admin API by %s\n",
	    p->branch, p->title, approvers[0] != '\0' ? approvers : "(review not required)",
	    w->actor) < 0)
		j->message = NULL;
	if (j->branch == NULL || j->base == NULL || j->aname == NULL || j->aemail == NULL ||
	    j->message == NULL) {
		job_free(j);
		return NULL;
	}
	return j;
}

/* Close one of ours: delete the branch if it is still at the head that was read. */
static void
proposal_close(struct admin *a, struct evhttp_request *req, const struct who *w,
    const struct proposal *p)
{
	char ref[512], detail[320];
	git_reference *r = NULL;

	if (strncmp(p->branch, PROPOSAL_PREFIX, strlen(PROPOSAL_PREFIX)) != 0) {
		reply_error(req, 403, "forbidden", "only proposals made here are closed here; "
		    "close the others where they were opened");
		return;
	}
	snprintf(ref, sizeof(ref), "refs/heads/%s", p->branch);
	if (git_reference_lookup(&r, a->c->repo, ref) != 0 || git_reference_target(r) == NULL) {
		git_reference_free(r);
		reply_error(req, 404, "not_found", "no such proposal");
		return;
	}
	if (git_reference_delete(r) != 0) {
		git_reference_free(r);
		reply_error(req, 500, "error", "deleting the branch failed");
		return;
	}
	git_reference_free(r);
	snprintf(detail, sizeof(detail), "%s@%.12s", p->branch, p->head);
	if (audit_append(a->c->st, w->actor, "proposal.close", p->head, detail) != 0)
		log_warnx("audit: %s", err_last());
	proposals_changed(a, p->branch, "close");
	reply_json(req, 200, json_pack("{s:b, s:s}", "closed", 1, "branch", p->branch), NULL);
}

/*
 * /api/v1/proposals (the list) and /api/v1/proposal[/approve|/merge]?branch=NAME: a branch
 * name has slashes of its own, so it travels in the query.
 */
static void
h_proposal(struct admin *a, struct evhttp_request *req, const struct who *w, const char *rest)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	char branch[256], rev[STATE_REV_MAX], approvers[512], detail[320];
	struct proposal p;
	struct job *j;
	json_t *info;
	size_t counted;
	bool mine;

	if (!query_str(req, "branch", branch, sizeof(branch)) ||
	    edit_proposal(a->c->repo, a->c->branch, branch, &p) != 0) {
		reply_error(req, 404, "not_found", "no such proposal (?branch=NAME)");
		return;
	}
	if (rest[0] == '\0' && m == EVHTTP_REQ_GET) {
		char *diff = edit_diff(a->c->repo, p.base[0] != '\0' ? p.base : NULL, p.head);

		info = proposal_json(a, &p, w);
		json_object_set_new(info, "review_required", json_boolean(review_required(a)));
		json_object_set_new(info, "revision", json_string(a->rev));
		json_object_set_new(info, "diff", diff != NULL ? json_string(diff) : json_null());
		free(diff);
		if ((j = proposal_job(a, req, w, JOB_REVIEW, &p, "")) == NULL) {
			json_decref(info);
			reply_error(req, 503, "busy", "out of memory");
		} else {
			j->info = info;
			submit(a, j);
		}
		goto out;
	}
	if (!(rest[0] == '\0' && m == EVHTTP_REQ_DELETE) && !((strcmp(rest, "/approve") == 0 ||
	    strcmp(rest, "/merge") == 0) && m == EVHTTP_REQ_POST)) {
		reply_error(req, 405, "method", "GET or DELETE a proposal; POST to /approve or /merge");
		goto out;
	}
	if (!if_match(req, rev))
		goto out;
	if (strcmp(rev, p.head) != 0) {
		reply_json(req, 409, json_pack("{s:s, s:s, s:s}", "error", "proposal_changed",
		    "message", "the proposal changed since you reviewed it", "head", p.head), p.head);
		goto out;
	}
	if (rest[0] == '\0') {
		proposal_close(a, req, w, &p);
		goto out;
	}
	if (p.ahead == 0) {
		reply_error(req, 409, "nothing_to_merge", "the proposal is already merged");
		goto out;
	}
	if (strcmp(rest, "/approve") == 0) {
		if (!w->session) {
			reply_error(req, 403, "forbidden", "an approval is an admin's, in a session, "
			    "not a token's");
			goto out;
		}
		if (review_required(a) && is_author(a, &p, w->name)) {
			reply_error(req, 403, "own_proposal",
			    "you wrote this proposal: another admin must approve it");
			goto out;
		}
		if (auth_approve(a->c->st, p.branch, p.head, w->name, now_unix()) != 0) {
			reply_error(req, 500, "error", err_last());
			goto out;
		}
		snprintf(detail, sizeof(detail), "%s@%.12s", p.branch, p.head);
		if (audit_append(a->c->st, w->actor, "proposal.approve", p.head, detail) != 0)
			log_warnx("audit: %s", err_last());
		proposals_changed(a, p.branch, "approve");
		reply_json(req, 200, proposal_json(a, &p, w), p.head);
		goto out;
	}
	/* merge */
	counted = approvals_json(a, &p, NULL, &info, &mine, approvers, sizeof(approvers));
	json_decref(info);
	if (review_required(a) && counted == 0) {
		reply_error(req, 403, "not_approved",
		    "this fleet requires review: another admin must approve this head first");
		goto out;
	}
	if ((j = proposal_job(a, req, w, JOB_MERGE, &p, approvers)) == NULL)
		reply_error(req, 503, "busy", "out of memory");
	else
		submit(a, j);
out:
	edit_proposal_clear(&p);
}

/* GET /api/v1/history/REV/plan: what the commit did to every node (worker). */
static void
h_commit_plan(struct admin *a, struct evhttp_request *req, const char *hex)
{
	git_oid id;
	git_commit *c = NULL;
	struct job *j;
	char to[GIT_OID_HEXSZ + 1], from[GIT_OID_HEXSZ + 1];

	if (git_oid_fromstr(&id, hex) != 0 || git_commit_lookup(&c, a->c->repo, &id) != 0) {
		reply_error(req, 404, "not_found", "no such commit");
		return;
	}
	git_oid_tostr(to, sizeof(to), &id);
	if (git_commit_parentcount(c) == 0) {
		git_commit_free(c);
		reply_json(req, 200, json_pack("{s:s, s:n, s:n}", "revision", to, "parent", "plan"),
		    NULL);
		return;
	}
	git_oid_tostr(from, sizeof(from), git_commit_parent_id(c, 0));
	git_commit_free(c);
	if ((j = calloc(1, sizeof(*j))) == NULL || (j->from = strdup(from)) == NULL ||
	    (j->to = strdup(to)) == NULL) {
		job_free(j);
		reply_error(req, 503, "busy", "out of memory");
		return;
	}
	j->kind = JOB_PLAN;
	j->req = req;
	submit(a, j);
}

static void
serve_asset(struct evhttp_request *req, const char *path)
{
	const struct webui_asset *as;
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *b;

	if (strcmp(path, "/") == 0 || strncmp(path, "/ui/", 4) == 0)
		path = "/index.html";
	if ((as = webui_find(path + 1)) == NULL) {
		evhttp_send_error(req, 404, "not found");
		return;
	}
	evhttp_add_header(h, "Content-Type", as->mime);
	evhttp_add_header(h, "Cache-Control", "no-cache");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "Content-Security-Policy", "default-src 'self'; "
	    "script-src 'self'; style-src 'self'; img-src 'self' data:; "
	    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	if ((b = evbuffer_new()) == NULL) {
		evhttp_send_error(req, 503, "busy");
		return;
	}
	evbuffer_add_reference(b, as->data, as->len, NULL, NULL);
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	bool mutation = m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD;
	char *dec = NULL;
	size_t declen = 0;
	struct who w;

	/* No NUL smuggled in as %00, no dot-dot: names are looked up, never opened. */
	if (path == NULL || (dec = evhttp_uridecode(path, 0, &declen)) == NULL ||
	    strlen(dec) != declen || strstr(dec, "..") != NULL) {
		free(dec);
		reply_error(req, 400, "bad_request", "bad path");
		return;
	}
	if (strncmp(dec, "/api/v1/", 8) != 0) {
		if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD)
			evhttp_send_error(req, 405, "method not allowed");
		else
			serve_asset(req, dec);
		free(dec);
		return;
	}
	path = dec + 7;		/* "/..." */
	if (strcmp(path, "/login") == 0 && m == EVHTTP_REQ_POST) {
		h_login(a, req);
		goto out;
	}
	if (strcmp(path, "/logout") == 0 && m == EVHTTP_REQ_POST) {
		h_logout(a, req);
		goto out;
	}
	if (strcmp(path, "/me") == 0) {
		h_me(a, req);
		goto out;
	}
	if (!authenticate(a, req, mutation ? AUTH_SCOPE_WRITE : AUTH_SCOPE_READ, mutation, &w))
		goto out;
	sodium_memzero(w.cookie, sizeof(w.cookie));
	if (strcmp(path, "/status") == 0 && !mutation)
		reply_json(req, 200, status_json(a), a->rev);
	else if (strcmp(path, "/events") == 0 && !mutation)
		h_events(a, req);
	else if (strncmp(path, "/users", 6) == 0 && (path[6] == '\0' || path[6] == '/'))
		h_users(a, req, &w, path + 6);
	else if (strncmp(path, "/nodes", 6) == 0 && (path[6] == '\0' || path[6] == '/'))
		h_nodes(a, req, path + 6);
	else if (strcmp(path, "/history") == 0 && !mutation)
		h_history(a, req);
	else if (strncmp(path, "/history/", 9) == 0 && strlen(path) == 9 + 40 + 5 &&
	    strcmp(path + 49, "/plan") == 0 && !mutation) {
		char hex[41];

		snprintf(hex, sizeof(hex), "%.40s", path + 9);
		h_commit_plan(a, req, hex);
	} else if (strncmp(path, "/history/", 9) == 0 && !mutation)
		h_commit(a, req, path + 9);
	else if (strcmp(path, "/proposals") == 0 && !mutation)
		h_proposals_list(a, req, &w);
	else if (strncmp(path, "/proposal", 9) == 0 && (path[9] == '\0' || path[9] == '/'))
		h_proposal(a, req, &w, path + 9);
	else if (strcmp(path, "/audit") == 0 && !mutation)
		h_audit(a, req);
	else if (strncmp(path, "/tokens", 7) == 0 && (path[7] == '\0' || path[7] == '/'))
		h_tokens(a, req, &w, path + 7);
	else
		reply_error(req, 404, "not_found", "no such API resource");
out:
	free(dec);
}

/* ---- the interface ---- */

void
admin_revision(struct admin *a, const struct load_result *r)
{
	if (a == NULL || r == NULL)
		return;
	if (r->errors == NULL && r->fleet != NULL && strcmp(a->rev, r->rev) != 0) {
		fleet_free(a->fleet);
		a->fleet = fleet_ref(r->fleet);
		snprintf(a->rev, sizeof(a->rev), "%s", r->rev);
	}
	sse_send(a, "revision", json_pack("{s:s, s:b, s:s}", "revision", r->rev, "valid",
	    r->errors == NULL, "author", r->author));
}

/* A digest of every branch and its head: a push to any branch changes it. */
static void
branches_digest(struct admin *a, uint8_t out[32])
{
	crypto_hash_sha256_state h;
	git_reference_iterator *it = NULL;
	git_reference *r;

	crypto_hash_sha256_init(&h);
	if (git_reference_iterator_glob_new(&it, a->c->repo, "refs/heads/*") == 0) {
		while (git_reference_next(&r, it) == 0) {
			const char *name = git_reference_name(r);
			const git_oid *id = git_reference_target(r);

			crypto_hash_sha256_update(&h, (const unsigned char *)name, strlen(name) + 1);
			if (id != NULL)
				crypto_hash_sha256_update(&h, id->id, GIT_OID_RAWSZ);
			git_reference_free(r);
		}
		git_reference_iterator_free(it);
	}
	crypto_hash_sha256_final(&h, out);
}

/*
 * Any branch moved, appeared or went away (a push; inotify sees only main's folder): tell
 * open pages. Checked even with no page open, so the first one is not told of old news.
 */
static void
on_refs(evutil_socket_t fd, short what, void *arg)
{
	struct admin *a = arg;
	uint8_t bd[32];

	(void)fd;
	(void)what;
	branches_digest(a, bd);
	if (memcmp(bd, a->branches_digest, 32) != 0) {
		memcpy(a->branches_digest, bd, 32);
		proposals_changed(a, "", "push");
	}
}

void
admin_tick(struct admin *a)
{
	json_t *st;
	char *s;
	uint8_t h[32];

	if (a == NULL || a->sse == NULL)
		return;
	st = status_json(a);
	json_object_del(st, "version");
	if ((s = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS)) != NULL) {
		crypto_hash_sha256(h, (const unsigned char *)s, strlen(s));
		if (memcmp(h, a->nodes_digest, 32) != 0) {
			memcpy(a->nodes_digest, h, 32);
			sse_send(a, "status", st);
			st = NULL;
		}
		free(s);
	}
	json_decref(st);
}

static bool
loopback(const char *host)
{
	struct ipaddr ip;

	if (strcmp(host, "localhost") == 0)
		return true;
	if (addr_parse_ip(&ip, host) != 0)
		return false;
	return ip.family == AF_INET ? ip.a[0] == 127 :
	    memcmp(ip.a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16) == 0;
}

int
admin_start(struct admin **out, struct ctl *c, const char *addr, bool allow_remote)
{
	struct admin *a;
	char host[256];
	int port;
	struct timeval ping = { SSE_PING_S, 0 };
	struct timeval refs = { 0, REFS_CHECK_MS * 1000 };
	int one = 1;
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t sl;

	*out = NULL;
	{
		/* port 0 (pick one) is not a port addr_parse_host_port() takes */
		char tmp[300];
		size_t n = strlen(addr);
		bool any = n > 2 && strcmp(addr + n - 2, ":0") == 0;

		snprintf(tmp, sizeof(tmp), "%.*s%s", (int)(any ? n - 1 : n), addr, any ? "1" : "");
		if (addr_parse_host_port(host, sizeof(host), &port, tmp, true) != 0 || port < 0) {
			err_set("--admin %s: not HOST:PORT", addr);
			return -1;
		}
		if (any)
			port = 0;
	}
	if (!loopback(host)) {
		if (!allow_remote) {
			err_set("--admin %s is not a loopback address; the admin UI stays on this "
			    "machine (reach it over SSH) unless you add --admin-allow-remote", addr);
			return -1;
		}
		log_warnx("admin: serving on %s, a non-loopback address (--admin-allow-remote): "
		    "put TLS and a firewall in front of it", addr);
	}
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return -1;
	a->c = c;
	if (pthread_mutex_init(&a->mu, NULL) != 0 || pthread_cond_init(&a->cv, NULL) != 0)
		goto fail;
	if ((a->http = evhttp_new(c->base)) == NULL ||
	    (a->ev_done = event_new(c->base, -1, 0, on_done, a)) == NULL ||
	    (a->ev_ping = event_new(c->base, -1, EV_PERSIST, on_ping, a)) == NULL ||
	    event_add(a->ev_ping, &ping) != 0 ||
	    (a->ev_refs = event_new(c->base, -1, EV_PERSIST, on_refs, a)) == NULL ||
	    event_add(a->ev_refs, &refs) != 0)
		goto fail;
	branches_digest(a, a->branches_digest);
	evhttp_set_max_body_size(a->http, BODY_MAX);
	evhttp_set_max_headers_size(a->http, 16 * 1024);
	evhttp_set_timeout(a->http, 60);
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
	    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
	evhttp_set_gencb(a->http, on_request, a);
	if ((bs = evhttp_bind_socket_with_handle(a->http, host, (ev_uint16_t)port)) == NULL) {
		err_setsys("admin: cannot listen on %s (another cox running? --admin HOST:PORT "
		    "picks another address, --admin off none)", addr);
		goto fail;
	}
	/*
	 * Replies go out whole, at once: without TCP_NODELAY the tail of a large reply waits
	 * for the client's delayed ACK (40 ms on Linux). Accepted sockets inherit it.
	 */
	if (setsockopt(evhttp_bound_socket_get_fd(bs), IPPROTO_TCP, TCP_NODELAY, &one,
	    sizeof(one)) != 0)
		log_warn("admin: TCP_NODELAY");
	sl = sizeof(ss);
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0)
		port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
		    ((struct sockaddr_in *)&ss)->sin_port);
	if (state_open(&a->wst, c->dir, 0) != 0)
		goto fail;
	if ((errno = pthread_create(&a->th, NULL, worker, a)) != 0) {
		err_setsys("admin: cannot start its worker");
		goto fail;
	}
	a->started = true;
	log_info("admin: UI and API on http://%s%s%s:%d/", strchr(host, ':') ? "[" : "", host,
	    strchr(host, ':') ? "]" : "", port);
	*out = a;
	return 0;
fail:
	admin_stop(a);
	return -1;
}

void
admin_stop(struct admin *a)
{
	struct job *j;
	struct sse *s;

	if (a == NULL)
		return;
	if (a->started) {
		pthread_mutex_lock(&a->mu);
		a->quit = true;
		pthread_cond_signal(&a->cv);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->th, NULL);
	}
	while ((j = a->todo) != NULL) {
		a->todo = j->next;
		job_free(j);
	}
	while ((j = a->done) != NULL) {
		a->done = j->next;
		job_free(j);
	}
	while ((s = a->sse) != NULL) {
		a->sse = s->next;
		/* End the stream: evhttp frees a request whose chunked reply is open only
		 * when the reply ends (with no connection left, that is all it does). */
		if (evhttp_request_get_connection(s->req) != NULL)
			evhttp_connection_set_closecb(evhttp_request_get_connection(s->req), NULL,
			    NULL);
		evhttp_send_reply_end(s->req);
		free(s);
	}
	if (a->http != NULL)
		evhttp_free(a->http);
	if (a->ev_done != NULL)
		event_free(a->ev_done);
	if (a->ev_ping != NULL)
		event_free(a->ev_ping);
	if (a->ev_refs != NULL)
		event_free(a->ev_refs);
	state_close(a->wst);
	fleet_free(a->fleet);
	fleet_free(a->edit_cache);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	free(a);
}
