/*
 * jobs_list.c - GET /v1/jobs (a page of the job list), GET
 * /v1/jobs/{id}/attempts and GET /v1/whoami (who the caller's key is, so the
 * console shows only the buttons its scopes allow).
 *
 * The query string is parsed and checked on the loop (bad filters get a 400
 * naming the parameter); the reads run on the pool through libyard's
 * jobs_list.h, the same code yardctl can use. A key sees only the jobs it
 * submitted, unless it has the admin scope.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "gw.h"
#include "jobs_list.h"
#include "log.h"

#define QUERY_VALUE_MAX 256 /* decoded bytes of one parameter's value */

/* The list's parameters, decoded; one buffer each. */
enum { P_STATUS, P_QUEUE, P_TYPE, P_SINCE, P_UNTIL, P_ERROR, P_LIMIT, P_CURSOR, P_COUNT };
static const char *const param_names[P_COUNT] = {"status", "queue", "type",  "since",
                                                 "until",  "error", "limit", "cursor"};

typedef struct {
    gw_t *gw;
    yard_http_req_t *req;
    char owner[GW_AUTH_ID_MAX + 1]; /* "" = any key (admin or auth off) */
    char id[YARD_ID_TEXT_LEN + 1];
    char values[P_COUNT][QUERY_VALUE_MAX + 1];
    int present[P_COUNT];
    yard_jobs_filter_t filter;
    int rc;     /* what the read returned */
    char *body; /* the answer's JSON (malloc'd) */
} list_task_t;

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes len bytes of application/x-www-form-urlencoded text into out
 * (cap bytes with the NUL). Returns 0, or -1 for a bad escape, a NUL byte or
 * a value that does not fit. */
static int url_decode(char *out, size_t cap, const char *s, size_t len)
{
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0 || w + 1 >= cap)
            return -1;
        out[w++] = (char)c;
    }
    out[w] = '\0';
    return 0;
}

/* Splits the query string into t->values. Returns 0, or -1 with a message
 * for the client in why. An empty value means "no filter", so a form may
 * send every field. */
static int parse_query(list_task_t *t, const char *q, size_t qlen, char *why, size_t cap)
{
    size_t i = 0;
    while (q && i < qlen) {
        size_t end = i;
        while (end < qlen && q[end] != '&')
            end++;
        const char *eq = memchr(q + i, '=', end - i);
        size_t klen = eq ? (size_t)(eq - (q + i)) : end - i;
        int p = -1;
        for (int k = 0; k < P_COUNT; k++)
            if (strlen(param_names[k]) == klen && memcmp(param_names[k], q + i, klen) == 0)
                p = k;
        if (end > i && p < 0) {
            snprintf(why, cap, "unknown query parameter `%.*s` (known: status, queue, type, "
                               "since, until, error, limit, cursor)",
                     (int)(klen > 40 ? 40 : klen), q + i);
            return -1;
        }
        if (p >= 0) {
            if (t->present[p]) {
                snprintf(why, cap, "%s: given more than once", param_names[p]);
                return -1;
            }
            const char *v = eq ? eq + 1 : q + end;
            if (url_decode(t->values[p], sizeof t->values[p], v, (size_t)(q + end - v)) < 0) {
                snprintf(why, cap, "%s: malformed or longer than %d bytes", param_names[p],
                         QUERY_VALUE_MAX);
                return -1;
            }
            t->present[p] = t->values[p][0] != '\0';
        }
        i = end + 1;
    }
    return 0;
}

/* Builds t->filter from the parsed values. Returns 0, or -1 with why. */
static int build_filter(list_task_t *t, char *why, size_t cap)
{
    yard_jobs_filter_t *f = &t->filter;
    const char **fields[P_COUNT] = {&f->status, &f->queue, &f->type,   &f->since,
                                    &f->until,  &f->error, NULL,       &f->cursor};
    for (int p = 0; p < P_COUNT; p++)
        if (fields[p] && t->present[p])
            *fields[p] = t->values[p];
    if (t->present[P_LIMIT]) {
        const char *v = t->values[P_LIMIT];
        size_t n = strlen(v);
        if (n > 4 || strspn(v, "0123456789") != n || atoi(v) < 1 ||
            atoi(v) > YARD_JOBS_LIST_MAX) {
            snprintf(why, cap, "limit: must be a whole number from 1 to %d",
                     YARD_JOBS_LIST_MAX);
            return -1;
        }
        f->limit = (size_t)atoi(v);
    }
    f->owner = t->owner[0] ? t->owner : NULL;
    return yard_jobs_filter_check(f, why, cap) < 0 ? -1 : 0;
}

/* Loop thread: answer from what the read found. */
static void list_done(void *ud)
{
    list_task_t *t = ud;
    if (t->rc == 0)
        yard_http_respond(t->req, 200, "application/json", NULL, t->body, strlen(t->body));
    else if (t->rc == YARD_ENOTFOUND)
        yard_http_respond_error(t->req, 404, "not_found", "no such job");
    else if (t->rc == YARD_EUNAVAIL || t->rc == YARD_ETIMEOUT || t->rc == YARD_EBUSY)
        gw_respond_unavailable(t->req, "PostgreSQL is unavailable; retry");
    else if (t->rc == YARD_EINVAL) /* checked on the loop already; kept for safety */
        yard_http_respond_error(t->req, 400, "bad_request", "invalid filter");
    else /* out of memory, or PostgreSQL refused the query (logged) */
        yard_http_respond_error(t->req, 500, "internal", "the jobs could not be read");
    free(t->body);
    free(t);
}

static void list_work(PGconn *conn, void *ud)
{
    list_task_t *t = ud;
    t->rc = conn ? yard_jobs_list(&t->body, conn, &t->filter) : YARD_EUNAVAIL;
    if (t->rc < 0)
        gw_pool_conn_check(conn);
}

static void attempts_work(PGconn *conn, void *ud)
{
    list_task_t *t = ud;
    t->rc = conn ? yard_jobs_attempts(&t->body, conn, t->id, t->owner[0] ? t->owner : NULL)
                 : YARD_EUNAVAIL;
    if (t->rc < 0 && t->rc != YARD_ENOTFOUND)
        gw_pool_conn_check(conn);
}

/* A task for an authenticated caller with the read scope, or NULL when the
 * request was answered already. */
static list_task_t *task_begin(gw_t *gw, yard_http_req_t *req)
{
    gw_principal_t who;
    if (gw_access(gw, req, YARD_SCOPE_READ, 1, &who) < 0)
        return NULL;
    list_task_t *t = calloc(1, sizeof *t);
    if (!t) {
        yard_http_respond_error(req, 500, "internal", "out of memory");
        return NULL;
    }
    t->gw = gw;
    t->req = req;
    if (!(who.scopes & YARD_SCOPE_ADMIN))
        snprintf(t->owner, sizeof t->owner, "%s", who.key_id);
    return t;
}

static void task_submit(list_task_t *t, gw_work_fn work)
{
    if (gw_pool_submit(t->gw->pool, work, list_done, t) < 0) {
        gw_respond_unavailable(t->req, "the gateway is overloaded; retry");
        free(t);
    }
}

static void list_jobs(yard_http_req_t *req, void *ud)
{
    char why[200];
    size_t qlen = 0;
    const char *q = yard_http_req_query(req, &qlen);
    list_task_t *t = task_begin(ud, req);
    if (!t)
        return;
    if (parse_query(t, q, qlen, why, sizeof why) < 0 || build_filter(t, why, sizeof why) < 0) {
        yard_http_respond_error(req, 400, "bad_request", why);
        free(t);
        return;
    }
    task_submit(t, list_work);
}

static void list_attempts(yard_http_req_t *req, void *ud)
{
    size_t len = 0;
    yard_id_t id;
    const char *text = yard_http_req_param(req, "id", &len);
    list_task_t *t = task_begin(ud, req);
    if (!t)
        return;
    if (yard_id_parse(&id, text, len) < 0) {
        yard_http_respond_error(req, 400, "bad_request", "a job id is a UUID");
        free(t);
        return;
    }
    yard_id_format(&id, t->id);
    task_submit(t, attempts_work);
}

/* GET /v1/whoami: the caller's key (any scope) or, with auth disabled, an
 * anonymous principal holding every scope. */
static void whoami(yard_http_req_t *req, void *ud)
{
    gw_t *gw = ud;
    gw_principal_t who;
    if (gw_access(gw, req, 0, 1, &who) < 0)
        return;
    json_t *scopes = json_array();
    if (who.scopes & YARD_SCOPE_ADMIN) /* admin implies the others */
        who.scopes = YARD_SCOPE_ALL;
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{YARD_SCOPE_SUBMIT, "submit"}, {YARD_SCOPE_READ, "read"},
                 {YARD_SCOPE_ADMIN, "admin"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (who.scopes & names[i].bit)
            json_array_append_new(scopes, json_string(names[i].name));
    json_t *doc = json_pack("{s:s?, s:s?, s:o, s:b}", "key_id",
                            who.key_id[0] ? who.key_id : NULL, "name",
                            who.name[0] ? who.name : NULL, "scopes", scopes, "auth_disabled",
                            gw->cfg.auth_disabled ? 1 : 0);
    if (!doc) {
        yard_http_respond_error(req, 500, "internal", "cannot encode the response");
        return;
    }
    gw_respond_json(req, 200, doc);
}

int gw_jobs_list_routes(gw_t *gw)
{
    int rc = yard_http_router_add(gw->router, "GET", "/v1/jobs", list_jobs, gw);
    if (rc == 0)
        rc = yard_http_router_add(gw->router, "GET", "/v1/jobs/{id}/attempts", list_attempts, gw);
    if (rc == 0)
        rc = yard_http_router_add(gw->router, "GET", "/v1/whoami", whoami, gw);
    return rc;
}
