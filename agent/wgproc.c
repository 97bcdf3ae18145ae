/* SPDX-License-Identifier: Apache-2.0 */
#include <sys/types.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <sodium.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "err.h"
#include "log.h"
#include "uapi.h"
#include "wgproc.h"

extern char **environ;

#define RUN_OUT_MAX	(64u << 20)	/* `wg show dump` of ~500k peers */

/* Where ip, nft and the implementations live; buoy may run with a thin PATH. */
static const char *const bin_dirs[] = { "/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
	"/usr/bin", "/sbin", "/bin" };

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int
find_bin(char *out, size_t outsz, const char *name)
{
	size_t i;

	if (name[0] == '/') {
		if ((size_t)snprintf(out, outsz, "%s", name) >= outsz)
			goto toolong;
		if (access(out, X_OK) == 0)
			return 0;
		err_setsys("%s", name);
		return ERR_NOTFOUND;
	}
	for (i = 0; i < sizeof(bin_dirs) / sizeof(bin_dirs[0]); i++) {
		if ((size_t)snprintf(out, outsz, "%s/%s", bin_dirs[i], name) >= outsz)
			goto toolong;
		if (access(out, X_OK) == 0)
			return 0;
	}
	err_set("%s: not found in %s, %s, ...", name, bin_dirs[0], bin_dirs[1]);
	return ERR_NOTFOUND;
toolong:
	err_set("%s: path too long", name);
	return ERR_TOOBIG;
}

int
wgproc_which(char *out, size_t outsz, const char *name)
{
	const char *path = getenv("PATH"), *p, *colon;
	size_t n;

	if (name[0] == '/' || path == NULL)
		return find_bin(out, outsz, name);
	for (p = path; *p != '\0'; p = *colon ? colon + 1 : colon) {
		colon = strchrnul(p, ':');
		n = (size_t)(colon - p);
		if (n == 0 || p[0] != '/')
			continue;	/* "" or a relative folder: not for a daemon */
		if ((size_t)snprintf(out, outsz, "%.*s/%s", (int)n, p, name) < outsz &&
		    access(out, X_OK) == 0)
			return 0;
	}
	return find_bin(out, outsz, name);
}

static bool
valid_ifname(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 15 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* ---- processes buoy supervises ---- */

/*
 * Fork and exec path with argv and envp in a new process group, stdin /dev/null, stdout
 * and stderr appended to log_path. Everything the child needs is made before the fork:
 * after it, only async-signal-safe calls.
 */
static int
spawn(pid_t *pid, const char *path, const char *const argv[], char *const envp[],
    const char *log_path)
{
	int logfd = -1, nullfd = -1, rc;
	pid_t p;

	*pid = -1;
	if ((logfd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		err_setsys("%s", log_path);
		rc = ERR_SYS;
		goto out;
	}
	if ((nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		err_setsys("/dev/null");
		rc = ERR_SYS;
		goto out;
	}
	if ((p = fork()) < 0) {
		err_setsys("fork");
		rc = ERR_SYS;
		goto out;
	}
	if (p == 0) {
		sigset_t none;

		setpgid(0, 0);
		if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
			_exit(126);
		close_range(3, ~0U, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		execve(path, (char *const *)(uintptr_t)argv, envp);
		_exit(127);
	}
	setpgid(p, p);		/* both sides, so a signal to the group cannot race */
	*pid = p;
	rc = 0;
out:
	if (logfd >= 0)
		close(logfd);
	if (nullfd >= 0)
		close(nullfd);
	return rc;
}

int
wgproc_spawn(pid_t *pid, const char *const argv[], const char *log_path)
{
	*pid = -1;
	if (argv[0] == NULL || argv[0][0] != '/') {
		err_set("wgproc_spawn: '%s' is not an absolute path", argv[0] ? argv[0] : "");
		return ERR_INVAL;
	}
	return spawn(pid, argv[0], argv, environ, log_path);
}

int
wgproc_start(pid_t *pid, const char *impl, const char *ifname, const char *log_path)
{
	char path[PATH_MAX];
	char **envp = NULL;
	const char *argv[] = { impl, "-f", ifname, NULL };
	size_t n = 0, i, j;
	int rc;

	*pid = -1;
	if (strcmp(impl, "wireguard-go") != 0 && strcmp(impl, "amneziawg-go") != 0 &&
	    impl[0] != '/') {
		err_set("implementation '%s' is not wireguard-go, amneziawg-go or a path", impl);
		return ERR_INVAL;
	}
	if (!valid_ifname(ifname)) {
		err_set("interface name '%s' is not 1-15 characters of [A-Za-z0-9_.-]", ifname);
		return ERR_INVAL;
	}
	if ((rc = find_bin(path, sizeof(path), impl)) != 0)
		return rc;
	while (environ[n] != NULL)
		n++;
	if ((envp = calloc(n + 3, sizeof(*envp))) == NULL) {
		err_set("out of memory");
		return ERR_NOMEM;
	}
	for (i = j = 0; i < n; i++) {
		if (strncmp(environ[i], "WG_", 3) == 0 || strncmp(environ[i], "LOG_LEVEL=", 10) == 0)
			continue;	/* WG_TUN_FD / WG_UAPI_FD would name fds we do not pass */
		envp[j++] = environ[i];
	}
	envp[j++] = (char *)(uintptr_t)"WG_PROCESS_FOREGROUND=1";
	envp[j++] = (char *)(uintptr_t)"LOG_LEVEL=error";
	envp[j] = NULL;
	if ((rc = spawn(pid, path, argv, envp, log_path)) == 0)
		log_info("wgproc: started impl=%s if=%s pid=%ld", impl, ifname, (long)*pid);
	free(envp);
	return rc;
}

int
wgproc_wait_socket(const char *sock_path, int timeout_ms)
{
	struct wg_device *d;
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0), left;
	int rc;

	for (;;) {
		left = deadline - now_ms();
		if ((rc = uapi_get_timeout(&d, sock_path, left > 10 ? (int)left : 10)) == 0) {
			wg_device_free(d);
			return 0;
		}
		if (now_ms() + 10 > deadline) {
			/* err_last() still holds the last get's reason. */
			return rc;
		}
		sleep_ms(10);
	}
}

int
wgproc_stop(pid_t pid, int timeout_ms)
{
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	int st;
	pid_t r;

	if (pid <= 0) {
		err_set("wgproc_stop: bad pid %ld", (long)pid);
		return ERR_INVAL;
	}
	if (kill(-pid, SIGTERM) != 0)
		kill(pid, SIGTERM);
	for (;;) {
		r = waitpid(pid, &st, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD))
			return 0;
		if (r < 0 && errno != EINTR) {
			err_setsys("waitpid %ld", (long)pid);
			return ERR_SYS;
		}
		if (now_ms() >= deadline)
			break;
		sleep_ms(10);
	}
	log_warnx("wgproc: pid=%ld ignored SIGTERM for %d ms; SIGKILL", (long)pid, timeout_ms);
	if (kill(-pid, SIGKILL) != 0)
		kill(pid, SIGKILL);
	while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
		;
	return 0;
}

/* ---- running ip and nft ---- */

struct obuf {
	char	*p;
	size_t	 len, cap, max;
	bool	 secret;	/* wipe every copy: the output holds a key */
	bool	 keep_head;	/* beyond max: drop the rest (else ERR_TOOBIG) */
};

static void
obuf_free(struct obuf *b)
{
	if (b->p != NULL && b->secret)
		sodium_memzero(b->p, b->cap);
	free(b->p);
	b->p = NULL;
}

static int
obuf_read(struct obuf *b, int fd, bool *eof)
{
	char tmp[65536], *np;
	ssize_t r;

	if ((r = read(fd, tmp, sizeof(tmp))) < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 0;
		err_setsys("read from a child");
		return ERR_SYS;
	}
	if (r == 0) {
		*eof = true;
		return 0;
	}
	if ((size_t)r > b->max - b->len) {
		if (b->secret)
			sodium_memzero(tmp, sizeof(tmp));
		return b->keep_head ? 0 : ERR_TOOBIG;
	}
	if (b->len + (size_t)r + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 65536;
		while (cap < b->len + (size_t)r + 1)
			cap *= 2;
		if ((np = malloc(cap)) == NULL) {
			if (b->secret)
				sodium_memzero(tmp, sizeof(tmp));
			return ERR_NOMEM;
		}
		if (b->p != NULL)
			memcpy(np, b->p, b->len);
		obuf_free(b);	/* realloc would leave the old copy unwiped */
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, tmp, (size_t)r);
	if (b->secret)
		sodium_memzero(tmp, (size_t)r);
	b->len += (size_t)r;
	b->p[b->len] = '\0';
	return 0;
}

static void
argv_text(char *buf, size_t sz, const char *const argv[])
{
	size_t off = 0, i;

	buf[0] = '\0';
	for (i = 0; argv[i] != NULL && off < sz; i++) {
		int w = snprintf(buf + off, sz - off, "%s%s", i ? " " : "", argv[i]);
		if (w < 0)
			break;
		off += (size_t)w;
	}
}

int
wgproc_run(char **out, size_t *outlen, const char *const argv[], const char *in,
    size_t inlen, unsigned flags)
{
	char path[PATH_MAX], what[256];
	struct obuf ob = { .max = RUN_OUT_MAX, .secret = (flags & WGPROC_F_SECRET) != 0 };
	struct obuf eb = { .max = 64 * 1024, .keep_head = true };
	int inp[2] = { -1, -1 }, outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
	size_t inoff = 0;
	bool out_eof = false, err_eof = false;
	int rc, st = 0;
	pid_t p;

	if (out != NULL)
		*out = NULL;
	if (outlen != NULL)
		*outlen = 0;
	argv_text(what, sizeof(what), argv);
	if ((rc = find_bin(path, sizeof(path), argv[0])) != 0)
		return rc;
	if (pipe2(inp, O_CLOEXEC) != 0 || pipe2(outp, O_CLOEXEC) != 0 ||
	    pipe2(errp, O_CLOEXEC) != 0) {
		err_setsys("pipe");
		rc = ERR_SYS;
		goto out;
	}
	if ((p = fork()) < 0) {
		err_setsys("fork");
		rc = ERR_SYS;
		goto out;
	}
	if (p == 0) {
		if (dup2(inp[0], 0) < 0 || dup2(outp[1], 1) < 0 || dup2(errp[1], 2) < 0)
			_exit(126);
		close_range(3, ~0U, 0);
		signal(SIGPIPE, SIG_DFL);
		execv(path, (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	close(inp[0]);
	close(outp[1]);
	close(errp[1]);
	inp[0] = outp[1] = errp[1] = -1;
	if (inlen == 0) {
		close(inp[1]);
		inp[1] = -1;
	} else {
		fcntl(inp[1], F_SETFL, O_NONBLOCK);
	}
	while (!out_eof || !err_eof) {
		struct pollfd pfd[3] = {
			{ .fd = out_eof ? -1 : outp[0], .events = POLLIN },
			{ .fd = err_eof ? -1 : errp[0], .events = POLLIN },
			{ .fd = inp[1], .events = POLLOUT },
		};
		int pr = poll(pfd, 3, 30000);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			err_set("%s: no output for 30 s", what);
			kill(p, SIGKILL);
			rc = ERR_SYS;
			break;
		}
		if (pfd[2].revents & (POLLOUT | POLLERR | POLLHUP)) {
			ssize_t w = write(inp[1], in + inoff, inlen - inoff);
			if (w > 0)
				inoff += (size_t)w;
			if ((w < 0 && errno != EAGAIN && errno != EINTR) || inoff == inlen) {
				close(inp[1]);
				inp[1] = -1;
			}
		}
		if ((pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    (rc = obuf_read(&ob, outp[0], &out_eof)) != 0) {
			/* Stop it: a child blocked on a full pipe would never end. */
			kill(p, SIGKILL);
			out_eof = true;
		}
		if ((pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    obuf_read(&eb, errp[0], &err_eof) != 0)
			err_eof = true;
	}
	while (waitpid(p, &st, 0) < 0 && errno == EINTR)
		;
	if (rc != 0) {
		if (rc == ERR_NOMEM)
			err_set("%s: out of memory", what);
		else if (rc == ERR_TOOBIG)
			err_set("%s: more than %u bytes of output", what, RUN_OUT_MAX);
		goto out;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char *nl = eb.p ? strchr(eb.p, '\n') : NULL;
		if (nl != NULL)
			*nl = '\0';
		err_set("%s: %s %d: %s", what, WIFEXITED(st) ? "exit" : "signal",
		    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), eb.p ? eb.p : "");
		rc = ERR_SYS;
		goto out;
	}
	if (out != NULL) {
		if (ob.p == NULL && (ob.p = strdup("")) == NULL) {
			err_set("out of memory");
			rc = ERR_NOMEM;
			goto out;
		}
		*out = ob.p;
		if (outlen != NULL)
			*outlen = ob.len;
		ob.p = NULL;	/* the caller's now */
	}
out:
	for (size_t i = 0; i < 2; i++) {
		if (inp[i] >= 0)
			close(inp[i]);
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	obuf_free(&ob);
	obuf_free(&eb);
	return rc;
}

/* ---- interface addresses, MTU, link state ---- */

struct ifaddr {
	struct ipaddr	ip;
	unsigned	prefix;
};

static int
ifaddr_parse(struct ifaddr *a, const char *s)
{
	struct ipaddr net;
	char buf[64];
	const char *slash = strchr(s, '/');
	bool host;

	if (slash == NULL || (size_t)(slash - s) >= sizeof(buf) ||
	    addr_parse_cidr(&net, &a->prefix, &host, s) != 0) {
		err_set("'%s' is not an interface address (ip/prefix)", s);
		return ERR_INVAL;
	}
	memcpy(buf, s, (size_t)(slash - s));
	buf[slash - s] = '\0';
	return addr_parse_ip(&a->ip, buf);	/* keeps the host bits */
}

static void
ifaddr_text(char buf[64], const struct ifaddr *a)
{
	char ip[INET6_ADDRSTRLEN];

	snprintf(buf, 64, "%s/%u", addr_ntop(&a->ip, ip, sizeof(ip)), a->prefix);
}

static bool
ifaddr_eq(const struct ifaddr *a, const struct ifaddr *b)
{
	return a->prefix == b->prefix && addr_cmp(&a->ip, &b->ip) == 0;
}

static int
ip_cmd(const char *const argv[])
{
	char what[256];
	int rc;

	argv_text(what, sizeof(what), argv);
	if ((rc = wgproc_run(NULL, NULL, argv, NULL, 0, 0)) == 0)
		log_info("netcfg: %s", what);
	return rc;
}

int
netcfg_apply(const char *ifname, const char *const *addresses, size_t n, int mtu, bool up)
{
	const char *const show[] = { "ip", "-j", "addr", "show", "dev", ifname, NULL };
	struct ifaddr *want = NULL, *have = NULL;
	size_t nhave = 0, i, j;
	json_t *root = NULL, *link, *ai, *flags, *v;
	json_error_t jerr;
	char *text = NULL, a[64], mtus[16];
	bool is_up = false;
	int rc, cur_mtu;

	if (!valid_ifname(ifname)) {
		err_set("interface name '%s' is not 1-15 characters of [A-Za-z0-9_.-]", ifname);
		return ERR_INVAL;
	}
	if (mtu < 0 || mtu > 65535) {
		err_set("%s: MTU %d is out of range", ifname, mtu);
		return ERR_INVAL;
	}
	if ((want = calloc(n ? n : 1, sizeof(*want))) == NULL) {
		err_set("out of memory");
		return ERR_NOMEM;
	}
	for (i = 0; i < n; i++)
		if ((rc = ifaddr_parse(&want[i], addresses[i])) != 0)
			goto out;
	if ((rc = wgproc_run(&text, NULL, show, NULL, 0, 0)) != 0)
		goto out;
	if ((root = json_loads(text, 0, &jerr)) == NULL || !json_is_array(root) ||
	    !json_is_object(link = json_array_get(root, 0))) {
		err_set("%s: cannot read `ip -j addr show`", ifname);
		rc = ERR_INVAL;
		goto out;
	}
	cur_mtu = (int)json_integer_value(json_object_get(link, "mtu"));
	flags = json_object_get(link, "flags");
	json_array_foreach(flags, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), "UP") == 0)
			is_up = true;
	ai = json_object_get(link, "addr_info");
	if ((have = calloc(json_array_size(ai) + 1, sizeof(*have))) == NULL) {
		err_set("out of memory");
		rc = ERR_NOMEM;
		goto out;
	}
	json_array_foreach(ai, i, v) {
		const char *local = json_string_value(json_object_get(v, "local"));
		const char *scope = json_string_value(json_object_get(v, "scope"));
		json_int_t plen = json_integer_value(json_object_get(v, "prefixlen"));
		if (local == NULL || addr_parse_ip(&have[nhave].ip, local) != 0 || plen < 0 ||
		    plen > 128)
			continue;
		if (have[nhave].ip.family == AF_INET6 && scope != NULL && strcmp(scope, "link") == 0)
			continue;	/* the kernel's link-local: not ours */
		have[nhave++].prefix = (unsigned)plen;
	}
	if (mtu > 0 && mtu != cur_mtu) {
		snprintf(mtus, sizeof(mtus), "%d", mtu);
		const char *const argv[] = { "ip", "link", "set", "dev", ifname, "mtu", mtus, NULL };
		if ((rc = ip_cmd(argv)) != 0)
			goto out;
	}
	for (i = 0; i < nhave; i++) {
		for (j = 0; j < n && !ifaddr_eq(&have[i], &want[j]); j++)
			;
		if (j < n)
			continue;
		ifaddr_text(a, &have[i]);
		const char *const argv[] = { "ip", "addr", "del", a, "dev", ifname, NULL };
		if ((rc = ip_cmd(argv)) != 0)
			goto out;
	}
	for (j = 0; j < n; j++) {
		for (i = 0; i < nhave && !ifaddr_eq(&have[i], &want[j]); i++)
			;
		if (i < nhave)
			continue;
		for (i = 0; i < j && !ifaddr_eq(&want[i], &want[j]); i++)
			;
		if (i < j)
			continue;	/* listed twice */
		ifaddr_text(a, &want[j]);
		const char *const argv[] = { "ip", "addr", "add", a, "dev", ifname, NULL };
		if ((rc = ip_cmd(argv)) != 0)
			goto out;
	}
	if (up != is_up) {
		const char *const argv[] = { "ip", "link", "set", "dev", ifname,
			up ? "up" : "down", NULL };
		if ((rc = ip_cmd(argv)) != 0)
			goto out;
	}
	rc = 0;
out:
	json_decref(root);
	free(text);
	free(want);
	free(have);
	return rc;
}

static int
write_sysctl(const char *path, bool on, bool optional)
{
	int fd;
	ssize_t w;

	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0) {
		if (optional && errno == ENOENT)
			return 0;
		err_setsys("%s", path);
		return ERR_SYS;
	}
	w = write(fd, on ? "1\n" : "0\n", 2);
	if (w != 2) {
		err_setsys("%s: write", path);
		close(fd);
		return ERR_SYS;
	}
	close(fd);
	return 0;
}

int
netcfg_forwarding(bool on)
{
	int rc;

	if ((rc = write_sysctl("/proc/sys/net/ipv4/ip_forward", on, false)) != 0)
		return rc;
	return write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", on, true);
}

int
netcfg_masquerade(const char *table, const char *ifname_in, bool on)
{
	const char *const argv[] = { "nft", "-f", "-", NULL };
	char rules[1024];
	size_t i, n = strlen(table);
	int rc;

	for (i = 0; i < n; i++)
		if (!((table[i] >= 'a' && table[i] <= 'z') || (table[i] >= '0' && table[i] <= '9') ||
		    table[i] == '_'))
			break;
	if (n == 0 || n > 32 || i < n) {
		err_set("nft table name '%s' is not 1-32 of [a-z0-9_]", table);
		return ERR_INVAL;
	}
	if (!valid_ifname(ifname_in)) {
		err_set("interface name '%s' is not 1-15 characters of [A-Za-z0-9_.-]", ifname_in);
		return ERR_INVAL;
	}
	/* "table" first creates it if missing, so the delete never fails: one transaction. */
	if (on)
		snprintf(rules, sizeof(rules),
		    "table inet %s\n"
		    "delete table inet %s\n"
		    "table inet %s {\n"
		    "\tchain postrouting {\n"
		    "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
		    "\t\tiifname \"%s\" oifname != \"%s\" masquerade\n"
		    "\t}\n"
		    "}\n", table, table, table, ifname_in, ifname_in);
	else
		snprintf(rules, sizeof(rules), "table inet %s\ndelete table inet %s\n", table,
		    table);
	if ((rc = wgproc_run(NULL, NULL, argv, rules, strlen(rules), 0)) == 0)
		log_info("netcfg: nft table=inet/%s masquerade=%s in=%s", table, on ? "on" : "off",
		    ifname_in);
	return rc;
}
