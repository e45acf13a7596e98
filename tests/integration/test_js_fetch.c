/*
 * test_js_fetch.c - yard_js_fetch against a real nats-server under the
 * pattern that made nats.c 3.4.1's fetch write past its array: a publisher
 * keeps messages coming while fetches of 8 with a 2 ms wait (their answers
 * often arrive after the call returned) mix with one-message waits and
 * naks. Every batch must hold at most what was asked for, and every
 * message must be acked in the end (none lost). Also: a wait is not ended
 * by late answers to earlier requests, a wait for a batch returns when the
 * first message arrives, and in-progress acks hold a message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "harness.h"
#include "js.h"

#define STRESS_MAX_MSGS 20000   /* the publisher stops here ... */
#define STRESS_PUBLISH_MS 4000  /* ... or after this long */
#define STRESS_DEADLINE_MS 10000 /* every message acked within this */
#define STRESS_BATCH 8
#define STRESS_LOOK_MS 2
#define STRESS_WAIT_MS 200

typedef struct {
    yt_env_t *env;
    yard_config_t cfg;
    yard_js_t *js;
} fixture_t;

static int setup(void **state)
{
    static fixture_t f;
    memset(&f, 0, sizeof f);
    if (yt_env_create(&f.env, YT_NATS) != 0)
        return -1;
    yard_config_defaults(&f.cfg);
    yard_config_set(&f.cfg, "nats_url", f.env->nats_url);
    yard_config_set(&f.cfg, "js_publish_timeout_ms", "2000");
    if (yard_js_connect(&f.js, &f.cfg, "test") != 0)
        return -1;
    const char *queues[] = {"stress", "quiet", "wake"};
    if (yard_js_ensure_topology(f.js, &f.cfg, queues, 3, NULL) != 0)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    yard_js_destroy(f->js, 1000);
    yt_env_destroy(f->env);
    return 0;
}

typedef struct {
    yard_js_t *js;
    atomic_int published; /* accepted by the server */
    atomic_int failed;
    atomic_int done;
} publisher_t;

static void on_puback(void *ud, int rc, const yard_js_puback_t *ack)
{
    publisher_t *p = ud;
    (void)ack;
    if (rc == 0)
        atomic_fetch_add(&p->published, 1);
    else
        atomic_fetch_add(&p->failed, 1);
}

/* Publishes messages "0", "1", ... in bursts of 0-19 with pauses of up to
 * 3 ms, like the repro of the nats.c overflow. */
static void *publisher_main(void *arg)
{
    publisher_t *p = arg;
    unsigned seed = 7;
    int n = 0;
    long long end = yt_now_ms() + STRESS_PUBLISH_MS;
    while (n < STRESS_MAX_MSGS && yt_now_ms() < end) {
        int burst = rand_r(&seed) % 20;
        for (int i = 0; i < burst && n < STRESS_MAX_MSGS; i++) {
            char data[16];
            int len = snprintf(data, sizeof data, "%d", n);
            yard_js_pub_t pub = {.subject = "jobs.execute.stress", .data = data,
                                 .len = (size_t)len};
            int rc;
            while ((rc = yard_js_publish_async(p->js, &pub, on_puback, p)) == YARD_EBUSY)
                usleep(500);
            if (rc == 0)
                n++;
            else
                atomic_fetch_add(&p->failed, 1);
        }
        usleep((useconds_t)(rand_r(&seed) % 3000));
    }
    yard_js_publish_wait(p->js, 5000);
    atomic_store(&p->done, 1);
    return NULL;
}

static void test_batches_never_exceed_and_nothing_is_lost(void **state)
{
    fixture_t *f = *state;
    publisher_t pub = {.js = f->js};
    yard_js_consumer_t *c = NULL;
    static unsigned char acked[STRESS_MAX_MSGS];
    int distinct = 0, fetches = 0, most = 0, idle = 0;
    long redeliveries = 0;
    unsigned seed = 11;
    memset(acked, 0, sizeof acked);
    assert_int_equal(yard_js_consumer_bind(&c, f->js, "JOBS", "execute_stress"), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, publisher_main, &pub), 0);
    long long deadline = yt_now_ms() + STRESS_DEADLINE_MS;
    while (yt_now_ms() < deadline &&
           !(atomic_load(&pub.done) && distinct == atomic_load(&pub.published))) {
        yard_js_batch_t b;
        int want = idle ? 1 : STRESS_BATCH;
        int rc = yard_js_fetch(c, &b, want, idle ? STRESS_WAIT_MS : STRESS_LOOK_MS);
        if (rc != 0)
            fail_msg("fetch %d of %d: expected 0, got %s", fetches, want, yard_strerror(rc));
        if (b.count > want)
            fail_msg("fetch %d returned %d messages, expected at most the batch of %d", fetches,
                     b.count, want);
        fetches++;
        most = b.count > most ? b.count : most;
        idle = b.count == 0;
        for (int i = 0; i < b.count; i++) {
            size_t len = 0;
            const char *data = yard_js_msg_data(b.msgs[i], &len);
            char text[16] = "";
            memcpy(text, data, len < sizeof text - 1 ? len : sizeof text - 1);
            int n = atoi(text);
            if (!data || n < 0 || n >= STRESS_MAX_MSGS)
                fail_msg("fetch %d: unexpected payload '%s'", fetches, text);
            uint64_t delivered = 0;
            assert_int_equal(yard_js_msg_meta(b.msgs[i], NULL, &delivered), 0);
            redeliveries += delivered > 1;
            int r = rand_r(&seed) % 10;
            if (r == 0) {
                assert_int_equal(yard_js_nak(b.msgs[i], 20), 0);
            } else if (r == 1) {
                assert_int_equal(yard_js_nak(b.msgs[i], 0), 0);
            } else {
                assert_int_equal(yard_js_ack(b.msgs[i]), 0);
                if (!acked[n]++)
                    distinct++;
            }
        }
        yard_js_batch_destroy(&b);
        if (rand_r(&seed) % 50 == 0)
            usleep((useconds_t)(rand_r(&seed) % 50000)); /* a slow batch */
    }
    atomic_store(&pub.done, 1);
    pthread_join(th, NULL);
    int published = atomic_load(&pub.published);
    print_message("%d published, %d acked, %d fetches, largest batch %d, %ld redeliveries\n",
                  published, distinct, fetches, most, redeliveries);
    assert_int_equal(atomic_load(&pub.failed), 0);
    assert_true(published > 1000);
    if (distinct != published)
        fail_msg("expected all %d published messages acked within %d ms, got %d", published,
                 STRESS_DEADLINE_MS, distinct);

    /* The server saw the acks: nothing pending, nothing waiting for an ack
     * (beyond what late answers left on the subscription, handed back). */
    yard_js_batch_t held;
    assert_int_equal(yard_js_fetch_held(c, &held), 0);
    for (int i = 0; i < held.count; i++)
        assert_int_equal(yard_js_ack(held.msgs[i]), 0);
    yard_js_batch_destroy(&held);
    uint64_t pending = 1, ack_pending = 1;
    for (int i = 0; i < 50 && (pending || ack_pending); i++) {
        usleep(20000);
        assert_int_equal(
            yard_js_consumer_depth(&pending, &ack_pending, f->js, "JOBS", "execute_stress"), 0);
    }
    if (pending || ack_pending)
        fail_msg("expected the consumer drained, got %llu pending, %llu awaiting an ack",
                 (unsigned long long)pending, (unsigned long long)ack_pending);
    yard_js_consumer_destroy(c);
}

/* Looks that end before their answers came leave "no messages" statuses
 * behind; a wait that follows still waits its whole time. */
static void test_late_answers_do_not_end_a_wait(void **state)
{
    fixture_t *f = *state;
    yard_js_consumer_t *c = NULL;
    assert_int_equal(yard_js_consumer_bind(&c, f->js, "JOBS", "execute_quiet"), 0);
    for (int i = 0; i < 20; i++) {
        yard_js_batch_t b;
        assert_int_equal(yard_js_fetch(c, &b, STRESS_BATCH, 1), 0);
        assert_int_equal(b.count, 0);
        yard_js_batch_destroy(&b);
    }
    yard_js_batch_t b;
    long long t0 = yt_now_ms();
    assert_int_equal(yard_js_fetch(c, &b, 1, 300), 0);
    long long took = yt_now_ms() - t0;
    assert_int_equal(b.count, 0);
    yard_js_batch_destroy(&b);
    if (took < 280 || took > 1000)
        fail_msg("expected an empty 300 ms wait to last 300 ms, it took %lld ms", took);
    yard_js_consumer_destroy(c);
}

typedef struct {
    yard_js_t *js;
    int delay_ms;
} late_pub_t;

static void *late_publish(void *arg)
{
    late_pub_t *lp = arg;
    usleep((useconds_t)lp->delay_ms * 1000);
    yard_js_pub_t pub = {.subject = "jobs.execute.wake", .data = "w", .len = 1};
    assert_int_equal(yard_js_publish(NULL, lp->js, &pub, 2000), 0);
    return NULL;
}

/* A wait for a whole batch returns with the first message, not at its end. */
static void test_wait_for_a_batch_returns_with_the_first(void **state)
{
    fixture_t *f = *state;
    yard_js_consumer_t *c = NULL;
    late_pub_t lp = {f->js, 200};
    pthread_t th;
    assert_int_equal(yard_js_consumer_bind(&c, f->js, "JOBS", "execute_wake"), 0);
    assert_int_equal(pthread_create(&th, NULL, late_publish, &lp), 0);
    yard_js_batch_t b;
    long long t0 = yt_now_ms();
    assert_int_equal(yard_js_fetch(c, &b, 64, 3000), 0);
    long long took = yt_now_ms() - t0;
    pthread_join(th, NULL);
    assert_int_equal(b.count, 1);
    if (took > 1500)
        fail_msg("expected the wait to end when the message came (~200 ms), it took %lld ms",
                 took);
    assert_int_equal(yard_js_ack_sync(b.msgs[0], 2000), 0);
    yard_js_batch_destroy(&b);
    yard_js_consumer_destroy(c);
}

/* In-progress acks keep a message from being redelivered past AckWait;
 * after they stop, it comes back with its delivery count raised. */
static void test_in_progress_holds_a_message(void **state)
{
    fixture_t *f = *state;
    yard_config_t cfg = f->cfg;
    yard_config_set(&cfg, "js_ack_wait_s", "1");
    const char *queues[] = {"held"};
    assert_int_equal(yard_js_ensure_topology(f->js, &cfg, queues, 1, NULL), 0);
    yard_js_pub_t pub = {.subject = "jobs.execute.held", .data = "h", .len = 1};
    assert_int_equal(yard_js_publish(NULL, f->js, &pub, 2000), 0);
    yard_js_consumer_t *c = NULL;
    assert_int_equal(yard_js_consumer_bind(&c, f->js, "JOBS", "execute_held"), 0);
    yard_js_batch_t b, again;
    assert_int_equal(yard_js_fetch(c, &b, 4, 2000), 0);
    assert_int_equal(b.count, 1);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(yard_js_in_progress(b.msgs[0]), 0);
        assert_int_equal(yard_js_fetch(c, &again, 1, 400), 0);
        if (again.count != 0)
            fail_msg("expected no redelivery while in progress, got one after %d ms", i * 400);
        yard_js_batch_destroy(&again);
    }
    assert_int_equal(yard_js_fetch(c, &again, 1, 3000), 0);
    assert_int_equal(again.count, 1);
    uint64_t delivered = 0;
    assert_int_equal(yard_js_msg_meta(again.msgs[0], NULL, &delivered), 0);
    assert_true(delivered == 2);
    assert_int_equal(yard_js_term(again.msgs[0]), 0);
    assert_int_equal(yard_js_ack(again.msgs[0]), 0); /* answered already: nothing sent */
    yard_js_batch_destroy(&again);
    yard_js_batch_destroy(&b);
    yard_js_consumer_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches_never_exceed_and_nothing_is_lost),
        cmocka_unit_test(test_late_answers_do_not_end_a_wait),
        cmocka_unit_test(test_wait_for_a_batch_returns_with_the_first),
        cmocka_unit_test(test_in_progress_holds_a_message),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
