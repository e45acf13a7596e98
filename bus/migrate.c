/*
 * migrate.c - the migration runner: schema_migrations bookkeeping, checksums,
 * the advisory lock, one transaction per migration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "db.h"
#include "err.h"
#include "log.h"
#include "migrate.h"

#define MIG_SUM_LEN (crypto_generichash_BYTES * 2 + 1) /* hex and NUL */

typedef char mig_sum_t[MIG_SUM_LEN];

static const char mig_create_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY,"
    " name text NOT NULL,"
    " checksum text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

/* Checks that list is usable: names and SQL present, versions positive and
 * strictly increasing. Returns 0 or YARD_EINVAL, logged. */
static int mig_check_list(const yard_migration_t *list, size_t n)
{
    int prev = 0;

    if (n > 0 && !list) {
        YARD_LOG_ERROR(NULL, "migration list is NULL but holds %zu entries", n);
        return YARD_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const yard_migration_t *m = &list[i];
        if (!m->name || !m->sql || m->version <= prev) {
            YARD_LOG_ERROR(NULL, "migration list entry %zu (version %d, %s) is invalid: "
                           "versions must increase from 1 and name and SQL be set",
                           i, m->version, m->name ? m->name : "no name");
            return YARD_EINVAL;
        }
        prev = m->version;
    }
    return 0;
}

/* Sets *out to a new array (free it) of the checksums of list's SQL: hex
 * BLAKE2b-256. Returns 0, YARD_ECRYPTO or YARD_ENOMEM, logged. */
static int mig_checksums(mig_sum_t **out, const yard_migration_t *list, size_t n)
{
    unsigned char digest[crypto_generichash_BYTES];
    mig_sum_t *sums;

    if (sodium_init() < 0) {
        YARD_LOG_ERROR(NULL, "libsodium failed to initialise");
        return YARD_ECRYPTO;
    }
    sums = calloc(n ? n : 1, sizeof *sums);
    if (!sums) {
        YARD_LOG_ERROR(NULL, "out of memory for %zu migration checksums", n);
        return YARD_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        crypto_generichash(digest, sizeof digest, (const unsigned char *)list[i].sql,
                           strlen(list[i].sql), NULL, 0);
        sodium_bin2hex(sums[i], sizeof sums[i], digest, sizeof digest);
    }
    *out = sums;
    return 0;
}

/* What both run and status need first: list checked, its checksums, an array
 * of n states. Sets *sums_out and *states_out (free both) and returns 0, or
 * returns an error, logged, with nothing allocated. */
static int mig_prepare(mig_sum_t **sums_out, yard_migration_state_t **states_out,
                       const yard_migration_t *list, size_t n)
{
    yard_migration_state_t *states;
    mig_sum_t *sums = NULL;
    int rc;

    rc = mig_check_list(list, n);
    if (rc != 0)
        return rc;
    rc = mig_checksums(&sums, list, n);
    if (rc != 0)
        return rc;
    states = calloc(n ? n : 1, sizeof *states);
    if (!states) {
        YARD_LOG_ERROR(NULL, "out of memory for %zu migration states", n);
        free(sums);
        return YARD_ENOMEM;
    }
    *sums_out = sums;
    *states_out = states;
    return 0;
}

/* Reads schema_migrations (version, name, checksum by version). Returns 0 and
 * sets *out to the rows (PQclear them), or to NULL when the table does not
 * exist; or a yard_db_* code, logged. */
static int mig_read_applied(PGresult **out, PGconn *conn)
{
    PGresult *res = NULL;
    int rc;

    rc = yard_db_query(&res, conn, "looking for schema_migrations",
                       "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL);
    if (rc != 0)
        goto cleanup;
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        *out = NULL;
        goto cleanup;
    }
    PQclear(res);
    res = NULL;
    rc = yard_db_query(&res, conn, "reading schema_migrations",
                       "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
                       0, NULL);
    if (rc != 0)
        goto cleanup;
    *out = res;
    res = NULL;

cleanup:
    PQclear(res);
    return rc;
}

/* Compares the recorded rows (applied, may be NULL: none) with list and its
 * checksums: fills st and states (n entries). With complain set, each changed
 * migration is logged as an error and each unknown version as a warning. */
static void mig_compare(yard_migrate_status_t *st, yard_migration_state_t *states,
                        const PGresult *applied, const yard_migration_t *list,
                        const mig_sum_t *sums, size_t n, int complain)
{
    int rows = applied ? PQntuples(applied) : 0;

    memset(st, 0, sizeof *st);
    for (size_t i = 0; i < n; i++)
        states[i] = YARD_MIGRATION_PENDING;
    for (int r = 0; r < rows; r++) {
        int version = atoi(PQgetvalue(applied, r, 0));
        const char *sum = PQgetvalue(applied, r, 2);
        size_t i = 0;

        if (version > st->version)
            st->version = version;
        while (i < n && list[i].version != version)
            i++;
        if (i == n) {
            st->unknown++;
            if (complain)
                YARD_LOG_WARN(NULL, "database has migration %s (version %d), which this build "
                              "does not know: a newer build migrated it",
                              PQgetvalue(applied, r, 1), version);
        } else if (strcmp(sum, sums[i]) != 0) {
            states[i] = YARD_MIGRATION_CHANGED;
            st->changed++;
            if (complain)
                YARD_LOG_ERROR(NULL, "migration %s (version %d) was applied with checksum %s, "
                               "but its SQL now has checksum %s: applied migrations must never "
                               "change; add a new migration instead",
                               list[i].name, version, sum, sums[i]);
        } else {
            states[i] = YARD_MIGRATION_APPLIED;
            st->applied++;
        }
    }
    st->pending = n - st->applied - st->changed;
}

static long long mig_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Applies migration m in a transaction of its own, with its schema_migrations
 * row. Returns 0, or an error logged naming m after rolling back. */
static int mig_apply(PGconn *conn, const yard_migration_t *m, const char *sum)
{
    char what[160];
    char version[16];
    long long start = mig_now_ms();
    int rc;

    snprintf(what, sizeof what, "migration %s (version %d)", m->name, m->version);
    snprintf(version, sizeof version, "%d", m->version);
    const char *params[3] = {version, m->name, sum};

    rc = yard_db_exec_as(conn, what, "BEGIN");
    if (rc != 0)
        goto cleanup;
    rc = yard_db_exec_as(conn, what, m->sql);
    if (rc != 0)
        goto cleanup;
    if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
        YARD_LOG_ERROR(NULL, "%s ended the runner's transaction itself: a migration must "
                       "not hold BEGIN, COMMIT or ROLLBACK", what);
        rc = YARD_ECONFIG;
        goto cleanup;
    }
    rc = yard_db_query(NULL, conn, what,
                       "INSERT INTO schema_migrations (version, name, checksum) "
                       "VALUES ($1, $2, $3)", 3, params);
    if (rc != 0)
        goto cleanup;
    rc = yard_db_exec_as(conn, what, "COMMIT");
    if (rc != 0)
        goto cleanup;
    YARD_LOG_INFO(NULL, "applied %s in %lld ms", what, mig_now_ms() - start);

cleanup:
    if (rc != 0 && PQtransactionStatus(conn) != PQTRANS_IDLE)
        PQclear(PQexec(conn, "ROLLBACK")); /* the error is logged already */
    return rc;
}

int yard_migrate_run(PGconn *conn, const yard_migration_t *list, size_t n, int *applied_out)
{
    yard_migration_state_t *states = NULL;
    yard_migrate_status_t st;
    mig_sum_t *sums = NULL;
    PGresult *applied = NULL;
    char key[24];
    const char *params[1] = {key};
    int locked = 0;
    int count = 0;
    int rc;

    if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
        YARD_LOG_ERROR(NULL, "cannot migrate: the connection is not idle (a transaction is "
                       "open or the connection is broken)");
        return YARD_EINVAL;
    }
    rc = mig_prepare(&sums, &states, list, n);
    if (rc != 0)
        goto cleanup;

    snprintf(key, sizeof key, "%lld", (long long)YARD_MIGRATE_LOCK_KEY);
    rc = yard_db_query(NULL, conn, "taking the migration lock", "SELECT pg_advisory_lock($1)", 1,
                       params);
    if (rc != 0)
        goto cleanup;
    locked = 1;
    rc = yard_db_exec_as(conn, "creating schema_migrations", mig_create_sql);
    if (rc != 0)
        goto cleanup;
    rc = mig_read_applied(&applied, conn);
    if (rc != 0)
        goto cleanup;
    mig_compare(&st, states, applied, list, sums, n, 1);
    if (st.changed > 0) {
        rc = YARD_ECONFIG; /* each one is logged by mig_compare */
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        if (states[i] != YARD_MIGRATION_PENDING)
            continue;
        if (list[i].version < st.version)
            YARD_LOG_WARN(NULL, "applying migration %s (version %d) after version %d: it was "
                          "added out of order", list[i].name, list[i].version, st.version);
        rc = mig_apply(conn, &list[i], sums[i]);
        if (rc != 0)
            goto cleanup;
        count++;
    }
    if (count > 0)
        YARD_LOG_INFO(NULL, "applied %d migrations; database at version %d", count,
                      list[n - 1].version > st.version ? list[n - 1].version : st.version);

cleanup:
    /* A broken connection has lost the lock with its session, and its error
     * is logged already. */
    if (locked && PQstatus(conn) == CONNECTION_OK) {
        int urc = yard_db_query(NULL, conn, "releasing the migration lock",
                                "SELECT pg_advisory_unlock($1)", 1, params);
        if (rc == 0)
            rc = urc;
    }
    if (rc == 0 && applied_out)
        *applied_out = count;
    PQclear(applied);
    free(states);
    free(sums);
    return rc;
}

int yard_migrate_status(yard_migrate_status_t *out, yard_migration_state_t *states_out,
                        PGconn *conn, const yard_migration_t *list, size_t n)
{
    yard_migration_state_t *states = NULL;
    yard_migrate_status_t st;
    mig_sum_t *sums = NULL;
    PGresult *applied = NULL;
    int rc;

    rc = mig_prepare(&sums, &states, list, n);
    if (rc != 0)
        goto cleanup;
    rc = mig_read_applied(&applied, conn);
    if (rc != 0)
        goto cleanup;
    mig_compare(&st, states, applied, list, sums, n, 0);
    *out = st;
    if (states_out && n > 0)
        memcpy(states_out, states, n * sizeof *states);

cleanup:
    PQclear(applied);
    free(states);
    free(sums);
    return rc;
}
