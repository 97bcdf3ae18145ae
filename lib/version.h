/* SPDX-License-Identifier: Apache-2.0 */
#ifndef PHAROS_VERSION_H
#define PHAROS_VERSION_H

/* Set by the Makefile from `git describe`; this is the fallback for a tarball build. */
#ifndef PHAROS_VERSION
#define PHAROS_VERSION "0.1.0-dev"
#endif

#endif
