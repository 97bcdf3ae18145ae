/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The processes buoy runs: the userspace WireGuard implementation (wireguard-go or
 * amneziawg-go), Xray, the tools (`wg`, `awg`), and the host network configuration
 * around them through iproute2 (`ip`) and `nft` — each by fork/exec with an argv (never
 * a shell). Short and bounded, but blocking: the event loop calls them as netcfg does.
 */
#ifndef PHAROS_WGPROC_H
#define PHAROS_WGPROC_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>

/*
 * Start `impl -f ifname` (impl: "wireguard-go", "amneziawg-go" or an absolute path) in a
 * new process group with WG_PROCESS_FOREGROUND=1 and LOG_LEVEL=error, stdin /dev/null,
 * stdout and stderr appended to log_path. Returns at once; the socket appears later
 * (wgproc_wait_socket). ifname: 1-15 characters of [A-Za-z0-9_.-].
 */
int	wgproc_start(pid_t *pid, const char *impl, const char *ifname, const char *log_path);
/*
 * Start argv (argv[0] an absolute path) as wgproc_start() does, with buoy's environment;
 * for processes buoy supervises (Xray). Returns at once.
 */
int	wgproc_spawn(pid_t *pid, const char *const argv[], const char *log_path);
/* name as found in $PATH (absolute folders only), then the usual bin folders; or a path. */
int	wgproc_which(char *out, size_t outsz, const char *name);

#define WGPROC_F_SECRET	(1U << 0)	/* stdout holds a key: every copy is wiped */
/*
 * Run argv to completion (argv[0] a name looked up in /usr/local/sbin, ..., /bin, or a
 * path) with in[inlen] on stdin through a pipe; stdout into *out (NUL-terminated, length
 * in *outlen if not NULL; the caller frees it, wiping it first with WGPROC_F_SECRET)
 * unless out is NULL. More than 64 MiB of stdout is ERR_TOOBIG; 30 s without output
 * kills it. A non-zero exit is ERR_SYS carrying the first line of stderr. The caller
 * ignores SIGPIPE (buoy does), in case the child exits before reading all of in.
 */
int	wgproc_run(char **out, size_t *outlen, const char *const argv[], const char *in,
	    size_t inlen, unsigned flags);

/* Poll every 10 ms until a get on sock_path works, at most timeout_ms. */
int	wgproc_wait_socket(const char *sock_path, int timeout_ms);
/* SIGTERM the process group, wait up to timeout_ms, then SIGKILL; reaps pid. */
int	wgproc_stop(pid_t pid, int timeout_ms);

/*
 * Make ifname carry exactly these addresses ("10.64.0.1/24", "fd00::1/64"; IPv6
 * link-local ones the kernel adds are left alone), set the MTU (mtu > 0) and the link
 * up or down. Idempotent: only what differs from `ip -j addr show` is changed.
 */
int	netcfg_apply(const char *ifname, const char *const *addresses, size_t n, int mtu,
	    bool up);
/* net.ipv4.ip_forward and net.ipv6.conf.all.forwarding (if IPv6 exists). */
int	netcfg_forwarding(bool on);
/*
 * nftables table "inet TABLE" with a postrouting masquerade of what comes in on
 * ifname_in and leaves elsewhere; on=false deletes the table. Idempotent: the table is
 * replaced atomically in one `nft -f -` transaction.
 */
int	netcfg_masquerade(const char *table, const char *ifname_in, bool on);

#endif
