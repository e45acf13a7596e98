/*
 * redact.c - hides the secrets of connection strings (see redact.h).
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "redact.h"

typedef struct {
    char *buf;
    size_t cap, len;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n && o->len + 1 < o->cap; i++)
        o->buf[o->len++] = s[i];
    o->buf[o->len] = '\0';
}

static void puts_(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

static int secret_key(const char *k, size_t n)
{
    static const char *const keys[] = {"password", "sslpassword", "token", "pass", "secret"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strlen(keys[i]) == n && strncasecmp(k, keys[i], n) == 0)
            return 1;
    return 0;
}

static int token_scheme(const char *s, size_t n)
{
    static const char *const schemes[] = {"nats", "tls", "ws", "wss"};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (strlen(schemes[i]) == n && strncasecmp(s, schemes[i], n) == 0)
            return 1;
    return 0;
}

/* One URL, s[0..n): scheme://[user[:password]@]host[/path][?query][#frag]. */
static void redact_url(out_t *o, const char *s, size_t n)
{
    const char *sep = strstr(s, "://");
    size_t scheme_len = (size_t)(sep - s);
    const char *auth = sep + 3, *end = s + n;
    const char *auth_end = auth;

    while (auth_end < end && *auth_end != '/' && *auth_end != '?' && *auth_end != '#')
        auth_end++;
    /* The user part ends at the LAST '@' of the authority (a password may hold '@'). */
    const char *at = NULL;
    for (const char *p = auth; p < auth_end; p++)
        if (*p == '@')
            at = p;
    put(o, s, (size_t)(auth - s));
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon) {
            put(o, auth, (size_t)(colon - auth));
            puts_(o, ":***");
        } else if (token_scheme(s, scheme_len)) {
            puts_(o, "***");
        } else {
            put(o, auth, (size_t)(at - auth));
        }
        put(o, at, (size_t)(auth_end - at));
    } else {
        put(o, auth, (size_t)(auth_end - auth));
    }
    const char *q = auth_end;
    const char *path_end = q;
    while (path_end < end && *path_end != '?')
        path_end++;
    put(o, q, (size_t)(path_end - q));
    if (path_end >= end)
        return;
    /* The query: key=value pairs split by & (or ;). */
    const char *p = path_end;
    put(o, p, 1);
    p++;
    while (p < end) {
        const char *pe = p;
        while (pe < end && *pe != '&' && *pe != ';' && *pe != '#')
            pe++;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        if (eq && secret_key(p, (size_t)(eq - p))) {
            put(o, p, (size_t)(eq - p + 1));
            puts_(o, "***");
        } else {
            put(o, p, (size_t)(pe - p));
        }
        if (pe < end)
            put(o, pe, 1);
        if (pe < end && *pe == '#') {
            put(o, pe + 1, (size_t)(end - pe - 1));
            return;
        }
        p = pe + 1;
    }
}

/* A conninfo string: key = value pairs, values bare or 'quoted' with \
 * escapes. */
static void redact_conninfo(out_t *o, const char *s)
{
    const char *p = s;
    while (*p) {
        const char *ks = p;
        while (*p && isspace((unsigned char)*p))
            p++;
        const char *key = p;
        while (*p && *p != '=' && !isspace((unsigned char)*p))
            p++;
        size_t klen = (size_t)(p - key);
        while (*p && isspace((unsigned char)*p))
            p++;
        if (*p != '=') { /* not key=value: copy the rest as it is */
            puts_(o, ks);
            return;
        }
        p++;
        while (*p && isspace((unsigned char)*p))
            p++;
        put(o, ks, (size_t)(p - ks));
        const char *vs = p;
        if (*p == '\'') {
            p++;
            while (*p && *p != '\'') {
                if (*p == '\\' && p[1])
                    p++;
                p++;
            }
            if (*p == '\'')
                p++;
        } else {
            while (*p && !isspace((unsigned char)*p)) {
                if (*p == '\\' && p[1])
                    p++;
                p++;
            }
        }
        if (secret_key(key, klen))
            puts_(o, "***");
        else
            put(o, vs, (size_t)(p - vs));
    }
}

char *yard_redact_dsn(char *out, size_t cap, const char *in)
{
    out_t o = {out, cap, 0};

    if (!cap)
        return out;
    out[0] = '\0';
    if (!in)
        return out;
    if (!strstr(in, "://")) {
        redact_conninfo(&o, in);
        return out;
    }
    /* One URL or a comma-separated list of them. */
    const char *p = in;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char one[2048];
        if (n >= sizeof one)
            n = sizeof one - 1;
        memcpy(one, p, n);
        one[n] = '\0';
        if (strstr(one, "://"))
            redact_url(&o, one, n);
        else
            redact_conninfo(&o, one);
        if (!e)
            break;
        put(&o, ",", 1);
        p = e + 1;
    }
    return out;
}
