/*
 * pool.h - a few threads that do the gateway's blocking work off the loop.
 *
 * The event loop never waits on PostgreSQL or on a JetStream API request:
 * such work is submitted here, runs on one of the pool's threads with that
 * thread's own PostgreSQL connection, and its completion runs back on the
 * loop thread (uv_async). The queue is bounded, so overload is refused at
 * once (the caller answers 503) instead of growing without limit.
 */
#ifndef GW_POOL_H
#define GW_POOL_H

#include <stddef.h>

#include <libpq-fe.h>
#include <uv.h>

typedef struct gw_pool gw_pool_t;

/* Runs on a pool thread. conn is the thread's connection, or NULL when
 * PostgreSQL cannot be reached right now (report YARD_EUNAVAIL). After a
 * failed query the work should call gw_pool_conn_check so a broken
 * connection is replaced next time. */
typedef void (*gw_work_fn)(PGconn *conn, void *ud);

/* Runs on the loop thread after the work, exactly once per accepted task. */
typedef void (*gw_done_fn)(void *ud);

/* Starts nthreads threads connecting lazily to dsn. Returns 0 and sets *out
 * (stop with gw_pool_shutdown), or YARD_ENOMEM / YARD_EIO. */
int gw_pool_create(gw_pool_t **out, uv_loop_t *loop, const char *dsn, int nthreads,
                   size_t max_queue);

/* Queues work(conn, ud) and then done(ud) on the loop. Loop thread only.
 * Returns 0, YARD_EBUSY when max_queue tasks are waiting, YARD_ESTATE after
 * shutdown began, YARD_ENOMEM. On error neither function is called. */
int gw_pool_submit(gw_pool_t *pool, gw_work_fn work, gw_done_fn done, void *ud);

/* Closes conn if libpq reports it broken; the thread reconnects on its next
 * task. Call from work functions after an error. */
void gw_pool_conn_check(PGconn *conn);

/* Nonzero if the last connection attempt or query of any thread reached
 * PostgreSQL (for /readyz). */
int gw_pool_pg_reachable(const gw_pool_t *pool);

/* Lets queued tasks finish, joins the threads, runs the remaining done
 * callbacks, closes the uv handle and frees the pool (in the close
 * callback). Loop thread only; NULL is a no-op. */
void gw_pool_shutdown(gw_pool_t *pool);

#endif
