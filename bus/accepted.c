/*
 * accepted.c - the accepted-jobs event codec (accepted.h).
 */
#include <string.h>

#include "accepted.h"
#include "err.h"

static const char magic[4] = {'Y', 'A', 'J', '1'};

static void put_be(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

size_t yard_accepted_size(const yard_accepted_t *jobs, size_t n)
{
    size_t size = YARD_ACCEPTED_HEAD;
    for (size_t i = 0; i < n; i++)
        size += YARD_ACCEPTED_ITEM + jobs[i].len;
    return size;
}

int yard_accepted_encode(char *buf, size_t cap, const yard_accepted_t *jobs, size_t n,
                         size_t *out_len)
{
    size_t size = yard_accepted_size(jobs, n);
    if (size > cap || n > UINT32_MAX)
        return YARD_ERANGE;
    unsigned char *p = (unsigned char *)buf;
    memcpy(p, magic, sizeof magic);
    put_be(p + 4, n, 4);
    p += YARD_ACCEPTED_HEAD;
    for (size_t i = 0; i < n; i++) {
        put_be(p, jobs[i].seq, 8);
        put_be(p + 8, jobs[i].len, 4);
        memcpy(p + YARD_ACCEPTED_ITEM, jobs[i].env, jobs[i].len);
        p += YARD_ACCEPTED_ITEM + jobs[i].len;
    }
    *out_len = size;
    return 0;
}

int yard_accepted_open(yard_accepted_reader_t *r, const void *data, size_t len, uint32_t *count)
{
    const unsigned char *p = data;
    if (!p || len < YARD_ACCEPTED_HEAD || memcmp(p, magic, sizeof magic) != 0)
        return YARD_EFORMAT;
    r->p = p + YARD_ACCEPTED_HEAD;
    r->end = p + len;
    r->left = (uint32_t)get_be(p + 4, 4);
    *count = r->left;
    return 0;
}

int yard_accepted_next(yard_accepted_reader_t *r, yard_accepted_t *out)
{
    if (r->left == 0)
        return r->p == r->end ? 0 : YARD_EFORMAT;
    if ((size_t)(r->end - r->p) < YARD_ACCEPTED_ITEM)
        return YARD_EFORMAT;
    uint64_t len = get_be(r->p + 8, 4);
    if ((size_t)(r->end - r->p) - YARD_ACCEPTED_ITEM < len)
        return YARD_EFORMAT;
    out->seq = get_be(r->p, 8);
    out->len = (size_t)len;
    out->env = (const char *)r->p + YARD_ACCEPTED_ITEM;
    r->p += YARD_ACCEPTED_ITEM + len;
    r->left--;
    return 1;
}
