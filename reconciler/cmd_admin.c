/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cox admin passwd: set the passphrase an admin signs in to the admin UI with
 * (docs/DESIGN.md §10). The passphrase is read without echo from the terminal, or as one
 * line from standard input when that is not a terminal (scripts, tests), into locked
 * memory, and wiped after use.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "auth.h"
#include "cliutil.h"
#include "cox.h"
#include "err.h"
#include "fleet.h"
#include "source.h"
#include "state.h"

#define PASS_BUF	(AUTH_PASS_MAX + 2)	/* room to notice one byte too many, + NUL */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: cox admin passwd DIR NAME\n\n"
	    "passwd  set the passphrase admin NAME signs in to the admin UI with. NAME must be\n"
	    "        a user with role admin, not disabled, at the head of the applied branch of\n"
	    "        DIR/fleet.git. The passphrase is read twice from the terminal without echo,\n"
	    "        or once, as one line, from standard input when that is not a terminal.\n"
	    "        At least %d characters. Only its Argon2id hash is kept, in DIR/state.db\n"
	    "        (never in git); NAME's open sessions end; the audit log records the change\n"
	    "        (not the passphrase).\n\n"
	    "Exit status: 0 done, 1 failed (not an admin, passphrases differ, too short),\n"
	    "2 usage error.\n", AUTH_PASS_MIN);
}

/* The terminal state to put back, also from a signal handler (Ctrl-C at the prompt). */
static struct termios saved_tio;
static volatile sig_atomic_t tio_saved;

static void
restore_tty(int sig)
{
	if (tio_saved)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * One line from fd into buf (no newline, NUL-terminated), a byte at a time so no stdio
 * buffer keeps a copy. 0 ok, 1 end of input before any byte, ERR_TOOBIG over bufsz - 2
 * bytes (the rest of the line is left unread), ERR_SYS.
 */
static int
read_line(int fd, char *buf, size_t bufsz, size_t *len)
{
	size_t n = 0;
	ssize_t r;
	char c = 0;
	int rc = 0;

	for (;;) {
		r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err_setsys("reading the passphrase");
			rc = ERR_SYS;
			break;
		}
		if (r == 0 || c == '\n') {
			rc = r == 0 && n == 0 ? 1 : 0;
			break;
		}
		if (n + 2 >= bufsz) {
			err_set("the passphrase is longer than %d bytes", AUTH_PASS_MAX);
			rc = ERR_TOOBIG;
			break;
		}
		buf[n++] = c;
	}
	sodium_memzero(&c, sizeof(c));
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	*len = n;
	return rc;
}

/* Prompt on standard error, read with echo off, put the terminal back. */
static int
read_tty(const char *prompt, char *buf, size_t bufsz, size_t *len)
{
	struct sigaction sa, old_int, old_term, old_hup, old_quit;
	struct termios tio;
	int rc;

	if (tcgetattr(STDIN_FILENO, &saved_tio) != 0) {
		err_setsys("reading the terminal's settings");
		return ERR_SYS;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = restore_tty;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGHUP, &sa, &old_hup);
	sigaction(SIGQUIT, &sa, &old_quit);
	tio = saved_tio;
	tio.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	tio.c_lflag |= ICANON;
	tio_saved = 1;
	/* echo off before the prompt: what is typed after it must not be flushed or shown */
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &tio) != 0) {
		err_setsys("turning the terminal's echo off");
		rc = ERR_SYS;
	} else {
		fputs(prompt, stderr);
		fflush(stderr);
		rc = read_line(STDIN_FILENO, buf, bufsz, len);
	}
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
	tio_saved = 0;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
	sigaction(SIGQUIT, &old_quit, NULL);
	fputc('\n', stderr);	/* the Enter the terminal did not echo */
	return rc;
}

/* Into *pass (sodium_malloc'd, the caller sodium_free()s): 0, or COX_FAIL after a message. */
static int
read_passphrase(const char *name, char **pass)
{
	char *again = NULL, prompt[128];
	size_t len = 0, len2 = 0;
	int rc;

	*pass = NULL;
	if ((*pass = sodium_malloc(PASS_BUF)) == NULL || (again = sodium_malloc(PASS_BUF)) == NULL) {
		fprintf(stderr, "cox admin passwd: out of memory\n");
		rc = ERR_NOMEM;
		goto out;
	}
	if (!isatty(STDIN_FILENO)) {
		if ((rc = read_line(STDIN_FILENO, *pass, PASS_BUF, &len)) == 1) {
			err_set("no passphrase on standard input");
			rc = ERR_INVAL;
		}
		goto out;
	}
	snprintf(prompt, sizeof(prompt), "New passphrase for %s: ", name);
	if ((rc = read_tty(prompt, *pass, PASS_BUF, &len)) < 0)
		goto out;
	if (rc == 1 || len == 0) {
		err_set("no passphrase given");
		rc = ERR_INVAL;
		goto out;
	}
	if ((rc = read_tty("Again: ", again, PASS_BUF, &len2)) < 0)
		goto out;
	if (rc == 1 || len != len2 || sodium_memcmp(*pass, again, len) != 0) {
		err_set("the passphrases differ; nothing changed");
		rc = ERR_INVAL;
	}
out:
	sodium_free(again);
	if (rc != 0) {
		if (rc != ERR_NOMEM)
			fprintf(stderr, "cox admin passwd: %s\n", err_last());
		sodium_free(*pass);
		*pass = NULL;
		return COX_FAIL;
	}
	return 0;
}

/* NAME an admin at the applied head? 0 yes; COX_FAIL after saying why not. */
static int
check_admin(struct state *st, const char *name)
{
	struct fleet *f = NULL;
	struct source *src = NULL;
	const struct user *u;
	int rc = COX_FAIL;

	if (cli_load_applied(&f, &src, st) != 0) {
		fprintf(stderr, "cox admin passwd: %s\n", err_last());
		return COX_FAIL;
	}
	if ((u = fleet_find_user(f, name)) == NULL)
		fprintf(stderr, "cox admin passwd: %s is not a user of the fleet (no users/%s.yaml "
		    "at %.12s, the head of the applied branch)\n", name, name,
		    source_revision(src));
	else if (!u->admin)
		fprintf(stderr, "cox admin passwd: %s is not an admin (role: %s at %.12s); only "
		    "admins sign in to the admin UI\n", name, u->role.v != NULL ? u->role.v :
		    "user", source_revision(src));
	else if (!auth_fleet_admin(f, name))
		fprintf(stderr, "cox admin passwd: %s is disabled (at %.12s)\n", name,
		    source_revision(src));
	else
		rc = 0;
	fleet_free(f);
	source_free(src);
	return rc;
}

static int
admin_passwd(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct state *st = NULL;
	char *pass = NULL, detail[256], user[128];
	const char *name;
	int ch, dropped = 0, rc = COX_FAIL;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'h': usage(stdout); return COX_OK;
		default: usage(stderr); return COX_USAGE;
		}
	}
	if (optind + 2 != argc) {
		fprintf(stderr, "cox admin passwd: DIR and NAME are required (and only those)\n");
		usage(stderr);
		return COX_USAGE;
	}
	name = argv[optind + 1];
	if (state_open(&st, argv[optind], 0) != 0) {
		fprintf(stderr, "cox admin passwd: %s\n", err_last());
		return COX_FAIL;
	}
	if (check_admin(st, name) != 0 || read_passphrase(name, &pass) != 0)
		goto out;
	if (state_begin(st) != 0 || auth_passwd_set(st, name, pass, &dropped) != 0)
		goto fail;
	snprintf(detail, sizeof(detail), "sessions_ended=%d user=%s", dropped,
	    cli_user(user, sizeof(user)));
	if (audit_append(st, "cox", "admin.passwd", name, detail) != 0 || state_commit(st) != 0)
		goto fail;
	printf("cox admin passwd: the passphrase of %s is set", name);
	if (dropped > 0)
		printf("; %d session%s ended", dropped, dropped == 1 ? "" : "s");
	printf("\n");
	rc = COX_OK;
	goto out;
fail:
	fprintf(stderr, "cox admin passwd: %s\n", err_last());
	state_rollback(st);
out:
	sodium_free(pass);	/* wipes */
	state_close(st);
	return rc;
}

int
cmd_admin(int argc, char **argv)
{
	static const struct cli_sub subs[] = {
		{ "passwd", admin_passwd },
		{ NULL, NULL },
	};

	return cli_dispatch("admin", argc, argv, subs, "passwd", usage);
}
