/*
 * names.h - the one rule for queue and job type names.
 *
 * Names are [a-z0-9][a-z0-9._-]{0,63}: they become NATS subject tokens
 * (jobs.execute.<queue>), consumer names (with '.' mapped to '_'), metric
 * labels and PostgreSQL values (a CHECK in 0001_jobs.sql repeats the rule).
 */
#ifndef YARD_NAMES_H
#define YARD_NAMES_H

#include <stddef.h>

#define YARD_NAME_MAX 64

/* Nonzero if the len bytes at name form a valid queue or type name. */
int yard_name_valid(const char *name, size_t len);

#endif
