/*
 * ctl_out.c - yardctl's output: cleaning, tables, JSON, progress (ctl_out.h).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl_out.h"
#include "dlq.h"
#include "err.h"

#define CTL_LINE_MAX 4096

static int out_json; /* the one piece of output state: --json */

void ctl_out_init(int json)
{
    out_json = json;
}

int ctl_out_json(void)
{
    return out_json;
}

/* Length of the UTF-8 sequence starting at p (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p)
{
    size_t n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
    if (p[0] >= 0xf8)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* Skips an escape sequence starting at p (ESC or a C1 introducer already
 * seen as kind: '[' CSI, ']' OSC, 'P' DCS, '_', '^', 'X' strings, other:
 * a two-byte escape). Returns the first byte after it. */
static const unsigned char *skip_escape(const unsigned char *p, unsigned char kind)
{
    if (kind == '[') { /* CSI: parameters and intermediates, then a final byte */
        while (*p && (*p < 0x40 || *p > 0x7e))
            p++;
        return *p ? p + 1 : p;
    }
    if (kind == ']' || kind == 'P' || kind == '_' || kind == '^' || kind == 'X') {
        /* A string: ends with BEL, ESC \ or ST (0x9c / C2 9C). */
        while (*p) {
            if (*p == 0x07)
                return p + 1;
            if (*p == 0x1b && p[1] == '\\')
                return p + 2;
            if (*p == 0x9c)
                return p + 1;
            if (*p == 0xc2 && p[1] == 0x9c)
                return p + 2;
            p++;
        }
        return p;
    }
    return p; /* ESC X: the X was consumed by the caller */
}

char *ctl_out_clean(char *dst, size_t cap, const char *src)
{
    const unsigned char *p = (const unsigned char *)(src ? src : "");
    size_t n = 0;
    while (*p) {
        unsigned char c = *p;
        if (c == 0x1b) { /* ESC */
            unsigned char kind = p[1];
            p += kind ? 2 : 1;
            p = skip_escape(p, kind);
            continue;
        }
        if (c == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) { /* C1 in UTF-8 */
            unsigned char c1 = p[1];
            p += 2;
            if (c1 == 0x9b)
                p = skip_escape(p, '[');
            else if (c1 == 0x9d || c1 == 0x90 || c1 == 0x9e || c1 == 0x9f || c1 == 0x98)
                p = skip_escape(p, ']');
            continue;
        }
        const char *piece = (const char *)p;
        size_t len = 1;
        if (c < 0x20 || c == 0x7f) {
            piece = " ";
        } else if (c >= 0x80) {
            len = utf8_len(p);
            if (len == 0) {
                piece = "?";
                len = 1;
            }
        }
        if (n + len >= cap)
            break;
        memcpy(dst + n, piece, len);
        n += len;
        p += (piece == (const char *)p) ? len : 1;
    }
    dst[n] = '\0';
    return dst;
}

void ctl_out_line(const char *fmt, ...)
{
    char raw[CTL_LINE_MAX], clean[CTL_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    size_t len = strlen(raw);
    int nl = len && raw[len - 1] == '\n';
    if (nl)
        raw[len - 1] = '\0';
    fputs(ctl_out_clean(clean, sizeof clean, raw), stdout);
    if (nl)
        fputc('\n', stdout);
}

int ctl_out_json_print(json_t *v)
{
    if (!v)
        return YARD_ENOMEM;
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
    json_decref(v);
    if (!s)
        return YARD_ENOMEM;
    fputs(s, stdout);
    fputc('\n', stdout);
    free(s);
    return 0;
}

/* ---- tables -------------------------------------------------------------------- */

struct ctl_table {
    size_t ncols, nrows, cap, max_width;
    char **cells; /* (nrows + 1) * ncols, row 0 the heads; cleaned copies */
};

/* Characters (code points) in UTF-8 s. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* A cleaned copy of s, cut to max characters (0: no cut) with "…". */
static char *cell_copy(const char *s, size_t max)
{
    size_t cap = strlen(s ? s : "-") + 4;
    char *c = malloc(cap);
    if (!c)
        return NULL;
    ctl_out_clean(c, cap, s ? s : "-");
    if (max && utf8_chars(c) > max) {
        size_t chars = 0, i = 0;
        for (; c[i]; i++) {
            if (((unsigned char)c[i] & 0xc0) != 0x80 && ++chars > max - 1)
                break;
        }
        memcpy(c + i, "\xe2\x80\xa6", 4); /* … (room: cap >= i + 4) */
    }
    return c;
}

ctl_table_t *ctl_table_new(const char *const *heads, size_t ncols, size_t max_width)
{
    ctl_table_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ncols = ncols;
    if (ctl_table_add(t, heads) < 0) { /* row 0, never cut, not counted */
        ctl_table_free(t);
        return NULL;
    }
    t->max_width = max_width;
    return t;
}

int ctl_table_add(ctl_table_t *t, const char *const *cells)
{
    size_t row = t->cells ? t->nrows + 1 : 0;
    if ((row + 1) * t->ncols > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : t->ncols * 16;
        while (cap < (row + 1) * t->ncols)
            cap *= 2;
        char **c = realloc(t->cells, cap * sizeof *c);
        if (!c)
            return YARD_ENOMEM;
        t->cells = c;
        t->cap = cap;
    }
    for (size_t i = 0; i < t->ncols; i++) {
        t->cells[row * t->ncols + i] = cell_copy(cells[i], t->max_width);
        if (!t->cells[row * t->ncols + i]) {
            while (i-- > 0)
                free(t->cells[row * t->ncols + i]);
            return YARD_ENOMEM;
        }
    }
    if (row > 0)
        t->nrows++;
    return 0;
}

void ctl_table_print(const ctl_table_t *t, FILE *out)
{
    size_t *w = calloc(t->ncols, sizeof *w);
    if (!w)
        return;
    for (size_t r = 0; r <= t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t n = utf8_chars(t->cells[r * t->ncols + c]);
            if (n > w[c])
                w[c] = n;
        }
    for (size_t r = 0; r <= t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *v = t->cells[r * t->ncols + c];
            fputs(v, out);
            if (c + 1 < t->ncols)
                fprintf(out, "%*s", (int)(w[c] - utf8_chars(v) + 2), "");
        }
        fputc('\n', out);
    }
    free(w);
}

void ctl_table_free(ctl_table_t *t)
{
    if (!t)
        return;
    size_t rows = t->cells ? t->nrows + 1 : 0;
    for (size_t i = 0; i < rows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

/* ---- progress ------------------------------------------------------------------ */

#define CTL_BAR_WIDTH 30

void ctl_progress_start(ctl_progress_t *p, const char *label, size_t total)
{
    p->label = label;
    p->total = total;
    p->on = total > 1 && isatty(STDERR_FILENO);
    ctl_progress_step(p, 0);
}

void ctl_progress_step(ctl_progress_t *p, size_t done)
{
    char bar[CTL_BAR_WIDTH + 1];
    if (!p->on)
        return;
    size_t fill = p->total ? done * CTL_BAR_WIDTH / p->total : 0;
    for (size_t i = 0; i < CTL_BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : ' ';
    bar[CTL_BAR_WIDTH] = '\0';
    fprintf(stderr, "\r%s [%s] %zu/%zu", p->label, bar, done, p->total);
    fflush(stderr);
}

void ctl_progress_end(ctl_progress_t *p)
{
    if (!p->on)
        return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
    p->on = 0;
}

/* ---- times and durations ------------------------------------------------------- */

int64_t ctl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *ctl_out_time(char out[40], int64_t ms)
{
    if (ms <= 0) {
        snprintf(out, 40, "-");
        return out;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return out;
}

int ctl_parse_duration(int64_t *out_s, const char *text)
{
    char *end;
    if (!text || !*text || *text == '-')
        return YARD_EINVAL;
    long long v = strtoll(text, &end, 10);
    long long unit = 1;
    if (end == text)
        return YARD_EINVAL;
    if (*end) {
        switch (*end) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        case 'w': unit = 7 * 86400; break;
        default: return YARD_EINVAL;
        }
        if (end[1])
            return YARD_EINVAL;
    }
    if (v < 0 || v > 100LL * 365 * 86400 / unit)
        return YARD_EINVAL;
    *out_s = v * unit;
    return 0;
}

int ctl_parse_since(int64_t *out_ms, const char *text)
{
    int64_t s;
    if (ctl_parse_duration(&s, text) == 0) {
        *out_ms = ctl_now_ms() - s * 1000;
        return 0;
    }
    return yard_dlq_parse_time(out_ms, text);
}
