/* SPDX-License-Identifier: Apache-2.0 */
/*
 * beacon: the PharosVPN relay: client ingress and reverse tunnel to cox.
 * Only --help and --version exist so far; the daemon arrives with its issue.
 */
#include <stdio.h>
#include <string.h>

#include "version.h"

static void
usage(FILE *f)
{
	fprintf(f, "usage: beacon [--help | --version]\n\n"
	    "beacon is the PharosVPN relay: client ingress and reverse tunnel to cox.\n"
	    "Its commands arrive in a later release.\n");
}

int
main(int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("beacon %s\n", PHAROS_VERSION);
		return 0;
	}
	usage(stderr);
	return 2;
}
