/*
 * yt_str.c - small strings for tests (see yt_str.h).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yt_str.h"

#define YT_STR_FIRST_CAP 256
#define YT_FILE_CHUNK 8192

/* Makes room for n more bytes and the NUL. */
static void yt_str_reserve(yt_str_t *b, size_t n)
{
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : YT_STR_FIRST_CAP;
    while (cap < need)
        cap *= 2;
    char *grown = realloc(b->s, cap);
    if (!grown)
        abort();
    b->s = grown;
    b->cap = cap;
}

void yt_str_addn(yt_str_t *b, const char *s, size_t n)
{
    yt_str_reserve(b, n);
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void yt_str_add(yt_str_t *b, const char *s)
{
    yt_str_addn(b, s, strlen(s));
}

void yt_str_vaddf(yt_str_t *b, const char *fmt, va_list ap)
{
    char first[YT_STR_FIRST_CAP];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(first, sizeof first, fmt, ap);
    if (n > 0 && (size_t)n < sizeof first) {
        yt_str_addn(b, first, (size_t)n);
    } else if (n > 0) { /* longer: format it again, in place */
        yt_str_reserve(b, (size_t)n);
        vsnprintf(b->s + b->len, (size_t)n + 1, fmt, again);
        b->len += (size_t)n;
    }
    va_end(again);
}

void yt_str_addf(yt_str_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    yt_str_vaddf(b, fmt, ap);
    va_end(ap);
}

void yt_str_clear(yt_str_t *b)
{
    b->len = 0;
    if (b->s)
        b->s[0] = '\0';
}

const char *yt_str_text(const yt_str_t *b)
{
    return b->s ? b->s : "";
}

void yt_str_free(yt_str_t *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

const char *yt_one_line(const char *s, size_t max)
{
    static char ring[6][YT_ONE_LINE_MAX + 4];
    static int next;
    char *out = ring[next++ % 6];
    size_t o = 0;
    if (max > YT_ONE_LINE_MAX)
        max = YT_ONE_LINE_MAX;
    int space = 0;
    for (const char *p = s ? s : ""; *p && o < max; p++) {
        unsigned char c = (unsigned char)*p;
        if (isspace(c)) {
            space = o > 0;
            continue;
        }
        if (space && o < max)
            out[o++] = ' ';
        space = 0;
        if (o < max)
            out[o++] = c < 0x20 ? '.' : (char)c;
    }
    out[o] = '\0';
    if (s && strlen(s) > max)
        strcpy(out + o, "...");
    return out;
}

int yt_cset_has(const char *set, const char *item, size_t len)
{
    for (const char *p = strchr(set, ','); p && p[1]; p = strchr(p + 1, ','))
        if (strncmp(p + 1, item, len) == 0 && p[1 + len] == ',')
            return 1;
    return 0;
}

void yt_cset_add(char *set, size_t cap, const char *item)
{
    size_t have = strlen(set), n = strlen(item);
    if (yt_cset_has(set, item, n) || have + n + 2 >= cap)
        return;
    memcpy(set + have, item, n);
    set[have + n] = ',';
    set[have + n + 1] = '\0';
}

char *yt_file_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    yt_str_t b = {0};
    yt_str_add(&b, "");
    for (;;) {
        yt_str_reserve(&b, YT_FILE_CHUNK);
        size_t n = fread(b.s + b.len, 1, b.cap - b.len - 1, f);
        if (n == 0)
            break;
        b.len += n;
    }
    b.s[b.len] = '\0';
    fclose(f);
    return b.s;
}

const char *yt_skip_space(const char *p)
{
    while (*p && isspace((unsigned char)*p))
        p++;
    return p;
}

const char *yt_skip_quoted(const char *p, char *out, size_t cap)
{
    char q = *p++;
    size_t o = 0;
    while (*p && *p != q) {
        if (*p == '\\' && q != '`' && p[1])
            p++;
        if (cap && o + 1 < cap)
            out[o++] = *p;
        p++;
    }
    if (cap)
        out[o] = '\0';
    return *p ? p + 1 : p;
}

const char *yt_skip_group(const char *p, char open, char close)
{
    int depth = 0;
    while (*p) {
        if (*p == '"' || *p == '\'' || *p == '`') {
            p = yt_skip_quoted(p, NULL, 0);
            continue;
        }
        if (*p == open)
            depth++;
        else if (*p == close && --depth == 0)
            return p + 1;
        p++;
    }
    return p;
}
