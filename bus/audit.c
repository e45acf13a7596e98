/*
 * audit.c - the audit_log's chain (audit.h): the canonical bytes and their
 * hash, the batched append under the writers' advisory lock, and the walk
 * that verifies it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit.h"
#include "db.h"
#include "db_array.h"
#include "err.h"
#include "log.h"

/* pg_advisory_xact_lock key of the audit writers ("yardaudt" as ASCII). */
#define AUDIT_LOCK_KEY "8751735161089520756"
/* Rows a verification reads per query. */
#define AUDIT_VERIFY_PAGE 5000

/* ---- the canonical bytes ----------------------------------------------------- */

static void audit_field(crypto_generichash_state *st, const char *s)
{
    unsigned char len[4];
    if (!s) {
        memset(len, 0xff, sizeof len);
        crypto_generichash_update(st, len, sizeof len);
        return;
    }
    size_t n = strlen(s);
    len[0] = (unsigned char)(n >> 24);
    len[1] = (unsigned char)(n >> 16);
    len[2] = (unsigned char)(n >> 8);
    len[3] = (unsigned char)n;
    crypto_generichash_update(st, len, sizeof len);
    crypto_generichash_update(st, (const unsigned char *)s, n);
}

void yard_audit_hash(unsigned char out[YARD_AUDIT_HASH_LEN], const unsigned char *prev,
                     const yard_audit_row_t *r)
{
    crypto_generichash_state st;
    char seq[24], at[24];
    snprintf(seq, sizeof seq, "%" PRId64, r->seq);
    snprintf(at, sizeof at, "%" PRId64, r->at_us);
    crypto_generichash_init(&st, NULL, 0, YARD_AUDIT_HASH_LEN);
    if (prev)
        crypto_generichash_update(&st, prev, YARD_AUDIT_HASH_LEN);
    crypto_generichash_update(&st, (const unsigned char *)YARD_AUDIT_CANON_MAGIC,
                              sizeof YARD_AUDIT_CANON_MAGIC - 1);
    audit_field(&st, seq);
    audit_field(&st, r->event_id);
    audit_field(&st, at);
    audit_field(&st, r->event);
    audit_field(&st, r->job_id);
    audit_field(&st, r->workflow_id);
    audit_field(&st, r->actor);
    audit_field(&st, r->detail);
    crypto_generichash_final(&st, out, YARD_AUDIT_HASH_LEN);
}

/* The append's statements, prepared on the writer's connection. */
#define AUDIT_SQL_LAST "SELECT seq, encode(hash, 'hex') FROM audit_log ORDER BY seq DESC LIMIT 1"
/* A join, not EXISTS: planned once on a small log, the EXISTS was a bitmap
 * scan per row (183 us a row at 1,000 jobs/s); the join is one plain probe
 * of the unique event_id index per row (at most one match). */
#define AUDIT_SQL_SCREEN                                                                       \
    "SELECT d::jsonb::text, a.seq IS NOT NULL, min(i) OVER (PARTITION BY e) = i "              \
    "FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(e, d, i) "                       \
    "LEFT JOIN audit_log a ON a.event_id = u.e ORDER BY i"
#define AUDIT_SQL_INSERT                                                                       \
    "INSERT INTO audit_log (seq, event_id, at, event, job_id, workflow_id, actor, "            \
    "detail, prev_hash, hash) OVERRIDING SYSTEM VALUE "                                        \
    "SELECT s, e, timestamptz 'epoch' + t * interval '1 microsecond', ev, j::uuid, "           \
    "w::uuid, a, d::jsonb, decode(p, 'hex'), decode(h, 'hex') "                                \
    "FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], "             \
    "$6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) "                            \
    "AS u(s, e, t, ev, j, w, a, d, p, h)"

int yard_audit_use_role(PGconn *c)
{
    int rc = yard_db_exec_as(c, "audit: switch to role " YARD_AUDIT_DB_ROLE,
                             "SET ROLE " YARD_AUDIT_DB_ROLE);
    /* An append runs its statements a few times a second: each is planned
     * once (as in jobs.h, YARD_JOBS_PLAN_ONCE: index probes whatever the
     * log's size when planned). */
    if (rc == 0)
        rc = yard_db_plan_once(c, "audit: plan mode");
    if (rc == 0)
        rc = yard_db_prepare(c, "yard_audit_last", AUDIT_SQL_LAST);
    if (rc == 0)
        rc = yard_db_prepare(c, "yard_audit_screen", AUDIT_SQL_SCREEN);
    if (rc == 0)
        rc = yard_db_prepare(c, "yard_audit_insert", AUDIT_SQL_INSERT);
    return rc;
}

/* ---- append -------------------------------------------------------------------- */

/* The n rows' event ids and details as array literals (owned by a). */
typedef struct {
    yard_db_array_t seq, id, at, event, job, wf, actor, detail, prev, hash;
} audit_arrays_t;

static void audit_arrays_free(audit_arrays_t *a)
{
    yard_db_array_t *all[] = {&a->seq, &a->id,    &a->at,     &a->event, &a->job,
                              &a->wf,  &a->actor, &a->detail, &a->prev,  &a->hash};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]->buf);
}

/* Reads the last row's seq and hash (seq 0 when the log is empty). */
static int audit_last(PGconn *c, int64_t *seq, unsigned char hash[YARD_AUDIT_HASH_LEN])
{
    PGresult *res = NULL;
    int rc = yard_db_query_prepared(&res, c, "yard_audit_last", "audit: last row", 0, NULL);
    if (rc < 0)
        return rc;
    *seq = 0;
    if (PQntuples(res) == 1) {
        *seq = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        if (sodium_hex2bin(hash, YARD_AUDIT_HASH_LEN, PQgetvalue(res, 0, 1),
                           (size_t)PQgetlength(res, 0, 1), NULL, NULL, NULL) != 0) {
            YARD_LOG_ERROR(NULL, "audit: the hash of row %" PRId64 " is not %d bytes", *seq,
                           YARD_AUDIT_HASH_LEN);
            rc = YARD_EFORMAT;
        }
    }
    PQclear(res);
    return rc;
}

/* For each of the n rows: its detail as jsonb prints it, whether its
 * event_id is stored, whether it is the first of the n with that id. */
static int audit_screen(PGresult **out, PGconn *c, const yard_audit_row_t *rows, size_t n)
{
    yard_db_array_t ids = {0}, details = {0};
    for (size_t i = 0; i < n; i++) {
        yard_db_array_cstr(&ids, rows[i].event_id);
        yard_db_array_cstr(&details, rows[i].detail);
    }
    const char *params[2] = {yard_db_array_end(&ids), yard_db_array_end(&details)};
    int rc = params[0] && params[1]
                 ? yard_db_query_prepared(out, c, "yard_audit_screen", "audit: screen rows", 2,
                                          params)
                 : YARD_ENOMEM;
    free(ids.buf);
    free(details.buf);
    if (rc == 0 && (size_t)PQntuples(*out) != n) {
        PQclear(*out);
        rc = YARD_EPG;
    }
    return rc;
}

static int audit_insert(PGconn *c, const yard_audit_row_t *rows, size_t n, PGresult *screen,
                        size_t *written)
{
    audit_arrays_t a;
    memset(&a, 0, sizeof a);
    int64_t seq = 0;
    unsigned char prev[YARD_AUDIT_HASH_LEN], hash[YARD_AUDIT_HASH_LEN];
    char hex[2 * YARD_AUDIT_HASH_LEN + 1];
    int rc = audit_last(c, &seq, prev);
    size_t k = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (strcmp(PQgetvalue(screen, (int)i, 1), "t") == 0 ||
            strcmp(PQgetvalue(screen, (int)i, 2), "t") != 0)
            continue; /* recorded already */
        yard_audit_row_t r = rows[i];
        r.seq = ++seq;
        r.detail = PQgetisnull(screen, (int)i, 0) ? NULL : PQgetvalue(screen, (int)i, 0);
        yard_audit_hash(hash, r.seq == 1 ? NULL : prev, &r);
        yard_db_array_num(&a.seq, r.seq);
        yard_db_array_cstr(&a.id, r.event_id);
        yard_db_array_num(&a.at, r.at_us);
        yard_db_array_cstr(&a.event, r.event);
        yard_db_array_cstr(&a.job, r.job_id);
        yard_db_array_cstr(&a.wf, r.workflow_id);
        yard_db_array_cstr(&a.actor, r.actor);
        yard_db_array_cstr(&a.detail, r.detail);
        yard_db_array_cstr(&a.prev, r.seq == 1 ? NULL
                                               : sodium_bin2hex(hex, sizeof hex, prev, sizeof prev));
        yard_db_array_cstr(&a.hash, sodium_bin2hex(hex, sizeof hex, hash, sizeof hash));
        memcpy(prev, hash, sizeof prev);
        k++;
    }
    if (rc == 0 && k > 0) {
        const char *params[10] = {
            yard_db_array_end(&a.seq),   yard_db_array_end(&a.id),    yard_db_array_end(&a.at),
            yard_db_array_end(&a.event), yard_db_array_end(&a.job),   yard_db_array_end(&a.wf),
            yard_db_array_end(&a.actor), yard_db_array_end(&a.detail), yard_db_array_end(&a.prev),
            yard_db_array_end(&a.hash)};
        for (int p = 0; p < 10; p++)
            if (!params[p])
                rc = YARD_ENOMEM;
        if (rc == 0)
            rc = yard_db_query_prepared(NULL, c, "yard_audit_insert", "audit: append rows", 10,
                                        params);
    }
    audit_arrays_free(&a);
    if (rc == 0)
        *written = k;
    return rc;
}

int yard_audit_append(PGconn *c, const yard_audit_row_t *rows, size_t n, size_t *written)
{
    PGresult *screen = NULL;
    size_t k = 0;
    if (n == 0) {
        if (written)
            *written = 0;
        return 0;
    }
    int rc = yard_db_exec_as(c, "audit: begin", "BEGIN");
    if (rc == 0)
        rc = yard_db_exec_as(c, "audit: writers' lock",
                             "SELECT pg_advisory_xact_lock(" AUDIT_LOCK_KEY ")");
    if (rc == 0)
        rc = audit_screen(&screen, c, rows, n);
    if (rc == 0)
        rc = audit_insert(c, rows, n, screen, &k);
    PQclear(screen);
    if (rc == 0)
        rc = yard_db_exec_as(c, "audit: commit", "COMMIT");
    if (rc < 0) {
        if (yard_db_ok(c))
            PQclear(PQexec(c, "ROLLBACK"));
        return rc;
    }
    if (written)
        *written = k;
    return 0;
}

/* ---- verify -------------------------------------------------------------------- */

static int audit_unhex(unsigned char out[YARD_AUDIT_HASH_LEN], const PGresult *res, int row,
                       int col)
{
    size_t len = 0;
    if (PQgetisnull(res, row, col))
        return 0;
    if (sodium_hex2bin(out, YARD_AUDIT_HASH_LEN, PQgetvalue(res, row, col),
                       (size_t)PQgetlength(res, row, col), NULL, &len, NULL) != 0 ||
        len != YARD_AUDIT_HASH_LEN)
        return -1;
    return 1;
}

static const char *audit_col(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* Checks one row against the one before it (have_prev: prev_seq and
 * prev_hash hold it). Returns 1 if it matches, 0 (why filled) if not. */
static int audit_check_row(const PGresult *res, int i, int from_start, int have_prev,
                           int64_t prev_seq,
                           const unsigned char *prev_hash, int64_t *seq, unsigned char *hash,
                           char *why, size_t cap)
{
    unsigned char stored_prev[YARD_AUDIT_HASH_LEN], want[YARD_AUDIT_HASH_LEN];
    yard_audit_row_t r = {0};
    r.seq = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    r.event_id = audit_col(res, i, 1);
    r.at_us = strtoll(PQgetvalue(res, i, 2), NULL, 10);
    r.event = audit_col(res, i, 3);
    r.job_id = audit_col(res, i, 4);
    r.workflow_id = audit_col(res, i, 5);
    r.actor = audit_col(res, i, 6);
    r.detail = audit_col(res, i, 7);
    *seq = r.seq;
    int has_prev = audit_unhex(stored_prev, res, i, 8);
    if (audit_unhex(hash, res, i, 9) != 1 || has_prev < 0) {
        snprintf(why, cap, "its hash or prev_hash is not %d bytes", YARD_AUDIT_HASH_LEN);
        return 0;
    }
    if (!have_prev && from_start && r.seq != 1) {
        snprintf(why, cap, "rows 1 to %" PRId64 " are missing before it", r.seq - 1);
        return 0;
    }
    if (have_prev && r.seq != prev_seq + 1) {
        snprintf(why, cap, "rows %" PRId64 " to %" PRId64 " are missing before it", prev_seq + 1,
                 r.seq - 1);
        return 0;
    }
    if (!have_prev && r.seq == 1 && has_prev) {
        snprintf(why, cap, "the first row has a prev_hash");
        return 0;
    }
    if (!has_prev && r.seq != 1) {
        snprintf(why, cap, "it has no prev_hash but is not the first row");
        return 0;
    }
    if (have_prev && memcmp(stored_prev, prev_hash, YARD_AUDIT_HASH_LEN) != 0) {
        snprintf(why, cap, "its prev_hash is not the hash of row %" PRId64, prev_seq);
        return 0;
    }
    yard_audit_hash(want, has_prev ? stored_prev : NULL, &r);
    if (memcmp(want, hash, YARD_AUDIT_HASH_LEN) != 0) {
        snprintf(why, cap, "its hash does not match its contents (altered)");
        return 0;
    }
    return 1;
}

/* The seq to start at for since_time, or -1 when no row is that recent. */
static int audit_seq_since(int64_t *out, PGconn *c, const char *since_time)
{
    PGresult *res = NULL;
    const char *params[1] = {since_time};
    int rc = yard_db_query(&res, c, "audit: first row since",
                           "SELECT min(seq) FROM audit_log WHERE at >= $1::timestamptz", 1,
                           params);
    if (rc < 0)
        return rc;
    *out = PQgetisnull(res, 0, 0) ? -1 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

int yard_audit_verify(yard_audit_verify_t *out, PGconn *c, int64_t since_seq,
                      const char *since_time)
{
    yard_audit_verify_t v;
    unsigned char prev_hash[YARD_AUDIT_HASH_LEN], hash[YARD_AUDIT_HASH_LEN];
    int64_t prev_seq = 0, after = since_seq > 0 ? since_seq - 1 : 0;
    int have_prev = 0, rc = 0;
    memset(&v, 0, sizeof v);
    if (since_time) {
        int64_t s = 0;
        if ((rc = audit_seq_since(&s, c, since_time)) < 0)
            return rc;
        if (s < 0) {
            *out = v; /* nothing that recent */
            return 0;
        }
        after = s - 1;
    }
    for (;;) {
        PGresult *res = NULL;
        char after_txt[24], limit_txt[16];
        snprintf(after_txt, sizeof after_txt, "%" PRId64, after);
        snprintf(limit_txt, sizeof limit_txt, "%d", AUDIT_VERIFY_PAGE);
        const char *params[2] = {after_txt, limit_txt};
        rc = yard_db_query(&res, c, "audit: read rows",
                           "SELECT seq, event_id, (extract(epoch FROM at) * 1000000)::bigint, "
                           "event, job_id::text, workflow_id::text, actor, detail::text, "
                           "encode(prev_hash, 'hex'), encode(hash, 'hex') FROM audit_log "
                           "WHERE seq > $1::bigint ORDER BY seq LIMIT $2::int",
                           2, params);
        if (rc < 0)
            return rc;
        int n = PQntuples(res);
        for (int i = 0; i < n && !v.bad_seq; i++) {
            int64_t seq = 0;
            if (!audit_check_row(res, i, since_seq <= 1 && !since_time, have_prev, prev_seq, prev_hash, &seq, hash, v.why,
                                 sizeof v.why)) {
                v.bad_seq = seq > 0 ? seq : -1;
                snprintf(v.bad_event_id, sizeof v.bad_event_id, "%s",
                         PQgetisnull(res, i, 1) ? "" : PQgetvalue(res, i, 1));
                break;
            }
            if (!v.first_seq)
                v.first_seq = seq;
            v.last_seq = seq;
            v.rows++;
            have_prev = 1;
            prev_seq = seq;
            memcpy(prev_hash, hash, sizeof hash);
            after = seq;
        }
        PQclear(res);
        if (v.bad_seq || n < AUDIT_VERIFY_PAGE)
            break;
    }
    *out = v;
    return 0;
}
