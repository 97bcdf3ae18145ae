/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent/xray.c: the server config against a golden file, refusals, the users diff, the
 * AlterInbound bytes against hand-computed ones, the REALITY key against OpenSSL's X25519.
 * Run from the repository root (tests/run does); XRAY_GOLDEN_UPDATE=1 rewrites the golden
 * file (then review it against protocols.md §4).
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../agent/xray.c"
#include "t.h"

#define GOLDEN	"tests/agent/golden/xray-config.json"

/* Bytes 1..32, clamped; its public key is from OpenSSL (see test_keys). */
#define PRIV	"AAIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eH2A"
#define PUB	"B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9_AsrhtHHw"

#define U1	"0b8e6f1a-4c2d-4e5f-9a7b-1c2d3e4f5a6b"
#define U2	"6F9619FF-8B86-D011-B42D-00C04FC964FF"

static Pharos__V1__VlessUser u1 = PHAROS__V1__VLESS_USER__INIT;
static Pharos__V1__VlessUser u2 = PHAROS__V1__VLESS_USER__INIT;
static Pharos__V1__VlessUser *users[2] = { &u1, &u2 };
static char *names[] = { "www.example.com" };
static char *sids[] = { "", "0123456789abcdef" };
static Pharos__V1__Reality reality = PHAROS__V1__REALITY__INIT;
static Pharos__V1__NodeConfig cfg = PHAROS__V1__NODE_CONFIG__INIT;

static void
setup(void)
{
	u1.uuid = U1;
	u1.email = "alice/phone@alpha";
	u2.uuid = U2;
	u2.email = "bob/laptop@alpha";
	reality.port = 0;		/* default 443 */
	reality.target = "www.example.com:443";
	reality.n_server_names = 1;
	reality.server_names = names;
	reality.n_short_ids = 2;
	reality.short_ids = sids;
	reality.flow = XRAY_FLOW_VISION;
	cfg.xray = &reality;
	cfg.n_vless_users = 2;
	cfg.vless_users = users;
}

static char *
slurp(const char *path)
{
	char *s = NULL;
	size_t n;

	if (fs_read_file(&s, &n, path, 1 << 20) != 0)
		return NULL;
	return s;
}

static void
test_golden(void)
{
	char *json = NULL, *want;
	int rc;

	rc = xray_config_json(&json, &cfg, PRIV, NULL);
	T_OK(rc == 0, "config: builds (%s)", rc ? err_last() : "ok");
	if (rc != 0)
		return;
	if (getenv("XRAY_GOLDEN_UPDATE") != NULL)
		fs_write_atomic(GOLDEN, json, strlen(json), 0644);
	want = slurp(GOLDEN);
	T_STREQ(json, want, "config: byte for byte " GOLDEN);
	xray_config_free(json);
	free(want);

	/* Same input, same bytes: sorted keys. */
	{
		char *a = NULL, *b = NULL;
		xray_config_json(&a, &cfg, PRIV, "127.0.0.1:10085");
		xray_config_json(&b, &cfg, PRIV, NULL);
		T_STREQ(a, b, "config: deterministic, api_listen NULL = 127.0.0.1:10085");
		xray_config_free(a);
		xray_config_free(b);
	}
	/* Port, flow "" and no users. */
	{
		char *j = NULL;
		reality.port = 8443;
		reality.flow = "";
		cfg.n_vless_users = 0;
		rc = xray_config_json(&j, &cfg, PRIV, "127.0.0.1:1");
		T_OK(rc == 0 && strstr(j, "\"port\": 8443") && strstr(j, "\"clients\": []") &&
		    strstr(j, "\"listen\": \"127.0.0.1:1\""), "config: port, no users, api listen");
		xray_config_free(j);
		setup();
	}
}

/* Expect a refusal whose message mentions want. */
static void
refuse(const char *name, const char *want)
{
	char *json = NULL;
	int rc = xray_config_json(&json, &cfg, PRIV, NULL);

	T_OK(rc == ERR_INVAL && json == NULL && strstr(err_last(), want) != NULL,
	    "refuse %s (rc=%d: %s)", name, rc, err_last());
	setup();
}

static void
test_refusals(void)
{
	char *odd[] = { "abc" }, *long_sid[] = { "0123456789abcdef01" }, *nonhex[] = { "zz" };
	char *empty_name[] = { "" };
	Pharos__V1__VlessUser dup = PHAROS__V1__VLESS_USER__INIT;
	Pharos__V1__VlessUser *dups[2] = { &u1, &dup };
	char *json = NULL;

	reality.flow = "xtls-rprx-direct";
	refuse("bad flow", "flow \"xtls-rprx-direct\"");
	reality.short_ids = odd;
	reality.n_short_ids = 1;
	refuse("odd short id", "short id \"abc\"");
	reality.short_ids = long_sid;
	reality.n_short_ids = 1;
	refuse("short id over 16", "short id");
	reality.short_ids = nonhex;
	reality.n_short_ids = 1;
	refuse("non-hex short id", "short id \"zz\"");
	reality.n_short_ids = 0;
	refuse("no short ids", "short_ids is empty");
	u2.uuid = "6F9619FF-8B86-D011-B42D-00C04FC964F";
	refuse("short uuid", "user bob/laptop@alpha");
	u2.uuid = "6F9619FF+8B86-D011-B42D-00C04FC964FF";
	refuse("uuid with a bad dash", "is not a UUID");
	u2.uuid = "6F9619FF-8B86-D011-B42D-00C04FC964FG";
	refuse("uuid with a non-hex digit", "is not a UUID");
	u2.email = "";
	refuse("empty email", "email");
	u2.email = "bob\n@alpha";
	refuse("email with a newline", "control character");
	dup.uuid = U2;
	dup.email = "ALICE/Phone@alpha";
	cfg.vless_users = dups;
	refuse("duplicate email, other case", "appears twice");
	reality.n_server_names = 0;
	refuse("no server names", "server_names is empty");
	reality.server_names = empty_name;
	refuse("empty server name", "server_names[0] is empty");
	reality.target = "";
	refuse("empty target", "target");
	reality.port = 65536;
	refuse("port over 65535", "out of range");
	cfg.xray = NULL;
	refuse("no xray section", "no xray section");
	reality.target = "\xff\xfe:443";
	refuse("target not UTF-8", "not UTF-8");

	T_OK(xray_config_json(&json, &cfg, "AAIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eH2", NULL) ==
	    ERR_INVAL && strstr(err_last(), "private key"), "refuse a 42-character key");
	T_OK(xray_config_json(&json, &cfg, PRIV "=", NULL) == ERR_INVAL,
	    "refuse a padded key");
	T_OK(xray_config_json(&json, &cfg, "AAIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eH2+", NULL) ==
	    ERR_INVAL, "refuse standard base64 ('+')");
	T_OK(xray_config_json(&json, &cfg, NULL, NULL) == ERR_INVAL, "refuse no key");

	T_OK(xray_check_short_id("") == 0 && xray_check_short_id("0123456789ABCDEF") == 0 &&
	    xray_check_short_id("ab") == 0, "short ids: \"\", 16 upper-case digits, 2 digits");
	T_OK(xray_check_flow("") == 0 && xray_check_flow(XRAY_FLOW_VISION) == 0 &&
	    xray_check_flow(NULL) != 0, "flow: \"\", vision; NULL refused");
}

static void
test_write(void)
{
	char dir[] = "/tmp/pharos-test-xray-XXXXXX", path[128], *s;
	struct stat st;

	if (mkdtemp(dir) == NULL) {
		T_OK(0, "write: mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/config.json", dir);
	T_OK(xray_write_config(path, &cfg, PRIV, NULL) == 0, "write: ok");
	T_OK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "write: mode 0600");
	s = slurp(path);
	T_OK(s != NULL && strstr(s, PRIV) != NULL, "write: holds the key");
	free(s);
	reality.flow = "bad";
	T_OK(xray_write_config(path, &cfg, PRIV, NULL) == ERR_INVAL, "write: refused config");
	setup();
	s = slurp(path);
	T_OK(s != NULL && strstr(s, XRAY_FLOW_VISION) != NULL, "write: refusal left the file");
	free(s);
	unlink(path);
	rmdir(dir);
}

static bool
has(const Pharos__V1__VlessUser **v, size_t n, const Pharos__V1__VlessUser *u)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i] == u)
			return true;
	return false;
}

static void
test_diff(void)
{
	Pharos__V1__VlessUser a = PHAROS__V1__VLESS_USER__INIT, b = a, c = a, a2 = a, b2 = a,
	    bad = a;
	Pharos__V1__VlessUser *old[] = { &a, &b }, *new1[] = { &a2, &c }, *new2[] = { &b2, &a };
	Pharos__V1__VlessUser *dup[] = { &a, &a2 }, *bads[] = { &bad };
	struct xray_diff d;

	a.uuid = U1;
	a.email = "a@x";
	b.uuid = U2;
	b.email = "b@x";
	c.uuid = "11111111-2222-3333-4444-555555555555";
	c.email = "c@x";
	a2.uuid = U1;
	a2.email = "A@X";		/* same user, Xray's case-insensitive email */
	b2.uuid = "6f9619ff-8b86-d011-b42d-00c04fc964ff";	/* U2, lower case */
	b2.email = "B@x";
	bad.uuid = "nope";
	bad.email = "z@x";

	T_OK(xray_users_diff(&d, old, 2, new1, 2) == 0 && d.nadd == 1 && d.add[0] == &c &&
	    d.nremove == 1 && d.remove[0] == &b, "diff: b gone, c new, a kept across case");
	xray_diff_free(&d);
	T_OK(xray_users_diff(&d, old, 2, new2, 2) == 0 && d.nadd == 0 && d.nremove == 0,
	    "diff: reordered, email and uuid case differ: nothing");
	xray_diff_free(&d);
	T_OK(xray_users_diff(&d, NULL, 0, old, 2) == 0 && d.nadd == 2 && d.nremove == 0 &&
	    d.add[0] == &a && d.add[1] == &b, "diff: from nothing: add all, in order");
	xray_diff_free(&d);
	T_OK(xray_users_diff(&d, old, 2, NULL, 0) == 0 && d.nadd == 0 && d.nremove == 2,
	    "diff: to nothing: remove all");
	xray_diff_free(&d);
	c.email = "a@x";	/* a's email, another uuid */
	{
		Pharos__V1__VlessUser *n3[] = { &c, &b };
		T_OK(xray_users_diff(&d, old, 2, n3, 2) == 0 && d.nadd == 1 && d.add[0] == &c &&
		    d.nremove == 1 && has(d.remove, d.nremove, &a),
		    "diff: uuid changed: remove then add");
		xray_diff_free(&d);
	}
	T_OK(xray_users_diff(&d, NULL, 0, dup, 2) == ERR_INVAL &&
	    strstr(err_last(), "appears twice"), "diff: duplicate email refused");
	T_OK(d.add == NULL && d.remove == NULL, "diff: nothing to free after a refusal");
	T_OK(xray_users_diff(&d, NULL, 0, bads, 1) == ERR_INVAL, "diff: bad uuid refused");
	xray_diff_free(&d);
	xray_diff_free(NULL);
}

/*
 * Hand-computed, field by field (protocols.md §4 tags):
 *   Account            0A 24 <36 uuid>  12 10 "xtls-rprx-vision"           = 56 (0x38)
 *   TypedMessage acct  0A 18 "xray.proxy.vless.Account"  12 38 <56>        = 84 (0x54)
 *   User               (level 0 omitted) 12 03 "a@x"  1A 54 <84>           = 91 (0x5B)
 *   AddUserOperation   0A 5B <91>                                          = 93 (0x5D)
 *   TypedMessage op    0A 2A "xray.app.proxyman.command.AddUserOperation"
 *                      12 5D <93>                        = 2+42+2+93 = 139 (varint 8B 01)
 *   AlterInbound       0A 08 "vless-in"  12 8B 01 <139>                    = 152
 */
static const char add_want[] =
    "\x0a\x08" "vless-in"
    "\x12\x8b\x01"
      "\x0a\x2a" "xray.app.proxyman.command.AddUserOperation"
      "\x12\x5d"
        "\x0a\x5b"
          "\x12\x03" "a@x"
          "\x1a\x54"
            "\x0a\x18" "xray.proxy.vless.Account"
            "\x12\x38"
              "\x0a\x24" U1
              "\x12\x10" "xtls-rprx-vision";

/*
 *   RemoveUserOperation 0A 03 "a@x"                                         = 5
 *   TypedMessage op    0A 2D "xray.app.proxyman.command.RemoveUserOperation"
 *                      12 05 <5>                          = 2+45+2+5 = 54 (0x36)
 *   AlterInbound       0A 08 "vless-in"  12 36 <54>                        = 66
 */
static const char remove_want[] =
    "\x0a\x08" "vless-in"
    "\x12\x36"
      "\x0a\x2d" "xray.app.proxyman.command.RemoveUserOperation"
      "\x12\x05"
        "\x0a\x03" "a@x";

static void
test_encode(void)
{
	uint8_t *b = NULL;
	size_t n = 0;

	T_OK(xray_encode_add_user(&b, &n, XRAY_INBOUND_TAG, U1, "a@x", XRAY_FLOW_VISION) == 0 &&
	    n == sizeof(add_want) - 1 && n == 152 && memcmp(b, add_want, n) == 0,
	    "encode: AddUserOperation byte-exact (%zu bytes)", n);
	free(b);
	T_OK(xray_encode_remove_user(&b, &n, XRAY_INBOUND_TAG, "a@x") == 0 &&
	    n == sizeof(remove_want) - 1 && n == 66 && memcmp(b, remove_want, n) == 0,
	    "encode: RemoveUserOperation byte-exact (%zu bytes)", n);
	free(b);
	/* flow "": Account{1: id} only; lengths 18 shorter, 139 -> 121 fits one byte. */
	T_OK(xray_encode_add_user(&b, &n, XRAY_INBOUND_TAG, U1, "a@x", "") == 0 && n == 133 &&
	    b[11] == 0x79 && memcmp(b + n - 38, "\x0a\x24" U1, 38) == 0,
	    "encode: empty flow omitted (%zu bytes)", n);
	free(b);
	T_OK(xray_encode_add_user(&b, &n, XRAY_INBOUND_TAG, "x", "a@x", "") == ERR_INVAL &&
	    b == NULL, "encode: bad uuid refused");
	T_OK(xray_encode_add_user(&b, &n, "", U1, "a@x", "") == ERR_INVAL, "encode: empty tag");
	T_OK(xray_encode_add_user(&b, &n, "t", U1, "a@x", "none") == ERR_INVAL,
	    "encode: bad flow");
	T_OK(xray_encode_remove_user(&b, &n, "t", "") == ERR_INVAL,
	    "encode: remove needs an email");
}

static void
test_varint(void)
{
	struct pb p = { 0 };
	static const uint8_t want[] = { 0x00, 0x7f, 0x80, 0x01, 0xac, 0x02, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };

	pb_varint(&p, 0);
	pb_varint(&p, 127);
	pb_varint(&p, 128);
	pb_varint(&p, 300);
	pb_varint(&p, UINT64_MAX);
	T_OK(!p.oom && p.len == sizeof(want) && memcmp(p.buf, want, p.len) == 0,
	    "varint: 0 127 128 300 2^64-1");
	free(p.buf);
}

static void
test_keys(void)
{
	char priv[XRAY_KEY_B64_SIZE], pub[XRAY_KEY_B64_SIZE], again[XRAY_KEY_B64_SIZE];
	uint8_t raw[32], sk[32];
	size_t n;

	T_OK(xray_reality_public(raw, PRIV) == 0, "keys: public of a fixed key");
	sodium_bin2base64(again, sizeof(again), raw, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	T_STREQ(again, PUB, "keys: matches OpenSSL's X25519 public key");
	T_OK(xray_reality_keypair(priv, pub) == 0 && strlen(priv) == 43 && strlen(pub) == 43,
	    "keys: new pair, 43 characters each");
	T_OK(strspn(priv, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
	    43, "keys: base64url alphabet, no padding");
	T_OK(xray_reality_public(raw, priv) == 0, "keys: public from the new private key");
	sodium_bin2base64(again, sizeof(again), raw, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	T_STREQ(again, pub, "keys: derived public = generated public");
	T_OK(sodium_base642bin(sk, 32, priv, 43, NULL, &n, NULL,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 && n == 32 && (sk[0] & 7) == 0 &&
	    (sk[31] & 0xc0) == 0x40, "keys: private scalar clamped like xray x25519");
	T_OK(xray_reality_public(raw, "short") == ERR_INVAL, "keys: bad private key refused");
}

int
main(void)
{
	log_init("test_xray", LOG_ERROR);
	setup();
	test_golden();
	test_refusals();
	test_write();
	test_diff();
	test_encode();
	test_varint();
	test_keys();
	T_DONE();
}
