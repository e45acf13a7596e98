/*
 * accepted.h - the accepted-jobs event (YARD_SUBJ_EVENT_ACCEPTED on EVENTS):
 * how the gateway tells the audit role which jobs JOBS stored, many jobs to
 * a message, so that the second publish of the accept path costs one
 * publish per group of acknowledgements, not one per job.
 *
 * Format (big-endian): the 4 bytes "YAJ1", a u32 job count, then for each
 * job a u64 JOBS stream sequence (0: unknown), a u32 length and that many
 * bytes of its envelope (envelope.h). Nothing follows the last job.
 */
#ifndef YARD_ACCEPTED_H
#define YARD_ACCEPTED_H

#include <stddef.h>
#include <stdint.h>

#define YARD_ACCEPTED_HEAD 8  /* magic and count */
#define YARD_ACCEPTED_ITEM 12 /* per job, besides its envelope */

/* One accepted job: its JOBS sequence and a view of its envelope. */
typedef struct {
    uint64_t seq;
    const char *env;
    size_t len;
} yard_accepted_t;

/* Bytes the event of n jobs takes. */
size_t yard_accepted_size(const yard_accepted_t *jobs, size_t n);

/* Encodes the n jobs into buf (cap bytes, at least yard_accepted_size).
 * Returns 0 and sets *out_len, or YARD_ERANGE when it does not fit. */
int yard_accepted_encode(char *buf, size_t cap, const yard_accepted_t *jobs, size_t n,
                         size_t *out_len);

/* A reader over one event (views into its bytes, which must outlive it). */
typedef struct {
    const unsigned char *p, *end;
    uint32_t left;
} yard_accepted_reader_t;

/* Starts reading data/len. Returns 0 and sets *count, or YARD_EFORMAT. */
int yard_accepted_open(yard_accepted_reader_t *r, const void *data, size_t len, uint32_t *count);

/* Reads the next job into *out. Returns 1 (a job), 0 (no more), or
 * YARD_EFORMAT (malformed: stop reading). */
int yard_accepted_next(yard_accepted_reader_t *r, yard_accepted_t *out);

#endif
