/*
 * http_router.c - a segment trie of routes.
 *
 * Each node stands for one path segment: literal children in a list and at
 * most one {param} child. Routes hang on the node where their pattern ends,
 * one per method, and name their parameters by depth, so two patterns may
 * share a {param} node under different names. Matching walks the request
 * path's segments once, literal branch first, and backtracks into the
 * {param} branch only when the literal one has no route; each node is
 * visited at most once per request.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "http_internal.h"
#include "http_router.h"

typedef struct {
    const char *name; /* in the route's pattern copy */
    uint32_t name_len;
    uint8_t depth;
} route_param_t;

typedef struct route {
    struct route *next;
    yard_http_handler_fn handler;
    void *ud;
    char *pattern;
    uint8_t method;
    uint8_t nparams;
    route_param_t params[HTTP_MAX_PARAMS];
} route_t;

typedef struct node {
    struct node *sibling;
    struct node *children; /* literal segments */
    struct node *param;    /* the {name} child */
    route_t *routes;
    size_t seg_len;
    char seg[]; /* the literal segment (empty for a {param} node) */
} node_t;

struct yard_http_router {
    node_t *root;
};

typedef struct {
    const char *at;
    size_t len;
} seg_t;

static int method_parse(const char *m)
{
#define XX(num, name, string)                                                                     \
    if (strcmp(m, #string) == 0)                                                                  \
        return num;
    HTTP_METHOD_MAP(XX)
#undef XX
    return -1;
}

/* Splits path (starting with '/') into segments. Returns their number, or
 * -1 when there are more than max. */
static int path_split(const char *path, size_t len, seg_t *segs, int max)
{
    int n = 0;
    size_t i = 1, start = 1;

    for (;; i++) {
        if (i == len || path[i] == '/') {
            if (n == max)
                return -1;
            segs[n].at = path + start;
            segs[n].len = i - start;
            n++;
            start = i + 1;
            if (i == len)
                return n;
        }
    }
}

static int seg_is_param(const seg_t *s)
{
    return s->len >= 2 && s->at[0] == '{' && s->at[s->len - 1] == '}';
}

static node_t *node_new(const char *seg, size_t len)
{
    node_t *n = calloc(1, sizeof *n + len + 1);
    if (n) {
        memcpy(n->seg, seg, len);
        n->seg_len = len;
    }
    return n;
}

static void node_free(node_t *n)
{
    while (n) {
        node_t *next = n->sibling;
        node_free(n->children);
        node_free(n->param);
        for (route_t *r = n->routes, *rn; r; r = rn) {
            rn = r->next;
            free(r->pattern);
            free(r);
        }
        free(n);
        n = next;
    }
}

int yard_http_router_create(yard_http_router_t **out)
{
    yard_http_router_t *r = calloc(1, sizeof *r);

    if (!r)
        return YARD_ENOMEM;
    r->root = node_new("", 0);
    if (!r->root) {
        free(r);
        return YARD_ENOMEM;
    }
    *out = r;
    return 0;
}

void yard_http_router_destroy(yard_http_router_t *router)
{
    if (!router)
        return;
    node_free(router->root);
    free(router);
}

/* Checks pattern and fills route's parameters (names point into route's
 * pattern copy). Returns the number of segments or YARD_EINVAL. */
static int pattern_check(route_t *route, seg_t *segs)
{
    int n = path_split(route->pattern, strlen(route->pattern), segs, YARD_HTTP_ROUTER_MAX_DEPTH);

    if (n < 0)
        return YARD_EINVAL;
    for (int i = 0; i < n; i++) {
        const seg_t *s = &segs[i];
        if (!seg_is_param(s)) {
            if (memchr(s->at, '{', s->len) || memchr(s->at, '}', s->len))
                return YARD_EINVAL;
            continue;
        }
        const char *name = s->at + 1;
        size_t nl = s->len - 2;
        if (!nl || route->nparams == HTTP_MAX_PARAMS)
            return YARD_EINVAL;
        for (size_t k = 0; k < nl; k++) {
            char ch = name[k];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_'))
                return YARD_EINVAL;
        }
        for (unsigned k = 0; k < route->nparams; k++)
            if (route->params[k].name_len == nl && memcmp(route->params[k].name, name, nl) == 0)
                return YARD_EINVAL;
        route->params[route->nparams++] =
            (route_param_t){.name = name, .name_len = (uint32_t)nl, .depth = (uint8_t)i};
    }
    return n;
}

/* The child of n for segment s, created when create is set; NULL if absent
 * or out of memory. */
static node_t *node_child(node_t *n, const seg_t *s, int create)
{
    if (seg_is_param(s)) {
        if (!n->param && create)
            n->param = node_new("", 0);
        return n->param;
    }
    for (node_t *c = n->children; c; c = c->sibling)
        if (c->seg_len == s->len && memcmp(c->seg, s->at, s->len) == 0)
            return c;
    if (!create)
        return NULL;
    node_t *c = node_new(s->at, s->len);
    if (c) {
        c->sibling = n->children;
        n->children = c;
    }
    return c;
}

int yard_http_router_add(yard_http_router_t *router, const char *method, const char *pattern,
                         yard_http_handler_fn handler, void *ud)
{
    seg_t segs[YARD_HTTP_ROUTER_MAX_DEPTH];
    route_t *route = NULL;
    node_t *n;
    int m, nsegs, rc = 0;

    if (!router || !method || !pattern || pattern[0] != '/' || !handler)
        return YARD_EINVAL;
    m = method_parse(method);
    if (m < 0)
        return YARD_EINVAL;
    route = calloc(1, sizeof *route);
    if (!route || !(route->pattern = strdup(pattern))) {
        rc = YARD_ENOMEM;
        goto fail;
    }
    route->method = (uint8_t)m;
    route->handler = handler;
    route->ud = ud;
    nsegs = pattern_check(route, segs);
    if (nsegs < 0) {
        rc = nsegs;
        goto fail;
    }
    /* Look first, so a refused route leaves no empty nodes behind. */
    n = router->root;
    for (int i = 0; i < nsegs && n; i++)
        n = node_child(n, &segs[i], 0);
    for (const route_t *r = n ? n->routes : NULL; r; r = r->next) {
        if (r->method == m) {
            rc = YARD_EEXIST;
            goto fail;
        }
    }
    n = router->root;
    for (int i = 0; i < nsegs && n; i++)
        n = node_child(n, &segs[i], 1);
    if (!n) {
        rc = YARD_ENOMEM; /* nodes made so far stay: empty, harmless */
        goto fail;
    }
    route->next = n->routes;
    n->routes = route;
    return 0;
fail:
    if (route)
        free(route->pattern);
    free(route);
    return rc;
}

/* The route of n for method (HEAD falls back to GET); NULL if none. */
static const route_t *node_route(const node_t *n, int method)
{
    const route_t *get = NULL;

    for (const route_t *r = n->routes; r; r = r->next) {
        if (r->method == method)
            return r;
        if (r->method == HTTP_GET)
            get = r;
    }
    return method == HTTP_HEAD ? get : NULL;
}

/* Finds the route for segs[depth..] below n. When none has the method,
 * *allow collects the methods of every route whose path matched. */
static const route_t *node_match(const node_t *n, const seg_t *segs, int nsegs, int depth,
                                 int method, uint64_t *allow)
{
    const route_t *r;

    if (depth == nsegs) {
        r = node_route(n, method);
        if (!r)
            for (const route_t *x = n->routes; x; x = x->next)
                *allow |= 1ull << x->method;
        return r;
    }
    const seg_t *s = &segs[depth];
    for (const node_t *c = n->children; c; c = c->sibling) {
        if (c->seg_len == s->len && memcmp(c->seg, s->at, s->len) == 0) {
            r = node_match(c, segs, nsegs, depth + 1, method, allow);
            if (r)
                return r;
            break;
        }
    }
    if (n->param && s->len)
        return node_match(n->param, segs, nsegs, depth + 1, method, allow);
    return NULL;
}

/* Answers 405 with the Allow header built from the method mask. */
static void respond_not_allowed(yard_http_req_t *req, uint64_t allow)
{
    char hdr[512] = "Allow: ";
    size_t len = 7;

    if (allow & (1ull << HTTP_GET))
        allow |= 1ull << HTTP_HEAD;
    for (int m = 0; m < 64; m++) {
        if (!(allow & (1ull << m)))
            continue;
        const char *name = http_method_str((enum http_method)m);
        size_t nl = strlen(name);
        if (len + nl + 5 > sizeof hdr)
            break;
        if (len > 7) {
            memcpy(hdr + len, ", ", 2);
            len += 2;
        }
        memcpy(hdr + len, name, nl);
        len += nl;
    }
    memcpy(hdr + len, "\r\n", 3);
    yard_http_respond_error_headers(req, 405, "method_not_allowed",
                                    "this method is not allowed on this path", hdr);
}

void yard_http_router_handle(yard_http_req_t *req, void *ud)
{
    const yard_http_router_t *router = ud;
    seg_t segs[YARD_HTTP_ROUTER_MAX_DEPTH];
    uint64_t allow = 0;
    const route_t *r = NULL;
    size_t len;
    const char *path = yard_http_req_path(req, &len);
    int nsegs = -1;

    if (len && path[0] == '/' && req->has_method)
        nsegs = path_split(path, len, segs, YARD_HTTP_ROUTER_MAX_DEPTH);
    if (nsegs >= 0)
        r = node_match(router->root, segs, nsegs, 0, req->method, &allow);
    if (!r) {
        if (allow)
            respond_not_allowed(req, allow);
        else
            yard_http_respond_error(req, 404, "not_found", "no route for this path");
        return;
    }
    req->route = r->pattern;
    req->nparams = r->nparams;
    for (unsigned i = 0; i < r->nparams; i++) {
        const route_param_t *p = &r->params[i];
        req->params[i] = (http_param_t){.name = p->name,
                                        .name_len = p->name_len,
                                        .off = (uint32_t)(segs[p->depth].at - req->arena),
                                        .len = (uint32_t)segs[p->depth].len};
    }
    r->handler(req, r->ud);
}
