/*
 * audit.h - the hash-chained audit_log (schemas/migrations/0005, 0009):
 * appending rows (the audit role) and verifying the chain (yardctl audit
 * verify). Every statement that writes audit_log is here.
 *
 * Each row's hash is BLAKE2b-256 (libsodium crypto_generichash, no key)
 * over the previous row's hash (32 bytes; nothing for the row of seq 1)
 * followed by the row's canonical bytes, version 1:
 *
 *   "yard-audit-v1\n", then 8 fields in this order:
 *     seq          decimal text
 *     event_id     text
 *     at           decimal text of Unix microseconds
 *     event        text ("job.succeeded")
 *     job_id       lowercase UUID text, or NULL
 *     workflow_id  lowercase UUID text, or NULL
 *     actor        text, or NULL
 *     detail       the jsonb's text as PostgreSQL prints it (detail::text),
 *                  or NULL
 *   each field written as a 4-byte big-endian length and that many bytes
 *   (UTF-8), a NULL as the 4 bytes FF FF FF FF.
 *
 * These are exactly the values `SELECT seq, event_id, (extract(epoch FROM
 * at) * 1000000)::bigint, event, job_id::text, workflow_id::text, actor,
 * detail::text` returns, so anyone can recompute the chain from the table.
 * seq counts 1, 2, 3... without gaps (the writer assigns it), and rows are
 * appended by one transaction at a time (an advisory lock), so the chain is
 * linear.
 */
#ifndef YARD_AUDIT_H
#define YARD_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#define YARD_AUDIT_HASH_LEN 32
#define YARD_AUDIT_CANON_MAGIC "yard-audit-v1\n"
/* The PostgreSQL role the audit writer switches to (0009_audit_writer.sql). */
#define YARD_AUDIT_DB_ROLE "yard_audit_writer"

/* One row's fields as hashed (NULL pointers are SQL NULL). */
typedef struct {
    int64_t seq;
    const char *event_id;
    int64_t at_us;
    const char *event;
    const char *job_id, *workflow_id, *actor, *detail;
} yard_audit_row_t;

/* Computes the hash of row r chained to prev (YARD_AUDIT_HASH_LEN bytes,
 * or NULL for the first row) into out. */
void yard_audit_hash(unsigned char out[YARD_AUDIT_HASH_LEN], const unsigned char *prev,
                     const yard_audit_row_t *r);

/* Switches c to YARD_AUDIT_DB_ROLE (SET ROLE) so it may only read and
 * append audit_log, and prepares yard_audit_append's statements on it (once
 * per connection, before any append). Returns 0, or YARD_EPG (logged: the
 * role is missing or the connecting user is not a member; run the
 * migrations as that user). */
int yard_audit_use_role(PGconn *c);

/* Appends the n rows (seq, prev hash and hash are assigned here; detail is
 * normalised by jsonb) in one transaction holding the writers' lock. A row
 * whose event_id is stored already, or repeats an earlier one of the n, is
 * skipped: a redelivered event is recorded once. *written (may be NULL)
 * gets the rows added. Returns 0, or an error with nothing written
 * (YARD_EUNAVAIL: reconnect; YARD_EPG: the server refused, e.g. a detail
 * jsonb cannot take). */
int yard_audit_append(PGconn *c, const yard_audit_row_t *rows, size_t n, size_t *written);

/* What a verification found. */
typedef struct {
    int64_t rows;      /* rows checked */
    int64_t first_seq; /* the first and last checked (0 when none) */
    int64_t last_seq;
    int64_t bad_seq;   /* the first row that does not match, 0 if all do */
    char bad_event_id[200];
    char why[200];     /* what does not match */
} yard_audit_verify_t;

/* Walks the chain in seq order from the row of seq since_seq (0: the
 * first), or from the first row at or after since_time (text PostgreSQL
 * reads as timestamptz; NULL: unused), stopping at the first row that does
 * not match. A verification starting past the first row trusts the
 * prev_hash of the row it starts at. Returns 0 with *out filled (bad_seq
 * says whether the chain holds), or an error (logged). */
int yard_audit_verify(yard_audit_verify_t *out, PGconn *c, int64_t since_seq,
                      const char *since_time);

#endif
