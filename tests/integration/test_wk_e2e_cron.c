/*
 * test_wk_e2e_cron.c - cron schedules end to end: the real gateway and
 * workers against real nats-server and PostgreSQL.
 *   1. The routes: create (201), replace (200), get, list, pause, resume,
 *      delete (then 404); bad cron, zone, field and job are 400s naming
 *      the problem.
 *   2. Two schedule replicas: a "* * * * *" schedule fires once at the next
 *      minute (one firing row, one job, which succeeds, carrying the
 *      schedule's name); 40 schedules due at the same moment fire once each;
 *      a firing whose schedule is set back to the same moment (as after a
 *      lost commit) is not published again.
 *   3. "30 2 * * *" in Europe/Berlin with an injected clock: 2027-03-27
 *      fires and the next firing skips 03-28 (02:30 does not exist) to
 *      03-29; 2027-10-31 02:30 happens twice and fires once, then 11-01.
 *   4. catch_up after downtime: `skip` fires nothing for a firing missed by
 *      an hour, `once` fires one job for the latest missed time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "yt_http.h"
#include "yt_workers.h"

#define BURST_SCHEDULES 40

static struct {
    yt_cluster_t c;
    yt_worker_t sched2;
} g;

static int setup(void **state)
{
    yard_log_init("test_wk_e2e_cron", YARD_LOG_ERROR);
    if (yt_cluster_start(&g.c, NULL) != 0)
        return -1;
    return yt_worker_start(&g.c.exec, g.c.env, "execute", NULL, NULL, 0);
}

static int teardown(void **state)
{
    yt_cluster_stop_worker(&g.c, &g.sched2);
    yt_cluster_stop(&g.c);
    return 0;
}

/* Starts w as a schedule worker whose clock reads target_utc ("YYYY-MM-DD
 * HH:MM:SS", UTC) now; NULL: the real clock. */
static void start_sched_at(yt_worker_t *w, const char *target_utc)
{
    char offset[80] = "YARD_LOG_LEVEL=warn";
    if (target_utc) {
        struct tm tm = {0};
        assert_int_equal(sscanf(target_utc, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon,
                                &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec), 6);
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        snprintf(offset, sizeof offset, "YARD_SCHEDULE_CLOCK_OFFSET_S=%lld",
                 (long long)(timegm(&tm) - time(NULL)));
    }
    char *const env[] = {offset, NULL};
    if (yt_worker_start(w, g.c.env, "schedule", NULL, env, 0) != 0)
        fail_msg("expected a ready schedule worker (clock %s); it did not start",
                 target_utc ? target_utc : "real");
}

static int request(yt_http_resp_t *r, const char *method, const char *path, const char *body)
{
    static const char *const json[] = {"Content-Type: application/json", NULL};
    /* A POST without a body still sends Content-Length: 0 (else 411). */
    const char *sent = body ? body : strcmp(method, "POST") == 0 ? "" : NULL;
    return yt_http_request(r, g.c.port, method, path, body ? json : NULL, sent,
                           sent ? strlen(sent) : 0);
}

static void expect_status(const char *method, const char *path, const char *body, int want,
                          const char *contains)
{
    yt_http_resp_t r = {0};
    int st = request(&r, method, path, body);
    if (st != want || (contains && !strstr(r.body, contains)))
        fail_msg("%s %s %s: expected %d with `%s`, got %d: %s", method, path, body ? body : "",
                 want, contains ? contains : "", st, st > 0 ? yt_http_body_excerpt(&r) : "");
    yt_http_resp_free(&r);
}

static void test_routes(void **state)
{
    static const char nightly[] =
        "{\"name\":\"nightly\",\"cron\":\"0 3 * * *\",\"timezone\":\"Europe/Berlin\","
        "\"job\":{\"type\":\"noop\",\"priority\":\"high\"},\"catch_up\":\"once\"}";
    expect_status("POST", "/v1/schedules", nightly, 201, "\"next_fire_at\":\"20");
    expect_status("POST", "/v1/schedules", nightly, 200, "\"catch_up\":\"once\"");
    expect_status("GET", "/v1/schedules/nightly", NULL, 200, "\"timezone\":\"Europe/Berlin\"");
    expect_status("GET", "/v1/schedules/nightly", NULL, 200, "\"priority\":\"high\"");
    expect_status("GET", "/v1/schedules", NULL, 200, "{\"schedules\":[{\"name\":\"nightly\"");
    expect_status("POST", "/v1/schedules/nightly/pause", NULL, 200, "\"paused\":true");
    expect_status("POST", "/v1/schedules/nightly/resume", NULL, 200, "\"paused\":false");
    expect_status("DELETE", "/v1/schedules/nightly", NULL, 200, "\"deleted\":true");
    expect_status("GET", "/v1/schedules/nightly", NULL, 404, "not_found");
    expect_status("DELETE", "/v1/schedules/nightly", NULL, 404, "not_found");
    expect_status("POST", "/v1/schedules/nope/pause", NULL, 404, "not_found");
    expect_status("POST", "/v1/schedules",
                  "{\"name\":\"x\",\"cron\":\"61 * * * *\",\"job\":{\"type\":\"noop\"}}", 400,
                  "minute");
    expect_status("POST", "/v1/schedules",
                  "{\"name\":\"x\",\"cron\":\"@often\",\"job\":{\"type\":\"noop\"}}", 400, "@");
    expect_status("POST", "/v1/schedules",
                  "{\"name\":\"x\",\"cron\":\"@daily\",\"timezone\":\"Mars/Base\","
                  "\"job\":{\"type\":\"noop\"}}", 400, "timezone");
    expect_status("POST", "/v1/schedules",
                  "{\"name\":\"x\",\"cron\":\"@daily\",\"job\":{\"type\":\"noop\"},\"every\":1}",
                  400, "every");
    expect_status("POST", "/v1/schedules",
                  "{\"name\":\"x\",\"cron\":\"@daily\",\"job\":{\"type\":\"NO\"}}", 400, "job");
    expect_status("POST", "/v1/schedules",
                  "{\"name\":\"x\",\"cron\":\"0 0 30 2 *\",\"job\":{\"type\":\"noop\"}}", 400,
                  "never");
    expect_status("POST", "/v1/schedules",
                  "{\"name\":\"a b\",\"cron\":\"@daily\",\"job\":{\"type\":\"noop\"}}", 400,
                  "name");
    expect_status("POST", "/v1/schedules",
                  "{\"name\":\"x\",\"cron\":\"@daily\",\"catch_up\":\"all\","
                  "\"job\":{\"type\":\"noop\"}}", 400, "catch_up");
}

static void test_two_replicas_fire_once(void **state)
{
    start_sched_at(&g.c.sched, NULL);
    start_sched_at(&g.sched2, NULL);
    expect_status("POST", "/v1/schedules",
                  "{\"name\":\"every-minute\",\"cron\":\"* * * * *\","
                  "\"job\":{\"type\":\"echo\",\"payload\":{\"hello\":1}}}", 201, NULL);
    /* Forty schedules due at the same moment, raced by both replicas. */
    assert_int_equal(yt_sql_exec(g.c.env,
                                 "INSERT INTO schedules (name, cron, job, next_run_at)"
                                 " SELECT 'burst-' || i, '0 0 1 1 *', '{\"type\":\"noop\"}',"
                                 " date_trunc('second', now()) FROM generate_series(1, %d) i",
                                 BURST_SCHEDULES), 0);
    long long fired = yt_wait_sql(g.c.env, BURST_SCHEDULES, 20000,
                                  "SELECT count(*) FROM jobs WHERE schedule_name LIKE 'burst-%%'"
                                  " AND status = 'succeeded'");
    if (fired != BURST_SCHEDULES)
        fail_msg("expected %d burst jobs succeeded, got %lld", BURST_SCHEDULES, fired);
    /* The minute's firing: one job, within 75 s. */
    long long one = yt_wait_sql(g.c.env, 1, 75000,
                                "SELECT count(*) FROM jobs WHERE schedule_name = 'every-minute'"
                                " AND status = 'succeeded'");
    if (one != 1)
        fail_msg("expected the every-minute schedule's job succeeded within 75 s, got %lld", one);
    yt_nap_ms(3000);
    long long firings = yt_sql_int(g.c.env, "SELECT count(*) FROM schedule_firings");
    long long jobs = yt_sql_int(g.c.env, "SELECT count(*) FROM jobs WHERE schedule_name IS NOT"
                                         " NULL AND created_at < date_trunc('minute', now())");
    long long per_tick = yt_sql_int(g.c.env,
                                    "SELECT max(n) FROM (SELECT count(*) AS n FROM jobs"
                                    " WHERE schedule_name IS NOT NULL GROUP BY schedule_name,"
                                    " date_trunc('minute', created_at)) x");
    if (per_tick != 1)
        fail_msg("expected one job per schedule and tick, got up to %lld (firings %lld, jobs "
                 "%lld)", per_tick, firings, jobs);
    char result[128];
    yt_sql_text(g.c.env, result, sizeof result,
                "SELECT result::text FROM jobs WHERE schedule_name = 'every-minute' LIMIT 1");
    if (!strstr(result, "hello"))
        fail_msg("expected the fired echo job's result to be its template's payload, got %s",
                 result);
    /* GET /v1/jobs/{id} names the schedule that fired the job. */
    char job_id[64], path[128];
    yt_sql_text(g.c.env, job_id, sizeof job_id,
                "SELECT id::text FROM jobs WHERE schedule_name = 'every-minute' LIMIT 1");
    snprintf(path, sizeof path, "/v1/jobs/%s", job_id);
    expect_status("GET", path, NULL, 200, "\"schedule_name\" : \"every-minute\"");
    /* Set back to a moment that fired (a lost commit): recorded, not again. */
    assert_int_equal(yt_sql_exec(g.c.env, "UPDATE schedules SET next_run_at ="
                                          " (SELECT fire_at FROM schedule_firings WHERE"
                                          " schedule_name = 'burst-1') WHERE name = 'burst-1'"), 0);
    long long advanced = yt_wait_sql(g.c.env, 1, 10000,
                                     "SELECT count(*) FROM schedules WHERE name = 'burst-1'"
                                     " AND next_run_at > now()");
    long long again = yt_sql_int(g.c.env, "SELECT count(*) FROM jobs WHERE schedule_name ="
                                          " 'burst-1'");
    if (advanced != 1 || again != 1)
        fail_msg("expected the set-back schedule advanced without a second job, got advanced "
                 "%lld, jobs %lld", advanced, again);
    yt_cluster_stop_worker(&g.c, &g.c.sched);
    yt_cluster_stop_worker(&g.c, &g.sched2);
}

/* Waits until schedule name's last firing is last and its next is next
 * (UTC, "YYYY-MM-DD HH:MM:SS"). */
static void expect_fired(const char *name, const char *last, const char *next, int timeout_ms)
{
    long long ok = yt_wait_sql(g.c.env, 1, timeout_ms,
                               "SELECT count(*) FROM schedules WHERE name = '%s'"
                               " AND last_run_at = '%s+00' AND next_run_at = '%s+00'", name, last,
                               next);
    if (ok != 1) {
        char got[200];
        yt_sql_text(g.c.env, got, sizeof got,
                    "SELECT format('last %%s, next %%s', last_run_at AT TIME ZONE 'UTC',"
                    " next_run_at AT TIME ZONE 'UTC') FROM schedules WHERE name = '%s'", name);
        fail_msg("schedule %s: expected last firing %s UTC and next %s UTC, got %s", name, last,
                 next, got);
    }
}

static void test_dst_europe_berlin(void **state)
{
    assert_int_equal(yt_sql_exec(g.c.env,
                                 "INSERT INTO schedules (name, cron, timezone, job, next_run_at)"
                                 " VALUES ('berlin', '30 2 * * *', 'Europe/Berlin',"
                                 " '{\"type\":\"noop\"}', '2027-03-27 01:30:00+00')"), 0);
    /* Spring: 02:30 CET on the 27th; the 28th has no 02:30; then CEST. */
    start_sched_at(&g.c.sched, "2027-03-27 01:29:57");
    expect_fired("berlin", "2027-03-27 01:30:00", "2027-03-29 00:30:00", 20000);
    yt_cluster_stop_worker(&g.c, &g.c.sched);
    start_sched_at(&g.c.sched, "2027-03-29 00:29:57");
    expect_fired("berlin", "2027-03-29 00:30:00", "2027-03-30 00:30:00", 20000);
    yt_cluster_stop_worker(&g.c, &g.c.sched);
    /* Autumn: 02:30 happens at 00:30 UTC (CEST) and 01:30 UTC (CET). */
    assert_int_equal(yt_sql_exec(g.c.env, "UPDATE schedules SET next_run_at ="
                                          " '2027-10-31 00:30:00+00' WHERE name = 'berlin'"), 0);
    start_sched_at(&g.c.sched, "2027-10-31 00:29:57");
    expect_fired("berlin", "2027-10-31 00:30:00", "2027-11-01 01:30:00", 20000);
    yt_cluster_stop_worker(&g.c, &g.c.sched);
    start_sched_at(&g.c.sched, "2027-10-31 01:29:57");
    yt_nap_ms(6000);
    long long firings = yt_sql_int(g.c.env, "SELECT count(*) FROM schedule_firings WHERE"
                                            " schedule_name = 'berlin'");
    long long jobs = yt_wait_sql(g.c.env, 3, 15000,
                                 "SELECT count(*) FROM jobs WHERE schedule_name = 'berlin'"
                                 " AND status = 'succeeded'");
    yt_cluster_stop_worker(&g.c, &g.c.sched);
    if (firings != 3 || jobs != 3)
        fail_msg("schedule berlin: expected 3 firings and 3 jobs (03-27, 03-29, 10-31 once), got "
                 "%lld firings, %lld jobs", firings, jobs);
}

static void test_catch_up_after_downtime(void **state)
{
    /* Both missed the firings of the last 2 hours (every 10 minutes). */
    assert_int_equal(yt_sql_exec(g.c.env,
                                 "INSERT INTO schedules (name, cron, job, catch_up, next_run_at)"
                                 " VALUES ('skipper', '*/10 * * * *', '{\"type\":\"noop\"}',"
                                 " 'skip', date_trunc('hour', now()) - interval '2 hours'),"
                                 " ('oncer', '*/10 * * * *', '{\"type\":\"noop\"}', 'once',"
                                 " date_trunc('hour', now()) - interval '2 hours')"), 0);
    start_sched_at(&g.c.sched, NULL);
    long long advanced = yt_wait_sql(g.c.env, 2, 15000,
                                     "SELECT count(*) FROM schedules WHERE name IN ('skipper',"
                                     " 'oncer') AND next_run_at > now()");
    long long once = yt_wait_sql(g.c.env, 1, 15000,
                                 "SELECT count(*) FROM jobs WHERE schedule_name = 'oncer'");
    yt_nap_ms(1000);
    long long skipped = yt_sql_int(g.c.env, "SELECT count(*) FROM jobs WHERE schedule_name ="
                                            " 'skipper'");
    /* The one catch-up firing is for the latest missed time. */
    long long latest = yt_sql_int(g.c.env,
                                  "SELECT count(*) FROM schedule_firings WHERE schedule_name ="
                                  " 'oncer' AND fire_at > now() - interval '10 minutes'");
    yt_cluster_stop_worker(&g.c, &g.c.sched);
    if (advanced != 2 || once != 1 || skipped != 0 || latest != 1)
        fail_msg("catch-up: expected both advanced, one job for `once` (the latest missed "
                 "time) and none for `skip`; got advanced %lld, once %lld, latest %lld, skip "
                 "%lld", advanced, once, latest, skipped);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_two_replicas_fire_once),
        cmocka_unit_test(test_dst_europe_berlin),
        cmocka_unit_test(test_catch_up_after_downtime),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
