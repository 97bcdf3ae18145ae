/* SPDX-License-Identifier: Apache-2.0 */
/* Clocks, in the units the wire contract uses. */
#ifndef PHAROS_CLOCK_H
#define PHAROS_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Wall-clock time as Unix nanoseconds (for timestamps sent to the controller). */
static inline int64_t
clock_unix_nanos(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Monotonic nanoseconds (for durations). */
static inline int64_t
clock_mono_nanos(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
