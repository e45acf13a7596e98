/*
 * body.c - JSON and msgpack request bodies into jansson values.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <msgpack.h>

#include "body.h"
#include "err.h"

int gw_body_kind(gw_body_kind_t *out, const char *ct, size_t len)
{
    size_t n = 0;
    if (!ct || len == 0)
        return YARD_EINVAL;
    while (n < len && ct[n] != ';' && ct[n] != ' ')
        n++;
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0) {
        *out = GW_BODY_JSON;
        return 0;
    }
    if ((n == 19 && strncasecmp(ct, "application/msgpack", 19) == 0) ||
        (n == 21 && strncasecmp(ct, "application/x-msgpack", 21) == 0)) {
        *out = GW_BODY_MSGPACK;
        return 0;
    }
    return YARD_EINVAL;
}

/* Deepest nesting of [ and { outside strings; stops counting past limit. */
static int body_json_depth(const char *s, size_t len, int limit)
{
    int depth = 0, max = 0, in_str = 0;
    for (size_t i = 0; i < len && max <= limit; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                max = depth;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return max;
}

/* jansson quotes the input near an error; keep only printable ASCII of it
 * so the message is valid UTF-8 JSON whatever the client sent. */
static void body_scrub(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            *s = '?';
}

static int body_decode_json(json_t **out, const char *body, size_t len, char *err, size_t cap)
{
    json_error_t jerr;
    if (body_json_depth(body, len, GW_BODY_MAX_DEPTH) > GW_BODY_MAX_DEPTH) {
        snprintf(err, cap, "JSON nested deeper than %d levels", GW_BODY_MAX_DEPTH);
        return YARD_EFORMAT;
    }
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!v) {
        body_scrub(jerr.text);
        snprintf(err, cap, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return YARD_EFORMAT;
    }
    *out = v;
    return 0;
}

/* Converts one msgpack object to JSON; depth-bounded. NULL on failure with
 * err set. */
static json_t *body_from_msgpack(const msgpack_object *o, int depth, char *err, size_t cap)
{
    json_t *v = NULL;
    /* depth counts values; the pre-scan already bounded containers. */
    if (depth > GW_BODY_MAX_DEPTH + 1) {
        snprintf(err, cap, "msgpack nested deeper than %d levels", GW_BODY_MAX_DEPTH);
        return NULL;
    }
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > INT64_MAX) {
            snprintf(err, cap, "msgpack integer %llu is out of range",
                     (unsigned long long)o->via.u64);
            return NULL;
        }
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        v = json_real(o->via.f64);
        if (!v)
            snprintf(err, cap, "msgpack float is not a finite number");
        return v;
    case MSGPACK_OBJECT_STR:
        /* JSON bodies cannot carry NUL (jansson refuses \u0000, and so does
         * PostgreSQL's jsonb): msgpack ones may not either. */
        if (o->via.str.size && memchr(o->via.str.ptr, 0, o->via.str.size)) {
            snprintf(err, cap, "msgpack string holds a NUL byte");
            return NULL;
        }
        /* msgpack-c may leave ptr NULL for an empty string. */
        v = json_stringn(o->via.str.size ? o->via.str.ptr : "", o->via.str.size);
        if (!v)
            snprintf(err, cap, "msgpack string is not valid UTF-8");
        return v;
    case MSGPACK_OBJECT_ARRAY:
        v = json_array();
        for (uint32_t i = 0; v && i < o->via.array.size; i++) {
            json_t *e = body_from_msgpack(&o->via.array.ptr[i], depth + 1, err, cap);
            if (!e || json_array_append_new(v, e) != 0) {
                if (e && !err[0])
                    snprintf(err, cap, "msgpack array cannot be stored");
                json_decref(v);
                v = NULL;
            }
        }
        return v;
    case MSGPACK_OBJECT_MAP:
        v = json_object();
        for (uint32_t i = 0; v && i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            const msgpack_object_str *k = &kv->key.via.str;
            char key[256];
            if (kv->key.type != MSGPACK_OBJECT_STR || k->size >= sizeof key) {
                snprintf(err, cap, "msgpack map keys must be strings shorter than %zu bytes",
                         sizeof key);
                json_decref(v);
                return NULL;
            }
            if (k->size)
                memcpy(key, k->ptr, k->size);
            key[k->size] = '\0';
            /* Validate the key before it is ever echoed in a message. */
            json_t *kcheck = json_stringn(key, k->size);
            json_decref(kcheck);
            if (!kcheck || strlen(key) != k->size) {
                snprintf(err, cap, "msgpack map key is not valid UTF-8 or holds NUL");
                json_decref(v);
                return NULL;
            }
            if (json_object_get(v, key)) {
                snprintf(err, cap, "msgpack map key `%s` is repeated", key);
                json_decref(v);
                return NULL;
            }
            json_t *e = body_from_msgpack(&kv->val, depth + 1, err, cap);
            if (!e) {
                json_decref(v); /* err says why */
                return NULL;
            }
            if (json_object_set_new(v, key, e) != 0) {
                snprintf(err, cap, "msgpack map key `%s` cannot be stored", key);
                json_decref(v);
                return NULL;
            }
        }
        return v;
    default:
        snprintf(err, cap, "msgpack binary and extension types are not accepted");
        return NULL;
    }
}

/* Reads a big-endian length of n bytes at p[*i]; 0 if truncated. */
static int body_be(const unsigned char *p, size_t len, size_t *i, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n > len - *i)
        return 0;
    for (size_t k = 0; k < n; k++)
        v = v << 8 | p[*i + k];
    *i += n;
    *out = v;
    return 1;
}

/* Checks a msgpack buffer before msgpack-c unpacks it, because its unpacker
 * allocates room for every element a container claims, up front: returns
 * 0 when it nests deeper than GW_BODY_MAX_DEPTH, -1 when it is truncated or
 * a container claims more elements than there are bytes left (each element
 * takes at least one), 1 when it may be unpacked. */
static int body_msgpack_depth_ok(const unsigned char *p, size_t len)
{
    uint64_t remaining[GW_BODY_MAX_DEPTH + 1]; /* elements left at each depth */
    int depth = 0;
    size_t i = 0;
    remaining[0] = 1;
    while (i < len && depth >= 0) {
        unsigned char b = p[i++];
        uint64_t n = 0, skip = 0;
        int container = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* single byte */
        } else if (b <= 0x8f) {
            n = 2u * (b & 0x0fu), container = 1;
        } else if (b <= 0x9f) {
            n = b & 0x0fu, container = 1;
        } else if (b <= 0xbf) {
            skip = b & 0x1fu;
        } else {
            switch (b) {
            case 0xc4: case 0xd9: if (!body_be(p, len, &i, 1, &skip)) return -1; break;
            case 0xc5: case 0xda: if (!body_be(p, len, &i, 2, &skip)) return -1; break;
            case 0xc6: case 0xdb: if (!body_be(p, len, &i, 4, &skip)) return -1; break;
            case 0xc7: if (!body_be(p, len, &i, 1, &skip)) return -1; skip++; break;
            case 0xc8: if (!body_be(p, len, &i, 2, &skip)) return -1; skip++; break;
            case 0xc9: if (!body_be(p, len, &i, 4, &skip)) return -1; skip++; break;
            case 0xca: case 0xce: case 0xd2: skip = 4; break;
            case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xd4: skip = 2; break;
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: if (!body_be(p, len, &i, 2, &n)) return -1; container = 1; break;
            case 0xdd: if (!body_be(p, len, &i, 4, &n)) return -1; container = 1; break;
            case 0xde: if (!body_be(p, len, &i, 2, &n)) return -1; n *= 2; container = 1; break;
            case 0xdf: if (!body_be(p, len, &i, 4, &n)) return -1; n *= 2; container = 1; break;
            default: return 1; /* 0xc1: never used; msgpack-c rejects it */
            }
        }
        if (skip > len - i || (container && n > len - i))
            return -1;
        i += (size_t)skip;
        remaining[depth]--;
        if (container && n > 0) {
            if (depth + 1 > GW_BODY_MAX_DEPTH)
                return 0;
            remaining[++depth] = n;
        }
        while (depth >= 0 && remaining[depth] == 0)
            depth--;
    }
    return 1;
}

static int body_decode_msgpack(json_t **out, const char *body, size_t len, char *err, size_t cap)
{
    msgpack_zone zone;
    msgpack_object obj;
    size_t off = 0;
    int rc = YARD_EFORMAT;
    int shape = body_msgpack_depth_ok((const unsigned char *)body, len);
    if (shape <= 0) {
        if (shape == 0)
            snprintf(err, cap, "msgpack nested deeper than %d levels", GW_BODY_MAX_DEPTH);
        else
            snprintf(err, cap, "msgpack body is truncated");
        return YARD_EFORMAT;
    }
    msgpack_zone_init(&zone, 2048);
    msgpack_unpack_return r = msgpack_unpack(body, len, &off, &zone, &obj);
    if (r == MSGPACK_UNPACK_SUCCESS) {
        err[0] = '\0';
        json_t *v = body_from_msgpack(&obj, 1, err, cap);
        if (v) {
            *out = v;
            rc = 0;
        }
    } else if (r == MSGPACK_UNPACK_EXTRA_BYTES) {
        snprintf(err, cap, "trailing bytes after the msgpack value at offset %zu", off);
    } else if (r == MSGPACK_UNPACK_CONTINUE) {
        snprintf(err, cap, "msgpack body is truncated");
    } else {
        snprintf(err, cap, "msgpack body is malformed");
    }
    msgpack_zone_destroy(&zone);
    return rc;
}

int gw_body_decode(json_t **out, gw_body_kind_t kind, const char *body, size_t len, char *err,
                   size_t cap)
{
    if (len == 0) {
        snprintf(err, cap, "the request body is empty");
        return YARD_EFORMAT;
    }
    return kind == GW_BODY_MSGPACK ? body_decode_msgpack(out, body, len, err, cap)
                                   : body_decode_json(out, body, len, err, cap);
}
