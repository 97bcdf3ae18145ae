/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin UI's files (webui/), embedded into cox at build time by scripts/embed-webui:
 * no CDN, no files read at run time.
 */
#ifndef PHAROS_WEBUI_H
#define PHAROS_WEBUI_H

#include <stddef.h>

struct webui_asset {
	const char		*name;		/* "index.html", "app.js" */
	const char		*mime;
	const unsigned char	*data;
	size_t			 len;
};

/* The file called name (relative to webui/), or NULL. */
const struct webui_asset *webui_find(const char *name);

#endif
