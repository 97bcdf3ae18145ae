/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Errors: functions return 0 on success and a negative ERR_* code on failure; the human
 * detail goes to a per-thread side channel (err_set / err_last), libgit2-style. A wrapper
 * around a library translates that library's error once and never overwrites a lower
 * layer's message with a vaguer one.
 */
#ifndef PHAROS_ERR_H
#define PHAROS_ERR_H

enum {
	ERR_OK = 0,
	ERR_SYS = -1,		/* a system call failed; the message carries errno text */
	ERR_INVAL = -2,		/* bad input or usage */
	ERR_NOMEM = -3,
	ERR_NOTFOUND = -4,
	ERR_TOOBIG = -5,
	ERR_LIB = -6,		/* a library (libgit2, libyaml, ...) failed */
};

void err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* err_set() with ": strerror(errno)" appended. */
void err_setsys(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last message set on this thread, or "unknown error"; never NULL. */
const char *err_last(void);
void err_clear(void);

#endif
