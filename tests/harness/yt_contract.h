/*
 * yt_contract.h - the metrics contract of issue 11 (README, "Metrics") as
 * one table: every family, its type, its labels and the processes that
 * export it.
 *
 * Tests read it to check what the programs export, what Prometheus
 * scraped, and which names dashboards and alert rules may use; a metric
 * added to the contract is one row here.
 */
#ifndef YARD_TEST_YT_CONTRACT_H
#define YARD_TEST_YT_CONTRACT_H

#include <stddef.h>

/* The processes of a cluster, as bits. */
enum {
    YT_PROC_GATEWAY = 1,
    YT_PROC_EXECUTE = 2,  /* a worker of role execute */
    YT_PROC_SCHEDULE = 4, /* a worker of role schedule */
    YT_PROC_AUDIT = 8,    /* a worker of role audit */
    YT_PROC_EVERY = 15,
};

typedef struct {
    const char *name;   /* the family's name (a histogram's own, without _bucket) */
    const char *kind;   /* "counter", "gauge" or "histogram", as its # TYPE line says */
    const char *labels; /* the labels its series always have (a histogram's le
                         * aside), each followed by a comma: "queue,outcome," */
    unsigned procs;     /* the processes that must export it: YT_PROC_* bits
                         * (a worker role may export more than it must) */
} yt_metric_t;

/* The contract, yt_contract_len rows. */
extern const yt_metric_t yt_contract[];
extern const size_t yt_contract_len;

/* The row of the series named by the len bytes at name: a counter's or a
 * gauge's name, a histogram's name_bucket, name_sum or name_count, and,
 * when family is nonzero, a histogram's own name too. NULL when the
 * contract has no such series. */
const yt_metric_t *yt_contract_find(const char *name, size_t len, int family);

#endif
