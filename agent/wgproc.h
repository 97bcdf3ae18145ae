/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The userspace WireGuard implementation buoy runs (wireguard-go or amneziawg-go) and the
 * host network configuration around it, done through iproute2 (`ip`) and `nft`, each run
 * by fork/exec with an argv (never a shell). Blocking: call these off the event loop.
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
