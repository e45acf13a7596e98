/*
 * ctl_migrate.c - `yardctl migrate [--status]`: brings the PostgreSQL schema
 * up to date with the migrations built into yardctl, or shows where it stands.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "db.h"
#include "log.h"
#include "migrate.h"

#define MIGRATE_CONNECT_TIMEOUT_S 10

const char ctl_migrate_help[] =
    "usage: yardctl migrate [--status]\n"
    "\n"
    "Applies to PostgreSQL (pg_dsn, YARD_PG_DSN) the migrations built into\n"
    "yardctl that it lacks, each in its own transaction, and prints the version\n"
    "the database is at. Runs started at the same time wait for each other.\n"
    "Refuses to run when a migration changed after it was applied.\n"
    "\n"
    "options:\n"
    "  --status   list each migration as applied, pending or CHANGED and\n"
    "             change nothing\n"
    "\n"
    "  --json     print the result as JSON\n"
    "\n"
    "Exit status: 0 up to date (or, with --status, nothing changed), 1 failed\n"
    "(see the log on stderr), 2 bad arguments.\n";

static const char *const migrate_state_names[] = {"pending", "applied", "CHANGED"};

/* Prints one line per migration and a summary; returns the exit status:
 * CTL_EXIT_FAIL when a migration changed after it was applied. */
static int migrate_print_status(PGconn *conn)
{
    yard_migration_state_t *states = calloc(yard_migrations_count + 1, sizeof *states);
    yard_migrate_status_t st;
    int rc = CTL_EXIT_FAIL;

    if (!states) {
        YARD_LOG_ERROR(NULL, "out of memory");
        goto cleanup;
    }
    if (yard_migrate_status(&st, states, conn, yard_migrations, yard_migrations_count) != 0)
        goto cleanup; /* logged */
    if (ctl_out_json()) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < yard_migrations_count; i++)
            json_array_append_new(arr, json_pack("{s:i, s:s, s:s}", "version",
                                                 yard_migrations[i].version, "name",
                                                 yard_migrations[i].name, "state",
                                                 migrate_state_names[states[i]]));
        ctl_out_json_print(json_pack("{s:i, s:I, s:I, s:I, s:I, s:o*}", "version", st.version,
                                     "applied", (json_int_t)st.applied, "pending",
                                     (json_int_t)st.pending, "changed", (json_int_t)st.changed,
                                     "unknown", (json_int_t)st.unknown, "migrations", arr));
    } else {
        printf("%-8s %-32s %s\n", "version", "name", "state");
        for (size_t i = 0; i < yard_migrations_count; i++)
            printf("%-8d %-32s %s\n", yard_migrations[i].version, yard_migrations[i].name,
                   migrate_state_names[states[i]]);
        printf("database at version %d: %zu applied, %zu pending, %zu changed", st.version,
               st.applied, st.pending, st.changed);
        if (st.unknown > 0)
            printf(", %zu unknown to this yardctl (a newer one migrated it)", st.unknown);
        printf("\n");
    }
    rc = st.changed > 0 ? CTL_EXIT_FAIL : CTL_EXIT_OK;

cleanup:
    free(states);
    return rc;
}

/* Applies what is pending and prints what happened; returns the exit status. */
static int migrate_apply(PGconn *conn)
{
    yard_migrate_status_t st;
    int applied = 0;

    if (yard_migrate_run(conn, yard_migrations, yard_migrations_count, &applied) != 0)
        return CTL_EXIT_FAIL; /* logged, naming the migration */
    if (yard_migrate_status(&st, NULL, conn, yard_migrations, yard_migrations_count) != 0)
        return CTL_EXIT_FAIL;
    if (ctl_out_json())
        ctl_out_json_print(json_pack("{s:i, s:i}", "applied", applied, "version", st.version));
    else if (applied > 0)
        printf("applied %d migration%s (now at version %d)\n", applied, applied == 1 ? "" : "s",
               st.version);
    else
        printf("up to date at version %d\n", st.version);
    return CTL_EXIT_OK;
}

int ctl_cmd_migrate(const yard_config_t *cfg, int argc, char **argv)
{
    PGconn *conn = NULL;
    int status_only = 0;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--status") == 0)
            status_only = 1;
        else
            return ctl_usage_error(argv[0], "unknown argument '%s'", argv[i]);
    }
    if (yard_db_connect(&conn, cfg->pg_dsn, MIGRATE_CONNECT_TIMEOUT_S) != 0)
        return CTL_EXIT_FAIL; /* logged, password hidden */
    rc = status_only ? migrate_print_status(conn) : migrate_apply(conn);
    yard_db_close(conn);
    return rc;
}
