/*
 * test_js.c - libyard's JetStream layer against a real nats-server:
 * topology ensure is idempotent, Nats-Msg-Id dedupes, async publishes all
 * complete, fetch/ack, nak-with-delay is not redelivered early, the
 * max-deliveries advisory arrives, message accessors and stream state,
 * core NATS notify and listen, a lost PubAck times out, and a stopped
 * server is reported as unavailable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "harness.h"
#include "js_internal.h"
#include "log.h"

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
    yard_config_set(&f.cfg, "js_publish_timeout_ms", "1000");
    if (yard_js_connect(&f.js, &f.cfg, "test") != 0)
        return -1;
    const char *queues[] = {"default", "poison", "mail.eu"};
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

static int64_t stream_created(yard_js_t *js, const char *name)
{
    jsStreamInfo *si = NULL;
    assert_int_equal(js_GetStreamInfo(&si, yard_js_ctx(js), name, NULL, NULL), NATS_OK);
    int64_t created = si->Created;
    jsStreamInfo_Destroy(si);
    return created;
}

static void test_topology_ensure_twice_is_noop(void **state)
{
    fixture_t *f = *state;
    const char *queues[] = {"default", "poison", "mail.eu", "extra"};
    int changes = -1;
    int64_t created = stream_created(f->js, YARD_STREAM_JOBS);
    /* One new queue: exactly its three priority tiers' consumers are created. */
    assert_int_equal(yard_js_ensure_topology(f->js, &f->cfg, queues, 4, &changes), 0);
    assert_int_equal(changes, 3);
    assert_int_equal(yard_js_ensure_topology(f->js, &f->cfg, queues, 4, &changes), 0);
    assert_int_equal(changes, 0);
    assert_true(stream_created(f->js, YARD_STREAM_JOBS) == created);

    /* The topology is what DESIGN.md says. */
    jsStreamInfo *si = NULL;
    assert_int_equal(js_GetStreamInfo(&si, yard_js_ctx(f->js), "JOBS", NULL, NULL), NATS_OK);
    assert_int_equal(si->Config->Retention, js_WorkQueuePolicy);
    assert_string_equal(si->Config->Subjects[0], "jobs.>");
    jsStreamInfo_Destroy(si);
    uint64_t p, ap;
    assert_int_equal(yard_js_consumer_depth(&p, &ap, f->js, "JOBS", "execute_mail_eu"), 0);
    assert_int_equal(yard_js_consumer_depth(&p, &ap, f->js, "JOBS", "execute_mail_eu_HIGH"), 0);
    assert_int_equal(yard_js_consumer_depth(&p, &ap, f->js, "JOBS", "execute_mail_eu_LOW"), 0);
    assert_int_equal(yard_js_consumer_depth(&p, &ap, f->js, "EVENTS", "audit"), 0);
    assert_int_equal(yard_js_consumer_depth(&p, &ap, f->js, "JOBS", "schedule"), 0);
    assert_int_equal(yard_js_consumer_depth(&p, &ap, f->js, "JOBS", "notify"), 0);
    assert_int_equal(yard_js_consumer_depth(&p, &ap, f->js, "EVENTS", "submissions"), 0);

    /* A changed setting is applied as an update, once. */
    yard_config_t cfg = f->cfg;
    yard_config_set(&cfg, "js_ack_wait_s", "90");
    assert_int_equal(yard_js_ensure_topology(f->js, &cfg, queues, 4, &changes), 0);
    assert_int_equal(changes, 16); /* every consumer's AckWait: 4 fixed, 4 queues x 3 tiers */
    assert_int_equal(yard_js_ensure_topology(f->js, &cfg, queues, 4, &changes), 0);
    assert_int_equal(changes, 0);
    assert_int_equal(yard_js_ensure_topology(f->js, &f->cfg, queues, 4, &changes), 0);

    const char *bad[] = {"Bad Name"};
    assert_int_equal(yard_js_ensure_topology(f->js, &f->cfg, bad, 1, NULL), YARD_EINVAL);
}

static void test_duplicate_msg_id_reported(void **state)
{
    fixture_t *f = *state;
    yard_js_puback_t a, b, c;
    yard_js_pub_t pub = {.subject = "jobs.notify", .msg_id = "dup-1", .data = "x", .len = 1};
    assert_int_equal(yard_js_publish(&a, f->js, &pub, 2000), 0);
    assert_false(a.duplicate);
    assert_int_equal(yard_js_publish(&b, f->js, &pub, 2000), 0);
    assert_true(b.duplicate);
    assert_true(b.seq == a.seq);
    pub.msg_id = "dup-2";
    assert_int_equal(yard_js_publish(&c, f->js, &pub, 2000), 0);
    assert_false(c.duplicate);
    assert_true(c.seq > a.seq);
    /* A subject no stream holds has no responder. */
    yard_js_pub_t nowhere = {.subject = "nowhere.at.all", .data = "x", .len = 1};
    assert_int_equal(yard_js_publish(NULL, f->js, &nowhere, 1000), YARD_EUNAVAIL);
}

typedef struct {
    pthread_mutex_t mu;
    int ok, failed, dups, last_rc;
} acks_t;

static void count_ack(void *ud, int rc, const yard_js_puback_t *ack)
{
    acks_t *a = ud;
    pthread_mutex_lock(&a->mu);
    if (rc == 0) {
        a->ok++;
        a->dups += ack->duplicate;
    } else {
        a->failed++;
        a->last_rc = rc;
    }
    pthread_mutex_unlock(&a->mu);
}

static int fetch_all(yard_js_consumer_t *c, int want, int64_t timeout_ms)
{
    int got = 0;
    long long deadline = yt_now_ms() + timeout_ms;
    while (got < want && yt_now_ms() < deadline) {
        yard_js_batch_t list;
        assert_int_equal(yard_js_fetch(c, &list, 256, 500), 0);
        for (int i = 0; i < list.count; i++)
            assert_int_equal(yard_js_ack(list.msgs[i]), 0);
        got += list.count;
        yard_js_batch_destroy(&list);
    }
    return got;
}

static void test_async_publish_then_fetch_ack(void **state)
{
    fixture_t *f = *state;
    enum { N = 5000 };
    acks_t acks = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0};
    char id[32];
    int busy = 0;
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "async-%d", i % (N - 10)); /* last 10 repeat ids */
        yard_js_pub_t pub = {.subject = "jobs.execute.default", .msg_id = id, .data = id,
                             .len = strlen(id)};
        int rc;
        while ((rc = yard_js_publish_async(f->js, &pub, count_ack, &acks)) == YARD_EBUSY) {
            busy++;
            usleep(1000);
        }
        assert_int_equal(rc, 0);
    }
    assert_int_equal(yard_js_publish_wait(f->js, 10000), 0);
    assert_int_equal(yard_js_pending(f->js), 0);
    assert_int_equal(acks.ok, N);
    assert_int_equal(acks.failed, 0);
    assert_int_equal(acks.dups, 10);

    yard_js_consumer_t *c = NULL;
    assert_int_equal(yard_js_consumer_bind(&c, f->js, "JOBS", "execute_default"), 0);
    assert_int_equal(fetch_all(c, N - 10, 20000), N - 10);
    uint64_t pending = 1, ack_pending = 1;
    /* Acks are asynchronous: give the server a moment to count them. */
    for (int i = 0; i < 50 && (pending || ack_pending); i++) {
        usleep(20000);
        assert_int_equal(yard_js_consumer_depth(&pending, &ack_pending, f->js, "JOBS",
                                                "execute_default"), 0);
    }
    assert_true(pending == 0 && ack_pending == 0);
    yard_js_batch_t list;
    assert_int_equal(yard_js_fetch(c, &list, 10, 200), 0);
    assert_int_equal(list.count, 0);
    yard_js_batch_destroy(&list);
    yard_js_consumer_destroy(c);
}

/* Work queue: a job stays in JOBS until its execute consumer acks it (a
 * nak keeps it), and leaves right after the ack. */
static void test_job_kept_until_its_consumer_acked(void **state)
{
    fixture_t *f = *state;
    yard_js_puback_t ack;
    yard_js_pub_t pub = {.subject = "jobs.execute.extra", .msg_id = "wq-1", .data = "i",
                         .len = 1};
    yard_js_consumer_t *exec = NULL;
    yard_js_msg_t *m = NULL;
    yard_js_batch_t list;
    assert_int_equal(yard_js_publish(&ack, f->js, &pub, 2000), 0);
    assert_int_equal(yard_js_consumer_bind(&exec, f->js, "JOBS", "execute_extra"), 0);
    assert_int_equal(yard_js_fetch(exec, &list, 10, 2000), 0);
    assert_int_equal(list.count, 1);
    assert_int_equal(yard_js_nak(list.msgs[0], 0), 0);
    yard_js_batch_destroy(&list);
    usleep(100000);
    assert_int_equal(yard_js_get_msg(&m, f->js, "JOBS", ack.seq), 0); /* naked: still there */
    yard_js_msg_destroy(m);
    assert_int_equal(yard_js_fetch(exec, &list, 10, 2000), 0);
    assert_int_equal(list.count, 1);
    assert_int_equal(yard_js_ack_sync(list.msgs[0], 2000), 0);
    yard_js_batch_destroy(&list);
    int rc = 0;
    for (int i = 0; i < 50 && (rc = yard_js_get_msg(&m, f->js, "JOBS", ack.seq)) == 0; i++) {
        yard_js_msg_destroy(m);
        usleep(20000);
    }
    assert_int_equal(rc, YARD_ENOTFOUND);
    yard_js_consumer_destroy(exec);
}

/* A JOBS stream an older version made with interest retention is
 * recreated as a work queue when empty, and refused while it holds jobs. */
static void test_old_interest_jobs_stream_is_replaced_only_when_empty(void **state)
{
    fixture_t *f = *state;
    const char *queues[] = {"default"};
    jsStreamConfig sc;
    const char *subjects[] = {"jobs.>"};
    jsStreamConfig_Init(&sc);
    sc.Name = "JOBS";
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Retention = js_InterestPolicy;
    assert_int_equal(js_DeleteStream(yard_js_ctx(f->js), "JOBS", NULL, NULL), NATS_OK);
    assert_int_equal(js_AddStream(NULL, yard_js_ctx(f->js), &sc, NULL, NULL), NATS_OK);
    /* Interest retention keeps a message only while a consumer wants it. */
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = "old";
    cc.AckPolicy = js_AckExplicit;
    assert_int_equal(js_AddConsumer(NULL, yard_js_ctx(f->js), "JOBS", &cc, NULL, NULL), NATS_OK);
    yard_js_pub_t pub = {.subject = "jobs.execute.default", .msg_id = "old-1", .data = "o",
                         .len = 1};
    assert_int_equal(yard_js_publish(NULL, f->js, &pub, 2000), 0);
    int changes = 0;
    assert_int_equal(yard_js_ensure_topology(f->js, &f->cfg, queues, 1, &changes), YARD_ESTATE);
    /* Emptied: recreated as a work queue with its consumers. */
    assert_int_equal(js_PurgeStream(yard_js_ctx(f->js), "JOBS", NULL, NULL), NATS_OK);
    assert_int_equal(yard_js_ensure_topology(f->js, &f->cfg, queues, 1, &changes), 0);
    jsStreamInfo *si = NULL;
    assert_int_equal(js_GetStreamInfo(&si, yard_js_ctx(f->js), "JOBS", NULL, NULL), NATS_OK);
    assert_int_equal(si->Config->Retention, js_WorkQueuePolicy);
    jsStreamInfo_Destroy(si);
    uint64_t p, ap;
    assert_int_equal(yard_js_consumer_depth(&p, &ap, f->js, "JOBS", "execute_default"), 0);
}

static void test_nak_with_delay_not_redelivered_early(void **state)
{
    fixture_t *f = *state;
    yard_js_pub_t pub = {.subject = "jobs.execute.mail.eu", .msg_id = "nak-1", .data = "n",
                         .len = 1};
    yard_js_consumer_t *c = NULL;
    yard_js_batch_t list;
    uint64_t seq = 0, delivered = 0;
    assert_int_equal(yard_js_publish(NULL, f->js, &pub, 2000), 0);
    assert_int_equal(yard_js_consumer_bind(&c, f->js, "JOBS", "execute_mail_eu"), 0);
    assert_int_equal(yard_js_fetch(c, &list, 1, 2000), 0);
    assert_int_equal(list.count, 1);
    assert_int_equal(yard_js_msg_meta(list.msgs[0], &seq, &delivered), 0);
    assert_true(delivered == 1);
    long long t0 = yt_now_ms();
    assert_int_equal(yard_js_nak(list.msgs[0], 1500), 0);
    yard_js_batch_destroy(&list);

    assert_int_equal(yard_js_fetch(c, &list, 1, 700), 0);
    if (list.count != 0)
        fail_msg("expected no redelivery within 700 ms of a 1500 ms nak, got one after %lld ms",
                 yt_now_ms() - t0);
    yard_js_batch_destroy(&list);

    assert_int_equal(yard_js_fetch(c, &list, 1, 3000), 0);
    assert_int_equal(list.count, 1);
    long long gap = yt_now_ms() - t0;
    if (gap < 1450)
        fail_msg("redelivered after %lld ms, expected >= 1500 ms", gap);
    assert_int_equal(yard_js_msg_meta(list.msgs[0], NULL, &delivered), 0);
    assert_true(delivered == 2);
    assert_int_equal(yard_js_term(list.msgs[0]), 0);
    yard_js_batch_destroy(&list);
    yard_js_consumer_destroy(c);
}

typedef struct {
    pthread_mutex_t mu;
    uint64_t seq;
    char consumer[64];
} advisory_t;

static void on_max_deliveries(void *ud, const char *stream, const char *consumer, uint64_t seq)
{
    advisory_t *a = ud;
    pthread_mutex_lock(&a->mu);
    a->seq = seq;
    snprintf(a->consumer, sizeof a->consumer, "%s", consumer);
    pthread_mutex_unlock(&a->mu);
}

static void test_max_deliveries_advisory_arrives(void **state)
{
    fixture_t *f = *state;
    /* A consumer that gives up after 2 deliveries with a 1 s AckWait. */
    yard_config_t cfg = f->cfg;
    yard_config_set(&cfg, "js_max_deliver", "2");
    yard_config_set(&cfg, "js_ack_wait_s", "1");
    const char *queues[] = {"poison"};
    assert_int_equal(yard_js_ensure_topology(f->js, &cfg, queues, 1, NULL), 0);

    advisory_t adv = {PTHREAD_MUTEX_INITIALIZER, 0, ""};
    yard_js_watch_t *w = NULL;
    assert_int_equal(
        yard_js_watch_max_deliveries(&w, f->js, "JOBS", "execute_poison", on_max_deliveries, &adv),
        0);
    yard_js_puback_t ack;
    yard_js_pub_t pub = {.subject = "jobs.execute.poison", .msg_id = "poison-1", .data = "p",
                         .len = 1};
    assert_int_equal(yard_js_publish(&ack, f->js, &pub, 2000), 0);

    yard_js_consumer_t *c = NULL;
    assert_int_equal(yard_js_consumer_bind(&c, f->js, "JOBS", "execute_poison"), 0);
    int deliveries = 0;
    long long deadline = yt_now_ms() + 10000;
    uint64_t seen = 0;
    while (yt_now_ms() < deadline) {
        yard_js_batch_t list;
        /* Never ack: the worker "crashed" on this message. */
        assert_int_equal(yard_js_fetch(c, &list, 1, 500), 0);
        deliveries += list.count;
        yard_js_batch_destroy(&list);
        pthread_mutex_lock(&adv.mu);
        seen = adv.seq;
        pthread_mutex_unlock(&adv.mu);
        if (seen)
            break;
    }
    assert_int_equal(deliveries, 2);
    if (seen != ack.seq)
        fail_msg("expected a max-deliveries advisory for seq %llu, got %llu",
                 (unsigned long long)ack.seq, (unsigned long long)seen);
    assert_string_equal(adv.consumer, "execute_poison");

    /* The message is still in the stream: move it out by sequence. */
    yard_js_msg_t *m = NULL;
    assert_int_equal(yard_js_get_msg(&m, f->js, "JOBS", seen), 0);
    size_t len = 0;
    assert_non_null(yard_js_msg_data(m, &len));
    assert_int_equal(len, 1);
    yard_js_msg_destroy(m);
    assert_int_equal(yard_js_delete_msg(f->js, "JOBS", seen), 0);
    assert_int_equal(yard_js_get_msg(&m, f->js, "JOBS", seen), YARD_ENOTFOUND);
    assert_int_equal(yard_js_delete_msg(f->js, "JOBS", seen), YARD_ENOTFOUND);

    yard_js_watch_destroy(w);
    yard_js_consumer_destroy(c);
}

/* The message accessors on a message read by sequence, and the stream state. */
static void test_msg_accessors_and_stream_state(void **state)
{
    fixture_t *f = *state;
    yard_js_header_t hdrs[] = {{"Yard-Job-Id", "job-7"}, {"Yard-Attempts", "3"}};
    yard_js_pub_t pub = {.subject = "dlq.jobs.execute.acc", .msg_id = "acc-1", .headers = hdrs,
                         .nheaders = 2, .data = "body", .len = 4};
    yard_js_puback_t ack;
    assert_int_equal(yard_js_publish(&ack, f->js, &pub, 2000), 0);
    uint64_t first = 0, last = 0, count = 0;
    assert_int_equal(yard_js_stream_state(&first, &last, &count, f->js, "DLQ"), 0);
    if (last != ack.seq || count < 1 || first > last)
        fail_msg("DLQ state: expected last %llu and count >= 1, got first %llu last %llu "
                 "count %llu", (unsigned long long)ack.seq, (unsigned long long)first,
                 (unsigned long long)last, (unsigned long long)count);
    assert_int_equal(yard_js_stream_state(&first, &last, &count, f->js, "NOSUCH"),
                     YARD_ENOTFOUND);

    yard_js_msg_t *m = NULL;
    size_t len = 0;
    assert_int_equal(yard_js_get_msg(&m, f->js, "DLQ", ack.seq), 0);
    assert_string_equal(yard_js_msg_subject(m), "dlq.jobs.execute.acc");
    const void *data = yard_js_msg_data(m, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(data, "body", 4);
    assert_string_equal(yard_js_msg_header(m, "Yard-Job-Id"), "job-7");
    assert_string_equal(yard_js_msg_header(m, "Yard-Attempts"), "3");
    assert_null(yard_js_msg_header(m, "Yard-Missing"));
    assert_null(yard_js_msg_header(NULL, "Yard-Job-Id"));
    /* Read by sequence, not delivered by a consumer: no metadata. */
    assert_int_equal(yard_js_msg_meta(m, NULL, NULL), YARD_EINVAL);
    yard_js_msg_destroy(m);
    yard_js_msg_destroy(NULL);
    yard_js_batch_destroy(NULL);
}

typedef struct {
    pthread_mutex_t mu;
    int n;
    char subject[64], data[64];
} heard_t;

static void on_heard(void *ud, const char *subject, const void *data, size_t len)
{
    heard_t *h = ud;
    pthread_mutex_lock(&h->mu);
    h->n++;
    snprintf(h->subject, sizeof h->subject, "%s", subject);
    snprintf(h->data, sizeof h->data, "%.*s", (int)len, len ? (const char *)data : "");
    pthread_mutex_unlock(&h->mu);
}

static int heard_count(heard_t *h, int want, int timeout_ms)
{
    long long deadline = yt_now_ms() + timeout_ms;
    int n;
    for (;;) {
        pthread_mutex_lock(&h->mu);
        n = h->n;
        pthread_mutex_unlock(&h->mu);
        if (n >= want || yt_now_ms() >= deadline)
            return n;
        usleep(5000);
    }
}

/* Core NATS: a listen hears what is notified on its subjects, and nothing
 * once destroyed. */
static void test_notify_reaches_listen(void **state)
{
    fixture_t *f = *state;
    heard_t h = {PTHREAD_MUTEX_INITIALIZER, 0, "", ""};
    yard_js_listen_t *l = NULL;
    assert_int_equal(yard_js_listen(&l, f->js, "yt.heard.*", on_heard, &h), 0);
    assert_int_equal(yard_js_notify(f->js, "yt.other", "x", 1), 0);
    assert_int_equal(yard_js_notify(f->js, "yt.heard.one", "hello", 5), 0);
    if (heard_count(&h, 1, 2000) != 1)
        fail_msg("expected 1 message on yt.heard.* within 2 s, got %d", h.n);
    assert_string_equal(h.subject, "yt.heard.one");
    assert_string_equal(h.data, "hello");
    assert_int_equal(yard_js_notify(f->js, "yt.heard.two", NULL, 0), 0);
    assert_int_equal(heard_count(&h, 2, 2000), 2);
    assert_string_equal(h.subject, "yt.heard.two");
    assert_string_equal(h.data, "");
    yard_js_listen_destroy(l);
    yard_js_listen_destroy(NULL);
    assert_int_equal(yard_js_notify(f->js, "yt.heard.three", "late", 4), 0);
    usleep(200000);
    assert_int_equal(heard_count(&h, 3, 0), 2);
}

static void test_lost_puback_times_out_and_down_is_unavailable(void **state)
{
    fixture_t *f = *state;
    acks_t acks = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0};
    yard_js_pub_t pub = {.subject = "jobs.notify", .msg_id = "frozen-1", .data = "f", .len = 1};

    /* A frozen server never answers: the PubAck times out (1 s here). */
    assert_int_equal(yt_freeze(f->env->nats_pid), 0);
    long long t0 = yt_now_ms();
    assert_int_equal(yard_js_publish_async(f->js, &pub, count_ack, &acks), 0);
    assert_int_equal(yard_js_publish_wait(f->js, 5000), 0);
    long long waited = yt_now_ms() - t0;
    kill(f->env->nats_pid, SIGCONT);
    assert_int_equal(acks.ok, 0);
    assert_int_equal(acks.failed, 1);
    assert_int_equal(acks.last_rc, YARD_ETIMEOUT);
    if (waited < 900 || waited > 4000)
        fail_msg("expected the PubAck timeout after ~1000 ms, came after %lld ms", waited);

    /* A stopped server: publishing is refused at once, not queued. */
    assert_int_equal(yt_nats_stop(f->env), 0);
    for (int i = 0; i < 100 && yard_js_connected(f->js); i++)
        usleep(20000);
    assert_int_equal(yard_js_publish_async(f->js, &pub, count_ack, &acks), YARD_EUNAVAIL);

    /* Back again: the connection recovers and publishing works. */
    assert_int_equal(yt_nats_start(f->env), 0);
    for (int i = 0; i < 250 && !yard_js_connected(f->js); i++)
        usleep(20000);
    assert_true(yard_js_connected(f->js));
    pub.msg_id = "after-restart";
    assert_int_equal(yard_js_publish(NULL, f->js, &pub, 5000), 0);
}

int main(void)
{
    yard_log_init("test_js", YARD_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topology_ensure_twice_is_noop),
        cmocka_unit_test(test_duplicate_msg_id_reported),
        cmocka_unit_test(test_async_publish_then_fetch_ack),
        cmocka_unit_test(test_job_kept_until_its_consumer_acked),
        cmocka_unit_test(test_nak_with_delay_not_redelivered_early),
        cmocka_unit_test(test_max_deliveries_advisory_arrives),
        cmocka_unit_test(test_msg_accessors_and_stream_state),
        cmocka_unit_test(test_notify_reaches_listen),
        cmocka_unit_test(test_old_interest_jobs_stream_is_replaced_only_when_empty),
        cmocka_unit_test(test_lost_puback_times_out_and_down_is_unavailable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
