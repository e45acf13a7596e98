/*
 * execute_run.c - the handler threads: each takes the next queued job, runs
 * its handler (handler.h) under the job's deadline and hands the result to
 * the committer. A handler's heartbeat records that it is alive; the
 * supervisor (execute_supervise.c) extends the job's ack deadline only
 * while it is.
 */
#include <string.h>

#include "execute.h"
#include "job_secrets.h"
#include "sealed.h"

/* job->heartbeat: the handler is alive now. Cheap, lock-free. */
static void exec_heartbeat(void *ud)
{
    wk_execute_item_t *it = ud;
    atomic_store(&it->beat_ms, wk_clock_ms());
}

/* Runs job's handler with its secrets opened (when it has any) and wiped as
 * soon as the handler returns. Secrets that do not open fail the job
 * (it->res says why) without running the handler. */
static void run_with_secrets(wk_t *wk, wk_execute_item_t *it, wk_job_t *job)
{
    if (!it->env.secrets.len) {
        wk_registry_run(wk->registry, job, &it->res);
        return;
    }
    char *plain = NULL;
    size_t plain_len = 0;
    if (wk_secrets_open(wk->keyring, it->env.secrets, &plain, &plain_len, &it->res) < 0)
        return;
    job->secrets = plain;
    job->secrets_len = plain_len;
    wk_registry_run(wk->registry, job, &it->res);
    job->secrets = NULL;
    job->secrets_len = 0;
    yard_sealed_free(plain, plain_len + 1);
}

void *wk_execute_handler(void *arg)
{
    wk_runtime_t *rt = arg;
    wk_t *wk = rt->wk;
    for (;;) {
        pthread_mutex_lock(&rt->mu);
        while (!rt->run_head && !rt->handlers_exit)
            pthread_cond_wait(&rt->run_cv, &rt->mu);
        wk_execute_item_t *it = wk_execute_list_pop(&rt->run_head, &rt->run_tail);
        if (!it) {
            pthread_mutex_unlock(&rt->mu);
            break;
        }
        if (atomic_load(&wk->stopping)) {
            /* Draining: a job not started goes back at once. */
            it->handed_back = 1;
            wk_execute_list_push(&rt->done_head, &rt->done_tail, it);
            pthread_cond_signal(&rt->done_cv);
            pthread_mutex_unlock(&rt->mu);
            continue;
        }
        /* Set under the lock: the committer reads them to heartbeat. The
         * first in-progress ack goes out a third of AckWait from now, so a
         * short job sends none. The start counts as a sign of life. */
        it->started_wall_ms = wk_wall_ms();
        it->started_us = wk_clock_us();
        it->last_progress_ms = wk_clock_ms();
        it->deadline_ms = it->last_progress_ms + (int64_t)it->env.timeout_s * 1000;
        atomic_store(&it->beat_ms, it->last_progress_ms);
        atomic_store(&it->running, 1);
        pthread_mutex_unlock(&rt->mu);

        char queue[YARD_ENV_NAME_MAX + 1] = "";
        memcpy(queue, it->env.queue.ptr, it->env.queue.len);
        wk_job_t job = {.id = it->id,
                        .type = it->type,
                        .queue = queue,
                        .trace_id = it->trace[0] ? it->trace : NULL,
                        .payload = it->payload,
                        .payload_len = strlen(it->payload),
                        .attempt = it->attempt,
                        .max_attempts = it->env.max_attempts,
                        .deadline_ms = it->deadline_ms,
                        .cancelled = &it->cancelled,
                        .heartbeat = exec_heartbeat,
                        .heartbeat_ud = it};
        run_with_secrets(wk, it, &job);
        wk_time_add(wk, "handler", wk_clock_us() - it->started_us);

        pthread_mutex_lock(&rt->mu);
        it->finished_us = wk_clock_us();
        atomic_store(&it->running, 0);
        wk_execute_list_push(&rt->done_head, &rt->done_tail, it);
        pthread_cond_signal(&rt->done_cv);
        pthread_mutex_unlock(&rt->mu);
    }
    return NULL;
}
