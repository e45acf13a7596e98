/*
 * ui.c - serves the web console (/ui/) from the files compiled into the
 * gateway (ui_assets.h).
 *
 * The files are public (the console asks for an API key and sends it with
 * each API call; nothing here needs one). Every answer carries a strict
 * Content-Security-Policy: scripts, styles, images and API calls only from
 * the gateway itself, no inline script or style, no framing, so even a
 * job's error text that slipped into the page as HTML could run nothing.
 */
#include <string.h>

#include "gw.h"
#include "ui_assets.h"

#define UI_SECURITY_HEADERS                                                                    \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self';"      \
    " img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self';"              \
    " frame-ancestors 'none'\r\n"                                                            \
    "X-Content-Type-Options: nosniff\r\n"                                                    \
    "X-Frame-Options: DENY\r\n"                                                              \
    "Referrer-Policy: no-referrer\r\n"                                                       \
    "Cache-Control: no-cache\r\n"

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {{".html", "text/html; charset=utf-8"},
                 {".js", "text/javascript; charset=utf-8"},
                 {".css", "text/css; charset=utf-8"},
                 {".svg", "image/svg+xml"},
                 {".ico", "image/x-icon"}};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static void serve(yard_http_req_t *req, const char *name, size_t len)
{
    for (size_t i = 0; i < gw_ui_assets_count; i++) {
        const gw_ui_asset_t *a = &gw_ui_assets[i];
        if (strlen(a->name) == len && memcmp(a->name, name, len) == 0) {
            yard_http_respond(req, 200, content_type(a->name), UI_SECURITY_HEADERS, a->data,
                              a->len);
            return;
        }
    }
    yard_http_respond_error(req, 404, "not_found", "no such file in the console");
}

static void ui_index(yard_http_req_t *req, void *ud)
{
    serve(req, "index.html", strlen("index.html"));
}

static void ui_file(yard_http_req_t *req, void *ud)
{
    size_t len = 0;
    const char *name = yard_http_req_param(req, "file", &len);
    serve(req, name, len);
}

static void ui_redirect(yard_http_req_t *req, void *ud)
{
    yard_http_respond(req, 308, "text/plain", "Location: /ui/\r\n", "/ui/\n", 5);
}

int gw_ui_routes(gw_t *gw)
{
    int rc = yard_http_router_add(gw->router, "GET", "/ui", ui_redirect, gw);
    if (rc == 0)
        rc = yard_http_router_add(gw->router, "GET", "/ui/", ui_index, gw);
    if (rc == 0)
        rc = yard_http_router_add(gw->router, "GET", "/ui/{file}", ui_file, gw);
    return rc;
}
