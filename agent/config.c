/* SPDX-License-Identifier: Apache-2.0 */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "err.h"
#include "fsutil.h"
#include "grpc.h"
#include "log.h"

int
config_open(struct node_config *nc, const char *dir, const struct spiffe *self)
{
	char path[1100], *text = NULL;
	size_t len, binlen = 0;

	memset(nc, 0, sizeof(*nc));
	snprintf(nc->dir, sizeof(nc->dir), "%s", dir);
	nc->self = *self;
	snprintf(path, sizeof(path), "%s/%s", dir, CONTROLLER_PUB_FILE);
	if (fs_read_file(&text, &len, path, 4096) != 0) {
		log_warnx("buoy: no pinned controller key (%s): every config will be refused",
		    err_last());
		return 0;
	}
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
		text[--len] = '\0';
	if (sodium_base642bin(nc->controller_pub, sizeof(nc->controller_pub), text, len, NULL,
	    &binlen, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 || binlen != 32) {
		free(text);
		err_set("%s: not an Ed25519 public key (base64 of 32 bytes)", path);
		return ERR_INVAL;
	}
	free(text);
	nc->have_pub = true;
	return 0;
}

void
config_close(struct node_config *nc)
{
	if (nc->cfg != NULL)
		pharos__v1__node_config__free_unpacked(nc->cfg, NULL);
	nc->cfg = NULL;
}

void
config_check_free(struct config_check *cc)
{
	if (cc->cfg != NULL)
		pharos__v1__node_config__free_unpacked(cc->cfg, NULL);
	cc->cfg = NULL;
}

static void
refuse(struct config_check *cc, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
refuse(struct config_check *cc, int status, const char *fmt, ...)
{
	va_list ap;

	cc->verdict = CONFIG_REFUSED;
	cc->grpc_status = status;
	va_start(ap, fmt);
	vsnprintf(cc->why, sizeof(cc->why), fmt, ap);
	va_end(ap);
}

void
config_check(struct node_config *nc, const uint8_t *req, size_t len, struct config_check *cc)
{
	Pharos__V1__ApplyConfigRequest *r;
	Pharos__V1__NodeConfig *cfg;

	memset(cc, 0, sizeof(*cc));
	if ((r = pharos__v1__apply_config_request__unpack(NULL, len, req)) == NULL) {
		refuse(cc, GRPC_INVALID_ARGUMENT, "malformed ApplyConfigRequest");
		return;
	}
	if (!nc->have_pub) {
		refuse(cc, GRPC_FAILED_PRECONDITION, "no controller key is pinned on this node");
		goto out;
	}
	if (r->signature.len != crypto_sign_BYTES ||
	    crypto_sign_verify_detached(r->signature.data, r->config.data, r->config.len,
	    nc->controller_pub) != 0) {
		refuse(cc, GRPC_PERMISSION_DENIED, "signature does not verify with the pinned "
		    "controller key");
		goto out;
	}
	if ((cfg = pharos__v1__node_config__unpack(NULL, r->config.len, r->config.data)) == NULL) {
		refuse(cc, GRPC_INVALID_ARGUMENT, "signed config is not a NodeConfig");
		goto out;
	}
	crypto_hash_sha256(cc->hash, r->config.data, r->config.len);
	if (strcmp(cfg->fleet_id, nc->self.trust_domain) != 0 ||
	    strcmp(cfg->node, nc->self.name) != 0) {
		refuse(cc, GRPC_PERMISSION_DENIED, "config is for %s/%s, this is %s/%s",
		    cfg->fleet_id, cfg->node, nc->self.trust_domain, nc->self.name);
		pharos__v1__node_config__free_unpacked(cfg, NULL);
		goto out;
	}
	if (nc->cfg != NULL && cfg->serial == nc->cfg->serial &&
	    memcmp(cc->hash, nc->hash, 32) == 0) {
		cc->verdict = CONFIG_SAME;
		pharos__v1__node_config__free_unpacked(cfg, NULL);
		goto out;
	}
	if (nc->cfg != NULL && cfg->serial <= nc->cfg->serial) {
		refuse(cc, GRPC_FAILED_PRECONDITION, "serial %llu (revision %.12s) is not newer "
		    "than the running %llu (revision %.12s)", (unsigned long long)cfg->serial,
		    cfg->revision, (unsigned long long)nc->cfg->serial, nc->cfg->revision);
		pharos__v1__node_config__free_unpacked(cfg, NULL);
		goto out;
	}
	cc->verdict = CONFIG_NEW;
	cc->cfg = cfg;
out:
	pharos__v1__apply_config_request__free_unpacked(r, NULL);
}

static int64_t
unix_nanos(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
config_commit(struct node_config *nc, const uint8_t *req, size_t len, struct config_check *cc)
{
	char path[1100];
	int rc;

	snprintf(path, sizeof(path), "%s/%s", nc->dir, CONFIG_FILE);
	if (req != NULL && (rc = fs_write_atomic(path, req, len, 0600)) != 0)
		return rc;
	config_close(nc);
	nc->cfg = cc->cfg;
	cc->cfg = NULL;		/* owned by the node config now */
	memcpy(nc->hash, cc->hash, 32);
	nc->applied_nanos = unix_nanos();
	return 0;
}

int
config_load(struct node_config *nc, struct config_check *out)
{
	char path[1100], *buf = NULL;
	size_t len;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "%s/%s", nc->dir, CONFIG_FILE);
	if ((rc = fs_read_file(&buf, &len, path, CONFIG_MAX)) != 0)
		return rc == ERR_NOTFOUND ? ERR_NOTFOUND : rc;
	config_check(nc, (const uint8_t *)buf, len, out);
	free(buf);
	if (out->verdict != CONFIG_NEW) {
		log_warnx("buoy: refusing the persisted config %s: %s; nothing is applied", path,
		    out->verdict == CONFIG_SAME ? "already running" : out->why);
		err_set("%s", out->why);
		return ERR_INVAL;
	}
	return 0;
}
