/*
 * log.c - JSON-lines logging to one file descriptor.
 *
 * The level and component are set once at start and read-only afterwards.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

#define LOG_LINE_MAX 4096

static struct {
    char component[32];
    yard_log_level_t level;
    int fd;
} log_state = {"yard", YARD_LOG_INFO, 2};

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void yard_log_init(const char *component, yard_log_level_t level)
{
    if (component)
        snprintf(log_state.component, sizeof log_state.component, "%s", component);
    log_state.level = level;
}

void yard_log_set_fd(int fd)
{
    log_state.fd = fd;
}

int yard_log_parse_level(yard_log_level_t *out, const char *name)
{
    for (int i = 0; i <= YARD_LOG_OFF; i++) {
        if (name && strcasecmp(name, level_names[i]) == 0) {
            *out = (yard_log_level_t)i;
            return 0;
        }
    }
    return YARD_EINVAL;
}

int yard_log_enabled(yard_log_level_t level)
{
    return level >= log_state.level && level < YARD_LOG_OFF;
}

void yard_log_json_escape(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t l = *len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t el = 0;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            el = 2;
        } else if (c == '\n') {
            memcpy(esc, "\\n", 2);
            el = 2;
        } else if (c == '\t') {
            memcpy(esc, "\\t", 2);
            el = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
        } else {
            esc[0] = (char)c;
            el = 1;
        }
        if (l + el >= cap)
            break;
        memcpy(buf + l, esc, el);
        l += el;
    }
    *len = l;
}

static void log_append(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n >= cap)
        n = cap - *len - 1;
    memcpy(buf + *len, s, n);
    *len += n;
}

static void log_field(char *buf, size_t cap, size_t *len, const char *key, const char *val)
{
    if (!val)
        return;
    log_append(buf, cap, len, ",\"");
    log_append(buf, cap, len, key);
    log_append(buf, cap, len, "\":\"");
    yard_log_json_escape(buf, cap, len, val, strlen(val));
    log_append(buf, cap, len, "\"");
}

void yard_log_emit(yard_log_level_t level, const yard_log_ctx_t *ctx, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    char msg[LOG_LINE_MAX / 2];
    char ts[96];
    struct timespec now;
    struct tm tm;
    size_t len = 0;
    va_list ap;

    if (level < YARD_LOG_DEBUG || level >= YARD_LOG_OFF)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(now.tv_nsec / 1000000L));
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    /* Keep room for the closing "}\n". */
    const size_t cap = sizeof line - 2;
    log_append(line, cap, &len, "{\"time\":\"");
    log_append(line, cap, &len, ts);
    log_append(line, cap, &len, "\",\"level\":\"");
    log_append(line, cap, &len, level_names[level]);
    log_append(line, cap, &len, "\"");
    log_field(line, cap, &len, "component", log_state.component);
    log_field(line, cap, &len, "msg", msg);
    if (ctx) {
        log_field(line, cap, &len, "request_id", ctx->request_id);
        log_field(line, cap, &len, "job_id", ctx->job_id);
        log_field(line, cap, &len, "trace_id", ctx->trace_id);
    }
    line[len++] = '}';
    line[len++] = '\n';
    ssize_t w = write(log_state.fd, line, len);
    (void)w; /* nowhere left to report a failed log write */
}
