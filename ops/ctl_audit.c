/*
 * ctl_audit.c - `yardctl audit verify|tail`: checks the hash chain of
 * audit_log (bus/audit.h) and shows its newest rows, following new ones.
 * Everything printed from a row has its control characters replaced, so a
 * crafted job type or error cannot drive the operator's terminal.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "audit.h"
#include "ctl.h"
#include "ctl_out.h"
#include "db.h"
#include "err.h"
#include "log.h"

#define AUDIT_CONNECT_TIMEOUT_S 10
#define AUDIT_TAIL_DEFAULT 20
#define AUDIT_TAIL_MAX 10000
#define AUDIT_FOLLOW_POLL_MS 1000
#define AUDIT_SHOW_MAX 400 /* bytes of a row's detail shown by tail */

const char ctl_audit_help[] =
    "usage: yardctl audit verify [--since SEQ|TIME] [--json]\n"
    "       yardctl audit tail [-n N] [--follow] [--json]\n"
    "\n"
    "verify   recomputes the BLAKE2b hash chain of the audit log in sequence\n"
    "         order and names the first row that does not match (altered,\n"
    "         missing rows before it, a broken link); exit 0 when intact, 1 when\n"
    "         not. --since starts at a sequence number or at the first row at or\n"
    "         after a time (e.g. 2026-11-28T03:00:00Z), trusting that row's link.\n"
    "tail     prints the newest N rows (default 20; control characters shown\n"
    "         as '?'); --follow keeps printing new rows until interrupted.\n"
    "--json   one JSON object (verify) or one per row (tail).\n";

/* Copies s into out (cap bytes), control characters (C0, DEL and C1)
 * replaced by '?', cut at max bytes with "..." when longer. */
static const char *audit_clean(char *out, size_t cap, const char *s, size_t max)
{
    size_t o = 0;
    if (!s)
        s = "-";
    for (size_t i = 0; s[i] && o + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o >= max) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c == 0xc2 && (unsigned char)s[i + 1] >= 0x80 && (unsigned char)s[i + 1] <= 0x9f) {
            out[o++] = '?';
            i++;
        } else {
            out[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
        }
    }
    out[o] = '\0';
    return out;
}

/* ---- verify ------------------------------------------------------------------ */

static int audit_verify_cmd(PGconn *c, const char *since, int json)
{
    yard_audit_verify_t v;
    int64_t since_seq = 0;
    const char *since_time = NULL;
    char *end = NULL;
    if (since) {
        since_seq = strtoll(since, &end, 10);
        if (*end || since_seq < 1) {
            since_seq = 0;
            since_time = since;
        }
    }
    if (yard_audit_verify(&v, c, since_seq, since_time) < 0)
        return CTL_EXIT_FAIL; /* logged */
    if (json) {
        json_t *o = json_pack("{s:b, s:I, s:o, s:o, s:o, s:o, s:o}", "ok", !v.bad_seq, "rows",
                              (json_int_t)v.rows, "first_seq",
                              v.first_seq ? json_integer(v.first_seq) : json_null(), "last_seq",
                              v.last_seq ? json_integer(v.last_seq) : json_null(), "bad_seq",
                              v.bad_seq ? json_integer(v.bad_seq) : json_null(), "bad_event_id",
                              v.bad_seq ? json_string(v.bad_event_id) : json_null(), "reason",
                              v.bad_seq ? json_string(v.why) : json_null());
        char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
        printf("%s\n", txt ? txt : "{}");
        free(txt);
        json_decref(o);
    } else if (v.bad_seq) {
        char id[256];
        printf("audit log BROKEN at row %" PRId64 " (event %s): %s\n", v.bad_seq,
               audit_clean(id, sizeof id, v.bad_event_id, 200), v.why);
        if (v.rows)
            printf("rows %" PRId64 " to %" PRId64 " before it are intact\n", v.first_seq,
                   v.last_seq);
    } else if (v.rows == 0) {
        printf("audit log intact: no rows to check\n");
    } else {
        printf("audit log intact: %" PRId64 " rows checked (seq %" PRId64 " to %" PRId64 ")\n",
               v.rows, v.first_seq, v.last_seq);
    }
    return v.bad_seq ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

/* ---- tail -------------------------------------------------------------------- */

#define AUDIT_TAIL_COLS                                                                        \
    "seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), event, "          \
    "coalesce(job_id::text, workflow_id::text), actor, detail::text"

static void audit_print_row(const PGresult *res, int i, int json)
{
    char ev[200], subj[80], actor[300], detail[AUDIT_SHOW_MAX + 8];
    const char *v[6];
    for (int k = 0; k < 6; k++)
        v[k] = PQgetisnull(res, i, k) ? NULL : PQgetvalue(res, i, k);
    if (json) {
        /* jansson escapes control characters itself. */
        json_error_t jerr;
        json_t *d = v[5] ? json_loads(v[5], 0, &jerr) : NULL;
        json_t *o = json_pack("{s:I, s:s, s:s, s:o, s:o, s:o}", "seq",
                              (json_int_t)strtoll(v[0], NULL, 10), "at", v[1], "event", v[2],
                              "id", v[3] ? json_string(v[3]) : json_null(), "actor",
                              v[4] ? json_string(v[4]) : json_null(), "detail",
                              d ? d : json_null());
        char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
        printf("%s\n", txt ? txt : "{}");
        free(txt);
        json_decref(o);
        return;
    }
    printf("%-8s %-24s %-22s %-36s %-30s %s\n", v[0], v[1], audit_clean(ev, sizeof ev, v[2], 60),
           audit_clean(subj, sizeof subj, v[3], 40), audit_clean(actor, sizeof actor, v[4], 60),
           audit_clean(detail, sizeof detail, v[5], AUDIT_SHOW_MAX));
}

/* Prints the newest n rows (newest set) or the rows after seq *last, at
 * most n; advances *last to the last printed. Returns 0 or an error. */
static int audit_tail_once(PGconn *c, int newest, int64_t *last, long n, int json)
{
    PGresult *res = NULL;
    char a[24], b[24];
    snprintf(a, sizeof a, "%" PRId64, *last);
    snprintf(b, sizeof b, "%ld", n);
    const char *params[2] = {a, b};
    int rc = newest ? yard_db_query(&res, c, "audit: newest rows",
                                    "SELECT * FROM (SELECT " AUDIT_TAIL_COLS " FROM audit_log "
                                    "ORDER BY seq DESC LIMIT $1::int) t ORDER BY seq",
                                    1, params + 1)
                    : yard_db_query(&res, c, "audit: new rows",
                                    "SELECT " AUDIT_TAIL_COLS " FROM audit_log WHERE seq > "
                                    "$1::bigint ORDER BY seq LIMIT $2::int",
                                    2, params);
    if (rc < 0)
        return rc;
    for (int i = 0; i < PQntuples(res); i++) {
        audit_print_row(res, i, json);
        *last = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    }
    PQclear(res);
    fflush(stdout);
    return 0;
}

static int audit_tail_cmd(PGconn *c, long n, int follow, int json)
{
    int64_t last = 0;
    if (!json)
        printf("%-8s %-24s %-22s %-36s %-30s %s\n", "SEQ", "AT", "EVENT", "JOB/WORKFLOW",
               "ACTOR", "DETAIL");
    if (audit_tail_once(c, 1, &last, n, json) < 0)
        return CTL_EXIT_FAIL;
    while (follow) {
        usleep(AUDIT_FOLLOW_POLL_MS * 1000);
        if (audit_tail_once(c, 0, &last, AUDIT_TAIL_MAX, json) < 0)
            return CTL_EXIT_FAIL;
    }
    return CTL_EXIT_OK;
}

int ctl_cmd_audit(const yard_config_t *cfg, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "";
    const char *since = NULL;
    /* main takes --json off the command line wherever it is (ctl_out.h). */
    int json = ctl_out_json(), follow = 0, verify = !strcmp(sub, "verify");
    long n = AUDIT_TAIL_DEFAULT;
    if (!verify && strcmp(sub, "tail"))
        return ctl_usage_error("audit", "expected `verify` or `tail`");
    for (int i = 2; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end;
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (verify && !strcmp(argv[i], "--since") && v) {
            since = argv[++i];
        } else if (!verify && !strcmp(argv[i], "--follow")) {
            follow = 1;
        } else if (!verify && (!strcmp(argv[i], "-n") || !strcmp(argv[i], "--lines")) && v) {
            n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > AUDIT_TAIL_MAX)
                return ctl_usage_error("audit", "-n takes a number from 1 to %d",
                                       AUDIT_TAIL_MAX);
        } else {
            return ctl_usage_error("audit", "unexpected argument `%s`", argv[i]);
        }
    }
    PGconn *c = NULL;
    if (yard_db_connect(&c, cfg->pg_dsn, AUDIT_CONNECT_TIMEOUT_S) < 0)
        return CTL_EXIT_FAIL; /* logged */
    int rc = verify ? audit_verify_cmd(c, since, json) : audit_tail_cmd(c, n, follow, json);
    yard_db_close(c);
    return rc;
}
