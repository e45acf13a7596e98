/*
 * schedules.h - cron schedules in PostgreSQL: the statements of the
 * schedule routes, yardctl and the schedule role's firings.
 *
 * A schedule (table schedules, 0003 + 0007) names a cron text, an IANA
 * zone, the job template each firing submits (the fields of POST /v1/jobs
 * but run_at and idempotency_key, validated by the caller), a catch-up
 * policy and whether it is paused. next_run_at is its next firing (NULL:
 * never, e.g. "0 0 30 2 *").
 *
 * Firing, once across replicas: the schedule role opens a transaction that
 * locks one due schedule (FOR UPDATE SKIP LOCKED, so replicas take
 * different rows), records the firing in schedule_firings (primary key
 * (schedule, fire time): a firing is recorded once, forever), writes the
 * job's row, publishes the job, advances next_run_at and commits. A crash
 * before the commit leaves the schedule due: the next pass fires the same
 * (schedule, fire time) again, with the same derived job id, which
 * JetStream's duplicate window drops.
 *
 * The JSON a reader gets for one schedule (GET /v1/schedules):
 *   {"name","cron","timezone","job":{...},"catch_up":"skip"|"once",
 *    "paused":bool,"next_fire_at":RFC 3339|null,"last_fire_at":...|null,
 *    "last_job_id":...|null,"created_at"}
 * All functions return 0 or a YARD_E* code (logged once); the caller owns
 * the connection.
 */
#ifndef YARD_SCHEDULES_H
#define YARD_SCHEDULES_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "envelope.h"
#include "events.h"
#include "id.h"

#define YARD_SCHEDULE_NAME_MAX 200

/* Nonzero when name (len bytes) may name a schedule: 1..200 bytes, no '/',
 * blank or control character (it appears in URLs). */
int yard_schedule_name_valid(const char *name, size_t len);

/* A schedule as created or replaced. */
typedef struct {
    const char *name;
    const char *cron;
    const char *timezone;
    const char *job_json;   /* the validated template, a JSON object */
    const char *catch_up;   /* "skip" or "once" */
    int paused;
    const char *api_key_id; /* owner (NULL: auth disabled) */
    int64_t next_fire_s;    /* Unix seconds, 0: never */
} yard_schedule_def_t;

/* Creates or replaces schedule d->name (a replace keeps created_at and the
 * last firing). owner (NULL: any) limits a replace to the owner's
 * schedule. Sets *created to 1 for a new schedule, 0 for a replaced one,
 * and *json_out (malloc'd, free it) to the schedule's JSON. Returns 0,
 * YARD_EEXIST (the name belongs to another key) or an error. */
int yard_schedules_put(char **json_out, int *created, PGconn *c, const yard_schedule_def_t *d,
                       const char *owner);

/* Sets *json_out (malloc'd) to the JSON of schedule name (of owner, or any
 * when owner is NULL). Returns 0, YARD_ENOTFOUND or an error. */
int yard_schedules_get(char **json_out, PGconn *c, const char *name, const char *owner);

/* Sets *json_out (malloc'd) to {"schedules":[...]} of owner's schedules
 * (all when owner is NULL), by name. Returns 0 or an error. */
int yard_schedules_list(char **json_out, PGconn *c, const char *owner);

/* Deletes schedule name of owner (any when NULL); its recorded firings go
 * with it. Returns 0, YARD_ENOTFOUND or an error. */
int yard_schedules_delete(PGconn *c, const char *name, const char *owner);

/* What a pause or resume needs to know first: the cron text and zone of
 * schedule name (of owner, any when NULL), copied into cron and tz
 * (cron_cap and tz_cap bytes). Returns 0, YARD_ENOTFOUND or an error. */
int yard_schedules_lookup(PGconn *c, const char *name, const char *owner, char *cron,
                          size_t cron_cap, char *tz, size_t tz_cap);

/* Pauses (paused 1) or resumes (paused 0, firing next at next_fire_s, 0:
 * never) schedule name of owner; *json_out (malloc'd) gets its JSON.
 * Returns 0, YARD_ENOTFOUND or an error. */
int yard_schedules_set_paused(char **json_out, PGconn *c, const char *name, const char *owner,
                              int paused, int64_t next_fire_s);

/* ---- firing (the schedule role) ------------------------------------------ */

/* One due schedule, locked in the open transaction. Strings are views into
 * res (owned). job fields are the template's, envelope-ready. */
typedef struct {
    PGresult *res;
    const char *name, *cron, *tz, *catch_up;
    yard_str_t api_key_id, type, queue, payload, notify;
    yard_priority_t priority;
    uint32_t max_attempts, timeout_s;
    int64_t fire_s; /* its next_run_at */
    int64_t now_s;  /* the database's now (plus the clock offset) */
} yard_schedule_due_t;

/* Opens a transaction on c and locks the earliest schedule that is not
 * paused and due at now + clock_offset_s, skipping schedules another
 * transaction holds. Returns 1 with *out filled (then call
 * yard_schedules_fire_commit or yard_schedules_abort; free *out with
 * yard_schedules_due_clear), 0 when none is due (the transaction is
 * closed), or an error (rolled back). */
int yard_schedules_due_begin(yard_schedule_due_t *out, PGconn *c, int64_t clock_offset_s);

/* In the open transaction: records the firing of schedule name at fire_s
 * with job id job_id. Returns 1 when recorded now, 0 when it was recorded
 * before (the firing happened: do not publish it again), or an error. */
int yard_schedules_fire_record(PGconn *c, const char *name, int64_t fire_s, const char *job_id);

/* In the open transaction: sets the schedule's next_run_at to next_s (0:
 * NULL, never) and, when job_id is not NULL, its last firing (fire_s,
 * job_id); then commits. Returns 0 or an error (rolled back). */
int yard_schedules_fire_commit(PGconn *c, const char *name, int64_t next_s, int64_t fire_s,
                               const char *job_id);

/* Rolls back the open transaction, if any. */
void yard_schedules_abort(PGconn *c);

/* Frees what *d holds. NULL or cleared: no-op. */
void yard_schedules_due_clear(yard_schedule_due_t *d);

/* The job id of schedule name's firing at fire_s: a UUIDv8 from a hash of
 * both, the same in every process, so any replica firing that moment
 * publishes the same job. */
void yard_schedule_job_id(yard_id_t *out, const char *name, int64_t fire_s);

/* The lifecycle event of a change to schedule name (events.h):
 * ops.schedule_<action>, action one of "created", "updated", "deleted",
 * "paused", "resumed", by actor, with data_json (the schedule as stored, or
 * NULL). Each change is its own event: its key is the time of the change,
 * written into key (24 bytes) and name (48 bytes) the buffers e points to. */
void yard_schedules_event(yard_event_t *e, char key[24], char event_name[48], const char *action,
                          const char *name, const char *actor, const char *data_json);

#endif
