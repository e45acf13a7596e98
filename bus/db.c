/*
 * db.c - libpq connections and statements, with errors converted to YARD_E*
 * codes and logged once, passwords kept out of the log. Every statement's
 * round trip and every failure is counted in the process's I/O statistics
 * (iostats.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "err.h"
#include "iostats.h"
#include "log.h"

#define DB_MSG_MAX 1024  /* room for one libpq error message in the log */
#define DB_SQL_SHOWN 80  /* bytes of a statement shown as its context */

/* Copies msg into buf (size cap) with every occurrence of secret replaced by
 * "***" and the trailing newline libpq adds removed. */
static void db_scrub(char *buf, size_t cap, const char *msg, const char *secret)
{
    size_t slen = secret ? strlen(secret) : 0;
    size_t len = 0;

    while (*msg && len + 1 < cap) {
        if (slen > 0 && strncmp(msg, secret, slen) == 0) {
            int w = snprintf(buf + len, cap - len, "***");
            len += (size_t)w < cap - len ? (size_t)w : cap - len - 1;
            msg += slen;
        } else {
            buf[len++] = *msg++;
        }
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
        len--;
    buf[len] = '\0';
}

/* Copies msg into buf with the text between double quotes replaced by
 * "***": libpq's DSN parse errors quote pieces of the DSN, which may be the
 * password. */
static void db_redact_quoted(char *buf, size_t cap, const char *msg)
{
    size_t len = 0;
    int quoted = 0;

    for (; *msg && len + 4 < cap; msg++) {
        if (*msg == '"') {
            buf[len++] = '"';
            if (!quoted) {
                memcpy(buf + len, "***", 3);
                len += 3;
            }
            quoted = !quoted;
        } else if (!quoted && *msg != '\n') {
            buf[len++] = *msg;
        }
    }
    buf[len] = '\0';
}

/* Sends server notices (NOTICE, WARNING) to the debug log: libpq would print
 * them on stderr, in the middle of the JSON lines. */
static void db_notice(void *arg, const char *message)
{
    char buf[DB_MSG_MAX];
    (void)arg;
    db_scrub(buf, sizeof buf, message, NULL);
    YARD_LOG_DEBUG(NULL, "postgres: %s", buf);
}

/* Monotonic seconds, to time statements. */
static double db_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The value of option key in a PQconninfoParse array, or NULL. */
static const char *db_option(const PQconninfoOption *opts, const char *key)
{
    for (; opts && opts->keyword; opts++)
        if (strcmp(opts->keyword, key) == 0)
            return opts->val;
    return NULL;
}

int yard_db_connect(PGconn **out, const char *dsn, int timeout_s)
{
    char msg[DB_MSG_MAX];
    char timeout[16];
    PQconninfoOption *opts = NULL;
    PGconn *conn = NULL;
    char *perr = NULL;
    int rc = 0;

    opts = PQconninfoParse(dsn ? dsn : "", &perr);
    if (!opts) {
        db_redact_quoted(msg, sizeof msg, perr ? perr : "out of memory");
        YARD_LOG_ERROR(NULL, "invalid PostgreSQL DSN (quoted parts hidden): %s", msg);
        rc = YARD_EINVAL;
        goto cleanup;
    }

    /* Later entries override earlier ones, so what the DSN says wins. */
    const char *keys[4] = {"fallback_application_name", NULL, NULL, NULL};
    const char *vals[4] = {program_invocation_short_name, NULL, NULL, NULL};
    int nk = 1;
    if (timeout_s > 0) {
        snprintf(timeout, sizeof timeout, "%d", timeout_s);
        keys[nk] = "connect_timeout";
        vals[nk++] = timeout;
    }
    keys[nk] = "dbname";
    vals[nk] = dsn;
    conn = PQconnectdbParams(keys, vals, 1);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        db_scrub(msg, sizeof msg, conn ? PQerrorMessage(conn) : "out of memory",
                 db_option(opts, "password"));
        YARD_LOG_ERROR(NULL, "cannot connect to PostgreSQL (host %s, port %s, database %s, user %s): %s",
                       conn && PQhost(conn) ? PQhost(conn) : "?",
                       conn && PQport(conn) ? PQport(conn) : "?",
                       conn && PQdb(conn) ? PQdb(conn) : "?",
                       conn && PQuser(conn) ? PQuser(conn) : "?", msg);
        rc = YARD_EUNAVAIL;
        goto cleanup;
    }
    PQsetNoticeProcessor(conn, db_notice, NULL);
    *out = conn;
    conn = NULL;

cleanup:
    if (rc < 0)
        yard_iostats_pg_error();
    PQfinish(conn);
    PQconninfoFree(opts);
    PQfreemem(perr);
    return rc;
}

void yard_db_close(PGconn *c)
{
    if (c)
        PQfinish(c);
}

/* Maps a failed statement to a YARD_E* code: by SQLSTATE when the server
 * answered, by the connection's state when it did not. */
static int db_code(PGconn *c, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (PQstatus(c) == CONNECTION_BAD || !state)
        return YARD_EUNAVAIL;
    if (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
        strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0)
        return YARD_EUNAVAIL; /* connection exception, server shutting down or starting */
    if (strcmp(state, "57014") == 0 || strcmp(state, "55P03") == 0)
        return YARD_ETIMEOUT; /* query_canceled, lock_not_available */
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
        return YARD_EBUSY; /* serialization_failure, deadlock_detected */
    if (strcmp(state, "23505") == 0)
        return YARD_EEXIST; /* unique_violation */
    return YARD_EPG;
}

/* Checks res, the result of a statement described by what, sent at t0
 * (db_now): records its round trip. Returns 0 when the statement
 * succeeded, else counts and logs the server's message and returns the code
 * from db_code. Does not free res. */
static int db_check(PGconn *c, const PGresult *res, const char *what, double t0)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    char msg[DB_MSG_MAX];

    yard_iostats_pg_observe(db_now() - t0);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY)
        return 0;
    yard_iostats_pg_error();
    int rc = db_code(c, res);
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    db_scrub(msg, sizeof msg, primary ? primary : PQerrorMessage(c), NULL);
    YARD_LOG_ERROR(NULL, "%s failed: %s%s%s (SQLSTATE %s, %s)", what, msg, detail ? ": " : "",
                   detail ? detail : "", state ? state : "none", yard_errname(rc));
    return rc;
}

int yard_db_exec_as(PGconn *c, const char *what, const char *sql)
{
    double t0 = db_now();
    PGresult *res = PQexec(c, sql);
    int rc = db_check(c, res, what, t0);
    PQclear(res);
    return rc;
}

int yard_db_exec(PGconn *c, const char *sql)
{
    char what[DB_SQL_SHOWN + 16];
    size_t n = strlen(sql);

    /* The statement's start, on one line, is its context in the log. */
    snprintf(what, sizeof what, "\"%.*s%s\"", DB_SQL_SHOWN, sql, n > DB_SQL_SHOWN ? "..." : "");
    for (char *p = what; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    return yard_db_exec_as(c, what, sql);
}

int yard_db_query(PGresult **out, PGconn *c, const char *what, const char *sql, int nparams,
                  const char *const *params)
{
    double t0 = db_now();
    PGresult *res = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    int rc = db_check(c, res, what, t0);

    if (rc == 0 && out) {
        *out = res;
        res = NULL;
    }
    PQclear(res);
    return rc;
}

int yard_db_prepare(PGconn *c, const char *name, const char *sql)
{
    char what[96];
    double t0 = db_now();
    PGresult *res = PQprepare(c, name, sql, 0, NULL);
    snprintf(what, sizeof what, "prepare %s", name);
    int rc = db_check(c, res, what, t0);
    PQclear(res);
    return rc;
}

int yard_db_query_prepared(PGresult **out, PGconn *c, const char *name, const char *what,
                           int nparams, const char *const *params)
{
    double t0 = db_now();
    PGresult *res = PQexecPrepared(c, name, nparams, params, NULL, NULL, 0);
    int rc = db_check(c, res, what, t0);

    if (rc == 0 && out) {
        *out = res;
        res = NULL;
    }
    PQclear(res);
    return rc;
}

int yard_db_plan_once(PGconn *c, const char *what)
{
    return yard_db_exec_as(c, what,
                           "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off;"
                           " SET enable_hashjoin = off; SET enable_mergejoin = off");
}

int yard_db_ok(const PGconn *c)
{
    return c && PQstatus(c) == CONNECTION_OK;
}

int yard_db_alive(PGconn *c)
{
    if (!yard_db_ok(c))
        return 0;
    if (PQtransactionStatus(c) != PQTRANS_IDLE || PQisBusy(c))
        return 1; /* in the middle of something: its own statement will tell */
    /* What has arrived (libpq's socket is non-blocking): the server's
     * error first, then, on the next read, the end of the stream. */
    for (int i = 0; i < 4; i++) {
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
        if (p.fd < 0 || poll(&p, 1, 0) <= 0)
            break;
        if (!PQconsumeInput(c))
            return 0;
    }
    return PQstatus(c) == CONNECTION_OK;
}

int yard_db_ensure(PGconn **conn, const char *dsn, int timeout_s)
{
    if (yard_db_alive(*conn))
        return 0;
    yard_db_close(*conn);
    *conn = NULL;
    int rc = yard_db_connect(conn, dsn, timeout_s);
    return rc < 0 ? rc : 1;
}
