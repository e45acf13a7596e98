/*
 * yt_report.h - the failures of one check, collected so that a test lists
 * every one of them rather than stopping at the first.
 *
 * A check adds an entry per failure (one line, or two with the second
 * indented by the caller), then prints them all and fails once with the
 * count: yt_report_print, then the test's own fail_msg.
 */
#ifndef YARD_TEST_YT_REPORT_H
#define YARD_TEST_YT_REPORT_H

#include "yt_str.h"

/* Start it zeroed, with max_listed set when the list should be cut:
 * yt_report_t r = {.max_listed = 60}. It owns its text until
 * yt_report_print frees it. */
typedef struct {
    yt_str_t text; /* the entries kept, each "  <entry>\n" */
    int n;         /* entries added */
    int listed;    /* of them kept in text */
    int max_listed; /* entries kept at most; 0: every one */
} yt_report_t;

/* Adds an entry (printf format; any length). Past max_listed it is only
 * counted. */
void yt_report_add(yt_report_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* When r holds entries, prints "<what>: N failure(s):", the entries and
 * "... and N more" for those not kept to stderr. Returns how many entries
 * there were, frees the text and zeroes r (max_listed included). */
int yt_report_print(yt_report_t *r, const char *what);

#endif
