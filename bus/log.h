/*
 * log.h - JSON-lines logging.
 *
 * One JSON object per line on stderr (or the fd set with yard_log_set_fd):
 *   {"time":"2026-11-22T02:10:00.123Z","level":"info","component":"gateway",
 *    "msg":"...","request_id":"...","job_id":"...","trace_id":"..."}
 * Each line is written with one write(2), so lines from threads never mix.
 * The YARD_LOG_* macros check the level before evaluating their arguments.
 */
#ifndef YARD_LOG_H
#define YARD_LOG_H

typedef enum {
    YARD_LOG_DEBUG = 0,
    YARD_LOG_INFO = 1,
    YARD_LOG_WARN = 2,
    YARD_LOG_ERROR = 3,
    YARD_LOG_OFF = 4
} yard_log_level_t;

/* Ids that tie a line to a request or job; any field may be NULL. */
typedef struct {
    const char *request_id;
    const char *job_id;
    const char *trace_id;
} yard_log_ctx_t;

/* Sets the component name (copied, at most 31 bytes) and the minimum level. */
void yard_log_init(const char *component, yard_log_level_t level);

/* Sends log lines to fd instead of stderr (tests use a pipe). */
void yard_log_set_fd(int fd);

/* Parses "debug", "info", "warn", "error", "off"; returns 0 and sets *out,
 * or YARD_EINVAL leaving *out untouched. */
int yard_log_parse_level(yard_log_level_t *out, const char *name);

/* Nonzero when lines of this level are written. */
int yard_log_enabled(yard_log_level_t level);

/* Formats and writes one line; ctx may be NULL. Use the macros instead. */
void yard_log_emit(yard_log_level_t level, const yard_log_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define YARD_LOG_AT(lvl, ctx, ...)                                                                \
    do {                                                                                          \
        if (yard_log_enabled(lvl))                                                                \
            yard_log_emit((lvl), (ctx), __VA_ARGS__);                                             \
    } while (0)
#define YARD_LOG_DEBUG(ctx, ...) YARD_LOG_AT(YARD_LOG_DEBUG, ctx, __VA_ARGS__)
#define YARD_LOG_INFO(ctx, ...) YARD_LOG_AT(YARD_LOG_INFO, ctx, __VA_ARGS__)
#define YARD_LOG_WARN(ctx, ...) YARD_LOG_AT(YARD_LOG_WARN, ctx, __VA_ARGS__)
#define YARD_LOG_ERROR(ctx, ...) YARD_LOG_AT(YARD_LOG_ERROR, ctx, __VA_ARGS__)

/* Appends s as the body of a JSON string (no quotes) to buf of size cap,
 * starting at *len; escapes quotes, backslashes and control bytes. Stops
 * (and keeps *len consistent) when buf is full. Shared with other JSON writers. */
void yard_log_json_escape(char *buf, size_t cap, size_t *len, const char *s, size_t n);

#endif
