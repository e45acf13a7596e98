/*
 * yt_report.c - the failures of one check (see yt_report.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "yt_report.h"

void yt_report_add(yt_report_t *r, const char *fmt, ...)
{
    r->n++;
    if (r->max_listed && r->listed >= r->max_listed)
        return;
    r->listed++;
    va_list ap;
    va_start(ap, fmt);
    yt_str_add(&r->text, "  ");
    yt_str_vaddf(&r->text, fmt, ap);
    yt_str_add(&r->text, "\n");
    va_end(ap);
}

int yt_report_print(yt_report_t *r, const char *what)
{
    int n = r->n;
    if (n) {
        fprintf(stderr, "%s: %d failure%s:\n%s", what, n, n == 1 ? "" : "s",
                yt_str_text(&r->text));
        if (n > r->listed)
            fprintf(stderr, "  ... and %d more\n", n - r->listed);
    }
    yt_str_free(&r->text);
    memset(r, 0, sizeof *r);
    return n;
}
