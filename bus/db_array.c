/*
 * db_array.c - PostgreSQL array literals (db_array.h): how a batch travels
 * to a set-based statement as a few text parameters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_array.h"


static void array_put(yard_db_array_t *a, const char *s, size_t n)
{
    if (a->oom)
        return;
    if (a->len + n + 2 > a->cap) {
        size_t cap = a->cap ? a->cap : 256;
        while (a->len + n + 2 > cap)
            cap *= 2;
        char *b = realloc(a->buf, cap);
        if (!b) {
            a->oom = 1;
            return;
        }
        a->buf = b;
        a->cap = cap;
    }
    memcpy(a->buf + a->len, s, n);
    a->len += n;
    a->buf[a->len] = '\0';
}

/* Appends one element: NULL when s is NULL, else s quoted and escaped. */
void yard_db_array_str(yard_db_array_t *a, const char *s, size_t n)
{
    array_put(a, a->n++ ? "," : "{", 1);
    if (!s) {
        array_put(a, "NULL", 4);
        return;
    }
    array_put(a, "\"", 1);
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            array_put(a, s + from, i - from);
            array_put(a, "\\", 1);
            from = i;
        }
    }
    array_put(a, s + from, n - from);
    array_put(a, "\"", 1);
}

void yard_db_array_view(yard_db_array_t *a, yard_str_t v)
{
    yard_db_array_str(a, v.len ? v.ptr : NULL, v.len);
}

void yard_db_array_cstr(yard_db_array_t *a, const char *s)
{
    yard_db_array_str(a, s, s ? strlen(s) : 0);
}

void yard_db_array_num(yard_db_array_t *a, long long v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%lld", v);
    yard_db_array_str(a, num, (size_t)n);
}

/* Closes the literal ("{}" when empty); returns it, or NULL if out of memory. */
const char *yard_db_array_end(yard_db_array_t *a)
{
    array_put(a, a->n ? "}" : "{}", a->n ? 1 : 2);
    return a->oom ? NULL : a->buf;
}

/* A "{id,id}" uuid array literal of n ids; NULL if out of memory. */
char *yard_db_array_of(const char *const *ids, size_t n)
{
    yard_db_array_t a = {0};
    for (size_t i = 0; i < n; i++)
        yard_db_array_cstr(&a, ids[i]);
    if (!yard_db_array_end(&a)) {
        free(a.buf);
        return NULL;
    }
    return a.buf;
}
