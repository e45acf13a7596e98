/*
 * body.h - request bodies (JSON or msgpack) decoded into jansson values.
 *
 * Both encodings end as one json_t so that validation is written once
 * (job_spec.c). Hostile input is refused before jansson sees it: nesting
 * deeper than GW_BODY_MAX_DEPTH, invalid UTF-8 (jansson checks strings), and
 * duplicate object keys.
 */
#ifndef GW_BODY_H
#define GW_BODY_H

#include <stddef.h>

#include <jansson.h>

#define GW_BODY_MAX_DEPTH 32

typedef enum { GW_BODY_JSON = 0, GW_BODY_MSGPACK = 1 } gw_body_kind_t;

/* Picks the body kind from a Content-Type header value (parameters such as
 * charset are ignored). Returns 0 and sets *out, or YARD_EINVAL for anything
 * else, a missing (NULL) or empty value included (answer 415). */
int gw_body_kind(gw_body_kind_t *out, const char *content_type, size_t len);

/* Decodes len bytes of body into a new json_t (*out, json_decref it).
 * Returns 0, or YARD_EFORMAT with a one-line reason for the client in err
 * (cap bytes): syntax errors with their position, too deep, invalid UTF-8,
 * duplicate keys, trailing bytes, empty body. */
int gw_body_decode(json_t **out, gw_body_kind_t kind, const char *body, size_t len, char *err,
                   size_t cap);

#endif
