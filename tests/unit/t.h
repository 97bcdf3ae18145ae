/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal test harness: each check prints "ok - name" or "not ok - name (file:line)",
 * which tests/run counts. T_DONE() returns the exit status.
 */
#ifndef PHAROS_T_H
#define PHAROS_T_H

#include <stdio.h>
#include <string.h>

static int t_failed;

#define T_OK(cond, ...) do { \
		char t_name_[256]; \
		snprintf(t_name_, sizeof(t_name_), __VA_ARGS__); \
		if (cond) { \
			printf("ok - %s\n", t_name_); \
		} else { \
			printf("not ok - %s (%s:%d: %s)\n", t_name_, __FILE__, __LINE__, #cond); \
			t_failed++; \
		} \
	} while (0)

#define T_STREQ(a, b, ...) do { \
		const char *t_a_ = (a), *t_b_ = (b); \
		T_OK(t_a_ != NULL && t_b_ != NULL && strcmp(t_a_, t_b_) == 0, __VA_ARGS__); \
		if (!(t_a_ != NULL && t_b_ != NULL && strcmp(t_a_, t_b_) == 0)) \
			printf("#   got '%s', want '%s'\n", t_a_ ? t_a_ : "(null)", \
			    t_b_ ? t_b_ : "(null)"); \
	} while (0)

#define T_DONE()	return t_failed ? 1 : 0

#endif
