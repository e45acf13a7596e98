/*
 * fuzz_accepted.c - libFuzzer target for the accepted-jobs event (what the
 * audit role reads from EVENTS): the reader over arbitrary bytes, then, for
 * every job it yields, the envelope decoder and the store checks the ingest
 * runs. The jobs read must encode back to exactly the bytes they came from;
 * otherwise abort(). Crashes, out-of-bounds reads and undefined behaviour
 * are caught by the sanitizers. Build and run: see tests/fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "accepted.h"
#include "envelope.h"
#include "err.h"
#include "jobs.h"

#define FUZZ_MAX_JOBS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static yard_accepted_t jobs[FUZZ_MAX_JOBS];
    yard_accepted_reader_t r;
    yard_accepted_t job;
    uint32_t count = 0;
    size_t n = 0;
    int rc;
    if (yard_accepted_open(&r, data, size, &count) != 0)
        return 0;
    while (n < FUZZ_MAX_JOBS && (rc = yard_accepted_next(&r, &job)) == 1) {
        yard_envelope_t env;
        char why[160];
        if (job.env < (const char *)data || job.env + job.len > (const char *)data + size)
            abort();
        if (yard_env_decode(&env, job.env, job.len) == 0)
            (void)yard_jobs_check(&env, why, sizeof why);
        jobs[n++] = job;
    }
    /* What was read encodes back to the bytes it was read from. */
    size_t used = yard_accepted_size(jobs, n), len = 0;
    char *buf = malloc(used);
    if (!buf || yard_accepted_encode(buf, used, jobs, n, &len) != 0 || len != used ||
        len > size || memcmp(buf + YARD_ACCEPTED_HEAD, data + YARD_ACCEPTED_HEAD,
                             len - YARD_ACCEPTED_HEAD) != 0)
        abort();
    free(buf);
    return 0;
}
