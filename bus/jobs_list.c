/*
 * jobs_list.c - pages of the job list and a job's attempts (jobs_list.h).
 *
 * One statement per read, run with PQexecParams: PostgreSQL plans it with the
 * actual values, so the "$n IS NULL OR ..." of an absent filter folds away
 * and the planner picks the index of the filters that are present.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "db.h"
#include "err.h"
#include "id.h"
#include "jobs.h"
#include "jobs_list.h"
#include "names.h"

#define CURSOR_RAW_MAX (20 + 1 + YARD_ID_TEXT_LEN) /* "<microseconds>.<uuid>" */
#define B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* ---- checks ------------------------------------------------------------------ */

static int digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

/* Nonzero for RFC 3339 date-time text: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM),
 * 't' and 'z' allowed, fields in range (days up to 31; PostgreSQL refuses an
 * impossible date, which the caller then reports as unavailable: so check). */
static int rfc3339_valid(const char *s)
{
    size_t n = strlen(s), i = 19;
    if (n < 20 || n > 40 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) ||
        s[13] != ':' || !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
        return 0;
    int year = atoi(s), mon = atoi(s + 5), day = atoi(s + 8);
    int hour = atoi(s + 11), min = atoi(s + 14), sec = atoi(s + 17);
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1 || mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] || hour > 23 ||
        min > 59 || sec > 60)
        return 0;
    if (mon == 2 && day == 29 && !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
        return 0;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
        if (i == start)
            return 0;
    }
    if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == n)
        return 1;
    return (s[i] == '+' || s[i] == '-') && i + 6 == n && digits(s + i + 1, 2) &&
           s[i + 3] == ':' && digits(s + i + 4, 2) && atoi(s + i + 1) <= 23 &&
           atoi(s + i + 4) <= 59;
}

/* Decodes a cursor into its microseconds and id text. Returns 0 or
 * YARD_EINVAL. */
static int cursor_decode(const char *cursor, char us[21], char id[YARD_ID_TEXT_LEN + 1])
{
    unsigned char raw[CURSOR_RAW_MAX + 1];
    size_t len = 0;
    yard_id_t parsed;
    if (strlen(cursor) > YARD_JOBS_CURSOR_MAX ||
        sodium_base642bin(raw, CURSOR_RAW_MAX, cursor, strlen(cursor), NULL, &len, NULL,
                          B64_VARIANT) != 0)
        return YARD_EINVAL;
    raw[len] = '\0';
    const char *dot = memchr(raw, '.', len);
    size_t ulen = dot ? (size_t)(dot - (const char *)raw) : 0;
    if (!dot || ulen < 1 || ulen > 17 || !digits((const char *)raw, (int)ulen) ||
        yard_id_parse(&parsed, dot + 1, len - ulen - 1) < 0)
        return YARD_EINVAL;
    memcpy(us, raw, ulen);
    us[ulen] = '\0';
    yard_id_format(&parsed, id);
    return 0;
}

/* Encodes (microseconds text, id text) as a cursor into out. */
static void cursor_encode(char out[YARD_JOBS_CURSOR_MAX + 1], const char *us, const char *id)
{
    char raw[CURSOR_RAW_MAX + 2];
    int n = snprintf(raw, sizeof raw, "%s.%s", us, id);
    sodium_bin2base64(out, YARD_JOBS_CURSOR_MAX + 1, (const unsigned char *)raw, (size_t)n,
                      B64_VARIANT);
}

static int name_ok(const char *v)
{
    return yard_name_valid(v, strlen(v));
}

int yard_jobs_filter_check(const yard_jobs_filter_t *f, char *why, size_t cap)
{
    yard_job_state_t st;
    yard_id_t id;
    char us[21], cid[YARD_ID_TEXT_LEN + 1];
    const char *msg = NULL;
    if (f->status && yard_job_state_parse(&st, f->status) < 0)
        msg = "status: must be one of queued, scheduled, running, succeeded, failed, dead, "
              "cancelled";
    else if (f->queue && !name_ok(f->queue))
        msg = "queue: not a queue name ([a-z0-9][a-z0-9._-]{0,63})";
    else if (f->type && !name_ok(f->type))
        msg = "type: not a job type name ([a-z0-9][a-z0-9._-]{0,63})";
    else if (f->since && !rfc3339_valid(f->since))
        msg = "since: must be an RFC 3339 time such as 2026-01-02T03:04:05Z";
    else if (f->until && !rfc3339_valid(f->until))
        msg = "until: must be an RFC 3339 time such as 2026-01-02T03:04:05Z";
    else if (f->error && (f->error[0] == '\0' || strlen(f->error) > YARD_JOBS_ERROR_TEXT_MAX))
        msg = "error: must be 1 to 200 bytes of text";
    else if (f->owner && yard_id_parse(&id, f->owner, strlen(f->owner)) < 0)
        msg = "owner: not an API key id";
    else if (f->cursor && cursor_decode(f->cursor, us, cid) < 0)
        msg = "cursor: not a cursor this API gave out (pass next_cursor back unchanged)";
    else if (f->limit > YARD_JOBS_LIST_MAX)
        msg = "limit: must be 1 to 500";
    if (!msg)
        return 0;
    snprintf(why, cap, "%s", msg);
    return YARD_EINVAL;
}

/* ---- the list ------------------------------------------------------------------ */

/* $1 status, $2 queue, $3 type, $4 since, $5 until, $6 error text (LIKE
 * pattern, escaped), $7 owner, $8 cursor microseconds, $9 cursor id, $10
 * rows to read (limit + 1: the extra row tells whether a next page exists). */
static const char list_sql[] =
    "SELECT " YARD_JOBS_JSON_SQL "::text AS job,"
    " (extract(epoch FROM created_at) * 1000000)::bigint::text AS cursor_us,"
    " id::text AS cursor_id"
    " FROM jobs"
    " WHERE ($1::text IS NULL OR status = $1::text)"
    " AND ($2::text IS NULL OR queue = $2::text)"
    " AND ($3::text IS NULL OR type = $3::text)"
    " AND ($4::timestamptz IS NULL OR created_at >= $4::timestamptz)"
    " AND ($5::timestamptz IS NULL OR created_at < $5::timestamptz)"
    " AND ($6::text IS NULL OR last_error ILIKE $6::text)"
    " AND ($7::uuid IS NULL OR api_key_id = $7::uuid)"
    " AND ($8::bigint IS NULL OR (created_at, id) <"
    "      ('epoch'::timestamptz + $8::bigint * interval '1 microsecond', $9::uuid))"
    /* Qualified: a bare name in ORDER BY would be an output column. */
    " ORDER BY jobs.created_at DESC, jobs.id DESC LIMIT $10::int";

/* The ILIKE pattern %text% with \, % and _ escaped (malloc'd), or NULL. */
static char *like_pattern(const char *text)
{
    size_t n = strlen(text);
    char *p = malloc(2 * n + 3), *w = p;
    if (!p)
        return NULL;
    *w++ = '%';
    for (const char *r = text; *r; r++) {
        if (*r == '\\' || *r == '%' || *r == '_')
            *w++ = '\\';
        *w++ = *r;
    }
    *w++ = '%';
    *w = '\0';
    return p;
}

/* Appends len bytes of s to the growing buffer (*buf, *used, *cap). Returns
 * 0 or YARD_ENOMEM. */
static int buf_add(char **buf, size_t *used, size_t *cap, const char *s, size_t len)
{
    if (*used + len + 1 > *cap) {
        size_t ncap = (*cap ? *cap : 1024);
        while (*used + len + 1 > ncap)
            ncap *= 2;
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return YARD_ENOMEM;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *used, s, len);
    *used += len;
    (*buf)[*used] = '\0';
    return 0;
}

int yard_jobs_list(char **out, PGconn *c, const yard_jobs_filter_t *f)
{
    char why[160], us[21], cid[YARD_ID_TEXT_LEN + 1], limit[16];
    char cursor[YARD_JOBS_CURSOR_MAX + 1];
    char *pattern = NULL, *doc = NULL;
    size_t used = 0, cap = 0;
    PGresult *res = NULL;
    int rc;
    if (yard_jobs_filter_check(f, why, sizeof why) < 0)
        return YARD_EINVAL;
    size_t want = f->limit ? f->limit : YARD_JOBS_LIST_DEFAULT;
    if (f->cursor)
        cursor_decode(f->cursor, us, cid);
    if (f->error && !(pattern = like_pattern(f->error)))
        return YARD_ENOMEM;
    snprintf(limit, sizeof limit, "%zu", want + 1);
    const char *params[10] = {f->status, f->queue,   f->type,
                              f->since,  f->until,   pattern,
                              f->owner,  f->cursor ? us : NULL, f->cursor ? cid : NULL,
                              limit};
    if ((rc = yard_db_query(&res, c, "list jobs", list_sql, 10, params)) < 0)
        goto done;
    int rows = PQntuples(res);
    int shown = rows > (int)want ? (int)want : rows;
    rc = buf_add(&doc, &used, &cap, "{\"jobs\":[", 9);
    for (int r = 0; rc == 0 && r < shown; r++) {
        if (r > 0)
            rc = buf_add(&doc, &used, &cap, ",", 1);
        if (rc == 0)
            rc = buf_add(&doc, &used, &cap, PQgetvalue(res, r, 0),
                         (size_t)PQgetlength(res, r, 0));
    }
    if (rc == 0 && rows > (int)want) {
        char tail[YARD_JOBS_CURSOR_MAX + 32];
        cursor_encode(cursor, PQgetvalue(res, shown - 1, 1), PQgetvalue(res, shown - 1, 2));
        int n = snprintf(tail, sizeof tail, "],\"next_cursor\":\"%s\"}", cursor);
        rc = buf_add(&doc, &used, &cap, tail, (size_t)n);
    } else if (rc == 0) {
        rc = buf_add(&doc, &used, &cap, "],\"next_cursor\":null}", 21);
    }
    if (rc == 0) {
        *out = doc;
        doc = NULL;
    }
done:
    PQclear(res);
    free(doc);
    free(pattern);
    return rc;
}

/* ---- attempts ------------------------------------------------------------------ */

static const char attempts_sql[] =
    "SELECT json_build_object('job_id', j.id, 'attempts', coalesce(("
    "  SELECT json_agg(json_build_object('attempt', a.attempt, 'started_at', a.started_at,"
    "   'finished_at', a.finished_at, 'outcome', a.outcome, 'error', a.error,"
    "   'worker', a.worker, 'duration_ms', a.duration_ms) ORDER BY a.attempt)"
    "  FROM job_attempts a WHERE a.job_id = j.id), '[]'::json))::text"
    " FROM jobs j WHERE j.id = $1::uuid AND ($2::uuid IS NULL OR j.api_key_id = $2::uuid)";

int yard_jobs_attempts(char **out, PGconn *c, const char *id, const char *owner)
{
    yard_id_t parsed;
    PGresult *res = NULL;
    if (yard_id_parse(&parsed, id, strlen(id)) < 0 ||
        (owner && yard_id_parse(&parsed, owner, strlen(owner)) < 0))
        return YARD_EINVAL;
    const char *params[2] = {id, owner};
    int rc = yard_db_query(&res, c, "job attempts", attempts_sql, 2, params);
    if (rc < 0)
        return rc;
    if (PQntuples(res) == 0) {
        rc = YARD_ENOTFOUND;
    } else {
        char *doc = strdup(PQgetvalue(res, 0, 0));
        if (doc)
            *out = doc;
        else
            rc = YARD_ENOMEM;
    }
    PQclear(res);
    return rc;
}
