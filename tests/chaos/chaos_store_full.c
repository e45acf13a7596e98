/*
 * chaos_store_full.c - the NATS store runs out of room.
 *
 * nats-server gets a 16 MiB file store (max_file_store); 600 jobs of 16 KiB
 * are posted with no execute worker running, which needs about twice that
 * (each job and its accepted event are stored until the job is done). Once
 * the store is full the gateway must refuse cleanly with 503 (never 500,
 * never 202 for a job it then loses). Then an execute worker starts: done
 * jobs leave JOBS, room comes back, and the producer's retries (same
 * idempotency keys) are accepted. At the end every job answered 202 has
 * exactly one succeeded attempt and no other job exists. Recovery: from the
 * worker's start to the first 202.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "log.h"
#include "yt_chaos.h"
#include "yt_workers.h"

#define JOBS 600
#define PAD 16000

static void test_store_full(void **state)
{
    yt_cluster_t c = {0};
    setenv("YT_NATS_EXTRA_CONF", "jetstream { max_file_store: 16MB }", 1);
    int started = yt_chaos_cluster_start(&c, 1);
    unsetenv("YT_NATS_EXTRA_CONF");
    assert_int_equal(started, 0);
    char *job = malloc(PAD + 64);
    assert_non_null(job);
    int len = snprintf(job, 64, "{\"type\":\"noop\",\"payload\":{\"pad\":\"");
    memset(job + len, 'x', PAD);
    strcpy(job + len + PAD, "\"}}");
    yt_chaos_load_t load = {.port = c.port, .njobs = JOBS, .batch = 10, .threads = 2,
                            .job_json = job, .run = "full"};
    yt_chaos_t *ch;
    assert_int_equal(yt_chaos_start(&ch, &load), 0);
    /* Wait until the store is full: the gateway refuses. */
    long accepted = 0, refused = 0, no_answer = 0, other = 0;
    long long until = yt_now_ms() + 30000;
    while (yt_now_ms() < until) {
        yt_chaos_counts(ch, &accepted, &refused, &no_answer, &other);
        if (refused > 0 || accepted >= JOBS)
            break;
        yt_nap_ms(100);
    }
    long full_at = accepted;
    yt_nap_ms(1000); /* keep knocking on a full store for a while */
    long long worker_at = yt_now_ms();
    assert_int_equal(yt_worker_start(&c.exec, c.env, "execute", NULL, yt_chaos_env, 0), 0);
    int all = yt_chaos_finish(ch, 90000);
    yt_chaos_counts(ch, &accepted, &refused, &no_answer, &other);
    long long first = yt_chaos_first_ok_after(ch, worker_at);
    printf("chaos store-full: the 16 MiB store refused jobs after %ld were accepted\n", full_at);
    int verdict = yt_chaos_verdict(ch, c.env, "store-full", first < 0 ? -1 : first - worker_at,
                                   120000);
    yt_chaos_free(ch);
    yt_cluster_stop(&c);
    free(job);
    if (refused == 0)
        fail_msg("the gateway never refused: the store did not fill, the test proves nothing");
    if (other)
        fail_msg("the gateway answered %ld requests with something other than 202 or 503", other);
    assert_int_equal(all, 0);
    assert_int_equal(verdict, 0);
}

int main(void)
{
    yard_log_init("chaos_store_full", YARD_LOG_ERROR);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_store_full)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
