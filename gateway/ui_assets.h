/*
 * ui_assets.h - the web console's files, compiled into the gateway.
 *
 * The table is generated at build time by gateway/ui/embed.sh from the files
 * in gateway/ui/ (see the Makefile); ui.c serves it under /ui/.
 */
#ifndef GW_UI_ASSETS_H
#define GW_UI_ASSETS_H

#include <stddef.h>

typedef struct {
    const char *name;          /* base name, e.g. "app.js" */
    const unsigned char *data; /* len bytes (followed by a NUL) */
    size_t len;
} gw_ui_asset_t;

extern const gw_ui_asset_t gw_ui_assets[];
extern const size_t gw_ui_assets_count;

#endif
