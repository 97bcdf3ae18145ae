/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static const char *log_prog = "pharos";
static enum log_level log_min = LOG_INFO;

void
log_init(const char *prog, enum log_level min)
{
	log_prog = prog;
	log_min = min;
}

void
log_set_level(enum log_level l)
{
	log_min = l;
}

static void
vlog(enum log_level l, const char *fmt, va_list ap, const char *suffix)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	char line[2048];
	struct timespec ts;
	struct tm tm;
	int n;

	if (l < log_min)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    ts.tv_nsec / 1000000, log_prog, names[l]);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	/* One write per line, so lines from threads or processes do not interleave. */
	fprintf(stderr, "%s%s%s\n", line, suffix ? ": " : "", suffix ? suffix : "");
}

void
log_msg(enum log_level l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(l, fmt, ap, NULL);
	va_end(ap);
}

#define LOGFN(name, level) \
	void name(const char *fmt, ...) { \
		va_list ap; \
		va_start(ap, fmt); \
		vlog(level, fmt, ap, NULL); \
		va_end(ap); \
	}
LOGFN(log_debug, LOG_DEBUG)
LOGFN(log_info, LOG_INFO)
LOGFN(log_warnx, LOG_WARN)

void
log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_WARN, fmt, ap, strerror(saved));
	va_end(ap);
	errno = saved;
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_ERROR, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
