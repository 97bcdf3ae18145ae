/* SPDX-License-Identifier: Apache-2.0 */
/* cox ssh-key: the controller's SSH public key, for nodes' authorized_keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cox.h"
#include "err.h"
#include "state.h"
#include "version.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: cox ssh-key DIR\n\n"
	    "Print the controller's SSH public key (Ed25519, made by cox init) in\n"
	    "authorized_keys form. The private half stays in DIR/state.db.\n");
}

int
cmd_ssh_key(int argc, char **argv)
{
	struct state *st = NULL;
	uint8_t *pub = NULL;
	size_t len = 0;
	int rc;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return COX_OK;
	}
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("cox %s\n", PHAROS_VERSION);
		return COX_OK;
	}
	if (argc != 2 || argv[1][0] == '-') {
		usage(stderr);
		return COX_USAGE;
	}
	if (state_open(&st, argv[1], STATE_READONLY) != 0) {
		fprintf(stderr, "cox ssh-key: %s\n", err_last());
		return COX_FAIL;
	}
	if ((rc = state_secret_get(st, "ssh.pub", &pub, &len)) != 0) {
		fprintf(stderr, "cox ssh-key: %s\n", rc == 1 ?
		    "no SSH key in state.db (was this state directory made by cox init?)" :
		    err_last());
		state_close(st);
		return COX_FAIL;
	}
	fwrite(pub, 1, len, stdout);
	if (len > 0 && pub[len - 1] != '\n')
		putchar('\n');
	free(pub);
	state_close(st);
	fflush(stdout);
	return ferror(stdout) ? COX_FAIL : COX_OK;
}
