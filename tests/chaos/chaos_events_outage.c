/*
 * chaos_events_outage.c - the EVENTS stream unable to store anything for
 * longer than the JOBS consumer's deliveries last, while JOBS works.
 *
 * About 1,000 jobs/s are posted through the gateway to an execute worker.
 * After 1 s EVENTS stops taking messages (its subjects are moved to
 * events-paused.>, so a publish to events.> finds no stream: what a worker
 * sees while EVENTS has no leader) for OUTAGE_S seconds, then takes them
 * again. Meanwhile the worker can fetch, claim and run jobs but cannot
 * record their outcomes, whose events must be stored first. It must hold
 * them and try again: handing their messages back spends one of the
 * consumer's deliveries (YARD_JS_MAX_DELIVER) per try, one every 1 to 2 s,
 * and a message out of deliveries is never delivered again, its job
 * `running` for good (or marked dead by the poison path). With the default
 * 25 that takes about 40 s here; the consumers allow 6 so that the outage
 * can be shorter and exhaust them however slow the machine. At the end
 * every job answered 202 has exactly one succeeded attempt and no other job
 * exists. Recovery: from the end of the outage until every job succeeded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>

#include "harness.h"
#include "js_internal.h"
#include "log.h"
#include "yt_chaos.h"
#include "yt_workers.h"

#define JOBS 6000
#define OUTAGE_S 30 /* 6 deliveries take 6 to 12 s */

static char *const env[] = {"YARD_JS_ACK_WAIT_S=5", "YARD_JS_MAX_DELIVER=6", NULL};

/* Points EVENTS at subject (one filter) instead of its own. Returns 0 or -1. */
static int events_subject(yard_js_t *js, const char *subject)
{
    jsStreamInfo *si = NULL, *updated = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&si, yard_js_ctx(js), "EVENTS", NULL, &jerr) != NATS_OK) {
        fprintf(stderr, "chaos: EVENTS info: error %d\n", (int)jerr);
        return -1;
    }
    const char **had = si->Config->Subjects;
    int had_len = si->Config->SubjectsLen;
    const char *subjects[1] = {subject};
    si->Config->Subjects = subjects;
    si->Config->SubjectsLen = 1;
    natsStatus s = js_UpdateStream(&updated, yard_js_ctx(js), si->Config, NULL, &jerr);
    si->Config->Subjects = had;
    si->Config->SubjectsLen = had_len;
    jsStreamInfo_Destroy(si);
    jsStreamInfo_Destroy(updated);
    if (s != NATS_OK) {
        fprintf(stderr, "chaos: EVENTS subjects to %s: %s (error %d)\n", subject,
                natsStatus_GetText(s), (int)jerr);
        return -1;
    }
    return 0;
}

static void test_events_unavailable_longer_than_deliveries(void **state)
{
    yt_cluster_t c = {0};
    assert_int_equal(yt_cluster_start(&c, env), 0);
    assert_int_equal(yt_worker_start(&c.exec, c.env, "execute", NULL, env, 0), 0);
    yt_chaos_load_t load = {.port = c.port, .njobs = JOBS, .batch = 20, .threads = 2,
                            .batches_per_s = 25, .job_json = "{\"type\":\"noop\"}",
                            .run = "events"};
    yt_chaos_t *ch;
    assert_int_equal(yt_chaos_start(&ch, &load), 0);
    yt_nap_ms(1000);
    int paused = events_subject(c.js, "events-paused.>");
    yt_nap_ms(OUTAGE_S * 1000);
    int resumed = events_subject(c.js, "events.>");
    long long back = yt_now_ms();
    printf("chaos events-outage: EVENTS took nothing for %d s\n", OUTAGE_S);
    int all = yt_chaos_finish(ch, 60000);
    int verdict = yt_chaos_verdict(ch, c.env, "events-outage", -1, 60000);
    long long recovered = yt_now_ms() - back;
    if (verdict != 0)
        yt_chaos_show_stranded(c.js, "events-outage");
    else
        printf("chaos events-outage: every job succeeded %lld ms after EVENTS came back\n",
               recovered);
    yt_chaos_free(ch);
    yt_cluster_stop(&c);
    assert_int_equal(paused, 0);
    assert_int_equal(resumed, 0);
    assert_int_equal(all, 0);
    assert_int_equal(verdict, 0);
}

int main(void)
{
    yard_log_init("chaos_events_outage", YARD_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_unavailable_longer_than_deliveries)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
