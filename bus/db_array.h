/*
 * db_array.h - PostgreSQL array literals ({"a","b",NULL}) built as text
 * parameters, so a batch of rows goes to one set-based statement (unnest)
 * in one round trip.
 */
#ifndef YARD_DB_ARRAY_H
#define YARD_DB_ARRAY_H

#include <stddef.h>

#include "envelope.h"

/* A literal being built; zero-initialise it, append elements, end it, free
 * buf. An allocation failure is remembered and reported by
 * yard_db_array_end. */
typedef struct {
    char *buf;
    size_t len, cap;
    int n;
    int oom;
} yard_db_array_t;

/* Appends one element: SQL NULL when s is NULL, else the n bytes at s,
 * quoted and escaped. */
void yard_db_array_str(yard_db_array_t *a, const char *s, size_t n);
/* Appends a view (NULL when empty), a C string (NULL when NULL), a number. */
void yard_db_array_view(yard_db_array_t *a, yard_str_t v);
void yard_db_array_cstr(yard_db_array_t *a, const char *s);
void yard_db_array_num(yard_db_array_t *a, long long v);

/* Closes the literal ("{}" when empty) and returns it (owned by a), or NULL
 * if an allocation failed. */
const char *yard_db_array_end(yard_db_array_t *a);

/* A whole literal of n C strings, malloc'd (the caller frees it), or NULL
 * if out of memory. */
char *yard_db_array_of(const char *const *strs, size_t n);

#endif
