/*
 * test_http_router.c - routing by method and path.
 *
 * Requests go through the in-memory connection (the server's own protocol
 * code, no sockets) with the router as its handler; handlers record what
 * they saw and answer with the name of their route.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "http_router.h"
#include "http_server.h"
#include "log.h"

typedef struct {
    yard_http_router_t *router;
    yard_http_conn_t *conn;
    char route[64];   /* last handler's route pattern */
    char params[256]; /* "name=value;" for the names asked for */
    char query[128];
    int calls;
} rt_t;

static const char *const param_names[] = {"id", "wf", "step", "a", "rest", NULL};

/* Every route answers with its own name; records params and query. */
static void h_any(yard_http_req_t *req, void *ud)
{
    rt_t *t = ud;
    size_t n = 0, len;
    const char *q;

    t->calls++;
    snprintf(t->route, sizeof t->route, "%s", yard_http_req_route(req));
    t->params[0] = '\0';
    for (int i = 0; param_names[i]; i++) {
        const char *v = yard_http_req_param(req, param_names[i], &len);
        if (v)
            n += (size_t)snprintf(t->params + n, sizeof t->params - n, "%s=%.*s;", param_names[i],
                                  (int)(len > 100 ? 100 : len), v);
    }
    q = yard_http_req_query(req, &len);
    snprintf(t->query, sizeof t->query, "%s", q ? q : "(none)");
    yard_http_respond(req, 200, "text/plain", NULL, t->route, strlen(t->route));
}

static int setup(void **state)
{
    rt_t *t = calloc(1, sizeof *t);
    yard_http_options_t o = {0};
    static const char *const routes[][2] = {
        {"GET", "/v1/jobs"},
        {"POST", "/v1/jobs"},
        {"GET", "/v1/jobs/{id}"},
        {"DELETE", "/v1/jobs/{id}"},
        {"POST", "/v1/jobs/batch"},
        {"GET", "/v1/workflows/{wf}/steps/{step}"},
        {"GET", "/v1/queues/"},
        {"GET", "/"},
    };

    assert_int_equal(yard_http_router_create(&t->router), 0);
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        assert_int_equal(yard_http_router_add(t->router, routes[i][0], routes[i][1], h_any, t), 0);
    o.handler = yard_http_router_handle;
    o.handler_ud = t->router;
    assert_int_equal(yard_http_conn_create(&t->conn, &o), 0);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    rt_t *t = *state;
    yard_http_conn_destroy(t->conn);
    yard_http_router_destroy(t->router);
    free(t);
    return 0;
}

/* Sends one request; returns the status; *out (may be NULL) gets the
 * whole response (valid until the next call). */
static int ask(rt_t *t, const char *method, const char *target, const char **out)
{
    static char req[16384];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\n\r\n", method, target);

    t->calls = 0;
    t->route[0] = t->params[0] = '\0';
    yard_http_conn_clear_output(t->conn);
    assert_true(n > 0 && (size_t)n < sizeof req);
    assert_int_equal(yard_http_conn_feed(t->conn, req, (size_t)n), 0);
    const char *o = yard_http_conn_output(t->conn, NULL);
    if (out)
        *out = o;
    return strncmp(o, "HTTP/1.1 ", 9) == 0 ? atoi(o + 9) : -1;
}

static void test_match_and_params(void **state)
{
    rt_t *t = *state;

    assert_int_equal(ask(t, "GET", "/v1/jobs", NULL), 200);
    assert_string_equal(t->route, "/v1/jobs");
    assert_string_equal(t->params, "");

    assert_int_equal(ask(t, "GET", "/v1/jobs/01HZX3", NULL), 200);
    assert_string_equal(t->route, "/v1/jobs/{id}");
    assert_string_equal(t->params, "id=01HZX3;");
    assert_int_equal(ask(t, "DELETE", "/v1/jobs/abc", NULL), 200);
    assert_string_equal(t->route, "/v1/jobs/{id}");

    assert_int_equal(ask(t, "GET", "/v1/workflows/w1/steps/s-2", NULL), 200);
    assert_string_equal(t->route, "/v1/workflows/{wf}/steps/{step}");
    assert_string_equal(t->params, "wf=w1;step=s-2;");

    /* Raw values: no percent-decoding, a %2F stays inside the segment. */
    assert_int_equal(ask(t, "GET", "/v1/jobs/a%2Fb", NULL), 200);
    assert_string_equal(t->params, "id=a%2Fb;");

    /* The query string is split off and plays no part in matching. */
    assert_int_equal(ask(t, "GET", "/v1/jobs/7?expand=result&x=1", NULL), 200);
    assert_string_equal(t->params, "id=7;");
    assert_string_equal(t->query, "expand=result&x=1");
    assert_int_equal(ask(t, "GET", "/v1/jobs?", NULL), 200);
    assert_string_equal(t->query, "");
    assert_int_equal(ask(t, "GET", "/", NULL), 200);
    assert_string_equal(t->route, "/");
    assert_string_equal(t->query, "(none)");
}

static void test_literal_before_param(void **state)
{
    rt_t *t = *state;
    const char *out;

    /* POST /v1/jobs/batch is literal; GET on the same path falls back to
     * {id}, since the literal branch has no GET. */
    yard_http_conn_clear_output(t->conn);
    const char *batch = "POST /v1/jobs/batch HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]";
    assert_int_equal(yard_http_conn_feed(t->conn, batch, strlen(batch)), 0);
    assert_string_equal(t->route, "/v1/jobs/batch");
    assert_int_equal(ask(t, "GET", "/v1/jobs/batch", NULL), 200);
    assert_string_equal(t->route, "/v1/jobs/{id}");
    assert_string_equal(t->params, "id=batch;");
    /* No PUT anywhere on that path: 405 naming the methods of both routes. */
    yard_http_conn_clear_output(t->conn);
    const char *put = "PUT /v1/jobs/batch HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    yard_http_conn_feed(t->conn, put, strlen(put));
    out = yard_http_conn_output(t->conn, NULL);
    assert_true(strncmp(out, "HTTP/1.1 405 ", 13) == 0);
    assert_non_null(strstr(out, "\r\nAllow: DELETE, GET, HEAD, POST\r\n"));
}

static void test_not_found_and_not_allowed(void **state)
{
    rt_t *t = *state;
    const char *out;

    assert_int_equal(ask(t, "GET", "/v2/jobs", &out), 404);
    assert_int_equal(t->calls, 0);
    assert_non_null(strstr(out, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(out, "{\"error\":{\"code\":\"not_found\",\"message\":\"no route for "
                                "this path\",\"request_id\":\""));
    assert_int_equal(ask(t, "GET", "/v1/jobs/1/extra", NULL), 404);
    assert_int_equal(ask(t, "GET", "*", NULL), 404);
    assert_int_equal(ask(t, "GET", "http://example.com/v1/jobs", NULL), 404); /* absolute form */

    assert_int_equal(ask(t, "OPTIONS", "/v1/jobs/1", &out), 405);
    assert_non_null(strstr(out, "\r\nAllow: DELETE, GET, HEAD\r\n"));
    assert_non_null(strstr(out, "\"code\":\"method_not_allowed\""));
    assert_int_equal(ask(t, "DELETE", "/v1/jobs", &out), 405);
    assert_non_null(strstr(out, "\r\nAllow: GET, HEAD, POST\r\n"));
    /* Neither closes the connection. */
    assert_false(yard_http_conn_closed(t->conn));
}

static void test_head_uses_get(void **state)
{
    rt_t *t = *state;
    const char *out;

    assert_int_equal(ask(t, "HEAD", "/v1/jobs/9", &out), 200);
    assert_string_equal(t->route, "/v1/jobs/{id}");
    assert_non_null(strstr(out, "Content-Length: 13\r\n")); /* "/v1/jobs/{id}" */
    assert_non_null(strstr(out, "\r\n\r\n"));
    assert_string_equal(strstr(out, "\r\n\r\n"), "\r\n\r\n"); /* no body */
}

static void test_trailing_slash(void **state)
{
    rt_t *t = *state;

    /* Significant: "/v1/jobs/" is not "/v1/jobs", and {id} needs a segment. */
    assert_int_equal(ask(t, "GET", "/v1/jobs/", NULL), 404);
    assert_int_equal(ask(t, "GET", "/v1/queues/", NULL), 200);
    assert_string_equal(t->route, "/v1/queues/");
    assert_int_equal(ask(t, "GET", "/v1/queues", NULL), 404);
    assert_int_equal(ask(t, "GET", "//v1/jobs", NULL), 404);
    assert_int_equal(ask(t, "GET", "/v1//jobs", NULL), 404);
    assert_int_equal(ask(t, "GET", "/v1/workflows//steps/s", NULL), 404);
}

static void test_overlong_paths(void **state)
{
    rt_t *t = *state;
    static char path[12000];
    size_t n = 0;

    /* A 7000-byte id is one segment. */
    n = (size_t)sprintf(path, "/v1/jobs/");
    memset(path + n, 'x', 7000);
    path[n + 7000] = '\0';
    assert_int_equal(ask(t, "GET", path, NULL), 200);
    assert_string_equal(t->route, "/v1/jobs/{id}");
    assert_int_equal(strlen(t->params), strlen("id=;") + 100); /* recorded up to 100 */

    /* More segments than any pattern may have: 404, not a crash. */
    n = 0;
    for (int i = 0; i < 2000; i++)
        n += (size_t)sprintf(path + n, "/a");
    assert_int_equal(ask(t, "GET", path, NULL), 404);
    /* Longer than the head limit: the server refuses it before routing. */
    n = (size_t)sprintf(path, "/v1/jobs/");
    memset(path + n, 'y', 9000);
    path[n + 9000] = '\0';
    assert_int_equal(ask(t, "GET", path, NULL), 414);
}

static void test_add_rules(void **state)
{
    yard_http_router_t *r;
    char deep[256];
    size_t n = 0;

    assert_int_equal(yard_http_router_create(&r), 0);
    assert_int_equal(yard_http_router_add(r, "GET", "/x/{id}", h_any, NULL), 0);
    assert_int_equal(yard_http_router_add(r, "GET", "/x/{other}", h_any, NULL), YARD_EEXIST);
    assert_int_equal(yard_http_router_add(r, "GET", "/x/{id}", h_any, NULL), YARD_EEXIST);
    assert_int_equal(yard_http_router_add(r, "PUT", "/x/{other}", h_any, NULL), 0);
    assert_int_equal(yard_http_router_add(r, "FETCH", "/x", h_any, NULL), YARD_EINVAL);
    assert_int_equal(yard_http_router_add(r, "get", "/x", h_any, NULL), YARD_EINVAL);
    assert_int_equal(yard_http_router_add(r, "GET", "x", h_any, NULL), YARD_EINVAL);
    assert_int_equal(yard_http_router_add(r, "GET", "", h_any, NULL), YARD_EINVAL);
    assert_int_equal(yard_http_router_add(r, "GET", "/{}", h_any, NULL), YARD_EINVAL);
    assert_int_equal(yard_http_router_add(r, "GET", "/{a-b}", h_any, NULL), YARD_EINVAL);
    assert_int_equal(yard_http_router_add(r, "GET", "/x{a}", h_any, NULL), YARD_EINVAL);
    assert_int_equal(yard_http_router_add(r, "GET", "/{a}/{a}", h_any, NULL), YARD_EINVAL);
    assert_int_equal(yard_http_router_add(r, "GET", "/x", NULL, NULL), YARD_EINVAL);
    assert_int_equal(
        yard_http_router_add(r, "GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", h_any, NULL),
        YARD_EINVAL);
    assert_int_equal(
        yard_http_router_add(r, "GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}", h_any, NULL), 0);
    for (int i = 0; i < YARD_HTTP_ROUTER_MAX_DEPTH; i++)
        n += (size_t)sprintf(deep + n, "/d");
    assert_int_equal(yard_http_router_add(r, "GET", deep, h_any, NULL), 0);
    sprintf(deep + n, "/d");
    assert_int_equal(yard_http_router_add(r, "GET", deep, h_any, NULL), YARD_EINVAL);
    yard_http_router_destroy(r);
    yard_http_router_destroy(NULL);
}

static void test_routes_added_later(void **state)
{
    rt_t *t = *state;

    assert_int_equal(ask(t, "GET", "/v1/schedules/nightly", NULL), 404);
    /* Another module adds its routes without touching the others. */
    assert_int_equal(yard_http_router_add(t->router, "GET", "/v1/schedules/{id}", h_any, t), 0);
    assert_int_equal(ask(t, "GET", "/v1/schedules/nightly", NULL), 200);
    assert_string_equal(t->params, "id=nightly;");
    assert_int_equal(ask(t, "GET", "/v1/jobs/1", NULL), 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_match_and_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_literal_before_param, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_not_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_uses_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trailing_slash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlong_paths, setup, teardown),
        cmocka_unit_test(test_add_rules),
        cmocka_unit_test_setup_teardown(test_routes_added_later, setup, teardown),
    };
    yard_log_init("test", YARD_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
