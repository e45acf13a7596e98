/*
 * db.h - PostgreSQL connections and statements through libpq.
 *
 * The one place where libpq's results and errors become YARD_E* codes, each
 * logged once with what was being done and the server's message:
 *   YARD_EUNAVAIL  no connection (refused, lost, server shutting down)
 *   YARD_ETIMEOUT  statement_timeout or lock_timeout cancelled the statement
 *   YARD_EBUSY     serialization failure or deadlock: retry the transaction
 *   YARD_EEXIST    a unique constraint refused the row
 *   YARD_EPG       any other error the server reported
 * Passwords are never logged: connection errors are scrubbed of the password
 * of the DSN, and a DSN that does not parse is not echoed. Each statement's
 * round trip, and each failed statement or connection attempt, is counted in
 * the process's I/O statistics (iostats.h).
 */
#ifndef YARD_DB_H
#define YARD_DB_H

#include <libpq-fe.h>

/* Connects to dsn (libpq keyword/value string or postgresql:// URI), waiting
 * at most timeout_s seconds (<= 0: libpq's default, no limit). When the DSN
 * names no application_name, the program's name is used. Server notices go
 * to the debug log instead of stderr. Returns 0 and sets *out (close it with
 * yard_db_close), YARD_EINVAL for a DSN that does not parse, or
 * YARD_EUNAVAIL when the connection fails; either is logged once. */
int yard_db_connect(PGconn **out, const char *dsn, int timeout_s);

/* Closes the connection; NULL is a no-op. */
void yard_db_close(PGconn *c);

/* Runs sql, which may hold several statements, and discards any rows.
 * Returns 0 or a code above, logged with the start of sql as context. */
int yard_db_exec(PGconn *c, const char *sql);

/* Like yard_db_exec, but an error is logged as "<what> failed: ...", so a
 * caller can name what it was doing ("migration 0003_schedules"). */
int yard_db_exec_as(PGconn *c, const char *what, const char *sql);

/* Makes c plan each prepared statement once (a generic plan) rather than
 * for every execution, with sequential scans, hash and merge joins
 * discouraged (enable_* off makes them costly, never refuses them), so a
 * plan made while the tables are small stays index probes as they grow.
 * For connections that run a few prepared statements many times a second
 * (the workers' hot path); what names the caller in an error. Returns 0 or
 * a code above. */
int yard_db_plan_once(PGconn *c, const char *what);

/* Runs one statement with nparams text parameters ($1...; NULL entries are
 * SQL NULL). Returns 0 and, when out is not NULL, sets *out to the result
 * (the caller frees it with PQclear); or a code above, logged naming what,
 * with *out untouched. */
int yard_db_query(PGresult **out, PGconn *c, const char *what, const char *sql, int nparams,
                  const char *const *params);

/* Prepares sql as the named statement on c (once per connection). Returns 0
 * or a code above, logged naming the statement. */
int yard_db_prepare(PGconn *c, const char *name, const char *sql);

/* Like yard_db_query, for a statement prepared with yard_db_prepare. */
int yard_db_query_prepared(PGresult **out, PGconn *c, const char *name, const char *what,
                           int nparams, const char *const *params);

/* Nonzero while c is connected (a broken connection must be reopened). */
int yard_db_ok(const PGconn *c);

/* Like yard_db_ok, and for an idle connection also reads what the server
 * sent since its last statement, without a round trip: a server that was
 * restarted or shut down, or that ended the session, sent an error and
 * closed the socket, which yard_db_ok alone learns only when the next
 * statement fails. Notifications read on the way stay queued for
 * PQnotifies. */
int yard_db_alive(PGconn *c);

/* Keeps *conn while it is alive (yard_db_alive) and returns 0; else closes
 * it and connects to dsn (yard_db_connect) and returns 1: a new connection,
 * on which whatever the caller set up on the old one (prepared statements,
 * roles, LISTEN) must be set up again. Or an error (logged) with *conn
 * NULL. */
int yard_db_ensure(PGconn **conn, const char *dsn, int timeout_s);

#endif
