/*
 * pool.c - worker threads with their own PostgreSQL connections; results
 * hop back to the loop through one uv_async_t.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "db.h"
#include "jobs.h"
#include "err.h"
#include "log.h"
#include "pool.h"

#define POOL_PG_CONNECT_S 5 /* PostgreSQL connect timeout */

typedef struct pool_task {
    struct pool_task *next;
    gw_work_fn work;
    gw_done_fn done;
    void *ud;
} pool_task_t;

typedef struct {
    pool_task_t *head, *tail;
    size_t len;
} pool_list_t;

typedef struct {
    gw_pool_t *pool;
    pthread_t tid;
    PGconn *conn;
} pool_thread_t;

struct gw_pool {
    uv_async_t async; /* first: the close callback gets the pool back */
    uv_loop_t *loop;
    char dsn[512];
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pool_list_t todo, done;
    size_t max_queue;
    int stopping;
    atomic_int pg_ok;
    int nthreads;
    pool_thread_t *threads;
};

static void list_push(pool_list_t *l, pool_task_t *t)
{
    t->next = NULL;
    if (l->tail)
        l->tail->next = t;
    else
        l->head = t;
    l->tail = t;
    l->len++;
}

static pool_task_t *list_take_all(pool_list_t *l)
{
    pool_task_t *h = l->head;
    l->head = l->tail = NULL;
    l->len = 0;
    return h;
}

static void pool_ensure_conn(pool_thread_t *th)
{
    /* Every connection can run the lifecycle's statements (jobs.h). */
    yard_jobs_connect(&th->conn, th->pool->dsn, POOL_PG_CONNECT_S, YARD_JOBS_DURABLE);
    atomic_store(&th->pool->pg_ok, th->conn != NULL);
}

static void *pool_main(void *arg)
{
    pool_thread_t *th = arg;
    gw_pool_t *p = th->pool;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->todo.head && !p->stopping)
            pthread_cond_wait(&p->wake, &p->mu);
        pool_task_t *t = p->todo.head;
        if (!t) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        p->todo.head = t->next;
        if (!p->todo.head)
            p->todo.tail = NULL;
        p->todo.len--;
        pthread_mutex_unlock(&p->mu);

        pool_ensure_conn(th);
        t->work(th->conn, t->ud);
        if (th->conn)
            atomic_store(&p->pg_ok, yard_db_ok(th->conn));

        pthread_mutex_lock(&p->mu);
        list_push(&p->done, t);
        pthread_mutex_unlock(&p->mu);
        uv_async_send(&p->async);
    }
    yard_db_close(th->conn);
    th->conn = NULL;
    return NULL;
}

static void pool_run_done(gw_pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    pool_task_t *t = list_take_all(&p->done);
    pthread_mutex_unlock(&p->mu);
    while (t) {
        pool_task_t *next = t->next;
        t->done(t->ud);
        free(t);
        t = next;
    }
}

static void pool_on_async(uv_async_t *a)
{
    pool_run_done((gw_pool_t *)a);
}

int gw_pool_create(gw_pool_t **out, uv_loop_t *loop, const char *dsn, int nthreads,
                   size_t max_queue)
{
    gw_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return YARD_ENOMEM;
    p->threads = calloc((size_t)nthreads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return YARD_ENOMEM;
    }
    p->loop = loop;
    snprintf(p->dsn, sizeof p->dsn, "%s", dsn);
    p->max_queue = max_queue;
    atomic_init(&p->pg_ok, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    uv_async_init(loop, &p->async, pool_on_async);
    for (int i = 0; i < nthreads; i++) {
        p->threads[i].pool = p;
        if (pthread_create(&p->threads[i].tid, NULL, pool_main, &p->threads[i]) != 0) {
            YARD_LOG_ERROR(NULL, "pool: cannot start thread %d", i);
            p->nthreads = i;
            gw_pool_shutdown(p);
            return YARD_EIO;
        }
        p->nthreads = i + 1;
    }
    *out = p;
    return 0;
}

int gw_pool_submit(gw_pool_t *p, gw_work_fn work, gw_done_fn done, void *ud)
{
    pool_task_t *t = malloc(sizeof *t);
    int rc = 0;
    if (!t)
        return YARD_ENOMEM;
    t->work = work;
    t->done = done;
    t->ud = ud;
    pthread_mutex_lock(&p->mu);
    if (p->stopping)
        rc = YARD_ESTATE;
    else if (p->todo.len >= p->max_queue)
        rc = YARD_EBUSY;
    else
        list_push(&p->todo, t);
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->mu);
    if (rc < 0)
        free(t);
    return rc;
}

void gw_pool_conn_check(PGconn *conn)
{
    if (conn && !yard_db_ok(conn))
        YARD_LOG_WARN(NULL, "pool: PostgreSQL connection lost; reconnecting on next task");
}

int gw_pool_pg_reachable(const gw_pool_t *p)
{
    return atomic_load(&((gw_pool_t *)p)->pg_ok);
}

static void pool_on_close(uv_handle_t *h)
{
    gw_pool_t *p = (gw_pool_t *)h;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->threads);
    free(p);
}

void gw_pool_shutdown(gw_pool_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i].tid, NULL);
    pool_run_done(p);
    uv_close((uv_handle_t *)&p->async, pool_on_close);
}
