/*
 * http_router.h - routes HTTP requests by method and path.
 *
 * Patterns are paths whose segments are literal text or {name}, which
 * matches exactly one non-empty segment (raw, not percent-decoded) that the
 * handler reads with yard_http_req_param(req, "name", &len):
 *
 *   yard_http_router_add(r, "POST", "/v1/jobs", submit, gw);
 *   yard_http_router_add(r, "GET", "/v1/jobs/{id}", get_job, gw);
 *
 * Rules:
 * - Literal segments win over {name} at the same place; when the literal
 *   branch has no route for the request, {name} is tried.
 * - A trailing slash is significant: "/v1/jobs/" is neither "/v1/jobs" nor
 *   "/v1/jobs/{id}" (no redirect, 404). Empty segments ("//") only match
 *   patterns with the same empty segments.
 * - No path match -> 404 not_found; path matches with other methods only ->
 *   405 method_not_allowed with `Allow`. HEAD uses the GET route when there
 *   is no HEAD route (the server sends no body for HEAD).
 * - The query string plays no part in matching.
 *
 * Any module may add routes (workflows, schedules, ...) before serving or
 * later on the loop thread. Patterns are copied; the router must outlive
 * the server it serves.
 */
#ifndef YARD_HTTP_ROUTER_H
#define YARD_HTTP_ROUTER_H

#include "http_server.h"

#define YARD_HTTP_ROUTER_MAX_DEPTH 32 /* segments in a pattern */

typedef struct yard_http_router yard_http_router_t;

/* Creates an empty router. Returns 0 and sets *out (free with
 * yard_http_router_destroy), or YARD_ENOMEM. */
int yard_http_router_create(yard_http_router_t **out);

/* Adds a route: method is an HTTP method name ("GET"), pattern as above.
 * Returns 0; YARD_EINVAL for an unknown method, a pattern that does not
 * start with '/', a malformed or repeated {name}, more than 8 {name}s or
 * YARD_HTTP_ROUTER_MAX_DEPTH segments; YARD_EEXIST when the same method and
 * pattern shape is taken; YARD_ENOMEM. On error the router is unchanged. */
int yard_http_router_add(yard_http_router_t *router, const char *method, const char *pattern,
                         yard_http_handler_fn handler, void *ud);

/* A yard_http_handler_fn: pass it with the router as ud in the server's
 * options. Calls the matching route's handler with the route and its
 * parameters bound, or answers 404 / 405 itself. */
void yard_http_router_handle(yard_http_req_t *req, void *router);

/* Frees the router and its routes. NULL is a no-op. */
void yard_http_router_destroy(yard_http_router_t *router);

#endif
