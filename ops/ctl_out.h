/*
 * ctl_out.h - how yardctl prints: human tables by default, JSON with
 * --json, and nothing from the cluster reaching the terminal raw.
 *
 * Text that comes from jobs, queues or letters (an error message, a type,
 * a payload) may hold terminal escapes (ESC [ ... , OSC ESC ] ... BEL) put
 * there by whoever submitted the job. Every string printed through this
 * module is cleaned first (ctl_out_clean): escape sequences are dropped,
 * other control characters (C0, DEL, C1) become a space, and invalid UTF-8
 * becomes '?'. JSON output escapes every control character and all
 * non-ASCII (\uXXXX), so it is safe on a terminal too.
 *
 * The output mode is process-wide: main sets it once from --json before
 * running a subcommand (ctl_out_init); subcommands ask ctl_out_json().
 */
#ifndef CTL_OUT_H
#define CTL_OUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* Sets the output mode (json nonzero: --json). Called once by main. */
void ctl_out_init(int json);

/* Nonzero when the user asked for --json. */
int ctl_out_json(void);

/* Writes src (may be NULL: "") cleaned for a terminal into dst (cap bytes,
 * cap >= 1), truncated on a character boundary to fit. Returns dst. */
char *ctl_out_clean(char *dst, size_t cap, const char *src);

/* printf to stdout, with the formatted text cleaned (a final '\n' of fmt is
 * kept). Lines longer than 4 KiB are cut. */
void ctl_out_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints v (consumed) to stdout as indented JSON, ASCII only, and a newline.
 * Returns 0, or YARD_ENOMEM when v is NULL (a failed json_pack). */
int ctl_out_json_print(json_t *v);

/* A table: column heads, then rows of cells (copied, cleaned when printed),
 * printed with columns padded to their widest cell (cut at max_width
 * characters, 0: no cut). */
typedef struct ctl_table ctl_table_t;

/* Returns a table of ncols columns with heads (copied), or NULL when out of
 * memory. Free with ctl_table_free. */
ctl_table_t *ctl_table_new(const char *const *heads, size_t ncols, size_t max_width);

/* Adds a row of ncols cells (NULL cells print "-"). Returns 0 or
 * YARD_ENOMEM. */
int ctl_table_add(ctl_table_t *t, const char *const *cells);

/* Prints the heads and rows to out. */
void ctl_table_print(const ctl_table_t *t, FILE *out);

/* NULL is a no-op. */
void ctl_table_free(ctl_table_t *t);

/* A progress bar on stderr, drawn only when stderr is a terminal (so logs
 * and pipes never see it): "label [#####     ] done/total". */
typedef struct {
    const char *label;
    size_t total;
    int on;
} ctl_progress_t;

void ctl_progress_start(ctl_progress_t *p, const char *label, size_t total);
void ctl_progress_step(ctl_progress_t *p, size_t done);
/* Clears the bar's line. */
void ctl_progress_end(ctl_progress_t *p);

/* Writes Unix ms as "2026-01-02T03:04:05Z" into out (40 bytes); 0 as "-". */
char *ctl_out_time(char out[40], int64_t ms);

/* Parses a duration "90s", "15m", "2h", "7d" (a bare number is seconds)
 * into seconds. Returns 0 or YARD_EINVAL. */
int ctl_parse_duration(int64_t *out_s, const char *text);

/* Parses --since: an RFC 3339 UTC time or a duration back from now
 * ("1h": the last hour). Sets Unix ms. Returns 0 or YARD_EINVAL. */
int ctl_parse_since(int64_t *out_ms, const char *text);

/* Unix ms now (wall clock). */
int64_t ctl_now_ms(void);

#endif
