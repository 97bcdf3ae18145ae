/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cox (coxswain): the PharosVPN controller and its command line. One dispatch table, a
 * file per subcommand (wireguard-tools style).
 */
#include <git2.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cox.h"
#include "version.h"

static const struct {
	const char	*name;
	int		(*fn)(int, char **);
	const char	*help;
} commands[] = {
	{ "init", cmd_init, "create a state directory: fleet.git, state.db, the fleet's PKI" },
	{ "validate", cmd_validate, "check a fleet repository (a folder or a git revision)" },
	{ "nodes", cmd_nodes, "list, enroll (from a CSR) and forget nodes" },
	{ "audit", cmd_audit, "show or verify the hash-chained audit log" },
	{ "ssh-key", cmd_ssh_key, "print the controller's SSH public key" },
	{ "run", cmd_run, "run the controller: watch the fleet repo, push to the nodes" },
	{ "status", cmd_status, "the fleet revision and every node's state" },
	{ "plan", cmd_plan, "show what a change to the fleet repository does to every node" },
	{ "admin", cmd_admin, "set an admin's passphrase for the admin UI" },
	{ "tokens", cmd_tokens, "create, list and revoke API tokens for the admin API" },
};

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: cox <command> [options]\n\n"
	    "cox (coxswain) drives a PharosVPN fleet from a git repository.\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nRun 'cox <command> --help' for a command's options.\n"
	    "Global options: --help, --version\n");
}

int
main(int argc, char **argv)
{
	size_t i;

	if (sodium_init() < 0) {
		fprintf(stderr, "cox: libsodium failed to initialise\n");
		return COX_USAGE;
	}
	git_libgit2_init();	/* once for every command; reference-counted */
	/*
	 * libgit2's defaults cost a big fleet's edit (docs/BENCHMARKS.md, the admin API) half
	 * its time. Trees over 4 KB are never cached, so the 0.9 MB users/ tree of a 20,000-user
	 * fleet was parsed again by every step of every edit: cache trees up to 16 MB, in at
	 * most 64 MB per repository (the default is 256). Every object read was hashed again
	 * (a check against disk corruption: the objects were checked when they arrived, by
	 * receive-pack, or written by cox itself), and every tree entry written was looked up
	 * to check that it exists (cox writes only trees of objects it has just read or
	 * written): both off.
	 */
	git_libgit2_opts(GIT_OPT_SET_CACHE_OBJECT_LIMIT, GIT_OBJECT_TREE, (size_t)16 << 20);
	git_libgit2_opts(GIT_OPT_SET_CACHE_MAX_SIZE, (ssize_t)64 << 20);
	git_libgit2_opts(GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION, 0);
	git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 0);
	if (argc < 2) {
		usage(stderr);
		return COX_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return COX_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("cox %s\n", PHAROS_VERSION);
		return COX_OK;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "cox: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return COX_USAGE;
}
