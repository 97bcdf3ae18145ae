/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging: one line per event, "LEVEL component: message key=value ...", to stderr.
 * Never log secrets. log_warn() appends ": strerror(errno)", log_warnx() does not.
 */
#ifndef PHAROS_LOG_H
#define PHAROS_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void	log_init(const char *prog, enum log_level min);
void	log_set_level(enum log_level);
void	log_msg(enum log_level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs and exits 1: only at start-up or on a broken internal invariant. */
void	fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
