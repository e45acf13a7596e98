/*
 * err.c - descriptions and names of libyard's error codes.
 */
#include "err.h"

typedef struct {
    const char *name;
    const char *text;
} err_entry_t;

static const err_entry_t err_table[] = {
    {"OK", "success"},
    {"EINVAL", "invalid argument or input"},
    {"ENOMEM", "out of memory"},
    {"ETRUNC", "input is truncated"},
    {"EFORMAT", "input is malformed"},
    {"EVERSION", "unsupported envelope version"},
    {"ERANGE", "value out of range"},
    {"EIO", "system call failed"},
    {"ENOTFOUND", "not found"},
    {"EEXIST", "already exists"},
    {"ETIMEOUT", "timed out"},
    {"EUNAVAIL", "service unavailable"},
    {"ENATS", "NATS/JetStream error"},
    {"EPG", "PostgreSQL error"},
    {"EDUPLICATE", "duplicate message"},
    {"ECONFIG", "invalid configuration"},
    {"EAUTH", "not authorised"},
    {"EBUSY", "limit reached, try again later"},
    {"ESTATE", "not allowed in the current state"},
    {"ECRYPTO", "crypto library failed"},
    {"ENOSPACE", "the JetStream store is full"},
};

static const err_entry_t *err_lookup(int code)
{
    if (code > 0 || code <= YARD_ELAST)
        return 0;
    return &err_table[-code];
}

const char *yard_strerror(int code)
{
    const err_entry_t *e = err_lookup(code);
    return e ? e->text : "unknown error";
}

const char *yard_errname(int code)
{
    const err_entry_t *e = err_lookup(code);
    return e ? e->name : "EUNKNOWN";
}
